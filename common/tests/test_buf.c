/* Tests of struct sp_buf: growth, caps, formatting, JSON escaping, detach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sp/buf.h"
#include "sp/banned.h"

static void test_empty_and_append(void **state)
{
    (void)state;
    struct sp_buf b;
    sp_buf_init(&b, 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_int_equal(b.len, 0);
    assert_int_equal(sp_buf_adds(&b, "hello"), 0);
    assert_int_equal(sp_buf_add(&b, ", ", 2), 0);
    assert_int_equal(sp_buf_addf(&b, "%s %d", "world", 42), 0);
    assert_string_equal(b.data, "hello, world 42");
    assert_int_equal(b.len, 15);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(sp_buf_adds(&b, "x"), 0);
    assert_int_equal(b.len, 1015);
    assert_true(b.len < b.cap);
    assert_int_equal(b.data[b.len], '\0');
    sp_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    sp_buf_release(&b);
    assert_int_equal(b.cap, 0);
}

static void test_max_bytes(void **state)
{
    (void)state;
    struct sp_buf b;
    sp_buf_init(&b, 8);
    assert_int_equal(sp_buf_adds(&b, "12345678"), 0);
    assert_int_equal(sp_buf_adds(&b, "9"), SP_ETOOBIG);
    assert_string_equal(b.data, "12345678");
    sp_buf_reset(&b);
    assert_int_equal(sp_buf_addf(&b, "%d", 123456789), SP_ETOOBIG);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    sp_buf_release(&b);
}

static void test_detach(void **state)
{
    (void)state;
    struct sp_buf b;
    size_t len = 99;
    sp_buf_init(&b, 0);
    char *empty = sp_buf_detach(&b, &len);
    assert_string_equal(empty, "");
    assert_int_equal(len, 0);
    free(empty);
    assert_int_equal(sp_buf_adds(&b, "abc"), 0);
    char *s = sp_buf_detach(&b, &len);
    assert_string_equal(s, "abc");
    assert_int_equal(len, 3);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    free(s);
    sp_buf_release(&b);
}

static void test_json_escape(void **state)
{
    (void)state;
    struct sp_buf b;
    sp_buf_init(&b, 0);
    const char in[] = "a\"b\\c\n\t\x01\xc3\xa9\xff\xe2\x82";
    assert_int_equal(sp_buf_add_json_str(&b, in, sizeof(in) - 1), 0);
    assert_string_equal(b.data, "a\\\"b\\\\c\\n\\t\\u0001\xc3\xa9\\ufffd\\ufffd\\ufffd");
    sp_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_append),
        cmocka_unit_test(test_max_bytes),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_json_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
