/* HTTP server lifecycle, routing with {param} segments, dispatch and built-in routes. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/http.h"
#include "sp/log.h"
#include "sp/metrics.h"
#include "sp/time.h"
#include "http_internal.h"
#include "sp/banned.h"

/* Split a path (or pattern) after its leading '/' into owned segments; "/" has none. */
static char **sp__split(const char *path, size_t *n)
{
    char **segs = NULL;
    size_t cap = 0;
    *n = 0;
    if (*path == '/')
        path++;
    if (*path == '\0')
        return NULL;
    for (;;) {
        size_t len = strcspn(path, "/");
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            segs = sp_xrealloc(segs, cap * sizeof(*segs));
        }
        segs[(*n)++] = sp_xstrndup(path, len);
        if (path[len] == '\0')
            break;
        path += len + 1;
    }
    return segs;
}

static void sp__segs_free(char **segs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(segs[i]);
    free(segs);
}

static int sp__is_param(const char *seg)
{
    size_t len = strlen(seg);
    return len >= 2 && seg[0] == '{' && seg[len - 1] == '}';
}

void sp_http_route(struct sp_http_server *srv,
                   unsigned methods,
                   const char *pattern,
                   sp_http_handler_fn fn,
                   void *ud)
{
    if (srv->nroutes == srv->caproutes) {
        srv->caproutes = srv->caproutes ? srv->caproutes * 2 : 16;
        srv->routes = sp_xrealloc(srv->routes, srv->caproutes * sizeof(*srv->routes));
    }
    struct sp__route *r = &srv->routes[srv->nroutes++];
    r->methods = methods;
    r->pattern = sp_xstrdup(pattern);
    struct sp_buf label;
    sp_buf_init(&label, 0);
    if (sp_buf_adds(&label, "route=\"") || sp_metrics_label_escape(&label, pattern) ||
        sp_buf_adds(&label, "\""))
        SP_ASSERT(!"unbounded buffer refused an append");
    r->label = sp_buf_detach(&label, NULL);
    r->segs = sp__split(pattern, &r->nsegs);
    r->fn = fn;
    r->ud = ud;
}

/*
 * Whether decoded @p segs match @p r; *score has a bit per literal segment, earlier
 * segments weigh more, so the most specific literal match wins.
 */
static int sp__route_match(const struct sp__route *r, char **segs, size_t n, uint64_t *score)
{
    if (r->nsegs != n)
        return 0;
    *score = 0;
    for (size_t i = 0; i < n; i++) {
        if (sp__is_param(r->segs[i])) {
            if (segs[i][0] == '\0')
                return 0;
            continue;
        }
        if (strcmp(r->segs[i], segs[i]) != 0)
            return 0;
        if (i < 64)
            *score |= UINT64_C(1) << (63 - i);
    }
    return 1;
}

static void sp__bind_params(struct sp_http_req *req, const struct sp__route *r, char **segs)
{
    for (size_t i = 0; i < r->nsegs; i++) {
        if (!sp__is_param(r->segs[i]))
            continue;
        req->params = sp_xrealloc(req->params, (req->nparams + 1) * sizeof(*req->params));
        size_t len = strlen(r->segs[i]);
        req->params[req->nparams].name = sp_xstrndup(r->segs[i] + 1, len - 2);
        req->params[req->nparams].value = sp_xstrdup(segs[i]);
        req->nparams++;
    }
}

static void sp__reply_405(struct sp_http_req *req, unsigned allowed)
{
    char allow[64] = "";
    static const struct {
        unsigned bit;
        const char *names;
    } m[] = {{SP_HTTP_GET, "GET, HEAD"},
             {SP_HTTP_POST, "POST"},
             {SP_HTTP_PUT, "PUT"},
             {SP_HTTP_DELETE, "DELETE"}};
    size_t off = 0;
    for (size_t i = 0; i < 4; i++) {
        if (allowed & m[i].bit)
            off += (size_t)snprintf(allow + off, sizeof(allow) - off, "%s%s", off ? ", " : "",
                                    m[i].names);
    }
    sp_http_add_header(req, "Allow", allow);
    sp_http_reply_problem(req, 405, "method-not-allowed",
                          "this method is not allowed on this resource", NULL);
}

