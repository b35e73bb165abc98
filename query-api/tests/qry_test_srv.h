/*
 * Test helper: a query API server in-process on a free port, its libevent loop driven by
 * a thread of its own, so the test thread can make blocking HTTP requests; and the group
 * fixture of the HTTP tests, a fresh database with such a server reading it.
 */
#ifndef QRY_TEST_SRV_H
#define QRY_TEST_SRV_H

#include <pthread.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "sp/config.h"
#include "sp/metrics.h"
#include "qry/server.h"
#include "qry_test_db.h"
#include "sp_test_http.h"

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

/** As qry_test_srv_token, with the roles claim @p roles (SP_JWT_ROLE_* bits). @return owned */
char *qry_test_srv_token_roles(
    struct qry_test_srv *t, int64_t user_id, int64_t session_id, int ttl_s, unsigned roles);

/** Stop the loop thread and free everything. */
void qry_test_srv_stop(struct qry_test_srv *t);

/**
 * GET @p path from the server and parse the body as JSON. Fails the test, showing the
 * body, if the status is not @p want_status, or if a non-empty body is not JSON.
 *
 * @param headers  NULL-terminated "Name: value" lines, or NULL; borrowed
 * @param[out] resp  the response; release with sp_test_resp_release()
 * @return the parsed body, NULL if it was empty; owned: json_decref()
 */
json_t *qry_test_srv_get_json(const struct qry_test_srv *t,
                              const char *path,
                              const char *const *headers,
                              struct sp_test_resp *resp,
                              int want_status);

/* The group fixture of the HTTP tests: a database and a server reading it. */
struct qry_test_fx {
    struct qry_test_db db;
    struct qry_test_srv srv;
    char *token; /* owned, NULL unless the test stores an access token for the group */
};

/**
 * The body of a cmocka group setup: create database "<prefix>_<pid>"
 * (qry_test_db_create), fill it with @p seed, start a server reading it with
 * query.after_timeout_ms = @p after_timeout_ms, and store @p fx in *state for
 * qry_test_fx_teardown. Fails the test on error.
 *
 * @param fx    zeroed or released; the test keeps it (usually a static)
 * @param seed  inserts the group's rows before the server starts; NULL: none
 * @return 0, for the group setup to return
 */
int qry_test_fx_setup(void **state,
                      struct qry_test_fx *fx,
                      const char *prefix,
                      void (*seed)(struct qry_test_db *db),
                      int after_timeout_ms);

/**
 * cmocka group teardown: stop the server, drop the database and free the token of the
 * struct qry_test_fx that qry_test_fx_setup stored in *state.
 * @return 0
 */
int qry_test_fx_teardown(void **state);

#endif
