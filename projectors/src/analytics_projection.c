/*
 * The projection "analytics": the analytics view of proj/analytics.h on the LMDB view
 * store kind (proj/view.h), registered with the projector like "pg" and "search".
 */
#include "analytics_internal.h"
#include "proj/projection.h"

#include "sp/banned.h"

static int analytics_state_new(void **state, struct sp_errbuf *eb)
{
    struct proj_analytics_writer *w = NULL;
    int rc = proj_analytics_writer_new(&w);

    *state = w;
    return rc == 0 ? 0 : sp_err_set(eb, rc, NULL, "could not create the analytics writer");
}

static void analytics_state_free(void *state)
{
    proj_analytics_writer_free(state);
}

static int analytics_open(void *state, MDB_txn *txn, struct sp_errbuf *eb)
{
    return proj_analytics_writer_open(state, txn, eb);
}

static int
analytics_fold(void *state, MDB_txn *txn, const struct es_event *ev, struct sp_errbuf *eb)
{
    return proj_analytics_fold(state, txn, ev, eb);
}

static int analytics_flush(void *state, MDB_txn *txn, struct sp_errbuf *eb)
{
    return proj_analytics_flush(state, txn, eb);
}

static void analytics_discard(void *state)
{
    proj_analytics_discard(state);
}

static const struct proj_view_ops analytics_view = {
    .format = PROJ_ANALYTICS_FORMAT,
    .max_dbs = PROJ_ANALYTICS_MAX_DBS,
    .handles = proj__analytics_types,
    .state_new = analytics_state_new,
    .state_free = analytics_state_free,
    .open = analytics_open,
    .fold = analytics_fold,
    .fold_reads_only = true,
    .flush = analytics_flush,
    .discard = analytics_discard,
};

static const struct proj_projection analytics_projection = {
    .name = "analytics",
    .store = PROJ_STORE_LMDB,
    .view = &analytics_view,
};

const struct proj_projection *proj_analytics_projection(void)
{
    return &analytics_projection;
}
