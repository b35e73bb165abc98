/*
 * Tests of proj/typo.h: the bounded distance against a full-matrix reference, and the
 * lexicon walk against a brute-force scan of every key, on an in-memory sorted lexicon.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proj/typo.h"
#include "sp/alloc.h"
#include "sp/banned.h"

/* ---- an in-memory lexicon: sorted, distinct keys; seek is a binary search ---- */

struct key {
    char *s; /* owned; not NUL-terminated in general */
    size_t len;
};

struct lex {
    struct key *keys; /* owned, sorted in memcmp order, distinct */
    size_t n;
    size_t pos;    /* iterator position */
    int seek_fail; /* non-zero: seek returns it */
};

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int key_qsort_cmp(const void *x, const void *y)
{
    const struct key *a = x, *b = y;
    return key_cmp(a->s, a->len, b->s, b->len);
}

/* Sort and de-duplicate; takes ownership of @p keys. */
static void lex_init(struct lex *lx, struct key *keys, size_t n)
{
    size_t out = 0;

    qsort(keys, n, sizeof(*keys), key_qsort_cmp);
    for (size_t i = 0; i < n; i++) {
        if (out && key_cmp(keys[out - 1].s, keys[out - 1].len, keys[i].s, keys[i].len) == 0) {
            free(keys[i].s);
            continue;
        }
        keys[out++] = keys[i];
    }
    lx->keys = keys;
    lx->n = out;
    lx->pos = 0;
    lx->seek_fail = 0;
}

static void lex_init_strs(struct lex *lx, const char *const *strs, size_t n)
{
    struct key *keys = sp_xcalloc(n, sizeof(*keys));
    for (size_t i = 0; i < n; i++) {
        keys[i].s = sp_xstrdup(strs[i]);
        keys[i].len = strlen(strs[i]);
    }
    lex_init(lx, keys, n);
}

static void lex_release(struct lex *lx)
{
    for (size_t i = 0; i < lx->n; i++)
        free(lx->keys[i].s);
    free(lx->keys);
    lx->keys = NULL;
    lx->n = 0;
}

static int lex_at(struct lex *lx, const char **out, size_t *out_len)
{
    if (lx->pos >= lx->n)
        return 1;
    *out = lx->keys[lx->pos].s;
    *out_len = lx->keys[lx->pos].len;
    return 0;
}

static int lex_seek(void *ud, const char *key, size_t key_len, const char **out, size_t *out_len)
{
    struct lex *lx = ud;
    size_t lo = 0, hi = lx->n;

    if (lx->seek_fail)
        return lx->seek_fail;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(lx->keys[mid].s, lx->keys[mid].len, key, key_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    lx->pos = lo;
    return lex_at(lx, out, out_len);
}

static int lex_next(void *ud, const char **out, size_t *out_len)
{
    struct lex *lx = ud;

    if (lx->pos < lx->n)
        lx->pos++;
    return lex_at(lx, out, out_len);
}

static struct proj_lexicon_iter lex_iter(struct lex *lx)
{
    struct proj_lexicon_iter it = {.seek = lex_seek, .next = lex_next, .ud = lx};
    return it;
}

/* ---- collecting results: (key index, distance) in lexicon order ---- */

struct hits {
    struct lex *lx;
    size_t *idx; /* owned */
    int *dist;   /* owned */
    size_t n, cap;
    int stop_after; /* > 0: return stop_rc once this many terms were collected */
    int stop_rc;
};

static void hits_init(struct hits *h, struct lex *lx)
{
    memset(h, 0, sizeof(*h));
    h->lx = lx;
}

static void hits_release(struct hits *h)
{
    free(h->idx);
    free(h->dist);
    h->idx = NULL;
    h->dist = NULL;
    h->n = h->cap = 0;
}

static void hits_add(struct hits *h, size_t idx, int dist)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->idx = sp_xrealloc(h->idx, h->cap * sizeof(*h->idx));
        h->dist = sp_xrealloc(h->dist, h->cap * sizeof(*h->dist));
    }
    h->idx[h->n] = idx;
    h->dist[h->n] = dist;
    h->n++;
}

