/*
 * Integration tests of poison events: dead-letter policy records and skips them, halt
 * policy stops the projection before them (needs PostgreSQL: run under pg_virtualenv).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgtest.h"
#include "proj/pg.h"
#include "proj/runner.h"

#include "sp/banned.h"

#define USER1 "7301234567890001"

static void user(struct pgtest *t, const char *id, const char *name)
{
    char stream[64];
    snprintf(stream, sizeof(stream), "user-%s", id);
    pgtest_append(t, "UserRegistered", stream, 1,
                  json_pack("{s:s,s:s,s:s,s:s}", "user_id", id, "username", name, "email",
                            "x@example.com", "password_hash", "$argon2id$v=19$h"));
}

/* offsets: 0 ok, 1 bad checksum, 2 unknown type, 3 missing title, 4 undecodable,
 * 5 duplicate username (constraint), 6 ok, 7 recipe update of an unknown recipe */
static void build_poisoned_log(struct pgtest *t)
{
    user(t, USER1, "lin");
    user(t, "7301234567890002", "ana");
    pgtest_append(t, "BogusHappened", "user-" USER1, 2, json_object());
    pgtest_append(t, "RecipeCreated", "recipe-7301234567890101", 1,
                  json_pack("{s:s,s:s,s:[s],s:[s]}", "recipe_id", "7301234567890101", "author_id",
                            USER1, "ingredients", "x", "steps", "y"));
    user(t, "7301234567890003", "joe");
    user(t, "7301234567890004", "lin");
    user(t, "7301234567890005", "zoe");
    pgtest_append(t, "RecipeUpdated", "recipe-7301234567890999", 2,
                  json_pack("{s:s}", "title", "t"));
    pgtest_overwrite(t, 1, "{\"id\":\"x\"} but still checksummed wrongly", 0);
    pgtest_overwrite(t, 4, "{\"type\":\"UserRegistered\", not json", 1);
}

static void test_dead_letter(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_metrics *m = sp_metrics_new();
    struct proj_runner *r;
    char *v;
    (void)state;

    pgtest_setup(&t);
    build_poisoned_log(&t);
    r = pgtest_runner_new(&t, 100, PROJ_POISON_DEAD_LETTER, m);
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    assert_false(proj_runner_halted(r, NULL));
    v = pgtest_value(t.conn, "SELECT string_agg(\"offset\" || ':' || coalesce(event_type, '-'), "
                             "',' ORDER BY \"offset\") FROM stockpot.dead_letters "
                             "WHERE projection = 'pg' AND partition = 0");
    assert_string_equal(v, "1:-,2:BogusHappened,3:RecipeCreated,4:-,"
                           "5:UserRegistered,7:RecipeUpdated");
    free(v);
    v = pgtest_value(t.conn, "SELECT string_agg(error, ' / ' ORDER BY \"offset\") "
                             "FROM stockpot.dead_letters");
    assert_non_null(strstr(v, "checksum mismatch"));
    assert_non_null(strstr(v, "unknown event type \"BogusHappened\""));
    assert_non_null(strstr(v, "missing field \"title\""));
    assert_non_null(strstr(v, "undecodable event"));
    assert_non_null(strstr(v, "duplicate key"));
    assert_non_null(strstr(v, "not found"));
    free(v);
    /* event ids are kept when the record decoded */
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.dead_letters "
                                          "WHERE \"offset\" IN (2, 3, 5, 7) AND "
                                          "length(event_id) = 36"),
                     4);
    /* the projection went on: offsets 0 and 6 are in, and the checkpoint is at the end */
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 2);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users "
                                          "WHERE username = 'zoe'"),
                     1);
    assert_int_equal(pgtest_count(t.conn, "SELECT next_offset FROM stockpot.checkpoints"), 8);
    assert_true(
        sp_metrics_value(m, "stockpot_projection_dead_letters_total", "projection=\"pg\"") == 6.0);
    proj_runner_free(r);
    sp_metrics_free(m);
    pgtest_teardown(&t);
}

