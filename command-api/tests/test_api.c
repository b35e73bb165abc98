/*
 * command-api over real HTTP: the real handlers, write model and embedded LMDB log in a
 * mkdtemp directory, on an ephemeral port, driven by the sp_testsupport client while the
 * app's event loop runs in a second thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <jwt.h>

#include "cmd/app.h"
#include "app_priv.h" /* test seams (struct cmd__hooks) */
#include "sp/config.h"
#include "sp/jwt.h"
#include "sp/log.h"
#include "sp_test_http.h"
#include "cmd_test.h"

#include "sp/banned.h"

static int setup(void **state)
{
    struct cmd_test_fx *fx = calloc(1, sizeof(*fx));
    cmd_test_fx_init(fx, "/tmp/cmd-test-XXXXXX");
    cmd_test_fx_use_lmdb(fx);
    cmd_test_cfg_set(fx, "http.max_body_bytes", "65536");
    cmd_test_app_start(fx);
    *state = fx;
    return 0;
}

/* ---- helpers ---- */

static void register_user(struct cmd_test_fx *fx, const char *name)
{
    char body[256];
    json_t *r = NULL;
    snprintf(body, sizeof(body),
             "{\"username\":\"%s\",\"email\":\"%s@example.org\","
             "\"password\":\"correct horse\"}",
             name, name);
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/register", NULL, body, &r), 201);
    assert_string_equal(cmd_test_jstr(r, "username"), name);
    json_decref(r);
}

/* Log in; returns the token answer (owned). */
static json_t *login(struct cmd_test_fx *fx, const char *name)
{
    char body[256];
    json_t *r = NULL;
    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"correct horse\"}", name);
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/login", NULL, body, &r), 200);
    assert_string_equal(cmd_test_jstr(r, "token_type"), "Bearer");
    return r;
}

static void bearer(json_t *tokens, char *out, size_t size)
{
    snprintf(out, size, "Authorization: Bearer %s", cmd_test_jstr(tokens, "access_token"));
}

#define RECIPE                                                                                     \
    "{\"title\":\"红烧肉\",\"description\":\"\",\"ingredients\":[\"五花肉 500g\"],"          \
    "\"steps\":[\"切块\\n焯水\",\"炖一小时\"],\"tags\":[\"pork\"]}"

/* Status of a request; *retry_after gets a copy of Retry-After ("" if none). */
static int call_retry(struct cmd_test_fx *fx,
                      const char *method,
                      const char *path,
                      const char *const *headers,
                      const char *body,
                      char *retry_after,
                      size_t size)
{
    struct sp_test_resp resp = {0};
    int status = sp_test_http(fx->port, method, path, headers, body, &resp);
    const char *ra = sp_test_resp_header(&resp, "Retry-After");
    snprintf(retry_after, size, "%s", ra ? ra : "");
    sp_test_resp_release(&resp);
    return status;
}

/* Body of GET /readyz into @p out; returns the status. */
static int readyz(struct cmd_test_fx *fx, char *out, size_t size)
{
    struct sp_test_resp resp = {0};
    int status = sp_test_http(fx->port, "GET", "/readyz", NULL, NULL, &resp);
    snprintf(out, size, "%s", resp.body ? resp.body : "");
    sp_test_resp_release(&resp);
    return status;
}

/* Poll /readyz for up to 5 s until it answers @p want. */
static void await_ready(struct cmd_test_fx *fx, int want)
{
    char body[512];
    for (int i = 0; i < 100; i++) {
        if (readyz(fx, body, sizeof(body)) == want)
            return;
        usleep(50 * 1000);
    }
    fail_msg("/readyz never answered %d (last: %s)", want, body);
}

/*
 * Change the app's test seams with its loop stopped and its committer idle (no data race;
 * a batch answered before its write model commit may still be committing).
 */
#define WITH_LOOP_STOPPED(fx, stmt)                                                                \
    do {                                                                                           \
        cmd_test_serve_stop(fx);                                                                   \
        cmd__committer_wait_idle(fx->app);                                                         \
        stmt;                                                                                      \
        cmd_test_serve_start(fx);                                                                  \
    } while (0)

/* Create RECIPE as @p hdrs's user; copies "/recipes/<id>" into @p path. */
static void create_recipe(struct cmd_test_fx *fx, const char *const *hdrs, char *path, size_t size)
{
    json_t *r = NULL;
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", hdrs, RECIPE, &r), 201);
    snprintf(path, size, "/recipes/%s", cmd_test_jstr(r, "recipe_id"));
    json_decref(r);
}

static int
put_title(struct cmd_test_fx *fx, const char *auth, const char *path, int if_match, json_t **out)
{
    char im[32];
    snprintf(im, sizeof(im), "If-Match: \"%d\"", if_match);
    const char *h[] = {auth, im, NULL};
    return cmd_test_call(fx, "PUT", path, h, "{\"title\":\"retitled\"}", out);
}

/* ---- tests ---- */

static void test_validation_names_fields(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *r = NULL, *tok;
    char auth[1024];

    assert_int_equal(
        cmd_test_call(fx, "POST", "/auth/register", NULL,
                      "{\"username\":\"a b\",\"email\":\"nope\",\"password\":\"short\","
                      "\"admin\":true}",
                      &r),
        400);
    assert_string_equal(cmd_test_jstr(r, "type"), "https://stockpot.dev/problems/validation");
    assert_true(cmd_test_names_field(r, "username") && cmd_test_names_field(r, "email") &&
                cmd_test_names_field(r, "password") && cmd_test_names_field(r, "admin"));
    json_decref(r);
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/register", NULL, "{\"username\":", &r), 400);
    json_decref(r);

    register_user(fx, "valerie");
    tok = login(fx, "valerie");
    bearer(tok, auth, sizeof(auth));
    double before = cmd_test_metric(fx, "stockpot_events_appended_total", "");
    char title[300];
    memset(title, 'x', 201);
    title[201] = '\0';
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"title\":\"%s\",\"ingredients\":[\"ok\",\"bad\\u0001\"],\"steps\":[],"
             "\"tags\":[\"\"],\"image_media_ids\":[\"x1\"],\"extra\":1}",
             title);
    const char *hdrs[] = {auth, NULL};
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", hdrs, body, &r), 400);
    assert_true(cmd_test_names_field(r, "title") && cmd_test_names_field(r, "ingredients/1") &&
                cmd_test_names_field(r, "steps") && cmd_test_names_field(r, "tags/0") &&
                cmd_test_names_field(r, "image_media_ids/0") && cmd_test_names_field(r, "extra"));
    assert_false(cmd_test_names_field(r, "ingredients/0"));
    json_decref(r);
    /* 200 code points of Chinese text are fine (600 bytes). */
    static const char soup[] = "汤";
    char *zh = calloc(1, 700);
    for (size_t i = 0; i < 600; i++)
        zh[i] = soup[i % 3];
    snprintf(body, sizeof(body), "{\"title\":\"%s\",\"ingredients\":[\"水\"],\"steps\":[\"煮\"]}",
             zh);
    free(zh);
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", hdrs, body, NULL), 201);
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == before + 1);
    json_decref(tok);
}

