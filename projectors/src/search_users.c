/*
 * proj_search_users: every query word matches a word of a user's username or full name
 * (user_words) exactly, with typos, or (the open last word) as a prefix; hits are ranked by
 * typos, then exact before prefix matches, then username, then id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "search_reader_impl.h"
#include "sp/alloc.h"
#include "sp/banned.h"

/* A user word a query word matched: idf holds 1 for the word itself, 0 for a longer one. */
static int user_variants(struct proj_search_reader *r,
                         struct search_term *t,
                         struct search_lexicon *lex,
                         struct sp_errbuf *eb)
{
    struct search_plan *p = &r->plan;
    struct search_expansion ex = {.lex = lex, .lang = -2};
    int budget = t->cjk || t->exact || t->role != SEARCH_REQUIRED
                     ? 0
                     : search__typo_budget(t->word, t->word_len);
    int rc;

    t->v0 = p->nv;
    t->nv = 0;
    rc = search__expand_walk(&ex, t->word, t->word_len, budget, t->prefix && !t->exact, eb);
    for (size_t i = 0; i < ex.n && rc == 0; i++) {
        search__variant_add(p, t, ex.w[i].word, ex.w[i].len, true, ex.w[i].dist, 0);
        struct search_variant *v = &p->v[p->nv - 1];
        v->idf = ex.w[i].len == t->word_len && memcmp(ex.w[i].word, t->word, t->word_len) == 0;
        v->df = ex.w[i].weight;
        t->est += v->df;
    }
    return rc;
}

struct user_ctx {
    struct proj_search_reader *r;
    const struct search_variant *v;
};

static void on_user_entry(const uint8_t *e, size_t cand, void *ud)
{
    struct user_ctx *u = ud;
    struct search_cands *out = &u->r->tmp;

    (void)cand;
    search__cands_reserve(out, out->n + 1);
    out->id[out->n] = search__id_at(e);
    out->typos[out->n] = u->v->typos;
    out->score[out->n] = u->v->idf;
    out->n++;
}

static void on_user_match(const uint8_t *e, size_t cand, void *ud)
{
    struct user_ctx *u = ud;
    struct search_cands *c = &u->r->c;

    (void)e;
    if (c->tscore[cand] < 0 || u->v->typos < c->ttypos[cand] ||
        (u->v->typos == c->ttypos[cand] && u->v->idf > c->tscore[cand])) {
        c->tscore[cand] = u->v->idf;
        c->ttypos[cand] = u->v->typos;
    }
}

static _Thread_local const struct search_cands *sort_c;

static int by_id_best(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    const struct search_cands *c = sort_c;

    if (c->id[a] != c->id[b])
        return c->id[a] < c->id[b] ? -1 : 1;
    if (c->typos[a] != c->typos[b])
        return c->typos[a] < c->typos[b] ? -1 : 1;
    return c->score[a] > c->score[b] ? -1 : c->score[a] < c->score[b];
}

/* The first term's users, one entry per user (its best match), sorted by id. */
static int users_union(struct proj_search_reader *r, const struct search_term *t, MDB_cursor *cur)
{
    struct search_cands *tmp = &r->tmp, *c = &r->c;
    int rc = 0;

    tmp->n = c->n = 0;
    for (size_t i = 0; i < t->nv && rc == 0; i++) {
        struct user_ctx u = {r, &r->plan.v[t->v0 + i]};
        rc = search__list_scan(cur, u.v->key, u.v->key_len, 8, on_user_entry, &u);
    }
    size_t *idx = sp_xmalloc((tmp->n + 1) * sizeof(*idx));
    for (size_t i = 0; i < tmp->n; i++)
        idx[i] = i;
    sort_c = tmp;
    qsort(idx, tmp->n, sizeof(*idx), by_id_best);
    search__cands_reserve(c, tmp->n);
    for (size_t i = 0; i < tmp->n; i++) {
        if (c->n > 0 && c->id[c->n - 1] == tmp->id[idx[i]])
            continue;
        c->id[c->n] = tmp->id[idx[i]];
        c->typos[c->n] = tmp->typos[idx[i]];
        c->score[c->n++] = tmp->score[idx[i]];
    }
    free(idx);
    return rc;
}

static int users_match(struct proj_search_reader *r,
                       const struct search_term *t,
                       MDB_cursor *cur,
                       bool exclude)
{
    struct search_cands *c = &r->c;
    size_t w = 0;
    int rc = 0;

    for (size_t i = 0; i < c->n; i++)
        c->tscore[i] = -1.0;
    for (size_t i = 0; i < t->nv && rc == 0; i++) {
        struct user_ctx u = {r, &r->plan.v[t->v0 + i]};
        rc = search__list_probe(cur, u.v->key, u.v->key_len, 8, c->id, c->n, on_user_match, &u);
    }
    for (size_t i = 0; i < c->n; i++) {
        if ((c->tscore[i] >= 0) == exclude)
            continue;
        c->id[w] = c->id[i];
        c->typos[w] = c->typos[i] + (exclude ? 0 : c->ttypos[i]);
        c->score[w++] = c->score[i] + (exclude ? 0 : c->tscore[i]);
    }
    c->n = w;
    return rc;
}

