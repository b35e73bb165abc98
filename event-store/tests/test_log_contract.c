/*
 * The event log contract, one suite run against every backend: the embedded LMDB log in a
 * temporary directory and Kafka on librdkafka's in-process mock cluster (rdkafka_mock.h,
 * 3 brokers, topic with replication factor 3). Order per stream; positions increase;
 * everything survives close and reopen; a batch is all or nothing for readers; a consumer
 * resumes from its stored checkpoint and sees each event once; a bad checksum is rejected
 * with a clear error. Kafka only: fencing and retried broker errors.
 *
 * Mock limits (librdkafka 2.0.2): it writes no transaction markers, so records of a
 * transaction aborted after they reached the broker stay visible; the abort test therefore
 * fails the Produce request itself. It does not enforce producer epochs, so fencing is
 * driven by injecting the broker's answer. It serves consumers slowly: volumes are small.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <lmdb.h>

#include "es/checksum.h"
#include "es/consumer.h"
#include "es/log.h"
#include "sp/config.h"
#include "sp/time.h"
#include "sp_test_kafka.h"

#include "sp/banned.h"

#define MAX_EVENT     4096
#define MAP_BYTES     ((size_t)16 << 20)
#define KAFKA_PARTS   3
#define KAFKA_TOPIC   "contract.events"
#define KAFKA_TIMEOUT 8000
#define MAX_SEEN      256

struct fixture;

/* One log backend under test. */
struct backend {
    const char *name;
    int (*setup)(struct fixture *f);
    void (*teardown)(struct fixture *f);
    int (*open)(struct fixture *f,
                enum es_log_mode mode,
                struct es_log **log,
                struct sp_errbuf *eb);
    /* store one record of stream "corrupt-1" whose checksum does not match its value */
    void (*corrupt)(struct fixture *f);
    int (*consumer_open)(struct fixture *f,
                         const struct es_consumer_opts *opts,
                         struct es_consumer **c,
                         struct sp_errbuf *eb);
};

struct fixture {
    const struct backend *be;
    char *dir;                 /* lmdb: log directory */
    struct sp_test_kafka mock; /* kafka: the mock cluster */
};

/* One record as a reader saw it. */
struct seen {
    struct es_position pos;
    char id[ES_UUID_STR_LEN + 1];
    char stream[32];
    int64_t version;
    int status;
    char error[200];
};

struct seen_list {
    struct seen v[MAX_SEEN];
    size_t n;
};

/* ---- events ---- */

static void make_event(struct es_event *ev, const char *stream, int64_t version, size_t pad)
{
    char *text = calloc(1, pad + 1);

    assert_non_null(text);
    memset(text, 'x', pad);
    es_event_init(ev);
    assert_int_equal(es_event_make(ev, "RecipeUpdated", stream, version, "42", NULL, NULL,
                                   json_pack("{s:s, s:I, s:s}", "title", "crème brûlée", "n",
                                             (json_int_t)version, "description", text)),
                     0);
    free(text);
}

/*
 * Append one batch: event i goes to streams[i] with version versions[i]; ids copied into
 * @p ids (may be NULL); @p pad_last pads the last event's payload (to make it too big).
 */
static int append(struct es_log *log,
                  const char *const *streams,
                  const int64_t *versions,
                  size_t n,
                  size_t pad_last,
                  struct es_position *pos,
                  char (*ids)[ES_UUID_STR_LEN + 1],
                  struct sp_errbuf *eb)
{
    struct es_event evs[16];
    const struct es_event *ptrs[16];
    int rc;

    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        make_event(&evs[i], streams[i], versions[i], i == n - 1 ? pad_last : 8);
        ptrs[i] = &evs[i];
        if (ids != NULL)
            memcpy(ids[i], evs[i].id, sizeof(ids[i]));
    }
    rc = es_log_append(log, ptrs, n, pos, eb);
    for (size_t i = 0; i < n; i++)
        es_event_release(&evs[i]);
    return rc;
}

/* Append @p n events of one stream, versions first.., as one batch. */
static int append_stream(struct es_log *log,
                         const char *stream,
                         int64_t first,
                         size_t n,
                         struct es_position *pos,
                         char (*ids)[ES_UUID_STR_LEN + 1],
                         struct sp_errbuf *eb)
{
    const char *streams[16];
    int64_t versions[16];

    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        streams[i] = stream;
        versions[i] = first + (int64_t)i;
    }
    return append(log, streams, versions, n, 8, pos, ids, eb);
}

/* ---- reading ---- */

static int seen_cb(const struct es_log_record *rec, void *ud)
{
    struct seen_list *l = ud;
    struct seen *s;
    struct es_event ev;
    struct sp_errbuf eb = {{0}, {0}};
    int rc;

    if (l->n >= MAX_SEEN)
        return 1;
    s = &l->v[l->n++];
    memset(s, 0, sizeof(*s));
    s->pos = rec->pos;
    s->status = rec->status;
    es_event_init(&ev);
    rc = es_log_record_decode(rec, &ev, &eb);
    if (rec->status != 0) {
        snprintf(s->error, sizeof(s->error), "%s", rec->error ? rec->error : "");
        return rc == rec->status && strcmp(eb.msg, s->error) == 0 ? 0 : 2;
    }
    if (rc != 0 || ev.pos.offset != rec->pos.offset || ev.pos.partition != rec->pos.partition)
        return 3;
    memcpy(s->id, ev.id, sizeof(s->id));
    snprintf(s->stream, sizeof(s->stream), "%s", ev.stream);
    s->version = ev.stream_version;
    es_event_release(&ev);
    return 0;
}

/* Read every partition from @p from (NULL = 0) to its end; @p reached gets the
 * checkpoints (may be NULL). */
static void read_from(
    struct es_log *log, const int64_t *from, size_t max, struct seen_list *l, int64_t *reached)
{
    struct sp_errbuf eb = {{0}, {0}};
    int32_t parts = es_log_partitions(log);

    for (int32_t p = 0; p < parts; p++) {
        int64_t start = from ? from[p] : 0, n = -1;
        int rc = es_log_read(log, p, start, max, seen_cb, l, &n, &eb);
        if (rc != 0)
            fail_msg("read of partition %d failed: %d %s", (int)p, rc, eb.msg);
        assert_true(n >= start);
        if (reached != NULL)
            reached[p] = n;
    }
}

static const struct seen *find_id(const struct seen_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].id, id) == 0)
            return &l->v[i];
    return NULL;
}

static size_t count_id(const struct seen_list *l, const char *id)
{
    size_t k = 0;

    for (size_t i = 0; i < l->n; i++)
        k += strcmp(l->v[i].id, id) == 0;
    return k;
}

/* Per partition, offsets strictly increase (read_from reads partition by partition); per
 * stream, versions are 1, 2, 3... in read order and the stream stays in one partition. */
static void check_order(const struct seen_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        int64_t prev_version = 0;

        if (l->v[i].status != 0)
            continue;
        for (size_t j = 0; j < i; j++) {
            if (l->v[j].pos.partition == l->v[i].pos.partition)
                assert_true(l->v[j].pos.offset < l->v[i].pos.offset);
            if (l->v[j].status == 0 && strcmp(l->v[j].stream, l->v[i].stream) == 0) {
                assert_int_equal(l->v[j].pos.partition, l->v[i].pos.partition);
                prev_version = l->v[j].version;
            }
        }
        assert_int_equal(l->v[i].version, prev_version + 1);
    }
}

/* ---- LMDB backend ---- */

static int lmdb_setup(struct fixture *f)
{
    f->dir = strdup("/tmp/es-contract-XXXXXX");
    return f->dir != NULL && mkdtemp(f->dir) != NULL ? 0 : -1;
}

static void lmdb_teardown(struct fixture *f)
{
    char path[512];
    struct dirent *de;
    DIR *d = opendir(f->dir);

    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(f->dir);
    free(f->dir);
}

static int
lmdb_open(struct fixture *f, enum es_log_mode mode, struct es_log **log, struct sp_errbuf *eb)
{
    return es_log_open_lmdb(f->dir, MAP_BYTES, MAX_EVENT, mode, log, eb);
}

