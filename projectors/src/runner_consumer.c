/*
 * The projection runner in consumer mode (es/consumer.h): partitions come and go with the
 * consumer group's rebalances; each batch of polled records is applied in one store
 * transaction with the checkpoints of the partitions it touches, after a check that those
 * checkpoints are still the ones the batch starts from (compare-and-set under the
 * projection lock), so each event is applied exactly once in effect.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner_impl.h"
#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"

#include "sp/banned.h"

void proj__kafka_opts(const struct sp_config *cfg, int cap_ms, struct es_kafka_opts *out)
{
    int64_t timeout_ms = sp_config_int(cfg, "kafka.timeout_ms");

    memset(out, 0, sizeof(*out));
    out->brokers = sp_config_str(cfg, "kafka.brokers");
    out->topic = sp_config_str(cfg, "kafka.topic");
    out->partitions = (int32_t)sp_config_int(cfg, "kafka.partitions");
    out->replication_factor = (int16_t)sp_config_int(cfg, "kafka.replication_factor");
    out->transactional_id = sp_config_str(cfg, "kafka.transactional_id");
    out->timeout_ms = (int)(timeout_ms > 0 && timeout_ms < cap_ms ? timeout_ms : cap_ms);
    out->max_event_bytes = (size_t)sp_config_int(cfg, "log.max_event_bytes");
}

bool proj__kafka_backend(const struct sp_config *cfg)
{
    const char *backend = sp_config_str(cfg, "log.backend");

    return backend != NULL && strcmp(backend, "kafka") == 0;
}

static void batch_drop(struct proj_runner *r)
{
    proj__recs_release(r->batch, r->n_batch);
    memset(r->batch, 0, r->n_batch * sizeof(*r->batch));
    r->n_batch = 0;
}

/* es_consumer_poll callback: copy the record into the pending batch. */
static int collect(const struct es_log_record *rec, void *ud)
{
    struct proj_runner *r = ud;
    struct proj__rec *b;

    if (r->n_batch >= r->catchup_max)
        return SP_ETOOBIG; /* cannot happen: the polls ask for at most catchup_max */
    b = &r->batch[r->n_batch++];
    proj__rec_copy(b, rec);
    return 0;
}

/* on_assign: start each partition at its stored checkpoint. If the checkpoints cannot be
 * read now, start at 0 with the checkpoint unknown: the first batch's check then finds
 * the stored one and seeks there. */
static int on_assign(void *ud, const int32_t *parts, size_t n, int64_t *start)
{
    struct proj_runner *r = ud;
    struct sp_errbuf eb = {{0}, {0}};
    int rc = r->ops->connected(r) ? 0 : SP_EUNAVAIL;

    for (size_t i = 0; i < n; i++) {
        proj__runner_grow(r, parts[i]);
        r->assigned[parts[i]] = true;
        r->checkpoint[parts[i]] = -1;
        if (rc == 0)
            rc = r->ops->checkpoint_load(r, parts[i], &start[i], &eb);
        if (rc == 0)
            r->checkpoint[parts[i]] = start[i];
        else
            start[i] = 0;
    }
    if (rc != 0)
        sp_logf(SP_LOG_WARN, (const char *[]){"projection", r->proj->name, NULL},
                "could not load the checkpoints of %zu assigned partition(s), checking them "
                "at the first batch: %s",
                n, eb.msg[0] ? eb.msg : "no database connection");
    sp_logf(SP_LOG_INFO, (const char *[]){"projection", r->proj->name, NULL},
            "%zu partition(s) assigned", n);
    return 0;
}

/* on_revoke: no transaction is open while the consumer is polled or closed, so the
 * in-flight batch is only polled records: abandon them. The next owner of the partitions
 * starts from the stored checkpoints. */
static void on_revoke(void *ud, const int32_t *parts, size_t n)
{
    struct proj_runner *r = ud;

    batch_drop(r);
    for (size_t i = 0; i < n; i++) {
        if (parts[i] >= r->nparts)
            continue;
        r->assigned[parts[i]] = false;
        r->checkpoint[parts[i]] = -1;
        r->end[parts[i]] = -1;
        if (r->metrics != NULL) { /* the new owner reports it: instances' lags add up */
            char labels[128];
            snprintf(labels, sizeof(labels), "%s,partition=\"%d\"", r->labels, (int)parts[i]);
            sp_metrics_gauge_set(r->metrics, "stockpot_projection_lag_events", labels, 0);
        }
    }
    sp_logf(SP_LOG_INFO, (const char *[]){"projection", r->proj->name, NULL},
            "%zu partition(s) revoked", n);
}