/* Find the route for @p req and run it, or answer 404/405. */
static void sp__route_request(struct sp_http_req *req, const char *raw_path)
{
    struct sp_http_server *srv = req->srv;
    size_t n = 0;
    char **segs = sp__split(raw_path, &n);
    for (size_t i = 0; i < n; i++) {
        char *dec = sp__pct_decode(segs[i], strlen(segs[i]), 0);
        free(segs[i]);
        segs[i] = dec ? dec : sp_xstrdup("\x01invalid");
    }
    const struct sp__route *best = NULL;
    uint64_t best_score = 0, score;
    unsigned allowed = 0;
    for (size_t i = 0; i < srv->nroutes; i++) {
        const struct sp__route *r = &srv->routes[i];
        if (!sp__route_match(r, segs, n, &score))
            continue;
        allowed |= r->methods;
        if ((r->methods & (unsigned)req->method) && (!best || score > best_score)) {
            best = &srv->routes[i];
            best_score = score;
        }
    }
    if (best) {
        req->route = best->pattern;
        req->route_label = best->label;
        sp__bind_params(req, best, segs);
    }
    sp__segs_free(segs, n);
    if (best)
        best->fn(req, best->ud);
    else if (allowed)
        sp__reply_405(req, allowed);
    else
        sp_http_reply_problem(req, 404, "not-found", "no resource at this path", NULL);
}

static enum sp_http_method sp__method_of(struct evhttp_request *ev)
{
    switch (evhttp_request_get_command(ev)) {
    case EVHTTP_REQ_GET:
    case EVHTTP_REQ_HEAD:
        return SP_HTTP_GET;
    case EVHTTP_REQ_POST:
        return SP_HTTP_POST;
    case EVHTTP_REQ_PUT:
        return SP_HTTP_PUT;
    case EVHTTP_REQ_DELETE:
        return SP_HTTP_DELETE;
    default:
        return (enum sp_http_method)0;
    }
}

/* X-Request-Id if it is 1..64 safe characters, else a generated 16-hex-digit id. */
static void sp__req_set_id(struct sp_http_req *req)
{
    const char *given = sp_http_req_header(req, "X-Request-Id");
    size_t len = given ? strlen(given) : 0;
    if (len > 0 && len < sizeof(req->id) &&
        strspn(given, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:") ==
            len) {
        memcpy(req->id, given, len + 1);
        return;
    }
    uint64_t x = req->srv->id_salt + ++req->srv->id_next * UINT64_C(0x9e3779b97f4a7c15);
    x ^= x >> 31; /* splitmix64 finaliser: ids look random but never repeat */
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    snprintf(req->id, sizeof(req->id), "%016" PRIx64, x);
}

static void sp__req_set_peer(struct sp_http_req *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req->ev);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (evcon)
        evhttp_connection_get_peer(evcon, &addr, &port);
    snprintf(req->peer, sizeof(req->peer), "%s", addr ? addr : "");
}

void sp__dispatch(struct evhttp_request *ev, void *arg)
{
    struct sp_http_server *srv = arg;
    struct sp_http_req *req = sp_xcalloc(1, sizeof(*req));
    req->srv = srv;
    req->ev = ev;
    req->start_us = sp_time_mono_us();
    req->method = sp__method_of(ev);
    req->route = "unmatched";
    req->route_label = SP__UNMATCHED_LABEL;
    req->next = srv->pending;
    if (srv->pending)
        srv->pending->prev = req;
    srv->pending = req;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    req->path = sp_xstrdup(path && path[0] ? path : "/");
    sp__query_parse(uri ? evhttp_uri_get_query(uri) : NULL, &req->query, &req->nquery);
    sp__req_set_id(req);
    sp__req_set_peer(req);
    if (evbuffer_get_length(evhttp_request_get_input_buffer(ev)) > srv->max_body_bytes) {
        char detail[96];
        snprintf(detail, sizeof(detail), "request body is larger than %zu bytes",
                 srv->max_body_bytes);
        sp_http_reply_problem(req, 413, "too-large", detail, NULL);
        return;
    }
    sp__route_request(req, req->path);
}

