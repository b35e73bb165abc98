/* Test support for the projector tests: a fresh PostgreSQL database per test (from the PG*
 * environment pg_virtualenv sets), a temporary embedded log, generated events, runners of
 * the "pg" projection, raw record surgery. */
#ifndef PROJ_PGTEST_H
#define PROJ_PGTEST_H

#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "es/log.h"
#include "proj/runner.h"

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

/** Receives one generated event; takes ownership of @p data. */
typedef void (*pgtest_emit_fn)(
    void *arg, const char *type, const char *stream, int64_t version, json_t *data);

/**
 * Generate a mixed log: @p users users (UserRegistered), then @p recipes recipes by them
 * (RecipeCreated), every third followed by a RecipeUpdated and every fifth by a
 * RecipeDeleted, then one event of an unknown type (poison, dead-lettered). Ids are
 * "73012345678%05d" for users and "73019999999%05d" for recipes; text is partly non-ASCII.
 * That is users + recipes + recipes / 3 + recipes / 5 + 1 events.
 *
 * @param users  at least 1
 * @param emit   called once per event, in order; @p arg is passed through
 */
void pgtest_mixed_events(int users, int recipes, pgtest_emit_fn emit, void *arg);
/** Append pgtest_mixed_events(@p users, @p recipes) to t->log (asserts success). */
void pgtest_append_mixed(struct pgtest *t, int users, int recipes);

/* Ids of pgtest_append_chat: user u is PGTEST_CHAT_USER + u (1..users), room r
 * PGTEST_CHAT_ROOM + r, the k-th message PGTEST_CHAT_MESSAGE + k (time-ordered). */
#define PGTEST_CHAT_USER      7303000000000000LL
#define PGTEST_CHAT_ROOM      7304000000000000LL
#define PGTEST_CHAT_MESSAGE   7305000000000000LL
#define PGTEST_CHAT_MAX_USERS 64

/**
 * Append a random but valid chat log of @p n events to t->log (deterministic from
 * @p seed): @p rooms rooms (every third one 1:1, the others groups) of @p users users
 * (<= PGTEST_CHAT_MAX_USERS), each created by ConversationCreated, then messages and read
 * marks of members, and in groups members added, members leaving or removed by the admin,
 * title changes and admin handovers, as command-api would decide them.
 */
void pgtest_append_chat(struct pgtest *t, unsigned seed, int rooms, int users, int n);

/**
 * A runner of the "pg" projection reading t->log and writing t->conninfo (asserts
 * success). @p m is borrowed (NULL: no metrics). Owned: proj_runner_free().
 */
struct proj_runner *pgtest_runner_new(struct pgtest *t,
                                      size_t batch_max,
                                      enum proj_poison_policy policy,
                                      struct sp_metrics *m);
/** pgtest_runner_new with proj_runner_opts.catchup_batch_max and batch_linger_ms. */
struct proj_runner *pgtest_runner_sized(struct pgtest *t,
                                        size_t batch_max,
                                        size_t catchup_batch_max,
                                        int batch_linger_ms,
                                        enum proj_poison_policy policy,
                                        struct sp_metrics *m);
/** Apply t->log up to its end with a fresh dead-letter runner of batches of @p batch_max
 *  events, then free it; fails the test (printing why) on error. */
void pgtest_catch_up(struct pgtest *t, size_t batch_max);

/** Value of the first column of the first row of @p sql, or "" if none. Owned: free(). */
char *pgtest_value(PGconn *conn, const char *sql);
/** Integer value of @p sql (first column of first row). */
long long pgtest_count(PGconn *conn, const char *sql);
/** Assert that pgtest_value(@p conn, @p sql) is @p want; on a mismatch print the query,
 *  the value and the wanted value first. */
void pgtest_check(PGconn *conn, const char *sql, const char *want);

/** Close the writer, replace the stored bytes of @p offset, reopen the writer. If
 *  @p fix_checksum, store the right checksum of @p value; else flip a checksum bit. */
void pgtest_overwrite(struct pgtest *t, int64_t offset, const char *value, int fix_checksum);

/** The migrations directory of the source tree. Static buffer. */
const char *pgtest_sql_dir(void);

#endif
