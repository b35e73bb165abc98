/*
 * Integration tests of the projection runner on Kafka (librdkafka's in-process mock
 * cluster: 3 brokers, a 3-partition topic of replication factor 3) against PostgreSQL
 * (run under pg_virtualenv): the same view as from the embedded log; runners of one
 * consumer group split the partitions and take over from the stored checkpoints; broker
 * restarts and leader changes; rebuilds from Kafka; the daemon stops on SIGTERM with every
 * broker down. Volumes stay small: the 2.0.2 mock serves consumers slowly.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "es/log.h"
#include "pgtest.h"
#include "proj/pg.h"
#include "proj/runner.h"
#include "sp/config.h"
#include "sp/time.h"
#include "sp_test_http.h"
#include "sp_test_kafka.h"

#include "sp/banned.h"

#define TOPIC      "stockpot.events.projtest"
#define PARTS      3
#define TIMEOUT_MS 5000
#define USERS      8
#define RECIPES    30
#define N_EVENTS   (USERS + RECIPES + RECIPES / 3 + RECIPES / 5 + 1)
#define WAIT_MS    60000 /* bound on one catch-up */

struct events {
    struct es_event ev[N_EVENTS];
    size_t n;
};

struct fixture {
    struct sp_test_kafka mock;
    struct es_log *kafka;  /* writer on the topic */
    struct sp_config *cfg; /* log.backend = kafka on the mock */
    struct events *evs;    /* owned; appended to the topic */
    char reference[40];    /* checksum of the view from the embedded log */
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A pgtest_emit_fn: appends to the struct events @p arg. */
static void add(void *arg, const char *type, const char *stream, int64_t v, json_t *data)
{
    struct events *e = arg;

    es_event_init(&e->ev[e->n]);
    assert_int_equal(es_event_make(&e->ev[e->n], type, stream, v, NULL, NULL, NULL, data), 0);
    e->n++;
}

/* Users, recipes (some updated, some deleted) and one poison event, interleaved. */
static struct events *events_new(void)
{
    struct events *e = calloc(1, sizeof(*e));

    assert_non_null(e);
    pgtest_mixed_events(USERS, RECIPES, add, e);
    assert_int_equal(e->n, N_EVENTS);
    return e;
}

static void events_free(struct events *e)
{
    for (size_t i = 0; e != NULL && i < e->n; i++)
        es_event_release(&e->ev[i]);
    free(e);
}

/* Append events [from, to) to @p log in batches of 4 (one transaction each on Kafka),
 * retrying a batch that failed. */
static void append_range(struct es_log *log, const struct events *e, size_t from, size_t to)
{
    struct sp_errbuf eb = {{0}, {0}};
    const struct es_event *batch[4];

    while (from < to) {
        size_t n = 0;
        while (n < 4 && from < to)
            batch[n++] = &e->ev[from++];
        int rc = -1;
        /* right after a broker restart a transaction may time out: it is aborted whole
         * (nothing visible), so appending it again is safe */
        for (int i = 0; i < 20 && rc != 0; i++) {
            if (i > 0)
                sleep_ms(500);
            rc = es_log_append(log, batch, n, NULL, &eb);
        }
        if (rc != 0)
            fail_msg("append failed: %s", eb.msg);
    }
}

/* The same events, folded from the embedded log by a log-mode runner: the reference. */
static void reference_checksum(struct fixture *f)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct pgtest t;

    pgtest_setup(&t);
    append_range(t.log, f->evs, 0, f->evs->n);
    pgtest_catch_up(&t, 5);
    assert_int_equal(
        proj_checksum(t.conn, proj_pg_projection(), f->reference, sizeof(f->reference), &eb), 0);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.dead_letters"), 1);
    pgtest_teardown(&t);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct sp_errbuf eb = {{0}, {0}};
    struct es_kafka_opts ko = {NULL, TOPIC, PARTS, 3, "proj-test-writer", TIMEOUT_MS, 1u << 20};

