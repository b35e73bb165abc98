/*
 * The issue 4 commands over real HTTP (profiles, follows, likes, comments, notification
 * reads): the real handlers, write model and embedded LMDB log in a mkdtemp directory,
 * driven by the sp_testsupport client while the app's loop runs in a second thread; the
 * events are read back from the log itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "cmd/app.h"
#include "app_priv.h" /* the app's log handle, to read the events back */
#include "sp/config.h"
#include "sp/log.h"
#include "sp_test_http.h"
#include "cmd_test.h"

#include "sp/banned.h"

static int setup(void **state)
{
    struct cmd_test_fx *fx = calloc(1, sizeof(*fx));
    cmd_test_fx_init(fx, "/tmp/cmd-social-XXXXXX");
    cmd_test_fx_use_lmdb(fx);
    cmd_test_app_start(fx);
    *state = fx;
    return 0;
}

/* ---- helpers ---- */

/* Request; the status, and the parsed body (owned) in *out if out != NULL. */
static int call(struct cmd_test_fx *fx,
                const char *method,
                const char *path,
                const char *const *headers,
                const char *body,
                json_t **out)
{
    struct sp_test_resp resp = {0};
    int status = sp_test_http(fx->port, method, path, headers, body, &resp);
    assert_true(status > 0);
    if (out) {
        *out = json_loadb(resp.body, resp.body_len, 0, NULL);
        if (!*out)
            fail_msg("%s %s: body is not JSON: %s", method, path, resp.body);
    }
    if (status < 300 && out) {
        /* every success carries the consistency token, in the body and the header */
        const char *h = sp_test_resp_header(&resp, "Stockpot-Position");
        const char *b = json_string_value(json_object_get(*out, "position"));
        if (!h || !b || strcmp(h, b) != 0)
            fail_msg("%s %s: position header %s, body %s", method, path, h ? h : "-", b ? b : "-");
    }
    sp_test_resp_release(&resp);
    return status;
}

/* A user with a session: its id and "Authorization: Bearer ..." header. */
struct user {
    char id[24];
    char auth[1024];
    const char *h[2]; /* {auth, NULL} */
};

static void user_new(struct cmd_test_fx *fx, const char *name, struct user *u)
{
    char body[256];
    json_t *r = NULL;
    snprintf(body, sizeof(body),
             "{\"username\":\"%s\",\"email\":\"%s@example.org\",\"password\":\"correct horse\"}",
             name, name);
    assert_int_equal(call(fx, "POST", "/auth/register", NULL, body, &r), 201);
    snprintf(u->id, sizeof(u->id), "%s", cmd_test_jstr(r, "user_id"));
    json_decref(r);
    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"correct horse\"}", name);
    assert_int_equal(call(fx, "POST", "/auth/login", NULL, body, &r), 200);
    snprintf(u->auth, sizeof(u->auth), "Authorization: Bearer %s",
             cmd_test_jstr(r, "access_token"));
    json_decref(r);
    u->h[0] = u->auth;
    u->h[1] = NULL;
}

#define RECIPE "{\"title\":\"soup\",\"ingredients\":[\"water\"],\"steps\":[\"boil\"]}"

/* Create RECIPE as @p u; its id into @p id. */
static void recipe_new(struct cmd_test_fx *fx, const struct user *u, char *id, size_t size)
{
    json_t *r = NULL;
    assert_int_equal(call(fx, "POST", "/recipes", u->h, RECIPE, &r), 201);
    snprintf(id, size, "%s", cmd_test_jstr(r, "recipe_id"));
    json_decref(r);
}

/* Status of @p method on "<fmt>"-formatted path as @p u; body answer into *out. */
__attribute__((format(printf, 6, 7))) static int act(struct cmd_test_fx *fx,
                                                     const struct user *u,
                                                     const char *method,
                                                     const char *body,
                                                     json_t **out,
                                                     const char *fmt,
                                                     ...)
{
    char path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    json_t *tmp = NULL;
    int status = call(fx, method, path, u ? u->h : NULL, body, out ? out : &tmp);
    json_decref(tmp);
    return status;
}

