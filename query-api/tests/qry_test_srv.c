/* An in-process query API server on its own event loop thread, and the fixture around it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/thread.h>

#include "sp/jwt.h"
#include "sp/log.h"
#include "sp/time.h"
#include "qry_test_srv.h"

#include "sp/banned.h"

static void *srv_thread(void *arg)
{
    struct qry_test_srv *t = arg;

    event_base_loop(t->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

void qry_test_srv_start(struct qry_test_srv *t, const char *conninfo, int after_timeout_ms)
{
    struct sp_errbuf eb = {{0}, {0}};
    char timeout[24];

    sp_log_setup(SP_LOG_WARN, "query-api-test");
    assert_int_equal(evthread_use_pthreads(), 0);
    t->base = event_base_new();
    assert_non_null(t->base);
    t->metrics = sp_metrics_new();
    assert_int_equal(sp_config_load(&t->cfg, NULL, &eb), 0);
    snprintf(timeout, sizeof(timeout), "%d", after_timeout_ms);
    assert_int_equal(sp_config_set(t->cfg, "query.port", "0", &eb), 0);
    assert_int_equal(sp_config_set(t->cfg, "query.host", "127.0.0.1", &eb), 0);
    assert_int_equal(sp_config_set(t->cfg, "pg.conninfo", conninfo, &eb), 0);
    assert_int_equal(sp_config_set(t->cfg, "query.after_timeout_ms", timeout, &eb), 0);
    if (qry_server_new(t->base, t->cfg, t->metrics, &t->srv, &eb) != 0)
        fail_msg("qry_server_new: %s", eb.msg);
    t->port = qry_server_port(t->srv);
    assert_true(t->port > 0);
    assert_int_equal(pthread_create(&t->thread, NULL, srv_thread, t), 0);
}

void qry_test_srv_stop(struct qry_test_srv *t)
{
    event_base_loopbreak(t->base);
    assert_int_equal(pthread_join(t->thread, NULL), 0);
    qry_server_free(t->srv);
    event_base_free(t->base);
    sp_metrics_free(t->metrics);
    sp_config_free(t->cfg);
}

char *qry_test_srv_token(struct qry_test_srv *t, int64_t user_id, int64_t session_id, int ttl_s)
{
    return qry_test_srv_token_roles(t, user_id, session_id, ttl_s, 0);
}

char *qry_test_srv_token_roles(
    struct qry_test_srv *t, int64_t user_id, int64_t session_id, int ttl_s, unsigned roles)
{
    const char *secret = sp_config_str(t->cfg, "jwt.secret");
    int64_t now_s = sp_time_now_us() / 1000000;
    char *tok = NULL;

    /* an expired token must also have been issued in the past */
    if (ttl_s < 0)
        now_s -= 3600;
    assert_int_equal(sp_jwt_sign((const unsigned char *)secret, strlen(secret), user_id, session_id,
                                 roles, NULL, now_s, ttl_s < 0 ? 3600 + ttl_s : ttl_s, &tok),
                     0);
    return tok;
}

json_t *qry_test_srv_get_json(const struct qry_test_srv *t,
                              const char *path,
                              const char *const *headers,
                              struct sp_test_resp *resp,
                              int want_status)
{
    json_error_t jerr;
    json_t *body = NULL;
    int status = sp_test_http(t->port, "GET", path, headers, NULL, resp);

    if (status != want_status)
        fail_msg("GET %s: status %d, want %d; body %s", path, status, want_status,
                 resp->body != NULL ? resp->body : "");
    if (resp->body_len > 0) {
        body = json_loadb(resp->body, resp->body_len, 0, &jerr);
        if (body == NULL)
            fail_msg("GET %s: bad JSON: %s", path, jerr.text);
    }
    return body;
}

int qry_test_fx_setup(void **state,
                      struct qry_test_fx *fx,
                      const char *prefix,
                      void (*seed)(struct qry_test_db *db),
                      int after_timeout_ms)
{
    qry_test_db_create(&fx->db, prefix);
    if (seed != NULL)
        seed(&fx->db);
    qry_test_srv_start(&fx->srv, fx->db.conninfo, after_timeout_ms);
    *state = fx;
    return 0;
}

int qry_test_fx_teardown(void **state)
{
    struct qry_test_fx *fx = *state;

    free(fx->token);
    fx->token = NULL;
    qry_test_srv_stop(&fx->srv);
    qry_test_db_drop(&fx->db);
    return 0;
}