    assert_non_null(f);
    assert_int_equal(sp_test_kafka_start(&f->mock, 3, TOPIC, PARTS), 0);
    ko.brokers = f->mock.brokers;
    if (es_log_open_kafka(&ko, ES_LOG_WRITER, &f->kafka, &eb) != 0)
        fail_msg("kafka writer: %s", eb.msg);
    setenv("STOCKPOT_LOG_BACKEND", "kafka", 1);
    setenv("STOCKPOT_KAFKA_BROKERS", f->mock.brokers, 1);
    setenv("STOCKPOT_KAFKA_TOPIC", TOPIC, 1);
    setenv("STOCKPOT_KAFKA_TIMEOUT_MS", "5000", 1);
    assert_int_equal(sp_config_load(&f->cfg, NULL, &eb), 0);
    f->evs = events_new();
    reference_checksum(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    sp_config_free(f->cfg);
    es_log_close(f->kafka);
    events_free(f->evs);
    sp_test_kafka_stop(&f->mock);
    free(f);
    return 0;
}

/* A consumer-mode runner of "pg" on the mock; batch sizes as proj_runner_opts has them. */
static struct proj_runner *sized_runner(
    struct fixture *f, const struct pgtest *t, size_t batch_max, size_t catchup, int linger)
{
    struct proj_runner_opts opts = {
        .proj = proj_pg_projection(),
        .conninfo = t->conninfo,
        .batch_max = batch_max,
        .catchup_batch_max = catchup,
        .batch_linger_ms = linger,
        .policy = PROJ_POISON_DEAD_LETTER,
    };
    struct proj_consumer_opts copts = {100, 4000, 300};
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r = NULL;

    assert_int_equal(proj_runner_new_consumer(&opts, &copts, f->cfg, &r, &eb), 0);
    return r;
}

static struct proj_runner *runner(struct fixture *f, const struct pgtest *t, size_t batch_max)
{
    return sized_runner(f, t, batch_max, 0, 0);
}

/* Step runners @p rs[0..n) in turn until they applied @p want records in all (counted in
 * *total), failing after WAIT_MS. Tolerates transient errors (a broker down). */
static void step_until(struct proj_runner **rs, size_t n, int64_t *total, int64_t want)
{
    int64_t deadline_us = sp_time_mono_us() + (int64_t)WAIT_MS * 1000, k;
    struct sp_errbuf eb = {{0}, {0}};

    while (*total < want) {
        for (size_t i = 0; i < n; i++) {
            int rc = proj_runner_step(rs[i], &k, &eb);
            assert_int_not_equal(rc, SP_ESTATE);
            if (rc != 0)
                sleep_ms(50); /* transient: retried */
            *total += rc == 0 ? k : 0;
        }
        if (sp_time_mono_us() > deadline_us)
            fail_msg("only %lld of %lld records applied within %d ms", (long long)*total,
                     (long long)want, WAIT_MS);
    }
}

/* Step a while longer: nothing more may be applied (nothing doubled). */
static void step_idle(struct proj_runner **rs, size_t n, int ms)
{
    int64_t until_us = sp_time_mono_us() + (int64_t)ms * 1000, k;
    struct sp_errbuf eb = {{0}, {0}};

    while (sp_time_mono_us() < until_us) {
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(proj_runner_step(rs[i], &k, &eb), 0);
            assert_int_equal(k, 0);
        }
    }
}

/* The view equals the reference, with the one dead letter, and checkpoints of every
 * partition. */
static void assert_view(const struct fixture *f, PGconn *conn)
{
    struct sp_errbuf eb = {{0}, {0}};
    char sum[40];

    assert_int_equal(proj_checksum(conn, proj_pg_projection(), sum, sizeof(sum), &eb), 0);
    assert_string_equal(sum, f->reference);
    assert_int_equal(pgtest_count(conn, "SELECT count(*) FROM stockpot.dead_letters"), 1);
    assert_int_equal(pgtest_count(conn, "SELECT count(*) FROM stockpot.checkpoints "
                                        "WHERE projection = 'pg'"),
                     PARTS);
}

