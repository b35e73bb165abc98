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

    assert_int_equal(
        proj_rebuild(t.conn, proj_pg_projection(), t.log, 13, PROJ_POISON_DEAD_LETTER, &st, &eb),
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
        proj_rebuild(t.conn, proj_pg_projection(), t.log, 13, PROJ_POISON_HALT, &st, &eb),
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
                               &job->st, &eb);
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
 * row, after it emptied the tables), readers are not blocked and see the old view.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rebuild_equals_incremental),
        cmocka_unit_test(test_readers_see_old_view_during_rebuild),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
