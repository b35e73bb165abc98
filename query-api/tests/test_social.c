/*
 * Integration tests of the issue 4 read side against a real PostgreSQL: user counters,
 * followers/following, recipe counters and liked_by_me, comments, the feed, notifications
 * with unread_count, Bearer verification (401) and pagination boundaries. Rows are
 * inserted directly, as the projection would write them. Needs the PG* environment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <jwt.h>

#include "qry_test_db.h"
#include "qry_test_srv.h"
#include "sp_test_http.h"

#include "sp/banned.h"

#define ALICE 1001
#define BOB   1002
#define CAROL 1003
#define DAVE  1004

#define SESSION_OK      9001 /* alice's, valid */
#define SESSION_REVOKED 9002
#define SESSION_EXPIRED 9003
#define SESSION_UNKNOWN 9999 /* not projected (yet): accepted */

static struct qry_test_fx fx; /* fx.token: alice's, of SESSION_OK */
static char alice_auth[4200]; /* "Authorization: Bearer <fx.token>" */

static void seed_recipe(int64_t id, int64_t author, int likes, int comments)
{
    char title[32];

    snprintf(title, sizeof(title), "Recipe %lld", (long long)id);
    qry_test_db_recipe(&fx.db, id, author, title, "", 1);
    qry_test_db_execf(&fx.db,
                      "UPDATE stockpot.recipes SET like_count = %d, comment_count = %d"
                      " WHERE id = %lld",
                      likes, comments, (long long)id);
}

/* The feed read model as the projection keeps it (003_feed.sql), from follows and recipes. */
static void feed_derive(void)
{
    qry_test_db_exec(&fx.db, "DELETE FROM stockpot.feed_entries;"
                             "INSERT INTO stockpot.feed_entries SELECT author_id, id"
                             " FROM stockpot.recipes UNION SELECT f.follower_id, r.id"
                             " FROM stockpot.follows f JOIN stockpot.recipes r"
                             " ON r.author_id = f.followee_id;");
}

static void seed(struct qry_test_db *db)
{
    qry_test_db_user(db, ALICE, "alice", 3);
    qry_test_db_user(db, BOB, "bob", 1);
    qry_test_db_user(db, CAROL, "carol", 1);
    qry_test_db_user(db, DAVE, "dave", 1);
    qry_test_db_exec(db,
                     "INSERT INTO stockpot.follows VALUES (1001, 1002, now()), (1001, 1003, now()),"
                     " (1002, 1001, now()), (1003, 1001, now()), (1004, 1001, now());"
                     "UPDATE stockpot.users SET follower_count = 3, following_count = 2,"
                     " recipe_count = 1 WHERE id = 1001;");
    for (int id = 2001; id <= 2003; id++)
        seed_recipe(id, BOB, id == 2001 ? 1 : 0, id == 2001 ? 3 : 0);
    seed_recipe(2004, CAROL, 0, 0);
    seed_recipe(2005, CAROL, 0, 0);
    seed_recipe(2006, ALICE, 0, 0);
    seed_recipe(2007, DAVE, 0, 0);
    qry_test_db_exec(
        db, "INSERT INTO stockpot.likes VALUES (2001, 1001, now());"
            "INSERT INTO stockpot.comments VALUES"
            " (5001, 2001, 1002, 'first', '2026-02-01 10:00:00+00'),"
            " (5002, 2001, 1003, 'second ✓', '2026-02-01 11:00:00+00'),"
            " (5003, 2001, 1001, 'third', '2026-02-01 12:00:00+00');"
            "INSERT INTO stockpot.sessions VALUES (9001, 1001, now() + interval '1 day', false),"
            " (9002, 1001, now() + interval '1 day', true),"
            " (9003, 1001, now() - interval '1 second', false);"
            "INSERT INTO stockpot.notifications VALUES"
            " (7001, 1001, 'follow', 1002, NULL, NULL, 0, 11, '2026-02-01 10:00:00+00'),"
            " (7002, 1001, 'follow', 1003, NULL, NULL, 0, 12, '2026-02-01 10:00:01+00'),"
            " (7003, 1001, 'like', 1002, 2006, NULL, 0, 13, '2026-02-01 10:00:02+00'),"
            " (7004, 1001, 'comment', 1003, 2006, 5004, 0, 14, '2026-02-01 10:00:03+00'),"
            " (7005, 1001, 'follow', 1004, NULL, NULL, 0, 15, '2026-02-01 10:00:04+00'),"
            " (7006, 1002, 'follow', 1001, NULL, NULL, 0, 16, '2026-02-01 10:00:05+00');"
            "INSERT INTO stockpot.notification_reads VALUES (1001, 7002);");
    feed_derive();
}

