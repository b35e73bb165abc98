/* Test support: per-test PostgreSQL database, embedded log and runners (see pgtest.h). */
#include <stdarg.h>
#include <setjmp.h>
#include <stdbool.h>
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

/* ------------------------------------------------------------ chat logs */

struct chat_room {
    bool created, group;
    int admin;        /* user number, groups only */
    int64_t version;  /* of the room's stream */
    int64_t last_msg; /* greatest message id, 0 = none */
    bool member[PGTEST_CHAT_MAX_USERS + 1];
};

struct chat_gen {
    struct pgtest *t;
    unsigned state; /* xorshift32 */
    int users;
    int64_t messages;
    int left; /* events still to append */
};

static unsigned chat_rand(struct chat_gen *g, unsigned bound)
{
    g->state ^= g->state << 13;
    g->state ^= g->state >> 17;
    g->state ^= g->state << 5;
    return g->state % bound;
}

static void chat_id(char *out, size_t size, long long base, long long n)
{
    snprintf(out, size, "%lld", base + n);
}

/* Append one event of room @p r (number @p rn) with @p data (stolen). */
static void chat_emit(struct chat_gen *g, struct chat_room *r, int rn, const char *type, json_t *d)
{
    char stream[48];

    snprintf(stream, sizeof(stream), "conversation-%lld", PGTEST_CHAT_ROOM + rn);
    pgtest_append(g->t, type, stream, ++r->version, d);
    g->left--;
}

/* A random member (or, with @p member false, non-member) of @p r; 0 if there is none. */
static int chat_pick(struct chat_gen *g, const struct chat_room *r, bool member)
{
    int n = 0, k;

    for (int u = 1; u <= g->users; u++)
        n += r->member[u] == member;
    if (n == 0)
        return 0;
    k = (int)chat_rand(g, (unsigned)n);
    for (int u = 1; u <= g->users; u++) {
        if (r->member[u] == member && k-- == 0)
            return u;
    }
    return 0;
}

static int chat_members(const struct chat_gen *g, const struct chat_room *r)
{
    int n = 0;

    for (int u = 1; u <= g->users; u++)
        n += r->member[u];
    return n;
}

static void chat_create(struct chat_gen *g, struct chat_room *r, int rn)
{
    char room[24], id[24], title[32];
    int creator = 1 + (int)chat_rand(g, (unsigned)g->users);
    int others = r->group ? 1 + (int)chat_rand(g, 5) : 1;
    json_t *members = json_array();
    json_t *d;

    r->created = true;
    r->member[creator] = true;
    for (int i = 0; i < others; i++) {
        int u = chat_pick(g, r, false);
        if (u != 0)
            r->member[u] = true;
    }
    for (int u = 1; u <= g->users; u++) {
        chat_id(id, sizeof(id), PGTEST_CHAT_USER, u);
        if (r->member[u])
            json_array_append_new(members, json_string(id));
    }
    chat_id(room, sizeof(room), PGTEST_CHAT_ROOM, rn);
    chat_id(id, sizeof(id), PGTEST_CHAT_USER, creator);
    d = json_pack("{s:s,s:b,s:s,s:o}", "conversation_id", room, "is_group", r->group, "creator_id",
                  id, "member_ids", members);
    if (r->group) {
        r->admin = creator;
        snprintf(title, sizeof(title), "Küche %d", rn);
        json_object_set_new(d, "title", json_string(title));
    }
    chat_emit(g, r, rn, "ConversationCreated", d);
}

