/* Unit tests of the projection registry and the poison policy names. */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "proj/projection.h"

#include "sp/banned.h"

static void test_find(void **state)
{
    const struct proj_projection *pg = proj_registry_find("pg");
    (void)state;
    assert_non_null(pg);
    assert_ptr_equal(pg, proj_pg_projection());
    assert_string_equal(pg->name, "pg");
    assert_int_equal(pg->store, PROJ_STORE_PG);
    assert_null(proj_registry_find("nope"));
    assert_true(proj_registry_count() >= 1);
    assert_ptr_equal(proj_registry_at(0), pg);
}

static void test_types(void **state)
{
    const struct proj_projection *pg = proj_pg_projection();
    (void)state;
    /* "pg" folds every type of the catalogue so far */
    for (int t = ES_TYPE_UNKNOWN + 1; t < ES_TYPE__COUNT; t++)
        assert_true(proj_projection_handles(pg, (enum es_type)t));
    assert_false(proj_projection_handles(pg, ES_TYPE_UNKNOWN));
    assert_false(proj_projection_handles(pg, es_type_of("BogusHappened")));
}

static void test_policy(void **state)
{
    enum proj_poison_policy p = PROJ_POISON_HALT;
    (void)state;
    assert_int_equal(proj_poison_policy_parse("dead-letter", &p), 0);
    assert_int_equal(p, PROJ_POISON_DEAD_LETTER);
    assert_int_equal(proj_poison_policy_parse("halt", &p), 0);
    assert_int_equal(p, PROJ_POISON_HALT);
    assert_int_equal(proj_poison_policy_parse("ignore", &p), SP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
