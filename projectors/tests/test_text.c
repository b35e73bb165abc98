/* Tests of the search view's text analyzer: tokens, offsets, folding, stemming, CJK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libstemmer.h>

#include "proj/text.h"
#include "sp/banned.h"

/* A token copied out of the callback. */
struct tok_copy {
    uint32_t start, len, pos;
    char word[PROJ_TEXT_MAX_TOKEN_BYTES + 1];
    char stem[PROJ_TEXT_MAX_TOKEN_BYTES * 2];
    bool cjk;
    bool stop;
};

struct toks {
    struct tok_copy t[32];
    size_t n;
    int stop_rc; /* returned by the callback; 0 = continue */
};

static int collect(const struct proj_token *tok, void *ud)
{
    struct toks *ts = ud;
    assert_true(ts->n < sizeof(ts->t) / sizeof(ts->t[0]));
    assert_true(tok->word_len >= 1 && tok->word_len <= PROJ_TEXT_MAX_TOKEN_BYTES);
    assert_true(tok->stem_len < sizeof(ts->t[0].stem));
    assert_int_equal(tok->word[tok->word_len], '\0');
    assert_int_equal(tok->stem[tok->stem_len], '\0');
    struct tok_copy *c = &ts->t[ts->n++];
    c->start = tok->start;
    c->len = tok->len;
    c->pos = tok->pos;
    memcpy(c->word, tok->word, tok->word_len + 1);
    memcpy(c->stem, tok->stem, tok->stem_len + 1);
    c->cjk = tok->cjk;
    c->stop = tok->stop;
    return ts->stop_rc;
}

/* Analyze a NUL-terminated string into @p ts (cleared first); copies it to a heap
 * buffer of exactly strlen bytes so ASan catches a read past len. */
static int analyze(struct proj_text *a, enum proj_lang lang, const char *s, struct toks *ts)
{
    size_t len = strlen(s);
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, s, len); /* NOLINT(bugprone-not-null-terminated-result): on purpose */
    int stop_rc = ts->stop_rc;
    memset(ts, 0, sizeof(*ts));
    ts->stop_rc = stop_rc;
    int rc = proj_text_analyze(a, lang, buf, len, collect, ts);
    free(buf);
    return rc;
}

static void assert_tok(const struct toks *ts,
                       size_t i,
                       uint32_t start,
                       uint32_t len,
                       uint32_t pos,
                       const char *word,
                       const char *stem)
{
    assert_true(i < ts->n);
    assert_int_equal(ts->t[i].start, start);
    assert_int_equal(ts->t[i].len, len);
    assert_int_equal(ts->t[i].pos, pos);
    assert_string_equal(ts->t[i].word, word);
    assert_string_equal(ts->t[i].stem, stem);
}

static int setup(void **state)
{
    struct proj_text *a = NULL;
    if (proj_text_new(&a) != 0)
        return -1;
    *state = a;
    return 0;
}

static int teardown(void **state)
{
    proj_text_free(*state);
    return 0;
}

static void test_mixed_offsets(void **state)
{
    struct proj_text *a = *state;
    struct toks ts = {0};
    /* "Crème" 0-6, "brûlée" 7-15, "2" 17, "eggs" 19-23, "½" 26-28, "cup" 29-32 */
    assert_int_equal(analyze(a, PROJ_LANG_EN, "Crème brûlée, 2 eggs & ½ cup", &ts), 0);
    assert_int_equal(ts.n, 6);
    assert_tok(&ts, 0, 0, 6, 0, "creme", "creme");
    assert_tok(&ts, 1, 7, 8, 1, "brulee", "brule");
    assert_tok(&ts, 2, 17, 1, 2, "2", "2");
    assert_tok(&ts, 3, 19, 4, 3, "eggs", "egg");
    assert_tok(&ts, 4, 26, 2, 4,
               "1\xe2\x81\x84"
               "2",
               "1\xe2\x81\x84"
               "2"); /* NFKC: 1 U+2044 FRACTION SLASH 2, not stemmed */
    assert_tok(&ts, 5, 29, 3, 5, "cup", "cup");
    for (size_t i = 0; i < ts.n; i++)
        assert_false(ts.t[i].cjk);
}

