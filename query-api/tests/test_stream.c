/*
 * Integration tests of GET /notifications/stream (Server-Sent Events) against a real
 * PostgreSQL: live delivery, resume with Last-Event-ID after a dropped connection,
 * keep-alive comments, 400 on a bad Last-Event-ID, and a responsive loop with 20 open
 * streams. Needs the PG* environment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "sp/pg_channels.h"
#include "sp/time.h"
#include "qry_test_db.h"
#include "qry_test_srv.h"
#include "sp_test_http.h"

#include "sp/banned.h"

#define ALICE 1001
#define BOB   1002

#define SESSION_OK 9001

static struct qry_test_fx fx; /* fx.token: alice's, of SESSION_OK */

/* An SSE connection read by hand: HTTP/1.0, so the body is the raw event stream. */
struct sse {
    int fd;
    char buf[65536];
    size_t len; /* bytes in buf */
    size_t off; /* start of the first unparsed event block */
};

static void seed(struct qry_test_db *db)
{
    qry_test_db_user(db, ALICE, "alice", 1);
    qry_test_db_user(db, BOB, "bob", 1);
    qry_test_db_exec(db,
                     "INSERT INTO stockpot.sessions VALUES (9001, 1001, now() + interval '1 day',"
                     " false);"
                     "INSERT INTO stockpot.notifications VALUES"
                     " (100, 1001, 'follow', 1002, NULL, NULL, 0, 1, now());");
}

static int setup(void **state)
{
    /* keep-alives every timeout_s / 2 = 1 s, and streams must outlive the 2 s timeout */
    assert_int_equal(setenv("STOCKPOT_HTTP_TIMEOUT_S", "2", 1), 0);
    /* while NOTIFY is heard, no safety-net poll within a test: only NOTIFY delivers */
    assert_int_equal(setenv("STOCKPOT_QUERY_SSE_POLL_MS", "3600000", 1), 0);
    qry_test_fx_setup(state, &fx, "qry_stream", seed, 1000);
    fx.token = qry_test_srv_token(&fx.srv, ALICE, SESSION_OK, 900);
    return 0;
}

/* A notification row for @p user with id @p id at log position 0:@p offset, without the
 * NOTIFY the projector sends with it. */
static void notification_row(int64_t user, int64_t id, int64_t offset)
{
    qry_test_db_execf(&fx.db,
                      "INSERT INTO stockpot.notifications VALUES (%lld, %lld, 'like', 1002,"
                      " 2001, NULL, 0, %lld, now())",
                      (long long)id, (long long)user, (long long)offset);
}

/* A notification as the projector writes it: the row, then NOTIFY at commit. */
static void notify(int64_t user, int64_t id, int64_t offset)
{
    notification_row(user, id, offset);
    qry_test_db_exec(&fx.db, "NOTIFY " SP_PG_CHANNEL_NOTIFICATIONS);
}

/* Wait until the query API's LISTEN connection is up (idle after its LISTEN). */
static void wait_listening(void)
{
    for (int i = 0; i < 100; i++) {
        PGresult *res = PQexec(fx.db.conn, "SELECT count(*) FROM pg_stat_activity WHERE "
                                           "application_name = 'stockpot-query-api-listener' "
                                           "AND state = 'idle' AND query LIKE '%LISTEN%'");
        bool up = PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "1") == 0;

        PQclear(res);
        if (up)
            return;
        usleep(50000);
    }
    fail_msg("the query API does not LISTEN");
}

