/*
 * Text analyzer of the search view: splits recipe text into tokens, folds them (Unicode
 * UAX #15 NFKC, case folding, accent stripping) and stems them with Snowball.
 *
 * Pipeline of proj_text_analyze, applied identically to documents and to queries:
 *
 * 1. Tokenising, a simplification of UAX #29 word boundaries. A token is a maximal run of
 *    letters (general category L*), numbers (N*) and combining marks (M*); marks and
 *    format characters (Cf, such as SOFT HYPHEN or ZERO WIDTH JOINER, but not ZERO WIDTH
 *    SPACE) only continue a token, never start one (UAX #29 rule WB4), and trailing format
 *    characters are not part of it. Everything else separates tokens: spaces,
 *    punctuation, symbols, hyphens, apostrophes ("don't" gives "don" and "t"), "_".
 * 2. CJK: letters and numbers of the Han, Hiragana, Katakana and Hangul blocks are not
 *    separated by spaces in text, so a run of them (each with its following marks) is
 *    emitted as overlapping character bigrams, as Lucene's CJKAnalyzer does: "番茄炒蛋"
 *    gives 番茄, 茄炒, 炒蛋; a run of one character gives that character alone. A run ends
 *    at any other character, so "iPhone用" gives "iphone" then "用".
 * 3. Folding: NFKC (UAX #15) plus Unicode full case folding, removal of default-ignorable
 *    code points, and removal of combining marks after decomposition, all by utf8proc
 *    (UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE |
 *    UTF8PROC_STRIPMARK | UTF8PROC_STABLE): "Crème" -> "creme", "Äpfel" -> "apfel",
 *    "Straße" -> "strasse", "ﬁ" -> "fi", "ＡＢＣ" -> "abc", "½" -> "1⁄2". CJK bigrams keep
 *    their marks (only NFKC and case folding), since stripping them would merge kana
 *    such as ガ and カ. A folded token may hold characters that would separate tokens
 *    in the input ("½" -> "1" U+2044 "2"); it stays one token. Stripping marks is meant
 *    for Latin, Greek and Cyrillic accents; in scripts whose vowel signs are marks
 *    (Devanagari, Thai) it drops them too, on both the document and the query side.
 * 4. Stemming: the Snowball stemmer of the language ("english", "german"; UTF-8) on the
 *    folded word. The stem is the folded word itself for PROJ_LANG_NONE, for CJK bigrams
 *    and for words without a letter ("350", "1⁄2").
 *
 * Tokens longer than PROJ_TEXT_MAX_SPAN_BYTES in the input, or longer than
 * PROJ_TEXT_MAX_TOKEN_BYTES (or empty) after folding, are skipped but take a position, so
 * phrase distances stay true. Stop words are not removed, only flagged
 * (proj_token.stop): the caller decides.
 *
 * Speed: ASCII words, the bulk of recipe text, are folded by a lower-casing loop; only
 * words with a non-ASCII character go through utf8proc. Stems and stop word flags of
 * short words are cached (Snowball dominates otherwise). The analyzer owns its scratch
 * buffers, cache and stemmers, so the steady state allocates nothing per token.
 */
#ifndef PROJ_TEXT_H
#define PROJ_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp/err.h"

/* Longest folded token, in bytes, that is reported; longer ones are skipped. */
#define PROJ_TEXT_MAX_TOKEN_BYTES 64
/*
 * Longest token, in bytes of the input, that is folded; longer ones are skipped without
 * folding (bounds the work per token: NFKC reorders a run of marks in quadratic time).
 */
#define PROJ_TEXT_MAX_SPAN_BYTES 256

/** Language of a text, choosing its stemmer and stop words. */
enum proj_lang {
    PROJ_LANG_NONE = 0, /* a well-formed language without a stemmer: fold only */
    PROJ_LANG_EN = 1,   /* English: Snowball "english" */
    PROJ_LANG_DE = 2,   /* German: Snowball "german" */
};
/* Number of enum proj_lang values (for tables indexed by language). */
#define PROJ_LANG_COUNT 3

/** One token, as reported to a proj_token_fn. */
struct proj_token {
    uint32_t start;   /* byte offset of the token in the input */
    uint32_t len;     /* bytes of the token in the input (for highlighting) */
    uint32_t pos;     /* 0-based ordinal of the token in this call; skipped tokens count */
    const char *word; /* folded token, borrowed: valid during the callback only; NUL-terminated */
    size_t word_len;  /* bytes of word, 1..PROJ_TEXT_MAX_TOKEN_BYTES */
    const char *stem; /* stem of word (may equal word), borrowed like word; NUL-terminated */
    size_t stem_len;  /* bytes of stem */
    bool cjk;         /* a CJK bigram or single CJK character (never stemmed) */
    bool stop;        /* proj_text_is_stopword(lang, word, word_len), cached per word */
};

/**
 * Receives each token of proj_text_analyze, in input order.
 * @return 0 to continue; any other value stops the analysis, which returns it.
 */
typedef int (*proj_token_fn)(const struct proj_token *tok, void *ud);

/** Text analyzer: stemmers plus scratch buffers. Opaque. */
struct proj_text;

/**
 * Parse the primary language subtag of a BCP 47 (RFC 5646) language tag.
 *
 * The tag is a primary subtag of 2-3 ASCII letters, in any case, optionally followed by
 * subtags of 1-8 ASCII letters or digits, each after a '-'. Only the primary subtag
 * decides: "en", "EN", "en-GB" give PROJ_LANG_EN; "de", "de-AT" give PROJ_LANG_DE; any
 * other, such as "fr", "zh-Hans" or "und", gives PROJ_LANG_NONE. ISO 639-2 codes that
 * BCP 47 does not use for these languages ("eng", "deu") also give PROJ_LANG_NONE.
 *
 * @param tag       NUL-terminated tag
 * @param[out] out  the language; unchanged on error
 * @return 0; SP_EINVAL if @p tag is NULL or malformed ("", "e", "engl", "en_GB", "en-",
 *         "i-klingon", "x-private").
 * @locality any thread
 */
