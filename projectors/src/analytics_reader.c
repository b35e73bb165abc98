/* The analytics view's queries (proj/analytics.h): day rows, exact unions, cohorts, popular. */
#include <stdlib.h>
#include <string.h>

#include "analytics_internal.h"
#include "sp/alloc.h"

#include "sp/banned.h"

static int check_range(int32_t from, int32_t to, struct sp_errbuf *eb)
{
    if (from > to)
        return sp_err_set(eb, SP_EINVAL, "from", "from is after to");
    if ((int64_t)to - from >= PROJ_ANALYTICS_MAX_RANGE_DAYS)
        return sp_err_set(eb, SP_EINVAL, "to", "the range spans more than %d days",
                          PROJ_ANALYTICS_MAX_RANGE_DAYS);
    return 0;
}

/*
 * Visit the entries of @p dbi whose 4-byte bucket key is in [from, to], in order.
 * @p fn returns 0 to go on or an error. @return 0, fn's error, or SP_EDB.
 */
typedef int (*bucket_fn)(void *ud, int32_t bucket, const MDB_val *v, struct sp_errbuf *eb);

static int scan_buckets(MDB_txn *txn,
                        MDB_dbi dbi,
                        int32_t from,
                        int32_t to,
                        bucket_fn fn,
                        void *ud,
                        struct sp_errbuf *eb)
{
    MDB_cursor *cur;
    uint8_t kb[AN_BUCKET_BYTES];
    MDB_val k = {sizeof(kb), kb}, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);

    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not read the analytics view");
    an__bucket_put(kb, from);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != AN_BUCKET_BYTES) {
            rc = sp_err_set(eb, SP_ECORRUPT, NULL, "analytics key of %zu bytes", k.mv_size);
            break;
        }
        int32_t b = an__bucket_get(k.mv_data);
        if (b > to) {
            rc = MDB_NOTFOUND;
            break;
        }
        if ((rc = fn(ud, b, &v, eb)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc < 0 ? rc : proj__mdb_err(eb, rc, "could not read the analytics view");
}

/* ------------------------------------------------------------------ unions */

struct union_acc {
    roaring_bitmap_t *acc; /* owned */
    const char *what;
};

static int union_one(void *ud, int32_t bucket, const MDB_val *v, struct sp_errbuf *eb)
{
    struct union_acc *u = ud;
    roaring_bitmap_t *bm;
    (void)bucket;
    int rc = an__bitmap_decode(v, &bm, u->what, eb);
    if (rc != 0)
        return rc;
    /* lazy: containers' cardinalities are fixed once, at the end (active_union) */
    roaring_bitmap_lazy_or_inplace(u->acc, bm, true);
    roaring_bitmap_free(bm);
    return 0;
}

/* Union of the active bitmaps of [from, to]. @param[out] out owned. */
static int active_union(const struct proj_analytics_dbs *dbs,
                        MDB_txn *txn,
                        int32_t from,
                        int32_t to,
                        roaring_bitmap_t **out,
                        struct sp_errbuf *eb)
{
    struct union_acc u = {roaring_bitmap_create(), "active"};
    int rc = scan_buckets(txn, dbs->active, from, to, union_one, &u, eb);
    if (rc != 0) {
        roaring_bitmap_free(u.acc);
        return rc;
    }
    roaring_bitmap_repair_after_lazy(u.acc);
    *out = u.acc;
    return 0;
}

int proj_analytics_active_count(const struct proj_analytics_dbs *dbs,
                                MDB_txn *txn,
                                int32_t from,
                                int32_t to,
                                uint64_t *out,
                                struct sp_errbuf *eb)
{
    roaring_bitmap_t *bm;
    int rc = active_union(dbs, txn, from, to, &bm, eb);
    if (rc != 0)
        return rc;
    *out = roaring_bitmap_get_cardinality(bm);
    roaring_bitmap_free(bm);
    return 0;
}

/* ------------------------------------------------------------------ summary */

struct rows_acc {
    struct proj_analytics_day *rows;
    int32_t from;
};

static int row_counts(void *ud, int32_t day, const MDB_val *v, struct sp_errbuf *eb)
{
    struct rows_acc *r = ud;
    if (v->mv_size != AN_DAY_BYTES)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "analytics day row of %zu bytes", v->mv_size);
    for (int c = 0; c < PROJ_ANALYTICS_COUNTERS; c++)
        r->rows[day - r->from].counts[c] = proj__get64((const uint8_t *)v->mv_data + 8 * c);
    return 0;
}