/* proj_typo_fn: the term is the lexicon's current key (borrowed from it). */
static int collect(const char *term, size_t term_len, int dist, void *ud)
{
    struct hits *h = ud;
    const struct key *k = &h->lx->keys[h->lx->pos];

    assert_true(h->lx->pos < h->lx->n);
    assert_ptr_equal(term, k->s);
    assert_int_equal(term_len, k->len);
    hits_add(h, h->lx->pos, dist);
    if (h->stop_after > 0 && h->n >= (size_t)h->stop_after)
        return h->stop_rc;
    return 0;
}

/* ---- references ---- */

/* Code point boundaries of valid UTF-8: @return the number of code points; starts in @p at. */
static size_t utf8_starts(const char *s, size_t len, size_t *at)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            at[n++] = i;
    at[n] = len;
    return n;
}

/* Full-matrix optimal string alignment distance on valid UTF-8, unbounded. */
static int osa_reference(const char *a, size_t alen, const char *b, size_t blen)
{
    static int d[80][80];
    size_t as[80], bs[80];
    size_t na = utf8_starts(a, alen, as), nb = utf8_starts(b, blen, bs);

#define CP_EQ(i, j)                                                                                \
    (as[(i) + 1] - as[i] == bs[(j) + 1] - bs[j] &&                                                 \
     !memcmp(a + as[i], b + bs[j], as[(i) + 1] - as[i]))
    for (size_t i = 0; i <= na; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= nb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        for (size_t j = 1; j <= nb; j++) {
            int v = d[i - 1][j - 1] + !CP_EQ(i - 1, j - 1);
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && CP_EQ(i - 1, j - 2) && CP_EQ(i - 2, j - 1) &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
#undef CP_EQ
    return d[na][nb];
}

/* Brute force: every key, in order, whose distance (prefix mode: best prefix's) <= max. */
static void
brute_force(struct lex *lx, const char *w, size_t wlen, int max, bool prefix, struct hits *h)
{
    size_t at[4 * PROJ_TYPO_MAX_CP + 8];

    for (size_t i = 0; i < lx->n; i++) {
        const struct key *k = &lx->keys[i];
        int best = max + 1;
        if (prefix) {
            size_t ncp = utf8_starts(k->s, k->len, at);
            for (size_t p = 0; p <= ncp; p++) {
                int dd = proj_typo_distance(w, wlen, k->s, at[p], max);
                best = dd < best ? dd : best;
            }
        } else {
            best = proj_typo_distance(w, wlen, k->s, k->len, max);
        }
        if (best <= max)
            hits_add(h, i, best);
    }
}

static struct proj_typo_stats
expand_check(struct lex *lx, const char *w, size_t wlen, int max, bool prefix)
{
    struct proj_lexicon_iter it = lex_iter(lx);
    struct proj_typo_stats st;
    struct hits got, want;

    hits_init(&got, lx);
    hits_init(&want, lx);
    assert_int_equal(proj_typo_expand(&it, w, wlen, max, prefix, 0, collect, &got, &st), 0);
    brute_force(lx, w, wlen, max, prefix, &want);
    assert_int_equal(got.n, want.n);
    for (size_t i = 0; i < want.n; i++) {
        assert_int_equal(got.idx[i], want.idx[i]);
        assert_int_equal(got.dist[i], want.dist[i]);
    }
    assert_int_equal(st.reported, want.n);
    assert_true(st.visited <= lx->n);
    hits_release(&got);
    hits_release(&want);
    return st;
}

/* ---- random words (fixed seed) ---- */

static uint64_t rng_state;

static uint32_t rng_below(uint32_t n)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15U);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9U;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBU;
    return (uint32_t)((z ^ (z >> 31)) % n);
}

