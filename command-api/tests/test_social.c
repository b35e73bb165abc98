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

#define RECIPE "{\"title\":\"soup\",\"ingredients\":[\"water\"],\"steps\":[\"boil\"]}"

/* Create RECIPE as @p u; its id into @p id. */
static void recipe_new(struct cmd_test_fx *fx, const struct cmd_test_user *u, char *id, size_t size)
{
    json_t *r = NULL;
    assert_int_equal(cmd_test_call_pos(fx, "POST", "/recipes", u->h, RECIPE, &r), 201);
    snprintf(id, size, "%s", cmd_test_jstr(r, "recipe_id"));
    json_decref(r);
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
    json_t *evs = cmd_test_events(fx, type);
    assert_int_equal(json_array_size(evs), 1);
    snprintf(stream, sizeof(stream), "%s-%s", category, id);
    assert_string_equal(ev_str(evs, 0, "stream"), stream);
    return evs;
}

/* ---- tests ---- */

static void test_profile_update(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a, b;
    json_t *r = NULL;
    char long_name[128];
    cmd_test_user_new(fx, "alice", &a);
    cmd_test_user_new(fx, "bob", &b);

    const char body[] = "{\"full_name\":\"Alice Ä\",\"bio\":null,\"avatar_media_id\":\"42\"}";
    assert_int_equal(cmd_test_act(fx, &a, "PUT", body, &r, "/users/%s", a.id), 200);
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
    assert_int_equal(cmd_test_call_pos(fx, "PUT", path, im_old, "{\"bio\":\"hi\"}", &r), 412);
    json_decref(r);
    assert_int_equal(cmd_test_call_pos(fx, "PUT", path, im_cur, "{\"bio\":\"hi\\nthere\"}", &r),
                     200);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 3);
    json_decref(r);
    evs = cmd_test_events(fx, "ProfileUpdated");
    assert_int_equal(json_array_size(evs), 2);
    assert_int_equal(json_object_size(json_object_get(json_array_get(evs, 1), "data")), 1);
    assert_string_equal(data_str(evs, 1, "bio"), "hi\nthere");
    json_decref(evs);

    /* someone else's profile, no token, bad fields */
    assert_int_equal(cmd_test_act(fx, &b, "PUT", "{\"bio\":\"mine\"}", NULL, "/users/%s", a.id),
                     403);
    assert_int_equal(cmd_test_act(fx, NULL, "PUT", "{\"bio\":\"x\"}", NULL, "/users/%s", a.id),
                     401);
    memset(long_name, 'n', 101);
    long_name[101] = '\0';
    char bad[512];
    snprintf(bad, sizeof(bad),
             "{\"full_name\":\"%s\",\"bio\":5,\"avatar_media_id\":\"x1\",\"admin\":true}",
             long_name);
    assert_int_equal(cmd_test_act(fx, &a, "PUT", bad, &r, "/users/%s", a.id), 400);
    assert_true(cmd_test_names_field(r, "full_name") && cmd_test_names_field(r, "bio") &&
                cmd_test_names_field(r, "avatar_media_id") && cmd_test_names_field(r, "admin"));
    json_decref(r);
    assert_int_equal(cmd_test_act(fx, &a, "PUT", "{}", &r, "/users/%s", a.id), 400);
    assert_true(cmd_test_names_field(r, "body"));
    json_decref(r);
    assert_int_equal(cmd_test_count(fx, "ProfileUpdated"), 2);
}

