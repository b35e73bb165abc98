/* Event log append benchmark: appends N RecipeCreated-shaped events in batches of B
 * through es_log_append on the LMDB or the Kafka backend and prints appends/s, events/s
 * and the p50/p99/max latency of one batch, stating batch size, acks and durability. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bench_util.h"
#include "es/event.h"
#include "es/id.h"
#include "es/log.h"
#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/log.h"
#include "sp/time.h"
#include "sp/banned.h"

#define BENCH_MAX_EVENT_BYTES ((size_t)1024 * 1024)

struct bench_opts {
    const char *backend; /* "lmdb" | "kafka" */
    const char *dir;     /* LMDB log directory */
    const char *brokers; /* Kafka bootstrap servers */
    const char *topic;   /* Kafka topic */
    long partitions;     /* Kafka partitions, if the topic is created */
    long replication;    /* Kafka replication factor, if the topic is created */
    long timeout_ms;     /* Kafka operation bound, ms */
    int mock;            /* the brokers are librdkafka's mock cluster */
    const char *data;    /* JSONL recipes */
    long events;         /* events to append (rounded up to whole batches) */
    long batch;          /* events per es_log_append */
    long warmup;         /* batches appended first and not counted */
    long duration_s;     /* stop early after this long, seconds */
    long map_size_mb;    /* LMDB map size, MiB */
};

struct bench {
    struct bench_opts opt;
    /* JSONL records, each an owned json_t object */
    struct bench_records recipes;
    size_t next_recipe;
    struct es_snowflake ids;
    struct es_log *log;
    struct es_event *evs; /* batch events, opt.batch of them */
    const struct es_event **evp;
    int64_t *lat_us;    /* latency of each counted batch */
    size_t batch_bytes; /* encoded envelope bytes of the batch being appended */
    long batches;       /* counted batches appended */
    long events_done;   /* counted events appended */
    size_t value_bytes; /* encoded envelope bytes of the counted events */
};

/* Make event @p i of the next batch: a RecipeCreated of the next recipe. @return 0 or error. */
static int bench_make_event(struct bench *b, struct es_event *ev)
{
    const json_t *rec = b->recipes.items[b->next_recipe++ % b->recipes.n];
    int64_t id = es_snowflake_next(&b->ids);
    char id_s[24], stream[32];

    snprintf(id_s, sizeof(id_s), "%lld", (long long)id);
    snprintf(stream, sizeof(stream), "recipe-%s", id_s);
    return es_event_make(ev, "RecipeCreated", stream, 1, "1", NULL, NULL,
                         bench_recipe_payload(rec, id_s, "1", false));
}

/* Build the next batch of opt.batch events and measure their encoded size (outside the
 * timed section). @return 0 or an error of es_event_make / es_event_encode. */
static int bench_fill(struct bench *b)
{
    struct sp_buf buf;
    int rc = 0;

    sp_buf_init(&buf, 0);
    b->batch_bytes = 0;
    for (long i = 0; rc == 0 && i < b->opt.batch; i++) {
        es_event_release(&b->evs[i]);
        if ((rc = bench_make_event(b, &b->evs[i])) != 0)
            break;
        sp_buf_reset(&buf);
        rc = es_event_encode(&b->evs[i], &buf, NULL);
        b->batch_bytes += buf.len;
    }
    sp_buf_release(&buf);
    return rc;
}

static int bench_open(struct bench *b, struct sp_errbuf *eb)
{
    const struct bench_opts *o = &b->opt;
    if (strcmp(o->backend, "lmdb") == 0)
        return es_log_open_lmdb(o->dir, (size_t)o->map_size_mb << 20, BENCH_MAX_EVENT_BYTES,
                                ES_LOG_WRITER, &b->log, eb);
    char txid[64];
    snprintf(txid, sizeof(txid), "stockpot-bench-append-%ld", (long)getpid());
    struct es_kafka_opts ko = {
        .brokers = o->brokers,
        .topic = o->topic,
        .partitions = (int32_t)o->partitions,
        .replication_factor = (int16_t)o->replication,
        .transactional_id = txid,
        .timeout_ms = (int)o->timeout_ms,
        .max_event_bytes = BENCH_MAX_EVENT_BYTES,
    };
    return es_log_open_kafka(&ko, ES_LOG_WRITER, &b->log, eb);
}

/* Append one batch; count it unless @p warm. @return 0 or es_log_append's error. */
static int bench_append_one(struct bench *b, int warm, struct sp_errbuf *eb)
{
    int64_t t0, t1;
    int rc;
    if ((rc = bench_fill(b)) != 0) {
        sp_err_set(eb, rc, NULL, "could not build events: %s", sp_strerror(rc));
        return rc;
    }
    t0 = sp_time_mono_us();
    rc = es_log_append(b->log, b->evp, (size_t)b->opt.batch, NULL, eb);
    t1 = sp_time_mono_us();
    if (rc != 0 || warm)
        return rc;
    b->lat_us[b->batches++] = t1 - t0;
    b->events_done += b->opt.batch;
    b->value_bytes += b->batch_bytes;
    return 0;
}

