/*
 * Private parts of the projection runner shared by runner.c (log mode: es_log_read over
 * every partition from the stored checkpoints), runner_consumer.c (consumer mode:
 * es_consumer in a consumer group), apply.c (one record into the view), rebuild.c, and
 * the store kinds behind struct proj__store_ops: store_pg.c (PostgreSQL read models) and
 * store_view.c (LMDB views).
 */
#ifndef PROJ_RUNNER_IMPL_H
#define PROJ_RUNNER_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "es/consumer.h"
#include "proj/runner.h"
#include "proj/view.h"
#include "sp/config.h"

struct proj_runner;

/**
 * What the runner needs of a projection's store, one implementation per store kind. All
 * run on the runner's thread. "The batch" is the one open store transaction: begin opens
 * it (exclusive against any other writer of the view: PostgreSQL's projection advisory
 * lock; LMDB's single writer), commit or rollback ends it.
 */
/** What fold_many found for one event. */
struct proj__fold_outcome {
    bool poison;           /* the event itself failed: dead-letter or halt */
    struct sp_errbuf perr; /* why, when poison */
};

struct proj__store_ops {
    /** (Re)open the store if needed. @return 0 or SP_EUNAVAIL / SP_ESTATE / SP_EDB. */
    int (*connect)(struct proj_runner *r, struct sp_errbuf *eb);
    bool (*connected)(const struct proj_runner *r);
    /** Drop a handle that broke (a transient error keeps a working one). */
    void (*check)(struct proj_runner *r);
    /** Close the store handle (proj_runner_free). */
    void (*close)(struct proj_runner *r);
    int (*begin)(struct proj_runner *r, struct sp_errbuf *eb);
    int (*commit)(struct proj_runner *r, struct sp_errbuf *eb);
    /** Roll the batch back (also when it is not open, or the handle broke). */
    void (*rollback)(struct proj_runner *r);
    /** Read @p p's checkpoint: in the batch if one is open, else on its own. */
    int (*checkpoint_load)(struct proj_runner *r, int32_t p, int64_t *next, struct sp_errbuf *eb);
    int (*checkpoint_store)(struct proj_runner *r, int32_t p, int64_t next, struct sp_errbuf *eb);
    /**
     * Fold one event that passed es_event_check, all or nothing (a nested transaction).
     * Used only by a store without fold_many. @return 0 (applied, or *poison with the reason in @p
     * perr and nothing of it kept); non-zero fails the batch (transient: eb says why).
     */
    int (*fold)(struct proj_runner *r,
                const struct es_event *ev,
                bool *poison,
                struct sp_errbuf *perr,
                struct sp_errbuf *eb);
    /**
     * Optional: fold @p n events (each checked, each handled by the projection) in order in
     * one go, inside the batch. A poison event (the fold's own refusal, or SQLSTATE class 22
     * or 23) is found without giving up the others: out[i].poison and out[i].perr say which
     * and why; with @p stop_at_poison the first poison event ends the call and the events
     * after it are not applied. *n_done: how many of evs the outcomes cover (n, or the
     * poison event's index + 1 when it stopped there).
     * @return 0; non-zero fails the batch (transient: eb says why).
     */
    int (*fold_many)(struct proj_runner *r,
                     struct es_event *const *evs,
                     size_t n,
                     bool stop_at_poison,
                     struct proj__fold_outcome *out,
                     size_t *n_done,
                     struct sp_errbuf *eb);
    int (*dead_letter)(struct proj_runner *r,
                       const struct es_log_record *rec,
                       const char *event_id,
                       const char *event_type,
                       const char *error,
                       struct sp_errbuf *eb);
    /** Around each batch of folds, inside the batch (proj_batch_fn, proj_view_ops). */
    int (*batch_begin)(struct proj_runner *r, struct sp_errbuf *eb);
    int (*batch_end)(struct proj_runner *r, struct sp_errbuf *eb);
};

extern const struct proj__store_ops proj__store_pg;
extern const struct proj__store_ops proj__store_view;

/** A rebuild's runner: open a new generation of its view beside the live one
 *  (proj_view_build_begin) as its store. @return 0 or proj_view_build_begin's errors. */
int proj__view_build_begin(struct proj_runner *r, struct sp_errbuf *eb);

/** Swap the rebuilt generation in (proj_view_build_commit); the runner's store is closed
 *  either way. @return 0 or proj_view_build_commit's errors. */
int proj__view_build_commit(struct proj_runner *r, struct sp_errbuf *eb);

/** The LMDB view store of a runner (store_view.c). */
struct proj__view_store {
    char *dir; /* owned; opts.dir points to it */
    struct proj_view_opts opts;
    struct proj_view *view; /* NULL until connected */
    bool building;          /* a rebuild's new generation: never reopened */
    void *state;            /* the view's own (proj_view_ops.state_new) */
    MDB_txn *txn;           /* the open batch, or NULL */
};

