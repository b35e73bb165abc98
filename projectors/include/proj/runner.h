/*
 * Running a projection over the event log: batches of events applied in one store
 * transaction together with the checkpoint, so each event is applied exactly once in
 * effect across crashes; poison events dead-lettered or halting by policy; reconnects
 * after a lost connection; rebuilds and content checksums. Two store kinds:
 *
 *  - PostgreSQL read models: checkpoints in stockpot.checkpoints, dead letters in
 *    stockpot.dead_letters. Every batch and every rebuild holds
 *    pg_advisory_xact_lock(PROJ_LOCK_CLASS, hashtext(<projection name>)), so a rebuild
 *    and a running projector serialise.
 *  - LMDB views (proj/view.h): checkpoints and dead letters in the view's own
 *    environment, written in the batch's write transaction; each event folded in a nested
 *    transaction. A rebuild builds a new generation beside the live one and swaps it in;
 *    a runner notices the swap at its next batch and moves to the new generation.
 */
#ifndef PROJ_RUNNER_H
#define PROJ_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "es/log.h"
#include "proj/projection.h"
#include "sp/err.h"
#include "sp/config.h"
#include "sp/metrics.h"

/** First key of the per-projection advisory locks ("SP" in ASCII). */
#define PROJ_LOCK_CLASS 21328

/** What one batch (or a rebuild) did. */
struct proj_batch_stats {
    int64_t next_offset;  /* offset after the last record consumed */
    int64_t applied;      /* events folded or ignored by type (checkpoint advanced) */
    int64_t dead;         /* poison events written to stockpot.dead_letters */
    bool halted;          /* a poison event stopped the batch (halt policy) */
    int64_t halt_offset;  /* offset of that poison event, when halted */
    char halt_error[400]; /* why, when halted */
};

struct proj_runner_opts {
    const struct proj_projection *proj; /* borrowed, static */
    const char *conninfo;               /* libpq connection string; copied */
    size_t batch_max;                   /* most events per transaction, ≥ 1 */
    /* Most events per transaction while a backlog is applied (catch-up, a burst): a step
     * that follows a full batch takes up to this many, until a batch is not full. Fewer,
     * larger transactions fold faster; live batches stay small, so freshness at low load
     * does not change. 0 (or less than batch_max): batch_max. */
    size_t catchup_batch_max;
    /* Live: how long a step waits for batch_max events before it applies fewer,
     * milliseconds (throughput under load for a little freshness); 0: never waits. Not
     * while a backlog is applied. */
    int batch_linger_ms;
    enum proj_poison_policy policy;
    struct sp_metrics *metrics; /* borrowed, may be NULL; series described here */
    const char *view_dir;       /* LMDB views: the view's directory (proj/view.h); copied */
    size_t view_map_size_bytes; /* LMDB views: the environment's map size */
};

/** Options of a consumer-mode runner only; 0 = the default. */
struct proj_consumer_opts {
    int poll_ms;               /* longest wait of one step for records; default 200 */
    int session_timeout_ms;    /* Kafka session.timeout.ms (es_consumer_opts) */
    int heartbeat_interval_ms; /* Kafka heartbeat.interval.ms (es_consumer_opts) */
};

/** Bound on one Kafka operation of a consumer-mode runner (open, seek), ms: the smaller of
 *  this and kafka.timeout_ms, so a runner never blocks long on an unreachable cluster. */
#define PROJ_KAFKA_OP_MAX_MS 1000

struct proj_runner;

/**
 * New runner in LOG MODE over @p log (borrowed; must outlive the runner): every step
 * reads each partition from the checkpoint stored in PostgreSQL (es_log_read). The
 * projector uses it for the embedded LMDB log, where one process must not open the log
 * more than once (several projections share one reader handle). Does not connect yet.
 * @param[out] out  owned; free with proj_runner_free()
 * @return 0 or SP_EINVAL for bad options.
 */
SP_MUST_CHECK int proj_runner_new(const struct proj_runner_opts *opts,
                                  struct es_log *log,
                                  struct proj_runner **out,
                                  struct sp_errbuf *eb);

/**
 * New runner in CONSUMER MODE (es/consumer.h) on the log chosen by @p cfg (log.backend;
 * borrowed, must outlive the runner), in consumer group "stockpot-projection-<name>":
 * runners of one projection in several processes share the partitions (Kafka; on LMDB
 * each runner reads partition 0 alone). Kafka operations are bounded by
 * PROJ_KAFKA_OP_MAX_MS. The consumer is opened by the first step (and re-opened by a
 * later step after it failed).
 *  - on_assign loads the stored checkpoint of each assigned partition and starts there;
 *  - a step polls up to batch_max records of any assigned partitions (waiting up to
 *    copts->poll_ms) and applies them in ONE transaction that also upserts the checkpoint
 *    of every partition touched, after checking under the projection lock that each of
 *    those checkpoints is still the one this runner started from (a rebuild, or another
 *    instance before a rebalance, may have moved it: then nothing is applied and the
 *    partition is re-read from the stored checkpoint);
 *  - a rolled-back batch seeks every touched partition back to its checkpoint;
 *  - on_revoke drops the records polled but not applied (no transaction is ever open
 *    while the consumer is polled), so the next owner starts from the stored checkpoint.
 * Each event is thus applied exactly once in effect, whatever the rebalances.
 * @param copts  may be NULL (every default)
 * @param[out] out  owned; free with proj_runner_free() (which closes the consumer)
 * @return 0 or SP_EINVAL for bad options.
 */