static void test_auth_flow(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *r = NULL, *t1, *t2;
    char auth[1024], body[256];

    register_user(fx, "alice");
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/register", NULL,
                                   "{\"username\":\"ALICE\",\"email\":\"x@example.org\","
                                   "\"password\":\"12345678\"}",
                                   &r),
                     409);
    assert_true(cmd_test_names_field(r, "username"));
    json_decref(r);
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/register", NULL,
                                   "{\"username\":\"alice2\",\"email\":\"Alice@EXAMPLE.org\","
                                   "\"password\":\"12345678\"}",
                                   &r),
                     409);
    assert_true(cmd_test_names_field(r, "email"));
    json_decref(r);
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/login", NULL,
                                   "{\"username\":\"alice\",\"password\":\"wrong password\"}",
                                   NULL),
                     401);
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/login", NULL,
                                   "{\"email\":\"nobody@example.org\",\"password\":\"x\"}", NULL),
                     401);

    t1 = login(fx, "alice");
    bearer(t1, auth, sizeof(auth));
    const char *h1[] = {auth, NULL};
    assert_int_equal(cmd_test_call(fx, "GET", "/auth/validate", h1, NULL, &r), 200);
    assert_string_equal(cmd_test_jstr(r, "user_id"), cmd_test_jstr(t1, "user_id"));
    json_decref(r);

    /* Refresh rotates; the old token is then a reuse that revokes the session. */
    snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", cmd_test_jstr(t1, "refresh_token"));
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/refresh", NULL, body, &t2), 200);
    assert_string_not_equal(cmd_test_jstr(t2, "refresh_token"), cmd_test_jstr(t1, "refresh_token"));
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/refresh", NULL, body, NULL), 401);
    snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", cmd_test_jstr(t2, "refresh_token"));
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/refresh", NULL, body, NULL), 401);
    bearer(t2, auth, sizeof(auth));
    assert_int_equal(cmd_test_call(fx, "GET", "/auth/validate", h1, NULL, NULL), 401);
    json_decref(t1);
    json_decref(t2);

    /* Logout revokes; the access token dies with the session. */
    t1 = login(fx, "alice");
    bearer(t1, auth, sizeof(auth));
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/logout", h1, NULL, &r), 200);
    assert_non_null(json_string_value(json_object_get(r, "position")));
    json_decref(r);
    assert_int_equal(cmd_test_call(fx, "GET", "/auth/validate", h1, NULL, NULL), 401);
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h1, RECIPE, NULL), 401);
    assert_int_equal(cmd_test_call(fx, "GET", "/auth/logout", h1, NULL, NULL), 401);
    json_decref(t1);
}

/* The roles (SP_JWT_ROLE_*) of the access token of the token answer @p tokens. */
static unsigned token_roles(json_t *tokens)
{
    struct sp_jwt_claims cl;
    struct sp_errbuf eb = {{0}, {0}};
    const char *tok = cmd_test_jstr(tokens, "access_token");

    assert_int_equal(sp_jwt_verify((const unsigned char *)CMD_TEST_SECRET, strlen(CMD_TEST_SECRET),
                                   tok, (int64_t)time(NULL), &cl, &eb),
                     0);
    return cl.roles;
}

/*
 * analytics.operators: the users it names (any case, spaces around the names ignored)
 * get the operator role in the tokens of login and refresh, the others none; a listed
 * name nobody has is skipped; a user registered after the start who is listed gets it.
 */
static void test_operator_role(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *t, *t2;
    char body[256];

    cmd_test_app_stop(fx);
    cmd_test_cfg_set(fx, "analytics.operators", " nobody ,OPS1 ,, ops2");
    cmd_test_app_start(fx);
    register_user(fx, "ops1");
    register_user(fx, "alice");
    t = login(fx, "ops1");
    assert_int_equal(token_roles(t), SP_JWT_ROLE_OPERATOR);
    snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", cmd_test_jstr(t, "refresh_token"));
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/refresh", NULL, body, &t2), 200);
    assert_int_equal(token_roles(t2), SP_JWT_ROLE_OPERATOR);
    json_decref(t);
    json_decref(t2);
    t = login(fx, "alice");
    assert_int_equal(token_roles(t), 0);
    snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", cmd_test_jstr(t, "refresh_token"));
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/refresh", NULL, body, &t2), 200);
    assert_int_equal(token_roles(t2), 0);
    json_decref(t);
    json_decref(t2);
    register_user(fx, "ops2");
    t = login(fx, "ops2");
    assert_int_equal(token_roles(t), SP_JWT_ROLE_OPERATOR);
    json_decref(t);
    /* an empty list (the default) makes nobody an operator */
    cmd_test_app_stop(fx);
    cmd_test_cfg_set(fx, "analytics.operators", "");
    cmd_test_app_start(fx);
    t = login(fx, "ops1");
    assert_int_equal(token_roles(t), 0);
    json_decref(t);
}

