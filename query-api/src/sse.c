/* Server-Sent Events streams of rows of the read model, found when PostgreSQL NOTIFYs
 * them (and by a slower safety-net poll): see sse.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "es/id.h"
#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/log.h"
#include "sp/time.h"
#include "sp/ws.h"
#include "sse.h"

#include "sp/banned.h"

#define SSE_PENDING ((size_t)1024 * 1024) /* bytes waiting for a slow client, at most */
#define SSE_ROOMS   256                   /* rooms notified since the last poll, at most */

enum sse_state {
    SSE_STARTING, /* session check and start query in flight; req borrowed */
    SSE_LIVE,     /* streaming; st (or ws) owned */
    SSE_CLOSING,  /* a WebSocket closing: ws waits for its on_close */
    SSE_DEAD,     /* answered, ended or gone; freed by the next sse_reap */
};

struct sse_stream {
    struct qry_sse *sse;
    enum sse_state state;
    uint64_t key;                /* unique per qry_sse: matches poll rows to streams */
    struct sp_http_req *req;     /* SSE_STARTING */
    struct sp_http_stream *st;   /* SSE_LIVE */
    struct sp_jwt_claims claims; /* the caller; the stream ends at claims.exp_s */
    int64_t cur[3];              /* cursor (c0, c1, c2) of the last row sent */
    int32_t last_partition;      /* Last-Event-ID, or -1 */
    int64_t last_offset;
    /* a WebSocket stream (ws != NULL once accepted; else Server-Sent Events) */
    bool is_ws;
    struct sp_ws *ws; /* SSE_LIVE, SSE_CLOSING */
    int64_t room;     /* its room: rows of other rooms only move the cursor */
    char *bearer;     /* the access token, owned: sends go to the command API with it */
    char *protocol;   /* subprotocol to echo, owned, or NULL */
    bool due;         /* a WebSocket stream to poll whatever was notified: it just started, or its
                       * last poll filled a batch (more may wait) */
};

struct qry_sse {
    struct event_base *base;       /* borrowed */
    struct qry_db *db;             /* borrowed */
    struct qry_auth *auth;         /* borrowed */
    const struct qry_sse_def *def; /* borrowed, static */
    struct qry_notify_opts opts;
    struct sse_stream **streams; /* owned array of owned streams, in no order */
    size_t nstreams, capstreams;
    uint64_t next_key;
    const struct qry_sse_ws_hooks *ws_hooks; /* borrowed, may be NULL */
    void *ws_ud;
    /*
     * Which WebSocket streams the next poll asks for (event streams, of all their user's
     * rooms, are always asked for): those of the rooms the channel's payloads named since
     * the last poll, or all when poll_all (a notification without rooms, a reconnection, a
     * safety-net poll, too many rooms). So a poll costs what the rooms that changed have
     * open, not what every open WebSocket costs.
     */
    int64_t rooms[SSE_ROOMS];
    size_t nrooms;
    bool poll_all;
    bool got_payload;         /* a payload came in the burst being read */
    struct event *tick;       /* persistent, every poll_ms while nstreams > 0 */
    bool polling;             /* a poll query is in flight */
    bool again;               /* notified since the last poll was sent: poll (again) */
    int64_t polled_us;        /* monotonic time the last poll was sent */
    int64_t keepalive_due_us; /* monotonic */
};

static void sse_gauge(struct qry_sse *sse)
{
    if (sse->opts.metrics != NULL)
        sp_metrics_gauge_set(sse->opts.metrics, sse->def->gauge, NULL, (double)sse->nstreams);
}

/*
 * Free the dead streams. Streams die anywhere (inside loops over the array too) but are
 * only freed here, at the end of each callback.
 */
static void sse_reap(struct qry_sse *sse)
{
    size_t j = 0;

    for (size_t i = 0; i < sse->nstreams; i++) {
        struct sse_stream *s = sse->streams[i];

        if (s->state == SSE_DEAD) {
            free(s->bearer);
            free(s->protocol);
            free(s);
        } else
            sse->streams[j++] = s;
    }
    if (j == sse->nstreams)
        return;
    sse->nstreams = j;
    if (sse->nstreams == 0)
        evtimer_del(sse->tick);
    sse_gauge(sse);
}