struct collect {
    const char *type;
    json_t *events; /* [{stream, version, position, data}] */
};

static int collect_cb(const struct es_log_record *rec, void *ud)
{
    struct collect *col = ud;
    struct es_event ev;
    char tok[32];
    es_event_init(&ev);
    assert_int_equal(es_log_record_decode(rec, &ev, NULL), 0);
    if (strcmp(ev.type, col->type) == 0) {
        es_position_format(ev.pos, tok, sizeof(tok));
        json_array_append_new(col->events, json_pack("{s:s, s:I, s:s, s:O}", "stream", ev.stream,
                                                     "version", (json_int_t)ev.stream_version,
                                                     "position", tok, "data", ev.data));
    }
    es_event_release(&ev);
    return 0;
}

/* Every event of @p type in the log, in order (owned). Stops the loop meanwhile. */
static json_t *events(struct cmd_test_fx *fx, const char *type)
{
    struct collect col = {.type = type, .events = json_array()};
    int64_t next = 0;
    cmd_test_serve_stop(fx);
    assert_int_equal(es_log_read(fx->app->log, 0, 0, 1000000, collect_cb, &col, &next, NULL), 0);
    cmd_test_serve_start(fx);
    return col.events;
}

static size_t count(struct cmd_test_fx *fx, const char *type)
{
    json_t *evs = events(fx, type);
    size_t n = json_array_size(evs);
    json_decref(evs);
    return n;
}

/* Field @p key of the data of the @p i-th event in @p evs. */
static const char *data_str(json_t *evs, size_t i, const char *key)
{
    return cmd_test_jstr(json_object_get(json_array_get(evs, i), "data"), key);
}

static const char *ev_str(json_t *evs, size_t i, const char *key)
{
    return cmd_test_jstr(json_array_get(evs, i), key);
}

/* The events of @p type (owned), asserting there is exactly one, on stream "<category>-<id>". */
static json_t *
only_event(struct cmd_test_fx *fx, const char *type, const char *category, const char *id)
{
    char stream[64];
    json_t *evs = events(fx, type);
    assert_int_equal(json_array_size(evs), 1);
    snprintf(stream, sizeof(stream), "%s-%s", category, id);
    assert_string_equal(ev_str(evs, 0, "stream"), stream);
    return evs;
}

/* ---- tests ---- */

