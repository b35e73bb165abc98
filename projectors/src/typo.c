/* Bounded edit distance between words and the typo-tolerant lexicon walk (proj/typo.h). */
#include <stdint.h>
#include <string.h>

#include "proj/typo.h"
#include "sp/banned.h"

/* Bytes of the code point a UTF-8 lead byte announces; 1 for a stray or invalid byte. */
static size_t cp_len(unsigned char lead)
{
    if (lead < 0xC0)
        return 1;
    if (lead < 0xE0)
        return 2;
    if (lead < 0xF0)
        return 3;
    if (lead < 0xF8)
        return 4;
    return 1;
}

/*
 * The code point at s[*pos] (clipped at len), as its bytes packed big-endian: equal values
 * mean equal bytes, even for invalid or clipped sequences, since the value's magnitude and
 * lead byte give its length. Advances *pos; *clipped tells whether the end cut it short.
 */
static inline uint32_t cp_next(const unsigned char *s, size_t len, size_t *pos, bool *clipped)
{
    if (s[*pos] < 0x80) {
        *clipped = false;
        return s[(*pos)++];
    }
    size_t want = cp_len(s[*pos]);
    size_t have = len - *pos < want ? len - *pos : want;
    uint32_t v = 0;

    for (size_t i = 0; i < have; i++)
        v = (v << 8) | s[*pos + i];
    *pos += have;
    *clipped = have < want;
    return v;
}

/*
 * Split s into code points, with their byte offsets in @p off (NULL: not wanted; off[n] =
 * len) and whether the last one is clipped. @return their number, or PROJ_TYPO_MAX_CP + 1
 * if too many.
 */
static size_t cp_split(const char *s,
                       size_t len,
                       uint32_t out[PROJ_TYPO_MAX_CP],
                       size_t off[PROJ_TYPO_MAX_CP + 1],
                       bool *clipped)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = 0, pos = 0;

    *clipped = false;
    while (pos < len) {
        if (n == PROJ_TYPO_MAX_CP)
            return PROJ_TYPO_MAX_CP + 1;
        if (off)
            off[n] = pos;
        out[n++] = cp_next(u, len, &pos, clipped);
    }
    if (off)
        off[n] = len;
    return n;
}

/*
 * Fill @p cur, the optimal-string-alignment row of a prefix of @p depth code points ending
 * in @p c (preceded by @p c1 when depth >= 2, else @p prev2 is NULL) against the word @p w
 * of @p n code points, from the rows of the one and two shorter prefixes. Cells saturate
 * at max + 1, and only the band |depth - j| <= max is computed: a cell is at least the
 * length difference, so the rest are above the bound.
 * @return the row's minimum (at most max + 1)
 */
static int row_step(uint8_t *cur,
                    const uint8_t *prev,
                    const uint8_t *prev2,
                    uint32_t c,
                    uint32_t c1,
                    const uint32_t *w,
                    size_t n,
                    size_t depth,
                    int max)
{
    int cap = max + 1;
    size_t lo = depth > (size_t)max ? depth - (size_t)max : 1;
    size_t hi = depth + (size_t)max < n ? depth + (size_t)max : n;
    int rmin = depth < (size_t)cap ? (int)depth : cap;

    memset(cur, cap, n + 1);
    cur[0] = (uint8_t)rmin;
    for (size_t j = lo; j <= hi; j++) {
        int v = prev[j - 1] + (c != w[j - 1]);
        if (prev[j] + 1 < v)
            v = prev[j] + 1;
        if (cur[j - 1] + 1 < v)
            v = cur[j - 1] + 1;
        if (prev2 && j >= 2 && c == w[j - 2] && c1 == w[j - 1] && prev2[j - 2] + 1 < v)
            v = prev2[j - 2] + 1;
        v = v < cap ? v : cap;
        cur[j] = (uint8_t)v;
        if (v < rmin)
            rmin = v;
    }
    return rmin;
}

int proj_typo_distance(const char *a, size_t alen, const char *b, size_t blen, int max)
{
    uint32_t ua[PROJ_TYPO_MAX_CP], ub[PROJ_TYPO_MAX_CP];
    uint8_t rows[3][PROJ_TYPO_MAX_CP + 1] = {{0}};

    max = max < 0 ? 0 : max > PROJ_TYPO_MAX_CP ? PROJ_TYPO_MAX_CP : max;
    bool clipped;
    size_t na = cp_split(a, alen, ua, NULL, &clipped), nb = cp_split(b, blen, ub, NULL, &clipped);
    if (na > PROJ_TYPO_MAX_CP || nb > PROJ_TYPO_MAX_CP)
        return max + 1;
    if ((na > nb ? na - nb : nb - na) > (size_t)max)
        return max + 1;
    for (size_t j = 0; j <= nb; j++)
        rows[0][j] = (uint8_t)j;
    for (size_t i = 1; i <= na; i++) {
        const uint8_t *prev2 = i >= 2 ? rows[(i - 2) % 3] : NULL;
        uint32_t c1 = i >= 2 ? ua[i - 2] : 0;
        if (row_step(rows[i % 3], rows[(i - 1) % 3], prev2, ua[i - 1], c1, ub, nb, i, max) > max)
            return max + 1;
    }
    int d = rows[na % 3][nb];
    return d <= max ? d : max + 1;
}