/* @p s is answered, ended or gone: mark it for sse_reap. */
static void sse_kill(struct sse_stream *s)
{
    s->state = SSE_DEAD;
    s->req = NULL;
    s->st = NULL;
}

/* End @p s: the last chunk of an event stream; a WebSocket's Close with @p code and
 * @p reason, after which it waits for its on_close. */
static void sse_end_ws(struct sse_stream *s, int code, const char *reason)
{
    if (s->ws != NULL) {
        s->state = SSE_CLOSING;
        sp_ws_close(s->ws, code, reason);
        return;
    }
    sp_http_stream_end(s->st);
    sse_kill(s);
}

static void sse_end(struct sse_stream *s)
{
    sse_end_ws(s, 1000, NULL);
}

/* The client went away: the HTTP core has freed the stream. */
static void sse_on_close(void *ud)
{
    struct sse_stream *s = ud;

    sse_kill(s);
    sse_reap(s->sse);
}

/* Send @p text; a client too slow to take it loses its stream. @return 0 or SP_ETOOBIG. */
static int sse_send(struct sse_stream *s, const char *text, size_t len)
{
    int rc;

    if (s->ws != NULL) {
        rc = sp_ws_send_text(s->ws, text, len); /* too slow: it closes itself with 1008 */
        if (rc != 0)
            s->state = SSE_CLOSING;
        return rc;
    }
    rc = sp_http_stream_send(s->st, text, len);
    if (rc != 0) {
        sp_log(SP_LOG_WARN, "%s stream of user %" PRId64 " ended: client too slow",
               s->sse->def->what, s->claims.user_id);
        sse_end(s);
    }
    return rc;
}

static struct sse_stream *sse_find(struct qry_sse *sse, uint64_t key)
{
    for (size_t i = 0; i < sse->nstreams; i++) {
        if (sse->streams[i]->key == key)
            return sse->streams[i]->state == SSE_LIVE ? sse->streams[i] : NULL;
    }
    return NULL;
}

static void sse_poll(struct qry_sse *sse);

/* Whether cursor @p a is past cursor @p b. */
static bool sse_past(const int64_t *a, const int64_t *b)
{
    for (int i = 0; i < 3; i++) {
        if (a[i] != b[i])
            return a[i] > b[i];
    }
    return false;
}

/* A WebSocket stream's user was removed from its room by the row just sent (member_removed
 * of that user): the room has nothing more for them, so the stream ends. */
static bool sse_ws_removed(const struct sse_stream *s, const char *event, const char *data)
{
    json_t *d;
    int64_t uid = 0;

    if (strcmp(event, "member_removed") != 0)
        return false;
    d = json_loads(data, 0, NULL);
    if (es_id_parse(json_string_value(json_object_get(d, "user_id")), &uid) != 0)
        uid = 0;
    json_decref(d);
    return uid == s->claims.user_id;
}

/* Send row @p i of a poll's result (key, c0, c1, c2, partition, offset, event, json[, room])
 * to its stream unless it has it already (or it is of another room than a WebSocket
 * stream's). @return whether it was sent. */
static bool sse_send_row(struct qry_sse *sse, const PGresult *res, int i, struct sp_buf *ev)
{
    struct sse_stream *s = sse_find(sse, strtoull(PQgetvalue(res, i, 0), NULL, 10));
    const char *event = PQgetvalue(res, i, 6), *data = PQgetvalue(res, i, 7);
    int64_t cur[3];
    int rc;

    for (int c = 0; c < 3; c++)
        cur[c] = strtoll(PQgetvalue(res, i, 1 + c), NULL, 10);
    if (s == NULL || !sse_past(cur, s->cur))
        return false;
    if (s->is_ws && PQnfields(res) > 8 && strtoll(PQgetvalue(res, i, 8), NULL, 10) != s->room) {
        memcpy(s->cur, cur, sizeof(cur)); /* another room's: not for this stream */
        return false;
    }
    sp_buf_reset(ev);
    if (s->is_ws)
        rc = sp_buf_addf(ev, "{\"type\":\"%s\",\"position\":\"%s:%s\",\"data\":%s}", event,
                         PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), data);
    else
        rc = sp_buf_addf(ev, "id: %s:%s\nevent: %s\ndata: %s\n\n", PQgetvalue(res, i, 4),
                         PQgetvalue(res, i, 5), event, data);
    SP_ASSERT(rc == 0); /* the buffer has no cap */
    if (sse_send(s, ev->data, ev->len) != 0)
        return false;
    memcpy(s->cur, cur, sizeof(cur));
    if (s->is_ws && sse_ws_removed(s, event, data))
        sse_end_ws(s, QRY_SSE_WS_REMOVED, "you are no longer a member of this room");
    return true;
}