/* Sign a token with libjwt directly: @p alg none or HS256 with @p exp. */
static char *forge(jwt_alg_t alg, long iat, long exp)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    jwt_add_grant(jwt, "sub", "1");
    jwt_add_grant(jwt, "sid", "2");
    jwt_add_grant_int(jwt, "iat", iat);
    jwt_add_grant_int(jwt, "exp", exp);
    if (alg == JWT_ALG_NONE)
        jwt_set_alg(jwt, JWT_ALG_NONE, NULL, 0);
    else
        jwt_set_alg(jwt, alg, (const unsigned char *)CMD_TEST_SECRET, (int)strlen(CMD_TEST_SECRET));
    char *s = jwt_encode_str(jwt);
    jwt_free(jwt);
    return s;
}

static void test_bad_tokens(void **state)
{
    struct cmd_test_fx *fx = *state;
    char auth[1024];
    const char *h[] = {auth, NULL};
    long now = (long)time(NULL);
    char *toks[] = {forge(JWT_ALG_NONE, now, now + 600), forge(JWT_ALG_HS256, now - 900, now - 1),
                    forge(JWT_ALG_HS256, now + 3600, now + 7200),
                    forge(JWT_ALG_HS256, now, now + 600)};
    json_t *r = NULL;
    for (size_t i = 0; i < 4; i++) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", toks[i]);
        assert_int_equal(cmd_test_call(fx, "GET", "/auth/validate", h, NULL, &r), 401);
        assert_string_equal(cmd_test_jstr(r, "type"), "https://stockpot.dev/problems/unauthorized");
        json_decref(r);
        free(toks[i]);
    }
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", NULL, RECIPE, NULL), 401);
    snprintf(auth, sizeof(auth), "Authorization: Bearer not.a.token");
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h, RECIPE, NULL), 401);
}

static void test_recipe_lifecycle(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *r = NULL, *ta, *tb;
    char auth_a[1024], auth_b[1024], path[64], im[32];
    struct sp_test_resp resp = {0};

    register_user(fx, "cook");
    register_user(fx, "other");
    ta = login(fx, "cook");
    tb = login(fx, "other");
    bearer(ta, auth_a, sizeof(auth_a));
    bearer(tb, auth_b, sizeof(auth_b));
    const char *ha[] = {auth_a, NULL}, *hb[] = {auth_b, NULL};

    assert_int_equal(sp_test_http(fx->port, "POST", "/recipes", ha, RECIPE, &resp), 201);
    assert_string_equal(sp_test_resp_header(&resp, "ETag"), "\"1\"");
    r = json_loadb(resp.body, resp.body_len, 0, NULL);
    snprintf(path, sizeof(path), "/recipes/%s", cmd_test_jstr(r, "recipe_id"));
    assert_string_equal(sp_test_resp_header(&resp, "Location"), path);
    assert_string_equal(sp_test_resp_header(&resp, "Stockpot-Position"),
                        cmd_test_jstr(r, "position"));
    sp_test_resp_release(&resp);
    json_decref(r);

    snprintf(im, sizeof(im), "If-Match: \"1\"");
    const char *ha_im[] = {auth_a, im, NULL}, *hb_im[] = {auth_b, im, NULL};
    assert_int_equal(cmd_test_call(fx, "PUT", path, ha_im, "{\"title\":\"Braised pork\"}", &r),
                     200);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 2);
    json_decref(r);
    assert_int_equal(cmd_test_call(fx, "PUT", path, ha_im, "{\"title\":\"stale\"}", &r), 412);
    json_decref(r);
    assert_int_equal(cmd_test_call(fx, "PUT", path, hb_im, "{\"title\":\"mine\"}", NULL), 403);
    assert_int_equal(cmd_test_call(fx, "DELETE", path, hb, NULL, NULL), 403);
    assert_int_equal(cmd_test_call(fx, "PUT", path, ha, "{}", &r), 400);
    assert_true(cmd_test_names_field(r, "body"));
    json_decref(r);
    assert_int_equal(cmd_test_call(fx, "DELETE", path, ha_im, NULL, NULL), 412);
    /* RFC 9110 §13.1.1: If-Match compares strongly, so a weak tag never matches */
    snprintf(im, sizeof(im), "If-Match: W/\"2\"");
    assert_int_equal(cmd_test_call(fx, "DELETE", path, ha_im, NULL, NULL), 412);
    snprintf(im, sizeof(im), "If-Match: \"2\"");
    assert_int_equal(cmd_test_call(fx, "DELETE", path, ha_im, NULL, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 3);
    json_decref(r);
    assert_int_equal(cmd_test_call(fx, "PUT", path, ha, "{\"title\":\"gone\"}", NULL), 404);
    assert_int_equal(cmd_test_call(fx, "DELETE", path, ha, NULL, NULL), 404);
    assert_int_equal(cmd_test_call(fx, "DELETE", "/recipes/abc", ha, NULL, NULL), 404);
    assert_int_equal(cmd_test_call(fx, "DELETE", "/recipes/123", ha, NULL, NULL), 404);
    json_decref(ta);
    json_decref(tb);
}

/* An Idempotency-Key stays bound to its first request: another body under it is a 422. */
static void assert_key_bound(struct cmd_test_fx *fx, const char *const *hdrs)
{
    json_t *r = NULL;
    assert_int_equal(
        cmd_test_call(fx, "POST", "/recipes", hdrs,
                      "{\"title\":\"other\",\"ingredients\":[\"a\"],\"steps\":[\"b\"]}", &r),
        422);
    json_decref(r);
}

static void test_idempotency_key(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *r1 = NULL, *r2 = NULL, *t;
    char auth[1024];
    register_user(fx, "idem");
    t = login(fx, "idem");
    bearer(t, auth, sizeof(auth));
    const char *h[] = {auth, "Idempotency-Key: abc-123", NULL};
    double before = cmd_test_metric(fx, "stockpot_events_appended_total", "");
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h, RECIPE, &r1), 201);
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h, RECIPE, &r2), 201);
    assert_string_equal(cmd_test_jstr(r1, "recipe_id"), cmd_test_jstr(r2, "recipe_id"));
    assert_string_equal(cmd_test_jstr(r1, "position"), cmd_test_jstr(r2, "position"));
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == before + 1);
    json_decref(r2);
    assert_key_bound(fx, h);
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == before + 1);
    json_decref(r1);
    json_decref(t);
}

