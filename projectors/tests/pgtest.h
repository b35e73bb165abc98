/* Test support for the projector tests: a fresh PostgreSQL database per test (from the PG*
 * environment pg_virtualenv sets), a temporary embedded log, raw record surgery. */
#ifndef PROJ_PGTEST_H
#define PROJ_PGTEST_H

#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "es/log.h"

#define PGTEST_MAP_BYTES (64u << 20)
#define PGTEST_MAX_EVENT (1u << 20)

struct pgtest {
    char db[64];        /* database name, created by pgtest_setup */
    char conninfo[128]; /* "dbname=<db>" (host, port, user from PG*) */
    char root[64];      /* temporary directory (mkdtemp) */
    char dir[80];       /* log directory <root>/log, created by pgtest_open_log */
    PGconn *conn;       /* connection to db, migrated */
    struct es_log *log; /* writer on dir */
};

/** Create the database and log, connect and apply the migrations (asserts on failure). */
void pgtest_setup(struct pgtest *t);
/** Like pgtest_setup without creating the log (t->dir does not exist yet). */
void pgtest_setup_db(struct pgtest *t);
/** Open (creating) the writer on t->dir. */
void pgtest_open_log(struct pgtest *t);
/** Close everything, drop the database, remove the log directory. */
void pgtest_teardown(struct pgtest *t);

/** Append one event (data stolen) at the given stream version; asserts success. */
void pgtest_append(
    struct pgtest *t, const char *type, const char *stream, int64_t version, json_t *data);

/** Value of the first column of the first row of @p sql, or "" if none. Owned: free(). */
char *pgtest_value(PGconn *conn, const char *sql);
/** Integer value of @p sql (first column of first row). */
long long pgtest_count(PGconn *conn, const char *sql);

/** Close the writer, replace the stored bytes of @p offset, reopen the writer. If
 *  @p fix_checksum, store the right checksum of @p value; else flip a checksum bit. */
void pgtest_overwrite(struct pgtest *t, int64_t offset, const char *value, int fix_checksum);

/** The migrations directory of the source tree. Static buffer. */
const char *pgtest_sql_dir(void);

#endif