static void test_profile_update(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct user a, b;
    json_t *r = NULL;
    char long_name[128];
    user_new(fx, "alice", &a);
    user_new(fx, "bob", &b);

    const char body[] = "{\"full_name\":\"Alice Ä\",\"bio\":null,\"avatar_media_id\":\"42\"}";
    assert_int_equal(act(fx, &a, "PUT", body, &r, "/users/%s", a.id), 200);
    assert_string_equal(cmd_test_jstr(r, "user_id"), a.id);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 2);
    json_decref(r);
    json_t *evs = only_event(fx, "ProfileUpdated", "user", a.id);
    json_t *data = json_object_get(json_array_get(evs, 0), "data");
    assert_int_equal(json_object_size(data), 3);
    assert_string_equal(data_str(evs, 0, "full_name"), "Alice Ä");
    assert_true(json_is_null(json_object_get(data, "bio")));
    assert_string_equal(data_str(evs, 0, "avatar_media_id"), "42");
    json_decref(evs);

    /* only the changed fields; If-Match on the user stream's version */
    const char *im_old[] = {a.auth, "If-Match: \"1\"", NULL};
    const char *im_cur[] = {a.auth, "If-Match: \"2\"", NULL};
    char path[64];
    snprintf(path, sizeof(path), "/users/%s", a.id);
    assert_int_equal(call(fx, "PUT", path, im_old, "{\"bio\":\"hi\"}", &r), 412);
    json_decref(r);
    assert_int_equal(call(fx, "PUT", path, im_cur, "{\"bio\":\"hi\\nthere\"}", &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 3);
    json_decref(r);
    evs = events(fx, "ProfileUpdated");
    assert_int_equal(json_array_size(evs), 2);
    assert_int_equal(json_object_size(json_object_get(json_array_get(evs, 1), "data")), 1);
    assert_string_equal(data_str(evs, 1, "bio"), "hi\nthere");
    json_decref(evs);

    /* someone else's profile, no token, bad fields */
    assert_int_equal(act(fx, &b, "PUT", "{\"bio\":\"mine\"}", NULL, "/users/%s", a.id), 403);
    assert_int_equal(act(fx, NULL, "PUT", "{\"bio\":\"x\"}", NULL, "/users/%s", a.id), 401);
    memset(long_name, 'n', 101);
    long_name[101] = '\0';
    char bad[512];
    snprintf(bad, sizeof(bad),
             "{\"full_name\":\"%s\",\"bio\":5,\"avatar_media_id\":\"x1\",\"admin\":true}",
             long_name);
    assert_int_equal(act(fx, &a, "PUT", bad, &r, "/users/%s", a.id), 400);
    assert_true(cmd_test_names_field(r, "full_name") && cmd_test_names_field(r, "bio") &&
                cmd_test_names_field(r, "avatar_media_id") && cmd_test_names_field(r, "admin"));
    json_decref(r);
    assert_int_equal(act(fx, &a, "PUT", "{}", &r, "/users/%s", a.id), 400);
    assert_true(cmd_test_names_field(r, "body"));
    json_decref(r);
    assert_int_equal(count(fx, "ProfileUpdated"), 2);
}

static void test_follow(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct user a, b;
    json_t *r1 = NULL, *r2 = NULL;
    user_new(fx, "alice", &a);
    user_new(fx, "bob", &b);

    assert_int_equal(act(fx, &a, "POST", NULL, &r1, "/users/%s/follow", b.id), 200);
    assert_true(json_is_true(json_object_get(r1, "following")));
    assert_int_equal(act(fx, &a, "POST", NULL, &r2, "/users/%s/follow", b.id), 200);
    assert_true(json_is_true(json_object_get(r2, "following")));
    /* a repeat is a no-op answering the follower stream's last position */
    assert_string_equal(cmd_test_jstr(r1, "position"), cmd_test_jstr(r2, "position"));
    json_t *evs = only_event(fx, "UserFollowed", "user", a.id);
    assert_string_equal(ev_str(evs, 0, "position"), cmd_test_jstr(r1, "position"));
    assert_string_equal(data_str(evs, 0, "user_id"), a.id);
    assert_string_equal(data_str(evs, 0, "followee_id"), b.id);
    json_decref(evs);
    json_decref(r1), json_decref(r2);

    /* self, unknown, malformed, anonymous */
    assert_int_equal(act(fx, &a, "POST", NULL, &r1, "/users/%s/follow", a.id), 400);
    assert_true(cmd_test_names_field(r1, "id"));
    json_decref(r1);
    assert_int_equal(act(fx, &a, "POST", NULL, NULL, "/users/%s/follow", "123"), 404);
    assert_int_equal(act(fx, &a, "POST", NULL, NULL, "/users/%s/follow", "abc"), 404);
    assert_int_equal(act(fx, NULL, "POST", NULL, NULL, "/users/%s/follow", b.id), 401);

    /* unfollow, then its repeat */
    assert_int_equal(act(fx, &a, "POST", NULL, &r1, "/users/%s/unfollow", b.id), 200);
    assert_true(json_is_false(json_object_get(r1, "following")));
    assert_int_equal(act(fx, &a, "POST", NULL, &r2, "/users/%s/unfollow", b.id), 200);
    assert_string_equal(cmd_test_jstr(r1, "position"), cmd_test_jstr(r2, "position"));
    evs = only_event(fx, "UserUnfollowed", "user", a.id);
    assert_string_equal(data_str(evs, 0, "followee_id"), b.id);
    json_decref(evs);
    json_decref(r1), json_decref(r2);
    /* following again is a new event */
    assert_int_equal(act(fx, &a, "POST", NULL, NULL, "/users/%s/follow", b.id), 200);
    assert_int_equal(count(fx, "UserFollowed"), 2);
}

