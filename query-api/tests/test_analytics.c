/*
 * Integration tests of the analytics routes (qry/analytics.h): a real query API server and
 * PostgreSQL (sessions), over an analytics view folded in the test from a small hand-made
 * set of events (proj/analytics.h) into <views.dir>/analytics: 503 before the view exists,
 * 401 / 403 / 400 in that order, the numbers and JSON shapes of the four routes, default
 * and capped ranges, Stockpot-After on the view's checkpoints, a rebuild swapping a new
 * generation in, and the metrics. Needs the PG* environment (pg_virtualenv).
 *
 * The events (D0 = Monday 2026-11-02, all in partition 0, offsets 0..10):
 *   D0 10:00 U1 registers, 10:30 U1 logs in, 11:00 U1 creates R100 "Soup", 12:00 U2 registers
 *   D1 09:00 U2 likes R100, 10:00 U2 comments on R100
 *   D7 08:00 U3 registers, 09:00 U3 likes R100
 *   D8 10:00 U1 creates R200 "Stew", 11:00 U3 comments on R200, 12:00 U3 unlikes R100
 * so: active per day D0..D8 = 2 1 0 0 0 0 0 1 2 (3 distinct); R100 all-time score
 * 2 likes + 2 x 1 comment - 1 unlike = 3, R200 2; the signup cohort of D0 has U1 and U2,
 * of which U1 is active in week 1; the cohort of D7 is U3.
 */
/* nftw() needs X/Open 5. NOLINTNEXTLINE(bugprone-*,cert-*) */
#define _XOPEN_SOURCE 700
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ftw.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "es/catalogue.h"
#include "es/event.h"
#include "proj/analytics.h"
#include "proj/view.h"
#include "sp/jwt.h"
#include "sp/time.h"
#include "qry_test_db.h"
#include "qry_test_srv.h"
#include "sp_test_http.h"

#include "sp/banned.h"

#define TIMEOUT_MS 1000
#define MAP_BYTES  ((size_t)64 << 20)

enum { U1 = 1001, U2 = 1002, U3 = 1003, U4 = 1004, R100 = 100, R200 = 200, SID = 9001 };

/* One event of the example: who did what to which recipe, when (day after D0, hour). */
struct an_ev {
    const char *type;
    int64_t actor;
    int64_t recipe; /* RecipeCreated/Liked/Unliked/Commented; the session of SessionStarted */
    int day, hour;
};

static const struct an_ev example[] = {
    {"UserRegistered", U1, 0, 0, 10},   {"SessionStarted", U1, SID, 0, 10},
    {"RecipeCreated", U1, R100, 0, 11}, {"UserRegistered", U2, 0, 0, 12},
    {"RecipeLiked", U2, R100, 1, 9},    {"RecipeCommented", U2, R100, 1, 10},
    {"UserRegistered", U3, 0, 7, 8},    {"RecipeLiked", U3, R100, 7, 9},
    {"RecipeCreated", U1, R200, 8, 10}, {"RecipeCommented", U3, R200, 8, 11},
    {"RecipeUnliked", U3, R100, 8, 12},
};

#define N_EXAMPLE ((int64_t)(sizeof(example) / sizeof(example[0])))

static struct {
    struct qry_test_fx fx;
    char dir[64];           /* views.dir */
    char view_dir[96];      /* <dir>/analytics */
    struct proj_view *view; /* the "projector": written by the test */
    struct proj_analytics_writer *w;
    int32_t d0;
    int64_t next_offset; /* events folded into the view */
    char *op;            /* an operator's access token, owned */
    char *user;          /* a user's (no role), owned */
} t;

static char *idstr(int64_t id, char *buf)
{
    snprintf(buf, 24, "%lld", (long long)id);
    return buf;
}

/* R100 "Soup", R200 "Stew", any other 200 x "猫" (600 bytes). */
static const char *title_of(int64_t recipe)
{
    static char cats[601];

    if (recipe == R100 || recipe == R200)
        return recipe == R100 ? "Soup" : "Stew";
    for (int i = 0; i < 200; i++)
        memcpy(cats + 3 * i, "猫", 3);
    return cats;
}

