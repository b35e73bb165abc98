/* GET /notifications/stream: Server-Sent Events of new notifications, found when
 * PostgreSQL NOTIFYs them (and by a slower safety-net poll). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/log.h"
#include "sp/pg_channels.h"
#include "sp/time.h"
#include "qry/notify.h"

#include "sp/banned.h"

#define NT_METRIC  "stockpot_query_sse_streams"
#define NT_POLLS   "stockpot_query_sse_polls_total"
#define NT_PENDING ((size_t)1024 * 1024) /* bytes waiting for a slow client, at most */

enum nt_state {
    NT_STARTING, /* session check and start query in flight; req borrowed */
    NT_LIVE,     /* streaming; st owned */
    NT_DEAD,     /* answered, ended or gone; freed by the next nt_reap */
};

struct nt_stream {
    struct qry_notify *nt;
    enum nt_state state;
    uint64_t key;                /* unique per qry_notify: matches poll rows to streams */
    struct sp_http_req *req;     /* NT_STARTING */
    struct sp_http_stream *st;   /* NT_LIVE */
    struct sp_jwt_claims claims; /* the caller; the stream ends at claims.exp_s */
    int64_t after_id;            /* cursor: id of the last notification sent */
    int32_t last_partition;      /* Last-Event-ID, or -1 */
    int64_t last_offset;
};

struct qry_notify {
    struct event_base *base; /* borrowed */
    struct qry_db *db;       /* borrowed */
    struct qry_auth *auth;   /* borrowed */
    struct qry_notify_opts opts;
    struct nt_stream **streams; /* owned array of owned streams, in no order */
    size_t nstreams, capstreams;
    uint64_t next_key;
    struct event *tick;       /* persistent, every poll_ms while nstreams > 0 */
    bool polling;             /* a poll query is in flight */
    bool again;               /* notified since the last poll was sent: poll (again) */
    int64_t polled_us;        /* monotonic time the last poll was sent */
    int64_t keepalive_due_us; /* monotonic */
};

static void nt_gauge(struct qry_notify *nt)
{
    if (nt->opts.metrics != NULL)
        sp_metrics_gauge_set(nt->opts.metrics, NT_METRIC, NULL, (double)nt->nstreams);
}

/*
 * Free the dead streams. Streams die anywhere (inside loops over the array too) but are
 * only freed here, at the end of each callback.
 */
static void nt_reap(struct qry_notify *nt)
{
    size_t j = 0;

    for (size_t i = 0; i < nt->nstreams; i++) {
        struct nt_stream *s = nt->streams[i];

        if (s->state == NT_DEAD)
            free(s);
        else
            nt->streams[j++] = s;
    }
    if (j == nt->nstreams)
        return;
    nt->nstreams = j;
    if (nt->nstreams == 0)
        evtimer_del(nt->tick);
    nt_gauge(nt);
}

/* @p s is answered, ended or gone: mark it for nt_reap. */
static void nt_kill(struct nt_stream *s)
{
    s->state = NT_DEAD;
    s->req = NULL;
    s->st = NULL;
}

static void nt_end(struct nt_stream *s)
{
    sp_http_stream_end(s->st);
    nt_kill(s);
}

/* The client went away: the HTTP core has freed the stream. */
static void nt_on_close(void *ud)
{
    struct nt_stream *s = ud;

    nt_kill(s);
    nt_reap(s->nt);
}

/* Send @p text; a client too slow to take it loses its stream. @return 0 or SP_ETOOBIG. */
static int nt_send(struct nt_stream *s, const char *text, size_t len)
{
    int rc = sp_http_stream_send(s->st, text, len);

    if (rc != 0) {
        sp_log(SP_LOG_WARN, "notification stream of user %" PRId64 " ended: client too slow",
               s->claims.user_id);
        nt_end(s);
    }
    return rc;
}

static struct nt_stream *nt_find(struct qry_notify *nt, uint64_t key)
{
    for (size_t i = 0; i < nt->nstreams; i++) {
        if (nt->streams[i]->key == key)
            return nt->streams[i]->state == NT_LIVE ? nt->streams[i] : NULL;
    }
    return NULL;
}