static void test_follow(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a, b;
    json_t *r1 = NULL, *r2 = NULL;
    cmd_test_user_new(fx, "alice", &a);
    cmd_test_user_new(fx, "bob", &b);

    assert_int_equal(cmd_test_act(fx, &a, "POST", NULL, &r1, "/users/%s/follow", b.id), 200);
    assert_true(json_is_true(json_object_get(r1, "following")));
    assert_int_equal(cmd_test_act(fx, &a, "POST", NULL, &r2, "/users/%s/follow", b.id), 200);
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
    assert_int_equal(cmd_test_act(fx, &a, "POST", NULL, &r1, "/users/%s/follow", a.id), 400);
    assert_true(cmd_test_names_field(r1, "id"));
    json_decref(r1);
    assert_int_equal(cmd_test_act(fx, &a, "POST", NULL, NULL, "/users/%s/follow", "123"), 404);
    assert_int_equal(cmd_test_act(fx, &a, "POST", NULL, NULL, "/users/%s/follow", "abc"), 404);
    assert_int_equal(cmd_test_act(fx, NULL, "POST", NULL, NULL, "/users/%s/follow", b.id), 401);

    /* unfollow, then its repeat */
    assert_int_equal(cmd_test_act(fx, &a, "POST", NULL, &r1, "/users/%s/unfollow", b.id), 200);
    assert_true(json_is_false(json_object_get(r1, "following")));
    assert_int_equal(cmd_test_act(fx, &a, "POST", NULL, &r2, "/users/%s/unfollow", b.id), 200);
    assert_string_equal(cmd_test_jstr(r1, "position"), cmd_test_jstr(r2, "position"));
    evs = only_event(fx, "UserUnfollowed", "user", a.id);
    assert_string_equal(data_str(evs, 0, "followee_id"), b.id);
    json_decref(evs);
    json_decref(r1), json_decref(r2);
    /* following again is a new event */
    assert_int_equal(cmd_test_act(fx, &a, "POST", NULL, NULL, "/users/%s/follow", b.id), 200);
    assert_int_equal(cmd_test_count(fx, "UserFollowed"), 2);
}

static void test_like(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a, b;
    json_t *r1 = NULL, *r2 = NULL;
    char rid[24];
    cmd_test_user_new(fx, "author", &a);
    cmd_test_user_new(fx, "fan", &b);
    recipe_new(fx, &a, rid, sizeof(rid));

    assert_int_equal(cmd_test_act(fx, &b, "POST", NULL, &r1, "/recipes/%s/like", rid), 200);
    assert_true(json_is_true(json_object_get(r1, "liked")));
    assert_int_equal(cmd_test_act(fx, &b, "POST", NULL, &r2, "/recipes/%s/like", rid), 200);
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
    assert_int_equal(cmd_test_call_pos(fx, "PUT", path, im, "{\"title\":\"soup 2\"}", &r1), 200);
    json_decref(r1);

    assert_int_equal(cmd_test_act(fx, &b, "DELETE", NULL, &r1, "/recipes/%s/like", rid), 200);
    assert_true(json_is_false(json_object_get(r1, "liked")));
    assert_int_equal(cmd_test_act(fx, &b, "DELETE", NULL, &r2, "/recipes/%s/like", rid), 200);
    assert_string_equal(cmd_test_jstr(r1, "position"), cmd_test_jstr(r2, "position"));
    json_decref(r1), json_decref(r2);
    evs = cmd_test_events(fx, "RecipeUnliked");
    assert_int_equal(json_array_size(evs), 1);
    assert_string_equal(data_str(evs, 0, "recipe_author_id"), a.id);
    json_decref(evs);

    assert_int_equal(cmd_test_act(fx, NULL, "POST", NULL, NULL, "/recipes/%s/like", rid), 401);
    assert_int_equal(cmd_test_act(fx, &b, "POST", NULL, NULL, "/recipes/%s/like", "999"), 404);
    assert_int_equal(cmd_test_act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s", rid), 200);
    assert_int_equal(cmd_test_act(fx, &b, "POST", NULL, NULL, "/recipes/%s/like", rid), 404);
    assert_int_equal(cmd_test_count(fx, "RecipeLiked"), 1);
}

static void test_comments(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a, b, c;
    json_t *r = NULL;
    char rid[24], other_rid[24], cid[24], cid2[24];
    cmd_test_user_new(fx, "author", &a);
    cmd_test_user_new(fx, "critic", &b);
    cmd_test_user_new(fx, "stranger", &c);
    recipe_new(fx, &a, rid, sizeof(rid));
    recipe_new(fx, &a, other_rid, sizeof(other_rid));

    assert_int_equal(cmd_test_act(fx, &b, "POST", "{\"content\":\"too salty\\nbut good\"}", &r,
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
    assert_int_equal(cmd_test_act(fx, &b, "POST", body, &r, "/recipes/%s/comments", rid), 400);
    assert_true(cmd_test_names_field(r, "content"));
    json_decref(r);
    assert_int_equal(
        cmd_test_act(fx, &b, "POST", "{\"content\":\"\"}", &r, "/recipes/%s/comments", rid), 400);
    assert_true(cmd_test_names_field(r, "content"));
    json_decref(r);
    assert_int_equal(
        cmd_test_act(fx, &b, "POST", "{\"text\":\"x\"}", &r, "/recipes/%s/comments", rid), 400);
    assert_true(cmd_test_names_field(r, "content") && cmd_test_names_field(r, "text"));
    json_decref(r);
    assert_int_equal(
        cmd_test_act(fx, &b, "POST", "{\"content\":\"x\"}", NULL, "/recipes/1/comments"), 404);
    assert_int_equal(
        cmd_test_act(fx, NULL, "POST", "{\"content\":\"x\"}", NULL, "/recipes/%s/comments", rid),
        401);

    /* delete: not a stranger, not under another recipe; the recipe's author may */
    assert_int_equal(
        cmd_test_act(fx, &c, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, cid), 403);
    assert_int_equal(
        cmd_test_act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", other_rid, cid), 404);
    assert_int_equal(cmd_test_act(fx, &a, "DELETE", NULL, &r, "/recipes/%s/comments/%s", rid, cid),
                     200);
    assert_string_equal(cmd_test_jstr(r, "comment_id"), cid);
    json_decref(r);
    assert_int_equal(
        cmd_test_act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, cid), 404);
    assert_int_equal(
        cmd_test_act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, "77"), 404);
    evs = only_event(fx, "CommentDeleted", "comment", cid);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(evs, 0), "version")), 2);
    assert_string_equal(data_str(evs, 0, "comment_id"), cid);
    assert_string_equal(data_str(evs, 0, "recipe_id"), rid);
    assert_string_equal(data_str(evs, 0, "recipe_author_id"), a.id);
    json_decref(evs);

    /* the comment's author may delete it too */
    assert_int_equal(
        cmd_test_act(fx, &b, "POST", "{\"content\":\"again\"}", &r, "/recipes/%s/comments", rid),
        201);
    snprintf(cid2, sizeof(cid2), "%s", cmd_test_jstr(r, "comment_id"));
    json_decref(r);
    assert_int_equal(
        cmd_test_act(fx, &b, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, cid2), 200);
    assert_int_equal(cmd_test_count(fx, "CommentDeleted"), 2);
}