struct alphabet {
    const char *const *letters;
    uint32_t n;
};

static const char *const small_letters[] = {"a", "b", "c", "d", "e", "\xc3\xa9", "\xc3\xbc"};
static const struct alphabet small_abc = {small_letters, 7};
static const char *const big_letters[] = {
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",        "n",
    "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z", "\xc3\xa9", "\xc3\xbc"};
static const struct alphabet big_abc = {big_letters, 28};

/* Letters (alphabet indexes) to a key; owned. */
static struct key word_of(const struct alphabet *ab, const uint32_t *l, size_t n)
{
    struct key k = {.s = sp_xmalloc(4 * n + 1), .len = 0};
    for (size_t i = 0; i < n; i++) {
        size_t ll = strlen(ab->letters[l[i]]);
        memcpy(k.s + k.len, ab->letters[l[i]], ll);
        k.len += ll;
    }
    k.s[k.len] = '\0';
    return k;
}

/* Exactly @p n distinct random words of @p minl..@p maxl letters, sorted. */
static void
random_lex(struct lex *lx, const struct alphabet *ab, size_t n, size_t minl, size_t maxl)
{
    struct key *keys = sp_xcalloc(n, sizeof(*keys));
    size_t have = 0;
    uint32_t l[32];

    while (have < n) { /* top up what de-duplication removed */
        for (size_t i = have; i < n; i++) {
            size_t len = minl + rng_below((uint32_t)(maxl - minl + 1));
            for (size_t j = 0; j < len; j++)
                l[j] = rng_below(ab->n);
            keys[i] = word_of(ab, l, len);
        }
        lex_init(lx, keys, n);
        have = lx->n;
    }
}

/* A random word, or a lexicon word with up to two random edits; owned. */
static struct key random_query(const struct alphabet *ab, size_t maxl)
{
    uint32_t l[40];
    size_t n = 1 + rng_below((uint32_t)maxl);

    for (size_t j = 0; j < n; j++)
        l[j] = rng_below(ab->n);
    for (uint32_t e = rng_below(3); e > 0; e--) {
        size_t p = rng_below((uint32_t)n);
        switch (rng_below(4)) {
        case 0: /* substitute */
            l[p] = rng_below(ab->n);
            break;
        case 1: /* insert */
            memmove(l + p + 1, l + p, (n - p) * sizeof(*l));
            l[p] = rng_below(ab->n);
            n++;
            break;
        case 2: /* delete */
            if (n > 1) {
                memmove(l + p, l + p + 1, (n - p - 1) * sizeof(*l));
                n--;
            }
            break;
        default: /* transpose */
            if (p + 1 < n) {
                uint32_t t = l[p];
                l[p] = l[p + 1];
                l[p + 1] = t;
            }
        }
    }
    return word_of(ab, l, n);
}

/* ---- distance ---- */

#define DIST(a, b, max) proj_typo_distance((a), strlen(a), (b), strlen(b), (max))

