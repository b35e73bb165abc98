/*
 * The projection registry (DESIGN.md "Projections"): a projection is a name, the event
 * types it folds, its store, its migrations and an apply function. Each projection has
 * its own checkpoint rows (stockpot.checkpoints) and can be rebuilt alone.
 */
#ifndef PROJ_PROJECTION_H
#define PROJ_PROJECTION_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "es/event.h"
#include "sp/err.h"

enum proj_store {
    PROJ_STORE_PG = 1, /* PostgreSQL read model in schema stockpot */
};

/** A table of a projection: emptied by a rebuild, summed by the checksum. */
struct proj_table {
    const char *name;     /* schema-qualified, e.g. "stockpot.users" */
    const char *order_by; /* columns giving a total order, e.g. "id" */
};

/**
 * Fold one event into the store, inside the caller's open transaction.
 * @return 0; SP_ESCHEMA (or SP_EINVAL, SP_ETOOBIG) if the payload violates the event's
 *         shape (eb->field names the field); SP_ENOTFOUND if the event refers to an
 *         entity the view does not hold; SP_EDB if a statement failed (eb->field holds
 *         the SQLSTATE); SP_EUNAVAIL if the connection is lost. The runner treats
 *         SP_ESCHEMA, SP_EINVAL, SP_ETOOBIG, SP_ENOTFOUND and SP_EDB of SQLSTATE class 22
 *         (data exception) or 23 (integrity constraint violation) as a poison event;
 *         anything else as transient (the batch is rolled back and retried). Any non-zero
 *         return leaves the transaction in an unknown state: the caller rolls back.
 */
typedef int (*proj_apply_fn)(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);

/**
 * Optional hook run inside the caller's open transaction around each batch of folds:
 * batch_begin before the first event (e.g. prepare per-session scratch tables), batch_end
 * after the last one and before the checkpoint is stored and the batch committed (e.g.
 * write the counters the folds deferred, once per changed row: updating one row once per
 * event inside a long transaction makes every update walk a longer chain of row
 * versions). Both may run more than once per transaction (a rebuild runs many batches).
 * @return 0; SP_EDB (eb->field holds the SQLSTATE) or SP_EUNAVAIL: the caller rolls back.
 */
typedef int (*proj_batch_fn)(PGconn *conn, struct sp_errbuf *eb);

struct proj_projection {
    const char *name;                /* e.g. "pg"; the checkpoint and metrics key */
    const char *const *handles;      /* NULL-terminated event types folded by apply */
    const char *const *ignores;      /* NULL-terminated known types that only advance the
                                        checkpoint; any other type is a poison event */
    enum proj_store store;           /* where the view lives */
    const char *migrations;          /* migration set, relative to the SQL dir ("." = all) */
    const struct proj_table *tables; /* the view's tables */
    size_t n_tables;
    proj_apply_fn apply;
    proj_batch_fn batch_begin; /* NULL: none */
    proj_batch_fn batch_end;   /* NULL: none */
};

/** How a projection treats a poison event (projector.poison_policy). */
enum proj_poison_policy {
    PROJ_POISON_DEAD_LETTER = 0, /* record in stockpot.dead_letters and skip */
    PROJ_POISON_HALT = 1,        /* stop the projection before the event */
};

/** Parse "dead-letter" | "halt". @return 0 or SP_EINVAL. */
SP_MUST_CHECK int proj_poison_policy_parse(const char *s, enum proj_poison_policy *out);

/**
 * The PostgreSQL projection "pg": UserRegistered and ProfileUpdated into stockpot.users
 * (never email or password hash), RecipeCreated/Updated/Deleted into stockpot.recipes
 * and stockpot.recipe_tags; UserFollowed/Unfollowed, RecipeLiked/Unliked,
 * RecipeCommented/CommentDeleted into follows, likes, comments and their counters (each
 * always equal to its count over the rows) and notifications; NotificationsRead into
 * notification_reads; Session* into sessions (never a hash). PasswordChanged and the
 * other v1 catalogue types are ignored (they still advance the checkpoint).
 * @return borrowed, static.
 */
const struct proj_projection *proj_pg_projection(void);

/** Number of registered projections. */
size_t proj_registry_count(void);

/** Registered projection @p i (< proj_registry_count()). @return borrowed, static. */
const struct proj_projection *proj_registry_at(size_t i);

/** Registered projection by name. @return borrowed, static; NULL if unknown. */
const struct proj_projection *proj_registry_find(const char *name);

/** Whether @p type is in @p proj's handles list. */
bool proj_projection_handles(const struct proj_projection *proj, const char *type);

/** Whether @p type is in @p proj's ignores list. */
bool proj_projection_ignores(const struct proj_projection *proj, const char *type);

#endif
