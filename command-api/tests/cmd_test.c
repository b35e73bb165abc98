/* Shared fixture for the command-api HTTP tests: see cmd_test.h. */
/* nftw() needs X/Open 5. NOLINTNEXTLINE(bugprone-*,cert-*) */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "cmd_test.h"
#include "cmd/app.h"
#include "app_priv.h" /* the app's log handle, to read the events back */
#include "sp/config.h"
#include "sp/log.h"
#include "sp_test_http.h"

#include "sp/banned.h"

static void *loop_main(void *ud)
{
    struct cmd_test_fx *fx = ud;
    event_base_dispatch(fx->base);
    return NULL;
}

static void keepalive_cb(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what, (void)ud;
}

static void mark_running(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    __atomic_store_n((int *)ud, 1, __ATOMIC_SEQ_CST);
}

void cmd_test_serve_start(struct cmd_test_fx *fx)
{
    int started = 0;
    struct timeval zero = {0, 0};
    assert_int_equal(event_base_once(fx->base, -1, EV_TIMEOUT, mark_running, &started, &zero), 0);
    assert_int_equal(pthread_create(&fx->thread, NULL, loop_main, fx), 0);
    while (!__atomic_load_n(&started, __ATOMIC_SEQ_CST))
        usleep(1000);
    fx->running = true;
}

void cmd_test_serve_stop(struct cmd_test_fx *fx)
{
    if (!fx->running)
        return;
    event_base_loopbreak(fx->base);
    pthread_join(fx->thread, NULL);
    fx->running = false;
}

void cmd_test_app_start(struct cmd_test_fx *fx)
{
    struct sp_errbuf eb = {0};
    if (cmd_app_new(fx->cfg, fx->base, &fx->app, &eb) != 0)
        fail_msg("cmd_app_new: %s", eb.msg);
    fx->port = cmd_app_port(fx->app);
    cmd_test_serve_start(fx);
}

void cmd_test_app_stop(struct cmd_test_fx *fx)
{
    cmd_test_serve_stop(fx);
    cmd_app_free(fx->app);
    fx->app = NULL;
}

void cmd_test_cfg_set(struct cmd_test_fx *fx, const char *key, const char *value)
{
    struct sp_errbuf eb = {0};
    if (sp_config_set(fx->cfg, key, value, &eb) != 0)
        fail_msg("sp_config_set %s: %s", key, eb.msg);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void cmd_test_rm_tree(const char *dir)
{
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

void cmd_test_fx_init(struct cmd_test_fx *fx, const char *dir_template)
{
    struct sp_errbuf eb = {0};
    struct timeval tv = {3600, 0};
    snprintf(fx->dir, sizeof(fx->dir), "%s", dir_template);
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(sp_config_load(&fx->cfg, NULL, &eb), 0);
    snprintf(fx->wm_dir, sizeof(fx->wm_dir), "%s/wm", fx->dir);
    cmd_test_cfg_set(fx, "writemodel.dir", fx->wm_dir);
    cmd_test_cfg_set(fx, "writemodel.map_size_mb", "64");
    cmd_test_cfg_set(fx, "command.port", "0");
    cmd_test_cfg_set(fx, "argon2.t_cost", "1");
    cmd_test_cfg_set(fx, "argon2.m_cost_kib", "1024");
    cmd_test_cfg_set(fx, "jwt.secret", CMD_TEST_SECRET);
    /* tests log in and register many times from one address; test_rate_limits sets it */
    cmd_test_cfg_set(fx, "auth.rate_limit_per_minute", "0");
    fx->base = event_base_new();
    assert_non_null(fx->base);
    fx->keepalive = event_new(fx->base, -1, EV_PERSIST, keepalive_cb, NULL);
    assert_non_null(fx->keepalive);
    event_add(fx->keepalive, &tv);
}

void cmd_test_fx_use_lmdb(struct cmd_test_fx *fx)
{
    char path[200];
    snprintf(path, sizeof(path), "%s/log", fx->dir);
    cmd_test_cfg_set(fx, "log.dir", path);
    cmd_test_cfg_set(fx, "log.map_size_mb", "64");
}

void cmd_test_fx_fini(struct cmd_test_fx *fx)
{
    if (fx->app)
        cmd_test_app_stop(fx);
    event_free(fx->keepalive);
    event_base_free(fx->base);
    sp_config_free(fx->cfg);
    cmd_test_rm_tree(fx->dir);
}

int cmd_test_teardown(void **state)
{
    struct cmd_test_fx *fx = *state;
    cmd_test_fx_fini(fx);
    free(fx);
    return 0;
}

double cmd_test_metric(struct cmd_test_fx *fx, const char *name, const char *labels)
{
    return sp_metrics_value(cmd_app_metrics(fx->app), name, labels);
}

int cmd_test_call_full(struct cmd_test_fx *fx,
                       const char *method,
                       const char *path,
                       const char *const *headers,
                       const char *body,
                       json_t **out,
                       char *ra,
                       size_t ra_size)
{
    struct sp_test_resp resp = {0};
    int status = sp_test_http(fx->port, method, path, headers, body, &resp);
    if (status <= 0)
        fail_msg("%s %s: no answer (%d)", method, path, status);
    if (out) {
        *out = json_loadb(resp.body, resp.body_len, 0, NULL);
        if (!*out)
            fail_msg("%s %s: body is not JSON: %s", method, path, resp.body);
    }
    if (ra) {
        const char *h = sp_test_resp_header(&resp, "Retry-After");
        snprintf(ra, ra_size, "%s", h ? h : "");
    }
    sp_test_resp_release(&resp);
    return status;
}

int cmd_test_call(struct cmd_test_fx *fx,
                  const char *method,
                  const char *path,
                  const char *const *headers,
                  const char *body,
                  json_t **out)
{
    return cmd_test_call_full(fx, method, path, headers, body, out, NULL, 0);
}

const char *cmd_test_jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s)
        fail_msg("no string \"%s\" in answer", key);
    return s;
}