/* Rows (key, c0, c1, c2, partition, offset, event, json) in key, cursor order. */
static void sse_on_poll(void *ud, const PGresult *res, int err)
{
    struct qry_sse *sse = ud;
    struct sp_buf ev;
    int run = 0; /* rows of the current key so far */

    sse->polling = false;
    if (sse->opts.metrics != NULL)
        sp_metrics_counter_add(sse->opts.metrics, sse->def->polls, NULL, 1);
    if (err != 0)
        return; /* logged by qry_db; the next tick tries again (sse->again stays) */
    sp_buf_init(&ev, 0);
    for (int i = 0; i < PQntuples(res); i++) {
        run = i > 0 && strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 0)) == 0 ? run + 1 : 1;
        /* a full batch for a stream: there may be more for it, so poll it again at once */
        if (run == QRY_NOTIFY_BATCH) {
            struct sse_stream *s = sse_find(sse, strtoull(PQgetvalue(res, i, 0), NULL, 10));
            if (s != NULL)
                s->due = true;
            sse->again = true;
        }
        (void)sse_send_row(sse, res, i, &ev);
    }
    sp_buf_release(&ev);
    sse_reap(sse);
    if (sse->again)
        sse_poll(sse); /* notified while this poll ran: it may have missed that */
}

/* Whether the next poll asks for stream @p s (see struct qry_sse); clears its due flag. */
static bool sse_wanted(struct qry_sse *sse, struct sse_stream *s)
{
    bool due = s->due;

    s->due = false;
    if (!s->is_ws || sse->poll_all || due)
        return true;
    for (size_t i = 0; i < sse->nrooms; i++) {
        if (sse->rooms[i] == s->room)
            return true;
    }
    return false;
}

/* Array literals {..} of the live streams' keys, users and cursors, in @p a[0..5). */
static size_t sse_poll_params(struct qry_sse *sse, struct sp_buf *a)
{
    size_t n = 0;
    int rc = 0;

    for (int k = 0; k < 5; k++)
        rc |= sp_buf_add(&a[k], "{", 1);
    for (size_t i = 0; i < sse->nstreams; i++) {
        struct sse_stream *s = sse->streams[i];
        const char *sep = n > 0 ? "," : "";

        if (s->state != SSE_LIVE || !sse_wanted(sse, s))
            continue;
        rc |= sp_buf_addf(&a[0], "%s%" PRIu64, sep, s->key);
        rc |= sp_buf_addf(&a[1], "%s%" PRId64, sep, s->claims.user_id);
        for (int c = 0; c < 3; c++)
            rc |= sp_buf_addf(&a[2 + c], "%s%" PRId64, sep, s->cur[c]);
        n++;
    }
    for (int k = 0; k < 5; k++)
        rc |= sp_buf_add(&a[k], "}", 1);
    SP_ASSERT(rc == 0); /* the buffers have no cap */
    sse->nrooms = 0;
    sse->poll_all = false;
    return n;
}

static void sse_poll(struct qry_sse *sse)
{
    struct sp_buf a[5];

    sse->again = false;
    sse->polled_us = sp_time_mono_us();
    for (int k = 0; k < 5; k++)
        sp_buf_init(&a[k], 0);
    if (sse_poll_params(sse, a) > 0) {
        const char *params[] = {a[0].data, a[1].data, a[2].data, a[3].data, a[4].data};

        sse->polling = true;
        qry_db_query(sse->db, sse->def->poll, params, sse_on_poll, sse);
    }
    for (int k = 0; k < 5; k++)
        sp_buf_release(&a[k]);
}

