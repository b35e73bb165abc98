/*
 * The search view's reader: its lifetime, the view's counts, the tag lookup and what its
 * copies of databases for one snapshot have been paid towards.
 */
#include <stdlib.h>
#include <string.h>

#include "search_reader_impl.h"
#include "sp/alloc.h"
#include "sp/banned.h"

int proj_search_reader_open(MDB_txn *txn, struct proj_search_reader **out, struct sp_errbuf *eb)
{
    struct proj_search_reader *r = sp_xcalloc(1, sizeof(*r));
    int rc = search__dbs_open(txn, false, &r->dbs, eb);

    if (rc == 0) {
        rc = proj_text_new(&r->text);
        if (rc != 0)
            sp_err_set(eb, rc, NULL, "could not create the search analyzer");
    }
    if (rc != 0) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void proj_search_reader_free(struct proj_search_reader *r)
{
    if (r == NULL)
        return;
    free(r->plan.v);
    search__cands_release(&r->c);
    search__cands_release(&r->tmp);
    search__doc_release(&r->doc);
    proj__bytes_release(&r->buf);
    free(r->fslots);
    free(r->fused);
    free(r->fcounts);
    free(r->fseen);
    search__tagcol_release(&r->tagcol);
    search__lexcopy_release(&r->lexcopy);
    free(r->hset);
    free(r->toks);
    proj_text_free(r->text);
    free(r);
}

uint64_t search__txn_snapshot(MDB_txn *txn)
{
    MDB_envinfo info;
    uint64_t id = mdb_txn_id(txn);

    /* a write transaction has the id its commit will have: past the last committed */
    if (mdb_env_info(mdb_txn_env(txn), &info) != 0 || id > info.me_last_txnid)
        return 0;
    return id;
}

bool search__rental_pay(struct search_rental *rent, uint64_t snapshot, size_t work, size_t price)
{
    if (snapshot == 0)
        return false;
    rent->debt = rent->snapshot == snapshot ? rent->debt + work : work;
    rent->snapshot = snapshot;
    if (rent->debt < price)
        return false;
    rent->debt = 0;
    return true;
}

int proj_search_stats(struct proj_search_reader *r,
                      MDB_txn *txn,
                      struct proj_search_stats *out,
                      struct sp_errbuf *eb)
{
    uint64_t sums[PROJ_SEARCH_FIELDS];
    MDB_stat st;
    int rc = search__stats_recipes(txn, &r->dbs, &out->recipes, sums, eb);

    if (rc == 0)
        rc = search__stats_u64(txn, &r->dbs, SEARCH_STATS_USERS, &out->users, eb);
    if (rc == 0) {
        rc = mdb_stat(txn, r->dbs.dbi[SDB_WORDS], &st);
        if (rc != 0)
            return proj__mdb_err(eb, rc, "could not read the search lexicon");
        out->words = st.ms_entries;
    }
    return rc;
}

/* ------------------------------------------------------------------ tags */

struct tag_hit {
    const uint8_t *tag; /* borrowed from the read transaction */
    size_t len;
    uint32_t count;
};

static bool tag_before(const struct tag_hit *a, const struct tag_hit *b)
{
    if (a->count != b->count)
        return a->count > b->count;
    int c = memcmp(a->tag, b->tag, a->len < b->len ? a->len : b->len);
    return c != 0 ? c < 0 : a->len < b->len;
}

/* Insert @p h into the ranked list @p top of at most @p limit. */
static void tag_offer(struct tag_hit *top, size_t *n, size_t limit, const struct tag_hit *h)
{
    size_t at = *n;

    while (at > 0 && tag_before(h, &top[at - 1]))
        at--;
    if (at == limit)
        return;
    size_t keep = *n < limit ? *n : limit - 1;
    memmove(&top[at + 1], &top[at], (keep - at) * sizeof(*top));
    top[at] = *h;
    *n = keep + 1;
}

/* Tags most used first, from tag_rank. */
static int tags_all(MDB_cursor *rank, struct tag_hit *top, size_t *n, size_t limit)
{
    MDB_val k, v;
    int rc;

    for (rc = mdb_cursor_get(rank, &k, &v, MDB_FIRST); rc == 0 && *n < limit;
         rc = mdb_cursor_get(rank, &k, &v, MDB_NEXT))
        if (k.mv_size > 4)
            top[(*n)++] = (struct tag_hit){(const uint8_t *)k.mv_data + 4, k.mv_size - 4,
                                           UINT32_MAX - proj__get32(k.mv_data)};
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : rc;
}

/* Tags beginning with @p prefix, ranked. */
static int tags_prefix(MDB_cursor *tags,
                       const uint8_t *prefix,
                       size_t len,
                       struct tag_hit *top,
                       size_t *n,
                       size_t limit)
{
    MDB_val k = {len, proj__mdb_data(prefix)}, v;
    int rc;

    for (rc = mdb_cursor_get(tags, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(tags, &k, &v, MDB_NEXT)) {
        if (k.mv_size < len || memcmp(k.mv_data, prefix, len) != 0)
            break;
        struct tag_hit h = {k.mv_data, k.mv_size, v.mv_size == 4 ? proj__get32(v.mv_data) : 0};
        tag_offer(top, n, limit, &h);
    }
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : rc;
}

static json_t *tags_json(const struct tag_hit *top, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s%,s:I}", "tag", (const char *)top[i].tag,
                                             top[i].len, "count", (json_int_t)top[i].count));
    return json_pack("{s:o}", "tags", arr);
}

int proj_search_tags(struct proj_search_reader *r,
                     MDB_txn *txn,
                     const char *prefix,
                     size_t len,
                     unsigned limit,
                     json_t **out,
                     struct sp_errbuf *eb)
{
    struct tag_hit top[PROJ_SEARCH_MAX_LIMIT];
    size_t n = 0;
    MDB_cursor *cur;
    int rc;

    if (limit < 1 || limit > PROJ_SEARCH_MAX_LIMIT)
        return sp_err_set(eb, SP_EINVAL, "limit", "must be 1 to %d", PROJ_SEARCH_MAX_LIMIT);
    if (len > PROJ_SEARCH_MAX_QUERY_BYTES)
        return sp_err_set(eb, SP_EINVAL, "q", "must be at most %d bytes long",
                          PROJ_SEARCH_MAX_QUERY_BYTES);
    r->buf.len = 0;
    if (len > 0 && search__tag_fold(prefix, len, &r->buf) < 0)
        return sp_err_set(eb, SP_EINVAL, "q", "must be valid UTF-8");
    rc = mdb_cursor_open(txn, r->dbs.dbi[r->buf.len ? SDB_TAGS : SDB_TAG_RANK], &cur);
    if (rc == 0) {
        rc = r->buf.len ? tags_prefix(cur, r->buf.data, r->buf.len, top, &n, limit)
                        : tags_all(cur, top, &n, limit);
        mdb_cursor_close(cur);
    }
    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not read the search tags");
    *out = tags_json(top, n);
    return 0;
}