/* Read more into s->buf, waiting up to the socket timeout. @return bytes read (0 = EOF). */
static ssize_t sse_read(struct sse *s)
{
    ssize_t n;

    assert_true(s->len + 1 < sizeof(s->buf));
    n = read(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
    if (n > 0) {
        s->len += (size_t)n;
        s->buf[s->len] = '\0';
    }
    return n;
}

/* Connect and send the request; @p last_id NULL = no Last-Event-ID. */
static void sse_open(struct sse *s, const char *token, const char *last_id, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (suseconds_t)(timeout_ms % 1000) * 1000};
    char req[8192];
    int n;

    memset(s, 0, sizeof(*s));
    s->fd = sp_test_connect(fx.srv.port);
    assert_true(s->fd >= 0);
    assert_int_equal(setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    n = snprintf(req, sizeof(req),
                 "GET /notifications/stream HTTP/1.0\r\nHost: test\r\n"
                 "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n%s%s%s\r\n",
                 token, last_id != NULL ? "Last-Event-ID: " : "", last_id != NULL ? last_id : "",
                 last_id != NULL ? "\r\n" : "");
    assert_true(n > 0 && (size_t)n < sizeof(req));
    assert_int_equal(write(s->fd, req, (size_t)n), n);
}

/* Wait for the response head and the first ("retry") block; check the head. */
static void sse_start(struct sse *s)
{
    char *end;

    while ((end = strstr(s->buf, "\r\n\r\n")) == NULL || strstr(end, "retry: ") == NULL ||
           strstr(end, "\n\n") == NULL) {
        if (sse_read(s) <= 0)
            fail_msg("stream ended before its start: %s", s->buf);
    }
    assert_non_null(strstr(s->buf, " 200 "));
    assert_non_null(strstr(s->buf, "Content-Type: text/event-stream"));
    assert_non_null(strstr(s->buf, "Cache-Control: no-store"));
    s->off = (size_t)(strstr(end + 4, "\n\n") - s->buf) + 2;
}

/*
 * The next block that is an event: its id into @p id and data into @p data. Comments are
 * skipped, or, if @p comments is not NULL, counted there and answered with false.
 * @return true for an event; false on a comment (see above), timeout or EOF.
 */
static bool sse_next(struct sse *s, char *id, size_t id_size, json_t **data, int *comments)
{
    for (;;) {
        char *block = s->buf + s->off;
        char *end = strstr(block, "\n\n");
        char *line;

        if (end == NULL) {
            if (sse_read(s) <= 0)
                return false;
            continue;
        }
        *end = '\0';
        s->off = (size_t)(end - s->buf) + 2;
        if (block[0] == ':' && comments != NULL) {
            assert_string_equal(block, ": keep-alive");
            (*comments)++;
            return false;
        }
        if (block[0] == ':')
            continue;
        line = strstr(block, "id: ");
        assert_non_null(line);
        snprintf(id, id_size, "%.*s", (int)strcspn(line + 4, "\n"), line + 4);
        assert_non_null(strstr(block, "\nevent: notification\n"));
        line = strstr(block, "\ndata: ");
        assert_non_null(line);
        *data = json_loads(line + 7, 0, NULL);
        assert_non_null(*data);
        return true;
    }
}

static void expect_event(struct sse *s, const char *want_id, const char *want_notif)
{
    char id[64];
    json_t *data = NULL;

    if (!sse_next(s, id, sizeof(id), &data, NULL))
        fail_msg("no event %s arrived", want_id);
    assert_string_equal(id, want_id);
    assert_string_equal(json_string_value(json_object_get(data, "id")), want_notif);
    assert_string_equal(json_string_value(json_object_get(data, "kind")), "like");
    assert_string_equal(json_string_value(json_object_get(data, "actor_username")), "bob");
    assert_string_equal(json_string_value(json_object_get(data, "recipe_id")), "2001");
    assert_true(json_is_false(json_object_get(data, "read")));
    json_decref(data);
}

static void expect_quiet(struct sse *s)
{
    char id[64];
    json_t *data = NULL;

    /* the socket timeout (short here) ends the wait */
    if (sse_next(s, id, sizeof(id), &data, NULL))
        fail_msg("unexpected event %s", id);
}

static void test_live_and_resume(void **state)
{
    struct sse s;

    (void)state;
    sse_open(&s, fx.token, NULL, 3000);
    sse_start(&s);
    notify(BOB, 150, 5); /* someone else's */
    notify(ALICE, 200, 10);
    expect_event(&s, "0:10", "200");
    close(s.fd); /* the connection drops */
    notify(ALICE, 300, 11);
    notify(BOB, 350, 12);
    notify(ALICE, 400, 13);
    sse_open(&s, fx.token, "0:10", 600);
    sse_start(&s);
    expect_event(&s, "0:11", "300");
    expect_event(&s, "0:13", "400");
    expect_quiet(&s); /* nothing twice, nothing else */
    close(s.fd);
    /* without Last-Event-ID only what comes after the connect */
    sse_open(&s, fx.token, NULL, 600);
    sse_start(&s);
    expect_quiet(&s);
    notify(ALICE, 500, 14);
    expect_event(&s, "0:14", "500");
    close(s.fd);
}

static void test_keepalive(void **state)
{
    struct sse s;
    char id[64];
    json_t *data = NULL;
    int comments = 0;
    int64_t start_us = sp_time_mono_us();

    (void)state;
    sse_open(&s, fx.token, NULL, 5000);
    sse_start(&s);
    /* 3.5 s: beyond the 2 s connection timeout, kept open by comments every 1 s */
    while (sp_time_mono_us() - start_us < 3500000 && comments < 3)
        assert_false(sse_next(&s, id, sizeof(id), &data, &comments));
    assert_true(comments >= 3);
    notify(ALICE, 600, 15);
    expect_event(&s, "0:15", "600");
    close(s.fd);
}

static void test_bad_last_event_id(void **state)
{
    static const char *const bad[] = {"x", "0:", ":5", "0:5x", "-1:5", "99999999999:1"};
    char auth[4200];
    const char *headers[] = {auth, NULL, NULL};
    struct sp_test_resp resp = {0};
    char last[64];

    (void)state;
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", fx.token);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(last, sizeof(last), "Last-Event-ID: %s", bad[i]);
        headers[1] = last;
        assert_int_equal(
            sp_test_http(fx.srv.port, "GET", "/notifications/stream", headers, NULL, &resp), 400);
        assert_non_null(strstr(resp.body, "Last-Event-ID"));
        sp_test_resp_release(&resp);
    }
}

