/*
 * Query execution: posting lists read a page at a time (MDB_GET_MULTIPLE), the required
 * terms intersected smallest first, optional terms scored, exclusions and phrases applied.
 * The result is r->c: every hit, sorted by id, with its BM25F score and typos.
 */
#include <stdlib.h>
#include <string.h>

#include "search_reader_impl.h"
#include "sp/alloc.h"
#include "sp/banned.h"

void search__cands_reserve(struct search_cands *c, size_t n)
{
    size_t cap = c->cap;

    if (n <= cap)
        return;
    PROJ_GROW(c->id, cap, n);
    c->score = sp_xrealloc(c->score, cap * sizeof(*c->score));
    c->typos = sp_xrealloc(c->typos, cap * sizeof(*c->typos));
    c->tscore = sp_xrealloc(c->tscore, cap * sizeof(*c->tscore));
    c->ttypos = sp_xrealloc(c->ttypos, cap * sizeof(*c->ttypos));
    c->cap = cap;
}

void search__cands_release(struct search_cands *c)
{
    free(c->id);
    free(c->score);
    free(c->typos);
    free(c->tscore);
    free(c->ttypos);
    memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------ list reading */

/*
 * The first page of the list of @p key, or (@p key NULL) of the key @p cur is on. A key
 * with one value is no page: GET_MULTIPLE leaves that value, as SET_KEY or GET_CURRENT
 * read it.
 */
static int list_open(MDB_cursor *cur, const void *key, size_t key_len, MDB_val *page)
{
    MDB_val k = {key_len, proj__mdb_data(key)};
    int rc = mdb_cursor_get(cur, &k, page, key != NULL ? MDB_SET_KEY : MDB_GET_CURRENT);

    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, page, MDB_GET_MULTIPLE);
    return rc;
}

/* A list read ends at its end (MDB_NOTFOUND) or when the caller has what it wants (0). */
static int list_end(int rc)
{
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : SP_EDB;
}

int search__list_scan(MDB_cursor *cur,
                      const void *key,
                      size_t key_len,
                      size_t val_bytes,
                      search_entry_fn fn,
                      void *ud)
{
    MDB_val k, page;
    int rc = list_open(cur, key, key_len, &page);

    while (rc == 0) {
        const uint8_t *e = page.mv_data;
        for (size_t i = 0, n = page.mv_size / val_bytes; i < n; i++)
            fn(e + i * val_bytes, 0, ud);
        rc = mdb_cursor_get(cur, &k, &page, MDB_NEXT_MULTIPLE);
    }
    return list_end(rc);
}

/* Where @p id falls in (l, h] by interpolation between the ids @p a at l and @p b at h. */
static size_t interpolate(size_t l, size_t h, uint64_t a, uint64_t b, uint64_t id)
{
    size_t g = l + (size_t)((double)(id - a) / (double)(b - a) * (double)(h - l));

    return g <= l ? l + 1 : g > h ? h : g;
}

/*
 * Ids on a page are spread about evenly (snowflakes, in creation order), so the search
 * starts where interpolation puts @p id and gallops from there to bracket it: a few reads
 * near one place instead of log2(page entries) scattered ones, each a likely cache miss
 * on a page just mapped in.
 */
size_t search__page_lower(const uint8_t *e, size_t lo, size_t hi, size_t vb, uint64_t id)
{
    size_t l = lo, h, g, step; /* invariant: id at l < @p id <= id at h */

    if (lo == hi || search__id_at(e + lo * vb) >= id)
        return lo;
    if (search__id_at(e + (hi - 1) * vb) < id)
        return hi;
    h = hi - 1;
    g = interpolate(l, h, search__id_at(e + l * vb), search__id_at(e + h * vb), id);
    if (search__id_at(e + g * vb) < id) {
        for (l = g, step = 1; step < h - l && search__id_at(e + (l + step) * vb) < id; step *= 2)
            l += step;
        h = step < h - l ? l + step : h;
    } else {
        for (h = g, step = 1; step < h - l && search__id_at(e + (h - step) * vb) >= id; step *= 2)
            h -= step;
        l = step < h - l ? h - step : l;
    }
    while (h - l > 1) {
        size_t mid = l + (h - l) / 2;
        if (search__id_at(e + mid * vb) < id)
            l = mid;
        else
            h = mid;
    }
    return h;
}

