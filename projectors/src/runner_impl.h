/*
 * Private parts of the projection runner shared by runner.c (log mode: es_log_read over
 * every partition from the stored checkpoints), runner_consumer.c (consumer mode:
 * es_consumer in a consumer group) and apply.c (one record into the view).
 */
#ifndef PROJ_RUNNER_IMPL_H
#define PROJ_RUNNER_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "es/consumer.h"
#include "proj/runner.h"
#include "sp/config.h"

/** A record copied out of a consumer poll, applied later in the batch's transaction. */
struct proj__rec {
    struct es_log_record rec; /* value and error point into the owned copies below */
    void *value;              /* owned copy of the value */
    char *error;              /* owned copy of rec.error, or NULL */
};

struct proj_runner {
    const struct proj_projection *proj; /* borrowed, static */
    char *conninfo;                     /* owned */
    size_t batch_max;
    enum proj_poison_policy policy;
    struct sp_metrics *metrics; /* borrowed, may be NULL */
    struct es_log *log;         /* borrowed; log mode only */
    PGconn *conn;               /* owned; NULL when disconnected */
    int32_t nparts;             /* size of the per-partition arrays */
    int64_t *checkpoint;        /* per partition: the stored checkpoint as this runner
                                 * knows it, -1 until known (consumer: or not assigned) */
    int64_t *end;               /* per partition log end at the last look, -1 until known */
    bool halted;
    char halt_why[400];
    char labels[96]; /* projection="<name>" */

    /* consumer mode only */
    const struct sp_config *cfg;  /* borrowed; NULL in log mode */
    struct es_consumer *consumer; /* owned; NULL until opened or after it failed */
    bool *assigned;               /* per partition (nparts) */
    struct proj__rec *batch;      /* batch_max slots; n_batch polled, not yet applied */
    size_t n_batch;
    int poll_ms;               /* longest wait of one poll */
    int session_timeout_ms;    /* 0 = librdkafka's default */
    int heartbeat_interval_ms; /* 0 = librdkafka's default */
    char group_id[96];         /* "stockpot-projection-<name>" */
};

/** State of applying records one by one inside the caller's open transaction. */
struct proj__apply {
    PGconn *conn;
    const struct proj_projection *proj;
    enum proj_poison_policy policy;
    struct proj_batch_stats *stats; /* applied, dead, halted...; next_offset of the last
                                     * record consumed (its partition's) */
    struct sp_errbuf *eb;           /* for fatal errors */
    int fatal;                      /* 0, or the error that stopped the batch */
};

/**
 * Apply one record (es_log_record_fn over a struct proj__apply): fold, ignore by type, or
 * treat as poison by policy (dead letter, or halt: stats->halted and return 1 before it).
 * @return 0 to go on; 1 to stop (halted, or a fatal error in ->fatal).
 */
int proj__apply_record(const struct es_log_record *rec, void *ud);

/** Run the projection's batch_begin / batch_end hook, if any (see proj_batch_fn).
 * @return 0 or the hook's error. */
int proj__batch_begin(PGconn *conn, const struct proj_projection *proj, struct sp_errbuf *eb);
int proj__batch_end(PGconn *conn, const struct proj_projection *proj, struct sp_errbuf *eb);

/** Grow the per-partition arrays to hold partition @p p (new slots: -1 / false). */
void proj__runner_grow(struct proj_runner *r, int32_t p);

/** (Re)connect to PostgreSQL if needed. @return 0 or SP_EUNAVAIL. */
int proj__runner_connect(struct proj_runner *r, struct sp_errbuf *eb);

/** Drop a connection that broke (a transient error keeps a working session). */
void proj__runner_check_conn(struct proj_runner *r);

/** Refresh partition @p p's checkpoint and lag gauges. */
void proj__runner_gauges(struct proj_runner *r, int32_t p);

/** Count an applied batch in the metrics (events, dead letters, latency from @p t0_us). */
void proj__runner_count(struct proj_runner *r, const struct proj_batch_stats *st, int64_t t0_us);

/** A batch from (@p p, @p from) was rolled back: log it and count a retry. */
void proj__runner_retry(struct proj_runner *r, int32_t p, int64_t from, const struct sp_errbuf *eb);

/** Halt on the poison event @p st describes: log, gauge. @return SP_ESTATE (set in eb). */
int proj__runner_halt(struct proj_runner *r,
                      const struct proj_batch_stats *st,
                      struct sp_errbuf *eb);

/** Whether @p cfg selects the Kafka log backend. */
bool proj__kafka_backend(const struct sp_config *cfg);

/** Kafka options from @p cfg's kafka.* keys, timeout_ms capped at @p cap_ms (strings
 *  borrowed from @p cfg). */
void proj__kafka_opts(const struct sp_config *cfg, int cap_ms, struct es_kafka_opts *out);

/** Consumer mode: one step (proj_runner_step). */
int proj__runner_consumer_step(struct proj_runner *r, int64_t *applied, struct sp_errbuf *eb);

/** Consumer mode: close the consumer and drop the polled batch. */
void proj__runner_consumer_close(struct proj_runner *r);

#endif