static int setup(void **state)
{
    qry_test_fx_setup(state, &fx, "qry_social", seed, 1000);
    fx.token = qry_test_srv_token(&fx.srv, ALICE, SESSION_OK, 900);
    snprintf(alice_auth, sizeof(alice_auth), "Authorization: Bearer %s", fx.token);
    return 0;
}

/* GET @p path with @p auth ("Authorization: ..." or NULL); the parsed JSON body (owned). */
static json_t *get(const char *path, const char *auth, struct sp_test_resp *resp, int want)
{
    const char *const headers[] = {auth, NULL};

    return qry_test_srv_get_json(&fx.srv, path, auth != NULL ? headers : NULL, resp, want);
}

static const char *str_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_string(v))
        fail_msg("field %s is not a string", key);
    return json_string_value(v);
}

static json_int_t int_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_integer(v))
        fail_msg("field %s is not an integer", key);
    return json_integer_value(v);
}

/* The ids of body.items, comma-separated, into @p out. */
static const char *item_ids(json_t *body, char *out, size_t size)
{
    json_t *items = json_object_get(body, "items");
    size_t i;
    json_t *it;
    size_t off = 0;

    assert_true(json_is_array(items));
    out[0] = '\0';
    json_array_foreach(items, i, it) {
        off +=
            (size_t)snprintf(out + off, size - off, "%s%s", i > 0 ? "," : "", str_field(it, "id"));
        assert_true(off < size);
    }
    return out;
}

/* GET @p path and compare the item ids and the Link header (NULL = none expected). */
static void expect_page(const char *path, const char *auth, const char *ids, const char *link)
{
    struct sp_test_resp resp = {0};
    json_t *body = get(path, auth, &resp, 200);
    const char *got_link = sp_test_resp_header(&resp, "Link");
    char got[512];

    if (strcmp(item_ids(body, got, sizeof(got)), ids) != 0)
        fail_msg("GET %s: items %s, want %s", path, got, ids);
    if (link == NULL) {
        assert_null(got_link);
        assert_null(json_object_get(body, "next_max_id"));
    } else {
        assert_non_null(got_link);
        if (strstr(got_link, link) == NULL)
            fail_msg("GET %s: Link %s lacks %s", path, got_link, link);
    }
    json_decref(body);
    sp_test_resp_release(&resp);
}

static void test_user_counts(void **state)
{
    struct sp_test_resp resp = {0};
    json_t *u;

    (void)state;
    u = get("/users/1001", NULL, &resp, 200);
    assert_int_equal(int_field(u, "follower_count"), 3);
    assert_int_equal(int_field(u, "following_count"), 2);
    assert_int_equal(int_field(u, "recipe_count"), 1);
    assert_string_equal(str_field(u, "username"), "alice");
    json_decref(u);
    sp_test_resp_release(&resp);
    u = get("/users/1004", NULL, &resp, 200);
    assert_int_equal(int_field(u, "follower_count"), 0);
    json_decref(u);
    sp_test_resp_release(&resp);
}

