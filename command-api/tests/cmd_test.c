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
