/* Schema migrations: numbered SQL files applied in order, one transaction each. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proj/migrate.h"
#include "proj/pg.h"
#include "sp/alloc.h"
#include "sp/log.h"

#include "sp/banned.h"

#ifndef PROJ_SQL_DIR
#define PROJ_SQL_DIR "schemas/sql"
#endif

/* Session advisory lock key serialising migrations ("SPMIGRAT" is not needed: any constant). */
#define MIGRATE_LOCK_KEY "7301000000000000001"

struct migration {
    long version;
    char *name; /* file name, owned */
};

static bool dir_usable(const char *path)
{
    struct stat st;
    return path != NULL && path[0] != '\0' && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int proj_migrate_sql_dir(char *out, size_t out_size, struct sp_errbuf *eb)
{
    const char *env = getenv("STOCKPOT_SQL_DIR");
    char exe[PATH_MAX];
    char rel[PATH_MAX + 32];
    ssize_t n;
    char *slash;

    if (env != NULL && env[0] != '\0') {
        if (!dir_usable(env))
            return sp_err_set(eb, SP_ENOTFOUND, "STOCKPOT_SQL_DIR",
                              "migrations directory \"%s\" not found", env);
        snprintf(out, out_size, "%s", env);
        return 0;
    }
    if (dir_usable(PROJ_SQL_DIR)) {
        snprintf(out, out_size, "%s", PROJ_SQL_DIR);
        return 0;
    }
    rel[0] = '\0';
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash != NULL)
            *slash = '\0';
        snprintf(rel, sizeof(rel), "%s/../share/stockpot/sql", exe);
        if (dir_usable(rel)) {
            snprintf(out, out_size, "%s", rel);
            return 0;
        }
    }
    return sp_err_set(eb, SP_ENOTFOUND, NULL,
                      "no migrations directory: set STOCKPOT_SQL_DIR (tried \"%s\" and \"%s\")",
                      PROJ_SQL_DIR, rel);
}

/* Parses "NNN_name.sql"; returns the version or -1 if the name does not match. */
static long migration_version(const char *name)
{
    char *end;
    size_t len = strlen(name);
    long v;

    if (len < 6 || name[0] < '0' || name[0] > '9' || strcmp(name + len - 4, ".sql") != 0)
        return -1;
    errno = 0;
    v = strtol(name, &end, 10);
    if (errno != 0 || *end != '_' || v <= 0)
        return -1;
    return v;
}

static int migration_cmp(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

static void migrations_free(struct migration *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].name);
    free(m);
}

static int
migrations_list(const char *dir, struct migration **out, size_t *count, struct sp_errbuf *eb)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    struct migration *m = NULL;
    size_t n = 0;
    long v;

    if (d == NULL)
        return sp_err_set(eb, -errno, NULL, "could not open migrations directory \"%s\": %s", dir,
                          strerror(errno));
    while ((de = readdir(d)) != NULL) {
        v = migration_version(de->d_name);
        if (v < 0)
            continue;
        m = sp_xrealloc(m, (n + 1) * sizeof(*m));
        m[n].version = v;
        m[n].name = sp_xstrdup(de->d_name);
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(m, n, sizeof(*m), migration_cmp);
    for (size_t i = 1; i < n; i++) {
        if (m[i].version == m[i - 1].version) {
            sp_err_set(eb, SP_EINVAL, m[i].name, "migrations \"%s\" and \"%s\" share a number",
                       m[i - 1].name, m[i].name);
            migrations_free(m, n);
            return SP_EINVAL;
        }
    }
    *out = m;
    *count = n;
    return 0;
}