static void test_like(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct user a, b;
    json_t *r1 = NULL, *r2 = NULL;
    char rid[24];
    user_new(fx, "author", &a);
    user_new(fx, "fan", &b);
    recipe_new(fx, &a, rid, sizeof(rid));

    assert_int_equal(act(fx, &b, "POST", NULL, &r1, "/recipes/%s/like", rid), 200);
    assert_true(json_is_true(json_object_get(r1, "liked")));
    assert_int_equal(act(fx, &b, "POST", NULL, &r2, "/recipes/%s/like", rid), 200);
    assert_string_equal(cmd_test_jstr(r1, "position"), cmd_test_jstr(r2, "position"));
    json_decref(r1), json_decref(r2);
    json_t *evs = only_event(fx, "RecipeLiked", "user", b.id);
    assert_string_equal(data_str(evs, 0, "user_id"), b.id);
    assert_string_equal(data_str(evs, 0, "recipe_id"), rid);
    assert_string_equal(data_str(evs, 0, "recipe_author_id"), a.id);
    json_decref(evs);

    /* likes are not on the recipe's stream: its version is still 1 */
    const char *im[] = {a.auth, "If-Match: \"1\"", NULL};
    char path[64];
    snprintf(path, sizeof(path), "/recipes/%s", rid);
    assert_int_equal(call(fx, "PUT", path, im, "{\"title\":\"soup 2\"}", &r1), 200);
    json_decref(r1);

    assert_int_equal(act(fx, &b, "DELETE", NULL, &r1, "/recipes/%s/like", rid), 200);
    assert_true(json_is_false(json_object_get(r1, "liked")));
    assert_int_equal(act(fx, &b, "DELETE", NULL, &r2, "/recipes/%s/like", rid), 200);
    assert_string_equal(cmd_test_jstr(r1, "position"), cmd_test_jstr(r2, "position"));
    json_decref(r1), json_decref(r2);
    evs = events(fx, "RecipeUnliked");
    assert_int_equal(json_array_size(evs), 1);
    assert_string_equal(data_str(evs, 0, "recipe_author_id"), a.id);
    json_decref(evs);

    assert_int_equal(act(fx, NULL, "POST", NULL, NULL, "/recipes/%s/like", rid), 401);
    assert_int_equal(act(fx, &b, "POST", NULL, NULL, "/recipes/%s/like", "999"), 404);
    assert_int_equal(act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s", rid), 200);
    assert_int_equal(act(fx, &b, "POST", NULL, NULL, "/recipes/%s/like", rid), 404);
    assert_int_equal(count(fx, "RecipeLiked"), 1);
}

static void test_comments(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct user a, b, c;
    json_t *r = NULL;
    char rid[24], other_rid[24], cid[24], cid2[24];
    user_new(fx, "author", &a);
    user_new(fx, "critic", &b);
    user_new(fx, "stranger", &c);
    recipe_new(fx, &a, rid, sizeof(rid));
    recipe_new(fx, &a, other_rid, sizeof(other_rid));

    assert_int_equal(act(fx, &b, "POST", "{\"content\":\"too salty\\nbut good\"}", &r,
                         "/recipes/%s/comments", rid),
                     201);
    snprintf(cid, sizeof(cid), "%s", cmd_test_jstr(r, "comment_id"));
    json_decref(r);
    json_t *evs = only_event(fx, "RecipeCommented", "comment", cid);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(evs, 0), "version")), 1);
    assert_string_equal(data_str(evs, 0, "comment_id"), cid);
    assert_string_equal(data_str(evs, 0, "recipe_id"), rid);
    assert_string_equal(data_str(evs, 0, "user_id"), b.id);
    assert_string_equal(data_str(evs, 0, "content"), "too salty\nbut good");
    assert_string_equal(data_str(evs, 0, "recipe_author_id"), a.id);
    json_decref(evs);

    /* validation, unknown recipe, anonymous */
    char body[2200] = "{\"content\":\"";
    size_t k = strlen(body);
    memset(body + k, 'x', 2001); /* one code point too many */
    snprintf(body + k + 2001, sizeof(body) - k - 2001, "\"}");
    assert_int_equal(act(fx, &b, "POST", body, &r, "/recipes/%s/comments", rid), 400);
    assert_true(cmd_test_names_field(r, "content"));
    json_decref(r);
    assert_int_equal(act(fx, &b, "POST", "{\"content\":\"\"}", &r, "/recipes/%s/comments", rid),
                     400);
    assert_true(cmd_test_names_field(r, "content"));
    json_decref(r);
    assert_int_equal(act(fx, &b, "POST", "{\"text\":\"x\"}", &r, "/recipes/%s/comments", rid), 400);
    assert_true(cmd_test_names_field(r, "content") && cmd_test_names_field(r, "text"));
    json_decref(r);
    assert_int_equal(act(fx, &b, "POST", "{\"content\":\"x\"}", NULL, "/recipes/1/comments"), 404);
    assert_int_equal(
        act(fx, NULL, "POST", "{\"content\":\"x\"}", NULL, "/recipes/%s/comments", rid), 401);

    /* delete: not a stranger, not under another recipe; the recipe's author may */
    assert_int_equal(act(fx, &c, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, cid), 403);
    assert_int_equal(act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", other_rid, cid),
                     404);
    assert_int_equal(act(fx, &a, "DELETE", NULL, &r, "/recipes/%s/comments/%s", rid, cid), 200);
    assert_string_equal(cmd_test_jstr(r, "comment_id"), cid);
    json_decref(r);
    assert_int_equal(act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, cid), 404);
    assert_int_equal(act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, "77"), 404);
    evs = only_event(fx, "CommentDeleted", "comment", cid);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(evs, 0), "version")), 2);
    assert_string_equal(data_str(evs, 0, "comment_id"), cid);
    assert_string_equal(data_str(evs, 0, "recipe_id"), rid);
    assert_string_equal(data_str(evs, 0, "recipe_author_id"), a.id);
    json_decref(evs);

    /* the comment's author may delete it too */
    assert_int_equal(
        act(fx, &b, "POST", "{\"content\":\"again\"}", &r, "/recipes/%s/comments", rid), 201);
    snprintf(cid2, sizeof(cid2), "%s", cmd_test_jstr(r, "comment_id"));
    json_decref(r);
    assert_int_equal(act(fx, &b, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, cid2), 200);
    assert_int_equal(count(fx, "CommentDeleted"), 2);
}

