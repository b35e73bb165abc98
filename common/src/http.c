/*
 * HTTP/1.1 server core on libevent's evhttp: routing with {param} segments, RFC 9457
 * problem+json errors, capped JSON bodies, request logging and metrics, and the
 * built-in /healthz, /readyz and /metrics routes.
 *
 * Body cap: libevent 2.1 has no hook between headers and body on the server side, and
 * when its own max body size trips it answers with an HTML page. So evhttp's limit is
 * set to a backstop well above the configured cap (4 x cap + 1 MiB), bodies between the
 * cap and the backstop are read and answered here with 413 problem+json before routing,
 * and only absurd bodies beyond the backstop get libevent's own (HTML) 413.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "sp/alloc.h"
#include "sp/http.h"
#include "sp/json.h"
#include "sp/log.h"
#include "sp/time.h"
#include "http_internal.h"
#include "sp/banned.h"

#define SP__BACKSTOP_EXTRA (1024 * 1024)

/* A JSON string for @p s, with invalid UTF-8 replaced so it never fails. */
static json_t *sp__json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    struct sp_buf b;
    sp_buf_init(&b, 0);
    if (sp_buf_add_json_str(&b, s, strlen(s)) == 0) {
        /* the escaped form is valid UTF-8; decode it back through a JSON string */
        struct sp_buf q;
        sp_buf_init(&q, 0);
        if (sp_buf_addf(&q, "\"%s\"", b.data) == 0)
            j = json_loads(q.data, JSON_DECODE_ANY, NULL);
        sp_buf_release(&q);
    }
    sp_buf_release(&b);
    return j ? j : json_string("");
}

void sp__req_free(struct sp_http_req *req)
{
    struct sp_http_server *srv = req->srv;
    if (req->prev)
        req->prev->next = req->next;
    else
        srv->pending = req->next;
    if (req->next)
        req->next->prev = req->prev;
    sp__kv_free(req->params, req->nparams);
    sp__kv_free(req->query, req->nquery);
    free(req->path);
    free(req);
}

/* Log the request line and count it in the metrics. */
void sp__req_observe(struct sp_http_req *req, int status)
{
    struct sp_http_server *srv = req->srv;
    int64_t dur_us = sp_time_mono_us() - req->start_us;
    char st[16], dur[32], lbl[512];
    snprintf(st, sizeof(st), "%d", status);
    snprintf(dur, sizeof(dur), "%lld.%03d", (long long)(dur_us / 1000), (int)(dur_us % 1000));
    sp_logf(status >= 500 ? SP_LOG_WARN : SP_LOG_INFO,
            (const char *[]){"method", sp__method_name(req->ev), "path", req->path, "route",
                             req->route, "status", st, "duration_ms", dur, "request_id", req->id,
                             "peer", req->peer, NULL},
            "request");
    if (!srv->metrics)
        return;
    int n = snprintf(lbl, sizeof(lbl), "%s,status=\"%s\"", req->route_label, st);
    if (n > 0 && (size_t)n < sizeof(lbl)) /* a route pattern is short: always */
        sp_metrics_counter_add(srv->metrics, SP__M_REQS, lbl, 1);
    sp_metrics_observe(srv->metrics, SP__M_DUR, req->route_label, (double)dur_us / 1e6);
}

/* Send the reply, log it, count it and free @p req. @p body may be NULL. */
static void sp__req_finish(struct sp_http_req *req, int status, struct evbuffer *body)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req->ev);
    evhttp_add_header(out, "X-Request-Id", req->id);
    evhttp_send_reply(req->ev, status, sp__reason(status), body);
    sp__req_observe(req, status);
    sp__req_free(req);
}

void sp_http_add_header(struct sp_http_req *req, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(req->ev), name, value);
}

void sp_http_reply(
    struct sp_http_req *req, int status, const char *content_type, const void *body, size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    SP_ASSERT(buf != NULL);
    if (content_type)
        sp_http_add_header(req, "Content-Type", content_type);
    if (len > 0)
        evbuffer_add(buf, body, len);
    sp__req_finish(req, status, buf);
    evbuffer_free(buf);
}

/* Reply with @p body (stolen) as compact JSON of @p content_type. @return 0, or
 * sp_json_dump's error (nothing sent then). */
static int
sp__reply_json_as(struct sp_http_req *req, int status, const char *content_type, json_t *body)
{
    struct sp_buf text;
    sp_buf_init(&text, 0);
    int rc = sp_json_dump(&text, body);
    json_decref(body);
    if (rc == 0)
        sp_http_reply(req, status, content_type, text.data, text.len);
    sp_buf_release(&text);
    return rc;
}

void sp_http_reply_json(struct sp_http_req *req, int status, json_t *body)
{
    if (!body)
        sp_http_reply(req, status, NULL, NULL, 0);
    else if (sp__reply_json_as(req, status, "application/json", body) != 0)
        sp_http_reply_problem(req, 500, "internal", "could not encode the response", NULL);
}

void sp_http_reply_problem(
    struct sp_http_req *req, int status, const char *type_slug, const char *detail, json_t *errors)
{
    char type[128];
    if (type_slug)
        snprintf(type, sizeof(type), "https://stockpot.dev/problems/%s", type_slug);
    else
        snprintf(type, sizeof(type), "about:blank");
    json_t *p = json_object();
    json_object_set_new(p, "type", json_string(type));
    json_object_set_new(p, "title", json_string(sp__reason(status)));
    json_object_set_new(p, "status", json_integer(status));
    if (detail)
        json_object_set_new(p, "detail", sp__json_text(detail));
    if (errors)
        json_object_set_new(p, "errors", errors);
    int rc = sp__reply_json_as(req, status, "application/problem+json", p);
    SP_ASSERT(rc == 0); /* the detail went through sp__json_text; errors are ours */
}

int sp_http_status_for(int err)
{
    switch (err) {
    case SP_EINVAL:
    case SP_ESCHEMA:
        return 400;
    case SP_EAUTH:
        return 401;
    case SP_EFORBIDDEN:
        return 403;
    case SP_ENOTFOUND:
        return 404;
    case SP_ECONFLICT:
        return 409;
    case SP_ETOOBIG:
        return 413;
    case SP_ETIMEDOUT:
    case SP_EUNAVAIL:
    case SP_EFENCED:
        return 503;
    default:
        return 500;
    }
}

static const char *sp__slug_for(int status)
{
    switch (status) {
    case 400:
        return "validation";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not-found";
    case 409:
        return "conflict";
    case 413:
        return "too-large";
    case 503:
        return "unavailable";
    default:
        return "internal";
    }
}

void sp_http_reply_error(struct sp_http_req *req, int err, const struct sp_errbuf *eb)
{
    int status = sp_http_status_for(err);
    const char *detail = eb && eb->msg[0] ? eb->msg : sp_strerror(err);
    json_t *errors = NULL;
    if (eb && eb->field[0]) {
        errors = json_array();
        json_array_append_new(errors, json_pack("{s:o, s:o}", "field", sp__json_text(eb->field),
                                                "detail", sp__json_text(detail)));
    }
    if (status == 401)
        sp_http_add_header(req, "WWW-Authenticate", "Bearer");
    if (status == 503)
        sp_http_add_header(req, "Retry-After", "1");
    sp_http_reply_problem(req, status, sp__slug_for(status), detail, errors);
}