static void test_separators(void **state)
{
    struct proj_text *a = *state;
    struct toks ts = {0};
    assert_int_equal(analyze(a, PROJ_LANG_NONE,
                             "don't stir-fry_it\t350\xc2\xb0"
                             "F\nA1",
                             &ts),
                     0);
    assert_int_equal(ts.n, 8);
    assert_tok(&ts, 0, 0, 3, 0, "don", "don");
    assert_tok(&ts, 1, 4, 1, 1, "t", "t");
    assert_tok(&ts, 2, 6, 4, 2, "stir", "stir");
    assert_tok(&ts, 3, 11, 3, 3, "fry", "fry");
    assert_tok(&ts, 4, 15, 2, 4, "it", "it");
    assert_tok(&ts, 5, 18, 3, 5, "350", "350");
    assert_tok(&ts, 6, 23, 1, 6, "f", "f"); /* U+00B0 DEGREE SIGN separates */
    assert_tok(&ts, 7, 25, 2, 7, "a1", "a1");
    /* nothing but separators */
    assert_int_equal(analyze(a, PROJ_LANG_EN, " -- ... \xe2\x80\x94 !", &ts), 0);
    assert_int_equal(ts.n, 0);
    assert_int_equal(proj_text_analyze(a, PROJ_LANG_EN, NULL, 0, collect, &ts), 0);
    assert_int_equal(ts.n, 0);
}

static void test_fold(void **state)
{
    struct proj_text *a = *state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"Crème Brûlée", "creme brulee"},
        {"Äpfel", "apfel"},
        {"Straße", "strasse"},
        {"\xe1\xba\x9e", "ss"},                          /* U+1E9E CAPITAL SHARP S */
        {"\xef\xac\x81", "fi"},                          /* U+FB01 LATIN SMALL LIGATURE FI */
        {"\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3", "abc"}, /* full-width ABC */
        {"\xe2\x85\xab", "xii"},                         /* U+216B ROMAN NUMERAL TWELVE */
        {"e\xcc\x81", "e"},                              /* e + COMBINING ACUTE */
        {"choco\xc2\xad"
         "late",
         "chocolate"}, /* SOFT HYPHEN is default-ignorable */
        {"JALAPEÑO", "jalapeno"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *out = NULL;
        size_t out_len = 0;
        assert_int_equal(proj_text_fold(a, cases[i].in, strlen(cases[i].in), &out, &out_len), 0);
        assert_int_equal(out_len, strlen(cases[i].out));
        assert_string_equal(out, cases[i].out);
    }
    /* folding an earlier result of the same analyzer (it overlaps the scratch) */
    const char *out, *again;
    size_t out_len, again_len;
    assert_int_equal(proj_text_fold(a, "ÉCLAIR", strlen("ÉCLAIR"), &out, &out_len), 0);
    assert_int_equal(proj_text_fold(a, out, out_len, &again, &again_len), 0);
    assert_string_equal(again, "eclair");
    assert_int_equal(again_len, 6);
}

static void test_fold_errors(void **state)
{
    struct proj_text *a = *state;
    const char *out;
    size_t out_len;
    char big[PROJ_TEXT_MAX_SPAN_BYTES + 1];
    memset(big, 'a', sizeof(big));
    assert_int_equal(proj_text_fold(a, big, sizeof(big), &out, &out_len), SP_ETOOBIG);
    /* 65 bytes fold to 65 bytes: longer than a token */
    assert_int_equal(proj_text_fold(a, big, PROJ_TEXT_MAX_TOKEN_BYTES + 1, &out, &out_len),
                     SP_ETOOBIG);
    assert_int_equal(proj_text_fold(a, big, PROJ_TEXT_MAX_TOKEN_BYTES, &out, &out_len), 0);
    assert_int_equal(out_len, PROJ_TEXT_MAX_TOKEN_BYTES);
    assert_int_equal(proj_text_fold(a, "caf\xc3", 4, &out, &out_len), SP_EINVAL);
    assert_int_equal(proj_text_fold(a, "\xed\xa0\x80", 3, &out, &out_len), SP_EINVAL);
}