static void bench_print_setup(const struct bench *b)
{
    const struct bench_opts *o = &b->opt;
    if (strcmp(o->backend, "lmdb") == 0) {
        printf("backend:     lmdb (embedded log in %s)\n", o->dir);
        printf("durability:  synced commit: each es_log_append is one LMDB write transaction,\n"
               "             fsync'd (no MDB_NOSYNC/NOMETASYNC) before it returns; no acks\n"
               "             (one process, no replication)\n");
    } else {
        printf("backend:     kafka (brokers %s, topic %s, %ld partitions, replication factor "
               "%ld)\n",
               o->brokers, o->topic, o->partitions, o->replication);
        printf("durability:  acks=all, idempotent transactional producer: each es_log_append "
               "is one\n             Kafka transaction, returned once committed\n");
        if (o->mock)
            printf("NOTE:        the brokers are librdkafka's MOCK cluster "
                   "(stockpot-kafka-mock: in-process,\n             in memory, no disk, "
                   "loopback only): these Kafka figures are NOT those of a\n             real "
                   "broker and must not be compared with LMDB's synced commits\n");
    }
    printf("batch size:  %ld event%s per es_log_append\n", o->batch, o->batch == 1 ? "" : "s");
    printf("events:      RecipeCreated envelopes built from %s (%zu records, cycled)\n", o->data,
           b->recipes.n);
}

static void bench_report(const struct bench *b, int64_t elapsed_us)
{
    double s = (double)elapsed_us / 1e6;
    long n = b->batches;
    struct bench_latency lat;
    if (n == 0) {
        printf("no batch appended\n");
        return;
    }
    bench_latency_summarize(b->lat_us, n, &lat);
    printf("appended:    %ld events in %ld batches in %.2f s (after %ld warm-up batches)\n",
           b->events_done, n, s, b->opt.warmup);
    printf("throughput:  %.1f appends/s, %.0f events/s, %.1f MB/s of envelopes\n", (double)n / s,
           (double)b->events_done / s, (double)b->value_bytes / s / 1e6);
    printf("latency:     per batch p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", lat.p50_ms, lat.p99_ms,
           lat.max_ms);
}

static void bench_usage(FILE *out)
{
    fprintf(out, "usage: bench_append --backend lmdb --dir DIR [options]\n"
                 "       bench_append --backend kafka --brokers HOST:PORT[,...] [--mock] "
                 "[options]\n"
                 "Appends RecipeCreated events through es_log_append in batches and prints\n"
                 "appends/s, events/s and p50/p99/max latency per batch.\n"
                 "  --data FILE          recipes JSONL (default deploy/data/sample.jsonl)\n"
                 "  --events N           events to append (default 4096; whole batches)\n"
                 "  --batch N            events per append (default 16)\n"
                 "  --warmup N           uncounted batches first (default 8)\n"
                 "  --duration-s N       stop after N seconds (default 60)\n"
                 "  --map-size-mb N      LMDB map size (default 4096)\n"
                 "  --topic T            Kafka topic (default stockpot.bench)\n"
                 "  --partitions N       Kafka partitions if created (default 6)\n"
                 "  --replication-factor N  Kafka replication factor if created (default 3)\n"
                 "  --timeout-ms N       Kafka operation bound (default 10000)\n"
                 "  --mock               the brokers are librdkafka's mock cluster (says so)\n");
}

/* Store numeric option @p ch into @p o. @return 0 or -1 if out of range. */
static int bench_parse_num(struct bench_opts *o, int ch, const char *arg)
{
    const struct {
        int ch;
        long *dst;
        long min, max;
    } nums[] = {
        {'n', &o->events, 1, 100000000},    {'b', &o->batch, 1, 65536},
        {'w', &o->warmup, 0, 1000000},      {'D', &o->duration_s, 1, 86400},
        {'M', &o->map_size_mb, 1, 1048576}, {'p', &o->partitions, 1, 100000},
        {'r', &o->replication, 1, 32767},   {'T', &o->timeout_ms, 100, 3600000},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (nums[i].ch != ch)
            continue;
        return bench_parse_long(arg, nums[i].min, nums[i].max, nums[i].dst) == 0 ? 0 : -1;
    }
    return -1;
}

