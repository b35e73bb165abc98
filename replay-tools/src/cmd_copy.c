/*
 * copy-log: copy the embedded LMDB log into the Kafka log in log order, in batches of one
 * Kafka transaction each, skipping every event whose id the topic already holds, so that
 * a rerun (after an interruption or a --limit) copies nothing twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <jansson.h>

#include "es/log.h"
#include "cli.h"
#include "copy.h"
#include "replay/replay.h"
#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/time.h"

#include "sp/banned.h"

#define ID_READ_CHUNK 1000 /* records per es_log_read while collecting the topic's ids */

struct copy_ctx {
    const struct replay__copy_opts *opts;
    struct replay__copy_stats *st;
    struct es_log *src, *dst;
    json_t *ids;            /* event id -> false: in the topic, not met yet; true: met or copied */
    int64_t matched;        /* ids of the topic met in the embedded log */
    struct es_event *batch; /* opts->batch_max initialised slots */
    size_t n;               /* events in batch */
    struct sp_buf enc;      /* scratch for the byte-for-byte check */
    int64_t t0_us, progress_us;
    int64_t progress_read; /* st->read at the last progress line */
    int rc;                /* a callback's error (eb filled), 0 if it only stopped */
    struct sp_errbuf *eb;
};

/*
 * Take the embedded log's writer lock (es/log.h: an exclusive flock on
 * <dir>/writer.lock) so that no writer appends while the copy runs, nor starts during it.
 */
