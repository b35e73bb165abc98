/*
 * Rebuilding a projection from offset 0: a PostgreSQL read model in one transaction, into
 * a shadow schema swapped in at its end (readers see the old view until it commits), an LMDB view
 * as a new generation swapped in at the end, or up to a given position of the log; and checksums of
 * the PostgreSQL tables.
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

/* The shadow schema a rebuild folds into, and where --keep-old puts the previous tables. */
#define SHADOW_SCHEMA "stockpot_next"
#define OLD_SCHEMA    "stockpot_old"

/* "stockpot.users" -> "users". Table names are compiled-in identifiers of the projection,
 * never input. */
static const char *table_base(const char *name)
{
    const char *dot = strchr(name, '.');
    return dot != NULL ? dot + 1 : name;
}

/*
 * The statements that give the shadow copy of @p t the indexes of @p t, under their own
 * names: those that back a constraint (primary key, unique, exclusion) as that constraint,
 * the others as the same CREATE INDEX; the ones named in t->late_indexes into @p late, the
 * others into @p now. Runs with search_path = pg_catalog, so that PostgreSQL qualifies the
 * table in each definition. @return 0; SP_EINVAL if a late index is not one of the
 * table's; SP_EDB.
 */
static int index_ddl(PGconn *conn,
                     const struct proj_table *t,
                     struct sp_buf *now,
                     struct sp_buf *late,
                     struct sp_errbuf *eb)
{
    static const char sql[] =
        "SELECT CASE WHEN con.oid IS NULL "
        "THEN regexp_replace(pg_get_indexdef(i.indexrelid), ' ON (ONLY )?stockpot\\.', "
        "' ON \\1" SHADOW_SCHEMA ".') "
        "ELSE format('ALTER TABLE " SHADOW_SCHEMA ".%I ADD CONSTRAINT %I %s', $2::text, "
        "con.conname, pg_get_constraintdef(con.oid)) END, "
        "c.relname = ANY (string_to_array($3, ' ')) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid "
        "AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x') "
        "WHERE i.indrelid = $1::regclass ORDER BY c.relname";
    const char *params[] = {t->name, table_base(t->name), t->late_indexes ? t->late_indexes : ""};
    size_t n_late = 0, want = 0;
    PGresult *res;
    int rc = proj_pg_exec(conn, sql, 3, params, &res, eb);

    if (rc != 0)
        return rc;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        bool is_late = PQgetvalue(res, i, 1)[0] == 't';
        n_late += is_late;
        rc = sp_buf_addf(is_late ? late : now, "%s; ", PQgetvalue(res, i, 0));
    }
    PQclear(res);
    for (const char *p = params[2] + strspn(params[2], " "); *p != '\0'; p += strspn(p, " ")) {
        want++;
        p += strcspn(p, " ");
    }
    if (rc == 0 && n_late != want)
        rc = sp_err_set(eb, SP_EINVAL, NULL, "table %s lacks one of its late indexes \"%s\"",
                        t->name, params[2]);
    return rc;
}

/* The statement creating the shadow copy of @p t: its columns, defaults and constraints
 * but no index (index_ddl), and its storage parameters (fillfactor: LIKE does not copy
 * them). @return 0 or SP_EDB. */