/* Streams learn of new notifications from NOTIFY, not from polling; when the LISTEN
 * connection is lost, what was sent meanwhile still arrives. */
static double polls(void)
{
    return sp_metrics_value(fx.srv.metrics, "stockpot_query_sse_polls_total", NULL);
}

static void test_notify_wakes_streams(void **state)
{
    struct sse s;
    double polls_before;

    (void)state;
    wait_listening();
    polls_before = polls();
    sse_open(&s, fx.token, NULL, 600);
    sse_start(&s);
    /* the poll a new stream makes once live must be over before the row exists, or it
     * could deliver the row without any NOTIFY */
    for (int i = 0; i < 300 && polls() < polls_before + 1; i++)
        usleep(10000);
    assert_true(polls() >= polls_before + 1);
    notification_row(ALICE, 800, 17);
    expect_quiet(&s); /* no NOTIFY, and the safety-net poll is an hour away */
    qry_test_db_exec(&fx.db, "NOTIFY " SP_PG_CHANNEL_NOTIFICATIONS);
    expect_event(&s, "0:17", "800");
    /* the listener's backend goes away; a notification sent then is not heard, but the
     * streams catch up (polling while it is down, and once it is back) */
    qry_test_db_exec(&fx.db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE application_name = 'stockpot-query-api-listener'");
    notification_row(ALICE, 900, 18);
    expect_event(&s, "0:18", "900");
    wait_listening();
    close(s.fd);
}

static double streams_gauge(void)
{
    return sp_metrics_value(fx.srv.metrics, "stockpot_query_sse_streams", NULL);
}

/* Wait up to 3 s for the gauge of open streams to fall to 0 (closes are seen async). */
static void wait_no_streams(void)
{
    for (int i = 0; i < 300 && streams_gauge() > 0.0; i++)
        usleep(10000);
    assert_true(streams_gauge() == 0.0);
}

static void test_many_streams_responsive(void **state)
{
    struct sse *s = calloc(20, sizeof(*s));
    struct sp_test_resp resp = {0};

    (void)state;
    assert_non_null(s);
    wait_no_streams(); /* the earlier tests' streams */
    for (int i = 0; i < 20; i++) {
        sse_open(&s[i], fx.token, NULL, 3000);
        sse_start(&s[i]);
    }
    assert_true(streams_gauge() == 20.0);
    for (int i = 0; i < 20; i++) {
        int64_t t0 = sp_time_mono_us();

        assert_int_equal(sp_test_http(fx.srv.port, "GET", "/healthz", NULL, NULL, &resp), 200);
        sp_test_resp_release(&resp);
        assert_true(sp_time_mono_us() - t0 < 200000);
    }
    /* every stream gets the next notification once */
    notify(ALICE, 700, 16);
    for (int i = 0; i < 20; i++)
        expect_event(&s[i], "0:16", "700");
    for (int i = 0; i < 20; i++)
        close(s[i].fd);
    wait_no_streams();
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_and_resume),      cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_bad_last_event_id),    cmocka_unit_test(test_many_streams_responsive),
        cmocka_unit_test(test_notify_wakes_streams),
    };

    return cmocka_run_group_tests(tests, setup, qry_test_fx_teardown);
}