static void sp__healthz(struct sp_http_req *req, void *ud)
{
    (void)ud;
    sp_http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void sp__readyz(struct sp_http_req *req, void *ud)
{
    struct sp_http_server *srv = ud;
    struct sp_buf why;
    sp_buf_init(&why, 1024);
    if (!srv->ready || srv->ready(srv->ready_ud, &why)) {
        sp_http_reply_json(req, 200, json_pack("{s:s}", "status", "ready"));
    } else {
        sp_http_add_header(req, "Retry-After", "1");
        sp_http_reply_problem(req, 503, "not-ready", why.len ? why.data : "not ready", NULL);
    }
    sp_buf_release(&why);
}

static void sp__metrics_route(struct sp_http_req *req, void *ud)
{
    struct sp_http_server *srv = ud;
    struct sp_buf out;
    sp_buf_init(&out, 0);
    if (srv->metrics && sp_metrics_render(srv->metrics, &out) != 0) {
        sp_buf_release(&out);
        sp_http_reply_problem(req, 500, "internal", "could not render metrics", NULL);
        return;
    }
    sp_http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    sp_buf_release(&out);
}

static int
sp__server_bind(struct sp_http_server *srv, const struct sp_http_opts *opts, struct sp_errbuf *eb)
{
    errno = 0;
    srv->sock = evhttp_bind_socket_with_handle(srv->http, opts->host, (ev_uint16_t)opts->port);
    if (!srv->sock) {
        int rc = errno ? -errno : -EADDRINUSE;
        return sp_err_set(eb, rc, "", "could not listen on %s:%d: %s", opts->host, opts->port,
                          sp_strerror(rc));
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(srv->sock);
    /* Accepted sockets inherit TCP_NODELAY from the listener (Linux). Without it a response
     * longer than one segment ends with a partial segment that Nagle's algorithm (RFC 896)
     * holds until the client's delayed ACK (40 ms on Linux, RFC 1122 4.2.3.2) on a
     * keep-alive connection: every large GET /feed page took 40 ms more. */
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        return sp_err_set(eb, -errno, "", "setsockopt(TCP_NODELAY) failed: %s",
                          sp_strerror(-errno));
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return sp_err_set(eb, -errno, "", "getsockname failed: %s", sp_strerror(-errno));
    if (ss.ss_family == AF_INET6)
        srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void sp__server_setup(struct sp_http_server *srv, const struct sp_http_opts *opts)
{
    size_t backstop = opts->max_body_bytes * 4 + (size_t)1024 * 1024;
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)backstop);
    if (opts->max_header_bytes)
        evhttp_set_max_headers_size(srv->http, (ev_ssize_t)opts->max_header_bytes);
    if (opts->timeout_s > 0)
        evhttp_set_timeout(srv->http, opts->timeout_s);
    evhttp_set_default_content_type(srv->http, NULL);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(srv->http, sp__dispatch, srv);
    if (srv->metrics) {
        sp_metrics_describe(srv->metrics, SP__M_REQS, SP_METRIC_COUNTER,
                            "HTTP requests answered, by route pattern and status");
        sp_metrics_describe(srv->metrics, SP__M_DUR, SP_METRIC_HISTOGRAM,
                            "HTTP request latency from dispatch to reply, seconds, by route");
    }
    sp_http_route(srv, SP_HTTP_GET, "/healthz", sp__healthz, srv);
    sp_http_route(srv, SP_HTTP_GET, "/readyz", sp__readyz, srv);
    sp_http_route(srv, SP_HTTP_GET, "/metrics", sp__metrics_route, srv);
}

int sp_http_server_new(struct event_base *base,
                       const struct sp_http_opts *opts,
                       struct sp_http_server **out,
                       struct sp_errbuf *eb)
{
    struct sp_http_server *srv = sp_xcalloc(1, sizeof(*srv));
    *out = NULL;
    srv->base = base;
    srv->service = sp_xstrdup(opts->service ? opts->service : "");
    srv->max_body_bytes = opts->max_body_bytes ? opts->max_body_bytes : 262144;
    srv->max_json_depth = opts->max_json_depth ? opts->max_json_depth : 16;
    srv->json_parse = opts->json_parse;
    srv->metrics = opts->metrics;
    srv->ready = opts->ready;
    srv->ready_ud = opts->ready_ud;
    if (getrandom(&srv->id_salt, sizeof(srv->id_salt), 0) != (ssize_t)sizeof(srv->id_salt))
        srv->id_salt = (uint64_t)sp_time_now_us() ^ ((uint64_t)getpid() << 32);
    srv->http = evhttp_new(base);
    if (!srv->http) {
        sp_http_server_free(srv);
        return sp_err_set(eb, -ENOMEM, "", "could not create the HTTP server");
    }
    struct sp_http_opts o = *opts;
    o.max_body_bytes = srv->max_body_bytes;
    if (!o.host)
        o.host = "127.0.0.1";
    sp__server_setup(srv, &o);
    int rc = sp__server_bind(srv, &o, eb);
    if (rc) {
        sp_http_server_free(srv);
        return rc;
    }
    sp_log(SP_LOG_INFO, "%s listening on %s:%d", srv->service, o.host, srv->port);
    *out = srv;
    return 0;
}

void sp_http_server_free(struct sp_http_server *srv)
{
    if (!srv)
        return;
    while (srv->pending) {
        struct sp_http_req *req = srv->pending;
        srv->pending = req->next;
        if (req->stream != NULL)
            sp__stream_drop(req->stream);
        /* a request whose client went away is ours to free; others go with evhttp */
        if (!evhttp_request_get_connection(req->ev))
            evhttp_request_free(req->ev);
        sp__kv_free(req->params, req->nparams);
        sp__kv_free(req->query, req->nquery);
        free(req->path);
        free(req);
    }
    if (srv->http)
        evhttp_free(srv->http);
    for (size_t i = 0; i < srv->nroutes; i++) {
        free(srv->routes[i].pattern);
        free(srv->routes[i].label);
        sp__segs_free(srv->routes[i].segs, srv->routes[i].nsegs);
    }
    free(srv->routes);
    free(srv->service);
    free(srv);
}

int sp_http_server_port(const struct sp_http_server *srv)
{
    return srv->port;
}
