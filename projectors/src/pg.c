/* libpq helpers: connect with fixed session settings, run statements, map errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-events.h>
#include <xxhash.h>

#include "proj/pg.h"
#include "sp/alloc.h"

#include "sp/banned.h"

static void pg_strip_newline(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

/*
 * Prepared statements of one connection: each distinct SQL text proj_pg_exec runs is
 * prepared once (PQprepare, named "proj_<n>") and then run with PQexecPrepared, so the
 * server parses and plans it once per session instead of once per call (a fold runs the
 * same few statements for every event). Kept as libpq instance data of the connection
 * (libpq-events), freed with it, emptied when the connection is reset (a new session).
 */
#define PG_STMTS_MAX 256 /* distinct texts prepared per connection; more run unprepared */

struct pg_stmt {
    uint64_t hash; /* XXH3-64 of sql */
    char *sql;     /* owned copy */
};

struct pg_stmts {
    struct pg_stmt v[PG_STMTS_MAX];
    size_t n;
};

static void pg_stmts_clear(struct pg_stmts *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].sql);
    s->n = 0;
}

static int pg_event_proc(PGEventId id, void *info, void *pass)
{
    (void)pass;
    if (id == PGEVT_CONNRESET || id == PGEVT_CONNDESTROY) {
        PGconn *conn = id == PGEVT_CONNRESET ? ((PGEventConnReset *)info)->conn
                                             : ((PGEventConnDestroy *)info)->conn;
        struct pg_stmts *s = PQinstanceData(conn, pg_event_proc);
        if (s != NULL) {
            pg_stmts_clear(s);
            if (id == PGEVT_CONNDESTROY) {
                free(s);
                PQsetInstanceData(conn, pg_event_proc, NULL);
            }
        }
    }
    return 1;
}

int proj_pg_connect(const char *conninfo, const char *app, PGconn **out, struct sp_errbuf *eb)
{
    const char *keys[] = {"dbname", "application_name", "client_encoding", "options", NULL};
    /* jit=off: a fold's statements touch a few rows by key, but the batch's end reads
     * scratch tables that have no statistics, whose default estimates pushed the
     * cost past jit_above_cost: PostgreSQL then spent ~200 ms compiling each batch's end
     * (seen as 250 ms from a like to its row on a 2,000-user read model).
     * search_path=stockpot: the folds name the view's tables unqualified, so that a
     * rebuild folds into its shadow schema by setting its own (projectors/src/rebuild.c).
     * client_min_messages=warning: the migrations' and the rebuild's IF [NOT] EXISTS
     * NOTICEs ("schema ... already exists, skipping") are not news to an operator; libpq
     * printed them on stderr. */
    const char *vals[] = {conninfo ? conninfo : "", app ? app : "stockpot", "UTF8",
                          "-c TimeZone=UTC -c jit=off -c search_path=stockpot "
                          "-c client_min_messages=warning",
                          NULL};
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
    if (PQregisterEventProc(conn, pg_event_proc, "stockpot-statements", NULL))
        PQsetInstanceData(conn, pg_event_proc, sp_xcalloc(1, sizeof(struct pg_stmts)));
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
    struct pg_stmts *s = PQinstanceData(conn, pg_event_proc);
    uint64_t h = XXH3_64bits(sql, strlen(sql));
    char name[32];
    size_t i = 0;
    PGresult *res;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (s == NULL) /* not from proj_pg_connect: unprepared */
        return pg_result_check(conn, PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0),
                               out, eb);
    while (i < s->n && (s->v[i].hash != h || strcmp(s->v[i].sql, sql) != 0))
        i++;
    if (i == s->n) {
        if (s->n == PG_STMTS_MAX)
            return pg_result_check(
                conn, PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0), out, eb);
        snprintf(name, sizeof(name), "proj_%zu", i);
        if ((rc = pg_result_check(conn, PQprepare(conn, name, sql, nparams, NULL), NULL, eb)) != 0)
            return rc;
        s->v[i] = (struct pg_stmt){h, sp_xstrdup(sql)};
        s->n++;
    }
    snprintf(name, sizeof(name), "proj_%zu", i);
    res = PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
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