/* Same events on a 3-partition topic: the same view as from the embedded log. */
static void test_same_view_as_lmdb(void **state)
{
    struct fixture *f = *state;
    struct proj_runner *r;
    struct pgtest t;
    int64_t total = 0;
    int32_t parts[PARTS + 1];

    pgtest_setup_db(&t);
    append_range(f->kafka, f->evs, 0, f->evs->n);
    r = runner(f, &t, 7);
    step_until(&r, 1, &total, N_EVENTS);
    assert_int_equal(total, N_EVENTS);
    step_idle(&r, 1, 300);
    assert_int_equal(proj_runner_assignment(r, parts, PARTS + 1), PARTS);
    for (int32_t p = 0; p < PARTS; p++)
        assert_int_equal(parts[p], p);
    for (int32_t p = 0; p < PARTS; p++) {
        int64_t end;
        struct sp_errbuf eb = {{0}, {0}};
        assert_int_equal(es_log_end(f->kafka, p, &end, &eb), 0);
        proj_runner_set_end(r, p, end);
    }
    /* offsets, not events: a real broker's last commit marker counts, the mock has none */
    assert_in_range(proj_runner_lag(r), 0, PARTS);
    assert_view(f, t.conn);
    proj_runner_free(r);
    pgtest_teardown(&t);
}

/* Consumer mode: after a full poll of batch_max the next takes up to catchup_batch_max. */
static void test_catchup_batches(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r;
    struct pgtest t;
    int64_t total = 0, k, largest = 0;
    int64_t deadline_us = sp_time_mono_us() + (int64_t)WAIT_MS * 1000;

    pgtest_setup_db(&t);
    append_range(f->kafka, f->evs, 0, f->evs->n);
    r = sized_runner(f, &t, 4, 40, 0);
    while (total < N_EVENTS && sp_time_mono_us() < deadline_us) {
        if (proj_runner_step(r, &k, &eb) != 0)
            fail_msg("step: %s", eb.msg);
        total += k;
        largest = k > largest ? k : largest;
    }
    assert_int_equal(total, N_EVENTS);
    assert_in_range(largest, 5, 40);
    assert_view(f, t.conn);
    proj_runner_free(r);
    pgtest_teardown(&t);
}

static void *append_all(void *arg)
{
    struct fixture *f = arg;
    sleep_ms(300);
    append_range(f->kafka, f->evs, 0, f->evs->n);
    return NULL;
}

/* Consumer mode: a live step with a linger polls until its batch is full. */
static void test_batch_linger(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r;
    struct pgtest t;
    pthread_t tid;
    int64_t k = 0;
    int64_t deadline_us = sp_time_mono_us() + (int64_t)WAIT_MS * 1000;

    pgtest_setup_db(&t);
    r = sized_runner(f, &t, N_EVENTS, 0, 20000);
    assert_int_equal(pthread_create(&tid, NULL, append_all, f), 0);
    /* the appends come in transactions of 4 events: the first step that finds any waits
     * for the rest */
    while (k == 0 && sp_time_mono_us() < deadline_us) {
        if (proj_runner_step(r, &k, &eb) != 0)
            fail_msg("step: %s", eb.msg);
    }
    assert_int_equal(pthread_join(tid, NULL), 0);
    assert_int_equal(k, N_EVENTS);
    assert_view(f, t.conn);
    proj_runner_free(r);
    pgtest_teardown(&t);
}

/* A rebuild from Kafka gives the same view, with one checkpoint per partition at its end;
 * a consumer behind it finds its checkpoints moved and applies nothing twice. */
static void test_rebuild_from_kafka(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_batch_stats st;
    struct proj_runner *r;
    struct pgtest t;
    int64_t total = 0, end;
    char sql[128];

    pgtest_setup_db(&t);
    append_range(f->kafka, f->evs, 0, f->evs->n);
    r = runner(f, &t, 3);
    step_until(&r, 1, &total, N_EVENTS / 3);
    assert_true(total < N_EVENTS);
    assert_int_equal(proj_rebuild(t.conn, proj_pg_projection(), f->kafka, 10,
                                  PROJ_POISON_DEAD_LETTER, false, &st, &eb),
                     0);
    assert_int_equal(st.applied + st.dead, N_EVENTS);
    assert_view(f, t.conn);
    for (int32_t p = 0; p < PARTS; p++) {
        assert_int_equal(es_log_end(f->kafka, p, &end, &eb), 0);
        snprintf(sql, sizeof(sql),
                 "SELECT next_offset FROM stockpot.checkpoints WHERE projection = 'pg' "
                 "AND partition = %d",
                 (int)p);
        assert_int_equal(pgtest_count(t.conn, sql), end); /* past the commit markers */
    }
    step_idle(&r, 1, 1000); /* re-reads from the rebuild's checkpoints: nothing left */
    assert_view(f, t.conn);
    proj_runner_free(r);
    pgtest_teardown(&t);
}

