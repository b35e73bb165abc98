/*
 * The projection registry (DESIGN.md "Projections"): a projection is a name, the event
 * types it folds, its store, its migrations and an apply function. Each projection has
 * its own checkpoint rows (stockpot.checkpoints) and can be rebuilt alone.
 *
 * Event types come from the catalogue (es/catalogue.h, generated from schemas/events).
 * Before any fold the runner checks the event against it (es_event_check): a type the
 * catalogue does not know, or a payload that breaks its schema, is a poison event; a known
 * type the projection has no fold for only advances the checkpoint.
 */
#ifndef PROJ_PROJECTION_H
#define PROJ_PROJECTION_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>
#include <lmdb.h>

#include "es/catalogue.h"
#include "es/event.h"
#include "sp/err.h"

enum proj_store {
    PROJ_STORE_PG = 1,   /* PostgreSQL read model in schema stockpot */
    PROJ_STORE_LMDB = 2, /* an LMDB environment of its own (proj/view.h) */
};

/** A table of a projection: emptied by a rebuild, summed by the checksum. */
struct proj_table {
    const char *name;     /* schema-qualified, e.g. "stockpot.users" */
    const char *order_by; /* columns giving a total order, e.g. "id" */
    /* Space-separated names of the table's indexes (or the constraints they back) that no
     * fold reads: a rebuild (proj_rebuild) builds them once after its load instead of
     * inserting into them row by row, as PostgreSQL's manual advises for bulk loads
     * ("Populating a Database", 14.4.3 "Remove Indexes"). NULL: none. */
    const char *late_indexes;
    /* A column the checksum leaves out because its values are not a function of the log
     * (chat_events.seq: the order in which batches committed). NULL: none. */
    const char *unsummed;
};

/**
 * Fold one event into the store, inside the caller's open transaction. The event passed
 * es_event_check, so its payload has its schema's shape.
 * @return 0; SP_ESCHEMA (or SP_EINVAL, SP_ETOOBIG) if the payload violates a rule of the
 *         view beyond the schema (eb->field names the field); SP_ENOTFOUND if the event refers to
 * an entity the view does not hold; SP_EDB if a statement failed (eb->field holds the SQLSTATE);
 * SP_EUNAVAIL if the connection is lost. The runner treats SP_ESCHEMA, SP_EINVAL, SP_ETOOBIG,
 * SP_ENOTFOUND and SP_EDB of SQLSTATE class 22 (data exception) or 23 (integrity constraint
 * violation) as a poison event; anything else as transient (the batch is rolled back and retried).
 * Any non-zero return leaves the transaction in an unknown state: the caller rolls back.
 */
typedef int (*proj_apply_fn)(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);

/**
 * Optional: fold the events evs[0..n) (n >= 2; each passed es_event_check and has a fold
 * in the projection's folds[]) inside the caller's open transaction with the same effect as
 * folds[] applied to them one by one in order, in fewer statements (a set at a time).
 * @return 0; SP_ESCHEMA, SP_EINVAL, SP_ETOOBIG, SP_ENOTFOUND, or SP_EDB of SQLSTATE class 22
 *         or 23 when one of the events would fail alone (which one is not said: the runner
 *         rolls back and folds parts of the batch to find it, folding single events with
 *         folds[]); any other SP_EDB or SP_EUNAVAIL: transient. Any non-zero return leaves
 *         the transaction in an unknown state: the caller rolls back (to a savepoint).
 */
typedef int (*proj_fold_set_fn)(PGconn *conn,
                                const struct es_event *const *evs,
                                size_t n,
                                unsigned flags,
                                struct sp_errbuf *eb);

/* proj_fold_set_fn flag: the fold runs in a rebuild's load (proj_rebuild), into tables
 * that were empty at its start; it may leave out the rows of tables the projection's
 * rebuild_end derives from the others. */
#define PROJ_FOLD_BULK 1u

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

/**
 * The view of an LMDB projection (PROJ_STORE_LMDB): its format and its folds. The runner
 * owns the environment (proj/view.h), the write transactions, the checkpoints and the
 * dead letters; the view owns its named databases and their encoding.
 */