SP_MUST_CHECK int proj_runner_new_consumer(const struct proj_runner_opts *opts,
                                           const struct proj_consumer_opts *copts,
                                           const struct sp_config *cfg,
                                           struct proj_runner **out,
                                           struct sp_errbuf *eb);

/** Close the consumer (consumer mode) and the connection, free the runner; NULL is a
 *  no-op. Closing a Kafka consumer leaves the group (it may wait for the coordinator). */
void proj_runner_free(struct proj_runner *r);

/**
 * One step. Log mode: (re)connect if needed, then for each partition apply one batch from
 * the stored checkpoint in one transaction with the checkpoint update. Consumer mode: see
 * proj_runner_new_consumer (the poll waits up to poll_ms when there is nothing to apply).
 * Both refresh the metrics (applied, dead letters, retries, checkpoint, lag, batch
 * latency). A batch that fails is rolled back (its checkpoint does not move), logged
 * (warning) and counted in stockpot_projection_retries_total; the caller retries it with
 * a back-off.
 * @param[out] applied  records consumed in this step (0 = caught up; may be NULL)
 * @return 0; SP_EUNAVAIL if PostgreSQL is unreachable, the connection broke (it is
 *         reopened on the next step) or a statement failed transiently (the session is
 *         kept), or (consumer mode) the consumer could not be opened or failed (it is
 *         re-opened on the next step); SP_ESTATE if the projection is halted (now or
 *         earlier; eb says why); SP_EDB / es_log errors. Any error but SP_ESTATE: call
 *         again after a back-off.
 * @locality one thread at a time
 */
SP_MUST_CHECK int proj_runner_step(struct proj_runner *r, int64_t *applied, struct sp_errbuf *eb);

/**
 * Log mode: step until every partition's checkpoint reaches the log end seen at the call
 * (for tests and tools). @return as proj_runner_step; SP_EINVAL in consumer mode.
 */
SP_MUST_CHECK int proj_runner_catch_up(struct proj_runner *r, struct sp_errbuf *eb);

/**
 * Consumer mode: the end of @p partition as seen by whoever watches the log (es_log_end;
 * -1 = unknown), for its lag gauge while the partition is assigned to this runner. The
 * runner never asks the log itself: librdkafka 2.0.2's end query can block far past its
 * timeout when no broker is reachable, so the projector watches the ends on a thread of
 * their own. No-op in log mode (the step reads the ends itself).
 */
void proj_runner_set_end(struct proj_runner *r, int32_t partition, int64_t end_offset);

/**
 * Consumer mode: the partitions assigned to the runner (ascending): up to @p cap copied to
 * @p parts. @return how many are assigned (0 in log mode).
 */
size_t proj_runner_assignment(const struct proj_runner *r, int32_t *parts, size_t cap);

/** Whether the runner halted on a poison event; @p why (may be NULL) gets the reason. */
bool proj_runner_halted(const struct proj_runner *r, const char **why);

/** Whether the runner holds a working PostgreSQL connection. */
bool proj_runner_connected(const struct proj_runner *r);

/** Smallest checkpoint over the partitions (consumer mode: the assigned ones), as of the
 *  last step (-1 before the first, or if one is not known). */
int64_t proj_runner_checkpoint(const struct proj_runner *r);

/** Sum over partitions (consumer mode: the assigned ones) of (log end - checkpoint) as of
 *  the last step or proj_runner_set_end (-1 before, or if one is not known). */
int64_t proj_runner_lag(const struct proj_runner *r);

/**
 * Rebuild @p proj from offset 0 in ONE transaction on @p conn, into a shadow schema:
 * take the projection lock; create schema stockpot_next with an empty copy of each of the
 * projection's tables (CREATE TABLE ... (LIKE stockpot.<t> INCLUDING ALL EXCLUDING
 * INDEXES): columns, defaults, constraints) and, under their own names, the indexes the
 * folds read; delete the projection's checkpoint rows and dead letters; apply every record
 * up to the log end seen at the start (batches of @p batch_max, each read ahead while the
 * one before folds; fold_set with PROJ_FOLD_BULK) with search_path = stockpot_next (the
 * folds name their tables unqualified); run the projection's rebuild_end (what is derived
 * from the whole tables), then its batch_end once, then build the tables' late_indexes;
 * store the checkpoints; then swap: each old table leaves schema stockpot
 * (dropped, or moved to schema stockpot_old when @p keep_old, replacing an older one
 * there) and its new one takes its place; commit. Readers (query-api) keep reading the
 * old tables, never blocked, until the swap, which waits for the statements in flight
 * and makes the next ones wait a few milliseconds (ACCESS EXCLUSIVE on the old tables,
 * taken with lock_timeout 200 ms and retried, so that the rebuild never deadlocks with a
 * reader and a reader is never the victim of one); the commit shows them the new view at
 * once. The new tables hold no dead rows of the old view. A running projector's next batch
 * waits on the projection lock, then resumes from the new checkpoint (its prepared
 * statements are planned again on the new tables).
 * Works on every backend: each partition is read (es_log_read) from 0 to its end as
 * queried at the start (Kafka: past trailing transaction markers), and gets its own
 * checkpoint row.
 * @param keep_old  keep the previous tables in schema stockpot_old (for comparison)
 * @param[out] stats  totals (next_offset = end of partition 0)
 * @return 0; SP_ESTATE if a poison event halted it (policy halt; rolled back);
 *         SP_EDB / SP_EUNAVAIL / es_log errors (rolled back).
 */
