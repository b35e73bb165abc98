/*
 * A batch's changes to one DUPSORT|DUPFIXED database of the search view, gathered per key
 * and written once per key in key order (MDB_MULTIPLE for runs of insertions).
 */
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"
#include "sp/alloc.h"
#include "sp/banned.h"

void search__dupdelta_init(struct search_dupdelta *dd, size_t val_bytes)
{
    memset(dd, 0, sizeof(*dd));
    dd->val_bytes = val_bytes;
}

void search__dupdelta_release(struct search_dupdelta *dd)
{
    proj__strmap_release(&dd->keys);
    free(dd->key_of);
    free(dd->del);
    free(dd->vals);
    search__dupdelta_init(dd, dd->val_bytes);
}

void search__dupdelta_reset(struct search_dupdelta *dd)
{
    proj__strmap_reset(&dd->keys);
    dd->n = 0;
}

void search__dupdelta_add(
    struct search_dupdelta *dd, const void *key, size_t key_len, bool del, const void *val)
{
    bool added;
    size_t cap = dd->cap;

    if (dd->n + 1 > cap) {
        PROJ_GROW(dd->key_of, cap, dd->n + 1);
        dd->del = sp_xrealloc(dd->del, cap);
        dd->vals = sp_xrealloc(dd->vals, cap * dd->val_bytes);
        dd->cap = cap;
    }
    dd->key_of[dd->n] = proj__strmap_put(&dd->keys, key, key_len, &added);
    dd->del[dd->n] = del ? 1 : 0;
    memcpy(dd->vals + dd->n * dd->val_bytes, val, dd->val_bytes);
    dd->n++;
}

/* Group the changes by key, keeping their order within a key: start[k]..start[k+1]. */
static uint32_t *dupdelta_group(struct search_dupdelta *dd, uint8_t **del, uint8_t **vals)
{
    size_t nk = dd->keys.n, vb = dd->val_bytes;
    uint32_t *start = sp_xcalloc(nk + 1, sizeof(*start));
    uint32_t *fill = sp_xmalloc((nk + 1) * sizeof(*fill));

    for (size_t i = 0; i < dd->n; i++)
        start[dd->key_of[i] + 1]++;
    for (size_t k = 0; k < nk; k++)
        start[k + 1] += start[k];
    memcpy(fill, start, (nk + 1) * sizeof(*fill));
    *del = sp_xmalloc(dd->n ? dd->n : 1);
    *vals = sp_xmalloc((dd->n ? dd->n : 1) * vb);
    for (size_t i = 0; i < dd->n; i++) {
        uint32_t at = fill[dd->key_of[i]]++;
        (*del)[at] = dd->del[i];
        memcpy(*vals + (size_t)at * vb, dd->vals + i * vb, vb);
    }
    free(fill);
    return start;
}

/* Delete the value @p val of @p key. */
static int
dup_delete(MDB_cursor *cur, MDB_val *key, const uint8_t *val, size_t vb, struct sp_errbuf *eb)
{
    MDB_val v = {vb, proj__mdb_data(val)};
    int rc = mdb_cursor_get(cur, key, &v, MDB_GET_BOTH);

    if (rc == MDB_NOTFOUND)
        return sp_err_set(eb, SP_ECORRUPT, NULL,
                          "search view lacks an entry it holds for a recipe or user");
    if (rc == 0)
        rc = mdb_cursor_del(cur, 0);
    return rc != 0 ? proj__mdb_err(eb, rc, "could not delete a search entry") : 0;
}

/*
 * Whether values from @p first on sort after every value @p key holds: then they can be
 * appended (MDB_APPENDDUP), which fills pages instead of splitting them in halves. True
 * for the new recipes of a rebuild, whose ids grow with time.
 */
static bool dup_appends(MDB_cursor *cur, const MDB_val *key0, const uint8_t *first, size_t vb)
{
    MDB_val key = *key0, v;
    int rc = mdb_cursor_get(cur, &key, &v, MDB_SET_KEY);

    if (rc == MDB_NOTFOUND)
        return true;
    if (rc == 0)
        rc = mdb_cursor_get(cur, &key, &v, MDB_LAST_DUP);
    return rc == 0 && v.mv_size == vb && memcmp(v.mv_data, first, vb) < 0;
}

static int
dup_insert(MDB_cursor *cur, MDB_val *key, uint8_t *vals, size_t n, size_t vb, struct sp_errbuf *eb)
{
    MDB_val data[2] = {{vb, vals}, {n, NULL}};
    unsigned flags = MDB_MULTIPLE | (dup_appends(cur, key, vals, vb) ? MDB_APPENDDUP : 0);
    int rc = mdb_cursor_put(cur, key, data, flags);

    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not write a search entry");
    if (data[1].mv_size != n)
        return sp_err_set(eb, SP_EDB, NULL, "LMDB stored %zu of %zu search entries",
                          data[1].mv_size, n);
    return 0;
}

/*
 * Apply the changes [from, to) of one key. Each call gets a fresh copy of @p key: LMDB
 * points a returned key into a page that a deletion may then move.
 */
static int dupdelta_key(MDB_cursor *cur,
                        const MDB_val *key0,
                        const uint8_t *del,
                        uint8_t *vals,
                        size_t from,
                        size_t to,
                        size_t vb,
                        struct sp_errbuf *eb)
{
    int rc = 0;

    for (size_t j = from; j < to && rc == 0;) {
        MDB_val key = *key0;
        if (del[j]) {
            rc = dup_delete(cur, &key, vals + j * vb, vb, eb);
            j++;
            continue;
        }
        size_t k = j;
        while (k < to && !del[k])
            k++;
        rc = dup_insert(cur, &key, vals + j * vb, k - j, vb, eb);
        j = k;
    }
    return rc;
}

int search__dupdelta_apply(struct search_dupdelta *dd,
                           MDB_txn *txn,
                           MDB_dbi dbi,
                           struct sp_errbuf *eb)
{
    uint8_t *del = NULL, *vals = NULL;
    uint32_t *start, *order;
    MDB_cursor *cur;
    int rc;

    if (dd->n == 0)
        return 0;
    rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not open a search cursor");
    start = dupdelta_group(dd, &del, &vals);
    order = proj__strmap_sorted(&dd->keys);
    for (size_t i = 0; i < dd->keys.n && rc == 0; i++) {
        uint32_t k = order[i];
        size_t klen;
        const uint8_t *kb = proj__strmap_key(&dd->keys, k, &klen);
        MDB_val key = {klen, proj__mdb_data(kb)};
        rc = dupdelta_key(cur, &key, del, vals, start[k], start[k + 1], dd->val_bytes, eb);
    }
    mdb_cursor_close(cur);
    free(order);
    free(start);
    free(del);
    free(vals);
    return rc;
}