static void test_notifications_read(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a;
    json_t *r1 = NULL, *r2 = NULL;
    cmd_test_user_new(fx, "reader", &a);
    assert_int_equal(cmd_test_act(fx, &a, "POST", "{\"up_to_id\":\"7300000000000000000\"}", &r1,
                                  "/notifications/read"),
                     200);
    /* an older mark changes nothing */
    assert_int_equal(
        cmd_test_act(fx, &a, "POST", "{\"up_to_id\":\"5\"}", &r2, "/notifications/read"), 200);
    assert_string_equal(cmd_test_jstr(r1, "position"), cmd_test_jstr(r2, "position"));
    json_decref(r1), json_decref(r2);
    json_t *evs = only_event(fx, "NotificationsRead", "user", a.id);
    assert_string_equal(data_str(evs, 0, "user_id"), a.id);
    assert_string_equal(data_str(evs, 0, "up_to_id"), "7300000000000000000");
    json_decref(evs);
    assert_int_equal(cmd_test_act(fx, &a, "POST", "{}", &r1, "/notifications/read"), 400);
    assert_true(cmd_test_names_field(r1, "up_to_id"));
    json_decref(r1);
    assert_int_equal(cmd_test_act(fx, &a, "POST", "{\"up_to_id\":12}", &r1, "/notifications/read"),
                     400);
    assert_true(cmd_test_names_field(r1, "up_to_id"));
    json_decref(r1);
    assert_int_equal(
        cmd_test_act(fx, NULL, "POST", "{\"up_to_id\":\"9\"}", NULL, "/notifications/read"), 401);
}

static void test_revoked_session(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a, b;
    cmd_test_user_new(fx, "leaver", &a);
    cmd_test_user_new(fx, "stayer", &b);
    assert_int_equal(cmd_test_act(fx, &a, "POST", NULL, NULL, "/auth/logout"), 200);
    assert_int_equal(cmd_test_act(fx, &a, "POST", NULL, NULL, "/users/%s/follow", b.id), 401);
    assert_int_equal(cmd_test_act(fx, &a, "PUT", "{\"bio\":\"x\"}", NULL, "/users/%s", a.id), 401);
    assert_int_equal(cmd_test_count(fx, "UserFollowed"), 0);
}

#define N_RAW 4

/* A POST to "/<coll>/<id>/<action>". */
struct raw_post {
    const char *coll, *id, *action;
};