static void test_notifications_read(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct user a;
    json_t *r1 = NULL, *r2 = NULL;
    user_new(fx, "reader", &a);
    assert_int_equal(
        act(fx, &a, "POST", "{\"up_to_id\":\"7300000000000000000\"}", &r1, "/notifications/read"),
        200);
    /* an older mark changes nothing */
    assert_int_equal(act(fx, &a, "POST", "{\"up_to_id\":\"5\"}", &r2, "/notifications/read"), 200);
    assert_string_equal(cmd_test_jstr(r1, "position"), cmd_test_jstr(r2, "position"));
    json_decref(r1), json_decref(r2);
    json_t *evs = only_event(fx, "NotificationsRead", "user", a.id);
    assert_string_equal(data_str(evs, 0, "user_id"), a.id);
    assert_string_equal(data_str(evs, 0, "up_to_id"), "7300000000000000000");
    json_decref(evs);
    assert_int_equal(act(fx, &a, "POST", "{}", &r1, "/notifications/read"), 400);
    assert_true(cmd_test_names_field(r1, "up_to_id"));
    json_decref(r1);
    assert_int_equal(act(fx, &a, "POST", "{\"up_to_id\":12}", &r1, "/notifications/read"), 400);
    assert_true(cmd_test_names_field(r1, "up_to_id"));
    json_decref(r1);
    assert_int_equal(act(fx, NULL, "POST", "{\"up_to_id\":\"9\"}", NULL, "/notifications/read"),
                     401);
}

