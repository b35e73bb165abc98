/*
 * Streamed replies on evhttp (evhttp_send_reply_start / _chunk / _end) with disconnect
 * notification (evhttp_connection_set_closecb), for Server-Sent Events.
 *
 * libevent 2.1 detail that shapes this file: when the client of a streaming request goes
 * away, evhttp detaches the request from its connection (evhttp_request_get_connection
 * returns NULL) and frees the connection, calling the close callback; the detached
 * request is then ours to free. When instead evhttp_free() tears the connection down,
 * the request is still attached and evhttp frees it after the close callback. The close
 * callback is cleared whenever a stream ends, as the connection outlives it (keep-alive).
 */
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "sp/alloc.h"
#include "sp/http.h"
#include "http_internal.h"
#include "sp/banned.h"

#define SP__STREAM_PENDING_DEFAULT ((size_t)1024 * 1024)

struct sp_http_stream {
    struct sp_http_req *req; /* owned; stays on the server's pending list until the end */
    int status;
    size_t max_pending_bytes;
    sp_http_stream_close_fn on_close;
    void *ud;
};

static void sp__stream_unhook(struct sp_http_stream *st)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(st->req->ev);

    if (evcon != NULL)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    st->req->stream = NULL;
}

/* evhttp is freeing the connection: the client went away or the server is being freed. */
static void sp__stream_on_close(struct evhttp_connection *evcon, void *arg)
{
    struct sp_http_stream *st = arg;
    struct sp_http_req *req = st->req;
    sp_http_stream_close_fn on_close = st->on_close;
    void *ud = st->ud;

    evhttp_connection_set_closecb(evcon, NULL, NULL);
    req->stream = NULL;
    sp__req_observe(req, st->status);
    if (evhttp_request_get_connection(req->ev) == NULL)
        evhttp_request_free(req->ev); /* detached: evhttp left it to us */
    sp__req_free(req);
    free(st);
    if (on_close != NULL)
        on_close(ud);
}

struct sp_http_stream *sp_http_stream_start(struct sp_http_req *req,
                                            int status,
                                            const char *content_type,
                                            size_t max_pending_bytes,
                                            sp_http_stream_close_fn on_close,
                                            void *ud)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req->ev);
    struct sp_http_stream *st;

    if (evcon == NULL) {
        /* the client went away while the request waited: drop it as sp_http_reply does */
        sp_http_reply(req, status, content_type, NULL, 0);
        return NULL;
    }
    st = sp_xcalloc(1, sizeof(*st));
    st->req = req;
    st->status = status;
    st->max_pending_bytes = max_pending_bytes ? max_pending_bytes : SP__STREAM_PENDING_DEFAULT;
    st->on_close = on_close;
    st->ud = ud;
    req->stream = st;
    if (content_type != NULL)
        sp_http_add_header(req, "Content-Type", content_type);
    sp_http_add_header(req, "X-Request-Id", req->id);
    evhttp_send_reply_start(req->ev, status, sp__reason(status));
    evhttp_connection_set_closecb(evcon, sp__stream_on_close, st);
    return st;
}

size_t sp_http_stream_pending_bytes(const struct sp_http_stream *st)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(st->req->ev);
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;

    return bev != NULL ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

int sp_http_stream_send(struct sp_http_stream *st, const void *data, size_t len)
{
    struct evbuffer *buf;

    if (len == 0)
        return 0;
    if (sp_http_stream_pending_bytes(st) + len > st->max_pending_bytes)
        return SP_ETOOBIG;
    buf = evbuffer_new();
    SP_ASSERT(buf != NULL);
    evbuffer_add(buf, data, len);
    evhttp_send_reply_chunk(st->req->ev, buf);
    evbuffer_free(buf);
    return 0;
}

void sp_http_stream_end(struct sp_http_stream *st)
{
    struct sp_http_req *req;

    if (st == NULL)
        return;
    req = st->req;
    sp__stream_unhook(st);
    evhttp_send_reply_end(req->ev); /* frees req->ev, now or when the last chunk is out */
    sp__req_observe(req, st->status);
    sp__req_free(req);
    free(st);
}

void sp__stream_drop(struct sp_http_stream *st)
{
    sp_http_stream_close_fn on_close = st->on_close;
    void *ud = st->ud;

    sp__stream_unhook(st);
    free(st);
    if (on_close != NULL)
        on_close(ud);
}
