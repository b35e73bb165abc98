/*
 * Tag facets of a recipe search: the most used tags among all hits, counted by merging the
 * hits (sorted by id) with the doc_tags column of (recipe id, tag hash) pairs a page at a
 * time. Each page is matched from its smaller side (its pairs against the hits in its id
 * range, or those hits against its pairs); few hits seek to their pages instead of
 * stepping through all of them. Names are read from tag_names for the top counts only.
 */
#include <stdlib.h>
#include <string.h>

#include "search_reader_impl.h"
#include "sp/alloc.h"
#include "sp/banned.h"

/* Pairs per doc_tags page, about (page size - header) / 16; for the seek heuristic. */
#define PAIRS_PER_PAGE 255

struct facet {
    char tag[SEARCH_TAG_MAX + 1];
    size_t len;
    uint64_t count;
};

struct facet_top {
    struct facet f[PROJ_SEARCH_FACET_TAGS];
    size_t n;
};

/* ------------------------------------------------------------------ counting */

static void fslots_reset(struct proj_search_reader *r)
{
    for (size_t i = 0; i < r->n_fused; i++)
        r->fslots[r->fused[i]].count = 0;
    r->n_fused = 0;
    if (r->fslots == NULL) {
        r->fslots_n = 1024;
        r->fslots = sp_xcalloc(r->fslots_n, sizeof(*r->fslots));
    }
}

static void fslots_grow(struct proj_search_reader *r)
{
    struct search_fslot *old = r->fslots;
    size_t n_old = r->fslots_n;

    r->fslots_n *= 2;
    r->fslots = sp_xcalloc(r->fslots_n, sizeof(*r->fslots));
    r->n_fused = 0;
    for (size_t i = 0; i < n_old; i++) {
        if (old[i].count == 0)
            continue;
        size_t s = old[i].hash & (r->fslots_n - 1);
        while (r->fslots[s].count != 0)
            s = (s + 1) & (r->fslots_n - 1);
        r->fslots[s] = old[i];
        r->fused[r->n_fused++] = (uint32_t)s;
    }
    free(old);
}

static void count_tag(struct proj_search_reader *r, const uint8_t *pair)
{
    uint64_t h = search__get64(pair + 8);
    size_t s = h & (r->fslots_n - 1);

    while (r->fslots[s].count != 0 && r->fslots[s].hash != h)
        s = (s + 1) & (r->fslots_n - 1);
    if (r->fslots[s].count++ != 0)
        return;
    r->fslots[s].hash = h;
    SEARCH_GROW(r->fused, r->fused_cap, r->n_fused + 1);
    r->fused[r->n_fused++] = (uint32_t)s;
    if (r->n_fused * 2 > r->fslots_n)
        fslots_grow(r);
}

/* Count the tags of the hits [lo, hi) whose pairs are on the page @p e of @p m pairs. */
static void
page_count(struct proj_search_reader *r, const uint8_t *e, size_t m, size_t lo, size_t hi)
{
    const uint64_t *ids = r->c.id;
    size_t j = 0;

    if (m < hi - lo) {
        for (; j < m && lo < hi; j++) {
            uint64_t id = search__id_at(e + j * SEARCH_DOC_TAG_BYTES);
            lo = search__ids_bound(ids, lo, hi, id, false);
            if (lo < hi && ids[lo] == id)
                count_tag(r, e + j * SEARCH_DOC_TAG_BYTES);
        }
        return;
    }
    for (; lo < hi; lo++) {
        j = search__page_lower(e, j, m, SEARCH_DOC_TAG_BYTES, ids[lo]);
        for (; j < m && search__id_at(e + j * SEARCH_DOC_TAG_BYTES) == ids[lo]; j++)
            count_tag(r, e + j * SEARCH_DOC_TAG_BYTES);
    }
}

/* Position @p cur on the page of the first pair of recipe @p id (or after). */
static int seek_pairs(MDB_cursor *cur, uint64_t id, MDB_val *page)
{
    uint8_t probe[SEARCH_DOC_TAG_BYTES] = {0};
    MDB_val k = {1, search__mdb_data(SEARCH_DOC_TAGS_KEY)}, v = {sizeof(probe), probe};
    int rc;

    search__be64(probe, id);
    rc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
    *page = v; /* a key with one value is no page: GET_MULTIPLE leaves it as is */
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, page, MDB_GET_MULTIPLE);
    return rc;
}

