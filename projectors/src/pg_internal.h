/*
 * Internals of the PostgreSQL projection "pg" shared by pg_projection.c (users, recipes,
 * payload shape checks), pg_social.c (follows, likes, comments, notifications, sessions),
 * pg_chat.c (rooms, members, messages) and pg_fold_set.c (set-wise folding). Each fold runs
 * inside the runner's transaction (see proj_apply_fn).
 */
#ifndef PROJ_PG_INTERNAL_H
#define PROJ_PG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "es/event.h"
#include "sp/err.h"

/*
 * The folds name the view's tables (users, recipes, ...) unqualified: they resolve through
 * the connection's search_path, stockpot (proj_pg_connect), or stockpot_next while a
 * rebuild folds into its shadow schema (rebuild.c). Checkpoints, dead letters and the
 * per-session scratch tables (pg_temp) are always named in full.
 */

/**
 * The event's stream id as decimal text. Every fold runs after the runner checked the event
 * against the catalogue (es_event_check): the stream is "<category>-<id>" of the type's
 * category, the payload's own id field equals it, and every field has its schema's shape.
 * @param out  ≥ 21 bytes
 */
void proj__stream_id(const struct es_event *ev, char *out, size_t out_size);

/*
 * Counters (users.follower_count, following_count, recipe_count; recipes.like_count,
 * comment_count) are not updated by the folds: a fold that inserts or deletes a counted
 * row notes +1 or -1 for the counting entity and column in a per-session scratch table
 * (no key: no scratch row is updated), and the projection's batch_end adds each entity's
 * sums once per batch. Updating one row once per event inside a long transaction (a
 * rebuild, a daemon batch) keeps row versions that cannot be pruned, so every update
 * walked a longer chain (quadratic); recounting each changed entity at the batch's end
 * instead cost a count over all of its rows per batch. An entity the view does not hold
 * yet takes no delta; its UserRegistered / RecipeCreated counts the rows there at that
 * point and forgets the deltas noted for it before (SQL_FORGET_DELTAS), so every counter
 * equals its count over the rows after every batch. SQL_COUNT_DELTAS(sel) is a statement
 * for a data-modifying WITH, @p sel a SELECT of (entity id, SQL_COL_*, delta).
 */
#define SQL_COL_FOLLOWERS     "1" /* users.follower_count: follows with followee_id = id */
#define SQL_COL_FOLLOWING     "2" /* users.following_count: follows with follower_id = id */
#define SQL_COL_RECIPES       "3" /* users.recipe_count: recipes with author_id = id */
#define SQL_COL_LIKES         "4" /* recipes.like_count: likes with recipe_id = id */
#define SQL_COL_COMMENTS      "5" /* recipes.comment_count: comments with recipe_id = id */
#define SQL_COUNT_DELTAS(sel) "INSERT INTO pg_temp.proj_count_deltas (id, col, d) " sel
/* Forget the deltas of @p cols (a list) noted for the new entities: the notes x that
 * @p match selects ("WHERE x.id = $1", or "USING ev WHERE x.id = ev.id": a join the
 * planner makes an index probe per new entity; an IN (SELECT ...) became a scan of every
 * note per entity). */
#define SQL_FORGET_DELTAS(match, cols)                                                             \
    "DELETE FROM pg_temp.proj_count_deltas x " match " AND x.col IN (" cols ")"
#define SQL_USER_COLS   SQL_COL_FOLLOWERS ", " SQL_COL_FOLLOWING ", " SQL_COL_RECIPES
#define SQL_RECIPE_COLS SQL_COL_LIKES ", " SQL_COL_COMMENTS

/*
 * users.version follows every event of the user's stream, most of which (likes, follows,
 * read marks) change nothing else of the row. For the same reason as the counters, a fold
 * does not update the row: SQL_USER_VERSION ($1 user id, $2 stream version) appends to a
 * per-session scratch table (no key, so no row is updated twice) and the batch's end moves
 * each user's version to the greatest noted, once.
 */
#define SQL_USER_VERSION "INSERT INTO pg_temp.proj_user_versions (id, version) VALUES ($1, $2)"

