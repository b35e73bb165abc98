/* The query API's PostgreSQL connection: prepared read statements and reconnects. */
#include <stdlib.h>
#include <string.h>

#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"
#include "qry/db.h"

#include "sp/banned.h"

#define DB_RETRY_US (1000 * 1000LL) /* least time between two failed reconnect attempts */

/* RFC 3339 UTC with microseconds, as DESIGN.md writes every timestamp. */
#define DB_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* The recipe in row r as one JSON object; row_to_json keeps the column order. */
#define DB_RECIPE_JSON                                                                             \
    "(SELECT row_to_json(x)::text FROM (SELECT r.id::text AS id, r.author_id::text AS "            \
    "author_id, r.title, r.description, r.ingredients, r.steps, r.tags, "                          \
    "r.image_media_ids::text[] AS image_media_ids, " DB_TS(                                        \
        "r.created_at") " AS created_at, " DB_TS("r.updated_at") " AS updated_at, r.version) x)"

#define DB_USER_JSON                                                                               \
    "(SELECT row_to_json(x)::text FROM (SELECT u.id::text AS id, u.username, u.full_name, "        \
    "u.bio, u.avatar_media_id::text AS avatar_media_id, " DB_TS(                                   \
        "u.created_at") " AS "                                                                     \
                        "created_at, u.version) x)"

struct db_stmt {
    const char *name;
    const char *sql;
    int nparams;
};

static const struct db_stmt db_stmts[QRY_STMT_COUNT] = {
    [QRY_STMT_USER] = {"qry_user",
                       "SELECT u.version, " DB_USER_JSON " FROM stockpot.users u WHERE u.id = $1",
                       1},
    [QRY_STMT_RECIPE] = {"qry_recipe",
                         "SELECT r.version, " DB_RECIPE_JSON
                         " FROM stockpot.recipes r WHERE r.id = $1",
                         1},
    [QRY_STMT_RECIPES_ALL] = {"qry_recipes_all",
                              "SELECT r.id, " DB_RECIPE_JSON " FROM stockpot.recipes r"
                              " WHERE r.id < $1 AND r.id > $2 ORDER BY r.id DESC LIMIT $3",
                              3},
    [QRY_STMT_RECIPES_BY_TAG] = {"qry_recipes_by_tag",
                                 "SELECT r.id, " DB_RECIPE_JSON
                                 " FROM stockpot.recipe_tags t JOIN stockpot.recipes r"
                                 " ON r.id = t.recipe_id WHERE t.tag = $1 AND t.recipe_id < $2"
                                 " AND t.recipe_id > $3 ORDER BY t.recipe_id DESC LIMIT $4",
                                 4},
    [QRY_STMT_RECIPES_BY_USER] = {"qry_recipes_by_user",
                                  "SELECT r.id, " DB_RECIPE_JSON " FROM stockpot.recipes r"
                                  " WHERE r.author_id = $1 AND r.id < $2 AND r.id > $3"
                                  " ORDER BY r.id DESC LIMIT $4",
                                  4},
    [QRY_STMT_USER_EXISTS] = {"qry_user_exists", "SELECT 1 FROM stockpot.users WHERE id = $1", 1},
    [QRY_STMT_CHECKPOINTS] = {"qry_checkpoints",
                              "SELECT partition, next_offset FROM stockpot.checkpoints"
                              " WHERE projection = $1",
                              1},
};

struct qry_db {
    PGconn *conn;                  /* NULL until the first attempt */
    char *conninfo;                /* owned */
    bool prepared[QRY_STMT_COUNT]; /* per statement, on the current connection */
    int64_t next_attempt_us;       /* monotonic; no reconnect before this */
};

static void db_connect(struct qry_db *db)
{
    const char *const keys[] = {"dbname", "client_encoding", "connect_timeout", "application_name",
                                NULL};
    const char *const vals[] = {db->conninfo, "UTF8", "2", "stockpot-query-api", NULL};

    memset(db->prepared, 0, sizeof(db->prepared));
    if (db->conn == NULL)
        db->conn = PQconnectdbParams(keys, vals, 1);
    else
        PQreset(db->conn);
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        db->next_attempt_us = sp_time_mono_us() + DB_RETRY_US;
        sp_log(SP_LOG_WARN, "could not connect to postgresql: %s",
               db->conn != NULL ? PQerrorMessage(db->conn) : "out of memory");
        return;
    }
    sp_log(SP_LOG_INFO, "connected to postgresql");
}

struct qry_db *qry_db_new(const char *conninfo)
{
    struct qry_db *db = sp_xcalloc(1, sizeof(*db));

    db->conninfo = sp_xstrdup(conninfo != NULL ? conninfo : "");
    db_connect(db);
    return db;
}

void qry_db_free(struct qry_db *db)
{
    if (db == NULL)
        return;
    if (db->conn != NULL)
        PQfinish(db->conn);
    free(db->conninfo);
    free(db);
}

