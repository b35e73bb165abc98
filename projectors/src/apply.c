/*
 * Applying a batch of log records to a projection inside the runner's open batch: each
 * record is decoded and checked against the event catalogue, then folded by the store all
 * or nothing, ignored by type, or treated as poison (dead-lettered, or halting the
 * projection) without losing the rest of the batch; a transient error fails the whole
 * batch for a retry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

    if (ev->type != NULL) {
        snprintf(id, sizeof(id), "%s", ev->id);
        snprintf(type, sizeof(type), "%s", ev->type);
    } else {
        raw_id_type(rec, id, sizeof(id), type, sizeof(type));
    }
    snprintf(part, sizeof(part), "%d", (int)rec->pos.partition);
    snprintf(off, sizeof(off), "%lld", (long long)rec->pos.offset);
    sp_logf(SP_LOG_WARN,
            (const char *[]){"projection", c->r->proj->name, "partition", part, "offset", off,
                             "event_type", type, "error", error, NULL},
            "poison event dead-lettered");
    return c->r->ops->dead_letter(c->r, rec, id[0] != '\0' ? id : NULL,
                                  type[0] != '\0' ? type : NULL, error, c->eb);
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
    if (proj_projection_handles(c->r->proj, ev->type_id))
        return c->r->ops->fold(c->r, ev, poison, perr, c->eb);
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

int proj__apply_batch(struct proj_runner *r,
                      struct es_log *log,
                      int32_t partition,
                      int64_t from_offset,
                      size_t max,
                      struct proj_batch_stats *stats,
                      struct sp_errbuf *eb)
{
    struct proj__apply c = {r, r->policy, stats, eb, 0};
    int64_t next = from_offset;
    int rc;

    stats->next_offset = from_offset;
    rc = r->ops->batch_begin(r, eb);
    if (rc != 0)
        return rc;
    rc = es_log_read(log, partition, from_offset, max, proj__apply_record, &c, &next, eb);
    if (c.fatal != 0)
        return c.fatal;
    if (rc < 0)
        return rc;
    /* also when halted: the events before the poison one are committed */
    rc = r->ops->batch_end(r, eb);
    if (rc != 0)
        return rc;
    /* Kafka: the read may end past offsets that hold no record (transaction markers) */
    if (!stats->halted && next > stats->next_offset)
        stats->next_offset = next;
    return 0;
}
