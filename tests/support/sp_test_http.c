/* Blocking HTTP/1.1 test client: one request per connection to 127.0.0.1. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sp_test_http.h"
#include "sp/banned.h"

struct sp__raw {
    char *data;
    size_t len, cap;
};

static void sp__raw_add(struct sp__raw *r, const void *p, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        r->data = realloc(r->data, cap);
        if (!r->data)
            abort();
        r->cap = cap;
    }
    memcpy(r->data + r->len, p, n);
    r->len += n;
    r->data[r->len] = '\0';
}

int sp_test_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

static int sp__send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sp__has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; headers && headers[i]; i++)
        if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
            return 1;
    return 0;
}

static void sp__build_request(struct sp__raw *req,
                              int port,
                              const char *method,
                              const char *path,
                              const char *const *headers,
                              int has_body,
                              size_t body_len)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", method, path,
                     port);
    sp__raw_add(req, line, (size_t)n);
    sp__raw_add(req, "Connection: close\r\n", 19);
    for (size_t i = 0; headers && headers[i]; i++) {
        sp__raw_add(req, headers[i], strlen(headers[i]));
        sp__raw_add(req, "\r\n", 2);
    }
    if (has_body) {
        n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n", body_len);
        sp__raw_add(req, line, (size_t)n);
        if (!sp__has_header(headers, "Content-Type"))
            sp__raw_add(req, "Content-Type: application/json\r\n", 32);
    }
    sp__raw_add(req, "\r\n", 2);
}

/* Read until the peer closes (Connection: close) or a read error/timeout. */
static int sp__read_all(int fd, struct sp__raw *in)
{
    char chunk[16384];
    for (;;) {
        ssize_t r = recv(fd, chunk, sizeof(chunk), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return in->len ? 0 : -errno; /* e.g. reset after a full response */
        if (r == 0)
            return 0;
        sp__raw_add(in, chunk, (size_t)r);
    }
}

static char *sp__trimdup(const char *s, size_t n)
{
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    char *out = malloc(n + 1);
    if (!out)
        abort();
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* Parse the status line and headers in [p, end); @return 0 or -1. */
static int sp__parse_head(const char *p, const char *end, struct sp_test_resp *resp)
{
    const char *eol = strstr(p, "\r\n");
    if (!eol || eol > end || strncmp(p, "HTTP/1.", 7) != 0 || eol - p < 12)
        return -1;
    resp->status = (int)strtol(p + 9, NULL, 10);
    for (p = eol + 2; p < end; p = eol + 2) {
        eol = strstr(p, "\r\n");
        if (!eol || eol > end)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon)
            return -1;
        resp->headers = realloc(resp->headers, (resp->nheaders + 1) * sizeof(*resp->headers));
        if (!resp->headers)
            abort();
        resp->headers[resp->nheaders].name = sp__trimdup(p, (size_t)(colon - p));
        resp->headers[resp->nheaders].value = sp__trimdup(colon + 1, (size_t)(eol - colon - 1));
        resp->nheaders++;
    }
    return resp->status > 0 ? 0 : -1;
}

/* Decode a chunked body (RFC 9112 §7.1) from [p, end) into @p out; @return 0 or -1. */
static int sp__dechunk(const char *p, const char *end, struct sp__raw *out)
{
    for (;;) {
        char *after;
        unsigned long size = strtoul(p, &after, 16);
        const char *eol = strstr(after, "\r\n");
        if (after == p || !eol || eol + 2 > end)
            return -1;
        p = eol + 2;
        if (size == 0)
            return 0;
        if ((size_t)(end - p) < size + 2)
            return -1;
        sp__raw_add(out, p, size);
        p += size + 2;
    }
}

static int sp__parse_response(struct sp__raw *in, struct sp_test_resp *resp)
{
    const char *hend = strstr(in->data, "\r\n\r\n");
    if (!hend)
        return -1;
    if (sp__parse_head(in->data, hend + 2, resp))
        return -1;
    const char *body = hend + 4, *end = in->data + in->len;
    struct sp__raw out = {0};
    sp__raw_add(&out, "", 0);
    const char *te = sp_test_resp_header(resp, "Transfer-Encoding");
    const char *cl = sp_test_resp_header(resp, "Content-Length");
    if (te && strcasecmp(te, "chunked") == 0) {
        if (sp__dechunk(body, end, &out)) {
            free(out.data);
            return -1;
        }
    } else {
        size_t n = (size_t)(end - body);
        if (cl && strtoull(cl, NULL, 10) < n)
            n = strtoull(cl, NULL, 10);
        sp__raw_add(&out, body, n);
    }
    resp->body = out.data;
    resp->body_len = out.len;
    return 0;
}

int sp_test_http_n(int port,
                   const char *method,
                   const char *path,
                   const char *const *headers,
                   const void *body,
                   size_t body_len,
                   struct sp_test_resp *resp)
{
    struct sp__raw req = {0}, in = {0};
    memset(resp, 0, sizeof(*resp));
    int fd = sp_test_connect(port);
    if (fd < 0)
        return fd;
    sp__build_request(&req, port, method, path, headers, body != NULL, body_len);
    if (body)
        sp__raw_add(&req, body, body_len);
    int rc = sp__send_all(fd, req.data, req.len);
    /* even if sending failed (server closed early, e.g. 413), read what it answered */
    int rrc = sp__read_all(fd, &in);
    close(fd);
    if (in.len == 0)
        rc = rc ? rc : (rrc ? rrc : -1);
    else
        rc = sp__parse_response(&in, resp) ? -1 : resp->status;
    free(req.data);
    free(in.data);
    return rc;
}

int sp_test_http(int port,
                 const char *method,
                 const char *path,
                 const char *const *headers,
                 const char *body,
                 struct sp_test_resp *resp)
{
    return sp_test_http_n(port, method, path, headers, body, body ? strlen(body) : 0, resp);
}

const char *sp_test_resp_header(const struct sp_test_resp *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

void sp_test_resp_release(struct sp_test_resp *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->headers);
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}
