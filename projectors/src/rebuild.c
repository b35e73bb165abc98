/*
 * Rebuilding a projection from offset 0: a PostgreSQL read model in one transaction
 * (readers see the old view until it commits), an LMDB view as a new generation swapped
 * in at the end; and checksums of the PostgreSQL tables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proj/pg.h"
#include "proj/runner.h"
#include "runner_impl.h"
#include "sp/alloc.h"
#include "sp/buf.h"

#include "sp/banned.h"

/*
 * Empty the projection's tables, checkpoints and dead letters with DELETE, never TRUNCATE:
 * TRUNCATE takes ACCESS EXCLUSIVE locks that would block every reader (query-api) until
 * the rebuild commits, while under MVCC readers of deleted rows keep seeing the old view.
 */
static int rebuild_empty(PGconn *conn, const struct proj_projection *proj, struct sp_errbuf *eb)
{
    const char *params[] = {proj->name};
    struct sp_buf sql;
    int rc = 0;

    sp_buf_init(&sql, 0);
    for (size_t i = 0; rc == 0 && i < proj->n_tables; i++) {
        sp_buf_reset(&sql);
        /* Table names are compiled-in identifiers of the projection, never input. */
        rc = sp_buf_addf(&sql, "DELETE FROM %s", proj->tables[i].name);
        if (rc == 0)
            rc = proj_pg_exec_script(conn, sql.data, eb);
    }
    sp_buf_release(&sql);
    if (rc == 0)
        rc = proj_pg_exec(conn, "DELETE FROM stockpot.checkpoints WHERE projection = $1", 1, params,
                          NULL, eb);
    if (rc == 0)
        rc = proj_pg_exec(conn, "DELETE FROM stockpot.dead_letters WHERE projection = $1", 1,
                          params, NULL, eb);
    return rc;
}

/* Apply partition @p p from 0 to @p end in batches inside the runner's open batch
 * (@p own_txn: one store transaction per batch instead); totals go into @p total. */
static int rebuild_partition(struct proj_runner *r,
                             struct es_log *log,
                             int32_t p,
                             int64_t end,
                             bool own_txn,
                             struct proj_batch_stats *total,
                             struct sp_errbuf *eb)
{
    struct proj_batch_stats st;
    int64_t from = 0;
    int rc = 0;

    while (rc == 0 && from < end) {
        size_t max = (size_t)(end - from) < r->batch_max ? (size_t)(end - from) : r->batch_max;
        memset(&st, 0, sizeof(st));
        if (own_txn && (rc = r->ops->begin(r, eb)) != 0)
            break;
        rc = proj__apply_batch(r, log, p, from, max, &st, eb);
        total->applied += st.applied;
        total->dead += st.dead;
        if (rc == 0 && st.halted) {
            total->halted = true;
            total->halt_offset = st.halt_offset;
            snprintf(total->halt_error, sizeof(total->halt_error), "%s", st.halt_error);
            rc = sp_err_set(eb, SP_ESTATE, NULL, "rebuild halted: %s", st.halt_error);
        }
        if (rc == 0 && own_txn && (rc = r->ops->checkpoint_store(r, p, st.next_offset, eb)) == 0)
            rc = r->ops->commit(r, eb);
        if (rc != 0 && own_txn)
            r->ops->rollback(r);
        if (rc == 0 && st.next_offset == from)
            break; /* the log ended early (should not happen) */
        from = st.next_offset;
    }
    if (rc == 0 && !own_txn)
        rc = r->ops->checkpoint_store(r, p, from, eb);
    if (p == 0)
        total->next_offset = from;
    return rc;
}

/* A runner for a rebuild: no consumer, no metrics. */
static struct proj_runner *rebuild_runner(const struct proj_projection *proj,
                                          size_t batch_max,
                                          enum proj_poison_policy policy,
                                          const char *view_dir,
                                          size_t map_size_bytes)
{
    struct proj_runner_opts opts = {0};

    opts.proj = proj;
    opts.batch_max = batch_max < 1 ? 1 : batch_max;
    opts.policy = policy;
    opts.view_dir = view_dir;
    opts.view_map_size_bytes = map_size_bytes;
    return proj__runner_alloc(&opts, 0);
}

int proj_rebuild(PGconn *conn,
                 const struct proj_projection *proj,
                 struct es_log *log,
                 size_t batch_max,
                 enum proj_poison_policy policy,
                 struct proj_batch_stats *stats,
                 struct sp_errbuf *eb)
{
    struct proj_runner *r = rebuild_runner(proj, batch_max, policy, NULL, 0);
    int32_t nparts = es_log_partitions(log);
    int64_t end;
    int rc;

    memset(stats, 0, sizeof(*stats));
    r->conn = conn;
    r->conn_borrowed = true;
    rc = r->ops->begin(r, eb);
    if (rc == 0)
        rc = rebuild_empty(conn, proj, eb);
    for (int32_t p = 0; rc == 0 && p < nparts; p++) {
        rc = es_log_end(log, p, &end, eb);
        if (rc == 0)
            rc = rebuild_partition(r, log, p, end, false, stats, eb);
    }
    if (rc == 0)
        rc = r->ops->commit(r, eb);
    if (rc != 0)
        r->ops->rollback(r);
    proj_runner_free(r);
    return rc;
}

int proj_rebuild_view(const struct proj_projection *proj,
                      const char *view_dir,
                      size_t map_size_bytes,
                      struct es_log *log,
                      size_t batch_max,
                      enum proj_poison_policy policy,
                      struct proj_batch_stats *stats,
                      struct sp_errbuf *eb)
{
    struct proj_runner *r;
    int32_t nparts = es_log_partitions(log);
    int64_t *ends = sp_xcalloc((size_t)(nparts > 0 ? nparts : 1), sizeof(*ends));
    int rc = 0;

    memset(stats, 0, sizeof(*stats));
    if (proj->store != PROJ_STORE_LMDB) {
        free(ends);
        return sp_err_set(eb, SP_EINVAL, NULL, "projection \"%s\" is not an LMDB view", proj->name);
    }
    /* the ends first: the new generation holds the log up to them */
    for (int32_t p = 0; rc == 0 && p < nparts; p++)
        rc = es_log_end(log, p, &ends[p], eb);
    r = rebuild_runner(proj, batch_max, policy, view_dir, map_size_bytes);
    if (rc == 0)
        rc = proj__view_build_begin(r, eb);
    for (int32_t p = 0; rc == 0 && p < nparts; p++)
        rc = rebuild_partition(r, log, p, ends[p], true, stats, eb);
    if (rc == 0)
        rc = proj__view_build_commit(r, eb);
    proj_runner_free(r); /* aborts an unfinished build */
    free(ends);
    return rc;
}

int proj_checksum(PGconn *conn,
                  const struct proj_projection *proj,
                  char *out,
                  size_t out_size,
                  struct sp_errbuf *eb)
{
    struct sp_buf sql;
    PGresult *res;
    int rc;

    sp_buf_init(&sql, 0);
    rc = sp_buf_adds(&sql, "SELECT md5(concat_ws(',', ''");
    for (size_t i = 0; rc == 0 && i < proj->n_tables; i++)
        rc = sp_buf_addf(&sql,
                         ", (SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY %s)), '-') "
                         "FROM %s t)",
                         proj->tables[i].order_by, proj->tables[i].name);
    if (rc == 0)
        rc = sp_buf_adds(&sql, "))");
    if (rc == 0)
        rc = proj_pg_exec(conn, sql.data, 0, NULL, &res, eb);
    sp_buf_release(&sql);
    if (rc != 0)
        return rc;
    snprintf(out, out_size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}
