/*
 * The projector daemon. The main thread runs the libevent loop (HTTP probes, signals); a
 * supervisor thread applies migrations, opens the log as a reader and starts one thread
 * per projection, each stepping its own runner (own connection, checkpoint, back-off).
 * They share only `struct daemon` fields under `mu` (@locks), the log handle (es_log_read,
 * es_log_end, es_log_wait are thread-safe) and the thread-safe metrics registry.
 *
 * Embedded LMDB log: log-mode runners over the one shared reader handle (a process must
 * not open an LMDB log twice). Kafka: consumer-mode runners, each projection in its own
 * consumer group "stockpot-projection-<name>" so that projector instances share the
 * partitions; the shared handle (operations capped at PROJ_KAFKA_OP_MAX_MS) only serves
 * the lag gauges.
 *
 * Shutdown: every wait is sliced (daemon_sleep, polls of at most 200 ms, Kafka operations
 * capped), so the threads notice the stop flag within about a second whatever Kafka does;
 * if they still have not finished DAEMON_STOP_MS after the signal (librdkafka's consumer
 * close may wait for an unreachable group coordinator), the process exits without them.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "es/log.h"
#include "proj/daemon.h"
#include "proj/migrate.h"
#include "proj/pg.h"
#include "proj/runner.h"
#include "runner_impl.h"
#include "sp/alloc.h"
#include "sp/http.h"
#include "sp/log.h"
#include "sp/metrics.h"
#include "sp/time.h"

#include "sp/banned.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define IDLE_STEP_MS   1000
#define POLL_KAFKA_MS  200  /* longest wait of one consumer poll */
#define DAEMON_STOP_MS 1500 /* after the signal, longest wait for the threads */
#define LAG_KAFKA_MS   500  /* bound on one Kafka call for the lag gauges */
#define LAG_EVERY_MS   1000 /* between two looks at the partitions' ends */

struct daemon;

/*
 * Kafka: watches the partitions' ends for the lag gauges. On a thread of its own because
 * librdkafka 2.0.2's rd_kafka_query_watermark_offsets (behind es_log_end) can block far
 * past its timeout when no broker is reachable: no projection waits on it, nor does
 * shutdown (daemon_lag_stop). The lag thread's own state: it touches nothing else.
 */
struct daemon_lag {
    atomic_bool stop;
    struct es_log *log;    /* owned: the daemon's Kafka reader handle */
    _Atomic int64_t *ends; /* n partition ends, -1 = unknown */
    int32_t n;
    pthread_t tid;
};

/* One projection the daemon runs, with its own runner and thread. */
struct daemon_proj {
    struct daemon *d;                   /* the owner */
    const struct proj_projection *proj; /* borrowed, static */
    struct proj_runner *r;              /* owned; created and freed by the supervisor */
    pthread_t tid;
    bool started;       /* tid is a running thread (supervisor only) */
    bool pg_ok, halted; /* under d->mu */
    char why[320];      /* under d->mu: why not ready, "" when ready */
};

struct daemon {
    const struct sp_config *cfg; /* borrowed */
    struct sp_metrics *metrics;  /* owned; thread-safe */
    struct event_base *base;     /* main thread only */
    atomic_bool stop;            /* set by the main thread, read by the others */
    struct es_log *log;          /* owned by the supervisor; set before the workers start */
    bool kafka;                  /* log.backend = kafka: consumer-mode runners */
    struct daemon_lag *lag;      /* kafka: owned by the supervisor; set before the workers
                                  * start, which only read its ends */
    struct daemon_proj *projs;   /* n_projs entries, fixed before any thread starts */
    size_t n_projs;
    pthread_mutex_t mu; /* guards the fields below and daemon_proj's */
    bool migrated, log_open, fatal;
    char why[320]; /* reason for not ready before the projections run, "" when ready */
};

static void daemon_set(struct daemon *d, bool *flag, bool value, const char *why)
{
    pthread_mutex_lock(&d->mu);
    *flag = value;
    snprintf(d->why, sizeof(d->why), "%s", why ? why : "");
    pthread_mutex_unlock(&d->mu);
}

