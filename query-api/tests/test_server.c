/*
 * Integration tests of the query API's routes against a real PostgreSQL: entity fields,
 * ETag and 304, 404 and 400 problems, cursor pagination, the tag filter and non-ASCII
 * text. Needs the PG* environment (pg_virtualenv).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "qry_test_db.h"
#include "qry_test_srv.h"
#include "sp_test_http.h"

#include "sp/banned.h"

#define ALICE      1001
#define BOB        1002
#define FIRST_ID   2001 /* alice's recipes are 2001..2025 */
#define LAST_ID    2025
#define UNICODE_ID 3000 /* bob's recipe with non-ASCII text, the newest */

#define UNICODE_TITLE "Crème brûlée — 焼きプリン 🍮"
#define UNICODE_TAG   "デザート"
#define UNICODE_TAG_Q "%E3%83%87%E3%82%B6%E3%83%BC%E3%83%88"

static struct qry_test_fx fx;

static void seed(struct qry_test_db *db)
{
    qry_test_db_user(db, ALICE, "alice", 3);
    qry_test_db_user(db, BOB, "bob", 1);
    for (int id = FIRST_ID; id <= LAST_ID; id++) {
        char title[32];
        const char *tags = id % 5 == 0 ? (id % 2 ? "soup,quick" : "quick") : (id % 2 ? "soup" : "");

        snprintf(title, sizeof(title), "Recipe %d", id);
        qry_test_db_recipe(db, id, ALICE, title, tags, 1);
    }
    qry_test_db_recipe(db, UNICODE_ID, BOB, UNICODE_TITLE, UNICODE_TAG, 4);
}

static int setup(void **state)
{
    return qry_test_fx_setup(state, &fx, "qry_server", seed, 1000);
}

/* GET @p path; returns the parsed JSON body (owned) and fills @p resp. */
static json_t *
get(const char *path, const char *const *headers, struct sp_test_resp *resp, int want_status)
{
    return qry_test_srv_get_json(&fx.srv, path, headers, resp, want_status);
}

static const char *str_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_user(void **state)
{
    struct sp_test_resp resp = {0};
    json_t *u;

    (void)state;
    u = get("/users/1001", NULL, &resp, 200);
    assert_string_equal(sp_test_resp_header(&resp, "ETag"), "\"3\"");
    assert_non_null(strstr(sp_test_resp_header(&resp, "Content-Type"), "application/json"));
    assert_string_equal(str_field(u, "id"), "1001");
    assert_string_equal(str_field(u, "username"), "alice");
    assert_true(json_is_null(json_object_get(u, "full_name")));
    assert_string_equal(str_field(u, "bio"), "cooks a lot");
    assert_string_equal(str_field(u, "avatar_media_id"), "77");
    assert_string_equal(str_field(u, "created_at"), "2026-01-02T03:04:05.123456Z");
    assert_int_equal(json_integer_value(json_object_get(u, "version")), 3);
    assert_null(json_object_get(u, "email"));
    assert_null(json_object_get(u, "password_hash"));
    json_decref(u);
    sp_test_resp_release(&resp);
}

static void test_recipe(void **state)
{
    struct sp_test_resp resp = {0};
    json_t *r;
    json_t *a;

    (void)state;
    r = get("/recipes/2005", NULL, &resp, 200);
    assert_string_equal(sp_test_resp_header(&resp, "ETag"), "\"1\"");
    assert_string_equal(str_field(r, "id"), "2005");
    assert_string_equal(str_field(r, "author_id"), "1001");
    assert_string_equal(str_field(r, "title"), "Recipe 2005");
    assert_string_equal(str_field(r, "description"), "A description");
    a = json_object_get(r, "ingredients");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(json_string_value(json_array_get(a, 0)), "1 cup rice");
    a = json_object_get(r, "steps");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(json_string_value(json_array_get(a, 1)), "Simmer");
    a = json_object_get(r, "tags");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(json_string_value(json_array_get(a, 0)), "soup");
    assert_string_equal(json_string_value(json_array_get(a, 1)), "quick");
    a = json_object_get(r, "image_media_ids");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(json_string_value(json_array_get(a, 0)), "11");
    assert_string_equal(str_field(r, "created_at"), "2026-01-02T03:04:05.123456Z");
    assert_string_equal(str_field(r, "updated_at"), "2026-01-03T00:00:00.000000Z");
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 1);
    json_decref(r);
    sp_test_resp_release(&resp);
}

