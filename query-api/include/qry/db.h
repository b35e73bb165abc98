/*
 * The query API's one PostgreSQL connection (libpq): the read statements, prepared once
 * per connection, the projection checkpoint, and reconnecting after a failure.
 *
 * A reconnect attempt (PQreset) blocks the caller for at most the connection timeout
 * (2 s) and is tried at most once per second; in between, calls fail fast with
 * SP_EUNAVAIL so a dead database does not stall the event loop on every request.
 *
 * @locality one thread (the HTTP event loop); the object is not thread-safe.
 */
#ifndef QRY_DB_H
#define QRY_DB_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "sp/buf.h"
#include "sp/err.h"

/** Projection whose checkpoint Stockpot-After waits for. */
#define QRY_PROJECTION "pg"

/**
 * The read statements. Every statement returning recipes yields rows of
 * (id bigint, json text) where json is the complete recipe object; list statements take
 * max_id (exclusive upper bound), since_id (exclusive lower bound) and limit last.
 */
enum qry_stmt {
    QRY_STMT_USER = 0,        /* $1 id -> (version, json) or no row */
    QRY_STMT_RECIPE,          /* $1 id -> (version, json) or no row */
    QRY_STMT_RECIPES_ALL,     /* $1 max_id, $2 since_id, $3 limit -> (id, json)* */
    QRY_STMT_RECIPES_BY_TAG,  /* $1 tag, $2 max_id, $3 since_id, $4 limit */
    QRY_STMT_RECIPES_BY_USER, /* $1 author_id, $2 max_id, $3 since_id, $4 limit */
    QRY_STMT_USER_EXISTS,     /* $1 id -> one row or none */
    QRY_STMT_CHECKPOINTS,     /* $1 projection -> (partition, next_offset)* */
    QRY_STMT_COUNT
};

struct qry_db;

/**
 * Create the connection object and try to connect. Failing to connect is not an error
 * here: the next query retries (see the file comment), and qry_db_ready reports it.
 * @param conninfo  libpq connection string; "" = libpq defaults and the PG* environment.
 *                  client_encoding is forced to UTF8 and connect_timeout to 2 s.
 * @return owned; free with qry_db_free(). Never NULL.
 */
struct qry_db *qry_db_new(const char *conninfo);

/** Close the connection and free; NULL is a no-op. */
void qry_db_free(struct qry_db *db);

/**
 * Run prepared statement @p stmt with text parameters (NULL = SQL NULL; the count is
 * fixed per statement). If the connection is broken it is reset once and the statement
 * retried (every statement is a read, so a retry is safe).
 * @param[out] out  owned result with status PGRES_TUPLES_OK; PQclear() it
 * @return 0; SP_EUNAVAIL if PostgreSQL cannot be reached; SP_EDB for any other error
 *         (eb carries PostgreSQL's message).
 */
SP_MUST_CHECK int qry_db_query(struct qry_db *db,
                               enum qry_stmt stmt,
                               const char *const *params,
                               PGresult **out,
                               struct sp_errbuf *eb);

/**
 * The next offset projection QRY_PROJECTION will apply in @p partition.
 * @return 0 and *next_offset; SP_ENOTFOUND if there is no checkpoint row yet (nothing
 *         applied); SP_EUNAVAIL or SP_EDB as qry_db_query.
 */
SP_MUST_CHECK int
qry_db_checkpoint(struct qry_db *db, int32_t partition, int64_t *next_offset, struct sp_errbuf *eb);

/**
 * Readiness for GET /readyz: PostgreSQL answers and the migrations are applied (table
 * stockpot.checkpoints exists). On false, a reason is appended to @p why.
 */
bool qry_db_ready(struct qry_db *db, struct sp_buf *why);

#endif
