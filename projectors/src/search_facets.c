/*
 * Tag facets of a recipe search: the most used tags among all hits, counted one of two
 * ways with the same result:
 * - merging the hits (sorted by id) with the doc_tags column of (recipe id, tag hash) pairs
 *   a page at a time, each page matched from its smaller side; few hits seek to their pages
 *   instead of stepping through all of them. Its cost is the column's pages mapped in,
 *   mostly cache misses: about a page per hit;
 * - from the reader's copy of the column for the snapshot read (struct search_tagcol), a
 *   few cached bytes per hit. A copy costs about a dozen full merges: it is made once the
 *   merges on one snapshot have cost that much (struct search_rental).
 * Names are read from tag_names for the top counts only (kept with the copy).
 */
#include <stdlib.h>
#include <string.h>

#include "search_reader_impl.h"
#include "sp/alloc.h"
#include "sp/banned.h"

/* Pairs per doc_tags page, about (page size - header) / 16; for the seek heuristic. */
#define PAIRS_PER_PAGE 255
/*
 * What a copy of the column costs, in pages merged per page of the column: measured, a copy
 * of 100,000 pairs takes about as long as 12 merges stepping through all their pages.
 */
#define TAGCOL_PRICE 12
/* Largest column copied, in pairs (about 6 ms to copy, 8 MB in memory; larger: merged). */
#define TAGCOL_MAX_PAIRS (1u << 20)
/* tag_names of a tag number: not read yet, or read and absent. */
#define NAME_UNREAD UINT32_MAX
#define NAME_NONE   (UINT32_MAX - 1)

struct facet {
    char tag[SEARCH_TAG_MAX + 1];
    size_t len;
    uint64_t count;
};

struct facet_top {
    struct facet f[PROJ_SEARCH_FACET_TAGS];
    size_t n;
};

/* ------------------------------------------------------------------ counting by merge */

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
    uint64_t h = proj__get64(pair + 8);
    size_t s = h & (r->fslots_n - 1);

    while (r->fslots[s].count != 0 && r->fslots[s].hash != h)
        s = (s + 1) & (r->fslots_n - 1);
    if (r->fslots[s].count++ != 0)
        return;
    r->fslots[s].hash = h;
    PROJ_GROW(r->fused, r->fused_cap, r->n_fused + 1);
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
    MDB_val k = {1, proj__mdb_data(SEARCH_DOC_TAGS_KEY)}, v = {sizeof(probe), probe};
    int rc;

    proj__be64(probe, id);
    rc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
    *page = v; /* a key with one value is no page: GET_MULTIPLE leaves it as is */
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, page, MDB_GET_MULTIPLE);
    return rc;
}

/*
 * Merge the hits with the column of @p pairs pairs, @p cur on its key and @p page its
 * first value (a key with one value is no page: GET_MULTIPLE leaves it as is); *pages =
 * pages read.
 */
static int count_pairs(
    struct proj_search_reader *r, MDB_cursor *cur, MDB_val page, size_t pairs, size_t *pages)
{
    const uint64_t *ids = r->c.id;
    size_t n = r->c.n, ci = 0;
    MDB_val k = {1, proj__mdb_data(SEARCH_DOC_TAGS_KEY)};
    bool sparse = n * 4 < pairs / PAIRS_PER_PAGE;
    int rc =
        sparse ? seek_pairs(cur, ids[0], &page) : mdb_cursor_get(cur, &k, &page, MDB_GET_MULTIPLE);

    fslots_reset(r);
    while (rc == 0 && ci < n) {
        const uint8_t *e = page.mv_data;
        size_t m = page.mv_size / SEARCH_DOC_TAG_BYTES;
        uint64_t last = search__id_at(e + (m - 1) * SEARCH_DOC_TAG_BYTES);
        size_t lo = search__ids_bound(ids, ci, n, search__id_at(e), false);
        size_t hi = search__ids_bound(ids, lo, n, last, true);
        page_count(r, e, m, lo, hi);
        (*pages)++;
        /* a hit whose pairs go on to the next page stays current */
        bool straddles = hi > lo && ids[hi - 1] == last;
        ci = straddles ? hi - 1 : hi;
        if (ci < n)
            rc = sparse && !straddles ? seek_pairs(cur, ids[ci], &page)
                                      : mdb_cursor_get(cur, &k, &page, MDB_NEXT_MULTIPLE);
    }
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : SP_EDB;
}

