/*
 * The Stockpot-Dev-Time request header over real HTTP (cmd/app.h): in mode = dev it sets
 * the envelope time of every event its request appends, read back from the embedded log;
 * a malformed value, or any value in production mode, is answered 400 problem+json naming
 * the header and appends nothing; tokens and sessions stay on the real clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/thread.h>
#include <jansson.h>

#include "cmd/app.h"
#include "app_priv.h" /* the app's log handle, to read the events back */
#include "sp/log.h"
#include "sp/time.h"
#include "sp_test_http.h"
#include "cmd_test.h"

#include "sp/banned.h"

#define HDR "Stockpot-Dev-Time: "

static int setup(void **state)
{
    struct cmd_test_fx *fx = calloc(1, sizeof(*fx));
    cmd_test_fx_init(fx, "/tmp/cmd-devtime-XXXXXX");
    cmd_test_fx_use_lmdb(fx);
    cmd_test_app_start(fx);
    *state = fx;
    return 0;
}

/* ---- helpers ---- */

static void register_body(const char *name, char *out, size_t size)
{
    snprintf(out, size,
             "{\"username\":\"%s\",\"email\":\"%s@example.org\",\"password\":\"correct horse\"}",
             name, name);
}

/* Register @p name with the headers @p hdrs (NULL: none). */
static void register_user(struct cmd_test_fx *fx, const char *name, const char *const *hdrs)
{
    char body[256];
    json_t *r = NULL;
    register_body(name, body, sizeof(body));
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/register", hdrs, body, &r), 201);
    json_decref(r);
}

/* Log @p name in with the headers @p hdrs; "Authorization: Bearer ..." into @p auth. */
static void
login(struct cmd_test_fx *fx, const char *name, const char *const *hdrs, char *auth, size_t size)
{
    char body[256];
    json_t *r = NULL;
    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"correct horse\"}", name);
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/login", hdrs, body, &r), 200);
    snprintf(auth, size, "Authorization: Bearer %s", cmd_test_jstr(r, "access_token"));
    json_decref(r);
}

/*
 * Send a request that must be refused: 400 application/problem+json whose errors[] names
 * Stockpot-Dev-Time and whose detail contains @p detail.
 */
static void expect_refused(struct cmd_test_fx *fx,
                           const char *method,
                           const char *path,
                           const char *const *hdrs,
                           const char *body,
                           const char *detail)
{
    struct sp_test_resp resp = {0};
    int status = sp_test_http(fx->port, method, path, hdrs, body, &resp);
    const char *ct = sp_test_resp_header(&resp, "Content-Type");
    json_t *p = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
    if (status != 400 || !ct || strcmp(ct, "application/problem+json") != 0 || !p ||
        !cmd_test_names_field(p, "Stockpot-Dev-Time") ||
        !strstr(cmd_test_jstr(p, "detail"), detail))
        fail_msg("%s %s with %s: want 400 problem naming Stockpot-Dev-Time (\"%s\"), got %d "
                 "%s: %s",
                 method, path, hdrs[0], detail, status, ct ? ct : "-", resp.body);
    json_decref(p);
    sp_test_resp_release(&resp);
}

struct collect {
    json_t *events; /* [{type, time}] in log order */
};

static int collect_cb(const struct es_log_record *rec, void *ud)
{
    struct collect *col = ud;
    struct es_event ev;
    char t[32];
    es_event_init(&ev);
    assert_int_equal(es_log_record_decode(rec, &ev, NULL), 0);
    sp_time_format_rfc3339(ev.time_us, t, sizeof(t));
    json_array_append_new(col->events,
                          json_pack("{s:s, s:s, s:I, s:O}", "type", ev.type, "time", t, "time_us",
                                    (json_int_t)ev.time_us, "data", ev.data));
    es_event_release(&ev);
    return 0;
}

/* Every event in the log, in order (owned): [{type, time, time_us, data}]. */
static json_t *all_events(struct cmd_test_fx *fx)
{
    struct collect col = {.events = json_array()};
    int64_t next = 0;
    cmd_test_serve_stop(fx);
    assert_int_equal(es_log_read(fx->app->log, 0, 0, 1000000, collect_cb, &col, &next, NULL), 0);
    cmd_test_serve_start(fx);
    return col.events;
}

