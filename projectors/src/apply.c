/*
 * Applying a batch of log records to a projection inside an open transaction: one
 * SAVEPOINT per folded event, so a poison event (constraint violation, bad payload) is
 * dead-lettered or halts the projection without losing the rest of the batch, while a
 * transient database error (deadlock, timeout, ...) fails the whole batch for a retry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proj/pg.h"
#include "proj/runner.h"
#include "runner_impl.h"
#include "sp/log.h"

#include "sp/banned.h"

/* Best-effort id and type of a record that did not decode, for the dead letter. */
static void
raw_id_type(const struct es_log_record *rec, char *id, size_t id_size, char *type, size_t type_size)
{
    json_t *root = json_loadb(rec->value, rec->value_len, 0, NULL);
    const char *s;

    id[0] = type[0] = '\0';
    if (root == NULL)
        return;
    if ((s = json_string_value(json_object_get(root, "id"))) != NULL)
        snprintf(id, id_size, "%s", s);
    if ((s = json_string_value(json_object_get(root, "type"))) != NULL)
        snprintf(type, type_size, "%s", s);
    json_decref(root);
}

static int dead_letter(struct proj__apply *c,
                       const struct es_log_record *rec,
                       const struct es_event *ev,
                       const char *error)
{
    char part[16], off[32], id[64], type[128];
    const char *params[6];

    if (ev->type != NULL) {
        snprintf(id, sizeof(id), "%s", ev->id);
        snprintf(type, sizeof(type), "%s", ev->type);
    } else {
        raw_id_type(rec, id, sizeof(id), type, sizeof(type));
    }
    snprintf(part, sizeof(part), "%d", (int)rec->pos.partition);
    snprintf(off, sizeof(off), "%lld", (long long)rec->pos.offset);
    params[0] = c->proj->name;
    params[1] = part;
    params[2] = off;
    params[3] = id[0] != '\0' ? id : NULL;
    params[4] = type[0] != '\0' ? type : NULL;
    params[5] = error;
    sp_logf(SP_LOG_WARN,
            (const char *[]){"projection", c->proj->name, "partition", part, "offset", off,
                             "event_type", type, "error", error, NULL},
            "poison event dead-lettered");
    return proj_pg_exec(c->conn,
                        "INSERT INTO stockpot.dead_letters (projection, partition, \"offset\", "
                        "event_id, event_type, error) VALUES ($1, $2, $3, $4, $5, $6) "
                        "ON CONFLICT (projection, partition, \"offset\") DO NOTHING",
                        6, params, NULL, c->eb);
}

/*
 * Whether a failed apply was caused by the event itself (poison: the same event fails the
 * same way on every retry) rather than by the database's state at the time. Poison: our
 * own checks of the event (SP_ESCHEMA, SP_EINVAL, SP_ETOOBIG, SP_ENOTFOUND) and SQLSTATE
 * classes 22 (data exception) and 23 (integrity constraint violation). Anything else
 * (deadlock, serialization failure, lock or statement timeout, query cancel, disk full,
 * lost connection, ...) is transient: the batch is rolled back and retried later.
 */
static bool apply_error_is_poison(int rc, const struct sp_errbuf *perr)
{
    if (rc == SP_ESCHEMA || rc == SP_EINVAL || rc == SP_ETOOBIG || rc == SP_ENOTFOUND)
        return true;
    if (rc != SP_EDB)
        return false;
    return strncmp(perr->field, "22", 2) == 0 || strncmp(perr->field, "23", 2) == 0;
}

/* Fold one decoded event under a savepoint. @return 0, a poison error, or a fatal one. */
static int apply_one(struct proj__apply *c,
                     const struct es_log_record *rec,
                     const struct es_event *ev,
                     bool *poison,
                     struct sp_errbuf *perr)
{
    int rc = proj_pg_exec_script(c->conn, "SAVEPOINT proj_event", c->eb);

    if (rc != 0)
        return rc;
    rc = c->proj->folds[ev->type_id](c->conn, ev, perr);
    if (rc == 0)
        return proj_pg_exec_script(c->conn, "RELEASE SAVEPOINT proj_event", c->eb);
    if (!apply_error_is_poison(rc, perr) || PQstatus(c->conn) != CONNECTION_OK) {
        sp_err_set(c->eb, SP_EUNAVAIL, perr->field[0] != '\0' ? perr->field : NULL,
                   "transient error applying offset %d:%lld (%s): %s", (int)rec->pos.partition,
                   (long long)rec->pos.offset, ev->type, perr->msg);
        return SP_EUNAVAIL;
    }
    *poison = true;
    return proj_pg_exec_script(c->conn, "ROLLBACK TO SAVEPOINT proj_event", c->eb);
}

