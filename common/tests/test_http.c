/* Tests of the HTTP server core: routing, problem replies, caps, built-in routes. */
#define _GNU_SOURCE /* memmem */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "sp/http.h"
#include "sp/log.h"
#include "sp/metrics.h"
#include "sp_test_http.h"
#include "sp/banned.h"

struct fixture {
    struct event_base *base;
    struct sp_metrics *metrics;
    struct sp_http_server *srv;
    struct sp_http_server *srv_parse; /* the same routes, bodies parsed by test_parse */
    pthread_t thread;
    int port, port_parse;
    bool ready;
};

static void echo_handler(struct sp_http_req *req, void *ud)
{
    const char *tag = ud;
    const char *id = sp_http_req_param(req, "id");
    const char *q = sp_http_req_query(req, "q");
    const char *bearer = sp_http_req_bearer(req);
    sp_http_reply_json(req, 200,
                       json_pack("{s:s, s:s?, s:s?, s:s?, s:s}", "handler", tag, "id", id, "q", q,
                                 "bearer", bearer, "peer", sp_http_req_peer(req)));
}

static void json_handler(struct sp_http_req *req, void *ud)
{
    (void)ud;
    json_t *body = NULL;
    struct sp_errbuf eb;
    int rc = sp_http_req_json(req, &body, &eb);
    if (rc) {
        sp_http_reply_error(req, rc, &eb);
        return;
    }
    sp_http_reply_json(req, 201, body);
}

/* Replies from a later event-loop callback, as handlers waiting on something do. */
static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sp_http_reply(arg, 202, "text/plain", "later", 5);
}

static void async_handler(struct sp_http_req *req, void *ud)
{
    struct fixture *f = ud;
    struct timeval tv = {0, 20000};
    event_base_once(f->base, -1, EV_TIMEOUT, later_cb, req, &tv);
}

static bool ready_fn(void *ud, struct sp_buf *why)
{
    struct fixture *f = ud;
    if (!f->ready)
        assert_int_equal(sp_buf_adds(why, "log not caught up"), 0);
    return f->ready;
}

/* A request-body parser (sp_http_json_parse_fn): jansson, counting its calls, refusing
 * any body that holds "refuse". */
static int parse_calls;
static int test_parse(const void *buf, size_t len, json_t **out, struct sp_errbuf *eb)
{
    parse_calls++;
    *out = NULL;
    if (memmem(buf, len, "refuse", 6) != NULL)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "refused by the test parser");
    *out = json_loadb(buf, len, 0, NULL);
    return *out ? 0 : sp_err_set(eb, SP_ECORRUPT, NULL, "not JSON");
}