static int consumer_open(struct proj_runner *r, struct sp_errbuf *eb)
{
    struct es_consumer_opts co = {
        .group_id = r->group_id,
        .on_assign = on_assign,
        .on_revoke = on_revoke,
        .ud = r,
        .session_timeout_ms = r->session_timeout_ms,
        .heartbeat_interval_ms = r->heartbeat_interval_ms,
    };
    struct es_kafka_opts ko;
    int rc;

    if (proj__kafka_backend(r->cfg)) {
        proj__kafka_opts(r->cfg, PROJ_KAFKA_OP_MAX_MS, &ko);
        rc = es_consumer_open_kafka(&ko, &co, &r->consumer, eb);
    } else {
        rc = es_consumer_open(r->cfg, &co, &r->consumer, eb);
    }
    if (rc != 0)
        return rc == SP_ESTATE ? SP_EUNAVAIL : rc; /* SP_ESTATE means halted to callers */
    sp_logf(SP_LOG_INFO, (const char *[]){"projection", r->proj->name, "group", r->group_id, NULL},
            "consumer open");
    return 0;
}

void proj__runner_consumer_close(struct proj_runner *r)
{
    if (r->cfg == NULL)
        return; /* log mode */
    if (r->consumer != NULL) {
        es_consumer_close(r->consumer); /* on_revoke drops the batch */
        r->consumer = NULL;
    }
    for (int32_t p = 0; p < r->nparts; p++)
        r->assigned[p] = false;
    if (r->batch != NULL)
        batch_drop(r);
}

/* Re-read every partition of the dropped batch from its checkpoint. If a seek fails,
 * the consumer is closed: the next step re-opens it and on_assign starts from the stored
 * checkpoints. */
static void rewind_batch(struct proj_runner *r, const bool *touched)
{
    struct sp_errbuf eb = {{0}, {0}};

    batch_drop(r);
    for (int32_t p = 0; r->consumer != NULL && p < r->nparts; p++) {
        if (!touched[p] || !r->assigned[p])
            continue;
        if (es_consumer_seek(r->consumer, p, r->checkpoint[p] > 0 ? r->checkpoint[p] : 0, &eb) == 0)
            continue;
        sp_logf(SP_LOG_WARN, (const char *[]){"projection", r->proj->name, NULL},
                "could not rewind the consumer, re-opening it: %s", eb.msg);
        proj__runner_consumer_close(r);
    }
}

/*
 * Under the projection lock: is the stored checkpoint of every touched partition the one
 * this runner believes? Those that moved (a rebuild; another instance before the
 * rebalance reached us) get the stored value and set *moved.
 */
static int
checkpoints_check(struct proj_runner *r, const bool *touched, bool *moved, struct sp_errbuf *eb)
{
    int64_t stored;
    int rc = 0;

    *moved = false;
    for (int32_t p = 0; rc == 0 && p < r->nparts; p++) {
        if (!touched[p] || (rc = r->ops->checkpoint_load(r, p, &stored, eb)) != 0 ||
            stored == r->checkpoint[p])
            continue;
        if (r->checkpoint[p] >= 0)
            sp_logf(SP_LOG_INFO, (const char *[]){"projection", r->proj->name, NULL},
                    "checkpoint of partition %d moved from %lld to %lld (a rebuild or another "
                    "instance): re-reading from there",
                    (int)p, (long long)r->checkpoint[p], (long long)stored);
        r->checkpoint[p] = stored;
        *moved = true;
    }
    return rc;
}

/* Apply the pending records in order; next[p] = the new checkpoint of each partition. */
static int
batch_apply(struct proj_runner *r, struct proj_batch_stats *st, int64_t *next, struct sp_errbuf *eb)
{
    struct proj__apply c = {r, r->policy, st, eb, 0};
    size_t done = 0;
    int rc = r->ops->batch_begin(r, eb);

    if (rc != 0)
        return rc;
    if (proj__apply_recs(&c, r->batch, r->n_batch, &done) != 0) {
        if (c.fatal != 0)
            return c.fatal;
        /* halted before the poison event */
        next[r->batch[done].rec.pos.partition] = r->batch[done].rec.pos.offset;
    }
    for (size_t i = 0; i < done; i++)
        next[r->batch[i].rec.pos.partition] = r->batch[i].rec.pos.offset + 1;
    /* also when halted: the events before the poison one are committed */
    return r->ops->batch_end(r, eb);
}

/* The batch's transaction: lock, check, apply, store the moved checkpoints, commit.
 * *moved: the check failed, nothing was applied (rolled back). */