/* The payload of @p e, and its stream into @p stream. */
static json_t *ev_data(const struct an_ev *e, int64_t offset, char *stream, size_t size)
{
    char a[24], r[24], c[24], author[24];

    idstr(e->actor, a);
    idstr(e->recipe, r);
    idstr(7000 + offset, c);
    if (strcmp(e->type, "UserRegistered") == 0) {
        snprintf(stream, size, "user-%s", a);
        return json_pack("{s:s, s:s, s:s, s:s}", "user_id", a, "username", a, "email",
                         "u@example.org", "password_hash",
                         "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA");
    }
    if (strcmp(e->type, "SessionStarted") == 0) {
        snprintf(stream, size, "session-%s", r);
        return json_pack("{s:s, s:s, s:s, s:s}", "session_id", r, "user_id", a, "refresh_hash",
                         "0123456789012345678901234567890123456789012345678901234567890123",
                         "expires_at", "2030-01-01T00:00:00.000000Z");
    }
    if (strcmp(e->type, "RecipeCreated") == 0) {
        snprintf(stream, size, "recipe-%s", r);
        return json_pack("{s:s, s:s, s:s, s:s, s:[s], s:[s], s:[], s:[]}", "recipe_id", r,
                         "author_id", a, "title", title_of(e->recipe), "description", "",
                         "ingredients", "water", "steps", "boil", "tags", "image_media_ids");
    }
    if (strcmp(e->type, "RecipeCommented") == 0) {
        snprintf(stream, size, "comment-%s", c);
        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "comment_id", c, "recipe_id", r, "user_id", a,
                         "content", "nice", "recipe_author_id", idstr(U1, author));
    }
    snprintf(stream, size, "user-%s", a); /* RecipeLiked, RecipeUnliked */
    return json_pack("{s:s, s:s, s:s}", "user_id", a, "recipe_id", r, "recipe_author_id",
                     idstr(U1, author));
}

