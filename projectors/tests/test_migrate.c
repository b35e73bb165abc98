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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_order_and_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
