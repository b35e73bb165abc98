/*
 * proj_search_recipes: checks a query, plans it (words, filters, expansions), runs it,
 * ranks the hits (typos, then BM25F score, then id) and writes the JSON answer.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search_reader_impl.h"
#include "sp/alloc.h"
#include "sp/banned.h"

/* ------------------------------------------------------------------ checks and filters */

static int check_query(const struct proj_search_query *q, struct sp_errbuf *eb)
{
    if (q->limit < 1 || q->limit > PROJ_SEARCH_MAX_LIMIT)
        return sp_err_set(eb, SP_EINVAL, "limit", "must be 1 to %d", PROJ_SEARCH_MAX_LIMIT);
    if (q->page < 1 || q->page > PROJ_SEARCH_MAX_PAGE)
        return sp_err_set(eb, SP_EINVAL, "page", "must be 1 to %d", PROJ_SEARCH_MAX_PAGE);
    if (q->n_tags > PROJ_SEARCH_MAX_TAGS || (q->n_tags > 0 && q->tags == NULL))
        return sp_err_set(eb, SP_EINVAL, "tags", "must be at most %d tags", PROJ_SEARCH_MAX_TAGS);
    if (q->author_id < 0)
        return sp_err_set(eb, SP_EINVAL, "author_id", "must be an id");
    return 0;
}

/* Add a filter term whose one variant is the filters key @p key. */
static void filter_term(struct search_plan *p, const uint8_t *key, size_t len)
{
    struct search_term *t = &p->terms[p->n_terms++];

    memset(t, 0, sizeof(*t));
    t->role = SEARCH_REQUIRED;
    t->phrase = -1;
    t->v0 = p->nv;
    search__variant_add(p, t, key, len, true, 0, 0);
}

static int
tag_filters(struct proj_search_reader *r, const struct proj_search_query *q, struct sp_errbuf *eb)
{
    for (size_t i = 0; i < q->n_tags; i++) {
        size_t len = q->tags[i] ? strlen(q->tags[i]) : 0;
        int n = 0;
        r->buf.len = 0;
        proj__bytes_add(&r->buf, "t\0", 2);
        if (len <= PROJ_SEARCH_MAX_QUERY_BYTES)
            n = search__tag_fold(q->tags[i], len, &r->buf);
        if (n <= 0)
            return sp_err_set(eb, SP_EINVAL, "tags", "must be tags of valid UTF-8 text");
        filter_term(&r->plan, r->buf.data, r->buf.len);
    }
    return 0;
}

/* The language filter: its stemmer in r->plan. @return the primary subtag's length. */
static int lang_filter(struct proj_search_reader *r, const char *tag, struct sp_errbuf *eb)
{
    int n = 0;

    r->plan.lang_filter = false;
    if (tag == NULL)
        return 0;
    if (proj_lang_parse(tag, &r->plan.lang) != 0)
        return sp_err_set(eb, SP_EINVAL, "language", "must be a BCP 47 language tag");
    while (tag[n] != '\0' && tag[n] != '-' && n < 3)
        n++;
    r->plan.lang_filter = true;
    return n;
}

static int
plan_query(struct proj_search_reader *r, const struct proj_search_query *q, struct sp_errbuf *eb)
{
    uint8_t key[2 + 8];
    int n = lang_filter(r, q->language, eb);
    int rc = n < 0 ? n : search__qparse(r, q->text, q->text_len, eb);

    if (rc == 0)
        rc = tag_filters(r, q, eb);
    if (rc == 0 && q->author_id > 0) {
        key[0] = SEARCH_FILTER_AUTHOR;
        key[1] = 0;
        proj__be64(key + 2, (uint64_t)q->author_id);
        filter_term(&r->plan, key, sizeof(key));
    }
    if (rc == 0 && n > 0) {
        key[0] = SEARCH_FILTER_LANG;
        key[1] = 0;
        for (int i = 0; i < n; i++)
            key[2 + i] = (uint8_t)tolower((unsigned char)q->language[i]);
        filter_term(&r->plan, key, 2 + (size_t)n);
    }
    return rc;
}

