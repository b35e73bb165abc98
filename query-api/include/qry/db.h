/*
 * The query API's PostgreSQL access: a small pool of libpq connections driven without
 * blocking by the HTTP event loop (libpq's asynchronous API: PQconnectStartParams /
 * PQconnectPoll, PQsendPrepare / PQsendQueryPrepared, PQconsumeInput / PQisBusy /
 * PQgetResult, PQflush, with libevent events on PQsocket).
 *
 * - A query goes to an idle connection, or waits in a bounded FIFO while every
 *   connection is busy. Its callback is called exactly once, always later from the event
 *   loop, never from inside qry_db_query.
 * - Deadlines: a query waits at most timeout_ms for a connection; each connection runs
 *   with `SET statement_timeout = <timeout_ms>` (so a lock wait or a slow plan ends with
 *   SP_ETIMEDOUT), and a client-side backstop of timeout_ms + 1 s drops a connection
 *   whose server stopped answering. PQcancel is not used: it blocks.
 * - A broken connection is reconnected in the background: at once after it was lost,
 *   then with exponential backoff (100 ms doubling to 2 s) while attempts fail. A query
 *   whose connection broke under it is re-sent once (every statement is a read).
 * - Outage: while no connection is up and the latest connection attempt failed, queries
 *   fail at once with SP_EUNAVAIL instead of waiting.
 * - Sessions are `default_transaction_read_only = on`: the query API never writes.
 * - Host names in pg.conninfo are resolved with a blocking getaddrinfo by libpq; use an
 *   address, "localhost" or a socket directory.
 *
 * @locality the thread of the event_base given to qry_db_new; not thread-safe.
 */
#ifndef QRY_DB_H
#define QRY_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "sp/buf.h"
#include "sp/err.h"

/** Projection whose checkpoint Stockpot-After waits for. */
#define QRY_PROJECTION "pg"

/*
 * Pool defaults used by qry_server. Hard-coded for now: the config table (common/) is
 * owned by another module; these become config keys (e.g. query.pg_connections,
 * query.pg_queue_max, query.pg_timeout_ms) once it grows them.
 */
#define QRY_DB_CONNS      4    /* connections to PostgreSQL */
#define QRY_DB_QUEUE_MAX  1024 /* queries waiting for a connection; beyond: SP_EUNAVAIL */
#define QRY_DB_TIMEOUT_MS 2000 /* statement_timeout, and longest wait for a connection */

/**
 * The read statements. Every statement returning recipes yields rows of
 * (id bigint, json text) where json is the complete recipe object (with like_count and
 * comment_count); list statements yield (cursor id, json) and take max_id (exclusive
 * upper bound), since_id (exclusive lower bound) and limit last.
 */
enum qry_stmt {
    QRY_STMT_USER = 0,        /* $1 id -> (version, json) or no row */
    QRY_STMT_RECIPE,          /* $1 id -> (version, json) or no row */
    QRY_STMT_RECIPES_ALL,     /* $1 max_id, $2 since_id, $3 limit -> (id, json)* */
    QRY_STMT_RECIPES_BY_TAG,  /* $1 tag, $2 max_id, $3 since_id, $4 limit */
    QRY_STMT_RECIPES_BY_USER, /* $1 author_id, $2 max_id, $3 since_id, $4 limit */
    QRY_STMT_USER_EXISTS,     /* $1 id -> one row or none */
    QRY_STMT_CHECKPOINTS,     /* $1 projection -> (partition, next_offset)* */
    QRY_STMT_SCHEMA,          /* no parameter -> one row: 't' if the migrations are applied */
    QRY_STMT_RECIPE_ME,       /* $1 id, $2 user id -> (version, json, liked_by_me bool) */
    QRY_STMT_RECIPE_EXISTS,   /* $1 id -> one row or none */
    QRY_STMT_FOLLOWERS,       /* $1 user id, $2 max_id, $3 since_id, $4 limit -> (id, json)* */
    QRY_STMT_FOLLOWING,       /* $1 user id, ... as FOLLOWERS */
    QRY_STMT_COMMENTS,        /* $1 recipe id, ... -> (comment id, json)* */
    QRY_STMT_FEED,            /* $1 caller id, ... -> (recipe id, json)* */
    QRY_STMT_NOTIFICATIONS,   /* $1 recipient id, ... -> (notification id, json)* */
    QRY_STMT_UNREAD,          /* $1 recipient id -> one row: count of unread notifications */
    QRY_STMT_SESSION,         /* $1 session id -> (user_id, revoked or expired) or no row */
    /* The Server-Sent Events streams (sse.h): a stream's cursor is three integers
     * (c0, c1, c2), compared in that order. */
    QRY_STMT_STREAM_START, /* $1 user id, $2 partition, $3 offset (NULL, NULL: none) ->
                              one row: (cursor of the user's notification at that position,
                              or NULLs; cursor after the user's newest notification); the
                              cursor is (id, 0, 0) */
    QRY_STMT_STREAM_POLL,  /* $1 keys, $2 user ids, $3, $4, $5 the cursors' c0, c1, c2
                              (bigint array literals) -> (key, c0, c1, c2, partition, offset,
                              event, json)*: per key the first 50 notifications of the user
                              past the cursor, by key, cursor */
    /* Chat (query-api/src/chat.c). A room's JSON carries the caller's unread count. */
    QRY_STMT_CHAT_ROOMS,        /* $1 caller, $2 max_id, $3 since_id, $4 limit -> (activity id,
                                   json)*: the caller's rooms by activity id desc */
    QRY_STMT_CHAT_ROOM,         /* $1 room, $2 caller -> (version, caller is a member, json or
                                   NULL if not) or no row */
    QRY_STMT_CHAT_MESSAGES,     /* $1 room, $2 caller, $3 max_id, $4 since_id, $5 limit ->
                                   (message id, json)* newest first; none unless a member */
    QRY_STMT_CHAT_ACCESS,       /* $1 room, $2 caller -> one row (room exists, caller a member) */
    QRY_STMT_CHAT_STREAM_START, /* as STREAM_START over the caller's chat events; the
                                   cursor is (seq, partition, offset) */
    QRY_STMT_CHAT_STREAM_POLL,  /* as STREAM_POLL over the chat events of the user's
                                   membership spans, with a ninth column: the event's room */
    QRY_STMT_COUNT
};

