/*
 * The projection "search": the search view of proj/search.h on the LMDB view store kind
 * (proj/view.h), registered with the projector like "pg".
 */
#include "proj/projection.h"
#include "proj/search.h"

#include "sp/banned.h"

static const bool search_handles[ES_TYPE__COUNT] = {
    [ES_TYPE_USER_REGISTERED] = true, [ES_TYPE_PROFILE_UPDATED] = true,
    [ES_TYPE_RECIPE_CREATED] = true,  [ES_TYPE_RECIPE_UPDATED] = true,
    [ES_TYPE_RECIPE_DELETED] = true,
};

static int search_state_new(void **state, struct sp_errbuf *eb)
{
    struct proj_search_writer *w = NULL;
    int rc = proj_search_writer_new(&w);

    *state = w;
    return rc == 0 ? 0 : sp_err_set(eb, rc, NULL, "could not create the search writer");
}

static void search_state_free(void *state)
{
    proj_search_writer_free(state);
}

static int search_open(void *state, MDB_txn *txn, struct sp_errbuf *eb)
{
    return proj_search_writer_open(state, txn, eb);
}

static int search_fold(void *state, MDB_txn *txn, const struct es_event *ev, struct sp_errbuf *eb)
{
    return proj_search_fold(state, txn, ev, eb);
}

static int search_flush(void *state, MDB_txn *txn, struct sp_errbuf *eb)
{
    return proj_search_flush(state, txn, eb);
}

static void search_discard(void *state)
{
    proj_search_discard(state);
}

static const struct proj_view_ops search_view = {
    .format = PROJ_SEARCH_FORMAT,
    .max_dbs = PROJ_SEARCH_MAX_DBS,
    .handles = search_handles,
    .state_new = search_state_new,
    .state_free = search_state_free,
    .open = search_open,
    .fold = search_fold,
    .flush = search_flush,
    .discard = search_discard,
};

static const struct proj_projection search_projection = {
    .name = "search",
    .store = PROJ_STORE_LMDB,
    .view = &search_view,
};

const struct proj_projection *proj_search_projection(void)
{
    return &search_projection;
}