/* Keep-alive comments when due; end streams whose token expired. */
static void sse_housekeep(struct qry_sse *sse)
{
    static const char keepalive[] = ": keep-alive\n\n";
    int64_t now_us = sp_time_mono_us();
    int64_t now_s = sp_time_now_us() / 1000000;
    bool due = now_us >= sse->keepalive_due_us;

    if (due)
        sse->keepalive_due_us = now_us + (int64_t)sse->opts.keepalive_ms * 1000;
    for (size_t i = 0; i < sse->nstreams; i++) {
        struct sse_stream *s = sse->streams[i];

        if (s->state != SSE_LIVE)
            continue;
        if (now_s >= s->claims.exp_s)
            sse_end_ws(s, QRY_SSE_WS_EXPIRED, "the access token expired");
        else if (due && !s->is_ws) /* a WebSocket has its own pings */
            (void)sse_send(s, keepalive, sizeof(keepalive) - 1);
    }
}

static void sse_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct qry_sse *sse = arg;
    int interval_ms = qry_db_listening(sse->db) ? sse->opts.listen_poll_ms : sse->opts.poll_ms;

    (void)fd;
    (void)what;
    sse_housekeep(sse);
    if (!sse->polling && sp_time_mono_us() - sse->polled_us >= (int64_t)interval_ms * 1000 - 1000)
        sse->poll_all = true; /* the safety net */
    if (!sse->polling && (sse->again || sse->poll_all))
        sse_poll(sse);
    sse_reap(sse);
}

/* A notification's payload: the rooms whose WebSockets may have rows, comma-separated
 * ids; anything else (nothing, too many) polls every stream. */
static void sse_on_payload(void *ud, const char *payload)
{
    struct qry_sse *sse = ud;
    const char *p = payload;

    sse->got_payload = true;
    if (*p == '\0')
        sse->poll_all = true;
    while (*p != '\0' && !sse->poll_all) {
        char *end = NULL;
        long long id = strtoll(p, &end, 10);

        if (end == p || (*end != ',' && *end != '\0') || sse->nrooms == SSE_ROOMS) {
            sse->poll_all = true;
            break;
        }
        sse->rooms[sse->nrooms++] = (int64_t)id;
        p = *end == ',' ? end + 1 : end;
    }
}

/* PostgreSQL notified new rows (or listening restarted): poll now, or right after the
 * poll in flight. */
static void sse_on_notify(void *ud)
{
    struct qry_sse *sse = ud;

    if (!sse->got_payload)
        sse->poll_all = true; /* a reconnection, or a notification naming no rooms */
    sse->got_payload = false;
    sse->again = true;
    if (!sse->polling && sse->nstreams > 0)
        sse_poll(sse);
}

static void sse_ws_on_text(struct sp_ws *ws, const char *data, size_t len, void *ud)
{
    struct sse_stream *s = ud;
    const struct qry_sse_ws_hooks *h = s->sse->ws_hooks;

    (void)ws;
    if (s->state == SSE_LIVE && h != NULL && h->on_text != NULL)
        h->on_text(s->sse->ws_ud, s->key, s->claims.user_id, s->bearer, s->room, data, len);
}

static void sse_ws_on_close(struct sp_ws *ws, int code, void *ud)
{
    struct sse_stream *s = ud;

    (void)ws;
    (void)code;
    s->ws = NULL;
    sse_kill(s);
    sse_reap(s->sse);
}

/* Start query answered for a WebSocket stream: the 101, then what the poll finds. */
static void sse_ws_accept(struct sse_stream *s)
{
    static const struct sp_ws_cbs cbs = {sse_ws_on_text, sse_ws_on_close};
    struct sp_http_req *req = s->req;

    s->req = NULL;
    s->ws = sp_ws_accept(req, s->protocol, NULL, &cbs, s);
    if (s->ws == NULL) {
        sse_kill(s);
        sse_reap(s->sse);
        return;
    }
    s->state = SSE_LIVE;
    s->due = true; /* what came after its start query */
    s->sse->again = true;
    if (!s->sse->polling)
        sse_poll(s->sse);
}