/* Fold @p n events of @p evs into @p view at offsets next_offset.., with the checkpoint. */
static void fold(struct proj_view *view, const struct an_ev *evs, int64_t n)
{
    struct sp_errbuf eb = {{0}, {0}};
    MDB_txn *txn;
    char stream[64], actor[24];

    assert_int_equal(mdb_txn_begin(proj_view_env(view), NULL, 0, &txn), 0);
    assert_int_equal(proj_analytics_writer_open(t.w, txn, &eb), 0);
    for (int64_t i = 0; i < n; i++) {
        struct es_event ev;
        json_t *data = ev_data(&evs[i], t.next_offset, stream, sizeof(stream));

        es_event_init(&ev);
        assert_int_equal(es_event_make(&ev, evs[i].type, stream, 1, idstr(evs[i].actor, actor),
                                       NULL, NULL, data),
                         0);
        ev.time_us = (int64_t)(t.d0 + evs[i].day) * PROJ_ANALYTICS_DAY_US +
                     evs[i].hour * PROJ_ANALYTICS_HOUR_US;
        ev.pos.partition = 0;
        ev.pos.offset = t.next_offset++;
        if (es_event_check(&ev, NULL, &eb) != 0 || proj_analytics_fold(t.w, txn, &ev, &eb) != 0)
            fail_msg("event %s: %s", evs[i].type, eb.msg);
        es_event_release(&ev);
    }
    assert_int_equal(proj_analytics_flush(t.w, txn, &eb), 0);
    assert_int_equal(proj_view_checkpoint_put(view, txn, 0, t.next_offset, &eb), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

static int setup(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_view_opts opts = {t.view_dir, PROJ_ANALYTICS_FORMAT, PROJ_ANALYTICS_MAX_DBS,
                                  MAP_BYTES};

    snprintf(t.dir, sizeof(t.dir), "/tmp/qry-analytics-XXXXXX");
    assert_non_null(mkdtemp(t.dir));
    snprintf(t.view_dir, sizeof(t.view_dir), "%s/analytics", t.dir);
    assert_int_equal(proj_analytics_date_parse("2026-11-02", &t.d0), 0);
    assert_int_equal(proj_analytics_writer_new(&t.w), 0);
    if (proj_view_open(&opts, PROJ_VIEW_WRITE, &t.view, &eb) != 0)
        fail_msg("proj_view_open: %s", eb.msg);
    fold(t.view, example, N_EXAMPLE);
    /* the server reads <views.dir>/analytics (config from the environment) */
    assert_int_equal(setenv("STOCKPOT_VIEWS_DIR", t.dir, 1), 0);
    qry_test_fx_setup(state, &t.fx, "qry_analytics", NULL, TIMEOUT_MS);
    qry_test_db_exec(&t.fx.db, "INSERT INTO stockpot.sessions VALUES"
                               " (9001, 1001, now() + interval '1 day', false),"
                               " (9002, 1001, now() + interval '1 day', true)");
    t.op = qry_test_srv_token_roles(&t.fx.srv, U1, SID, 600, SP_JWT_ROLE_OPERATOR);
    t.user = qry_test_srv_token_roles(&t.fx.srv, U2, 9003, 600, 0);
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    free(t.op);
    free(t.user);
    if (*state != NULL) /* the setup got as far as the server */
        qry_test_fx_teardown(state);
    proj_view_close(t.view);
    proj_analytics_writer_free(t.w);
    assert_int_equal(nftw(t.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
    return 0;
}

/* GET @p path with Bearer @p token (NULL: none) and @p after (NULL: none); the body. */
static json_t *get(const char *path, const char *token, const char *after, int want_status)
{
    char auth[4200], gate[96];
    const char *headers[3] = {NULL, NULL, NULL};
    struct sp_test_resp resp = {0};
    size_t n = 0;
    json_t *body;

    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        headers[n++] = auth;
    }
    if (after != NULL) {
        snprintf(gate, sizeof(gate), "Stockpot-After: %s", after);
        headers[n++] = gate;
    }
    body = qry_test_srv_get_json(&t.fx.srv, path, headers, &resp, want_status);
    if (want_status >= 400)
        assert_non_null(strstr(sp_test_resp_header(&resp, "Content-Type"), "problem+json"));
    sp_test_resp_release(&resp);
    return body;
}

static int64_t jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", key);
    return (int64_t)json_integer_value(v);
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

static double jreal(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_real(v))
        fail_msg("\"%s\" is not a number with a fraction", key);
    return json_real_value(v);
}

/* ------------------------------------------------------------------ tests */

/* Before the projector has made the view: 503 with Retry-After, for an operator. */
static void test_view_not_built(void **state)
{
    struct qry_test_srv other = {0};
    struct sp_test_resp resp = {0};
    char auth[4200], empty[96];
    const char *headers[] = {auth, NULL};

    (void)state;
    snprintf(empty, sizeof(empty), "%s/empty", t.dir);
    assert_int_equal(setenv("STOCKPOT_VIEWS_DIR", empty, 1), 0);
    qry_test_srv_start(&other, t.fx.db.conninfo, TIMEOUT_MS);
    assert_int_equal(setenv("STOCKPOT_VIEWS_DIR", t.dir, 1), 0);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t.op);
    assert_int_equal(sp_test_http(other.port, "GET", "/analytics/summary", headers, NULL, &resp),
                     503);
    assert_string_equal(sp_test_resp_header(&resp, "Retry-After"), "1");
    assert_non_null(strstr(resp.body, "projection \\\"analytics\\\""));
    sp_test_resp_release(&resp);
    qry_test_srv_stop(&other);
}

/* No token 401, a bad one 401, no operator role 403 (before the parameters), a dead
 * session 401, on every route. */
static void test_access(void **state)
{
    static const char *const paths[] = {
        "/analytics/summary", "/analytics/recipes/popular?window=7d", "/analytics/users/active",
        "/analytics/retention?from=2026-11-02&to=2026-11-10"};
    char *expired = qry_test_srv_token_roles(&t.fx.srv, U1, SID, -10, SP_JWT_ROLE_OPERATOR);
    char *revoked = qry_test_srv_token_roles(&t.fx.srv, U1, 9002, 600, SP_JWT_ROLE_OPERATOR);
    struct sp_test_resp resp = {0};
    json_t *p;

    (void)state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        assert_int_equal(sp_test_http(t.fx.srv.port, "GET", paths[i], NULL, NULL, &resp), 401);
        assert_string_equal(sp_test_resp_header(&resp, "WWW-Authenticate"), "Bearer");
        sp_test_resp_release(&resp);
        json_decref(get(paths[i], "not.a.token", NULL, 401));
        json_decref(get(paths[i], expired, NULL, 401));
        p = get(paths[i], t.user, NULL, 403);
        assert_string_equal(jstr(p, "type"), "https://stockpot.dev/problems/forbidden");
        assert_int_equal(jint(p, "status"), 403);
        assert_non_null(strstr(jstr(p, "detail"), "operator"));
        json_decref(p);
        json_decref(get(paths[i], revoked, NULL, 401));
        json_decref(get(paths[i], t.op, NULL, 200));
    }
    /* the role is checked before the parameters: nothing about them leaks */
    json_decref(get("/analytics/summary?from=nonsense", t.user, NULL, 403));
    json_decref(get("/analytics/summary?from=nonsense", NULL, NULL, 401));
    free(expired);
    free(revoked);
}

