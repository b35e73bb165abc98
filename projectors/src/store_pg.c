/*
 * The PostgreSQL store kind of the runner: one transaction per batch under the
 * projection's advisory lock; a batch's events are folded under one SAVEPOINT, and when one
 * of them fails because of itself (poison) the batch is bisected under nested savepoints
 * down to that event, so a poison event is dead-lettered or halts without losing the rest
 * of the batch, while a transient database error fails the whole batch for a retry.
 * Checkpoints in stockpot.checkpoints and dead letters in stockpot.dead_letters, both in
 * the batch's transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proj/pg.h"
#include "runner_impl.h"

#include "sp/banned.h"

static int pg_connect(struct proj_runner *r, struct sp_errbuf *eb)
{
    char app[96];

    if (r->conn != NULL && PQstatus(r->conn) == CONNECTION_OK)
        return 0;
    if (r->conn_borrowed)
        return sp_err_set(eb, SP_EUNAVAIL, NULL, "the connection is lost");
    if (r->conn != NULL) {
        PQfinish(r->conn);
        r->conn = NULL;
    }
    snprintf(app, sizeof(app), "stockpot-projector/%s", r->proj->name);
    return proj_pg_connect(r->conninfo, app, &r->conn, eb);
}

static bool pg_connected(const struct proj_runner *r)
{
    return r->conn != NULL && PQstatus(r->conn) == CONNECTION_OK;
}

static void pg_close(struct proj_runner *r)
{
    if (r->conn != NULL && !r->conn_borrowed)
        PQfinish(r->conn);
    r->conn = NULL;
}

static void pg_check(struct proj_runner *r)
{
    if (r->conn != NULL && PQstatus(r->conn) != CONNECTION_OK)
        pg_close(r);
}

static int pg_lock(PGconn *conn, const char *projection, struct sp_errbuf *eb)
{
    const char *params[] = {projection};
    return proj_pg_exec(conn,
                        "SELECT pg_advisory_xact_lock(21328, hashtext($1))" /* PROJ_LOCK_CLASS */,
                        1, params, NULL, eb);
}

static int pg_begin(struct proj_runner *r, struct sp_errbuf *eb)
{
    int rc = proj_pg_exec_script(r->conn, "BEGIN", eb);
    return rc == 0 ? pg_lock(r->conn, r->proj->name, eb) : rc;
}

static int pg_commit(struct proj_runner *r, struct sp_errbuf *eb)
{
    return proj_pg_exec_script(r->conn, "COMMIT", eb);
}

static void pg_rollback(struct proj_runner *r)
{
    if (r->conn != NULL)
        proj_pg_rollback(r->conn);
}

static int pg_checkpoint_load(struct proj_runner *r, int32_t p, int64_t *next, struct sp_errbuf *eb)
{
    char part[16];
    const char *params[] = {r->proj->name, part};
    PGresult *res;
    int rc;

    snprintf(part, sizeof(part), "%d", (int)p);
    rc = proj_pg_exec(r->conn,
                      "SELECT next_offset FROM stockpot.checkpoints "
                      "WHERE projection = $1 AND partition = $2",
                      2, params, &res, eb);
    if (rc != 0)
        return rc;
    *next = PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return 0;
}