static void *loop_main(void *arg)
{
    struct fixture *f = arg;
    event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int setup(void **state)
{
    static char tag_a[] = "by-id", tag_b[] = "mine";
    struct fixture *f = calloc(1, sizeof(*f));
    struct sp_errbuf eb;
    evthread_use_pthreads();
    sp_log_setup(SP_LOG_WARN, "test_http");
    f->base = event_base_new();
    f->metrics = sp_metrics_new();
    f->ready = true;
    struct sp_http_opts opts = {.service = "test",
                                .host = "127.0.0.1",
                                .port = 0,
                                .max_body_bytes = 1024,
                                .max_header_bytes = 8192,
                                .timeout_s = 5,
                                .max_json_depth = 4,
                                .metrics = f->metrics,
                                .ready = ready_fn,
                                .ready_ud = f};
    assert_int_equal(sp_http_server_new(f->base, &opts, &f->srv, &eb), 0);
    f->port = sp_http_server_port(f->srv);
    assert_true(f->port > 0);
    sp_http_route(f->srv, SP_HTTP_GET | SP_HTTP_DELETE, "/recipes/{id}", echo_handler, tag_a);
    sp_http_route(f->srv, SP_HTTP_GET, "/recipes/mine", echo_handler, tag_b);
    sp_http_route(f->srv, SP_HTTP_POST, "/echo", json_handler, NULL);
    sp_http_route(f->srv, SP_HTTP_GET, "/async", async_handler, f);
    opts.json_parse = test_parse;
    opts.metrics = NULL;
    assert_int_equal(sp_http_server_new(f->base, &opts, &f->srv_parse, &eb), 0);
    f->port_parse = sp_http_server_port(f->srv_parse);
    sp_http_route(f->srv_parse, SP_HTTP_POST, "/echo", json_handler, NULL);
    assert_int_equal(pthread_create(&f->thread, NULL, loop_main, f), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    event_base_loopbreak(f->base);
    pthread_join(f->thread, NULL);
    sp_http_server_free(f->srv);
    sp_http_server_free(f->srv_parse);
    sp_metrics_free(f->metrics);
    event_base_free(f->base);
    free(f);
    libevent_global_shutdown();
    return 0;
}

static json_t *body_json(const struct sp_test_resp *resp)
{
    json_t *j = json_loads(resp->body, 0, NULL);
    assert_non_null(j);
    return j;
}

static void assert_problem(const struct sp_test_resp *resp, int status, const char *type)
{
    assert_int_equal(resp->status, status);
    assert_string_equal(sp_test_resp_header(resp, "Content-Type"), "application/problem+json");
    json_t *j = body_json(resp);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    assert_string_equal(json_string_value(json_object_get(j, "type")), type);
    assert_non_null(json_string_value(json_object_get(j, "title")));
    assert_non_null(json_string_value(json_object_get(j, "detail")));
    json_decref(j);
}

static void test_path_params_and_query(void **state)
{
    struct fixture *f = *state;
    struct sp_test_resp resp;
    const char *hdrs[] = {"Authorization: Bearer abc.def-ghi", "X-Request-Id: req-42", NULL};
    assert_int_equal(
        sp_test_http(f->port, "GET", "/recipes/r%20one?q=chicken+soup%21&x", hdrs, NULL, &resp),
        200);
    assert_string_equal(sp_test_resp_header(&resp, "content-type"), "application/json");
    assert_string_equal(sp_test_resp_header(&resp, "X-Request-Id"), "req-42");
    json_t *j = body_json(&resp);
    assert_string_equal(json_string_value(json_object_get(j, "handler")), "by-id");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "r one");
    assert_string_equal(json_string_value(json_object_get(j, "q")), "chicken soup!");
    assert_string_equal(json_string_value(json_object_get(j, "bearer")), "abc.def-ghi");
    assert_string_equal(json_string_value(json_object_get(j, "peer")), "127.0.0.1");
    json_decref(j);
    sp_test_resp_release(&resp);
}

/* Bearer tokens: RFC 6750 b64token characters only, anything else is no token. */
static void test_bearer_charset(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *header, *want; /* want NULL: no bearer */
    } cases[] = {
        {"Authorization: Bearer AZaz09-._~+/=", "AZaz09-._~+/="},
        {"Authorization: bearer   lower.case", "lower.case"},
        {"Authorization: Bearer abc$def", NULL},
        {"Authorization: Bearer abc,def", NULL},
        {"Authorization: Bearer abc\"def", NULL},
        {"Authorization: Bearer caf\xc3\xa9", NULL},
        {"Authorization: Basic dXNlcjpwYXNz", NULL},
        {"Authorization: Bearer ", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sp_test_resp resp;
        const char *hdrs[] = {cases[i].header, NULL};
        assert_int_equal(sp_test_http(f->port, "GET", "/recipes/1", hdrs, NULL, &resp), 200);
        json_t *j = body_json(&resp);
        json_t *bearer = json_object_get(j, "bearer");
        if (cases[i].want)
            assert_string_equal(json_string_value(bearer), cases[i].want);
        else
            assert_true(json_is_null(bearer));
        json_decref(j);
        sp_test_resp_release(&resp);
    }
}

static void test_literal_wins(void **state)
{
    struct fixture *f = *state;
    struct sp_test_resp resp;
    assert_int_equal(sp_test_http(f->port, "GET", "/recipes/mine", NULL, NULL, &resp), 200);
    json_t *j = body_json(&resp);
    assert_string_equal(json_string_value(json_object_get(j, "handler")), "mine");
    assert_true(json_is_null(json_object_get(j, "id")));
    assert_true(json_is_null(json_object_get(j, "bearer")));
    json_decref(j);
    assert_int_equal(strlen(sp_test_resp_header(&resp, "X-Request-Id")), 16);
    sp_test_resp_release(&resp);
}

static void test_not_found_and_method(void **state)
{
    struct fixture *f = *state;
    struct sp_test_resp resp;
    assert_int_equal(sp_test_http(f->port, "GET", "/nope/x", NULL, NULL, &resp), 404);
    assert_problem(&resp, 404, "https://stockpot.dev/problems/not-found");
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(f->port, "GET", "/recipes", NULL, NULL, &resp), 404);
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(f->port, "POST", "/recipes/7", NULL, "{}", &resp), 405);
    assert_problem(&resp, 405, "https://stockpot.dev/problems/method-not-allowed");
    assert_string_equal(sp_test_resp_header(&resp, "Allow"), "GET, HEAD, DELETE");
    sp_test_resp_release(&resp);
}