bool cmd_test_names_field(json_t *problem, const char *field)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(problem, "errors"), i, e) {
        if (strcmp(json_string_value(json_object_get(e, "field")), field) == 0)
            return true;
    }
    return false;
}

int cmd_test_raw_connect(int port)
{
    int fd = sp_test_connect(port);
    assert_true(fd >= 0);
    return fd;
}

int cmd_test_raw_pump(int fd, char *buf, size_t size, size_t *len)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    ssize_t got = read(fd, buf + *len, size - 1 - *len);
    if (got > 0) {
        *len += (size_t)got;
        buf[*len] = '\0';
        return 0;
    }
    if (strncmp(buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    return (int)strtol(buf + 9, NULL, 10);
}

/* ---- helpers of the command tests (test_social, test_chat) ---- */

int cmd_test_call_pos(struct cmd_test_fx *fx,
                      const char *method,
                      const char *path,
                      const char *const *headers,
                      const char *body,
                      json_t **out)
{
    struct sp_test_resp resp = {0};
    int status = sp_test_http(fx->port, method, path, headers, body, &resp);
    assert_true(status > 0);
    if (out) {
        *out = json_loadb(resp.body, resp.body_len, 0, NULL);
        if (!*out)
            fail_msg("%s %s: body is not JSON: %s", method, path, resp.body);
    }
    if (status < 300 && out) {
        /* every success carries the consistency token, in the body and the header */
        const char *h = sp_test_resp_header(&resp, "Stockpot-Position");
        const char *b = json_string_value(json_object_get(*out, "position"));
        if (!h || !b || strcmp(h, b) != 0)
            fail_msg("%s %s: position header %s, body %s", method, path, h ? h : "-", b ? b : "-");
    }
    sp_test_resp_release(&resp);
    return status;
}

void cmd_test_user_new(struct cmd_test_fx *fx, const char *name, struct cmd_test_user *u)
{
    char body[256];
    json_t *r = NULL;
    snprintf(body, sizeof(body),
             "{\"username\":\"%s\",\"email\":\"%s@example.org\",\"password\":\"correct horse\"}",
             name, name);
    assert_int_equal(cmd_test_call_pos(fx, "POST", "/auth/register", NULL, body, &r), 201);
    snprintf(u->id, sizeof(u->id), "%s", cmd_test_jstr(r, "user_id"));
    json_decref(r);
    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"correct horse\"}", name);
    assert_int_equal(cmd_test_call_pos(fx, "POST", "/auth/login", NULL, body, &r), 200);
    snprintf(u->auth, sizeof(u->auth), "Authorization: Bearer %s",
             cmd_test_jstr(r, "access_token"));
    json_decref(r);
    u->h[0] = u->auth;
    u->h[1] = NULL;
}

