/*
 * Private backend interface of the event log: es_log.c validates arguments and dispatches
 * through this vtable; each backend (log_lmdb.c, log_kafka*.c) embeds struct es_log first.
 */
#ifndef ES_LOG_IMPL_H
#define ES_LOG_IMPL_H

#include "es/log.h"

struct es__log_ops {
    const char *name; /* "lmdb", "kafka" */
    void (*close)(struct es_log *log);
    int32_t (*partitions)(const struct es_log *log);
    /* evs/n already checked non-empty; the backend encodes, caps and checksums */
    int (*append)(struct es_log *log,
                  const struct es_event *const *evs,
                  size_t n,
                  struct es_position *pos,
                  struct sp_errbuf *eb);
    /* partition already range-checked; from_offset >= 0; max >= 1 */
    int (*read)(struct es_log *log,
                int32_t partition,
                int64_t from_offset,
                size_t max,
                es_log_record_fn fn,
                void *ud,
                int64_t *next_offset,
                struct sp_errbuf *eb);
    /* timeout_ms bounds a backend that asks a server (Kafka: capped at kafka.timeout_ms);
     * < 1 = the backend's own bound */
    int (*end)(struct es_log *log,
               int32_t partition,
               int timeout_ms,
               int64_t *end_offset,
               struct sp_errbuf *eb);
};

/** Base of every backend's handle; first member of the backend struct. */
struct es_log {
    const struct es__log_ops *ops;
    enum es_log_mode mode;
    size_t max_event_bytes; /* cap on one encoded envelope */
};

#endif