static void test_json_body(void **state)
{
    struct fixture *f = *state;
    struct sp_test_resp resp;
    assert_int_equal(sp_test_http(f->port, "POST", "/echo", NULL, "{\"a\":[1,{\"b\":2}]}", &resp),
                     201);
    assert_string_equal(resp.body, "{\"a\":[1,{\"b\":2}]}");
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(f->port, "POST", "/echo", NULL, "{\"a\":", &resp), 400);
    assert_problem(&resp, 400, "https://stockpot.dev/problems/validation");
    json_t *j = body_json(&resp);
    json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
    assert_string_equal(json_string_value(json_object_get(e0, "field")), "body");
    json_decref(j);
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(f->port, "POST", "/echo", NULL, "[1]", &resp), 400);
    sp_test_resp_release(&resp);
    /* depth cap is 4: four levels pass, five fail */
    assert_int_equal(sp_test_http(f->port, "POST", "/echo", NULL, "{\"a\":[[{}]]}", &resp), 201);
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(f->port, "POST", "/echo", NULL, "{\"a\":[[[[]]]]}", &resp), 400);
    sp_test_resp_release(&resp);
}

/* A server given opts.json_parse parses bodies with it, and says what it refused. */
static void test_json_parse_hook(void **state)
{
    struct fixture *f = *state;
    struct sp_test_resp resp;
    int before = parse_calls;
    assert_int_equal(
        sp_test_http(f->port_parse, "POST", "/echo", NULL, "{\"a\":[1,{\"b\":2}]}", &resp), 201);
    assert_string_equal(resp.body, "{\"a\":[1,{\"b\":2}]}");
    sp_test_resp_release(&resp);
    assert_int_equal(parse_calls, before + 1);
    assert_int_equal(sp_test_http(f->port_parse, "POST", "/echo", NULL, "{\"refuse\":1}", &resp),
                     400);
    assert_problem(&resp, 400, "https://stockpot.dev/problems/validation");
    assert_non_null(strstr(resp.body, "refused by the test parser"));
    assert_non_null(strstr(resp.body, "\"body\""));
    sp_test_resp_release(&resp);
    assert_int_equal(parse_calls, before + 2);
    /* the caps still apply after the hook: an array, and depth 5 of at most 4 */
    assert_int_equal(sp_test_http(f->port_parse, "POST", "/echo", NULL, "[1]", &resp), 400);
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(f->port_parse, "POST", "/echo", NULL, "{\"a\":[[[[]]]]}", &resp),
                     400);
    sp_test_resp_release(&resp);
    /* the server without the hook never calls it */
    assert_int_equal(sp_test_http(f->port, "POST", "/echo", NULL, "{\"refuse\":1}", &resp), 201);
    sp_test_resp_release(&resp);
    assert_int_equal(parse_calls, before + 4);
}

