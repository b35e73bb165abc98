/*
 * The LMDB view store kind of the runner (proj/view.h): one write transaction per batch
 * holding the folds, the view's flushed buffers, the dead letters and the checkpoints, so
 * a batch is applied exactly once in effect across kill -9; one nested transaction per
 * folded event, so a poison event leaves nothing behind. Before each batch the runner's
 * generation is compared with the live one: after a rebuild swapped a new generation in,
 * the runner closes the old one and continues in the new one from its checkpoint.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proj/view.h"
#include "runner_impl.h"
#include "sp/log.h"

#include "sp/banned.h"

static int mdb_fail(int rc, struct sp_errbuf *eb, const char *what)
{
    return sp_err_set(eb, SP_EDB, NULL, "%s: %s", what, mdb_strerror(rc));
}

/* Open the view's own databases in a write transaction of the open generation. */
static int view_dbs_open(struct proj_runner *r, struct sp_errbuf *eb)
{
    const struct proj_view_ops *ops = r->proj->view;
    MDB_txn *txn;
    int rc = mdb_txn_begin(proj_view_env(r->vs.view), NULL, 0, &txn);

    if (rc != 0)
        return mdb_fail(rc, eb, "could not begin a view transaction");
    if ((rc = ops->open(r->vs.state, txn, eb)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    return rc == 0 ? 0 : mdb_fail(rc, eb, "could not commit a view transaction");
}

static int state_ready(struct proj_runner *r, struct sp_errbuf *eb)
{
    return r->vs.state != NULL ? 0 : r->proj->view->state_new(&r->vs.state, eb);
}

static void view_close(struct proj_runner *r)
{
    if (r->vs.txn != NULL) {
        mdb_txn_abort(r->vs.txn);
        r->vs.txn = NULL;
    }
    if (r->vs.building)
        proj_view_build_abort(r->vs.view);
    else
        proj_view_close(r->vs.view);
    r->vs.view = NULL;
    r->vs.building = false;
}

static int view_connect(struct proj_runner *r, struct sp_errbuf *eb)
{
    int rc;

    if (r->vs.view != NULL)
        return 0;
    if ((rc = state_ready(r, eb)) != 0)
        return rc;
    rc = proj_view_open(&r->vs.opts, PROJ_VIEW_WRITE, &r->vs.view, eb);
    if (rc == 0 && (rc = view_dbs_open(r, eb)) != 0)
        view_close(r);
    /* Another format (SP_ESTATE from proj_view_open): only a rebuild helps; eb says so, and
     * the runner stays unready and retries, so it carries on by itself once the rebuilt
     * generation is swapped in (it is not halted: no event is at fault). */
    if (rc == SP_ESTATE)
        sp_logf(SP_LOG_ERROR, (const char *[]){"projection", r->proj->name, NULL}, "%s", eb->msg);
    return rc == 0 ? 0 : SP_EUNAVAIL;
}

static bool view_connected(const struct proj_runner *r)
{
    return r->vs.view != NULL;
}

static void view_check(struct proj_runner *r)
{
    (void)r; /* an LMDB handle does not break; a new generation is noticed in begin */
}

static void view_store_close(struct proj_runner *r)
{
    view_close(r);
    if (r->vs.state != NULL)
        r->proj->view->state_free(r->vs.state);
    r->vs.state = NULL;
}

static int view_begin(struct proj_runner *r, struct sp_errbuf *eb)
{
    int rc;

    if (r->vs.view != NULL && !r->vs.building && !proj_view_is_current(r->vs.view)) {
        sp_logf(SP_LOG_INFO, (const char *[]){"projection", r->proj->name, NULL},
                "view \"%s\" was rebuilt: moving from generation %s to the new one", r->vs.opts.dir,
                proj_view_generation(r->vs.view));
        view_close(r);
    }
    if ((rc = view_connect(r, eb)) != 0)
        return rc;
    rc = mdb_txn_begin(proj_view_env(r->vs.view), NULL, 0, &r->vs.txn);
    return rc == 0 ? 0 : mdb_fail(rc, eb, "could not begin a view transaction");
}

static int view_commit(struct proj_runner *r, struct sp_errbuf *eb)
{
    MDB_txn *txn = r->vs.txn;
    int rc;

    r->vs.txn = NULL;
    if (txn == NULL)
        return sp_err_set(eb, SP_ESTATE, NULL, "no view transaction open");
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        r->proj->view->discard(r->vs.state);
        return mdb_fail(rc, eb, "could not commit a view batch");
    }
    return 0;
}

static void view_rollback(struct proj_runner *r)
{
    if (r->vs.txn != NULL) {
        mdb_txn_abort(r->vs.txn);
        r->vs.txn = NULL;
    }
    if (r->vs.state != NULL)
        r->proj->view->discard(r->vs.state);
}

static int
view_checkpoint_load(struct proj_runner *r, int32_t p, int64_t *next, struct sp_errbuf *eb)
{
    MDB_txn *txn = r->vs.txn;
    int rc;

    if (txn != NULL)
        return proj_view_checkpoint_get(r->vs.view, txn, p, next, eb);
    if (r->vs.view == NULL)
        return sp_err_set(eb, SP_EUNAVAIL, NULL, "view not open");
    rc = mdb_txn_begin(proj_view_env(r->vs.view), NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return mdb_fail(rc, eb, "could not begin a view read");
    rc = proj_view_checkpoint_get(r->vs.view, txn, p, next, eb);
    mdb_txn_abort(txn);
    return rc;
}

static int
view_checkpoint_store(struct proj_runner *r, int32_t p, int64_t next, struct sp_errbuf *eb)
{
    return proj_view_checkpoint_put(r->vs.view, r->vs.txn, p, next, eb);
}

static bool fold_error_is_poison(int rc)
{
    return rc == SP_ESCHEMA || rc == SP_EINVAL || rc == SP_ETOOBIG || rc == SP_ENOTFOUND;
}

static int view_fold(struct proj_runner *r,
                     const struct es_event *ev,
                     bool *poison,
                     struct sp_errbuf *perr,
                     struct sp_errbuf *eb)
{
    MDB_txn *child = NULL;
    int rc;

    /* A fold that only reads the transaction needs no nested one to undo it. */
    if (r->proj->view->fold_reads_only) {
        rc = r->proj->view->fold(r->vs.state, r->vs.txn, ev, perr);
        if (rc == 0)
            return 0;
    } else {
        if ((rc = mdb_txn_begin(proj_view_env(r->vs.view), r->vs.txn, 0, &child)) != 0)
            return mdb_fail(rc, eb, "could not begin a nested view transaction");
        rc = r->proj->view->fold(r->vs.state, child, ev, perr);
        if (rc == 0) {
            rc = mdb_txn_commit(child);
            return rc == 0 ? 0 : mdb_fail(rc, eb, "could not commit a nested view transaction");
        }
        mdb_txn_abort(child);
    }
    if (!fold_error_is_poison(rc))
        return sp_err_set(eb, SP_EUNAVAIL, NULL, "transient error applying offset %d:%lld (%s): %s",
                          (int)ev->pos.partition, (long long)ev->pos.offset, ev->type, perr->msg);
    *poison = true;
    return 0;
}

static int view_dead_letter(struct proj_runner *r,
                            const struct es_log_record *rec,
                            const char *event_id,
                            const char *event_type,
                            const char *error,
                            struct sp_errbuf *eb)
{
    return proj_view_dead_letter_put(r->vs.view, r->vs.txn, rec->pos.partition, rec->pos.offset,
                                     event_id, event_type, error, eb);
}

static int view_batch_begin(struct proj_runner *r, struct sp_errbuf *eb)
{
    (void)r;
    (void)eb;
    return 0;
}

static int view_batch_end(struct proj_runner *r, struct sp_errbuf *eb)
{
    return r->proj->view->flush(r->vs.state, r->vs.txn, eb);
}

const struct proj__store_ops proj__store_view = {
    .connect = view_connect,
    .connected = view_connected,
    .check = view_check,
    .close = view_store_close,
    .begin = view_begin,
    .commit = view_commit,
    .rollback = view_rollback,
    .checkpoint_load = view_checkpoint_load,
    .checkpoint_store = view_checkpoint_store,
    .fold = view_fold,
    .dead_letter = view_dead_letter,
    .batch_begin = view_batch_begin,
    .batch_end = view_batch_end,
};

int proj__view_build_begin(struct proj_runner *r, struct sp_errbuf *eb)
{
    int rc = state_ready(r, eb);

    if (rc == 0 && (rc = proj_view_build_begin(&r->vs.opts, &r->vs.view, eb)) == 0) {
        r->vs.building = true;
        if ((rc = view_dbs_open(r, eb)) != 0)
            view_close(r);
    }
    return rc;
}

int proj__view_build_commit(struct proj_runner *r, struct sp_errbuf *eb)
{
    struct proj_view *v = r->vs.view;

    r->vs.view = NULL;
    r->vs.building = false;
    return proj_view_build_commit(v, eb);
}