static int row_active(void *ud, int32_t day, const MDB_val *v, struct sp_errbuf *eb)
{
    struct rows_acc *r = ud;
    return an__bitmap_card(v, &r->rows[day - r->from].active, eb);
}

/* Rows of [from, to] (every day, zeros where nothing happened). @param rows to-from+1. */
static int day_rows(const struct proj_analytics_dbs *dbs,
                    MDB_txn *txn,
                    int32_t from,
                    int32_t to,
                    struct proj_analytics_day *rows,
                    struct sp_errbuf *eb)
{
    struct rows_acc r = {rows, from};
    memset(rows, 0, sizeof(*rows) * (size_t)(to - from + 1));
    for (int32_t d = from; d <= to; d++)
        rows[d - from].day = d;
    int rc = scan_buckets(txn, dbs->days, from, to, row_counts, &r, eb);
    return rc != 0 ? rc : scan_buckets(txn, dbs->active, from, to, row_active, &r, eb);
}

int proj_analytics_summary(const struct proj_analytics_dbs *dbs,
                           MDB_txn *txn,
                           int32_t from,
                           int32_t to,
                           struct proj_analytics_summary *out,
                           struct sp_errbuf *eb)
{
    struct proj_analytics_day month[30];
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = check_range(from, to, eb)) != 0)
        return rc;
    out->n_days = (size_t)(to - from + 1);
    out->days = sp_xcalloc(out->n_days, sizeof(*out->days));
    if ((rc = day_rows(dbs, txn, from, to, out->days, eb)) != 0)
        goto out_release;
    for (size_t i = 0; i < out->n_days; i++)
        for (int c = 0; c < PROJ_ANALYTICS_COUNTERS; c++)
            out->totals[c] += out->days[i].counts[c];
    if ((rc = proj_analytics_active_count(dbs, txn, from, to, &out->active, eb)) != 0 ||
        (rc = proj_analytics_active_count(dbs, txn, to - 6, to, &out->wau, eb)) != 0 ||
        (rc = proj_analytics_active_count(dbs, txn, to - 29, to, &out->mau, eb)) != 0 ||
        (rc = day_rows(dbs, txn, to - 29, to, month, eb)) != 0)
        goto out_release;
    uint64_t sum = 0;
    for (int i = 0; i < 30; i++)
        sum += month[i].active;
    out->dau = month[29].active;
    out->stickiness = out->mau == 0 ? 0.0 : ((double)sum / 30.0) / (double)out->mau;
    return 0;
out_release:
    proj_analytics_summary_release(out);
    return rc;
}

void proj_analytics_summary_release(struct proj_analytics_summary *s)
{
    free(s->days);
    memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------ periods */

static int32_t period_end(enum proj_analytics_granularity g, int32_t start)
{
    switch (g) {
    case PROJ_AN_DAY:
        return start;
    case PROJ_AN_WEEK:
        return proj_analytics_week_of(start) + 6;
    default:
        return proj_analytics_next_month(start) - 1;
    }
}

int proj_analytics_active_periods(const struct proj_analytics_dbs *dbs,
                                  MDB_txn *txn,
                                  enum proj_analytics_granularity g,
                                  int32_t from,
                                  int32_t to,
                                  struct proj_analytics_period **out,
                                  size_t *n,
                                  struct sp_errbuf *eb)
{
    struct proj_analytics_period *p = NULL;
    size_t cap = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = check_range(from, to, eb)) != 0)
        return rc;
    for (int32_t start = from; start <= to;) {
        int32_t end = period_end(g, start);
        if (end > to)
            end = to;
        PROJ_GROW(p, cap, *n + 1);
        p[*n] = (struct proj_analytics_period){start, end, 0};
        if ((rc = proj_analytics_active_count(dbs, txn, start, end, &p[*n].active, eb)) != 0) {
            free(p);
            *n = 0;
            return rc;
        }
        (*n)++;
        start = end + 1;
    }
    *out = p;
    return 0;
}