size_t search__ids_bound(const uint64_t *ids, size_t lo, size_t hi, uint64_t id, bool upper)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id || (upper && ids[mid] == id))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Candidates per page entry from which a page is read in order rather than searched. */
#define MERGE_DENSITY 16

/* Match a page and the candidates [ci, hi) by walking both in order (unique ids). */
static void page_merge(const uint8_t *e,
                       size_t m,
                       size_t vb,
                       const uint64_t *ids,
                       size_t ci,
                       size_t hi,
                       search_entry_fn fn,
                       void *ud)
{
    for (size_t j = 0; j < m && ci < hi;) {
        uint64_t id = search__id_at(e + j * vb);
        if (id < ids[ci]) {
            j++;
        } else if (id > ids[ci]) {
            ci++;
        } else {
            fn(e + j * vb, ci, ud);
            j++;
            ci++;
        }
    }
}

/*
 * Match one page of a list against the candidates [ci, hi) whose ids fall in the page's
 * range: the smaller side is walked and the other searched, so a short list costs little
 * against many candidates, and a long one little against few; when the candidates are
 * about as many as the entries, both are walked (a page read in order is prefetched, a
 * searched one costs a cache miss per probe).
 */
static void page_match(const uint8_t *e,
                       size_t m,
                       size_t vb,
                       const uint64_t *ids,
                       size_t ci,
                       size_t hi,
                       search_entry_fn fn,
                       void *ud)
{
    size_t j = 0;

    if ((hi - ci) * MERGE_DENSITY >= m && m * MERGE_DENSITY >= hi - ci) {
        page_merge(e, m, vb, ids, ci, hi, fn, ud);
        return;
    }
    if (m < hi - ci) {
        for (; j < m && ci < hi; j++) {
            uint64_t id = search__id_at(e + j * vb);
            ci = search__ids_bound(ids, ci, hi, id, false);
            if (ci < hi && ids[ci] == id)
                fn(e + j * vb, ci, ud);
        }
        return;
    }
    for (; ci < hi; ci++) {
        j = search__page_lower(e, j, m, vb, ids[ci]);
        if (j < m && search__id_at(e + j * vb) == ids[ci])
            fn(e + j * vb, ci, ud);
    }
}

int search__list_probe(MDB_cursor *cur,
                       const void *key,
                       size_t key_len,
                       size_t val_bytes,
                       const uint64_t *ids,
                       size_t n,
                       search_entry_fn fn,
                       void *ud)
{
    MDB_val k, page;
    size_t ci = 0;
    int rc = n > 0 ? list_open(cur, key, key_len, &page) : MDB_NOTFOUND;

    while (rc == 0 && ci < n) {
        const uint8_t *e = page.mv_data;
        size_t m = page.mv_size / val_bytes;
        size_t lo = search__ids_bound(ids, ci, n, search__id_at(e), false);
        size_t hi = search__ids_bound(ids, lo, n, search__id_at(e + (m - 1) * val_bytes), true);
        page_match(e, m, val_bytes, ids, lo, hi, fn, ud);
        ci = hi;
        if (ci < n)
            rc = mdb_cursor_get(cur, &k, &page, MDB_NEXT_MULTIPLE);
    }
    return list_end(rc);
}

/* ------------------------------------------------------------------ scoring callbacks */

struct match_ctx {
    struct proj_search_reader *r;
    const struct search_variant *v;
    struct search_cands *out; /* union: appended to */
};

static double entry_score(const struct match_ctx *m, const uint8_t *e)
{
    double t;

    if (m->v->filter)
        return 0.0;
    t = search__bm25_entry(&m->r->bm25, e);
    return m->v->idf * t / (m->r->bm25.k1 + t);
}

static void on_union_entry(const uint8_t *e, size_t cand, void *ud)
{
    struct match_ctx *m = ud;
    struct search_cands *c = m->out;

    (void)cand;
    if (c->n == c->cap)
        return; /* more entries than the list counts (term_union reserved for them) */
    c->id[c->n] = search__id_at(e);
    c->score[c->n] = entry_score(m, e);
    c->typos[c->n] = m->v->typos;
    c->n++;
}