static void test_revoked_session(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct user a, b;
    user_new(fx, "leaver", &a);
    user_new(fx, "stayer", &b);
    assert_int_equal(act(fx, &a, "POST", NULL, NULL, "/auth/logout"), 200);
    assert_int_equal(act(fx, &a, "POST", NULL, NULL, "/users/%s/follow", b.id), 401);
    assert_int_equal(act(fx, &a, "PUT", "{\"bio\":\"x\"}", NULL, "/users/%s", a.id), 401);
    assert_int_equal(count(fx, "UserFollowed"), 0);
}

/* Raw connection with one full request written (answered once the loop runs). */
static int raw_send(int port, const char *method, const char *path, const char *auth)
{
    char req[2048];
    int fd = cmd_test_raw_connect(port);
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n"
                     "Content-Length: 0\r\n\r\n",
                     method, path, auth);
    assert_int_equal(write(fd, req, (size_t)n), n);
    return fd;
}

#define N_RAW 4

/* A POST to "/<coll>/<id>/<action>". */
struct raw_post {
    const char *coll, *id, *action;
};

/* POST N_RAW requests, answer them all in one group-commit batch, check they are all 200. */
static void
one_batch(struct cmd_test_fx *fx, const struct raw_post *posts, const char *auth, char bufs[][4096])
{
    int fds[N_RAW], status[N_RAW];
    size_t lens[N_RAW] = {0};
    char path[96];
    int done = 0;
    cmd_test_serve_stop(fx); /* drive the loop from here so every request lands in one batch */
    double batches = sp_metrics_value(cmd_app_metrics(fx->app), "stockpot_batches_total", "");
    for (int i = 0; i < N_RAW; i++) {
        snprintf(path, sizeof(path), "/%s/%s/%s", posts[i].coll, posts[i].id, posts[i].action);
        fds[i] = raw_send(fx->port, "POST", path, auth);
        status[i] = 0;
    }
    usleep(50 * 1000);
    for (int k = 0; k < 5000 && done < N_RAW; k++) {
        event_base_loop(fx->base, EVLOOP_NONBLOCK);
        for (int i = 0; i < N_RAW; i++) {
            if (status[i] == 0 &&
                (status[i] = cmd_test_raw_pump(fds[i], bufs[i], 4096, &lens[i])) != 0)
                done++;
        }
        usleep(1000);
    }
    for (int i = 0; i < N_RAW; i++)
        close(fds[i]);
    assert_true(sp_metrics_value(cmd_app_metrics(fx->app), "stockpot_batches_total", "") ==
                batches + 1);
    cmd_test_serve_start(fx);
    for (int i = 0; i < N_RAW; i++)
        assert_int_equal(status[i], 200);
}

/* The "position" of the JSON body of a raw answer (static buffer). */
static const char *raw_position(const char *buf)
{
    static char pos[64];
    const char *p = strstr(buf, "\"position\":\"");
    assert_non_null(p);
    p += strlen("\"position\":\"");
    size_t n = strcspn(p, "\"");
    assert_true(n < sizeof(pos));
    memcpy(pos, p, n);
    pos[n] = '\0';
    return pos;
}

