/* An in-process query API server on its own event loop thread, for integration tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
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
    const char *secret = sp_config_str(t->cfg, "jwt.secret");
    int64_t now_s = sp_time_now_us() / 1000000;
    char *tok = NULL;

    /* an expired token must also have been issued in the past */
    if (ttl_s < 0)
        now_s -= 3600;
    assert_int_equal(sp_jwt_sign((const unsigned char *)secret, strlen(secret), user_id, session_id,
                                 NULL, now_s, ttl_s < 0 ? 3600 + ttl_s : ttl_s, &tok),
                     0);
    return tok;
}
