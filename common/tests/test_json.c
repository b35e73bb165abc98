/* Tests of sp_json_dump: the same bytes as jansson's compact dump, and its errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sp/json.h"
#include "sp/banned.h"

/* sp_json_dump(v) must equal json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY). */
static void assert_same_as_jansson(json_t *v)
{
    struct sp_buf b;
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(want);
    sp_buf_init(&b, 0);
    assert_int_equal(sp_json_dump(&b, v), 0);
    assert_string_equal(b.data, want);
    assert_int_equal(b.len, strlen(want));
    sp_buf_release(&b);
    free(want);
}

static void test_scalars(void **state)
{
    (void)state;
    static const json_int_t ints[] = {0, 1, -1, 9, 10, -10, 1234567890123LL, INT64_MAX, INT64_MIN};
    static const double reals[] = {0.0, -0.0, 0.5, 1.0, -2.25, 1e300, 1.5e-7, 123456789.125};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        json_t *v = json_integer(ints[i]);
        assert_same_as_jansson(v);
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
        json_t *v = json_real(reals[i]);
        assert_same_as_jansson(v);
        json_decref(v);
    }
    assert_same_as_jansson(json_true());
    assert_same_as_jansson(json_false());
    assert_same_as_jansson(json_null());
}

static void test_strings(void **state)
{
    (void)state;
    /* every control character, quote and backslash, '/', DEL, and 2-, 3- and 4-byte UTF-8 */
    static const char tail[] = "\"\\/\x7f"
                               "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8d\xb2 end";
    char all[64];
    for (int c = 0; c < 32; c++)
        all[c] = (char)c;
    memcpy(all + 32, tail, sizeof(tail) - 1);
    json_t *v = json_stringn(all, 32 + sizeof(tail) - 1);
    assert_non_null(v);
    assert_same_as_jansson(v);
    json_decref(v);
    v = json_string("");
    assert_same_as_jansson(v);
    json_decref(v);
}

/* A random tree of every kind of value, from a seeded xorshift generator. */
static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static json_t *random_string(void)
{
    static const char *const parts[] = {"a",
                                        "Z",
                                        " ",
                                        "\"",
                                        "\\",
                                        "\n",
                                        "\t",
                                        "\x01",
                                        "\x1f",
                                        "/",
                                        "\xc3\xa9",
                                        "\xe2\x82\xac",
                                        "\xf0\x9f\x8d\xb2",
                                        "tomato",
                                        "\x7f"};
    char s[128] = "";
    size_t n = rng() % 12;
    for (size_t i = 0; i < n; i++)
        strncat(s, parts[rng() % (sizeof(parts) / sizeof(parts[0]))], sizeof(s) - strlen(s) - 1);
    return json_string(s);
}

static json_t *random_value(int depth)
{
    switch (rng() % (depth > 4 ? 5 : 7)) {
    case 0:
        return random_string();
    case 1:
        return json_integer((json_int_t)rng() * (rng() % 2 ? 1 : -1));
    case 2:
        return json_real((double)(int64_t)rng() / 1024.0);
    case 3:
        return rng() % 2 ? json_true() : json_false();
    case 4:
        return json_null();
    case 5: {
        json_t *a = json_array();
        for (size_t i = rng() % 5; i > 0; i--)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (size_t i = rng() % 5; i > 0; i--) {
            json_t *k = random_string();
            json_object_set_new(o, json_string_value(k), random_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

static void test_random_trees(void **state)
{
    (void)state;
    for (int i = 0; i < 2000; i++) {
        json_t *v = random_value(0);
        assert_same_as_jansson(v);
        json_decref(v);
    }
}

static void test_member_order_and_nul_keys(void **state)
{
    (void)state;
    json_t *o = json_object();
    json_object_set_new(o, "z", json_integer(1));
    json_object_set_new(o, "a", json_array());
    json_object_set_new(o, "m", json_object());
    json_object_setn_new(o, "k\0ey", 4, json_stringn("v\0w", 3));
    assert_same_as_jansson(o);
    struct sp_buf b;
    sp_buf_init(&b, 0);
    assert_int_equal(sp_json_dump(&b, o), 0);
    assert_string_equal(b.data, "{\"z\":1,\"a\":[],\"m\":{},\"k\\u0000ey\":\"v\\u0000w\"}");
    sp_buf_release(&b);
    json_decref(o);
}

static void test_errors(void **state)
{
    (void)state;
    struct sp_buf b;
    sp_buf_init(&b, 0);
    assert_int_equal(sp_json_dump(&b, NULL), SP_EINVAL);
    /* invalid UTF-8 (a lone continuation byte, an overlong form, a surrogate): jansson
     * refuses to dump these too */
    static const char *const bad[] = {"a\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "\xe2\x82"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *v = json_stringn_nocheck(bad[i], strlen(bad[i]));
        sp_buf_reset(&b);
        assert_int_equal(sp_json_dump(&b, v), SP_EINVAL);
        assert_null(json_dumps(v, JSON_ENCODE_ANY));
        json_decref(v);
    }
    /* nesting past the limit */
    json_t *deep = json_array(), *cur = deep;
    for (int i = 0; i < 2100; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    sp_buf_reset(&b);
    assert_int_equal(sp_json_dump(&b, deep), SP_EINVAL);
    json_decref(deep);
    sp_buf_release(&b);
    /* the buffer's cap */
    sp_buf_init(&b, 8);
    json_t *s = json_string("longer than eight bytes");
    assert_int_equal(sp_json_dump(&b, s), SP_ETOOBIG);
    json_decref(s);
    sp_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),      cmocka_unit_test(test_strings),
        cmocka_unit_test(test_random_trees), cmocka_unit_test(test_member_order_and_nul_keys),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
