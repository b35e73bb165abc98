/*
 * The LMDB view store kind, specified on a small real view: "ledger" counts the events of
 * each stream (database "streams": stream -> 8-byte count, written per fold) and the
 * events of all streams (database "totals": "events" -> 8-byte count, buffered by the
 * folds and written by flush, as the search view buffers its postings). The contract:
 *  - a batch's folds, flushed buffers, dead letters and checkpoint commit together, so a
 *    restarted runner applies each event exactly once in effect, and a transient failure
 *    keeps nothing of its batch;
 *  - a poison event is dead-lettered in the view (or halts it) and leaves no trace;
 *  - a rebuild builds a new generation while readers keep the old one, swaps it in
 *    atomically, gives the checksum of the incrementally built view, and the running
 *    projector moves to it at its next batch;
 *  - a view of another format is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "es/log.h"
#include "pgtest.h"
#include "proj/projection.h"
#include "proj/runner.h"
#include "proj/view.h"
#include "sp/alloc.h"

#include "sp/banned.h"

#define LEDGER_FORMAT "stockpot-test-ledger/1"
#define MAP_SIZE      (64u << 20)

struct ledger {
    MDB_dbi streams, totals;
    int64_t pending; /* events folded in this batch, written by flush */
};

/* The next this-many folds fail with SP_EDB (a transient error) after writing. */
static int fail_transient;

static int ledger_new(void **state, struct sp_errbuf *eb)
{
    (void)eb;
    *state = sp_xcalloc(1, sizeof(struct ledger));
    return 0;
}

static void ledger_free(void *state)
{
    free(state);
}

static int ledger_open(void *state, MDB_txn *txn, struct sp_errbuf *eb)
{
    struct ledger *l = state;
    int rc = mdb_dbi_open(txn, "streams", MDB_CREATE, &l->streams);

    if (rc == 0)
        rc = mdb_dbi_open(txn, "totals", MDB_CREATE, &l->totals);
    return rc == 0 ? 0 : sp_err_set(eb, SP_EDB, NULL, "%s", mdb_strerror(rc));
}

static int64_t get_count(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
    MDB_val k = {strlen(key), (void *)(uintptr_t)key}, v;
    int64_t n = 0;

    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == sizeof(n))
        memcpy(&n, v.mv_data, sizeof(n));
    return n;
}