static int writer_lock(const char *dir, int *fd, struct sp_errbuf *eb)
{
    char path[4096], pid[32];
    ssize_t n;

    snprintf(path, sizeof(path), "%s/writer.lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) {
        int err = errno;
        if (err == ENOENT)
            return sp_err_set(eb, SP_ENOTFOUND, "log.dir", "no log in \"%s\"", dir);
        return sp_err_set(eb, -err, "log.dir", "could not open \"%s\": %s", path, strerror(err));
    }
    if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    n = pread(*fd, pid, sizeof(pid) - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    close(*fd);
    *fd = -1;
    return sp_err_set(eb, SP_ESTATE, "log.dir",
                      "the embedded log \"%s\" has a running writer (pid %s): stop command-api "
                      "before copying, or use --live to copy what is there now",
                      dir, pid[0] ? pid : "unknown");
}

static int open_dst(const struct sp_config *cfg, struct es_log **dst, struct sp_errbuf *eb)
{
    char txn_id[512];
    struct es_kafka_opts ko = {
        .brokers = sp_config_str(cfg, "kafka.brokers"),
        .topic = sp_config_str(cfg, "kafka.topic"),
        .partitions = (int32_t)sp_config_int(cfg, "kafka.partitions"),
        .replication_factor = (int16_t)sp_config_int(cfg, "kafka.replication_factor"),
        .transactional_id = txn_id,
        .timeout_ms = (int)sp_config_int(cfg, "kafka.timeout_ms"),
        .max_event_bytes = (size_t)sp_config_int(cfg, "log.max_event_bytes"),
    };

    /* its own transactional.id: never fences a command-api, and re-running the copy
     * aborts a transaction an interrupted copy left open */
    snprintf(txn_id, sizeof(txn_id), "%s" REPLAY_COPY_TXN_SUFFIX,
             sp_config_str(cfg, "kafka.transactional_id"));
    return es_log_open_kafka(&ko, ES_LOG_WRITER, dst, eb);
}

/* Collect the id of one record of the topic. */
static int id_record(const struct es_log_record *rec, void *ud)
{
    struct copy_ctx *c = ud;
    struct sp_errbuf tmp = {{0}, {0}};
    struct es_event ev;

    es_event_init(&ev);
    if (es_log_record_decode(rec, &ev, &tmp) != 0) {
        c->rc = sp_err_set(c->eb, SP_ECORRUPT, NULL,
                           "kafka record at partition %d offset %lld: %s; cannot tell which "
                           "events the topic holds",
                           (int)rec->pos.partition, (long long)rec->pos.offset, tmp.msg);
        return 1;
    }
    if (json_object_get(c->ids, ev.id) == NULL) {
        json_object_set_new(c->ids, ev.id, json_false());
        c->st->present++;
    }
    es_event_release(&ev);
    return 0;
}

/* Read the id of every committed record of every partition (read_committed). */
static int load_ids(struct copy_ctx *c)
{
    for (int32_t p = 0; p < es_log_partitions(c->dst); p++) {
        int64_t end, next;
        int rc = es_log_end(c->dst, p, &end, c->eb);

        for (int64_t off = 0; rc == 0 && off < end; off = next) {
            rc = es_log_read(c->dst, p, off, ID_READ_CHUNK, id_record, c, &next, c->eb);
            if (rc == 0 && next == off)
                break;
        }
        if (rc != 0)
            return c->rc != 0 ? c->rc : rc;
    }
    return 0;
}

/* Whether @p ev encodes to exactly the bytes stored: then the Kafka value is the same. */
static int same_bytes(struct copy_ctx *c, const struct es_log_record *rec, struct es_event *ev)
{
    struct sp_errbuf tmp = {{0}, {0}};
    int rc;

    sp_buf_reset(&c->enc);
    rc = es_event_encode(ev, &c->enc, &tmp);
    if (rc == 0 && c->enc.len == rec->value_len &&
        memcmp(c->enc.data, rec->value, rec->value_len) == 0)
        return 1;
    c->rc = sp_err_set(c->eb, SP_ECORRUPT, NULL,
                       "event %s at offset %lld of the embedded log cannot be copied byte for "
                       "byte (%s); stopped before it",
                       ev->id, (long long)rec->pos.offset,
                       rc ? tmp.msg : "its envelope re-encodes differently");
    return 0;
}

/* One embedded record: skip it if its id is known, else add it to the batch. */
static int copy_record(const struct es_log_record *rec, void *ud)
{
    struct copy_ctx *c = ud;
    struct sp_errbuf tmp = {{0}, {0}};
    struct es_event *ev = &c->batch[c->n];
    json_t *seen;

    c->st->read++;
    if (es_log_record_decode(rec, ev, &tmp) != 0) {
        c->rc = sp_err_set(c->eb, SP_ECORRUPT, NULL,
                           "embedded log record at offset %lld: %s (see stockpot-replay verify); "
                           "stopped before it",
                           (long long)rec->pos.offset, tmp.msg);
        return 1;
    }
    if ((seen = json_object_get(c->ids, ev->id)) != NULL) {
        if (json_is_true(seen))
            replay__error("copy-log: event id %s at offset %lld was already met earlier in the "
                          "embedded log (see stockpot-replay verify); skipped",
                          ev->id, (long long)rec->pos.offset);
        else
            c->matched++;
        json_object_set_new(c->ids, ev->id, json_true());
        c->st->skipped++;
        es_event_release(ev);
        return 0;
    }
    if (!same_bytes(c, rec, ev)) {
        es_event_release(ev);
        return 1;
    }
    json_object_set_new(c->ids, ev->id, json_true());
    c->n++;
    return c->opts->limit >= 0 && c->st->copied + (int64_t)c->n >= c->opts->limit ? 1 : 0;
}

/* Append the batch as one Kafka transaction. */
static int flush_batch(struct copy_ctx *c)
{
    const struct es_event **evs;
    int rc;

    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, as intended */
    evs = sp_xcalloc(c->n ? c->n : 1, sizeof(*evs));
    for (size_t i = 0; i < c->n; i++)
        evs[i] = &c->batch[i];
    rc = es_log_append(c->dst, evs, c->n, NULL, c->eb);
    if (rc == 0)
        c->st->copied += (int64_t)c->n;
    for (size_t i = 0; i < c->n; i++)
        es_event_release(&c->batch[i]);
    c->n = 0;
    free(evs);
    return rc;
}

static void progress(struct copy_ctx *c, bool force)
{
    int64_t now_us = sp_time_mono_us();
    double secs = (double)(now_us - c->t0_us) / 1e6;

    if (!c->opts->progress || c->progress_read == c->st->read ||
        (!force && now_us - c->progress_us < REPLAY_COPY_PROGRESS_USS))
        return;
    c->progress_us = now_us;
    c->progress_read = c->st->read;
    fprintf(stderr,
            "stockpot-replay: copy-log: %lld/%lld records read, %lld copied, %lld skipped, "
            "%.0f events/s\n",
            (long long)c->st->read, (long long)c->st->end, (long long)c->st->copied,
            (long long)c->st->skipped, secs > 0 ? (double)c->st->read / secs : 0.0);
}

/* Walk the embedded log up to its end as of the start, a batch at a time. */
static int copy_all(struct copy_ctx *c)
{
    int64_t off = 0, next;
    int rc = 0;

    while (off < c->st->end && (c->opts->limit < 0 || c->st->copied < c->opts->limit)) {
        int64_t left = c->st->end - off;
        size_t max = left < (int64_t)c->opts->batch_max ? (size_t)left : c->opts->batch_max;

        rc = es_log_read(c->src, 0, off, max, copy_record, c, &next, c->eb);
        if (c->rc != 0) {
            /* copy what came before the bad record, then report it */
            struct sp_errbuf first = *c->eb;
            if ((rc = flush_batch(c)) != 0)
                return rc;
            *c->eb = first;
            return c->rc;
        }
        if (rc < 0)
            return rc;
        if ((rc = flush_batch(c)) != 0)
            return rc;
        progress(c, false);
        if (next == off)
            break;
        off = next;
    }
    return 0;
}

static int copy_run(const struct sp_config *cfg, struct copy_ctx *c)
{
    const char *dir = sp_config_str(cfg, "log.dir");
    int rc = es_log_open_lmdb(dir, (size_t)sp_config_int(cfg, "log.map_size_mb") << 20,
                              (size_t)sp_config_int(cfg, "log.max_event_bytes"), ES_LOG_READER,
                              &c->src, c->eb);

    if (rc != 0)
        return rc;
    if ((rc = es_log_end(c->src, 0, &c->st->end, c->eb)) != 0 ||
        (rc = open_dst(cfg, &c->dst, c->eb)) != 0)
        return rc;
    if (c->opts->progress)
        fprintf(stderr,
                "stockpot-replay: copy-log: %lld records in \"%s\"; reading the event ids "
                "already in kafka topic \"%s\" (%d partitions)\n",
                (long long)c->st->end, dir, sp_config_str(cfg, "kafka.topic"),
                (int)es_log_partitions(c->dst));
    if ((rc = load_ids(c)) != 0)
        return rc;
    rc = copy_all(c);
    progress(c, true);
    return rc;
}

int replay__copy_log(const struct sp_config *cfg,
                     const struct replay__copy_opts *opts,
                     struct replay__copy_stats *st,
                     struct sp_errbuf *eb)
{
    struct copy_ctx c = {.opts = opts, .st = st, .ids = json_object(), .eb = eb};
    int lock_fd = -1, rc = 0;

    memset(st, 0, sizeof(*st));
    c.t0_us = c.progress_us = sp_time_mono_us();
    c.batch = sp_xcalloc(opts->batch_max, sizeof(*c.batch));
    for (size_t i = 0; i < opts->batch_max; i++)
        es_event_init(&c.batch[i]);
    sp_buf_init(&c.enc, (size_t)sp_config_int(cfg, "log.max_event_bytes"));
    if (!opts->live)
        rc = writer_lock(sp_config_str(cfg, "log.dir"), &lock_fd, eb);
    if (rc == 0)
        rc = copy_run(cfg, &c);
    st->foreign = st->present - c.matched;
    st->elapsed_us = sp_time_mono_us() - c.t0_us;
    es_log_close(c.dst);
    es_log_close(c.src);
    if (lock_fd >= 0)
        close(lock_fd); /* releases the flock */
    sp_buf_release(&c.enc);
    for (size_t i = 0; i < opts->batch_max; i++)
        es_event_release(&c.batch[i]);
    free(c.batch);
    json_decref(c.ids);
    return rc;
}

static void copy_usage(FILE *f)
{
    fprintf(f,
            "usage: stockpot-replay copy-log --to kafka [--batch N] [--limit N] [--live]\n"
            "Copies the embedded log (log.dir) into the Kafka log (kafka.brokers, kafka.topic;\n"
            "the topic is created with kafka.partitions and kafka.replication_factor when\n"
            "absent), in log order, so each stream keeps its order, every event its id and\n"
            "its envelope byte for byte. Events whose id the topic already holds\n"
            "(read_committed) are skipped: a rerun, or a run after an interrupted one, copies\n"
            "nothing twice. Each batch of N events (default %d) is one Kafka transaction of\n"
            "transactional.id \"<kafka.transactional_id>" REPLAY_COPY_TXN_SUFFIX "\" (a running\n"
            "command-api is not fenced).\n"
            "Stop command-api first: the copy takes the embedded log's writer lock and\n"
            "refuses to start while a writer holds it.\n"
            "  --limit N  copy at most N events now (run again for the rest)\n"
            "  --live     do not take the writer lock: copy what the log holds now; stop\n"
            "             command-api and run again to copy the rest\n"
            "log.backend is not used: the source is always the embedded log.\n",
            REPLAY_COPY_BATCH);
}

static int parse_args(int argc, char **argv, struct replay__copy_opts *o)
{
    bool to_kafka = false;
    int64_t batch = REPLAY_COPY_BATCH;

    for (int i = 0; i < argc;) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (replay__is_help(opt))
            return -1;
        if (strcmp(opt, "--live") == 0) {
            o->live = true;
            i++;
            continue;
        }
        if (strcmp(opt, "--to") == 0 && val != NULL && strcmp(val, "kafka") == 0) {
            to_kafka = true;
        } else if (strcmp(opt, "--to") == 0) {
            replay__error("copy-log: --to \"%s\" is not supported (only --to kafka)",
                          val ? val : "");
            return REPLAY_EXIT_USAGE;
        } else if (!(strcmp(opt, "--limit") == 0 && replay__parse_count(val, &o->limit) == 0) &&
                   !(strcmp(opt, "--batch") == 0 && replay__parse_count(val, &batch) == 0 &&
                     batch >= 1 && batch <= REPLAY_COPY_BATCH_MAX)) {
            replay__error("copy-log: bad argument \"%s\"%s", opt,
                          val == NULL || val[0] == '-' ? "" : " or its value");
            return REPLAY_EXIT_USAGE;
        }
        i += 2; /* the other options take a value */
    }
    if (!to_kafka) {
        replay__error("copy-log: --to kafka is required");
        return REPLAY_EXIT_USAGE;
    }
    o->batch_max = (size_t)batch;
    return 0;
}

