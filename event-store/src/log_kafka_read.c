/*
 * Kafka log reader: the handle's read_committed consumer is assigned to one partition at
 * the requested offset and polled until max records or the partition's end as queried at
 * the call; each record's xxh3 header (XXH3-64 of the value, 16 hex digits) is verified.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "es/checksum.h"
#include "log_kafka.h"
#include "sp/time.h"

#include "sp/banned.h"

#define KAFKA_POLL_MS 100 /* longest single consumer poll */

struct read_ctx {
    struct es_log_kafka *kl;
    int32_t partition;
    int64_t hi; /* end of the partition when the read started */
    size_t max, count;
    es_log_record_fn fn;
    void *ud;
    int64_t next; /* offset to resume from */
    int stop;     /* the callback's non-zero return */
    bool done;
};

void es__kafka_record_fill(struct es_log_record *rec,
                           const rd_kafka_message_t *m,
                           char *errbuf,
                           size_t errbuf_size)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *hval = NULL;
    size_t hsize = 0;
    char hex[ES_CHECKSUM_HEX_LEN + 1], computed_hex[ES_CHECKSUM_HEX_LEN + 1];
    uint64_t computed;

    memset(rec, 0, sizeof(*rec));
    rec->pos.partition = m->partition;
    rec->pos.offset = m->offset;
    rec->value = m->payload != NULL ? m->payload : "";
    rec->value_len = m->len;
    computed = es_checksum(rec->value, rec->value_len);
    if (rd_kafka_message_headers(m, &hdrs) != 0 ||
        rd_kafka_header_get_last(hdrs, "xxh3", &hval, &hsize) != 0 || hval == NULL) {
        snprintf(errbuf, errbuf_size,
                 "record at partition %d offset %" PRId64 " has no xxh3 header", (int)m->partition,
                 m->offset);
        goto out_corrupt;
    }
    snprintf(hex, sizeof(hex), "%.*s", hsize < sizeof(hex) ? (int)hsize : 0, (const char *)hval);
    if (hsize != ES_CHECKSUM_HEX_LEN || es_checksum_parse(hex, &rec->checksum) != 0) {
        snprintf(errbuf, errbuf_size,
                 "record at partition %d offset %" PRId64 " has a malformed xxh3 header",
                 (int)m->partition, m->offset);
        goto out_corrupt;
    }
    if (computed == rec->checksum)
        return;
    es_checksum_hex(computed, computed_hex);
    snprintf(errbuf, errbuf_size,
             "checksum mismatch at partition %d offset %" PRId64 ": stored %s computed %s",
             (int)m->partition, m->offset, hex, computed_hex);
out_corrupt:
    rec->status = SP_ECORRUPT;
    rec->error = errbuf;
}

/* A consumer error: ignored if transient (librdkafka retries), else the read's error. */
static int read_error(struct read_ctx *ctx, const rd_kafka_message_t *m, struct sp_errbuf *eb)
{
    switch (m->err) {
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        return sp_err_set(
            eb, SP_ENOTFOUND, NULL,
            "could not read kafka topic \"%s\" partition %d at offset %" PRId64 ": %s",
            ctx->kl->topic, (int)ctx->partition, ctx->next, rd_kafka_message_errstr(m));
    case RD_KAFKA_RESP_ERR__FATAL:
        return sp_err_set(eb, SP_EUNAVAIL, NULL, "kafka consumer failed: %s",
                          rd_kafka_message_errstr(m));
    default:
        return 0;
    }
}

/* Handle one polled message; sets ctx->done when the read is over. */
static int read_one(struct read_ctx *ctx, const rd_kafka_message_t *m, struct sp_errbuf *eb)
{
    struct es_log_record rec;
    char errbuf[200];

    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->partition == ctx->partition) {
            if (m->offset > ctx->next)
                ctx->next = m->offset; /* past trailing control records */
            ctx->done = true;
        }
        return 0;
    }
    if (m->err)
        return read_error(ctx, m, eb);
    if (m->partition != ctx->partition || m->offset < ctx->next)
        return 0; /* left over from an earlier assignment, or already passed */
    if (m->offset >= ctx->hi) {
        ctx->next = ctx->next > ctx->hi ? ctx->next : ctx->hi;
        ctx->done = true;
        return 0;
    }
    es__kafka_record_fill(&rec, m, errbuf, sizeof(errbuf));
    ctx->stop = ctx->fn(&rec, ctx->ud);
    ctx->count++;
    ctx->next = m->offset + 1;
    if (ctx->stop != 0 || ctx->count >= ctx->max || ctx->next >= ctx->hi)
        ctx->done = true;
    return 0;
}

