/*
 * The set-wise fold of the "pg" projection (pg_fold_set.c) against the per-event folds:
 * a realistic log from stockpot-loggen (few users over a few days, so that one batch holds
 * many events of one row: likes and unlikes of a pair, profile updates, session refreshes,
 * recipes created, updated and deleted) folded one event per batch, which takes the
 * per-event folds, must give the same read model (proj_checksum) as the same log folded
 * in batches of many sizes, of random sizes, and in one set of every event. The generated
 * log has chat among the rest (--chat: rooms, messages, read marks, joins and leaves), and
 * after it come CHAT_EVENTS more events of chat (pgtest_append_chat): few rooms, so that
 * batches hold many events of one room, with messages and read marks in runs, members
 * added, leaving and removed by the admin, titles and admins changed.
 * Needs PostgreSQL (pg_virtualenv) and the stockpot-loggen binary (SP_LOGGEN).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "es/catalogue.h"
#include "pgtest.h"
#include "proj/pg.h"
#include "proj/projection.h"
#include "proj/runner.h"

#include "sp/banned.h"

#define LOG_EVENTS  "6000"
#define CHAT_EVENTS 1500

/* Events in the log: LOG_EVENTS of stockpot-loggen, then the chat events. */
static const long long log_events = 6000 + CHAT_EVENTS;

/* The log, the reference checksum (one event per batch) and its database. */
static struct pgtest ref;
static char ref_sum[40];

static void checksum(PGconn *conn, char *out, size_t out_size)
{
    struct sp_errbuf eb = {{0}, {0}};
    assert_int_equal(proj_checksum(conn, proj_pg_projection(), out, out_size, &eb), 0);
}

/* On a mismatch: which tables differ between @p conn and the reference, and their sizes. */
static void explain_mismatch(PGconn *conn, const char *what)
{
    const struct proj_projection *p = proj_pg_projection();
    char sql[512];

    for (size_t i = 0; i < p->n_tables; i++) {
        char row[64];
        /* a row as the checksum reads it: without its unsummed column */
        if (p->tables[i].unsummed != NULL)
            snprintf(row, sizeof(row), "(to_jsonb(t) - '%s')::text", p->tables[i].unsummed);
        else
            snprintf(row, sizeof(row), "t::text");
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) || ' rows, ' || md5(coalesce(string_agg(%s, ',' ORDER BY "
                 "%s), '')) FROM %s t",
                 row, p->tables[i].order_by, p->tables[i].name);
        char *a = pgtest_value(conn, sql), *b = pgtest_value(ref.conn, sql);
        if (strcmp(a, b) != 0)
            fprintf(stderr, "%s: %s differs: %s, one by one %s\n", what, p->tables[i].name, a, b);
        free(a);
        free(b);
    }
}

static int setup(void **state)
{
    char cmd[512];
    (void)state;

    pgtest_setup_db(&ref);
    /* 6,000 events of 30 users over 2 days: every batch repeats rows */
    snprintf(cmd, sizeof(cmd),
             "STOCKPOT_LOG_DIR=%s '%s' --events " LOG_EVENTS
             " --users 30 --days 2 --seed 7 --chat 150 "
             "--recipes '%s' >/dev/null",
             ref.dir, SP_LOGGEN, SP_SAMPLE_RECIPES);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_fold_set: %s failed\n", cmd);
        return -1;
    }
    pgtest_open_log(&ref);
    /* 12 rooms of 20 users: about 125 events per room */
    pgtest_append_chat(&ref, 5, 12, 20, CHAT_EVENTS);
    pgtest_catch_up(&ref, 1);
    checksum(ref.conn, ref_sum, sizeof(ref_sum));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pgtest_teardown(&ref);
    return 0;
}

/* Every counter equals its count over the rows, and some are not zero. */
static void assert_counters(PGconn *conn)
{
    assert_int_equal(
        pgtest_count(conn, "SELECT count(*) FROM stockpot.users u WHERE "
                           "follower_count <> (SELECT count(*) FROM stockpot.follows f "
                           "WHERE f.followee_id = u.id) OR following_count <> (SELECT count(*) "
                           "FROM stockpot.follows f WHERE f.follower_id = u.id) OR recipe_count "
                           "<> (SELECT count(*) FROM stockpot.recipes r WHERE r.author_id = u.id)"),
        0);
    assert_int_equal(pgtest_count(conn, "SELECT count(*) FROM stockpot.recipes r WHERE like_count "
                                        "<> (SELECT count(*) FROM stockpot.likes l WHERE "
                                        "l.recipe_id = r.id) OR comment_count <> (SELECT count(*) "
                                        "FROM stockpot.comments c WHERE c.recipe_id = r.id)"),
                     0);
    assert_true(
        pgtest_count(conn, "SELECT sum(follower_count + recipe_count) FROM stockpot.users") > 0);
    assert_true(pgtest_count(conn, "SELECT sum(like_count + comment_count) FROM stockpot.recipes") >
                0);
}

