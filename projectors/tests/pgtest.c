/* Test support: per-test PostgreSQL database, embedded log and runners (see pgtest.h). */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "es/checksum.h"
#include "pgtest.h"
#include "proj/migrate.h"
#include "proj/pg.h"

#include "sp/banned.h"

const char *pgtest_sql_dir(void)
{
    static char dir[1024];
    const char *src = getenv("SP_SOURCE_DIR");
    snprintf(dir, sizeof(dir), "%s/schemas/sql", src ? src : "../..");
    return dir;
}

static void admin_exec(const char *sql)
{
    PGconn *conn = NULL;
    struct sp_errbuf eb = {{0}, {0}};
    int rc = proj_pg_connect("", "pgtest", &conn, &eb);

    if (rc != 0)
        fprintf(stderr, "pgtest: %s (run under pg_virtualenv)\n", eb.msg);
    assert_int_equal(rc, 0);
    rc = proj_pg_exec_script(conn, sql, &eb);
    if (rc != 0)
        fprintf(stderr, "pgtest: %s\n", eb.msg);
    assert_int_equal(rc, 0);
    PQfinish(conn);
}

void pgtest_open_log(struct pgtest *t)
{
    struct sp_errbuf eb = {{0}, {0}};
    assert_int_equal(
        es_log_open_lmdb(t->dir, PGTEST_MAP_BYTES, PGTEST_MAX_EVENT, ES_LOG_WRITER, &t->log, &eb),
        0);
}

void pgtest_setup(struct pgtest *t)
{
    pgtest_setup_db(t);
    pgtest_open_log(t);
}

void pgtest_setup_db(struct pgtest *t)
{
    static int counter;
    struct sp_errbuf eb = {{0}, {0}};
    char sql[160];
    int rc;

    memset(t, 0, sizeof(*t));
    snprintf(t->db, sizeof(t->db), "proj_test_%d_%d", (int)getpid(), counter++);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", t->db);
    admin_exec(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", t->db);
    admin_exec(sql);
    snprintf(t->conninfo, sizeof(t->conninfo), "dbname=%s", t->db);
    assert_int_equal(proj_pg_connect(t->conninfo, "pgtest", &t->conn, &eb), 0);
    rc = proj_migrate_run(t->conn, pgtest_sql_dir(), NULL, &eb);
    if (rc != 0)
        fprintf(stderr, "pgtest: %s\n", eb.msg);
    assert_int_equal(rc, 0);
    snprintf(t->root, sizeof(t->root), "/tmp/proj-test-XXXXXX");
    assert_non_null(mkdtemp(t->root));
    snprintf(t->dir, sizeof(t->dir), "%s/log", t->root);
}

void pgtest_teardown(struct pgtest *t)
{
    char sql[160];
    char path[128];

    es_log_close(t->log);
    PQfinish(t->conn);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->db);
    admin_exec(sql);
    snprintf(path, sizeof(path), "%s/data.mdb", t->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", t->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/writer.lock", t->dir);
    unlink(path);
    rmdir(t->dir);
    rmdir(t->root);
}

void pgtest_append(
    struct pgtest *t, const char *type, const char *stream, int64_t version, json_t *data)
{
    struct es_event ev;
    const struct es_event *evs[1] = {&ev};
    struct sp_errbuf eb = {{0}, {0}};

    es_event_init(&ev);
    assert_int_equal(es_event_make(&ev, type, stream, version, NULL, NULL, NULL, data), 0);
    assert_int_equal(es_log_append(t->log, evs, 1, NULL, &eb), 0);
    es_event_release(&ev);
}

void pgtest_mixed_events(int users, int recipes, pgtest_emit_fn emit, void *arg)
{
    char id[32], stream[64], author[32], name[32];

    for (int i = 1; i <= users; i++) {
        snprintf(id, sizeof(id), "73012345678%05d", i);
        snprintf(stream, sizeof(stream), "user-%s", id);
        snprintf(name, sizeof(name), "user_%d", i);
        emit(arg, "UserRegistered", stream, 1,
             json_pack("{s:s,s:s,s:s,s:s}", "user_id", id, "username", name, "email",
                       "u@example.com", "password_hash", "$argon2id$v=19$h"));
    }
    for (int i = 1; i <= recipes; i++) {
        snprintf(id, sizeof(id), "73019999999%05d", i);
        snprintf(author, sizeof(author), "73012345678%05d", 1 + i % users);
        snprintf(stream, sizeof(stream), "recipe-%s", id);
        emit(arg, "RecipeCreated", stream, 1,
             json_pack("{s:s,s:s,s:s,s:s,s:[s,s],s:[s],s:[s,s],s:[]}", "recipe_id", id, "author_id",
                       author, "title", "红烧肉", "description", "好吃", "ingredients", "pork",
                       "糖", "steps", "cook", "tags", "中餐", i % 2 ? "odd" : "even",
                       "image_media_ids"));
        if (i % 3 == 0)
            emit(arg, "RecipeUpdated", stream, 2,
                 json_pack("{s:s,s:[s]}", "title", "红烧肉 v2", "tags", "new"));
        if (i % 5 == 0)
            emit(arg, "RecipeDeleted", stream, i % 3 == 0 ? 3 : 2, json_object());
    }
    emit(arg, "NoSuchType", "user-7301234567800001", 2, json_object());
}

