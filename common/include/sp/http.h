/*
 * HTTP/1.1 server core shared by the daemons, on libevent's evhttp: routing with path
 * parameters, JSON bodies with caps, RFC 9457 problem+json errors, request logging and
 * metrics, and the built-in GET /healthz, /readyz and /metrics routes.
 *
 * Behaviour worth knowing:
 * - Every request gets one JSON log line at reply time (msg "request", fields method,
 *   path (no query string), route, status, duration_ms, request_id, peer; level warn for
 *   5xx) and is counted in stockpot_http_requests_total{route,status} and
 *   stockpot_http_request_duration_seconds{route}. Requests that match no route use the
 *   route label "unmatched". Every reply carries X-Request-Id.
 * - HEAD is routed like GET (libevent drops the body); other methods than GET, HEAD,
 *   POST, PUT, DELETE get 405 on a known path. Path segments are percent-decoded before
 *   matching; a trailing slash is a distinct (empty) segment.
 * - Body cap: a request body larger than max_body_bytes is answered 413 problem+json
 *   before routing, whatever the route. libevent 2.1 has no server hook between headers
 *   and body, so evhttp's own limit is set to a memory backstop of 4 x max_body_bytes +
 *   1 MiB; only bodies beyond that get libevent's own (text/html) 413 and a close.
 * - Header blocks larger than max_header_bytes are refused by libevent (413, HTML).
 * - timeout_s is evhttp's per-connection read/write timeout; keep-alive is on.
 * - Replies may be sent later from another callback on the same loop; if the client
 *   went away meanwhile the reply is dropped silently. sp_http_server_free() drops (and
 *   frees) requests still waiting for a reply: do not reply to them afterwards. Streams
 *   still open then are dropped too, each with its on_close called.
 *
 * @locality everything here runs on the thread of the event_base given to the server.
 */
#ifndef SP_HTTP_H
#define SP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

#include "sp/buf.h"
#include "sp/err.h"
#include "sp/metrics.h"

struct sp_http_server;
struct sp_http_req;

enum sp_http_method {
    SP_HTTP_GET = 1 << 0,
    SP_HTTP_POST = 1 << 1,
    SP_HTTP_PUT = 1 << 2,
    SP_HTTP_DELETE = 1 << 3,
};

/** Route handler. It must eventually call exactly one sp_http_reply* on @p req, now or
 *  later from another callback on the same event loop. */
typedef void (*sp_http_handler_fn)(struct sp_http_req *req, void *ud);

/** Readiness probe for GET /readyz: return true if ready, else false and a reason. */
typedef bool (*sp_http_ready_fn)(void *ud, struct sp_buf *why);

/**
 * A JSON parser for request bodies: parse @p len bytes at @p buf as one JSON value into
 * *out (an owned reference; NULL on error). @return 0, or non-zero with what is wrong in
 * @p eb->msg. es_json_parse (es/json.h) is one.
 */
typedef int (*sp_http_json_parse_fn)(const void *buf,
                                     size_t len,
                                     json_t **out,
                                     struct sp_errbuf *eb);

struct sp_http_opts {
    const char *service;              /* for logs, e.g. "query-api" */
    const char *host;                 /* listen address */
    int port;                         /* 0 = any free port (see sp_http_server_port) */
    size_t max_body_bytes;            /* larger bodies get 413 problem+json */
    size_t max_header_bytes;          /* larger header blocks are refused */
    int timeout_s;                    /* read/write timeout per connection */
    size_t max_json_depth;            /* deeper request JSON gets 400 */
    sp_http_json_parse_fn json_parse; /* request bodies; NULL = jansson's json_loadb */
    struct sp_metrics *metrics;       /* borrowed; request counts and latency go here */
    sp_http_ready_fn ready;           /* NULL = always ready */
    void *ready_ud;
};

/**
 * Create a server bound to opts->host:opts->port on @p base, with /healthz, /readyz and
 * /metrics already routed. Strings in @p opts are copied; metrics is borrowed.
 * @param[out] out  owned; free with sp_http_server_free()
 * @return 0; -errno if the address cannot be bound (eb says which).
 */
SP_MUST_CHECK int sp_http_server_new(struct event_base *base,
                                     const struct sp_http_opts *opts,
                                     struct sp_http_server **out,
                                     struct sp_errbuf *eb);

/** Stop listening and free the server; pending requests are dropped. NULL is a no-op. */
void sp_http_server_free(struct sp_http_server *srv);

/** The TCP port actually bound (useful with port 0). */
int sp_http_server_port(const struct sp_http_server *srv);

/**
 * Route requests whose path matches @p pattern to @p fn. Patterns are literal segments
 * and `{name}` parameters: "/recipes/{id}/comments". Most specific literal match wins.
 * A path that matches but with another method gets 405 problem+json with Allow; no
 * match gets 404 problem+json. @p pattern is copied and is the "route" label in metrics.
 */
void sp_http_route(struct sp_http_server *srv,
                   unsigned methods,
                   const char *pattern,
                   sp_http_handler_fn fn,
                   void *ud);

/* ---- request accessors: returned strings are borrowed, valid until the reply ---- */

enum sp_http_method sp_http_req_method(const struct sp_http_req *req);
/** Path parameter by name from the route pattern, or NULL. */
const char *sp_http_req_param(const struct sp_http_req *req, const char *name);
/** Decoded query-string parameter, or NULL if absent (the first, when repeated). */
const char *sp_http_req_query(const struct sp_http_req *req, const char *name);
/** Number of query-string parameters, repeats counted (a parameter whose name or value
 *  does not percent-decode, or decodes to NUL, is dropped and not counted). */
size_t sp_http_req_query_count(const struct sp_http_req *req);
/** Query-string parameter @p i (< sp_http_req_query_count), in request order: its name
 *  and decoded value, borrowed until the reply. */
