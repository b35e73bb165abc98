/*
 * Typo-tolerant term expansion for the search view: a bounded edit distance between
 * words, and the walk that finds every lexicon word within that distance of a query
 * word (or, for search-as-you-type, every word one of whose prefixes is) without reading
 * the whole lexicon.
 */
#ifndef PROJ_TYPO_H
#define PROJ_TYPO_H

#include <stdbool.h>
#include <stddef.h>

#include "sp/err.h"

/*
 * Longest word, in code points, that the distance is computed for; rows of the dynamic
 * programme are fixed stack arrays of this size. Folded words are at most 64 bytes, so
 * they always fit.
 */
#define PROJ_TYPO_MAX_CP 64

/* proj_typo_expand returns: the walk stopped after max_terms terms (more may exist). */
#define PROJ_TYPO_CAPPED 1
/* proj_typo_expand returns: the callback returned a positive value. */
#define PROJ_TYPO_STOPPED 2

/**
 * Restricted Damerau–Levenshtein distance ("optimal string alignment": insertion,
 * deletion, substitution and transposition of two adjacent code points cost 1 each; a
 * transposed pair is not edited again), counted in code points, bounded by @p max.
 *
 * Inputs are UTF-8 and are not validated: a code point is a lead byte plus the
 * continuation bytes its high bits announce (clipped at the end of the string), and two
 * code points are equal when their bytes are, so invalid input still gets a deterministic
 * distance. No allocation; O(alen_cp × blen_cp) time, less when every cell of a row
 * exceeds @p max (the rest cannot come back under it) or the lengths differ by more.
 *
 * @param a, alen  first word (need not be NUL-terminated)
 * @param b, blen  second word
 * @param max      bound; negative counts as 0, above PROJ_TYPO_MAX_CP as PROJ_TYPO_MAX_CP
 * @return the distance if it is <= @p max, else @p max + 1; also @p max + 1 when either
 *         word has more than PROJ_TYPO_MAX_CP code points (not computed).
 * @locality any thread (no state)
 */
int proj_typo_distance(const char *a, size_t alen, const char *b, size_t blen, int max);

/**
 * A sorted set of byte strings (UTF-8 words in memcmp order), e.g. the keys of the search
 * view's lexicon database, read through a cursor the caller owns. Keys handed out are
 * borrowed until the next call on the iterator.
 */
struct proj_lexicon_iter {
    /*
     * Position at the first key >= @p key (memcmp order; @p key need not be valid UTF-8
     * and may be empty); *out, *out_len = that key. Return 0, 1 = no such key (end), or a
     * negative error (passed on by proj_typo_expand).
     */
    int (*seek)(void *ud, const char *key, size_t key_len, const char **out, size_t *out_len);
    /* The key after the current one; same returns. */
    int (*next)(void *ud, const char **out, size_t *out_len);
    void *ud;
};

/**
 * Called for each term found, in lexicon order.
 * @param term, term_len  the lexicon key (borrowed until the callback returns)
 * @param dist            its distance (prefix mode: that of its best prefix), <= max_dist
 * @return 0 to go on; > 0 to stop (proj_typo_expand returns PROJ_TYPO_STOPPED); < 0 to
 *         stop with that error (returned as is)
 */
typedef int (*proj_typo_fn)(const char *term, size_t term_len, int dist, void *ud);

/** What one walk cost; for metrics and for tests that check the walk skips. */
struct proj_typo_stats {
    size_t visited;  /* keys read from the iterator (by seek or next, stepped over included) */
    size_t seeks;    /* seek calls: 1 + the jumps too far to step (see proj_typo_expand) */
    size_t rows;     /* DP rows computed (at most 2 max_dist + 1 cells each) */
    size_t reported; /* terms passed to the callback */
};

/**
 * Find the lexicon terms within @p max_dist (proj_typo_distance) of @p word.
 *
 * prefix = false: every key K with distance(word, K) <= max_dist.
 * prefix = true (search-as-you-type): every key K that has a prefix P, cut at a code
 * point boundary (the empty prefix and K itself included), with distance(word, P) <=
 * max_dist, i.e. the word typed so far, with up to max_dist typos, begins K; the distance
 * reported is that of K's best prefix. Keys longer than PROJ_TYPO_MAX_CP code points are
 * judged on their first PROJ_TYPO_MAX_CP code points only (exact mode: they never match),
 * as proj_typo_distance would.
 *
 * The walk is the classic Levenshtein-over-a-trie search (Steve Hanov, "Fast and Easy
 * Levenshtein distance using a Trie", 2011), on the sorted keys read as an implicit trie:
 * one DP row per code point of the current key, the rows of the prefix shared with the
 * previous key reused. Row minima never decrease with depth (transpositions included),
 * so once a node's row has no cell below @p max_dist (and, in prefix mode, no shorter
 * prefix matched) no further edit is affordable under it: a key there can only match by
 * going on with the rest of the word verbatim from one of the row's cells within the
 * bound (or after closing a transposition). At such a node the walk compares the key with
 * those few tails and seeks straight to the next one, or past every key sharing the node
 * (the prefix with its last byte incremented, 0xFF carried) when none is left: the
 * transitions of a Levenshtein automaton (Schulz & Mihov, "Fast string correction with
 * Levenshtein automata", IJDAR 5(1), 2002) driving seeks into a sorted dictionary, as
 * Lucene's FuzzyQuery does. A jump first steps over up to two keys with next(), which is
 * far cheaper than a seek when the gap is that small.
 *
 * Cost: the nodes visited are the key prefixes whose rows stay within the bound and have
 * a cell below it, plus one landing per tail looked up: it grows with the alphabet and
 * steeply with @p max_dist (about prefixes-of-length-max_dist × tails), not with the
 * lexicon size. Each node costs one row of at most 2 max_dist + 1 cells; each jump costs
 * at most two next() and one seek. Measured on 50,000 words in LMDB (B-tree seeks, not
 * the CPU, dominate): about 30 us for max_dist 1 and 300 us for max_dist 2. Prefix mode
 * also reports every key of a matching subtree, which for a short word with typos can be
 * much of the lexicon: bound it with @p max_terms and keep @p max_dist small for short
 * words. No allocation; about 7 KiB of stack.
 *
 * @param it         the lexicon; positioned by the walk (its first call is a seek to "")
 * @param word, len  query word, UTF-8, typically case-folded like the lexicon; borrowed
 *                   for the call
 * @param max_dist   0 (exact / pure prefix lookup) or more; 1 or 2 are typical
 * @param prefix     see above
 * @param max_terms  stop after this many terms have been reported; 0 = no limit
 * @param fn, ud     called for each term, in lexicon order
 * @param[out] stats optional (NULL): filled in whatever the return
 * @return 0 when the whole lexicon was covered; PROJ_TYPO_CAPPED when the walk stopped
 *         after @p max_terms terms (more may exist); PROJ_TYPO_STOPPED when @p fn
 *         returned > 0; SP_EINVAL if @p max_dist < 0 (or @p it or @p fn is NULL);
 *         SP_ETOOBIG if @p word has more than PROJ_TYPO_MAX_CP code points; a negative
 *         value from the iterator or @p fn.
 * @locality the iterator's thread (no state of its own)
 */
SP_MUST_CHECK int proj_typo_expand(const struct proj_lexicon_iter *it,
                                   const char *word,
                                   size_t len,
                                   int max_dist,
                                   bool prefix,
                                   size_t max_terms,
                                   proj_typo_fn fn,
                                   void *ud,
                                   struct proj_typo_stats *stats);

#endif
