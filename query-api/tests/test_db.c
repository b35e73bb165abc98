/*
 * Integration tests of the asynchronous PostgreSQL pool (qry/db.h) against a real
 * PostgreSQL, on an event loop driven by the test thread: callbacks are never
 * synchronous, a lock makes queries time out through statement_timeout and the queue
 * deadline, a full queue is refused at once, an unreachable server fails fast, and
 * freeing the pool completes what is pending. Needs the PG* environment (pg_virtualenv).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "sp/log.h"
#include "sp/time.h"
#include "qry/db.h"
#include "qry_test_db.h"

#include "sp/banned.h"

#define TIMEOUT_MS 300

struct fixture {
    struct qry_test_db db;
    struct event_base *base;
};

static struct fixture fx;

/* What one query's callback saw. */
struct outcome {
    bool called;
    int err;
    int rows;
    char first[64]; /* first column of the first row */
    int64_t done_us;
};

static void on_result(void *ud, const PGresult *res, int err)
{
    struct outcome *o = ud;

    assert_false(o->called);
    o->called = true;
    o->err = err;
    o->done_us = sp_time_mono_us();
    if (err == 0) {
        assert_non_null(res);
        o->rows = PQntuples(res);
        if (o->rows > 0)
            snprintf(o->first, sizeof(o->first), "%s", PQgetvalue(res, 0, 0));
    } else {
        assert_null(res);
    }
}

/* Run the loop until every outcome in @p o[0..n) is called (at most 10 s). */
static void run_until(struct outcome *o, size_t n)
{
    int64_t give_up_us = sp_time_mono_us() + 10LL * 1000 * 1000;
    size_t done;

    do {
        event_base_loop(fx.base, EVLOOP_ONCE);
        done = 0;
        for (size_t i = 0; i < n; i++)
            done += o[i].called ? 1 : 0;
    } while (done < n && sp_time_mono_us() < give_up_us);
    assert_int_equal(done, n);
}

static struct qry_db *pool(const char *conninfo, int conns, size_t queue_max)
{
    struct qry_db_opts opts = {conninfo, conns, queue_max, TIMEOUT_MS};

    return qry_db_new(fx.base, &opts);
}

/* Run the loop until the pool is ready: connected, and its schema check done. */
static void wait_ready(struct qry_db *db)
{
    struct sp_buf why;
    int64_t give_up_us = sp_time_mono_us() + 5LL * 1000 * 1000;

    sp_buf_init(&why, 0);
    while (!qry_db_ready(db, &why) && sp_time_mono_us() < give_up_us) {
        sp_buf_reset(&why);
        event_base_loop(fx.base, EVLOOP_ONCE);
    }
    assert_true(qry_db_ready(db, &why));
    sp_buf_release(&why);
}

static int setup(void **state)
{
    (void)state;
    sp_log_setup(SP_LOG_ERROR, "query-api-test");
    qry_test_db_create(&fx.db, "qry_db");
    qry_test_db_user(&fx.db, 1001, "alice", 1);
    qry_test_db_recipe(&fx.db, 2001, 1001, "Soup", "soup", 1);
    fx.base = event_base_new();
    assert_non_null(fx.base);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    event_base_free(fx.base);
    qry_test_db_drop(&fx.db);
    return 0;
}

static void test_async_result(void **state)
{
    struct qry_db *db = pool(fx.db.conninfo, 2, 8);
    struct outcome o[3] = {0};

    (void)state;
    qry_db_query(db, QRY_STMT_USER, (const char *const[]){"1001"}, on_result, &o[0]);
    qry_db_query(db, QRY_STMT_RECIPE, (const char *const[]){"2001"}, on_result, &o[1]);
    qry_db_query(db, QRY_STMT_USER, (const char *const[]){"999"}, on_result, &o[2]);
    assert_false(o[0].called || o[1].called || o[2].called); /* never synchronous */
    run_until(o, 3);
    assert_int_equal(o[0].err, 0);
    assert_int_equal(o[0].rows, 1);
    assert_string_equal(o[0].first, "1"); /* version */
    assert_int_equal(o[1].err, 0);
    assert_int_equal(o[1].rows, 1);
    assert_int_equal(o[2].err, 0);
    assert_int_equal(o[2].rows, 0);
    wait_ready(db);
    qry_db_free(db);
}