/* Keep the best match of the current term: fewest typos, then highest score. */
static void on_match_entry(const uint8_t *e, size_t cand, void *ud)
{
    struct match_ctx *m = ud;
    struct search_cands *c = &m->r->c;
    double s;

    if (c->tscore[cand] >= 0 && m->v->typos > c->ttypos[cand])
        return; /* a match with fewer typos is kept, whatever its score */
    s = entry_score(m, e);
    if (c->tscore[cand] < 0 || m->v->typos < c->ttypos[cand] ||
        (m->v->typos == c->ttypos[cand] && s > c->tscore[cand])) {
        c->tscore[cand] = s;
        c->ttypos[cand] = m->v->typos;
    }
}

static size_t variant_bytes(const struct search_variant *v)
{
    return v->filter ? 8 : PROJ_SEARCH_POSTING_BYTES;
}

/* ------------------------------------------------------------------ union (first term) */

/* Binary heap of segment indices ordered by their current id. */
struct seg_heap {
    size_t *h, n;
    const size_t *pos;
    const uint64_t *id;
};

static bool seg_less(const struct seg_heap *hp, size_t a, size_t b)
{
    return hp->id[hp->pos[a]] < hp->id[hp->pos[b]];
}

static void seg_down(struct seg_heap *hp, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < hp->n && seg_less(hp, hp->h[l], hp->h[m]))
            m = l;
        if (l + 1 < hp->n && seg_less(hp, hp->h[l + 1], hp->h[m]))
            m = l + 1;
        if (m == i)
            return;
        size_t t = hp->h[i];
        hp->h[i] = hp->h[m];
        hp->h[m] = t;
        i = m;
    }
}

/* Append src[i] to c, or fold it into c's last entry if same id (best match kept). */
static void union_put(struct search_cands *c, const struct search_cands *src, size_t i)
{
    if (c->n > 0 && c->id[c->n - 1] == src->id[i]) {
        size_t l = c->n - 1;
        if (src->typos[i] < c->typos[l] ||
            (src->typos[i] == c->typos[l] && src->score[i] > c->score[l])) {
            c->typos[l] = src->typos[i];
            c->score[l] = src->score[i];
        }
        return;
    }
    search__cands_reserve(c, c->n + 1);
    c->id[c->n] = src->id[i];
    c->score[c->n] = src->score[i];
    c->typos[c->n] = src->typos[i];
    c->n++;
}

/* Merge the sorted segments of r->tmp (bounds in @p start, n_seg + 1) into r->c. */
static void union_merge(struct proj_search_reader *r, const size_t *start, size_t n_seg)
{
    size_t *pos = sp_xmalloc((n_seg + 1) * sizeof(*pos));
    struct seg_heap hp = {sp_xmalloc((n_seg + 1) * sizeof(size_t)), 0, pos, r->tmp.id};

    for (size_t s = 0; s < n_seg; s++) {
        pos[s] = start[s];
        if (start[s] < start[s + 1])
            hp.h[hp.n++] = s;
    }
    for (size_t i = hp.n; i-- > 0;)
        seg_down(&hp, i);
    while (hp.n > 0) {
        size_t s = hp.h[0];
        union_put(&r->c, &r->tmp, pos[s]++);
        if (pos[s] == start[s + 1])
            hp.h[0] = hp.h[--hp.n];
        seg_down(&hp, 0);
    }
    free(hp.h);
    free(pos);
}

static int term_union(struct proj_search_reader *r, const struct search_term *t)
{
    size_t *start = sp_xmalloc((t->nv + 1) * sizeof(*start));
    bool one = t->nv == 1;
    int rc = 0;

    r->c.n = r->tmp.n = 0;
    for (size_t i = 0; i < t->nv && rc == 0; i++) {
        const struct search_variant *v = &r->plan.v[t->v0 + i];
        struct match_ctx m = {r, v, one ? &r->c : &r->tmp};
        start[i] = r->tmp.n;
        search__cands_reserve(m.out, m.out->n + v->df);
        rc = search__list_scan(v->cur, NULL, 0, variant_bytes(v), on_union_entry, &m);
    }
    start[t->nv] = r->tmp.n;
    if (rc == 0 && !one)
        union_merge(r, start, t->nv);
    free(start);
    return rc;
}

/* ------------------------------------------------------------------ intersection */

/* Score term @p t's matches into tscore / ttypos of every candidate. */
static int term_match(struct proj_search_reader *r, const struct search_term *t)
{
    struct search_cands *c = &r->c;
    int rc = 0;

    for (size_t i = 0; i < c->n; i++) {
        c->tscore[i] = -1.0;
        c->ttypos[i] = UINT8_MAX;
    }
    for (size_t i = 0; i < t->nv && rc == 0; i++) {
        const struct search_variant *v = &r->plan.v[t->v0 + i];
        struct match_ctx m = {r, v, NULL};
        rc = search__list_probe(v->cur, NULL, 0, variant_bytes(v), c->id, c->n, on_match_entry, &m);
    }
    return rc;
}

