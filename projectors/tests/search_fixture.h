/* Test support of the search view: a real LMDB environment in a temporary directory,
 * events made with es_event_make, batches folded and flushed as the runner does. */
#ifndef SEARCH_FIXTURE_H
#define SEARCH_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <lmdb.h>

#include "es/event.h"
#include "proj/search.h"
#include "sp/buf.h"

struct sfx {
    char dir[64];
    MDB_env *env;
    struct proj_search_writer *w;
    struct proj_search_reader *r; /* opened lazily by sfx_reader */
};

/** Create a temporary environment of @p map_bytes (0 = 64 MiB) and open a writer on it. */
void sfx_open(struct sfx *f, size_t map_bytes);
/** Close everything and remove the directory. */
void sfx_close(struct sfx *f);

/** A RecipeCreated event (stream recipe-<id>); @p tags and lists are JSON arrays (stolen). */
void sfx_recipe(struct es_event *ev,
                uint64_t id,
                uint64_t author,
                const char *lang,
                const char *title,
                const char *description,
                json_t *ingredients,
                json_t *steps,
                json_t *tags);
/** An event of @p type on stream @p category-<id> with payload @p data (stolen). */
void sfx_event(struct es_event *ev,
               const char *type,
               const char *category,
               uint64_t id,
               int64_t version,
               json_t *data);

/**
 * Fold @p evs in one write transaction, one nested transaction per event (aborted when
 * the fold fails), then flush and commit. @p rcs (may be NULL) gets each fold's result.
 * @return the flush's result.
 */
int sfx_batch(struct sfx *f, struct es_event *evs, size_t n, int *rcs);

/** Run a recipe search in a read transaction; returns the JSON (owned) or NULL with *rc. */
json_t *sfx_search(struct sfx *f, const struct proj_search_query *q, int *rc);
/** Search text only (limit 20, page 1); the hit ids as a "," separated string in @p ids. */
json_t *sfx_q(struct sfx *f, const char *text, char *ids, size_t ids_size);
/** The ids of a search answer's hits, "101,102". */
void sfx_hit_ids(const json_t *res, char *out, size_t out_size);

/** Append every key and value of every search database to @p out (length-prefixed). */
void sfx_dump(struct sfx *f, struct sp_buf *out);

#endif