int cmd_test_act(struct cmd_test_fx *fx,
                 const struct cmd_test_user *u,
                 const char *method,
                 const char *body,
                 json_t **out,
                 const char *fmt,
                 ...)
{
    char path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    json_t *tmp = NULL;
    int status = cmd_test_call_pos(fx, method, path, u ? u->h : NULL, body, out ? out : &tmp);
    json_decref(tmp);
    return status;
}

struct collect {
    const char *type;
    json_t *events; /* [{stream, version, position, data}] */
};

static int collect_cb(const struct es_log_record *rec, void *ud)
{
    struct collect *col = ud;
    struct es_event ev;
    char tok[32];
    es_event_init(&ev);
    assert_int_equal(es_log_record_decode(rec, &ev, NULL), 0);
    if (strcmp(ev.type, col->type) == 0) {
        es_position_format(ev.pos, tok, sizeof(tok));
        json_array_append_new(col->events, json_pack("{s:s, s:I, s:s, s:O}", "stream", ev.stream,
                                                     "version", (json_int_t)ev.stream_version,
                                                     "position", tok, "data", ev.data));
    }
    es_event_release(&ev);
    return 0;
}

json_t *cmd_test_events(struct cmd_test_fx *fx, const char *type)
{
    struct collect col = {.type = type, .events = json_array()};
    int64_t next = 0;
    cmd_test_serve_stop(fx);
    assert_int_equal(es_log_read(fx->app->log, 0, 0, 1000000, collect_cb, &col, &next, NULL), 0);
    cmd_test_serve_start(fx);
    return col.events;
}

size_t cmd_test_count(struct cmd_test_fx *fx, const char *type)
{
    json_t *evs = cmd_test_events(fx, type);
    size_t n = json_array_size(evs);
    json_decref(evs);
    return n;
}

/* Raw connection with one full request written (answered once the loop runs). */
static int raw_send(int port, const struct cmd_test_raw *r)
{
    char req[8192];
    size_t blen = r->body ? strlen(r->body) : 0;
    int fd = cmd_test_raw_connect(port);
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     r->method, r->path, r->auth ? r->auth : "", r->auth && *r->auth ? "\r\n" : "",
                     blen, r->body ? r->body : "");
    assert_true(n > 0 && (size_t)n < sizeof(req));
    assert_int_equal(write(fd, req, (size_t)n), n);
    return fd;
}

void cmd_test_one_batch(struct cmd_test_fx *fx, struct cmd_test_raw *reqs, size_t n)
{
    int fds[16];
    size_t lens[16] = {0}, done = 0;
    assert_true(n <= 16);
    cmd_test_serve_stop(fx); /* drive the loop from here so every request lands in one batch */
    double batches = sp_metrics_value(cmd_app_metrics(fx->app), "stockpot_batches_total", "");
    for (size_t i = 0; i < n; i++) {
        fds[i] = raw_send(fx->port, &reqs[i]);
        reqs[i].status = 0;
    }
    usleep(50 * 1000);
    for (int k = 0; k < 5000 && done < n; k++) {
        event_base_loop(fx->base, EVLOOP_NONBLOCK);
        for (size_t i = 0; i < n; i++) {
            if (reqs[i].status == 0 &&
                (reqs[i].status =
                     cmd_test_raw_pump(fds[i], reqs[i].buf, sizeof(reqs[i].buf), &lens[i])) != 0)
                done++;
        }
        usleep(1000);
    }
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
    assert_true(sp_metrics_value(cmd_app_metrics(fx->app), "stockpot_batches_total", "") ==
                batches + 1);
    cmd_test_serve_start(fx);
}
