/*
 * The write model: an LMDB environment owned by the one command-api process holding
 * what the command handlers need to decide. It is a fold of the event log: every change
 * except idempotency records goes through cmd__wm_apply(), at catch-up and after each
 * decided event, and the table "meta" holds the checkpoint of every partition (next log
 * offset folded: key "checkpoint" for partition 0, the only one of the embedded log, and
 * "checkpoint/<partition>" for the others), the format version, the identity of the log
 * it folds ("log": "lmdb" or "kafka:<topic>") and the idempotency fingerprint key.
 *
 * Tables: streams (stream id -> 8-byte stream version), usernames (SHA-256 of the ASCII
 * lower-cased username -> user id), emails (SHA-256 of the ASCII lower-cased email ->
 * user id), users (user id -> argon2id PHC string), sessions (id -> struct
 * cmd__session), refresh (refresh hash hex -> session id), recipes (id -> struct
 * cmd__recipe), idempotency (scoped key, see cmd/app.h -> record), follows (follower id
 * + followee id -> 1 byte), likes (user id + recipe id -> 1 byte), comments (comment id
 * -> struct cmd__comment), reads (user id -> 8-byte up_to_id of its last
 * NotificationsRead), positions (stream id -> version, partition and offset of the
 * stream's last event whose log position is known), rooms (room id -> struct cmd__room),
 * members (room id + user id -> 8-byte up_to_id of the member's read marker), direct
 * (smaller user id + larger user id -> id of their 1:1 room), chat_txns (room id + sender
 * id + txn_id bytes -> message id). The chat tables came after format 3 without a new
 * format: a format-3 write model without them folded a log without chat events, so they
 * start empty and correct. Ids as keys are 8-byte big-endian. Name and
 * email keys are fixed-size digests so that every value the validators accept (254 code points, up
 * to 1016 bytes) fits LMDB's 511-byte key limit; case-insensitivity is ASCII only ("É" and "é" are
 * different emails).
 *
 * Durability: every commit syncs its pages but not its meta page (MDB_NOMETASYNC: one
 * flush per commit instead of two; the meta page is flushed by the next commit's sync or
 * by cmd__wm_sync). A commit survives a process crash; after a system crash the write
 * model may come back at the commit before the last one, with its checkpoint, and the
 * start-up catch-up refolds the rest from the log (the log is the record of truth; the
 * write model is a fold of it). What the log does not hold, the idempotency answers, is
 * synced at once: a batch that stores any calls cmd__wm_sync before it is answered.
 * After a crash between the log append of a batch and the write model commit of that
 * batch (or a failed commit), catch-up refolds the batch's events, and with them the
 * batch's idempotency answers: every event of a command sent with an Idempotency-Key
 * carries the record key and fingerprint (es_event's idempotency_key / idempotency_fp),
 * and the answer is made again from the event (wm.c idem_rebuild). See cmd/app.h.
 *
 * Format: meta "format" = CMD__WM_FORMAT. A write model of another (or no) format, or one
 * folded from another log (meta "log"; absent = "lmdb", as every write model before the
 * Kafka backend), is emptied at open and rebuilt from the log by catch-up (idempotency
 * records are lost).
 */
#ifndef CMD_WM_H
#define CMD_WM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "es/event.h"
#include "es/log.h"
#include "sp/err.h"

#define CMD__HASH_HEX_LEN  64  /* lower-case hex SHA-256 */
#define CMD__WM_FORMAT     "3" /* 2: digest keys for names and emails; 3: social tables */
#define CMD__WM_SECRET_LEN 32  /* bytes of the random idempotency fingerprint key */

struct cmd__wm;

struct cmd__session {
    int64_t user_id;
    int64_t expires_at_us;                    /* µs since the epoch */
    int32_t revoked;                          /* 0 or 1 */
    char refresh_hash[CMD__HASH_HEX_LEN + 1]; /* current one, lower-case hex */
};

struct cmd__recipe {
    int64_t author_id;
    int32_t deleted; /* 0 or 1 */
};

