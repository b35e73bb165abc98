/* Tests for the JSON-lines logger: escaping, numbers, and ids kept as strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "sp/log.h"
#include "sp/banned.h"

/* Run @p emit with stderr redirected to a temporary file; return the parsed JSON line. */
static json_t *capture(void (*emit)(void))
{
    char path[] = "/tmp/sp_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    emit();
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fd);
    json_error_t jerr;
    json_t *line = json_load_file(path, JSON_DISABLE_EOF_CHECK, &jerr);
    unlink(path);
    assert_non_null(line);
    return line;
}

static void emit_fields(void)
{
    sp_logf(SP_LOG_INFO,
            (const char *[]){"status", "201", "duration_ms", "1.25", "user_id",
                             "7401234567890123456", "count", "12345678901234567890", "route",
                             "/r\"x", NULL},
            "done %d", 1);
}

static void test_fields_types(void **state)
{
    (void)state;
    sp_log_setup(SP_LOG_INFO, "test");
    json_t *line = capture(emit_fields);
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "done 1");
    assert_string_equal(json_string_value(json_object_get(line, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(line, "service")), "test");
    assert_int_equal(json_integer_value(json_object_get(line, "status")), 201);
    assert_true(json_is_real(json_object_get(line, "duration_ms")));
    /* 64-bit ids must survive any JSON parser: strings, never numbers */
    assert_string_equal(json_string_value(json_object_get(line, "user_id")), "7401234567890123456");
    assert_string_equal(json_string_value(json_object_get(line, "count")), "12345678901234567890");
    assert_string_equal(json_string_value(json_object_get(line, "route")), "/r\"x");
    json_decref(line);
}

static void emit_audit(void)
{
    sp_log_audit("login_failed", (const char *[]){"user_id", "42", NULL});
}

static void test_audit_line(void **state)
{
    (void)state;
    sp_log_setup(SP_LOG_ERROR, "test"); /* audit lines are written at any level */
    json_t *line = capture(emit_audit);
    assert_true(json_is_true(json_object_get(line, "audit")));
    assert_string_equal(json_string_value(json_object_get(line, "event")), "login_failed");
    assert_string_equal(json_string_value(json_object_get(line, "user_id")), "42");
    json_decref(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_types),
        cmocka_unit_test(test_audit_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