static void test_followers_following(void **state)
{
    struct sp_test_resp resp = {0};
    json_t *body;
    json_t *it;

    (void)state;
    body = get("/users/1001/followers", NULL, &resp, 200);
    assert_int_equal(json_array_size(json_object_get(body, "items")), 3);
    it = json_array_get(json_object_get(body, "items"), 0);
    assert_string_equal(str_field(it, "id"), "1004");
    assert_string_equal(str_field(it, "username"), "dave");
    assert_true(json_is_null(json_object_get(it, "full_name")));
    assert_string_equal(str_field(it, "avatar_media_id"), "77");
    assert_null(json_object_get(it, "bio"));
    json_decref(body);
    sp_test_resp_release(&resp);
    expect_page("/users/1001/followers", NULL, "1004,1003,1002", NULL);
    expect_page("/users/1001/following", NULL, "1003,1002", NULL);
    expect_page("/users/1001/followers?limit=2", NULL, "1004,1003",
                "</users/1001/followers?max_id=1003&limit=2>; rel=\"next\"");
    expect_page("/users/1001/followers?limit=2&max_id=1003", NULL, "1002", NULL);
    expect_page("/users/1004/followers", NULL, "", NULL);
    body = get("/users/999/followers", NULL, &resp, 404);
    json_decref(body);
    sp_test_resp_release(&resp);
    body = get("/users/999/following", NULL, &resp, 404);
    json_decref(body);
    sp_test_resp_release(&resp);
}

static void check_liked(const char *auth, int64_t id, int want) /* -1 = absent */
{
    struct sp_test_resp resp = {0};
    char path[64];
    json_t *r;
    json_t *liked;

    snprintf(path, sizeof(path), "/recipes/%lld", (long long)id);
    r = get(path, auth, &resp, 200);
    liked = json_object_get(r, "liked_by_me");
    if (want < 0)
        assert_null(liked);
    else if (!json_is_boolean(liked) || json_is_true(liked) != (want == 1))
        fail_msg("GET %s: liked_by_me is not %d", path, want);
    json_decref(r);
    sp_test_resp_release(&resp);
}

static void test_recipe_counts_and_liked(void **state)
{
    struct sp_test_resp resp = {0};
    char auth[4200];
    char *tok;
    json_t *r;

    (void)state;
    r = get("/recipes/2001", NULL, &resp, 200);
    assert_int_equal(int_field(r, "like_count"), 1);
    assert_int_equal(int_field(r, "comment_count"), 3);
    assert_null(json_object_get(r, "liked_by_me"));
    assert_string_equal(sp_test_resp_header(&resp, "ETag"), "\"1\"");
    json_decref(r);
    sp_test_resp_release(&resp);
    check_liked(alice_auth, 2001, 1);
    check_liked(alice_auth, 2002, 0);
    check_liked("Authorization: Bearer not.a.token", 2001, -1);
    tok = qry_test_srv_token(&fx.srv, ALICE, SESSION_REVOKED, 900);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    check_liked(auth, 2001, -1);
    free(tok);
    tok = qry_test_srv_token(&fx.srv, BOB, SESSION_UNKNOWN, 900);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    check_liked(auth, 2001, 0);
    free(tok);
    /* lists carry the counters too */
    r = get("/users/1002/recipes?limit=1&max_id=2002", NULL, &resp, 200);
    assert_int_equal(int_field(json_array_get(json_object_get(r, "items"), 0), "comment_count"), 3);
    json_decref(r);
    sp_test_resp_release(&resp);
}

static void test_comments(void **state)
{
    struct sp_test_resp resp = {0};
    json_t *body;
    json_t *c;

    (void)state;
    body = get("/recipes/2001/comments", NULL, &resp, 200);
    c = json_array_get(json_object_get(body, "items"), 1);
    assert_string_equal(str_field(c, "id"), "5002");
    assert_string_equal(str_field(c, "recipe_id"), "2001");
    assert_string_equal(str_field(c, "user_id"), "1003");
    assert_string_equal(str_field(c, "username"), "carol");
    assert_string_equal(str_field(c, "content"), "second ✓");
    assert_string_equal(str_field(c, "created_at"), "2026-02-01T11:00:00.000000Z");
    json_decref(body);
    sp_test_resp_release(&resp);
    expect_page("/recipes/2001/comments", NULL, "5003,5002,5001", NULL);
    expect_page("/recipes/2001/comments?limit=1&since_id=5001", NULL, "5003",
                "</recipes/2001/comments?since_id=5001&max_id=5003&limit=1>");
    expect_page("/recipes/2002/comments", NULL, "", NULL);
    body = get("/recipes/999/comments", NULL, &resp, 404);
    json_decref(body);
    sp_test_resp_release(&resp);
}

