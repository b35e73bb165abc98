/* Tests of streamed replies: chunks arrive as sent, end, client disconnect, server free. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "sp/http.h"
#include "sp/log.h"
#include "sp_test_http.h"
#include "sp/banned.h"

struct fixture {
    struct event_base *base;
    struct sp_http_server *srv;
    pthread_t thread;
    int port;
    struct sp_http_stream *st; /* loop thread only */
    atomic_int closed;         /* on_close calls */
};

static struct fixture fx;

static void on_close(void *ud)
{
    struct fixture *f = ud;

    f->st = NULL;
    atomic_fetch_add(&f->closed, 1);
}

static void stream_handler(struct sp_http_req *req, void *ud)
{
    struct fixture *f = ud;

    sp_http_add_header(req, "Cache-Control", "no-store");
    f->st = sp_http_stream_start(req, 200, "text/event-stream", 4096, on_close, f);
    assert_non_null(f->st);
    assert_int_equal(sp_http_stream_send(f->st, ": hello\n\n", 9), 0);
}

/* GET /push?msg=..: send msg to the open stream; 409 if there is none, 413 if refused. */
static void push_handler(struct sp_http_req *req, void *ud)
{
    struct fixture *f = ud;
    const char *msg = sp_http_req_query(req, "msg");
    int rc;

    if (f->st == NULL) {
        sp_http_reply(req, 409, NULL, NULL, 0);
        return;
    }
    rc = sp_http_stream_send(f->st, msg, strlen(msg));
    sp_http_reply(req, rc == 0 ? 200 : 413, NULL, NULL, 0);
}

static void end_handler(struct sp_http_req *req, void *ud)
{
    struct fixture *f = ud;

    sp_http_stream_end(f->st);
    f->st = NULL;
    sp_http_reply(req, 200, NULL, NULL, 0);
}

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
    sp_log_setup(SP_LOG_WARN, "test");
    assert_int_equal(evthread_use_pthreads(), 0);
    fx.base = event_base_new();
    assert_int_equal(sp_http_server_new(fx.base, &opts, &fx.srv, &eb), 0);
    sp_http_route(fx.srv, SP_HTTP_GET, "/stream", stream_handler, &fx);
    sp_http_route(fx.srv, SP_HTTP_GET, "/push", push_handler, &fx);
    sp_http_route(fx.srv, SP_HTTP_GET, "/end", end_handler, &fx);
    fx.port = sp_http_server_port(fx.srv);
    assert_int_equal(pthread_create(&fx.thread, NULL, loop_thread, fx.base), 0);
    return 0;
}

static void stop_loop(void)
{
    event_base_loopbreak(fx.base);
    assert_int_equal(pthread_join(fx.thread, NULL), 0);
}

static int teardown(void **state)
{
    (void)state;
    if (fx.thread != 0)
        stop_loop();
    sp_http_server_free(fx.srv);
    event_base_free(fx.base);
    return 0;
}

static int connect_stream_method(const char *method)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx.port)};
    struct timeval tv = {5, 0};
    int rcvbuf = 4096; /* small, so that a client that stops reading is noticed soon */
    char get[128];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(get, sizeof(get), "%s /stream HTTP/1.1\r\nHost: test\r\n\r\n", method);
    assert_int_equal(write(fd, get, strlen(get)), (ssize_t)strlen(get));
    return fd;
}

static int connect_stream(void)
{
    return connect_stream_method("GET");
}

/* Read from @p fd into @p buf (NUL-terminated) until it contains @p want; fail on timeout. */
static void read_until(int fd, char *buf, size_t size, size_t *len, const char *want)
{
    while (strstr(buf, want) == NULL) {
        ssize_t n;

        assert_true(*len + 1 < size);
        n = read(fd, buf + *len, size - 1 - *len);
        if (n <= 0)
            fail_msg("connection ended before \"%s\"; got: %s", want, buf);
        *len += (size_t)n;
        buf[*len] = '\0';
    }
}

static int get_status(const char *path)
{
    struct sp_test_resp resp = {0};
    int status = sp_test_http(fx.port, "GET", path, NULL, NULL, &resp);

    sp_test_resp_release(&resp);
    return status;
}

/* Wait up to 5 s for the loop thread to have seen the client close. */
static void wait_closed(int want)
{
    for (int i = 0; i < 500 && atomic_load(&fx.closed) < want; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&fx.closed), want);
}

static void test_chunks_and_end(void **state)
{
    char buf[8192] = "";
    size_t len = 0;
    int fd = connect_stream();

    (void)state;
    read_until(fd, buf, sizeof(buf), &len, ": hello\n\n");
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "Content-Type: text/event-stream"));
    assert_non_null(strstr(buf, "Transfer-Encoding: chunked"));
    assert_non_null(strstr(buf, "Cache-Control: no-store"));
    assert_non_null(strstr(buf, "X-Request-Id: "));
    assert_int_equal(get_status("/push?msg=data%3A%20one%0A%0A"), 200);
    read_until(fd, buf, sizeof(buf), &len, "data: one\n\n");
    assert_int_equal(get_status("/push?msg=data%3A%20two%0A%0A"), 200);
    read_until(fd, buf, sizeof(buf), &len, "data: two\n\n");
    assert_int_equal(get_status("/end"), 200);
    read_until(fd, buf, sizeof(buf), &len, "\r\n0\r\n\r\n"); /* the last chunk */
    close(fd);
    assert_int_equal(get_status("/push?msg=x"), 409);
    usleep(100000);
    assert_int_equal(atomic_load(&fx.closed), 0); /* ended streams never call on_close */
}

static void test_client_disconnect(void **state)
{
    char buf[8192] = "";
    size_t len = 0;
    int fd = connect_stream();

    (void)state;
    read_until(fd, buf, sizeof(buf), &len, ": hello\n\n");
    close(fd);
    wait_closed(1);
    assert_int_equal(get_status("/push?msg=x"), 409);
    assert_int_equal(get_status("/healthz"), 200);
}

static void test_slow_client_cap(void **state)
{
    char buf[8192] = "";
    size_t len = 0;
    char path[1024];
    int fd = connect_stream();
    int status = 200;

    (void)state;
    read_until(fd, buf, sizeof(buf), &len, ": hello\n\n");
    /* stop reading: the socket buffers fill, then the 4096-byte cap refuses */
    for (int i = 0; i < 100000 && status == 200; i++) {
        snprintf(path, sizeof(path), "/push?msg=%0400d", i);
        status = get_status(path);
    }
    assert_int_equal(status, 413);
    close(fd);
    wait_closed(1);
}

static void test_server_free_drops_streams(void **state)
{
    char buf[8192] = "";
    size_t len = 0;
    int fd = connect_stream();

    (void)state;
    read_until(fd, buf, sizeof(buf), &len, ": hello\n\n");
    stop_loop();
    fx.thread = 0;
    sp_http_server_free(fx.srv);
    fx.srv = NULL;
    assert_int_equal(atomic_load(&fx.closed), 1);
    close(fd);
}

/* HEAD: the head goes out, the pieces sent do not, and the stream ends as usual. */
static void test_head(void **state)
{
    struct timeval tv = {0, 300000};
    char buf[8192] = "";
    size_t len = 0;
    int fd = connect_stream_method("HEAD");

    (void)state;
    read_until(fd, buf, sizeof(buf), &len, "\r\n\r\n");
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_int_equal(get_status("/push?msg=data%3A%20one%0A%0A"), 200);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    assert_true(read(fd, buf, sizeof(buf)) < 0); /* nothing after the head */
    assert_int_equal(get_status("/end"), 200);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chunks_and_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_client_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_free_drops_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