static void proj_set(struct daemon_proj *w, bool *flag, bool value, const char *why)
{
    pthread_mutex_lock(&w->d->mu);
    *flag = value;
    snprintf(w->why, sizeof(w->why), "%s", why ? why : "");
    pthread_mutex_unlock(&w->d->mu);
}

/* Sleeps up to @p ms in short slices; returns false if asked to stop. */
static bool daemon_sleep(struct daemon *d, int ms)
{
    struct timespec ts = {0, 20L * 1000 * 1000};
    for (int left = ms; left > 0 && !atomic_load(&d->stop); left -= 20)
        nanosleep(&ts, NULL);
    return !atomic_load(&d->stop);
}

static int backoff_next(int ms)
{
    return ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
}

/* Applies migrations, retrying while PostgreSQL is unreachable. @return 0 or fatal error. */
static int daemon_migrate(struct daemon *d)
{
    struct sp_errbuf eb = {{0}, {0}};
    char dir[4096];
    PGconn *conn = NULL;
    int rc, applied = 0, wait_ms = BACKOFF_MIN_MS;
    bool pg = false;

    for (size_t i = 0; i < d->n_projs; i++)
        pg = pg || d->projs[i].proj->store == PROJ_STORE_PG;
    if (!pg) { /* only LMDB views: this projector never needs PostgreSQL */
        daemon_set(d, &d->migrated, true, "log not open yet");
        return 0;
    }
    rc = proj_migrate_sql_dir(dir, sizeof(dir), &eb);
    if (rc != 0)
        goto out_fatal;
    for (;;) {
        rc = proj_pg_connect(sp_config_str(d->cfg, "pg.conninfo"), "stockpot-projector/migrate",
                             &conn, &eb);
        if (rc == 0)
            rc = proj_migrate_run(conn, dir, &applied, &eb);
        PQfinish(conn);
        conn = NULL;
        if (rc != SP_EUNAVAIL)
            break;
        daemon_set(d, &d->migrated, false, eb.msg);
        sp_log(SP_LOG_WARN, "postgresql unavailable, retrying migrations in %d ms: %s", wait_ms,
               eb.msg);
        if (!daemon_sleep(d, wait_ms))
            return SP_ESTATE;
        wait_ms = backoff_next(wait_ms);
    }
    if (rc != 0)
        goto out_fatal;
    sp_log(SP_LOG_INFO, "migrations up to date (%d applied from \"%s\")", applied, dir);
    daemon_set(d, &d->migrated, true, "log not open yet");
    return 0;
out_fatal:
    sp_log(SP_LOG_ERROR, "could not apply migrations: %s", eb.msg);
    daemon_set(d, &d->fatal, true, eb.msg);
    return rc;
}

static int daemon_log_open_once(struct daemon *d, struct sp_errbuf *eb)
{
    struct es_kafka_opts ko;

    if (!d->kafka)
        return es_log_open(d->cfg, ES_LOG_READER, &d->log, eb);
    proj__kafka_opts(d->cfg, LAG_KAFKA_MS, &ko); /* this handle only serves the lag gauges */
    return es_log_open_kafka(&ko, ES_LOG_READER, &d->log, eb);
}

/* Opens the log as a reader, waiting for the writer to create it. */
static int daemon_open_log(struct daemon *d)
{
    struct sp_errbuf eb = {{0}, {0}};
    bool told = false;

    while (daemon_log_open_once(d, &eb) != 0) {
        if (!told)
            sp_log(SP_LOG_WARN, "event log not available yet, waiting: %s", eb.msg);
        told = true;
        daemon_set(d, &d->log_open, false, eb.msg);
        if (!daemon_sleep(d, 500))
            return SP_ESTATE;
    }
    sp_log(SP_LOG_INFO, "event log open for reading");
    daemon_set(d, &d->log_open, true, "");
    return 0;
}

