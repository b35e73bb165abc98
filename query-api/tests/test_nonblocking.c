/*
 * Integration tests that the query API's event loop never waits for PostgreSQL: with
 * stockpot.recipes locked, /healthz and /users answer at once while /recipes/{id} ends
 * in 503 after the statement timeout; a PostgreSQL outage gives fast 503s and the API
 * recovers afterwards; an unreachable server gives fast 503s; 50 parallel requests are
 * all answered correctly. Needs the PG* environment (pg_virtualenv).
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "sp/time.h"
#include "qry/db.h"
#include "qry_test_db.h"
#include "qry_test_srv.h"
#include "sp_test_http.h"

#include "sp/banned.h"

#define ALICE     1001
#define FIRST_ID  2001 /* recipes 2001..2010 by alice */
#define N_RECIPES 10
#define N_CLIENTS 50

static struct qry_test_fx fx;

static void seed(struct qry_test_db *db)
{
    qry_test_db_user(db, ALICE, "alice", 2);
    for (int i = 0; i < N_RECIPES; i++) {
        char title[32];

        snprintf(title, sizeof(title), "Recipe %d", FIRST_ID + i);
        qry_test_db_recipe(db, FIRST_ID + i, ALICE, title, "soup", 1);
    }
    qry_test_db_checkpoint(db, 10);
}

static int setup(void **state)
{
    return qry_test_fx_setup(state, &fx, "qry_nonblocking", seed, 1000);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};

    nanosleep(&ts, NULL);
}

/* GET @p path on @p port; @return the status, and the time taken in *took_us. */
static int timed_get(int port, const char *path, struct sp_test_resp *resp, int64_t *took_us)
{
    int64_t start_us = sp_time_mono_us();
    int status = sp_test_http(port, "GET", path, NULL, NULL, resp);

    *took_us = sp_time_mono_us() - start_us;
    return status;
}

/* GET that must answer @p want within @p max_ms. */
static void get_fast(int port, const char *path, int want, int64_t max_ms)
{
    struct sp_test_resp resp = {0};
    int64_t took_us;
    int status = timed_get(port, path, &resp, &took_us);

    if (status != want || took_us >= max_ms * 1000)
        fail_msg("GET %s: %d in %" PRId64 " us, want %d within %" PRId64 " ms", path, status,
                 took_us, want, max_ms);
    if (want == 503)
        assert_string_equal(sp_test_resp_header(&resp, "Retry-After"), "1");
    sp_test_resp_release(&resp);
}

struct slow_get {
    const char *path;
    int status;
    char retry_after[8];
    int64_t took_us;
};

static void *slow_get_thread(void *arg)
{
    struct slow_get *g = arg;
    struct sp_test_resp resp = {0};
    const char *retry;

    g->status = timed_get(fx.srv.port, g->path, &resp, &g->took_us);
    retry = sp_test_resp_header(&resp, "Retry-After");
    snprintf(g->retry_after, sizeof(g->retry_after), "%s", retry != NULL ? retry : "");
    sp_test_resp_release(&resp);
    return NULL;
}

