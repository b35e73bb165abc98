/*
 * Query term expansion: the stems a query word is looked up as (one per language the
 * query concerns) and the lexicon words it also matches with typos or as a prefix
 * (proj/typo.h's walk over the `words` keys, or over the reader's copy of them for the
 * snapshot read: struct search_lexcopy), each with its document frequency and a cursor
 * left on its list for the execution.
 */
#include <stdlib.h>
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

/* ------------------------------------------------------------------ lexicon copy */

/*
 * What a copy of the lexicon costs, in keys walks read from LMDB per key copied: measured,
 * copying a key takes about as long as a walk spends reading one.
 */
#define LEXCOPY_PRICE 1
/* Largest lexicon copied, in words (about 9 ms to copy, 8 MB in memory; larger: walked). */
#define LEXCOPY_MAX_WORDS (1u << 18)

void search__lexcopy_release(struct search_lexcopy *lc)
{
    free(lc->w);
    proj__bytes_release(&lc->bytes);
    memset(lc, 0, sizeof(*lc));
}

static void lexcopy_add(struct search_lexcopy *lc, const MDB_val *k, const MDB_val *v)
{
    struct search_lexword *w;

    PROJ_GROW(lc->w, lc->cap, lc->n + 1);
    w = &lc->w[lc->n++];
    w->off = (uint32_t)lc->bytes.len;
    w->len = (uint32_t)k->mv_size;
    for (size_t l = 0; l < PROJ_LANG_COUNT; l++)
        w->count[l] = v->mv_size == (size_t)4 * PROJ_LANG_COUNT
                          ? proj__get32((const uint8_t *)v->mv_data + 4 * l)
                          : 0;
    proj__bytes_add(&lc->bytes, k->mv_data, k->mv_size);
}

/* Copy the lexicon @p cur reads for @p snapshot. @return 0 or an LMDB error. */
static int lexcopy_build(struct search_lexcopy *lc, MDB_cursor *cur, uint64_t snapshot)
{
    MDB_val k, v;
    int rc;

    lc->snapshot = 0;
    lc->n = 0;
    lc->bytes.len = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        lexcopy_add(lc, &k, &v);
    if (rc != MDB_NOTFOUND)
        return rc;
    lc->snapshot = snapshot;
    return 0;
}

/* Pay for the @p keys walks read from LMDB; copy the lexicon once they have cost as much. */
static void lexcopy_pay(struct proj_search_reader *r, MDB_txn *txn, MDB_cursor *cur, size_t keys)
{
    struct search_lexcopy *lc = &r->lexcopy;
    MDB_stat st;

    if (keys == 0 || mdb_stat(txn, r->dbs.dbi[SDB_WORDS], &st) != 0 ||
        st.ms_entries > LEXCOPY_MAX_WORDS ||
        !search__rental_pay(&lc->rent, r->snapshot, keys, LEXCOPY_PRICE * (st.ms_entries + 1)))
        return;
    if (lexcopy_build(lc, cur, r->snapshot) != 0) /* the walks are done: only not copied */
        lc->snapshot = 0;
}

static const char *lexcopy_word(const struct search_lexcopy *lc, size_t i)
{
    return (const char *)lc->bytes.data + lc->w[i].off;
}

/* memcmp order, shorter first: LMDB's order of the lexicon's keys. */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    return c != 0 ? c : (alen > blen) - (alen < blen);
}