static int
table_ddl(PGconn *conn, const struct proj_table *t, struct sp_buf *sql, struct sp_errbuf *eb)
{
    const char *params[] = {t->name};
    PGresult *res;
    int rc =
        proj_pg_exec(conn,
                     "SELECT coalesce(' WITH (' || array_to_string(reloptions, ', ') || ')', '') "
                     "FROM pg_class WHERE oid = $1::regclass",
                     1, params, &res, eb);

    if (rc != 0)
        return rc;
    rc = sp_buf_addf(
        sql, "CREATE TABLE " SHADOW_SCHEMA ".%s (LIKE %s INCLUDING ALL EXCLUDING INDEXES)%s; ",
        table_base(t->name), t->name, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return rc;
}

/*
 * A fresh shadow schema with an empty copy of each of the projection's tables, folded
 * into from here on (search_path, for this transaction), with the indexes the folds read;
 * the statements that build the others (the tables' late_indexes) into @p late, for the
 * end of the load. And the projection's checkpoints and dead letters deleted (they live in
 * schema stockpot: the new view's are written in this transaction).
 */
static int shadow_create(PGconn *conn,
                         const struct proj_projection *proj,
                         struct sp_buf *late,
                         struct sp_errbuf *eb)
{
    const char *params[] = {proj->name};
    struct sp_buf sql;
    int rc;

    sp_buf_init(&sql, 0);
    rc = proj_pg_exec_script(conn, "SET LOCAL search_path = pg_catalog", eb);
    if (rc == 0)
        rc = sp_buf_addf(&sql, "DROP SCHEMA IF EXISTS " SHADOW_SCHEMA " CASCADE; "
                               "CREATE SCHEMA " SHADOW_SCHEMA "; ");
    for (size_t i = 0; rc == 0 && i < proj->n_tables; i++)
        rc = table_ddl(conn, &proj->tables[i], &sql, eb);
    for (size_t i = 0; rc == 0 && i < proj->n_tables; i++)
        rc = index_ddl(conn, &proj->tables[i], &sql, late, eb);
    if (rc == 0)
        rc = sp_buf_addf(&sql, "SET LOCAL search_path = " SHADOW_SCHEMA);
    if (rc == 0)
        rc = proj_pg_exec_script(conn, sql.data, eb);
    sp_buf_release(&sql);
    if (rc == 0)
        rc = proj_pg_exec(conn, "DELETE FROM stockpot.checkpoints WHERE projection = $1", 1, params,
                          NULL, eb);
    if (rc == 0)
        rc = proj_pg_exec(conn, "DELETE FROM stockpot.dead_letters WHERE projection = $1", 1,
                          params, NULL, eb);
    return rc;
}

/* The swap's statements: lock the old tables, move or drop them, move the new ones in. */
static int swap_script(const struct proj_projection *proj, bool keep_old, struct sp_buf *sql)
{
    int rc = sp_buf_addf(sql, "SET LOCAL lock_timeout = '200ms'; LOCK TABLE ");

    for (size_t i = 0; rc == 0 && i < proj->n_tables; i++)
        rc = sp_buf_addf(sql, "%s%s", i ? ", " : "", proj->tables[i].name);
    if (rc == 0)
        rc = sp_buf_addf(sql, " IN ACCESS EXCLUSIVE MODE; ");
    if (rc == 0 && keep_old)
        rc = sp_buf_addf(sql, "DROP SCHEMA IF EXISTS " OLD_SCHEMA " CASCADE; "
                              "CREATE SCHEMA " OLD_SCHEMA "; ");
    for (size_t i = 0; rc == 0 && i < proj->n_tables; i++) {
        const char *t = proj->tables[i].name, *base = table_base(t);
        rc = keep_old ? sp_buf_addf(sql, "ALTER TABLE %s SET SCHEMA " OLD_SCHEMA "; ", t)
                      : sp_buf_addf(sql, "DROP TABLE %s; ", t);
        if (rc == 0)
            rc = sp_buf_addf(sql, "ALTER TABLE " SHADOW_SCHEMA ".%s SET SCHEMA stockpot; ", base);
    }
    if (rc == 0)
        rc = sp_buf_addf(sql, "DROP SCHEMA " SHADOW_SCHEMA "; SET LOCAL lock_timeout = 0; "
                              "SET LOCAL search_path = stockpot");
    return rc;
}

/*
 * Swap the shadow tables in (see proj_rebuild). The locks are taken under a savepoint with
 * a short lock_timeout: when readers hold the old tables past it (or a lock order would
 * deadlock), the savepoint gives back what was taken and it tries again, up to
 * SWAP_TRIES times, so a reader never waits long and is never a deadlock's victim.
 */
#define SWAP_TRIES 150
static int
shadow_swap(PGconn *conn, const struct proj_projection *proj, bool keep_old, struct sp_errbuf *eb)
{
    struct sp_buf sql;
    int rc;

    sp_buf_init(&sql, 0);
    rc = swap_script(proj, keep_old, &sql);
    for (int i = 0; rc == 0 && i < SWAP_TRIES; i++) {
        struct sp_errbuf perr = {{0}, {0}};
        if ((rc = proj_pg_exec_script(conn, "SAVEPOINT proj_swap", eb)) != 0)
            break;
        rc = proj_pg_exec_script(conn, sql.data, &perr);
        if (rc == 0) {
            rc = proj_pg_exec_script(conn, "RELEASE SAVEPOINT proj_swap", eb);
            break;
        }
        if (strcmp(perr.field, "55P03") != 0) { /* not lock_not_available */
            *eb = perr;
            break;
        }
        rc = proj_pg_exec_script(conn, "ROLLBACK TO SAVEPOINT proj_swap", eb);
        if (rc == 0 && i + 1 == SWAP_TRIES)
            rc = sp_err_set(eb, SP_EUNAVAIL, NULL,
                            "could not lock the old tables to swap the rebuilt ones in: "
                            "readers held them for %d tries of 200 ms",
                            SWAP_TRIES);
    }
    sp_buf_release(&sql);
    return rc;
}

/* How far a bounded rebuild (proj_rebuild_view_until) is, for its progress callback. */
struct rebuild_ctl {
    proj_rebuild_progress_fn progress; /* NULL: none */
    void *ud;
    int64_t done;  /* records consumed so far, every partition */
    int64_t total; /* sum of the bounds */
};

struct count_below {
    int64_t end; /* records at or past this offset are not counted */
    size_t n;
};

static int count_record(const struct es_log_record *rec, void *ud)
{
    struct count_below *c = ud;

    if (rec->pos.offset >= c->end)
        return 1;
    c->n++;
    return 0;
}

/* How many of the next @p max records from @p from have an offset below @p end (Kafka's
 * offsets have gaps, so end - from records may reach past it). */
static int records_below(struct es_log *log,
                         int32_t p,
                         int64_t from,
                         int64_t end,
                         size_t max,
                         size_t *n,
                         struct sp_errbuf *eb)
{
    struct count_below c = {end, 0};
    int64_t next;
    int rc = es_log_read(log, p, from, max, count_record, &c, &next, eb);

    *n = c.n;
    return rc < 0 ? rc : 0;
}

/* How many records the next batch from @p from applies: at most batch_max and, in a
 * bounded rebuild (@p ctl), none at or past @p end. */
static int batch_size(const struct proj_runner *r,
                      struct es_log *log,
                      int32_t p,
                      int64_t from,
                      int64_t end,
                      const struct rebuild_ctl *ctl,
                      size_t *max,
                      struct sp_errbuf *eb)
{
    *max = (size_t)(end - from) < r->batch_max ? (size_t)(end - from) : r->batch_max;
    return ctl != NULL ? records_below(log, p, from, end, *max, max, eb) : 0;
}

/* Add a batch's figures to @p total; a halt becomes SP_ESTATE. @return @p rc or that. */
static int add_batch(struct proj_batch_stats *total,
                     const struct proj_batch_stats *st,
                     int rc,
                     struct sp_errbuf *eb)
{
    total->applied += st->applied;
    total->dead += st->dead;
    if (rc != 0 || !st->halted)
        return rc;
    total->halted = true;
    total->halt_offset = st->halt_offset;
    snprintf(total->halt_error, sizeof(total->halt_error), "%s", st->halt_error);
    return sp_err_set(eb, SP_ESTATE, NULL, "rebuild halted: %s", st->halt_error);
}

/* Tell a bounded rebuild's caller that @p n more records were consumed.
 * @return 0, or SP_ESTATE if it asks to stop. */
static int report(struct rebuild_ctl *ctl, int64_t n, struct sp_errbuf *eb)
{
    if (ctl == NULL || ctl->progress == NULL)
        return 0;
    ctl->done += n;
    if (ctl->progress(ctl->done, ctl->total, ctl->ud) != 0)
        return sp_err_set(eb, SP_ESTATE, NULL, "rebuild stopped by its caller");
    return 0;
}

/* Apply partition @p p from 0 to @p end in batches inside the runner's open batch
 * (@p own_txn: one store transaction per batch instead); totals go into @p total. With
 * @p ctl (a bounded rebuild), no record at or past @p end is applied and each batch is
 * reported to its progress callback. */
static int rebuild_partition(struct proj_runner *r,
                             struct es_log *log,
                             int32_t p,
                             int64_t end,
                             bool own_txn,
                             struct rebuild_ctl *ctl,
                             struct proj_batch_stats *total,
                             struct sp_errbuf *eb)
{
    struct proj_batch_stats st;
    int64_t from = 0;
    size_t max;
    int rc = 0;

    while (rc == 0 && from < end) {
        if ((rc = batch_size(r, log, p, from, end, ctl, &max, eb)) != 0 || max == 0)
            break;
        memset(&st, 0, sizeof(st));
        if (own_txn && (rc = r->ops->begin(r, eb)) != 0)
            break;
        rc = proj__apply_batch(r, log, p, from, max, &st, eb);
        rc = add_batch(total, &st, rc, eb);
        if (rc == 0 && own_txn && (rc = r->ops->checkpoint_store(r, p, st.next_offset, eb)) == 0)
            rc = r->ops->commit(r, eb);
        if (rc != 0 && own_txn)
            r->ops->rollback(r);
        if (rc == 0 && st.next_offset == from)
            break; /* the log ended early (should not happen) */
        if (rc == 0)
            rc = report(ctl, st.next_offset - from, eb);
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
                 bool keep_old,
                 struct proj_batch_stats *stats,
                 struct sp_errbuf *eb)
{
    struct proj_runner *r = rebuild_runner(proj, batch_max, policy, NULL, 0);
    int32_t nparts = es_log_partitions(log);
    int64_t end;
    int rc;

    struct sp_buf late;

    memset(stats, 0, sizeof(*stats));
    sp_buf_init(&late, 0);
    r->conn = conn;
    r->conn_borrowed = true;
    /* one batch_end for the whole rebuild: the counters and versions the folds noted are
     * written once per row. After each batch, a popular recipe's row was updated once per
     * batch inside the one transaction, whose row versions cannot be pruned before it
     * ends: every later lookup walked a longer chain (a 1,000,000-event rebuild ran at
     * half the catch-up's rate). */
    r->bulk = true;
    rc = r->ops->begin(r, eb);
    if (rc == 0)
        rc = shadow_create(conn, proj, &late, eb);
    for (int32_t p = 0; rc == 0 && p < nparts; p++) {
        rc = es_log_end(log, p, &end, eb);
        if (rc == 0)
            rc = rebuild_partition(r, log, p, end, false, NULL, stats, eb);
    }
    if (rc == 0 && proj->rebuild_end != NULL)
        rc = proj->rebuild_end(conn, eb);
    if (rc == 0)
        rc = r->ops->batch_end(r, eb);
    if (rc == 0 && late.len > 0)
        rc = proj_pg_exec_script(conn, late.data, eb);
    sp_buf_release(&late);
    if (rc == 0)
        rc = shadow_swap(conn, proj, keep_old, eb);
    if (rc == 0)
        rc = r->ops->commit(r, eb);
    if (rc != 0)
        r->ops->rollback(r);
    proj_runner_free(r);
    return rc;
}

/* Every partition's checkpoint set to its bound, in one last transaction: the view then
 * holds the bound whether or not records were applied up to it (an empty partition,
 * Kafka's trailing transaction markers). */
static int
store_bounds(struct proj_runner *r, const int64_t *ends, int32_t nparts, struct sp_errbuf *eb)
{
    int rc = r->ops->begin(r, eb);

    for (int32_t p = 0; rc == 0 && p < nparts; p++)
        rc = r->ops->checkpoint_store(r, p, ends[p], eb);
    if (rc == 0)
        rc = r->ops->commit(r, eb);
    if (rc != 0)
        r->ops->rollback(r);
    return rc;
}

/* A new generation of the view from the log up to @p ends (see proj_rebuild_view_until;
 * @p ctl NULL: proj_rebuild_view, up to the ends without a per-record bound). */
static int rebuild_view(const struct proj_projection *proj,
                        const char *view_dir,
                        size_t map_size_bytes,
                        struct es_log *log,
                        const int64_t *ends,
                        struct rebuild_ctl *ctl,
                        size_t batch_max,
                        enum proj_poison_policy policy,
                        struct proj_batch_stats *stats,
                        struct sp_errbuf *eb)
{
    int32_t nparts = es_log_partitions(log);
    struct proj_runner *r = rebuild_runner(proj, batch_max, policy, view_dir, map_size_bytes);
    int rc = proj__view_build_begin(r, eb);

    for (int32_t p = 0; rc == 0 && p < nparts; p++)
        rc = rebuild_partition(r, log, p, ends[p], true, ctl, stats, eb);
    if (rc == 0 && ctl != NULL) {
        stats->next_offset = nparts > 0 ? ends[0] : 0;
        rc = store_bounds(r, ends, nparts, eb);
    }
    if (rc == 0)
        rc = proj__view_build_commit(r, eb);
    proj_runner_free(r); /* aborts an unfinished build */
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
    if (rc == 0)
        rc = rebuild_view(proj, view_dir, map_size_bytes, log, ends, NULL, batch_max, policy, stats,
                          eb);
    free(ends);
    return rc;
}

int proj_rebuild_view_until(const struct proj_projection *proj,
                            const char *view_dir,
                            size_t map_size_bytes,
                            struct es_log *log,
                            const int64_t *ends,
                            size_t batch_max,
                            enum proj_poison_policy policy,
                            proj_rebuild_progress_fn progress,
                            void *ud,
                            struct proj_batch_stats *stats,
                            struct sp_errbuf *eb)
{
    struct rebuild_ctl ctl = {progress, ud, 0, 0};
    int32_t nparts = es_log_partitions(log);
    int64_t end;
    int rc = 0;

    memset(stats, 0, sizeof(*stats));
    if (proj->store != PROJ_STORE_LMDB)
        return sp_err_set(eb, SP_EINVAL, NULL, "projection \"%s\" is not an LMDB view", proj->name);
    for (int32_t p = 0; rc == 0 && p < nparts; p++) {
        if ((rc = es_log_end(log, p, &end, eb)) != 0)
            break;
        if (ends[p] < 0 || ends[p] > end)
            rc = sp_err_set(eb, SP_EINVAL, NULL,
                            "position %d:%lld is beyond the end of partition %d (next offset %lld)",
                            (int)p, (long long)ends[p], (int)p, (long long)end);
        ctl.total += ends[p];
    }
    if (rc == 0)
        rc = rebuild_view(proj, view_dir, map_size_bytes, log, ends, &ctl, batch_max, policy, stats,
                          eb);
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
    for (size_t i = 0; rc == 0 && i < proj->n_tables; i++) {
        const struct proj_table *t = &proj->tables[i];
        /* a row's text; without its unsummed column as jsonb's text (names compiled in) */
        if (t->unsummed != NULL)
            rc = sp_buf_addf(&sql,
                             ", (SELECT coalesce(md5(string_agg((to_jsonb(t) - '%s')::text, '|' "
                             "ORDER BY %s)), '-') FROM %s t)",
                             t->unsummed, t->order_by, t->name);
        else
            rc = sp_buf_addf(&sql,
                             ", (SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY %s)), '-') "
                             "FROM %s t)",
                             t->order_by, t->name);
    }
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