/* Write the bytes of a code point packed by cp_next (its magnitude gives its length). */
static size_t unit_put(uint32_t v, char *out)
{
    size_t len = v < 0x100 ? 1 : v < 0x10000 ? 2 : v < 0x1000000 ? 3 : 4;

    for (size_t i = len; i > 0; i--, v >>= 8)
        out[i - 1] = (char)(v & 0xFF);
    return len;
}

/* memcmp order of two byte strings, a shorter prefix first (keys are short: no call). */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;

    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
    return (alen > blen) - (alen < blen);
}

/* What the walk does next with the current key. */
enum walk_step {
    WALK_NEXT,    /* read the next key */
    WALK_SKIP,    /* move to the first key >= w->target */
    WALK_END,     /* no later key can match */
    WALK_CAPPED,  /* max_terms reached */
    WALK_STOPPED, /* the callback asked to stop */
    WALK_DEEPER,  /* the node does not decide the key: extend the rows along it */
};

/* Longest tail of the word (see walk_tight): a code point, then the whole word. */
#define TAIL_MAX_BYTES (4 * PROJ_TYPO_MAX_CP + 4)

/* State of one expansion: the word and the DP rows along the current key. */
struct walk {
    const char *wbytes;                /* the word (borrowed from the caller) */
    size_t woff[PROJ_TYPO_MAX_CP + 1]; /* woff[j]: byte offset of word code point j */
    uint32_t word[PROJ_TYPO_MAX_CP];
    size_t n;      /* code points in word */
    bool wclipped; /* the word's last code point is cut short (invalid UTF-8) */
    int max;       /* max_dist, at most PROJ_TYPO_MAX_CP */
    bool prefix;
    size_t max_terms; /* 0 = no limit */
    proj_typo_fn fn;
    void *ud;
    struct proj_typo_stats st;
    size_t depth;                       /* rows 0..depth hold the last key's prefixes */
    uint32_t cp[PROJ_TYPO_MAX_CP + 1];  /* cp[d]: the last key's d-th code point (d >= 1) */
    uint8_t rmin[PROJ_TYPO_MAX_CP + 1]; /* rmin[d]: minimum of row[d] */
    uint8_t best[PROJ_TYPO_MAX_CP + 1]; /* prefix mode: min of row[0..d][n] */
    uint8_t row[PROJ_TYPO_MAX_CP + 1][PROJ_TYPO_MAX_CP + 1]; /* row[d]: first d code points */
    size_t target_len;
    char target[4 * PROJ_TYPO_MAX_CP + TAIL_MAX_BYTES]; /* WALK_SKIP: next key to look at */
};

/* Pass a term to the callback and apply max_terms. */
static int walk_report(struct walk *w, const char *key, size_t klen, int dist)
{
    int rc = w->fn(key, klen, dist, w->ud);

    w->st.reported++;
    if (rc < 0)
        return rc;
    if (rc > 0)
        return WALK_STOPPED;
    if (w->max_terms && w->st.reported >= w->max_terms)
        return WALK_CAPPED;
    return WALK_NEXT;
}

/* Number of leading code points @p key shares with the last key, whose rows stay valid. */
static size_t walk_shared(const struct walk *w, const unsigned char *key, size_t klen, size_t *pos)
{
    size_t d = 0;
    bool clipped;

    *pos = 0;
    while (d < w->depth && *pos < klen) {
        size_t p = *pos;
        if (cp_next(key, klen, &p, &clipped) != w->cp[d + 1])
            break;
        d++;
        *pos = p;
    }
    return d;
}

/* Target the first key after every key starting with key[0..len): the prefix plus one. */
static int walk_past(struct walk *w, const char *key, size_t len)
{
    while (len > 0 && (unsigned char)key[len - 1] == 0xFF)
        len--;
    if (len == 0)
        return WALK_END; /* every later key starts with the prefix */
    memcpy(w->target, key, len);
    w->target[len - 1] = (char)((unsigned char)key[len - 1] + 1);
    w->target_len = len;
    return WALK_SKIP;
}

