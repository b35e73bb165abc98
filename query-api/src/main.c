/* stockpot-query-api: the HTTP read API daemon (thin main over qry_server). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "sp/config.h"
#include "sp/log.h"
#include "sp/metrics.h"
#include "qry/server.h"

#include "sp/banned.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: stockpot-query-api [--config FILE] [--help]\n\n"
               "Serves GET /users/{id}, /users/{id}/recipes, /users/{id}/followers,\n"
               "/users/{id}/following, /recipes/{id}, /recipes?tag=, /recipes/{id}/comments,\n"
               "/feed, /notifications and /notifications/stream (Server-Sent Events)\n"
               "from the PostgreSQL read models, plus /healthz, /readyz and /metrics.\n\n");
    sp_config_print_help(f);
}

/* @return 0 and *config_path (NULL if not given), 1 for --help, 2 for a usage error. */
static int parse_args(int argc, char **argv, const char **config_path)
{
    *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            *config_path = argv[++i];
            continue;
        }
        fprintf(stderr, "stockpot-query-api: unknown or incomplete argument \"%s\"\n", argv[i]);
        return 2;
    }
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    sp_log(SP_LOG_INFO, "signal %d received, shutting down", (int)sig);
    event_base_loopexit(arg, NULL);
}

static int run(const struct sp_config *cfg)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct event_base *base = event_base_new();
    struct sp_metrics *metrics = sp_metrics_new();
    struct qry_server *srv = NULL;
    struct event *sigterm = NULL;
    struct event *sigint = NULL;
    int rc = 1;

    if (base == NULL) {
        sp_log(SP_LOG_ERROR, "could not create the event loop");
        goto out_free_metrics;
    }
    if (qry_server_new(base, cfg, metrics, &srv, &eb) != 0) {
        sp_log(SP_LOG_ERROR, "could not start the query api: %s", eb.msg);
        goto out_free_base;
    }
    sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    sigint = evsignal_new(base, SIGINT, on_signal, base);
    if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) != 0 ||
        evsignal_add(sigint, NULL) != 0) {
        sp_log(SP_LOG_ERROR, "could not install signal handlers");
        goto out_free_signals;
    }
    signal(SIGPIPE, SIG_IGN);
    event_base_dispatch(base);
    sp_log(SP_LOG_INFO, "query api stopped");
    rc = 0;
out_free_signals:
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    qry_server_free(srv);
out_free_base:
    if (base != NULL)
        event_base_free(base);
out_free_metrics:
    sp_metrics_free(metrics);
    return rc;
}

int main(int argc, char **argv)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_config *cfg = NULL;
    const char *config_path;
    enum sp_log_level level = SP_LOG_INFO;
    int rc;

    rc = parse_args(argc, argv, &config_path);
    if (rc != 0) {
        usage(rc == 1 ? stdout : stderr);
        return rc == 1 ? 0 : 2;
    }
    sp_log_setup(SP_LOG_INFO, "query-api");
    if (sp_config_load(&cfg, config_path, &eb) != 0) {
        sp_log(SP_LOG_ERROR, "invalid configuration: %s%s%s", eb.field, eb.field[0] ? ": " : "",
               eb.msg);
        return 2;
    }
    if (sp_log_level_parse(sp_config_str(cfg, "logging.level"), &level) == 0)
        sp_log_setup(level, "query-api");
    rc = run(cfg);
    sp_config_free(cfg);
    return rc;
}