/* The merge's counts as (hash, count) entries of r->fcounts. */
static void merge_counts(struct proj_search_reader *r)
{
    PROJ_GROW(r->fcounts, r->fcounts_cap, r->n_fused);
    for (size_t i = 0; i < r->n_fused; i++) {
        const struct search_fslot *s = &r->fslots[r->fused[i]];
        r->fcounts[i] = (struct search_fcount){s->hash, s->count, UINT32_MAX};
    }
    r->n_fcounts = r->n_fused;
}

/* ------------------------------------------------------------------ the copy in memory */

void search__tagcol_release(struct search_tagcol *tc)
{
    free(tc->rows);
    free(tc->tag);
    free(tc->tags);
    free(tc->counts);
    proj__idmap_release(&tc->numbers);
    proj__bytes_release(&tc->names);
    memset(tc, 0, sizeof(*tc));
}

/* Append the pair (@p id, @p hash), the column being read in order. */
static void tagcol_add(struct search_tagcol *tc, uint64_t id, uint64_t hash)
{
    int64_t t = proj__idmap_get(&tc->numbers, hash);

    if (t < 0) {
        t = (int64_t)tc->n_tags;
        PROJ_GROW(tc->tags, tc->tags_cap, tc->n_tags + 1);
        PROJ_GROW(tc->counts, tc->counts_cap, tc->n_tags + 1);
        tc->tags[tc->n_tags] = (struct search_tagcol_tag){hash, 0, NAME_UNREAD};
        tc->counts[tc->n_tags++] = 0;
        proj__idmap_put(&tc->numbers, hash, (uint32_t)t);
    }
    if (tc->n_rows == 0 || tc->rows[tc->n_rows - 1].id != id) {
        PROJ_GROW(tc->rows, tc->rows_cap, tc->n_rows + 2);
        tc->rows[tc->n_rows++] = (struct search_tagcol_row){id, (uint32_t)tc->n_pairs};
    }
    tc->tag[tc->n_pairs++] = (uint32_t)t;
}

/* Copy the column of @p pairs pairs (@p cur on its key, @p page its first value). */
static int tagcol_build(
    struct search_tagcol *tc, MDB_cursor *cur, MDB_val page, size_t pairs, uint64_t snapshot)
{
    MDB_val k;
    int rc = mdb_cursor_get(cur, &k, &page, MDB_GET_MULTIPLE);

    tc->snapshot = 0;
    tc->n_rows = tc->n_pairs = tc->n_tags = 0;
    tc->names.len = 0;
    proj__idmap_reset(&tc->numbers);
    PROJ_GROW(tc->tag, tc->tag_cap, pairs);
    while (rc == 0) {
        const uint8_t *e = page.mv_data;
        size_t m = page.mv_size / SEARCH_DOC_TAG_BYTES;
        if (tc->n_pairs + m > pairs)
            return SP_ECORRUPT; /* more pairs than counted */
        for (size_t i = 0; i < m; i++, e += SEARCH_DOC_TAG_BYTES)
            tagcol_add(tc, search__id_at(e), proj__get64(e + 8));
        rc = mdb_cursor_get(cur, &k, &page, MDB_NEXT_MULTIPLE);
    }
    if (rc != MDB_NOTFOUND)
        return SP_EDB;
    PROJ_GROW(tc->rows, tc->rows_cap, tc->n_rows + 1);
    tc->rows[tc->n_rows] = (struct search_tagcol_row){UINT64_MAX, (uint32_t)tc->n_pairs};
    tc->snapshot = snapshot;
    return 0;
}

