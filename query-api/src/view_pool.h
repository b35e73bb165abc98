/*
 * Reads of one LMDB view off the event loop (the search view, the analytics view): a pool
 * of worker threads over one shared read-only environment of the view (LMDB read
 * transactions are per thread, MDB_NOTLS). Each worker keeps per-generation state made by
 * the view's ops (the search view: a query engine with its analyzer and scratch memory,
 * not thread-safe; the analytics view: its database handles). A job carries its own run
 * callback, which answers with a JSON value that the worker serialises, so the loop only
 * sends bytes. Jobs go in on the loop thread and come back to it (an eventfd wakes the
 * loop), which alone touches HTTP requests.
 *
 * Each view has its own pool (search.threads, analytics.threads): a slow analytics query
 * (popular recipes over 30 days, a 400-day retention triangle) never holds up a search,
 * and the two never share per-worker state.
 *
 * The view open is reference-counted per generation: a job holds the generation that was
 * live when it was submitted, a rebuild's swap makes later jobs take the new one, and the
 * old one is closed when its last job is done. With 0 threads, jobs run on the loop
 * thread inside view_pool_submit (no threads, same code).
 *
 * @locality view_pool_new, _submit, _view, _checkpoints, _local, _reply, _count, _free on
 *           the loop thread of the pool's event_base; run callbacks on a worker.
 */
#ifndef QRY_VIEW_POOL_H
#define QRY_VIEW_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>
#include <lmdb.h>

#include "proj/view.h"
#include "sp/err.h"
#include "sp/http.h"
#include "sp/metrics.h"

struct view_job;
struct view_gen;

/**
 * The query of a job, on a worker (or on the loop with 0 threads), in a read
 * transaction of the job's generation.
 * @param state    the worker's state of that generation (view_pool_ops.state_open)
 * @param[out] out the answer; owned by the pool once returned (0)
 * @return 0; SP_EINVAL with eb->field naming the parameter; another error (into job->rc).
 */
typedef int (*view_job_run_fn)(struct view_job *job, void *state, MDB_txn *txn, json_t **out);

/**
 * One read of the view: its submitter embeds it first in a job struct of its own (its
 * inputs) and sets run and ud; the pool fills the outcome.
 */
struct view_job {
    view_job_run_fn run; /* the submitter's */
    void *ud;            /* the submitter's: the request */
    /* outcome, set by the pool */
    int rc;              /* 0; the run's error; SP_EUNAVAIL (no view yet); SP_ESTATE (a view
                          * of another format); SP_EDB... */
    struct sp_errbuf eb; /* when rc != 0 */
    char *body;          /* owned JSON text when rc == 0 */
    size_t body_len;     /* bytes */
    int64_t run_us;      /* time in the run callback, microseconds */
    /* the pool's */
    struct view_gen *gen;  /* the view generation the job runs on */
    struct view_job *next; /* queue link */
};

/** Free what the pool put into @p job (its body), not the job itself. */
void view_job_release(struct view_job *job);

/** What a view's pool does with the view and its jobs; static, borrowed by the pool. */
struct view_pool_ops {
    const char *name;      /* the view and its projection, e.g. "search": logs, 503 details */
    const char *m_queries; /* counter of the routes' answers, by endpoint and status */
    const char *m_seconds; /* histogram of the run time of answered queries, by endpoint */
    /*
     * Make a worker's state for a generation in @p txn (a read transaction committed
     * afterwards, so the database handles it opens stay valid; one open at a time in the
     * process). @return 0; SP_ENOTFOUND if the view has no databases yet (503).
     */
    int (*state_open)(MDB_txn *txn, void **state, struct sp_errbuf *eb);
    void (*state_free)(void *state); /* NULL is a no-op */
    /* A finished job, on the loop thread: the callee owns @p job. */
    void (*done)(struct view_job *job, void *ud);
    /* Free a job the pool drops at shutdown (queued or finished, done not called). */
    void (*job_free)(struct view_job *job);
};

struct view_pool;

/**
 * New pool of @p threads workers (0: run jobs on the loop thread) over the view of
 * @p opts (copied; the view is opened when first needed).
 * @param ops      borrowed; must outlive the pool
 * @param metrics  borrowed; must outlive the pool (view_pool_count)
 * @param done_ud  passed to ops->done
 * @return owned, never NULL (aborts if a thread or the eventfd cannot be made).
 */
struct view_pool *view_pool_new(struct event_base *base,
                                unsigned threads,
                                const struct proj_view_opts *opts,
                                const struct view_pool_ops *ops,
                                struct sp_metrics *metrics,
                                void *done_ud);

/** Run @p job (owned by the pool until ops->done is called with it). */
void view_pool_submit(struct view_pool *p, struct view_job *job);

/**
 * Make sure the live generation of the view is open (reopening after a swap), for reads
 * on the loop thread. @param[out] view  borrowed until the next call
 * @return 0; SP_EUNAVAIL if the view is not built yet; proj_view_open's errors.
 */
int view_pool_view(struct view_pool *p, struct proj_view **view, struct sp_errbuf *eb);

/**
 * The view's checkpoints, as qry_after_read_fn (qry/after.h) with @p pool the pool: the
 * source of a Stockpot-After gate on the view.
 */
int view_pool_checkpoints(void *pool, int32_t *parts, int64_t *offsets, size_t cap, size_t *n);

/**
 * Run @p fn now on the loop thread, with the loop's own state of the live generation in
 * a read transaction (the view's statistics for metrics).
 * @return fn's result; SP_EUNAVAIL, proj_view_open's errors, SP_EDB.
 */
int view_pool_local(struct view_pool *p,
                    int (*fn)(void *state, MDB_txn *txn, void *ud),
                    void *ud,
                    struct sp_errbuf *eb);

/**
 * Answer @p req with the outcome of @p job: 200 application/json with the body; 400
 * problem+json naming eb.field (SP_EINVAL); 503 with Retry-After: 1 when the view is not
 * built yet (naming the projection to run) or of another format; 500 otherwise (logged).
 * @return the status sent, for metrics.
 */
int view_pool_reply(const struct view_pool *p, struct sp_http_req *req, const struct view_job *job);

/**
 * Count one answer of a route of the view: ops->m_queries{endpoint,status} and, for a
 * 200, the time @p job ran in ops->m_seconds{endpoint} (@p job may be NULL otherwise).
 */
void view_pool_count(const struct view_pool *p,
                     const char *endpoint,
                     int status,
                     const struct view_job *job);

/** Stop the workers (jobs in flight finish first), free queued and finished jobs without
 *  calling done, close the view. NULL is a no-op. */
void view_pool_free(struct view_pool *p);

#endif