static void test_halt(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_metrics *m = sp_metrics_new();
    struct proj_runner *r;
    const char *why = NULL;
    int64_t n = 0;
    (void)state;

    pgtest_setup(&t);
    build_poisoned_log(&t);
    r = pgtest_runner_new(&t, 100, PROJ_POISON_HALT, m);
    assert_int_equal(proj_runner_step(r, &n, &eb), SP_ESTATE);
    assert_int_equal(n, 1); /* offset 0 applied and committed, stopped before offset 1 */
    assert_true(proj_runner_halted(r, &why));
    assert_non_null(strstr(why, "offset 1: checksum mismatch"));
    assert_non_null(strstr(eb.msg, "halted"));
    assert_int_equal(pgtest_count(t.conn, "SELECT next_offset FROM stockpot.checkpoints"), 1);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 1);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.dead_letters"), 0);
    assert_true(sp_metrics_value(m, "stockpot_projection_halted", "projection=\"pg\"") == 1.0);
    /* stays halted, never crashes */
    assert_int_equal(proj_runner_step(r, &n, &eb), SP_ESTATE);
    assert_int_equal(n, 0);
    proj_runner_free(r);
    sp_metrics_free(m);
    pgtest_teardown(&t);
}

/*
 * A transient error (here a lock timeout while another session holds a lock on
 * stockpot.recipes) is not poison: the batch is rolled back, nothing is dead-lettered,
 * and the event is applied once the lock is gone.
 */
static void test_transient_is_retried(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_metrics *m = sp_metrics_new();
    struct proj_runner *r;
    char sql[160];
    int64_t n = -1;
    (void)state;

    pgtest_setup(&t);
    user(&t, USER1, "lin");
    pgtest_append(&t, "RecipeCreated", "recipe-7301234567890101", 1,
                  json_pack("{s:s,s:s,s:s,s:s,s:[s],s:[s],s:[],s:[]}", "recipe_id",
                            "7301234567890101", "author_id", USER1, "title", "t", "description", "",
                            "ingredients", "x", "steps", "y", "tags", "image_media_ids"));
    /* every new session of this database (the runner's) gives up on a lock after 100 ms */
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s SET lock_timeout = '100ms'", t.db);
    assert_int_equal(proj_pg_exec_script(t.conn, sql, &eb), 0);
    assert_int_equal(
        proj_pg_exec_script(t.conn, "BEGIN; LOCK TABLE stockpot.recipes IN SHARE MODE", &eb), 0);
    for (int policy = PROJ_POISON_DEAD_LETTER; policy <= PROJ_POISON_HALT; policy++) {
        r = pgtest_runner_new(&t, 100, (enum proj_poison_policy)policy, m);
        assert_int_equal(proj_runner_step(r, &n, &eb), SP_EUNAVAIL);
        assert_string_equal(eb.field, "55P03"); /* lock_not_available */
        assert_non_null(strstr(eb.msg, "transient"));
        assert_int_equal(n, 0);
        assert_false(proj_runner_halted(r, NULL));
        assert_true(proj_runner_connected(r)); /* the session is fine: kept */
        proj_runner_free(r);
    }
    assert_true(sp_metrics_value(m, "stockpot_projection_retries_total", "projection=\"pg\"") ==
                2.0);
    assert_true(
        sp_metrics_value(m, "stockpot_projection_dead_letters_total", "projection=\"pg\"") == 0.0);
    /* nothing of the batch is kept: no dead letter, no checkpoint, not even the user */
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.dead_letters"), 0);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.checkpoints"), 0);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 0);

    assert_int_equal(proj_pg_exec_script(t.conn, "ROLLBACK", &eb), 0); /* the lock goes */
    r = pgtest_runner_new(&t, 100, PROJ_POISON_DEAD_LETTER, m);
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.recipes"), 1);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 1);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.dead_letters"), 0);
    assert_int_equal(pgtest_count(t.conn, "SELECT next_offset FROM stockpot.checkpoints"), 2);
    proj_runner_free(r);
    sp_metrics_free(m);
    pgtest_teardown(&t);
}

