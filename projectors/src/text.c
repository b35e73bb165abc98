/* Text analyzer of the search view: tokenising, folding and stemming (see proj/text.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libstemmer.h>
#include <utf8proc.h>

#include "proj/text.h"
#include "sp/alloc.h"
#include "sp/banned.h"

/* NFKC + full case folding + default-ignorables removed + marks stripped (UAX #15). */
#define TEXT_FOLD_WORD                                                                             \
    (UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE |  \
     UTF8PROC_STRIPMARK)
/* CJK bigrams keep their marks: stripping them would merge kana such as ガ and カ. */
#define TEXT_FOLD_CJK                                                                              \
    (UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE)

/* Code points of fold scratch allocated up front; grows only for pathological tokens. */
#define TEXT_CPS_INITIAL 1024

/*
 * Stem cache: recipe text repeats a small vocabulary, and Snowball costs more than all
 * the rest of the analysis, so stems (and stop word status) of short words are kept in a
 * direct-mapped table of TEXT_CACHE_SLOTS 64-byte slots (512 KiB per analyzer; on the
 * recipe corpus about 95% of lookups hit).
 */
#define TEXT_CACHE_SLOTS      8192
#define TEXT_CACHE_WORD_BYTES 28
#define TEXT_CACHE_STEM_BYTES 31

struct text_cache_slot {
    uint8_t lang;     /* enum proj_lang; PROJ_LANG_NONE = empty slot */
    uint8_t word_len; /* 1..TEXT_CACHE_WORD_BYTES */
    uint8_t stem_len; /* 1..TEXT_CACHE_STEM_BYTES */
    uint8_t stop;     /* proj_text_is_stopword(lang, word) */
    char word[TEXT_CACHE_WORD_BYTES];
    char stem[TEXT_CACHE_STEM_BYTES + 1]; /* NUL-terminated */
};
_Static_assert(sizeof(struct text_cache_slot) == 64, "a cache slot is one cache line");

struct proj_text {
    struct sb_stemmer *stemmers[PROJ_LANG_COUNT]; /* owned; [PROJ_LANG_NONE] is NULL */
    utf8proc_int32_t *cps; /* owned fold scratch: code points, then the UTF-8 result */
    size_t cps_cap;        /* entries of cps */
    char ascii[PROJ_TEXT_MAX_TOKEN_BYTES + 1]; /* fold of an ASCII token, NUL-terminated */
    struct text_cache_slot *cache;             /* owned, TEXT_CACHE_SLOTS entries */
};

/* Character classes of the tokeniser. */
enum text_class {
    TEXT_SEP = 0, /* separates tokens */
    TEXT_LETTER,  /* L*, not CJK: starts or continues a word */
    TEXT_NUMBER,  /* N*, not CJK: starts or continues a word */
    TEXT_MARK,    /* M*: continues a word or CJK character */
    TEXT_FORMAT,  /* Cf other than ZERO WIDTH SPACE: continues a word, ignored (WB4) */
    TEXT_CJK,     /* L* or N* of the Han, Hiragana, Katakana or Hangul blocks */
};

/* State of one proj_text_analyze call. */
struct text_run {
    struct proj_text *a;
    enum proj_lang lang;
    const unsigned char *s;
    size_t len;
    proj_token_fn fn;
    void *ud;
    uint32_t pos; /* position of the next token */
};

static const struct {
    const char *name;     /* proj_lang_name */
    const char *snowball; /* libstemmer algorithm, NULL = no stemming */
} text_langs[PROJ_LANG_COUNT] = {
    [PROJ_LANG_NONE] = {"none", NULL},
    [PROJ_LANG_EN] = {"en", "english"},
    [PROJ_LANG_DE] = {"de", "german"},
};

static bool text_is_alpha(unsigned char c)
{
    return (unsigned)((c | 0x20) - 'a') < 26;
}

static bool text_is_digit(unsigned char c)
{
    return (unsigned)(c - '0') < 10;
}

static bool text_lang_valid(enum proj_lang lang)
{
    return (unsigned)lang < PROJ_LANG_COUNT;
}

/* Parse a BCP 47 subtag of @p min..@p max characters ending at '-' or NUL; letters only
 * if @p alpha. @return its length, or 0 if malformed. */