/* The tails of walk_tight compared with the rest of the current key. */
struct tail_scan {
    const char *rest; /* the key after the node */
    size_t rest_len;
    int match;        /* smallest distance of a tail that matches the rest; max + 1: none */
    const char *next; /* the smallest tail ordered after the rest (in word or next_buf) */
    size_t next_len;  /* 0: none */
    char *next_buf;   /* TAIL_MAX_BYTES */
};

/*
 * Compare a tail of @p len bytes, at distance @p dist, to the rest of the key; @p copy: the
 * tail lives in a temporary buffer, copied if kept as the next one.
 */
static void tail_scan_add(
    const struct walk *w, struct tail_scan *ts, const char *tail, size_t len, bool copy, int dist)
{
    int c = key_cmp(tail, len, ts->rest, ts->rest_len);

    /* prefix mode: the rest begins with the tail; when the word ends in a clipped code
     * point, the rest's next byte would make another code point of it. */
    if (c == 0 || (c < 0 && w->prefix && len < ts->rest_len && !w->wclipped &&
                   key_cmp(tail, len, ts->rest, len) == 0)) {
        if (dist < ts->match)
            ts->match = dist;
    } else if (c > 0 && (ts->next_len == 0 || key_cmp(tail, len, ts->next, ts->next_len) < 0)) {
        if (copy) {
            memcpy(ts->next_buf, tail, len);
            tail = ts->next_buf;
        }
        ts->next = tail;
        ts->next_len = len;
    }
}

/*
 * The node of the current key's first @p d code points (ending at byte @p pos, its last
 * code point clipped if @p clipped) is at the bound: no cell of its row is below max_dist,
 * and in prefix mode no shorter prefix matched. No further edit is affordable below it, so
 * a key matches there only if it goes on with a tail of the word taken verbatim: w[j..]
 * for a cell j of the row within the bound, or w[j-2] w[j..] closing a transposition of
 * w[j-1] (the node's last code point) with w[j-2]. Report the key if it is (prefix mode:
 * begins with) a tail; then jump to the next tail, or past the node: the seeks of a
 * Levenshtein automaton driven over a sorted dictionary.
 */
static int
walk_tight(struct walk *w, const char *key, size_t klen, size_t pos, size_t d, bool clipped)
{
    char next_buf[TAIL_MAX_BYTES], tail[TAIL_MAX_BYTES];
    struct tail_scan ts = {
        .rest = key + pos, .rest_len = klen - pos, .match = w->max + 1, .next_buf = next_buf};
    size_t wlen = w->woff[w->n], max = (size_t)w->max;

    /* Cells within the bound lie in the band |d - j| <= max (see row_step). */
    for (size_t j = d > max ? d - max : 0; j <= w->n && j <= d + max; j++)
        if (w->row[d][j] <= max && d + w->n - j <= PROJ_TYPO_MAX_CP)
            tail_scan_add(w, &ts, w->wbytes + w->woff[j], wlen - w->woff[j], false, w->row[d][j]);
    for (size_t j = d + 1 > max + 2 ? d + 1 - max : 2; d >= 1 && j <= w->n && j <= d + 1 + max;
         j++) {
        size_t dist = w->row[d - 1][j - 2] + 1U;
        if (dist <= max && w->cp[d] == w->word[j - 1] && d + 1 + w->n - j <= PROJ_TYPO_MAX_CP) {
            size_t len = unit_put(w->word[j - 2], tail);
            memcpy(tail + len, w->wbytes + w->woff[j], wlen - w->woff[j]);
            tail_scan_add(w, &ts, tail, len + wlen - w->woff[j], true, (int)dist);
        }
    }
    if (ts.match <= w->max) {
        int step = walk_report(w, key, klen, ts.match);
        if (step != WALK_NEXT || w->prefix)
            return step; /* prefix mode: the next keys may begin with the same tail */
    }
    if (clipped) /* a clipped code point is no prefix of the keys after this one */
        return WALK_NEXT;
    if (ts.next_len == 0)
        return walk_past(w, key, pos);
    memcpy(w->target, key, pos);
    memcpy(w->target + pos, ts.next, ts.next_len);
    w->target_len = pos + ts.next_len;
    return WALK_SKIP;
}

/* What the node at depth @p d tells about the current key: a walk_step, or WALK_DEEPER. */
static int
walk_node(struct walk *w, const char *key, size_t klen, size_t pos, size_t d, bool clipped)
{
    if (w->prefix && w->best[d] <= w->max) {
        /* A prefix matched; longer ones cannot do better once the row is no lower. */
        if (w->rmin[d] >= w->best[d])
            return walk_report(w, key, klen, w->best[d]);
        return WALK_DEEPER;
    }
    if (w->rmin[d] >= w->max)
        return walk_tight(w, key, klen, pos, d, clipped);
    return WALK_DEEPER;
}