static void check_day(json_t *day, const char *date, int64_t active)
{
    assert_string_equal(jstr(day, "date"), date);
    assert_int_equal(jint(day, "active"), active);
    /* every counter by its name */
    for (int c = 0; c < PROJ_ANALYTICS_COUNTERS; c++)
        (void)jint(day, proj_analytics_counter_name((enum proj_analytics_counter)c));
    assert_int_equal(json_object_size(day), 2 + PROJ_ANALYTICS_COUNTERS);
}

static void test_summary(void **state)
{
    static const int64_t active[9] = {2, 1, 0, 0, 0, 0, 0, 1, 2};
    json_t *s = get("/analytics/summary?from=2026-11-02&to=2026-11-10", t.op, NULL, 200);
    json_t *days = json_object_get(s, "days"), *totals = json_object_get(s, "totals");
    char date[16];

    (void)state;
    assert_string_equal(jstr(s, "from"), "2026-11-02");
    assert_string_equal(jstr(s, "to"), "2026-11-10");
    assert_int_equal(json_array_size(days), 9);
    for (int i = 0; i < 9; i++)
        check_day(json_array_get(days, (size_t)i),
                  proj_analytics_date_format(t.d0 + i, date, sizeof(date)), active[i]);
    assert_int_equal(jint(json_array_get(days, 0), "registrations"), 2);
    assert_int_equal(jint(json_array_get(days, 0), "logins"), 1);
    assert_int_equal(jint(json_array_get(days, 0), "recipes_created"), 1);
    assert_int_equal(jint(json_array_get(days, 1), "likes"), 1);
    assert_int_equal(jint(json_array_get(days, 1), "comments"), 1);
    assert_int_equal(jint(json_array_get(days, 8), "unlikes"), 1);
    assert_int_equal(jint(totals, "active"), 3); /* distinct, not the sum 6 */
    assert_int_equal(jint(totals, "registrations"), 3);
    assert_int_equal(jint(totals, "logins"), 1);
    assert_int_equal(jint(totals, "recipes_created"), 2);
    assert_int_equal(jint(totals, "likes"), 2);
    assert_int_equal(jint(totals, "comments"), 2);
    assert_int_equal(jint(totals, "unlikes"), 1);
    assert_int_equal(jint(totals, "messages"), 0);
    assert_int_equal(json_object_size(totals), 1 + PROJ_ANALYTICS_COUNTERS);
    assert_int_equal(jint(s, "dau"), 2);
    assert_int_equal(jint(s, "wau"), 2); /* D2..D8: U1, U3 */
    assert_int_equal(jint(s, "mau"), 3);
    /* mean DAU over the 30 days ending D8 = 6 / 30, over MAU 3 */
    assert_true(jreal(s, "stickiness") > 6.0 / 30.0 / 3.0 - 1e-9);
    assert_true(jreal(s, "stickiness") < 6.0 / 30.0 / 3.0 + 1e-9);
    assert_int_equal(json_object_size(s), 8);
    json_decref(s);
}

