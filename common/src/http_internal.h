/*
 * Private structures shared by the HTTP server files (http.c, http_server.c, http_req.c,
 * http_stream.c).
 */
#ifndef SP_HTTP_INTERNAL_H
#define SP_HTTP_INTERNAL_H

#include <stdint.h>

#include <event2/http.h>

#include "sp/http.h"

#define SP__M_REQS "stockpot_http_requests_total"
#define SP__M_DUR  "stockpot_http_request_duration_seconds"

struct sp__kv {
    char *name;  /* owned */
    char *value; /* owned, decoded */
};

struct sp__route {
    unsigned methods; /* SP_HTTP_* mask */
    char *pattern;    /* owned, the metrics "route" label */
    char *label;      /* owned, route="<pattern>" escaped for the metrics */
    char **segs;      /* owned; literal segments or "{name}" */
    size_t nsegs;
    sp_http_handler_fn fn;
    void *ud;
};

struct sp_http_server {
    struct event_base *base; /* borrowed */
    struct evhttp *http;
    struct evhttp_bound_socket *sock; /* owned by http */
    char *service;                    /* owned */
    int port;                         /* bound TCP port */
    size_t max_body_bytes;
    size_t max_json_depth;
    sp_http_json_parse_fn json_parse; /* NULL = json_loadb */
    struct sp_metrics *metrics;       /* borrowed, may be NULL */
    sp_http_ready_fn ready;
    void *ready_ud;
    struct sp__route *routes; /* owned array */
    size_t nroutes, caproutes;
    struct sp_http_req *pending; /* requests not yet replied to, doubly linked */
    uint64_t id_salt;            /* random, for generated request ids */
    uint64_t id_next;
};

struct sp_http_req {
    struct sp_http_server *srv; /* borrowed */
    struct evhttp_request *ev;  /* borrowed from evhttp until the reply */
    struct sp_http_req *prev, *next;
    enum sp_http_method method; /* 0 for methods we do not route */
    const char *route;          /* borrowed route pattern, or "unmatched" */
    const char *route_label;    /* borrowed route="<route>" for the metrics */
    char *path;                 /* owned raw path, for logs */
    struct sp__kv *params;      /* owned path parameters */
    size_t nparams;
    struct sp__kv *query; /* owned decoded query parameters */
    size_t nquery;
    int64_t start_us;              /* monotonic */
    struct sp_http_stream *stream; /* owned by its owner; set while the reply streams */
    char id[65];
    char peer[64];
};

#define SP__UNMATCHED_LABEL "route=\"unmatched\""

/* http_req.c */
void sp__kv_free(struct sp__kv *kv, size_t n);
const char *sp__method_name(struct evhttp_request *ev);
const char *sp__reason(int status);
/** Percent-decode @p n bytes of @p s ('+' to space if @p plus). NULL on a bad escape or NUL. */
char *sp__pct_decode(const char *s, size_t n, int plus);
/** Parse a query string into owned pairs. */
void sp__query_parse(const char *q, struct sp__kv **out, size_t *n);

/* http.c */
/** Unlink @p req from the server's pending list and free it (not req->ev). */
void sp__req_free(struct sp_http_req *req);
/** Log the request line of @p req with @p status and count it in the metrics. */
void sp__req_observe(struct sp_http_req *req, int status);

/* http_stream.c */
/** Server shutdown: forget the stream of @p req without replying; runs its on_close. */
void sp__stream_drop(struct sp_http_stream *st);

/* http_server.c */
void sp__dispatch(struct evhttp_request *ev, void *arg);

#endif
