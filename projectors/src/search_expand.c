/*
 * Query term expansion: the stems a query word is looked up as (one per language the
 * query concerns) and the lexicon words it also matches with typos or as a prefix
 * (proj/typo.h's walk over the `words` keys), each with its document frequency.
 */
#include <string.h>

#include "search_reader_impl.h"
#include "sp/banned.h"

int search__typo_budget(const char *word, size_t len)
{
    size_t cps = 0;

    for (size_t i = 0; i < len; i++)
        cps += ((unsigned char)word[i] & 0xC0) != 0x80;
    return cps >= 9 ? 2 : cps >= 5 ? 1 : 0;
}

/* ------------------------------------------------------------------ lexicon walk */

/* The current key, if it begins with the head: shown without it. 1 = end of the walk. */
static int lex_at(struct search_lexicon *lx, int rc, const char **out, size_t *out_len)
{
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc != 0)
        return SP_EDB;
    if (lx->key.mv_size < lx->head_len || memcmp(lx->key.mv_data, lx->head, lx->head_len) != 0)
        return 1;
    *out = (const char *)lx->key.mv_data + lx->head_len;
    *out_len = lx->key.mv_size - lx->head_len;
    return 0;
}

static int lex_seek(void *ud, const char *key, size_t len, const char **out, size_t *out_len)
{
    struct search_lexicon *lx = ud;

    if (lx->head_len + len > sizeof(lx->seek))
        len = sizeof(lx->seek) - lx->head_len; /* a key longer than any word: same order */
    memcpy(lx->seek, lx->head, lx->head_len);
    memcpy(lx->seek + lx->head_len, key, len);
    lx->key = (MDB_val){lx->head_len + len, lx->seek};
    return lex_at(lx, mdb_cursor_get(lx->cur, &lx->key, &lx->val, MDB_SET_RANGE), out, out_len);
}

static int lex_next(void *ud, const char **out, size_t *out_len)
{
    struct search_lexicon *lx = ud;

    return lex_at(lx,
                  mdb_cursor_get(lx->cur, &lx->key, &lx->val, lx->dup ? MDB_NEXT_NODUP : MDB_NEXT),
                  out, out_len);
}

/* Recipes (or users) using the current lexicon word; 0 = none in the language wanted. */
static uint64_t lex_weight(const struct search_expansion *ex)
{
    const struct search_lexicon *lx = ex->lex;
    const uint8_t *v = lx->val.mv_data;
    uint64_t sum = 0;
    size_t count = 0;

    if (ex->lang == -2)
        return mdb_cursor_count(lx->cur, &count) == 0 ? count : 0;
    if (lx->val.mv_size != (size_t)4 * PROJ_LANG_COUNT)
        return 0;
    if (ex->lang >= 0)
        return search__get32(v + (size_t)4 * (size_t)ex->lang);
    for (size_t l = 0; l < PROJ_LANG_COUNT; l++)
        sum += search__get32(v + 4 * l);
    return sum;
}

/* Keep the word if it is among the best: fewest typos, most used, first in the lexicon. */
static int on_expansion(const char *term, size_t len, int dist, void *ud)
{
    struct search_expansion *ex = ud;
    uint64_t weight = lex_weight(ex);
    size_t at = ex->n, head = ex->lex->head_len;

    if (head + len > PROJ_TEXT_MAX_TOKEN_BYTES || weight == 0)
        return 0;
    while (at > 0 && (ex->w[at - 1].dist > dist ||
                      (ex->w[at - 1].dist == dist && ex->w[at - 1].weight < weight)))
        at--;
    if (at == PROJ_SEARCH_EXPAND_WORDS)
        return 0;
    size_t keep = ex->n < PROJ_SEARCH_EXPAND_WORDS ? ex->n : PROJ_SEARCH_EXPAND_WORDS - 1;
    memmove(&ex->w[at + 1], &ex->w[at], (keep - at) * sizeof(ex->w[0]));
    memcpy(ex->w[at].word, ex->lex->head, head);
    memcpy(ex->w[at].word + head, term, len);
    ex->w[at].word[head + len] = '\0';
    ex->w[at].len = head + len;
    ex->w[at].dist = dist;
    ex->w[at].weight = weight;
    ex->n = keep + 1;
    return 0;
}

