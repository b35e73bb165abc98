/*
 * The projection runner in log mode (batches read from the stored checkpoint of every
 * partition, one PostgreSQL transaction per batch with the checkpoint update), and what
 * both modes share: options, reconnects after connection loss, metrics, halting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "proj/pg.h"
#include "proj/runner.h"
#include "runner_impl.h"
#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"

#include "sp/banned.h"

static void runner_describe(struct sp_metrics *m)
{
    sp_metrics_describe(m, "stockpot_projection_events_applied_total", SP_METRIC_COUNTER,
                        "Events applied (folded or ignored by type) per projection");
    sp_metrics_describe(m, "stockpot_projection_dead_letters_total", SP_METRIC_COUNTER,
                        "Poison events written to stockpot.dead_letters per projection");
    sp_metrics_describe(m, "stockpot_projection_checkpoint", SP_METRIC_GAUGE,
                        "Next log offset to apply per projection and partition");
    sp_metrics_describe(m, "stockpot_projection_lag_events", SP_METRIC_GAUGE,
                        "Log end minus checkpoint per projection and partition, events");
    sp_metrics_describe(m, "stockpot_projection_batch_seconds", SP_METRIC_HISTOGRAM,
                        "Latency of one applied batch transaction, seconds");
    sp_metrics_describe(m, "stockpot_projection_retries_total", SP_METRIC_COUNTER,
                        "Batches rolled back on a transient error (deadlock, timeout, lost "
                        "connection, ...) to be retried, per projection");
    sp_metrics_describe(m, "stockpot_projection_halted", SP_METRIC_GAUGE,
                        "1 if the projection stopped on a poison event (halt policy)");
}

struct proj_runner *proj__runner_alloc(const struct proj_runner_opts *opts, int32_t nparts)
{
    struct proj_runner *r = sp_xcalloc(1, sizeof(*r));

    r->proj = opts->proj;
    r->ops = r->proj->store == PROJ_STORE_LMDB ? &proj__store_view : &proj__store_pg;
    r->conninfo = sp_xstrdup(opts->conninfo ? opts->conninfo : "");
    if (r->proj->store == PROJ_STORE_LMDB) {
        r->vs.dir = sp_xstrdup(opts->view_dir != NULL ? opts->view_dir : "");
        r->vs.opts.dir = r->vs.dir;
        r->vs.opts.format = r->proj->view->format;
        r->vs.opts.max_dbs = r->proj->view->max_dbs;
        r->vs.opts.map_size_bytes = opts->view_map_size_bytes;
    }
    r->batch_max = opts->batch_max;
    r->catchup_max =
        opts->catchup_batch_max > opts->batch_max ? opts->catchup_batch_max : opts->batch_max;
    r->linger_ms = opts->batch_linger_ms > 0 ? opts->batch_linger_ms : 0;
    r->policy = opts->policy;
    r->metrics = opts->metrics;
    if (nparts > 0)
        proj__runner_grow(r, nparts - 1);
    snprintf(r->labels, sizeof(r->labels), "projection=\"%s\"", r->proj->name);
    if (r->metrics != NULL) {
        runner_describe(r->metrics);
        sp_metrics_counter_add(r->metrics, "stockpot_projection_events_applied_total", r->labels,
                               0);
        sp_metrics_counter_add(r->metrics, "stockpot_projection_dead_letters_total", r->labels, 0);
        sp_metrics_counter_add(r->metrics, "stockpot_projection_retries_total", r->labels, 0);
        sp_metrics_gauge_set(r->metrics, "stockpot_projection_halted", r->labels, 0);
    }
    return r;
}

int proj_runner_new(const struct proj_runner_opts *opts,
                    struct es_log *log,
                    struct proj_runner **out,
                    struct sp_errbuf *eb)
{
    *out = NULL;
    if (opts->proj == NULL || opts->batch_max < 1 || log == NULL)
        return sp_err_set(eb, SP_EINVAL, NULL, "runner needs a projection, a log and batch_max");
    if (opts->proj->store == PROJ_STORE_LMDB && (opts->view_dir == NULL || !opts->view_dir[0]))
        return sp_err_set(eb, SP_EINVAL, NULL, "an LMDB view runner needs a view directory");
    *out = proj__runner_alloc(opts, es_log_partitions(log));
    (*out)->log = log;
    return 0;
}

/*
 * An LMDB view holds every partition (DESIGN.md "Scale-out path": every query node keeps
 * its own views by consuming all partitions), so its consumer group is its own: named
 * after the projection, the host and the view's absolute directory, so it is the group's
 * only member and is assigned every partition, across restarts.
 */