static void test_lock_does_not_block(void **state)
{
    struct slow_get g = {.path = "/recipes/2001"};
    pthread_t thread;

    (void)state;
    get_fast(fx.srv.port, "/recipes/2001", 200, 1000); /* warm: connections are up */
    qry_test_db_exec(&fx.db, "BEGIN; LOCK TABLE stockpot.recipes IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(pthread_create(&thread, NULL, slow_get_thread, &g), 0);
    sleep_ms(200); /* the recipe query now waits for the lock */
    get_fast(fx.srv.port, "/healthz", 200, 100);
    get_fast(fx.srv.port, "/users/1001", 200, 500);
    get_fast(fx.srv.port, "/metrics", 200, 100);
    get_fast(fx.srv.port, "/healthz", 200, 100);
    assert_int_equal(pthread_join(thread, NULL), 0);
    qry_test_db_exec(&fx.db, "ROLLBACK");
    assert_int_equal(g.status, 503);
    assert_string_equal(g.retry_after, "1");
    assert_true(g.took_us >= (QRY_DB_TIMEOUT_MS - 50) * 1000LL);
    assert_true(g.took_us < (QRY_DB_TIMEOUT_MS + 1500) * 1000LL);
    get_fast(fx.srv.port, "/recipes/2001", 200, 500);
}

struct client {
    pthread_barrier_t *start;
    int n;
    int status;
    bool body_ok;
};

/* Client n asks for recipe n % 10, user 1001, a list, or a recipe with a token. */
static void *client_thread(void *arg)
{
    const char *const after[] = {"Stockpot-After: 0:5", NULL};
    struct client *c = arg;
    struct sp_test_resp resp = {0};
    char path[64];
    char want[64];
    int id = FIRST_ID + c->n % N_RECIPES;

    snprintf(path, sizeof(path), "/recipes/%d", id);
    snprintf(want, sizeof(want), "\"title\":\"Recipe %d\"", id);
    if (c->n % 4 == 1) {
        snprintf(path, sizeof(path), "/users/%d", ALICE);
        snprintf(want, sizeof(want), "\"username\":\"alice\"");
    } else if (c->n % 4 == 2) {
        snprintf(path, sizeof(path), "/recipes?tag=soup&limit=3");
        snprintf(want, sizeof(want), "\"id\":\"2010\"");
    }
    pthread_barrier_wait(c->start);
    c->status = sp_test_http(fx.srv.port, "GET", path, c->n % 4 == 3 ? after : NULL, NULL, &resp);
    c->body_ok = resp.body != NULL && strstr(resp.body, want) != NULL;
    sp_test_resp_release(&resp);
    return NULL;
}

static void test_parallel(void **state)
{
    struct client clients[N_CLIENTS];
    pthread_t threads[N_CLIENTS];
    pthread_barrier_t start;

    (void)state;
    assert_int_equal(pthread_barrier_init(&start, NULL, N_CLIENTS), 0);
    for (int i = 0; i < N_CLIENTS; i++) {
        clients[i] = (struct client){.start = &start, .n = i};
        assert_int_equal(pthread_create(&threads[i], NULL, client_thread, &clients[i]), 0);
    }
    for (int i = 0; i < N_CLIENTS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < N_CLIENTS; i++) {
        if (clients[i].status != 200 || !clients[i].body_ok)
            fail_msg("client %d: status %d, body ok %d", i, clients[i].status, clients[i].body_ok);
    }
}

static void allow_connections(bool allow)
{
    char sql[160];

    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS %s", fx.db.name,
             allow ? "true" : "false");
    qry_test_db_admin_exec(sql);
}

/* Refuse new connections and end the existing ones: an outage, then its end. */
static void test_outage_and_recovery(void **state)
{
    struct sp_test_resp resp = {0};
    int64_t give_up_us;
    int status = 0;

    (void)state;
    get_fast(fx.srv.port, "/recipes/2002", 200, 1000);
    allow_connections(false);
    qry_test_db_exec(&fx.db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = current_database() AND pid <> pg_backend_pid()");
    for (int i = 0; i < 5; i++) {
        get_fast(fx.srv.port, "/recipes/2002", 503, 300);
        get_fast(fx.srv.port, "/users/1001", 503, 300);
        get_fast(fx.srv.port, "/healthz", 200, 100);
        sleep_ms(50);
    }
    get_fast(fx.srv.port, "/readyz", 503, 100);
    allow_connections(true);
    give_up_us = sp_time_mono_us() + 5LL * 1000 * 1000; /* backoff is at most 2 s */
    while (status != 200 && sp_time_mono_us() < give_up_us) {
        sleep_ms(50);
        status = sp_test_http(fx.srv.port, "GET", "/recipes/2002", NULL, NULL, &resp);
        sp_test_resp_release(&resp);
    }
    assert_int_equal(status, 200);
    get_fast(fx.srv.port, "/users/1001", 200, 500);
    get_fast(fx.srv.port, "/readyz", 200, 100);
}

/* Nothing listens on the configured port: fast 503s, /healthz fine, not ready. */
static void test_unreachable(void **state)
{
    const char *const after[] = {"Stockpot-After: 0:1", NULL};
    struct qry_test_srv down = {0};
    struct sp_test_resp resp = {0};
    int64_t start_us;

    (void)state;
    qry_test_srv_start(&down, "host=127.0.0.1 port=1 dbname=x connect_timeout=10", 1000);
    for (int i = 0; i < 5; i++) {
        get_fast(down.port, "/recipes/2001", 503, 300);
        get_fast(down.port, "/recipes?limit=3", 503, 300);
        get_fast(down.port, "/healthz", 200, 100);
    }
    start_us = sp_time_mono_us();
    assert_int_equal(sp_test_http(down.port, "GET", "/recipes/2001", after, NULL, &resp), 503);
    assert_true(sp_time_mono_us() - start_us < 300 * 1000LL);
    sp_test_resp_release(&resp);
    get_fast(down.port, "/readyz", 503, 100);
    qry_test_srv_stop(&down);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_does_not_block),
        cmocka_unit_test(test_parallel),
        cmocka_unit_test(test_outage_and_recovery),
        cmocka_unit_test(test_unreachable),
    };

    return cmocka_run_group_tests(tests, setup, qry_test_fx_teardown);
}