static void print_summary(const struct sp_config *cfg, const struct replay__copy_stats *st)
{
    double secs = (double)st->elapsed_us / 1e6;

    printf("copy-log to kafka topic \"%s\": %lld events read, %lld copied, %lld skipped as "
           "already present, %.3f s, %.0f events/s\n",
           sp_config_str(cfg, "kafka.topic"), (long long)st->read, (long long)st->copied,
           (long long)st->skipped, secs, secs > 0 ? (double)st->read / secs : 0.0);
    if (st->read < st->end)
        printf("%lld of %lld records of the embedded log not read yet: run copy-log again\n",
               (long long)(st->end - st->read), (long long)st->end);
    if (st->foreign > 0)
        replay__error("copy-log: warning: the topic holds %lld events that are not in the "
                      "embedded log (has a command-api already written to kafka?)",
                      (long long)st->foreign);
}

int replay_cmd_copy_log(const struct sp_config *cfg, int argc, char **argv)
{
    struct replay__copy_opts opts = {REPLAY_COPY_BATCH, -1, false, true};
    struct replay__copy_stats st;
    struct sp_errbuf eb = {{0}, {0}};
    int rc = parse_args(argc, argv, &opts);

    if (rc != 0) {
        copy_usage(rc < 0 ? stdout : stderr);
        return rc < 0 ? REPLAY_EXIT_OK : rc;
    }
    rc = replay__copy_log(cfg, &opts, &st, &eb);
    if (rc == 0 || st.read > 0)
        print_summary(cfg, &st);
    fflush(stdout);
    if (rc != 0) {
        replay__error("copy-log failed: %s", eb.msg);
        return REPLAY_EXIT_FAIL;
    }
    return REPLAY_EXIT_OK;
}