static int lmdb_consumer_open(struct fixture *f,
                              const struct es_consumer_opts *opts,
                              struct es_consumer **c,
                              struct sp_errbuf *eb)
{
    return es_consumer_open_lmdb(f->dir, MAP_BYTES, MAX_EVENT, opts, c, eb);
}

/* Append one record, then flip a bit of its stored JSON with a raw LMDB write. */
static void lmdb_corrupt(struct fixture *f)
{
    struct es_log *log;
    struct es_position pos;
    struct sp_errbuf eb = {{0}, {0}};
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t key[8];
    MDB_val k = {sizeof(key), key}, v;
    char *copy;

    assert_int_equal(lmdb_open(f, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(append_stream(log, "corrupt-1", 1, 1, &pos, NULL, &eb), 0);
    es_log_close(log);
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)((uint64_t)pos.offset >> (8 * (7 - i)));
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_set_mapsize(env, MAP_BYTES), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "log", 0, &dbi), 0);
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    copy = malloc(v.mv_size);
    assert_non_null(copy);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size - 3] ^= 0x01;
    v.mv_data = copy;
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    free(copy);
    mdb_env_close(env);
}

/* ---- Kafka backend (mock cluster) ---- */

static int kafka_setup(struct fixture *f)
{
    return sp_test_kafka_start(&f->mock, 3, KAFKA_TOPIC, KAFKA_PARTS);
}

static void kafka_teardown(struct fixture *f)
{
    sp_test_kafka_stop(&f->mock);
}

static int kafka_open_id(struct fixture *f,
                         const char *topic,
                         int timeout_ms,
                         enum es_log_mode mode,
                         struct es_log **log,
                         struct sp_errbuf *eb)
{
    struct es_kafka_opts opts = {
        .brokers = f->mock.brokers,
        .topic = topic,
        .partitions = KAFKA_PARTS,
        .replication_factor = 3,
        .transactional_id = "contract-writer",
        .timeout_ms = timeout_ms,
        .max_event_bytes = MAX_EVENT,
    };

    return es_log_open_kafka(&opts, mode, log, eb);
}

static int
kafka_open(struct fixture *f, enum es_log_mode mode, struct es_log **log, struct sp_errbuf *eb)
{
    return kafka_open_id(f, KAFKA_TOPIC, KAFKA_TIMEOUT, mode, log, eb);
}

static int kafka_consumer_open(struct fixture *f,
                               const struct es_consumer_opts *opts,
                               struct es_consumer **c,
                               struct sp_errbuf *eb)
{
    struct es_kafka_opts kopts = {
        .brokers = f->mock.brokers,
        .topic = KAFKA_TOPIC,
        .partitions = KAFKA_PARTS,
        .replication_factor = 3,
        .transactional_id = "unused",
        .timeout_ms = KAFKA_TIMEOUT,
        .max_event_bytes = MAX_EVENT,
    };

    return es_consumer_open_kafka(&kopts, opts, c, eb);
}

/* Produce, with a plain (non-transactional) producer, one valid envelope of stream
 * "corrupt-1" whose xxh3 header is wrong, to partition 0. */
static void kafka_corrupt(struct fixture *f)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    struct es_event ev;
    struct sp_buf val;

    assert_int_equal(
        rd_kafka_conf_set(conf, "bootstrap.servers", f->mock.brokers, errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    make_event(&ev, "corrupt-1", 1, 8);
    sp_buf_init(&val, 0);
    assert_int_equal(es_event_encode(&ev, &val, NULL), 0);
    assert_int_equal(
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(KAFKA_TOPIC), RD_KAFKA_V_PARTITION(0),
                          RD_KAFKA_V_KEY("corrupt-1", 9), RD_KAFKA_V_VALUE(val.data, val.len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADER("xxh3", "0123456789abcdef", 16), RD_KAFKA_V_END),
        0);
    assert_int_equal(rd_kafka_flush(rk, KAFKA_TIMEOUT), 0);
    rd_kafka_destroy(rk);
    sp_buf_release(&val);
    es_event_release(&ev);
}

static struct backend lmdb_backend = {"lmdb",    lmdb_setup,   lmdb_teardown,
                                      lmdb_open, lmdb_corrupt, lmdb_consumer_open};
static struct backend kafka_backend = {"kafka",    kafka_setup,   kafka_teardown,
                                       kafka_open, kafka_corrupt, kafka_consumer_open};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    f->be = *state;
    *state = f;
    return f->be->setup(f);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    f->be->teardown(f);
    free(f);
    return 0;
}

static bool is_kafka(const struct fixture *f)
{
    return f->be == &kafka_backend;
}

/* ---- the contract ---- */

static struct es_log *open_ok(struct fixture *f, enum es_log_mode mode)
{
    struct es_log *log = NULL;
    struct sp_errbuf eb = {{0}, {0}};
    int rc = f->be->open(f, mode, &log, &eb);

    if (rc != 0)
        fail_msg("%s: open failed: %d %s", f->be->name, rc, eb.msg);
    return log;
}

static void test_order_and_positions(void **state)
{
    struct fixture *f = *state;
    static const char *const streams[] = {"recipe-1", "user-2", "recipe-1",
                                          "chat-3",   "user-2", "recipe-1"};
    static const char *const streams2[] = {"recipe-1", "user-2"};
    const int64_t versions[] = {1, 1, 2, 1, 2, 3}, versions2[] = {4, 3};
    struct es_position pos[8];
    char ids[8][ES_UUID_STR_LEN + 1];
    struct sp_errbuf eb = {{0}, {0}};
    struct seen_list *l = calloc(1, sizeof(*l));
    struct es_log *log = open_ok(f, ES_LOG_WRITER);
    int64_t end;

    assert_non_null(l);
    assert_int_equal(append(log, streams, versions, 6, 8, pos, ids, &eb), 0);
    assert_int_equal(append(log, streams2, versions2, 2, 8, pos + 6, ids + 6, &eb), 0);
    for (size_t i = 0; i < 8; i++) {
        const char *si = i < 6 ? streams[i] : streams2[i - 6];
        assert_true(pos[i].partition >= 0 && pos[i].partition < es_log_partitions(log));
        for (size_t j = 0; j < i; j++) {
            const char *sj = j < 6 ? streams[j] : streams2[j - 6];
            if (strcmp(si, sj) == 0)
                assert_int_equal(pos[j].partition, pos[i].partition);
            if (pos[j].partition == pos[i].partition)
                assert_true(pos[j].offset < pos[i].offset); /* positions increase */
        }
        assert_int_equal(es_log_end(log, pos[i].partition, &end, &eb), 0);
        assert_true(end > pos[i].offset);
    }
    read_from(log, NULL, SIZE_MAX, l, NULL);
    assert_int_equal(l->n, 8);
    check_order(l);
    for (size_t i = 0; i < 8; i++) {
        const struct seen *s = find_id(l, ids[i]);
        assert_non_null(s);
        assert_int_equal(s->pos.partition, pos[i].partition);
        assert_int_equal(s->pos.offset, pos[i].offset);
    }
    es_log_close(log);
    free(l);
}

static void test_survives_reopen(void **state)
{
    struct fixture *f = *state;
    struct es_position pos[5];
    char ids[5][ES_UUID_STR_LEN + 1];
    struct sp_errbuf eb = {{0}, {0}};
    struct seen_list *l = calloc(1, sizeof(*l));
    struct es_log *log = open_ok(f, ES_LOG_WRITER);

    assert_non_null(l);
    assert_int_equal(append_stream(log, "recipe-1", 1, 3, pos, ids, &eb), 0);
    es_log_close(log);
    log = open_ok(f, ES_LOG_WRITER);
    assert_int_equal(append_stream(log, "recipe-1", 4, 2, pos + 3, ids + 3, &eb), 0);
    assert_int_equal(pos[3].partition, pos[2].partition);
    assert_true(pos[3].offset > pos[2].offset);
    es_log_close(log);

    log = open_ok(f, ES_LOG_READER);
    read_from(log, NULL, SIZE_MAX, l, NULL);
    assert_int_equal(l->n, 5);
    check_order(l);
    for (size_t i = 0; i < 5; i++)
        assert_non_null(find_id(l, ids[i]));
    assert_int_equal(append_stream(log, "recipe-1", 6, 1, NULL, NULL, &eb), SP_ESTATE);
    es_log_close(log);
    free(l);
}

