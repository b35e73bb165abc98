/* libpq helpers: connect with fixed session settings, run statements, map errors. */
#include <string.h>

#include "proj/pg.h"

#include "sp/banned.h"

static void pg_strip_newline(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

int proj_pg_connect(const char *conninfo, const char *app, PGconn **out, struct sp_errbuf *eb)
{
    const char *keys[] = {"dbname", "application_name", "client_encoding", "options", NULL};
    /* jit=off: a fold's statements touch a few rows by key, but the batch-end recounts
     * read scratch tables that have no statistics, whose default estimates pushed the
     * cost past jit_above_cost: PostgreSQL then spent ~200 ms compiling each batch's end
     * (seen as 250 ms from a like to its row on a 2,000-user read model). */
    const char *vals[] = {conninfo ? conninfo : "", app ? app : "stockpot", "UTF8",
                          "-c TimeZone=UTC -c jit=off", NULL};
    PGconn *conn;

    *out = NULL;
    /* expand_dbname = 1: the first "dbname" value may be a whole connection string. */
    conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL)
        return sp_err_set(eb, SP_EUNAVAIL, NULL, "could not connect to postgresql: out of memory");
    if (PQstatus(conn) != CONNECTION_OK) {
        sp_err_set(eb, SP_EUNAVAIL, NULL, "could not connect to postgresql: %s",
                   PQerrorMessage(conn));
        if (eb != NULL)
            pg_strip_newline(eb->msg);
        PQfinish(conn);
        return SP_EUNAVAIL;
    }
    *out = conn;
    return 0;
}

static int pg_result_check(PGconn *conn, PGresult *res, PGresult **out, struct sp_errbuf *eb)
{
    ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    const char *state;
    int rc;

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out != NULL)
            *out = res;
        else
            PQclear(res);
        return 0;
    }
    rc = PQstatus(conn) == CONNECTION_OK ? SP_EDB : SP_EUNAVAIL;
    state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    sp_err_set(eb, rc, state, "postgresql: %s",
               res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    if (eb != NULL)
        pg_strip_newline(eb->msg);
    PQclear(res);
    return rc;
}

int proj_pg_exec(PGconn *conn,
                 const char *sql,
                 int nparams,
                 const char *const *params,
                 PGresult **out,
                 struct sp_errbuf *eb)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (out != NULL)
        *out = NULL;
    return pg_result_check(conn, res, out, eb);
}

int proj_pg_exec_script(PGconn *conn, const char *sql, struct sp_errbuf *eb)
{
    PGresult *res = PQexec(conn, sql);
    return pg_result_check(conn, res, NULL, eb);
}

void proj_pg_rollback(PGconn *conn)
{
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return;
    if (PQtransactionStatus(conn) == PQTRANS_IDLE)
        return;
    PQclear(PQexec(conn, "ROLLBACK"));
}