static void chat_message(struct chat_gen *g, struct chat_room *r, int rn)
{
    char room[24], msg[24], sender[24], content[64], txn[24];
    int u = chat_pick(g, r, true);

    r->last_msg = PGTEST_CHAT_MESSAGE + ++g->messages;
    chat_id(room, sizeof(room), PGTEST_CHAT_ROOM, rn);
    chat_id(msg, sizeof(msg), 0, r->last_msg);
    chat_id(sender, sizeof(sender), PGTEST_CHAT_USER, u);
    snprintf(content, sizeof(content), "héllo %lld 🍲\nline two", (long long)g->messages);
    snprintf(txn, sizeof(txn), "t%lld", (long long)g->messages);
    chat_emit(g, r, rn, "MessageSent",
              json_pack("{s:s,s:s,s:s,s:s,s:s}", "conversation_id", room, "message_id", msg,
                        "sender_id", sender, "content", content, "txn_id", txn));
}

static void chat_read(struct chat_gen *g, struct chat_room *r, int rn)
{
    char room[24], user[24], up[24];
    int u = chat_pick(g, r, true);

    chat_id(room, sizeof(room), PGTEST_CHAT_ROOM, rn);
    chat_id(user, sizeof(user), PGTEST_CHAT_USER, u);
    /* mostly everything, sometimes less than before */
    chat_id(up, sizeof(up), 0, r->last_msg - (chat_rand(g, 4) == 0 ? chat_rand(g, 3) : 0));
    chat_emit(g, r, rn, "MessagesRead",
              json_pack("{s:s,s:s,s:s}", "conversation_id", room, "user_id", user, "up_to_id", up));
}

/* A member added, one leaving or removed by the admin, a new title or a new admin. */
static void chat_change(struct chat_gen *g, struct chat_room *r, int rn)
{
    char room[24], user[24], by[24], title[32];
    unsigned what = chat_rand(g, 4);
    int u = chat_pick(g, r, what != 0);

    chat_id(room, sizeof(room), PGTEST_CHAT_ROOM, rn);
    chat_id(by, sizeof(by), PGTEST_CHAT_USER, r->admin);
    if (what == 0 && u != 0) {
        r->member[u] = true;
        chat_id(user, sizeof(user), PGTEST_CHAT_USER, u);
        chat_emit(
            g, r, rn, "MemberAdded",
            json_pack("{s:s,s:s,s:s}", "conversation_id", room, "user_id", user, "added_by", by));
    } else if (what == 1 && u != r->admin && chat_members(g, r) > 2) {
        r->member[u] = false;
        chat_id(user, sizeof(user), PGTEST_CHAT_USER, u);
        chat_emit(g, r, rn, "MemberRemoved",
                  json_pack("{s:s,s:s,s:s}", "conversation_id", room, "user_id", user, "removed_by",
                            chat_rand(g, 2) ? user : by));
    } else if (what == 2 && u != r->admin) {
        r->admin = u;
        chat_id(user, sizeof(user), PGTEST_CHAT_USER, u);
        chat_emit(g, r, rn, "ConversationUpdated",
                  json_pack("{s:s,s:s}", "conversation_id", room, "admin_id", user));
    } else {
        snprintf(title, sizeof(title), "Küche %d v%lld", rn, (long long)r->version);
        chat_emit(g, r, rn, "ConversationUpdated",
                  json_pack("{s:s,s:s}", "conversation_id", room, "title", title));
    }
}

void pgtest_append_chat(struct pgtest *t, unsigned seed, int rooms, int users, int n)
{
    struct chat_gen g = {t, seed * 2654435761u + 1, users, 0, n};
    struct chat_room *r = calloc((size_t)rooms + 1, sizeof(*r));

    assert_non_null(r);
    assert_true(users >= 2 && users <= PGTEST_CHAT_MAX_USERS);
    while (g.left > 0) {
        int rn = 1 + (int)chat_rand(&g, (unsigned)rooms);
        unsigned what = chat_rand(&g, 100);

        r[rn].group = rn % 3 != 0;
        if (!r[rn].created)
            chat_create(&g, &r[rn], rn);
        else if (what < 55 || r[rn].last_msg == 0)
            chat_message(&g, &r[rn], rn);
        else if (what < 85 || !r[rn].group)
            chat_read(&g, &r[rn], rn);
        else
            chat_change(&g, &r[rn], rn);
    }
    free(r);
}
