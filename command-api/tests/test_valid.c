/* Field validators: UTF-8, control characters, code-point lengths, errors naming fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "valid.h"

#include "sp/banned.h"

static size_t cp_count(const char *s, bool multiline, const char **fault)
{
    size_t n = 0;
    *fault = cmd__text_fault(s, strlen(s), multiline, &n);
    return n;
}

static void test_text_fault(void **state)
{
    const char *fault;
    (void)state;
    assert_int_equal(cp_count("红烧肉 pork", false, &fault), 8);
    assert_null(fault);
    assert_int_equal(cp_count("a\nb\tc", true, &fault), 5);
    assert_null(fault);
    cp_count("a\nb", false, &fault);
    assert_non_null(fault);
    cp_count("a\rb", true, &fault);
    assert_non_null(fault);
    cp_count("\xc2\x85", true, &fault); /* C1 NEL */
    assert_non_null(fault);
    cp_count("\xc0\xaf", false, &fault); /* overlong */
    assert_string_equal(fault, "is not valid UTF-8");
    cp_count("\xed\xa0\x80", false, &fault); /* surrogate */
    assert_string_equal(fault, "is not valid UTF-8");
    cp_count("\xe6\xb1", false, &fault); /* truncated */
    assert_string_equal(fault, "is not valid UTF-8");
    assert_int_equal(cp_count("\xf0\x9f\x8d\xb2", false, &fault), 1); /* emoji */
    assert_null(fault);
}

static bool has_field(json_t *errors, const char *field)
{
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "field")), field) == 0)
            return true;
    }
    return false;
}

static void test_recipe_rules(void **state)
{
    (void)state;
    json_t *errors = json_array();
    json_t *ok = json_loads("{\"title\":\"T\",\"description\":\"\",\"ingredients\":[\"a\"],"
                            "\"steps\":[\"s\\n2\"],\"tags\":[],\"image_media_ids\":[\"12\"]}",
                            0, NULL);
    cmd__valid_recipe(ok, false, errors);
    assert_int_equal(json_array_size(errors), 0);
    json_decref(ok);

    json_t *bad = json_loads("{\"title\":\"\",\"ingredients\":\"x\",\"steps\":[1],"
                             "\"tags\":[\"a\\tb\"],\"image_media_ids\":[\"012\"],\"x\":1}",
                             0, NULL);
    cmd__valid_recipe(bad, false, errors);
    assert_true(has_field(errors, "title"));
    assert_true(has_field(errors, "ingredients"));
    assert_true(has_field(errors, "steps/0"));
    assert_true(has_field(errors, "tags/0"));
    assert_true(has_field(errors, "image_media_ids/0"));
    assert_true(has_field(errors, "x"));
    json_decref(bad);
    json_array_clear(errors);

    json_t *partial = json_loads("{\"tags\":[\"soup\"]}", 0, NULL);
    cmd__valid_recipe(partial, true, errors);
    assert_int_equal(json_array_size(errors), 0);
    cmd__valid_recipe(partial, false, errors);
    assert_true(has_field(errors, "title") && has_field(errors, "steps"));
    json_decref(partial);
    json_decref(errors);
}

static void test_register_rules(void **state)
{
    (void)state;
    json_t *errors = json_array();
    json_t *b = json_loads("{\"username\":\"ok_name.1\",\"email\":\"a@b.c\","
                           "\"password\":\"密码密码密码密码\"}",
                           0, NULL);
    cmd__valid_register(b, errors);
    assert_int_equal(json_array_size(errors), 0);
    json_decref(b);
    b = json_loads("{\"username\":\"名字名字\",\"email\":\"a@b@c\"}", 0, NULL);
    cmd__valid_register(b, errors);
    assert_true(has_field(errors, "username") && has_field(errors, "email") &&
                has_field(errors, "password"));
    json_decref(b);
    json_decref(errors);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_fault),
        cmocka_unit_test(test_recipe_rules),
        cmocka_unit_test(test_register_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
