/*
 * Test helper: a query API server in-process on a free port, its libevent loop driven by
 * a thread of its own, so the test thread can make blocking HTTP requests.
 */
#ifndef QRY_TEST_SRV_H
#define QRY_TEST_SRV_H

#include <pthread.h>
#include <stdint.h>

#include <event2/event.h>

#include "sp/config.h"
#include "sp/metrics.h"
#include "qry/server.h"

struct qry_test_srv {
    struct event_base *base;
    struct sp_config *cfg;
    struct sp_metrics *metrics; /* thread-safe: tests read it while the loop runs */
    struct qry_server *srv;
    pthread_t thread;
    int port;
};

/**
 * Start a server reading database @p conninfo with query.after_timeout_ms =
 * @p after_timeout_ms. Fails the test on error.
 */
void qry_test_srv_start(struct qry_test_srv *t, const char *conninfo, int after_timeout_ms);

/**
 * An HS256 access token for @p user_id / @p session_id signed with the server's
 * jwt.secret, issued now and valid for @p ttl_s seconds (negative: already expired).
 * @return owned; free()
 */
char *qry_test_srv_token(struct qry_test_srv *t, int64_t user_id, int64_t session_id, int ttl_s);

/** Stop the loop thread and free everything. */
void qry_test_srv_stop(struct qry_test_srv *t);

#endif