/* Identical follows and likes in one batch: one event each, all answered with it. */
static void test_duplicates_in_one_batch(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct user a, b;
    char rid[24], bufs[N_RAW][4096], first[64];
    user_new(fx, "eager", &a);
    user_new(fx, "idol", &b);
    recipe_new(fx, &b, rid, sizeof(rid));
    const struct raw_post twice[N_RAW] = {
        {"users", b.id, "follow"},
        {"users", b.id, "follow"},
        {"recipes", rid, "like"},
        {"recipes", rid, "like"},
    };
    one_batch(fx, twice, a.auth, bufs);
    assert_int_equal(count(fx, "UserFollowed"), 1);
    assert_int_equal(count(fx, "RecipeLiked"), 1);
    /* the no-ops answer the position of the follower stream's last event in the batch */
    snprintf(first, sizeof(first), "%s", raw_position(bufs[2]));
    assert_string_equal(raw_position(bufs[3]), first);
    assert_string_not_equal(raw_position(bufs[0]), first);
    assert_string_equal(raw_position(bufs[1]), raw_position(bufs[0]));

    /* unfollow, follow, unfollow, unfollow: three events, the last a no-op */
    const struct raw_post toggles[N_RAW] = {
        {"users", b.id, "unfollow"},
        {"users", b.id, "follow"},
        {"users", b.id, "unfollow"},
        {"users", b.id, "unfollow"},
    };
    one_batch(fx, toggles, a.auth, bufs);
    assert_int_equal(count(fx, "UserFollowed"), 2);
    assert_int_equal(count(fx, "UserUnfollowed"), 2);
    snprintf(first, sizeof(first), "%s", raw_position(bufs[2]));
    assert_string_equal(raw_position(bufs[3]), first);
}

/* Deleting the write model: catch-up rebuilds follows, likes, comments and positions. */
static void test_catch_up_rebuilds_social(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct user a, b;
    json_t *r = NULL;
    char rid[24], cid[24], last_pos[64];
    user_new(fx, "author", &a);
    user_new(fx, "fan", &b);
    recipe_new(fx, &a, rid, sizeof(rid));
    assert_int_equal(act(fx, &b, "POST", NULL, NULL, "/users/%s/follow", a.id), 200);
    assert_int_equal(act(fx, &b, "POST", "{\"content\":\"yum\"}", &r, "/recipes/%s/comments", rid),
                     201);
    snprintf(cid, sizeof(cid), "%s", cmd_test_jstr(r, "comment_id"));
    json_decref(r);
    assert_int_equal(act(fx, &b, "POST", NULL, &r, "/recipes/%s/like", rid), 200);
    snprintf(last_pos, sizeof(last_pos), "%s", cmd_test_jstr(r, "position"));
    json_decref(r);
    size_t follows = count(fx, "UserFollowed"), likes = count(fx, "RecipeLiked");

    cmd_test_app_stop(fx);
    cmd_test_rm_tree(fx->wm_dir);
    cmd_test_app_start(fx);
    /* repeats are still no-ops, answering the rebuilt last position of b's stream */
    assert_int_equal(act(fx, &b, "POST", NULL, &r, "/users/%s/follow", a.id), 200);
    assert_string_equal(cmd_test_jstr(r, "position"), last_pos);
    json_decref(r);
    assert_int_equal(act(fx, &b, "POST", NULL, &r, "/recipes/%s/like", rid), 200);
    assert_string_equal(cmd_test_jstr(r, "position"), last_pos);
    json_decref(r);
    assert_int_equal(count(fx, "UserFollowed"), follows);
    assert_int_equal(count(fx, "RecipeLiked"), likes);
    /* the comment is known with its author and recipe */
    assert_int_equal(act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, cid), 200);
    assert_int_equal(act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, cid), 404);
    assert_int_equal(act(fx, &b, "POST", NULL, NULL, "/users/%s/unfollow", a.id), 200);
    assert_int_equal(count(fx, "UserUnfollowed"), 1);
}

int main(void)
{
    evthread_use_pthreads();
    sp_log_setup(SP_LOG_WARN, "test-command-social");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_profile_update, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_follow, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_like, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_comments, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_notifications_read, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_revoked_session, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_in_one_batch, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_rebuilds_social, setup, cmd_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