static size_t text_subtag(const char *p, size_t min, size_t max, bool alpha)
{
    size_t n = 0;
    while (p[n] && p[n] != '-') {
        unsigned char c = (unsigned char)p[n];
        if (!text_is_alpha(c) && (alpha || !text_is_digit(c)))
            return 0;
        if (++n > max)
            return 0;
    }
    return n >= min ? n : 0;
}

int proj_lang_parse(const char *tag, enum proj_lang *out)
{
    if (!tag)
        return SP_EINVAL;
    size_t n = text_subtag(tag, 2, 3, true);
    if (!n)
        return SP_EINVAL;
    for (const char *p = tag + n; *p;) {
        size_t sub = text_subtag(p + 1, 1, 8, false); /* *p == '-' */
        if (!sub)
            return SP_EINVAL;
        p += 1 + sub;
    }
    char lower[3] = {0, 0, 0};
    for (size_t i = 0; i < n && i < 2; i++)
        lower[i] = (char)(tag[i] | 0x20);
    if (n == 2 && memcmp(lower, "en", 2) == 0)
        *out = PROJ_LANG_EN;
    else if (n == 2 && memcmp(lower, "de", 2) == 0)
        *out = PROJ_LANG_DE;
    else
        *out = PROJ_LANG_NONE;
    return 0;
}

const char *proj_lang_name(enum proj_lang lang)
{
    return text_lang_valid(lang) ? text_langs[lang].name : "unknown";
}

int proj_text_new(struct proj_text **out)
{
    struct proj_text *a = sp_xcalloc(1, sizeof(*a));
    for (int i = 0; i < PROJ_LANG_COUNT; i++) {
        if (!text_langs[i].snowball)
            continue;
        a->stemmers[i] = sb_stemmer_new(text_langs[i].snowball, "UTF_8");
        if (!a->stemmers[i]) {
            proj_text_free(a);
            return -ENOMEM;
        }
    }
    a->cps_cap = TEXT_CPS_INITIAL;
    a->cps = sp_xmalloc(a->cps_cap * sizeof(*a->cps));
    a->cache = sp_xcalloc(TEXT_CACHE_SLOTS, sizeof(*a->cache));
    *out = a;
    return 0;
}

void proj_text_free(struct proj_text *a)
{
    if (!a)
        return;
    for (int i = 0; i < PROJ_LANG_COUNT; i++)
        sb_stemmer_delete(a->stemmers[i]);
    free(a->cps);
    free(a->cache);
    free(a);
}

/* Whether @p cp lies in a block of the Han, Hiragana, Katakana or Hangul scripts
 * (Unicode Blocks.txt), the scripts Lucene's CJKBigramFilter bigrams. */
static bool text_is_cjk(utf8proc_int32_t cp)
{
    static const utf8proc_int32_t ranges[][2] = {
        {0x1100, 0x11ff},   /* Hangul Jamo */
        {0x2e80, 0x2fdf},   /* CJK Radicals Supplement, Kangxi Radicals */
        {0x3005, 0x3007},   /* 々 〆 〇 */
        {0x3021, 0x3029},   /* Hangzhou numerals */
        {0x3031, 0x3035},   /* kana repeat marks */
        {0x3038, 0x303c},   /* Han repeat marks */
        {0x3040, 0x30ff},   /* Hiragana, Katakana */
        {0x3130, 0x318f},   /* Hangul Compatibility Jamo */
        {0x31f0, 0x31ff},   /* Katakana Phonetic Extensions */
        {0x3400, 0x4dbf},   /* CJK Unified Ideographs Extension A */
        {0x4e00, 0x9fff},   /* CJK Unified Ideographs */
        {0xa960, 0xa97f},   /* Hangul Jamo Extended-A */
        {0xac00, 0xd7ff},   /* Hangul Syllables, Hangul Jamo Extended-B */
        {0xf900, 0xfaff},   /* CJK Compatibility Ideographs */
        {0xff66, 0xffdc},   /* halfwidth Katakana and Hangul */
        {0x1b000, 0x1b16f}, /* Kana Supplement, Kana Extended-A, Small Kana Extension */
        {0x20000, 0x3134f}, /* CJK Unified Ideographs Extensions B-G, compatibility supp. */
    };
    if (cp < 0x1100)
        return false;
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        if (cp < ranges[i][0])
            return false;
        if (cp <= ranges[i][1])
            return true;
    }
    return false;
}