int search__expand_walk(struct search_expansion *ex,
                        const char *word,
                        size_t len,
                        int max_dist,
                        bool prefix,
                        struct sp_errbuf *eb)
{
    struct proj_lexicon_iter it = {lex_seek, lex_next, ex->lex};
    size_t head = len > 0 ? 1 : 0;
    int rc;

    while (head < len && head < sizeof(ex->lex->head) && ((unsigned char)word[head] & 0xC0) == 0x80)
        head++;
    memcpy(ex->lex->head, word, head);
    ex->lex->head_len = head;
    ex->n = 0;
    rc = proj_typo_expand(&it, word + head, len - head, max_dist, prefix, PROJ_SEARCH_EXPAND_SCAN,
                          on_expansion, ex, NULL);
    if (rc == SP_EDB)
        return sp_err_set(eb, SP_EDB, NULL, "could not read the search lexicon");
    return rc < 0 ? sp_err_set(eb, rc, "q", "could not expand a query word") : 0;
}

/* ------------------------------------------------------------------ variants */

void search__variant_add(struct search_plan *p,
                         struct search_term *t,
                         const void *key,
                         size_t len,
                         bool filter,
                         int typos,
                         uint32_t hash)
{
    struct search_variant *v;

    if (len > SEARCH_VKEY_MAX)
        return;
    for (size_t i = t->v0; i < t->v0 + t->nv; i++) {
        v = &p->v[i];
        if (v->key_len == len && memcmp(v->key, key, len) == 0) {
            if (typos < v->typos)
                v->typos = (uint8_t)typos;
            return;
        }
    }
    SEARCH_GROW(p->v, p->v_cap, p->nv + 1);
    v = &p->v[p->nv++];
    memcpy(v->key, key, len);
    v->key_len = (uint16_t)len;
    v->filter = filter;
    v->typos = (uint8_t)typos;
    v->hash = hash;
    v->df = 0;
    v->idf = 0.0;
    t->nv++;
}

static void variant_stem(struct search_plan *p,
                         struct search_term *t,
                         enum proj_lang lang,
                         const char *stem,
                         size_t len,
                         int typos)
{
    uint8_t key[SEARCH_KEY_MAX];

    if (len + 1 > sizeof(key))
        return;
    key[0] = (uint8_t)lang;
    memcpy(key + 1, stem, len);
    search__variant_add(p, t, key, len + 1, false, typos, search__stem_hash(stem, len));
}

/* The query word's own stems, one per language the query concerns. */
static int exact_variants(struct proj_search_reader *r, struct search_term *t, struct sp_errbuf *eb)
{
    static const enum proj_lang all[] = {PROJ_LANG_EN, PROJ_LANG_DE, PROJ_LANG_NONE};
    struct search_plan *p = &r->plan;
    size_t n = p->lang_filter ? 1 : 3;

    for (size_t i = 0; i < n; i++) {
        enum proj_lang lang = p->lang_filter ? p->lang : all[i];
        const char *stem = t->word;
        size_t len = t->word_len;
        int rc = t->cjk ? 0 : proj_text_stem(r->text, lang, t->word, t->word_len, &stem, &len);
        if (rc != 0)
            return sp_err_set(eb, rc, "q", "could not stem a query word: %s", sp_strerror(rc));
        variant_stem(p, t, lang, stem, len, 0);
    }
    return 0;
}

/* The stems a lexicon word produced (word_stems), as variants with @p typos. */
static int word_variants(struct search_plan *p,
                         struct search_term *t,
                         MDB_cursor *ws,
                         const char *word,
                         size_t len,
                         int typos,
                         struct sp_errbuf *eb)
{
    MDB_val k = {len, search__mdb_data(word)}, v;
    int rc = mdb_cursor_get(ws, &k, &v, MDB_SET_KEY);

    for (; rc == 0; rc = mdb_cursor_get(ws, &k, &v, MDB_NEXT_DUP)) {
        const uint8_t *sv = v.mv_data;
        if (v.mv_size < 2 || (p->lang_filter && sv[0] != (uint8_t)p->lang))
            continue;
        variant_stem(p, t, (enum proj_lang)sv[0], (const char *)sv + 1, v.mv_size - 1, typos);
    }
    return rc == MDB_NOTFOUND ? 0 : search__mdb_err(eb, rc, "could not read the search lexicon");
}