static void test_distance_basics(void **state)
{
    (void)state;
    assert_int_equal(DIST("kitten", "sitting", 3), 3);
    assert_int_equal(DIST("kitten", "sitting", 10), 3);
    assert_int_equal(DIST("kitten", "sitting", 2), 3); /* bounded: max + 1 */
    assert_int_equal(DIST("kitten", "sitting", 0), 1);
    assert_int_equal(DIST("ab", "ba", 2), 1); /* transposition */
    assert_int_equal(DIST("recipe", "reicpe", 2), 1);
    assert_int_equal(DIST("ca", "abc", 5), 3); /* restricted: not 2 as in full Damerau */
    assert_int_equal(DIST("creme", "cr\xc3\xa8me", 2), 1); /* è is one code point */
    assert_int_equal(DIST("cr\xc3\xa8me", "crme", 2), 1);
    assert_int_equal(DIST("\xc3\xa9"
                          "a",
                          "a\xc3\xa9", 2),
                     1);                                  /* transposed multi-byte */
    assert_int_equal(DIST("\xc3\xbc", "\xc3\xa9", 2), 1); /* shared lead byte, 1 edit */
    assert_int_equal(DIST("\xe2\x82\xac", "e", 2), 1);    /* 3-byte code point */
    assert_int_equal(DIST("", "", 0), 0);
    assert_int_equal(DIST("", "abc", 3), 3);
    assert_int_equal(DIST("abc", "", 3), 3);
    assert_int_equal(DIST("", "abc", 2), 3);
    assert_int_equal(DIST("same", "same", 0), 0);
    assert_int_equal(DIST("a", "b", -1), 1); /* negative max counts as 0 */
    assert_int_equal(DIST("a", "a", -1), 0);
    assert_int_equal(DIST("abcdef", "uvwxyz", 1), 2); /* early exit on the first row */
    assert_int_equal(DIST("abcdef", "uvwxyz", 6), 6);
    assert_int_equal(DIST("abcdefgh", "ab", 2), 3); /* length difference alone */
}

static void test_distance_long_words(void **state)
{
    (void)state;
    char a64[65], a65[66], b64[65];
    memset(a64, 'a', 64);
    a64[64] = '\0';
    memset(a65, 'a', 65);
    a65[65] = '\0';
    memcpy(b64, a64, sizeof(b64));
    b64[10] = 'b';
    assert_int_equal(DIST(a64, a64, 2), 0);
    assert_int_equal(DIST(a64, b64, 2), 1);
    assert_int_equal(DIST(a65, a65, 2), 3); /* over PROJ_TYPO_MAX_CP: not computed */
    assert_int_equal(DIST(a64, a65, 2), 3);
    assert_int_equal(DIST(a64, "", 1000), PROJ_TYPO_MAX_CP); /* max above MAX_CP: capped */
}

static void test_distance_random_vs_reference(void **state)
{
    (void)state;
    rng_state = 7;
    for (int i = 0; i < 20000; i++) {
        struct key a = random_query(&small_abc, 9), b = random_query(&small_abc, 9);
        int full = osa_reference(a.s, a.len, b.s, b.len);
        assert_int_equal(proj_typo_distance(a.s, a.len, b.s, b.len, PROJ_TYPO_MAX_CP), full);
        for (int max = 0; max <= 3; max++)
            assert_int_equal(proj_typo_distance(a.s, a.len, b.s, b.len, max),
                             full <= max ? full : max + 1);
        free(a.s);
        free(b.s);
    }
}

/* ---- expansion ---- */

static void test_expand_small(void **state)
{
    (void)state;
    static const char *const words[] = {"thick", "chicken", "chip", "cheese", "chocolate", "chick"};
    struct lex lx;
    lex_init_strs(&lx, words, 6);
    /* sorted: cheese chick chicken chip chocolate thick */
    struct proj_lexicon_iter it = lex_iter(&lx);
    struct hits h;
    hits_init(&h, &lx);

    assert_int_equal(proj_typo_expand(&it, "chic", 4, 1, false, 0, collect, &h, NULL), 0);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.idx[0], 1); /* chick, insertion */
    assert_int_equal(h.dist[0], 1);
    assert_int_equal(h.idx[1], 3); /* chip, substitution */
    assert_int_equal(h.dist[1], 1);
    hits_release(&h);

    assert_int_equal(proj_typo_expand(&it, "chic", 4, 1, true, 0, collect, &h, NULL), 0);
    static const size_t want_idx[] = {1, 2, 3, 4, 5};
    static const int want_dist[] = {0, 0, 1, 1, 1};
    assert_int_equal(h.n, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(h.idx[i], want_idx[i]);
        assert_int_equal(h.dist[i], want_dist[i]);
    }
    hits_release(&h);

    /* max_dist 0, prefix: a plain prefix lookup */
    assert_int_equal(proj_typo_expand(&it, "chi", 3, 0, true, 0, collect, &h, NULL), 0);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.idx[0], 1);
    assert_int_equal(h.idx[2], 3);
    hits_release(&h);
    lex_release(&lx);
}

