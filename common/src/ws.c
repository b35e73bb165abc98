/*
 * WebSocket connections (RFC 6455) on evhttp: the opening handshake, the takeover of the
 * connection from evhttp, and frames through wslay's event API over its bufferevent.
 *
 * Takeover, libevent 2.1 (which has no WebSocket support of its own): a 101 reply started
 * with evhttp_send_reply_start() has no body (1xx), so evhttp writes the status line and
 * headers only, uses no chunked encoding and waits for a reply end that never comes; the
 * connection stays in its "writing" state with the request attached, and evhttp's own
 * bufferevent callbacks are replaced here, so evhttp never touches it again. Bytes the
 * client sent after its handshake wait in the bufferevent's input buffer (evhttp reads no
 * body for a GET) and are read as frames first. The connection is freed by
 * evhttp_connection_free(), which also frees the attached request and closes the socket;
 * when evhttp_free() gets there first (sp_http_server_free), the connection's close
 * callback frees the rest. The sp_http_req is logged, counted and freed at the 101.
 *
 * Closing (RFC 6455 §7.1.1): once Close frames went both ways (or ours went out after an
 * error, when reading stops), the server half-closes TCP first and frees the connection
 * when the peer closes its side or opts.pong_timeout_ms after the closing began.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/log.h"
#include "sp/time.h"
#include "sp/ws.h"
#include "http_internal.h"
#include "sp/banned.h"

#define SP__WS_GUID             "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 §1.3 */
#define SP__WS_MAX_MESSAGE      ((size_t)64 * 1024)
#define SP__WS_PING_INTERVAL_MS 30000
#define SP__WS_PONG_TIMEOUT_MS  10000
#define SP__WS_MAX_PENDING      ((size_t)1024 * 1024)
#define SP__WS_REASON_MAX       123 /* bytes of a Close reason: 125 - the 2-byte code */

struct sp_ws {
    struct evhttp_connection *evcon; /* evhttp's; freed by sp__ws_finish or by evhttp_free */
    struct bufferevent *bev;         /* evcon's */
    wslay_event_context_ptr ctx;     /* owned */
    struct event *timer;             /* owned: first read, pings, closing deadline */
    struct sp_ws_opts opts;          /* defaults applied */
    struct sp_ws_cbs cbs;
    void *ud;
    int64_t start_us;          /* monotonic, at the 101 */
    int64_t last_rx_us;        /* monotonic, last bytes from the peer */
    int64_t ping_sent_us;      /* monotonic; 0 = no ping waiting for an answer */
    int64_t close_deadline_us; /* monotonic; 0 = not closing */
    int first_close_code;      /* code of the Close frame that began the closing; 0 = none */
    bool broken;               /* wslay failed (out of memory): drop the connection */
    bool fin_sent;             /* our side of TCP is shut down */
    bool peer_eof;             /* the peer shut down its side of TCP */
    bool finished;             /* on_close has run or is running */
    char id[65];               /* request id of the handshake, for logs */
    char peer[64];
};

/* ---- handshake ---- */

/* Is @p c an RFC 9110 §5.6.2 tchar? */
static bool sp__tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool sp__is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!sp__tchar((unsigned char)s[i]))
            return false;
    return true;
}

static bool sp__utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;

    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        n = sp_utf8_seq_len(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* Call @p fn on each element of the comma-separated lists in every @p name header, with
 * optional whitespace trimmed (RFC 9110 §5.6.1); stop when it returns true. */
static bool sp__header_each(struct sp_http_req *req,
                            const char *name,
                            bool (*fn)(const char *el, size_t len, void *arg),
                            void *arg)
{
    struct evkeyval *kv;

    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req->ev), next) {
        if (strcasecmp(kv->key, name) != 0)
            continue;
        for (const char *p = kv->value; *p != '\0';) {
            size_t len = strcspn(p, ",");
            const char *next = p[len] == ',' ? p + len + 1 : p + len;

            while (len > 0 && (*p == ' ' || *p == '\t'))
                p++, len--;
            while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                len--;
            if (fn(p, len, arg))
                return true;
            p = next;
        }
    }
    return false;
}