static enum text_class text_classify(utf8proc_int32_t cp)
{
    utf8proc_category_t cat = utf8proc_category(cp);
    switch (cat) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return text_is_cjk(cp) ? TEXT_CJK : TEXT_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return text_is_cjk(cp) ? TEXT_CJK : TEXT_NUMBER;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
        return TEXT_MARK;
    case UTF8PROC_CATEGORY_CF:
        return cp == 0x200b ? TEXT_SEP : TEXT_FORMAT;
    default:
        return TEXT_SEP;
    }
}

/* Decode the code point at @p s[i] of text already checked to be valid UTF-8.
 * @return its length in bytes (1..4) */
static size_t text_decode(const unsigned char *s, size_t i, size_t len, utf8proc_int32_t *cp)
{
    utf8proc_ssize_t n = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), cp);
    SP_ASSERT(n > 0);
    return (size_t)n;
}

/* Check that @p s is valid UTF-8 (RFC 3629), skipping ASCII eight bytes at a time. */
static int text_validate(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint64_t w;
        if (len - i >= sizeof(w)) {
            memcpy(&w, s + i, sizeof(w));
            if (!(w & UINT64_C(0x8080808080808080))) {
                i += sizeof(w);
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0)
            return SP_EINVAL;
        i += (size_t)n;
    }
    return 0;
}

/* Fold @p s with utf8proc @p opts into a->cps. @return 0 or SP_EINVAL (invalid UTF-8). */
static int text_fold_unicode(struct proj_text *a,
                             const unsigned char *s,
                             size_t len,
                             utf8proc_option_t opts,
                             const char **out,
                             size_t *out_len)
{
    utf8proc_ssize_t n;
    for (;;) {
        n = utf8proc_decompose(s, (utf8proc_ssize_t)len, a->cps, (utf8proc_ssize_t)a->cps_cap,
                               opts);
        if (n < 0)
            return SP_EINVAL;
        /* utf8proc_reencode writes the UTF-8 result and a NUL over the code points */
        if ((size_t)n < a->cps_cap)
            break;
        a->cps_cap = (size_t)n + 1;
        free(a->cps);
        a->cps = sp_xmalloc(a->cps_cap * sizeof(*a->cps));
    }
    n = utf8proc_reencode(a->cps, n, opts);
    if (n < 0)
        return SP_EINVAL;
    *out = (const char *)a->cps;
    *out_len = (size_t)n;
    return 0;
}

/* Lower-case an ASCII token of at most PROJ_TEXT_MAX_TOKEN_BYTES into a->ascii. */
static const char *text_fold_ascii(struct proj_text *a, const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        a->ascii[i] = (char)(c + (((unsigned)(c - 'A') < 26) << 5));
    }
    a->ascii[len] = '\0';
    return a->ascii;
}

/* Whether folded UTF-8 text holds a letter (general category L*). */
static bool text_has_letter(const char *word, size_t len)
{
    const unsigned char *p = (const unsigned char *)word;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x80) {
            if (text_is_alpha(p[i]))
                return true;
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0)
            return false;
        utf8proc_category_t cat = utf8proc_category(cp);
        if (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO)
            return true;
        i += (size_t)n;
    }
    return false;
}

/* Snowball stem of a folded word that has a letter, for a language with a stemmer. */
static int text_snowball(struct proj_text *a,
                         enum proj_lang lang,
                         const char *word,
                         size_t len,
                         const char **out,
                         size_t *out_len)
{
    struct sb_stemmer *sb = a->stemmers[lang];
    const sb_symbol *stem = sb_stemmer_stem(sb, (const sb_symbol *)word, (int)len);
    if (!stem)
        return -ENOMEM;
    *out = (const char *)stem;
    *out_len = (size_t)sb_stemmer_length(sb);
    return 0;
}

/* FNV-1a of @p lang and @p word: picks the cache slot. */
static uint32_t text_cache_hash(enum proj_lang lang, const char *word, size_t len)
{
    uint32_t h = UINT32_C(2166136261) ^ (uint32_t)lang;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)word[i]) * UINT32_C(16777619);
    return h;
}