/*
 * With the next write model commit failing, send @p body to @p path with @p hdrs (its
 * Idempotency-Key), then again: both answer @p status with the same body, and the retry
 * appends nothing. @return the first answer (owned).
 */
static json_t *failed_commit_then_retry(
    struct cmd_test_fx *fx, const char *path, const char *const *hdrs, const char *body, int status)
{
    json_t *r1 = NULL, *r2 = NULL;
    WITH_LOOP_STOPPED(fx, fx->app->hooks.fail_commits = 1);
    assert_int_equal(cmd_test_call(fx, "POST", path, hdrs, body, &r1), status);
    double before = cmd_test_metric(fx, "stockpot_events_appended_total", "");
    assert_int_equal(cmd_test_call(fx, "POST", path, hdrs, body, &r2), status);
    assert_true(json_equal(r1, r2)); /* ids, version and position */
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == before);
    json_decref(r2);
    return r1;
}

/*
 * The write model's commit of a batch fails after its events are durable (the same state
 * a kill -9 between the log append and that commit leaves): the clients were answered,
 * the catch-up refolds the batch from the log, and the idempotency answers come back
 * from the events' idempotencykey/idempotencyfp, so a retry with the same key answers as
 * the first time and appends nothing, for each command that takes a key.
 */
static void test_idempotency_after_failed_commit(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *r1, *t;
    char auth[1024], rid[32], cpath[96];
    const char *h_reg[] = {"Idempotency-Key: reg-1", NULL};

    json_decref(failed_commit_then_retry(fx, "/auth/register", h_reg,
                                         "{\"username\":\"lostwm\",\"email\":"
                                         "\"lostwm@example.org\",\"password\":\"correct horse\"}",
                                         201));
    t = login(fx, "lostwm");
    bearer(t, auth, sizeof(auth));
    const char *h[] = {auth, "Idempotency-Key: create-1", NULL};
    r1 = failed_commit_then_retry(fx, "/recipes", h, RECIPE, 201);
    snprintf(rid, sizeof(rid), "%s", cmd_test_jstr(r1, "recipe_id"));
    assert_key_bound(fx, h); /* still bound to its first request */
    json_decref(r1);

    /* a comment on that recipe */
    snprintf(cpath, sizeof(cpath), "/recipes/%s/comments", rid);
    const char *h_c[] = {auth, "Idempotency-Key: comment-1", NULL};
    json_decref(failed_commit_then_retry(fx, cpath, h_c, "{\"content\":\"lovely\"}", 201));

    const char *h_out[] = {auth, "Idempotency-Key: logout-1", NULL};
    json_decref(failed_commit_then_retry(fx, "/auth/logout", h_out, NULL, 200));
    json_decref(t);
}

/*
 * A write model rebuilt from the log (writemodel.dir deleted) has a new secret, hence a
 * new fingerprint key: the answers of the old key are not rebuilt from the events (no
 * request could match their fingerprints), so the same request with the same key is a
 * new command (201), never a 422 for an identical request.
 */
static void test_idempotency_after_rebuild(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *r1 = NULL, *r2 = NULL, *t;
    char auth[1024];
    register_user(fx, "rebuilt");
    t = login(fx, "rebuilt");
    bearer(t, auth, sizeof(auth));
    const char *h[] = {auth, "Idempotency-Key: before-rebuild", NULL};
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h, RECIPE, &r1), 201);
    cmd_test_app_stop(fx);
    cmd_test_rm_tree(fx->wm_dir);
    cmd_test_app_start(fx);
    json_decref(t);
    t = login(fx, "rebuilt");
    bearer(t, auth, sizeof(auth));
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h, RECIPE, &r2), 201);
    assert_string_not_equal(cmd_test_jstr(r1, "recipe_id"), cmd_test_jstr(r2, "recipe_id"));
    json_decref(r2);
    /* and the new answer is kept for the key */
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h, RECIPE, &r2), 201);
    json_t *r3 = NULL;
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h, RECIPE, &r3), 201);
    assert_true(json_equal(r2, r3));
    json_decref(r1), json_decref(r2), json_decref(r3);
    json_decref(t);
}

/* Raw connection to the app with one full request written. */
static int raw_send(int port, const char *body)
{
    char req[512];
    int fd = cmd_test_raw_connect(port);
    int n = snprintf(req, sizeof(req),
                     "POST /auth/register HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    assert_int_equal(write(fd, req, (size_t)n), n);
    return fd;
}

static void test_batch_same_username(void **state)
{
    struct cmd_test_fx *fx = *state;
    char b1[4096], b2[4096];
    size_t l1 = 0, l2 = 0;
    int s1 = 0, s2 = 0;
    cmd_test_serve_stop(fx); /* drive the loop from here so both requests land in one batch */
    double batches = cmd_test_metric(fx, "stockpot_batches_total", "");
    int fd1 = raw_send(fx->port, "{\"username\":\"twin\",\"email\":\"t1@example.org\","
                                 "\"password\":\"12345678\"}");
    int fd2 = raw_send(fx->port, "{\"username\":\"TWIN\",\"email\":\"t2@example.org\","
                                 "\"password\":\"12345678\"}");
    usleep(50 * 1000);
    for (int i = 0; i < 5000 && (s1 == 0 || s2 == 0); i++) {
        event_base_loop(fx->base, EVLOOP_NONBLOCK);
        if (s1 == 0)
            s1 = cmd_test_raw_pump(fd1, b1, sizeof(b1), &l1);
        if (s2 == 0)
            s2 = cmd_test_raw_pump(fd2, b2, sizeof(b2), &l2);
        usleep(1000);
    }
    close(fd1);
    close(fd2);
    assert_true((s1 == 201 && s2 == 409) || (s1 == 409 && s2 == 201));
    assert_true(cmd_test_metric(fx, "stockpot_batches_total", "") == batches + 1);
    assert_true(cmd_test_metric(fx, "stockpot_batch_size", "") == 2);
    cmd_test_serve_start(fx);
}

static void test_restart_rebuilds_write_model(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *t;
    register_user(fx, "phoenix");
    t = login(fx, "phoenix");
    json_decref(t);
    cmd_test_app_stop(fx);
    cmd_test_rm_tree(fx->wm_dir);
    cmd_test_app_start(fx);
    assert_true(cmd_test_metric(fx, "stockpot_writemodel_events_caught_up_total", "") == 2);
    t = login(fx, "phoenix");
    json_decref(t);
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/register", NULL,
                                   "{\"username\":\"Phoenix\",\"email\":\"p2@example.org\","
                                   "\"password\":\"12345678\"}",
                                   NULL),
                     409);
    assert_int_equal(cmd_test_call(fx, "GET", "/readyz", NULL, NULL, NULL), 200);
}