/*
 * Extend the rows along @p key past the prefix shared with the last key, until a node
 * decides it or it ends; report it if it matches. @return a walk_step or a callback error.
 */
static int walk_key(struct walk *w, const char *key, size_t klen)
{
    const unsigned char *u = (const unsigned char *)key;
    size_t pos, d = walk_shared(w, u, klen, &pos);
    bool clipped = false;
    int step = walk_node(w, key, klen, pos, d, false);

    while (step == WALK_DEEPER && pos < klen) {
        if (d == PROJ_TYPO_MAX_CP) { /* too long: judged on its first MAX_CP code points */
            bool hit = w->prefix && w->best[d] <= w->max;
            step = hit ? walk_report(w, key, klen, w->best[d]) : walk_past(w, key, pos);
            break;
        }
        uint32_t c = cp_next(u, klen, &pos, &clipped);
        d++;
        w->cp[d] = c;
        w->st.rows++;
        w->rmin[d] = (uint8_t)row_step(w->row[d], w->row[d - 1], d >= 2 ? w->row[d - 2] : NULL, c,
                                       d >= 2 ? w->cp[d - 1] : 0, w->word, w->n, d, w->max);
        w->best[d] = w->row[d][w->n] < w->best[d - 1] ? w->row[d][w->n] : w->best[d - 1];
        step = walk_node(w, key, klen, pos, d, clipped);
    }
    w->depth = d;
    if (step != WALK_DEEPER)
        return step;
    int dist = w->prefix ? w->best[d] : w->row[d][w->n];
    return dist <= w->max ? walk_report(w, key, klen, dist) : WALK_NEXT;
}

/*
 * Keys read with next() before a skip turns into a seek: small gaps are cheaper to step
 * over than to seek across.
 */
#ifndef WALK_STEPS
#define WALK_STEPS 2
#endif

/* Move to the first key >= w->target. */
static int
walk_skip(struct walk *w, const struct proj_lexicon_iter *it, const char **out, size_t *out_len)
{
    for (int i = 0; i < WALK_STEPS; i++) {
        int rc = it->next(it->ud, out, out_len);
        if (rc != 0 || key_cmp(*out, *out_len, w->target, w->target_len) >= 0)
            return rc;
        w->st.visited++;
    }
    w->st.seeks++;
    return it->seek(it->ud, w->target, w->target_len, out, out_len);
}

/* Run the walk from the first key; @return as proj_typo_expand. */
static int walk_run(struct walk *w, const struct proj_lexicon_iter *it)
{
    const char *key;
    size_t klen;

    w->st.seeks++;
    int rc = it->seek(it->ud, "", 0, &key, &klen);
    while (rc == 0) {
        w->st.visited++;
        int step = walk_key(w, key, klen);
        if (step < 0)
            return step;
        if (step == WALK_CAPPED)
            return PROJ_TYPO_CAPPED;
        if (step == WALK_STOPPED)
            return PROJ_TYPO_STOPPED;
        if (step == WALK_END)
            return 0;
        if (step == WALK_SKIP)
            rc = walk_skip(w, it, &key, &klen);
        else
            rc = it->next(it->ud, &key, &klen);
    }
    return rc < 0 ? rc : 0;
}

int proj_typo_expand(const struct proj_lexicon_iter *it,
                     const char *word,
                     size_t len,
                     int max_dist,
                     bool prefix,
                     size_t max_terms,
                     proj_typo_fn fn,
                     void *ud,
                     struct proj_typo_stats *stats)
{
    struct walk w;
    int rc;

    memset(&w.st, 0, sizeof(w.st));
    if (!it || !fn || max_dist < 0) {
        rc = SP_EINVAL;
        goto out;
    }
    w.n = cp_split(word, len, w.word, w.woff, &w.wclipped);
    if (w.n > PROJ_TYPO_MAX_CP) {
        rc = SP_ETOOBIG;
        goto out;
    }
    w.wbytes = word;
    w.max = max_dist > PROJ_TYPO_MAX_CP ? PROJ_TYPO_MAX_CP : max_dist;
    w.prefix = prefix;
    w.max_terms = max_terms;
    w.fn = fn;
    w.ud = ud;
    w.depth = 0;
    memset(w.row, 0, sizeof(w.row)); /* row_step fills rows whole; this keeps analysers sure */
    for (size_t j = 0; j <= w.n; j++)
        w.row[0][j] = (uint8_t)(j <= (size_t)w.max ? j : (size_t)w.max + 1);
    w.rmin[0] = 0;
    w.best[0] = (uint8_t)w.n;
    rc = walk_run(&w, it);
out:
    if (stats)
        *stats = w.st;
    return rc;
}
