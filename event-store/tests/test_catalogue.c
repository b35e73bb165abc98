/* Unit tests for es/catalogue.h: the generated tables and the payload and envelope checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalogue_impl.h"
#include "es/catalogue.h"

#include "sp/banned.h"

#define RECIPE                                                                                     \
    "\"recipe_id\":\"7301234567892\",\"author_id\":\"7301234567890\",\"title\":\"Crème "          \
    "brûlée\",\"description\":\"\",\"ingredients\":[\"4 egg yolks\"],\"steps\":[\"Bake\"],"      \
    "\"tags\":[],\"image_media_ids\":[]"

/* Check @p json as a payload of @p type on @p stream; eb gets the verdict. */
static int check(const char *type, const char *stream, const char *json, struct sp_errbuf *eb)
{
    struct es_event ev;
    json_error_t jerr;
    json_t *data = json_loads(json, JSON_ALLOW_NUL, &jerr);
    int rc;

    assert_non_null(data);
    es_event_init(&ev);
    assert_int_equal(es_event_make(&ev, type, stream, 1, NULL, NULL, NULL, data), 0);
    sp_err_clear(eb);
    rc = es_event_check(&ev, NULL, eb);
    es_event_release(&ev);
    return rc;
}

static void test_table(void **state)
{
    char path[4096];
    const char *src = getenv("SP_SOURCE_DIR");

    (void)state;
    assert_non_null(src);
    assert_int_equal(es_type_of("RecipeCreated"), ES_TYPE_RECIPE_CREATED);
    assert_int_equal(es_type_of("RecipeCreatedd"), ES_TYPE_UNKNOWN);
    assert_int_equal(es_type_of(NULL), ES_TYPE_UNKNOWN);
    assert_null(es_catalogue_get(ES_TYPE_UNKNOWN));
    assert_null(es_type_name(ES_TYPE__COUNT));
    for (int t = 1; t < ES_TYPE__COUNT; t++) {
        const struct es_event_type *et = es_catalogue_get((enum es_type)t);
        FILE *f;

        assert_non_null(et);
        assert_int_equal(et->type, t);
        assert_int_equal(es_type_of(et->name), t); /* the table is sorted by name */
        if (t > 1)
            assert_true(strcmp(es_type_name((enum es_type)(t - 1)), et->name) < 0);
        snprintf(path, sizeof(path), "%s/%s", src, et->dataschema);
        f = fopen(path, "r");
        assert_non_null(f); /* every entry comes from a schema file */
        fclose(f);
    }
    assert_non_null(es_event_type_field(es_catalogue_get(ES_TYPE_RECIPE_CREATED), "language"));
    assert_false(
        es_event_type_field(es_catalogue_get(ES_TYPE_RECIPE_CREATED), "language")->required);
    assert_true(es_event_type_field(es_catalogue_get(ES_TYPE_RECIPE_CREATED), "title")->required);
}

static void test_valid_payloads(void **state)
{
    struct sp_errbuf eb;

    (void)state;
    assert_int_equal(check("RecipeCreated", "recipe-7301234567892", "{" RECIPE "}", &eb), 0);
    assert_int_equal(
        check("RecipeCreated", "recipe-7301234567892", "{" RECIPE ",\"language\":\"de\"}", &eb), 0);
    assert_int_equal(check("RecipeDeleted", "recipe-7301234567892", "{}", &eb), 0);
    assert_int_equal(check("ProfileUpdated", "user-1", "{\"avatar_media_id\":null}", &eb), 0);
    assert_int_equal(
        check("ProfileUpdated", "user-1", "{\"avatar_media_id\":\"12\",\"bio\":null}", &eb), 0);
    assert_int_equal(
        check("SessionRevoked", "session-5", "{\"session_id\":\"5\",\"reason\":\"logout\"}", &eb),
        0);
}

struct bad_case {
    const char *type, *stream, *json, *field;
};

static const struct bad_case bad_cases[] = {
    {"RecipeCreated", "recipe-7301234567892", "{\"recipe_id\":\"7301234567892\"}", "author_id"},
    {"RecipeCreated", "recipe-7301234567892", "{" RECIPE ",\"chef\":\"x\"}", "chef"},
    {"RecipeCreated", "recipe-7301234567892", "{" RECIPE ",\"language\":\"EN\"}", "language"},
    {"RecipeCreated", "recipe-7301234567893", "{" RECIPE "}", "recipe_id"},
    {"RecipeCreated", "user-7301234567892", "{" RECIPE "}", "stream"},
    {"RecipeUpdated", "recipe-1", "{\"ingredients\":[]}", "ingredients"},
    {"RecipeUpdated", "recipe-1", "{\"ingredients\":[\"ok\", 3]}", "ingredients/1"},
    {"RecipeUpdated", "recipe-1", "{\"tags\":[\"\"]}", "tags/0"},
    {"RecipeUpdated", "recipe-1", "{\"title\":\"a\\u0000b\"}", "title"},
    {"RecipeUpdated", "recipe-1", "{\"image_media_ids\":[\"012\"]}", "image_media_ids/0"},
    {"RecipeUpdated", "recipe-1", "{}", "data"},
    {"RecipeDeleted", "recipe-1", "{\"title\":\"x\"}", "data"},
    {"ProfileUpdated", "user-1", "{\"full_name\":7}", "full_name"},
    {"SessionRevoked", "session-5", "{\"session_id\":\"5\",\"reason\":\"bored\"}", "reason"},
    {"UserRegistered", "user-9",
     "{\"user_id\":\"9\",\"username\":\"ab\",\"email\":\"a@b\",\"password_hash\":\"$argon2id$x\"}",
     "username"},
    {"UserRegistered", "user-9",
     "{\"user_id\":\"9\",\"username\":\"abc\",\"email\":\"a b@c\",\"password_hash\":"
     "\"$argon2id$x\"}",
     "email"},
};