/* First row at or after @p j whose id is >= @p id (or n_rows): a few steps, then galloping. */
static size_t row_seek(const struct search_tagcol *tc, size_t j, uint64_t id)
{
    size_t n = tc->n_rows, lo, hi, step;

    for (size_t end = j + 8; j < n && j < end; j++)
        if (tc->rows[j].id >= id)
            return j;
    for (lo = hi = j, step = 8; hi < n && tc->rows[hi].id < id; step *= 2) {
        lo = hi + 1; /* rows before lo are < id */
        hi += step;
    }
    hi = hi < n ? hi : n; /* the answer is in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tc->rows[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Count the tags of row @p j; *n_new = tags counted for the first time (numbers in @p seen). */
static void row_count(struct search_tagcol *tc, size_t j, uint32_t *seen, size_t *n_new)
{
    for (uint32_t p = tc->rows[j].first; p < tc->rows[j + 1].first; p++) {
        uint32_t t = tc->tag[p];
        seen[*n_new] = t;
        *n_new += tc->counts[t]++ == 0;
    }
}

/*
 * Count the tags of all hits from the copy into r->fcounts. Hits about as many as the rows
 * are merged with them in one pass; fewer are looked for.
 */
static void tagcol_count(struct proj_search_reader *r)
{
    struct search_tagcol *tc = &r->tagcol;
    const uint64_t *ids = r->c.id;
    size_t n = r->c.n, i = 0, j = 0, n_new = 0;
    uint32_t *seen;

    PROJ_GROW(r->fseen, r->fseen_cap, tc->n_tags + 1);
    seen = r->fseen;
    if (n * 8 >= tc->n_rows) {
        while (i < n && j < tc->n_rows) {
            uint64_t a = ids[i], b = tc->rows[j].id;
            if (a == b)
                row_count(tc, j, seen, &n_new);
            i += a <= b;
            j += b <= a;
        }
    }
    for (; i < n && j < tc->n_rows; i++) {
        j = row_seek(tc, j, ids[i]);
        if (j < tc->n_rows && tc->rows[j].id == ids[i])
            row_count(tc, j, seen, &n_new);
    }
    PROJ_GROW(r->fcounts, r->fcounts_cap, n_new);
    for (size_t k = 0; k < n_new; k++) { /* the copy's counters start at 0 again */
        r->fcounts[k] =
            (struct search_fcount){tc->tags[seen[k]].hash, tc->counts[seen[k]], seen[k]};
        tc->counts[seen[k]] = 0;
    }
    r->n_fcounts = n_new;
}

/*
 * Count the tags of all hits into r->fcounts, from the copy of the column if it is of
 * r->snapshot, else by a merge, after which the copy is made if merges on this
 * snapshot have cost what it does.
 */
static int count_hits(struct proj_search_reader *r, MDB_cursor *cur)
{
    struct search_tagcol *tc = &r->tagcol;
    uint64_t snapshot = r->snapshot;
    MDB_val k = {1, proj__mdb_data(SEARCH_DOC_TAGS_KEY)}, v;
    size_t pairs = 0, pages = 0;
    int rc;

    if (snapshot != 0 && tc->snapshot == snapshot) {
        tagcol_count(r);
        return 0;
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    if (rc == 0)
        rc = mdb_cursor_count(cur, &pairs);
    if (rc == 0)
        rc = count_pairs(r, cur, v, pairs, &pages);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? 0 : SP_EDB;
    merge_counts(r);
    if (pairs > TAGCOL_MAX_PAIRS ||
        !search__rental_pay(&tc->rent, snapshot, pages,
                            TAGCOL_PRICE * (pairs / PAIRS_PER_PAGE + 1)))
        return 0;
    /* the counts are made: a copy that fails is only not made (the next merges retry) */
    if (mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) == 0)
        (void)tagcol_build(tc, cur, v, pairs, snapshot);
    return 0;
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

    for (size_t i = 0; i < r->n_fcounts; i++) {
        uint32_t c = r->fcounts[i].count;
        if (n == PROJ_SEARCH_FACET_TAGS && c <= top[n - 1])
            continue;
        size_t at = n < PROJ_SEARCH_FACET_TAGS ? n++ : n - 1;
        for (; at > 0 && top[at - 1] < c; at--)
            top[at] = top[at - 1];
        top[at] = c;
    }
    return n < PROJ_SEARCH_FACET_TAGS ? 0 : top[n - 1];
}

/* The name of tag @p hash from tag_names. @return 0, MDB_NOTFOUND or an LMDB error. */
static int name_read(struct proj_search_reader *r, MDB_txn *txn, uint64_t hash, MDB_val *name)
{
    uint8_t hb[8];
    MDB_val k = {8, hb};

    proj__be64(hb, hash);
    return mdb_get(txn, r->dbs.dbi[SDB_TAG_NAMES], &k, name);
}

/* The name of counted tag @p fc: kept with the copy of the column when it is of it. */
static int
name_of(struct proj_search_reader *r, MDB_txn *txn, const struct search_fcount *fc, MDB_val *name)
{
    struct search_tagcol_tag *t = fc->tag != UINT32_MAX ? &r->tagcol.tags[fc->tag] : NULL;
    int rc;

    if (t != NULL && t->name_len == NAME_NONE)
        return MDB_NOTFOUND;
    if (t != NULL && t->name_len != NAME_UNREAD) {
        *name = (MDB_val){t->name_len, r->tagcol.names.data + t->name_off};
        return 0;
    }
    rc = name_read(r, txn, fc->hash, name);
    if (t != NULL && (rc == 0 || rc == MDB_NOTFOUND)) {
        t->name_off = (uint32_t)r->tagcol.names.len;
        t->name_len = rc == 0 ? (uint32_t)name->mv_size : NAME_NONE;
        if (rc == 0)
            proj__bytes_add(&r->tagcol.names, name->mv_data, name->mv_size);
    }
    return rc;
}

static int name_top(struct proj_search_reader *r, MDB_txn *txn, struct facet_top *top)
{
    uint32_t floor = count_floor(r);

    top->n = 0;
    for (size_t i = 0; i < r->n_fcounts; i++) {
        const struct search_fcount *fc = &r->fcounts[i];
        MDB_val v;
        if (fc->count < floor)
            continue;
        int rc = name_of(r, txn, fc, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return SP_EDB;
        facet_offer(top, v.mv_data, v.mv_size, fc->count);
    }
    return 0;
}

static json_t *facet_json(const struct facet_top *top)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < top->n; i++) {
        json_t *o = json_object(), *tag = json_stringn(top->f[i].tag, top->f[i].len);
        if (tag == NULL) { /* not UTF-8: left out */
            json_decref(o);
            continue;
        }
        json_object_set_new_nocheck(o, "tag", tag);
        json_object_set_new_nocheck(o, "count", json_integer((json_int_t)top->f[i].count));
        json_array_append_new(arr, o);
    }
    return arr;
}

int search__facets(struct proj_search_reader *r, MDB_txn *txn, json_t **out, struct sp_errbuf *eb)
{
    struct facet_top top = {.n = 0};
    MDB_cursor *cur;
    int rc = 0;

    r->n_fcounts = 0;
    if (r->c.n > 0) {
        rc = mdb_cursor_open(txn, r->dbs.dbi[SDB_DOC_TAGS], &cur);
        if (rc != 0)
            return proj__mdb_err(eb, rc, "could not open a search cursor");
        rc = count_hits(r, cur);
        mdb_cursor_close(cur);
    }
    if (rc == 0)
        rc = name_top(r, txn, &top);
    if (rc != 0)
        return sp_err_set(eb, SP_EDB, NULL, "could not read the search tags");
    *out = facet_json(&top);
    return 0;
}
