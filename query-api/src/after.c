/* Stockpot-After: hold requests until the projection has applied a log position. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/queue.h>

#include "es/event.h"
#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"
#include "qry/after.h"

#include "sp/banned.h"

#define AFTER_HEADER   "Stockpot-After"
#define AFTER_WAIT     "stockpot_query_after_wait_seconds"
#define AFTER_TIMEOUTS "stockpot_query_after_timeouts_total"

struct after_waiter {
    TAILQ_ENTRY(after_waiter) link;
    struct sp_http_req *req; /* borrowed until replied or passed on */
    qry_after_fn fn;
    void *ud;
    struct es_position pos; /* waiting until the checkpoint passes this */
    int64_t start_us;       /* monotonic */
    int64_t deadline_us;    /* monotonic */
    bool fresh;             /* no checkpoint read has succeeded since it arrived */
};

TAILQ_HEAD(after_list, after_waiter);

struct qry_after {
    struct event *timer;    /* owned; pending while any request waits */
    struct qry_db *db;      /* borrowed; NULL when the checkpoints come from read */
    qry_after_read_fn read; /* synchronous checkpoint source (an LMDB view), or NULL */
    void *read_ud;
    struct sp_metrics *metrics; /* borrowed */
    int64_t timeout_ms;
    int32_t partitions;        /* 0 = unknown: any partition >= 0 */
    bool reading;              /* a checkpoint read is in flight */
    struct after_list waiters; /* in arrival order */
    size_t n_waiting;
};

static void after_tick(evutil_socket_t fd, short what, void *arg);

struct qry_after *qry_after_new(struct event_base *base,
                                struct qry_db *db,
                                struct sp_metrics *metrics,
                                int64_t timeout_ms,
                                int32_t partitions)
{
    return qry_after_new_source(base, db, NULL, NULL, metrics, timeout_ms, partitions);
}

struct qry_after *qry_after_new_source(struct event_base *base,
                                       struct qry_db *db,
                                       qry_after_read_fn read,
                                       void *read_ud,
                                       struct sp_metrics *metrics,
                                       int64_t timeout_ms,
                                       int32_t partitions)
{
    struct qry_after *after = sp_xcalloc(1, sizeof(*after));

    SP_ASSERT((db != NULL) != (read != NULL));
    after->timer = evtimer_new(base, after_tick, after);
    SP_ASSERT(after->timer != NULL);
    after->db = db;
    after->read = read;
    after->read_ud = read_ud;
    after->metrics = metrics;
    after->timeout_ms = timeout_ms;
    after->partitions = partitions;
    TAILQ_INIT(&after->waiters);
    sp_metrics_describe(metrics, AFTER_WAIT, SP_METRIC_HISTOGRAM,
                        "Time requests with Stockpot-After waited for the projection, seconds");
    sp_metrics_describe(metrics, AFTER_TIMEOUTS, SP_METRIC_COUNTER,
                        "Requests with Stockpot-After answered 503 because the wait timed out");
    return after;
}

void qry_after_free(struct qry_after *after)
{
    struct after_waiter *w;

    if (after == NULL)
        return;
    while ((w = TAILQ_FIRST(&after->waiters)) != NULL) {
        TAILQ_REMOVE(&after->waiters, w, link);
        w->fn(NULL, w->ud);
        free(w);
    }
    event_free(after->timer);
    free(after);
}

size_t qry_after_waiting(const struct qry_after *after)
{
    return after->n_waiting;
}

/* Whether the checkpoints (partition, next_offset) show @p pos applied. */
static bool
after_applied(const int32_t *parts, const int64_t *offsets, size_t n, struct es_position pos)
{
    for (size_t i = 0; i < n; i++) {
        if (parts[i] == pos.partition)
            return offsets[i] > pos.offset;
    }
    return false;
}

static void after_observe(struct qry_after *after, int64_t start_us)
{
    sp_metrics_observe(after->metrics, AFTER_WAIT, "",
                       (double)(sp_time_mono_us() - start_us) / 1e6);
}

static void after_reply_unavailable(struct sp_http_req *req, int err, const char *detail)
{
    sp_http_add_header(req, "Retry-After", "1");
    sp_http_reply_problem(req, err == SP_EDB ? 500 : 503,
                          err == SP_ETIMEDOUT ? "after-timeout" : "unavailable", detail, NULL);
}

static void after_timeout(struct qry_after *after, struct after_waiter *w)
{
    char token[32];
    char detail[160];

    es_position_format(w->pos, token, sizeof(token));
    snprintf(detail, sizeof(detail),
             "the read model has not applied position %s within %" PRId64 " ms", token,
             after->timeout_ms);
    after_observe(after, w->start_us);
    sp_metrics_counter_add(after->metrics, AFTER_TIMEOUTS, "", 1);
    after_reply_unavailable(w->req, SP_ETIMEDOUT, detail);
    w->fn(NULL, w->ud);
}

static void after_remove(struct qry_after *after, struct after_waiter *w)
{
    TAILQ_REMOVE(&after->waiters, w, link);
    after->n_waiting--;
}

/* A checkpoint read finished: release what it satisfies; on error, answer fresh waiters. */
static void after_release(
    struct qry_after *after, const int32_t *parts, const int64_t *offsets, size_t n, int err)
{
    struct after_waiter *w;
    struct after_waiter *next;