static void test_analyze_folds(void **state)
{
    struct proj_text *a = *state;
    struct toks ts = {0};
    /* full-width ABC (9 bytes), "ﬁsh" (5 bytes), soft hyphen inside, ZWSP between */
    assert_int_equal(analyze(a, PROJ_LANG_NONE,
                             "\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3 \xef\xac\x81sh choco\xc2\xad"
                             "late a\xe2\x80\x8b"
                             "b \xc3\x84pfel",
                             &ts),
                     0);
    assert_int_equal(ts.n, 6);
    assert_tok(&ts, 0, 0, 9, 0, "abc", "abc");
    assert_tok(&ts, 1, 10, 5, 1, "fish", "fish");
    assert_tok(&ts, 2, 16, 11, 2, "chocolate", "chocolate");
    assert_tok(&ts, 3, 28, 1, 3, "a", "a");
    assert_tok(&ts, 4, 32, 1, 4, "b", "b");
    assert_tok(&ts, 5, 34, 6, 5, "apfel", "apfel");
    /* a leading mark does not start a token; a trailing soft hyphen is not part of one */
    assert_int_equal(analyze(a, PROJ_LANG_NONE, "\xcc\x81oeuf\xc2\xad ", &ts), 0);
    assert_int_equal(ts.n, 1);
    assert_tok(&ts, 0, 2, 4, 0, "oeuf", "oeuf");
}