/* Stem and stop word status of a folded word with a letter, through the stem cache. */
static int text_stem_cached(struct proj_text *a,
                            enum proj_lang lang,
                            const char *word,
                            size_t len,
                            const char **out,
                            size_t *out_len,
                            bool *stop)
{
    struct text_cache_slot *slot = NULL;
    if (len <= TEXT_CACHE_WORD_BYTES) {
        slot = &a->cache[text_cache_hash(lang, word, len) % TEXT_CACHE_SLOTS];
        if (slot->lang == (uint8_t)lang && slot->word_len == len &&
            memcmp(slot->word, word, len) == 0) {
            *out = slot->stem;
            *out_len = slot->stem_len;
            *stop = slot->stop;
            return 0;
        }
    }
    int rc = text_snowball(a, lang, word, len, out, out_len);
    if (rc)
        return rc;
    *stop = proj_text_is_stopword(lang, word, len);
    if (slot && *out_len >= 1 && *out_len <= TEXT_CACHE_STEM_BYTES) {
        slot->lang = (uint8_t)lang;
        slot->word_len = (uint8_t)len;
        slot->stem_len = (uint8_t)*out_len;
        slot->stop = *stop;
        memcpy(slot->word, word, len);
        memcpy(slot->stem, *out, *out_len);
        slot->stem[*out_len] = '\0';
    }
    return 0;
}

/* Report one token of folded form @p word; skip it (keeping its position) if empty or
 * too long. */
static int text_emit(struct text_run *run,
                     size_t start,
                     size_t end,
                     const char *word,
                     size_t word_len,
                     bool has_letter,
                     bool cjk)
{
    struct proj_token tok = {
        .start = (uint32_t)start,
        .len = (uint32_t)(end - start),
        .pos = run->pos++,
        .word = word,
        .word_len = word_len,
        .stem = word,
        .stem_len = word_len,
        .cjk = cjk,
        .stop = false,
    };
    if (word_len == 0 || word_len > PROJ_TEXT_MAX_TOKEN_BYTES)
        return 0;
    if (!cjk && has_letter && run->a->stemmers[run->lang]) {
        int rc = text_stem_cached(run->a, run->lang, word, word_len, &tok.stem, &tok.stem_len,
                                  &tok.stop);
        if (rc)
            return rc;
    }
    return run->fn(&tok, run->ud);
}

/* Fold and report the word s[start, end). */
static int
text_word_token(struct text_run *run, size_t start, size_t end, bool ascii, bool has_letter)
{
    size_t n = end - start;
    const char *word;
    size_t word_len;
    if (n > PROJ_TEXT_MAX_SPAN_BYTES || (ascii && n > PROJ_TEXT_MAX_TOKEN_BYTES)) {
        run->pos++;
        return 0;
    }
    if (ascii) {
        word = text_fold_ascii(run->a, run->s + start, n);
        word_len = n;
    } else {
        int rc = text_fold_unicode(run->a, run->s + start, n, TEXT_FOLD_WORD, &word, &word_len);
        if (rc)
            return rc;
        has_letter = text_has_letter(word, word_len);
    }
    return text_emit(run, start, end, word, word_len, has_letter, false);
}

/* Scan the word starting at s[*i] (a letter or number), report it, and advance *i past
 * it. */
static int text_word(struct text_run *run, size_t *i)
{
    const unsigned char *s = run->s;
    size_t start = *i, j = *i, end = *i;
    bool ascii = true, has_letter = false;
    while (j < run->len) {
        if (s[j] < 0x80) {
            if (text_is_alpha(s[j]))
                has_letter = true;
            else if (!text_is_digit(s[j]))
                break;
            end = ++j;
            continue;
        }
        utf8proc_int32_t cp;
        size_t n = text_decode(s, j, run->len, &cp);
        enum text_class cls = text_classify(cp);
        if (cls == TEXT_SEP || cls == TEXT_CJK)
            break;
        ascii = false;
        j += n;
        if (cls != TEXT_FORMAT)
            end = j;
    }
    *i = j;
    return text_word_token(run, start, end, ascii, has_letter);
}

/* Fold and report the CJK unigram or bigram s[start, end). */
static int text_cjk_token(struct text_run *run, size_t start, size_t end)
{
    const char *word;
    size_t word_len;
    if (end - start > PROJ_TEXT_MAX_SPAN_BYTES) {
        run->pos++;
        return 0;
    }
    int rc =
        text_fold_unicode(run->a, run->s + start, end - start, TEXT_FOLD_CJK, &word, &word_len);
    if (rc)
        return rc;
    return text_emit(run, start, end, word, word_len, false, true);
}

/* Scan the run of CJK characters (each with its marks) starting at s[*i], report its
 * bigrams (or its one character), and advance *i past it. */
