/*
 * proj_pg_exec's prepared statements (proj/pg.h) on a real PostgreSQL (run under
 * pg_virtualenv): a text is prepared once per session and reused, survives a rolled-back
 * transaction, and a reset of the connection (a new session, without the statements)
 * prepares again instead of failing; connections made elsewhere run unprepared.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgtest.h"
#include "proj/pg.h"

#include "sp/banned.h"

/* Statements the session has prepared (asked with PQexec: not through the cache). */
static long long prepared(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT count(*) FROM pg_prepared_statements "
                                 "WHERE name LIKE 'proj\\_%'");
    long long n;

    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

static void test_prepared_once(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    PGconn *conn, *plain;
    PGresult *res;
    const char *one[] = {"41"};
    (void)state;

    pgtest_setup_db(&t);
    assert_int_equal(proj_pg_connect(t.conninfo, "test", &conn, &eb), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(proj_pg_exec(conn, "SELECT $1::int + 1", 1, one, &res, &eb), 0);
        assert_string_equal(PQgetvalue(res, 0, 0), "42");
        PQclear(res);
    }
    assert_int_equal(prepared(conn), 1);
    /* a statement prepared inside a transaction that rolls back stays */
    assert_int_equal(proj_pg_exec_script(conn, "BEGIN", &eb), 0);
    assert_int_equal(proj_pg_exec(conn, "SELECT $1::int * 2", 1, one, NULL, &eb), 0);
    proj_pg_rollback(conn);
    assert_int_equal(proj_pg_exec(conn, "SELECT $1::int * 2", 1, one, &res, &eb), 0);
    assert_string_equal(PQgetvalue(res, 0, 0), "82");
    PQclear(res);
    assert_int_equal(prepared(conn), 2);
    /* errors are still the server's, with their SQLSTATE */
    assert_int_equal(proj_pg_exec(conn, "SELECT 1/$1::int", 1, (const char *[]){"0"}, NULL, &eb),
                     SP_EDB);
    assert_string_equal(eb.field, "22012");
    /* a reset is a new session: the statements are prepared again */
    PQreset(conn);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    assert_int_equal(prepared(conn), 0);
    assert_int_equal(proj_pg_exec(conn, "SELECT $1::int + 1", 1, one, &res, &eb), 0);
    assert_string_equal(PQgetvalue(res, 0, 0), "42");
    PQclear(res);
    assert_int_equal(prepared(conn), 1);
    PQfinish(conn);
    /* a connection not made by proj_pg_connect runs unprepared */
    plain = PQconnectdb(t.conninfo);
    assert_int_equal(PQstatus(plain), CONNECTION_OK);
    assert_int_equal(proj_pg_exec(plain, "SELECT $1::int + 1", 1, one, NULL, &eb), 0);
    assert_int_equal(prepared(plain), 0);
    PQfinish(plain);
    pgtest_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepared_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