/* The reference is no trivial view: every table the social folds write has rows. */
static void test_reference_is_rich(void **state)
{
    static const char *const tables[] = {
        "stockpot.users",         "stockpot.recipes",
        "stockpot.recipe_tags",   "stockpot.follows",
        "stockpot.likes",         "stockpot.comments",
        "stockpot.notifications", "stockpot.notification_reads",
        "stockpot.sessions",      "stockpot.feed_entries",
        "stockpot.conversations", "stockpot.conversation_members",
        "stockpot.messages",      "stockpot.chat_events",
    };
    char sql[96];
    (void)state;

    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", tables[i]);
        if (pgtest_count(ref.conn, sql) == 0)
            fail_msg("%s is empty", tables[i]);
    }
    assert_true(pgtest_count(ref.conn, "SELECT count(*) FROM stockpot.sessions WHERE revoked") > 0);
    assert_int_equal(pgtest_count(ref.conn, "SELECT count(*) FROM stockpot.dead_letters"), 0);
    assert_counters(ref.conn);
    assert_int_equal(pgtest_count(ref.conn, "SELECT next_offset FROM stockpot.checkpoints"),
                     log_events);
    /* every kind of chat event, spans that ended, message notifications pending and done */
    assert_int_equal(
        pgtest_count(ref.conn, "SELECT count(DISTINCT kind) FROM stockpot.chat_events"), 6);
    /* the generated log's rooms (loggen --chat) and the appended ones */
    assert_true(pgtest_count(ref.conn, "SELECT count(*) FROM stockpot.chat_events") >
                CHAT_EVENTS + 300);
    assert_true(pgtest_count(ref.conn, "SELECT count(*) FROM stockpot.conversation_members "
                                       "WHERE left_offset IS NOT NULL") > 5);
    assert_true(pgtest_count(ref.conn, "SELECT count(*) FROM stockpot.notifications "
                                       "WHERE kind = 'message' AND pending") > 5);
    assert_true(pgtest_count(ref.conn, "SELECT count(*) FROM stockpot.notifications "
                                       "WHERE kind = 'message' AND NOT pending") > 5);
}

/* Each index of the view's tables, by name, with its definition (a rebuild builds some of
 * them after its load, under the same names). Owned by the caller. */
static char *index_defs(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT string_agg(indexname || ': ' || indexdef, E'\\n' "
                                 "ORDER BY indexname) FROM pg_indexes WHERE schemaname = "
                                 "'stockpot' AND tablename NOT IN ('checkpoints', "
                                 "'dead_letters', 'schema_migrations')");
    char *defs;

    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    defs = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return defs;
}

/* proj_rebuild in batches of each size, in a fresh database: the same checksum, counters
 * and indexes. Batches of 500 are read ahead while the one before folds. */
static void test_batch_sizes(void **state)
{
    static const size_t sizes[] = {2, 3, 17, 500, 6000};
    struct sp_errbuf eb = {{0}, {0}};
    struct pgtest t;
    (void)state;

    pgtest_setup_db(&t);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct proj_batch_stats st;
        char sum[40], what[64];
        int rc = proj_rebuild(t.conn, proj_pg_projection(), ref.log, sizes[i],
                              PROJ_POISON_DEAD_LETTER, false, &st, &eb);
        if (rc != 0)
            fail_msg("rebuild in batches of %zu: %s", sizes[i], eb.msg);
        checksum(t.conn, sum, sizeof(sum));
        snprintf(what, sizeof(what), "batches of %zu", sizes[i]);
        if (strcmp(sum, ref_sum) != 0) {
            explain_mismatch(t.conn, what);
            fail_msg("%s: checksum %s, one by one %s", what, sum, ref_sum);
        }
        assert_counters(t.conn);
        char *defs = index_defs(t.conn), *ref_defs = index_defs(ref.conn);
        assert_non_null(strstr(ref_defs, "likes_user_idx: CREATE INDEX likes_user_idx ON "
                                         "stockpot.likes USING btree (user_id, recipe_id)"));
        assert_non_null(strstr(ref_defs, "feed_entries_pkey: CREATE UNIQUE INDEX"));
        assert_string_equal(defs, ref_defs);
        free(defs);
        free(ref_defs);
        /* and the tables' storage parameters (schemas/sql/004_fillfactor.sql) */
        assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM pg_class WHERE oid = "
                                              "'stockpot.recipes'::regclass "
                                              "AND reloptions @> '{fillfactor=50}'"),
                         1);
    }
    pgtest_teardown(&t);
}