/* Keep the candidates that matched (@p keep_matched) or did not; add matches' scores. */
static void cands_compact(struct search_cands *c, bool keep_matched, bool add_typos)
{
    size_t w = 0;

    for (size_t i = 0; i < c->n; i++) {
        bool matched = c->tscore[i] >= 0;
        if (matched != keep_matched)
            continue;
        c->id[w] = c->id[i];
        c->score[w] = c->score[i] + (matched ? c->tscore[i] : 0.0);
        c->typos[w] = c->typos[i] + (matched && add_typos ? c->ttypos[i] : 0);
        w++;
    }
    c->n = w;
}

static void cands_add_optional(struct search_cands *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->tscore[i] >= 0)
            c->score[i] += c->tscore[i];
}

/* Required terms, smallest estimate first. */
static size_t required_order(const struct search_plan *p, size_t *order)
{
    size_t n = 0;

    for (size_t i = 0; i < p->n_terms; i++) {
        if (p->terms[i].role != SEARCH_REQUIRED)
            continue;
        size_t at = n++;
        while (at > 0 && p->terms[order[at - 1]].est > p->terms[i].est) {
            order[at] = order[at - 1];
            at--;
        }
        order[at] = i;
    }
    return n;
}

static int run_terms(struct proj_search_reader *r)
{
    const struct search_plan *p = &r->plan;
    size_t order[SEARCH_PLAN_TERMS], n = required_order(p, order);
    int rc = 0;

    r->c.n = 0;
    if (n == 0)
        return 0; /* exclusions only, no filter: nothing to start from */
    rc = term_union(r, &p->terms[order[0]]);
    for (size_t i = 1; i < n && rc == 0 && r->c.n > 0; i++) {
        rc = term_match(r, &p->terms[order[i]]);
        cands_compact(&r->c, true, true);
    }
    for (size_t i = 0; i < p->n_terms && rc == 0 && r->c.n > 0; i++) {
        const struct search_term *t = &p->terms[i];
        if (t->role != SEARCH_OPTIONAL && t->role != SEARCH_EXCLUDED)
            continue;
        rc = term_match(r, t);
        if (t->role == SEARCH_OPTIONAL)
            cands_add_optional(&r->c);
        else
            cands_compact(&r->c, false, false);
    }
    return rc;
}

/* ------------------------------------------------------------------ phrases */

/* Stem hashes a phrase word may have, as the forward record stores them (big-endian). */
#define PHRASE_HASHES 8

struct phrase_word {
    uint32_t raw[PHRASE_HASHES]; /* the hashes' bytes as stored, loaded as they lie */
    size_t n;
    uint32_t offset; /* position in the phrase */
};

/*
 * A phrase ready for scanning: its words, the anchor (the word of the smallest list, whose
 * occurrences are looked for; the others are checked around them) and its span.
 */
struct phrase_scan {
    struct phrase_word w[PROJ_SEARCH_MAX_TERMS];
    size_t n, anchor;
    uint32_t span;
    bool negated;
};

static uint32_t raw_at(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static bool word_has(const struct phrase_word *w, uint32_t raw)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->raw[i] == raw)
            return true;
    return false;
}

static void
phrase_prepare(const struct search_plan *p, const struct search_phrase *ph, struct phrase_scan *ps)
{
    uint8_t be[4];

    ps->n = ph->nt;
    ps->anchor = 0;
    ps->negated = ph->negated;
    ps->span = p->terms[ph->t0 + ph->nt - 1].offset;
    for (size_t k = 0; k < ph->nt; k++) {
        const struct search_term *t = &p->terms[ph->t0 + k];
        struct phrase_word *w = &ps->w[k];
        w->n = 0;
        w->offset = t->offset;
        for (size_t i = t->v0; i < t->v0 + t->nv && w->n < PHRASE_HASHES; i++) {
            proj__be32(be, p->v[i].hash);
            w->raw[w->n++] = raw_at(be);
        }
        if (t->role == SEARCH_REQUIRED && t->est < p->terms[ph->t0 + ps->anchor].est)
            ps->anchor = k;
    }
}