/*
 * The home feed (feed_entries, schemas/sql/003_feed.sql) holds after every event
 * exactly {(u, r) : r live AND (u = r.author_id OR u follows r.author_id)}. Each statement
 * below computes one event's delta from the current rows of the other table, so the rows
 * do not depend on the order of events of different streams.
 * SQL_FEED_ADD_RECIPE: a statement adding the recipes @p rel (a WITH name with columns
 * id, author_id) to their authors' and the authors' followers' feeds.
 * SQL_FEED_REMOVE_RECIPE: a statement for a data-modifying WITH removing them again (the
 * same readers: the follows did not change in between, or their own folds moved the rows).
 */
#define SQL_FEED_READERS(rel)                                                                      \
    "SELECT " rel ".author_id AS u, " rel ".id AS r FROM " rel " UNION ALL "                       \
    "SELECT f.follower_id, " rel ".id FROM " rel " JOIN follows f "                                \
    "ON f.followee_id = " rel ".author_id"
#define SQL_FEED_ADD_RECIPE(rel)                                                                   \
    "INSERT INTO feed_entries (user_id, recipe_id) " SQL_FEED_READERS(rel) " ON CONFLICT DO "      \
                                                                           "NOTHING"
#define SQL_FEED_REMOVE_RECIPE(rel)                                                                \
    "DELETE FROM feed_entries e USING (" SQL_FEED_READERS(                                         \
        rel) ") x "                                                                                \
             "WHERE e.user_id = x.u AND e.recipe_id = x.r"

/* Counters start from the rows folded before their entity (the log is ordered per stream
 * only), so each always equals its count over the rows. @p id (SQL_*_COUNTS: $1) is the
 * entity's id. */
#define SQL_USER_COUNTS_OF(id)                                                                     \
    "(SELECT count(*) FROM follows WHERE followee_id = " id "), "                                  \
    "(SELECT count(*) FROM follows WHERE follower_id = " id "), "                                  \
    "(SELECT count(*) FROM recipes WHERE author_id = " id ")"
#define SQL_RECIPE_COUNTS_OF(id)                                                                   \
    "(SELECT count(*) FROM likes WHERE recipe_id = " id "), "                                      \
    "(SELECT count(*) FROM comments WHERE recipe_id = " id ")"
#define SQL_USER_COUNTS   SQL_USER_COUNTS_OF("$1::bigint")
#define SQL_RECIPE_COUNTS SQL_RECIPE_COUNTS_OF("$1::bigint")

/* Text array of a JSON array without duplicates, each value at its first occurrence (tags). */
#define SQL_TEXT_SET(p)                                                                            \
    "ARRAY(SELECT e FROM jsonb_array_elements_text(" p ") WITH ORDINALITY AS x(e, n) "             \
    "GROUP BY e ORDER BY min(n))"
#define SQL_ID_ARRAY(p)                                                                            \
    "ARRAY(SELECT e::bigint FROM jsonb_array_elements_text(" p                                     \
    ") WITH ORDINALITY AS x(e, n) ORDER BY n)"

/* The rows of a statement: a round's events of one type, as JSON objects
 * {id: stream id, v: stream version, at: time, n: notification id or null, p: partition,
 *  o: offset, the payload's id fields (lifted_keys[] of pg_fold_set.c: "author_id", ...),
 *  d: payload or
 *  null}. The payload goes as d only to the types whose statements read more of it than its
 *  ids (set_fold.data): the others' rows are a few numbers, which PostgreSQL reads several
 *  times faster than it parses each payload into jsonb. */
#define SQL_ROW_COLUMNS                                                                            \
    "id bigint, v bigint, at timestamptz, n bigint, p integer, o bigint, author_id bigint, "       \
    "followee_id bigint, recipe_id bigint, recipe_author_id bigint, user_id bigint, "              \
    "up_to_id bigint, message_id bigint, sender_id bigint, d jsonb"
/* The rows go through an array the planner cannot see into, so that it sizes them at a
 * few (unnest: 10) rather than json_to_recordset's 100: joined to a read model table that
 * is an index probe per row; at 100 PostgreSQL hash-joined a sequential scan of the whole
 * table (recipes, follows) in every statement, about 1-4 ms each at 12,000 recipes. */