/* Classify and apply one record; sets *poison with the reason in @p perr. */
static int process(struct proj__apply *c,
                   const struct es_log_record *rec,
                   struct es_event *ev,
                   bool *poison,
                   struct sp_errbuf *perr)
{
    if (rec->status != 0) {
        *poison = true;
        return sp_err_set(perr, 0, NULL, "checksum mismatch: %s",
                          rec->error ? rec->error : sp_strerror(rec->status));
    }
    if (es_log_record_decode(rec, ev, perr) != 0) {
        char why[sizeof(perr->msg)], field[sizeof(perr->field)];
        snprintf(why, sizeof(why), "%s", perr->msg);
        snprintf(field, sizeof(field), "%s", perr->field);
        es_event_release(ev);
        *poison = true;
        return sp_err_set(perr, 0, field[0] ? field : NULL, "undecodable event: %s", why);
    }
    if (es_event_check(ev, NULL, perr) != 0) {
        *poison = true;
        return 0; /* perr: unknown type, or which field breaks the schema */
    }
    if (proj_projection_handles(c->proj, ev->type_id))
        return apply_one(c, rec, ev, poison, perr);
    return 0;
}

static void halt(struct proj__apply *c, const struct es_log_record *rec, const char *error)
{
    c->stats->halted = true;
    c->stats->halt_offset = rec->pos.offset;
    snprintf(c->stats->halt_error, sizeof(c->stats->halt_error), "offset %lld: %s",
             (long long)rec->pos.offset, error);
}

int proj__apply_record(const struct es_log_record *rec, void *ud)
{
    struct proj__apply *c = ud;
    struct sp_errbuf perr = {{0}, {0}};
    struct es_event ev;
    char error[sizeof(perr.msg) + sizeof(perr.field) + 4];
    bool poison = false;
    int rc;

    es_event_init(&ev);
    rc = process(c, rec, &ev, &poison, &perr);
    if (rc == 0 && poison) {
        if (perr.field[0] != '\0' && strstr(perr.msg, perr.field) == NULL)
            snprintf(error, sizeof(error), "%s: %s", perr.field, perr.msg);
        else
            snprintf(error, sizeof(error), "%s", perr.msg);
        if (c->policy == PROJ_POISON_HALT) {
            halt(c, rec, error);
            es_event_release(&ev);
            return 1;
        }
        rc = dead_letter(c, rec, &ev, error);
        c->stats->dead++;
    } else if (rc == 0) {
        c->stats->applied++;
    }
    es_event_release(&ev);
    if (rc != 0) {
        c->fatal = rc;
        return 1;
    }
    c->stats->next_offset = rec->pos.offset + 1;
    return 0;
}

int proj__batch_begin(PGconn *conn, const struct proj_projection *proj, struct sp_errbuf *eb)
{
    return proj->batch_begin != NULL ? proj->batch_begin(conn, eb) : 0;
}

int proj__batch_end(PGconn *conn, const struct proj_projection *proj, struct sp_errbuf *eb)
{
    return proj->batch_end != NULL ? proj->batch_end(conn, eb) : 0;
}

int proj_apply_batch(PGconn *conn,
                     const struct proj_projection *proj,
                     struct es_log *log,
                     int32_t partition,
                     int64_t from_offset,
                     size_t max,
                     enum proj_poison_policy policy,
                     struct proj_batch_stats *stats,
                     struct sp_errbuf *eb)
{
    struct proj__apply c = {conn, proj, policy, stats, eb, 0};
    int64_t next = from_offset;
    int rc;

    stats->next_offset = from_offset;
    rc = proj__batch_begin(conn, proj, eb);
    if (rc != 0)
        return rc;
    rc = es_log_read(log, partition, from_offset, max, proj__apply_record, &c, &next, eb);
    if (c.fatal != 0)
        return c.fatal;
    if (rc < 0)
        return rc;
    /* also when halted: the events before the poison one are committed */
    rc = proj__batch_end(conn, proj, eb);
    if (rc != 0)
        return rc;
    /* Kafka: the read may end past offsets that hold no record (transaction markers) */
    if (!stats->halted && next > stats->next_offset)
        stats->next_offset = next;
    return 0;
}

int proj_checkpoint_load(PGconn *conn,
                         const char *projection,
                         int32_t partition,
                         int64_t *next_offset,
                         struct sp_errbuf *eb)
{
    char part[16];
    const char *params[] = {projection, part};
    PGresult *res;
    int rc;

    snprintf(part, sizeof(part), "%d", (int)partition);
    rc = proj_pg_exec(conn,
                      "SELECT next_offset FROM stockpot.checkpoints "
                      "WHERE projection = $1 AND partition = $2",
                      2, params, &res, eb);
    if (rc != 0)
        return rc;
    *next_offset = PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return 0;
}

int proj_checkpoint_store(PGconn *conn,
                          const char *projection,
                          int32_t partition,
                          int64_t next_offset,
                          struct sp_errbuf *eb)
{
    char part[16], off[32];
    const char *params[] = {projection, part, off};

    snprintf(part, sizeof(part), "%d", (int)partition);
    snprintf(off, sizeof(off), "%lld", (long long)next_offset);
    return proj_pg_exec(conn,
                        "INSERT INTO stockpot.checkpoints (projection, partition, next_offset, "
                        "updated_at) VALUES ($1, $2, $3, now()) "
                        "ON CONFLICT (projection, partition) DO UPDATE "
                        "SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                        3, params, NULL, eb);
}

int proj_lock_xact(PGconn *conn, const char *projection, struct sp_errbuf *eb)
{
    const char *params[] = {projection};
    return proj_pg_exec(conn,
                        "SELECT pg_advisory_xact_lock(21328, hashtext($1))" /* PROJ_LOCK_CLASS */,
                        1, params, NULL, eb);
}