static void test_stem_english(void **state)
{
    struct proj_text *a = *state;
    struct toks ts = {0};
    assert_int_equal(analyze(a, PROJ_LANG_EN, "Running TOMATOES cookies 1st 350", &ts), 0);
    assert_int_equal(ts.n, 5);
    assert_tok(&ts, 0, 0, 7, 0, "running", "run");
    assert_tok(&ts, 1, 8, 8, 1, "tomatoes", "tomato");
    assert_tok(&ts, 2, 17, 7, 2, "cookies", "cooki");
    assert_tok(&ts, 3, 25, 3, 3, "1st", "1st");
    assert_tok(&ts, 4, 29, 3, 4, "350", "350");

    static const struct {
        const char *in, *out;
    } cases[] = {
        {"running", "run"}, {"tomatoes", "tomato"}, {"cookies", "cooki"},
        {"eggs", "egg"},    {"sliced", "slice"},    {"2", "2"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *out;
        size_t out_len;
        assert_int_equal(
            proj_text_stem(a, PROJ_LANG_EN, cases[i].in, strlen(cases[i].in), &out, &out_len), 0);
        assert_int_equal(out_len, strlen(cases[i].out));
        assert_memory_equal(out, cases[i].out, out_len);
    }
}

static void test_stem_german_and_none(void **state)
{
    struct proj_text *a = *state;
    struct toks ts = {0};
    /* Snowball german leaves "-eln" alone but strips "-en" */
    assert_int_equal(analyze(a, PROJ_LANG_DE, "Kartoffeln, Tomaten; Äpfel gekochten Kuchen", &ts),
                     0);
    assert_int_equal(ts.n, 5);
    assert_tok(&ts, 0, 0, 10, 0, "kartoffeln", "kartoffeln");
    assert_tok(&ts, 1, 12, 7, 1, "tomaten", "tomat");
    assert_tok(&ts, 2, 21, 6, 2, "apfel", "apfel");
    assert_tok(&ts, 3, 28, 9, 3, "gekochten", "gekocht");
    assert_tok(&ts, 4, 38, 6, 4, "kuchen", "kuch");

    assert_int_equal(analyze(a, PROJ_LANG_NONE, "running tomatoes", &ts), 0);
    assert_int_equal(ts.n, 2);
    assert_tok(&ts, 0, 0, 7, 0, "running", "running");
    assert_tok(&ts, 1, 8, 8, 1, "tomatoes", "tomatoes");

    const char *word = "running", *out;
    size_t out_len;
    assert_int_equal(proj_text_stem(a, PROJ_LANG_NONE, word, 7, &out, &out_len), 0);
    assert_ptr_equal(out, word);
    assert_int_equal(out_len, 7);
    /* stemming an earlier stem of the same analyzer */
    assert_int_equal(proj_text_stem(a, PROJ_LANG_EN, "cookies", 7, &out, &out_len), 0);
    assert_int_equal(proj_text_stem(a, PROJ_LANG_EN, out, out_len, &out, &out_len), 0);
    assert_int_equal(out_len, 5);
    assert_memory_equal(out, "cooki", 5);
    assert_int_equal(proj_text_stem(a, PROJ_LANG_DE, "kartoffeln", 10, &out, &out_len), 0);
    assert_int_equal(out_len, 10);
    assert_memory_equal(out, "kartoffeln", 10);
}

static void test_stem_errors(void **state)
{
    struct proj_text *a = *state;
    const char *out;
    size_t out_len;
    char big[PROJ_TEXT_MAX_TOKEN_BYTES + 1];
    memset(big, 'a', sizeof(big));
    assert_int_equal(proj_text_stem(a, PROJ_LANG_EN, big, sizeof(big), &out, &out_len), SP_ETOOBIG);
    assert_int_equal(proj_text_stem(a, PROJ_LANG_EN, "ab\xff", 3, &out, &out_len), SP_EINVAL);
    assert_int_equal(proj_text_stem(a, (enum proj_lang)PROJ_LANG_COUNT, "ab", 2, &out, &out_len),
                     SP_EINVAL);
}

static void test_cjk_bigrams(void **state)
{
    struct proj_text *a = *state;
    struct toks ts = {0};
    /* 番茄炒蛋: four 3-byte characters */
    assert_int_equal(analyze(a, PROJ_LANG_EN, "番茄炒蛋", &ts), 0);
    assert_int_equal(ts.n, 3);
    assert_tok(&ts, 0, 0, 6, 0, "番茄", "番茄");
    assert_tok(&ts, 1, 3, 6, 1, "茄炒", "茄炒");
    assert_tok(&ts, 2, 6, 6, 2, "炒蛋", "炒蛋");
    for (size_t i = 0; i < ts.n; i++)
        assert_true(ts.t[i].cjk);

    /* a lone character is a unigram; ASCII digits and words split runs */
    assert_int_equal(analyze(a, PROJ_LANG_EN, "加2个鸡蛋, Eggs番茄", &ts), 0);
    assert_int_equal(ts.n, 6);
    assert_tok(&ts, 0, 0, 3, 0, "加", "加");
    assert_true(ts.t[0].cjk);
    assert_tok(&ts, 1, 3, 1, 1, "2", "2");
    assert_false(ts.t[1].cjk);
    assert_tok(&ts, 2, 4, 6, 2, "个鸡", "个鸡");
    assert_tok(&ts, 3, 7, 6, 3, "鸡蛋", "鸡蛋");
    assert_tok(&ts, 4, 15, 4, 4, "eggs", "egg");
    assert_false(ts.t[4].cjk);
    assert_tok(&ts, 5, 19, 6, 5, "番茄", "番茄");
    assert_true(ts.t[5].cjk);

    /* kana keep their marks: カ + COMBINING VOICED SOUND MARK composes to ガ, not カ;
     * Hangul syllables and katakana bigram across scripts */
    assert_int_equal(analyze(a, PROJ_LANG_NONE, "\xe3\x82\xab\xe3\x82\x99 김치ラーメン", &ts), 0);
    assert_int_equal(ts.n, 6);
    assert_tok(&ts, 0, 0, 6, 0, "ガ", "ガ");
    assert_tok(&ts, 1, 7, 6, 1, "김치", "김치");
    assert_tok(&ts, 2, 10, 6, 2, "치ラ", "치ラ");
    assert_tok(&ts, 3, 13, 6, 3, "ラー", "ラー");
    assert_tok(&ts, 4, 16, 6, 4, "ーメ", "ーメ");
    assert_tok(&ts, 5, 19, 6, 5, "メン", "メン");
}

static void test_overlong_skipped(void **state)
{
    struct proj_text *a = *state;
    struct toks ts = {0};
    char text[1024];
    /* 65 ASCII letters: skipped, position 1 kept */
    size_t n = 0;
    memcpy(text + n, "ok ", 3);
    n += 3;
    memset(text + n, 'x', PROJ_TEXT_MAX_TOKEN_BYTES + 1);
    n += PROJ_TEXT_MAX_TOKEN_BYTES + 1;
    memcpy(text + n, " fine ", 6);
    n += 6;
    /* 40 x "é" = 80 input bytes fold to 40 bytes: kept */
    for (int i = 0; i < 40; i++, n += 2)
        memcpy(text + n, "\xc3\xa9", 2);
    memcpy(text + n, " ", 1);
    n += 1;
    /* "a" + 300 combining acute accents = 601 bytes: past the span cap, skipped */
    text[n++] = 'a';
    for (int i = 0; i < 300; i++, n += 2)
        memcpy(text + n, "\xcc\x81", 2);
    memcpy(text + n, " end", 5);
    n += 5;
    assert_true(n < sizeof(text));

    assert_int_equal(analyze(a, PROJ_LANG_EN, text, &ts), 0);
    assert_int_equal(ts.n, 4);
    assert_tok(&ts, 0, 0, 2, 0, "ok", "ok");
    assert_tok(&ts, 1, 69, 4, 2, "fine", "fine");
    assert_int_equal(ts.t[2].start, 74);
    assert_int_equal(ts.t[2].len, 80);
    assert_int_equal(ts.t[2].pos, 3);
    assert_int_equal(strlen(ts.t[2].word), 40);
    assert_int_equal(ts.t[3].pos, 5);
    assert_string_equal(ts.t[3].word, "end");
    assert_int_equal(ts.t[3].start, 155 + 601 + 1);

    /* exactly PROJ_TEXT_MAX_TOKEN_BYTES is kept */
    memset(text, 'y', PROJ_TEXT_MAX_TOKEN_BYTES);
    text[PROJ_TEXT_MAX_TOKEN_BYTES] = '\0';
    assert_int_equal(analyze(a, PROJ_LANG_NONE, text, &ts), 0);
    assert_int_equal(ts.n, 1);
    assert_int_equal(ts.t[0].len, PROJ_TEXT_MAX_TOKEN_BYTES);
}

static void test_invalid_utf8(void **state)
{
    struct proj_text *a = *state;
    struct toks ts = {0};
    static const char *const bad[] = {
        "ok \xff",               /* never valid */
        "ok \x80 more",          /* lone continuation byte */
        "ok \xc0\xaf",           /* overlong "/" */
        "ok \xe0\x80\xaf",       /* overlong, 3 bytes */
        "ok \xed\xa0\x80",       /* surrogate U+D800 */
        "ok \xf4\x90\x80\x80",   /* past U+10FFFF */
        "ok \xc3",               /* truncated at the end */
        "ok \xe7\x95 more text", /* truncated in the middle */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(analyze(a, PROJ_LANG_EN, bad[i], &ts), SP_EINVAL);
        assert_int_equal(ts.n, 0); /* checked before the first token */
    }
    /* a valid sequence cut by len is invalid: bytes past len are not read */
    assert_int_equal(proj_text_analyze(a, PROJ_LANG_EN, "caf\xc3\xa9", 4, collect, &ts), SP_EINVAL);
    assert_int_equal(ts.n, 0);
    /* NUL is a separator */
    assert_int_equal(proj_text_analyze(a, PROJ_LANG_EN, "a\0b", 3, collect, &ts), 0);
    assert_int_equal(ts.n, 2);
}

static void test_bad_arguments(void **state)
{
    struct proj_text *a = *state;
    struct toks ts = {0};
    assert_int_equal(proj_text_analyze(a, PROJ_LANG_EN, NULL, 3, collect, &ts), SP_EINVAL);
    assert_int_equal(proj_text_analyze(a, PROJ_LANG_EN, "abc", 3, NULL, &ts), SP_EINVAL);
    assert_int_equal(proj_text_analyze(NULL, PROJ_LANG_EN, "abc", 3, collect, &ts), SP_EINVAL);
    assert_int_equal(proj_text_analyze(a, (enum proj_lang)PROJ_LANG_COUNT, "abc", 3, collect, &ts),
                     SP_EINVAL);
    assert_int_equal(ts.n, 0);
}

static void test_callback_stops(void **state)
{
    struct proj_text *a = *state;
    struct toks ts = {.stop_rc = 7};
    assert_int_equal(analyze(a, PROJ_LANG_EN, "one two three", &ts), 7);
    assert_int_equal(ts.n, 1);
    assert_string_equal(ts.t[0].word, "one");
}

static void test_stop_flag(void **state)
{
    struct proj_text *a = *state;
    struct toks ts = {0};
    static const bool en[] = {true, false, true, true, false, false};
    assert_int_equal(analyze(a, PROJ_LANG_EN, "The eggs and THE cup 2", &ts), 0);
    assert_int_equal(ts.n, 6);
    for (size_t i = 0; i < ts.n; i++)
        assert_int_equal(ts.t[i].stop, en[i]);
    /* again, now from the stem cache */
    assert_int_equal(analyze(a, PROJ_LANG_EN, "the eggs", &ts), 0);
    assert_true(ts.t[0].stop);
    assert_false(ts.t[1].stop);
    assert_int_equal(analyze(a, PROJ_LANG_DE, "Eier und f\xc3\xbcr the", &ts), 0);
    assert_int_equal(ts.n, 4);
    assert_false(ts.t[0].stop);
    assert_true(ts.t[1].stop);
    assert_true(ts.t[2].stop); /* "für" folds to "fur" */
    assert_false(ts.t[3].stop);
    assert_int_equal(analyze(a, PROJ_LANG_NONE, "the und", &ts), 0);
    assert_false(ts.t[0].stop);
    assert_false(ts.t[1].stop);
}

/* Stems through the cache equal libstemmer's own, over more distinct words than the cache
 * has slots, so slots are reused. */
static void test_stem_cache(void **state)
{
    struct proj_text *a = *state;
    static const char *const bases[] = {"cook", "bake", "slice", "tomato", "run", "happy"};
    static const char *const suffixes[] = {"", "s", "ing", "ed", "ies", "ness", "ations"};
    struct sb_stemmer *ref = sb_stemmer_new("english", "UTF_8");
    assert_non_null(ref);
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < 20000; i++) {
            char word[64];
            int n = snprintf(word, sizeof(word), "%c%c%c%s%s", 'a' + i % 26, 'a' + i / 26 % 26,
                             'a' + i / 676 % 26, bases[i % 6], suffixes[i / 6 % 7]);
            assert_true(n > 0 && (size_t)n < sizeof(word));
            const char *out;
            size_t out_len;
            assert_int_equal(proj_text_stem(a, PROJ_LANG_EN, word, (size_t)n, &out, &out_len), 0);
            const sb_symbol *want = sb_stemmer_stem(ref, (const sb_symbol *)word, n);
            assert_non_null(want);
            assert_int_equal(out_len, (size_t)sb_stemmer_length(ref));
            assert_memory_equal(out, want, out_len);
        }
    }
    sb_stemmer_delete(ref);
}

