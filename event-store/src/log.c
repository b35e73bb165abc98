/* The event log interface: backend selection, argument checks, tailing and record decode. */
#include <limits.h>
#include <string.h>
#include <time.h>

#include "log_impl.h"
#include "sp/time.h"

#include "sp/banned.h"

#define ES_WAIT_MIN_US 200  /* first sleep between polls of the end offset */
#define ES_WAIT_MAX_US 5000 /* backoff cap */
/* shortest bound on one read of the end inside es_log_wait, so a wait with little or no
 * time left can still ask a Kafka broker once */
#define ES_WAIT_QUERY_MIN_MS 100

int es__backend_cfg_read(const struct sp_config *cfg,
                         struct es__backend_cfg *out,
                         struct sp_errbuf *eb)
{
    const char *backend = sp_config_str(cfg, "log.backend");
    int64_t map_size_mb = sp_config_int(cfg, "log.map_size_mb");
    int64_t max_event_bytes = sp_config_int(cfg, "log.max_event_bytes");

    *out = (struct es__backend_cfg){.dir = sp_config_str(cfg, "log.dir")};
    if (backend == NULL || (strcmp(backend, "kafka") != 0 && strcmp(backend, "lmdb") != 0))
        return sp_err_set(eb, SP_EINVAL, "log.backend",
                          "log backend \"%s\" is not supported (\"lmdb\" or \"kafka\")",
                          backend ? backend : "");
    if (map_size_mb < 1 || max_event_bytes < 1)
        return sp_err_set(eb, SP_EINVAL,
                          map_size_mb < 1 ? "log.map_size_mb" : "log.max_event_bytes",
                          "log.map_size_mb and log.max_event_bytes must be positive");
    out->map_size_bytes = (size_t)map_size_mb << 20;
    out->max_event_bytes = (size_t)max_event_bytes;
    out->kafka = strcmp(backend, "kafka") == 0;
    /* the kafka.* keys (bounds already checked by the config table) */
    out->kafka_opts = (struct es_kafka_opts){
        .brokers = sp_config_str(cfg, "kafka.brokers"),
        .topic = sp_config_str(cfg, "kafka.topic"),
        .partitions = (int32_t)sp_config_int(cfg, "kafka.partitions"),
        .replication_factor = (int16_t)sp_config_int(cfg, "kafka.replication_factor"),
        .transactional_id = sp_config_str(cfg, "kafka.transactional_id"),
        .timeout_ms = (int)sp_config_int(cfg, "kafka.timeout_ms"),
        .max_event_bytes = (size_t)max_event_bytes,
    };
    return 0;
}

int es_log_open(const struct sp_config *cfg,
                enum es_log_mode mode,
                struct es_log **out,
                struct sp_errbuf *eb)
{
    struct es__backend_cfg bc;
    int rc;

    *out = NULL;
    if ((rc = es__backend_cfg_read(cfg, &bc, eb)) != 0)
        return rc;
    if (bc.kafka)
        return es_log_open_kafka(&bc.kafka_opts, mode, out, eb);
    return es_log_open_lmdb(bc.dir, bc.map_size_bytes, bc.max_event_bytes, mode, out, eb);
}

void es_log_close(struct es_log *log)
{
    if (log != NULL)
        log->ops->close(log);
}

int32_t es_log_partitions(const struct es_log *log)
{
    return log->ops->partitions(log);
}

int es_log_append(struct es_log *log,
                  const struct es_event *const *evs,
                  size_t n,
                  struct es_position *pos,
                  struct sp_errbuf *eb)
{
    if (log->mode != ES_LOG_WRITER)
        return sp_err_set(eb, SP_ESTATE, NULL, "log is open as a reader: cannot append");
    if (n == 0)
        return 0;
    return log->ops->append(log, evs, n, pos, eb);
}

static int check_partition(const struct es_log *log, int32_t partition, struct sp_errbuf *eb)
{
    int32_t n = log->ops->partitions(log);

    if (partition < 0 || partition >= n)
        return sp_err_set(eb, SP_EINVAL, "partition",
                          "partition %d does not exist (the log has %d)", (int)partition, (int)n);
    return 0;
}