/* ------------------------------------------------------------------ retention */

struct cohort_acc {
    struct proj_analytics_cohort *rows;
    size_t n, cap;
    roaring_bitmap_t **members; /* owned, one per row */
    size_t members_cap;
};

static int cohort_one(void *ud, int32_t week, const MDB_val *v, struct sp_errbuf *eb)
{
    struct cohort_acc *a = ud;
    roaring_bitmap_t *bm;
    int rc = an__bitmap_decode(v, &bm, "cohort", eb);
    if (rc != 0)
        return rc;
    PROJ_GROW(a->rows, a->cap, a->n + 1);
    PROJ_GROW(a->members, a->members_cap, a->n + 1);
    a->rows[a->n] =
        (struct proj_analytics_cohort){.week = week, .size = roaring_bitmap_get_cardinality(bm)};
    a->members[a->n++] = bm;
    return 0;
}

void proj_analytics_cohorts_free(struct proj_analytics_cohort *c, size_t n)
{
    for (size_t i = 0; i < n && c != NULL; i++)
        free(c[i].active);
    free(c);
}

int proj_analytics_retention(const struct proj_analytics_dbs *dbs,
                             MDB_txn *txn,
                             int32_t from,
                             int32_t to,
                             struct proj_analytics_cohort **out,
                             size_t *n,
                             struct sp_errbuf *eb)
{
    struct cohort_acc a = {0};
    int32_t first = proj_analytics_week_of(from), last = proj_analytics_week_of(to);
    size_t n_weeks = (size_t)((last - first) / 7 + 1);
    roaring_bitmap_t **weeks = NULL;
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = check_range(from, to, eb)) != 0)
        return rc;
    if ((rc = scan_buckets(txn, dbs->cohorts, first, last, cohort_one, &a, eb)) != 0)
        goto out_free;
    /* Users active in each week of the triangle (days after `to` left out), once. */
    weeks = sp_xcalloc(n_weeks, sizeof(*weeks));
    for (size_t k = 0; k < n_weeks; k++) {
        int32_t start = first + 7 * (int32_t)k, end = start + 6 > to ? to : start + 6;
        if ((rc = active_union(dbs, txn, start, end, &weeks[k], eb)) != 0)
            goto out_free;
    }
    for (size_t i = 0; i < a.n; i++) {
        struct proj_analytics_cohort *c = &a.rows[i];
        size_t w0 = (size_t)((c->week - first) / 7);
        c->n_weeks = n_weeks - w0;
        c->active = sp_xcalloc(c->n_weeks, sizeof(*c->active));
        for (size_t k = 0; k < c->n_weeks; k++)
            c->active[k] = roaring_bitmap_and_cardinality(a.members[i], weeks[w0 + k]);
    }
    *out = a.rows;
    *n = a.n;
    a.rows = NULL; /* the caller's now; the members are freed below */
out_free:
    for (size_t k = 0; weeks != NULL && k < n_weeks; k++)
        roaring_bitmap_free(weeks[k]);
    free(weeks);
    for (size_t i = 0; i < a.n; i++)
        roaring_bitmap_free(a.members[i]);
    free(a.members);
    proj_analytics_cohorts_free(a.rows, a.rows != NULL ? a.n : 0);
    return rc;
}

/* ------------------------------------------------------------------ popular */

struct cand {
    uint64_t id;
    struct an_counts c;
};