static bool sp__token_equals(const char *el, size_t len, void *arg)
{
    const char *want = *(const char **)arg;

    return len == strlen(want) && strncasecmp(el, want, len) == 0;
}

/* Does a @p name header list @p token (case-insensitive)? */
static bool sp__header_has(struct sp_http_req *req, const char *name, const char *token)
{
    return sp__header_each(req, name, sp__token_equals, &token);
}

static size_t sp__header_count(struct sp_http_req *req, const char *name)
{
    struct evkeyval *kv;
    size_t n = 0;

    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req->ev), next) {
        if (strcasecmp(kv->key, name) == 0)
            n++;
    }
    return n;
}

/* Is @p key the base64 (RFC 4648 §4) of 16 bytes: 22 characters of the alphabet + "=="? */
static bool sp__key_valid(const char *key)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    if (strlen(key) != 24 || strcmp(key + 22, "==") != 0)
        return false;
    for (size_t i = 0; i < 22; i++)
        if (key[i] == '\0' || strchr(b64, key[i]) == NULL)
            return false;
    return true;
}

/* Answer 400 naming @p field, as problem+json. */
static int sp__refuse(struct sp_http_req *req, const char *field, const char *detail)
{
    struct sp_errbuf eb;
    int rc = sp_err_set(&eb, SP_EINVAL, field, "%s", detail);

    sp_http_reply_error(req, rc, &eb);
    return rc;
}

/* RFC 6455 §4.4: another version gets 426 and the one we speak. */
static int sp__refuse_version(struct sp_http_req *req)
{
    const char *detail = "only WebSocket version 13 (RFC 6455) is supported";
    json_t *errors = json_pack("[{s:s, s:s}]", "field", "Sec-WebSocket-Version", "detail", detail);

    sp_http_add_header(req, "Sec-WebSocket-Version", "13");
    sp_http_reply_problem(req, 426, "upgrade-required", detail, errors);
    return SP_EINVAL;
}

int sp_ws_check(struct sp_http_req *req)
{
    const char *host = sp_http_req_header(req, "Host");
    const char *version = sp_http_req_header(req, "Sec-WebSocket-Version");
    const char *key = sp_http_req_header(req, "Sec-WebSocket-Key");

    if (evhttp_request_get_command(req->ev) != EVHTTP_REQ_GET) {
        sp_http_add_header(req, "Allow", "GET");
        sp_http_reply_problem(req, 405, "method-not-allowed",
                              "a WebSocket opening handshake is a GET request", NULL);
        return SP_EINVAL;
    }
    if (req->ev->major < 1 || (req->ev->major == 1 && req->ev->minor < 1))
        return sp__refuse(req, "HTTP-Version", "a WebSocket opening handshake needs HTTP/1.1");
    if (host == NULL || host[0] == '\0')
        return sp__refuse(req, "Host", "the Host header is missing");
    if (!sp__header_has(req, "Upgrade", "websocket"))
        return sp__refuse(req, "Upgrade", "the Upgrade header must name websocket");
    if (!sp__header_has(req, "Connection", "upgrade"))
        return sp__refuse(req, "Connection", "the Connection header must list Upgrade");
    if (version == NULL || sp__header_count(req, "Sec-WebSocket-Version") != 1)
        return sp__refuse(req, "Sec-WebSocket-Version",
                          "exactly one Sec-WebSocket-Version header is needed");
    if (strcmp(version, "13") != 0)
        return sp__refuse_version(req);
    if (key == NULL || sp__header_count(req, "Sec-WebSocket-Key") != 1 || !sp__key_valid(key))
        return sp__refuse(req, "Sec-WebSocket-Key",
                          "exactly one Sec-WebSocket-Key of 16 base64-encoded bytes is needed");
    return 0;
}