static void nt_poll(struct qry_notify *nt);

/* Rows (key, id, partition, offset, json) in key, id order. */
static void nt_on_poll(void *ud, const PGresult *res, int err)
{
    struct qry_notify *nt = ud;
    struct sp_buf ev;

    nt->polling = false;
    if (nt->opts.metrics != NULL)
        sp_metrics_counter_add(nt->opts.metrics, NT_POLLS, NULL, 1);
    if (err != 0)
        return; /* logged by qry_db; the next tick tries again (nt->again stays) */
    sp_buf_init(&ev, 0);
    for (int i = 0; i < PQntuples(res); i++) {
        struct nt_stream *s = nt_find(nt, strtoull(PQgetvalue(res, i, 0), NULL, 10));
        int64_t id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        int rc;

        if (s == NULL || id <= s->after_id)
            continue;
        sp_buf_reset(&ev);
        rc = sp_buf_addf(&ev, "id: %s:%s\nevent: notification\ndata: %s\n\n", PQgetvalue(res, i, 2),
                         PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
        SP_ASSERT(rc == 0); /* the buffer has no cap */
        if (nt_send(s, ev.data, ev.len) == 0)
            s->after_id = id;
    }
    sp_buf_release(&ev);
    nt_reap(nt);
    if (nt->again)
        nt_poll(nt); /* notified while this poll ran: it may have missed that */
}

/* Array literals {k1,k2,..}, {u1,u2,..}, {a1,a2,..} of the live streams. */
static size_t nt_poll_params(struct qry_notify *nt,
                             struct sp_buf *keys,
                             struct sp_buf *users,
                             struct sp_buf *afters)
{
    size_t n = 0;
    int rc = 0;

    rc |= sp_buf_add(keys, "{", 1);
    rc |= sp_buf_add(users, "{", 1);
    rc |= sp_buf_add(afters, "{", 1);
    for (size_t i = 0; i < nt->nstreams; i++) {
        const struct nt_stream *s = nt->streams[i];
        const char *sep = n > 0 ? "," : "";

        if (s->state != NT_LIVE)
            continue;
        rc |= sp_buf_addf(keys, "%s%" PRIu64, sep, s->key);
        rc |= sp_buf_addf(users, "%s%" PRId64, sep, s->claims.user_id);
        rc |= sp_buf_addf(afters, "%s%" PRId64, sep, s->after_id);
        n++;
    }
    rc |= sp_buf_add(keys, "}", 1);
    rc |= sp_buf_add(users, "}", 1);
    rc |= sp_buf_add(afters, "}", 1);
    SP_ASSERT(rc == 0); /* the buffers have no cap */
    return n;
}

static void nt_poll(struct qry_notify *nt)
{
    struct sp_buf keys, users, afters;

    nt->again = false;
    nt->polled_us = sp_time_mono_us();
    sp_buf_init(&keys, 0);
    sp_buf_init(&users, 0);
    sp_buf_init(&afters, 0);
    if (nt_poll_params(nt, &keys, &users, &afters) > 0) {
        const char *params[] = {keys.data, users.data, afters.data};

        nt->polling = true;
        qry_db_query(nt->db, QRY_STMT_STREAM_POLL, params, nt_on_poll, nt);
    }
    sp_buf_release(&keys);
    sp_buf_release(&users);
    sp_buf_release(&afters);
}

/* Keep-alive comments when due; end streams whose token expired. */
static void nt_housekeep(struct qry_notify *nt)
{
    static const char keepalive[] = ": keep-alive\n\n";
    int64_t now_us = sp_time_mono_us();
    int64_t now_s = sp_time_now_us() / 1000000;
    bool due = now_us >= nt->keepalive_due_us;

    if (due)
        nt->keepalive_due_us = now_us + (int64_t)nt->opts.keepalive_ms * 1000;
    for (size_t i = 0; i < nt->nstreams; i++) {
        struct nt_stream *s = nt->streams[i];

        if (s->state != NT_LIVE)
            continue;
        if (now_s >= s->claims.exp_s)
            nt_end(s);
        else if (due)
            (void)nt_send(s, keepalive, sizeof(keepalive) - 1);
    }
}

static void nt_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct qry_notify *nt = arg;
    int interval_ms = qry_db_listening(nt->db) ? nt->opts.listen_poll_ms : nt->opts.poll_ms;

    (void)fd;
    (void)what;
    nt_housekeep(nt);
    if (!nt->polling &&
        (nt->again || sp_time_mono_us() - nt->polled_us >= (int64_t)interval_ms * 1000 - 1000))
        nt_poll(nt);
    nt_reap(nt);
}

