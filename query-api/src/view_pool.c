/* Reads of an LMDB view on worker threads over a shared read-only environment (view_pool.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "view_pool.h"
#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/json.h"
#include "sp/log.h"
#include "sp/time.h"

#include "sp/banned.h"

/* One open generation of the view, shared by the jobs that run on it. */
struct view_gen {
    struct proj_view *view; /* owned; closed with the last reference */
    unsigned refs;          /* jobs holding it, + 1 while it is the pool's current (mu) */
    uint64_t serial;        /* tells generations apart for the workers' states */
};

struct view_worker {
    struct view_pool *p;
    pthread_t tid;
    void *state;     /* owned (ops->state_free); belongs to generation serial */
    uint64_t serial; /* 0: no state */
};

struct view_pool {
    struct event_base *base;
    struct event *wake; /* owned: the eventfd's read event */
    int efd;            /* workers write 1 per finished job */
    const struct view_pool_ops *ops;
    struct sp_metrics *metrics; /* borrowed */
    void *done_ud;
    char dir[4096];
    struct proj_view_opts opts; /* dir points to dir */
    pthread_mutex_t mu;         /* guards the queues, stop and every view_gen.refs */
    pthread_cond_t cv;          /* a job was queued, or stop */
    struct view_job *queued, *queued_tail, *finished, *finished_tail;
    bool stop;
    struct view_gen *cur; /* the loop thread's; NULL until the view opens */
    uint64_t next_serial;
    pthread_mutex_t dbi_mu; /* LMDB: one mdb_dbi_open at a time in the process */
    unsigned n_workers;
    struct view_worker *workers;
    struct view_worker loop; /* the loop thread's state: jobs without threads, local reads */
};

void view_job_release(struct view_job *job)
{
    free(job->body);
    job->body = NULL;
    job->body_len = 0;
}

/* Drop a reference; the last one closes the generation. */
static void gen_release(struct view_pool *p, struct view_gen *g)
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
static int gen_current(struct view_pool *p, struct sp_errbuf *eb)
{
    struct view_gen *g;
    struct proj_view *v = NULL;
    int rc;

    if (p->cur != NULL && proj_view_is_current(p->cur->view))
        return 0;
    rc = proj_view_open(&p->opts, PROJ_VIEW_READ, &v, eb);
    if (rc != 0)
        return rc == SP_ENOTFOUND ? SP_EUNAVAIL : rc;
    if (p->cur != NULL)
        sp_log(SP_LOG_INFO, "%s view: generation %s replaced by %s (a rebuild)", p->ops->name,
               proj_view_generation(p->cur->view), proj_view_generation(v));
    g = sp_xcalloc(1, sizeof(*g));
    g->view = v;
    g->refs = 1;
    g->serial = ++p->next_serial;
    gen_release(p, p->cur);
    p->cur = g;
    return 0;
}

/* The worker's state on generation @p g (a new one after a swap). */
static int state_ready(struct view_worker *w, struct view_gen *g, struct sp_errbuf *eb)
{
    const struct view_pool_ops *ops = w->p->ops;
    MDB_txn *txn;
    int rc;

    if (w->serial == g->serial)
        return 0;
    ops->state_free(w->state);
    w->state = NULL;
    w->serial = 0;
    pthread_mutex_lock(&w->p->dbi_mu);
    rc = mdb_txn_begin(proj_view_env(g->view), NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        pthread_mutex_unlock(&w->p->dbi_mu);
        return sp_err_set(eb, SP_EDB, NULL, "could not read the %s view: %s", ops->name,
                          mdb_strerror(rc));
    }
    rc = ops->state_open(txn, &w->state, eb);
    if (rc == 0 && (rc = mdb_txn_commit(txn)) != 0) /* keeps the handles */
        rc = sp_err_set(eb, SP_EDB, NULL, "could not read the %s view: %s", ops->name,
                        mdb_strerror(rc));
    else if (rc != 0)
        mdb_txn_abort(txn);
    pthread_mutex_unlock(&w->p->dbi_mu);
    if (rc == 0)
        w->serial = g->serial;
    return rc == SP_ENOTFOUND ? SP_EUNAVAIL : rc;
}

/* Run one job with @p w's state: the outcome goes into the job. */
static void job_run(struct view_worker *w, struct view_job *job)
{
    int64_t t0_us = sp_time_mono_us();
    json_t *out = NULL;
    MDB_txn *txn = NULL;
    int rc;

    if (job->gen == NULL) {
        job->rc = job->rc != 0 ? job->rc : SP_EUNAVAIL;
        return;
    }
    rc = state_ready(w, job->gen, &job->eb);
    if (rc == 0 && (rc = mdb_txn_begin(proj_view_env(job->gen->view), NULL, MDB_RDONLY, &txn)))
        rc = sp_err_set(&job->eb, SP_EDB, NULL, "could not read the %s view: %s", w->p->ops->name,
                        mdb_strerror(rc));
    if (rc == 0) {
        rc = job->run(job, w->state, txn, &out);
        mdb_txn_abort(txn);
    }
    job->run_us = sp_time_mono_us() - t0_us;
    if (rc == 0) {
        struct sp_buf body;
        sp_buf_init(&body, 0);
        rc = sp_json_dump(&body, out);
        if (rc == 0)
            job->body = sp_buf_detach(&body, &job->body_len);
        else
            rc = sp_err_set(&job->eb, rc, NULL, "could not encode the answer");
        sp_buf_release(&body);
    }
    json_decref(out);
    job->rc = rc;
}