static int prepare_bm25(struct proj_search_reader *r,
                        MDB_txn *txn,
                        const struct proj_bm25f_params *params,
                        struct sp_errbuf *eb)
{
    struct proj_bm25f_params def;
    uint64_t sums[PROJ_SEARCH_FIELDS];
    double avg[PROJ_SEARCH_FIELDS];
    int rc = search__stats_recipes(txn, &r->dbs, &r->n_docs, sums, eb);

    if (rc != 0)
        return rc;
    for (int f = 0; f < PROJ_SEARCH_FIELDS; f++)
        avg[f] = r->n_docs ? (double)sums[f] / (double)r->n_docs : 0.0;
    if (params == NULL) {
        proj_bm25f_params_default(&def);
        params = &def;
    }
    search__bm25_prepare(&r->bm25, params, avg);
    return 0;
}

/* ------------------------------------------------------------------ ranking */

/* Whether candidate a ranks before b: fewer typos, higher score, smaller id. */
static bool hit_before(const struct search_cands *c, size_t a, size_t b)
{
    if (c->typos[a] != c->typos[b])
        return c->typos[a] < c->typos[b];
    if (c->score[a] != c->score[b])
        return c->score[a] > c->score[b];
    return c->id[a] < c->id[b];
}

static _Thread_local const struct search_cands *sort_cands;

static int hit_cmp(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    return hit_before(sort_cands, a, b) ? -1 : hit_before(sort_cands, b, a);
}

/* Sift the worst of the heap (h[0] = worst) down. */
static void worst_down(const struct search_cands *c, size_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && hit_before(c, h[m], h[l]))
            m = l;
        if (l + 1 < n && hit_before(c, h[m], h[l + 1]))
            m = l + 1;
        if (m == i)
            return;
        size_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* The best @p k candidates in rank order: owned array, *n of them. */
static size_t *top_hits(const struct search_cands *c, size_t k, size_t *n)
{
    size_t m = k < c->n ? k : c->n;
    size_t *h = sp_xmalloc((m + 1) * sizeof(*h));

    for (size_t i = 0; i < m; i++)
        h[i] = i;
    for (size_t j = m; j-- > 0;)
        worst_down(c, h, m, j);
    for (size_t i = m; i < c->n; i++) {
        if (hit_before(c, i, h[0])) {
            h[0] = i;
            worst_down(c, h, m, 0);
        }
    }
    sort_cands = c;
    qsort(h, m, sizeof(*h), hit_cmp);
    sort_cands = NULL;
    *n = m;
    return h;
}

/* ------------------------------------------------------------------ answer */

/* Add @p value (owned) under @p key of @p obj; a NULL value (a failed conversion) fails. */
static int put(json_t *obj, const char *key, json_t *value)
{
    return value != NULL ? json_object_set_new_nocheck(obj, key, value) : -1;
}

/* An id as a JSON string of its decimal digits. */
static json_t *id_json(uint64_t id)
{
    char buf[20];
    size_t at = sizeof(buf);

    do {
        buf[--at] = (char)('0' + id % 10);
        id /= 10;
    } while (id != 0);
    return json_stringn_nocheck(buf + at, sizeof(buf) - at);
}