static void test_not_modified(void **state)
{
    const char *const match[] = {"If-None-Match: \"4\"", NULL};
    const char *const stale[] = {"If-None-Match: \"3\"", NULL};
    struct sp_test_resp resp = {0};
    json_t *r;

    (void)state;
    r = get("/recipes/3000", match, &resp, 304);
    assert_null(r);
    assert_int_equal(resp.body_len, 0);
    assert_string_equal(sp_test_resp_header(&resp, "ETag"), "\"4\"");
    sp_test_resp_release(&resp);
    r = get("/recipes/3000", stale, &resp, 200);
    assert_string_equal(str_field(r, "id"), "3000");
    json_decref(r);
    sp_test_resp_release(&resp);
    r = get("/users/1001", (const char *const[]){"If-None-Match: W/\"3\"", NULL}, &resp, 304);
    assert_null(r);
    sp_test_resp_release(&resp);
}

static void assert_problem(const char *path, int status, const char *field)
{
    struct sp_test_resp resp = {0};
    json_t *p;
    json_t *err;

    p = get(path, NULL, &resp, status);
    assert_non_null(strstr(sp_test_resp_header(&resp, "Content-Type"), "application/problem+json"));
    assert_int_equal(json_integer_value(json_object_get(p, "status")), status);
    assert_true(json_is_string(json_object_get(p, "detail")));
    if (field != NULL) {
        err = json_array_get(json_object_get(p, "errors"), 0);
        assert_non_null(err);
        assert_string_equal(str_field(err, "field"), field);
    }
    json_decref(p);
    sp_test_resp_release(&resp);
}

static void test_not_found(void **state)
{
    (void)state;
    assert_problem("/recipes/999", 404, NULL);
    assert_problem("/users/999", 404, NULL);
    assert_problem("/users/999/recipes", 404, NULL);
    /* a deleted recipe: the projection removes its row */
    qry_test_db_recipe(&fx.db, 4000, BOB, "gone soon", "", 2);
    qry_test_db_exec(&fx.db, "DELETE FROM stockpot.recipes WHERE id = 4000");
    qry_test_db_exec(&fx.db, "DELETE FROM stockpot.recipe_tags WHERE recipe_id = 4000");
    assert_problem("/recipes/4000", 404, NULL);
}

static void test_bad_params(void **state)
{
    (void)state;
    assert_problem("/recipes/abc", 400, "id");
    assert_problem("/recipes/0", 400, "id");
    assert_problem("/users/-1", 400, "id");
    assert_problem("/users/12345678901234567890/recipes", 400, "id");
    assert_problem("/recipes?limit=0", 400, "limit");
    assert_problem("/recipes?limit=101", 400, "limit");
    assert_problem("/recipes?limit=ten", 400, "limit");
    assert_problem("/users/1001/recipes?max_id=x", 400, "max_id");
    assert_problem("/recipes?since_id=-5", 400, "since_id");
    assert_problem("/recipes?tag=", 400, "tag");
}

/* GET a list page: checks the ids in order and returns the Link target (owned) or NULL. */
static char *page(const char *path, const int *want_ids, size_t n)
{
    struct sp_test_resp resp = {0};
    const char *link;
    char *next = NULL;
    json_t *body;
    json_t *items;
    char id[24];

    body = get(path, NULL, &resp, 200);
    items = json_object_get(body, "items");
    assert_true(json_is_array(items));
    if (json_array_size(items) != n)
        fail_msg("GET %s: %zu items, want %zu", path, json_array_size(items), n);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%d", want_ids[i]);
        assert_string_equal(str_field(json_array_get(items, i), "id"), id);
    }
    link = sp_test_resp_header(&resp, "Link");
    if (link != NULL) {
        const char *end = strchr(link, '>');

        assert_true(link[0] == '<' && end != NULL);
        assert_non_null(strstr(end, "rel=\"next\""));
        next = strndup(link + 1, (size_t)(end - link - 1));
        assert_true(n > 0);
        assert_string_equal(str_field(body, "next_max_id"), id); /* the last item's id */
    } else {
        assert_null(json_object_get(body, "next_max_id"));
    }
    json_decref(body);
    sp_test_resp_release(&resp);
    return next;
}