static int cand_cmp(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    int64_t sa = an__score(&a->c), sb = an__score(&b->c);
    if (sa != sb)
        return sa > sb ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Candidates of a window beyond the limit ranked by the heap, for deleted recipes. */
#define POPULAR_SPARE 32

static void cand_swap(struct cand *a, struct cand *b)
{
    struct cand t = *a;
    *a = *b;
    *b = t;
}

/* Sift down in a heap whose root is the worst candidate (the last in rank order). */
static void heap_down(struct cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && cand_cmp(&h[l], &h[worst]) > 0)
            worst = l;
        if (r < n && cand_cmp(&h[r], &h[worst]) > 0)
            worst = r;
        if (worst == i)
            return;
        cand_swap(&h[i], &h[worst]);
        i = worst;
    }
}

/*
 * Move the best @p k of c[0..n) (rank order: score descending, id ascending) to c[0..k),
 * sorted, by a bounded heap. @return min(k, n).
 */
static size_t select_best(struct cand *c, size_t n, size_t k)
{
    if (n <= k) {
        if (n > 0) /* qsort(NULL, 0, ...) is undefined */
            qsort(c, n, sizeof(*c), cand_cmp);
        return n;
    }
    for (size_t i = k / 2; i-- > 0;)
        heap_down(c, k, i);
    for (size_t i = k; i < n; i++) {
        if (cand_cmp(&c[i], &c[0]) < 0) { /* better than the worst kept */
            cand_swap(&c[i], &c[0]);
            heap_down(c, k, 0);
        }
    }
    qsort(c, k, sizeof(*c), cand_cmp);
    return k;
}

/* Fill @p out from recipe @p id if it is not deleted. @return 1 if taken, 0 if skipped. */
static int take_recipe(const struct proj_analytics_dbs *dbs,
                       MDB_txn *txn,
                       uint64_t id,
                       const struct an_counts *c,
                       struct proj_analytics_recipe *out,
                       struct sp_errbuf *eb)
{
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;
    proj__be64(kb, id);
    memset(out, 0, sizeof(*out));
    int rc = mdb_get(txn, dbs->recipes, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return proj__mdb_err(eb, rc, "could not read the analytics recipes");
    if (rc == 0) {
        struct an_recipe_rec rec = {0};
        if ((rc = an__recipe_decode(&v, &rec, eb)) != 0)
            return rc;
        if (rec.flags & AN_RECIPE_DELETED)
            return 0;
        _Static_assert(sizeof(out->title) > AN_TITLE_MAX, "a kept title fits");
        memcpy(out->title, rec.title, rec.title_len);
        out->author_id = (int64_t)rec.author_id;
    }
    out->id = (int64_t)id;
    out->score = an__score(c);
    out->likes = c->likes;
    out->comments = c->comments;
    out->unlikes = c->unlikes;
    return 1;
}

static int popular_all(const struct proj_analytics_dbs *dbs,
                       MDB_txn *txn,
                       size_t limit,
                       struct proj_analytics_recipe *out,
                       size_t *n,
                       struct sp_errbuf *eb)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, dbs->popular, &cur);

    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not read the analytics view");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && *n < limit;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != AN_POPULAR_KEY_BYTES) {
            rc = sp_err_set(eb, SP_ECORRUPT, NULL, "analytics popular key is corrupt");
            break;
        }
        uint64_t id = proj__get64((const uint8_t *)k.mv_data + 8);
        uint8_t tk[8];
        MDB_val tkey = {8, tk}, tv;
        proj__be64(tk, id);
        if ((rc = mdb_get(txn, dbs->recipe_totals, &tkey, &tv)) != 0 ||
            tv.mv_size != AN_COUNTS_BYTES) {
            rc = rc != 0 ? proj__mdb_err(eb, rc, "could not read the analytics recipe totals")
                         : sp_err_set(eb, SP_ECORRUPT, NULL, "analytics recipe totals are corrupt");
            break;
        }
        struct an_counts c = an__counts_get(tv.mv_data);
        if (c.likes == 0 && c.comments == 0 && c.unlikes == 0)
            continue;
        if ((rc = take_recipe(dbs, txn, id, &c, &out[*n], eb)) < 0)
            break;
        *n += (size_t)rc;
        rc = 0;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND || rc == 0)
        return 0;
    return rc < 0 ? rc : proj__mdb_err(eb, rc, "could not read the analytics view");
}