struct sp__protocols {
    const char **out;
    size_t max, n;
    char *scratch;
    size_t left; /* bytes of scratch still free */
};

static bool sp__protocol_add(const char *el, size_t len, void *arg)
{
    struct sp__protocols *p = arg;

    if (p->n == p->max)
        return true;
    if (!sp__is_token(el, len) || len + 1 > p->left)
        return false;
    memcpy(p->scratch, el, len);
    p->scratch[len] = '\0';
    p->out[p->n++] = p->scratch;
    p->scratch += len + 1;
    p->left -= len + 1;
    return false;
}

size_t sp_ws_protocols(
    struct sp_http_req *req, const char **out, size_t max, char *scratch, size_t scratch_len)
{
    struct sp__protocols p = {out, max, 0, NULL, scratch_len};

    p.scratch = scratch;
    (void)sp__header_each(req, "Sec-WebSocket-Protocol", sp__protocol_add, &p);
    return p.n;
}

/* Sec-WebSocket-Accept for @p key (RFC 6455 §4.2.2 item 5.4): base64(SHA-1(key + GUID)). */
static int sp__accept_value(const char *key, char out[29])
{
    char in[64 + sizeof(SP__WS_GUID)];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int n = snprintf(in, sizeof(in), "%s" SP__WS_GUID, key);

    if (n < 0 || (size_t)n >= sizeof(in))
        return SP_EINVAL;
    if (EVP_Digest(in, (size_t)n, md, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20)
        return SP_EINVAL;
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
    return 0;
}

/* ---- the connection ---- */

static void sp__ws_on_timer(evutil_socket_t fd, short what, void *arg);
static void sp__ws_on_read(struct bufferevent *bev, void *arg);
static void sp__ws_on_write(struct bufferevent *bev, void *arg);
static void sp__ws_on_event(struct bufferevent *bev, short what, void *arg);
static void sp__ws_on_evcon_close(struct evhttp_connection *evcon, void *arg);

/* Free what is ours, log the end and tell the owner; the connection is evhttp's to free. */
static void sp__ws_release(struct sp_ws *ws, int code)
{
    char code_s[16], dur[32];
    int64_t dur_us = sp_time_mono_us() - ws->start_us;

    ws->finished = true;
    event_free(ws->timer);
    wslay_event_context_free(ws->ctx);
    snprintf(code_s, sizeof(code_s), "%d", code);
    snprintf(dur, sizeof(dur), "%lld.%03d", (long long)(dur_us / 1000), (int)(dur_us % 1000));
    sp_logf(SP_LOG_INFO,
            (const char *[]){"code", code_s, "duration_ms", dur, "request_id", ws->id, "peer",
                             ws->peer, NULL},
            "websocket closed");
    if (ws->cbs.on_close != NULL)
        ws->cbs.on_close(ws, code, ws->ud);
    free(ws);
}

/* Drop the connection now (closing the socket) and end @p ws. */
static void sp__ws_finish(struct sp_ws *ws)
{
    int code = ws->first_close_code != 0 ? ws->first_close_code : WSLAY_CODE_ABNORMAL_CLOSURE;

    evhttp_connection_set_closecb(ws->evcon, NULL, NULL);
    bufferevent_setcb(ws->bev, NULL, NULL, NULL, NULL);
    evhttp_connection_free(ws->evcon); /* also frees the 101's evhttp_request */
    sp__ws_release(ws, code);
}

/* (Re)schedule the timer for the nearest deadline. */
static void sp__ws_arm(struct sp_ws *ws)
{
    int64_t now = sp_time_mono_us(), at, wait_us;
    struct timeval tv;

    if (ws->close_deadline_us != 0)
        at = ws->close_deadline_us;
    else if (ws->ping_sent_us != 0)
        at = ws->ping_sent_us + (int64_t)ws->opts.pong_timeout_ms * 1000;
    else
        at = ws->last_rx_us + (int64_t)ws->opts.ping_interval_ms * 1000;
    wait_us = at > now ? at - now : 0;
    tv.tv_sec = (time_t)(wait_us / 1000000);
    tv.tv_usec = (suseconds_t)(wait_us % 1000000);
    event_add(ws->timer, &tv);
}

/* The closing has begun (a Close frame either way, or TCP): bound how long it may take. */
static void sp__ws_closing(struct sp_ws *ws)
{
    if (ws->close_deadline_us != 0 || ws->finished)
        return;
    ws->close_deadline_us = sp_time_mono_us() + (int64_t)ws->opts.pong_timeout_ms * 1000;
    sp__ws_arm(ws);
}

/* Queue our Close frame; @p fail also stops reading (RFC 6455 §7.1.7). */
static void sp__ws_start_close(struct sp_ws *ws, int code, const char *reason, bool fail)
{
    size_t len = reason != NULL ? strlen(reason) : 0;

    if (len > SP__WS_REASON_MAX || !sp__utf8_valid(reason, len)) {
        len = len > SP__WS_REASON_MAX ? SP__WS_REASON_MAX : len;
        while (len > 0 && !sp__utf8_valid(reason, len)) /* cut at a character boundary */
            len--;
    }
    if (wslay_event_queue_close(ws->ctx, (uint16_t)code, (const uint8_t *)reason, len) == 0 &&
        ws->first_close_code == 0)
        ws->first_close_code = code;
    if (fail)
        wslay_event_shutdown_read(ws->ctx);
    sp__ws_closing(ws);
}

/*
 * Move queued frames to the output buffer now, also from within wslay_event_recv's callbacks
 * (wslay keeps separate send and receive state): wslay sends control frames ahead of queued
 * data messages, and a Close disables sending, so data left queued behind a Close is lost.
 */
static void sp__ws_flush(struct sp_ws *ws)
{
    if (ws->broken)
        return;
    if (wslay_event_send(ws->ctx) != 0) {
        ws->broken = true; /* out of memory: the timer drops the connection */
        event_active(ws->timer, EV_TIMEOUT, 1);
    }
}

/* Read the frames waiting in the input buffer. */
static void sp__ws_recv(struct sp_ws *ws)
{
    struct evbuffer *in = bufferevent_get_input(ws->bev);

    if (evbuffer_get_length(in) == 0)
        return;
    ws->last_rx_us = sp_time_mono_us();
    if (ws->ping_sent_us != 0) { /* any frame answers a ping: the next one is due later */
        ws->ping_sent_us = 0;
        if (ws->close_deadline_us == 0)
            sp__ws_arm(ws);
    }
    if (wslay_event_want_read(ws->ctx)) {
        if (wslay_event_recv(ws->ctx) != 0)
            ws->broken = true;
    }
    if (!wslay_event_want_read(ws->ctx)) /* closing: what follows is of no use */
        evbuffer_drain(in, evbuffer_get_length(in));
}

/*
 * After any event: send what is queued, then see whether the connection is done.
 * @return false if it is and @p ws was freed.
 */
static bool sp__ws_progress(struct sp_ws *ws)
{
    struct evbuffer *out = bufferevent_get_output(ws->bev);
    wslay_event_context_ptr ctx = ws->ctx;

    if (ws->first_close_code == 0 && evbuffer_get_length(out) > ws->opts.max_pending)
        sp__ws_start_close(ws, WSLAY_CODE_POLICY_VIOLATION, "client too slow", false);
    sp__ws_flush(ws);
    if (ws->broken) {
        sp__ws_finish(ws);
        return false;
    }
    if (ws->first_close_code == 0 && wslay_event_get_close_sent(ctx))
        ws->first_close_code = wslay_event_get_status_code_sent(ctx); /* wslay's own: 1002, 1009 */
    if (ws->first_close_code != 0)
        sp__ws_closing(ws);
    if (evbuffer_get_length(out) != 0)
        return true; /* the write callback comes back when it is out */
    if (ws->peer_eof) {
        sp__ws_finish(ws);
        return false;
    }
    if (!ws->fin_sent && wslay_event_get_close_sent(ctx) &&
        (wslay_event_get_close_received(ctx) || !wslay_event_get_read_enabled(ctx))) {
        shutdown(bufferevent_getfd(ws->bev), SHUT_WR); /* RFC 6455 §7.1.1: the server first */
        ws->fin_sent = true;
    }
    return true;
}

static void sp__ws_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sp_ws *ws = arg;
    int64_t now = sp_time_mono_us();
    struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};

    (void)fd;
    (void)what;
    sp__ws_recv(ws); /* the first round reads what came with the handshake */
    if (ws->close_deadline_us != 0 && now >= ws->close_deadline_us) {
        sp__ws_finish(ws);
        return;
    }
    if (ws->close_deadline_us == 0 && ws->ping_sent_us != 0 &&
        now - ws->ping_sent_us >= (int64_t)ws->opts.pong_timeout_ms * 1000) {
        sp__ws_start_close(ws, WSLAY_CODE_INTERNAL_SERVER_ERROR, "ping timeout", true);
    } else if (ws->close_deadline_us == 0 && ws->ping_sent_us == 0 &&
               now - ws->last_rx_us >= (int64_t)ws->opts.ping_interval_ms * 1000) {
        if (wslay_event_queue_msg(ws->ctx, &ping) == 0)
            ws->ping_sent_us = now;
    }
    if (sp__ws_progress(ws))
        sp__ws_arm(ws);
}

