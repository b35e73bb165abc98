/*
 * The search view's writer: its lifetime and the fold of recipe and user events into the
 * batch's pending states (written by search_flush.c).
 */
#include <stdlib.h>
#include <string.h>

#include "es/catalogue.h"
#include "search_writer_impl.h"
#include "sp/alloc.h"
#include "sp/banned.h"

int proj_search_writer_new(struct proj_search_writer **out)
{
    struct proj_search_writer *w = sp_xcalloc(1, sizeof(*w));
    int rc = proj_text_new(&w->text);

    if (rc != 0) {
        free(w);
        return rc;
    }
    search__dupdelta_init(&w->postings, PROJ_SEARCH_POSTING_BYTES);
    search__dupdelta_init(&w->filters, 8);
    search__dupdelta_init(&w->user_words, 8);
    search__dupdelta_init(&w->doc_tags, SEARCH_DOC_TAG_BYTES);
    *out = w;
    return 0;
}

static void pendset_reset(struct search_pendset *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        free(ps->items[i].rec);
    ps->n = 0;
    proj__idmap_reset(&ps->map);
}

static void pendset_release(struct search_pendset *ps)
{
    pendset_reset(ps);
    free(ps->items);
    proj__idmap_release(&ps->map);
}

void proj_search_writer_free(struct proj_search_writer *w)
{
    if (w == NULL)
        return;
    pendset_release(&w->recipes);
    pendset_release(&w->users);
    search__doc_release(&w->doc);
    search__doc_release(&w->before_doc);
    search__doc_release(&w->after_doc);
    proj__bytes_release(&w->rec);
    search__docterms_release(&w->before);
    search__docterms_release(&w->after);
    proj__strmap_release(&w->user_before);
    proj__strmap_release(&w->user_after);
    search__dupdelta_release(&w->postings);
    search__dupdelta_release(&w->filters);
    search__dupdelta_release(&w->user_words);
    search__dupdelta_release(&w->doc_tags);
    free(w->tag_hashes);
    proj__strmap_release(&w->words);
    proj__strmap_release(&w->tags);
    proj__bytes_release(&w->stems);
    free(w->word_delta);
    free(w->tag_delta);
    proj_text_free(w->text);
    free(w);
}

void search__writer_reset(struct proj_search_writer *w)
{
    pendset_reset(&w->recipes);
    pendset_reset(&w->users);
    search__dupdelta_reset(&w->postings);
    search__dupdelta_reset(&w->filters);
    search__dupdelta_reset(&w->user_words);
    search__dupdelta_reset(&w->doc_tags);
    proj__strmap_reset(&w->words);
    proj__strmap_reset(&w->tags);
    w->stems.len = 0;
    w->recipes_delta = w->users_delta = 0;
    memset(w->len_delta, 0, sizeof(w->len_delta));
}

void proj_search_discard(struct proj_search_writer *w)
{
    search__writer_reset(w);
}

size_t proj_search_pending(const struct proj_search_writer *w)
{
    return w->recipes.n + w->users.n;
}

int proj_search_writer_open(struct proj_search_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    int rc = search__dbs_open(txn, true, &w->dbs, eb);

    search__writer_reset(w);
    w->open = rc == 0;
    return rc;
}

int proj_search_clear(struct proj_search_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    SP_ASSERT(w->open);
    search__writer_reset(w);
    for (int i = 0; i < SDB__COUNT; i++) {
        int rc = mdb_drop(txn, w->dbs.dbi[i], 0);
        if (rc != 0)
            return proj__mdb_err(eb, rc, "could not empty the search view");
    }
    return 0;
}

/* ------------------------------------------------------------------ pending states */

/* Replace the pending state of @p id by a copy of @p rec (NULL: deleted). */
static void pend_set(struct search_pendset *ps, uint64_t id, const void *rec, size_t len)
{
    int64_t i = proj__idmap_get(&ps->map, id);
    uint8_t *copy = NULL;

    if (rec != NULL) {
        copy = sp_xmalloc(len ? len : 1);
        memcpy(copy, rec, len);
    }
    if (i < 0) {
        PROJ_GROW(ps->items, ps->cap, ps->n + 1);
        i = (int64_t)ps->n++;
        proj__idmap_put(&ps->map, id, (uint32_t)i);
    } else {
        free(ps->items[i].rec);
    }
    ps->items[i] = (struct search_pending){id, copy, len};
}

/*
 * The current record of @p id: its pending state, else the stored one (borrowed until
 * the pending state changes or @p txn writes). @return 0; 1 if there is none; SP_EDB.
 */
static int current(MDB_txn *txn,
                   MDB_dbi dbi,
                   const struct search_pendset *ps,
                   uint64_t id,
                   MDB_val *rec,
                   struct sp_errbuf *eb)
{
    int64_t i = proj__idmap_get(&ps->map, id);
    uint8_t key[8];
    MDB_val k = {8, key};
    int rc;

    if (i >= 0) {
        *rec = (MDB_val){ps->items[i].len, ps->items[i].rec};
        return ps->items[i].rec != NULL ? 0 : 1;
    }
    proj__be64(key, id);
    rc = mdb_get(txn, dbi, &k, rec);
    if (rc == MDB_NOTFOUND)
        return 1;
    return rc != 0 ? proj__mdb_err(eb, rc, "could not read the search view") : 0;
}

static int stream_id(const struct es_event *ev, uint64_t *id, struct sp_errbuf *eb)
{
    int64_t v = es_event_stream_id(ev);

    if (v <= 0)
        return sp_err_set(eb, SP_ESCHEMA, "stream", "stream \"%s\" has no id",
                          ev->stream ? ev->stream : "");
    *id = (uint64_t)v;
    return 0;
}