/* Wait until each runner has some partitions, the group having settled. */
static void wait_split(struct proj_runner **rs, size_t n)
{
    int64_t deadline_us = sp_time_mono_us() + (int64_t)WAIT_MS * 1000, k;
    struct sp_errbuf eb = {{0}, {0}};
    int32_t parts[PARTS + 1];
    bool all;

    do {
        all = true;
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(proj_runner_step(rs[i], &k, &eb), 0);
            all = all && proj_runner_assignment(rs[i], parts, PARTS + 1) > 0;
        }
        if (sp_time_mono_us() > deadline_us)
            fail_msg("the group did not split the partitions within %d ms", WAIT_MS);
    } while (!all);
}

/* Two runners of one projection (one consumer group) split the partitions, apply every
 * event exactly once and give the single runner's view; then one stops mid-stream and
 * the other takes its partitions over from the stored checkpoints. */
static void test_group_split_and_takeover(void **state)
{
    struct fixture *f = *state;
    struct proj_runner *rs[2];
    struct pgtest t;
    int32_t a[PARTS + 1], b[PARTS + 1];
    size_t na, nb;
    int64_t total = 0;

    pgtest_setup_db(&t);
    rs[0] = runner(f, &t, 3);
    rs[1] = runner(f, &t, 3);
    wait_split(rs, 2);
    na = proj_runner_assignment(rs[0], a, PARTS + 1);
    nb = proj_runner_assignment(rs[1], b, PARTS + 1);
    assert_int_equal(na + nb, PARTS);
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            assert_int_not_equal(a[i], b[j]);

    append_range(f->kafka, f->evs, 0, f->evs->n);
    step_until(rs, 2, &total, N_EVENTS / 3); /* mid-stream */
    assert_true(total < N_EVENTS);
    proj_runner_free(rs[1]); /* leaves the group: its partitions go to rs[0] */
    step_until(rs, 1, &total, N_EVENTS);
    assert_int_equal(total, N_EVENTS); /* nothing doubled */
    step_idle(rs, 1, 300);
    assert_int_equal(proj_runner_assignment(rs[0], a, PARTS + 1), PARTS);
    assert_view(f, t.conn);
    proj_runner_free(rs[0]);
    pgtest_teardown(&t);
}

/* Rebuild into @p t as the replay tool does: a new reader handle (fresh metadata), retried
 * while the cluster settles (a rebuild that fails rolls back whole). */
static void rebuild_fresh(struct fixture *f, struct pgtest *t, struct proj_batch_stats *st)
{
    struct es_kafka_opts ko = {f->mock.brokers, TOPIC, PARTS, 3, "unused", TIMEOUT_MS, 1u << 20};
    struct sp_errbuf eb = {{0}, {0}};
    struct es_log *log = NULL;
    int rc = -1;

    for (int i = 0; i < 10 && rc != 0; i++) {
        if (i > 0)
            sleep_ms(500);
        rc = es_log_open_kafka(&ko, ES_LOG_READER, &log, &eb);
        if (rc == 0)
            rc = proj_rebuild(t->conn, proj_pg_projection(), log, 50, PROJ_POISON_DEAD_LETTER,
                              false, st, &eb);
        es_log_close(log);
        log = NULL;
        if (rc != 0)
            fprintf(stderr, "rebuild attempt %d: %s\n", i + 1, eb.msg);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(st->applied + st->dead, N_EVENTS);
}

/* A broker restart and partition leader changes mid-stream: the projection keeps going and
 * ends equal to a clean rebuild. */
static void test_broker_restart_and_leader_change(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_batch_stats st;
    struct proj_runner *r;
    struct pgtest t, clean;
    int64_t total = 0, k, until_us;
    char sum[40], rebuilt[40];
    size_t third = N_EVENTS / 3;

    pgtest_setup_db(&t);
    r = runner(f, &t, 4);
    append_range(f->kafka, f->evs, 0, third);
    step_until(&r, 1, &total, 5);

    assert_int_equal(rd_kafka_mock_broker_set_down(f->mock.mc, 1), 0);
    until_us = sp_time_mono_us() + 2000 * 1000;
    while (sp_time_mono_us() < until_us) { /* keeps going on what it can reach */
        if (proj_runner_step(r, &k, &eb) == 0)
            total += k;
        else
            assert_int_not_equal(proj_runner_halted(r, NULL), true);
    }
    assert_int_equal(rd_kafka_mock_broker_set_up(f->mock.mc, 1), 0);
    append_range(f->kafka, f->evs, third, 2 * third);
    step_until(&r, 1, &total, (int64_t)third + 3);

    for (int32_t p = 0; p < PARTS; p++) /* every leader moves */
        assert_int_equal(rd_kafka_mock_partition_set_leader(f->mock.mc, TOPIC, p, 1 + (p + 1) % 3),
                         0);
    append_range(f->kafka, f->evs, 2 * third, f->evs->n);
    step_until(&r, 1, &total, N_EVENTS);
    assert_int_equal(total, N_EVENTS);
    assert_view(f, t.conn);

    pgtest_setup_db(&clean);
    rebuild_fresh(f, &clean, &st);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), sum, sizeof(sum), &eb), 0);
    assert_int_equal(proj_checksum(clean.conn, proj_pg_projection(), rebuilt, sizeof(rebuilt), &eb),
                     0);
    assert_string_equal(sum, rebuilt);
    proj_runner_free(r);
    pgtest_teardown(&clean);
    pgtest_teardown(&t);
}