static void test_expand_multibyte(void **state)
{
    (void)state;
    static const char *const words[] = {"creme", "cr\xc3\xa8me", "cr\xc3\xa8mes", "cremeux"};
    struct lex lx;
    lex_init_strs(&lx, words, 4);
    /* sorted: creme cremeux crème crèmes */
    struct proj_lexicon_iter it = lex_iter(&lx);
    struct hits h;
    hits_init(&h, &lx);

    assert_int_equal(proj_typo_expand(&it, "cr\xc3\xa8me", 6, 1, false, 0, collect, &h, NULL), 0);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.idx[0], 0);
    assert_int_equal(h.dist[0], 1);
    assert_int_equal(h.idx[1], 2);
    assert_int_equal(h.dist[1], 0);
    assert_int_equal(h.idx[2], 3);
    assert_int_equal(h.dist[2], 1);
    hits_release(&h);

    assert_int_equal(proj_typo_expand(&it, "cr\xc3\xa8", 4, 0, true, 0, collect, &h, NULL), 0);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.idx[0], 2);
    assert_int_equal(h.idx[1], 3);
    hits_release(&h);
    lex_release(&lx);
}

/* Odd bytes: skipping past a prefix ending in 0xFF carries; clipped code points. */
/* Expect exactly these lexicon indexes, each at distance @p dist. */
static void assert_hits(const struct hits *h, const size_t *idx, size_t n, int dist)
{
    assert_int_equal(h->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(h->idx[i], idx[i]);
        assert_int_equal(h->dist[i], dist);
    }
}

/* Odd bytes: skipping past a prefix ending in 0xFF carries; clipped code points. */
static void test_expand_odd_bytes(void **state)
{
    (void)state;
    static const char *const words[] = {"a",
                                        "a\xff",
                                        "a\xff\x01",
                                        "a\xff\xff",
                                        "a\xff\xff\x31",
                                        "a\xff\xff\x32",
                                        "a\xff\xff\x33",
                                        "a\xff\xff\x34",
                                        "a\xff\xff\x35",
                                        "b",
                                        "ba",
                                        "\xff",
                                        "\xff\xff",
                                        "\xff\xff\x31",
                                        "\xff\xff\x32",
                                        "\xff\xff\x33"};
    struct lex lx;
    lex_init_strs(&lx, words, 16);
    struct proj_lexicon_iter it = lex_iter(&lx);
    struct proj_typo_stats st;
    struct hits h;
    hits_init(&h, &lx);

    /*
     * Below "a\xff" only "ab"'s tails "b" and "" can match, so the walk leaves it for
     * "b" ("a\xff" plus one, the 0xFF carried) and, below "\xff", ends: nothing follows
     * "\xff\xff...".
     */
    assert_int_equal(proj_typo_expand(&it, "ab", 2, 1, false, 0, collect, &h, &st), 0);
    static const size_t want[] = {0, 1, 9, 10}; /* a, a\xff, b, ba (transposed) */
    assert_hits(&h, want, 4, 1);
    assert_true(st.visited < lx.n);
    assert_true(st.seeks >= 2);
    hits_release(&h);
    for (int max = 0; max <= 2; max++) {
        expand_check(&lx, "a", 1, max, false);
        expand_check(&lx, "a", 1, max, true);
        expand_check(&lx, "ab", 2, max, false);
        expand_check(&lx, "ab", 2, max, true);
        expand_check(&lx, "bz", 2, max, false);
        expand_check(&lx, "bz", 2, max, true);
        expand_check(&lx, "\xff\xff", 2, max, false);
        expand_check(&lx, "\xff\xff", 2, max, true);
    }
    lex_release(&lx);

    /*
     * A key ending in a clipped "è" (a lone lead byte) is no prefix of the keys after
     * it, which decode that byte with the next one.
     */
    static const char *const clipped[] = {"a\xc3", "a\xc3\x41", "a\xc3\xa8", "a\xc3\xa8s", "b"};
    lex_init_strs(&lx, clipped, 5);
    it = lex_iter(&lx);
    assert_int_equal(proj_typo_expand(&it, "a\xc3\xa8", 3, 0, false, 0, collect, &h, NULL), 0);
    static const size_t want_e[] = {2};
    assert_hits(&h, want_e, 1, 0);
    hits_release(&h);
    assert_int_equal(proj_typo_expand(&it, "a\xc3", 2, 0, true, 0, collect, &h, NULL), 0);
    static const size_t want_c[] = {0};
    assert_hits(&h, want_c, 1, 0);
    hits_release(&h);
    assert_int_equal(proj_typo_expand(&it, "ab", 2, 1, false, 0, collect, &h, NULL), 0);
    static const size_t want_ab[] = {0, 1, 2, 4}; /* "a\xc3\x41" is two code points */
    assert_hits(&h, want_ab, 4, 1);
    hits_release(&h);
    lex_release(&lx);
}

