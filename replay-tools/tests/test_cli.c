/* Unit tests of replay_lib's command table and usage, and of argument errors that need
 * neither the log nor PostgreSQL. */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "replay/replay.h"

#include "sp/banned.h"

static void test_find(void **state)
{
    static const char *const names[] = {"migrate", "rebuild",  "dump",
                                        "verify",  "checksum", "export"};
    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct replay_cmd *cmd = replay_cmd_find(names[i]);
        assert_non_null(cmd);
        assert_string_equal(cmd->name, names[i]);
        assert_non_null(cmd->fn);
        assert_true(strlen(cmd->summary) > 0);
    }
    assert_ptr_equal(replay_cmd_find("dump")->fn, replay_cmd_dump);
    assert_null(replay_cmd_find("frobnicate"));
    assert_null(replay_cmd_find(""));
}

static void test_usage(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    (void)state;

    assert_non_null(f);
    replay_usage(f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(strstr(text, "usage: stockpot-replay"));
    assert_non_null(strstr(text, "  rebuild   rebuild a projection"));
    assert_non_null(strstr(text, "  checksum  "));
    assert_non_null(strstr(text, "pg.conninfo")); /* the config keys */
    free(text);
}

/* Bad arguments are rejected before the log or PostgreSQL is touched (cfg unused). */
static void test_bad_arguments(void **state)
{
    char limit[] = "--limit", ten[] = "ten", extra[] = "extra", two[] = "a", three[] = "b";
    char *dump_argv[] = {limit, ten};
    char *verify_argv[] = {extra};
    char *rebuild_argv[] = {two, three};
    (void)state;

    assert_int_equal(replay_cmd_dump(NULL, 2, dump_argv), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_verify(NULL, 1, verify_argv), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_migrate(NULL, 1, verify_argv), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_rebuild(NULL, 2, rebuild_argv), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_checksum(NULL, 0, rebuild_argv), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_export(NULL, 0, rebuild_argv), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_export(NULL, 2, rebuild_argv), REPLAY_EXIT_USAGE);
}

/* export's options are checked before the log or a view is opened (cfg unused). */
static void test_export_arguments(void **state)
{
    char events[] = "events", analytics[] = "analytics", format[] = "--format", ndjson[] = "ndjson",
         xml[] = "xml", until[] = "--until", bad_pos[] = "0:x", from[] = "--from", to[] = "--to",
         d1[] = "2026-01-01", d2[] = "2027-03-01", out[] = "--out", dir[] = "/nonexistent/export",
         type[] = "--type", unknown_type[] = "Frobnicated", window[] = "--window", w7[] = "7d";
    char *bad_format[] = {events, format, xml};
    char *bad_until[] = {events, format, ndjson, until, bad_pos};
    char *too_long[] = {analytics, from, d1, to, d2, format, ndjson, out, dir};
    char *inverted[] = {analytics, from, d2, to, d1, format, ndjson, out, dir};
    char *bad_type[] = {events, format, ndjson, type, unknown_type};
    char *no_to[] = {analytics, from, d1, format, ndjson, out, dir};
    char *events_window[] = {events, format, ndjson, window, w7};
    (void)state;

    assert_int_equal(replay_cmd_export(NULL, 3, bad_format), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_export(NULL, 5, bad_until), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_export(NULL, 9, too_long), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_export(NULL, 9, inverted), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_export(NULL, 5, bad_type), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_export(NULL, 7, no_to), REPLAY_EXIT_USAGE);
    assert_int_equal(replay_cmd_export(NULL, 5, events_window), REPLAY_EXIT_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_export_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