static void test_body_too_large(void **state)
{
    struct fixture *f = *state;
    struct sp_test_resp resp;
    size_t sizes[] = {1025, (size_t)64 * 1024};
    for (size_t i = 0; i < 2; i++) {
        char *big = malloc(sizes[i] + 1);
        memset(big, ' ', sizes[i]);
        big[0] = '{';
        big[sizes[i] - 1] = '}';
        big[sizes[i]] = '\0';
        assert_int_equal(sp_test_http(f->port, "POST", "/echo", NULL, big, &resp), 413);
        assert_problem(&resp, 413, "https://stockpot.dev/problems/too-large");
        sp_test_resp_release(&resp);
        free(big);
    }
}

static void test_async_reply(void **state)
{
    struct fixture *f = *state;
    struct sp_test_resp resp;
    assert_int_equal(sp_test_http(f->port, "GET", "/async", NULL, NULL, &resp), 202);
    assert_string_equal(resp.body, "later");
    sp_test_resp_release(&resp);
}

static void test_health_ready(void **state)
{
    struct fixture *f = *state;
    struct sp_test_resp resp;
    assert_int_equal(sp_test_http(f->port, "GET", "/healthz", NULL, NULL, &resp), 200);
    assert_string_equal(resp.body, "{\"status\":\"ok\"}");
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(f->port, "GET", "/readyz", NULL, NULL, &resp), 200);
    sp_test_resp_release(&resp);
    f->ready = false;
    assert_int_equal(sp_test_http(f->port, "GET", "/readyz", NULL, NULL, &resp), 503);
    assert_problem(&resp, 503, "https://stockpot.dev/problems/not-ready");
    assert_non_null(strstr(resp.body, "log not caught up"));
    sp_test_resp_release(&resp);
    f->ready = true;
}

static void test_metrics(void **state)
{
    struct fixture *f = *state;
    struct sp_test_resp resp;
    assert_int_equal(sp_test_http(f->port, "GET", "/healthz", NULL, NULL, &resp), 200);
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(f->port, "GET", "/metrics", NULL, NULL, &resp), 200);
    assert_string_equal(sp_test_resp_header(&resp, "Content-Type"),
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(resp.body, "# TYPE stockpot_http_requests_total counter\n"));
    assert_non_null(
        strstr(resp.body, "stockpot_http_requests_total{route=\"/healthz\",status=\"200\"} "));
    assert_non_null(strstr(resp.body, "stockpot_http_request_duration_seconds_bucket{route=\""
                                      "/healthz\",le=\"+Inf\"} "));
    sp_test_resp_release(&resp);
    assert_true(sp_metrics_value(f->metrics, "stockpot_http_requests_total",
                                 "route=\"unmatched\",status=\"404\"") >= 1);
}

/* Accepted connections have Nagle's algorithm off: a response's last partial segment is
 * not held for the client's delayed ACK (40 ms per keep-alive request). */
static void test_accepted_nodelay(void **state)
{
    struct fixture *f = *state;
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    char buf[512];
    int c = sp_test_connect(f->port), found = 0;

    assert_true(c >= 0);
    assert_int_equal(send(c, req, sizeof(req) - 1, 0), (ssize_t)(sizeof(req) - 1));
    assert_true(recv(c, buf, sizeof(buf), 0) > 0); /* answered: the server accepted it */
    /* the server's end of this connection is a socket of this process */
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in local, peer;
        socklen_t ll = sizeof(local), pl = sizeof(peer), ol = sizeof(int);
        int v = -1;
        if (fd == c || getsockname(fd, (struct sockaddr *)&local, &ll) != 0 ||
            local.sin_family != AF_INET || ntohs(local.sin_port) != f->port ||
            getpeername(fd, (struct sockaddr *)&peer, &pl) != 0)
            continue;
        assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &ol), 0);
        assert_int_not_equal(v, 0);
        found++;
    }
    assert_int_equal(found, 1);
    close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_params_and_query), cmocka_unit_test(test_literal_wins),
        cmocka_unit_test(test_not_found_and_method),  cmocka_unit_test(test_json_body),
        cmocka_unit_test(test_bearer_charset),        cmocka_unit_test(test_json_parse_hook),
        cmocka_unit_test(test_body_too_large),        cmocka_unit_test(test_async_reply),
        cmocka_unit_test(test_health_ready),          cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_accepted_nodelay),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