static void view_group_id(struct proj_runner *r, const char *view_dir)
{
    char host[64] = "", cwd[2048] = "", path[4096];

    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "unknown");
    if (view_dir[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL)
        cwd[0] = '\0';
    snprintf(path, sizeof(path), "%s%s%s", cwd, cwd[0] ? "/" : "", view_dir);
    snprintf(r->group_id, sizeof(r->group_id), "stockpot-view-%s-%.40s-%08x", r->proj->name, host,
             (unsigned)XXH32(path, strlen(path), 0));
}

int proj_runner_new_consumer(const struct proj_runner_opts *opts,
                             const struct proj_consumer_opts *copts,
                             const struct sp_config *cfg,
                             struct proj_runner **out,
                             struct sp_errbuf *eb)
{
    static const struct proj_consumer_opts defaults = {0, 0, 0};
    struct proj_runner *r;

    *out = NULL;
    if (opts->proj == NULL || opts->batch_max < 1 || cfg == NULL)
        return sp_err_set(eb, SP_EINVAL, NULL,
                          "runner needs a projection, a configuration and batch_max");
    if (copts == NULL)
        copts = &defaults;
    if (copts->poll_ms < 0 || copts->session_timeout_ms < 0 || copts->heartbeat_interval_ms < 0)
        return sp_err_set(eb, SP_EINVAL, NULL, "runner timeouts must not be negative");
    if (opts->proj->store == PROJ_STORE_LMDB && (opts->view_dir == NULL || !opts->view_dir[0]))
        return sp_err_set(eb, SP_EINVAL, NULL, "an LMDB view runner needs a view directory");
    r = proj__runner_alloc(opts, 0);
    r->cfg = cfg;
    r->batch = sp_xcalloc(r->catchup_max, sizeof(*r->batch));
    r->poll_ms = copts->poll_ms > 0 ? copts->poll_ms : 200;
    r->session_timeout_ms = copts->session_timeout_ms;
    r->heartbeat_interval_ms = copts->heartbeat_interval_ms;
    if (r->proj->store == PROJ_STORE_LMDB)
        view_group_id(r, opts->view_dir);
    else
        snprintf(r->group_id, sizeof(r->group_id), "stockpot-projection-%s", r->proj->name);
    *out = r;
    return 0;
}

void proj__runner_grow(struct proj_runner *r, int32_t p)
{
    size_t n = (size_t)p + 1;

    if (p < r->nparts)
        return;
    r->checkpoint = sp_xrealloc(r->checkpoint, n * sizeof(*r->checkpoint));
    r->end = sp_xrealloc(r->end, n * sizeof(*r->end));
    r->assigned = sp_xrealloc(r->assigned, n * sizeof(*r->assigned));
    for (int32_t i = r->nparts; i <= p; i++) {
        r->checkpoint[i] = r->end[i] = -1;
        r->assigned[i] = false;
    }
    r->nparts = p + 1;
}

void proj_runner_free(struct proj_runner *r)
{
    if (r == NULL)
        return;
    proj__runner_consumer_close(r);
    proj__ahead_free(r->ahead);
    proj__reaper_join(r);
    r->ops->close(r);
    free(r->conninfo);
    free(r->vs.dir);
    free(r->checkpoint);
    free(r->end);
    free(r->assigned);
    free(r->batch);
    free(r);
}