/* The @p nth (0-based) event of @p type in @p evs (borrowed); fails if there is none. */
static json_t *nth(json_t *evs, const char *type, size_t nth)
{
    size_t i;
    json_t *e;
    json_array_foreach(evs, i, e) {
        if (strcmp(cmd_test_jstr(e, "type"), type) == 0 && nth-- == 0)
            return e;
    }
    fail_msg("no %s event number %zu in the log", type, nth);
    return NULL;
}

/* The @p nth event of @p type was stamped @p want (RFC 3339 with µs). */
static void assert_time(json_t *evs, const char *type, size_t i, const char *want)
{
    assert_string_equal(cmd_test_jstr(nth(evs, type, i), "time"), want);
}

/* The @p nth event of @p type was stamped by the clock: within a minute of now. */
static void assert_clock_time(json_t *evs, const char *type, size_t i)
{
    json_int_t t = json_integer_value(json_object_get(nth(evs, type, i), "time_us"));
    assert_true(llabs(sp_time_now_us() - (long long)t) < 60 * INT64_C(1000000));
}

/* RFC 3339 timestamp @p s as µs since the epoch. */
static int64_t ts(const char *s)
{
    int64_t us = 0;
    assert_int_equal(sp_time_parse_rfc3339(s, &us), 0);
    return us;
}

/* ---- tests ---- */

/* Every command route stamps its events; tokens and sessions stay on the real clock. */
static void test_dev_time_stamps_events(void **state)
{
    struct cmd_test_fx *fx = *state;
    char auth[1024], bob_auth[1024], path[64], bob_path[64];
    json_t *r = NULL;
    const char *h_reg[] = {HDR "2024-03-01T08:00:00Z", NULL};
    const char *h_login[] = {HDR "2024-03-01T08:05:30.25Z", NULL};

    register_user(fx, "early", h_reg);
    login(fx, "early", h_login, auth, sizeof(auth));
    register_user(fx, "bob", NULL);
    login(fx, "bob", NULL, bob_auth, sizeof(bob_auth));
    /* 7 fraction digits are truncated to µs; the session, started "in 2024", is live */
    const char *h_create[] = {auth, HDR "2024-03-02T12:00:00.1234567Z", NULL};
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h_create,
                                   "{\"title\":\"t\",\"ingredients\":[\"a\"],\"steps\":[\"b\"]}",
                                   &r),
                     201);
    snprintf(path, sizeof(path), "/recipes/%s", cmd_test_jstr(r, "recipe_id"));
    json_decref(r);
    /* the user id is in the log; the follow and like are stamped with lower-case "z" */
    json_t *evs = all_events(fx);
    snprintf(bob_path, sizeof(bob_path), "/users/%s/follow",
             cmd_test_jstr(json_object_get(nth(evs, "UserRegistered", 1), "data"), "user_id"));
    json_decref(evs);
    const char *h_follow[] = {auth, HDR "2024-03-03t00:00:00z", NULL};
    assert_int_equal(cmd_test_call(fx, "POST", bob_path, h_follow, NULL, NULL), 200);
    char like[80];
    snprintf(like, sizeof(like), "%s/like", path);
    const char *h_like[] = {bob_auth, HDR "2024-03-03T09:00:00.5Z", NULL};
    assert_int_equal(cmd_test_call(fx, "POST", like, h_like, NULL, NULL), 200);
    const char *h_del[] = {auth, HDR "2024-03-04T00:00:00Z", NULL};
    assert_int_equal(cmd_test_call(fx, "DELETE", path, h_del, NULL, NULL), 200);

    /* JWT expiry is on the real clock: the token validates and expires after now */
    const char *h_auth[] = {auth, NULL};
    assert_int_equal(cmd_test_call(fx, "GET", "/auth/validate", h_auth, NULL, &r), 200);
    assert_true(ts(cmd_test_jstr(r, "expires_at")) > sp_time_now_us());
    json_decref(r);

    evs = all_events(fx);
    assert_time(evs, "UserRegistered", 0, "2024-03-01T08:00:00.000000Z");
    assert_clock_time(evs, "UserRegistered", 1);
    assert_time(evs, "SessionStarted", 0, "2024-03-01T08:05:30.250000Z");
    assert_clock_time(evs, "SessionStarted", 1);
    assert_time(evs, "RecipeCreated", 0, "2024-03-02T12:00:00.123456Z");
    assert_time(evs, "UserFollowed", 0, "2024-03-03T00:00:00.000000Z");
    assert_time(evs, "RecipeLiked", 0, "2024-03-03T09:00:00.500000Z");
    assert_time(evs, "RecipeDeleted", 0, "2024-03-04T00:00:00.000000Z");
    /* the refresh token's expiry in SessionStarted is the real clock's */
    json_t *started = json_object_get(nth(evs, "SessionStarted", 0), "data");
    assert_true(ts(cmd_test_jstr(started, "expires_at")) > sp_time_now_us());
    assert_int_equal(json_array_size(evs), 8);
    json_decref(evs);
}