static int read_loop(struct read_ctx *ctx, int64_t deadline_us, struct sp_errbuf *eb)
{
    struct es_log_kafka *kl = ctx->kl;

    while (!ctx->done) {
        int64_t left_ms = (deadline_us - sp_time_mono_us()) / 1000;
        rd_kafka_message_t *m;
        int rc;

        if (left_ms <= 0)
            return sp_err_set(eb, SP_EUNAVAIL, NULL,
                              "timed out after %d ms reading kafka topic \"%s\" partition %d at "
                              "offset %" PRId64 " (end %" PRId64 ")",
                              kl->timeout_ms, kl->topic, (int)ctx->partition, ctx->next, ctx->hi);
        m = rd_kafka_consumer_poll(kl->consumer,
                                   left_ms < KAFKA_POLL_MS ? (int)left_ms : KAFKA_POLL_MS);
        if (m == NULL)
            continue;
        rc = read_one(ctx, m, eb);
        rd_kafka_message_destroy(m);
        if (rc)
            return rc;
    }
    return 0;
}

static int assign(struct es_log_kafka *kl, int32_t partition, int64_t offset, struct sp_errbuf *eb)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t err;

    rd_kafka_topic_partition_list_add(parts, kl->topic, partition)->offset = offset;
    err = rd_kafka_assign(kl->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err)
        return sp_err_set(eb, SP_EUNAVAIL, NULL,
                          "could not assign kafka topic \"%s\" partition %d: %s", kl->topic,
                          (int)partition, rd_kafka_err2str(err));
    return 0;
}

/* The partition's end, then (if there is anything to read) its beginning, by the deadline;
 * *nothing is set when there is nothing to read from ctx->next. */
static int
read_bounds(struct read_ctx *ctx, int64_t deadline_us, bool *nothing, struct sp_errbuf *eb)
{
    struct es_log_kafka *kl = ctx->kl;
    int64_t lo;
    int rc;

    rc = es__kafka_offset_query(kl, ctx->partition, RD_KAFKA_OFFSET_END, deadline_us, &ctx->hi, eb);
    *nothing = rc == 0 && ctx->next >= ctx->hi;
    if (rc || *nothing)
        return rc;
    rc =
        es__kafka_offset_query(kl, ctx->partition, RD_KAFKA_OFFSET_BEGINNING, deadline_us, &lo, eb);
    if (rc == 0 && ctx->next < lo)
        rc = sp_err_set(eb, SP_ENOTFOUND, NULL,
                        "offset %" PRId64 " of kafka topic \"%s\" partition %d was deleted "
                        "(earliest is %" PRId64 ")",
                        ctx->next, kl->topic, (int)ctx->partition, lo);
    return rc;
}

/* Once the handle's read lock is held, the rest of the call (end queries, fetches) is
 * bounded by one deadline, kafka.timeout_ms; a concurrent read on the handle can delay it
 * by as much again. */
int es__kafka_read(struct es_log *log,
                   int32_t partition,
                   int64_t from_offset,
                   size_t max,
                   es_log_record_fn fn,
                   void *ud,
                   int64_t *next_offset,
                   struct sp_errbuf *eb)
{
    struct es_log_kafka *kl = (struct es_log_kafka *)log;
    struct read_ctx ctx = {
        .kl = kl, .partition = partition, .max = max, .fn = fn, .ud = ud, .next = from_offset};
    int64_t deadline_us;
    bool nothing = false;
    int rc;

    if (next_offset != NULL)
        *next_offset = from_offset; /* until a record is passed or the end is found */
    pthread_mutex_lock(&kl->read_lock);
    deadline_us = es__kafka_deadline(kl, 0);
    if ((rc = read_bounds(&ctx, deadline_us, &nothing, eb)) || nothing ||
        (rc = assign(kl, partition, from_offset, eb)))
        goto out_unlock;
    rc = read_loop(&ctx, deadline_us, eb);
    (void)rd_kafka_assign(kl->consumer, NULL);
    if (next_offset != NULL)
        *next_offset = ctx.next;
    if (rc == 0)
        rc = ctx.stop;
out_unlock:
    pthread_mutex_unlock(&kl->read_lock);
    return rc;
}
