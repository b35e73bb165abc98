/*
 * Internals shared by the command-api source files: the app object, the queued
 * command, the group-commit batch, the deciders and the route table.
 * @locality two threads (DESIGN.md "Command side", batch.c): the app's event loop thread
 * reads requests, validates and authenticates them, reads the write model (read txns) and
 * answers; the committer thread decides, appends and commits batches, and alone writes the
 * write model and the log. Fields say which thread owns them; "mu" = struct cmd_app's.
 */
#ifndef CMD_APP_PRIV_H
#define CMD_APP_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/queue.h>

#include <jansson.h>
#include <lmdb.h>

#include "cmd/app.h"
#include "auth.h"
#include "wm.h"

#include "es/catalogue.h"
#include "es/event.h"
#include "es/id.h"
#include "es/log.h"
#include "sp/jwt.h"
#include "sp/ratelimit.h"
#include "sp/http.h"

#define CMD__MAX_EVENTS     2     /* most events one command appends */
#define CMD__RATELIMIT_KEYS 65536 /* client addresses each rate limiter remembers at most */
#define CMD__IDEM_KEY_MAX   128   /* Idempotency-Key length cap, bytes (README) */
#define CMD__TOKEN_CACHE    4096  /* verified access tokens remembered (sp_jwt_cache) */
/* Request header that sets the time of a command's events, mode = dev only (cmd/app.h) */
#define CMD__DEV_TIME_HEADER "Stockpot-Dev-Time"

enum cmd__kind {
    CMD_REGISTER,
    CMD_LOGIN,
    CMD_REFRESH,
    CMD_LOGOUT,
    CMD_RECIPE_CREATE,
    CMD_RECIPE_UPDATE,
    CMD_RECIPE_DELETE,
    CMD_PROFILE_UPDATE,
    CMD_FOLLOW,
    CMD_UNFOLLOW,
    CMD_COMMENT_CREATE,
    CMD_COMMENT_DELETE,
    CMD_LIKE,
    CMD_UNLIKE,
    CMD_NOTIFICATIONS_READ,
    CMD_ROOM_CREATE,
    CMD_ROOM_UPDATE,
    CMD_MEMBER_ADD,
    CMD_MEMBER_REMOVE,
    CMD_MESSAGE_SEND,
    CMD_ROOM_READ,
};

/** Name of a command kind, for metrics and idempotency fingerprints. @return static. */
const char *cmd__kind_name(enum cmd__kind kind);

/** One validated request waiting for (or inside) a group-commit batch. */
struct cmd__command {
    TAILQ_ENTRY(cmd__command) link;
    enum cmd__kind kind;
    struct sp_http_req *req; /* borrowed until answered */
    char request_id[72];     /* correlation id of the events */
    json_t *input;           /* validated body; owned, may be NULL */
    int64_t user_id;         /* the acting user, 0 = anonymous */
    int64_t session_id;      /* from the access token, 0 = none */
    int64_t target_id;       /* recipe, user or room id of the path */
    int64_t arg_id;          /* comment id of a comment delete; up_to_id; member's user id */
    int64_t if_match;        /* expected stream version, -1 = no If-Match */
    bool dev_time;           /* Stockpot-Dev-Time given (mode = dev) */
    int64_t dev_time_us;     /* its value, µs since the epoch */
    char password_hash[CMD__PHC_MAX];         /* register */
    char refresh_hash[CMD__HASH_HEX_LEN + 1]; /* refresh: hash of the presented token */
    bool idem_on;                             /* Idempotency-Key given and stored */
    char idem_key[CMD__IDEM_KEY_MAX + 32];    /* scoped record key, see cmd/app.h */
    unsigned char idem_fp[32];                /* HMAC-SHA256 fingerprint, see cmd/app.h */
    /* outcome, filled by the decider */
    int status;                  /* HTTP status; 0 = not decided */
    json_t *resp;                /* success body, owned */
    const char *slug;            /* problem type for status >= 400 */
    char detail[256];            /* problem detail */
    json_t *errors;              /* problem errors[], owned, may be NULL */
    bool replayed;               /* answer taken from an idempotency record */
    struct cmd__command *dup_of; /* same Idempotency-Key earlier in this batch */
    const char *audit;           /* audit event once durable, or NULL */
    /*
     * A no-op (repeated follow, like, ...) answers with the position of this stream's last
     * event; set when that event is in the batch in flight, so its position is known only
     * after the append (finish_batch fills it in); "" otherwise.
     */
    char pos_stream[48];
    struct es_event evs[CMD__MAX_EVENTS];
    size_t n_evs;
};

/*
 * Test seams, set only by command-api's own tests (all zero in production), from the
 * test thread while the app's loop is not running and the committer is idle
 * (cmd__committer_wait_idle; the next hand-over's mutex orders the write before the
 * committer's reads).
 */
struct cmd__hooks {
    int64_t (*next_id)(void *ud); /* entity id generator; NULL = the Snowflake one */
    void *next_id_ud;
    int fail_commits;   /* make this many upcoming batch commits of the write model fail */
    bool fail_catch_up; /* every write model catch-up fails while set */
};