static int put_count(MDB_txn *txn, MDB_dbi dbi, const char *key, int64_t n)
{
    MDB_val k = {strlen(key), (void *)(uintptr_t)key}, v = {sizeof(n), &n};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int ledger_fold(void *state, MDB_txn *txn, const struct es_event *ev, struct sp_errbuf *eb)
{
    struct ledger *l = state;
    int64_t n = get_count(txn, l->streams, ev->stream);

    if (ev->type_id == ES_TYPE_RECIPE_DELETED && n == 0)
        return sp_err_set(eb, SP_ENOTFOUND, NULL, "no recipe %s in the ledger", ev->stream);
    if (put_count(txn, l->streams, ev->stream, n + 1) != 0)
        return sp_err_set(eb, SP_EDB, NULL, "put failed");
    if (fail_transient > 0) { /* after a write: the nested transaction must undo it */
        fail_transient--;
        return sp_err_set(eb, SP_EDB, NULL, "injected transient failure");
    }
    l->pending++;
    return 0;
}

static int ledger_flush(void *state, MDB_txn *txn, struct sp_errbuf *eb)
{
    struct ledger *l = state;
    int rc = put_count(txn, l->totals, "events", get_count(txn, l->totals, "events") + l->pending);

    l->pending = 0;
    return rc == 0 ? 0 : sp_err_set(eb, SP_EDB, NULL, "%s", mdb_strerror(rc));
}

static void ledger_discard(void *state)
{
    ((struct ledger *)state)->pending = 0;
}

static const bool ledger_handles[ES_TYPE__COUNT] = {
    [ES_TYPE_USER_REGISTERED] = true,
    [ES_TYPE_RECIPE_CREATED] = true,
    [ES_TYPE_RECIPE_UPDATED] = true,
    [ES_TYPE_RECIPE_DELETED] = true,
};

/* The ledger's view ops in format @p fmt. */
#define LEDGER_OPS(fmt)                                                                            \
    {                                                                                              \
        .format = (fmt), .max_dbs = 2, .handles = ledger_handles, .state_new = ledger_new,         \
        .state_free = ledger_free, .open = ledger_open, .fold = ledger_fold,                       \
        .flush = ledger_flush, .discard = ledger_discard,                                          \
    }

static const struct proj_view_ops ledger_ops = LEDGER_OPS(LEDGER_FORMAT);

static const struct proj_projection ledger = {
    .name = "ledger",
    .store = PROJ_STORE_LMDB,
    .view = &ledger_ops,
};

/* The same view in a newer format: an upgrade that needs a rebuild. */
static const struct proj_view_ops ledger_v2_ops = LEDGER_OPS("stockpot-test-ledger/2");

static const struct proj_projection ledger_v2 = {
    .name = "ledger",
    .store = PROJ_STORE_LMDB,
    .view = &ledger_v2_ops,
};

struct fixture {
    char dir[64], log_dir[128], view_dir[128];
    struct es_log *log;
    int64_t events; /* appended */
    int64_t folded; /* appended of a type the ledger folds (the rest: NoSuchType poison) */
};

static void append(void *arg, const char *type, const char *stream, int64_t version, json_t *data)
{
    struct fixture *f = arg;
    struct es_event ev;
    const struct es_event *evs[1] = {&ev};
    struct sp_errbuf eb = {{0}, {0}};

    es_event_init(&ev);
    assert_int_equal(es_event_make(&ev, type, stream, version, NULL, NULL, NULL, data), 0);
    assert_int_equal(es_log_append(f->log, evs, 1, NULL, &eb), 0);
    es_event_release(&ev);
    f->events++;
    f->folded += ledger_handles[es_type_of(type)];
}

static int setup(void **state)
{
    struct fixture *f = sp_xcalloc(1, sizeof(*f));
    struct sp_errbuf eb = {{0}, {0}};

    snprintf(f->dir, sizeof(f->dir), "/tmp/proj-view-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->log_dir, sizeof(f->log_dir), "%s/log", f->dir);
    snprintf(f->view_dir, sizeof(f->view_dir), "%s/views/ledger", f->dir);
    assert_int_equal(es_log_open_lmdb(f->log_dir, MAP_SIZE, 1 << 20, ES_LOG_WRITER, &f->log, &eb),
                     0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];

    es_log_close(f->log);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static struct proj_runner *runner_of(struct fixture *f,
                                     const struct proj_projection *proj,
                                     size_t batch_max,
                                     enum proj_poison_policy p)
{
    struct proj_runner_opts opts = {
        .proj = proj,
        .batch_max = batch_max,
        .policy = p,
        .view_dir = f->view_dir,
        .view_map_size_bytes = MAP_SIZE,
    };
    struct proj_runner *r = NULL;
    struct sp_errbuf eb = {{0}, {0}};

    assert_int_equal(proj_runner_new(&opts, f->log, &r, &eb), 0);
    return r;
}

static struct proj_runner *
runner_new(struct fixture *f, size_t batch_max, enum proj_poison_policy p)
{
    return runner_of(f, &ledger, batch_max, p);
}

static struct proj_view *view_open(struct fixture *f, const char *format)
{
    struct proj_view_opts o = {f->view_dir, format, 2, MAP_SIZE};
    struct proj_view *v = NULL;
    struct sp_errbuf eb = {{0}, {0}};

    assert_int_equal(proj_view_open(&o, PROJ_VIEW_READ, &v, &eb), 0);
    return v;
}

/* What a reader sees in @p v: the ledger's total, a stream's count, the checkpoint. */
static void view_read(
    struct proj_view *v, const char *stream, int64_t *total, int64_t *count, int64_t *checkpoint)
{
    MDB_txn *txn;
    MDB_dbi streams, totals;

    assert_int_equal(mdb_txn_begin(proj_view_env(v), NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "streams", 0, &streams), 0);
    assert_int_equal(mdb_dbi_open(txn, "totals", 0, &totals), 0);
    *total = get_count(txn, totals, "events");
    *count = stream != NULL ? get_count(txn, streams, stream) : 0;
    assert_int_equal(proj_view_checkpoint_get(v, txn, 0, checkpoint, NULL), 0);
    mdb_txn_abort(txn);
}

static void test_exactly_once_across_restarts(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r;
    struct proj_view *v;
    int64_t total, count, cp, n;

    pgtest_mixed_events(3, 10, append, f); /* 3 users; 10 recipes, updates and deletes */
    r = runner_new(f, 4, PROJ_POISON_DEAD_LETTER);
    assert_int_equal(proj_runner_step(r, &n, &eb), 0); /* one batch of 4, then "crash" */
    assert_int_equal(n, 4);
    proj_runner_free(r);
    v = view_open(f, LEDGER_FORMAT);
    view_read(v, NULL, &total, &count, &cp);
    assert_int_equal(total, 4);
    assert_int_equal(cp, 4);
    proj_view_close(v);

    r = runner_new(f, 1000, PROJ_POISON_DEAD_LETTER); /* the restart */
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    assert_int_equal(proj_runner_checkpoint(r), f->events);
    proj_runner_free(r);
    v = view_open(f, LEDGER_FORMAT);
    view_read(v, "recipe-7301999999900003", &total, &count, &cp);
    assert_int_equal(total, f->folded);
    assert_int_equal(count, 2); /* recipe 3: created, updated */
    assert_int_equal(cp, f->events);
    proj_view_close(v);
}

static void test_transient_failure_keeps_nothing(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r;
    struct proj_view *v;
    int64_t total, count, cp, n;

    pgtest_mixed_events(2, 3, append, f);
    r = runner_new(f, 100, PROJ_POISON_DEAD_LETTER);
    assert_int_equal(proj_runner_step(r, &n, &eb), 0);
    v = view_open(f, LEDGER_FORMAT);
    view_read(v, "user-7301234567800001", &total, &count, &cp);
    assert_int_equal(total, f->folded);
    assert_int_equal(count, 1);
    assert_int_equal(cp, f->events);
    proj_view_close(v);

    append(f, "UserRegistered", "user-7301234567800099", 1,
           json_pack("{s:s,s:s,s:s,s:s}", "user_id", "7301234567800099", "username", "late",
                     "email", "l@example.com", "password_hash", "$argon2id$v=19$h"));
    fail_transient = 1;
    assert_int_equal(proj_runner_step(r, &n, &eb), SP_EUNAVAIL);
    assert_non_null(strstr(eb.msg, "transient"));
    assert_int_equal(n, 0);
    v = view_open(f, LEDGER_FORMAT);
    view_read(v, "user-7301234567800099", &total, &count, &cp);
    assert_int_equal(count, 0); /* nothing of the failed batch */
    assert_int_equal(total, f->folded - 1);
    assert_int_equal(cp, f->events - 1);
    assert_int_equal(proj_runner_step(r, &n, &eb), 0); /* the retry */
    assert_int_equal(n, 1);
    view_read(v, "user-7301234567800099", &total, &count, &cp);
    assert_int_equal(count, 1);
    assert_int_equal(total, f->folded);
    assert_int_equal(cp, f->events);
    proj_view_close(v);
    proj_runner_free(r);
}

static void test_poison_dead_letter_and_halt(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r;
    struct proj_view *v;
    MDB_txn *txn;
    size_t dead = 0;
    int64_t total, count, cp, n;

    append(f, "RecipeDeleted", "recipe-7301234567890555", 2, json_object()); /* unknown: poison */
    append(f, "NoSuchEvent", "recipe-7301234567890555", 3, json_object());   /* not catalogued */
    pgtest_mixed_events(1, 1, append, f);

    r = runner_new(f, 100, PROJ_POISON_HALT);
    assert_int_equal(proj_runner_step(r, &n, &eb), SP_ESTATE);
    assert_true(proj_runner_halted(r, NULL));
    assert_non_null(strstr(eb.msg, "no recipe"));
    proj_runner_free(r);
    v = view_open(f, LEDGER_FORMAT);
    view_read(v, "recipe-7301234567890555", &total, &count, &cp);
    assert_int_equal(cp, 0); /* halted before it */
    assert_int_equal(count, 0);
    proj_view_close(v);

    r = runner_new(f, 100, PROJ_POISON_DEAD_LETTER);
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    proj_runner_free(r);
    v = view_open(f, LEDGER_FORMAT);
    view_read(v, "recipe-7301234567890555", &total, &count, &cp);
    assert_int_equal(cp, f->events);
    assert_int_equal(count, 0);             /* the poison fold's write was undone */
    assert_int_equal(total, f->folded - 1); /* the RecipeDeleted */
    assert_int_equal(mdb_txn_begin(proj_view_env(v), NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(proj_view_dead_letter_count(v, txn, &dead, &eb), 0);
    mdb_txn_abort(txn);
    assert_int_equal(dead, 3); /* RecipeDeleted, NoSuchEvent, pgtest's NoSuchType */
    proj_view_close(v);
}

static void test_rebuild_swaps_generations(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_batch_stats st;
    struct proj_runner *r;
    struct proj_view *old, *fresh;
    char live_sum[40], rebuilt_sum[40];
    int64_t total, count, cp, n;

    pgtest_mixed_events(4, 20, append, f);
    r = runner_new(f, 7, PROJ_POISON_DEAD_LETTER); /* incremental, in batches of 7 */
    assert_int_equal(proj_runner_catch_up(r, &eb), 0);
    old = view_open(f, LEDGER_FORMAT);
    assert_int_equal(proj_view_checksum(old, live_sum, sizeof(live_sum), &eb), 0);
    assert_string_equal(proj_view_generation(old), "g1");

    assert_int_equal(proj_rebuild_view(&ledger, f->view_dir, MAP_SIZE, f->log, 1000,
                                       PROJ_POISON_DEAD_LETTER, &st, &eb),
                     0);
    assert_int_equal(st.applied, f->folded);
    assert_int_equal(st.dead, 1);
    assert_false(proj_view_is_current(old));
    view_read(old, NULL, &total, &count, &cp); /* the old generation still reads */
    assert_int_equal(total, f->folded);
    fresh = view_open(f, LEDGER_FORMAT);
    assert_string_equal(proj_view_generation(fresh), "g2");
    assert_int_equal(proj_view_checksum(fresh, rebuilt_sum, sizeof(rebuilt_sum), &eb), 0);
    assert_string_equal(live_sum, rebuilt_sum);
    view_read(fresh, NULL, &total, &count, &cp);
    assert_int_equal(cp, f->events);
    proj_view_close(old);

    /* the running projector moves to the new generation at its next batch */
    append(f, "UserRegistered", "user-7301234567800099", 1,
           json_pack("{s:s,s:s,s:s,s:s}", "user_id", "7301234567800099", "username", "late",
                     "email", "l@example.com", "password_hash", "$argon2id$v=19$h"));
    assert_int_equal(proj_runner_step(r, &n, &eb), 0);
    assert_int_equal(n, 1);
    view_read(fresh, NULL, &total, &count, &cp);
    assert_int_equal(total, f->folded);
    assert_int_equal(cp, f->events);
    proj_view_close(fresh);
    proj_runner_free(r);
}

static void test_other_format_refused(void **state)
{
    struct fixture *f = *state;
    struct proj_view_opts o = {f->view_dir, "stockpot-test-ledger/2", 2, MAP_SIZE};
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_batch_stats st;
    struct proj_runner *r;
    struct proj_view *v = NULL;
    int64_t n;

    pgtest_mixed_events(1, 0, append, f);
    r = runner_new(f, 10, PROJ_POISON_DEAD_LETTER);
    assert_int_equal(proj_runner_step(r, &n, &eb), 0);
    proj_runner_free(r);
    assert_int_equal(proj_view_open(&o, PROJ_VIEW_READ, &v, &eb), SP_ESTATE);
    assert_null(v);
    assert_non_null(strstr(eb.msg, "rebuild"));

    /* a projector of the newer format waits, unready but not halted, until a rebuild */
    r = runner_of(f, &ledger_v2, 10, PROJ_POISON_HALT);
    assert_int_equal(proj_runner_step(r, &n, &eb), SP_EUNAVAIL);
    assert_non_null(strstr(eb.msg, "rebuild"));
    assert_false(proj_runner_halted(r, NULL));
    assert_int_equal(proj_rebuild_view(&ledger_v2, f->view_dir, MAP_SIZE, f->log, 100,
                                       PROJ_POISON_DEAD_LETTER, &st, &eb),
                     0);
    assert_int_equal(proj_runner_step(r, &n, &eb), 0);
    assert_int_equal(proj_runner_checkpoint(r), f->events);
    proj_runner_free(r);
    assert_int_equal(proj_view_open(&o, PROJ_VIEW_READ, &v, &eb), 0);
    proj_view_close(v);

    o.dir = "/nonexistent/stockpot-view";
    v = NULL;
    assert_int_equal(proj_view_open(&o, PROJ_VIEW_READ, &v, &eb), SP_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exactly_once_across_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transient_failure_keeps_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poison_dead_letter_and_halt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_swaps_generations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_format_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