static void
append_event(void *arg, const char *type, const char *stream, int64_t version, json_t *data)
{
    pgtest_append(arg, type, stream, version, data);
}

void pgtest_append_mixed(struct pgtest *t, int users, int recipes)
{
    pgtest_mixed_events(users, recipes, append_event, t);
}

struct proj_runner *pgtest_runner_new(struct pgtest *t,
                                      size_t batch_max,
                                      enum proj_poison_policy policy,
                                      struct sp_metrics *m)
{
    return pgtest_runner_sized(t, batch_max, 0, 0, policy, m);
}

struct proj_runner *pgtest_runner_sized(struct pgtest *t,
                                        size_t batch_max,
                                        size_t catchup_batch_max,
                                        int batch_linger_ms,
                                        enum proj_poison_policy policy,
                                        struct sp_metrics *m)
{
    struct proj_runner_opts opts = {
        .proj = proj_pg_projection(),
        .conninfo = t->conninfo,
        .batch_max = batch_max,
        .catchup_batch_max = catchup_batch_max,
        .batch_linger_ms = batch_linger_ms,
        .policy = policy,
        .metrics = m,
    };
    struct proj_runner *r = NULL;
    struct sp_errbuf eb = {{0}, {0}};

    assert_int_equal(proj_runner_new(&opts, t->log, &r, &eb), 0);
    return r;
}

void pgtest_catch_up(struct pgtest *t, size_t batch_max)
{
    struct proj_runner *r = pgtest_runner_new(t, batch_max, PROJ_POISON_DEAD_LETTER, NULL);
    struct sp_errbuf eb = {{0}, {0}};
    int rc = proj_runner_catch_up(r, &eb);

    if (rc != 0)
        fprintf(stderr, "catch up: %s\n", eb.msg);
    assert_int_equal(rc, 0);
    proj_runner_free(r);
}

char *pgtest_value(PGconn *conn, const char *sql)
{
    struct sp_errbuf eb = {{0}, {0}};
    PGresult *res = NULL;
    char *out;
    int rc = proj_pg_exec(conn, sql, 0, NULL, &res, &eb);

    if (rc != 0)
        fprintf(stderr, "pgtest: %s: %s\n", sql, eb.msg);
    assert_int_equal(rc, 0);
    out = strdup(PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    assert_non_null(out);
    PQclear(res);
    return out;
}

long long pgtest_count(PGconn *conn, const char *sql)
{
    char *v = pgtest_value(conn, sql);
    long long n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

void pgtest_check(PGconn *conn, const char *sql, const char *want)
{
    char *v = pgtest_value(conn, sql);

    if (strcmp(v, want) != 0)
        fprintf(stderr, "%s\n  got:  %s\n  want: %s\n", sql, v, want);
    assert_string_equal(v, want);
    free(v);
}

void pgtest_overwrite(struct pgtest *t, int64_t offset, const char *value, int fix_checksum)
{
    struct sp_errbuf eb = {{0}, {0}};
    size_t len = strlen(value);
    uint64_t sum = es_checksum(value, len) ^ (fix_checksum ? 0 : 1);
    uint8_t key[8], *buf = malloc(8 + len + 1);
    MDB_val k = {sizeof(key), key}, v = {8 + len, buf};
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;

    assert_non_null(buf);
    for (int i = 0; i < 8; i++) {
        key[i] = (uint8_t)((uint64_t)offset >> (8 * (7 - i)));
        buf[i] = (uint8_t)(sum >> (8 * i)); /* little-endian checksum, as es/log.h says */
    }
    memcpy(buf + 8, value, len + 1); /* the NUL is not stored: mv_size excludes it */
    es_log_close(t->log);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_set_mapsize(env, PGTEST_MAP_BYTES), 0);
    assert_int_equal(mdb_env_open(env, t->dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "log", 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(buf);
    assert_int_equal(
        es_log_open_lmdb(t->dir, PGTEST_MAP_BYTES, PGTEST_MAX_EVENT, ES_LOG_WRITER, &t->log, &eb),
        0);
}