/* A chat room (conversation): its admin (0 for a direct 1:1 room) and how many members. */
struct cmd__room {
    int64_t admin_id;
    int32_t is_group;  /* 0 or 1 */
    int32_t n_members; /* current members */
};

#define CMD__TXN_ID_MAX 64 /* bytes of a message's txn_id (MessageSent schema) */

struct cmd__comment {
    int64_t author_id;
    int64_t recipe_id;
    int64_t recipe_author_id;
    int32_t deleted;  /* 0 or 1 */
    int32_t reserved; /* 0; keeps the stored bytes free of padding */
};

/** One stored idempotent answer; body owned by the caller after a get (free()). */
struct cmd__idem {
    unsigned char fingerprint[32]; /* HMAC-SHA256 of command kind, target and body */
    int32_t status;                /* 0 = decided in the batch in flight, not yet answered */
    char *body;                    /* JSON text of the answer, or NULL when status is 0 */
};

/**
 * Open (creating if needed) the write model at @p dir: creates the tables, empties them
 * if the stored format is not CMD__WM_FORMAT or the stored log identity is not
 * @p log_id (a warning is logged; catch-up then rebuilds them), and makes the random
 * idempotency key (CMD__WM_SECRET_LEN bytes from getrandom(2)) if there is none.
 * @param log_id  identity of the log folded: "lmdb" or "kafka:<topic>" (copied)
 * @param[out] out  owned; close with cmd__wm_close()
 * @return 0, SP_EDB or -errno (eb says which).
 */
SP_MUST_CHECK int cmd__wm_open(const char *dir,
                               size_t map_size_bytes,
                               const char *log_id,
                               struct cmd__wm **out,
                               struct sp_errbuf *eb);

/**
 * The answer of a command that takes an Idempotency-Key (cmd/app.h), made from the one
 * event it appended, @p ev: register (UserRegistered: 201 {user_id, username}), POST
 * /recipes (RecipeCreated: 201 {recipe_id, version}), a comment (RecipeCommented: 201
 * {comment_id}), logout (SessionRevoked: 200 {}), POST /chat/rooms (ConversationCreated:
 * 201 {room_id, is_group, member_ids, version, admin_id?, title?}) and a chat message
 * (MessageSent: 201 {message_id, room_id}); without the position, which the
 * batch adds. decide.c answers with it and catch-up rebuilds idempotency records with it,
 * so the two never differ.
 * @param[out] body owned, NULL when there is no answer
 * @return the HTTP status; 0 for another event type or data lacking the ids.
 */
int cmd__answer_of(const struct es_event *ev, json_t **body);

#define CMD__IDEM_KID_LEN 16                           /* hex digits of an idempotency key id */
#define CMD__IDEM_FP_LEN  (CMD__IDEM_KID_LEN + 1 + 64) /* "<key id>:<64 hex digits>" */

/**
 * Set the id of the idempotency fingerprint key in use (@p kid, CMD__IDEM_KID_LEN hex
 * digits, copied): catch-up rebuilds an idempotency answer from an event only if the
 * event's fingerprint was made with this key (cmd__wm_idem_fp_format), so a write model
 * rebuilt with a new secret, or a rotated jwt.secret, never holds records whose
 * fingerprints no request can match. Until it is set nothing is rebuilt.
 */
void cmd__wm_set_idem_kid(struct cmd__wm *wm, const char *kid);

/**
 * The idempotencyfp attribute of a keyed command's events (es_event.idempotency_fp):
 * "<key id>:<lower-case hex of the 32-byte fingerprint @p fp>", with the key id of
 * cmd__wm_set_idem_kid; the catch-up reads it back (wm.c idem_rebuild).
 * @param out  CMD__IDEM_FP_LEN + 1 bytes
 */
void cmd__wm_idem_fp_format(const struct cmd__wm *wm, const unsigned char *fp, char *out);

/**
 * Flush the write model to disk, the meta page of its last commit included (mdb_env_sync).
 * @return 0; SP_EDB if the flush failed.
 */
SP_MUST_CHECK int cmd__wm_sync(struct cmd__wm *wm);

