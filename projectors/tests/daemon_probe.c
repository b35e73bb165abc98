/*
 * Test helper (not a test): the projector daemon running projection "pg" plus "probe", a
 * projection that folds UserRegistered into nothing and refuses every RecipeDeleted (a
 * poison event to it alone), so test_daemon can check that every projection the daemon is
 * given runs with its own checkpoint and that one halting does not stop the others. Configured like
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
    if (ev->type_id == ES_TYPE_RECIPE_DELETED)
        return sp_err_set(eb, SP_ENOTFOUND, NULL, "probe refuses RecipeDeleted");
    return 0;
}

static const proj_apply_fn probe_folds[ES_TYPE__COUNT] = {
    [ES_TYPE_USER_REGISTERED] = probe_apply,
    [ES_TYPE_RECIPE_DELETED] = probe_apply,
};

static const struct proj_projection probe = {
    .name = "probe",
    .store = PROJ_STORE_PG,
    .folds = probe_folds,
    .migrations = ".",
    .tables = NULL,
    .n_tables = 0,
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
