/* Unit tests of the GCRA rate limiter (sp/ratelimit.h), on a clock of the test's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "sp/ratelimit.h"

#include "sp/banned.h"

#define S 1000000LL /* one second in µs */

static struct sp_ratelimit *limiter(int64_t limit, int64_t period_s, int64_t burst, size_t keys)
{
    struct sp_ratelimit_opts o = {limit, period_s * S, burst, keys};
    struct sp_ratelimit *rl = NULL;
    struct sp_errbuf eb = {{0}, {0}};

    assert_int_equal(sp_ratelimit_new(&o, &rl, &eb), 0);
    return rl;
}

/* 10 per minute, all at once: T = 6 s. */
static void test_burst_then_spacing(void **state)
{
    struct sp_ratelimit *rl = limiter(10, 60, 10, 16);
    struct sp_ratelimit_verdict v;
    int64_t t = 1000 * S;

    (void)state;
    for (int i = 0; i < 10; i++) {
        sp_ratelimit_take(rl, "10.0.0.1", t, &v);
        assert_true(v.allowed);
        assert_int_equal(v.limit, 10);
        assert_int_equal(v.remaining, 9 - i);
        assert_int_equal(v.reset_s, 6 * (i + 1));
    }
    sp_ratelimit_take(rl, "10.0.0.1", t, &v);
    assert_false(v.allowed);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.retry_after_s, 6);
    assert_int_equal(v.reset_s, 60);
    /* a denied request does not count: 6 s later exactly one more is admitted */
    sp_ratelimit_take(rl, "10.0.0.1", t + 6 * S - 1, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after_s, 1); /* rounded up */
    sp_ratelimit_take(rl, "10.0.0.1", t + 6 * S, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 0);
    sp_ratelimit_take(rl, "10.0.0.1", t + 6 * S, &v);
    assert_false(v.allowed);
    /* other keys have their own budget */
    sp_ratelimit_take(rl, "2001:db8::1", t, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 9);
    /* after a whole period of silence the burst is back */
    sp_ratelimit_take(rl, "10.0.0.1", t + 66 * S, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 9);
    sp_ratelimit_free(rl);
}

/* Burst 2 of 4 per second: T = 250 ms, two at once, then one per 250 ms. */
static void test_small_burst(void **state)
{
    struct sp_ratelimit *rl = limiter(4, 1, 2, 4);
    struct sp_ratelimit_verdict v;
    int admitted = 0;

    (void)state;
    for (int64_t t = 0; t < 10 * S; t += S / 100) { /* one request every 10 ms for 10 s */
        sp_ratelimit_take(rl, "k", 5 * S + t, &v);
        admitted += v.allowed;
    }
    assert_int_equal(admitted, 2 + 39); /* the burst, then one per 250 ms */
    sp_ratelimit_free(rl);
}

/* The table never holds more than max_keys: idle keys go first (which changes no
 * answer), then the one closest to idle. */
static void test_bounded_table(void **state)
{
    struct sp_ratelimit *rl = limiter(2, 60, 2, 3);
    struct sp_ratelimit_verdict v;
    char key[32];

    (void)state;
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "192.0.2.%d", i);
        sp_ratelimit_take(rl, key, 100 * S + i, &v);
        assert_true(v.allowed);
        assert_true(sp_ratelimit_keys(rl) <= 3);
    }
    assert_int_equal(sp_ratelimit_keys(rl), 3);
    /* a key that stays busy is kept while newer keys come and go */
    sp_ratelimit_take(rl, "busy", 200 * S, &v);
    sp_ratelimit_take(rl, "busy", 200 * S, &v);
    sp_ratelimit_take(rl, "busy", 200 * S, &v);
    assert_false(v.allowed);
    sp_ratelimit_take(rl, "a", 200 * S, &v);
    sp_ratelimit_take(rl, "b", 200 * S, &v);
    sp_ratelimit_take(rl, "busy", 200 * S + 1, &v);
    assert_false(v.allowed);
    /* idle keys are dropped, not counted against anyone */
    sp_ratelimit_take(rl, "late", 1000 * S, &v);
    assert_true(v.allowed);
    assert_int_equal(sp_ratelimit_keys(rl), 1);
    sp_ratelimit_free(rl);
}

static void test_bad_options(void **state)
{
    static const struct {
        struct sp_ratelimit_opts o;
        const char *field;
    } bad[] = {
        {{0, 60 * S, 1, 8}, "limit"},     {{10, 5, 1, 8}, "period_us"},
        {{10, 60 * S, 0, 8}, "burst"},    {{10, 60 * S, 11, 8}, "burst"},
        {{10, 60 * S, 5, 0}, "max_keys"},
    };
    struct sp_ratelimit *rl;
    struct sp_errbuf eb;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        eb = (struct sp_errbuf){{0}, {0}};
        rl = (struct sp_ratelimit *)&eb;
        assert_int_equal(sp_ratelimit_new(&bad[i].o, &rl, &eb), SP_EINVAL);
        assert_null(rl);
        assert_string_equal(eb.field, bad[i].field);
    }
    sp_ratelimit_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_spacing),
        cmocka_unit_test(test_small_burst),
        cmocka_unit_test(test_bounded_table),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