/**
 * Committer, with no write transaction of @p wm open (after a commit): keep zeros written
 * ahead of the write model's last page, so its commits' flushes stay inside written blocks
 * (es_lmdb_write_ahead says why). Returns at once while enough is written ahead.
 */
void cmd__wm_write_ahead(struct cmd__wm *wm);

/** Sync and close; NULL is a no-op. */
void cmd__wm_close(struct cmd__wm *wm);

/**
 * The random idempotency key made at the first open (meta "idem_secret").
 * @return borrowed, CMD__WM_SECRET_LEN bytes, valid until cmd__wm_close().
 */
const unsigned char *cmd__wm_secret(const struct cmd__wm *wm);

/** Begin a transaction (@p parent for a nested one; NULL for a top-level one). */
SP_MUST_CHECK int
cmd__wm_txn_begin(struct cmd__wm *wm, MDB_txn *parent, bool rdonly, MDB_txn **txn);

/**
 * Fold one event into the write model: sets the stream's version (and its last position
 * when ev->pos is known, i.e. the event was read from the log), then updates the tables
 * the event's type touches (unknown types only move the stream version).
 * @return 0; SP_ESCHEMA if the payload lacks a field the fold needs; SP_EDB.
 */
SP_MUST_CHECK int
cmd__wm_apply(struct cmd__wm *wm, MDB_txn *txn, const struct es_event *ev, struct sp_errbuf *eb);

/**
 * Catch up every partition of @p log, one after the other, from its checkpoint to its
 * end (es_log_end when the step starts), in transactions of up to 1024 events each with
 * that partition's checkpoint. Records that fail to decode or fold are logged and
 * skipped.
 * @param[out] applied  number of records folded (may be NULL)
 * @return 0; SP_ESTATE if a checkpoint is past the end of its partition; SP_EDB; the
 *         log's read errors (Kafka: SP_EUNAVAIL).
 */
SP_MUST_CHECK int
cmd__wm_catch_up(struct cmd__wm *wm, struct es_log *log, int64_t *applied, struct sp_errbuf *eb);

/**
 * Catch up one partition of @p log as cmd__wm_catch_up does.
 * @param[in,out] applied  incremented by the number of records folded (may be NULL)
 * @return as cmd__wm_catch_up.
 */
SP_MUST_CHECK int cmd__wm_catch_up_partition(struct cmd__wm *wm,
                                             struct es_log *log,
                                             int32_t partition,
                                             int64_t *applied,
                                             struct sp_errbuf *eb);

/** Store @p partition's checkpoint (offset of its next event to fold). @return 0 or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_checkpoint_put(struct cmd__wm *wm, MDB_txn *txn, int32_t partition, int64_t next_offset);
/** Read @p partition's checkpoint (0 when none). @return 0 or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_checkpoint_get(struct cmd__wm *wm, MDB_txn *txn, int32_t partition, int64_t *next_offset);

/** Current version of @p stream, 0 if it has no events. @return 0 or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_stream_version(struct cmd__wm *wm, MDB_txn *txn, const char *stream, int64_t *version);

/** User id owning @p username (case-insensitive). @return 0, SP_ENOTFOUND or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_user_by_name(struct cmd__wm *wm, MDB_txn *txn, const char *username, int64_t *user_id);
/** User id owning @p email (case-insensitive). @return 0, SP_ENOTFOUND or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_user_by_email(struct cmd__wm *wm, MDB_txn *txn, const char *email, int64_t *user_id);
/**
 * Password hash of a user, copied into @p out (NUL-terminated).
 * @return 0, SP_ENOTFOUND, SP_ETOOBIG if @p out_size is too small, SP_EDB.
 */
SP_MUST_CHECK int
cmd__wm_user_hash(struct cmd__wm *wm, MDB_txn *txn, int64_t user_id, char *out, size_t out_size);

