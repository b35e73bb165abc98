/*
 * copy-log: an embedded log of several streams copied into librdkafka's in-process mock
 * cluster (3 brokers, 3 partitions): every id exactly once, streams in order, envelopes
 * byte for byte; reruns and interrupted (--limit) copies copy nothing twice; the errors.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "copy.h"
#include "es/log.h"
#include "replay/replay.h"
#include "sp/config.h"
#include "sp_test_kafka.h"

#include "sp/banned.h"

#define MAP_BYTES     ((size_t)16 << 20)
#define MAX_EVENT     65536
#define PARTS         3
#define TIMEOUT_MS    "8000"
#define N_USERS       4
#define N_RECIPES     6
#define RECIPE_EDITS  5
#define N_EVENTS      (N_USERS + N_RECIPES * (1 + RECIPE_EDITS))
#define READ_CHUNK    500
#define FOREIGN_TOPIC "copy.foreign"

struct fixture {
    char root[64];
    char dir[80];
    struct sp_test_kafka mock;
    struct sp_config *cfg;
    json_t *values; /* event id -> stored envelope (string), from the embedded log */
};

static void
append_one(struct es_log *log, const char *type, const char *stream, int64_t v, json_t *data)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct es_event ev;
    const struct es_event *evs[1] = {&ev};

    es_event_init(&ev);
    assert_int_equal(es_event_make(&ev, type, stream, v, "7301234567890001", "req-ü", NULL, data),
                     0);
    if (v > 1)
        ev.causation_id = strdup("0190f0c2-7d2e-7c5e-9a1b-3c4d5e6f7a8b");
    assert_int_equal(es_log_append(log, evs, 1, NULL, &eb), 0);
    es_event_release(&ev);
}

/* Users and recipes, interleaved, non-ASCII text and real numbers in the payloads. */
static void build_log(struct fixture *f)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct es_log *log = NULL;
    char stream[64], name[64];

    assert_int_equal(es_log_open_lmdb(f->dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    for (int u = 0; u < N_USERS; u++) {
        snprintf(stream, sizeof(stream), "user-73012345678900%02d", u);
        snprintf(name, sizeof(name), "josé-李-%d", u);
        append_one(log, "UserRegistered", stream, 1,
                   json_pack("{s:s,s:s}", "username", name, "email", "j@example.com"));
    }
    for (int e = 0; e <= RECIPE_EDITS; e++) {
        for (int r = 0; r < N_RECIPES; r++) {
            snprintf(stream, sizeof(stream), "recipe-73012345678901%02d", r);
            append_one(log, e == 0 ? "RecipeCreated" : "RecipeUpdated", stream, e + 1,
                       json_pack("{s:s,s:f,s:[s,s]}", "title", "Crème brûlée 焦糖布丁 🍮",
                                 "servings", 0.1 * (e + 1), "tags", "dessert", "甜点"));
        }
    }
    es_log_close(log);
}

static int stored_value(const struct es_log_record *rec, void *ud)
{
    struct fixture *f = ud;
    struct sp_errbuf eb = {{0}, {0}};
    struct es_event ev;

    es_event_init(&ev);
    assert_int_equal(es_log_record_decode(rec, &ev, &eb), 0);
    json_object_set_new(f->values, ev.id, json_stringn(rec->value, rec->value_len));
    es_event_release(&ev);
    return 0;
}

static void load_values(struct fixture *f)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct es_log *log = NULL;
    int64_t next;

    assert_int_equal(es_log_open_lmdb(f->dir, MAP_BYTES, MAX_EVENT, ES_LOG_READER, &log, &eb), 0);
    assert_int_equal(es_log_read(log, 0, 0, 100000, stored_value, f, &next, &eb), 0);
    assert_int_equal(next, N_EVENTS);
    es_log_close(log);
    assert_int_equal(json_object_size(f->values), N_EVENTS);
}