static int bench_parse(struct bench_opts *o, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"backend", required_argument, NULL, 'B'},
        {"dir", required_argument, NULL, 'd'},
        {"brokers", required_argument, NULL, 'k'},
        {"topic", required_argument, NULL, 't'},
        {"data", required_argument, NULL, 'f'},
        {"mock", no_argument, NULL, 'm'},
        {"events", required_argument, NULL, 'n'},
        {"batch", required_argument, NULL, 'b'},
        {"warmup", required_argument, NULL, 'w'},
        {"duration-s", required_argument, NULL, 'D'},
        {"map-size-mb", required_argument, NULL, 'M'},
        {"partitions", required_argument, NULL, 'p'},
        {"replication-factor", required_argument, NULL, 'r'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (ch) {
        case 'B':
            o->backend = optarg;
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 'k':
            o->brokers = optarg;
            break;
        case 't':
            o->topic = optarg;
            break;
        case 'f':
            o->data = optarg;
            break;
        case 'm':
            o->mock = 1;
            break;
        case 'h':
            bench_usage(stdout);
            exit(0);
        default:
            if (ch == '?' || bench_parse_num(o, ch, optarg) != 0) {
                bench_usage(stderr);
                return -1;
            }
        }
    }
    if (o->backend == NULL || (strcmp(o->backend, "lmdb") == 0 && o->dir == NULL) ||
        (strcmp(o->backend, "kafka") == 0 && o->brokers == NULL) ||
        (strcmp(o->backend, "lmdb") != 0 && strcmp(o->backend, "kafka") != 0)) {
        bench_usage(stderr);
        return -1;
    }
    return 0;
}

/* Warm up, then append until opt.events or opt.duration_s. @return 0 or an append error. */
static int bench_run(struct bench *b, int64_t *elapsed_us, struct sp_errbuf *eb)
{
    long want = (b->opt.events + b->opt.batch - 1) / b->opt.batch;
    int64_t start, deadline;
    int rc = 0;

    for (long i = 0; rc == 0 && i < b->opt.warmup; i++)
        rc = bench_append_one(b, 1, eb);
    b->lat_us = sp_xcalloc((size_t)want, sizeof(int64_t));
    start = sp_time_mono_us();
    deadline = start + (int64_t)b->opt.duration_s * 1000000;
    while (rc == 0 && b->batches < want && sp_time_mono_us() < deadline)
        rc = bench_append_one(b, 0, eb);
    /* wall clock of the run, including building the batches (not in the latencies) */
    *elapsed_us = sp_time_mono_us() - start;
    return rc;
}

int main(int argc, char **argv)
{
    struct bench b;
    struct sp_errbuf eb = {{0}, {0}};
    int64_t elapsed_us = 0;
    int rc, status = 1;

    memset(&b, 0, sizeof(b));
    b.opt = (struct bench_opts){.data = "deploy/data/sample.jsonl",
                                .topic = "stockpot.bench",
                                .partitions = 6,
                                .replication = 3,
                                .timeout_ms = 10000,
                                .events = 4096,
                                .batch = 16,
                                .warmup = 8,
                                .duration_s = 60,
                                .map_size_mb = 4096};
    if (bench_parse(&b.opt, argc, argv) != 0)
        return 2;
    sp_log_setup(SP_LOG_WARN, "bench-append");
    if ((rc = bench_records_load(b.opt.data, bench_recipe_of, &b.recipes)) != 0) {
        fprintf(stderr, "bench_append: could not load \"%s\": %s\n", b.opt.data, sp_strerror(rc));
        goto out_free_recipes;
    }
    es_snowflake_init(&b.ids, 1000);
    b.evs = sp_xcalloc((size_t)b.opt.batch, sizeof(struct es_event));
    b.evp = sp_xcalloc((size_t)b.opt.batch, sizeof(struct es_event *));
    for (long i = 0; i < b.opt.batch; i++) {
        es_event_init(&b.evs[i]);
        b.evp[i] = &b.evs[i];
    }
    if (bench_open(&b, &eb) != 0) {
        fprintf(stderr, "bench_append: could not open the %s log: %s\n", b.opt.backend, eb.msg);
        goto out_free_events;
    }
    bench_print_setup(&b);
    rc = bench_run(&b, &elapsed_us, &eb);
    if (rc != 0)
        fprintf(stderr, "bench_append: append failed after %ld batches: %s (%s)\n", b.batches,
                eb.msg, sp_errname(rc));
    bench_report(&b, elapsed_us);
    status = rc == 0 ? 0 : 1;
    es_log_close(b.log);
out_free_events:
    for (long i = 0; b.evs != NULL && i < b.opt.batch; i++)
        es_event_release(&b.evs[i]);
    free(b.evs);
    free((void *)b.evp);
    free(b.lat_us);
out_free_recipes:
    bench_records_release(&b.recipes, bench_recipe_free);
    return status;
}
