/* Unit tests for es/id.h: UUIDv7 layout and order, Snowflake ids, es_id_parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "es/checksum.h"
#include "es/id.h"
#include "sp/time.h"

#include "sp/banned.h"

static void test_uuid7_format(void **state)
{
    char id[ES_UUID_STR_LEN + 1];
    int64_t before_ms = sp_time_now_us() / 1000;
    int64_t ts_ms = 0;

    (void)state;
    assert_int_equal(es_uuid7_new(id), 0);
    assert_int_equal(strlen(id), ES_UUID_STR_LEN);
    assert_true(es_uuid_valid(id));
    assert_int_equal(id[14], '7');           /* version */
    assert_non_null(strchr("89ab", id[19])); /* variant 10 */
    for (int i = 0; i < ES_UUID_STR_LEN; i++)
        assert_true(id[i] == '-' || (id[i] >= '0' && id[i] <= '9') ||
                    (id[i] >= 'a' && id[i] <= 'f'));
    /* 48-bit big-endian ms timestamp in the first 12 hex digits */
    for (int i = 0; i < 13; i++) {
        if (id[i] == '-')
            continue;
        ts_ms = ts_ms * 16 + (id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
    }
    assert_true(ts_ms >= before_ms);
    assert_true(ts_ms <= sp_time_now_us() / 1000 + 1);
}

static void test_uuid7_monotonic(void **state)
{
    enum { N = 20000 };
    char(*ids)[ES_UUID_STR_LEN + 1] = calloc(N, sizeof(*ids));

    (void)state;
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        assert_int_equal(es_uuid7_new(ids[i]), 0);
        if (i > 0)
            assert_true(strcmp(ids[i - 1], ids[i]) < 0);
    }
    free(ids);
}

static void test_uuid_valid(void **state)
{
    (void)state;
    assert_true(es_uuid_valid("01890a5d-ac96-774b-bcce-b302099a8057"));
    assert_true(es_uuid_valid("01890A5D-AC96-774B-BCCE-B302099A8057"));
    assert_false(es_uuid_valid(NULL));
    assert_false(es_uuid_valid(""));
    assert_false(es_uuid_valid("01890a5d-ac96-774b-bcce-b302099a805"));   /* short */
    assert_false(es_uuid_valid("01890a5d-ac96-774b-bcce-b302099a80577")); /* long */
    assert_false(es_uuid_valid("01890a5dxac96-774b-bcce-b302099a8057"));  /* dash */
    assert_false(es_uuid_valid("01890a5d-ac96-774b-bcce-b302099a805g"));  /* hex */
    assert_false(es_uuid_valid("01890a5dac96774bbcceb302099a8057"));      /* no dashes */
}

static void test_snowflake_increasing(void **state)
{
    struct es_snowflake sf;
    int64_t prev = 0;
    int64_t start_ms = sp_time_now_us() / 1000 - ES_SNOWFLAKE_EPOCH_MS;

    (void)state;
    es_snowflake_init(&sf, 1029); /* masked to 5 */
    assert_int_equal(sf.node_id, 5);
    for (int i = 0; i < 10000; i++) { /* > 4096: crosses at least one ms boundary */
        int64_t id = es_snowflake_next(&sf);
        assert_true(id > prev);
        assert_int_equal((id >> 12) & 0x3ff, 5);
        prev = id;
    }
    assert_true((prev >> 22) >= start_ms);
}

static void test_id_parse(void **state)
{
    int64_t v = 0;

    (void)state;
    assert_int_equal(es_id_parse("1", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(es_id_parse("7301234567890", &v), 0);
    assert_int_equal(v, 7301234567890LL);
    assert_int_equal(es_id_parse("9223372036854775807", &v), 0);
    assert_int_equal(v, INT64_MAX);
    assert_int_equal(es_id_parse("9223372036854775808", &v), SP_EINVAL);
    assert_int_equal(es_id_parse("99999999999999999999", &v), SP_EINVAL);
    assert_int_equal(es_id_parse("0", &v), SP_EINVAL);
    assert_int_equal(es_id_parse("012", &v), SP_EINVAL);
    assert_int_equal(es_id_parse("", &v), SP_EINVAL);
    assert_int_equal(es_id_parse(NULL, &v), SP_EINVAL);
    assert_int_equal(es_id_parse("-5", &v), SP_EINVAL);
    assert_int_equal(es_id_parse("+5", &v), SP_EINVAL);
    assert_int_equal(es_id_parse("12a", &v), SP_EINVAL);
    assert_int_equal(es_id_parse(" 12", &v), SP_EINVAL);
    assert_int_equal(es_id_parse("12 ", &v), SP_EINVAL);
    assert_int_equal(v, INT64_MAX); /* untouched by failures */
}

static void test_checksum(void **state)
{
    char hex[ES_CHECKSUM_HEX_LEN + 1];
    uint64_t sum = 0;

    (void)state;
    /* XXH3-64 of the empty input with seed 0 (xxHash's published test vector) */
    assert_true(es_checksum("", 0) == 0x2D06800538D394C2ULL);
    es_checksum_hex(0x2D06800538D394C2ULL, hex);
    assert_string_equal(hex, "2d06800538d394c2");
    assert_int_equal(es_checksum_parse(hex, &sum), 0);
    assert_true(sum == 0x2D06800538D394C2ULL);
    assert_int_equal(es_checksum_parse("2D06800538D394C2", &sum), 0);
    assert_int_equal(es_checksum_parse("2d06800538d394c", &sum), SP_EINVAL);
    assert_int_equal(es_checksum_parse("2d06800538d394c20", &sum), SP_EINVAL);
    assert_int_equal(es_checksum_parse("2d06800538d394cg", &sum), SP_EINVAL);
    assert_true(es_checksum("abc", 3) != es_checksum("abd", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid7_format), cmocka_unit_test(test_uuid7_monotonic),
        cmocka_unit_test(test_uuid_valid),   cmocka_unit_test(test_snowflake_increasing),
        cmocka_unit_test(test_id_parse),     cmocka_unit_test(test_checksum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
