/*
 * Integration tests of Stockpot-After against a real PostgreSQL: satisfied at once,
 * satisfied by a checkpoint that advances while the request waits, a bad token, the
 * bounded wait ending in 503 + Retry-After, and an unreachable database. Needs the PG*
 * environment (pg_virtualenv).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "sp/time.h"
#include "qry_test_db.h"
#include "qry_test_srv.h"
#include "sp_test_http.h"

#include "sp/banned.h"

#define TIMEOUT_MS 1000

static struct qry_test_fx fx;

static void seed(struct qry_test_db *db)
{
    qry_test_db_user(db, 1001, "alice", 1);
    qry_test_db_recipe(db, 2001, 1001, "Soup", "soup", 1);
    qry_test_db_checkpoint(db, 10); /* events 0..9 applied */
}

static int setup(void **state)
{
    return qry_test_fx_setup(state, &fx, "qry_after", seed, TIMEOUT_MS);
}

static int get_after(const char *path, const char *token, struct sp_test_resp *resp)
{
    char header[128];
    const char *const headers[] = {header, NULL};

    snprintf(header, sizeof(header), "Stockpot-After: %s", token);
    return sp_test_http(fx.srv.port, "GET", path, headers, NULL, resp);
}

static void test_satisfied_now(void **state)
{
    struct sp_test_resp resp = {0};
    int64_t start_us = sp_time_mono_us();

    (void)state;
    assert_int_equal(get_after("/recipes/2001", "0:5", &resp), 200);
    sp_test_resp_release(&resp);
    assert_int_equal(get_after("/recipes/2001", "0:9", &resp), 200);
    sp_test_resp_release(&resp);
    assert_int_equal(get_after("/users/1001/recipes", "0:0", &resp), 200);
    assert_non_null(strstr(resp.body, "\"2001\""));
    sp_test_resp_release(&resp);
    assert_true(sp_time_mono_us() - start_us < 500 * 1000LL);
}

static void test_bad_token(void **state)
{
    /* "7:0" and "1:0": the embedded log has only partition 0 (400 at once, no 5 s wait) */
    static const char *const bad[] = {"garbage", "0:", ":5", "0:-1", "x:1", "7:0", "1:0"};
    int64_t start_us = sp_time_mono_us();
    struct sp_test_resp resp = {0};
    json_t *p;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(get_after("/recipes/2001", bad[i], &resp), 400);
        p = json_loadb(resp.body, resp.body_len, 0, NULL);
        assert_non_null(p);
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(p, "errors"), 0), "field")),
                            "Stockpot-After");
        json_decref(p);
        sp_test_resp_release(&resp);
    }
    assert_true(sp_time_mono_us() - start_us < 500 * 1000LL);
    assert_int_equal(get_after("/recipes/2001", "7:0", &resp), 400);
    assert_non_null(strstr(resp.body, "partition 7 does not exist"));
    sp_test_resp_release(&resp);
}

/* Another writer: after 200 ms, apply "event 15" (a new recipe) with its checkpoint. */
static void *late_projector(void *arg)
{
    struct timespec delay = {0, 200L * 1000 * 1000};
    PGconn *conn = PQconnectdb(fx.db.conninfo);
    PGresult *res;

    (void)arg;
    nanosleep(&delay, NULL);
    res = PQexec(conn, "BEGIN;"
                       "INSERT INTO stockpot.recipes VALUES (2002, 1001, 'Stew', '', '[\"x\"]',"
                       " '[\"y\"]', '{}', '{}', now(), now(), 1);"
                       "UPDATE stockpot.checkpoints SET next_offset = 16"
                       " WHERE projection = 'pg' AND partition = 0;"
                       "COMMIT");
    PQclear(res);
    PQfinish(conn);
    return NULL;
}

static void test_satisfied_later(void **state)
{
    struct sp_test_resp resp = {0};
    pthread_t writer;
    int64_t waited_us;
    int64_t start_us;

    (void)state;
    /* without the token, the new recipe is not there yet */
    assert_int_equal(sp_test_http(fx.srv.port, "GET", "/recipes/2002", NULL, NULL, &resp), 404);
    sp_test_resp_release(&resp);
    assert_int_equal(pthread_create(&writer, NULL, late_projector, NULL), 0);
    start_us = sp_time_mono_us();
    assert_int_equal(get_after("/recipes/2002", "0:15", &resp), 200);
    waited_us = sp_time_mono_us() - start_us;
    assert_int_equal(pthread_join(writer, NULL), 0);
    assert_non_null(strstr(resp.body, "\"Stew\""));
    sp_test_resp_release(&resp);
    assert_true(waited_us >= 150 * 1000LL);
    assert_true(waited_us < TIMEOUT_MS * 1000LL);
}

static void test_timeout(void **state)
{
    struct sp_test_resp resp = {0};
    int64_t start_us = sp_time_mono_us();
    int64_t waited_us;
    json_t *p;

    (void)state;
    assert_int_equal(get_after("/recipes/2001", "0:1000", &resp), 503);
    waited_us = sp_time_mono_us() - start_us;
    assert_true(waited_us >= (TIMEOUT_MS - 10) * 1000LL);
    assert_true(waited_us < (TIMEOUT_MS + 2000) * 1000LL);
    assert_string_equal(sp_test_resp_header(&resp, "Retry-After"), "1");
    assert_non_null(strstr(sp_test_resp_header(&resp, "Content-Type"), "application/problem+json"));
    p = json_loadb(resp.body, resp.body_len, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(p, "status")), 503);
    json_decref(p);
    sp_test_resp_release(&resp);
    assert_true(sp_metrics_value(fx.srv.metrics, "stockpot_query_after_timeouts_total", "") == 1.0);
    assert_int_equal(sp_test_http(fx.srv.port, "GET", "/metrics", NULL, NULL, &resp), 200);
    assert_non_null(strstr(resp.body, "stockpot_query_after_wait_seconds_count"));
    sp_test_resp_release(&resp);
}

/* A server whose database does not exist answers 503 + Retry-After and is not ready. */
static void test_db_unavailable(void **state)
{
    struct qry_test_srv down = {0};
    struct sp_test_resp resp = {0};

    (void)state;
    qry_test_srv_start(&down, "dbname=qry_no_such_database", TIMEOUT_MS);
    assert_int_equal(sp_test_http(down.port, "GET", "/recipes/2001", NULL, NULL, &resp), 503);
    assert_string_equal(sp_test_resp_header(&resp, "Retry-After"), "1");
    sp_test_resp_release(&resp);
    assert_int_equal(get_after("/recipes/2001", "0:1", &resp), 200); /* the good server */
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(down.port, "GET", "/readyz", NULL, NULL, &resp), 503);
    sp_test_resp_release(&resp);
    qry_test_srv_stop(&down);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_satisfied_now),   cmocka_unit_test(test_bad_token),
        cmocka_unit_test(test_satisfied_later), cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_db_unavailable),
    };

    return cmocka_run_group_tests(tests, setup, qry_test_fx_teardown);
}