/* The start query answered: (cursor at Last-Event-ID or NULLs, cursor after the newest). */
static void sse_on_start(void *ud, const PGresult *res, int err)
{
    static const char hello[] = "retry: 1000\n\n";
    struct sse_stream *s = ud;
    struct sp_http_req *req = s->req;

    if (err != 0) {
        sp_http_add_header(req, "Retry-After", "1");
        sp_http_reply_problem(req, 503, "unavailable", "the read model database is unavailable",
                              NULL);
        sse_kill(s);
        sse_reap(s->sse);
        return;
    }
    for (int c = 0; c < 3; c++)
        s->cur[c] = strtoll(PQgetvalue(res, 0, (PQgetisnull(res, 0, 0) ? 3 : 0) + c), NULL, 10);
    if (s->is_ws) {
        sse_ws_accept(s);
        return;
    }
    sp_http_add_header(req, "Cache-Control", "no-store");
    sp_http_add_header(req, "X-Accel-Buffering", "no");
    s->req = NULL;
    s->st = sp_http_stream_start(req, 200, "text/event-stream", SSE_PENDING, sse_on_close, s);
    if (s->st == NULL) {
        sse_kill(s);
        sse_reap(s->sse);
        return;
    }
    s->state = SSE_LIVE;
    if (sse_send(s, hello, sizeof(hello) - 1) != 0)
        return;
    /* what came after the start query (or after Last-Event-ID) was perhaps notified before
     * this stream could take it: poll now */
    s->sse->again = true;
    if (!s->sse->polling)
        sse_poll(s->sse);
}

static void sse_on_session(void *ud, int err)
{
    struct sse_stream *s = ud;
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
        sse_kill(s);
        sse_reap(s->sse);
        return;
    }
    snprintf(user, sizeof(user), "%" PRId64, s->claims.user_id);
    if (s->last_partition >= 0) {
        snprintf(partition, sizeof(partition), "%" PRId32, s->last_partition);
        snprintf(offset, sizeof(offset), "%" PRId64, s->last_offset);
        params[1] = partition;
        params[2] = offset;
    }
    qry_db_query(s->sse->db, s->sse->def->start, params, sse_on_start, s);
}

/* "<partition>:<offset>", both decimal without sign. @return 0 or SP_EINVAL. */
static int sse_parse_position(const char *s, int32_t *partition, int64_t *offset)
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

static struct sse_stream *sse_add(struct qry_sse *sse, struct sp_http_req *req)
{
    struct sse_stream *s = sp_xcalloc(1, sizeof(*s));

    s->sse = sse;
    s->state = SSE_STARTING;
    s->key = ++sse->next_key;
    s->req = req;
    s->last_partition = -1;
    if (sse->nstreams == sse->capstreams) {
        sse->capstreams = sse->capstreams ? sse->capstreams * 2 : 16;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, as meant */
        sse->streams = sp_xrealloc(sse->streams, sse->capstreams * sizeof(*sse->streams));
    }
    sse->streams[sse->nstreams] = s;
    if (sse->nstreams++ == 0) {
        struct timeval tv = {sse->opts.poll_ms / 1000,
                             (suseconds_t)(sse->opts.poll_ms % 1000) * 1000};

        sse->keepalive_due_us = sp_time_mono_us() + (int64_t)sse->opts.keepalive_ms * 1000;
        evtimer_add(sse->tick, &tv);
    }
    sse_gauge(sse);
    return s;
}

void qry__sse_handle(struct qry_sse *sse, struct sp_http_req *req)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims claims;
    const char *last = sp_http_req_header(req, "Last-Event-ID");
    int32_t partition = -1;
    int64_t offset = 0;
    struct sse_stream *s;

    if (qry_auth_token(sse->auth, req, &claims, &eb) != 0) {
        qry_auth_reply_401(req, eb.msg);
        return;
    }
    if (last != NULL && sse_parse_position(last, &partition, &offset) != 0) {
        sp_err_set(&eb, SP_EINVAL, "Last-Event-ID",
                   "Last-Event-ID must be a log position \"<partition>:<offset>\"");
        sp_http_reply_error(req, SP_EINVAL, &eb);
        return;
    }
    if (sse->nstreams >= sse->opts.max_streams) {
        sp_http_add_header(req, "Retry-After", "5");
        sp_http_reply_problem(req, 503, "unavailable", "too many open event streams", NULL);
        return;
    }
    s = sse_add(sse, req);
    s->claims = claims;
    s->last_partition = partition;
    s->last_offset = offset;
    qry_auth_session(sse->auth, &claims, sse_on_session, s);
}