/* No from / to: the 30 days ending today (UTC); from alone: up to today. */
static void test_default_range(void **state)
{
    int32_t today = proj_analytics_day_of(sp_time_now_us());
    char date[16], path[96];
    json_t *s = get("/analytics/summary", t.op, NULL, 200);

    (void)state;
    assert_string_equal(jstr(s, "to"), proj_analytics_date_format(today, date, sizeof(date)));
    assert_string_equal(jstr(s, "from"),
                        proj_analytics_date_format(today - 29, date, sizeof(date)));
    assert_int_equal(json_array_size(json_object_get(s, "days")), 30);
    json_decref(s);
    s = get("/analytics/users/active?to=2026-11-10", t.op, NULL, 200);
    assert_string_equal(jstr(s, "from"), "2026-10-12");
    assert_int_equal(json_array_size(json_object_get(s, "periods")), 30);
    json_decref(s);
    /* the cap: 400 days is fine, 401 is not (test_bad_parameters) */
    snprintf(path, sizeof(path), "/analytics/retention?from=%s&to=2026-11-10",
             proj_analytics_date_format(t.d0 + 8 - 399, date, sizeof(date)));
    s = get(path, t.op, NULL, 200);
    /* one cohort per signup week with signups: D0's and D7's */
    assert_int_equal(json_array_size(json_object_get(s, "cohorts")), 2);
    json_decref(s);
}

/* recipes[i] is @p id with @p score, likes, comments, unlikes. */
static void check_recipe(json_t *recipes,
                         size_t i,
                         const char *id,
                         int64_t score,
                         int64_t likes,
                         int64_t comments,
                         int64_t unlikes)
{
    json_t *r = json_array_get(recipes, i);

    assert_non_null(r);
    assert_string_equal(jstr(r, "id"), id);
    assert_string_equal(jstr(r, "author_id"), "1001");
    assert_string_equal(jstr(r, "title"), strcmp(id, "100") == 0 ? "Soup" : "Stew");
    assert_int_equal(jint(r, "score"), score);
    assert_int_equal(jint(r, "likes"), likes);
    assert_int_equal(jint(r, "comments"), comments);
    assert_int_equal(jint(r, "unlikes"), unlikes);
    assert_int_equal(json_object_size(r), 7);
}

static void test_popular(void **state)
{
    json_t *p = get("/analytics/recipes/popular?window=all", t.op, NULL, 200);
    json_t *r = json_object_get(p, "recipes");

    (void)state;
    assert_string_equal(jstr(p, "window"), "all");
    assert_int_equal(json_array_size(r), 2);
    check_recipe(r, 0, "100", 3, 2, 1, 1);
    check_recipe(r, 1, "200", 2, 0, 1, 0);
    json_decref(p);
    /* 7 days ending with D8 (a date: the end of that day): D2..D8 */
    p = get("/analytics/recipes/popular?window=7d&at=2026-11-10", t.op, NULL, 200);
    assert_string_equal(jstr(p, "at"), "2026-11-10T23:59:59.999999Z");
    r = json_object_get(p, "recipes");
    assert_int_equal(json_array_size(r), 2);
    check_recipe(r, 0, "200", 2, 0, 1, 0);
    check_recipe(r, 1, "100", 0, 1, 0, 1);
    json_decref(p);
    /* 24 hours ending with D8's hour 12: D7 13:00..D8 12:59 */
    p = get("/analytics/recipes/popular?window=24h&at=2026-11-10T12:30:00Z&limit=5", t.op, NULL,
            200);
    assert_string_equal(jstr(p, "at"), "2026-11-10T12:30:00.000000Z");
    r = json_object_get(p, "recipes");
    assert_int_equal(json_array_size(r), 2);
    check_recipe(r, 0, "200", 2, 0, 1, 0);
    check_recipe(r, 1, "100", -1, 0, 0, 1);
    json_decref(p);
    /* an offset is an instant like another: 13:30+01:00 is 12:30Z */
    p = get("/analytics/recipes/popular?window=24h&at=2026-11-10T13:30:00%2B01:00", t.op, NULL,
            200);
    assert_string_equal(jstr(p, "at"), "2026-11-10T12:30:00.000000Z");
    json_decref(p);
    p = get("/analytics/recipes/popular?window=30d&at=2026-11-10&limit=1", t.op, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(p, "recipes")), 1);
    check_recipe(json_object_get(p, "recipes"), 0, "100", 3, 2, 1, 1);
    json_decref(p);
    /* defaults: 7d ending now, long after the events: nothing */
    p = get("/analytics/recipes/popular", t.op, NULL, 200);
    assert_string_equal(jstr(p, "window"), "7d");
    assert_int_equal(json_array_size(json_object_get(p, "recipes")), 0);
    assert_int_equal(json_object_size(p), 3);
    json_decref(p);
}