/* A fresh database fed by runners of random batch sizes, one step each. */
static void test_random_batches(void **state)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};
    unsigned seed = 11;
    char sum[40];
    (void)state;

    pgtest_setup_db(&t);
    t.log = ref.log;
    for (int steps = 0; pgtest_count(t.conn, "SELECT coalesce(max(next_offset), 0) FROM "
                                             "stockpot.checkpoints") < log_events;
         steps++) {
        size_t batch_max = 1 + (size_t)(rand_r(&seed) % 900);
        struct proj_runner *r = pgtest_runner_new(&t, batch_max, PROJ_POISON_DEAD_LETTER, NULL);
        int64_t applied = 0;
        if (proj_runner_step(r, &applied, &eb) != 0)
            fail_msg("step of %zu: %s", batch_max, eb.msg);
        proj_runner_free(r);
        assert_true(steps < 1000);
    }
    checksum(t.conn, sum, sizeof(sum));
    if (strcmp(sum, ref_sum) != 0)
        explain_mismatch(t.conn, "random batches");
    assert_string_equal(sum, ref_sum);
    t.log = NULL;
    pgtest_teardown(&t);
}

struct collected {
    struct es_event *evs;
    size_t n;
};

static int collect(const struct es_log_record *rec, void *ud)
{
    struct collected *c = ud;
    struct sp_errbuf eb = {{0}, {0}};
    struct es_event *ev = &c->evs[c->n];

    es_event_init(ev);
    /* the runner keeps each payload's text (ES_DECODE_DATA_JSON); fold_set encodes the
     * payload itself without it: every other event goes each way */
    assert_int_equal(
        es_log_record_decode_ex(rec, rec->pos.offset % 2 ? ES_DECODE_DATA_JSON : 0, ev, &eb), 0);
    assert_int_equal(es_event_check(ev, NULL, &eb), 0);
    if (proj_projection_handles(proj_pg_projection(), ev->type_id))
        c->n++;
    else
        es_event_release(ev);
    return 0;
}

/* Every event of the log in one call of fold_set (many rounds per key), in a fresh
 * database, with the projection's batch hooks around it as the runner calls them. */
static void test_one_set(void **state)
{
    const struct proj_projection *p = proj_pg_projection();
    struct collected c = {calloc((size_t)log_events, sizeof(struct es_event)), 0};
    struct sp_errbuf eb = {{0}, {0}};
    const struct es_event **evs;
    struct pgtest t;
    int64_t next = 0;
    char sum[40];
    (void)state;

    assert_non_null(p->fold_set);
    assert_int_equal(es_log_read(ref.log, 0, 0, (size_t)log_events, collect, &c, &next, &eb), 0);
    assert_true(c.n > 5000);
    evs = calloc(c.n, sizeof(*evs));
    for (size_t i = 0; i < c.n; i++)
        evs[i] = &c.evs[i];
    pgtest_setup_db(&t);
    assert_int_equal(proj_pg_exec_script(t.conn, "BEGIN", &eb), 0);
    assert_int_equal(p->batch_begin(t.conn, &eb), 0);
    if (p->fold_set(t.conn, evs, c.n, 0, &eb) != 0)
        fail_msg("fold_set: %s", eb.msg);
    assert_int_equal(p->batch_end(t.conn, &eb), 0);
    assert_int_equal(proj_pg_exec_script(t.conn, "COMMIT", &eb), 0);
    checksum(t.conn, sum, sizeof(sum));
    if (strcmp(sum, ref_sum) != 0)
        explain_mismatch(t.conn, "one set");
    assert_string_equal(sum, ref_sum);
    assert_counters(t.conn);
    pgtest_teardown(&t);
    for (size_t i = 0; i < c.n; i++)
        es_event_release(&c.evs[i]);
    free(c.evs);
    free(evs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_is_rich),
        cmocka_unit_test(test_batch_sizes),
        cmocka_unit_test(test_random_batches),
        cmocka_unit_test(test_one_set),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