SP_MUST_CHECK int proj_rebuild(PGconn *conn,
                               const struct proj_projection *proj,
                               struct es_log *log,
                               size_t batch_max,
                               enum proj_poison_policy policy,
                               bool keep_old,
                               struct proj_batch_stats *stats,
                               struct sp_errbuf *eb);

/**
 * Rebuild the LMDB view of @p proj (PROJ_STORE_LMDB) from offset 0: a new generation is
 * built beside the live one (proj_view_build_begin), every partition applied from 0 to
 * its end as queried at the start, in batches of @p batch_max events (one write
 * transaction each, with the new generation's checkpoints), then synced and swapped in
 * atomically (proj_view_build_commit). Readers and a running projector keep using the old
 * generation until the swap; the projector then moves to the new one at its next batch
 * and resumes from its checkpoint.
 * @param view_dir  the view's directory; @p map_size_bytes its map size
 * @param[out] stats  totals (next_offset = end of partition 0)
 * @return 0; SP_ESTATE if a poison event halted it (policy halt) or another rebuild of
 *         the view runs; SP_EDB / -errno / es_log errors. On error the new generation is
 *         removed and the live view is untouched.
 */
SP_MUST_CHECK int proj_rebuild_view(const struct proj_projection *proj,
                                    const char *view_dir,
                                    size_t map_size_bytes,
                                    struct es_log *log,
                                    size_t batch_max,
                                    enum proj_poison_policy policy,
                                    struct proj_batch_stats *stats,
                                    struct sp_errbuf *eb);

/**
 * Progress of a bounded rebuild, after each batch.
 * @param done   records consumed so far, over every partition
 * @param total  records to consume, about (the sum of the bounds: on Kafka, offsets)
 * @return 0 to go on; non-zero stops the rebuild (it fails with SP_ESTATE, nothing kept).
 */
typedef int (*proj_rebuild_progress_fn)(int64_t done, int64_t total, void *ud);

/**
 * Build a view of @p proj (PROJ_STORE_LMDB) as of a position of the log, as
 * proj_rebuild_view does (a new generation in @p view_dir, swapped in at the end), but
 * each partition p applied from 0 up to, NOT including, offset @p ends[p]: the records
 * with offset < ends[p], the meaning of a checkpoint ("next offset to apply"). No record
 * at or past the bound is applied, on Kafka too (whose offsets have gaps: each batch is
 * counted up to the bound before it is applied, one more read per batch). At the end
 * every partition's checkpoint is set to its bound (0 included), so proj_view_checkpoints
 * on the view gives @p ends back. The same log and @p ends give the same view contents
 * (proj_view_checksum) whenever it runs. stockpot-replay export --until builds a private
 * view with it in a temporary directory.
 * @param ends      es_log_partitions(log) offsets, each between 0 and the partition's end
 *                  (es_log_end), checked first
 * @param progress  called after each batch; may be NULL
 * @param[out] stats  totals (next_offset = ends[0])
 * @return 0; SP_EINVAL if an end is negative or beyond its partition's end (eb names it);
 *         SP_ESTATE if a poison event halted it (policy halt), @p progress stopped it or
 *         another rebuild of the view runs; SP_EDB / -errno / es_log errors. On error the
 *         new generation is removed.
 */
SP_MUST_CHECK int proj_rebuild_view_until(const struct proj_projection *proj,
                                          const char *view_dir,
                                          size_t map_size_bytes,
                                          struct es_log *log,
                                          const int64_t *ends,
                                          size_t batch_max,
                                          enum proj_poison_policy policy,
                                          proj_rebuild_progress_fn progress,
                                          void *ud,
                                          struct proj_batch_stats *stats,
                                          struct sp_errbuf *eb);

/**
 * Stable checksum of the projection's tables: md5 over the md5 of each table's rows as
 * text in its total order (checkpoints and dead letters excluded; a table's unsummed column
 * left out), 32 hex digits.
 * @param out  ≥ 33 bytes
 * @return 0, SP_EDB or SP_EUNAVAIL.
 */
SP_MUST_CHECK int proj_checksum(PGconn *conn,
                                const struct proj_projection *proj,
                                char *out,
                                size_t out_size,
                                struct sp_errbuf *eb);

#endif