static void sp__ws_on_read(struct bufferevent *bev, void *arg)
{
    struct sp_ws *ws = arg;

    (void)bev;
    sp__ws_recv(ws);
    sp__ws_progress(ws);
}

static void sp__ws_on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    sp__ws_progress(arg);
}

static void sp__ws_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct sp_ws *ws = arg;

    (void)bev;
    if (what & BEV_EVENT_ERROR) {
        sp__ws_finish(ws);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        ws->peer_eof = true;
        sp__ws_recv(ws);
        wslay_event_shutdown_read(ws->ctx);
        sp__ws_closing(ws);
        sp__ws_progress(ws);
    }
}

/* evhttp is freeing the connection (evhttp_free, from sp_http_server_free): say 1001 if we
 * can without waiting, and end @p ws; evhttp frees the connection after this returns. */
static void sp__ws_on_evcon_close(struct evhttp_connection *evcon, void *arg)
{
    struct sp_ws *ws = arg;

    evhttp_connection_set_closecb(evcon, NULL, NULL);
    bufferevent_setcb(ws->bev, NULL, NULL, NULL, NULL);
    if (ws->first_close_code == 0)
        sp__ws_start_close(ws, WSLAY_CODE_GOING_AWAY, "server shutting down", true);
    if (!ws->fin_sent && !ws->broken && wslay_event_send(ws->ctx) == 0) {
        struct evbuffer *out = bufferevent_get_output(ws->bev);

        /* a socket bufferevent keeps the start of its output frozen to all but itself */
        evbuffer_unfreeze(out, 1);
        (void)evbuffer_write(out, bufferevent_getfd(ws->bev)); /* non-blocking: what fits */
        evbuffer_freeze(out, 1);
    }
    sp__ws_release(ws, ws->first_close_code);
}

