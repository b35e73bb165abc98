/* Tests of the clocks and RFC 3339 formatting and parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sp/err.h"
#include "sp/time.h"
#include "sp/banned.h"

static void test_format_known(void **state)
{
    (void)state;
    char out[32];
    assert_string_equal(sp_time_format_rfc3339(0, out, sizeof(out)), "1970-01-01T00:00:00.000000Z");
    /* 2026-11-19T05:35:00.123456Z */
    assert_string_equal(sp_time_format_rfc3339(INT64_C(1795066500123456), out, sizeof(out)),
                        "2026-11-19T05:35:00.123456Z");
    assert_string_equal(sp_time_format_rfc3339(-1, out, sizeof(out)),
                        "1969-12-31T23:59:59.999999Z");
}

static void test_round_trip(void **state)
{
    (void)state;
    int64_t samples[] = {0,
                         1,
                         999999,
                         INT64_C(951782400000000) /* 2000-02-29 */,
                         sp_time_now_us(),
                         INT64_C(4102444799999999)};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        char out[32];
        int64_t back = -42;
        sp_time_format_rfc3339(samples[i], out, sizeof(out));
        assert_int_equal(strlen(out), 27);
        assert_int_equal(sp_time_parse_rfc3339(out, &back), 0);
        assert_int_equal(back, samples[i]);
    }
}

static void test_parse_variants(void **state)
{
    (void)state;
    int64_t ts;
    assert_int_equal(sp_time_parse_rfc3339("2026-11-19T05:35:00Z", &ts), 0);
    assert_int_equal(ts, INT64_C(1795066500000000));
    assert_int_equal(sp_time_parse_rfc3339("2026-11-19T06:35:00.5+01:00", &ts), 0);
    assert_int_equal(ts, INT64_C(1795066500500000));
    assert_int_equal(sp_time_parse_rfc3339("2026-11-19t05:35:00.123456789z", &ts), 0);
    assert_int_equal(ts, INT64_C(1795066500123456));
    assert_int_equal(sp_time_parse_rfc3339("2026-11-18T23:35:00-06:00", &ts), 0);
    assert_int_equal(ts, INT64_C(1795066500000000));
}

static void test_parse_rejects(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "2026-11-21",
                         "2026-11-21T05:35:00",
                         "2026-13-01T00:00:00Z",
                         "2026-02-29T00:00:00Z",
                         "2026-11-21T24:00:00Z",
                         "2026-11-21T05:35:00.Z",
                         "2026-11-21T05:35:00+0100",
                         "2026-11-21T05:35:00Zjunk",
                         "26-11-21T05:35:00Z",
                         "2026-11-21X05:35:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ts = 0;
        assert_int_equal(sp_time_parse_rfc3339(bad[i], &ts), SP_EINVAL);
    }
}

static void test_monotonic(void **state)
{
    (void)state;
    int64_t a = sp_time_mono_us(), b = sp_time_mono_us();
    assert_true(b >= a);
    assert_true(sp_time_now_us() > INT64_C(1600000000000000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_known),   cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parse_variants), cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