static void test_event_too_big_fails_alone(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *t;
    char auth[1024];
    cmd_test_app_stop(fx);
    cmd_test_cfg_set(fx, "log.max_event_bytes", "2048");
    cmd_test_app_start(fx);
    register_user(fx, "bigcook");
    t = login(fx, "bigcook");
    bearer(t, auth, sizeof(auth));
    const char *h[] = {auth, NULL};
    char *body = calloc(1, 4096);
    char *desc = calloc(1, 3001);
    memset(desc, 'd', 3000);
    snprintf(body, 4096,
             "{\"title\":\"t\",\"description\":\"%s\",\"ingredients\":[\"a\"],"
             "\"steps\":[\"b\"]}",
             desc);
    double before = cmd_test_metric(fx, "stockpot_events_appended_total", "");
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h, body, NULL), 413);
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == before);
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h, RECIPE, NULL), 201);
    free(body);
    free(desc);
    json_decref(t);
}

/*
 * Audit gap 1: the batch's events are durable but its write model commit fails and so
 * does the catch-up. The app must not decide against the stale write model (the old
 * code answered 412 to the current version and accepted the stale one), must say why on
 * /readyz, and must fold the missed events before deciding again.
 */
static void test_wm_commit_and_catch_up_fail(void **state)
{
    struct cmd_test_fx *fx = *state;
    char auth[1024], path[64], ra[16], why[512];
    json_t *t, *r = NULL;
    register_user(fx, "fragile");
    t = login(fx, "fragile");
    bearer(t, auth, sizeof(auth));
    const char *h[] = {auth, NULL};
    create_recipe(fx, h, path, sizeof(path));

    WITH_LOOP_STOPPED(fx, (fx->app->hooks.fail_commits = 1, fx->app->hooks.fail_catch_up = true));
    /* the event is durable, so the client is told so */
    assert_int_equal(put_title(fx, auth, path, 1, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 2);
    json_decref(r);
    await_ready(fx, 503); /* the answer may come before the write model commit fails */
    assert_int_equal(readyz(fx, why, sizeof(why)), 503);
    assert_non_null(strstr(why, "write model is behind the log"));
    assert_true(cmd_test_metric(fx, "stockpot_writemodel_broken", "") == 1);
    double appended = cmd_test_metric(fx, "stockpot_events_appended_total", "");
    char im[32];
    snprintf(im, sizeof(im), "If-Match: \"1\"");
    const char *h_im[] = {auth, im, NULL};
    assert_int_equal(call_retry(fx, "PUT", path, h_im, "{\"title\":\"lost\"}", ra, sizeof(ra)),
                     503);
    assert_string_equal(ra, "1");
    assert_int_equal(call_retry(fx, "POST", "/recipes", h, RECIPE, ra, sizeof(ra)), 503);
    assert_string_equal(ra, "1");
    assert_int_equal(call_retry(fx, "POST", "/auth/login", NULL,
                                "{\"username\":\"fragile\",\"password\":\"correct horse\"}", ra,
                                sizeof(ra)),
                     503);
    assert_int_equal(call_retry(fx, "GET", "/auth/validate", h, NULL, ra, sizeof(ra)), 503);
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == appended);

    WITH_LOOP_STOPPED(fx, fx->app->hooks.fail_catch_up = false);
    await_ready(fx, 200);
    assert_true(cmd_test_metric(fx, "stockpot_writemodel_broken", "") == 0);
    assert_int_equal(put_title(fx, auth, path, 1, NULL), 412);
    assert_int_equal(put_title(fx, auth, path, 2, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 3);
    json_decref(r);
    /* the checkpoint covers exactly what was folded: a restart sees version 3 */
    cmd_test_app_stop(fx);
    cmd_test_app_start(fx);
    assert_true(cmd_test_metric(fx, "stockpot_writemodel_events_caught_up_total", "") == 0);
    assert_int_equal(put_title(fx, auth, path, 3, NULL), 200);
    json_decref(t);
}

/* "x" repeated: @p n copies of the UTF-8 sequence @p unit, then @p tail. Owned. */
static char *repeat(const char *unit, size_t n, const char *tail)
{
    size_t u = strlen(unit), tl = strlen(tail), k = 0;
    char *s = malloc(u * n + tl + 1);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < u; j++)
            s[k++] = unit[j];
    snprintf(s + k, tl + 1, "%s", tail);
    return s;
}

static int register_as(struct cmd_test_fx *fx, const char *name, const char *email, json_t **out)
{
    json_t *b =
        json_pack("{s:s, s:s, s:s}", "username", name, "email", email, "password", "correct horse");
    char *body = json_dumps(b, JSON_COMPACT);
    int status = cmd_test_call(fx, "POST", "/auth/register", NULL, body, out);
    free(body);
    json_decref(b);
    return status;
}

static int login_as(struct cmd_test_fx *fx, const char *field, const char *value)
{
    json_t *b = json_pack("{s:s, s:s}", field, value, "password", "correct horse");
    char *body = json_dumps(b, JSON_COMPACT);
    int status = cmd_test_call(fx, "POST", "/auth/login", NULL, body, NULL);
    free(body);
    json_decref(b);
    return status;
}

