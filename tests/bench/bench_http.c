/* HTTP benchmark over N concurrent keep-alive connections (libevent evhttp client): POST
 * /recipes with bodies from a recipes JSONL file, or GET round-robin over the request paths
 * of a file; prints requests (commands) per second and latency percentiles. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "bench_util.h"
#include "sp/alloc.h"
#include "sp/time.h"
#include "sp/banned.h"

struct bench_opts {
    const char *host;
    int port;
    const char *path;      /* POST request path, e.g. /recipes */
    const char *data;      /* JSONL recipes file (POST mode) */
    const char *get_paths; /* file of GET request paths, one a line; NULL = POST mode */
    const char *token;     /* bearer access token; NULL = none */
    long connections;      /* concurrent keep-alive connections */
    long requests;         /* total requests to send */
    long duration_s;       /* hard cap on the run, seconds */
    long timeout_s;        /* per-request timeout, seconds */
};

struct bench {
    struct bench_opts opt;
    struct event_base *base;
    /* POST mode: request bodies, each an owned char * (compact JSON); GET mode: request
     * paths, each an owned char * without its newline */
    struct bench_records reqs;
    long sent;        /* requests issued */
    long done;        /* responses (or failures) received */
    long ok;          /* 2xx */
    long failed;      /* no HTTP response (connection error, timeout) */
    long by_class[6]; /* responses by status class 1xx..5xx */
    int64_t *lat_us;  /* latency of every answered request, done entries */
    int64_t start_us; /* monotonic start of the run */
    int64_t deadline_us;
    char last_position[128]; /* Stockpot-Position of the last 2xx answer */
};

struct bench_conn {
    struct bench *b;
    struct evhttp_connection *evcon;
    int64_t sent_us; /* monotonic time the in-flight request was sent */
};

static void bench_send(struct bench_conn *c);

/* bench_record_fn: the request path on one line of a --get-paths file, without its line
 * end, an owned string (free with free()); NULL for a blank line. */
static void *bench_path_of(const char *line)
{
    size_t n = strcspn(line, "\r\n");
    char *out;
    if (n == 0)
        return NULL;
    out = sp_xmalloc(n + 1);
    memcpy(out, line, n);
    out[n] = '\0';
    return out;
}

/* 0 if every path can go on a request line as it is: starts with '/', no space or control
 * character (the file holds paths already percent-encoded); else -1 after saying which. */
static int bench_check_paths(const struct bench_records *paths, const char *file)
{
    for (size_t i = 0; i < paths->n; i++) {
        const unsigned char *p = paths->items[i];
        int bad = p[0] != '/';
        for (; *p != '\0' && !bad; p++)
            bad = *p <= ' ' || *p == 0x7f;
        if (bad) {
            fprintf(stderr,
                    "bench_http: bad request path \"%s\" in \"%s\" (must start with /, "
                    "percent-encoded, no spaces)\n",
                    (const char *)paths->items[i], file);
            return -1;
        }
    }
    return 0;
}

/* bench_record_fn: the create-recipe body (only the API's fields) of one JSONL record, an
 * owned string (free with free()), or NULL if the line is not a JSON object. */
static void *bench_body_of(const char *line)
{
    static const char *const fields[] = {"title", "description", "ingredients", "steps", "tags"};
    json_error_t jerr;
    json_t *rec = json_loads(line, 0, &jerr);
    json_t *body = NULL;
    char *out = NULL;
    if (!json_is_object(rec))
        goto out_free_rec;
    body = json_object();
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *v = json_object_get(rec, fields[i]);
        if (v == NULL || (json_is_string(v) && json_string_length(v) == 0))
            continue;
        json_object_set(body, fields[i], v);
    }
    out = json_dumps(body, JSON_COMPACT);
    json_decref(body);
out_free_rec:
    json_decref(rec);
    return out;
}

static void bench_record(struct bench *b, struct evhttp_request *req, int64_t lat_us)
{
    int code = req != NULL ? evhttp_request_get_response_code(req) : 0;
    b->done++;
    if (code <= 0 || code >= 600) {
        b->failed++;
        return;
    }
    b->lat_us[b->done - b->failed - 1] = lat_us;
    b->by_class[code / 100]++;
    if (code / 100 == 2) {
        const char *pos =
            evhttp_find_header(evhttp_request_get_input_headers(req), "Stockpot-Position");
        b->ok++;
        if (pos != NULL)
            snprintf(b->last_position, sizeof(b->last_position), "%s", pos);
    }
}