void qry__sse_handle_ws(struct qry_sse *sse,
                        struct sp_http_req *req,
                        const struct sp_jwt_claims *claims,
                        const char *bearer,
                        int64_t room,
                        int32_t last_partition,
                        int64_t last_offset,
                        const char *protocol)
{
    struct sse_stream *s;

    if (sse->nstreams >= sse->opts.max_streams) {
        sp_http_add_header(req, "Retry-After", "5");
        sp_http_reply_problem(req, 503, "unavailable", "too many open event streams", NULL);
        return;
    }
    s = sse_add(sse, req);
    s->claims = *claims;
    s->last_partition = last_partition;
    s->last_offset = last_offset;
    s->is_ws = true;
    s->room = room;
    s->bearer = sp_xstrdup(bearer);
    s->protocol = protocol != NULL ? sp_xstrdup(protocol) : NULL;
    qry_auth_session(sse->auth, claims, sse_on_session, s);
}

void qry__sse_set_ws_hooks(struct qry_sse *sse, const struct qry_sse_ws_hooks *hooks, void *ud)
{
    sse->ws_hooks = hooks;
    sse->ws_ud = ud;
}

int qry__sse_ws_send(struct qry_sse *sse, uint64_t key, const char *text, size_t len)
{
    struct sse_stream *s = sse_find(sse, key);

    if (s == NULL || s->ws == NULL)
        return SP_ENOTFOUND;
    return sse_send(s, text, len);
}

struct qry_sse *qry__sse_new(struct event_base *base,
                             struct qry_db *db,
                             struct qry_auth *auth,
                             const struct qry_sse_def *def,
                             const struct qry_notify_opts *opts)
{
    struct qry_sse *sse = sp_xcalloc(1, sizeof(*sse));

    SP_ASSERT(opts->poll_ms >= 1 && opts->listen_poll_ms >= opts->poll_ms &&
              opts->keepalive_ms >= 1 && opts->max_streams >= 1);
    sse->base = base;
    sse->db = db;
    sse->auth = auth;
    sse->def = def;
    sse->opts = *opts;
    sse->tick = event_new(base, -1, EV_PERSIST, sse_on_tick, sse);
    SP_ASSERT(sse->tick != NULL);
    qry_db_listen(db, def->channel, sse_on_notify, sse);
    if (def->payload_rooms)
        qry_db_listen_payloads(db, def->channel, sse_on_payload);
    sse->poll_all = true;
    if (opts->metrics != NULL) {
        sp_metrics_describe(opts->metrics, def->gauge, SP_METRIC_GAUGE, def->gauge_help);
        sp_metrics_describe(opts->metrics, def->polls, SP_METRIC_COUNTER, def->polls_help);
        sse_gauge(sse);
    }
    return sse;
}

void qry__sse_free(struct qry_sse *sse)
{
    if (sse == NULL)
        return;
    for (size_t i = 0; i < sse->nstreams; i++) {
        struct sse_stream *s = sse->streams[i];

        /* a stream still starting has a query in flight: the pool must be freed first */
        SP_ASSERT(s->state != SSE_STARTING);
        if (s->ws != NULL) { /* detached: it closes on its own, calling nothing of ours */
            sp_ws_set_callbacks(s->ws, NULL, NULL);
            sp_ws_close(s->ws, 1001, "server shutting down");
            sse_kill(s);
        } else if (s->state == SSE_LIVE) {
            sse_end(s);
        }
    }
    sse_reap(sse);
    event_free(sse->tick);
    free(sse->streams);
    free(sse);
}

size_t qry__sse_streams(const struct qry_sse *sse)
{
    return sse->nstreams;
}
