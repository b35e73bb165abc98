/*
 * Tests of WebSockets (sp/ws.h) against a client that is not ours: Debian's
 * python3-websockets, driven by tests/ws_client.py (one scenario per run), plus raw HTTP
 * for the handshake itself. The /ws route echoes text messages and obeys a few commands;
 * each test checks the client's verdict and what the server's callbacks saw.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "sp/http.h"
#include "sp/log.h"
#include "sp/ws.h"
#include "sp_test_http.h"
#include "sp/banned.h"

extern char **environ;

struct fixture {
    struct event_base *base;
    struct sp_http_server *srv;
    pthread_t thread;
    int port;
    atomic_int open;      /* accepted and not yet closed */
    atomic_int closed;    /* on_close calls */
    atomic_int last_code; /* code of the last on_close */
    atomic_int texts;     /* on_text calls */
    atomic_int flood_rc;  /* what sp_ws_send_text returned when "flood" stopped */
};

static struct fixture fx;

/* ---- the server side ---- */

static void on_text(struct sp_ws *ws, const char *data, size_t len, void *ud)
{
    struct fixture *f = ud;
    int rc = 0;

    atomic_fetch_add(&f->texts, 1);
    if (len > 6 && len < 16 && memcmp(data, "close:", 6) == 0) {
        char code[16];

        snprintf(code, sizeof(code), "%.*s", (int)(len - 6), data + 6); /* data has no NUL */
        sp_ws_close(ws, (int)strtol(code, NULL, 10), "bye");
    } else if (len > 6 && len < 16 && memcmp(data, "flood:", 6) == 0) {
        char msg[1000], count[16];
        long n;

        snprintf(count, sizeof(count), "%.*s", (int)(len - 6), data + 6);
        n = strtol(count, NULL, 10);
        memset(msg, 'f', sizeof(msg));
        for (long i = 0; i < n && rc == 0; i++)
            rc = sp_ws_send_text(ws, msg, sizeof(msg));
        atomic_store(&f->flood_rc, rc);
        assert_int_equal(sp_ws_send_text(ws, "late", 4), SP_ESTATE); /* closing now */
    } else if (len == 4 && memcmp(data, "peer", 4) == 0) {
        rc = sp_ws_send_text(ws, sp_ws_peer(ws), strlen(sp_ws_peer(ws)));
    } else if (len == 8 && memcmp(data, "bad-utf8", 8) == 0) {
        assert_int_equal(sp_ws_send_text(ws, "\xc3\x28", 2), SP_EINVAL);
        rc = sp_ws_send_text(ws, "einval", 6);
    } else {
        rc = sp_ws_send_text(ws, data, len);
        assert_true(sp_ws_pending_bytes(ws) >= len || rc != 0);
    }
    assert_int_equal(rc == SP_ETOOBIG ? 0 : rc, 0);
}

static void on_close(struct sp_ws *ws, int code, void *ud)
{
    struct fixture *f = ud;

    assert_non_null(ws);
    atomic_store(&f->last_code, code);
    atomic_fetch_sub(&f->open, 1);
    atomic_fetch_add(&f->closed, 1);
}

static size_t query_size(struct sp_http_req *req, const char *name)
{
    const char *v = sp_http_req_query(req, name);

    return v != NULL ? (size_t)strtoull(v, NULL, 10) : 0;
}

/* Accept with the limits of the query: max, ping_ms, pong_ms, pending; proto picks the
 * subprotocol if the client offers it. */
static void accept_ws(struct sp_http_req *req, struct fixture *f)
{
    struct sp_ws_opts opts = {
        .max_message = query_size(req, "max"),
        .ping_interval_ms = (int)query_size(req, "ping_ms"),
        .pong_timeout_ms = (int)query_size(req, "pong_ms"),
        .max_pending = query_size(req, "pending"),
    };
    const struct sp_ws_cbs cbs = {on_text, on_close};
    const char *want = sp_http_req_query(req, "proto");
    const char *offers[8], *proto = NULL;
    char scratch[256];
    size_t n = sp_ws_protocols(req, offers, 8, scratch, sizeof(scratch));

    for (size_t i = 0; i < n && want != NULL; i++)
        if (strcmp(offers[i], want) == 0)
            proto = offers[i];
    atomic_fetch_add(&f->open, 1);
    assert_non_null(sp_ws_accept(req, proto, &opts, &cbs, f));
}

struct delayed {
    struct sp_http_req *req;
    struct fixture *f;
};

static void accept_later(evutil_socket_t fd, short what, void *arg)
{
    struct delayed *d = arg;

    (void)fd;
    (void)what;
    accept_ws(d->req, d->f);
    free(d);
}