SP_MUST_CHECK int proj_lang_parse(const char *tag, enum proj_lang *out);

/**
 * Short name of a language: "en", "de", or "none" for PROJ_LANG_NONE.
 * @return a static string (borrowed, valid forever); "unknown" for a value outside the enum.
 * @locality any thread
 */
const char *proj_lang_name(enum proj_lang lang);

/**
 * Create an analyzer with a Snowball stemmer per language and its scratch buffers.
 * @param[out] out  the analyzer, owned: free with proj_text_free()
 * @return 0; -ENOMEM if libstemmer could not create a stemmer.
 * @locality any thread
 */
SP_MUST_CHECK int proj_text_new(struct proj_text **out);

/**
 * Free an analyzer and everything it lent out. NULL is a no-op.
 * @locality the thread that uses @p a
 */
void proj_text_free(struct proj_text *a);

/**
 * Split @p s into tokens and report each to @p fn, with its input offsets, position,
 * folded form and stem (see the pipeline at the top of this file).
 *
 * The input is checked for valid UTF-8 (RFC 3629: no overlong forms, surrogates or
 * code points past U+10FFFF) before the first token, so on SP_EINVAL no token has been
 * reported. Bytes past @p len are never read; NUL bytes are separators.
 *
 * @param lang    language of @p s, choosing the stemmer
 * @param s, len  UTF-8 text, not NUL-terminated; NULL is allowed when @p len is 0
 * @param fn, ud  token callback and its argument; the token and its strings are
 *                borrowed from @p a and valid during the call only; @p fn must not
 *                call functions on @p a
 * @return 0; SP_EINVAL if @p s is not valid UTF-8, or a, fn or lang is invalid;
 *         SP_ETOOBIG if @p len exceeds UINT32_MAX; -ENOMEM if a stemmer ran out of memory;
 *         else the first non-zero value returned by @p fn.
 * @locality the thread that uses @p a: one analyzer per thread, not thread-safe
 */
SP_MUST_CHECK int proj_text_analyze(struct proj_text *a,
                                    enum proj_lang lang,
                                    const char *s,
                                    size_t len,
                                    proj_token_fn fn,
                                    void *ud);

/**
 * Fold a word as the analyzer folds a non-CJK token: NFKC, case folding, removal of
 * default-ignorables and combining marks ("Crème Brûlée" -> "creme brulee"). No
 * tokenising: separators are folded and kept. To turn a query into the same terms as a
 * document, run proj_text_analyze on it instead.
 *
 * @param s, len          UTF-8 text; may be a result borrowed from @p a
 * @param[out] out, out_len  folded text, NUL-terminated, borrowed from @p a: valid until
 *                        the next call on @p a
 * @return 0; SP_EINVAL if @p s is not valid UTF-8; SP_ETOOBIG if @p len exceeds
 *         PROJ_TEXT_MAX_SPAN_BYTES or the result exceeds PROJ_TEXT_MAX_TOKEN_BYTES (the
 *         analyzer would skip such a token).
 * @locality the thread that uses @p a
 */
SP_MUST_CHECK int
proj_text_fold(struct proj_text *a, const char *s, size_t len, const char **out, size_t *out_len);

/**
 * Stem a folded word as the analyzer does: the Snowball stem for PROJ_LANG_EN and
 * PROJ_LANG_DE ("running" -> "run"), the word itself for PROJ_LANG_NONE and for a word
 * without a letter.
 *
 * @param word, len          folded word (proj_text_fold's result), UTF-8; may be a
 *                           result borrowed from @p a
 * @param[out] out, out_len  the stem, borrowed: @p word itself for PROJ_LANG_NONE and
 *                           words without a letter; otherwise NUL-terminated, owned by
 *                           @p a and valid until the next call on @p a
 * @return 0; SP_EINVAL if @p word is not valid UTF-8 or @p lang is invalid; SP_ETOOBIG if
 *         @p len exceeds PROJ_TEXT_MAX_TOKEN_BYTES; -ENOMEM if the stemmer ran out of memory.
 * @locality the thread that uses @p a
 */
SP_MUST_CHECK int proj_text_stem(struct proj_text *a,
                                 enum proj_lang lang,
                                 const char *word,
                                 size_t len,
                                 const char **out,
                                 size_t *out_len);

/**
 * Whether a folded word (proj_token.word, not the stem) is a stop word of @p lang.
 * The lists are the Snowball project's English and German stop word lists, folded like
 * tokens ("für" -> "fur", "daß" -> "dass"); English contractions are left out, since
 * tokens never hold an apostrophe. PROJ_LANG_NONE has no stop words (a word that is a
 * stop word in English or German can be a content word elsewhere: "die", "also", "art").
 * @return true if @p word is on the list; false otherwise, or for an invalid @p lang.
 * @locality any thread
 */
bool proj_text_is_stopword(enum proj_lang lang, const char *word, size_t len);

/**
 * The stop word list of @p lang, sorted by bytes (memcmp), folded.
 * @param[out] n  number of words; 0 for PROJ_LANG_NONE or an invalid @p lang
 * @return a static array of NUL-terminated words (borrowed, valid forever); NULL when
 *         @p n is 0.
 * @locality any thread
 */
const char *const *proj_text_stopwords(enum proj_lang lang, size_t *n);

#endif
