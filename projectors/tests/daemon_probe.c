/*
 * Test helper (not a test): the projector daemon running projection "pg" plus "probe", a
 * projection that folds UserRegistered into nothing, so test_daemon can check that every
 * projection the daemon is given runs with its own checkpoint. Configured like
 * stockpot-projector (STOCKPOT_* environment).
 */
#include <stdio.h>

#include "proj/daemon.h"
#include "proj/projection.h"
#include "sp/config.h"
#include "sp/log.h"

#include "sp/banned.h"

static int probe_apply(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    (void)conn;
    (void)ev;
    (void)eb;
    return 0;
}

static const char *const probe_handles[] = {"UserRegistered", NULL};

static const struct proj_projection probe = {
    .name = "probe",
    .handles = probe_handles,
    .ignores = NULL,
    .store = PROJ_STORE_PG,
    .migrations = ".",
    .tables = NULL,
    .n_tables = 0,
    .apply = probe_apply,
};

int main(void)
{
    const struct proj_projection *projs[2];
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_config *cfg = NULL;
    int status;

    projs[0] = proj_pg_projection();
    projs[1] = &probe;
    sp_log_setup(SP_LOG_INFO, "projector-probe");
    if (sp_config_load(&cfg, NULL, &eb) != 0) {
        fprintf(stderr, "proj_daemon_probe: bad configuration: %s\n", eb.msg);
        return 2;
    }
    status = proj_daemon_run(cfg, projs, 2);
    sp_config_free(cfg);
    return status;
}