struct window_acc {
    struct proj_idmap ix;
    struct cand *c;
    size_t n, cap;
};

/* Sum the (bucket, recipe) counts of @p dbi over buckets [from, to]. */
static int window_sum(
    MDB_txn *txn, MDB_dbi dbi, int32_t from, int32_t to, struct window_acc *a, struct sp_errbuf *eb)
{
    MDB_cursor *cur;
    uint8_t kb[AN_PAIR_KEY_BYTES];
    MDB_val k = {sizeof(kb), kb}, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);

    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not read the analytics view");
    an__pair_key(kb, from, 0);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != AN_PAIR_KEY_BYTES || v.mv_size != AN_COUNTS_BYTES) {
            rc = sp_err_set(eb, SP_ECORRUPT, NULL, "analytics recipe counts are corrupt");
            break;
        }
        if (an__bucket_get(k.mv_data) > to) {
            rc = MDB_NOTFOUND;
            break;
        }
        uint64_t id = proj__get64((const uint8_t *)k.mv_data + AN_BUCKET_BYTES);
        struct an_counts c = an__counts_get(v.mv_data);
        int64_t i = proj__idmap_get(&a->ix, id);
        if (i < 0) {
            PROJ_GROW(a->c, a->cap, a->n + 1);
            a->c[a->n] = (struct cand){id, {0, 0, 0}};
            proj__idmap_put(&a->ix, id, (uint32_t)a->n);
            i = (int64_t)a->n++;
        }
        a->c[i].c.likes += c.likes;
        a->c[i].c.comments += c.comments;
        a->c[i].c.unlikes += c.unlikes;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc < 0 ? rc : proj__mdb_err(eb, rc, "could not read the analytics view");
}

int proj_analytics_popular(const struct proj_analytics_dbs *dbs,
                           MDB_txn *txn,
                           enum proj_analytics_window window,
                           int64_t at_us,
                           size_t limit,
                           struct proj_analytics_recipe *out,
                           size_t *n,
                           struct sp_errbuf *eb)
{
    struct window_acc a = {0};
    int rc;

    *n = 0;
    if (limit < 1 || limit > PROJ_ANALYTICS_MAX_LIMIT)
        return sp_err_set(eb, SP_EINVAL, "limit", "limit must be 1..%d", PROJ_ANALYTICS_MAX_LIMIT);
    if (window == PROJ_AN_WINDOW_ALL)
        return popular_all(dbs, txn, limit, out, n, eb);
    if (window == PROJ_AN_WINDOW_24H) {
        int32_t h = an__hour_of(at_us);
        rc = window_sum(txn, dbs->recipe_hours, h - 23, h, &a, eb);
    } else {
        int32_t d = proj_analytics_day_of(at_us), span = window == PROJ_AN_WINDOW_7D ? 7 : 30;
        rc = window_sum(txn, dbs->recipe_days, d - span + 1, d, &a, eb);
    }
    if (rc == 0) {
        /* The best limit + POPULAR_SPARE candidates first (a bounded heap, O(n log k)); a
         * full sort only if deleted recipes among them leave the answer short. */
        size_t k = select_best(a.c, a.n, limit + POPULAR_SPARE), i = 0;
        for (int pass = 0; pass < 2 && rc == 0 && *n < limit; pass++) {
            if (pass == 1) {
                if (k == a.n)
                    break; /* every candidate was taken already */
                qsort(a.c, a.n, sizeof(*a.c), cand_cmp);
                k = a.n;
                /* skip the ones the first pass looked at: they are the same, in order */
            }
            for (; i < k && *n < limit; i++) {
                if ((rc = take_recipe(dbs, txn, a.c[i].id, &a.c[i].c, &out[*n], eb)) < 0)
                    break;
                *n += (size_t)rc;
                rc = 0;
            }
        }
    }
    proj__idmap_release(&a.ix);
    free(a.c);
    return rc;
}