static void test_stopwords(void **state)
{
    struct proj_text *a = *state;
    assert_true(proj_text_is_stopword(PROJ_LANG_EN, "the", 3));
    assert_true(proj_text_is_stopword(PROJ_LANG_EN, "yourselves", 10));
    assert_true(proj_text_is_stopword(PROJ_LANG_EN, "a", 1));
    assert_false(proj_text_is_stopword(PROJ_LANG_EN, "egg", 3));
    assert_false(proj_text_is_stopword(PROJ_LANG_EN, "th", 2));
    assert_false(proj_text_is_stopword(PROJ_LANG_EN, "theme", 5));
    assert_false(proj_text_is_stopword(PROJ_LANG_EN, "", 0));
    assert_true(proj_text_is_stopword(PROJ_LANG_EN, "thenx", 4)); /* len counts */
    assert_true(proj_text_is_stopword(PROJ_LANG_DE, "und", 3));
    assert_true(proj_text_is_stopword(PROJ_LANG_DE, "fur", 3));
    assert_true(proj_text_is_stopword(PROJ_LANG_DE, "dass", 4));
    assert_false(proj_text_is_stopword(PROJ_LANG_DE, "f\xc3\xbcr", 4)); /* not folded */
    assert_false(proj_text_is_stopword(PROJ_LANG_DE, "the", 3));
    assert_false(proj_text_is_stopword(PROJ_LANG_NONE, "the", 3));
    assert_false(proj_text_is_stopword(PROJ_LANG_NONE, "und", 3));
    assert_false(proj_text_is_stopword((enum proj_lang)PROJ_LANG_COUNT, "the", 3));

    size_t n = 99;
    assert_null(proj_text_stopwords(PROJ_LANG_NONE, &n));
    assert_int_equal(n, 0);
    static const struct {
        enum proj_lang lang;
        size_t n;
    } lists[] = {{PROJ_LANG_EN, 124}, {PROJ_LANG_DE, 231}};
    for (size_t l = 0; l < 2; l++) {
        const char *const *words = proj_text_stopwords(lists[l].lang, &n);
        assert_int_equal(n, lists[l].n);
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(words[i]);
            if (i > 0)
                assert_true(strcmp(words[i - 1], words[i]) < 0); /* sorted, unique */
            assert_true(proj_text_is_stopword(lists[l].lang, words[i], len));
            const char *folded;
            size_t folded_len;
            assert_int_equal(proj_text_fold(a, words[i], len, &folded, &folded_len), 0);
            assert_string_equal(folded, words[i]); /* stored folded */
        }
    }
}