static void test_expand_long_keys(void **state)
{
    (void)state;
    char k70[71], k64[65], w65[66];
    memset(k70, 'a', 70);
    k70[70] = '\0';
    memcpy(k64, k70, 64);
    k64[64] = '\0';
    memcpy(w65, k70, 65);
    w65[65] = '\0';
    const char *words[] = {k70, "b"};
    struct lex lx;
    lex_init_strs(&lx, words, 2);
    struct proj_lexicon_iter it = lex_iter(&lx);
    struct hits h;
    hits_init(&h, &lx);

    /* exact: a key over PROJ_TYPO_MAX_CP code points never matches */
    assert_int_equal(proj_typo_expand(&it, k64, 64, 2, false, 0, collect, &h, NULL), 0);
    assert_int_equal(h.n, 0);
    /* prefix: judged on its first PROJ_TYPO_MAX_CP code points */
    assert_int_equal(proj_typo_expand(&it, k64, 64, 0, true, 0, collect, &h, NULL), 0);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.idx[0], 0);
    assert_int_equal(h.dist[0], 0);
    hits_release(&h);
    for (int max = 0; max <= 2; max++) {
        expand_check(&lx, k64, 64, max, false);
        expand_check(&lx, k64, 64, max, true);
    }
    assert_int_equal(proj_typo_expand(&it, w65, 65, 1, false, 0, collect, &h, NULL), SP_ETOOBIG);
    assert_int_equal(proj_typo_expand(&it, "a", 1, -1, false, 0, collect, &h, NULL), SP_EINVAL);
    assert_int_equal(h.n, 0);
    lex_release(&lx);
}

static void test_expand_vs_brute_force(void **state)
{
    (void)state;
    struct lex lx;
    rng_state = 42;
    random_lex(&lx, &small_abc, 5000, 1, 8);
    assert_int_equal(lx.n, 5000);
    for (int q = 0; q < 150; q++) {
        struct key w = random_query(&small_abc, 8);
        for (int max = 0; max <= (q % 5 ? 2 : 3); max++) {
            expand_check(&lx, w.s, w.len, max, false);
            expand_check(&lx, w.s, w.len, max, true);
        }
        free(w.s);
    }
    /* every lexicon word finds itself at distance 0 */
    for (size_t i = 0; i < lx.n; i += 97)
        expand_check(&lx, lx.keys[i].s, lx.keys[i].len, 1, false);
    lex_release(&lx);
}