/* wslay reads from the input buffer; empty means "would block". */
static ssize_t
sp__ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *arg)
{
    struct sp_ws *ws = arg;
    int n = evbuffer_remove(bufferevent_get_input(ws->bev), buf, len);

    (void)flags;
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

/* wslay writes to the output buffer, which takes everything (sp_ws_pending_bytes caps it). */
static ssize_t
sp__ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *arg)
{
    struct sp_ws *ws = arg;

    (void)flags;
    if (evbuffer_add(bufferevent_get_output(ws->bev), data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* Refuse binary messages at their first frame, before wslay buffers them. */
static void sp__ws_on_frame_start(wslay_event_context_ptr ctx,
                                  const struct wslay_event_on_frame_recv_start_arg *arg,
                                  void *ud)
{
    (void)ctx;
    if (arg->opcode == WSLAY_BINARY_FRAME)
        sp__ws_start_close(ud, WSLAY_CODE_UNSUPPORTED_DATA, "binary messages are not accepted",
                           true);
}

static void
sp__ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *ud)
{
    struct sp_ws *ws = ud;
    const char *text = arg->msg != NULL ? (const char *)arg->msg : "";

    (void)ctx;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE && ws->first_close_code == 0) {
        ws->first_close_code = arg->status_code != 0 ? arg->status_code : 1005;
    } else if (arg->opcode == WSLAY_TEXT_FRAME && !sp__utf8_valid(text, arg->msg_length)) {
        /* wslay 1.1.1 fails such text with 1007 itself, before this; on_text's promise
         * does not rest on that */
        sp__ws_start_close(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, "text is not UTF-8", true);
    } else if (arg->opcode == WSLAY_TEXT_FRAME && ws->cbs.on_text != NULL &&
               ws->first_close_code == 0) {
        ws->cbs.on_text(ws, text, arg->msg_length, ws->ud);
    }
}

static void sp__ws_opts_apply(struct sp_ws_opts *o, const struct sp_ws_opts *given)
{
    if (given != NULL)
        *o = *given;
    if (o->max_message == 0)
        o->max_message = SP__WS_MAX_MESSAGE;
    if (o->ping_interval_ms <= 0)
        o->ping_interval_ms = SP__WS_PING_INTERVAL_MS;
    if (o->pong_timeout_ms <= 0)
        o->pong_timeout_ms = SP__WS_PONG_TIMEOUT_MS;
    if (o->max_pending == 0)
        o->max_pending = SP__WS_MAX_PENDING;
}

/* A connection over @p evcon, not yet reading. NULL if wslay or libevent cannot allocate. */
static struct sp_ws *sp__ws_new(struct evhttp_connection *evcon,
                                const struct sp_ws_opts *opts,
                                const struct sp_ws_cbs *cbs,
                                void *ud)
{
    static const struct wslay_event_callbacks wcbs = {
        .recv_callback = sp__ws_recv_cb,
        .send_callback = sp__ws_send_cb,
        .on_frame_recv_start_callback = sp__ws_on_frame_start,
        .on_msg_recv_callback = sp__ws_on_msg,
    };
    struct sp_ws *ws = sp_xcalloc(1, sizeof(*ws));

    ws->evcon = evcon;
    ws->bev = evhttp_connection_get_bufferevent(evcon);
    sp__ws_opts_apply(&ws->opts, opts);
    ws->cbs = *cbs;
    ws->ud = ud;
    ws->timer = event_new(bufferevent_get_base(ws->bev), -1, 0, sp__ws_on_timer, ws);
    if (ws->timer == NULL || wslay_event_context_server_init(&ws->ctx, &wcbs, ws) != 0) {
        if (ws->timer != NULL)
            event_free(ws->timer);
        free(ws);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->opts.max_message);
    return ws;
}

/* Replace evhttp's callbacks and timeouts with ours; the first timer round reads what the
 * client sent with its handshake (not now: the caller has not got @p ws yet). */
static void sp__ws_takeover(struct sp_ws *ws)
{
    ws->start_us = ws->last_rx_us = sp_time_mono_us();
    bufferevent_setcb(ws->bev, sp__ws_on_read, sp__ws_on_write, sp__ws_on_event, ws);
    bufferevent_set_timeouts(ws->bev, NULL, NULL);
    bufferevent_setwatermark(ws->bev, EV_READ | EV_WRITE, 0, 0);
    bufferevent_enable(ws->bev, EV_READ | EV_WRITE);
    evhttp_connection_set_closecb(ws->evcon, sp__ws_on_evcon_close, ws);
    event_active(ws->timer, EV_TIMEOUT, 1);
}

struct sp_ws *sp_ws_accept(struct sp_http_req *req,
                           const char *protocol,
                           const struct sp_ws_opts *opts,
                           const struct sp_ws_cbs *cbs,
                           void *ud)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req->ev);
    const char *key = sp_http_req_header(req, "Sec-WebSocket-Key");
    const char *why = NULL;
    char accept[29];
    struct sp_ws *ws = NULL;

    if (evcon == NULL) {
        sp_http_reply(req, 500, NULL, NULL, 0); /* the client went away: dropped */
        return NULL;
    }
    if (key == NULL || sp__accept_value(key, accept) != 0)
        why = "no Sec-WebSocket-Key (sp_ws_check was not called)";
    else if (protocol != NULL && !sp__is_token(protocol, strlen(protocol)))
        why = "the subprotocol is not a token"; /* its value is not logged: it may be a secret */
    else if ((ws = sp__ws_new(evcon, opts, cbs, ud)) == NULL)
        why = "out of memory";
    if (why != NULL) {
        sp_log(SP_LOG_ERROR, "could not accept a websocket: %s", why);
        sp_http_reply_problem(req, 500, "internal", "could not accept the WebSocket", NULL);
        return NULL;
    }
    sp_http_add_header(req, "Upgrade", "websocket");
    sp_http_add_header(req, "Connection", "Upgrade");
    sp_http_add_header(req, "Sec-WebSocket-Accept", accept);
    if (protocol != NULL)
        sp_http_add_header(req, "Sec-WebSocket-Protocol", protocol);
    sp_http_add_header(req, "X-Request-Id", req->id);
    evhttp_send_reply_start(req->ev, 101, "Switching Protocols");
    snprintf(ws->id, sizeof(ws->id), "%s", req->id);
    snprintf(ws->peer, sizeof(ws->peer), "%s", req->peer);
    sp__req_observe(req, 101);
    sp__req_free(req);
    sp__ws_takeover(ws);
    return ws;
}