static void test_pagination(void **state)
{
    int ids[30];
    char *next;

    (void)state;
    ids[0] = UNICODE_ID;
    for (int i = 1; i < 30; i++)
        ids[i] = LAST_ID - (i - 1);
    next = page("/recipes?limit=10", ids, 10);
    assert_string_equal(next, "/recipes?max_id=2017&limit=10");
    free(next);
    next = page("/recipes?max_id=2017&limit=10", ids + 10, 10);
    assert_non_null(next);
    assert_string_equal(next, "/recipes?max_id=2007&limit=10");
    free(next);
    next = page("/recipes?max_id=2007&limit=10", ids + 20, 6); /* 2006..2001: not full */
    assert_null(next);
    /* default limit 20 */
    next = page("/recipes", ids, 20);
    free(next);
    /* empty page */
    next = page("/recipes?max_id=2001", ids, 0);
    assert_null(next);
    next = page("/recipes?since_id=3000", ids, 0);
    assert_null(next);
}

static void test_exact_page(void **state)
{
    int ids[25];
    char *next;

    (void)state;
    for (int i = 0; i < 25; i++)
        ids[i] = LAST_ID - i;
    next = page("/users/1001/recipes?limit=25", ids, 25);
    assert_string_equal(next, "/users/1001/recipes?max_id=2001&limit=25");
    free(next);
    next = page("/users/1001/recipes?max_id=2001&limit=25", ids, 0);
    assert_null(next);
    next = page("/users/1002/recipes", (const int[]){UNICODE_ID}, 1);
    assert_null(next);
}

static void test_since_id(void **state)
{
    char *next;

    (void)state;
    /* the newest page above since_id, then down to it, never below */
    next = page("/recipes?since_id=2020&limit=3", (const int[]){UNICODE_ID, 2025, 2024}, 3);
    assert_string_equal(next, "/recipes?since_id=2020&max_id=2024&limit=3");
    free(next);
    next = page("/recipes?since_id=2020&max_id=2024&limit=3", (const int[]){2023, 2022, 2021}, 3);
    assert_string_equal(next, "/recipes?since_id=2020&max_id=2021&limit=3");
    free(next);
    next = page("/recipes?since_id=2020&max_id=2021&limit=3", NULL, 0);
    assert_null(next);
    next = page("/recipes?max_id=2010&since_id=2005", (const int[]){2009, 2008, 2007, 2006}, 4);
    assert_null(next);
}

static void test_tag_filter(void **state)
{
    char *next;

    (void)state;
    next = page("/recipes?tag=quick", (const int[]){2025, 2020, 2015, 2010, 2005}, 5);
    assert_null(next);
    next = page("/recipes?tag=soup&limit=2", (const int[]){2025, 2023}, 2);
    assert_string_equal(next, "/recipes?tag=soup&max_id=2023&limit=2");
    free(next);
    next = page("/recipes?tag=soup&max_id=2023&limit=2", (const int[]){2021, 2019}, 2);
    free(next);
    next = page("/recipes?tag=none", NULL, 0);
    assert_null(next);
    next = page("/recipes?tag=Quick", NULL, 0); /* tags match exactly */
    assert_null(next);
}

static void test_unicode(void **state)
{
    struct sp_test_resp resp = {0};
    json_t *r;
    char *next;

    (void)state;
    r = get("/recipes/3000", NULL, &resp, 200);
    assert_string_equal(str_field(r, "title"), UNICODE_TITLE);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "tags"), 0)),
                        UNICODE_TAG);
    assert_int_equal(json_array_size(json_object_get(r, "tags")), 1);
    json_decref(r);
    sp_test_resp_release(&resp);
    next = page("/recipes?tag=" UNICODE_TAG_Q "&limit=1", (const int[]){UNICODE_ID}, 1);
    assert_string_equal(next, "/recipes?tag=" UNICODE_TAG_Q "&max_id=3000&limit=1");
    free(next);
}

static void test_health(void **state)
{
    struct sp_test_resp resp = {0};

    (void)state;
    assert_int_equal(sp_test_http(fx.srv.port, "GET", "/readyz", NULL, NULL, &resp), 200);
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(fx.srv.port, "GET", "/healthz", NULL, NULL, &resp), 200);
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(fx.srv.port, "GET", "/metrics", NULL, NULL, &resp), 200);
    assert_non_null(strstr(resp.body, "route=\"/recipes/{id}\""));
    assert_non_null(strstr(resp.body, "stockpot_query_after_timeouts_total"));
    sp_test_resp_release(&resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user),         cmocka_unit_test(test_recipe),
        cmocka_unit_test(test_not_modified), cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_bad_params),   cmocka_unit_test(test_pagination),
        cmocka_unit_test(test_exact_page),   cmocka_unit_test(test_since_id),
        cmocka_unit_test(test_tag_filter),   cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_health),
    };

    return cmocka_run_group_tests(tests, setup, qry_test_fx_teardown);
}
