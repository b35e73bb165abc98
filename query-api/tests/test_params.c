/* Unit tests of the query API's parameter parsing: ids, pages and If-None-Match. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "qry/params.h"

#include "sp/banned.h"

static void test_id(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    int64_t id = 0;

    (void)state;
    assert_int_equal(qry_params_id("7301234567890", "id", &id, &eb), 0);
    assert_int_equal(id, 7301234567890LL);
    assert_int_equal(qry_params_id("9223372036854775807", "id", &id, &eb), 0);
    assert_int_equal(id, INT64_MAX);
    assert_int_equal(qry_params_id("abc", "id", &id, &eb), SP_EINVAL);
    assert_string_equal(eb.field, "id");
    assert_int_equal(qry_params_id("0", "max_id", &id, &eb), SP_EINVAL);
    assert_string_equal(eb.field, "max_id");
    assert_int_equal(qry_params_id("-5", "id", &id, &eb), SP_EINVAL);
    assert_int_equal(qry_params_id("012", "id", &id, &eb), SP_EINVAL);
    assert_int_equal(qry_params_id("99999999999999999999", "id", &id, &eb), SP_EINVAL);
    assert_int_equal(qry_params_id("", "id", &id, &eb), SP_EINVAL);
    assert_int_equal(qry_params_id(NULL, "id", &id, &eb), SP_EINVAL);
}

static void test_page_defaults(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct qry_page page;

    (void)state;
    assert_int_equal(qry_params_page(NULL, NULL, NULL, &page, &eb), 0);
    assert_int_equal(page.limit, QRY_LIMIT_DEFAULT);
    assert_int_equal(page.max_id, INT64_MAX);
    assert_int_equal(page.since_id, 0);
    assert_false(page.has_max_id);
    assert_false(page.has_since_id);

    assert_int_equal(qry_params_page("100", "50", "10", &page, &eb), 0);
    assert_int_equal(page.limit, 100);
    assert_int_equal(page.max_id, 50);
    assert_int_equal(page.since_id, 10);
    assert_true(page.has_max_id);
    assert_true(page.has_since_id);
}

static void test_page_errors(void **state)
{
    static const char *const bad_limits[] = {
        "0", "101", "-1", "", "1x", " 5", "+5", "abc", "99999999999999999999999"};
    struct sp_errbuf eb = {{0}, {0}};
    struct qry_page page;

    (void)state;
    for (size_t i = 0; i < sizeof(bad_limits) / sizeof(bad_limits[0]); i++) {
        sp_err_clear(&eb);
        assert_int_equal(qry_params_page(bad_limits[i], NULL, NULL, &page, &eb), SP_EINVAL);
        assert_string_equal(eb.field, "limit");
    }
    assert_int_equal(qry_params_page("1", "x", NULL, &page, &eb), SP_EINVAL);
    assert_string_equal(eb.field, "max_id");
    assert_int_equal(qry_params_page("1", NULL, "0", &page, &eb), SP_EINVAL);
    assert_string_equal(eb.field, "since_id");
}

static void test_etag(void **state)
{
    (void)state;
    assert_true(qry_params_etag_match("\"3\"", 3));
    assert_false(qry_params_etag_match("\"3\"", 4));
    assert_false(qry_params_etag_match("\"33\"", 3));
    assert_true(qry_params_etag_match("*", 7));
    assert_true(qry_params_etag_match("W/\"3\"", 3));
    assert_true(qry_params_etag_match("\"1\", \"2\" ,\"3\"", 3));
    assert_false(qry_params_etag_match("\"1\", \"2\"", 3));
    assert_false(qry_params_etag_match("3", 3));
    assert_false(qry_params_etag_match("", 3));
    assert_false(qry_params_etag_match(NULL, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id),
        cmocka_unit_test(test_page_defaults),
        cmocka_unit_test(test_page_errors),
        cmocka_unit_test(test_etag),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