/* PostgreSQL notified new notifications (or listening restarted): poll now, or right
 * after the poll in flight. */
static void nt_on_notify(void *ud)
{
    struct qry_notify *nt = ud;

    nt->again = true;
    if (!nt->polling && nt->nstreams > 0)
        nt_poll(nt);
}

/* The start query answered: (id at Last-Event-ID or NULL, newest id or 0). */
static void nt_on_start(void *ud, const PGresult *res, int err)
{
    static const char hello[] = "retry: 1000\n\n";
    struct nt_stream *s = ud;
    struct sp_http_req *req = s->req;

    if (err != 0) {
        sp_http_add_header(req, "Retry-After", "1");
        sp_http_reply_problem(req, 503, "unavailable", "the read model database is unavailable",
                              NULL);
        nt_kill(s);
        nt_reap(s->nt);
        return;
    }
    s->after_id = strtoll(PQgetvalue(res, 0, PQgetisnull(res, 0, 0) ? 1 : 0), NULL, 10);
    sp_http_add_header(req, "Cache-Control", "no-store");
    sp_http_add_header(req, "X-Accel-Buffering", "no");
    s->req = NULL;
    s->st = sp_http_stream_start(req, 200, "text/event-stream", NT_PENDING, nt_on_close, s);
    if (s->st == NULL) {
        nt_kill(s);
        nt_reap(s->nt);
        return;
    }
    s->state = NT_LIVE;
    if (nt_send(s, hello, sizeof(hello) - 1) != 0)
        return;
    /* what came after the start query (or after Last-Event-ID) was perhaps notified before
     * this stream could take it: poll now */
    s->nt->again = true;
    if (!s->nt->polling)
        nt_poll(s->nt);
}

static void nt_on_session(void *ud, int err)
{
    struct nt_stream *s = ud;
    char user[24], partition[16], offset[24];
    const char *params[] = {user, NULL, NULL};

    if (err != 0) {
        if (err == SP_EAUTH) {
            qry_auth_reply_401(s->req, "the session of the access token is revoked or expired");
        } else {
            sp_http_add_header(s->req, "Retry-After", "1");
            sp_http_reply_problem(s->req, 503, "unavailable",
                                  "the read model database is unavailable", NULL);
        }
        nt_kill(s);
        nt_reap(s->nt);
        return;
    }
    snprintf(user, sizeof(user), "%" PRId64, s->claims.user_id);
    if (s->last_partition >= 0) {
        snprintf(partition, sizeof(partition), "%" PRId32, s->last_partition);
        snprintf(offset, sizeof(offset), "%" PRId64, s->last_offset);
        params[1] = partition;
        params[2] = offset;
    }
    qry_db_query(s->nt->db, QRY_STMT_STREAM_START, params, nt_on_start, s);
}

/* "<partition>:<offset>", both decimal without sign. @return 0 or SP_EINVAL. */
static int nt_parse_position(const char *s, int32_t *partition, int64_t *offset)
{
    char *end = NULL;
    long long p, o;

    if (s[0] < '0' || s[0] > '9')
        return SP_EINVAL;
    errno = 0;
    p = strtoll(s, &end, 10);
    if (errno != 0 || *end != ':' || p > INT32_MAX || end[1] < '0' || end[1] > '9')
        return SP_EINVAL;
    o = strtoll(end + 1, &end, 10);
    if (errno != 0 || *end != '\0')
        return SP_EINVAL;
    *partition = (int32_t)p;
    *offset = (int64_t)o;
    return 0;
}