/* Whether the phrase occurs at @p start of the @p n positions @p pos, in one item. */
static bool phrase_at(const struct phrase_scan *ps, const uint8_t *pos, size_t start)
{
    for (uint32_t j = 0; j <= ps->span; j++)
        if (raw_at(pos + 4 * (start + j)) == 0) /* SEARCH_FWD_END in any byte order */
            return false;
    for (size_t k = 0; k < ps->n; k++)
        if (k != ps->anchor && !word_has(&ps->w[k], raw_at(pos + 4 * (start + ps->w[k].offset))))
            return false;
    return true;
}

static bool phrase_in(const struct phrase_scan *ps, const uint8_t *pos, size_t n)
{
    uint32_t before = ps->w[ps->anchor].offset, after = ps->span - before;
    const struct phrase_word *a = &ps->w[ps->anchor];

    for (size_t i = before; i + after < n; i++)
        if (word_has(a, raw_at(pos + 4 * i)) && phrase_at(ps, pos, i - before))
            return true;
    return false;
}

/* Whether a recipe's forward record satisfies every phrase of the query. */
static bool phrases_ok(const struct phrase_scan *ps, size_t n_phrases, const MDB_val *fwd)
{
    size_t head = (size_t)2 * PROJ_SEARCH_FIELDS;

    if (fwd->mv_size < head)
        return false;
    const uint8_t *pos = (const uint8_t *)fwd->mv_data + head;
    size_t n = (fwd->mv_size - head) / 4;
    for (size_t i = 0; i < n_phrases; i++)
        if (phrase_in(&ps[i], pos, n) == ps[i].negated)
            return false;
    return true;
}

/*
 * The forward record of @p id: a few MDB_NEXT steps from the last one when the hits are
 * dense (they come in id order), else a lookup. @return 0, MDB_NOTFOUND or an LMDB error.
 */
static int forward_of(MDB_cursor *cur, uint64_t id, uint64_t *at, MDB_val *v)
{
    uint8_t key[8];
    MDB_val k;
    int rc = 0;

    for (int step = 0; *at != 0 && *at < id && step < 4 && rc == 0; step++) {
        rc = mdb_cursor_get(cur, &k, v, MDB_NEXT);
        *at = rc == 0 && k.mv_size == 8 ? proj__get64(k.mv_data) : 0;
    }
    if (*at == id && id != 0) /* 0: no position */
        return 0;
    proj__be64(key, id);
    k = (MDB_val){8, key};
    rc = mdb_cursor_get(cur, &k, v, MDB_SET_KEY);
    *at = rc == 0 ? id : 0;
    return rc;
}

static int run_phrases(struct proj_search_reader *r, MDB_cursor *fwd_cur)
{
    struct search_cands *c = &r->c;
    struct phrase_scan *ps;
    uint64_t at = 0;
    MDB_val v = {0, NULL}; /* the forward record at `at` */
    size_t w = 0;
    int rc = 0;

    if (r->plan.n_phrases == 0)
        return 0;
    ps = sp_xmalloc(r->plan.n_phrases * sizeof(*ps));
    for (size_t i = 0; i < r->plan.n_phrases; i++)
        phrase_prepare(&r->plan, &r->plan.phrases[i], &ps[i]);
    for (size_t i = 0; i < c->n && (rc == 0 || rc == MDB_NOTFOUND); i++) {
        rc = forward_of(fwd_cur, c->id[i], &at, &v);
        if (rc != 0 || !phrases_ok(ps, r->plan.n_phrases, &v))
            continue;
        c->id[w] = c->id[i];
        c->score[w] = c->score[i];
        c->typos[w] = c->typos[i];
        w++;
    }
    free(ps);
    c->n = w;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : SP_EDB;
}

int search__execute(struct proj_search_reader *r, MDB_txn *txn, struct sp_errbuf *eb)
{
    MDB_cursor *fwd = NULL;
    int rc = run_terms(r);

    if (rc == 0 && r->plan.n_phrases > 0 && r->c.n > 0) {
        rc = mdb_cursor_open(txn, r->dbs.dbi[SDB_FORWARD], &fwd);
        if (rc == 0) {
            rc = run_phrases(r, fwd);
            mdb_cursor_close(fwd);
        }
    }
    return rc != 0 ? sp_err_set(eb, SP_EDB, NULL, "could not read the search index") : 0;
}