/* A header "Authorization: Bearer <token>" of a token built here with libjwt. */
static void raw_token(char *out, size_t size, jwt_alg_t alg, const char *key, long exp_delta)
{
    jwt_t *jwt = NULL;
    long now = (long)time(NULL);
    char *tok;

    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", "1001"), 0);
    assert_int_equal(jwt_add_grant(jwt, "sid", "9001"), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "iat", now - 10), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", now + exp_delta), 0);
    assert_int_equal(
        jwt_set_alg(jwt, alg, (const unsigned char *)key, key != NULL ? (int)strlen(key) : 0), 0);
    tok = jwt_encode_str(jwt);
    snprintf(out, size, "Authorization: Bearer %s", tok);
    free(tok);
    jwt_free(jwt);
}

static void expect_401(const char *path, const char *auth)
{
    struct sp_test_resp resp = {0};
    json_t *p = get(path, auth, &resp, 401);

    assert_non_null(strstr(sp_test_resp_header(&resp, "Content-Type"), "application/problem+json"));
    assert_non_null(sp_test_resp_header(&resp, "WWW-Authenticate"));
    assert_int_equal(int_field(p, "status"), 401);
    json_decref(p);
    sp_test_resp_release(&resp);
}

static void test_401(void **state)
{
    static const char *const paths[] = {"/feed", "/notifications", "/notifications/stream"};
    const char *secret = sp_config_str(fx.srv.cfg, "jwt.secret");
    char auth[4200];
    char *tok;

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        expect_401(paths[i], NULL);
        expect_401(paths[i], "Authorization: Basic YWxpY2U6c2VjcmV0");
        raw_token(auth, sizeof(auth), JWT_ALG_HS256, "some-other-key", 900);
        expect_401(paths[i], auth); /* bad signature */
        raw_token(auth, sizeof(auth), JWT_ALG_NONE, NULL, 900);
        expect_401(paths[i], auth);
        raw_token(auth, sizeof(auth), JWT_ALG_HS256, secret, -5);
        expect_401(paths[i], auth); /* expired */
        tok = qry_test_srv_token(&fx.srv, ALICE, SESSION_REVOKED, 900);
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
        expect_401(paths[i], auth);
        free(tok);
        tok = qry_test_srv_token(&fx.srv, ALICE, SESSION_EXPIRED, 900);
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
        expect_401(paths[i], auth);
        free(tok);
        tok = qry_test_srv_token(&fx.srv, BOB, SESSION_OK, 900); /* alice's session */
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
        expect_401(paths[i], auth);
        free(tok);
    }
    raw_token(auth, sizeof(auth), JWT_ALG_HS256, secret, 900);
    expect_page("/feed?limit=1", auth, "2006", "</feed?max_id=2006&limit=1>");
}

static void test_feed(void **state)
{
    char auth[4200];
    char *tok;

    (void)state;
    /* followees bob and carol plus alice herself; never dave */
    expect_page("/feed", alice_auth, "2006,2005,2004,2003,2002,2001", NULL);
    /* an unknown session (projection lagging) is accepted */
    tok = qry_test_srv_token(&fx.srv, DAVE, SESSION_UNKNOWN, 900);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    expect_page("/feed", auth, "2007,2006", NULL); /* dave follows alice */
    free(tok);
    tok = qry_test_srv_token(&fx.srv, 1005, SESSION_UNKNOWN + 1, 900);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    expect_page("/feed", auth, "", NULL); /* follows nobody, wrote nothing */
    free(tok);
}