static void test_bad_payloads(void **state)
{
    struct sp_errbuf eb;

    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        int rc = check(c->type, c->stream, c->json, &eb);
        if (rc != SP_ESCHEMA || strcmp(eb.field, c->field) != 0)
            fail_msg("case %zu (%s %s): rc %d field \"%s\" (%s), wanted \"%s\"", i, c->type,
                     c->json, rc, eb.field, eb.msg, c->field);
    }
}

/* Lengths are Unicode code points: 200 two-byte characters fit a 200-character title. */
static void test_lengths_in_code_points(void **state)
{
    char json[1024];
    struct sp_errbuf eb;
    size_t n = 0;

    (void)state;
    n += (size_t)snprintf(json, sizeof(json), "{\"title\":\"");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "é");
    snprintf(json + n, sizeof(json) - n, "\"}");
    assert_int_equal(check("RecipeUpdated", "recipe-1", json, &eb), 0);
    snprintf(json + n, sizeof(json) - n, "é\"}");
    assert_int_equal(check("RecipeUpdated", "recipe-1", json, &eb), SP_ESCHEMA);
    assert_string_equal(eb.field, "title");
}

static void test_unknown_type(void **state)
{
    struct es_event ev;
    struct sp_errbuf eb;
    enum es_type type = ES_TYPE_RECIPE_CREATED;

    (void)state;
    es_event_init(&ev);
    assert_int_equal(
        es_event_make(&ev, "RecipeBaked", "recipe-1", 1, NULL, NULL, NULL, json_object()), 0);
    assert_int_equal(es_event_check(&ev, &type, &eb), SP_ESCHEMA);
    assert_int_equal(type, ES_TYPE_UNKNOWN);
    assert_string_equal(eb.field, "type");
    es_event_release(&ev);
}

/* The simple pattern matcher agrees with regexec on every catalogue pattern, over strings
 * made to sit near each pattern's edges (lengths, ranges, anchors, spaces, non-ASCII). */
static void test_pattern_matchers_agree(void **state)
{
    (void)state;
    static const char alphabet[] = "0123456789abcfxyzAFZT_.-:@ \t\n$\\ez\x80\xc3\xa9";
    static const char *const seeds[] = {
        "1",
        "9223372036854775807",
        "01",
        "12345678901234567890",
        "2026-12-05T10:00:00.000000Z",
        "2026-12-05T10:00:00Z",
        "a@b",
        "a b@c",
        "@b",
        "a@",
        "a@b@c",
        "ab",
        "abc",
        "ABC",
        "en",
        "de",
        "eng",
        "engl",
        "$argon2id$v=19",
        "$argon2i$",
        "bob_the.cook-1",
        "bo",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ""};
    uint64_t x = 12345;
    size_t patterns = 0, compared = 0;

    for (size_t t = 1; t < ES_TYPE__COUNT; t++) {
        const struct es_event_type *et = es_catalogue_get((enum es_type)t);
        for (size_t f = 0; f < et->n_fields; f++) {
            for (const struct es_schema_node *n = et->fields[f].schema; n != NULL; n = n->items) {
                if (n->pattern == NULL)
                    continue;
                patterns++;
                /* every pattern of today's catalogue is in the fast subset */
                assert_true(es__pattern_simple(n->pattern));
                for (size_t k = 0; k < 4000; k++) {
                    char buf[96];
                    size_t len;
                    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                    if (k < sizeof(seeds) / sizeof(seeds[0])) {
                        snprintf(buf, sizeof(buf), "%s", seeds[k]);
                    } else {
                        /* a seed with one byte changed, inserted or cut, or random text */
                        const char *seed = seeds[(x >> 8) % (sizeof(seeds) / sizeof(seeds[0]))];
                        char c = alphabet[(x >> 20) % (sizeof(alphabet) - 1)];
                        snprintf(buf, sizeof(buf), "%s", seed);
                        len = strlen(buf);
                        size_t at = len ? (x >> 32) % len : 0;
                        switch ((x >> 40) % 4) {
                        case 0:
                            if (len)
                                buf[at] = c;
                            break;
                        case 1:
                            memmove(buf + at + 1, buf + at, len - at + 1);
                            buf[at] = c;
                            break;
                        case 2:
                            if (len)
                                memmove(buf + at, buf + at + 1, len - at);
                            break;
                        default:
                            len = (x >> 44) % 70;
                            for (size_t i = 0; i < len; i++) {
                                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                                buf[i] = alphabet[(x >> 33) % (sizeof(alphabet) - 1)];
                            }
                            buf[len] = '\0';
                            break;
                        }
                    }
                    bool fast = es__pattern_match(n->pattern, buf, false);
                    bool re = es__pattern_match(n->pattern, buf, true);
                    if (fast != re)
                        fail_msg("pattern %s on \"%s\": simple %d, regexec %d", n->pattern, buf,
                                 fast, re);
                    compared++;
                }
            }
        }
    }
    assert_true(patterns >= 7);
    assert_true(compared >= patterns * 4000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),        cmocka_unit_test(test_valid_payloads),
        cmocka_unit_test(test_bad_payloads), cmocka_unit_test(test_lengths_in_code_points),
        cmocka_unit_test(test_unknown_type), cmocka_unit_test(test_pattern_matchers_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