static void
check_period(json_t *periods, size_t i, const char *start, const char *end, int64_t active)
{
    json_t *p = json_array_get(periods, i);

    assert_non_null(p);
    assert_string_equal(jstr(p, "start"), start);
    assert_string_equal(jstr(p, "end"), end);
    assert_int_equal(jint(p, "active"), active);
    assert_int_equal(json_object_size(p), 3);
}

static void test_active(void **state)
{
    json_t *a = get("/analytics/users/active?granularity=week&from=2026-11-02&to=2026-11-10", t.op,
                    NULL, 200);
    json_t *p = json_object_get(a, "periods");

    (void)state;
    assert_string_equal(jstr(a, "granularity"), "week");
    assert_string_equal(jstr(a, "from"), "2026-11-02");
    assert_string_equal(jstr(a, "to"), "2026-11-10");
    assert_int_equal(json_array_size(p), 2);
    check_period(p, 0, "2026-11-02", "2026-11-08", 2);
    check_period(p, 1, "2026-11-09", "2026-11-10", 2); /* clipped to the range */
    json_decref(a);
    a = get("/analytics/users/active?granularity=month&from=2026-10-30&to=2026-11-10", t.op, NULL,
            200);
    p = json_object_get(a, "periods");
    assert_int_equal(json_array_size(p), 2);
    check_period(p, 0, "2026-10-30", "2026-10-31", 0);
    check_period(p, 1, "2026-11-01", "2026-11-10", 3);
    json_decref(a);
    a = get("/analytics/users/active?from=2026-11-06&to=2026-11-09", t.op, NULL, 200);
    assert_string_equal(jstr(a, "granularity"), "day");
    p = json_object_get(a, "periods");
    assert_int_equal(json_array_size(p), 4);
    check_period(p, 3, "2026-11-09", "2026-11-09", 1);
    json_decref(a);
}

static void check_week(json_t *weeks, size_t k, int64_t active, double share)
{
    json_t *w = json_array_get(weeks, k);

    assert_non_null(w);
    assert_int_equal(jint(w, "week"), (int64_t)k);
    assert_int_equal(jint(w, "active"), active);
    assert_true(jreal(w, "share") > share - 1e-9 && jreal(w, "share") < share + 1e-9);
}

static void test_retention(void **state)
{
    json_t *r = get("/analytics/retention?from=2026-11-02&to=2026-11-10", t.op, NULL, 200);
    json_t *cohorts = json_object_get(r, "cohorts"), *c;

    (void)state;
    assert_string_equal(jstr(r, "from"), "2026-11-02");
    assert_string_equal(jstr(r, "to"), "2026-11-10");
    assert_int_equal(json_array_size(cohorts), 2);
    c = json_array_get(cohorts, 0);
    assert_string_equal(jstr(c, "week"), "2026-11-02");
    assert_int_equal(jint(c, "size"), 2);
    assert_int_equal(json_array_size(json_object_get(c, "weeks")), 2);
    check_week(json_object_get(c, "weeks"), 0, 2, 1.0);
    check_week(json_object_get(c, "weeks"), 1, 1, 0.5);
    c = json_array_get(cohorts, 1);
    assert_string_equal(jstr(c, "week"), "2026-11-09");
    assert_int_equal(jint(c, "size"), 1);
    assert_int_equal(json_array_size(json_object_get(c, "weeks")), 1);
    check_week(json_object_get(c, "weeks"), 0, 1, 1.0);
    json_decref(r);
    /* weeks without signups have no cohort */
    r = get("/analytics/retention?from=2026-10-19&to=2026-11-01", t.op, NULL, 200);
    assert_true(json_is_array(json_object_get(r, "cohorts")));
    assert_int_equal(json_array_size(json_object_get(r, "cohorts")), 0);
    json_decref(r);
}