struct qry_db;

struct qry_db_opts {
    const char *conninfo; /* libpq connection string; "" = libpq defaults / PG* env */
    int conns;            /* pool size, >= 1 */
    size_t queue_max;     /* most queries waiting for a connection */
    int timeout_ms;       /* statement_timeout and connect/queue deadline, milliseconds */
};

/**
 * Completion of one query, called exactly once from the event loop.
 * @param res  on err == 0: the result (status PGRES_TUPLES_OK), borrowed, valid only
 *             during the call; NULL otherwise
 * @param err  0; SP_EUNAVAIL (PostgreSQL unreachable, connection lost twice, queue full,
 *             or the pool is being freed); SP_ETIMEDOUT (deadline passed: waiting for a
 *             connection, statement_timeout or lock_timeout); SP_EDB (any other
 *             PostgreSQL error; logged here with PostgreSQL's message)
 */
typedef void (*qry_db_fn)(void *ud, const PGresult *res, int err);

/**
 * Create the pool and start connecting every connection (in the background: failing
 * to connect is not an error here; queries fail with SP_EUNAVAIL and qry_db_ready says
 * why). client_encoding is forced to UTF8. @p opts is copied.
 * @return owned; free with qry_db_free(). Never NULL.
 */
struct qry_db *qry_db_new(struct event_base *base, const struct qry_db_opts *opts);

/**
 * Complete every pending query with SP_EUNAVAIL (their callbacks run now, inside this
 * call; queries they submit fail the same way), close the connections and free. NULL is
 * a no-op. Must not be called from a qry_db_fn.
 */
void qry_db_free(struct qry_db *db);

/**
 * Run prepared statement @p stmt asynchronously with text parameters (NULL = SQL NULL;
 * the count is fixed per statement). The parameters are copied: the caller may free them
 * on return. @p fn(@p ud, ...) is called exactly once, later, from the event loop.
 */
void qry_db_query(
    struct qry_db *db, enum qry_stmt stmt, const char *const *params, qry_db_fn fn, void *ud);

/**
 * Readiness for GET /readyz, without blocking: a connection is up and the migrations
 * were found applied (table stockpot.checkpoints exists) by the latest check; while they
 * are not, each call starts a new check in the background. On false, a reason is
 * appended to @p why.
 */
bool qry_db_ready(struct qry_db *db, struct sp_buf *why);

/** Queries waiting for a connection now (not counting those running); for tests. */
size_t qry_db_queued(const struct qry_db *db);

/** A notification arrived on the channel of qry_db_listen, or listening (re)started. */
typedef void (*qry_db_notify_fn)(void *ud);

/**
 * Listen on @p channel (PostgreSQL LISTEN/NOTIFY; letters a-z and '_' only) on one more
 * connection, application_name "stockpot-query-api-listener", that never runs queries
 * and is kept up like the pool's (reconnected at once when lost, with the same backoff
 * while attempts fail; its failures do not make the pool unavailable). Every channel of
 * the pool shares that connection.
 * @p fn(@p ud) is called from the event loop after each burst of notifications read from
 * the socket that holds one of @p channel (payloads: qry_db_listen_payloads) and once after every
 * successful (re)connection, since notifications sent while not listening are lost: the
 * callee catches up then.
 * Call at most once per channel, for up to 4 channels; a channel added while the
 * connection listens already makes it reconnect. @p fn must stay callable until
 * qry_db_free. The channel is copied.
 */
void qry_db_listen(struct qry_db *db, const char *channel, qry_db_notify_fn fn, void *ud);

/** The payload of one notification (NUL-terminated, borrowed for the call; "" if none). */
typedef void (*qry_db_payload_fn)(void *ud, const char *payload);

/**
 * Also hand every notification's payload on @p channel (listened on with qry_db_listen,
 * whose @p ud it gets) to @p fn, as each is read, before that burst's qry_db_notify_fn.
 * A (re)connection calls only the qry_db_notify_fn.
 */
void qry_db_listen_payloads(struct qry_db *db, const char *channel, qry_db_payload_fn fn);

/** True while the connection of qry_db_listen is up and listening. */
bool qry_db_listening(const struct qry_db *db);

#endif