/*
 * Bisection: the batch's events fold under one savepoint, and a poison one is found by
 * folding halves. A log of 40 events, users with distinct names but at @p poison[] (an
 * update of an unknown recipe: the fold's own refusal; or, when @p dup, a second user
 * named like the first: a unique violation, SQLSTATE 23505), folded in one batch and one
 * event per batch: the same dead letters, the same users, the checkpoint at the end.
 */
static void bisect_case(const int *poison, size_t n_poison, bool dup)
{
    char *one_batch = NULL;

    static const size_t batch_sizes[] = {100, 7, 1};
    for (size_t bs = 0; bs < 3; bs++) {
        size_t batch_max = batch_sizes[bs];
        struct pgtest t;
        struct sp_errbuf eb = {{0}, {0}};
        struct proj_runner *r;
        char want[256] = "", *got;
        size_t k = 0;

        pgtest_setup(&t);
        for (int i = 0; i < 40; i++) {
            char id[32], name[32];
            snprintf(id, sizeof(id), "73012345678%05d", 100 + i);
            if (k < n_poison && poison[k] == i) {
                if (dup && i > 0)
                    user(&t, id, "user0"); /* the name of offset 0's user */
                else
                    pgtest_append(&t, "RecipeUpdated", "recipe-7301234567890999", 2,
                                  json_pack("{s:s}", "title", "t"));
                snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%d", k ? "," : "", i);
                k++;
                continue;
            }
            snprintf(name, sizeof(name), "user%d", i);
            user(&t, id, name);
        }
        r = pgtest_runner_new(&t, batch_max, PROJ_POISON_DEAD_LETTER, NULL);
        assert_int_equal(proj_runner_catch_up(r, &eb), 0);
        got = pgtest_value(t.conn, "SELECT coalesce(string_agg(\"offset\"::text, ',' ORDER BY "
                                   "\"offset\"), '') FROM stockpot.dead_letters");
        assert_string_equal(got, want);
        free(got);
        assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"),
                         40 - (long long)n_poison);
        assert_int_equal(pgtest_count(t.conn, "SELECT next_offset FROM stockpot.checkpoints"), 40);
        got = pgtest_value(t.conn, "SELECT string_agg(id || username || version, ',' ORDER BY id) "
                                   "FROM stockpot.users");
        if (one_batch == NULL)
            one_batch = got;
        else {
            assert_string_equal(got, one_batch);
            free(got);
        }
        proj_runner_free(r);
        pgtest_teardown(&t);
    }
    free(one_batch);
}

static void test_bisect_first(void **state)
{
    (void)state;
    bisect_case((const int[]){0}, 1, false);
}

static void test_bisect_middle(void **state)
{
    (void)state;
    bisect_case((const int[]){20}, 1, false);
    bisect_case((const int[]){21}, 1, true);
}

static void test_bisect_last(void **state)
{
    (void)state;
    bisect_case((const int[]){39}, 1, true);
}

static void test_bisect_two(void **state)
{
    (void)state;
    bisect_case((const int[]){5, 30}, 2, false);
    bisect_case((const int[]){12, 13}, 2, true);
}