/* {"id", "username"} of an author; username null if the view has no such user. */
static json_t *author_json(struct proj_search_reader *r, MDB_txn *txn, uint64_t id)
{
    uint8_t key[8];
    MDB_val k = {8, key}, v;
    struct search_user u;
    json_t *name = NULL, *o = json_object();

    proj__be64(key, id);
    if (mdb_get(txn, r->dbs.dbi[SDB_USERS], &k, &v) == 0 &&
        search__user_decode(&u, v.mv_data, v.mv_size) == 0)
        name = json_stringn(u.username.s, u.username.len);
    else
        name = json_null();
    if (put(o, "id", id_json(id)) != 0 || put(o, "username", name) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *tags_json(const struct search_doc *d)
{
    json_t *arr = json_array();

    for (uint32_t i = 0; i < d->n[PROJ_SEARCH_TAGS]; i++)
        json_array_append_new(
            arr, json_stringn(d->items[PROJ_SEARCH_TAGS][i].s, d->items[PROJ_SEARCH_TAGS][i].len));
    return arr;
}

/* The hit object of candidate @p i, its doc decoded in r->doc; NULL if a text is not UTF-8. */
static json_t *hit_object(struct proj_search_reader *r, MDB_txn *txn, size_t i, json_t *hl)
{
    const struct search_cands *c = &r->c;
    const struct search_str *title = &r->doc.items[PROJ_SEARCH_TITLE][0];
    json_t *hit = json_object();

    if (put(hit, "id", id_json(c->id[i])) != 0 ||
        put(hit, "title", json_stringn(title->s, title->len)) != 0 ||
        put(hit, "author", author_json(r, txn, r->doc.author_id)) != 0 ||
        put(hit, "tags", tags_json(&r->doc)) != 0 ||
        put(hit, "language", json_string(r->doc.lang)) != 0 ||
        put(hit, "score", json_real(c->score[i])) != 0 ||
        put(hit, "typos", json_integer((json_int_t)c->typos[i])) != 0 ||
        put(hit, "highlight", hl) != 0) {
        json_decref(hit);
        return NULL;
    }
    return hit;
}

static int
hit_json(struct proj_search_reader *r, MDB_txn *txn, size_t i, json_t **out, struct sp_errbuf *eb)
{
    const struct search_cands *c = &r->c;
    uint8_t key[8];
    MDB_val k = {8, key}, v;
    json_t *hl;
    int rc;

    proj__be64(key, c->id[i]);
    rc = mdb_get(txn, r->dbs.dbi[SDB_RECIPES], &k, &v);
    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not read a recipe of the search view");
    if (search__doc_decode(&r->doc, v.mv_data, v.mv_size) != 0)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "search record of recipe %llu is corrupt",
                          (unsigned long long)c->id[i]);
    rc = search__highlight(r, txn, c->id[i], &hl, eb);
    if (rc != 0)
        return rc;
    *out = hit_object(r, txn, i, hl);
    return *out != NULL ? 0 : sp_err_set(eb, SP_ECORRUPT, NULL, "a search record is not UTF-8");
}

static int answer(struct proj_search_reader *r,
                  MDB_txn *txn,
                  const struct proj_search_query *q,
                  json_t *res,
                  struct sp_errbuf *eb)
{
    size_t offset = (size_t)(q->page - 1) * q->limit, n = 0, *top;
    json_t *hits = json_array(), *facets;
    int rc = 0;

    top = top_hits(&r->c, offset + q->limit, &n);
    for (size_t i = offset; i < n && rc == 0; i++) {
        json_t *hit = NULL;
        rc = hit_json(r, txn, top[i], &hit, eb);
        if (rc == 0)
            json_array_append_new(hits, hit);
    }
    free(top);
    json_object_set_new_nocheck(res, "total_hits", json_integer((json_int_t)r->c.n));
    json_object_set_new_nocheck(res, "total_hits_exact", json_true());
    json_object_set_new_nocheck(res, "page", json_integer(q->page));
    json_object_set_new_nocheck(res, "limit", json_integer(q->limit));
    json_object_set_new_nocheck(res, "has_more", json_boolean(offset + q->limit < r->c.n));
    json_object_set_new_nocheck(res, "hits", hits);
    if (rc == 0 && !q->no_facets) {
        rc = search__facets(r, txn, &facets, eb);
        if (rc == 0) {
            json_t *by_kind = json_object();
            json_object_set_new_nocheck(by_kind, "tags", facets);
            json_object_set_new_nocheck(res, "facets", by_kind);
        }
    }
    return rc;
}

int proj_search_recipes(struct proj_search_reader *r,
                        MDB_txn *txn,
                        const struct proj_search_query *q,
                        json_t **out,
                        struct sp_errbuf *eb)
{
    int rc = check_query(q, eb);

    r->snapshot = search__txn_snapshot(txn);
    if (rc == 0)
        rc = plan_query(r, q, eb);
    if (rc == 0)
        rc = prepare_bm25(r, txn, q->params, eb);
    if (rc == 0)
        rc = search__expand(r, txn, eb);
    if (rc == 0) {
        search__hset_build(r);
        rc = search__execute(r, txn, eb);
    }
    search__variants_close(&r->plan);
    if (rc != 0)
        return rc;
    json_t *res = json_object();
    rc = answer(r, txn, q, res, eb);
    if (rc != 0) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}