static void bench_on_response(struct evhttp_request *req, void *arg)
{
    struct bench_conn *c = arg;
    struct bench *b = c->b;
    int64_t now_us = sp_time_mono_us();
    bench_record(b, req, now_us - c->sent_us);
    if (b->sent < b->opt.requests && now_us < b->deadline_us) {
        bench_send(c);
        return;
    }
    if (b->done == b->sent)
        event_base_loopbreak(b->base);
}

static void bench_send(struct bench_conn *c)
{
    struct bench *b = c->b;
    struct evhttp_request *req = evhttp_request_new(bench_on_response, c);
    const char *item = b->reqs.items[(size_t)b->sent % b->reqs.n];
    struct evkeyvalq *hdrs = evhttp_request_get_output_headers(req);
    int is_get = b->opt.get_paths != NULL;
    char auth[4096];
    evhttp_add_header(hdrs, "Host", b->opt.host);
    if (b->opt.token != NULL) {
        snprintf(auth, sizeof(auth), "Bearer %s", b->opt.token);
        evhttp_add_header(hdrs, "Authorization", auth);
    }
    if (!is_get) {
        evhttp_add_header(hdrs, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), item, strlen(item));
    }
    b->sent++;
    c->sent_us = sp_time_mono_us();
    if (evhttp_make_request(c->evcon, req, is_get ? EVHTTP_REQ_GET : EVHTTP_REQ_POST,
                            is_get ? item : b->opt.path) != 0) {
        /* the request was freed by libevent; count it as failed */
        bench_record(b, NULL, 0);
        if (b->done == b->sent && b->sent >= b->opt.requests)
            event_base_loopbreak(b->base);
    }
}

static void bench_report(struct bench *b, int64_t elapsed_us)
{
    long answered = b->done - b->failed;
    double secs = (double)elapsed_us / 1e6;
    struct bench_latency lat;
    double per_s = secs > 0 ? (double)b->ok / secs : 0.0;
    bench_latency_summarize(b->lat_us, answered, &lat);
    if (b->opt.get_paths != NULL)
        printf("bench_http: GET round-robin over %zu paths from %s on %s:%d, %ld keep-alive "
               "connections\n",
               b->reqs.n, b->opt.get_paths, b->opt.host, b->opt.port, b->opt.connections);
    else
        printf("bench_http: POST %s on %s:%d, %ld keep-alive connections, %zu distinct bodies "
               "from %s\n",
               b->opt.path, b->opt.host, b->opt.port, b->opt.connections, b->reqs.n, b->opt.data);
    printf("requests:     %ld sent, %ld answered (2xx %ld, 4xx %ld, 5xx %ld), %ld failed\n",
           b->sent, answered, b->ok, b->by_class[4], b->by_class[5], b->failed);
    printf("elapsed:      %.3f s\n", secs);
    if (b->opt.get_paths != NULL)
        printf("requests/s:   %.1f (2xx answers per second)\n", per_s);
    else
        printf("commands/s:   %.1f (2xx answers per second)\n", per_s);
    printf("latency ms:   p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", lat.p50_ms, lat.p90_ms,
           lat.p99_ms, lat.max_ms);
    if (b->opt.get_paths == NULL)
        printf("last_position: %s\n", b->last_position[0] ? b->last_position : "-");
}

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: bench_http [options]\n"
            "  POST recipe bodies from a JSONL file to the command API over concurrent\n"
            "  keep-alive connections; prints commands/s and p50/p90/p99/max latency.\n"
            "  With --get-paths FILE: GET the paths of FILE round-robin instead; prints\n"
            "  requests/s (2xx answers) and the same latencies.\n"
            "  --host H          default 127.0.0.1 (loopback only)\n"
            "  --port P          default 8080\n"
            "  --path P          POST path, default /recipes\n"
            "  --data FILE       POST bodies: recipes JSONL, default deploy/data/sample.jsonl\n"
            "  --get-paths FILE  GET mode: one request path a line, percent-encoded, e.g.\n"
            "                    /search/recipes?q=banana%%20bread&limit=10 (blank lines\n"
            "                    skipped); --path and --data are then unused\n"
            "  --token T         bearer access token (default $SP_BENCH_TOKEN)\n"
            "  --connections N   concurrent connections, default 16\n"
            "  --requests N      total requests, default 5000\n"
            "  --duration-s S    stop sending after S seconds, default 120\n"
            "  --timeout-s S     per-request timeout, default 30\n");
}

