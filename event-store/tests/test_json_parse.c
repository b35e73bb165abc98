/*
 * The log's JSON parser (src/json_parse.h) against jansson's json_loadb with
 * JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, which it replaces: on real envelopes, on
 * hand-picked edge cases of RFC 8259 and on thousands of mutations of them, both accept or
 * both refuse, and what both accept is the same value (json_equal). Documents nested more
 * than 1,024 deep are the one known difference (refused here, accepted by jansson up to
 * 2,048).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "json_parse.h"

#include "sp/banned.h"

static const char *const docs[] = {
    "{\"specversion\":\"1.0\",\"id\":\"0190b7c4-1f1e-7a2b-8c3d-4e5f60718293\",\"source\":"
    "\"/stockpot/command-api\",\"type\":\"RecipeCreated\",\"subject\":\"recipe/1\",\"time\":"
    "\"2026-12-05T10:00:00.000000Z\",\"datacontenttype\":\"application/json\",\"dataschema\":"
    "\"schemas/events/RecipeCreated.v1.json\",\"stream\":\"recipe-1\",\"streamversion\":1,"
    "\"actor\":\"7\",\"data\":{\"recipe_id\":\"1\",\"title\":\"Cr\\u00e8me br\\u00fbl\\u00e9e "
    "\\ud83c"
    "\\udf6e\",\"tags\":[\"a\",\"b\"],\"n\":-12,\"x\":1.5e3,\"ok\":true,\"none\":null}}",
    "[]",
    "{}",
    "[1,2,3]",
    "\"s\"",
    "0",
    "-0",
    "1e2",
    "1E-2",
    "-1.25",
    "true",
    "null",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "1e400",
    "[1,]",
    "{\"a\":1,}",
    "{\"a\":1,\"a\":2}",
    "{\"a\":{\"b\":1,\"b\":2}}",
    "{\"a\":{\"a\":1},\"b\":{\"a\":1}}",
    "\"\\u0000\"",
    "{\"\\u0000\":1}",
    "\"\\ud800\"",
    "\"\\udc00\"",
    "\"\\ud800\\udc00\"",
    "\"caf\xc3\xa9\"",
    "\"\xc3\"",
    "\"\xff\"",
    "\"\xed\xa0\x80\"",
    "\"a\nb\"",
    "\"\\x\"",
    "\"\\/\"",
    " {} ",
    "{} x",
    "",
    " ",
    "01",
    "1.",
    ".5",
    "+1",
    "NaN",
    "[\"\\t\\r\\n\\b\\f\\\\\\\"\"]",
    "{\"k\":[{\"k\":[{\"k\":[]}]}]}",
    "{\"k\": \"a\\u0001\\u001f\\u2028\\ud83d\\ude00\\\"\\\\\\/\\t caf\xc3\xa9\"}",
    "{ \"a\" : 1 , \"k\" : { \"x\" : [ true , false , null , -7 , 1.5e3 ] , \"y\" : {} } }",
    "\xef\xbb\xbf{}",
    "{\"a\" 1}",
    "{a:1}",
    "'s'",
};

/* Compare both parsers on @p len bytes at @p s; @return 1 if both accepted. */
static int compare(const char *s, size_t len)
{
    json_error_t jerr;
    json_t *a = json_loadb(s, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr), *b = NULL;
    struct sp_errbuf eb = {{0}, {0}};
    int rc = es_json_parse(s, len, &b, &eb);

    if ((a != NULL) != (rc == 0))
        fail_msg("parsers disagree on [%.*s] (%zu bytes): jansson %s (%s), es_json_parse %s (%s)",
                 (int)len, s, len, a ? "accepts" : "refuses", a ? "" : jerr.text,
                 rc == 0 ? "accepts" : "refuses", eb.msg);
    if (a != NULL && !json_equal(a, b)) {
        char *ta = json_dumps(a, JSON_ENCODE_ANY), *tb = json_dumps(b, JSON_ENCODE_ANY);
        fail_msg("parsers read [%.*s] differently: %s vs %s", (int)len, s, ta, tb);
    }
    if (a != NULL) { /* es__json_parse_ex's member text is the member's value */
        json_t *c = NULL, *k = json_is_object(a) ? json_object_get(a, "k") : NULL, *back;
        char *text = NULL;
        size_t text_len = 0;
        assert_int_equal(es__json_parse_ex(s, len, "k", &c, &text, &text_len, &eb), 0);
        assert_true(json_equal(a, c));
        if (k == NULL) {
            assert_null(text);
        } else {
            assert_non_null(text);
            assert_int_equal(strlen(text), text_len);
            back = json_loadb(text, text_len, JSON_DECODE_ANY, &jerr);
            if (back == NULL || !json_equal(back, k))
                fail_msg("member text of [%.*s] is [%s]", (int)len, s, text);
            json_decref(back);
        }
        free(text);
        json_decref(c);
    }
    json_decref(a);
    json_decref(b);
    return rc == 0;
}