/* ------------------------------------------------------------------ recipes */

/* A recipe before its RecipeCreated payload: language "en", empty texts. */
static void doc_blank(struct search_doc *d)
{
    memset(d->n, 0, sizeof(d->n));
    d->author_id = 0;
    memcpy(d->lang, "en", 3);
    search__doc_set(d, PROJ_SEARCH_TITLE, 0, "", 0);
    search__doc_set(d, PROJ_SEARCH_DESCRIPTION, 0, "", 0);
    d->n[PROJ_SEARCH_TITLE] = d->n[PROJ_SEARCH_DESCRIPTION] = 1;
}

static int fold_recipe(struct proj_search_writer *w,
                       MDB_txn *txn,
                       const struct es_event *ev,
                       bool created,
                       struct sp_errbuf *eb)
{
    uint64_t id = 0;
    MDB_val rec;
    int rc = stream_id(ev, &id, eb);

    if (rc != 0)
        return rc;
    doc_blank(&w->doc);
    if (!created) {
        rc = current(txn, w->dbs.dbi[SDB_RECIPES], &w->recipes, id, &rec, eb);
        if (rc == 1)
            return sp_err_set(eb, SP_ENOTFOUND, "stream", "search view has no recipe %llu",
                              (unsigned long long)id);
        if (rc == 0 && search__doc_decode(&w->doc, rec.mv_data, rec.mv_size) != 0)
            rc = sp_err_set(eb, SP_ECORRUPT, NULL, "search record of recipe %llu is corrupt",
                            (unsigned long long)id);
    }
    if (rc == 0)
        rc = search__doc_from_json(&w->doc, ev->data, eb);
    if (rc == 0)
        rc = search__doc_encode(&w->doc, &w->rec, eb);
    if (rc == 0)
        pend_set(&w->recipes, id, w->rec.data, w->rec.len);
    return rc;
}

static int fold_recipe_deleted(struct proj_search_writer *w,
                               MDB_txn *txn,
                               const struct es_event *ev,
                               struct sp_errbuf *eb)
{
    uint64_t id = 0;
    MDB_val rec;
    int rc = stream_id(ev, &id, eb);

    if (rc == 0)
        rc = current(txn, w->dbs.dbi[SDB_RECIPES], &w->recipes, id, &rec, eb);
    if (rc == 1)
        return sp_err_set(eb, SP_ENOTFOUND, "stream", "search view has no recipe %llu",
                          (unsigned long long)id);
    if (rc == 0)
        pend_set(&w->recipes, id, NULL, 0);
    return rc;
}

/* ------------------------------------------------------------------ users */

/* Set @p *s from the payload field @p name: string, or null (clears). 1 if absent. */
static int
user_field(json_t *data, const char *name, struct search_str *s, bool *has, struct sp_errbuf *eb)
{
    json_t *v = json_object_get(data, name);

    if (v == NULL)
        return 0;
    if (json_is_null(v)) {
        *s = (struct search_str){"", 0};
        *has = false;
        return 0;
    }
    if (!json_is_string(v))
        return sp_err_set(eb, SP_ESCHEMA, name, "must be a string or null");
    *s = (struct search_str){json_string_value(v), (uint32_t)json_string_length(v)};
    *has = true;
    return 0;
}

static int fold_user(struct proj_search_writer *w,
                     MDB_txn *txn,
                     const struct es_event *ev,
                     bool registered,
                     struct sp_errbuf *eb)
{
    struct search_user u = {{"", 0}, {"", 0}, {"", 0}, false, false};
    bool has_username = false;
    uint64_t id = 0;
    MDB_val rec;
    int rc = stream_id(ev, &id, eb);

    if (rc == 0 && !registered) {
        rc = current(txn, w->dbs.dbi[SDB_USERS], &w->users, id, &rec, eb);
        if (rc == 1)
            return sp_err_set(eb, SP_ENOTFOUND, "stream", "search view has no user %llu",
                              (unsigned long long)id);
        if (rc == 0 && search__user_decode(&u, rec.mv_data, rec.mv_size) != 0)
            rc = sp_err_set(eb, SP_ECORRUPT, NULL, "search record of user %llu is corrupt",
                            (unsigned long long)id);
    }
    if (rc == 0 && registered) {
        rc = user_field(ev->data, "username", &u.username, &has_username, eb);
        if (rc == 0 && !has_username)
            rc = sp_err_set(eb, SP_ESCHEMA, "username", "must be a string");
    }
    if (rc == 0)
        rc = user_field(ev->data, "full_name", &u.full_name, &u.has_full_name, eb);
    if (rc == 0)
        rc = user_field(ev->data, "bio", &u.bio, &u.has_bio, eb);
    if (rc == 0)
        rc = search__user_encode(&u, &w->rec, eb);
    if (rc == 0)
        pend_set(&w->users, id, w->rec.data, w->rec.len);
    return rc;
}

int proj_search_fold(struct proj_search_writer *w,
                     MDB_txn *txn,
                     const struct es_event *ev,
                     struct sp_errbuf *eb)
{
    SP_ASSERT(w->open);
    switch (ev->type_id) {
    case ES_TYPE_RECIPE_CREATED:
        return fold_recipe(w, txn, ev, true, eb);
    case ES_TYPE_RECIPE_UPDATED:
        return fold_recipe(w, txn, ev, false, eb);
    case ES_TYPE_RECIPE_DELETED:
        return fold_recipe_deleted(w, txn, ev, eb);
    case ES_TYPE_USER_REGISTERED:
        return fold_user(w, txn, ev, true, eb);
    case ES_TYPE_PROFILE_UPDATED:
        return fold_user(w, txn, ev, false, eb);
    default:
        return 0;
    }
}