static void ws_route(struct sp_http_req *req, void *ud)
{
    struct fixture *f = ud;
    size_t delay_ms = query_size(req, "delay_ms");

    if (sp_ws_check(req) != 0)
        return;
    if (delay_ms > 0) {
        struct delayed *d = malloc(sizeof(*d));
        struct timeval tv = {0, (suseconds_t)delay_ms * 1000};

        assert_non_null(d);
        *d = (struct delayed){req, f};
        assert_int_equal(event_base_once(f->base, -1, EV_TIMEOUT, accept_later, d, &tv), 0);
        return;
    }
    accept_ws(req, f);
}

/* GET /offers: the subprotocols offered, as a JSON array (scratch of ?scratch bytes). */
static void offers_route(struct sp_http_req *req, void *ud)
{
    const char *offers[4];
    char scratch[64];
    size_t len = query_size(req, "scratch");
    size_t n = sp_ws_protocols(req, offers, 4, scratch, len ? len : sizeof(scratch));
    json_t *list = json_array();

    (void)ud;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_string(offers[i]));
    sp_http_reply_json(req, 200, list);
}

/* ---- fixture ---- */

static void *loop_thread(void *arg)
{
    event_base_loop(arg, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int setup(void **state)
{
    struct sp_http_opts opts = {.service = "test", .host = "127.0.0.1", .timeout_s = 30};
    struct sp_errbuf eb = {{0}, {0}};

    (void)state;
    memset(&fx, 0, sizeof(fx));
    fx.base = event_base_new();
    assert_int_equal(sp_http_server_new(fx.base, &opts, &fx.srv, &eb), 0);
    sp_http_route(fx.srv, SP_HTTP_GET | SP_HTTP_POST, "/ws", ws_route, &fx);
    sp_http_route(fx.srv, SP_HTTP_GET, "/offers", offers_route, &fx);
    fx.port = sp_http_server_port(fx.srv);
    assert_int_equal(pthread_create(&fx.thread, NULL, loop_thread, fx.base), 0);
    return 0;
}

static void stop_loop(void)
{
    event_base_loopbreak(fx.base);
    assert_int_equal(pthread_join(fx.thread, NULL), 0);
    fx.thread = 0;
}

static int teardown(void **state)
{
    (void)state;
    if (fx.thread != 0)
        stop_loop();
    sp_http_server_free(fx.srv);
    event_base_free(fx.base);
    assert_int_equal(atomic_load(&fx.open), 0); /* every accepted WebSocket was closed */
    return 0;
}

/* ---- helpers ---- */

static pid_t client_start(const char *scenario)
{
    char python[] = SP_WS_PYTHON, client[] = SP_WS_CLIENT, port[16], name[32];
    char *argv[] = {python, client, port, name, NULL};
    pid_t pid;

    snprintf(port, sizeof(port), "%d", fx.port);
    snprintf(name, sizeof(name), "%s", scenario);
    assert_int_equal(posix_spawn(&pid, SP_WS_PYTHON, NULL, NULL, argv, environ), 0);
    return pid;
}

/* Wait up to 30 s for the client; its exit status (0 = all its checks held). */
static int client_wait(pid_t pid)
{
    int status = 0;

    for (int i = 0; i < 3000; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        assert_true(r >= 0);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("ws_client.py did not finish in 30 s");
    return -1;
}

static void run_client(const char *scenario)
{
    int rc = client_wait(client_start(scenario));

    if (rc != 0)
        fail_msg("ws_client.py %s failed (exit %d)", scenario, rc);
}

/* Wait up to 5 s for @p want on_close calls in all; the code of the last must be @p code. */
static void wait_closed(int want, int code)
{
    for (int i = 0; i < 500 && atomic_load(&fx.closed) < want; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&fx.closed), want);
    assert_int_equal(atomic_load(&fx.last_code), code);
}

/* ---- tests through python3-websockets ---- */

static void test_echo(void **state)
{
    (void)state;
    run_client("echo");
    wait_closed(1, 1000);
    assert_int_equal(atomic_load(&fx.texts), 7);
}

static void test_fragments(void **state)
{
    (void)state;
    run_client("fragments");
    wait_closed(2, 1006); /* the raw client leaves without a Close */
    assert_int_equal(atomic_load(&fx.texts), 2);
}

static void test_ping(void **state)
{
    (void)state;
    run_client("ping");
    wait_closed(1, 1006);
    run_client("pong-keeps-alive");
    wait_closed(2, 1000);
}

static void test_ping_timeout(void **state)
{
    (void)state;
    run_client("no-pong");
    wait_closed(1, 1011);
}

static void test_subprotocol(void **state)
{
    (void)state;
    run_client("subprotocol");
    wait_closed(2, 1000);
}

static void test_close_codes(void **state)
{
    (void)state;
    run_client("close-code");
    wait_closed(1, 4000); /* the client's */
    run_client("server-close");
    wait_closed(2, 4001); /* ours */
    run_client("close-empty");
    wait_closed(3, 1005);
}

static void test_oversize(void **state)
{
    (void)state;
    run_client("oversize");
    wait_closed(1, 1009);
    assert_int_equal(atomic_load(&fx.texts), 1); /* the message at the limit only */
}

static void test_binary(void **state)
{
    (void)state;
    run_client("binary");
    wait_closed(1, 1003);
    assert_int_equal(atomic_load(&fx.texts), 0);
}

static void test_unmasked(void **state)
{
    (void)state;
    run_client("unmasked");
    wait_closed(1, 1002);
    assert_int_equal(atomic_load(&fx.texts), 0);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    run_client("invalid-utf8");
    wait_closed(2, 1007);
    assert_int_equal(atomic_load(&fx.texts), 0);
}

static void test_early_frames(void **state)
{
    (void)state;
    run_client("early");
    wait_closed(2, 1006);
    assert_int_equal(atomic_load(&fx.texts), 2);
}

static void test_peer_vanishes(void **state)
{
    (void)state;
    run_client("vanish");
    wait_closed(1, 1006);
    run_client("reset");
    wait_closed(2, 1006);
}

static void test_slow_client(void **state)
{
    (void)state;
    run_client("slow");
    wait_closed(1, 1008);
    assert_int_equal(atomic_load(&fx.flood_rc), SP_ETOOBIG);
}

static void test_server_free_closes(void **state)
{
    pid_t pid = client_start("hold");

    (void)state;
    for (int i = 0; i < 1000 && atomic_load(&fx.texts) < 2; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&fx.texts), 2);
    assert_int_equal(atomic_load(&fx.open), 2);
    stop_loop();
    sp_http_server_free(fx.srv);
    fx.srv = NULL;
    assert_int_equal(atomic_load(&fx.closed), 2);
    assert_int_equal(atomic_load(&fx.last_code), 1001);
    assert_int_equal(client_wait(pid), 0); /* both saw Close 1001 */
}

/* ---- the handshake, over raw HTTP ---- */

#define WS_HEADERS(version, key)                                                                   \
    "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: " version,                \
        "Sec-WebSocket-Key: " key

/* A refused handshake: @p status, problem+json naming @p field (if not NULL). */
static void
expect_refused(const char *method, const char *const *headers, int status, const char *field)
{
    struct sp_test_resp resp = {0};
    json_t *body;

    assert_int_equal(sp_test_http(fx.port, method, "/ws", headers, NULL, &resp), status);
    assert_string_equal(sp_test_resp_header(&resp, "Content-Type"), "application/problem+json");
    body = json_loads(resp.body, 0, NULL);
    assert_non_null(body);
    assert_int_equal(json_integer_value(json_object_get(body, "status")), status);
    if (field != NULL)
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(body, "errors"), 0), "field")),
                            field);
    if (status == 426)
        assert_string_equal(sp_test_resp_header(&resp, "Sec-WebSocket-Version"), "13");
    if (status == 405)
        assert_string_equal(sp_test_resp_header(&resp, "Allow"), "GET");
    json_decref(body);
    sp_test_resp_release(&resp);
}

