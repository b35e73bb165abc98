/*
 * Private backend interface of the event log: es_log.c validates arguments and dispatches
 * through this vtable; each backend (log_lmdb.c, log_kafka*.c) embeds struct es_log first.
 */
#ifndef ES_LOG_IMPL_H
#define ES_LOG_IMPL_H

#include <stdbool.h>

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

/** The backend that config log.backend names, with its options (strings borrowed from cfg). */
struct es__backend_cfg {
    bool kafka; /* true: kafka_opts; false: the embedded LMDB log below */
    struct es_kafka_opts kafka_opts;
    const char *dir;        /* log.dir */
    size_t map_size_bytes;  /* log.map_size_mb in bytes */
    size_t max_event_bytes; /* log.max_event_bytes */
};

/**
 * Read log.backend and its keys from @p cfg, for es_log_open and es_consumer_open.
 * @return 0; SP_EINVAL naming the key for an unknown backend or a non-positive size.
 */
int es__backend_cfg_read(const struct sp_config *cfg,
                         struct es__backend_cfg *out,
                         struct sp_errbuf *eb);

#endif