/*
 * Audit gap 2: every indexed value the validators accept fits the write model: emails of
 * 254 code points of 2- and 4-byte characters (old code: 500, keys were capped at 320
 * bytes), the longest username, and login names of 254 four-byte code points (401).
 */
static void test_long_unicode_identity(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *r = NULL;
    char *e2 = repeat("é", 170, "@x.io");                /* 175 code points, 345 bytes */
    char *e2max = repeat("é", 249, "@x.io");             /* 254 code points, 503 bytes */
    char *e4 = repeat("\xF0\x9F\x98\x80", 249, "@x.io"); /* 254 code points, 1001 bytes */
    char *e4up = repeat("\xF0\x9F\x98\x80", 249, "@X.IO");
    char *n4 = repeat("\xF0\x9F\x98\x80", 254, "");
    char *e4long = repeat("\xF0\x9F\x98\x80", 250, "@x.io");   /* 255 code points */
    const char *longname = "abcdefghijklmnopqrstuvwxyz_.-789"; /* 32 */

    assert_int_equal(register_as(fx, "eacute", e2, NULL), 201);
    assert_int_equal(register_as(fx, "eacutemax", e2max, NULL), 201);
    assert_int_equal(register_as(fx, longname, e4, NULL), 201);
    assert_int_equal(register_as(fx, "emoji2", e4up, &r), 409);
    assert_true(cmd_test_names_field(r, "email"));
    json_decref(r);
    assert_int_equal(register_as(fx, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_.-789", "other@x.io", &r), 409);
    assert_true(cmd_test_names_field(r, "username"));
    json_decref(r);
    assert_int_equal(register_as(fx, "emoji3", e4long, &r), 400);
    assert_true(cmd_test_names_field(r, "email"));
    json_decref(r);
    assert_int_equal(login_as(fx, "email", e2), 200);
    assert_int_equal(login_as(fx, "email", e2max), 200);
    assert_int_equal(login_as(fx, "email", e4), 200);
    assert_int_equal(login_as(fx, "email", e4up), 200);
    assert_int_equal(login_as(fx, "username", "ABCDEFGHIJKLMNOPQRSTUVWXYZ_.-789"), 200);
    assert_int_equal(login_as(fx, "username", n4), 401);
    assert_int_equal(login_as(fx, "email", n4), 401);
    /* the rebuilt write model keys them the same way */
    cmd_test_app_stop(fx);
    cmd_test_rm_tree(fx->wm_dir);
    cmd_test_app_start(fx);
    assert_int_equal(login_as(fx, "email", e4), 200);
    assert_int_equal(register_as(fx, "emoji4", e4up, NULL), 409);
    free(e2), free(e2max), free(e4), free(e4up), free(n4), free(e4long);
}

#define REG_ANN "{\"username\":\"ann\",\"email\":\"ann@example.org\",\"password\":\"ann secret 1\"}"
#define REG_BEN "{\"username\":\"ben\",\"email\":\"ben@example.org\",\"password\":\"ben secret 2\"}"

/* Raw read-only look at the write model's LMDB (the app must be stopped). */
struct raw_wm {
    MDB_env *env;
    MDB_txn *txn;
};

static MDB_dbi raw_wm_open(struct raw_wm *w, const char *dir, const char *table)
{
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&w->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(w->env, 16), 0);
    assert_int_equal(mdb_env_set_mapsize(w->env, 64U << 20), 0);
    assert_int_equal(mdb_env_open(w->env, dir, 0, 0640), 0);
    assert_int_equal(mdb_txn_begin(w->env, NULL, 0, &w->txn), 0);
    assert_int_equal(mdb_dbi_open(w->txn, table, 0, &dbi), 0);
    return dbi;
}

static void raw_wm_close(struct raw_wm *w, bool commit)
{
    if (commit)
        assert_int_equal(mdb_txn_commit(w->txn), 0);
    else
        mdb_txn_abort(w->txn);
    mdb_env_close(w->env);
}

static bool mem_has(const void *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    const char *p = hay;
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0)
            return true;
    return false;
}

/*
 * Audit gap 3 (a, b): an anonymous Idempotency-Key names one exact request, so another
 * client's registration with the same key is unrelated (old code: 422); the stored
 * fingerprint is a keyed HMAC, not the plain SHA-256 of a body holding the password.
 */
static void test_idempotency_anonymous(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *r1 = NULL, *r2 = NULL, *r3 = NULL;
    const char *h[] = {"Idempotency-Key: shared-key", NULL};
    double before = cmd_test_metric(fx, "stockpot_events_appended_total", "");
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/register", h, REG_ANN, &r1), 201);
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/register", h, REG_BEN, &r2), 201);
    assert_string_not_equal(cmd_test_jstr(r1, "user_id"), cmd_test_jstr(r2, "user_id"));
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/register", h, REG_ANN, &r3), 201);
    assert_string_equal(cmd_test_jstr(r1, "user_id"), cmd_test_jstr(r3, "user_id"));
    assert_string_equal(cmd_test_jstr(r1, "position"), cmd_test_jstr(r3, "position"));
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == before + 2);
    json_decref(r1), json_decref(r2), json_decref(r3);
    /* without a key the same body is a new command: 409 */
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/register", NULL, REG_ANN, NULL), 409);

    cmd_test_app_stop(fx);
    struct raw_wm w;
    MDB_dbi dbi = raw_wm_open(&w, fx->wm_dir, "idempotency");
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned char plain[2][32];
    const char *bodies[2] = {REG_ANN, REG_BEN};
    for (int i = 0; i < 2; i++) {
        char in[256];
        int n = snprintf(in, sizeof(in), "register\n0\n%s", bodies[i]);
        cmd__sha256(in, (size_t)n, plain[i]);
    }
    int records = 0;
    assert_int_equal(mdb_cursor_open(w.txn, dbi, &cur), 0);
    while (mdb_cursor_get(cur, &k, &v, records ? MDB_NEXT : MDB_FIRST) == 0) {
        records++;
        assert_true(v.mv_size >= 36);
        assert_memory_not_equal(v.mv_data, plain[0], 32);
        assert_memory_not_equal(v.mv_data, plain[1], 32);
        assert_false(mem_has(k.mv_data, k.mv_size, "shared-key"));
        assert_false(mem_has(v.mv_data, v.mv_size, "secret"));
    }
    mdb_cursor_close(cur);
    assert_int_equal(records, 2);
    raw_wm_close(&w, false);
    dbi = raw_wm_open(&w, fx->wm_dir, "meta");
    char secret_key[] = "idem_secret";
    k.mv_data = secret_key, k.mv_size = 11;
    assert_int_equal(mdb_get(w.txn, dbi, &k, &v), 0);
    assert_int_equal(v.mv_size, 32);
    raw_wm_close(&w, false);
}