/* A malformed value: 400 problem+json naming the header, nothing appended. */
static void test_dev_time_bad_values(void **state)
{
    struct cmd_test_fx *fx = *state;
    static const char *const bad[] = {
        HDR "yesterday",
        HDR "",
        HDR "2026-11-03T10:15:00",           /* no zone */
        HDR "2026-11-03T10:15:00+00:00",     /* an offset, not "Z" */
        HDR "2026-11-03T10:15:00.Z",         /* empty fraction */
        HDR "2026-02-30T00:00:00Z",          /* no such day */
        HDR "2026-11-03T24:00:00Z",          /* no such hour */
        HDR "2026-11-03T10:15:00Z tomorrow", /* trailing text */
        HDR "1969-12-31T23:59:59Z",          /* before the epoch */
        HDR "1762164900",                    /* Unix seconds */
    };
    char body[256], auth[1024];
    register_user(fx, "cook", NULL);
    login(fx, "cook", NULL, auth, sizeof(auth));
    double before = cmd_test_metric(fx, "stockpot_events_appended_total", "");
    register_body("newbie", body, sizeof(body));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *h_anon[] = {bad[i], NULL};
        const char *h_auth[] = {bad[i], auth, NULL};
        expect_refused(fx, "POST", "/auth/register", h_anon, body, "bad Stockpot-Dev-Time header");
        expect_refused(fx, "POST", "/recipes", h_auth,
                       "{\"title\":\"t\",\"ingredients\":[\"a\"],\"steps\":[\"b\"]}",
                       "bad Stockpot-Dev-Time header");
    }
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == before);
    /* nothing was taken: the name registers now */
    register_user(fx, "newbie", NULL);
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == before + 1);
}

/* Production mode refuses the header, even a well-formed one, and appends nothing. */
static void test_dev_time_refused_in_production(void **state)
{
    struct cmd_test_fx *fx = *state;
    char body[256], auth[1024];
    const char *h_good[] = {HDR "2026-11-03T10:15:00Z", NULL};
    const char *h_bad[] = {HDR "soon", NULL};
    cmd_test_app_stop(fx);
    cmd_test_cfg_set(fx, "mode", "production");
    cmd_test_app_start(fx);

    register_body("prod", body, sizeof(body));
    expect_refused(fx, "POST", "/auth/register", h_good, body, "accepted in dev mode only");
    expect_refused(fx, "POST", "/auth/register", h_bad, body, "accepted in dev mode only");
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == 0);
    register_user(fx, "prod", NULL);
    expect_refused(fx, "POST", "/auth/login", h_good,
                   "{\"username\":\"prod\",\"password\":\"correct horse\"}",
                   "accepted in dev mode only");
    login(fx, "prod", NULL, auth, sizeof(auth));
    const char *h_auth[] = {HDR "2026-11-03T10:15:00Z", auth, NULL};
    expect_refused(fx, "POST", "/recipes", h_auth,
                   "{\"title\":\"t\",\"ingredients\":[\"a\"],\"steps\":[\"b\"]}",
                   "accepted in dev mode only");
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == 2);
    json_t *evs = all_events(fx);
    assert_int_equal(json_array_size(evs), 2);
    assert_clock_time(evs, "UserRegistered", 0);
    assert_clock_time(evs, "SessionStarted", 0);
    json_decref(evs);
}

int main(void)
{
    evthread_use_pthreads();
    sp_log_setup(SP_LOG_WARN, "test-command-dev-time");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dev_time_stamps_events, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_dev_time_bad_values, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_dev_time_refused_in_production, setup,
                                        cmd_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