/* POST N_RAW requests as @p auth in one group-commit batch, check they are all 200. */
static void
one_batch(struct cmd_test_fx *fx, const struct raw_post *posts, const char *auth, char bufs[][4096])
{
    struct cmd_test_raw reqs[N_RAW];
    char paths[N_RAW][96];
    for (int i = 0; i < N_RAW; i++) {
        snprintf(paths[i], sizeof(paths[i]), "/%s/%s/%s", posts[i].coll, posts[i].id,
                 posts[i].action);
        reqs[i] = (struct cmd_test_raw){.method = "POST", .path = paths[i], .auth = auth};
    }
    cmd_test_one_batch(fx, reqs, N_RAW);
    for (int i = 0; i < N_RAW; i++) {
        assert_int_equal(reqs[i].status, 200);
        memcpy(bufs[i], reqs[i].buf, sizeof(reqs[i].buf));
    }
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
    struct cmd_test_user a, b;
    char rid[24], bufs[N_RAW][4096], first[64];
    cmd_test_user_new(fx, "eager", &a);
    cmd_test_user_new(fx, "idol", &b);
    recipe_new(fx, &b, rid, sizeof(rid));
    const struct raw_post twice[N_RAW] = {
        {"users", b.id, "follow"},
        {"users", b.id, "follow"},
        {"recipes", rid, "like"},
        {"recipes", rid, "like"},
    };
    one_batch(fx, twice, a.auth, bufs);
    assert_int_equal(cmd_test_count(fx, "UserFollowed"), 1);
    assert_int_equal(cmd_test_count(fx, "RecipeLiked"), 1);
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
    assert_int_equal(cmd_test_count(fx, "UserFollowed"), 2);
    assert_int_equal(cmd_test_count(fx, "UserUnfollowed"), 2);
    snprintf(first, sizeof(first), "%s", raw_position(bufs[2]));
    assert_string_equal(raw_position(bufs[3]), first);
}

/* Deleting the write model: catch-up rebuilds follows, likes, comments and positions. */
static void test_catch_up_rebuilds_social(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a, b;
    json_t *r = NULL;
    char rid[24], cid[24], last_pos[64];
    cmd_test_user_new(fx, "author", &a);
    cmd_test_user_new(fx, "fan", &b);
    recipe_new(fx, &a, rid, sizeof(rid));
    assert_int_equal(cmd_test_act(fx, &b, "POST", NULL, NULL, "/users/%s/follow", a.id), 200);
    assert_int_equal(
        cmd_test_act(fx, &b, "POST", "{\"content\":\"yum\"}", &r, "/recipes/%s/comments", rid),
        201);
    snprintf(cid, sizeof(cid), "%s", cmd_test_jstr(r, "comment_id"));
    json_decref(r);
    assert_int_equal(cmd_test_act(fx, &b, "POST", NULL, &r, "/recipes/%s/like", rid), 200);
    snprintf(last_pos, sizeof(last_pos), "%s", cmd_test_jstr(r, "position"));
    json_decref(r);
    size_t follows = cmd_test_count(fx, "UserFollowed"), likes = cmd_test_count(fx, "RecipeLiked");

    cmd_test_app_stop(fx);
    cmd_test_rm_tree(fx->wm_dir);
    cmd_test_app_start(fx);
    /* repeats are still no-ops, answering the rebuilt last position of b's stream */
    assert_int_equal(cmd_test_act(fx, &b, "POST", NULL, &r, "/users/%s/follow", a.id), 200);
    assert_string_equal(cmd_test_jstr(r, "position"), last_pos);
    json_decref(r);
    assert_int_equal(cmd_test_act(fx, &b, "POST", NULL, &r, "/recipes/%s/like", rid), 200);
    assert_string_equal(cmd_test_jstr(r, "position"), last_pos);
    json_decref(r);
    assert_int_equal(cmd_test_count(fx, "UserFollowed"), follows);
    assert_int_equal(cmd_test_count(fx, "RecipeLiked"), likes);
    /* the comment is known with its author and recipe */
    assert_int_equal(
        cmd_test_act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, cid), 200);
    assert_int_equal(
        cmd_test_act(fx, &a, "DELETE", NULL, NULL, "/recipes/%s/comments/%s", rid, cid), 404);
    assert_int_equal(cmd_test_act(fx, &b, "POST", NULL, NULL, "/users/%s/unfollow", a.id), 200);
    assert_int_equal(cmd_test_count(fx, "UserUnfollowed"), 1);
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
