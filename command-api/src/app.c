/* The command-api application object: wiring of log, write model, HTTP server and batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app_priv.h"

#include "es/json.h"

#include "sp/alloc.h"
#include "sp/log.h"

#include "sp/banned.h"

static bool ready_cb(void *ud, struct sp_buf *why)
{
    struct cmd_app *app = ud;
    char unusable[sizeof(app->fenced_why)];
    bool usable = cmd__usable(app, unusable, sizeof(unusable), NULL);
    const char *reason = !usable ? unusable : "write model not caught up or log closed";
    if (app->ready && app->log && app->wm && usable)
        return true;
    if (sp_buf_adds(why, reason) != 0)
        sp_log(SP_LOG_DEBUG, "readiness reason truncated");
    return false;
}

/*
 * The idempotency fingerprint key: HMAC-SHA256 keyed with the write model's random
 * secret over jwt.secret, so neither the write model files nor the config alone give it;
 * and its id, which the events of keyed commands carry with their fingerprint.
 */
static void derive_idem_key(struct cmd_app *app)
{
    static const char label[] = "stockpot idempotency fingerprint v1\n";
    const char *secret = sp_config_str(app->cfg, "jwt.secret");
    struct sp_buf b;
    sp_buf_init(&b, 0);
    if (sp_buf_adds(&b, label) != 0 || sp_buf_adds(&b, secret) != 0)
        SP_ASSERT(!"unbounded buffer refused an append");
    cmd__hmac_sha256(cmd__wm_secret(app->wm), CMD__WM_SECRET_LEN, b.data, b.len,
                     app->idem_hmac_key);
    char hex[65]; /* the key's id: the first CMD__IDEM_KID_LEN hex digits of its SHA-256 */
    cmd__sha256_hex(app->idem_hmac_key, sizeof(app->idem_hmac_key), hex);
    hex[CMD__IDEM_KID_LEN] = '\0';
    cmd__wm_set_idem_kid(app->wm, hex);
    sp_buf_release(&b);
}

/* JWT key, token lifetimes and argon2id parameters from the config. */
static int load_auth(struct cmd_app *app, struct sp_errbuf *eb)
{
    const struct sp_config *cfg = app->cfg;
    const char *secret = sp_config_str(cfg, "jwt.secret");
    size_t len = strlen(secret);
    if (len > sizeof(app->jwt_key))
        return sp_err_set(eb, SP_EINVAL, "jwt.secret", "jwt.secret is longer than %zu bytes",
                          sizeof(app->jwt_key));
    if (len == 0) {
        /* Dev mode only (config refuses production without a secret). */
        sp_log(SP_LOG_WARN, "jwt.secret is empty: using a random key; tokens die on restart");
        len = 32;
        int rc = cmd__random(app->jwt_key, len);
        if (rc != 0)
            return sp_err_set(eb, rc, NULL, "could not make a random jwt key");
    } else {
        memcpy(app->jwt_key, secret, len);
    }
    app->jwt_key_len = len;
    int rc = sp_jwt_cache_new(app->jwt_key, len, CMD__TOKEN_CACHE, &app->tokens);
    if (rc != 0)
        return sp_err_set(eb, rc, NULL, "could not make the access token cache");
    app->jwt_ttl_s = sp_config_int(cfg, "jwt.ttl_s");
    app->refresh_ttl_s = sp_config_int(cfg, "refresh.ttl_s");
    app->argon2.t_cost = (uint32_t)sp_config_int(cfg, "argon2.t_cost");
    app->argon2.m_cost_kib = (uint32_t)sp_config_int(cfg, "argon2.m_cost_kib");
    app->argon2.lanes = (uint32_t)sp_config_int(cfg, "argon2.parallelism");
    int64_t per_minute = sp_config_int(cfg, "auth.rate_limit_per_minute");
    if (per_minute > 0) {
        struct sp_ratelimit_opts rl = {per_minute, INT64_C(60000000), per_minute,
                                       CMD__RATELIMIT_KEYS};
        rc = sp_ratelimit_new(&rl, &app->rl_login, eb);
        if (rc == 0)
            rc = sp_ratelimit_new(&rl, &app->rl_register, eb);
        if (rc != 0)
            return rc;
    }
    return cmd__password_hash(&app->argon2, "stockpot-dummy-password", app->dummy_hash, eb);
}

/* Identity of the configured log for the write model: "lmdb" or "kafka:<topic>". */
static void log_identity(const struct sp_config *cfg, char *out, size_t size)
{
    if (strcmp(sp_config_str(cfg, "log.backend"), "kafka") == 0)
        snprintf(out, size, "kafka:%s", sp_config_str(cfg, "kafka.topic"));
    else
        snprintf(out, size, "lmdb");
}

static int open_stores(struct cmd_app *app, struct sp_errbuf *eb)
{
    const struct sp_config *cfg = app->cfg;
    int64_t applied = 0;
    char n[24], log_id[300];
    int rc = es_log_open(cfg, ES_LOG_WRITER, &app->log, eb);
    if (rc != 0)
        return rc;
    app->n_parts = es_log_partitions(app->log);
    app->unsure = sp_xcalloc((size_t)app->n_parts, sizeof(*app->unsure));
    log_identity(cfg, log_id, sizeof(log_id));
    rc = cmd__wm_open(sp_config_str(cfg, "writemodel.dir"),
                      (size_t)sp_config_int(cfg, "writemodel.map_size_mb") << 20, log_id, &app->wm,
                      eb);
    if (rc != 0)
        return rc;
    derive_idem_key(app);
    rc = cmd__wm_catch_up(app->wm, app->log, &applied, eb);
    if (rc != 0)
        return rc;
    snprintf(n, sizeof(n), "%lld", (long long)applied);
    sp_logf(SP_LOG_INFO, (const char *[]){"events", n, NULL}, "write model caught up");
    sp_metrics_counter_add(app->metrics, "stockpot_writemodel_events_caught_up_total", "",
                           (double)applied);
    sp_metrics_gauge_set(app->metrics, "stockpot_writemodel_broken", "", 0);
    sp_metrics_gauge_set(app->metrics, "stockpot_command_fenced", "", 0);
    return 0;
}