static void test_bad_handshakes(void **state)
{
    const char *no_key[] = {"Upgrade: websocket", "Connection: Upgrade",
                            "Sec-WebSocket-Version: 13", NULL};
    const char *short_key[] = {WS_HEADERS("13", "dGhlIHNhbXBsZQ=="), NULL};
    const char *two_keys[] = {WS_HEADERS("13", "dGhlIHNhbXBsZSBub25jZQ=="),
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", NULL};
    const char *v8[] = {WS_HEADERS("8", "dGhlIHNhbXBsZSBub25jZQ=="), NULL};
    const char *no_version[] = {"Upgrade: websocket", "Connection: Upgrade",
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", NULL};
    const char *no_upgrade[] = {"Connection: Upgrade", "Sec-WebSocket-Version: 13",
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", NULL};
    const char *h2c[] = {"Upgrade: h2c", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", NULL};
    const char *no_conn[] = {"Upgrade: websocket", "Sec-WebSocket-Version: 13",
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", NULL};
    const char *ok[] = {WS_HEADERS("13", "dGhlIHNhbXBsZSBub25jZQ=="), NULL};

    (void)state;
    expect_refused("GET", no_key, 400, "Sec-WebSocket-Key");
    expect_refused("GET", short_key, 400, "Sec-WebSocket-Key");
    expect_refused("GET", two_keys, 400, "Sec-WebSocket-Key");
    expect_refused("GET", v8, 426, "Sec-WebSocket-Version");
    expect_refused("GET", no_version, 400, "Sec-WebSocket-Version");
    expect_refused("GET", no_upgrade, 400, "Upgrade");
    expect_refused("GET", h2c, 400, "Upgrade");
    expect_refused("GET", no_conn, 400, "Connection"); /* sp_test_http sends Connection: close */
    expect_refused("POST", ok, 405, NULL);
    assert_int_equal(atomic_load(&fx.open), 0);
    assert_int_equal(atomic_load(&fx.closed), 0);
}

/* Read from @p fd until the end of a response head; NUL-terminated in @p buf. */
static void read_head(int fd, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    while (strstr(buf, "\r\n\r\n") == NULL) {
        ssize_t n;

        assert_true(len + 1 < size);
        n = read(fd, buf + len, size - 1 - len);
        if (n <= 0)
            fail_msg("connection ended before the head; got: %s", buf);
        len += (size_t)n;
        buf[len] = '\0';
    }
}

/* RFC 6455 §1.3's own example key and accept value; HTTP/1.0 is refused. */
static void test_handshake_raw(void **state)
{
    const char *get = "GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: WebSocket\r\n"
                      "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    const char *get10 = "GET /ws HTTP/1.0\r\nHost: test\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    char buf[4096];
    int fd = sp_test_connect(fx.port);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, get, strlen(get)), (ssize_t)strlen(get));
    read_head(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(buf, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_non_null(strstr(buf, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(buf, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(buf, "\r\nX-Request-Id: "));
    assert_null(strstr(buf, "Transfer-Encoding"));
    assert_null(strstr(buf, "Content-Length"));
    assert_null(strstr(buf, "Sec-WebSocket-Protocol"));
    close(fd);
    wait_closed(1, 1006);

    fd = sp_test_connect(fx.port);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, get10, strlen(get10)), (ssize_t)strlen(get10));
    read_head(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, " 400 "));
    assert_non_null(strstr(buf, "HTTP-Version"));
    close(fd);
}

/* sp_ws_protocols: lists over several lines, whitespace, non-tokens, the scratch cap. */
static void test_protocol_offers(void **state)
{
    const char *offers[] = {"Sec-WebSocket-Protocol: chat.v1 , x-token.AbC_9",
                            "Sec-WebSocket-Protocol: ,bad token,v2", NULL};
    struct sp_test_resp resp = {0};

    (void)state;
    assert_int_equal(sp_test_http(fx.port, "GET", "/offers", offers, NULL, &resp), 200);
    assert_string_equal(resp.body, "[\"chat.v1\",\"x-token.AbC_9\",\"v2\"]");
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(fx.port, "GET", "/offers?scratch=20", offers, NULL, &resp), 200);
    assert_string_equal(resp.body, "[\"chat.v1\",\"v2\"]"); /* the token did not fit */
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(fx.port, "GET", "/offers", NULL, NULL, &resp), 200);
    assert_string_equal(resp.body, "[]");
    sp_test_resp_release(&resp);
}

/* Handshake header values never reach the log: a token in Sec-WebSocket-Protocol. */
static void test_no_header_values_logged(void **state)
{
    char path[] = "/tmp/test_ws_log.XXXXXX";
    int log_fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    char buf[65536];
    ssize_t n;

    (void)state;
    assert_true(log_fd >= 0 && saved >= 0);
    sp_log_setup(SP_LOG_DEBUG, "test");
    assert_int_equal(dup2(log_fd, STDERR_FILENO), STDERR_FILENO);
    run_client("subprotocol");
    wait_closed(2, 1000);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    sp_log_setup(SP_LOG_WARN, "test");
    n = pread(log_fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"websocket closed\""));
    assert_non_null(strstr(buf, "\"status\":101"));
    assert_null(strstr(buf, "secret.token"));
    assert_null(strstr(buf, "chat.v1"));
    close(saved);
    close(log_fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subprotocol, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unmasked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_early_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_vanishes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_free_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_handshakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_offers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_header_values_logged, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN); /* writes to peers that vanished, as the daemons do */
    sp_log_setup(SP_LOG_WARN, "test");
    assert_int_equal(evthread_use_pthreads(), 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