static int count_pairs(struct proj_search_reader *r, MDB_cursor *cur)
{
    const uint64_t *ids = r->c.id;
    size_t n = r->c.n, ci = 0, pairs = 0;
    MDB_val k = {1, search__mdb_data(SEARCH_DOC_TAGS_KEY)}, page;
    int rc = mdb_cursor_get(cur, &k, &page, MDB_SET_KEY);

    if (rc == 0)
        rc = mdb_cursor_count(cur, &pairs);
    bool sparse = n * 4 < pairs / PAIRS_PER_PAGE;
    if (rc == 0)
        rc = sparse ? seek_pairs(cur, ids[0], &page)
                    : mdb_cursor_get(cur, &k, &page, MDB_GET_MULTIPLE);
    while (rc == 0 && ci < n) {
        const uint8_t *e = page.mv_data;
        size_t m = page.mv_size / SEARCH_DOC_TAG_BYTES;
        uint64_t last = search__id_at(e + (m - 1) * SEARCH_DOC_TAG_BYTES);
        size_t lo = search__ids_bound(ids, ci, n, search__id_at(e), false);
        size_t hi = search__ids_bound(ids, lo, n, last, true);
        page_count(r, e, m, lo, hi);
        /* a hit whose pairs go on to the next page stays current */
        bool straddles = hi > lo && ids[hi - 1] == last;
        ci = straddles ? hi - 1 : hi;
        if (ci < n)
            rc = sparse && !straddles ? seek_pairs(cur, ids[ci], &page)
                                      : mdb_cursor_get(cur, &k, &page, MDB_NEXT_MULTIPLE);
    }
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : SP_EDB;
}

/* ------------------------------------------------------------------ the top tags */

/* Whether (count a, tag a) ranks before (count b, tag b): count desc, then tag asc. */
static bool facet_before(uint64_t ca, const void *ta, size_t la, const struct facet *b)
{
    if (ca != b->count)
        return ca > b->count;
    int c = memcmp(ta, b->tag, la < b->len ? la : b->len);
    return c != 0 ? c < 0 : la < b->len;
}

static void facet_offer(struct facet_top *top, const void *tag, size_t len, uint64_t count)
{
    size_t at = top->n;

    if (count == 0 || len > SEARCH_TAG_MAX)
        return;
    while (at > 0 && facet_before(count, tag, len, &top->f[at - 1]))
        at--;
    if (at == PROJ_SEARCH_FACET_TAGS)
        return;
    size_t keep = top->n < PROJ_SEARCH_FACET_TAGS ? top->n : PROJ_SEARCH_FACET_TAGS - 1;
    memmove(&top->f[at + 1], &top->f[at], (keep - at) * sizeof(top->f[0]));
    memcpy(top->f[at].tag, tag, len);
    top->f[at].tag[len] = '\0';
    top->f[at].len = len;
    top->f[at].count = count;
    top->n = keep + 1;
}

/* The PROJ_SEARCH_FACET_TAGS-th largest count (0 if fewer tags): below it, no name needed. */
static uint32_t count_floor(const struct proj_search_reader *r)
{
    uint32_t top[PROJ_SEARCH_FACET_TAGS];
    size_t n = 0;

    for (size_t i = 0; i < r->n_fused; i++) {
        uint32_t c = r->fslots[r->fused[i]].count;
        if (n == PROJ_SEARCH_FACET_TAGS && c <= top[n - 1])
            continue;
        size_t at = n < PROJ_SEARCH_FACET_TAGS ? n++ : n - 1;
        for (; at > 0 && top[at - 1] < c; at--)
            top[at] = top[at - 1];
        top[at] = c;
    }
    return n < PROJ_SEARCH_FACET_TAGS ? 0 : top[n - 1];
}

static int name_top(struct proj_search_reader *r, MDB_txn *txn, struct facet_top *top)
{
    uint32_t floor = count_floor(r);

    top->n = 0;
    for (size_t i = 0; i < r->n_fused; i++) {
        const struct search_fslot *s = &r->fslots[r->fused[i]];
        uint8_t hb[8];
        MDB_val k = {8, hb}, v;
        if (s->count < floor)
            continue;
        search__be64(hb, s->hash);
        int rc = mdb_get(txn, r->dbs.dbi[SDB_TAG_NAMES], &k, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return SP_EDB;
        facet_offer(top, v.mv_data, v.mv_size, s->count);
    }
    return 0;
}

static json_t *facet_json(const struct facet_top *top)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < top->n; i++)
        json_array_append_new(arr, json_pack("{s:s%,s:I}", "tag", top->f[i].tag, top->f[i].len,
                                             "count", (json_int_t)top->f[i].count));
    return arr;
}

int search__facets(struct proj_search_reader *r, MDB_txn *txn, json_t **out, struct sp_errbuf *eb)
{
    struct facet_top top = {.n = 0};
    MDB_cursor *cur;
    int rc = 0;

    fslots_reset(r);
    if (r->c.n > 0) {
        rc = mdb_cursor_open(txn, r->dbs.dbi[SDB_DOC_TAGS], &cur);
        if (rc != 0)
            return search__mdb_err(eb, rc, "could not open a search cursor");
        rc = count_pairs(r, cur);
        mdb_cursor_close(cur);
    }
    if (rc == 0)
        rc = name_top(r, txn, &top);
    if (rc != 0)
        return sp_err_set(eb, SP_EDB, NULL, "could not read the search tags");
    *out = facet_json(&top);
    return 0;
}