/** A record copied out of a consumer poll, applied later in the batch's transaction. */
struct proj__rec {
    struct es_log_record rec; /* value and error point into the owned copies below */
    void *value;              /* owned copy of the value */
    char *error;              /* owned copy of rec.error, or NULL */
};

struct proj_runner {
    const struct proj_projection *proj; /* borrowed, static */
    const struct proj__store_ops *ops;  /* the store kind of proj */
    char *conninfo;                     /* owned (PostgreSQL store) */
    bool conn_borrowed;                 /* conn is the caller's (a rebuild): never closed */
    struct proj__view_store vs;         /* LMDB view store */
    size_t batch_max;
    size_t catchup_max; /* ≥ batch_max (proj_runner_opts.catchup_batch_max) */
    int linger_ms;      /* proj_runner_opts.batch_linger_ms */
    bool backlog;       /* the last batch was full: the next may take catchup_max */
    /* A PostgreSQL rebuild's load: its batches all run in its one transaction, so the
     * store's batch_end runs once, at its end (see proj_rebuild), not after each batch;
     * and fold_set gets PROJ_FOLD_BULK. */
    bool bulk;
    enum proj_poison_policy policy;
    struct proj__ahead *ahead;  /* the next batch read ahead (apply.c), or NULL */
    pthread_t reaper;           /* frees the last large batch's events (apply.c) */
    bool reaping;               /* reaper is to be joined */
    struct sp_metrics *metrics; /* borrowed, may be NULL */
    struct es_log *log;         /* borrowed; log mode only */
    PGconn *conn;               /* PostgreSQL store: owned; NULL when disconnected */
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
    struct proj__rec *batch;      /* catchup_max slots; n_batch polled, not yet applied */
    size_t n_batch;
    int poll_ms;               /* longest wait of one poll */
    int session_timeout_ms;    /* 0 = librdkafka's default */
    int heartbeat_interval_ms; /* 0 = librdkafka's default */
    char group_id[96];         /* "stockpot-projection-<name>"; LMDB views:
                                * "stockpot-view-<name>-<host>-<hash of the view dir>" */
};

/** State of applying records one by one inside the runner's open batch. */
struct proj__apply {
    struct proj_runner *r;
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

/* Batches of at least this many records are decoded on several threads (proj__apply_recs). */
#define PROJ_DECODE_PARALLEL_MIN 256
#define PROJ_DECODE_THREADS_MAX  8

/**
 * Apply @p n records in order, as proj__apply_record does one by one, after decoding and
 * checking all of them first: on every online CPU (at most PROJ_DECODE_THREADS_MAX) when
 * n >= PROJ_DECODE_PARALLEL_MIN, since decoding (JSON, catalogue checks) costs far more
 * than most folds. @p done receives how many records were consumed before a stop.
 * @return 0; 1 if a halt or a fatal error (c->fatal) stopped it at recs[*done].
 */
int proj__apply_recs(struct proj__apply *c, const struct proj__rec *recs, size_t n, size_t *done);

/** Wait for the thread freeing the last large batch's events, if any (proj_runner_free). */
void proj__reaper_join(struct proj_runner *r);

/** Drop a read-ahead batch (proj_runner.ahead): wait for its decoding, free it. NULL: no-op. */
void proj__ahead_free(struct proj__ahead *a);

/** Copy @p rec (value and error) into @p b, owned by it. */
void proj__rec_copy(struct proj__rec *b, const struct es_log_record *rec);

/** Free what recs[0..n) own (not the array). */
void proj__recs_release(struct proj__rec *recs, size_t n);

/**
 * Apply up to @p max records of @p partition from @p from_offset inside the runner's open
 * batch (between batch_begin and batch_end). Does not touch the checkpoint. Under
 * PROJ_POISON_HALT a poison event stops the batch before it: stats->halted, and
 * stats->next_offset is that event's offset. Poison is what the event itself causes
 * (es_event_check, or the fold's own refusal); any other failure is transient and fails
 * the whole batch.
 * @return 0 (also when halted); SP_EUNAVAIL if a fold failed transiently; the store's
 *         errors writing a dead letter; es_log_read's errors. On error the batch must be
 *         rolled back and retried later: nothing of it is kept.
 */
int proj__apply_batch(struct proj_runner *r,
                      struct es_log *log,
                      int32_t partition,
                      int64_t from_offset,
                      size_t max,
                      struct proj_batch_stats *stats,
                      struct sp_errbuf *eb);

/** The fields a runner of @p opts has whatever its mode (runner.c). */
struct proj_runner *proj__runner_alloc(const struct proj_runner_opts *opts, int32_t nparts);

/** Grow the per-partition arrays to hold partition @p p (new slots: -1 / false). */
void proj__runner_grow(struct proj_runner *r, int32_t p);

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