#define SQL_ROWS                                                                                   \
    "ev AS (SELECT * FROM unnest(ARRAY(SELECT r FROM json_to_recordset($1::json) "                 \
    "AS r(" SQL_ROW_COLUMNS "))) AS e(" SQL_ROW_COLUMNS "))"
/* An id field of the payload: a column of its own in every row (lifted_keys[]). */
#define SQL_ID(key) "ev." key

/*
 * The chat read model (schemas/sql/005_chat.sql, pg_chat.c). SQL_CHAT_SEQ is the batch's
 * value of stockpot.chat_event_seq, which pg_batch_begin takes after the projection's lock
 * and keeps in the transaction's setting stockpot.chat_seq (0 for a fold outside a runner's
 * batch). Every chat statement runs on SQL_ROWS (ev.id is the conversation id) and answers
 * one row (events folded, events whose room the view holds): an event is folded unless its
 * room is unknown, or its sender, reader or removed user is not a member then (poison,
 * SP_ENOTFOUND). The events of one room in one statement are all messages or all read
 * marks, or one other event (pg_fold_set.c's rounds); each statement folds them with the
 * effect of folding them one by one in log order.
 */
#define SQL_CHAT_SEQ "coalesce(nullif(current_setting('stockpot.chat_seq', true), '')::bigint, 0)"
extern const char proj__sql_chat_created[];
extern const char proj__sql_chat_updated[];
extern const char proj__sql_chat_member_added[];
extern const char proj__sql_chat_member_removed[];
extern const char proj__sql_chat_message_sent[];
extern const char proj__sql_chat_messages_read[];

/**
 * Fold @p ev alone with its type's set statement (a round of one event), for the per-event
 * folds of the types whose only statement is their set statement (chat).
 * @param[out] res  the statement's result (owned: PQclear())
 * @return 0 or the errors of proj_pg_exec.
 */
int proj__pg_fold_one(PGconn *conn,
                      const struct es_event *ev,
                      PGresult **res,
                      struct sp_errbuf *eb);

/**
 * The notification id of @p ev, the causing event (schemas/sql/002_social.sql): Snowflake
 * layout, 41 bits of milliseconds since 2024-01-01T00:00:00Z, 10 bits of the partition and
 * 12 of the offset, so a rebuild yields the same ids.
 * @return 0; SP_EINVAL if the event has no log position; SP_ESCHEMA if its time is outside
 *         2024-2093.
 */
int proj__notification_id(const struct es_event *ev, int64_t *id, struct sp_errbuf *eb);

/**
 * Fold evs[0..n) (each checked against the catalogue and of a type the projection folds)
 * with the effect of folding them one by one in order with the projection's folds[], in a
 * few set-based statements per run of events that touch distinct rows (pg_fold_set.c).
 * Runs inside the caller's transaction; the caller's batch_end completes it.
 * @return 0; on an error the effect is unknown (the caller rolls back to a savepoint): a
 *         poison-class error (SP_ENOTFOUND, SP_ESCHEMA, SP_EDB of SQLSTATE class 22 or 23)
 *         means one of the events would fail alone, and the caller looks for it by folding
 *         parts of the batch; SP_EDB of another class or SP_EUNAVAIL is transient.
 */
int proj__pg_fold_set(PGconn *conn,
                      const struct es_event *const *evs,
                      size_t n,
                      unsigned flags,
                      struct sp_errbuf *eb);

/* Folds of pg_social.c, each a proj_apply_fn (see proj/projection.h). */
int proj__pg_user_followed(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_user_unfollowed(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_recipe_liked(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_recipe_unliked(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_recipe_commented(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_comment_deleted(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_notifications_read(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_session_started(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_session_refreshed(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_session_revoked(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);

/* Folds of pg_chat.c, each a proj_apply_fn. */
int proj__pg_conversation_created(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_conversation_updated(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_member_added(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_member_removed(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_message_sent(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_messages_read(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);

#endif
