/* Searches on worker threads over a shared read-only search view (search_pool.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "search_pool.h"
#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"

#include "sp/banned.h"

/* One open generation of the view, shared by the jobs that run on it. */
struct search_gen {
    struct proj_view *view; /* owned; closed with the last reference */
    unsigned refs;          /* jobs holding it, + 1 while it is the pool's current (mu) */
    uint64_t serial;        /* tells generations apart for the workers' readers */
};

struct search_worker {
    struct search_pool *p;
    pthread_t tid;
    struct proj_search_reader *reader; /* owned; its handles belong to generation serial */
    uint64_t serial;                   /* 0: no reader */
};

struct search_pool {
    struct event_base *base;
    struct event *wake; /* owned: the eventfd's read event */
    int efd;            /* workers write 1 per finished job */
    search_done_fn done;
    void *done_ud;
    char dir[4096];
    struct proj_view_opts opts; /* dir points to dir */
    const struct proj_bm25f_params *params;
    pthread_mutex_t mu; /* guards the queues, stop and every search_gen.refs */
    pthread_cond_t cv;  /* a job was queued, or stop */
    struct search_job *queued, *queued_tail, *finished, *finished_tail;
    bool stop;
    struct search_gen *cur; /* the loop thread's; NULL until the view opens */
    uint64_t next_serial;
    pthread_mutex_t dbi_mu; /* LMDB: one mdb_dbi_open at a time in the process */
    unsigned n_workers;
    struct search_worker *workers;
    struct search_worker loop; /* the loop thread's reader: jobs without threads, stats */
};

void search_job_free(struct search_job *job)
{
    if (job == NULL)
        return;
    free(job->q);
    for (size_t i = 0; i < job->n_tags; i++)
        free(job->tags[i]);
    free(job->language);
    free(job->body);
    free(job);
}