static void test_batch_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    static const char *const streams_b[] = {"recipe-1", "user-2"};
    const int64_t versions_b[] = {3, 1};
    char ids_a[2][ES_UUID_STR_LEN + 1], ids_b[2][ES_UUID_STR_LEN + 1];
    char ids_c[3][ES_UUID_STR_LEN + 1], ids_d[2][ES_UUID_STR_LEN + 1];
    struct sp_errbuf eb = {{0}, {0}};
    struct seen_list *l = calloc(1, sizeof(*l));
    struct es_log *log = open_ok(f, ES_LOG_WRITER);

    assert_non_null(l);
    assert_int_equal(append_stream(log, "recipe-1", 1, 2, NULL, ids_a, &eb), 0);
    /* the last event is over the cap: nothing of the batch is appended */
    assert_int_equal(append(log, streams_b, versions_b, 2, MAX_EVENT, NULL, ids_b, &eb),
                     SP_ETOOBIG);
    assert_string_equal(eb.field, "log.max_event_bytes");
    if (is_kafka(f)) {
        /* the broker rejects the batch: the transaction is aborted */
        rd_kafka_mock_push_request_errors(
            f->mock.mc, SP_TEST_KAFKA_API_PRODUCE, 3, RD_KAFKA_RESP_ERR_INVALID_RECORD,
            RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_INVALID_RECORD);
        assert_int_equal(append_stream(log, "recipe-1", 3, 3, NULL, ids_c, &eb), SP_EUNAVAIL);
        assert_non_null(strstr(eb.msg, "aborted"));
        rd_kafka_mock_clear_request_errors(f->mock.mc, SP_TEST_KAFKA_API_PRODUCE);
    }
    assert_int_equal(append_stream(log, "recipe-1", 3, 2, NULL, ids_d, &eb), 0);
    read_from(log, NULL, SIZE_MAX, l, NULL);
    assert_int_equal(l->n, 4);
    check_order(l);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(count_id(l, ids_a[i]), 1);
        assert_int_equal(count_id(l, ids_d[i]), 1);
        assert_null(find_id(l, ids_b[i]));
    }
    for (size_t i = 0; is_kafka(f) && i < 3; i++)
        assert_null(find_id(l, ids_c[i]));
    es_log_close(log);
    free(l);
}

#define RESUME_EVENTS 12

static void test_resume_from_checkpoint(void **state)
{
    struct fixture *f = *state;
    static const char *const names[] = {"recipe-1", "user-2", "chat-3", "media-4"};
    char ids[RESUME_EVENTS][ES_UUID_STR_LEN + 1];
    int64_t next[KAFKA_PARTS + 1], next2[KAFKA_PARTS + 1], next3[KAFKA_PARTS + 1];
    struct sp_errbuf eb = {{0}, {0}};
    struct seen_list *first = calloc(1, sizeof(*first)), *rest = calloc(1, sizeof(*rest));
    struct seen_list *again = calloc(1, sizeof(*again));
    struct es_log *log = open_ok(f, ES_LOG_WRITER);

    assert_true(first && rest && again);
    for (size_t b = 0; b < 3; b++) {
        const char *streams[4];
        int64_t versions[4];
        for (size_t i = 0; i < 4; i++) {
            streams[i] = names[i];
            versions[i] = (int64_t)b + 1;
        }
        assert_int_equal(append(log, streams, versions, 4, 8, NULL, ids + 4 * b, &eb), 0);
    }
    es_log_close(log);

    log = open_ok(f, ES_LOG_READER); /* first consumer run: stops half way */
    read_from(log, NULL, RESUME_EVENTS / 4, first, next);
    es_log_close(log);
    assert_true(first->n > 0 && first->n < RESUME_EVENTS);
    log = open_ok(f, ES_LOG_READER); /* restart from the stored checkpoints */
    for (;;) { /* in small steps on one handle: no record twice, none skipped */
        size_t before = rest->n;
        read_from(log, next, 2, rest, next2);
        memcpy(next, next2, sizeof(next));
        if (rest->n == before)
            break;
    }
    read_from(log, next2, SIZE_MAX, again, next3); /* nothing new */
    es_log_close(log);
    assert_int_equal(first->n + rest->n, RESUME_EVENTS);
    assert_int_equal(again->n, 0);
    for (int32_t p = 0; p < (is_kafka(f) ? KAFKA_PARTS : 1); p++)
        assert_int_equal(next3[p], next2[p]);
    for (size_t i = 0; i < RESUME_EVENTS; i++)
        assert_int_equal(count_id(first, ids[i]) + count_id(rest, ids[i]), 1);
    free(first);
    free(rest);
    free(again);
}

static void test_bad_checksum(void **state)
{
    struct fixture *f = *state;
    char ids[3][ES_UUID_STR_LEN + 1];
    struct sp_errbuf eb = {{0}, {0}};
    struct seen_list *l = calloc(1, sizeof(*l));
    struct es_log *log = open_ok(f, ES_LOG_WRITER);
    size_t corrupt = 0;

    assert_non_null(l);
    assert_int_equal(append_stream(log, "recipe-1", 1, 2, NULL, ids, &eb), 0);
    es_log_close(log);
    f->be->corrupt(f);
    log = open_ok(f, ES_LOG_WRITER); /* the log goes on after a corrupt record */
    assert_int_equal(append_stream(log, "recipe-1", 3, 1, NULL, ids + 2, &eb), 0);
    es_log_close(log);

    log = open_ok(f, ES_LOG_READER);
    read_from(log, NULL, SIZE_MAX, l, NULL); /* passed with SP_ECORRUPT, not skipped */
    es_log_close(log);
    assert_int_equal(l->n, 4);
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].status == 0)
            continue;
        corrupt++;
        assert_int_equal(l->v[i].status, SP_ECORRUPT);
        assert_non_null(strstr(l->v[i].error, "checksum mismatch at "));
        assert_non_null(strstr(l->v[i].error, " computed "));
    }
    assert_int_equal(corrupt, 1);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(count_id(l, ids[i]), 1);
    free(l);
}

/* ---- Kafka only ---- */

/* Inject @p err on the next request(s) of @p api_key: the append is refused as fenced,
 * acknowledges nothing, and every later append on the handle is refused too. */
static void fence_with(struct fixture *f, int16_t api_key, rd_kafka_resp_err_t err)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct es_position pos = {-1, -1};
    struct es_log *log = open_ok(f, ES_LOG_WRITER);

    assert_int_equal(append_stream(log, "recipe-1", 1, 1, NULL, NULL, &eb), 0);
    rd_kafka_mock_push_request_errors(f->mock.mc, api_key, 5, err, err, err, err, err);
    assert_int_equal(append_stream(log, "recipe-1", 2, 2, &pos, NULL, &eb), SP_EFENCED);
    assert_non_null(strstr(eb.msg, "fenced"));
    assert_int_equal(pos.offset, -1); /* no position was reported */
    rd_kafka_mock_clear_request_errors(f->mock.mc, api_key);
    memset(&eb, 0, sizeof(eb));
    assert_int_equal(append_stream(log, "recipe-1", 2, 1, NULL, NULL, &eb), SP_EFENCED);
    assert_non_null(strstr(eb.msg, "appends are refused"));
    es_log_close(log);
    /* a new writer takes over and works */
    log = open_ok(f, ES_LOG_WRITER);
    assert_int_equal(append_stream(log, "recipe-1", 2, 1, NULL, NULL, &eb), 0);
    es_log_close(log);
}

