/*
 * Integration tests of the "pg" projection and its runner over a generated embedded log
 * (needs PostgreSQL: run under pg_virtualenv).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include <cmocka.h>

#include "pgtest.h"
#include "proj/projection.h"
#include "proj/runner.h"

#include "sp/banned.h"

#define USER1   "7301234567890001"
#define USER2   "7301234567890002"
#define RECIPE1 "7301234567890101"
#define RECIPE2 "7301234567890102"

/* 10 events: 2 users, a session, 2 recipes, 3 updates, a delete, a session revoke. */
static void build_log(struct pgtest *t)
{
    pgtest_append(t, "UserRegistered", "user-" USER1, 1,
                  json_pack("{s:s,s:s,s:s,s:s}", "user_id", USER1, "username", "lin", "email",
                            "lin@example.com", "password_hash", "$argon2id$v=19$x"));
    pgtest_append(t, "UserRegistered", "user-" USER2, 1,
                  json_pack("{s:s,s:s,s:s,s:s}", "user_id", USER2, "username", "ana", "email",
                            "ana@example.org", "password_hash", "$argon2id$v=19$y"));
    pgtest_append(t, "SessionStarted", "session-7301234567890201", 1,
                  json_pack("{s:s,s:s,s:s,s:s}", "session_id", "7301234567890201", "user_id", USER1,
                            "refresh_hash",
                            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                            "expires_at", "2030-01-01T00:00:00.000000Z"));
    pgtest_append(t, "RecipeCreated", "recipe-" RECIPE1, 1,
                  json_pack("{s:s,s:s,s:s,s:s,s:[s,s],s:[s],s:[s,s],s:[s]}", "recipe_id", RECIPE1,
                            "author_id", USER1, "title", "麻婆豆腐", "description", "四川的经典菜",
                            "ingredients", "豆腐 400g", "花椒", "steps", "炒一下", "tags", "川菜",
                            "spicy", "image_media_ids", "7301234567890301"));
    pgtest_append(t, "RecipeCreated", "recipe-" RECIPE2, 1,
                  json_pack("{s:s,s:s,s:s,s:s,s:[s],s:[s],s:[],s:[]}", "recipe_id", RECIPE2,
                            "author_id", USER2, "title", "Toast", "description", "", "ingredients",
                            "bread", "steps", "toast it", "tags", "image_media_ids"));
    pgtest_append(t, "RecipeUpdated", "recipe-" RECIPE1, 2,
                  json_pack("{s:s}", "title", "麻婆豆腐 (改良版)"));
    pgtest_append(t, "RecipeUpdated", "recipe-" RECIPE1, 3,
                  json_pack("{s:[s,s]}", "tags", "川菜", "豆腐"));
    pgtest_append(t, "RecipeDeleted", "recipe-" RECIPE2, 2, json_object());
    pgtest_append(t, "RecipeUpdated", "recipe-" RECIPE1, 4,
                  json_pack("{s:[s,s,s]}", "ingredients", "豆腐 400g", "花椒", "牛肉末"));
    pgtest_append(t, "SessionRevoked", "session-7301234567890201", 2,
                  json_pack("{s:s,s:s}", "session_id", "7301234567890201", "reason", "logout"));
}

static void assert_view(PGconn *conn)
{
    pgtest_check(conn,
                 "SELECT string_agg(id || ':' || username || ':' || version, ',' ORDER BY id) "
                 "FROM stockpot.users",
                 USER1 ":lin:1," USER2 ":ana:1");
    pgtest_check(conn, "SELECT count(*) FROM stockpot.recipes", "1");
    pgtest_check(
        conn,
        "SELECT author_id || '|' || title || '|' || description || '|' || "
        "ingredients::text || '|' || steps::text || '|' || tags::text || '|' || "
        "image_media_ids::text || '|' || version FROM stockpot.recipes WHERE id = " RECIPE1,
        USER1 "|麻婆豆腐 (改良版)|四川的经典菜|[\"豆腐 400g\", \"花椒\", \"牛肉末\"]|"
              "[\"炒一下\"]|{川菜,豆腐}|{7301234567890301}|4");
    pgtest_check(conn, "SELECT created_at < updated_at FROM stockpot.recipes", "t");
    pgtest_check(conn,
                 "SELECT string_agg(tag || ':' || recipe_id, ',' ORDER BY tag) "
                 "FROM stockpot.recipe_tags",
                 "川菜:" RECIPE1 ",豆腐:" RECIPE1);
    pgtest_check(conn,
                 "SELECT next_offset FROM stockpot.checkpoints WHERE projection = 'pg' "
                 "AND partition = 0",
                 "10");
    pgtest_check(conn, "SELECT count(*) FROM stockpot.dead_letters", "0");
    /* no secret anywhere in the schema's tables */
    pgtest_check(conn,
                 "SELECT count(*) FROM (SELECT t::text AS s FROM stockpot.users t UNION ALL "
                 "SELECT t::text FROM stockpot.recipes t UNION ALL SELECT t::text FROM "
                 "stockpot.recipe_tags t UNION ALL SELECT t::text FROM stockpot.checkpoints t) x "
                 "WHERE s LIKE '%@%' OR s LIKE '%argon2%' OR s LIKE '%example%'",
                 "0");
}