/* Words the term also matches: typos (>= 5 code points) and, if open, as a prefix. */
static int fuzzy_variants(struct proj_search_reader *r,
                          struct search_term *t,
                          struct search_lexicon *lex,
                          MDB_cursor *ws,
                          struct sp_errbuf *eb)
{
    struct search_expansion ex = {.lex = lex, .lang = r->plan.lang_filter ? (int)r->plan.lang : -1};
    int budget = t->cjk ? 0 : search__typo_budget(t->word, t->word_len);
    int rc;

    if (budget == 0 && !t->prefix)
        return 0;
    rc = search__expand_walk(&ex, t->word, t->word_len, budget, t->prefix, eb);
    uint64_t postings = 0; /* recipes of the words taken so far: bounds the lists read */
    for (size_t i = 0; i < ex.n && rc == 0 && (i == 0 || postings < PROJ_SEARCH_EXPAND_POSTINGS);
         i++) {
        rc = word_variants(&r->plan, t, ws, ex.w[i].word, ex.w[i].len, ex.w[i].dist, eb);
        postings += ex.w[i].weight;
    }
    return rc;
}

/* Look up each variant's list: df and idf; drop variants with no list. */
static int variant_df(struct proj_search_reader *r,
                      struct search_term *t,
                      MDB_cursor *post,
                      MDB_cursor *filt,
                      struct sp_errbuf *eb)
{
    struct search_plan *p = &r->plan;
    size_t keep = t->v0;

    t->est = 0;
    for (size_t i = t->v0; i < t->v0 + t->nv; i++) {
        struct search_variant *v = &p->v[i];
        MDB_val k = {v->key_len, v->key}, d;
        size_t count = 0;
        MDB_cursor *cur = v->filter ? filt : post;
        int rc = mdb_cursor_get(cur, &k, &d, MDB_SET_KEY);
        if (rc == 0)
            rc = mdb_cursor_count(cur, &count);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return search__mdb_err(eb, rc, "could not read the search index");
        v->df = count;
        v->idf = v->filter ? 0.0 : proj_bm25f_idf(r->n_docs, count);
        t->est += count;
        if (keep != i)
            p->v[keep] = *v;
        keep++;
    }
    t->nv = keep - t->v0;
    return 0;
}

static int term_expand(struct proj_search_reader *r,
                       struct search_term *t,
                       MDB_cursor *cur[4],
                       struct search_lexicon *lex,
                       struct sp_errbuf *eb)
{
    int rc = 0;

    if (t->word_len > 0) { /* a word, not a filter */
        t->v0 = r->plan.nv;
        t->nv = 0;
        rc = exact_variants(r, t, eb);
        if (rc == 0 && t->role == SEARCH_REQUIRED && !t->exact && t->phrase < 0)
            rc = fuzzy_variants(r, t, lex, cur[3], eb);
    }
    if (rc == 0 && t->role != SEARCH_NEG_PHRASE)
        rc = variant_df(r, t, cur[0], cur[1], eb);
    return rc;
}

int search__expand(struct proj_search_reader *r, MDB_txn *txn, struct sp_errbuf *eb)
{
    static const enum search_db dbs[4] = {SDB_POSTINGS, SDB_FILTERS, SDB_WORDS, SDB_WORD_STEMS};
    MDB_cursor *cur[4] = {NULL, NULL, NULL, NULL};
    struct search_lexicon lex = {.dup = false};
    int rc = 0;

    for (int i = 0; i < 4 && rc == 0; i++)
        rc = mdb_cursor_open(txn, r->dbs.dbi[dbs[i]], &cur[i]);
    if (rc != 0)
        rc = search__mdb_err(eb, rc, "could not open a search cursor");
    lex.cur = cur[2];
    for (size_t i = 0; i < r->plan.n_terms && rc == 0; i++)
        rc = term_expand(r, &r->plan.terms[i], cur, &lex, eb);
    for (int i = 0; i < 4; i++)
        if (cur[i] != NULL)
            mdb_cursor_close(cur[i]);
    return rc;
}