/* One connection, a queue of 2, recipes locked: 1 runs, 2 wait, the 4th is refused. */
static void test_lock_timeout_and_full_queue(void **state)
{
    struct qry_db *db = pool(fx.db.conninfo, 1, 2);
    const char *const recipe[] = {"2001"};
    struct outcome warm = {0};
    struct outcome o[4] = {0};
    int64_t start_us;

    (void)state;
    qry_db_query(db, QRY_STMT_USER, (const char *const[]){"1001"}, on_result, &warm);
    run_until(&warm, 1);
    assert_int_equal(warm.err, 0);
    wait_ready(db); /* the schema check no longer holds the one connection */
    qry_test_db_exec(&fx.db, "BEGIN; LOCK TABLE stockpot.recipes IN ACCESS EXCLUSIVE MODE");
    start_us = sp_time_mono_us();
    for (int i = 0; i < 4; i++)
        qry_db_query(db, QRY_STMT_RECIPE, recipe, on_result, &o[i]);
    assert_int_equal(qry_db_queued(db), 2);
    run_until(o, 4);
    qry_test_db_exec(&fx.db, "ROLLBACK");
    assert_int_equal(o[3].err, SP_EUNAVAIL); /* queue full: at once */
    assert_true(o[3].done_us - start_us < 100 * 1000LL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o[i].err, SP_ETIMEDOUT);
        assert_true(o[i].done_us - start_us >= (TIMEOUT_MS - 20) * 1000LL);
        assert_true(o[i].done_us - start_us < (TIMEOUT_MS + 500) * 1000LL);
    }
    /* the connection is still good once the lock is gone */
    memset(o, 0, sizeof(o));
    qry_db_query(db, QRY_STMT_RECIPE, recipe, on_result, &o[0]);
    run_until(o, 1);
    assert_int_equal(o[0].err, 0);
    assert_int_equal(o[0].rows, 1);
    qry_db_free(db);
}

/* Nothing listens on port 1: every query fails fast, before and after the first attempt. */
static void test_unreachable(void **state)
{
    struct qry_db *db = pool("host=127.0.0.1 port=1 dbname=x", 2, 8);
    struct outcome o[2] = {0};
    struct sp_buf why;
    int64_t start_us = sp_time_mono_us();

    (void)state;
    qry_db_query(db, QRY_STMT_USER, (const char *const[]){"1"}, on_result, &o[0]);
    run_until(o, 1);
    qry_db_query(db, QRY_STMT_USER, (const char *const[]){"1"}, on_result, &o[1]);
    run_until(o, 2);
    assert_int_equal(o[0].err, SP_EUNAVAIL);
    assert_int_equal(o[1].err, SP_EUNAVAIL);
    assert_true(sp_time_mono_us() - start_us < 200 * 1000LL);
    sp_buf_init(&why, 0);
    assert_false(qry_db_ready(db, &why));
    assert_non_null(strstr(why.data, "unreachable"));
    sp_buf_release(&why);
    qry_db_free(db);
}

/* Freeing the pool completes running and waiting queries with SP_EUNAVAIL. */
static void test_free_pending(void **state)
{
    struct qry_db *db = pool(fx.db.conninfo, 1, 8);
    struct outcome o[3] = {0};

    (void)state;
    for (int i = 0; i < 3; i++)
        qry_db_query(db, QRY_STMT_USER, (const char *const[]){"1001"}, on_result, &o[i]);
    qry_db_free(db);
    for (int i = 0; i < 3; i++) {
        assert_true(o[i].called);
        assert_int_equal(o[i].err, SP_EUNAVAIL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_async_result),
        cmocka_unit_test(test_lock_timeout_and_full_queue),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_free_pending),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
