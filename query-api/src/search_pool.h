/*
 * Searches off the event loop: a pool of worker threads, each with its own query engine
 * (proj_search_reader: an analyzer and scratch memory, not thread-safe) over one shared
 * read-only environment of the search view (LMDB read transactions are per thread,
 * MDB_NOTLS). Jobs go in on the loop thread and come back to it (an eventfd wakes the
 * loop), which alone touches HTTP requests; the answer is serialised to JSON text by the
 * worker, so the loop only sends bytes.
 *
 * The view open is reference-counted per generation: a job holds the generation that was
 * live when it was submitted, a rebuild's swap makes later jobs take the new one, and the
 * old one is closed when its last job is done. With 0 threads, jobs run on the loop
 * thread inside search_pool_submit (no threads, same code).
 *
 * @locality search_pool_new, _submit, _view, _free on the loop thread of @p base.
 */
#ifndef QRY_SEARCH_POOL_H
#define QRY_SEARCH_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <lmdb.h>

#include "proj/search.h"
#include "proj/view.h"
#include "sp/err.h"

enum search_kind { SEARCH_RECIPES, SEARCH_USERS, SEARCH_TAGS, SEARCH_KIND_COUNT };

/** One search: its inputs (owned copies) and, once done, its outcome. */
struct search_job {
    enum search_kind kind;
    char *q;                          /* owned */
    char *tags[PROJ_SEARCH_MAX_TAGS]; /* owned, n_tags of them */
    size_t n_tags;
    int64_t author_id;
    char *language; /* owned, or NULL */
    unsigned limit, page;
    /* outcome, set by the worker */
    int rc;                  /* 0; SP_EINVAL (eb names the parameter); SP_EUNAVAIL (no view
                              * yet); SP_ESTATE (a view of another format); SP_EDB... */
    struct sp_errbuf eb;     /* when rc != 0 */
    char *body;              /* owned JSON text when rc == 0 */
    size_t body_len;         /* bytes */
    bool has_more;           /* recipes: a next page exists */
    int64_t engine_us;       /* time in the engine, microseconds */
    void *ud;                /* the submitter's: the request */
    void *owner;             /* the submitter's: its own state */
    struct search_gen *gen;  /* the pool's: the view generation the job runs on */
    struct search_job *next; /* the pool's: queue link */
};

/** Free a job and what it owns; NULL is a no-op. */
void search_job_free(struct search_job *job);

/** A finished job, on the loop thread: the callee owns @p job. */
typedef void (*search_done_fn)(struct search_job *job, void *ud);

struct search_pool;

/**
 * New pool of @p threads workers (0: run jobs on the loop thread) over the view of
 * @p opts (copied; the view is opened when first needed). @p params is borrowed.
 * @return owned, never NULL (aborts if a thread or the eventfd cannot be made).
 */
struct search_pool *search_pool_new(struct event_base *base,
                                    unsigned threads,
                                    const struct proj_view_opts *opts,
                                    const struct proj_bm25f_params *params,
                                    search_done_fn done,
                                    void *done_ud);

/** Run @p job (owned by the pool until done is called with it). */
void search_pool_submit(struct search_pool *p, struct search_job *job);

/**
 * Make sure the live generation of the view is open (reopening after a swap), for reads
 * on the loop thread. @param[out] view  borrowed until the next call
 * @return 0; SP_EUNAVAIL if the view is not built yet; proj_view_open's errors.
 */
int search_pool_view(struct search_pool *p, struct proj_view **view, struct sp_errbuf *eb);

/** Counts of the live view (proj_search_stats) on the loop thread. @return 0 or an error. */
int search_pool_stats(struct search_pool *p, struct proj_search_stats *st, struct sp_errbuf *eb);

/** Stop the workers (jobs in flight finish first), free queued and finished jobs without
 *  calling done, close the view. NULL is a no-op. */
void search_pool_free(struct search_pool *p);

#endif