static struct nt_stream *nt_add(struct qry_notify *nt, struct sp_http_req *req)
{
    struct nt_stream *s = sp_xcalloc(1, sizeof(*s));

    s->nt = nt;
    s->state = NT_STARTING;
    s->key = ++nt->next_key;
    s->req = req;
    s->last_partition = -1;
    if (nt->nstreams == nt->capstreams) {
        nt->capstreams = nt->capstreams ? nt->capstreams * 2 : 16;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, as meant */
        nt->streams = sp_xrealloc(nt->streams, nt->capstreams * sizeof(*nt->streams));
    }
    nt->streams[nt->nstreams] = s;
    if (nt->nstreams++ == 0) {
        struct timeval tv = {nt->opts.poll_ms / 1000,
                             (suseconds_t)(nt->opts.poll_ms % 1000) * 1000};

        nt->keepalive_due_us = sp_time_mono_us() + (int64_t)nt->opts.keepalive_ms * 1000;
        evtimer_add(nt->tick, &tv);
    }
    nt_gauge(nt);
    return s;
}

void qry_notify_handle(struct qry_notify *nt, struct sp_http_req *req)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims claims;
    const char *last = sp_http_req_header(req, "Last-Event-ID");
    int32_t partition = -1;
    int64_t offset = 0;
    struct nt_stream *s;

    if (qry_auth_token(nt->auth, req, &claims, &eb) != 0) {
        qry_auth_reply_401(req, eb.msg);
        return;
    }
    if (last != NULL && nt_parse_position(last, &partition, &offset) != 0) {
        sp_err_set(&eb, SP_EINVAL, "Last-Event-ID",
                   "Last-Event-ID must be a log position \"<partition>:<offset>\"");
        sp_http_reply_error(req, SP_EINVAL, &eb);
        return;
    }
    if (nt->nstreams >= nt->opts.max_streams) {
        sp_http_add_header(req, "Retry-After", "5");
        sp_http_reply_problem(req, 503, "unavailable", "too many open notification streams", NULL);
        return;
    }
    s = nt_add(nt, req);
    s->claims = claims;
    s->last_partition = partition;
    s->last_offset = offset;
    qry_auth_session(nt->auth, &claims, nt_on_session, s);
}

struct qry_notify *qry_notify_new(struct event_base *base,
                                  struct qry_db *db,
                                  struct qry_auth *auth,
                                  const struct qry_notify_opts *opts)
{
    struct qry_notify *nt = sp_xcalloc(1, sizeof(*nt));

    SP_ASSERT(opts->poll_ms >= 1 && opts->listen_poll_ms >= opts->poll_ms &&
              opts->keepalive_ms >= 1 && opts->max_streams >= 1);
    nt->base = base;
    nt->db = db;
    nt->auth = auth;
    nt->opts = *opts;
    nt->tick = event_new(base, -1, EV_PERSIST, nt_on_tick, nt);
    SP_ASSERT(nt->tick != NULL);
    qry_db_listen(db, SP_PG_CHANNEL_NOTIFICATIONS, nt_on_notify, nt);
    if (opts->metrics != NULL) {
        sp_metrics_describe(opts->metrics, NT_METRIC, SP_METRIC_GAUGE,
                            "open Server-Sent Events streams of GET /notifications/stream");
        sp_metrics_describe(opts->metrics, NT_POLLS, SP_METRIC_COUNTER,
                            "queries of new notifications for the open streams, answered");
        nt_gauge(nt);
    }
    return nt;
}

void qry_notify_free(struct qry_notify *nt)
{
    if (nt == NULL)
        return;
    for (size_t i = 0; i < nt->nstreams; i++) {
        struct nt_stream *s = nt->streams[i];

        /* a stream still starting has a query in flight: the pool must be freed first */
        SP_ASSERT(s->state != NT_STARTING);
        if (s->state == NT_LIVE)
            nt_end(s);
    }
    nt_reap(nt);
    event_free(nt->tick);
    free(nt->streams);
    free(nt);
}

size_t qry_notify_streams(const struct qry_notify *nt)
{
    return nt->nstreams;
}