/* Halt with a poison event in the middle of one batch: the 20 before it are committed. */
static void test_bisect_halt(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r;
    int64_t n = 0;
    (void)state;

    pgtest_setup(&t);
    for (int i = 0; i < 40; i++) {
        char id[32], name[32];
        snprintf(id, sizeof(id), "73012345678%05d", 100 + i);
        snprintf(name, sizeof(name), "user%d", i == 20 ? 3 : i); /* offset 20 repeats user3 */
        user(&t, id, name);
    }
    r = pgtest_runner_new(&t, 100, PROJ_POISON_HALT, NULL);
    assert_int_equal(proj_runner_step(r, &n, &eb), SP_ESTATE);
    assert_int_equal(n, 20);
    assert_true(proj_runner_halted(r, NULL));
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 20);
    assert_int_equal(
        pgtest_count(t.conn, "SELECT max(substr(username, 5)::int) FROM stockpot.users"), 19);
    assert_int_equal(pgtest_count(t.conn, "SELECT next_offset FROM stockpot.checkpoints"), 20);
    proj_runner_free(r);
    pgtest_teardown(&t);
}

/*
 * Batches of 300 are read ahead (and decoded on a thread of their own) while the one before
 * folds: the batch after a poison event, the batch after a halt and the runner's end drop
 * or use what was read ahead without changing the outcome. 1,200 users with poison events
 * at offsets 300 (the first of a batch read ahead) and 650, in batches of 300 and in one
 * batch: the same dead letters and users; halt: stops at 650 with the users before it.
 */
static void test_read_ahead(void **state)
{
    char *reference = NULL;
    (void)state;

    for (int pass = 0; pass < 3; pass++) {
        bool halt_policy = pass == 2;
        size_t batch_max = pass == 1 ? 1200 : 300;
        struct sp_errbuf eb = {{0}, {0}};
        struct proj_runner *r;
        struct pgtest t;
        char *got;

        pgtest_setup(&t);
        for (int i = 0; i < 1200; i++) {
            char id[32], name[32];
            snprintf(id, sizeof(id), "73012345678%05d", 100 + i);
            snprintf(name, sizeof(name), "user%d", i);
            if ((i == 300 && !halt_policy) || i == 650)
                pgtest_append(&t, "RecipeUpdated", "recipe-7301234567890999", 2,
                              json_pack("{s:s}", "title", "t"));
            else
                user(&t, id, name);
        }
        r = pgtest_runner_new(&t, batch_max,
                              halt_policy ? PROJ_POISON_HALT : PROJ_POISON_DEAD_LETTER, NULL);
        if (halt_policy) {
            int64_t n = 0, total = 0;
            int rc = 0;
            for (int step = 0; step < 3 && rc == 0; step++, total += n)
                rc = proj_runner_step(r, &n, &eb);
            assert_int_equal(rc, SP_ESTATE);
            assert_int_equal(total, 650);
            assert_true(proj_runner_halted(r, NULL));
            assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 650);
            assert_int_equal(pgtest_count(t.conn, "SELECT next_offset FROM stockpot.checkpoints"),
                             650);
        } else {
            assert_int_equal(proj_runner_catch_up(r, &eb), 0);
            pgtest_check(t.conn,
                         "SELECT string_agg(\"offset\"::text, ',' ORDER BY \"offset\") "
                         "FROM stockpot.dead_letters",
                         "300,650");
            assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 1198);
            assert_int_equal(pgtest_count(t.conn, "SELECT next_offset FROM stockpot.checkpoints"),
                             1200);
            got = pgtest_value(t.conn, "SELECT md5(string_agg(id || username || version, ',' "
                                       "ORDER BY id)) FROM stockpot.users");
            if (reference == NULL) {
                reference = got;
            } else {
                assert_string_equal(got, reference);
                free(got);
            }
        }
        proj_runner_free(r);
        pgtest_teardown(&t);
    }
    free(reference);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dead_letter),          cmocka_unit_test(test_halt),
        cmocka_unit_test(test_transient_is_retried), cmocka_unit_test(test_bisect_first),
        cmocka_unit_test(test_bisect_middle),        cmocka_unit_test(test_bisect_last),
        cmocka_unit_test(test_bisect_two),           cmocka_unit_test(test_bisect_halt),
        cmocka_unit_test(test_read_ahead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