TAILQ_HEAD(cmd__queue, cmd__command);

struct cmd_app {
    const struct sp_config *cfg; /* borrowed */
    struct event_base *base;     /* borrowed */
    struct sp_metrics *metrics;  /* owned; thread-safe */
    struct sp_http_server *http; /* owned; NULL after shutdown; loop thread */
    struct es_log *log;          /* owned; NULL after shutdown; committer */
    struct cmd__wm *wm;          /* owned; NULL after shutdown; writes: committer */
    struct es_snowflake ids;     /* committer */
    /*
     * Hand-off between the threads. The loop collects the commands of one loop pass in
     * @pending and, when the pass's flush_ev runs, moves them to @queue in one step, so
     * what arrives together is decided together. The committer takes up to batch_max
     * commands from @queue, and puts the decided batch, in order, on @done, then wakes
     * done_ev through @wake_fd (an eventfd); the loop answers them.
     */
    struct event *flush_ev;    /* loop: zero-timeout event handing @pending over */
    struct event *done_ev;     /* loop: readable @wake_fd, answers @done */
    int wake_fd;               /* eventfd, -1 before start */
    struct cmd__queue pending; /* loop only */
    pthread_mutex_t mu;        /* guards queue, done, busy, stop, kick, broken*, fenced* */
    pthread_cond_t work_cv;    /* committer waits: queue non-empty, stop or kick */
    pthread_cond_t idle_cv;    /* cmd__flush_all waits: queue empty and not busy */
    struct cmd__queue queue;   /* mu */
    struct cmd__queue done;    /* mu */
    bool busy;                 /* mu: the committer holds a batch */
    bool released;             /* committer: this batch's answers went to @done early */
    bool stop;                 /* mu: the committer exits once @queue is empty */
    bool kick;                 /* mu: retry the write model catch-up now (while broken) */
    bool wm_open;              /* mu: wm_top != NULL, for the threads that cannot read it */
    bool flush_req;            /* mu: commit wm_top now (cmd__committer_wait_idle) */
    pthread_t committer;       /* valid while committer_on */
    bool committer_on;
    size_t batch_max;
    /*
     * The write model's open top-level write transaction, or NULL (committer only): each
     * batch folds into a nested transaction of it, and it is committed (one flush)
     * command.writemodel_commit_ms after it began, busy or idle, and before a batch is
     * answered whose answers need it (batch.c, commit_batch). The log holds every event of
     * it durably already; a crash loses it and the catch-up refolds it.
     */
    MDB_txn *wm_top;
    int64_t wm_top_since_us;         /* when wm_top began, monotonic µs */
    int64_t wm_commit_us;            /* command.writemodel_commit_ms in µs */
    struct cmd__command **batch;     /* batch_max slots, owned; committer */
    struct es_position *positions;   /* CMD__MAX_EVENTS * batch_max slots, owned; committer */
    const struct es_event **ev_ptrs; /* same, owned; committer */
    bool ready;                      /* loop */
    bool dev_mode; /* mode = dev: Stockpot-Dev-Time is honoured, else refused (cmd/app.h) */
    /*
     * The write model missed durable events (its batch commit and the catch-up after it
     * failed): nothing is decided or read from it, /readyz and every command answer 503,
     * until a catch-up succeeds (the committer retries each second, before each batch,
     * and when a request or /readyz kicks it, at most each 100 ms).
     * Written by the committer under mu; the loop reads them under mu.
     */
    bool broken;
    char broken_why[200];
    int64_t recover_at_us; /* committer: monotonic µs of the last catch-up attempt */
    /*
     * Another writer with the same transactional.id took over the log (es_log_append
     * returned SP_EFENCED): for good, every command and /readyz answer 503 with the
     * reason and nothing is appended or acknowledged any more (cmd/app.h).
     * Written by the committer under mu; the loop reads them under mu.
     */
    bool fenced;
    char fenced_why[600];
    /*
     * unsure[p]: an append failed (not fenced) since partition p was last refolded, and
     * the log may still settle that batch as committed (Kafka, when both commit and
     * abort failed; the next producer's init_transactions settles it). The next
     * successful batch touching p keeps p's checkpoint where it was and refolds p from
     * it, so the write model never skips such a batch. n_parts entries, owned.
     */
    bool *unsure;
    int32_t n_parts;
    unsigned char idem_hmac_key[32]; /* fingerprint key, see cmd/app.h; its id in the wm */
    struct cmd__hooks hooks;
    unsigned char jwt_key[256];
    size_t jwt_key_len;
    struct sp_jwt_cache *tokens; /* owned; verified access tokens; loop thread */
    int64_t jwt_ttl_s, refresh_ttl_s;
    size_t max_event_bytes;   /* log.max_event_bytes */
    int64_t chat_max_members; /* chat.max_members: a group's members at most */
    struct cmd__argon2 argon2;
    char dummy_hash[CMD__PHC_MAX]; /* verified against on unknown logins, for even timing */
    /* per client address (auth.rate_limit_per_minute); owned, NULL = no limit */
    struct sp_ratelimit *rl_login, *rl_register;
};