    after->reading = false;
    for (w = TAILQ_FIRST(&after->waiters); w != NULL; w = next) {
        next = TAILQ_NEXT(w, link);
        if (err == 0 && after_applied(parts, offsets, n, w->pos)) {
            after_remove(after, w);
            after_observe(after, w->start_us);
            w->fn(w->req, w->ud);
            free(w);
        } else if (err != 0 && w->fresh) {
            after_remove(after, w);
            /* a query timeout is "unavailable", not the after-timeout problem type */
            after_reply_unavailable(w->req, err == SP_EDB ? SP_EDB : SP_EUNAVAIL,
                                    err == SP_ETIMEDOUT ? "the read model query timed out"
                                                        : "the read model database is unavailable");
            w->fn(NULL, w->ud);
            free(w);
        } else if (err == 0) {
            w->fresh = false;
        }
    }
}

/* The PostgreSQL checkpoint rows (partition, next_offset) of a pool query. */
static void after_on_checkpoints(void *ud, const PGresult *res, int err)
{
    int32_t parts[QRY_AFTER_MAX_PARTITIONS];
    int64_t offsets[QRY_AFTER_MAX_PARTITIONS];
    size_t n = 0;

    for (int i = 0; err == 0 && i < PQntuples(res) && n < QRY_AFTER_MAX_PARTITIONS; i++, n++) {
        parts[n] = (int32_t)strtol(PQgetvalue(res, i, 0), NULL, 10);
        offsets[n] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
    }
    after_release(ud, parts, offsets, n, err);
}

static void after_read(struct qry_after *after)
{
    const char *params[] = {QRY_PROJECTION};
    int32_t parts[QRY_AFTER_MAX_PARTITIONS];
    int64_t offsets[QRY_AFTER_MAX_PARTITIONS];
    size_t n = 0;
    int err;

    if (after->reading)
        return;
    after->reading = true;
    if (after->db != NULL) {
        qry_db_query(after->db, QRY_STMT_CHECKPOINTS, params, after_on_checkpoints, after);
        return;
    }
    err = after->read(after->read_ud, parts, offsets, QRY_AFTER_MAX_PARTITIONS, &n);
    after_release(after, parts, offsets,
                  n < QRY_AFTER_MAX_PARTITIONS ? n : QRY_AFTER_MAX_PARTITIONS, err);
}

static void after_arm(struct qry_after *after)
{
    struct timeval tv = {0, (suseconds_t)QRY_AFTER_POLL_MS * 1000};

    if (!evtimer_pending(after->timer, NULL))
        evtimer_add(after->timer, &tv);
}

/* Timer: time out overdue requests, read the checkpoints again for the others. */
static void after_tick(evutil_socket_t fd, short what, void *arg)
{
    struct qry_after *after = arg;
    struct after_waiter *w;
    struct after_waiter *next;
    int64_t now_us = sp_time_mono_us();

    (void)fd;
    (void)what;
    for (w = TAILQ_FIRST(&after->waiters); w != NULL; w = next) {
        next = TAILQ_NEXT(w, link);
        if (now_us >= w->deadline_us) {
            after_remove(after, w);
            after_timeout(after, w);
            free(w);
        }
    }
    if (!TAILQ_EMPTY(&after->waiters)) {
        after_read(after);
        after_arm(after);
    }
}

static void after_bad_token(struct sp_http_req *req, const char *detail)
{
    json_t *errors = json_pack("[{s:s, s:s}]", "field", AFTER_HEADER, "detail", detail);

    sp_http_reply_problem(req, 400, "validation",
                          "header Stockpot-After is not a valid consistency token", errors);
}

static bool after_parse(struct qry_after *after,
                        struct sp_http_req *req,
                        const char *token,
                        struct es_position *pos)
{
    char detail[128];

    if (es_position_parse(token, pos) != 0 || pos->partition < 0 || pos->offset < 0) {
        after_bad_token(req, "must be a consistency token \"<partition>:<offset>\"");
        return false;
    }
    if (after->partitions > 0 && pos->partition >= after->partitions) {
        snprintf(detail, sizeof(detail),
                 "partition %" PRId32 " does not exist: the event log has %" PRId32 " partition(s)",
                 pos->partition, after->partitions);
        after_bad_token(req, detail);
        return false;
    }
    return true;
}

void qry_after_gate(struct qry_after *after, struct sp_http_req *req, qry_after_fn fn, void *ud)
{
    const char *token = sp_http_req_header(req, AFTER_HEADER);
    struct after_waiter *w;
    struct es_position pos;

    if (token == NULL) {
        fn(req, ud);
        return;
    }
    if (!after_parse(after, req, token, &pos)) {
        fn(NULL, ud);
        return;
    }
    w = sp_xcalloc(1, sizeof(*w));
    *w = (struct after_waiter){.req = req, .fn = fn, .ud = ud, .pos = pos, .fresh = true};
    w->start_us = sp_time_mono_us();
    w->deadline_us = w->start_us + after->timeout_ms * 1000;
    TAILQ_INSERT_TAIL(&after->waiters, w, link);
    after->n_waiting++;
    after_read(after);
    after_arm(after);
}