/* Plan the words and run them: r->c = matching users with typos and exact-word counts. */
static int users_run(struct proj_search_reader *r, MDB_cursor *cur, struct sp_errbuf *eb)
{
    struct search_lexicon lex = {.cur = cur, .dup = true};
    struct search_plan *p = &r->plan;
    size_t order[SEARCH_PLAN_TERMS], n = 0;
    int rc = 0;

    for (size_t i = 0; i < p->n_terms && rc == 0; i++) {
        struct search_term *t = &p->terms[i];
        if (t->role == SEARCH_OPTIONAL)
            t->role = SEARCH_REQUIRED; /* no stop words in names */
        if (t->role == SEARCH_NEG_PHRASE)
            continue;
        rc = user_variants(r, t, &lex, eb);
        if (t->role != SEARCH_REQUIRED)
            continue;
        size_t at = n++;
        for (; at > 0 && p->terms[order[at - 1]].est > t->est; at--)
            order[at] = order[at - 1];
        order[at] = i;
    }
    r->c.n = 0;
    if (rc != 0 || n == 0)
        return rc;
    rc = users_union(r, &p->terms[order[0]], cur);
    for (size_t i = 1; i < n && rc == 0; i++)
        rc = users_match(r, &p->terms[order[i]], cur, false);
    for (size_t i = 0; i < p->n_terms && rc == 0; i++)
        if (p->terms[i].role == SEARCH_EXCLUDED)
            rc = users_match(r, &p->terms[i], cur, true);
    return rc != 0 ? sp_err_set(eb, SP_EDB, NULL, "could not read the user index") : 0;
}

/* ------------------------------------------------------------------ ranking and answer */

struct user_hit {
    size_t cand;
    struct search_user u; /* borrowed from the read transaction */
};

static _Thread_local const struct search_cands *rank_c;

static int user_cmp(const void *pa, const void *pb)
{
    const struct user_hit *a = pa, *b = pb;
    const struct search_cands *c = rank_c;
    size_t n = a->u.username.len < b->u.username.len ? a->u.username.len : b->u.username.len;
    int cmp;

    if (c->typos[a->cand] != c->typos[b->cand])
        return c->typos[a->cand] < c->typos[b->cand] ? -1 : 1;
    if (c->score[a->cand] != c->score[b->cand])
        return c->score[a->cand] > c->score[b->cand] ? -1 : 1;
    cmp = strncasecmp(a->u.username.s, b->u.username.s, n);
    if (cmp == 0 && a->u.username.len != b->u.username.len)
        cmp = a->u.username.len < b->u.username.len ? -1 : 1;
    if (cmp != 0)
        return cmp;
    return c->id[a->cand] < c->id[b->cand] ? -1 : c->id[a->cand] > c->id[b->cand];
}

static json_t *user_json(uint64_t id, const struct search_user *u)
{
    char buf[24];

    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)id);
    return json_pack(
        "{s:s,s:s%,s:o}", "id", buf, "username", u->username.s, u->username.len, "full_name",
        u->has_full_name ? json_stringn(u->full_name.s, u->full_name.len) : json_null());
}

static int users_answer(
    struct proj_search_reader *r, MDB_txn *txn, unsigned limit, json_t **out, struct sp_errbuf *eb)
{
    struct user_hit *h = sp_xmalloc((r->c.n + 1) * sizeof(*h));
    size_t n = 0;
    json_t *hits = json_array();

    for (size_t i = 0; i < r->c.n; i++) {
        uint8_t key[8];
        MDB_val k = {8, key}, v;
        proj__be64(key, r->c.id[i]);
        if (mdb_get(txn, r->dbs.dbi[SDB_USERS], &k, &v) != 0 ||
            search__user_decode(&h[n].u, v.mv_data, v.mv_size) != 0)
            continue;
        h[n++].cand = i;
    }
    rank_c = &r->c;
    qsort(h, n, sizeof(*h), user_cmp);
    rank_c = NULL;
    for (size_t i = 0; i < n && i < limit; i++)
        json_array_append_new(hits, user_json(r->c.id[h[i].cand], &h[i].u));
    free(h);
    *out = json_pack("{s:I,s:o}", "total_hits", (json_int_t)n, "hits", hits);
    return *out != NULL ? 0 : sp_err_set(eb, SP_ECORRUPT, NULL, "a user record is not UTF-8");
}

int proj_search_users(struct proj_search_reader *r,
                      MDB_txn *txn,
                      const char *text,
                      size_t len,
                      unsigned limit,
                      json_t **out,
                      struct sp_errbuf *eb)
{
    MDB_cursor *cur;
    int rc;

    if (limit < 1 || limit > PROJ_SEARCH_MAX_LIMIT)
        return sp_err_set(eb, SP_EINVAL, "limit", "must be 1 to %d", PROJ_SEARCH_MAX_LIMIT);
    r->plan.lang_filter = false;
    rc = search__qparse(r, text, len, eb);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(txn, r->dbs.dbi[SDB_USER_WORDS], &cur);
    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not open a search cursor");
    rc = users_run(r, cur, eb);
    mdb_cursor_close(cur);
    return rc != 0 ? rc : users_answer(r, txn, limit, out, eb);
}
