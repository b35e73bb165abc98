/* Integration tests of the migrations runner (needs PostgreSQL: run under pg_virtualenv). */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgtest.h"
#include "proj/migrate.h"

#include "sp/banned.h"

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

static void test_idempotent(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    int applied = -1;
    (void)state;

    pgtest_setup(&t); /* applied once already */
    assert_int_equal(proj_migrate_run(t.conn, pgtest_sql_dir(), &applied, &eb), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(proj_migrate_run(t.conn, pgtest_sql_dir(), &applied, &eb), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.schema_migrations "
                                          "WHERE version = 1 AND name = '001_init.sql'"),
                     1);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 0);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.checkpoints"), 0);
    pgtest_teardown(&t);
}

static void test_order_and_failure(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    char dir[] = "/tmp/proj-mig-XXXXXX";
    int applied = -1;
    long long real;
    (void)state;

    pgtest_setup(&t);
    real = pgtest_count(t.conn, "SELECT count(*) FROM stockpot.schema_migrations");
    assert_non_null(mkdtemp(dir));
    write_file(dir, "001_init.sql", "CREATE TABLE stockpot.t1 (a int);");
    write_file(dir, "0910_third.sql", "INSERT INTO stockpot.t1 VALUES (10);");
    write_file(dir, "902_second.sql", "INSERT INTO stockpot.t1 VALUES (2);");
    write_file(dir, "README.md", "not a migration");
    /* version 1 is recorded for the real 001_init.sql already: the new 001 is skipped;
     * 902 and 910 are past every real migration */
    assert_int_equal(proj_migrate_run(t.conn, dir, &applied, &eb), SP_EDB);
    assert_non_null(strstr(eb.msg, "902_second.sql"));
    assert_int_equal(applied, 0);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.schema_migrations"), real);

    write_file(dir, "902_second.sql",
               "CREATE TABLE stockpot.t1 (a int); INSERT INTO stockpot.t1 "
               "VALUES (2);");
    assert_int_equal(proj_migrate_run(t.conn, dir, &applied, &eb), 0);
    assert_int_equal(applied, 2);
    assert_int_equal(pgtest_count(t.conn, "SELECT string_agg(a::text, '' ORDER BY a) "
                                          "FROM stockpot.t1"),
                     210);
    write_file(dir, "0902_dup.sql", "SELECT 1;");
    assert_int_equal(proj_migrate_run(t.conn, dir, &applied, &eb), SP_EINVAL);

    remove_file(dir, "001_init.sql");
    remove_file(dir, "0910_third.sql");
    remove_file(dir, "902_second.sql");
    remove_file(dir, "0902_dup.sql");
    remove_file(dir, "README.md");
    rmdir(dir);
    pgtest_teardown(&t);
}

/* A read model built before 003_feed.sql gets its feed rows from the follows and recipes
 * it holds when the migration runs: each live recipe for its author and their followers. */
static void test_feed_backfill(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    int applied = -1;
    (void)state;

    pgtest_setup_db(&t);
    /* back to the schema before 003 */
    assert_int_equal(pgtest_count(t.conn, "WITH d AS (DELETE FROM stockpot.schema_migrations "
                                          "WHERE version = 3 RETURNING 1) SELECT count(*) FROM d"),
                     1);
    free(pgtest_value(t.conn, "DROP TABLE stockpot.feed_entries"));
    /* 1 follows 2 and 3; 4 follows 1; recipes: 10, 11 by 2, 12 by 1, 13 by 5 */
    assert_int_equal(pgtest_count(t.conn,
                                  "WITH f AS (INSERT INTO stockpot.follows VALUES (1, 2, now()), "
                                  "(1, 3, now()), (4, 1, now()) RETURNING 1), "
                                  "r AS (INSERT INTO stockpot.recipes (id, author_id, title, "
                                  "description, ingredients, steps, tags, image_media_ids, "
                                  "created_at, updated_at, version) SELECT id, a, 't', '', '[]', "
                                  "'[]', '{}', '{}', now(), now(), 1 FROM (VALUES (10, 2), "
                                  "(11, 2), (12, 1), (13, 5)) v(id, a) RETURNING 1) "
                                  "SELECT (SELECT count(*) FROM f) + (SELECT count(*) FROM r)"),
                     7);
    assert_int_equal(proj_migrate_run(t.conn, pgtest_sql_dir(), &applied, &eb), 0);
    assert_int_equal(applied, 1);
    pgtest_check(t.conn,
                 "SELECT string_agg(user_id || ':' || recipe_id, ',' ORDER BY user_id, recipe_id) "
                 "FROM stockpot.feed_entries",
                 "1:10,1:11,1:12,2:10,2:11,4:12,5:13");
    pgtest_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_order_and_failure),
        cmocka_unit_test(test_feed_backfill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