/* First word of [lo, hi) of the copy, all beginning with @p skip bytes, whose rest is >= key. */
static size_t lexcopy_lower(
    const struct search_lexcopy *lc, size_t lo, size_t hi, size_t skip, const char *key, size_t len)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(lexcopy_word(lc, mid) + skip, lc->w[mid].len - skip, key, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The words of the copy that begin with lx->head: [lx->lo, lx->hi). */
static void lexcopy_slice(struct search_lexicon *lx)
{
    const struct search_lexcopy *lc = lx->copy;
    size_t lo = lexcopy_lower(lc, 0, lc->n, 0, lx->head, lx->head_len), hi = lc->n, at = lo;

    while (at < hi) { /* the first word not beginning with the head */
        size_t mid = at + (hi - at) / 2;
        if (lc->w[mid].len >= lx->head_len &&
            memcmp(lexcopy_word(lc, mid), lx->head, lx->head_len) == 0)
            at = mid + 1;
        else
            hi = mid;
    }
    lx->lo = lx->at = lo;
    lx->hi = at;
}

/* ------------------------------------------------------------------ lexicon walk */

/* The copy's current word shown without the head. 1 = end of the walk. */
static int copy_at(struct search_lexicon *lx, const char **out, size_t *out_len)
{
    if (lx->at >= lx->hi)
        return 1;
    *out = lexcopy_word(lx->copy, lx->at) + lx->head_len;
    *out_len = lx->copy->w[lx->at].len - lx->head_len;
    return 0;
}

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

/* Word @p i of the copy without the head, compared with @p key. */
static int copy_cmp(const struct search_lexicon *lx, size_t i, const char *key, size_t len)
{
    return key_cmp(lexcopy_word(lx->copy, i) + lx->head_len, lx->copy->w[i].len - lx->head_len, key,
                   len);
}

/* Walks seek forward, mostly a few words on: gallop from the current word, then bisect. */
static void copy_seek(struct search_lexicon *lx, const char *key, size_t len)
{
    size_t lo = lx->at, hi = lx->at, step = 1;

    if (lo > lx->lo && copy_cmp(lx, lo - 1, key, len) >= 0)
        lo = hi = lx->lo; /* the key lies before the current word */
    while (hi < lx->hi && copy_cmp(lx, hi, key, len) < 0) {
        lo = hi + 1; /* words before lo are < key */
        hi += step;
        step *= 2;
    }
    lx->at = lexcopy_lower(lx->copy, lo, hi < lx->hi ? hi : lx->hi, lx->head_len, key, len);
}

static int lex_seek(void *ud, const char *key, size_t len, const char **out, size_t *out_len)
{
    struct search_lexicon *lx = ud;

    if (lx->copy != NULL) {
        copy_seek(lx, key, len);
        return copy_at(lx, out, out_len);
    }
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

    if (lx->copy != NULL) {
        lx->at++;
        return copy_at(lx, out, out_len);
    }
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
    if (lx->copy != NULL) {
        const uint32_t *c = lx->copy->w[lx->at].count;
        if (ex->lang >= 0)
            return c[ex->lang];
        for (size_t l = 0; l < PROJ_LANG_COUNT; l++)
            sum += c[l];
        return sum;
    }
    if (lx->val.mv_size != (size_t)4 * PROJ_LANG_COUNT)
        return 0;
    if (ex->lang >= 0)
        return proj__get32(v + (size_t)4 * (size_t)ex->lang);
    for (size_t l = 0; l < PROJ_LANG_COUNT; l++)
        sum += proj__get32(v + 4 * l);
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
    struct proj_typo_stats st;
    size_t head = len > 0 ? 1 : 0;
    int rc;

    while (head < len && head < sizeof(ex->lex->head) && ((unsigned char)word[head] & 0xC0) == 0x80)
        head++;
    memcpy(ex->lex->head, word, head);
    ex->lex->head_len = head;
    if (ex->lex->copy != NULL)
        lexcopy_slice(ex->lex);
    ex->n = 0;
    rc = proj_typo_expand(&it, word + head, len - head, max_dist, prefix, PROJ_SEARCH_EXPAND_SCAN,
                          on_expansion, ex, &st);
    ex->visited = ex->lex->copy == NULL ? st.visited : 0;
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
    PROJ_GROW(p->v, p->v_cap, p->nv + 1);
    v = &p->v[p->nv++];
    memcpy(v->key, key, len);
    v->key_len = (uint16_t)len;
    v->filter = filter;
    v->cur = NULL;
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
    MDB_val k = {len, proj__mdb_data(word)}, v;
    int rc = mdb_cursor_get(ws, &k, &v, MDB_SET_KEY);

    for (; rc == 0; rc = mdb_cursor_get(ws, &k, &v, MDB_NEXT_DUP)) {
        const uint8_t *sv = v.mv_data;
        if (v.mv_size < 2 || (p->lang_filter && sv[0] != (uint8_t)p->lang))
            continue;
        variant_stem(p, t, (enum proj_lang)sv[0], (const char *)sv + 1, v.mv_size - 1, typos);
    }
    return rc == MDB_NOTFOUND ? 0 : proj__mdb_err(eb, rc, "could not read the search lexicon");
}

/* Words the term also matches: typos (>= 5 code points) and, if open, as a prefix.
 * *visited += lexicon keys the walk read from LMDB. */
static int fuzzy_variants(struct proj_search_reader *r,
                          struct search_term *t,
                          struct search_lexicon *lex,
                          MDB_cursor *ws,
                          size_t *visited,
                          struct sp_errbuf *eb)
{
    struct search_expansion ex = {.lex = lex, .lang = r->plan.lang_filter ? (int)r->plan.lang : -1};
    int budget = t->cjk ? 0 : search__typo_budget(t->word, t->word_len);
    int rc;

    if (budget == 0 && !t->prefix)
        return 0;
    rc = search__expand_walk(&ex, t->word, t->word_len, budget, t->prefix, eb);
    *visited += ex.visited;
    uint64_t postings = 0; /* recipes of the words taken so far: bounds the lists read */
    for (size_t i = 0; i < ex.n && rc == 0 && (i == 0 || postings < PROJ_SEARCH_EXPAND_POSTINGS);
         i++) {
        rc = word_variants(&r->plan, t, ws, ex.w[i].word, ex.w[i].len, ex.w[i].dist, eb);
        postings += ex.w[i].weight;
    }
    return rc;
}

/* Position a cursor of its own on variant @p v's list (v->cur) and count it. */
static int
variant_open(struct proj_search_reader *r, MDB_txn *txn, struct search_variant *v, size_t *count)
{
    MDB_val k = {v->key_len, v->key}, d;
    int rc = mdb_cursor_open(txn, r->dbs.dbi[v->filter ? SDB_FILTERS : SDB_POSTINGS], &v->cur);

    if (rc == 0)
        rc = mdb_cursor_get(v->cur, &k, &d, MDB_SET_KEY);
    if (rc == 0)
        rc = mdb_cursor_count(v->cur, count);
    if (rc != 0 && v->cur != NULL) {
        mdb_cursor_close(v->cur);
        v->cur = NULL;
    }
    return rc;
}

/*
 * Look up each variant's list: df and idf; drop variants with no list. The cursor found
 * it stays on it for the execution, which then reads the list without a second lookup.
 */
static int
variant_df(struct proj_search_reader *r, MDB_txn *txn, struct search_term *t, struct sp_errbuf *eb)
{
    struct search_plan *p = &r->plan;
    size_t keep = t->v0;

    t->est = 0;
    for (size_t i = t->v0; i < t->v0 + t->nv; i++) {
        struct search_variant *v = &p->v[i];
        size_t count = 0;
        int rc = variant_open(r, txn, v, &count);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return proj__mdb_err(eb, rc, "could not read the search index");
        v->df = count;
        v->idf = v->filter ? 0.0 : proj_bm25f_idf(r->n_docs, count);
        t->est += count;
        if (keep != i) {
            p->v[keep] = *v;
            v->cur = NULL; /* moved */
        }
        keep++;
    }
    t->nv = keep - t->v0;
    return 0;
}

void search__variants_close(struct search_plan *p)
{
    for (size_t i = 0; i < p->nv; i++) {
        if (p->v[i].cur != NULL)
            mdb_cursor_close(p->v[i].cur);
        p->v[i].cur = NULL;
    }
}

static int term_expand(struct proj_search_reader *r,
                       MDB_txn *txn,
                       struct search_term *t,
                       MDB_cursor *cur[2],
                       struct search_lexicon *lex,
                       size_t *visited,
                       struct sp_errbuf *eb)
{
    int rc = 0;

    if (t->word_len > 0) { /* a word, not a filter */
        t->v0 = r->plan.nv;
        t->nv = 0;
        rc = exact_variants(r, t, eb);
        if (rc == 0 && t->role == SEARCH_REQUIRED && !t->exact && t->phrase < 0)
            rc = fuzzy_variants(r, t, lex, cur[1], visited, eb);
    }
    if (rc == 0 && t->role != SEARCH_NEG_PHRASE)
        rc = variant_df(r, txn, t, eb);
    return rc;
}

int search__expand(struct proj_search_reader *r, MDB_txn *txn, struct sp_errbuf *eb)
{
    static const enum search_db dbs[2] = {SDB_WORDS, SDB_WORD_STEMS};
    MDB_cursor *cur[2] = {NULL, NULL};
    struct search_lexicon lex = {.dup = false};
    size_t visited = 0;
    int rc = 0;

    for (int i = 0; i < 2 && rc == 0; i++)
        rc = mdb_cursor_open(txn, r->dbs.dbi[dbs[i]], &cur[i]);
    if (rc != 0)
        rc = proj__mdb_err(eb, rc, "could not open a search cursor");
    lex.cur = cur[0];
    if (r->snapshot != 0 && r->lexcopy.snapshot == r->snapshot)
        lex.copy = &r->lexcopy;
    for (size_t i = 0; i < r->plan.n_terms && rc == 0; i++)
        rc = term_expand(r, txn, &r->plan.terms[i], cur, &lex, &visited, eb);
    if (rc == 0)
        lexcopy_pay(r, txn, cur[0], visited);
    for (int i = 0; i < 2; i++)
        if (cur[i] != NULL)
            mdb_cursor_close(cur[i]);
    return rc;
}