static void test_bad_parameters(void **state)
{
    static const struct {
        const char *path;
        const char *field;
    } bad[] = {
        {"/analytics/summary?from=2026-13-01", "from"},
        {"/analytics/summary?to=2026-02-30", "to"},
        {"/analytics/summary?from=2026-11-10&to=2026-11-02", "from"},
        {"/analytics/summary?from=2025-10-06&to=2026-11-10", "from"}, /* 401 days */
        {"/analytics/summary?from=2026-11-02&from=2026-11-03", "from"},
        {"/analytics/summary?q=soup", "q"},
        {"/analytics/summary?window=7d", "window"},
        {"/analytics/users/active?granularity=year", "granularity"},
        {"/analytics/users/active?granularity=", "granularity"},
        {"/analytics/users/active?to=11/10/2026", "to"},
        {"/analytics/retention?from=1969-12-31", "from"},
        {"/analytics/retention?limit=5", "limit"},
        {"/analytics/recipes/popular?window=1w", "window"},
        {"/analytics/recipes/popular?window=7D", "window"},
        {"/analytics/recipes/popular?limit=0", "limit"},
        {"/analytics/recipes/popular?limit=101", "limit"},
        {"/analytics/recipes/popular?limit=-1", "limit"},
        {"/analytics/recipes/popular?limit=ten", "limit"},
        {"/analytics/recipes/popular?at=yesterday", "at"},
        {"/analytics/recipes/popular?at=2026-11-10T25:00:00Z", "at"},
        {"/analytics/recipes/popular?at=1969-12-31T23:00:00Z", "at"},
        {"/analytics/recipes/popular?from=2026-11-02", "from"},
        {"/analytics/recipes/popular?limit=5&limit=6", "limit"},
    };
    json_t *p;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = get(bad[i].path, t.op, NULL, 400);
        assert_string_equal(jstr(p, "type"), "https://stockpot.dev/problems/validation");
        if (strcmp(jstr(json_array_get(json_object_get(p, "errors"), 0), "field"), bad[i].field) !=
            0)
            fail_msg("%s: errors names \"%s\", want \"%s\"", bad[i].path,
                     jstr(json_array_get(json_object_get(p, "errors"), 0), "field"), bad[i].field);
        json_decref(p);
    }
}

/* Another projector: after 200 ms, fold U1's second login on D8 with its checkpoint. */
static void *late_projector(void *arg)
{
    static const struct an_ev login = {"SessionStarted", U1, 9004, 8, 13};
    struct timespec delay = {0, 200L * 1000 * 1000};

    (void)arg;
    nanosleep(&delay, NULL);
    fold(t.view, &login, 1);
    return NULL;
}

/* Stockpot-After waits for the analytics view's own checkpoint (not PostgreSQL's). */
static void test_after(void **state)
{
    const char *path = "/analytics/summary?from=2026-11-10&to=2026-11-10";
    char token[32];
    pthread_t writer;
    int64_t start_us, waited_us;
    json_t *s;

    (void)state;
    snprintf(token, sizeof(token), "0:%lld", (long long)(N_EXAMPLE - 1));
    start_us = sp_time_mono_us();
    s = get(path, t.op, token, 200); /* applied already */
    assert_true(sp_time_mono_us() - start_us < 500 * 1000LL);
    assert_int_equal(jint(json_object_get(s, "totals"), "logins"), 0);
    json_decref(s);
    snprintf(token, sizeof(token), "0:%lld", (long long)N_EXAMPLE);
    assert_int_equal(pthread_create(&writer, NULL, late_projector, NULL), 0);
    start_us = sp_time_mono_us();
    s = get(path, t.op, token, 200);
    waited_us = sp_time_mono_us() - start_us;
    assert_int_equal(pthread_join(writer, NULL), 0);
    assert_int_equal(jint(json_object_get(s, "totals"), "logins"), 1);
    assert_true(waited_us >= 150 * 1000LL && waited_us < TIMEOUT_MS * 1000LL);
    json_decref(s);
    /* never applied: 503 after query.after_timeout_ms; a bad token: 400 */
    json_decref(get(path, t.op, "0:1000", 503));
    s = get(path, t.op, "0:x", 400);
    assert_string_equal(jstr(json_array_get(json_object_get(s, "errors"), 0), "field"),
                        "Stockpot-After");
    json_decref(s);
}