/* GET @p path until it answers @p want (or 30 s pass); returns the last status. */
static int get_until(int port, const char *path, int want)
{
    struct sp_test_resp resp;
    int status = 0;

    for (int i = 0; i < 600 && status != want; i++) {
        if (i > 0)
            sleep_ms(50);
        memset(&resp, 0, sizeof(resp));
        status = sp_test_http(port, "GET", path, NULL, NULL, &resp);
        sp_test_resp_release(&resp);
    }
    return status;
}

/* The daemon on Kafka: applies the events, then with every broker down exits on SIGTERM
 * within 3 s, with status 0. */
static void test_daemon_sigterm_brokers_down(void **state)
{
    struct fixture *f = *state;
    const char *bin = getenv("SP_BINARY_DIR");
    char path[512], port_s[16];
    int port = 20000 + (int)((getpid() + 7) % 20000), status = -1;
    int64_t t0_us;
    struct pgtest t;
    pid_t pid;

    pgtest_setup_db(&t);
    append_range(f->kafka, f->evs, 0, f->evs->n);
    snprintf(path, sizeof(path), "%s/bin/stockpot-projector", bin ? bin : "..");
    snprintf(port_s, sizeof(port_s), "%d", port);
    setenv("STOCKPOT_PG_CONNINFO", t.conninfo, 1);
    setenv("STOCKPOT_PROJECTOR_PORT", port_s, 1);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(get_until(port, "/readyz", 200), 200);
    for (int i = 0; i < 600; i++) {
        if (pgtest_count(t.conn, "SELECT count(*) FROM stockpot.recipes") > 0)
            break;
        sleep_ms(50);
    }
    assert_true(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users") > 0);
    for (int b = 1; b <= 3; b++)
        assert_int_equal(rd_kafka_mock_broker_set_down(f->mock.mc, b), 0);
    sleep_ms(1500); /* let the daemon notice: its calls now time out */
    t0_us = sp_time_mono_us();
    assert_int_equal(kill(pid, SIGTERM), 0);
    while (waitpid(pid, &status, WNOHANG) == 0 && sp_time_mono_us() - t0_us < 10000 * 1000)
        sleep_ms(20);
    if (sp_time_mono_us() - t0_us >= 10000 * 1000) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the daemon did not exit within 10 s of SIGTERM");
    }
    fprintf(stderr, "daemon exited %.2f s after SIGTERM\n",
            (double)(sp_time_mono_us() - t0_us) / 1e6);
    assert_true(sp_time_mono_us() - t0_us < 3000 * 1000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    for (int b = 1; b <= 3; b++)
        assert_int_equal(rd_kafka_mock_broker_set_up(f->mock.mc, b), 0);
    pgtest_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_view_as_lmdb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_from_kafka, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catchup_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_linger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_split_and_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_restart_and_leader_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_sigterm_brokers_down, setup, teardown),
    };
    if (getenv("PROJ_TEST_FILTER") != NULL) /* e.g. "*sigterm*" */
        cmocka_set_test_filter(getenv("PROJ_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