static void config_set(struct sp_config *cfg, const char *key, const char *value)
{
    struct sp_errbuf eb = {{0}, {0}};
    assert_int_equal(sp_config_set(cfg, key, value, &eb), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct sp_errbuf eb = {{0}, {0}};
    assert_non_null(f);
    snprintf(f->root, sizeof(f->root), "/tmp/sp-copy-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->dir, sizeof(f->dir), "%s/log", f->root);
    assert_int_equal(sp_test_kafka_start(&f->mock, 3, NULL, 0), 0);
    assert_int_equal(sp_config_load(&f->cfg, NULL, &eb), 0);
    config_set(f->cfg, "log.dir", f->dir);
    config_set(f->cfg, "kafka.brokers", f->mock.brokers);
    config_set(f->cfg, "kafka.partitions", "3");
    config_set(f->cfg, "kafka.replication_factor", "3");
    config_set(f->cfg, "kafka.timeout_ms", TIMEOUT_MS);
    f->values = json_object();
    build_log(f);
    load_values(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    static const char *const files[] = {"data.mdb", "lock.mdb", "writer.lock"};
    struct fixture *f = *state;
    char path[128];

    sp_config_free(f->cfg);
    json_decref(f->values);
    sp_test_kafka_stop(&f->mock);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
        assert_int_equal(unlink(path), 0);
    }
    assert_int_equal(rmdir(f->dir), 0);
    assert_int_equal(rmdir(f->root), 0);
    free(f);
    return 0;
}

/* The 2.0.2 mock has no CreateTopics: create each test's topic as an operator would. */
static void use_topic(struct fixture *f, const char *topic)
{
    assert_int_equal(rd_kafka_mock_topic_create(f->mock.mc, topic, PARTS, 3), 0);
    config_set(f->cfg, "kafka.topic", topic);
}

static int copy(struct fixture *f, size_t batch, int64_t limit, struct replay__copy_stats *st)
{
    struct replay__copy_opts opts = {batch, limit, false, false};
    struct sp_errbuf eb = {{0}, {0}};
    int rc = replay__copy_log(f->cfg, &opts, st, &eb);

    if (rc != 0)
        print_message("copy-log: %s\n", eb.msg);
    return rc;
}

struct topic_scan {
    struct fixture *f;
    json_t *ids;     /* id -> times seen */
    json_t *streams; /* stream -> [partition, last version] */
    int64_t records;
};

static int check_record(const struct es_log_record *rec, void *ud)
{
    struct topic_scan *s = ud;
    struct sp_errbuf eb = {{0}, {0}};
    struct es_event ev;
    json_t *want, *seen, *st;

    es_event_init(&ev);
    assert_int_equal(rec->status, 0);
    assert_int_equal(es_log_record_decode(rec, &ev, &eb), 0);
    s->records++;
    want = json_object_get(s->f->values, ev.id);
    assert_non_null(want); /* an event of the embedded log ... */
    assert_int_equal(json_string_length(want), rec->value_len);
    assert_memory_equal(json_string_value(want), rec->value, rec->value_len); /* byte for byte */
    seen = json_object_get(s->ids, ev.id);
    assert_null(seen); /* ... exactly once */
    json_object_set_new(s->ids, ev.id, json_true());
    st = json_object_get(s->streams, ev.stream);
    if (st == NULL) {
        assert_int_equal(ev.stream_version, 1);
    } else {
        /* one partition per stream, versions in offset order */
        assert_int_equal(json_integer_value(json_array_get(st, 0)), rec->pos.partition);
        assert_int_equal(ev.stream_version, json_integer_value(json_array_get(st, 1)) + 1);
    }
    json_object_set_new(
        s->streams, ev.stream,
        json_pack("[I,I]", (json_int_t)rec->pos.partition, (json_int_t)ev.stream_version));
    es_event_release(&ev);
    return 0;
}

/* Read the whole topic: every record an embedded event, once, streams in order. */
static int64_t check_topic(struct fixture *f, int *streams_out)
{
    struct topic_scan s = {f, json_object(), json_object(), 0};
    struct sp_errbuf eb = {{0}, {0}};
    struct es_kafka_opts ko = {
        f->mock.brokers, sp_config_str(f->cfg, "kafka.topic"), PARTS, 3, "copy-log-check", 8000,
        MAX_EVENT};
    struct es_log *log = NULL;
    int used = 0;

    assert_int_equal(es_log_open_kafka(&ko, ES_LOG_READER, &log, &eb), 0);
    assert_int_equal(es_log_partitions(log), PARTS);
    for (int32_t p = 0; p < PARTS; p++) {
        int64_t end, next, before = s.records;
        assert_int_equal(es_log_end(log, p, &end, &eb), 0);
        for (int64_t off = 0; off < end; off = next) {
            assert_int_equal(es_log_read(log, p, off, READ_CHUNK, check_record, &s, &next, &eb), 0);
            if (next == off)
                break;
        }
        used += s.records > before;
    }
    es_log_close(log);
    if (streams_out != NULL)
        *streams_out = (int)json_object_size(s.streams);
    if (s.records > 0)
        assert_true(used >= 2); /* the streams are spread over the partitions */
    json_decref(s.ids);
    json_decref(s.streams);
    return s.records;
}

static void test_copy_and_rerun(void **state)
{
    struct fixture *f = *state;
    struct replay__copy_stats st;
    int streams = 0;

    use_topic(f, "copy.all");
    assert_int_equal(copy(f, 7, -1, &st), 0);
    assert_int_equal(st.end, N_EVENTS);
    assert_int_equal(st.present, 0);
    assert_int_equal(st.read, N_EVENTS);
    assert_int_equal(st.copied, N_EVENTS);
    assert_int_equal(st.skipped, 0);
    assert_int_equal(st.foreign, 0);
    assert_int_equal(check_topic(f, &streams), N_EVENTS);
    assert_int_equal(streams, N_USERS + N_RECIPES);

    /* a rerun copies nothing */
    assert_int_equal(copy(f, 500, -1, &st), 0);
    assert_int_equal(st.present, N_EVENTS);
    assert_int_equal(st.read, N_EVENTS);
    assert_int_equal(st.copied, 0);
    assert_int_equal(st.skipped, N_EVENTS);
    assert_int_equal(st.foreign, 0);
    assert_int_equal(check_topic(f, NULL), N_EVENTS);
}

static void test_interrupted_copy(void **state)
{
    struct fixture *f = *state;
    struct replay__copy_stats st;

    use_topic(f, "copy.limit");
    assert_int_equal(copy(f, 4, 0, &st), 0);
    assert_int_equal(st.copied, 0);
    assert_int_equal(st.read, 0);
    assert_int_equal(copy(f, 4, 10, &st), 0);
    assert_int_equal(st.copied, 10);
    assert_int_equal(st.read, 10);
    assert_int_equal(check_topic(f, NULL), 10);
    assert_int_equal(copy(f, 3, 5, &st), 0);
    assert_int_equal(st.present, 10);
    assert_int_equal(st.skipped, 10);
    assert_int_equal(st.copied, 5);
    assert_int_equal(copy(f, 1000, -1, &st), 0);
    assert_int_equal(st.present, 15);
    assert_int_equal(st.skipped, 15);
    assert_int_equal(st.copied, N_EVENTS - 15);
    assert_int_equal(st.read, N_EVENTS);
    assert_int_equal(check_topic(f, NULL), N_EVENTS);
}

/* An event in the topic that the embedded log does not hold is counted, not copied. */
static void test_foreign_event(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct es_kafka_opts ko = {f->mock.brokers,        FOREIGN_TOPIC, PARTS,    3,
                               "stockpot-command-api", 8000,          MAX_EVENT};
    struct replay__copy_stats st;
    struct es_log *log = NULL;
    struct es_event ev;
    const struct es_event *evs[1] = {&ev};

    use_topic(f, FOREIGN_TOPIC);
    assert_int_equal(es_log_open_kafka(&ko, ES_LOG_WRITER, &log, &eb), 0);
    es_event_init(&ev);
    assert_int_equal(
        es_event_make(&ev, "UserRegistered", "user-99", 1, NULL, NULL, NULL, json_object()), 0);
    assert_int_equal(es_log_append(log, evs, 1, NULL, &eb), 0);
    es_event_release(&ev);
    /* the copy's own transactional.id does not fence this writer */
    assert_int_equal(copy(f, 50, -1, &st), 0);
    assert_int_equal(st.present, 1);
    assert_int_equal(st.foreign, 1);
    assert_int_equal(st.copied, N_EVENTS);
    es_event_init(&ev);
    assert_int_equal(
        es_event_make(&ev, "UserRegistered", "user-98", 1, NULL, NULL, NULL, json_object()), 0);
    assert_int_equal(es_log_append(log, evs, 1, NULL, &eb), 0);
    es_event_release(&ev);
    es_log_close(log);
}

static void test_errors(void **state)
{
    struct fixture *f = *state;
    struct replay__copy_opts opts = {10, -1, false, false};
    struct sp_errbuf eb = {{0}, {0}};
    struct replay__copy_stats st;
    struct es_log *log = NULL;
    char missing[128];

    use_topic(f, "copy.errors");
    /* no embedded log */
    snprintf(missing, sizeof(missing), "%s/nothing-here", f->root);
    config_set(f->cfg, "log.dir", missing);
    assert_int_equal(replay__copy_log(f->cfg, &opts, &st, &eb), SP_ENOTFOUND);
    assert_non_null(strstr(eb.msg, "no log in"));
    config_set(f->cfg, "log.dir", f->dir);

    /* a running writer */
    assert_int_equal(es_log_open_lmdb(f->dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(replay__copy_log(f->cfg, &opts, &st, &eb), SP_ESTATE);
    assert_non_null(strstr(eb.msg, "stop command-api"));
    es_log_close(log);

    /* unreachable brokers */
    config_set(f->cfg, "kafka.brokers", "127.0.0.1:1");
    config_set(f->cfg, "kafka.timeout_ms", "1000");
    assert_int_equal(replay__copy_log(f->cfg, &opts, &st, &eb), SP_EUNAVAIL);
    assert_int_equal(st.copied, 0);
    config_set(f->cfg, "kafka.brokers", f->mock.brokers);
    config_set(f->cfg, "kafka.timeout_ms", TIMEOUT_MS);
    assert_int_equal(check_topic(f, NULL), 0);
}

/* replay_cmd_copy_log on a copy of @p args (its argv is not const). */
static int cli(struct fixture *f, int argc, const char *const *args)
{
    char *argv[8];
    int rc;

    for (int i = 0; i < argc; i++)
        argv[i] = strdup(args[i]);
    rc = replay_cmd_copy_log(f->cfg, argc, argv);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    return rc;
}

static void test_cli(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(cli(f, 2, (const char *[]){"--to", "s3"}), REPLAY_EXIT_USAGE);
    assert_int_equal(cli(f, 2, (const char *[]){"--limit", "3"}), REPLAY_EXIT_USAGE);
    assert_int_equal(cli(f, 4, (const char *[]){"--to", "kafka", "--batch", "0"}),
                     REPLAY_EXIT_USAGE);
    assert_int_equal(cli(f, 1, (const char *[]){"--help"}), REPLAY_EXIT_OK);
    /* the whole command: copies, prints its summary, exit status 0 */
    use_topic(f, "copy.cli");
    assert_int_equal(cli(f, 4, (const char *[]){"--to", "kafka", "--batch", "9"}), REPLAY_EXIT_OK);
    assert_int_equal(check_topic(f, NULL), N_EVENTS);
    config_set(f->cfg, "log.dir", "/nonexistent/log");
    assert_int_equal(cli(f, 2, (const char *[]){"--to", "kafka"}), REPLAY_EXIT_FAIL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_and_rerun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
