/* stockpot-command-api: the HTTP write API daemon (thin wrapper around cmd_app). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "cmd/app.h"
#include "sp/config.h"
#include "sp/log.h"

#include "sp/banned.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: stockpot-command-api [--config FILE]\n"
               "\n"
               "Serves the Stockpot write API (register, login, refresh, logout, validate,\n"
               "recipes) on command.host:command.port, appending events to the log.\n"
               "SIGTERM or SIGINT: stop accepting, finish queued commands, close cleanly.\n"
               "\n"
               "Configuration keys (file `key = value`, env STOCKPOT_<KEY>):\n");
    sp_config_print_help(f);
}

struct run_ctx {
    struct event_base *base;
    struct cmd_app *app;
};

/* Answer what is queued, give the loop 100 ms to write the answers, then stop. */
static void on_signal(evutil_socket_t sig, short what, void *ud)
{
    struct run_ctx *ctx = ud;
    const struct timeval drain = {0, 100000};
    (void)what;
    sp_log(SP_LOG_INFO, "signal %d: shutting down", (int)sig);
    cmd_app_drain(ctx->app);
    event_base_loopexit(ctx->base, &drain);
}

static int run(const struct sp_config *cfg)
{
    struct sp_errbuf eb = {0};
    struct cmd_app *app = NULL;
    struct event_base *base = event_base_new();
    struct event *sigterm = NULL, *sigint = NULL;
    int rc = 1;
    if (!base)
        return 1;
    if (cmd_app_new(cfg, base, &app, &eb) != 0) {
        sp_log(SP_LOG_ERROR, "could not start command-api: %s", eb.msg);
        goto out_free_base;
    }
    struct run_ctx ctx = {.base = base, .app = app};
    sigterm = evsignal_new(base, SIGTERM, on_signal, &ctx);
    sigint = evsignal_new(base, SIGINT, on_signal, &ctx);
    if (!sigterm || !sigint || event_add(sigterm, NULL) != 0 || event_add(sigint, NULL) != 0)
        goto out_free_app;
    sp_log(SP_LOG_INFO, "command-api listening on port %d", cmd_app_port(app));
    event_base_dispatch(base);
    rc = 0;
out_free_app:
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    cmd_app_free(app); /* finishes queued commands, closes the log and write model */
out_free_base:
    event_base_free(base);
    return rc;
}

int main(int argc, char **argv)
{
    struct sp_errbuf eb = {0};
    struct sp_config *cfg = NULL;
    const char *path = NULL;
    enum sp_log_level level = SP_LOG_INFO;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[++i];
            continue;
        }
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (sp_config_load(&cfg, path, &eb) != 0) {
        fprintf(stderr, "stockpot-command-api: bad configuration: %s%s%s\n", eb.msg,
                eb.field[0] ? " at " : "", eb.field);
        return 2;
    }
    (void)sp_log_level_parse(sp_config_str(cfg, "logging.level"), &level);
    sp_log_setup(level, "command-api");
    int rc = run(cfg);
    sp_config_free(cfg);
    return rc;
}