static int file_read(const char *path, char **out, struct sp_errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t len;

    if (f == NULL)
        return sp_err_set(eb, -errno, NULL, "could not open migration \"%s\": %s", path,
                          strerror(errno));
    buf = sp_xmalloc(PROJ_MIGRATE_MAX_FILE_BYTES + 1);
    len = fread(buf, 1, PROJ_MIGRATE_MAX_FILE_BYTES + 1, f);
    if (ferror(f) || len > PROJ_MIGRATE_MAX_FILE_BYTES) {
        int rc = ferror(f) ? -EIO : SP_ETOOBIG;
        fclose(f);
        free(buf);
        return sp_err_set(eb, rc, NULL, "could not read migration \"%s\": %s", path,
                          rc == SP_ETOOBIG ? "file too big" : "i/o error");
    }
    fclose(f);
    buf[len] = '\0';
    *out = buf;
    return 0;
}

static int migration_applied(PGconn *conn, long version, bool *applied, struct sp_errbuf *eb)
{
    char v[32];
    const char *params[] = {v};
    PGresult *res;
    int rc;

    snprintf(v, sizeof(v), "%ld", version);
    rc = proj_pg_exec(conn, "SELECT 1 FROM stockpot.schema_migrations WHERE version = $1", 1,
                      params, &res, eb);
    if (rc != 0)
        return rc;
    *applied = PQntuples(res) > 0;
    PQclear(res);
    return 0;
}

static int
migration_apply(PGconn *conn, const char *dir, const struct migration *m, struct sp_errbuf *eb)
{
    char path[PATH_MAX];
    char v[32];
    const char *params[] = {v, m->name};
    char *sql = NULL;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, m->name);
    snprintf(v, sizeof(v), "%ld", m->version);
    rc = file_read(path, &sql, eb);
    if (rc != 0)
        return rc;
    rc = proj_pg_exec_script(conn, "BEGIN", eb);
    if (rc != 0)
        goto out_free_sql;
    rc = proj_pg_exec_script(conn, sql, eb);
    if (rc == 0)
        rc = proj_pg_exec(conn,
                          "INSERT INTO stockpot.schema_migrations (version, name, applied_at) "
                          "VALUES ($1, $2, now())",
                          2, params, NULL, eb);
    if (rc == 0)
        rc = proj_pg_exec_script(conn, "COMMIT", eb);
    if (rc != 0) {
        proj_pg_rollback(conn);
        if (eb != NULL) {
            char msg[sizeof(eb->msg)];
            snprintf(msg, sizeof(msg), "%s", eb->msg);
            sp_err_set(eb, rc, m->name, "migration \"%s\" failed: %s", m->name, msg);
        }
        goto out_free_sql;
    }
    sp_log(SP_LOG_INFO, "applied migration %s", m->name);
out_free_sql:
    free(sql);
    return rc;
}

static int migrate_all(PGconn *conn,
                       const char *dir,
                       const struct migration *m,
                       size_t n,
                       int *applied,
                       struct sp_errbuf *eb)
{
    int rc = proj_pg_exec_script(conn,
                                 "CREATE SCHEMA IF NOT EXISTS stockpot;"
                                 "CREATE TABLE IF NOT EXISTS stockpot.schema_migrations ("
                                 " version integer PRIMARY KEY,"
                                 " name text NOT NULL,"
                                 " applied_at timestamptz NOT NULL DEFAULT now())",
                                 eb);
    bool done;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = migration_applied(conn, m[i].version, &done, eb);
        if (rc == 0 && !done) {
            rc = migration_apply(conn, dir, &m[i], eb);
            if (rc == 0 && applied != NULL)
                (*applied)++;
        }
    }
    return rc;
}

int proj_migrate_run(PGconn *conn, const char *sql_dir, int *applied, struct sp_errbuf *eb)
{
    struct migration *m = NULL;
    size_t n = 0;
    int rc;

    if (applied != NULL)
        *applied = 0;
    rc = migrations_list(sql_dir, &m, &n, eb);
    if (rc != 0)
        return rc;
    rc = proj_pg_exec_script(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", eb);
    if (rc != 0)
        goto out_free_list;
    rc = migrate_all(conn, sql_dir, m, n, applied, eb);
    if (PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
out_free_list:
    migrations_free(m, n);
    return rc;
}
