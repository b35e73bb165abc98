/*
 * Integration test of the stockpot-replay binary over a generated embedded log and a
 * fresh PostgreSQL database (run under pg_virtualenv).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgtest.h"
#include "proj/runner.h"
#include "replay_test_run.h"

#include "sp/banned.h"

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void build_log(struct pgtest *t)
{
    pgtest_append(t, "UserRegistered", "user-7301234567890001", 1,
                  json_pack("{s:s,s:s,s:s,s:s}", "user_id", "7301234567890001", "username", "lin",
                            "email", "lin@example.com", "password_hash", "$argon2id$v=19$h"));
    for (int i = 1; i <= 5; i++) {
        char id[32], stream[48];
        snprintf(id, sizeof(id), "730123456789010%d", i);
        snprintf(stream, sizeof(stream), "recipe-%s", id);
        pgtest_append(t, "RecipeCreated", stream, 1,
                      json_pack("{s:s,s:s,s:s,s:s,s:[s],s:[s],s:[s],s:[]}", "recipe_id", id,
                                "author_id", "7301234567890001", "title", "饺子", "description",
                                "包饺子", "ingredients", "面粉", "steps", "包", "tags", "中餐",
                                "image_media_ids"));
    }
    pgtest_append(t, "RecipeUpdated", "recipe-7301234567890102", 2,
                  json_pack("{s:s}", "title", "猪肉饺子"));
    pgtest_append(t, "RecipeDeleted", "recipe-7301234567890103", 2, json_object());
}

static void test_usage(void **state)
{
    char *out;
    (void)state;
    assert_int_equal(replay_test_run(&out, (const char *[]){"--help", NULL}), 0);
    assert_non_null(strstr(out, "rebuild"));
    free(out);
    assert_int_equal(replay_test_run(&out, (const char *[]){"dump", "--help", NULL}), 0);
    assert_non_null(strstr(out, "--stream"));
    free(out);
    assert_int_equal(replay_test_run(&out, (const char *[]){"frobnicate", NULL}), 2);
    assert_non_null(strstr(out, "unknown command \"frobnicate\""));
    free(out);
    assert_int_equal(replay_test_run(&out, (const char *[]){"rebuild", "nope", NULL}), 2);
    assert_non_null(strstr(out, "unknown projection \"nope\""));
    assert_non_null(strstr(out, "projections: pg"));
    free(out);
    assert_int_equal(replay_test_run(&out, (const char *[]){"dump", "--limit", "ten", NULL}), 2);
    free(out);
    assert_int_equal(
        replay_test_run(&out,
                        (const char *[]){"--config", "/nonexistent/stockpot.conf", "verify", NULL}),
        2);
    assert_non_null(strstr(out, "bad configuration"));
    free(out);
}

static void test_commands(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    char live[40], *out;
    (void)state;

    pgtest_setup(&t);
    build_log(&t);
    setenv("STOCKPOT_LOG_DIR", t.dir, 1);
    setenv("STOCKPOT_PG_CONNINFO", t.conninfo, 1);
    assert_int_equal(replay_test_run(&out, (const char *[]){"migrate", NULL}), 0);
    assert_non_null(strstr(out, "0 applied"));
    free(out);

    assert_int_equal(replay_test_run(&out, (const char *[]){"dump", NULL}), 0);
    assert_int_equal(lines(out), 8);
    assert_non_null(strstr(out, "\"type\":\"RecipeCreated\""));
    free(out);
    assert_int_equal(replay_test_run(&out, (const char *[]){"dump", "--type", "RecipeCreated",
                                                            "--limit", "3", NULL}),
                     0);
    assert_int_equal(lines(out), 3);
    free(out);
    assert_int_equal(replay_test_run(&out, (const char *[]){"dump", "--stream",
                                                            "recipe-7301234567890102", NULL}),
                     0);
    assert_int_equal(lines(out), 2);
    assert_non_null(strstr(out, "猪肉饺子"));
    free(out);
    assert_int_equal(replay_test_run(&out, (const char *[]){"dump", "--from", "6", NULL}), 0);
    assert_int_equal(lines(out), 2);
    free(out);

    assert_int_equal(replay_test_run(&out, (const char *[]){"verify", NULL}), 0);
    assert_non_null(strstr(out, "verified 8 records in 6 streams: 0 faults"));
    free(out);

    pgtest_catch_up(&t, 3);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), live, sizeof(live), &eb), 0);
    assert_int_equal(replay_test_run(&out, (const char *[]){"checksum", "pg", NULL}), 0);
    assert_non_null(strstr(out, live));
    free(out);
    assert_int_equal(replay_test_run(&out, (const char *[]){"rebuild", "pg", NULL}), 0);
    assert_non_null(strstr(out, "8 events applied, 0 dead-lettered, checkpoint 0:8"));
    assert_non_null(strstr(out, "events/s"));
    free(out);
    assert_int_equal(replay_test_run(&out, (const char *[]){"checksum", "pg", NULL}), 0);
    assert_non_null(strstr(out, live));
    free(out);

    /* faults: a version gap and a bad checksum */
    pgtest_append(&t, "RecipeDeleted", "recipe-7301234567890101", 3, json_object());
    pgtest_overwrite(&t, 2, "{\"garbage\":true}", 0);
    assert_int_equal(replay_test_run(&out, (const char *[]){"verify", NULL}), 1);
    assert_non_null(
        strstr(out, "offset 0:8 stream recipe-7301234567890101: version 3, expected 2"));
    assert_non_null(strstr(out, "offset 0:2 stream ?: checksum"));
    /* the overwritten record was recipe ...102's version 1, so its version 2 is a gap too */
    assert_non_null(
        strstr(out, "offset 0:6 stream recipe-7301234567890102: version 2, expected 1"));
    assert_non_null(strstr(out, "3 faults"));
    free(out);
    pgtest_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
