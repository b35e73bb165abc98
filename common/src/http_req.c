/* HTTP request accessors: parameters, query, headers, body, bearer token, JSON body. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "sp/alloc.h"
#include "sp/http.h"
#include "http_internal.h"
#include "sp/banned.h"

void sp__kv_free(struct sp__kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

const char *sp__method_name(struct evhttp_request *ev)
{
    switch (evhttp_request_get_command(ev)) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

const char *sp__reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {409, "Conflict"},
        {410, "Gone"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Content"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
}

static int sp__hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *sp__pct_decode(const char *s, size_t n, int plus)
{
    char *out = sp_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? sp__hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? sp__hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (s[i] == '+' && plus) {
            out[o++] = ' ';
        } else if (s[i] == '\0') {
            free(out);
            return NULL;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

void sp__query_parse(const char *q, struct sp__kv **out, size_t *n)
{
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    while (q && *q) {
        size_t len = strcspn(q, "&;");
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        char *name = sp__pct_decode(q, klen, 1);
        char *value = eq ? sp__pct_decode(eq + 1, len - klen - 1, 1) : sp_xstrdup("");
        if (name && value && name[0]) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 8;
                *out = sp_xrealloc(*out, cap * sizeof(**out));
            }
            (*out)[(*n)++] = (struct sp__kv){name, value};
        } else {
            free(name);
            free(value);
        }
        q += len;
        if (*q)
            q++;
    }
}

static const char *sp__kv_get(const struct sp__kv *kv, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].name, name) == 0)
            return kv[i].value;
    return NULL;
}

enum sp_http_method sp_http_req_method(const struct sp_http_req *req)
{
    return req->method;
}

const char *sp_http_req_param(const struct sp_http_req *req, const char *name)
{
    return sp__kv_get(req->params, req->nparams, name);
}

const char *sp_http_req_query(const struct sp_http_req *req, const char *name)
{
    return sp__kv_get(req->query, req->nquery, name);
}

size_t sp_http_req_query_count(const struct sp_http_req *req)
{
    return req->nquery;
}

void sp_http_req_query_at(const struct sp_http_req *req,
                          size_t i,
                          const char **name,
                          const char **value)
{
    SP_ASSERT(i < req->nquery);
    *name = req->query[i].name;
    *value = req->query[i].value;
}

const char *sp_http_req_header(const struct sp_http_req *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

const char *sp_http_req_id(const struct sp_http_req *req)
{
    return req->id;
}

const char *sp_http_req_peer(const struct sp_http_req *req)
{
    return req->peer;
}

const void *sp_http_req_body(struct sp_http_req *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req->ev);
    *len = evbuffer_get_length(in);
    if (*len == 0)
        return "";
    return evbuffer_pullup(in, -1);
}

/* Is @p c one of RFC 6750 §2.1's b64token characters: ALPHA DIGIT - . _ ~ + / = ? */
static bool sp__b64token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

const char *sp_http_req_bearer(const struct sp_http_req *req)
{
    const char *h = sp_http_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    if (*h == '\0')
        return NULL;
    /* RFC 6750 §2.1 b64token characters only (a table: this runs for every request) */
    for (const unsigned char *p = (const unsigned char *)h; *p; p++)
        if (!sp__b64token_char(*p))
            return NULL;
    return h;
}

/* Nesting depth of @p j: scalars 0, an empty or flat object/array 1. */
static size_t sp__json_depth(json_t *j, size_t limit)
{
    size_t max = 0, d;
    const char *key;
    json_t *v;
    size_t i;
    if (limit == 0)
        return 1;
    if (json_is_object(j)) {
        json_object_foreach(j, key, v) {
            d = sp__json_depth(v, limit - 1);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            d = sp__json_depth(v, limit - 1);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    return 0;
}

int sp_http_req_json(struct sp_http_req *req, json_t **out, struct sp_errbuf *eb)
{
    size_t len;
    const void *body = sp_http_req_body(req, &len);
    json_error_t jerr;
    *out = NULL;
    if (len > req->srv->max_body_bytes)
        return sp_err_set(eb, SP_ETOOBIG, "body", "request body is larger than %zu bytes",
                          req->srv->max_body_bytes);
    if (len == 0)
        return sp_err_set(eb, SP_EINVAL, "body", "request body is empty, expected a JSON object");
    json_t *j = NULL;
    if (req->srv->json_parse) {
        struct sp_errbuf peb = {{0}, {0}};
        if (req->srv->json_parse(body, len, &j, &peb) != 0 || j == NULL) {
            json_decref(j);
            return sp_err_set(eb, SP_EINVAL, "body", "%s", peb.msg[0] ? peb.msg : "invalid JSON");
        }
    } else if ((j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        return sp_err_set(eb, SP_EINVAL, "body", "invalid JSON at line %d column %d: %s", jerr.line,
                          jerr.column, jerr.text);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return sp_err_set(eb, SP_EINVAL, "body", "request body must be a JSON object");
    }
    size_t max = req->srv->max_json_depth;
    if (sp__json_depth(j, max + 1) > max) {
        json_decref(j);
        return sp_err_set(eb, SP_EINVAL, "body", "JSON nesting is deeper than %zu levels", max);
    }
    *out = j;
    return 0;
}
