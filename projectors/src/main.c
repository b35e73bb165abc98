/* stockpot-projector: folds the event log into the projections of projector.projections. */
#include <stdio.h>
#include <string.h>

#include "proj/daemon.h"
#include "sp/config.h"
#include "sp/err.h"
#include "sp/log.h"

#include "sp/banned.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: stockpot-projector [--config FILE]\n\n"
               "Applies the SQL migrations, then folds the event log (opened as a reader)\n"
               "into the projections named in projector.projections (\"pg\": the PostgreSQL\n"
               "read models; \"search\": the LMDB search view in views.dir/search), each\n"
               "on its own thread, one transaction per batch with its checkpoint. Serves GET "
               "/healthz, /readyz and /metrics on projector.host:port.\n"
               "On Kafka (log.backend = kafka) each projection consumes in consumer group\n"
               "stockpot-projection-<name>: several projectors share the partitions, each\n"
               "partition's checkpoint stored with the view.\n"
               "SIGTERM or SIGINT finish the current batch and stop.\n\n"
               "Migrations directory: $STOCKPOT_SQL_DIR, else the source tree's schemas/sql,\n"
               "else <bindir>/../share/stockpot/sql.\n\n");
    sp_config_print_help(f);
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_config *cfg = NULL;
    enum sp_log_level level = SP_LOG_INFO;
    int status;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else {
            fprintf(stderr, "stockpot-projector: unknown argument \"%s\" (try --help)\n", argv[i]);
            return 2;
        }
    }
    sp_log_setup(SP_LOG_INFO, "projector");
    if (sp_config_load(&cfg, config_path, &eb) != 0) {
        fprintf(stderr, "stockpot-projector: bad configuration: %s\n", eb.msg);
        return 2;
    }
    if (sp_log_level_parse(sp_config_str(cfg, "logging.level"), &level) != 0)
        level = SP_LOG_INFO;
    sp_log_setup(level, "projector");
    status = proj_daemon_run(cfg, NULL, 0);
    sp_config_free(cfg);
    return status;
}