/* The committer's condition variable times its waits on CLOCK_MONOTONIC. */
static void init_work_cv(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

static int start_committer(struct cmd_app *app, struct sp_errbuf *eb)
{
    int rc = cmd__committer_start(app);
    if (rc != 0)
        return sp_err_set(eb, rc, NULL, "could not start the committer thread: %s",
                          sp_strerror(rc));
    return 0;
}

static int start_http(struct cmd_app *app, struct sp_errbuf *eb)
{
    const struct sp_config *cfg = app->cfg;
    struct sp_http_opts opts = {
        .service = "command-api",
        .host = sp_config_str(cfg, "command.host"),
        .port = (int)sp_config_int(cfg, "command.port"),
        .max_body_bytes = (size_t)sp_config_int(cfg, "http.max_body_bytes"),
        .max_header_bytes = (size_t)sp_config_int(cfg, "http.max_header_bytes"),
        .timeout_s = (int)sp_config_int(cfg, "http.timeout_s"),
        .max_json_depth = (size_t)sp_config_int(cfg, "http.max_json_depth"),
        .json_parse = es_json_parse,
        .metrics = app->metrics,
        .ready = ready_cb,
        .ready_ud = app,
    };
    int rc = sp_http_server_new(app->base, &opts, &app->http, eb);
    if (rc != 0)
        return rc;
    cmd__routes_install(app);
    return 0;
}

int cmd_app_new(const struct sp_config *cfg,
                struct event_base *base,
                struct cmd_app **out,
                struct sp_errbuf *eb)
{
    struct cmd_app *app = sp_xcalloc(1, sizeof(*app));
    int rc;

    app->cfg = cfg;
    app->base = base;
    app->wake_fd = -1;
    TAILQ_INIT(&app->pending);
    TAILQ_INIT(&app->queue);
    TAILQ_INIT(&app->done);
    pthread_mutex_init(&app->mu, NULL);
    pthread_cond_init(&app->idle_cv, NULL);
    init_work_cv(&app->work_cv);
    es_snowflake_init(&app->ids, 0);
    app->dev_mode = strcmp(sp_config_str(cfg, "mode"), "dev") == 0;
    app->batch_max = (size_t)sp_config_int(cfg, "command.batch_max");
    app->wm_commit_us = (int64_t)sp_config_int(cfg, "command.writemodel_commit_ms") * 1000;
    app->max_event_bytes = (size_t)sp_config_int(cfg, "log.max_event_bytes");
    app->chat_max_members = sp_config_int(cfg, "chat.max_members");
    app->batch = sp_xcalloc(app->batch_max, sizeof(struct cmd__command *));
    app->positions = sp_xcalloc(app->batch_max * CMD__MAX_EVENTS, sizeof(*app->positions));
    app->ev_ptrs = sp_xcalloc(app->batch_max * CMD__MAX_EVENTS, sizeof(const struct es_event *));
    app->metrics = sp_metrics_new();
    cmd__metrics_describe(app->metrics);
    if ((rc = load_auth(app, eb)) != 0 || (rc = open_stores(app, eb)) != 0 ||
        (rc = start_committer(app, eb)) != 0 || (rc = start_http(app, eb)) != 0) {
        cmd_app_free(app);
        return rc;
    }
    app->ready = true;
    *out = app;
    return 0;
}

int cmd_app_port(const struct cmd_app *app)
{
    return app->http ? sp_http_server_port(app->http) : -1;
}

struct sp_metrics *cmd_app_metrics(struct cmd_app *app)
{
    return app->metrics;
}

void cmd_app_drain(struct cmd_app *app)
{
    app->ready = false;
    cmd__flush_all(app);
}

void cmd_app_shutdown(struct cmd_app *app)
{
    app->ready = false;
    cmd__committer_stop(app);
    sp_http_server_free(app->http);
    app->http = NULL;
    es_log_close(app->log);
    app->log = NULL;
    cmd__wm_close(app->wm);
    app->wm = NULL;
}

void cmd_app_free(struct cmd_app *app)
{
    if (!app)
        return;
    cmd_app_shutdown(app);
    if (app->flush_ev)
        event_free(app->flush_ev);
    if (app->done_ev)
        event_free(app->done_ev);
    if (app->wake_fd >= 0)
        close(app->wake_fd);
    pthread_mutex_destroy(&app->mu);
    pthread_cond_destroy(&app->work_cv);
    pthread_cond_destroy(&app->idle_cv);
    sp_metrics_free(app->metrics);
    sp_jwt_cache_free(app->tokens);
    sp_ratelimit_free(app->rl_login);
    sp_ratelimit_free(app->rl_register);
    free(app->batch);
    free(app->positions);
    free(app->ev_ptrs);
    free(app->unsure);
    free(app);
}