/* A write model of the old format (no "format" in meta) is emptied and rebuilt. */
static void test_old_format_rebuilt(void **state)
{
    struct cmd_test_fx *fx = *state;
    register_user(fx, "legacy");
    cmd_test_app_stop(fx);
    struct raw_wm w;
    MDB_dbi dbi = raw_wm_open(&w, fx->wm_dir, "meta");
    char format_key[] = "format";
    MDB_val k = {.mv_size = 6, .mv_data = format_key};
    assert_int_equal(mdb_del(w.txn, dbi, &k, NULL), 0);
    raw_wm_close(&w, true);
    cmd_test_app_start(fx);
    assert_true(cmd_test_metric(fx, "stockpot_writemodel_events_caught_up_total", "") == 1);
    json_decref(login(fx, "legacy"));
}

/*
 * A write model made before the Kafka backend (no "log" in meta, one "checkpoint") is
 * kept as the embedded log's (partition 0): no rebuild, idempotency answers survive.
 * One that says it folded another log is rebuilt.
 */
static void test_pre_kafka_write_model_kept(void **state)
{
    struct cmd_test_fx *fx = *state;
    char log_key[] = "log", other[] = "kafka:elsewhere";
    MDB_val k = {.mv_size = 3, .mv_data = log_key};
    MDB_val v = {.mv_size = strlen(other), .mv_data = other};
    struct raw_wm w;
    MDB_dbi dbi;

    register_user(fx, "veteran");
    cmd_test_app_stop(fx);
    dbi = raw_wm_open(&w, fx->wm_dir, "meta");
    assert_int_equal(mdb_del(w.txn, dbi, &k, NULL), 0);
    raw_wm_close(&w, true);
    cmd_test_app_start(fx);
    assert_true(cmd_test_metric(fx, "stockpot_writemodel_events_caught_up_total", "") == 0);
    json_decref(login(fx, "veteran"));
    cmd_test_app_stop(fx);
    dbi = raw_wm_open(&w, fx->wm_dir, "meta");
    assert_int_equal(mdb_put(w.txn, dbi, &k, &v, 0), 0);
    raw_wm_close(&w, true);
    cmd_test_app_start(fx);
    /* UserRegistered and one SessionStarted */
    assert_true(cmd_test_metric(fx, "stockpot_writemodel_events_caught_up_total", "") == 2);
    json_decref(login(fx, "veteran"));
}

static int64_t fixed_id(void *ud)
{
    return *(const int64_t *)ud;
}

/*
 * Audit gap 4: a new entity's stream must be empty. Force the id generator to repeat an
 * id in use (as a clock step back could): 503 with Retry-After and nothing appended,
 * for users, sessions and recipes (old code appended version 2 of the old stream).
 */
static void test_fresh_id_collision(void **state)
{
    struct cmd_test_fx *fx = *state;
    json_t *r = NULL;
    char ra[16], auth[1024];
    int64_t id;
    assert_int_equal(register_as(fx, "first", "first@example.org", &r), 201);
    assert_int_equal(es_id_parse(cmd_test_jstr(r, "user_id"), &id), 0);
    json_decref(r);
    WITH_LOOP_STOPPED(fx, (fx->app->hooks.next_id = fixed_id, fx->app->hooks.next_id_ud = &id));
    double before = cmd_test_metric(fx, "stockpot_events_appended_total", "");
    assert_int_equal(call_retry(fx, "POST", "/auth/register", NULL,
                                "{\"username\":\"second\",\"email\":\"s@example.org\","
                                "\"password\":\"12345678\"}",
                                ra, sizeof(ra)),
                     503);
    assert_string_equal(ra, "1");
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == before);
    json_t *t = login(fx, "first"); /* session-<id> is still free */
    bearer(t, auth, sizeof(auth));
    assert_int_equal(call_retry(fx, "POST", "/auth/login", NULL,
                                "{\"username\":\"first\",\"password\":\"correct horse\"}", ra,
                                sizeof(ra)),
                     503);
    const char *h[] = {auth, NULL};
    assert_int_equal(cmd_test_call(fx, "POST", "/recipes", h, RECIPE, NULL), 201); /* recipe-<id> */
    assert_int_equal(call_retry(fx, "POST", "/recipes", h, RECIPE, ra, sizeof(ra)), 503);
    assert_true(cmd_test_metric(fx, "stockpot_events_appended_total", "") == before + 2);
    WITH_LOOP_STOPPED(fx, fx->app->hooks.next_id = NULL);
    assert_int_equal(register_as(fx, "second", "s@example.org", NULL), 201);
    json_decref(t);
}

/* A recipe body with a description of 10,000 four-byte code points (40 KB). */
static char *big_recipe(void)
{
    char *desc = repeat("\xF0\x9F\x8D\xB2", 10000, "");
    size_t n = strlen(desc) + 128;
    char *body = malloc(n);
    snprintf(body, n,
             "{\"title\":\"soup\",\"description\":\"%s\",\"ingredients\":[\"a\"],"
             "\"steps\":[\"b\"]}",
             desc);
    free(desc);
    return body;
}

/*
 * Audit gap 5: a full log (log.map_size_mb = 1) refuses the append: 503 with
 * Retry-After: 1, nothing of the failed batch reaches the write model, and once the
 * log has room an If-Match on the old version still succeeds.
 */