static void test_apply_all(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_metrics *m = sp_metrics_new();
    struct proj_runner *r;
    (void)state;

    pgtest_setup(&t);
    build_log(&t);
    r = pgtest_runner_new(&t, 500, PROJ_POISON_DEAD_LETTER, m);
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    assert_view(t.conn);
    assert_int_equal(proj_runner_checkpoint(r), 10);
    assert_int_equal(proj_runner_lag(r), 0);
    assert_true(sp_metrics_value(m, "stockpot_projection_events_applied_total",
                                 "projection=\"pg\"") == 10.0);
    assert_true(sp_metrics_value(m, "stockpot_projection_checkpoint",
                                 "projection=\"pg\",partition=\"0\"") == 10.0);
    /* caught up: a further step applies nothing */
    int64_t n = -1;
    assert_int_equal(proj_runner_step(r, &n, &eb), 0);
    assert_int_equal(n, 0);
    proj_runner_free(r);
    sp_metrics_free(m);
    pgtest_teardown(&t);
}

static void test_restart_exactly_once(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_metrics *m = sp_metrics_new();
    struct proj_runner *r;
    int64_t n = 0;
    (void)state;

    pgtest_setup(&t);
    build_log(&t);
    r = pgtest_runner_new(&t, 4, PROJ_POISON_DEAD_LETTER, NULL);
    assert_int_equal(proj_runner_step(r, &n, &eb), 0);
    assert_int_equal(n, 4);
    assert_int_equal(pgtest_count(t.conn, "SELECT next_offset FROM stockpot.checkpoints"), 4);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.recipes"), 1);
    proj_runner_free(r); /* "crash": a new runner resumes from the stored checkpoint */

    r = pgtest_runner_new(&t, 4, PROJ_POISON_DEAD_LETTER, m);
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    /* a second application of any event would violate a key and be dead-lettered */
    assert_view(t.conn);
    assert_true(sp_metrics_value(m, "stockpot_projection_events_applied_total",
                                 "projection=\"pg\"") == 6.0);
    proj_runner_free(r);
    sp_metrics_free(m);
    pgtest_teardown(&t);
}

static void test_new_events_after_catch_up(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r;
    (void)state;

    pgtest_setup(&t);
    build_log(&t);
    r = pgtest_runner_new(&t, 3, PROJ_POISON_DEAD_LETTER, NULL);
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    pgtest_append(&t, "ProfileUpdated", "user-" USER2, 2,
                  json_pack("{s:s,s:n}", "full_name", "Ana María", "bio"));
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    pgtest_check(t.conn,
                 "SELECT full_name || '|' || coalesce(bio, 'null') || '|' || version "
                 "FROM stockpot.users WHERE id = " USER2,
                 "Ana María|null|2");
    proj_runner_free(r);
    pgtest_teardown(&t);
}

static int64_t step(struct proj_runner *r)
{
    struct sp_errbuf eb = {{0}, {0}};
    int64_t applied = -1;

    if (proj_runner_step(r, &applied, &eb) != 0)
        fail_msg("step: %s", eb.msg);
    return applied;
}

/* A full batch lets the next step take up to catchup_batch_max, until a batch is not
 * full; then live batches are batch_max again. */
static void test_catchup_batches(void **state)
{
    struct pgtest t;
    struct proj_runner *r;
    (void)state;

    pgtest_setup(&t);
    pgtest_append_mixed(&t, 60, 100); /* 60 + 100 + 33 + 20 + 1 = 214 events */
    r = pgtest_runner_sized(&t, 10, 80, 0, PROJ_POISON_DEAD_LETTER, NULL);
    assert_int_equal(step(r), 10);
    assert_int_equal(step(r), 80);
    assert_int_equal(step(r), 80);
    assert_int_equal(step(r), 44);
    assert_int_equal(step(r), 0);
    build_log(&t); /* 10 more: one live batch of batch_max, then the rest */
    assert_int_equal(step(r), 10);
    assert_int_equal(step(r), 0);
    proj_runner_free(r);
    pgtest_teardown(&t);
}

struct late_append {
    struct pgtest *t;
    int after_ms;
};

static void *append_late(void *arg)
{
    struct late_append *a = arg;
    struct timespec ts = {0, (long)a->after_ms * 1000000L};

    nanosleep(&ts, NULL);
    build_log(a->t);
    return NULL;
}

/* batch_linger_ms: a live step waits for a full batch, up to the linger, and applies
 * what there is when the linger ends. */