int sp_ws_send_text(struct sp_ws *ws, const char *data, size_t len)
{
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)data, len};
    size_t pending = sp_ws_pending_bytes(ws);
    int rc;

    if (ws->finished || ws->first_close_code != 0)
        return SP_ESTATE;
    if (!sp__utf8_valid(data, len))
        return SP_EINVAL;
    if (len > ws->opts.max_pending || pending > ws->opts.max_pending - len) {
        sp__ws_start_close(ws, WSLAY_CODE_POLICY_VIOLATION, "client too slow", false);
        sp__ws_flush(ws);
        return SP_ETOOBIG;
    }
    rc = wslay_event_queue_msg(ws->ctx, &msg);
    if (rc == WSLAY_ERR_NO_MORE_MSG)
        return SP_ESTATE;
    if (rc != 0)
        return -ENOMEM;
    sp__ws_flush(ws);
    return 0;
}

size_t sp_ws_pending_bytes(const struct sp_ws *ws)
{
    return evbuffer_get_length(bufferevent_get_output(ws->bev)) +
           wslay_event_get_queued_msg_length(ws->ctx);
}

void sp_ws_close(struct sp_ws *ws, int code, const char *reason)
{
    SP_ASSERT((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1009) || code == 1011 ||
              (code >= 3000 && code <= 4999));
    if (ws->finished || ws->first_close_code != 0)
        return;
    sp__ws_start_close(ws, code, reason, false);
    sp__ws_flush(ws);
}

void sp_ws_set_callbacks(struct sp_ws *ws, const struct sp_ws_cbs *cbs, void *ud)
{
    static const struct sp_ws_cbs none = {NULL, NULL};

    ws->cbs = cbs != NULL ? *cbs : none;
    ws->ud = ud;
}

const char *sp_ws_peer(const struct sp_ws *ws)
{
    return ws->peer;
}