/* Creates the runner of every projection. @return 0 or SP_EINVAL (fatal, logged). */
static int daemon_runners(struct daemon *d)
{
    struct proj_runner_opts opts = {0};
    struct proj_consumer_opts copts = {POLL_KAFKA_MS, 0, 0};
    struct sp_errbuf eb = {{0}, {0}};
    enum proj_poison_policy policy = PROJ_POISON_DEAD_LETTER;

    if (proj_poison_policy_parse(sp_config_str(d->cfg, "projector.poison_policy"), &policy) != 0)
        policy = PROJ_POISON_DEAD_LETTER;
    opts.conninfo = sp_config_str(d->cfg, "pg.conninfo");
    opts.policy = policy;
    opts.metrics = d->metrics;
    for (size_t i = 0; i < d->n_projs; i++) {
        char view_dir[4096];
        int rc;
        opts.proj = d->projs[i].proj;
        snprintf(view_dir, sizeof(view_dir), "%s/%s", sp_config_str(d->cfg, "views.dir"),
                 opts.proj->name);
        opts.view_dir = view_dir;
        opts.view_map_size_bytes = (size_t)sp_config_int(d->cfg, "views.map_size_mb") << 20;
        opts.batch_max = (size_t)sp_config_int(d->cfg, opts.proj->store == PROJ_STORE_LMDB
                                                           ? "views.batch_max"
                                                           : "projector.batch_max");
        opts.catchup_batch_max = opts.proj->store == PROJ_STORE_LMDB
                                     ? opts.batch_max
                                     : (size_t)sp_config_int(d->cfg, "projector.catchup_batch_max");
        opts.batch_linger_ms = (int)sp_config_int(d->cfg, "projector.batch_linger_ms");
        rc = d->kafka ? proj_runner_new_consumer(&opts, &copts, d->cfg, &d->projs[i].r, &eb)
                      : proj_runner_new(&opts, d->log, &d->projs[i].r, &eb);
        if (rc != 0) {
            sp_log(SP_LOG_ERROR, "could not start projection \"%s\": %s", opts.proj->name, eb.msg);
            daemon_set(d, &d->fatal, true, eb.msg);
            return SP_EINVAL;
        }
    }
    return 0;
}

/*
 * Caught up: wait for a record past the checkpoint, but step again at least every
 * IDLE_STEP_MS (to notice a rebuild's new checkpoint and PostgreSQL going away) and
 * notice a stop request within poll_ms.
 */
static void daemon_wait_log(struct daemon *d, struct proj_runner *r, int poll_ms)
{
    int64_t cp = proj_runner_checkpoint(r);
    int64_t until_us = sp_time_mono_us() + (int64_t)IDLE_STEP_MS * 1000;

    while (cp >= 0 && !atomic_load(&d->stop) && sp_time_mono_us() < until_us) {
        if (es_log_wait(d->log, 0, cp, poll_ms, NULL) == 0)
            return;
    }
}

/* Handles one step's outcome; returns the next back-off in ms (0 = none). */
static int
proj_after_step(struct daemon_proj *w, int rc, int64_t n, const struct sp_errbuf *eb, int wait_ms)
{
    struct daemon *d = w->d;
    const char *kv[] = {"projection", w->proj->name, NULL};
    char why[sizeof(w->why)];

    if (rc == 0) {
        if (!w->pg_ok)
            sp_logf(SP_LOG_INFO, kv, "projection running");
        proj_set(w, &w->pg_ok, true, "");
        if (n == 0 && !d->kafka) /* a consumer's poll has waited already */
            daemon_wait_log(d, w->r, (int)sp_config_int(d->cfg, "projector.poll_ms"));
        return 0;
    }
    snprintf(why, sizeof(why), "projection \"%s\": %s", w->proj->name, eb->msg);
    if (rc == SP_ESTATE) {
        proj_set(w, &w->halted, true, why);
        return BACKOFF_MAX_MS;
    }
    if (w->pg_ok || wait_ms == BACKOFF_MIN_MS)
        sp_logf(SP_LOG_WARN, kv, "projection step failed, retrying in %d ms: %s", wait_ms, eb->msg);
    proj_set(w, &w->pg_ok, false, why);
    return wait_ms;
}