static int batch_txn(struct proj_runner *r,
                     const bool *touched,
                     struct proj_batch_stats *st,
                     int64_t *next,
                     bool *moved,
                     struct sp_errbuf *eb)
{
    int rc = r->ops->begin(r, eb);

    *moved = false;
    if (rc == 0)
        rc = checkpoints_check(r, touched, moved, eb);
    if (rc == 0 && *moved) {
        r->ops->rollback(r);
        return 0;
    }
    for (int32_t p = 0; p < r->nparts; p++)
        next[p] = r->checkpoint[p];
    if (rc == 0)
        rc = batch_apply(r, st, next, eb);
    for (int32_t p = 0; rc == 0 && p < r->nparts; p++) {
        if (touched[p] && next[p] != r->checkpoint[p])
            rc = r->ops->checkpoint_store(r, p, next[p], eb);
    }
    if (rc == 0)
        rc = r->ops->commit(r, eb);
    return rc;
}

/* Apply the polled batch; *applied = records consumed (0 if it had to be re-read). */
static int batch_run(struct proj_runner *r, int64_t *applied, struct sp_errbuf *eb)
{
    struct proj_batch_stats st;
    bool *touched = sp_xcalloc((size_t)r->nparts, sizeof(*touched));
    int64_t *next = sp_xcalloc((size_t)r->nparts, sizeof(*next));
    int64_t t0_us = sp_time_mono_us();
    int32_t first = r->batch[0].rec.pos.partition;
    bool moved = false;
    int rc;

    memset(&st, 0, sizeof(st));
    for (size_t i = 0; i < r->n_batch; i++)
        touched[r->batch[i].rec.pos.partition] = true;
    rc = batch_txn(r, touched, &st, next, &moved, eb);
    if (rc != 0) {
        r->ops->rollback(r);
        proj__runner_retry(r, first, r->batch[0].rec.pos.offset, eb);
    }
    if (rc != 0 || moved) {
        rewind_batch(r, touched);
        goto out_free;
    }
    *applied = (int64_t)r->n_batch;
    for (int32_t p = 0; p < r->nparts; p++) {
        if (touched[p])
            r->checkpoint[p] = next[p];
        proj__runner_gauges(r, p);
    }
    batch_drop(r);
    proj__runner_count(r, &st, t0_us);
    if (st.halted) {
        rc = proj__runner_halt(r, &st, eb);
        proj__runner_consumer_close(r); /* leave the group: do not block its rebalances */
    }
out_free:
    free(next);
    free(touched);
    return rc;
}

int proj__runner_consumer_step(struct proj_runner *r, int64_t *applied, struct sp_errbuf *eb)
{
    int64_t n = 0;
    int rc = r->ops->connect(r, eb);

    if (rc == 0 && r->consumer == NULL)
        rc = consumer_open(r, eb);
    if (rc == 0 && r->n_batch == 0) {
        size_t max = r->backlog ? r->catchup_max : r->batch_max;
        rc = es_consumer_poll(r->consumer, max, r->poll_ms, collect, r, eb);
        /* live: give the batch up to linger_ms to fill */
        int64_t until_us = sp_time_mono_us() + (int64_t)r->linger_ms * 1000;
        while (rc == 0 && !r->backlog && r->linger_ms > 0 && r->n_batch > 0 && r->n_batch < max &&
               r->consumer != NULL) {
            int64_t left_ms = (until_us - sp_time_mono_us()) / 1000;
            if (left_ms <= 0)
                break;
            rc = es_consumer_poll(r->consumer, max - r->n_batch, (int)left_ms, collect, r, eb);
        }
        r->backlog = rc == 0 && r->n_batch >= max;
        if (rc != 0) {
            sp_logf(SP_LOG_WARN, (const char *[]){"projection", r->proj->name, NULL},
                    "consumer failed, re-opening it: %s", eb->msg);
            proj__runner_consumer_close(r);
            rc = rc == SP_ESTATE ? SP_EUNAVAIL : rc;
        }
    }
    if (rc == 0 && r->n_batch > 0)
        rc = batch_run(r, &n, eb);
    r->ops->check(r);
    if (applied != NULL)
        *applied = n;
    return rc;
}

void proj_runner_set_end(struct proj_runner *r, int32_t partition, int64_t end_offset)
{
    if (r->cfg == NULL || partition < 0 || partition >= r->nparts || !r->assigned[partition])
        return;
    r->end[partition] = end_offset;
    proj__runner_gauges(r, partition);
}