static void *worker_main(void *arg)
{
    struct view_worker *w = arg;
    struct view_pool *p = w->p;
    struct view_job *job;
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
            sp_log(SP_LOG_WARN, "%s pool: could not wake the loop: %s", p->ops->name,
                   strerror(errno));
    }
    p->ops->state_free(w->state);
    w->state = NULL;
    return NULL;
}

/* Loop: hand every finished job back. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct view_pool *p = arg;
    struct view_job *job, *next;
    uint64_t n;

    (void)what;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        sp_log(SP_LOG_WARN, "%s pool: eventfd read: %s", p->ops->name, strerror(errno));
    pthread_mutex_lock(&p->mu);
    job = p->finished;
    p->finished = p->finished_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    for (; job != NULL; job = next) {
        next = job->next;
        job->next = NULL;
        p->ops->done(job, p->done_ud);
    }
}

struct view_pool *view_pool_new(struct event_base *base,
                                unsigned threads,
                                const struct proj_view_opts *opts,
                                const struct view_pool_ops *ops,
                                struct sp_metrics *metrics,
                                void *done_ud)
{
    struct view_pool *p = sp_xcalloc(1, sizeof(*p));

    p->base = base;
    p->ops = ops;
    p->metrics = metrics;
    p->done_ud = done_ud;
    p->opts = *opts;
    snprintf(p->dir, sizeof(p->dir), "%s", opts->dir);
    p->opts.dir = p->dir;
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

void view_pool_submit(struct view_pool *p, struct view_job *job)
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
        p->ops->done(job, p->done_ud);
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

int view_pool_view(struct view_pool *p, struct proj_view **view, struct sp_errbuf *eb)
{
    int rc = gen_current(p, eb);

    *view = rc == 0 ? p->cur->view : NULL;
    return rc;
}

int view_pool_checkpoints(void *pool, int32_t *parts, int64_t *offsets, size_t cap, size_t *n)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_view *view;
    MDB_txn *txn;
    int rc = view_pool_view(pool, &view, &eb), got;

    *n = 0;
    if (rc != 0)
        return rc;
    if (mdb_txn_begin(proj_view_env(view), NULL, MDB_RDONLY, &txn) != 0)
        return SP_EDB;
    got = proj_view_checkpoints(view, txn, parts, offsets, cap, &eb);
    mdb_txn_abort(txn);
    if (got < 0)
        return got;
    *n = (size_t)got;
    return 0;
}

int view_pool_local(struct view_pool *p,
                    int (*fn)(void *state, MDB_txn *txn, void *ud),
                    void *ud,
                    struct sp_errbuf *eb)
{
    MDB_txn *txn;
    int rc = gen_current(p, eb);

    if (rc == 0)
        rc = state_ready(&p->loop, p->cur, eb);
    if (rc != 0)
        return rc;
    if (mdb_txn_begin(proj_view_env(p->cur->view), NULL, MDB_RDONLY, &txn) != 0)
        return sp_err_set(eb, SP_EDB, NULL, "could not read the %s view", p->ops->name);
    rc = fn(p->loop.state, txn, ud);
    mdb_txn_abort(txn);
    return rc;
}

int view_pool_reply(const struct view_pool *p, struct sp_http_req *req, const struct view_job *job)
{
    char detail[160];

    if (job->rc == 0) {
        sp_http_reply(req, 200, "application/json", job->body, job->body_len);
        return 200;
    }
    if (job->rc == SP_EINVAL) {
        sp_http_reply_error(req, SP_EINVAL, &job->eb);
        return 400;
    }
    if (job->rc == SP_EUNAVAIL) {
        snprintf(detail, sizeof(detail),
                 "the %s view is not built yet (is the projector running projection \"%s\"?)",
                 p->ops->name, p->ops->name);
        sp_http_add_header(req, "Retry-After", "1");
        sp_http_reply_problem(req, 503, "unavailable", detail, NULL);
        return 503;
    }
    sp_log(SP_LOG_ERROR, "%s view read failed: %s", p->ops->name, job->eb.msg);
    sp_http_reply_problem(req, job->rc == SP_ESTATE ? 503 : 500, NULL, job->eb.msg, NULL);
    return job->rc == SP_ESTATE ? 503 : 500;
}

void view_pool_count(const struct view_pool *p,
                     const char *endpoint,
                     int status,
                     const struct view_job *job)
{
    char labels[96];

    snprintf(labels, sizeof(labels), "endpoint=\"%s\",status=\"%d\"", endpoint, status);
    sp_metrics_counter_add(p->metrics, p->ops->m_queries, labels, 1);
    if (status == 200 && job != NULL) {
        snprintf(labels, sizeof(labels), "endpoint=\"%s\"", endpoint);
        sp_metrics_observe(p->metrics, p->ops->m_seconds, labels, (double)job->run_us / 1e6);
    }
}

void view_pool_free(struct view_pool *p)
{
    struct view_job *job, *next;

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
        p->ops->job_free(job);
    }
    for (job = p->finished; job != NULL; job = next) {
        next = job->next;
        p->ops->job_free(job);
    }
    p->ops->state_free(p->loop.state);
    gen_release(p, p->cur);
    event_free(p->wake);
    close(p->efd);
    pthread_mutex_destroy(&p->dbi_mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}