static void test_feed_pagination(void **state)
{
    (void)state;
    /* exact page size: a Link, then an empty last page */
    expect_page("/feed?limit=3", alice_auth, "2006,2005,2004", "</feed?max_id=2004&limit=3>");
    expect_page("/feed?limit=3&max_id=2004", alice_auth, "2003,2002,2001",
                "</feed?max_id=2001&limit=3>");
    expect_page("/feed?limit=3&max_id=2001", alice_auth, "", NULL);
    expect_page("/feed?max_id=1", alice_auth, "", NULL);
    /* since_id catches items written after the first page, and keeps paging down */
    qry_test_db_recipe(&fx.db, 2010, BOB, "new", "", 1);
    qry_test_db_recipe(&fx.db, 2011, DAVE, "not followed", "", 1);
    qry_test_db_recipe(&fx.db, 2012, CAROL, "new too", "", 1);
    feed_derive();
    expect_page("/feed?since_id=2006", alice_auth, "2012,2010", NULL);
    expect_page("/feed?since_id=2006&limit=1", alice_auth, "2012",
                "</feed?since_id=2006&max_id=2012&limit=1>");
    expect_page("/feed?since_id=2006&limit=1&max_id=2012", alice_auth, "2010",
                "</feed?since_id=2006&max_id=2010&limit=1>");
    expect_page("/feed?since_id=2006&limit=1&max_id=2010", alice_auth, "", NULL);
    expect_page("/feed?since_id=2012", alice_auth, "", NULL);
    qry_test_db_exec(&fx.db, "DELETE FROM stockpot.recipes WHERE id IN (2010, 2011, 2012)");
    feed_derive();
}

static void test_notifications(void **state)
{
    struct sp_test_resp resp = {0};
    json_t *body;
    json_t *items;
    json_t *n;

    (void)state;
    body = get("/notifications", alice_auth, &resp, 200);
    items = json_object_get(body, "items");
    assert_int_equal(json_array_size(items), 5);
    assert_int_equal(int_field(body, "unread_count"), 3);
    n = json_array_get(items, 1); /* 7004: a comment */
    assert_string_equal(str_field(n, "id"), "7004");
    assert_string_equal(str_field(n, "kind"), "comment");
    assert_string_equal(str_field(n, "actor_id"), "1003");
    assert_string_equal(str_field(n, "actor_username"), "carol");
    assert_string_equal(str_field(n, "recipe_id"), "2006");
    assert_string_equal(str_field(n, "comment_id"), "5004");
    assert_string_equal(str_field(n, "created_at"), "2026-02-01T10:00:03.000000Z");
    assert_true(json_is_false(json_object_get(n, "read")));
    n = json_array_get(items, 3); /* 7002: a follow, read */
    assert_string_equal(str_field(n, "kind"), "follow");
    assert_null(json_object_get(n, "recipe_id"));
    assert_null(json_object_get(n, "comment_id"));
    assert_true(json_is_true(json_object_get(n, "read")));
    json_decref(body);
    sp_test_resp_release(&resp);
    expect_page("/notifications", alice_auth, "7005,7004,7003,7002,7001", NULL);
    expect_page("/notifications?limit=2&max_id=7003", alice_auth, "7002,7001",
                "</notifications?max_id=7001&limit=2>");
    expect_page("/notifications?limit=2&max_id=7001", alice_auth, "", NULL);
    /* marking read moves unread_count; with no marker everything is unread */
    qry_test_db_exec(&fx.db, "UPDATE stockpot.notification_reads SET up_to_id = 7005");
    body = get("/notifications?limit=1", alice_auth, &resp, 200);
    assert_int_equal(int_field(body, "unread_count"), 0);
    json_decref(body);
    sp_test_resp_release(&resp);
    qry_test_db_exec(&fx.db, "DELETE FROM stockpot.notification_reads");
    body = get("/notifications?max_id=1", alice_auth, &resp, 200);
    assert_int_equal(json_array_size(json_object_get(body, "items")), 0);
    assert_int_equal(int_field(body, "unread_count"), 5);
    json_decref(body);
    sp_test_resp_release(&resp);
    qry_test_db_exec(&fx.db, "INSERT INTO stockpot.notification_reads VALUES (1001, 7002)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_counts),
        cmocka_unit_test(test_followers_following),
        cmocka_unit_test(test_recipe_counts_and_liked),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_401),
        cmocka_unit_test(test_feed),
        cmocka_unit_test(test_feed_pagination),
        cmocka_unit_test(test_notifications),
    };

    return cmocka_run_group_tests(tests, setup, qry_test_fx_teardown);
}