static bool db_connected(const struct qry_db *db)
{
    return db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK;
}

/* Connect if needed, honouring the retry delay. @return 0 or SP_EUNAVAIL. */
static int db_ensure_conn(struct qry_db *db, struct sp_errbuf *eb)
{
    if (!db_connected(db)) {
        if (sp_time_mono_us() < db->next_attempt_us)
            return sp_err_set(eb, SP_EUNAVAIL, NULL, "postgresql is unavailable");
        db_connect(db);
        if (!db_connected(db))
            return sp_err_set(eb, SP_EUNAVAIL, NULL, "postgresql is unavailable");
    }
    return 0;
}

static int db_prepare(struct qry_db *db, enum qry_stmt stmt, struct sp_errbuf *eb)
{
    const struct db_stmt *s = &db_stmts[stmt];
    PGresult *res;
    int rc = 0;

    if (db->prepared[stmt])
        return 0;
    res = PQprepare(db->conn, s->name, s->sql, s->nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = sp_err_set(eb, db_connected(db) ? SP_EDB : SP_EUNAVAIL, NULL,
                        "could not prepare %s: %s", s->name, PQerrorMessage(db->conn));
    } else {
        db->prepared[stmt] = true;
    }
    PQclear(res);
    return rc;
}

/* One attempt. @return 0, SP_EDB, or SP_EUNAVAIL when the connection broke. */
static int db_exec(struct qry_db *db,
                   enum qry_stmt stmt,
                   const char *const *params,
                   PGresult **out,
                   struct sp_errbuf *eb)
{
    PGresult *res;
    int rc;

    rc = db_ensure_conn(db, eb);
    if (rc != 0)
        return rc;
    rc = db_prepare(db, stmt, eb);
    if (rc != 0)
        return rc;
    res = PQexecPrepared(db->conn, db_stmts[stmt].name, db_stmts[stmt].nparams, params, NULL, NULL,
                         0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        *out = res;
        return 0;
    }
    rc = sp_err_set(eb, db_connected(db) ? SP_EDB : SP_EUNAVAIL, NULL, "query %s failed: %s",
                    db_stmts[stmt].name, PQerrorMessage(db->conn));
    PQclear(res);
    return rc;
}

int qry_db_query(struct qry_db *db,
                 enum qry_stmt stmt,
                 const char *const *params,
                 PGresult **out,
                 struct sp_errbuf *eb)
{
    bool was_connected = db_connected(db);
    int rc;

    SP_ASSERT(stmt >= 0 && stmt < QRY_STMT_COUNT);
    *out = NULL;
    rc = db_exec(db, stmt, params, out, eb);
    if (rc == SP_EUNAVAIL && was_connected) {
        /* The connection broke under us (e.g. a server restart): reset now, once. */
        sp_log(SP_LOG_WARN, "postgresql connection lost, reconnecting");
        db->next_attempt_us = 0;
        rc = db_exec(db, stmt, params, out, eb);
    }
    if (rc == SP_EDB)
        sp_log(SP_LOG_ERROR, "%s", eb != NULL ? eb->msg : "query failed");
    return rc;
}

int qry_db_checkpoint(struct qry_db *db,
                      int32_t partition,
                      int64_t *next_offset,
                      struct sp_errbuf *eb)
{
    const char *params[] = {QRY_PROJECTION};
    PGresult *res;
    int rc;

    rc = qry_db_query(db, QRY_STMT_CHECKPOINTS, params, &res, eb);
    if (rc != 0)
        return rc;
    rc = SP_ENOTFOUND;
    for (int i = 0; i < PQntuples(res); i++) {
        char *end = NULL;

        if (strtol(PQgetvalue(res, i, 0), &end, 10) != partition)
            continue;
        *next_offset = strtoll(PQgetvalue(res, i, 1), &end, 10);
        rc = 0;
        break;
    }
    PQclear(res);
    return rc;
}

/* Append a readiness reason; a reason cut short by the buffer's cap is still a reason. */
static void db_why(struct sp_buf *why, const char *reason, const char *detail)
{
    int rc = sp_buf_addf(why, "%s%s", reason, detail);

    (void)rc;
}

bool qry_db_ready(struct qry_db *db, struct sp_buf *why)
{
    PGresult *res;
    bool ok;

    if (db_ensure_conn(db, NULL) != 0) {
        db_why(why, "postgresql is unreachable", "");
        return false;
    }
    res = PQexec(db->conn, "SELECT to_regclass('stockpot.checkpoints') IS NOT NULL");
    ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        db_why(why, "postgresql query failed: ", PQerrorMessage(db->conn));
    else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        ok = false;
        db_why(why, "migrations not applied: stockpot.checkpoints is missing", "");
    }
    PQclear(res);
    if (!db_connected(db))
        db->next_attempt_us = 0; /* the next call reconnects at once */
    return ok;
}