static void test_expand_skips(void **state)
{
    (void)state;
    struct lex lx;
    rng_state = 1234;
    random_lex(&lx, &big_abc, 20000, 3, 12);
    assert_int_equal(lx.n, 20000);
    size_t visited_max = 0;
    for (int q = 0; q < 40; q++) {
        struct key w = random_query(&big_abc, 9);
        if (w.len < 4) { /* a typical query word, not one or two letters */
            free(w.s);
            continue;
        }
        struct proj_typo_stats st = expand_check(&lx, w.s, w.len, 1, false);
        visited_max = st.visited > visited_max ? st.visited : visited_max;
        assert_true(st.seeks <= st.visited + 1);
        st = expand_check(&lx, w.s, w.len, 1, true);
        visited_max = st.visited > visited_max ? st.visited : visited_max;
        expand_check(&lx, w.s, w.len, 2, false);
        free(w.s);
    }
    assert_true(visited_max > 0);
    assert_true(visited_max < lx.n / 10); /* about 3% today */
    lex_release(&lx);
}

static int fail_fn(const char *term, size_t term_len, int dist, void *ud)
{
    (void)term;
    (void)term_len;
    (void)dist;
    (void)ud;
    return SP_EDB;
}

static void test_expand_caps_and_stops(void **state)
{
    (void)state;
    static const char *const words[] = {"cat", "cats", "cot", "cut", "dog"};
    struct lex lx;
    lex_init_strs(&lx, words, 5);
    struct proj_lexicon_iter it = lex_iter(&lx);
    struct proj_typo_stats st;
    struct hits h;
    hits_init(&h, &lx);

    assert_int_equal(proj_typo_expand(&it, "cat", 3, 1, false, 0, collect, &h, &st), 0);
    assert_int_equal(h.n, 4);
    assert_int_equal(st.reported, 4);
    hits_release(&h);

    assert_int_equal(proj_typo_expand(&it, "cat", 3, 1, false, 2, collect, &h, &st),
                     PROJ_TYPO_CAPPED);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.idx[0], 0);
    assert_int_equal(h.idx[1], 1);
    assert_int_equal(st.reported, 2);
    hits_release(&h);

    assert_int_equal(proj_typo_expand(&it, "cat", 3, 1, false, 5, collect, &h, &st), 0);
    assert_int_equal(h.n, 4);
    hits_release(&h);

    h.stop_after = 3;
    h.stop_rc = 1;
    assert_int_equal(proj_typo_expand(&it, "cat", 3, 1, false, 0, collect, &h, &st),
                     PROJ_TYPO_STOPPED);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.idx[2], 2);
    hits_release(&h);

    assert_int_equal(proj_typo_expand(&it, "cat", 3, 1, false, 0, fail_fn, NULL, &st), SP_EDB);
    assert_int_equal(st.reported, 1);

    lx.seek_fail = SP_EUNAVAIL;
    assert_int_equal(proj_typo_expand(&it, "cat", 3, 1, false, 0, collect, &h, &st), SP_EUNAVAIL);
    assert_int_equal(h.n, 0);
    assert_int_equal(st.visited, 0);
    lx.seek_fail = 0;

    struct lex empty = {0};
    struct proj_lexicon_iter eit = lex_iter(&empty);
    assert_int_equal(proj_typo_expand(&eit, "cat", 3, 1, true, 0, collect, &h, &st), 0);
    assert_int_equal(h.n, 0);
    assert_int_equal(st.visited, 0);
    lex_release(&lx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distance_basics),
        cmocka_unit_test(test_distance_long_words),
        cmocka_unit_test(test_distance_random_vs_reference),
        cmocka_unit_test(test_expand_small),
        cmocka_unit_test(test_expand_multibyte),
        cmocka_unit_test(test_expand_odd_bytes),
        cmocka_unit_test(test_expand_long_keys),
        cmocka_unit_test(test_expand_vs_brute_force),
        cmocka_unit_test(test_expand_skips),
        cmocka_unit_test(test_expand_caps_and_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