int es_log_read(struct es_log *log,
                int32_t partition,
                int64_t from_offset,
                size_t max,
                es_log_record_fn fn,
                void *ud,
                int64_t *next_offset,
                struct sp_errbuf *eb)
{
    int rc = check_partition(log, partition, eb);

    if (next_offset != NULL)
        *next_offset = from_offset;
    if (rc)
        return rc;
    if (from_offset < 0)
        return sp_err_set(eb, SP_EINVAL, "offset", "offset %lld is negative",
                          (long long)from_offset);
    if (max == 0)
        return 0;
    return log->ops->read(log, partition, from_offset, max, fn, ud, next_offset, eb);
}

int es_log_end(struct es_log *log, int32_t partition, int64_t *end_offset, struct sp_errbuf *eb)
{
    int rc = check_partition(log, partition, eb);

    if (rc)
        return rc;
    return log->ops->end(log, partition, 0, end_offset, eb);
}

/* The wait ran out: SP_ETIMEDOUT, with why the end could not be read if it could not. */
static int wait_timed_out(int32_t partition,
                          int64_t offset,
                          int timeout_ms,
                          const struct sp_errbuf *why,
                          struct sp_errbuf *eb)
{
    return sp_err_set(
        eb, SP_ETIMEDOUT, NULL, "no record at offset %lld of partition %d within %d ms%s%s",
        (long long)offset, (int)partition, timeout_ms, why->msg[0] ? ": " : "", why->msg);
}

/* Bound for one read of the end: the time left, rounded up so that a read that times out
 * ends past the deadline, and at least ES_WAIT_QUERY_MIN_MS. */
static int end_query_ms(int64_t deadline_us)
{
    int64_t left_ms = (deadline_us - sp_time_mono_us() + 999) / 1000;

    return left_ms < ES_WAIT_QUERY_MIN_MS ? ES_WAIT_QUERY_MIN_MS
           : left_ms > INT_MAX            ? INT_MAX
                                          : (int)left_ms;
}

int es_log_wait(
    struct es_log *log, int32_t partition, int64_t offset, int timeout_ms, struct sp_errbuf *eb)
{
    int64_t deadline_us = sp_time_mono_us() + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000;
    int64_t sleep_us = ES_WAIT_MIN_US;
    int rc = check_partition(log, partition, eb);

    while (rc == 0) {
        struct sp_errbuf why = {{0}, {0}};
        int64_t end = 0, left_us;

        rc = log->ops->end(log, partition, end_query_ms(deadline_us), &end, &why);
        if (rc == 0 && end > offset)
            return 0;
        left_us = deadline_us - sp_time_mono_us();
        if (left_us <= 0 && (rc == 0 || rc == SP_EUNAVAIL))
            return wait_timed_out(partition, offset, timeout_ms, &why, eb);
        if (rc)
            return sp_err_set(eb, rc, why.field[0] ? why.field : NULL, "%s", why.msg);
        if (sleep_us > left_us)
            sleep_us = left_us;
        struct timespec ts = {(time_t)(sleep_us / 1000000), (long)(sleep_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
        sleep_us = sleep_us * 2 > ES_WAIT_MAX_US ? ES_WAIT_MAX_US : sleep_us * 2;
    }
    return rc;
}

int es_log_record_decode(const struct es_log_record *rec, struct es_event *ev, struct sp_errbuf *eb)
{
    return es_log_record_decode_ex(rec, 0, ev, eb);
}

int es_log_record_decode_ex(const struct es_log_record *rec,
                            unsigned flags,
                            struct es_event *ev,
                            struct sp_errbuf *eb)
{
    int rc;

    if (rec->status != 0) {
        es_event_release(ev);
        return sp_err_set(eb, rec->status, NULL, "%s",
                          rec->error ? rec->error : "record is corrupt");
    }
    rc = es_event_decode_ex(rec->value, rec->value_len, flags, ev, eb);
    if (rc == 0)
        ev->pos = rec->pos;
    return rc;
}
