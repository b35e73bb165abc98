/*
 * Rebuilding a projection from offset 0 in one transaction (readers see the old view
 * until it commits), and checksums of its tables.
 */
#include <stdio.h>
#include <string.h>

#include "proj/pg.h"
#include "proj/runner.h"
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

/* Apply partition @p p from 0 to @p end in batches; totals go into @p total. */
static int rebuild_partition(PGconn *conn,
                             const struct proj_projection *proj,
                             struct es_log *log,
                             int32_t p,
                             int64_t end,
                             size_t batch_max,
                             enum proj_poison_policy policy,
                             struct proj_batch_stats *total,
                             struct sp_errbuf *eb)
{
    struct proj_batch_stats st;
    int64_t from = 0;
    int rc = 0;

    while (rc == 0 && from < end) {
        size_t max = (size_t)(end - from) < batch_max ? (size_t)(end - from) : batch_max;
        memset(&st, 0, sizeof(st));
        rc = proj_apply_batch(conn, proj, log, p, from, max, policy, &st, eb);
        total->applied += st.applied;
        total->dead += st.dead;
        if (rc == 0 && st.halted) {
            total->halted = true;
            total->halt_offset = st.halt_offset;
            snprintf(total->halt_error, sizeof(total->halt_error), "%s", st.halt_error);
            return sp_err_set(eb, SP_ESTATE, NULL, "rebuild halted: %s", st.halt_error);
        }
        if (rc == 0 && st.next_offset == from)
            break; /* the log ended early (should not happen) */
        from = st.next_offset;
    }
    if (rc == 0)
        rc = proj_checkpoint_store(conn, proj->name, p, from, eb);
    if (p == 0)
        total->next_offset = from;
    return rc;
}

int proj_rebuild(PGconn *conn,
                 const struct proj_projection *proj,
                 struct es_log *log,
                 size_t batch_max,
                 enum proj_poison_policy policy,
                 struct proj_batch_stats *stats,
                 struct sp_errbuf *eb)
{
    int32_t nparts = es_log_partitions(log);
    int64_t end;
    int rc;

    memset(stats, 0, sizeof(*stats));
    if (batch_max < 1)
        batch_max = 1;
    rc = proj_pg_exec_script(conn, "BEGIN", eb);
    if (rc == 0)
        rc = proj_lock_xact(conn, proj->name, eb);
    if (rc == 0)
        rc = rebuild_empty(conn, proj, eb);
    for (int32_t p = 0; rc == 0 && p < nparts; p++) {
        rc = es_log_end(log, p, &end, eb);
        if (rc == 0)
            rc = rebuild_partition(conn, proj, log, p, end, batch_max, policy, stats, eb);
    }
    if (rc == 0)
        rc = proj_pg_exec_script(conn, "COMMIT", eb);
    if (rc != 0)
        proj_pg_rollback(conn);
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
