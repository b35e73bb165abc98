/* A fresh PostgreSQL database with the read-model schema for each query API test file. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "qry_test_db.h"

#include "sp/banned.h"

/* The migrations the query API reads, in order. */
static const char *const db_migrations[] = {"001_init.sql", "002_social.sql", "003_feed.sql",
                                            "004_fillfactor.sql", "005_chat.sql"};

void qry_test_db_admin_exec(const char *sql)
{
    PGconn *admin = PQconnectdb(""); /* PGDATABASE etc. from the environment */
    PGresult *res;

    if (PQstatus(admin) != CONNECTION_OK)
        fail_msg("cannot connect to postgresql: %s", PQerrorMessage(admin));
    res = PQexec(admin, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(admin));
    PQclear(res);
    PQfinish(admin);
}

static char *db_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text;
    long n;

    if (f == NULL)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return text;
}

void qry_test_db_create(struct qry_test_db *db, const char *prefix)
{
    const char *src = getenv("SP_SOURCE_DIR");
    char sql[256];
    char path[1024];
    char *init;

    snprintf(db->name, sizeof(db->name), "%s_%d", prefix, (int)getpid());
    snprintf(db->conninfo, sizeof(db->conninfo), "dbname=%s", db->name);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    qry_test_db_admin_exec(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s ENCODING 'UTF8' TEMPLATE template0", db->name);
    qry_test_db_admin_exec(sql);
    db->conn = PQconnectdb(db->conninfo);
    if (PQstatus(db->conn) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", db->name, PQerrorMessage(db->conn));
    for (size_t i = 0; i < sizeof(db_migrations) / sizeof(db_migrations[0]); i++) {
        snprintf(path, sizeof(path), "%s/schemas/sql/%s", src != NULL ? src : ".",
                 db_migrations[i]);
        init = db_read_file(path);
        qry_test_db_exec(db, init);
        free(init);
    }
}

void qry_test_db_drop(struct qry_test_db *db)
{
    char sql[256];

    PQfinish(db->conn);
    db->conn = NULL;
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    qry_test_db_admin_exec(sql);
}

void qry_test_db_exec(struct qry_test_db *db, const char *sql)
{
    PGresult *res = PQexec(db->conn, sql);

    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("sql failed: %s", PQerrorMessage(db->conn));
    PQclear(res);
}

void qry_test_db_execf(struct qry_test_db *db, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(sql, sizeof(sql), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(sql));
    qry_test_db_exec(db, sql);
}

static void
db_exec_params(struct qry_test_db *db, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(db->conn, sql, n, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("sql failed: %s", PQerrorMessage(db->conn));
    PQclear(res);
}

void qry_test_db_user(struct qry_test_db *db, int64_t id, const char *username, int64_t version)
{
    char id_s[24];
    char version_s[24];
    const char *params[] = {id_s, username, version_s};

    snprintf(id_s, sizeof(id_s), "%" PRId64, id);
    snprintf(version_s, sizeof(version_s), "%" PRId64, version);
    db_exec_params(db,
                   "INSERT INTO stockpot.users (id, username, full_name, bio, avatar_media_id,"
                   " created_at, updated_at, version) VALUES ($1, $2, NULL, 'cooks a lot', 77,"
                   " '2026-01-02 03:04:05.123456+00', '2026-01-02 03:04:05.123456+00', $3)",
                   3, params);
}

void qry_test_db_recipe(struct qry_test_db *db,
                        int64_t id,
                        int64_t author_id,
                        const char *title,
                        const char *tags,
                        int64_t version)
{
    char id_s[24];
    char author_s[24];
    char version_s[24];
    char tags_s[512];
    const char *params[] = {id_s, author_s, title, tags_s, version_s};

    snprintf(id_s, sizeof(id_s), "%" PRId64, id);
    snprintf(author_s, sizeof(author_s), "%" PRId64, author_id);
    snprintf(version_s, sizeof(version_s), "%" PRId64, version);
    snprintf(tags_s, sizeof(tags_s), "{%s}", tags);
    db_exec_params(
        db,
        "WITH r AS (INSERT INTO stockpot.recipes (id, author_id, title, description,"
        " ingredients, steps, tags, image_media_ids, created_at, updated_at, version) VALUES"
        " ($1, $2, $3, 'A description', '[\"1 cup rice\", \"2 cups water\"]',"
        " '[\"Boil\", \"Simmer\"]', $4::text[], '{11,12}', '2026-01-02 03:04:05.123456+00',"
        " '2026-01-03 00:00:00+00', $5) RETURNING id)"
        " INSERT INTO stockpot.recipe_tags (tag, recipe_id)"
        " SELECT t, (SELECT id FROM r) FROM unnest($4::text[]) t",
        5, params);
}

void qry_test_db_checkpoint(struct qry_test_db *db, int64_t next_offset)
{
    char sql[256];

    snprintf(sql, sizeof(sql),
             "INSERT INTO stockpot.checkpoints (projection, partition, next_offset)"
             " VALUES ('pg', 0, %" PRId64 ") ON CONFLICT (projection, partition)"
             " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
             next_offset);
    qry_test_db_exec(db, sql);
}