/* Drop a reference; the last one closes the generation. */
static void gen_release(struct search_pool *p, struct search_gen *g)
{
    bool last;

    if (g == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    last = --g->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (last) {
        proj_view_close(g->view);
        free(g);
    }
}

/* The live generation, reopened if a rebuild swapped a new one in (loop thread). */
static int gen_current(struct search_pool *p, struct sp_errbuf *eb)
{
    struct search_gen *g;
    struct proj_view *v = NULL;
    int rc;

    if (p->cur != NULL && proj_view_is_current(p->cur->view))
        return 0;
    rc = proj_view_open(&p->opts, PROJ_VIEW_READ, &v, eb);
    if (rc != 0)
        return rc == SP_ENOTFOUND ? SP_EUNAVAIL : rc;
    if (p->cur != NULL)
        sp_log(SP_LOG_INFO, "search view: generation %s replaced by %s (a rebuild)",
               proj_view_generation(p->cur->view), proj_view_generation(v));
    g = sp_xcalloc(1, sizeof(*g));
    g->view = v;
    g->refs = 1;
    g->serial = ++p->next_serial;
    gen_release(p, p->cur);
    p->cur = g;
    return 0;
}

/* The worker's engine on generation @p g (a new one after a swap). */
static int reader_ready(struct search_worker *w, struct search_gen *g, struct sp_errbuf *eb)
{
    MDB_txn *txn;
    int rc;

    if (w->serial == g->serial)
        return 0;
    proj_search_reader_free(w->reader);
    w->reader = NULL;
    w->serial = 0;
    pthread_mutex_lock(&w->p->dbi_mu);
    rc = mdb_txn_begin(proj_view_env(g->view), NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        pthread_mutex_unlock(&w->p->dbi_mu);
        return sp_err_set(eb, SP_EDB, NULL, "could not read the search view: %s", mdb_strerror(rc));
    }
    rc = proj_search_reader_open(txn, &w->reader, eb);
    if (rc == 0 && (rc = mdb_txn_commit(txn)) != 0) /* keeps the handles */
        rc = sp_err_set(eb, SP_EDB, NULL, "could not read the search view: %s", mdb_strerror(rc));
    else if (rc != 0)
        mdb_txn_abort(txn);
    pthread_mutex_unlock(&w->p->dbi_mu);
    if (rc == 0)
        w->serial = g->serial;
    return rc == SP_ENOTFOUND ? SP_EUNAVAIL : rc;
}

static int job_query(struct search_worker *w, struct search_job *job, MDB_txn *txn, json_t **out)
{
    struct proj_search_query q = {0};
    const char *tags[PROJ_SEARCH_MAX_TAGS];

    switch (job->kind) {
    case SEARCH_RECIPES:
        for (size_t i = 0; i < job->n_tags; i++)
            tags[i] = job->tags[i];
        q.text = job->q;
        q.text_len = strlen(job->q);
        q.tags = tags;
        q.n_tags = job->n_tags;
        q.author_id = job->author_id;
        q.language = job->language;
        q.limit = job->limit;
        q.page = job->page;
        q.params = w->p->params;
        return proj_search_recipes(w->reader, txn, &q, out, &job->eb);
    case SEARCH_USERS:
        return proj_search_users(w->reader, txn, job->q, strlen(job->q), job->limit, out, &job->eb);
    case SEARCH_TAGS:
    default:
        return proj_search_tags(w->reader, txn, job->q, strlen(job->q), job->limit, out, &job->eb);
    }
}

/* Run one job on @p w's engine: the outcome goes into the job. */
static void job_run(struct search_worker *w, struct search_job *job)
{
    int64_t t0_us = sp_time_mono_us();
    json_t *out = NULL;
    MDB_txn *txn = NULL;
    int rc;

    if (job->gen == NULL) {
        job->rc = job->rc != 0 ? job->rc : SP_EUNAVAIL;
        return;
    }
    rc = reader_ready(w, job->gen, &job->eb);
    if (rc == 0 && (rc = mdb_txn_begin(proj_view_env(job->gen->view), NULL, MDB_RDONLY, &txn)))
        rc = sp_err_set(&job->eb, SP_EDB, NULL, "could not read the search view: %s",
                        mdb_strerror(rc));
    if (rc == 0) {
        rc = job_query(w, job, txn, &out);
        mdb_txn_abort(txn);
    }
    job->engine_us = sp_time_mono_us() - t0_us;
    if (rc == 0) {
        job->has_more = json_is_true(json_object_get(out, "has_more"));
        job->body = json_dumps(out, JSON_COMPACT);
        job->body_len = job->body != NULL ? strlen(job->body) : 0;
        rc = job->body != NULL ? 0 : sp_err_set(&job->eb, -ENOMEM, NULL, "out of memory");
    }
    json_decref(out);
    job->rc = rc;
}

static void *worker_main(void *arg)
{
    struct search_worker *w = arg;
    struct search_pool *p = w->p;
    struct search_job *job;
    uint64_t one = 1;

    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->queued == NULL && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if ((job = p->queued) == NULL) { /* stop, and nothing left */
            pthread_mutex_unlock(&p->mu);
            break;
        }
        p->queued = job->next;
        pthread_mutex_unlock(&p->mu);
        job_run(w, job);
        gen_release(p, job->gen);
        job->gen = NULL;
        job->next = NULL;
        pthread_mutex_lock(&p->mu);
        if (p->finished_tail != NULL)
            p->finished_tail->next = job;
        else
            p->finished = job;
        p->finished_tail = job;
        pthread_mutex_unlock(&p->mu);
        if (write(p->efd, &one, sizeof(one)) != sizeof(one))
            sp_log(SP_LOG_WARN, "search pool: could not wake the loop: %s", strerror(errno));
    }
    proj_search_reader_free(w->reader);
    w->reader = NULL;
    return NULL;
}