void proj__runner_gauges(struct proj_runner *r, int32_t p)
{
    char labels[128];

    if (r->metrics == NULL || r->checkpoint[p] < 0)
        return;
    snprintf(labels, sizeof(labels), "%s,partition=\"%d\"", r->labels, (int)p);
    sp_metrics_gauge_set(r->metrics, "stockpot_projection_checkpoint", labels,
                         (double)r->checkpoint[p]);
    if (r->end[p] >= 0)
        sp_metrics_gauge_set(
            r->metrics, "stockpot_projection_lag_events", labels,
            (double)(r->end[p] > r->checkpoint[p] ? r->end[p] - r->checkpoint[p] : 0));
}

void proj__runner_count(struct proj_runner *r, const struct proj_batch_stats *st, int64_t t0_us)
{
    if (r->metrics == NULL)
        return;
    sp_metrics_counter_add(r->metrics, "stockpot_projection_events_applied_total", r->labels,
                           (double)st->applied);
    sp_metrics_counter_add(r->metrics, "stockpot_projection_dead_letters_total", r->labels,
                           (double)st->dead);
    sp_metrics_observe(r->metrics, "stockpot_projection_batch_seconds", r->labels,
                       (double)(sp_time_mono_us() - t0_us) / 1e6);
}

void proj__runner_retry(struct proj_runner *r, int32_t p, int64_t from, const struct sp_errbuf *eb)
{
    char part[16], off[32];
    const char *kv[] = {"projection", r->proj->name, "partition", part,
                        "offset",     off,           "sqlstate",  eb != NULL ? eb->field : "",
                        NULL};

    snprintf(part, sizeof(part), "%d", (int)p);
    snprintf(off, sizeof(off), "%lld", (long long)from);
    if (kv[7][0] == '\0')
        kv[6] = NULL; /* no SQLSTATE: e.g. the log could not be read */
    sp_logf(SP_LOG_WARN, kv, "batch rolled back, to be retried: %s",
            eb != NULL ? eb->msg : "unknown error");
    if (r->metrics != NULL)
        sp_metrics_counter_add(r->metrics, "stockpot_projection_retries_total", r->labels, 1);
}

int proj__runner_halt(struct proj_runner *r,
                      const struct proj_batch_stats *st,
                      struct sp_errbuf *eb)
{
    r->halted = true;
    snprintf(r->halt_why, sizeof(r->halt_why), "%s", st->halt_error);
    sp_logf(SP_LOG_ERROR, (const char *[]){"projection", r->proj->name, NULL},
            "projection halted on a poison event (projector.poison_policy = halt): %s",
            st->halt_error);
    if (r->metrics != NULL)
        sp_metrics_gauge_set(r->metrics, "stockpot_projection_halted", r->labels, 1);
    return sp_err_set(eb, SP_ESTATE, NULL, "projection \"%s\" halted: %s", r->proj->name,
                      r->halt_why);
}

/* One batch of partition @p p in one transaction with its checkpoint. */
static int step_partition(struct proj_runner *r, int32_t p, int64_t *consumed, struct sp_errbuf *eb)
{
    struct proj_batch_stats st;
    int64_t t0_us, from = r->checkpoint[p]; /* -1 until loaded */
    size_t max = r->backlog ? r->catchup_max : r->batch_max;
    int rc;

    /* live: give a batch up to linger_ms to fill, before the transaction opens */
    if (!r->backlog && r->linger_ms > 0 && from >= 0)
        if (es_log_wait(r->log, p, from + (int64_t)r->batch_max - 1, r->linger_ms, NULL) != 0) {
            /* not full in time (or the end could not be read): apply what there is */
        }
    t0_us = sp_time_mono_us();
    memset(&st, 0, sizeof(st));
    rc = r->ops->begin(r, eb);
    if (rc == 0)
        rc = r->ops->checkpoint_load(r, p, &from, eb);
    if (rc == 0)
        rc = proj__apply_batch(r, r->log, p, from, max, &st, eb);
    if (rc == 0 && st.next_offset != from)
        rc = r->ops->checkpoint_store(r, p, st.next_offset, eb);
    if (rc == 0 && st.next_offset != from)
        rc = r->ops->commit(r, eb);
    else if (rc == 0)
        r->ops->rollback(r); /* nothing to keep */
    if (rc != 0) {
        r->ops->rollback(r);
        proj__runner_retry(r, p, from, eb);
        return rc;
    }
    r->checkpoint[p] = st.next_offset;
    *consumed = st.next_offset - from;
    r->backlog = *consumed >= (int64_t)max;
    if (*consumed > 0)
        proj__runner_count(r, &st, t0_us);
    if (st.halted)
        return proj__runner_halt(r, &st, eb);
    return 0;
}