/* A rebuild swaps a new generation in: the next request reads it. */
static void test_rebuild_swap(void **state)
{
    static const struct an_ev late = {"UserRegistered", U4, 0, 8, 20};
    struct proj_view_opts opts = {t.view_dir, PROJ_ANALYTICS_FORMAT, PROJ_ANALYTICS_MAX_DBS,
                                  MAP_BYTES};
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_view *next;
    json_t *s;

    (void)state;
    proj_analytics_writer_free(t.w); /* its handles belong to the old generation */
    assert_int_equal(proj_analytics_writer_new(&t.w), 0);
    if (proj_view_build_begin(&opts, &next, &eb) != 0)
        fail_msg("build_begin: %s", eb.msg);
    t.next_offset = 0;
    fold(next, example, N_EXAMPLE);
    fold(next, &late, 1);
    if (proj_view_build_commit(next, &eb) != 0)
        fail_msg("build_commit: %s", eb.msg);
    s = get("/analytics/summary?from=2026-11-02&to=2026-11-10", t.op, NULL, 200);
    assert_int_equal(jint(json_object_get(s, "totals"), "registrations"), 4);
    assert_int_equal(jint(json_object_get(s, "totals"), "logins"), 1); /* not test_after's */
    json_decref(s);
    /* the "projector" moves to the new generation too */
    proj_view_close(t.view);
    if (proj_view_open(&opts, PROJ_VIEW_WRITE, &t.view, &eb) != 0)
        fail_msg("proj_view_open: %s", eb.msg);
    proj_analytics_writer_free(t.w);
    assert_int_equal(proj_analytics_writer_new(&t.w), 0);
}

/* A title longer than the view keeps (200 x "猫", 600 bytes) comes out cut at a character
 * boundary, as valid JSON. */
static void test_long_title(void **state)
{
    struct an_ev evs[] = {{"RecipeCreated", U1, 300, 8, 14}, {"RecipeLiked", U2, 300, 8, 15}};
    const char *title;
    json_t *p, *r;

    (void)state;
    fold(t.view, evs, 2);
    p = get("/analytics/recipes/popular?window=24h&at=2026-11-11T14:00:00Z", t.op, NULL, 200);
    r = json_array_get(json_object_get(p, "recipes"), 0);
    assert_string_equal(jstr(r, "id"), "300");
    title = jstr(r, "title");
    assert_true(strlen(title) >= 450 && strlen(title) < 600 && strlen(title) % 3 == 0);
    assert_int_equal(strncmp(title, title_of(300), strlen(title)), 0);
    json_decref(p);
}

static void test_metrics(void **state)
{
    struct sp_test_resp resp = {0};

    (void)state;
    assert_true(sp_metrics_value(t.fx.srv.metrics, "stockpot_analytics_queries_total",
                                 "endpoint=\"summary\",status=\"200\"") >= 4);
    assert_true(sp_metrics_value(t.fx.srv.metrics, "stockpot_analytics_queries_total",
                                 "endpoint=\"popular\",status=\"403\"") == 1);
    assert_true(sp_metrics_value(t.fx.srv.metrics, "stockpot_analytics_queries_total",
                                 "endpoint=\"retention\",status=\"401\"") >= 4);
    assert_true(sp_metrics_value(t.fx.srv.metrics, "stockpot_analytics_queries_total",
                                 "endpoint=\"popular\",status=\"400\"") >= 10);
    assert_int_equal(sp_test_http(t.fx.srv.port, "GET", "/metrics", NULL, NULL, &resp), 200);
    assert_non_null(strstr(resp.body, "stockpot_analytics_seconds_count{endpoint=\"active\"}"));
    sp_test_resp_release(&resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_not_built), cmocka_unit_test(test_access),
        cmocka_unit_test(test_summary),        cmocka_unit_test(test_default_range),
        cmocka_unit_test(test_popular),        cmocka_unit_test(test_active),
        cmocka_unit_test(test_retention),      cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_after),          cmocka_unit_test(test_rebuild_swap),
        cmocka_unit_test(test_long_title),     cmocka_unit_test(test_metrics),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