/* Loop: hand every finished job back. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct search_pool *p = arg;
    struct search_job *job, *next;
    uint64_t n;

    (void)what;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        sp_log(SP_LOG_WARN, "search pool: eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&p->mu);
    job = p->finished;
    p->finished = p->finished_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    for (; job != NULL; job = next) {
        next = job->next;
        job->next = NULL;
        p->done(job, p->done_ud);
    }
}

struct search_pool *search_pool_new(struct event_base *base,
                                    unsigned threads,
                                    const struct proj_view_opts *opts,
                                    const struct proj_bm25f_params *params,
                                    search_done_fn done,
                                    void *done_ud)
{
    struct search_pool *p = sp_xcalloc(1, sizeof(*p));

    p->base = base;
    p->done = done;
    p->done_ud = done_ud;
    p->opts = *opts;
    snprintf(p->dir, sizeof(p->dir), "%s", opts->dir);
    p->opts.dir = p->dir;
    p->params = params;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_mutex_init(&p->dbi_mu, NULL);
    p->loop.p = p;
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    SP_ASSERT(p->efd >= 0);
    p->wake = event_new(base, p->efd, EV_READ | EV_PERSIST, on_wake, p);
    SP_ASSERT(p->wake != NULL && event_add(p->wake, NULL) == 0);
    p->n_workers = threads;
    p->workers = sp_xcalloc(threads > 0 ? threads : 1, sizeof(*p->workers));
    for (unsigned i = 0; i < threads; i++) {
        p->workers[i].p = p;
        SP_ASSERT(pthread_create(&p->workers[i].tid, NULL, worker_main, &p->workers[i]) == 0);
    }
    return p;
}

void search_pool_submit(struct search_pool *p, struct search_job *job)
{
    int rc = gen_current(p, &job->eb);

    job->next = NULL;
    job->gen = NULL;
    if (rc != 0) {
        job->rc = rc;
    } else {
        pthread_mutex_lock(&p->mu);
        p->cur->refs++;
        pthread_mutex_unlock(&p->mu);
        job->gen = p->cur;
    }
    if (p->n_workers == 0 || job->gen == NULL) {
        if (job->gen != NULL)
            job_run(&p->loop, job);
        gen_release(p, job->gen);
        job->gen = NULL;
        p->done(job, p->done_ud);
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (p->queued != NULL)
        p->queued_tail->next = job;
    else
        p->queued = job;
    p->queued_tail = job;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int search_pool_view(struct search_pool *p, struct proj_view **view, struct sp_errbuf *eb)
{
    int rc = gen_current(p, eb);

    *view = rc == 0 ? p->cur->view : NULL;
    return rc;
}

int search_pool_stats(struct search_pool *p, struct proj_search_stats *st, struct sp_errbuf *eb)
{
    MDB_txn *txn;
    int rc = gen_current(p, eb);

    if (rc == 0)
        rc = reader_ready(&p->loop, p->cur, eb);
    if (rc != 0)
        return rc;
    if (mdb_txn_begin(proj_view_env(p->cur->view), NULL, MDB_RDONLY, &txn) != 0)
        return sp_err_set(eb, SP_EDB, NULL, "could not read the search view");
    rc = proj_search_stats(p->loop.reader, txn, st, eb);
    mdb_txn_abort(txn);
    return rc;
}

void search_pool_free(struct search_pool *p)
{
    struct search_job *job, *next;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    job = p->queued; /* not started: dropped */
    p->queued = p->queued_tail = NULL;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_workers; i++)
        pthread_join(p->workers[i].tid, NULL);
    for (; job != NULL; job = next) {
        next = job->next;
        gen_release(p, job->gen);
        search_job_free(job);
    }
    for (job = p->finished; job != NULL; job = next) {
        next = job->next;
        search_job_free(job);
    }
    proj_search_reader_free(p->loop.reader);
    gen_release(p, p->cur);
    event_free(p->wake);
    close(p->efd);
    pthread_mutex_destroy(&p->dbi_mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}