/* Numeric option value in [@p min, @p max]; exits with status 2 if it is not one. */
static long bench_num(const char *s, long min, long max)
{
    long v;
    if (bench_parse_long(s, min, max, &v) != 0) {
        fprintf(stderr, "bench_http: bad number \"%s\" (%ld..%ld)\n", s, min, max);
        exit(2);
    }
    return v;
}

static int bench_parse(struct bench_opts *o, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"host", 1, NULL, 'H'},      {"port", 1, NULL, 'p'},       {"path", 1, NULL, 'P'},
        {"data", 1, NULL, 'd'},      {"token", 1, NULL, 't'},      {"connections", 1, NULL, 'c'},
        {"requests", 1, NULL, 'n'},  {"duration-s", 1, NULL, 'D'}, {"timeout-s", 1, NULL, 'T'},
        {"get-paths", 1, NULL, 'g'}, {"help", 0, NULL, 'h'},       {NULL, 0, NULL, 0}};
    int ch;
    *o = (struct bench_opts){.host = "127.0.0.1",
                             .port = 8080,
                             .path = "/recipes",
                             .data = "deploy/data/sample.jsonl",
                             .token = getenv("SP_BENCH_TOKEN"),
                             .connections = 16,
                             .requests = 5000,
                             .duration_s = 120,
                             .timeout_s = 30};
    while ((ch = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (ch) {
        case 'H':
            o->host = optarg;
            break;
        case 'p':
            o->port = (int)bench_num(optarg, 1, 65535);
            break;
        case 'P':
            o->path = optarg;
            break;
        case 'd':
            o->data = optarg;
            break;
        case 'g':
            o->get_paths = optarg;
            break;
        case 't':
            o->token = optarg;
            break;
        case 'c':
            o->connections = bench_num(optarg, 1, 1024);
            break;
        case 'n':
            o->requests = bench_num(optarg, 1, 10000000);
            break;
        case 'D':
            o->duration_s = bench_num(optarg, 1, 3600);
            break;
        case 'T':
            o->timeout_s = bench_num(optarg, 1, 600);
            break;
        case 'h':
            bench_usage(stdout);
            exit(0);
        default:
            bench_usage(stderr);
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

static int bench_run(struct bench *b)
{
    long n = b->opt.connections < b->opt.requests ? b->opt.connections : b->opt.requests;
    struct bench_conn *conns = sp_xcalloc((size_t)n, sizeof(*conns));
    int64_t elapsed_us;
    b->lat_us = sp_xcalloc((size_t)b->opt.requests, sizeof(int64_t));
    b->start_us = sp_time_mono_us();
    b->deadline_us = b->start_us + b->opt.duration_s * 1000000;
    for (long i = 0; i < n; i++) {
        conns[i].b = b;
        conns[i].evcon =
            evhttp_connection_base_new(b->base, NULL, b->opt.host, (unsigned short)b->opt.port);
        evhttp_connection_set_timeout(conns[i].evcon, (int)b->opt.timeout_s);
    }
    for (long i = 0; i < n; i++)
        bench_send(&conns[i]);
    event_base_dispatch(b->base);
    elapsed_us = sp_time_mono_us() - b->start_us;
    bench_report(b, elapsed_us);
    for (long i = 0; i < n; i++)
        evhttp_connection_free(conns[i].evcon);
    free(conns);
    return b->failed == 0 && b->ok > 0 ? 0 : 1;
}

/* Loads the request bodies (POST) or paths (GET); 0, or -1 after saying why. */
static int bench_load(struct bench *b)
{
    const char *file = b->opt.get_paths != NULL ? b->opt.get_paths : b->opt.data;
    int rc = b->opt.get_paths != NULL ? bench_records_load(file, bench_path_of, &b->reqs)
                                      : bench_records_load(file, bench_body_of, &b->reqs);
    if (rc != 0) {
        fprintf(stderr, "bench_http: could not load %s \"%s\": %s\n",
                b->opt.get_paths != NULL ? "request paths" : "recipes", file, strerror(-rc));
        return -1;
    }
    if (b->opt.get_paths != NULL && bench_check_paths(&b->reqs, file) != 0) {
        bench_records_release(&b->reqs, free);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct bench b = {0};
    int rc;
    if (bench_parse(&b.opt, argc, argv) != 0)
        return 2;
    if (bench_load(&b) != 0)
        return 2;
    b.base = event_base_new();
    if (b.base == NULL) {
        fprintf(stderr, "bench_http: could not create event base\n");
        return 2;
    }
    rc = bench_run(&b);
    event_base_free(b.base);
    bench_records_release(&b.reqs, free);
    free(b.lat_us);
    return rc;
}