/** @return 0, SP_ENOTFOUND or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_session_get(struct cmd__wm *wm, MDB_txn *txn, int64_t session_id, struct cmd__session *out);
/** Session that ever held refresh hash @p hash_hex. @return 0, SP_ENOTFOUND or SP_EDB. */
SP_MUST_CHECK int cmd__wm_refresh_session(struct cmd__wm *wm,
                                          MDB_txn *txn,
                                          const char *hash_hex,
                                          int64_t *session_id);
/** @return 0, SP_ENOTFOUND or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_recipe_get(struct cmd__wm *wm, MDB_txn *txn, int64_t recipe_id, struct cmd__recipe *out);

/** @return 0 if user @p user_id is registered, SP_ENOTFOUND or SP_EDB. */
SP_MUST_CHECK int cmd__wm_user_exists(struct cmd__wm *wm, MDB_txn *txn, int64_t user_id);

/** *yes = whether @p follower follows @p followee. @return 0 or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_follows(struct cmd__wm *wm, MDB_txn *txn, int64_t follower, int64_t followee, bool *yes);

/** *yes = whether @p user_id likes @p recipe_id. @return 0 or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_likes(struct cmd__wm *wm, MDB_txn *txn, int64_t user_id, int64_t recipe_id, bool *yes);

/** @return 0, SP_ENOTFOUND or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_comment_get(struct cmd__wm *wm, MDB_txn *txn, int64_t comment_id, struct cmd__comment *out);

/** up_to_id of @p user_id's last NotificationsRead (0 if none). @return 0 or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_read_up_to(struct cmd__wm *wm, MDB_txn *txn, int64_t user_id, int64_t *up_to_id);

/**
 * Position of the last event of @p stream whose position is known, and that event's
 * stream version in @p version (compare with cmd__wm_stream_version: a smaller one means
 * later events are folded but not yet appended).
 * @return 0, SP_ENOTFOUND (no position known) or SP_EDB.
 */
SP_MUST_CHECK int cmd__wm_stream_pos(struct cmd__wm *wm,
                                     MDB_txn *txn,
                                     const char *stream,
                                     int64_t *version,
                                     struct es_position *pos);

/** Record that version @p version of @p stream is at @p pos. @return 0 or SP_EDB. */
SP_MUST_CHECK int cmd__wm_stream_pos_put(
    struct cmd__wm *wm, MDB_txn *txn, const char *stream, int64_t version, struct es_position pos);

/** Room @p room_id. @return 0, SP_ENOTFOUND or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_room_get(struct cmd__wm *wm, MDB_txn *txn, int64_t room_id, struct cmd__room *out);

/**
 * *yes = whether @p user_id is a member of room @p room_id now; *@p read_up_to (may be
 * NULL) = their read marker (highest message id read, 0 if none or not a member).
 * @return 0 or SP_EDB.
 */
SP_MUST_CHECK int cmd__wm_member(struct cmd__wm *wm,
                                 MDB_txn *txn,
                                 int64_t room_id,
                                 int64_t user_id,
                                 bool *yes,
                                 int64_t *read_up_to);

/** The 1:1 room of users @p a and @p b, in either order. @return 0, SP_ENOTFOUND or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_direct_room(struct cmd__wm *wm, MDB_txn *txn, int64_t a, int64_t b, int64_t *room_id);

/**
 * The message that @p sender_id sent to @p room_id with transaction id @p txn_id (at most
 * CMD__TXN_ID_MAX bytes are compared). @return 0, SP_ENOTFOUND or SP_EDB.
 */
SP_MUST_CHECK int cmd__wm_chat_txn(struct cmd__wm *wm,
                                   MDB_txn *txn,
                                   int64_t room_id,
                                   int64_t sender_id,
                                   const char *txn_id,
                                   int64_t *message_id);

/** Idempotency record for @p key. @return 0 (out->body owned), SP_ENOTFOUND or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_idem_get(struct cmd__wm *wm, MDB_txn *txn, const char *key, struct cmd__idem *out);
/** Store an idempotency record (body may be NULL). @return 0 or SP_EDB. */
SP_MUST_CHECK int
cmd__wm_idem_put(struct cmd__wm *wm, MDB_txn *txn, const char *key, const struct cmd__idem *rec);

#endif
