/*
 * Integration tests of rebuild and checksum: a rebuilt view equals the incrementally
 * applied one (needs PostgreSQL: run under pg_virtualenv).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include <cmocka.h>

#include "pgtest.h"
#include "proj/pg.h"
#include "proj/runner.h"

#include "sp/banned.h"

static void test_rebuild_equals_incremental(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r = NULL;
    struct proj_batch_stats st;
    char live[40], rebuilt[40], empty[40];
    (void)state;

    pgtest_setup(&t);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), empty, sizeof(empty), &eb), 0);
    pgtest_append_mixed(&t, 7, 40);
    r = pgtest_runner_new(&t, 7, PROJ_POISON_DEAD_LETTER, NULL);
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), live, sizeof(live), &eb), 0);
    assert_int_equal(strlen(live), 32);
    assert_string_not_equal(live, empty);

    assert_int_equal(proj_rebuild(t.conn, proj_pg_projection(), t.log, 13, PROJ_POISON_DEAD_LETTER,
                                  false, &st, &eb),
                     0);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), rebuilt, sizeof(rebuilt), &eb), 0);
    assert_string_equal(live, rebuilt);
    assert_int_equal(st.dead, 1);
    assert_int_equal(st.applied + st.dead, st.next_offset);
    assert_int_equal(pgtest_count(t.conn, "SELECT next_offset FROM stockpot.checkpoints"),
                     st.next_offset);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.dead_letters"), 1);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.recipes"), 32);

    /* the runner carries on after a rebuild from the rebuilt checkpoint */
    pgtest_append(&t, "UserRegistered", "user-7301234567800099", 1,
                  json_pack("{s:s,s:s,s:s,s:s}", "user_id", "7301234567800099", "username", "late",
                            "email", "late@example.com", "password_hash", "$argon2id$v=19$h"));
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 8);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.dead_letters"), 1);
    proj_runner_free(r);

    /* halt policy: the rebuild rolls back and leaves the view as it was */
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), live, sizeof(live), &eb), 0);
    assert_int_equal(
        proj_rebuild(t.conn, proj_pg_projection(), t.log, 13, PROJ_POISON_HALT, false, &st, &eb),
        SP_ESTATE);
    assert_true(st.halted);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), rebuilt, sizeof(rebuilt), &eb), 0);
    assert_string_equal(live, rebuilt);
    pgtest_teardown(&t);
}

struct rebuild_job {
    const char *conninfo;
    struct es_log *log;
    int rc;
    struct proj_batch_stats st;
    char msg[256];
};

/* Runs a rebuild on its own connection (application_name "rebuild-test"). */
static void *rebuild_thread(void *arg)
{
    struct rebuild_job *job = arg;
    struct sp_errbuf eb = {{0}, {0}};
    PGconn *conn = NULL;

    job->rc = proj_pg_connect(job->conninfo, "rebuild-test", &conn, &eb);
    if (job->rc == 0)
        job->rc = proj_rebuild(conn, proj_pg_projection(), job->log, 5, PROJ_POISON_DEAD_LETTER,
                               false, &job->st, &eb);
    snprintf(job->msg, sizeof(job->msg), "%s", eb.msg);
    PQfinish(conn);
    return NULL;
}

/* Waits until the rebuild's session is blocked on a lock (at most 20 s). */
static void wait_rebuild_blocked(PGconn *conn)
{
    struct timespec ts = {0, 20L * 1000 * 1000};
    long long n = 0;

    for (int i = 0; i < 1000 && n == 0; i++) {
        if (i > 0)
            nanosleep(&ts, NULL);
        n = pgtest_count(conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                               "'rebuild-test' AND wait_event_type = 'Lock'");
    }
    assert_int_equal(n, 1);
}

/*
 * While a rebuild is in progress (held open: it waits for a row lock on its checkpoint
 * row, after it created its shadow tables), readers are not blocked and see the old view.
 */
static void test_readers_see_old_view_during_rebuild(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct rebuild_job job;
    PGconn *blocker = NULL;
    PGresult *res = NULL;
    pthread_t tid;
    char live[40], rebuilt[40];
    long long tags;
    (void)state;

    pgtest_setup(&t);
    pgtest_append_mixed(&t, 3, 10);
    pgtest_catch_up(&t, 7);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), live, sizeof(live), &eb), 0);
    tags = pgtest_count(t.conn, "SELECT count(*) FROM stockpot.recipe_tags");
    assert_true(tags > 0);
    /* a drifted old view, so that old and rebuilt rows differ */
    assert_int_equal(
        proj_pg_exec_script(t.conn, "UPDATE stockpot.recipes SET title = 'stale'", &eb), 0);

    assert_int_equal(proj_pg_connect(t.conninfo, "blocker", &blocker, &eb), 0);
    assert_int_equal(proj_pg_exec_script(blocker,
                                         "BEGIN; SELECT * FROM stockpot.checkpoints "
                                         "WHERE projection = 'pg' FOR UPDATE",
                                         &eb),
                     0);
    memset(&job, 0, sizeof(job));
    job.conninfo = t.conninfo;
    job.log = t.log;
    assert_int_equal(pthread_create(&tid, NULL, rebuild_thread, &job), 0);
    wait_rebuild_blocked(t.conn);

    /* a reader with a short statement timeout is not blocked and sees the old rows */
    assert_int_equal(proj_pg_exec_script(t.conn, "SET statement_timeout = '500ms'", &eb), 0);
    if (proj_pg_exec(t.conn,
                     "SELECT count(*) || ':' || count(*) FILTER (WHERE title = 'stale') "
                     "FROM stockpot.recipes",
                     0, NULL, &res, &eb) != 0)
        fprintf(stderr, "reader during the rebuild: %s\n", eb.msg);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "8:8");
    PQclear(res);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 3);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.recipe_tags"), tags);
    assert_int_equal(proj_pg_exec_script(t.conn, "RESET statement_timeout", &eb), 0);

    assert_int_equal(proj_pg_exec_script(blocker, "COMMIT", &eb), 0);
    assert_int_equal(pthread_join(tid, NULL), 0);
    if (job.rc != 0)
        fprintf(stderr, "rebuild: %s\n", job.msg);
    assert_int_equal(job.rc, 0);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), rebuilt, sizeof(rebuilt), &eb), 0);
    assert_string_equal(live, rebuilt);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.recipes "
                                          "WHERE title = 'stale'"),
                     0);
    PQfinish(blocker);
    pgtest_teardown(&t);
}