void sp_http_req_query_at(const struct sp_http_req *req,
                          size_t i,
                          const char **name,
                          const char **value);
/** Request header (case-insensitive name), or NULL. */
const char *sp_http_req_header(const struct sp_http_req *req, const char *name);
/** The request id: X-Request-Id if given (≤ 64 safe chars), else a generated one. */
const char *sp_http_req_id(const struct sp_http_req *req);
/** Client address as text (IPv4/IPv6), for rate limits and audit lines. */
const char *sp_http_req_peer(const struct sp_http_req *req);
/** Raw body (not NUL-terminated) and its length in bytes; borrowed until the reply. */
const void *sp_http_req_body(struct sp_http_req *req, size_t *len);
/** Bearer token from `Authorization: Bearer <t>`, or NULL if absent or malformed. */
const char *sp_http_req_bearer(const struct sp_http_req *req);

/**
 * Parse the body as a JSON object: caps on size (max_body_bytes) and depth
 * (max_json_depth), UTF-8 validity, object at the top.
 * @param[out] out  owned reference; json_decref() it
 * Parsed by opts->json_parse when the server has one, else by jansson's json_loadb.
 * @return 0; SP_ETOOBIG (reply 413); SP_EINVAL with field "body" and a message saying what
 *         is wrong (json_loadb's names the line and column) (reply 400).
 */
SP_MUST_CHECK int sp_http_req_json(struct sp_http_req *req, json_t **out, struct sp_errbuf *eb);

/* ---- replies: exactly one per request; each one sends and frees @p req ---- */

/** Add a response header (copied) before the reply. */
void sp_http_add_header(struct sp_http_req *req, const char *name, const char *value);

/** Send @p status with a body of @p len bytes (copied) of @p content_type (NULL = none). */
void sp_http_reply(
    struct sp_http_req *req, int status, const char *content_type, const void *body, size_t len);

/** Send @p body (stolen; NULL = empty body) as application/json. */
void sp_http_reply_json(struct sp_http_req *req, int status, json_t *body);

/**
 * Send an RFC 9457 application/problem+json body: {"type","title","status","detail",
 * "errors"?, "instance"?}. @p type_slug names the problem ("validation", "not-found",
 * ...): type becomes "https://stockpot.dev/problems/<slug>", or "about:blank" if NULL.
 * Title is the status's reason phrase. @p errors (stolen, may be NULL) is an array of
 * {"field","detail"} objects.
 */
void sp_http_reply_problem(
    struct sp_http_req *req, int status, const char *type_slug, const char *detail, json_t *errors);

/**
 * Problem reply for an error code: status from sp_http_status_for(err), detail and
 * errors[0] from @p eb (if eb->field is set, it is named in errors).
 */
void sp_http_reply_error(struct sp_http_req *req, int err, const struct sp_errbuf *eb);

/* ---- streamed replies (Server-Sent Events and other long-lived bodies) ---- */

struct sp_http_stream;

/**
 * The client of a stream went away (or the server is being freed). Called at most once,
 * from the event loop, never after sp_http_stream_end(); the stream is already freed
 * when this runs, so the owner only drops its pointer and must not end it.
 */
typedef void (*sp_http_stream_close_fn)(void *ud);

/**
 * Start a streamed reply to @p req instead of one of the sp_http_reply* calls: the status
 * line and headers (those added with sp_http_add_header, plus Content-Type and
 * X-Request-Id) go out now, the body follows in pieces with sp_http_stream_send, in
 * HTTP/1.1 chunked encoding (RFC 9112 §7.1; an HTTP/1.0 client gets a body ended by the
 * close). For Server-Sent Events pass "text/event-stream" and write the event format of
 * the WHATWG HTML standard, §9.2.
 *
 * The connection's read/write timeout (sp_http_opts.timeout_s) keeps applying and every
 * piece sent restarts it: send something (an SSE comment) more often than that. The
 * request line is logged and counted when the stream ends or its client goes away.
 *
 * @param max_pending_bytes  cap on bytes sent but not yet taken by a slow client: beyond
 *                           it sp_http_stream_send refuses; 0 = 1 MiB
 * @param on_close, ud       called once if the client disconnects first (see above)
 * @return the stream (owned: end it with sp_http_stream_end() unless on_close ran);
 *         NULL if the client has already gone (nothing to do: @p req was freed and
 *         on_close is never called). Either way @p req is consumed.
 */
struct sp_http_stream *sp_http_stream_start(struct sp_http_req *req,
                                            int status,
                                            const char *content_type,
                                            size_t max_pending_bytes,
                                            sp_http_stream_close_fn on_close,
                                            void *ud);

/**
 * Send @p len bytes of @p data (copied) as the next piece of the body; len 0 is a no-op.
 * @return 0; SP_ETOOBIG if more than max_pending_bytes would be waiting for the client
 *         (nothing is sent: end the stream, the client is too slow).
 */
SP_MUST_CHECK int sp_http_stream_send(struct sp_http_stream *st, const void *data, size_t len);

/** Bytes sent but not yet taken by the client. */
size_t sp_http_stream_pending_bytes(const struct sp_http_stream *st);

/**
 * End the body (the last chunk), log the request and free @p st; on_close is not called.
 * The connection stays open for keep-alive. NULL is a no-op.
 */
void sp_http_stream_end(struct sp_http_stream *st);

/**
 * HTTP status for an error code: SP_EINVAL/ESCHEMA 400, EAUTH 401, EFORBIDDEN 403,
 * ENOTFOUND 404, ECONFLICT 409, ETOOBIG 413, ETIMEDOUT/EUNAVAIL/EFENCED 503, others 500.
 */
int sp_http_status_for(int err);

#endif