/** New command of @p kind for @p req (request id copied); owned, free with cmd__command_free. */
struct cmd__command *cmd__command_new(enum cmd__kind kind, struct sp_http_req *req);
/** Free a command and everything it owns; NULL is a no-op. */
void cmd__command_free(struct cmd__command *c);

/**
 * Queue @p c (ownership moves to the app; loop thread): it goes to the committer at the
 * end of this loop pass and is answered on the loop thread once its batch is durable.
 */
void cmd__enqueue(struct cmd_app *app, struct cmd__command *c);

/**
 * Start the committer thread and the loop's hand-off events (after the stores are open).
 * @return 0, or -errno if the eventfd, an event or the thread could not be made.
 */
SP_MUST_CHECK int cmd__committer_start(struct cmd_app *app);

/**
 * Loop thread: hand every queued command to the committer, wait until it has decided,
 * appended and committed them all, and answer them (drain and shutdown).
 */
void cmd__flush_all(struct cmd_app *app);

/**
 * Wait until the committer has nothing queued, holds no batch and has committed the write
 * model's open transaction (asked to at once, not after command.writemodel_commit_ms).
 * Any thread but the committer; the loop must not hand over more meanwhile
 * (tests call it with the loop stopped, before changing struct cmd__hooks).
 */
void cmd__committer_wait_idle(struct cmd_app *app);

/** Loop thread: flush everything, then stop and join the committer. No-op if not started. */
void cmd__committer_stop(struct cmd_app *app);

/**
 * Loop thread: is the app accepting commands? false while fenced or while the write
 * model is broken (then it kicks the committer to retry the catch-up); @p why (may be
 * NULL, @p why_size bytes) gets the reason, *@p fenced (may be NULL) whether fenced.
 */
bool cmd__usable(struct cmd_app *app, char *why, size_t why_size, bool *fenced);

/**
 * Decide one command inside the batch's nested txn @p txn: set c->status and either
 * c->resp or the problem fields, and make + fold its events (c->evs).
 * @return 0 when decided (any status); SP_EDB / -errno on internal failure (then the
 *         caller answers 500 and aborts @p txn).
 */
SP_MUST_CHECK int cmd__decide(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c);

/** Decide one of the issue 4 commands (profile, follows, likes, comments, reads). */
SP_MUST_CHECK int cmd__decide_social(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c);

/** Decide one of the chat commands (issue 12: rooms, members, messages, read markers). */
SP_MUST_CHECK int cmd__decide_chat(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c);

#define CMD__ID_STR 24 /* bytes of a decimal id string with its NUL */

/** Write @p id in decimal into @p out (CMD__ID_STR bytes). */
void cmd__id_str(int64_t id, char *out);

/**
 * Answer c 200 with @p resp (stolen) without an event: its "position" is that of
 * @p stream's last event, now if it is already in the log, else once the batch holding it
 * is appended (c->pos_stream). @return 0 or SP_EDB.
 */
SP_MUST_CHECK int cmd__noop(
    struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, const char *stream, json_t *resp);

/**
 * Make event @p type on @p stream at its next version and fold it into @p txn; a
 * @p fresh stream (new entity) must be empty. @p data is stolen. The event's time is
 * the clock's, or c's Stockpot-Dev-Time (c->dev_time, mode = dev).
 * The event is checked against the catalogue (es_event_check) before it is kept.
 * @return 0; SP_ECONFLICT (c failed 503) if a fresh stream exists; SP_ETOOBIG (c failed
 *         413); SP_ESCHEMA if the event violates its schema (a bug of the decider: logged,
 *         500); SP_EDB or another internal error.
 */
SP_MUST_CHECK int cmd__emit(struct cmd_app *app,
                            MDB_txn *txn,
                            struct cmd__command *c,
                            enum es_type type,
                            const char *stream,
                            bool fresh,
                            json_t *data);

/** 0 if c's session is live for c's user; 1 after failing c with 401; SP_EDB. */
SP_MUST_CHECK int cmd__session_live(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c);

/** Fail c with @p status, naming @p field in the problem's errors[]. */
void cmd__fail_field(
    struct cmd__command *c, int status, const char *slug, const char *field, const char *detail);

/** Set c's outcome to a problem answer. */
void cmd__fail(struct cmd__command *c, int status, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * Committer thread: if the write model is broken (app->broken), try to catch it up from
 * the log, at most once per 100 ms unless @p force. @return true if it is usable.
 */
bool cmd__wm_recover(struct cmd_app *app, bool force);

/** Problem detail of every command answered while fenced. */
#define CMD__FENCED_DETAIL                                                                         \
    "another command-api took over the event log; this one accepts no more commands"

/**
 * Enter the fenced state (see struct cmd_app) with @p why (copied) from the log, logging
 * one error line naming kafka.transactional_id. Idempotent.
 */
void cmd__mark_fenced(struct cmd_app *app, const char *why);

/** Next entity id (the Snowflake generator, or the test seam). */
int64_t cmd__next_id(struct cmd_app *app);

/** Install every command route on app->http. */
void cmd__routes_install(struct cmd_app *app);

/** Register the app's metric families. */
void cmd__metrics_describe(struct sp_metrics *m);

#endif