struct proj_view_ops {
    const char *format;  /* stored in the view; a view of another format is refused */
    unsigned max_dbs;    /* named databases the view uses (besides proj/view.h's) */
    const bool *handles; /* ES_TYPE__COUNT entries: the types fold handles; the others
                          * only advance the view */
    /** New per-runner state (analyzer, batch buffers). @return 0 or an error. */
    int (*state_new)(void **state, struct sp_errbuf *eb);
    void (*state_free)(void *state);
    /** Open or create the view's databases in the write transaction @p txn (after each
     *  open of the environment). @return 0 or SP_EDB. */
    int (*open)(void *state, MDB_txn *txn, struct sp_errbuf *eb);
    /**
     * Fold one event (checked against the catalogue) in @p txn, a nested transaction the
     * runner aborts on error; the state must then be as before the call.
     * @return 0; SP_ENOTFOUND / SP_ESCHEMA / SP_EINVAL / SP_ETOOBIG: poison (the event
     *         itself); SP_EDB or anything else: transient, the batch is retried.
     */
    int (*fold)(void *state, MDB_txn *txn, const struct es_event *ev, struct sp_errbuf *eb);
    /* The fold only reads @p txn (it buffers every change for flush) and leaves its state
     * as before the call whenever it returns a poison error: the runner then passes the
     * batch's transaction itself, without a nested one per event. */
    bool fold_reads_only;
    /** At the end of each batch, before the checkpoint: write what the folds buffered.
     *  @return 0 or SP_EDB (the batch is rolled back). */
    int (*flush)(void *state, MDB_txn *txn, struct sp_errbuf *eb);
    /** The batch was rolled back: forget what the folds buffered. */
    void (*discard)(void *state);
};

struct proj_projection {
    const char *name;      /* e.g. "pg"; the checkpoint and metrics key */
    enum proj_store store; /* where the view lives */
    /* PROJ_STORE_PG */
    const proj_apply_fn *folds;      /* ES_TYPE__COUNT entries indexed by enum es_type: the fold
                                      * of each type; NULL = the type only advances the view */
    const char *migrations;          /* migration set, relative to the SQL dir ("." = all) */
    const struct proj_table *tables; /* the view's tables */
    size_t n_tables;
    proj_fold_set_fn fold_set; /* NULL: events are folded one by one */
    proj_batch_fn batch_begin; /* NULL: none */
    proj_batch_fn batch_end;   /* NULL: none */
    /* Run once at the end of a rebuild's load, after its last batch and before its one
     * batch_end and the tables' late_indexes: derive what the bulk folds (PROJ_FOLD_BULK)
     * left out, or what is cheaper to derive from the whole tables than to apply. NULL:
     * none. */
    proj_batch_fn rebuild_end;
    /* PROJ_STORE_LMDB */
    const struct proj_view_ops *view;
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
 * notification_reads; Session* into sessions (never a hash). Other catalogue types only
 * advance the checkpoint.
 * @return borrowed, static.
 */
const struct proj_projection *proj_pg_projection(void);

/**
 * The LMDB projection "search": recipes and users into the search view of proj/search.h
 * (UserRegistered, ProfileUpdated, RecipeCreated/Updated/Deleted; other catalogue types
 * only advance it), in <views.dir>/search. @return borrowed, static.
 */
const struct proj_projection *proj_search_projection(void);

/**
 * The LMDB projection "analytics": the analytics view of proj/analytics.h (every catalogue
 * type that a user causes: counters per day, active users, cohorts, recipe reactions), in
 * <views.dir>/analytics. @return borrowed, static.
 */
const struct proj_projection *proj_analytics_projection(void);

/** Number of registered projections. */
size_t proj_registry_count(void);

/** Registered projection @p i (< proj_registry_count()). @return borrowed, static. */
const struct proj_projection *proj_registry_at(size_t i);

/** Registered projection by name. @return borrowed, static; NULL if unknown. */
const struct proj_projection *proj_registry_find(const char *name);

/**
 * The projections named in @p list, a comma-separated list of registered names (spaces
 * allowed; config key projector.projections), in list order, without repeats.
 * @param out  up to @p cap entries (borrowed, static); @p n receives how many
 * @return 0; SP_EINVAL naming the unknown entry in eb (field "projector.projections"), or
 *         if the list is empty or longer than @p cap.
 */
SP_MUST_CHECK int proj_registry_select(const char *list,
                                       const struct proj_projection **out,
                                       size_t cap,
                                       size_t *n,
                                       struct sp_errbuf *eb);

/** Whether @p proj folds events of @p type (false for ES_TYPE_UNKNOWN). */
bool proj_projection_handles(const struct proj_projection *proj, enum es_type type);

#endif