static int pg_checkpoint_store(struct proj_runner *r, int32_t p, int64_t next, struct sp_errbuf *eb)
{
    char part[16], off[32];
    const char *params[] = {r->proj->name, part, off};

    snprintf(part, sizeof(part), "%d", (int)p);
    snprintf(off, sizeof(off), "%lld", (long long)next);
    return proj_pg_exec(r->conn,
                        "INSERT INTO stockpot.checkpoints (projection, partition, next_offset, "
                        "updated_at) VALUES ($1, $2, $3, now()) "
                        "ON CONFLICT (projection, partition) DO UPDATE "
                        "SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                        3, params, NULL, eb);
}

/*
 * Whether a failed fold was caused by the event itself (poison: the same event fails the
 * same way on every retry) rather than by the database's state at the time. Poison: the
 * fold's own checks (SP_ESCHEMA, SP_EINVAL, SP_ETOOBIG, SP_ENOTFOUND) and SQLSTATE
 * classes 22 (data exception) and 23 (integrity constraint violation). Anything else
 * (deadlock, serialization failure, lock or statement timeout, query cancel, disk full,
 * lost connection, ...) is transient: the batch is rolled back and retried later.
 */
static bool fold_error_is_poison(int rc, const struct sp_errbuf *perr)
{
    if (rc == SP_ESCHEMA || rc == SP_EINVAL || rc == SP_ETOOBIG || rc == SP_ENOTFOUND)
        return true;
    if (rc != SP_EDB)
        return false;
    return strncmp(perr->field, "22", 2) == 0 || strncmp(perr->field, "23", 2) == 0;
}

/* Transient failure of a fold: eb says which event and why. */
static int
fold_transient(const struct es_event *ev, const struct sp_errbuf *perr, struct sp_errbuf *eb)
{
    sp_err_set(eb, SP_EUNAVAIL, perr->field[0] != '\0' ? perr->field : NULL,
               "transient error applying offset %d:%lld (%s): %s", (int)ev->pos.partition,
               (long long)ev->pos.offset, ev->type, perr->msg);
    return SP_EUNAVAIL;
}

struct bisect {
    struct proj_runner *r;
    struct es_event *const *evs;
    struct proj__fold_outcome *out;
    bool stop_at_poison;
    bool stopped; /* a poison event was found and stop_at_poison */
    size_t n_done;
    struct sp_errbuf *eb;
};

/*
 * Fold evs[lo..hi) under one savepoint: set-wise (the projection's fold_set) when the range
 * holds more than one event and the projection can, else one by one with its folds[], so
 * that a single event is always judged by its own fold. If that fails because of an event
 * (poison),
 * roll back to the savepoint and fold each half the same way, down to the one event that
 * fails, which is marked poison (and, with stop_at_poison, ends it: it is the first one,
 * since the left half is always folded first). Without poison that is one savepoint for
 * the whole range instead of one per event; with k poison events about 2k log2(n) extra
 * folds. A transient failure returns at once: the caller rolls the batch back.
 */
static int bisect_fold(struct bisect *b, size_t lo, size_t hi)
{
    struct sp_errbuf perr = {{0}, {0}};
    size_t i = lo;
    int rc;

    if (lo == hi || b->stopped)
        return 0;
    if ((rc = proj_pg_exec_script(b->r->conn, "SAVEPOINT proj_batch", b->eb)) != 0)
        return rc;
    if (hi - lo > 1 && b->r->proj->fold_set != NULL) {
        rc = b->r->proj->fold_set(b->r->conn, (const struct es_event *const *)b->evs + lo, hi - lo,
                                  b->r->bulk ? PROJ_FOLD_BULK : 0, &perr);
    } else {
        for (; i < hi; i++) {
            const struct es_event *ev = b->evs[i];
            if ((rc = b->r->proj->folds[ev->type_id](b->r->conn, ev, &perr)) != 0)
                break;
        }
    }
    if (rc == 0) {
        if (b->n_done < hi)
            b->n_done = hi;
        return proj_pg_exec_script(b->r->conn, "RELEASE SAVEPOINT proj_batch", b->eb);
    }
    if (!fold_error_is_poison(rc, &perr) || PQstatus(b->r->conn) != CONNECTION_OK)
        return fold_transient(b->evs[i < hi ? i : lo], &perr, b->eb);
    if ((rc = proj_pg_exec_script(b->r->conn, "ROLLBACK TO SAVEPOINT proj_batch", b->eb)) != 0 ||
        (rc = proj_pg_exec_script(b->r->conn, "RELEASE SAVEPOINT proj_batch", b->eb)) != 0)
        return rc;
    if (hi - lo == 1) {
        b->out[lo].poison = true;
        b->out[lo].perr = perr;
        b->n_done = hi;
        b->stopped = b->stop_at_poison;
        return 0;
    }
    /* the events before the failing one fold again in the left half; i is in one of them */
    size_t mid = lo + (hi - lo) / 2;
    if ((rc = bisect_fold(b, lo, mid)) != 0)
        return rc;
    return bisect_fold(b, mid, hi);
}

static int pg_fold_many(struct proj_runner *r,
                        struct es_event *const *evs,
                        size_t n,
                        bool stop_at_poison,
                        struct proj__fold_outcome *out,
                        size_t *n_done,
                        struct sp_errbuf *eb)
{
    struct bisect b = {r, evs, out, stop_at_poison, false, 0, eb};
    int rc = bisect_fold(&b, 0, n);

    *n_done = rc == 0 ? (b.stopped ? b.n_done : n) : 0;
    return rc;
}

static int pg_dead_letter(struct proj_runner *r,
                          const struct es_log_record *rec,
                          const char *event_id,
                          const char *event_type,
                          const char *error,
                          struct sp_errbuf *eb)
{
    char part[16], off[32];
    const char *params[] = {r->proj->name, part, off, event_id, event_type, error};

    snprintf(part, sizeof(part), "%d", (int)rec->pos.partition);
    snprintf(off, sizeof(off), "%lld", (long long)rec->pos.offset);
    return proj_pg_exec(r->conn,
                        "INSERT INTO stockpot.dead_letters (projection, partition, \"offset\", "
                        "event_id, event_type, error) VALUES ($1, $2, $3, $4, $5, $6) "
                        "ON CONFLICT (projection, partition, \"offset\") DO NOTHING",
                        6, params, NULL, eb);
}

static int pg_batch_begin(struct proj_runner *r, struct sp_errbuf *eb)
{
    return r->proj->batch_begin != NULL ? r->proj->batch_begin(r->conn, eb) : 0;
}

static int pg_batch_end(struct proj_runner *r, struct sp_errbuf *eb)
{
    return r->proj->batch_end != NULL ? r->proj->batch_end(r->conn, eb) : 0;
}

const struct proj__store_ops proj__store_pg = {
    .connect = pg_connect,
    .connected = pg_connected,
    .check = pg_check,
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .checkpoint_load = pg_checkpoint_load,
    .checkpoint_store = pg_checkpoint_store,
    .fold_many = pg_fold_many,
    .dead_letter = pg_dead_letter,
    .batch_begin = pg_batch_begin,
    .batch_end = pg_batch_end,
};