/* One projection's thread: steps its runner until asked to stop. */
static void *proj_thread(void *arg)
{
    struct daemon_proj *w = arg;
    struct sp_errbuf eb = {{0}, {0}};
    int64_t n = 0;
    int rc, wait_ms = BACKOFF_MIN_MS, sleep_ms;

    while (!atomic_load(&w->d->stop)) {
        sp_err_clear(&eb);
        rc = proj_runner_step(w->r, &n, &eb);
        for (int32_t p = 0; w->d->lag != NULL && p < w->d->lag->n; p++)
            proj_runner_set_end(w->r, p, atomic_load(&w->d->lag->ends[p]));
        sleep_ms = proj_after_step(w, rc, n, &eb, wait_ms);
        wait_ms = sleep_ms == 0     ? BACKOFF_MIN_MS
                  : rc == SP_ESTATE ? wait_ms
                                    : backoff_next(wait_ms);
        if (sleep_ms > 0 && !daemon_sleep(w->d, sleep_ms))
            break;
    }
    return NULL;
}

/* A lag thread still stuck in librdkafka at shutdown, left behind on purpose (the process
 * is exiting); kept reachable so that leak checkers do not flag it. */
static struct daemon_lag *daemon_stuck_lag;

static void *lag_thread(void *arg)
{
    struct daemon_lag *lag = arg;
    struct timespec ts = {0, 20L * 1000 * 1000};
    int64_t end;

    while (!atomic_load(&lag->stop)) {
        for (int32_t p = 0; p < lag->n && !atomic_load(&lag->stop); p++)
            atomic_store(&lag->ends[p], es_log_end(lag->log, p, &end, NULL) == 0 ? end : -1);
        for (int ms = 0; ms < LAG_EVERY_MS && !atomic_load(&lag->stop); ms += 20)
            nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Hands d->log to a new lag thread. Without one (it could not start) there is no lag. */
static void daemon_lag_start(struct daemon *d)
{
    struct daemon_lag *lag = sp_xcalloc(1, sizeof(*lag));
    int rc;

    atomic_init(&lag->stop, false);
    lag->log = d->log;
    lag->n = es_log_partitions(d->log);
    lag->ends = sp_xcalloc((size_t)(lag->n > 0 ? lag->n : 1), sizeof(*lag->ends));
    for (int32_t p = 0; p < lag->n; p++)
        atomic_init(&lag->ends[p], -1);
    rc = pthread_create(&lag->tid, NULL, lag_thread, lag);
    if (rc != 0) {
        sp_log(SP_LOG_WARN, "could not start the lag thread, no lag gauges: %s", strerror(rc));
        free(lag->ends);
        free(lag);
        return;
    }
    d->log = NULL;
    d->lag = lag;
}

/* Stops the lag thread and closes the log; a thread stuck in librdkafka is left behind. */
static void daemon_lag_stop(struct daemon *d)
{
    struct daemon_lag *lag = d->lag;
    struct timespec until;

    if (lag == NULL)
        return;
    d->lag = NULL;
    atomic_store(&lag->stop, true);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 300L * 1000 * 1000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    if (pthread_timedjoin_np(lag->tid, NULL, &until) != 0) {
        sp_log(SP_LOG_WARN, "the lag thread is stuck in a kafka call, leaving it behind");
        pthread_detach(lag->tid);
        daemon_stuck_lag = lag;
        return;
    }
    es_log_close(lag->log);
    free(lag->ends);
    free(lag);
}

/* The supervisor: start-up, then one thread per projection until they all stop. */
static void *daemon_thread(void *arg)
{
    struct daemon *d = arg;
    int rc;

    if (daemon_migrate(d) != 0 || daemon_open_log(d) != 0 || daemon_runners(d) != 0)
        goto out;
    if (d->kafka)
        daemon_lag_start(d);
    for (size_t i = 0; i < d->n_projs; i++) {
        rc = pthread_create(&d->projs[i].tid, NULL, proj_thread, &d->projs[i]);
        if (rc != 0) {
            sp_log(SP_LOG_ERROR, "could not start the thread of projection \"%s\": %s",
                   d->projs[i].proj->name, strerror(rc));
            daemon_set(d, &d->fatal, true, "could not start a projection thread");
            atomic_store(&d->stop, true);
            break;
        }
        d->projs[i].started = true;
    }
    for (size_t i = 0; i < d->n_projs; i++) {
        if (d->projs[i].started)
            pthread_join(d->projs[i].tid, NULL);
    }
out:
    sp_log(SP_LOG_DEBUG, "projection threads stopped, closing the runners");
    for (size_t i = 0; i < d->n_projs; i++) {
        proj_runner_free(d->projs[i].r);
        d->projs[i].r = NULL;
    }
    daemon_lag_stop(d);
    sp_log(SP_LOG_DEBUG, "runners closed, closing the log");
    es_log_close(d->log);
    d->log = NULL;
    sp_log(SP_LOG_DEBUG, "log closed");
    return NULL;
}

/* Ready when started up and every projection's last step succeeded (not halted). */
static bool daemon_ready(void *ud, struct sp_buf *why)
{
    struct daemon *d = ud;
    const char *reason = NULL;

    pthread_mutex_lock(&d->mu);
    if (!d->migrated || !d->log_open || d->fatal)
        reason = d->why[0] ? d->why : "starting";
    for (size_t i = 0; reason == NULL && i < d->n_projs; i++) {
        if (!d->projs[i].pg_ok || d->projs[i].halted)
            reason = d->projs[i].why[0] ? d->projs[i].why : "starting";
    }
    if (reason != NULL && sp_buf_adds(why, reason) != 0)
        sp_log(SP_LOG_DEBUG, "readiness reason truncated"); /* still not ready */
    pthread_mutex_unlock(&d->mu);
    return reason == NULL;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    (void)what;
    sp_log(SP_LOG_INFO, "received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    atomic_store(&d->stop, true);
    event_base_loopbreak(d->base);
}

/* A fatal start-up error on the supervisor thread ends the loop (checked on a timer). */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    bool fatal;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&d->mu);
    fatal = d->fatal;
    pthread_mutex_unlock(&d->mu);
    if (fatal)
        event_base_loopbreak(d->base);
}

static int daemon_http(struct daemon *d, struct sp_http_server **srv)
{
    struct sp_http_opts opts = {0};
    struct sp_errbuf eb = {{0}, {0}};

    opts.service = "projector";
    opts.host = sp_config_str(d->cfg, "projector.host");
    opts.port = (int)sp_config_int(d->cfg, "projector.port");
    opts.max_body_bytes = (size_t)sp_config_int(d->cfg, "http.max_body_bytes");
    opts.max_header_bytes = (size_t)sp_config_int(d->cfg, "http.max_header_bytes");
    opts.timeout_s = (int)sp_config_int(d->cfg, "http.timeout_s");
    opts.max_json_depth = (size_t)sp_config_int(d->cfg, "http.max_json_depth");
    opts.metrics = d->metrics;
    opts.ready = daemon_ready;
    opts.ready_ud = d;
    if (sp_http_server_new(d->base, &opts, srv, &eb) != 0) {
        sp_log(SP_LOG_ERROR, "could not start http server: %s", eb.msg);
        return -1;
    }
    return 0;
}

/* Starts the supervisor with SIGTERM/SIGINT blocked (its threads inherit the mask), so
 * the loop gets them. */
static int daemon_start_thread(struct daemon *d, pthread_t *tid)
{
    sigset_t set, old;
    int rc;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    rc = pthread_create(tid, NULL, daemon_thread, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        sp_log(SP_LOG_ERROR, "could not start the supervisor thread: %s", strerror(rc));
    return rc;
}

/*
 * Waits for the supervisor (hence every projection thread) to finish, at most
 * DAEMON_STOP_MS; past that a thread is stuck in a call that does not honour the stop
 * flag (librdkafka's consumer close waiting for an unreachable coordinator): exit now,
 * without freeing what those threads still use. Checkpoints are safe: every batch is one
 * committed or rolled-back transaction.
 */
static void daemon_join(struct daemon *d, pthread_t tid)
{
    struct timespec until;
    int rc;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DAEMON_STOP_MS / 1000;
    until.tv_nsec += (long)(DAEMON_STOP_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    rc = pthread_timedjoin_np(tid, NULL, &until);
    if (rc == 0)
        return;
    sp_log(SP_LOG_WARN,
           "projection threads still busy %d ms after the stop request (event log "
           "unreachable?): exiting without waiting for them",
           DAEMON_STOP_MS);
    fflush(NULL);
    _exit(d->fatal ? 1 : 0);
}

static int daemon_loop(struct daemon *d)
{
    struct sp_http_server *srv = NULL;
    struct event *ev_term, *ev_int, *ev_tick;
    struct timeval tick = {0, 200L * 1000};
    pthread_t tid;
    int status = 1;

    if (daemon_http(d, &srv) != 0)
        return 1;
    ev_term = evsignal_new(d->base, SIGTERM, on_signal, d);
    ev_int = evsignal_new(d->base, SIGINT, on_signal, d);
    ev_tick = event_new(d->base, -1, EV_PERSIST, on_tick, d);
    event_add(ev_term, NULL);
    event_add(ev_int, NULL);
    event_add(ev_tick, &tick);
    if (daemon_start_thread(d, &tid) == 0) {
        event_base_dispatch(d->base);
        atomic_store(&d->stop, true);
        daemon_join(d, tid);
        status = d->fatal ? 1 : 0;
    }
    event_free(ev_tick);
    event_free(ev_int);
    event_free(ev_term);
    sp_http_server_free(srv);
    sp_log(SP_LOG_INFO, "projector stopped");
    return status;
}

int proj_daemon_run(const struct sp_config *cfg,
                    const struct proj_projection *const *projs,
                    size_t n_projs)
{
    const struct proj_projection *selected[16];
    struct sp_errbuf eb = {{0}, {0}};
    struct daemon d;
    int status;

    memset(&d, 0, sizeof(d));
    d.cfg = cfg;
    d.kafka = proj__kafka_backend(cfg);
    atomic_init(&d.stop, false);
    pthread_mutex_init(&d.mu, NULL);
    snprintf(d.why, sizeof(d.why), "starting");
    if (projs == NULL) {
        if (proj_registry_select(sp_config_str(cfg, "projector.projections"), selected,
                                 sizeof(selected) / sizeof(selected[0]), &n_projs, &eb) != 0) {
            sp_log(SP_LOG_ERROR, "bad configuration: %s", eb.msg);
            pthread_mutex_destroy(&d.mu);
            return 1;
        }
        projs = selected;
    }
    d.n_projs = n_projs;
    d.projs = sp_xcalloc(d.n_projs > 0 ? d.n_projs : 1, sizeof(*d.projs));
    for (size_t i = 0; i < d.n_projs; i++) {
        d.projs[i].d = &d;
        d.projs[i].proj = projs[i];
        snprintf(d.projs[i].why, sizeof(d.projs[i].why), "projection \"%s\": starting",
                 d.projs[i].proj->name);
    }
    signal(SIGPIPE, SIG_IGN);
    d.metrics = sp_metrics_new();
    d.base = event_base_new();
    if (d.base == NULL) {
        sp_log(SP_LOG_ERROR, "could not create the event loop");
        status = 1;
    } else {
        status = daemon_loop(&d);
        event_base_free(d.base);
    }
    sp_metrics_free(d.metrics);
    free(d.projs);
    pthread_mutex_destroy(&d.mu);
    return status;
}