static int text_cjk(struct text_run *run, size_t *i)
{
    const unsigned char *s = run->s;
    size_t j = *i, prev_start = *i, prev_end = *i, chars = 0;
    int rc = 0;
    while (j < run->len && s[j] >= 0x80 && rc == 0) {
        utf8proc_int32_t cp;
        size_t n = text_decode(s, j, run->len, &cp);
        if (text_classify(cp) != TEXT_CJK)
            break;
        size_t start = j;
        j += n;
        while (j < run->len && s[j] >= 0x80) {
            n = text_decode(s, j, run->len, &cp);
            if (text_classify(cp) != TEXT_MARK)
                break;
            j += n;
        }
        if (chars++)
            rc = text_cjk_token(run, prev_start, j);
        prev_start = start;
        prev_end = j;
    }
    *i = j;
    if (rc == 0 && chars == 1)
        rc = text_cjk_token(run, prev_start, prev_end);
    return rc;
}

/* Tokenise run->s: dispatch each token start to text_word or text_cjk. */
static int text_tokenize(struct text_run *run)
{
    const unsigned char *s = run->s;
    size_t i = 0;
    int rc = 0;
    while (i < run->len && rc == 0) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (text_is_alpha(c) || text_is_digit(c))
                rc = text_word(run, &i);
            else
                i++;
            continue;
        }
        utf8proc_int32_t cp;
        size_t n = text_decode(s, i, run->len, &cp);
        enum text_class cls = text_classify(cp);
        if (cls == TEXT_LETTER || cls == TEXT_NUMBER)
            rc = text_word(run, &i);
        else if (cls == TEXT_CJK)
            rc = text_cjk(run, &i);
        else
            i += n;
    }
    return rc;
}

int proj_text_analyze(
    struct proj_text *a, enum proj_lang lang, const char *s, size_t len, proj_token_fn fn, void *ud)
{
    if (!a || !fn || !text_lang_valid(lang) || (!s && len))
        return SP_EINVAL;
    if (len > UINT32_MAX)
        return SP_ETOOBIG;
    if (!len)
        return 0;
    struct text_run run = {
        .a = a,
        .lang = lang,
        .s = (const unsigned char *)s,
        .len = len,
        .fn = fn,
        .ud = ud,
        .pos = 0,
    };
    int rc = text_validate(run.s, len);
    if (rc)
        return rc;
    return text_tokenize(&run);
}

int proj_text_fold(
    struct proj_text *a, const char *s, size_t len, const char **out, size_t *out_len)
{
    if (!a || (!s && len))
        return SP_EINVAL;
    if (len > PROJ_TEXT_MAX_SPAN_BYTES)
        return SP_ETOOBIG;
    const unsigned char *p = (const unsigned char *)s;
    unsigned char copy[PROJ_TEXT_MAX_SPAN_BYTES];
    uintptr_t scratch = (uintptr_t)a->cps, at = (uintptr_t)s;
    if (len && at >= scratch && at < scratch + a->cps_cap * sizeof(*a->cps)) {
        memcpy(copy, s, len); /* s is an earlier result: folding overwrites it */
        p = copy;
    }
    int rc = text_validate(p, len);
    if (rc)
        return rc;
    rc = text_fold_unicode(a, p, len, TEXT_FOLD_WORD, out, out_len);
    if (rc)
        return rc;
    return *out_len > PROJ_TEXT_MAX_TOKEN_BYTES ? SP_ETOOBIG : 0;
}

int proj_text_stem(struct proj_text *a,
                   enum proj_lang lang,
                   const char *word,
                   size_t len,
                   const char **out,
                   size_t *out_len)
{
    if (!a || !text_lang_valid(lang) || (!word && len))
        return SP_EINVAL;
    if (len > PROJ_TEXT_MAX_TOKEN_BYTES)
        return SP_ETOOBIG;
    int rc = text_validate((const unsigned char *)word, len);
    if (rc)
        return rc;
    if (a->stemmers[lang] && text_has_letter(word, len)) {
        char copy[PROJ_TEXT_MAX_TOKEN_BYTES]; /* word may be an earlier result of @p a */
        bool stop;
        memcpy(copy, word, len);
        return text_stem_cached(a, lang, copy, len, out, out_len, &stop);
    }
    *out = word;
    *out_len = len;
    return 0;
}