static void test_edge_cases(void **state)
{
    (void)state;
    int accepted = 0;
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        accepted += compare(docs[i], strlen(docs[i]));
    assert_true(accepted > 10);
    /* not NUL-terminated input is read to len only */
    assert_int_equal(compare("[1]]", 3), 1);
    /* the member text is compact, with UTF-8 as it is and only the required escapes */
    {
        static const char doc[] =
            "{ \"a\" : 1 , \"k\" : { \"x\" : [ true , null , -7 ] , \"y\" : \"\\u00e9\\n\\/\" } }";
        json_t *v = NULL;
        char *text = NULL;
        size_t text_len = 0;
        assert_int_equal(es__json_parse_ex(doc, strlen(doc), "k", &v, &text, &text_len, NULL), 0);
        assert_string_equal(text, "{\"x\":[true,null,-7],\"y\":\"\xc3\xa9\\n/\"}");
        free(text);
        json_decref(v);
        assert_int_equal(es__json_parse_ex(doc, strlen(doc), "z", &v, &text, &text_len, NULL), 0);
        assert_null(text);
        json_decref(v);
    }
}

static void test_mutations(void **state)
{
    (void)state;
    static const char bytes[] = "{}[]\",:\\ 0123456789.eE+-tfnul\"\x80\xc3\xa9\xed\xff\t\nxu";
    uint64_t x = 88172645463325252ULL;
    int accepted = 0, refused = 0;
    char buf[2048];

    for (int round = 0; round < 60000; round++) {
        const char *src = docs[round % (sizeof(docs) / sizeof(docs[0]))];
        size_t len = strlen(src);
        memcpy(buf, src, len);
        int edits = 1 + (int)(x % 3);
        for (int e = 0; e < edits; e++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t at = len ? (size_t)(x >> 16) % len : 0;
            char c = bytes[(x >> 40) % (sizeof(bytes) - 1)];
            switch ((x >> 56) % 3) {
            case 0:
                if (len)
                    buf[at] = c;
                break;
            case 1:
                if (len + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = c;
                    len++;
                }
                break;
            default:
                if (len) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            }
        }
        if (compare(buf, len))
            accepted++;
        else
            refused++;
    }
    /* the mutations exercise both sides */
    assert_true(accepted > 1000);
    assert_true(refused > 1000);
}

static void test_depth(void **state)
{
    (void)state;
    char deep[2 * 1100 + 1];
    json_t *v = NULL;
    struct sp_errbuf eb = {{0}, {0}};

    for (int n = 0; n < 1100; n++) {
        deep[n] = '[';
        deep[2 * 1100 - 1 - n] = ']';
    }
    deep[2 * 1100] = '\0';
    assert_int_equal(compare(deep + 100, 2 * 1000), 1); /* 1,000 deep: both */
    assert_int_equal(es_json_parse(deep, 2 * 1100, &v, &eb), SP_ECORRUPT);
    assert_null(v);
    assert_non_null(strstr(eb.msg, "invalid JSON"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