static void test_log_full(void **state)
{
    struct cmd_test_fx *fx = *state;
    char path[200], auth[1024], im[32], ra[16], why[512];
    cmd_test_app_stop(fx);
    snprintf(path, sizeof(path), "%s/small-log", fx->dir);
    cmd_test_cfg_set(fx, "log.dir", path);
    cmd_test_cfg_set(fx, "log.map_size_mb", "1");
    cmd_test_cfg_set(fx, "http.max_body_bytes", "131072");
    cmd_test_app_start(fx);
    register_user(fx, "filler");
    json_t *t = login(fx, "filler");
    bearer(t, auth, sizeof(auth));
    const char *h[] = {auth, NULL};
    char recipe[64];
    create_recipe(fx, h, recipe, sizeof(recipe));
    char *body = big_recipe();
    int status = 201, posts = 0;
    while (status == 201 && posts++ < 200)
        status = call_retry(fx, "POST", "/recipes", h, body, ra, sizeof(ra));
    assert_int_equal(status, 503);
    assert_string_equal(ra, "1");
    assert_true(posts > 1);
    assert_true(cmd_test_metric(fx, "stockpot_event_append_failures_total", "") >= 1);
    /* a full log is not a broken write model: /readyz stays 200 */
    assert_int_equal(readyz(fx, why, sizeof(why)), 200);
    snprintf(im, sizeof(im), "If-Match: \"1\"");
    const char *h_im[] = {auth, im, NULL};
    body[strlen("{\"title\":\"")] = 'S'; /* a different body, same size */
    assert_int_equal(call_retry(fx, "PUT", recipe, h_im, body, ra, sizeof(ra)), 503);
    assert_string_equal(ra, "1");
    free(body);
    cmd_test_app_stop(fx);
    cmd_test_cfg_set(fx, "log.map_size_mb", "64");
    cmd_test_app_start(fx);
    json_t *r = NULL;
    assert_int_equal(put_title(fx, auth, recipe, 1, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 2);
    json_decref(r);
    json_decref(t);
}

/* POST @p path with @p body; the status, with the RateLimit and Retry-After fields as
 * "limit/remaining/reset/retry-after" ("-" for an absent one) in @p fields. */
static int
limited_call(struct cmd_test_fx *fx, const char *path, const char *body, char *fields, size_t size)
{
    static const char *const names[] = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                                        "Retry-After"};
    const char *headers[] = {"Content-Type: application/json", NULL};
    struct sp_test_resp resp = {0};
    int status = sp_test_http(fx->port, "POST", path, headers, body, &resp);
    size_t len = 0;

    for (size_t i = 0; i < 4; i++) {
        const char *v = sp_test_resp_header(&resp, names[i]);
        len += (size_t)snprintf(fields + len, size - len, "%s%s", i ? "/" : "", v ? v : "-");
    }
    if (status == 429) {
        json_t *p = json_loads(resp.body, 0, NULL);
        assert_non_null(p);
        assert_string_equal(sp_test_resp_header(&resp, "Content-Type"), "application/problem+json");
        assert_string_equal(cmd_test_jstr(p, "type"), "https://stockpot.dev/problems/rate-limited");
        assert_non_null(strstr(cmd_test_jstr(p, "detail"), "retry in"));
        json_decref(p);
    }
    sp_test_resp_release(&resp);
    return status;
}

/* Login and registration are limited per client address, each counted apart; the
 * answers carry the RateLimit fields, a refused one 429 with Retry-After, and a refused
 * registration registers nobody. */
static void test_rate_limits(void **state)
{
    struct cmd_test_fx *fx = *state;
    char fields[128], body[256];

    cmd_test_app_stop(fx);
    cmd_test_cfg_set(fx, "auth.rate_limit_per_minute", "3");
    cmd_test_app_start(fx);
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof(body),
                 "{\"username\":\"rl%d\",\"email\":\"rl%d@example.org\","
                 "\"password\":\"12345678\"}",
                 i, i);
        assert_int_equal(limited_call(fx, "/auth/register", body, fields, sizeof(fields)), 201);
        snprintf(body, sizeof(body), "3/%d/%d/-", 2 - i, 20 * (i + 1));
        assert_string_equal(fields, body);
    }
    assert_int_equal(limited_call(fx, "/auth/register",
                                  "{\"username\":\"rl9\",\"email\":\"rl9@example.org\","
                                  "\"password\":\"12345678\"}",
                                  fields, sizeof(fields)),
                     429);
    assert_string_equal(fields, "3/0/60/20");
    /* login has its own budget, bad credentials count too */
    for (int i = 0; i < 3; i++)
        assert_int_equal(limited_call(fx, "/auth/login",
                                      i == 0 ? "{\"username\":\"rl0\",\"password\":\"12345678\"}"
                                             : "{\"username\":\"rl0\",\"password\":\"wrong\"}",
                                      fields, sizeof(fields)),
                         i == 0 ? 200 : 401);
    assert_int_equal(limited_call(fx, "/auth/login",
                                  "{\"username\":\"rl0\",\"password\":\"12345678\"}", fields,
                                  sizeof(fields)),
                     429);
    /* the refused registration registered nobody */
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/login", NULL,
                                   "{\"username\":\"rl9\",\"password\":\"12345678\"}", NULL),
                     429);
    cmd_test_app_stop(fx);
    cmd_test_cfg_set(fx, "auth.rate_limit_per_minute", "0");
    cmd_test_app_start(fx);
    assert_int_equal(cmd_test_call(fx, "POST", "/auth/login", NULL,
                                   "{\"username\":\"rl9\",\"password\":\"12345678\"}", NULL),
                     401);
}

int main(void)
{
    evthread_use_pthreads();
    sp_log_setup(SP_LOG_WARN, "test-command-api");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_validation_names_fields, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_auth_flow, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_bad_tokens, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_operator_role, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_lifecycle, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_key, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_after_failed_commit, setup,
                                        cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_after_rebuild, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_batch_same_username, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_restart_rebuilds_write_model, setup,
                                        cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_event_too_big_fails_alone, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_wm_commit_and_catch_up_fail, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_long_unicode_identity, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_anonymous, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_old_format_rebuilt, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_pre_kafka_write_model_kept, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_fresh_id_collision, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_log_full, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_rate_limits, setup, cmd_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