struct reader_job {
    const char *conninfo;
    atomic_bool stop;
    long long queries, errors;
    char first_error[256];
};

/* Reads the view in a loop, as the query API does (one statement per read, names resolved
 * each time), counting the reads and the errors. */
static void *reader_thread(void *arg)
{
    struct reader_job *job = arg;
    struct sp_errbuf eb = {{0}, {0}};
    PGconn *conn = NULL;

    if (proj_pg_connect(job->conninfo, "reader", &conn, &eb) != 0) {
        job->errors++;
        return NULL;
    }
    while (!atomic_load(&job->stop)) {
        PGresult *res = PQexecParams(
            conn,
            "SELECT count(*) FROM stockpot.recipes r JOIN stockpot.users u ON u.id = r.author_id "
            "LEFT JOIN stockpot.recipe_tags t ON t.recipe_id = r.id",
            0, NULL, NULL, NULL, NULL, 0);
        job->queries++;
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            if (job->errors++ == 0)
                snprintf(job->first_error, sizeof(job->first_error), "%s",
                         PQresultErrorMessage(res));
        }
        PQclear(res);
    }
    PQfinish(conn);
    return NULL;
}

/*
 * The swap under live reads: a reader loops over the view while rebuilds run one after
 * the other; not one read fails, and each rebuilt view equals the live one. --keep-old
 * keeps the previous tables in schema stockpot_old (the next one replaces them).
 */
static void test_swap_under_reads_and_keep_old(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_batch_stats st;
    struct reader_job reader;
    pthread_t tid;
    char live[40], rebuilt[40];
    (void)state;

    pgtest_setup(&t);
    pgtest_append_mixed(&t, 5, 30);
    pgtest_catch_up(&t, 9);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), live, sizeof(live), &eb), 0);
    memset(&reader, 0, sizeof(reader));
    reader.conninfo = t.conninfo;
    atomic_init(&reader.stop, false);
    assert_int_equal(pthread_create(&tid, NULL, reader_thread, &reader), 0);
    for (int i = 0; i < 8; i++) {
        if (proj_rebuild(t.conn, proj_pg_projection(), t.log, 11, PROJ_POISON_DEAD_LETTER,
                         i % 2 == 1, &st, &eb) != 0)
            fail_msg("rebuild %d: %s", i, eb.msg);
        assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), rebuilt, sizeof(rebuilt), &eb),
                         0);
        assert_string_equal(rebuilt, live);
    }
    atomic_store(&reader.stop, true);
    assert_int_equal(pthread_join(tid, NULL), 0);
    if (reader.errors != 0)
        fail_msg("%lld of %lld reads failed during the swaps: %s", reader.errors, reader.queries,
                 reader.first_error);
    assert_true(reader.queries > 0);
    /* the shadow schema is gone; the last rebuild (i = 7) kept the old tables */
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM pg_namespace "
                                          "WHERE nspname = 'stockpot_next'"),
                     0);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot_old.recipes"),
                     pgtest_count(t.conn, "SELECT count(*) FROM stockpot.recipes"));

    /* keep-old holds the view as it was before: a drifted title shows there only */
    assert_int_equal(
        proj_pg_exec_script(t.conn, "UPDATE stockpot.recipes SET title = 'stale'", &eb), 0);
    assert_int_equal(proj_rebuild(t.conn, proj_pg_projection(), t.log, 11, PROJ_POISON_DEAD_LETTER,
                                  true, &st, &eb),
                     0);
    assert_true(pgtest_count(t.conn, "SELECT count(*) FROM stockpot_old.recipes "
                                     "WHERE title = 'stale'") > 0);
    assert_int_equal(
        pgtest_count(t.conn, "SELECT count(*) FROM stockpot.recipes WHERE title = 'stale'"), 0);
    /* without it, no old tables are kept beside an older stockpot_old */
    assert_int_equal(proj_rebuild(t.conn, proj_pg_projection(), t.log, 11, PROJ_POISON_DEAD_LETTER,
                                  false, &st, &eb),
                     0);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM pg_tables WHERE schemaname "
                                          "IN ('stockpot_old', 'stockpot_next') AND tablename = "
                                          "'users'"),
                     1); /* the kept one of the rebuild before */
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), rebuilt, sizeof(rebuilt), &eb), 0);
    assert_string_equal(rebuilt, live);
    pgtest_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rebuild_equals_incremental),
        cmocka_unit_test(test_readers_see_old_view_during_rebuild),
        cmocka_unit_test(test_swap_under_reads_and_keep_old),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