static void test_lang(void **state)
{
    (void)state;
    static const struct {
        const char *tag;
        int rc;
        enum proj_lang lang;
    } cases[] = {
        {"en", 0, PROJ_LANG_EN},
        {"EN", 0, PROJ_LANG_EN},
        {"en-GB", 0, PROJ_LANG_EN},
        {"en-US-x-twain", 0, PROJ_LANG_EN},
        {"de", 0, PROJ_LANG_DE},
        {"De-AT", 0, PROJ_LANG_DE},
        {"de-CH-1996", 0, PROJ_LANG_DE},
        {"zh", 0, PROJ_LANG_NONE},
        {"zh-Hans-CN", 0, PROJ_LANG_NONE},
        {"fr", 0, PROJ_LANG_NONE},
        {"und", 0, PROJ_LANG_NONE},
        {"eng", 0, PROJ_LANG_NONE},
        {"", SP_EINVAL, 0},
        {"e", SP_EINVAL, 0},
        {"engl", SP_EINVAL, 0},
        {"en_GB", SP_EINVAL, 0},
        {"en-", SP_EINVAL, 0},
        {"en--GB", SP_EINVAL, 0},
        {"e1", SP_EINVAL, 0},
        {"en-abcdefghi", SP_EINVAL, 0},
        {"en-G_", SP_EINVAL, 0},
        {"x-private", SP_EINVAL, 0},
        {" en", SP_EINVAL, 0},
        {"\xc3\xa9n", SP_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum proj_lang lang = (enum proj_lang)99;
        assert_int_equal(proj_lang_parse(cases[i].tag, &lang), cases[i].rc);
        if (cases[i].rc == 0)
            assert_int_equal(lang, cases[i].lang);
        else
            assert_int_equal(lang, 99); /* unchanged */
    }
    enum proj_lang lang;
    assert_int_equal(proj_lang_parse(NULL, &lang), SP_EINVAL);
    assert_string_equal(proj_lang_name(PROJ_LANG_NONE), "none");
    assert_string_equal(proj_lang_name(PROJ_LANG_EN), "en");
    assert_string_equal(proj_lang_name(PROJ_LANG_DE), "de");
    assert_string_equal(proj_lang_name((enum proj_lang)PROJ_LANG_COUNT), "unknown");
}

static void test_new_free(void **state)
{
    (void)state;
    struct proj_text *a = NULL;
    assert_int_equal(proj_text_new(&a), 0);
    assert_non_null(a);
    proj_text_free(a);
    proj_text_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mixed_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_separators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analyze_folds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stem_english, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stem_german_and_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stem_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cjk_bigrams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stem_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopwords, setup, teardown),
        cmocka_unit_test(test_lang),
        cmocka_unit_test(test_new_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