static void test_kafka_fenced_on_endtxn(void **state)
{
    fence_with(*state, SP_TEST_KAFKA_API_ENDTXN, RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
}

static void test_kafka_fenced_on_addpartitions(void **state)
{
    fence_with(*state, SP_TEST_KAFKA_API_ADDPARTS, RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
}

static void test_kafka_fenced_on_produce(void **state)
{
    fence_with(*state, SP_TEST_KAFKA_API_PRODUCE, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH);
}

/* A retriable broker error is retried by librdkafka: success, each record once. */
static void test_kafka_retriable(void **state)
{
    struct fixture *f = *state;
    char ids[3][ES_UUID_STR_LEN + 1];
    struct sp_errbuf eb = {{0}, {0}};
    struct seen_list *l = calloc(1, sizeof(*l));
    struct es_log *log = open_ok(f, ES_LOG_WRITER);

    assert_non_null(l);
    rd_kafka_mock_push_request_errors(f->mock.mc, SP_TEST_KAFKA_API_PRODUCE, 2,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    assert_int_equal(append_stream(log, "recipe-1", 1, 3, NULL, ids, &eb), 0);
    read_from(log, NULL, SIZE_MAX, l, NULL);
    assert_int_equal(l->n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(count_id(l, ids[i]), 1);
    es_log_close(log);
    free(l);
}

/* Records without the xxh3 header are corrupt too. */
static void test_kafka_missing_header(void **state)
{
    struct fixture *f = *state;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    struct seen_list *l = calloc(1, sizeof(*l));
    struct es_log *log;
    char value[] = "{}";

    assert_non_null(l);
    assert_int_equal(
        rd_kafka_conf_set(conf, "bootstrap.servers", f->mock.brokers, errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(KAFKA_TOPIC), RD_KAFKA_V_PARTITION(1),
                                       RD_KAFKA_V_VALUE(value, 2),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     0);
    assert_int_equal(rd_kafka_flush(rk, KAFKA_TIMEOUT), 0);
    rd_kafka_destroy(rk);
    log = open_ok(f, ES_LOG_READER);
    read_from(log, NULL, SIZE_MAX, l, NULL);
    es_log_close(log);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->v[0].status, SP_ECORRUPT);
    assert_string_equal(l->v[0].error, "record at partition 1 offset 0 has no xxh3 header");
    free(l);
}

/* Absent topic: a reader fails cleanly; a writer creates it (or says why it could not:
 * the 2.0.2 mock has no CreateTopics). Unreachable brokers: SP_EUNAVAIL in bounded time. */
static void test_kafka_topic_and_brokers(void **state)
{
    struct fixture *f = *state;
    struct es_log *log = NULL;
    struct sp_errbuf eb = {{0}, {0}};
    char *saved = f->mock.brokers;
    char unreachable[] = "127.0.0.1:1";
    int rc;

    assert_int_equal(kafka_open_id(f, "absent.topic", 3000, ES_LOG_READER, &log, &eb),
                     SP_ENOTFOUND);
    assert_null(log);
    assert_non_null(strstr(eb.msg, "no kafka topic \"absent.topic\""));
    rc = kafka_open_id(f, "absent.topic", 1500, ES_LOG_WRITER, &log, &eb);
    if (rc == 0) {
        assert_int_equal(es_log_partitions(log), KAFKA_PARTS);
        es_log_close(log);
    } else {
        assert_int_equal(rc, SP_EUNAVAIL);
        assert_non_null(strstr(eb.msg, "could not create kafka topic \"absent.topic\""));
    }
    f->mock.brokers = unreachable;
    assert_int_equal(kafka_open_id(f, KAFKA_TOPIC, 1000, ES_LOG_READER, &log, &eb), SP_EUNAVAIL);
    f->mock.brokers = saved;
}

/* es_log_open with log.backend = kafka and the kafka.* keys. */
static void test_kafka_from_config(void **state)
{
    struct fixture *f = *state;
    struct sp_config *cfg;
    struct es_log *log = NULL;
    struct sp_errbuf eb = {{0}, {0}};

    assert_int_equal(sp_config_load(&cfg, NULL, &eb), 0);
    assert_string_equal(sp_config_str(cfg, "kafka.topic"), "stockpot.events");
    assert_int_equal(sp_config_int(cfg, "kafka.partitions"), 6);
    assert_int_equal(sp_config_int(cfg, "kafka.replication_factor"), 3);
    assert_int_equal(sp_config_set(cfg, "kafka.replication_factor", "0", &eb), SP_EINVAL);
    assert_int_equal(sp_config_set(cfg, "log.backend", "kafka", &eb), 0);
    assert_int_equal(sp_config_set(cfg, "kafka.brokers", f->mock.brokers, &eb), 0);
    assert_int_equal(sp_config_set(cfg, "kafka.topic", KAFKA_TOPIC, &eb), 0);
    assert_int_equal(es_log_open(cfg, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(es_log_partitions(log), KAFKA_PARTS);
    assert_int_equal(append_stream(log, "recipe-1", 1, 1, NULL, NULL, &eb), 0);
    es_log_close(log);
    sp_config_free(cfg);
}

/* ---- consumers (es/consumer.h) ---- */

#define CONSUME_STREAMS ((size_t)8)
#define CONSUME_WAIT_MS 60000 /* bound on any "until" loop: joins and rebalances included */

/* A projection's own store: per-partition checkpoints (next offset to apply), shared by
 * every instance of the projection, as one PostgreSQL database would be. */
struct proj_store {
    int64_t ckpt[KAFKA_PARTS];
};

/* One projection instance behind one consumer. */
struct proj {
    struct proj_store *store;
    struct seen_list *seen; /* what this instance applied, in order */
    int assigns, revokes;
    int32_t assigned[KAFKA_PARTS]; /* partitions of the last on_assign */
    int64_t started[KAFKA_PARTS];  /* start offsets it returned */
    size_t n_assigned;
    int assign_rc; /* what on_assign returns */
};

static int proj_on_assign(void *ud, const int32_t *parts, size_t n, int64_t *start)
{
    struct proj *p = ud;

    p->assigns++;
    p->n_assigned = n;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(start[i], 0); /* preset: the beginning */
        assert_true(parts[i] >= 0 && parts[i] < KAFKA_PARTS);
        assert_true(i == 0 || parts[i - 1] < parts[i]);
        start[i] = p->store->ckpt[parts[i]];
        p->assigned[i] = parts[i];
        p->started[i] = start[i];
    }
    return p->assign_rc;
}

static void proj_on_revoke(void *ud, const int32_t *parts, size_t n)
{
    struct proj *p = ud;

    (void)parts;
    assert_true(n > 0);
    p->revokes++;
}

/* Apply one record: note it and move the checkpoint, as one committed transaction. */
static int proj_apply(const struct es_log_record *rec, void *ud)
{
    struct proj *p = ud;
    int rc = seen_cb(rec, p->seen);

    p->store->ckpt[rec->pos.partition] = rec->pos.offset + 1;
    return rc;
}

static void proj_init(struct proj *p, struct proj_store *store)
{
    memset(p, 0, sizeof(*p));
    p->store = store;
    p->seen = calloc(1, sizeof(*p->seen));
    assert_non_null(p->seen);
}

static struct es_consumer *consumer_ok(struct fixture *f, struct proj *p)
{
    struct es_consumer_opts opts = {
        .group_id = "stockpot-projection-contract",
        .on_assign = proj_on_assign,
        .on_revoke = proj_on_revoke,
        .ud = p,
        .session_timeout_ms = 4000, /* the mock waits about this long for rejoins */
        .heartbeat_interval_ms = 300,
    };
    struct es_consumer *c = NULL;
    struct sp_errbuf eb = {{0}, {0}};
    int rc = f->be->consumer_open(f, &opts, &c, &eb);

    if (rc != 0)
        fail_msg("%s: consumer open failed: %d %s", f->be->name, rc, eb.msg);
    return c;
}

/* Poll @p c1 (and @p c2, alternately, if not NULL) until the projections applied
 * @p want records in all, or @p stop (may be NULL) says so. */
static void poll_until(struct es_consumer *c1,
                       struct proj *p1,
                       struct es_consumer *c2,
                       struct proj *p2,
                       size_t want,
                       bool (*stop)(void *),
                       void *stop_ud)
{
    struct sp_errbuf eb = {{0}, {0}};
    int64_t deadline_us = sp_time_mono_us() + (int64_t)CONSUME_WAIT_MS * 1000;

    while (p1->seen->n + (p2 ? p2->seen->n : 0) < want && !(stop && stop(stop_ud))) {
        int rc = es_consumer_poll(c1, 5, 100, proj_apply, p1, &eb);
        if (rc == 0 && c2 != NULL)
            rc = es_consumer_poll(c2, 5, 100, proj_apply, p2, &eb);
        if (rc != 0)
            fail_msg("poll failed: %d %s", rc, eb.msg);
        if (sp_time_mono_us() > deadline_us)
            fail_msg("only %zu of %zu records within %d ms", p1->seen->n + (p2 ? p2->seen->n : 0),
                     want, CONSUME_WAIT_MS);
    }
}

/* Append one batch of one event to each of CONSUME_STREAMS streams at @p version. */
static int append_round_in(struct fixture *f,
                           int64_t version,
                           struct es_position *pos,
                           char (*ids)[ES_UUID_STR_LEN + 1])
{
    static const char *const names[CONSUME_STREAMS] = {"recipe-1", "user-2", "chat-3", "media-4",
                                                       "recipe-5", "user-6", "chat-7", "media-8"};
    int64_t versions[CONSUME_STREAMS];
    struct sp_errbuf eb = {{0}, {0}};
    struct es_log *log = NULL;
    int rc = f->be->open(f, ES_LOG_WRITER, &log, &eb);

    for (size_t i = 0; i < CONSUME_STREAMS; i++)
        versions[i] = version;
    if (rc == 0)
        rc = append(log, names, versions, CONSUME_STREAMS, 8, pos, ids, &eb);
    es_log_close(log);
    return rc;
}

/* As append_round_in; on LMDB from a child process, since a consumer may have the log
 * open in this one (an LMDB environment is opened once per process). */
static void append_round(struct fixture *f,
                         int64_t version,
                         struct es_position *pos,
                         char (*ids)[ES_UUID_STR_LEN + 1])
{
    struct out {
        struct es_position pos[CONSUME_STREAMS];
        char ids[CONSUME_STREAMS][ES_UUID_STR_LEN + 1];
    } * out;
    int status = -1;
    pid_t pid;

    if (is_kafka(f)) {
        assert_int_equal(append_round_in(f, version, pos, ids), 0);
        return;
    }
    out = mmap(NULL, sizeof(*out), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(out != MAP_FAILED);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(append_round_in(f, version, out->pos, out->ids) == 0 ? 0 : 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (pos != NULL)
        memcpy(pos, out->pos, sizeof(out->pos));
    if (ids != NULL)
        memcpy(ids, out->ids, sizeof(out->ids));
    munmap(out, sizeof(*out));
}

/* Every id of @p ids[0..n) applied exactly once by @p a and @p b (may be NULL) together. */
static void assert_exactly_once(const struct proj *a,
                                const struct proj *b,
                                char (*ids)[ES_UUID_STR_LEN + 1],
                                size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(count_id(a->seen, ids[i]) + (b ? count_id(b->seen, ids[i]) : 0), 1);
    assert_int_equal(a->seen->n + (b ? b->seen->n : 0), n);
}

/* Order checks over what @p first then @p second applied, as one history. */
static void check_order_both(const struct proj *first, const struct proj *second)
{
    struct seen_list *all = calloc(1, sizeof(*all));

    assert_non_null(all);
    assert_true(first->seen->n + second->seen->n <= MAX_SEEN);
    memcpy(all->v, first->seen->v, first->seen->n * sizeof(all->v[0]));
    memcpy(all->v + first->seen->n, second->seen->v, second->seen->n * sizeof(all->v[0]));
    all->n = first->seen->n + second->seen->n;
    check_order(all);
    free(all);
}

static void proj_free(struct proj *p)
{
    free(p->seen);
}

static void test_consumer_exactly_once(void **state)
{
    struct fixture *f = *state;
    char ids[3 * CONSUME_STREAMS][ES_UUID_STR_LEN + 1];
    struct proj_store store = {{0}};
    struct proj p;
    struct es_consumer *c;
    int32_t parts[KAFKA_PARTS + 1];
    size_t corrupt = 0, n_parts = is_kafka(f) ? KAFKA_PARTS : 1;

    proj_init(&p, &store);
    append_round(f, 1, NULL, ids);
    f->be->corrupt(f); /* delivered with SP_ECORRUPT, not skipped */
    append_round(f, 2, NULL, ids + CONSUME_STREAMS);
    c = consumer_ok(f, &p);
    assert_int_equal(es_consumer_assignment(c, parts, KAFKA_PARTS), 0); /* none before a poll */
    poll_until(c, &p, NULL, NULL, 2 * CONSUME_STREAMS + 1, NULL, NULL);
    append_round(f, 3, NULL, ids + 2 * CONSUME_STREAMS); /* tailing: arrives while open */
    poll_until(c, &p, NULL, NULL, 3 * CONSUME_STREAMS + 1, NULL, NULL);
    assert_int_equal(p.assigns, 1);
    assert_int_equal(p.n_assigned, n_parts);
    assert_int_equal(es_consumer_assignment(c, parts, KAFKA_PARTS + 1), n_parts);
    for (size_t i = 0; i < n_parts; i++)
        assert_int_equal(parts[i], (int32_t)i);
    check_order(p.seen); /* per partition in offset order; per stream in version order */
    for (size_t i = 0; i < p.seen->n; i++) {
        if (p.seen->v[i].status == 0)
            continue;
        corrupt++;
        assert_int_equal(p.seen->v[i].status, SP_ECORRUPT);
        assert_non_null(strstr(p.seen->v[i].error, "checksum mismatch at "));
    }
    assert_int_equal(corrupt, 1);
    for (size_t i = 0; i < 3 * CONSUME_STREAMS; i++)
        assert_int_equal(count_id(p.seen, ids[i]), 1);
    es_consumer_close(c); /* the projection ends its batch: on_revoke */
    assert_int_equal(p.revokes, 1);
    proj_free(&p);
}

/* Kafka: the consumers never commit offsets to the group (checkpoints live in the
 * projection's store), so the group has no committed offset for any partition. */
static void assert_nothing_committed(struct fixture *f)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(KAFKA_PARTS);
    rd_kafka_t *rk;

    assert_int_equal(
        rd_kafka_conf_set(conf, "bootstrap.servers", f->mock.brokers, errstr, sizeof(errstr)), 0);
    assert_int_equal(
        rd_kafka_conf_set(conf, "group.id", "stockpot-projection-contract", errstr, sizeof(errstr)),
        0);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    for (int32_t p = 0; p < KAFKA_PARTS; p++)
        rd_kafka_topic_partition_list_add(list, KAFKA_TOPIC, p);
    assert_int_equal(rd_kafka_committed(rk, list, KAFKA_TIMEOUT), 0);
    for (int i = 0; i < list->cnt; i++)
        assert_int_equal(list->elems[i].offset, RD_KAFKA_OFFSET_INVALID);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
}

static void test_consumer_resume(void **state)
{
    struct fixture *f = *state;
    char ids[2 * CONSUME_STREAMS][ES_UUID_STR_LEN + 1];
    struct proj_store store = {{0}};
    struct proj p1, p2;
    struct es_consumer *c;

    proj_init(&p1, &store);
    proj_init(&p2, &store);
    append_round(f, 1, NULL, ids);
    c = consumer_ok(f, &p1); /* first run: stops part way */
    poll_until(c, &p1, NULL, NULL, CONSUME_STREAMS / 2, NULL, NULL);
    es_consumer_close(c);
    assert_true(p1.seen->n >= CONSUME_STREAMS / 2 && p1.seen->n < CONSUME_STREAMS + 1);
    append_round(f, 2, NULL, ids + CONSUME_STREAMS); /* written while it was down */
    c = consumer_ok(f, &p2); /* restart: on_assign hands back the stored checkpoints */
    poll_until(c, &p2, NULL, NULL, 2 * CONSUME_STREAMS - p1.seen->n, NULL, NULL);
    for (size_t i = 0; i < p2.n_assigned; i++)
        assert_true(p2.started[i] > 0 || p1.seen->n < CONSUME_STREAMS);
    /* nothing more comes: no duplicates after the end either */
    {
        struct sp_errbuf eb = {{0}, {0}};
        assert_int_equal(es_consumer_poll(c, 10, 300, proj_apply, &p2, &eb), 0);
    }
    es_consumer_close(c);
    assert_exactly_once(&p1, &p2, ids, 2 * CONSUME_STREAMS);
    check_order_both(&p1, &p2);
    if (is_kafka(f))
        assert_nothing_committed(f);
    proj_free(&p1);
    proj_free(&p2);
}

/* A batch is rolled back: the projection restores its checkpoints and seeks back to them;
 * the batch is delivered again, and overall every record is applied once. */
static void test_consumer_seek(void **state)
{
    struct fixture *f = *state;
    char ids[2 * CONSUME_STREAMS][ES_UUID_STR_LEN + 1];
    struct proj_store store = {{0}}, saved;
    struct sp_errbuf eb = {{0}, {0}};
    struct proj p;
    struct es_consumer *c;
    int32_t parts[KAFKA_PARTS];
    size_t n_parts, before, redelivered = 0;

    proj_init(&p, &store);
    append_round(f, 1, NULL, ids);
    c = consumer_ok(f, &p);
    poll_until(c, &p, NULL, NULL, 2, NULL, NULL); /* assigned and reading */
    append_round(f, 2, NULL, ids + CONSUME_STREAMS);
    saved = store;
    before = p.seen->n;
    poll_until(c, &p, NULL, NULL, before + 3, NULL, NULL); /* the batch that fails */
    redelivered = p.seen->n - before;
    p.seen->n = before; /* roll back the view and its checkpoints together */
    store = saved;
    n_parts = es_consumer_assignment(c, parts, KAFKA_PARTS);
    assert_true(n_parts > 0);
    for (size_t i = 0; i < n_parts; i++)
        assert_int_equal(es_consumer_seek(c, parts[i], store.ckpt[parts[i]], &eb), 0);
    assert_int_equal(es_consumer_seek(c, 7, 0, &eb), SP_ESTATE);
    assert_non_null(strstr(eb.msg, "partition 7 is not assigned"));
    assert_int_equal(es_consumer_seek(c, parts[0], -1, &eb), SP_EINVAL);
    poll_until(c, &p, NULL, NULL, 2 * CONSUME_STREAMS, NULL, NULL);
    assert_int_equal(es_consumer_poll(c, 10, 300, proj_apply, &p, &eb), 0);
    es_consumer_close(c);
    assert_true(redelivered >= 3);
    assert_exactly_once(&p, NULL, ids, 2 * CONSUME_STREAMS);
    check_order(p.seen);
    proj_free(&p);
}

/* on_assign cannot load the checkpoints: the poll says so and the consumer is done. */
static void test_consumer_assign_fails(void **state)
{
    struct fixture *f = *state;
    struct proj_store store = {{0}};
    struct sp_errbuf eb = {{0}, {0}};
    struct proj p;
    struct es_consumer *c;
    int64_t deadline_us = sp_time_mono_us() + (int64_t)CONSUME_WAIT_MS * 1000;
    int rc = 0;

    proj_init(&p, &store);
    p.assign_rc = SP_EDB;
    append_round(f, 1, NULL, NULL);
    c = consumer_ok(f, &p);
    while (rc == 0 && sp_time_mono_us() < deadline_us)
        rc = es_consumer_poll(c, 5, 100, proj_apply, &p, &eb);
    assert_int_equal(rc, SP_EDB);
    assert_int_equal(p.seen->n, 0);
    assert_int_equal(es_consumer_poll(c, 5, 100, proj_apply, &p, &eb), SP_ESTATE);
    assert_non_null(strstr(eb.msg, "consumer failed earlier"));
    assert_int_equal(es_consumer_assignment(c, NULL, 0), 0);
    es_consumer_close(c);
    assert_int_equal(p.revokes, 0); /* nothing was assigned */
    proj_free(&p);
}

/* ---- consumer groups (Kafka only) ---- */

struct pair {
    struct es_consumer *c[2];
};

/* Both members hold a non-empty share and together all partitions, disjointly. */
static bool split_settled(void *ud)
{
    struct pair *pr = ud;
    int32_t a[KAFKA_PARTS + 1], b[KAFKA_PARTS + 1];
    size_t na = es_consumer_assignment(pr->c[0], a, KAFKA_PARTS + 1);
    size_t nb = es_consumer_assignment(pr->c[1], b, KAFKA_PARTS + 1);
    int mask = 0;

    if (na == 0 || nb == 0 || na + nb != KAFKA_PARTS)
        return false;
    for (size_t i = 0; i < na; i++)
        mask |= 1 << a[i];
    for (size_t i = 0; i < nb; i++)
        mask |= 1 << b[i];
    return mask == (1 << KAFKA_PARTS) - 1;
}

static bool all_assigned_to_first(void *ud)
{
    struct pair *pr = ud;

    return es_consumer_assignment(pr->c[0], NULL, 0) == KAFKA_PARTS;
}

static bool holds(const struct proj *p, int32_t partition)
{
    for (size_t i = 0; i < p->n_assigned; i++)
        if (p->assigned[i] == partition)
            return true;
    return false;
}

static void test_kafka_consumer_group(void **state)
{
    struct fixture *f = *state;
    char ids[3 * CONSUME_STREAMS][ES_UUID_STR_LEN + 1];
    struct es_position pos[3 * CONSUME_STREAMS];
    struct proj_store store = {{0}};
    struct proj a, b;
    struct pair pr;
    int a_assigns;

    proj_init(&a, &store);
    proj_init(&b, &store);
    pr.c[0] = consumer_ok(f, &a);
    pr.c[1] = consumer_ok(f, &b);
    poll_until(pr.c[0], &a, pr.c[1], &b, SIZE_MAX, split_settled, &pr);
    append_round(f, 1, pos, ids);
    append_round(f, 2, pos + CONSUME_STREAMS, ids + CONSUME_STREAMS);
    poll_until(pr.c[0], &a, pr.c[1], &b, 2 * CONSUME_STREAMS, NULL, NULL);
    assert_true(split_settled(&pr));
    /* each member applied exactly the records of its own partitions */
    for (size_t i = 0; i < 2 * CONSUME_STREAMS; i++) {
        const struct proj *owner = holds(&a, pos[i].partition) ? &a : &b;
        assert_true(holds(owner, pos[i].partition));
        assert_int_equal(count_id(owner->seen, ids[i]), 1);
    }
    assert_exactly_once(&a, &b, ids, 2 * CONSUME_STREAMS);

    /* b leaves: a is given every partition, and starts b's where b's checkpoints say */
    a_assigns = a.assigns;
    es_consumer_close(pr.c[1]);
    assert_true(b.revokes >= 1);
    append_round(f, 3, pos + 2 * CONSUME_STREAMS, ids + 2 * CONSUME_STREAMS);
    poll_until(pr.c[0], &a, NULL, NULL, SIZE_MAX, all_assigned_to_first, &pr);
    assert_true(a.assigns > a_assigns);
    assert_true(a.revokes >= 1); /* eager: a's own partitions were revoked and reassigned */
    for (size_t i = 0; i < a.n_assigned; i++) /* from the shared store, not the beginning */
        for (size_t j = 0; j < 2 * CONSUME_STREAMS; j++)
            if (pos[j].partition == a.assigned[i])
                assert_true(a.started[i] > pos[j].offset);
    poll_until(pr.c[0], &a, NULL, NULL, 3 * CONSUME_STREAMS - b.seen->n, NULL, NULL);
    {
        struct sp_errbuf eb = {{0}, {0}};
        assert_int_equal(es_consumer_poll(pr.c[0], 10, 300, proj_apply, &a, &eb), 0);
    }
    es_consumer_close(pr.c[0]);
    assert_exactly_once(&a, &b, ids, 3 * CONSUME_STREAMS);
    check_order_both(&b, &a); /* b stopped before a took its partitions over */
    proj_free(&a);
    proj_free(&b);
}

/* Consumer options and an absent topic are rejected at open. */
static void test_kafka_consumer_open_errors(void **state)
{
    struct fixture *f = *state;
    struct es_consumer_opts opts = {.group_id = ""};
    struct es_kafka_opts kopts = {
        .brokers = f->mock.brokers, .topic = "absent.topic", .timeout_ms = 3000};
    struct es_consumer *c = NULL;
    struct sp_errbuf eb = {{0}, {0}};

    assert_int_equal(es_consumer_open_kafka(&kopts, &opts, &c, &eb), SP_EINVAL);
    assert_string_equal(eb.field, "group_id");
    opts.group_id = "g";
    assert_int_equal(es_consumer_open_kafka(&kopts, &opts, &c, &eb), SP_ENOTFOUND);
    assert_null(c);
    assert_non_null(strstr(eb.msg, "no kafka topic \"absent.topic\""));
}

/* ---- nothing to read ---- */

static int never_cb(const struct es_log_record *rec, void *ud)
{
    (void)rec;
    (*(int *)ud)++;
    return 0;
}

/* Reads that pass no record set next_offset to from_offset (es/log.h), on every path. */
static void test_next_offset_when_nothing_read(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct es_log *log = open_ok(f, ES_LOG_WRITER);
    int32_t parts = es_log_partitions(log);
    int calls = 0;

    assert_int_equal(append_stream(log, "recipe-1", 1, 3, NULL, NULL, &eb), 0);
    es_log_close(log);
    log = open_ok(f, ES_LOG_READER);
    for (int32_t p = 0; p < parts; p++) {
        int64_t end = -1, next = -7;
        assert_int_equal(es_log_end(log, p, &end, &eb), 0);
        assert_int_equal(es_log_read(log, p, end, 10, never_cb, &calls, &next, &eb), 0);
        assert_int_equal(next, end); /* at the end */
        next = -7;
        assert_int_equal(es_log_read(log, p, end + 5, 10, never_cb, &calls, &next, &eb), 0);
        assert_int_equal(next, end + 5); /* past the end */
        next = -7;
        assert_int_equal(es_log_read(log, p, 0, 0, never_cb, &calls, &next, &eb), 0);
        assert_int_equal(next, 0); /* max = 0 */
    }
    assert_int_equal(calls, 0);
    es_log_close(log);
}

/* ---- Kafka: bounded calls while brokers are down ---- */

#define DOWN_TIMEOUT_MS 2000 /* kafka.timeout_ms of the handles under test */
#define DOWN_SLACK_MS   1500 /* scheduling, sanitizers and the mock's own pace */
#define LEAVE_GROUP_MS  6000 /* librdkafka's fixed LeaveGroup timeout (5 s), checked each 1 s */

static int64_t ms_since(int64_t start_us)
{
    return (sp_time_mono_us() - start_us) / 1000;
}

/* Leaders: partition 0 on broker 1, the others on broker 2; coordinators on broker 3. */
static void pin_leaders(struct fixture *f)
{
    for (int32_t p = 0; p < KAFKA_PARTS; p++)
        assert_int_equal(
            rd_kafka_mock_partition_set_leader(f->mock.mc, KAFKA_TOPIC, p, p == 0 ? 1 : 2), 0);
    assert_int_equal(
        rd_kafka_mock_coordinator_set(f->mock.mc, "group", "stockpot-projection-contract", 3), 0);
    assert_int_equal(rd_kafka_mock_coordinator_set(f->mock.mc, "transaction", "contract-writer", 3),
                     0);
}

/* es_log_end, es_log_read and es_log_wait give up within about kafka.timeout_ms when the
 * partition's leader is down (they took over 60 s: librdkafka's watermark query), name
 * the partition, and work again once it is back. */
static void test_kafka_leader_down(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct seen_list *l = calloc(1, sizeof(*l));
    struct es_log *log = open_ok(f, ES_LOG_WRITER);
    int64_t end0 = -1, end = -1, next = -7, t0, deadline_us;
    int rc;

    assert_non_null(l);
    pin_leaders(f);
    for (int64_t v = 1; v <= 4; v++) /* some land on partition 0 */
        assert_int_equal(
            append_stream(log, v % 2 ? "recipe-1" : "user-2", (v + 1) / 2, 1, NULL, NULL, &eb), 0);
    es_log_close(log);
    assert_int_equal(kafka_open_id(f, KAFKA_TOPIC, DOWN_TIMEOUT_MS, ES_LOG_READER, &log, &eb), 0);
    assert_int_equal(es_log_end(log, 0, &end0, &eb), 0);
    assert_int_equal(rd_kafka_mock_broker_set_down(f->mock.mc, 1), 0);

    t0 = sp_time_mono_us();
    assert_int_equal(es_log_end(log, 0, &end, &eb), SP_EUNAVAIL);
    assert_true(ms_since(t0) < DOWN_TIMEOUT_MS + DOWN_SLACK_MS);
    assert_non_null(strstr(eb.msg, "partition 0"));
    t0 = sp_time_mono_us();
    assert_int_equal(es_log_read(log, 0, 0, SIZE_MAX, seen_cb, l, &next, &eb), SP_EUNAVAIL);
    assert_true(ms_since(t0) < DOWN_TIMEOUT_MS + DOWN_SLACK_MS);
    assert_non_null(strstr(eb.msg, "partition 0"));
    assert_int_equal(next, 0);
    assert_int_equal(l->n, 0);
    t0 = sp_time_mono_us(); /* a short wait keeps its own bound */
    rc = es_log_wait(log, 0, end0, 300, &eb);
    assert_true(rc == SP_ETIMEDOUT || rc == SP_EUNAVAIL);
    assert_true(ms_since(t0) < 300 + DOWN_SLACK_MS);
    assert_non_null(strstr(eb.msg, "partition 0"));
    t0 = sp_time_mono_us(); /* a long one stops at kafka.timeout_ms */
    assert_int_equal(es_log_wait(log, 0, end0, 30000, &eb), SP_EUNAVAIL);
    assert_true(ms_since(t0) < DOWN_TIMEOUT_MS + DOWN_SLACK_MS);
    assert_int_equal(es_log_end(log, 1, &end, &eb), 0); /* its leader is up */

    assert_int_equal(rd_kafka_mock_broker_set_up(f->mock.mc, 1), 0);
    deadline_us = sp_time_mono_us() + (int64_t)CONSUME_WAIT_MS * 1000;
    while ((rc = es_log_end(log, 0, &end, &eb)) != 0 && sp_time_mono_us() < deadline_us)
        ;
    assert_int_equal(rc, 0);
    assert_int_equal(end, end0);
    read_from(log, NULL, SIZE_MAX, l, NULL);
    assert_int_equal(l->n, 4);
    t0 = sp_time_mono_us();
    es_log_close(log);
    assert_true(ms_since(t0) < DOWN_TIMEOUT_MS + DOWN_SLACK_MS);
    free(l);
}

/* Every broker down: the same calls still return within about kafka.timeout_ms. */
static void test_kafka_all_brokers_down(void **state)
{
    struct fixture *f = *state;
    struct sp_errbuf eb = {{0}, {0}};
    struct seen_list *l = calloc(1, sizeof(*l));
    struct es_log *log = NULL;
    int64_t end = -1, next = -7, t0;
    int rc;

    assert_non_null(l);
    pin_leaders(f);
    assert_int_equal(kafka_open_id(f, KAFKA_TOPIC, DOWN_TIMEOUT_MS, ES_LOG_READER, &log, &eb), 0);
    for (int32_t b = 1; b <= 3; b++)
        assert_int_equal(rd_kafka_mock_broker_set_down(f->mock.mc, b), 0);
    for (int32_t p = 0; p < KAFKA_PARTS; p++) {
        t0 = sp_time_mono_us();
        assert_int_equal(es_log_end(log, p, &end, &eb), SP_EUNAVAIL);
        assert_true(ms_since(t0) < DOWN_TIMEOUT_MS + DOWN_SLACK_MS);
    }
    t0 = sp_time_mono_us();
    assert_int_equal(es_log_read(log, 2, 0, SIZE_MAX, seen_cb, l, &next, &eb), SP_EUNAVAIL);
    assert_true(ms_since(t0) < DOWN_TIMEOUT_MS + DOWN_SLACK_MS);
    assert_int_equal(next, 0);
    t0 = sp_time_mono_us();
    rc = es_log_wait(log, 1, 0, 500, &eb);
    assert_true(rc == SP_ETIMEDOUT || rc == SP_EUNAVAIL);
    assert_non_null(strstr(eb.msg, "partition 1"));
    assert_true(ms_since(t0) < 500 + DOWN_SLACK_MS);
    t0 = sp_time_mono_us();
    es_log_close(log);
    assert_true(ms_since(t0) < DOWN_TIMEOUT_MS + DOWN_SLACK_MS);
    for (int32_t b = 1; b <= 3; b++)
        assert_int_equal(rd_kafka_mock_broker_set_up(f->mock.mc, b), 0);
    free(l);
}

static bool all_assigned(void *ud)
{
    return es_consumer_assignment(ud, NULL, 0) == KAFKA_PARTS;
}

/* A consumer whose group coordinator and a partition leader are down, or whose coordinator
 * hangs: polls keep their timeout; close returns at once without a coordinator, within
 * librdkafka's LeaveGroup timeout with a hung one, and on_revoke still runs. */
static void test_kafka_consumer_brokers_down(void **state)
{
    struct fixture *f = *state;
    struct proj_store store = {{0}};
    struct sp_errbuf eb = {{0}, {0}};
    struct proj p;
    struct es_consumer *c;
    int64_t t0;

    proj_init(&p, &store);
    pin_leaders(f);
    append_round(f, 1, NULL, NULL);
    c = consumer_ok(f, &p);
    poll_until(c, &p, NULL, NULL, CONSUME_STREAMS, all_assigned, c);
    assert_int_equal(rd_kafka_mock_broker_set_down(f->mock.mc, 3), 0); /* the coordinator */
    assert_int_equal(rd_kafka_mock_broker_set_down(f->mock.mc, 1), 0); /* partition 0's leader */
    for (int i = 0; i < 3; i++) {
        t0 = sp_time_mono_us();
        assert_int_equal(es_consumer_poll(c, 5, 300, proj_apply, &p, &eb), 0);
        assert_true(ms_since(t0) < 300 + DOWN_SLACK_MS);
    }
    t0 = sp_time_mono_us();
    es_consumer_close(c); /* no coordinator: the group is not left (its session expires) */
    assert_true(ms_since(t0) < DOWN_SLACK_MS);
    assert_int_equal(p.revokes, 1);
    assert_int_equal(rd_kafka_mock_broker_set_up(f->mock.mc, 1), 0);
    assert_int_equal(rd_kafka_mock_broker_set_up(f->mock.mc, 3), 0);
    proj_free(&p);

    /* a coordinator that accepts requests but never answers (a hung broker) */
    proj_init(&p, &store);
    c = consumer_ok(f, &p);
    poll_until(c, &p, NULL, NULL, SIZE_MAX, all_assigned, c);
    assert_int_equal(rd_kafka_mock_broker_set_rtt(f->mock.mc, 3, 120000), 0);
    t0 = sp_time_mono_us();
    assert_int_equal(es_consumer_poll(c, 5, 300, proj_apply, &p, &eb), 0);
    assert_true(ms_since(t0) < 300 + DOWN_SLACK_MS);
    t0 = sp_time_mono_us();
    es_consumer_close(c);
    assert_true(ms_since(t0) < LEAVE_GROUP_MS + DOWN_SLACK_MS);
    assert_int_equal(p.revokes, 1);
    proj_free(&p);

    /* hung before the consumer joined: JoinGroup outstanding at close */
    proj_init(&p, &store);
    c = consumer_ok(f, &p);
    for (int i = 0; i < 5; i++)
        assert_int_equal(es_consumer_poll(c, 5, 200, proj_apply, &p, &eb), 0);
    t0 = sp_time_mono_us();
    es_consumer_close(c);
    assert_true(ms_since(t0) < DOWN_SLACK_MS);
    assert_int_equal(p.revokes, 0);
    assert_int_equal(rd_kafka_mock_broker_set_rtt(f->mock.mc, 3, 0), 0);
    proj_free(&p);
}

/* A reader needs no transactional id (es/log.h: unused by readers); a writer does. */
static void test_kafka_reader_without_transactional_id(void **state)
{
    struct fixture *f = *state;
    struct es_kafka_opts opts = {
        .brokers = f->mock.brokers,
        .topic = KAFKA_TOPIC,
        .partitions = KAFKA_PARTS,
        .replication_factor = 3,
        .transactional_id = "",
        .timeout_ms = KAFKA_TIMEOUT,
        .max_event_bytes = MAX_EVENT,
    };
    struct sp_errbuf eb = {{0}, {0}};
    struct es_log *log = NULL;
    int64_t end = -1;

    assert_int_equal(es_log_open_kafka(&opts, ES_LOG_READER, &log, &eb), 0);
    assert_int_equal(es_log_end(log, 0, &end, &eb), 0);
    es_log_close(log);
    opts.transactional_id = NULL;
    assert_int_equal(es_log_open_kafka(&opts, ES_LOG_READER, &log, &eb), 0);
    assert_int_equal(es_log_partitions(log), KAFKA_PARTS);
    es_log_close(log);
    log = NULL;
    assert_int_equal(es_log_open_kafka(&opts, ES_LOG_WRITER, &log, &eb), SP_EINVAL);
    assert_null(log);
    assert_string_equal(eb.field, "kafka.transactional_id");
}

#define CONTRACT(test, backend)                                                                    \
    cmocka_unit_test_prestate_setup_teardown(test, setup, teardown, &(backend))
#define CONTRACT_ALL(test) CONTRACT(test, lmdb_backend), CONTRACT(test, kafka_backend)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CONTRACT_ALL(test_order_and_positions),
        CONTRACT_ALL(test_survives_reopen),
        CONTRACT_ALL(test_batch_all_or_nothing),
        CONTRACT_ALL(test_resume_from_checkpoint),
        CONTRACT_ALL(test_bad_checksum),
        CONTRACT_ALL(test_consumer_exactly_once),
        CONTRACT_ALL(test_consumer_resume),
        CONTRACT_ALL(test_consumer_seek),
        CONTRACT_ALL(test_consumer_assign_fails),
        CONTRACT_ALL(test_next_offset_when_nothing_read),
        CONTRACT(test_kafka_consumer_group, kafka_backend),
        CONTRACT(test_kafka_consumer_open_errors, kafka_backend),
        CONTRACT(test_kafka_fenced_on_endtxn, kafka_backend),
        CONTRACT(test_kafka_fenced_on_addpartitions, kafka_backend),
        CONTRACT(test_kafka_fenced_on_produce, kafka_backend),
        CONTRACT(test_kafka_retriable, kafka_backend),
        CONTRACT(test_kafka_missing_header, kafka_backend),
        CONTRACT(test_kafka_topic_and_brokers, kafka_backend),
        CONTRACT(test_kafka_from_config, kafka_backend),
        CONTRACT(test_kafka_reader_without_transactional_id, kafka_backend),
        CONTRACT(test_kafka_leader_down, kafka_backend),
        CONTRACT(test_kafka_all_brokers_down, kafka_backend),
        CONTRACT(test_kafka_consumer_brokers_down, kafka_backend),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