static void test_batch_linger(void **state)
{
    struct pgtest t;
    struct proj_runner *r;
    pthread_t tid;
    struct late_append late = {&t, 100};
    (void)state;

    pgtest_setup(&t);
    pgtest_append(&t, "UserRegistered", "user-7301234567899999", 1,
                  json_pack("{s:s,s:s,s:s,s:s}", "user_id", "7301234567899999", "username", "early",
                            "email", "early@example.com", "password_hash", "$argon2id$v=19$z"));
    r = pgtest_runner_sized(&t, 10, 0, 30000, PROJ_POISON_DEAD_LETTER, NULL);
    assert_int_equal(step(r), 1); /* the first step learns the checkpoint: no linger */
    /* ten events come 100 ms later: without the linger the step would find none */
    assert_int_equal(pthread_create(&tid, NULL, append_late, &late), 0);
    assert_int_equal(step(r), 10);
    assert_int_equal(pthread_join(tid, NULL), 0);
    proj_runner_free(r);

    r = pgtest_runner_sized(&t, 1000, 0, 50, PROJ_POISON_DEAD_LETTER, NULL);
    assert_int_equal(step(r), 0);
    pgtest_append(&t, "ProfileUpdated", "user-7301234567899999", 2,
                  json_pack("{s:s}", "full_name", "Early Bird"));
    assert_int_equal(step(r), 1); /* 50 ms without a full batch: what there is */
    proj_runner_free(r);
    pgtest_teardown(&t);
}

static void test_reconnect(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r;
    int64_t n = 0;
    int rc;
    (void)state;

    pgtest_setup(&t);
    build_log(&t);
    r = pgtest_runner_new(&t, 500, PROJ_POISON_DEAD_LETTER, NULL);
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    assert_true(proj_runner_connected(r));
    /* PostgreSQL drops the runner's session (as on a server restart); only this test's
     * database, as other tests run projectors concurrently */
    assert_int_equal(pgtest_count(t.conn, "SELECT count(pg_terminate_backend(pid)) FROM "
                                          "pg_stat_activity WHERE application_name = "
                                          "'stockpot-projector/pg' AND datname = "
                                          "current_database()"),
                     1);
    pgtest_append(&t, "ProfileUpdated", "user-" USER1, 2, json_pack("{s:s}", "bio", "厨师"));
    rc = proj_runner_step(r, &n, &eb);
    assert_int_equal(rc, SP_EUNAVAIL); /* the batch is lost with the session */
    assert_false(proj_runner_connected(r));
    assert_int_equal(proj_runner_step(r, &n, &eb), 0); /* reconnects, resumes at checkpoint */
    assert_int_equal(n, 1);
    pgtest_check(t.conn, "SELECT bio || version FROM stockpot.users WHERE id = " USER1, "厨师2");
    pgtest_check(t.conn, "SELECT next_offset FROM stockpot.checkpoints", "11");
    proj_runner_free(r);
    pgtest_teardown(&t);
}

/* Duplicate tags are stored once, in the order of their first occurrence. */
static void test_duplicate_tags(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r;
    (void)state;

    pgtest_setup(&t);
    pgtest_append(&t, "RecipeCreated", "recipe-" RECIPE1, 1,
                  json_pack("{s:s,s:s,s:s,s:s,s:[s],s:[s],s:[s,s,s,s,s],s:[]}", "recipe_id",
                            RECIPE1, "author_id", USER1, "title", "t", "description", "",
                            "ingredients", "x", "steps", "y", "tags", "b", "a", "b", "汤", "a",
                            "image_media_ids"));
    r = pgtest_runner_new(&t, 500, PROJ_POISON_DEAD_LETTER, NULL);
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    pgtest_check(t.conn, "SELECT tags::text FROM stockpot.recipes", "{b,a,汤}");
    pgtest_check(t.conn, "SELECT string_agg(tag, ',' ORDER BY tag) FROM stockpot.recipe_tags",
                 "a,b,汤");
    pgtest_append(&t, "RecipeUpdated", "recipe-" RECIPE1, 2,
                  json_pack("{s:[s,s,s,s]}", "tags", "z", "z", "y", "z"));
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    pgtest_check(t.conn, "SELECT tags::text FROM stockpot.recipes", "{z,y}");
    pgtest_check(t.conn, "SELECT string_agg(tag, ',' ORDER BY tag) FROM stockpot.recipe_tags",
                 "y,z");
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.dead_letters", "0");
    proj_runner_free(r);
    pgtest_teardown(&t);
}

/* Sessions of proj_pg_connect: UTC times, UTF-8, and never a JIT compilation on a
 * batch (a misestimated recount once cost ~200 ms of it per batch). */
static void test_session_settings(void **state)
{
    struct pgtest t;
    (void)state;

    pgtest_setup(&t);
    pgtest_check(t.conn,
                 "SELECT current_setting('TimeZone') || ',' || "
                 "current_setting('client_encoding') || ',' || current_setting('jit')",
                 "UTC,UTF8,off");
    pgtest_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_settings),
        cmocka_unit_test(test_duplicate_tags),
        cmocka_unit_test(test_apply_all),
        cmocka_unit_test(test_restart_exactly_once),
        cmocka_unit_test(test_new_events_after_catch_up),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_catchup_batches),
        cmocka_unit_test(test_batch_linger),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