int proj_runner_step(struct proj_runner *r, int64_t *applied, struct sp_errbuf *eb)
{
    int64_t total = 0, n;
    int rc = 0;

    if (applied != NULL)
        *applied = 0;
    if (r->halted)
        return sp_err_set(eb, SP_ESTATE, NULL, "projection \"%s\" halted: %s", r->proj->name,
                          r->halt_why);
    if (r->cfg != NULL)
        return proj__runner_consumer_step(r, applied, eb);
    rc = r->ops->connect(r, eb);
    for (int32_t p = 0; rc == 0 && p < r->nparts; p++) {
        n = 0;
        rc = step_partition(r, p, &n, eb);
        total += n;
        if (es_log_end(r->log, p, &r->end[p], NULL) != 0)
            r->end[p] = -1;
        proj__runner_gauges(r, p);
    }
    /* A transient error leaves a working session: keep it; a broken one is reopened. */
    r->ops->check(r);
    if (applied != NULL)
        *applied = total;
    return rc;
}

int proj_runner_catch_up(struct proj_runner *r, struct sp_errbuf *eb)
{
    int64_t *target, n;
    bool done = false;
    int rc = 0;

    if (r->cfg != NULL)
        return sp_err_set(eb, SP_EINVAL, NULL, "catch-up is for log-mode runners");
    target = sp_xcalloc((size_t)r->nparts, sizeof(int64_t));

    for (int32_t p = 0; rc == 0 && p < r->nparts; p++)
        rc = es_log_end(r->log, p, &target[p], eb);
    while (rc == 0 && !done) {
        rc = proj_runner_step(r, &n, eb);
        done = true;
        for (int32_t p = 0; p < r->nparts; p++)
            done = done && r->checkpoint[p] >= target[p];
        if (rc == 0 && n == 0)
            break;
    }
    free(target);
    return rc;
}

bool proj_runner_halted(const struct proj_runner *r, const char **why)
{
    if (why != NULL)
        *why = r->halted ? r->halt_why : NULL;
    return r->halted;
}

bool proj_runner_connected(const struct proj_runner *r)
{
    return r->ops->connected(r);
}

int64_t proj_runner_checkpoint(const struct proj_runner *r)
{
    int64_t min = -1;
    for (int32_t p = 0; p < r->nparts; p++) {
        if (r->cfg != NULL && !r->assigned[p])
            continue;
        if (r->checkpoint[p] < 0)
            return -1;
        if (min < 0 || r->checkpoint[p] < min)
            min = r->checkpoint[p];
    }
    return min;
}

int64_t proj_runner_lag(const struct proj_runner *r)
{
    int64_t lag = 0;
    for (int32_t p = 0; p < r->nparts; p++) {
        if (r->cfg != NULL && !r->assigned[p])
            continue;
        if (r->checkpoint[p] < 0 || r->end[p] < 0)
            return -1;
        lag += r->end[p] > r->checkpoint[p] ? r->end[p] - r->checkpoint[p] : 0;
    }
    return lag;
}

size_t proj_runner_assignment(const struct proj_runner *r, int32_t *parts, size_t cap)
{
    size_t n = 0;

    for (int32_t p = 0; r->cfg != NULL && p < r->nparts; p++) {
        if (!r->assigned[p])
            continue;
        if (n < cap)
            parts[n] = p;
        n++;
    }
    return n;
}
