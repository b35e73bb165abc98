/*
 * Running a projection over the event log: batches of events applied in one PostgreSQL
 * transaction together with the checkpoint (stockpot.checkpoints), so each event is
 * applied exactly once in effect across crashes; poison events dead-lettered or halting
 * by policy; reconnects after a lost connection; rebuilds and content checksums.
 *
 * Every batch and every rebuild holds pg_advisory_xact_lock(PROJ_LOCK_CLASS,
 * hashtext(<projection name>)), so a rebuild and a running projector serialise.
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

/**
 * Apply up to @p max records of @p partition from @p from_offset inside the caller's
 * open transaction on @p conn (one SAVEPOINT per event). Does not touch the checkpoint.
 * Under PROJ_POISON_HALT a poison event stops the batch before it: stats->halted, and
 * stats->next_offset is that event's offset. Poison is what the event itself causes
 * (see proj_apply_fn); any other failure of an event's statements is transient and
 * fails the whole batch.
 * @return 0 (also when halted); SP_EUNAVAIL if the connection is lost or an event's
 *         statement failed transiently (deadlock, serialization failure, lock or
 *         statement timeout, cancel, disk full...: eb->field holds the SQLSTATE); SP_EDB
 *         if writing a dead letter fails; es_log_read's errors. On error the transaction
 *         must be rolled back and the batch retried later: nothing of it is kept.
 */
SP_MUST_CHECK int proj_apply_batch(PGconn *conn,
                                   const struct proj_projection *proj,
                                   struct es_log *log,
                                   int32_t partition,
                                   int64_t from_offset,
                                   size_t max,
                                   enum proj_poison_policy policy,
                                   struct proj_batch_stats *stats,
                                   struct sp_errbuf *eb);

/** Read a checkpoint (0 if the row is absent). @return 0, SP_EDB or SP_EUNAVAIL. */
SP_MUST_CHECK int proj_checkpoint_load(PGconn *conn,
                                       const char *projection,
                                       int32_t partition,
                                       int64_t *next_offset,
                                       struct sp_errbuf *eb);

/** Upsert a checkpoint in the caller's transaction. @return 0, SP_EDB or SP_EUNAVAIL. */
SP_MUST_CHECK int proj_checkpoint_store(PGconn *conn,
                                        const char *projection,
                                        int32_t partition,
                                        int64_t next_offset,
                                        struct sp_errbuf *eb);

/** Take the projection's transaction-scoped advisory lock (waits). @return 0/SP_EDB/SP_EUNAVAIL. */
SP_MUST_CHECK int proj_lock_xact(PGconn *conn, const char *projection, struct sp_errbuf *eb);

struct proj_runner_opts {
    const struct proj_projection *proj; /* borrowed, static */
    const char *conninfo;               /* libpq connection string; copied */
    size_t batch_max;                   /* most events per transaction, ≥ 1 */
    enum proj_poison_policy policy;
    struct sp_metrics *metrics; /* borrowed, may be NULL; series described here */
};

struct proj_runner;

/**
 * New runner over @p log (borrowed; must outlive the runner). Does not connect yet.
 * @param[out] out  owned; free with proj_runner_free()
 * @return 0 or SP_EINVAL for bad options.
 */
SP_MUST_CHECK int proj_runner_new(const struct proj_runner_opts *opts,
                                  struct es_log *log,
                                  struct proj_runner **out,
                                  struct sp_errbuf *eb);

/** Close the connection and free the runner; NULL is a no-op. */
void proj_runner_free(struct proj_runner *r);

/**
 * One step: (re)connect if needed, then for each partition apply one batch from the
 * stored checkpoint in one transaction with the checkpoint update, and refresh the
 * metrics (applied, dead letters, retries, checkpoint, lag, batch latency). A batch that
 * fails is rolled back (its checkpoint does not move), logged (warning) and counted in
 * stockpot_projection_retries_total; the caller retries it with a back-off.
 * @param[out] applied  records consumed in this step (0 = caught up; may be NULL)
 * @return 0; SP_EUNAVAIL if PostgreSQL is unreachable, the connection broke (it is
 *         reopened on the next step) or a statement failed transiently (the session is
 *         kept); SP_ESTATE if the projection is halted (now or earlier; eb says why);
 *         SP_EDB / es_log errors. Any error but SP_ESTATE: call again after a back-off.
 * @locality one thread at a time
 */
SP_MUST_CHECK int proj_runner_step(struct proj_runner *r, int64_t *applied, struct sp_errbuf *eb);

/**
 * Step until every partition's checkpoint reaches the log end seen at the call (for
 * tests and tools). @return as proj_runner_step.
 */
SP_MUST_CHECK int proj_runner_catch_up(struct proj_runner *r, struct sp_errbuf *eb);

/** Whether the runner halted on a poison event; @p why (may be NULL) gets the reason. */
bool proj_runner_halted(const struct proj_runner *r, const char **why);

/** Whether the runner holds a working PostgreSQL connection. */
bool proj_runner_connected(const struct proj_runner *r);

/** Smallest checkpoint over the partitions, as of the last step (-1 before the first). */
int64_t proj_runner_checkpoint(const struct proj_runner *r);

/** Sum over partitions of (log end - checkpoint) as of the last step (-1 before). */
int64_t proj_runner_lag(const struct proj_runner *r);

/**
 * Rebuild @p proj from offset 0 in ONE transaction on @p conn: take the projection lock,
 * empty its tables, delete its checkpoint rows and dead letters, apply every record up
 * to the log end seen at the start (batches of @p batch_max), store the checkpoints,
 * commit. The tables are emptied with DELETE, not TRUNCATE (whose ACCESS EXCLUSIVE lock
 * would block every reader for the whole rebuild): readers are never blocked and keep
 * seeing the old view, MVCC, until the commit shows them the new one at once. A running
 * projector's next batch waits on the projection lock, then resumes from the new
 * checkpoint. The deleted old rows are dead tuples that autovacuum reclaims.
 * @param[out] stats  totals (next_offset = end of partition 0)
 * @return 0; SP_ESTATE if a poison event halted it (policy halt; rolled back);
 *         SP_EDB / SP_EUNAVAIL / es_log errors (rolled back).
 */
SP_MUST_CHECK int proj_rebuild(PGconn *conn,
                               const struct proj_projection *proj,
                               struct es_log *log,
                               size_t batch_max,
                               enum proj_poison_policy policy,
                               struct proj_batch_stats *stats,
                               struct sp_errbuf *eb);

/**
 * Stable checksum of the projection's tables: md5 over the md5 of each table's rows as
 * text in its total order (checkpoints and dead letters excluded), 32 hex digits.
 * @param out  ≥ 33 bytes
 * @return 0, SP_EDB or SP_EUNAVAIL.
 */
SP_MUST_CHECK int proj_checksum(PGconn *conn,
                                const struct proj_projection *proj,
                                char *out,
                                size_t out_size,
                                struct sp_errbuf *eb);

#endif
