/*
 * Tests of the search view (proj/search.h) on a real LMDB environment: the BM25F scorer
 * against hand-computed values, then recipes and users folded and flushed as the runner
 * does, and queries on them: AND, phrases, exclusion, prefix, typos, stop words, folding,
 * stemming, CJK, filters, facets, paging, highlights, updates, deletions, determinism
 * across stream interleavings and batch splits, and the rejection of bad queries.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "search_fixture.h"
#include "sp/banned.h"

#define IDS 512

/* ------------------------------------------------------------------ BM25F by hand */

static void test_bm25f_hand(void **state)
{
    struct proj_bm25f_params p;
    (void)state;
    proj_bm25f_params_default(&p);
    assert_true(p.weight[PROJ_SEARCH_TITLE] == 4.0 && p.weight[PROJ_SEARCH_TAGS] == 3.0);
    assert_true(p.weight[PROJ_SEARCH_INGREDIENTS] == 2.0 && p.k1 == 1.2 && p.b[4] == 0.75);

    /* N = 10, df = 2: idf = ln(1 + (10 - 2 + 0.5) / (2 + 0.5)) = ln(4.4) */
    double idf = proj_bm25f_idf(10, 2);
    assert_true(fabs(idf - 1.4816045409242156) < 1e-12);
    /* title: tf 1, len 4, avg 5: 4 * 1 / (0.25 + 0.75 * 4/5) = 4 / 0.85 = 4.70588...;
     * ingredients: tf 2, len 20, avg 25: 2 * 2 / 0.85 = 4.70588...; tf~ = 9.41176...;
     * score = 1.48160 * 9.41176 / (1.2 + 9.41176) = 1.314061677094648 */
    uint32_t tf[5] = {1, 0, 2, 0, 0}, len[5] = {4, 0, 20, 0, 50};
    double avg[5] = {5, 2, 25, 0, 100};
    assert_true(fabs(proj_bm25f_term(&p, idf, tf, len, avg) - 1.314061677094648) < 1e-12);
    /* tags tf 1 len 3 avg 2: 3 / 1.375; description tf 1 with avg 0 (no recipe has one):
     * not normalised, 1 * 1 / 1; steps tf 3 len 120 avg 100: 3 / 1.15; tf~ = 5.79051...;
     * N = 1000, df = 1: idf = ln(1 + 999.5 / 1.5) = 6.50328...; score = 5.386927156122548 */
    uint32_t tf2[5] = {0, 1, 0, 1, 3}, len2[5] = {6, 3, 0, 5, 120};
    double idf2 = proj_bm25f_idf(1000, 1);
    assert_true(fabs(idf2 - 6.503289671207057) < 1e-12);
    assert_true(fabs(proj_bm25f_term(&p, idf2, tf2, len2, avg) - 5.386927156122548) < 1e-12);
    /* the non-negative idf: a term in every recipe still counts a little */
    assert_true(fabs(proj_bm25f_idf(10, 10) - 0.04652001563489291) < 1e-12);
    assert_true(proj_bm25f_idf(0, 0) == 0.0);
    /* no occurrence, no score */
    uint32_t zero[5] = {0};
    assert_true(proj_bm25f_term(&p, idf, zero, len, avg) == 0.0);
}

/* ------------------------------------------------------------------ the corpus */

#define J(...) json_pack(__VA_ARGS__)

static size_t corpus(struct es_event *ev)
{
    size_t n = 0;
    sfx_recipe(
        &ev[n++], 101, 1, NULL, "Crème Brûlée",
        "A classic French custard dessert with caramelized sugar",
        J("[s,s,s,s]", "4 egg yolks", "2 cups heavy cream", "1/2 cup sugar", "1 vanilla bean"),
        J("[s,s]", "Heat the cream with the vanilla bean.",
          "Whisk the yolks and sugar, then bake in a water bath."),
        J("[s,s]", "Dessert", "French"));
    sfx_recipe(
        &ev[n++], 102, 2, "en", "Garlic Butter Shrimp", "Quick weeknight shrimp in garlic butter",
        J("[s,s,s,s]", "1 pound shrimp", "4 cloves garlic", "3 tablespoons butter", "lemon juice"),
        J("[s,s]", "Melt the butter in a skillet.", "Add garlic and shrimp and cook until pink."),
        J("[s,s]", "Seafood", "Quick & Easy"));
    sfx_recipe(
        &ev[n++], 103, 1, "en", "Chocolate Chip Cookies", "",
        J("[s,s,s,s]", "2 cups flour", "1 cup butter", "1 cup chocolate chips", "brown sugar"),
        J("[s,s]", "Cream the butter and sugar.", "Fold in the chocolate chips and bake."),
        J("[s,s]", "Dessert", "Baking"));
    sfx_recipe(&ev[n++], 104, 2, "de", "Apfelkuchen mit Streuseln",
               "Ein einfacher Kuchen mit Äpfeln",
               J("[s,s,s,s]", "500 g Äpfel", "200 g Mehl", "100 g Butter", "Zucker"),
               J("[s,s]", "Die Äpfel schälen und in Scheiben schneiden.", "Den Kuchen backen."),
               J("[s,s]", "Kuchen", "Dessert"));
    sfx_recipe(
        &ev[n++], 105, 3, "zh", "番茄炒蛋", "简单的家常菜", J("[s,s,s]", "番茄", "鸡蛋", "盐"),
        J("[s,s]", "番茄切块，鸡蛋打散。", "先炒鸡蛋，再炒番茄。"), J("[s,s]", "荤菜", "staple"));
    sfx_recipe(&ev[n++], 106, 3, "en", "Chicken Noodle Soup",
               "Comforting soup with chicken and noodles",
               J("[s,s,s,s]", "1 whole chicken", "egg noodles", "carrots", "celery"),
               J("[s,s]", "Simmer the chicken in water.", "Add noodles and vegetables."),
               J("[s]", "Soup"));
    sfx_recipe(&ev[n++], 107, 2, "en", "Lemon Chicken", "Bright and easy",
               J("[s,s,s]", "chicken breast", "lemon", "garlic"),
               J("[s]", "Roast the chicken with lemon and garlic."), J("[s]", "Quick & Easy"));
    sfx_recipe(&ev[n++], 108, 3, "en", "Pancake Batter", "Fluffy pancakes",
               J("[s,s,s]", "flour", "milk", "eggs"), J("[s]", "Mix the batter and rest it."),
               J("[]"));
    sfx_event(&ev[n++], "UserRegistered", "user", 1, 1,
              J("{s:s,s:s,s:s,s:s}", "user_id", "1", "username", "julia_child", "email", "j@x.org",
                "password_hash", "$argon2id$x"));
    sfx_event(&ev[n++], "ProfileUpdated", "user", 1, 2, J("{s:s}", "full_name", "Julia Child"));
    sfx_event(&ev[n++], "UserRegistered", "user", 2, 1,
              J("{s:s,s:s,s:s,s:s}", "user_id", "2", "username", "gordon", "email", "g@x.org",
                "password_hash", "$argon2id$x"));
    sfx_event(&ev[n++], "ProfileUpdated", "user", 2, 2,
              J("{s:s,s:s}", "full_name", "Gordon Ramsay", "bio", "chef"));
    sfx_event(&ev[n++], "UserRegistered", "user", 3, 1,
              J("{s:s,s:s,s:s,s:s}", "user_id", "3", "username", "chen.wei", "email", "c@x.org",
                "password_hash", "$argon2id$x"));
    sfx_event(&ev[n++], "UserRegistered", "user", 4, 1,
              J("{s:s,s:s,s:s,s:s}", "user_id", "4", "username", "chenoa", "email", "o@x.org",
                "password_hash", "$argon2id$x"));
    return n;
}

#define MAX_EVENTS 64

static void free_events(struct es_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        es_event_release(&ev[i]);
}

static int setup(void **state)
{
    struct sfx *f = calloc(1, sizeof(*f));
    struct es_event ev[MAX_EVENTS];
    int rcs[MAX_EVENTS];
    size_t n;

    sfx_open(f, 0);
    n = corpus(ev);
    assert_int_equal(sfx_batch(f, ev, n, rcs), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rcs[i], 0);
    free_events(ev, n);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    sfx_close(*state);
    free(*state);
    return 0;
}

/* Assert that the query @p text returns the hits @p want (ids in rank order). */
static void expect(struct sfx *f, const char *text, const char *want)
{
    char ids[IDS];
    json_t *res = sfx_q(f, text, ids, sizeof(ids));
    if (strcmp(ids, want) != 0)
        print_message("query \"%s\": got [%s], want [%s]\n", text, ids, want);
    assert_string_equal(ids, want);
    json_decref(res);
}

/* The same, ignoring rank: both sorted id lists compared. */
static void expect_set(struct sfx *f, const char *text, const char *want_sorted)
{
    char ids[IDS], sorted[IDS] = "";
    long v[64];
    size_t n = 0, len = 0;
    json_t *res = sfx_q(f, text, ids, sizeof(ids));
    for (char *p = ids; *p; p++)
        if (p == ids || p[-1] == ',')
            v[n++] = strtol(p, NULL, 10);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            long t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(sorted + len, sizeof(sorted) - len, "%s%ld", i ? "," : "", v[i]);
    if (strcmp(sorted, want_sorted) != 0)
        print_message("query \"%s\": got {%s}, want {%s}\n", text, sorted, want_sorted);
    assert_string_equal(sorted, want_sorted);
    json_decref(res);
}

static const json_t *hit(const json_t *res, size_t i)
{
    return json_array_get(json_object_get(res, "hits"), i);
}

/* ------------------------------------------------------------------ query language */

static void test_and(void **state)
{
    struct sfx *f = *state;
    expect_set(f, "garlic", "102,107");
    expect(f, "garlic shrimp ", "102");
    expect(f, "garlic chicken ", "107");
    expect(f, "shrimp chicken ", "");
    expect(f, "zzzzunknown", "");
}

static void test_phrase(void **state)
{
    struct sfx *f = *state;
    /* "chocolate chips" is consecutive in an ingredient and a step of 103 */
    expect(f, "\"chocolate chips\"", "103");
    expect(f, "\"chips chocolate\"", "");
    /* 102 has garlic and shrimp, never adjacent ("Add garlic and shrimp") */
    expect(f, "\"garlic shrimp\"", "");
    expect(f, "\"garlic butter\"", "102");
    /* a phrase never spans two items: "butter" ends one ingredient, "lemon" starts one */
    expect(f, "\"butter lemon\"", "");
    /* with another word */
    expect(f, "cookies \"chocolate chips\"", "103");
}

static void test_exclude(void **state)
{
    struct sfx *f = *state;
    expect(f, "garlic -shrimp", "107");
    expect_set(f, "chicken -\"lemon chicken\"", "106");
    expect(f, "-garlic", ""); /* exclusions only: nothing to start from */
}

static void test_prefix(void **state)
{
    struct sfx *f = *state;
    expect(f, "choc", "103");
    expect_set(f, "chick", "106,107");
    /* only the open last word is a prefix */
    expect(f, "chick ", "");
    expect(f, "cookies choc", "103");
    expect(f, "choc cookies", ""); /* "choc" is not the last word */
    expect(f, "\"choc\"", "");
}

static void test_typos(void **state)
{
    struct sfx *f = *state;
    char ids[IDS];
    /* one typo (>= 5 code points) */
    json_t *res = sfx_q(f, "garlik ", ids, sizeof(ids));
    assert_true(strcmp(ids, "102,107") == 0 || strcmp(ids, "107,102") == 0);
    assert_int_equal(json_integer_value(json_object_get(hit(res, 0), "typos")), 1);
    json_decref(res);
    expect(f, "choclate ", "103");
    /* two typos (>= 9 code points): vegitabels -> vegetables */
    res = sfx_q(f, "vegitabels ", ids, sizeof(ids));
    assert_string_equal(ids, "106");
    assert_int_equal(json_integer_value(json_object_get(hit(res, 0), "typos")), 2);
    json_decref(res);
    /* short words get none: "soop" is not "soup" */
    expect(f, "soop ", "");
    /* a typo hit ranks below an exact one: batter (108) exact, butter with 1 typo */
    res = sfx_q(f, "batter ", ids, sizeof(ids));
    assert_true(strncmp(ids, "108,", 4) == 0);
    assert_int_equal(json_integer_value(json_object_get(hit(res, 0), "typos")), 0);
    size_t n = json_array_size(json_object_get(res, "hits"));
    assert_true(n >= 3);
    for (size_t i = 1; i < n; i++)
        assert_int_equal(json_integer_value(json_object_get(hit(res, i), "typos")), 1);
    json_decref(res);
}

static void test_stop_words(void **state)
{
    struct sfx *f = *state;
    char ids[IDS];
    /* a stop word alone still finds recipes */
    json_t *res = sfx_q(f, "the ", ids, sizeof(ids));
    assert_true(json_integer_value(json_object_get(res, "total_hits")) >= 5);
    json_decref(res);
    res = sfx_q(f, "with the ", ids, sizeof(ids));
    assert_true(json_integer_value(json_object_get(res, "total_hits")) >= 1);
    json_decref(res);
    /* with a content word it is optional */
    expect_set(f, "the garlic ", "102,107");
    expect(f, "noodles with ", "106");
    /* but required inside a phrase */
    expect(f, "\"with lemon\"", "107");
}

static void test_folding_stemming(void **state)
{
    struct sfx *f = *state;
    expect(f, "creme ", "101");
    expect(f, "brulee", "101");
    expect(f, "CRÈME BRÛLÉE", "101");
    expect_set(f, "cookie ", "103");
    /* German stemming: "Kuchens" is not in 104 but stems as "Kuchen" does */
    struct proj_search_query q = {
        .text = "Kuchens ", .text_len = 8, .language = "de", .limit = 10, .page = 1};
    char ids[IDS];
    int rc;
    json_t *res = sfx_search(f, &q, &rc);
    assert_int_equal(rc, 0);
    sfx_hit_ids(res, ids, sizeof(ids));
    assert_string_equal(ids, "104");
    assert_string_equal(json_string_value(json_object_get(hit(res, 0), "language")), "de");
    json_decref(res);
    q.language = "en";
    res = sfx_search(f, &q, &rc);
    sfx_hit_ids(res, ids, sizeof(ids));
    assert_string_equal(ids, "");
    json_decref(res);
    expect(f, "äpfel schneiden", "104");
}

static void test_cjk(void **state)
{
    struct sfx *f = *state;
    expect(f, "番茄 ", "105");
    expect(f, "炒蛋 ", "105");
    expect(f, "鸡蛋 ", "105");
    expect(f, "番茄炒蛋 ", "105");
    expect(f, "牛肉 ", "");
}

static void test_filters(void **state)
{
    struct sfx *f = *state;
    const char *dessert[] = {"DESSERT"}, *two[] = {"Dessert", "french"};
    struct proj_search_query q = {
        .text = "sugar", .text_len = 5, .tags = dessert, .n_tags = 1, .limit = 10, .page = 1};
    char ids[IDS];
    int rc;
    json_t *res = sfx_search(f, &q, &rc);
    sfx_hit_ids(res, ids, sizeof(ids));
    assert_true(strcmp(ids, "101,103") == 0 || strcmp(ids, "103,101") == 0);
    json_decref(res);
    q.text = "cream";
    q.text_len = 5;
    q.tags = two;
    q.n_tags = 2;
    res = sfx_search(f, &q, &rc);
    sfx_hit_ids(res, ids, sizeof(ids));
    assert_string_equal(ids, "101");
    json_decref(res);
    /* author */
    struct proj_search_query qa = {
        .text = "garlic", .text_len = 6, .author_id = 2, .limit = 10, .page = 1};
    res = sfx_search(f, &qa, &rc);
    sfx_hit_ids(res, ids, sizeof(ids));
    assert_true(strcmp(ids, "102,107") == 0 || strcmp(ids, "107,102") == 0);
    json_decref(res);
    qa.author_id = 1;
    res = sfx_search(f, &qa, &rc);
    sfx_hit_ids(res, ids, sizeof(ids));
    assert_string_equal(ids, "");
    json_decref(res);
    /* language */
    struct proj_search_query ql = {
        .text = "butter", .text_len = 6, .language = "de-AT", .limit = 10, .page = 1};
    res = sfx_search(f, &ql, &rc);
    sfx_hit_ids(res, ids, sizeof(ids));
    assert_string_equal(ids, "104");
    json_decref(res);
    ql.language = "zh";
    ql.text = "番茄";
    ql.text_len = strlen("番茄");
    res = sfx_search(f, &ql, &rc);
    sfx_hit_ids(res, ids, sizeof(ids));
    assert_string_equal(ids, "105");
    json_decref(res);
    /* exclusions and a filter: the filter's recipes minus the excluded */
    struct proj_search_query qx = {
        .text = "-french", .text_len = 7, .tags = dessert, .n_tags = 1, .limit = 10, .page = 1};
    res = sfx_search(f, &qx, &rc);
    sfx_hit_ids(res, ids, sizeof(ids));
    assert_string_equal(ids, "103,104");
    json_decref(res);
}

static void test_facets(void **state)
{
    struct sfx *f = *state;
    char ids[IDS];
    json_t *res = sfx_q(f, "sugar", ids, sizeof(ids));
    json_t *tags = json_object_get(json_object_get(res, "facets"), "tags");
    char *s = json_dumps(tags, JSON_COMPACT);
    assert_string_equal(s, "[{\"tag\":\"dessert\",\"count\":2},{\"tag\":\"baking\",\"count\":1},"
                           "{\"tag\":\"french\",\"count\":1}]");
    free(s);
    json_decref(res);
    res = sfx_q(f, "easy", ids, sizeof(ids));
    tags = json_object_get(json_object_get(res, "facets"), "tags");
    s = json_dumps(tags, JSON_COMPACT);
    assert_string_equal(s, "[{\"tag\":\"quick & easy\",\"count\":2},{\"tag\":\"seafood\","
                           "\"count\":1}]");
    free(s);
    json_decref(res);
}

static void test_highlight(void **state)
{
    struct sfx *f = *state;
    char ids[IDS];
    json_t *res = sfx_q(f, "creme", ids, sizeof(ids));
    json_t *hl = json_object_get(hit(res, 0), "highlight");
    const char *title = json_string_value(json_object_get(hit(res, 0), "title"));
    json_t *span = json_array_get(json_object_get(hl, "title"), 0);
    assert_int_equal(json_integer_value(json_array_get(span, 0)), 0);
    assert_int_equal(json_integer_value(json_array_get(span, 1)), 6); /* "Crème" */
    assert_memory_equal(title, "Crème", 6);
    json_decref(res);

    res = sfx_q(f, "garlic shrimp", ids, sizeof(ids));
    hl = json_object_get(hit(res, 0), "highlight");
    title = json_string_value(json_object_get(hit(res, 0), "title"));
    json_t *spans = json_object_get(hl, "title");
    assert_int_equal(json_array_size(spans), 2);
    assert_memory_equal(title + json_integer_value(json_array_get(json_array_get(spans, 1), 0)),
                        "Shrimp", 6);
    json_t *snip = json_object_get(hl, "snippet");
    const char *text = json_string_value(json_object_get(snip, "text"));
    size_t i;
    json_t *sp;
    assert_true(json_array_size(json_object_get(snip, "spans")) >= 2);
    json_array_foreach(json_object_get(snip, "spans"), i, sp) {
        json_int_t at = json_integer_value(json_array_get(sp, 0));
        json_int_t len = json_integer_value(json_array_get(sp, 1));
        assert_true(at >= 0 && (size_t)(at + len) <= strlen(text));
        assert_true(strncasecmp(text + at, "garlic", (size_t)len) == 0 ||
                    strncasecmp(text + at, "shrimp", (size_t)len) == 0);
    }
    json_decref(res);
}

static void test_snippet_window(void **state)
{
    struct sfx *f = *state;
    struct es_event ev;
    char step[1200] = "", ids[IDS];
    size_t len = 0;
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(step + len, sizeof(step) - len, "stir gently %d times. ", i);
    len += (size_t)snprintf(step + len, sizeof(step) - len, "Add the saffron now. ");
    for (int i = 0; i < 10; i++)
        len += (size_t)snprintf(step + len, sizeof(step) - len, "wait %d minutes. ", i);
    sfx_recipe(&ev, 150, 1, "en", "Long risotto", "", J("[s]", "rice"), J("[s]", step), J("[]"));
    assert_int_equal(sfx_batch(f, &ev, 1, NULL), 0);
    es_event_release(&ev);
    json_t *res = sfx_q(f, "saffron", ids, sizeof(ids));
    assert_string_equal(ids, "150");
    json_t *snip = json_object_get(json_object_get(hit(res, 0), "highlight"), "snippet");
    const char *text = json_string_value(json_object_get(snip, "text"));
    assert_string_equal(json_string_value(json_object_get(snip, "field")), "steps");
    assert_true(strlen(text) <= 160 + 6);
    assert_memory_equal(text, "\xE2\x80\xA6", 3);
    assert_memory_equal(text + strlen(text) - 3, "\xE2\x80\xA6", 3);
    json_t *sp = json_array_get(json_object_get(snip, "spans"), 0);
    assert_memory_equal(text + json_integer_value(json_array_get(sp, 0)), "saffron", 7);
    json_decref(res);
}

/* [start, len] of span @p i of @p spans. */
static void span_at(json_t *spans, size_t i, json_int_t *start, json_int_t *len)
{
    json_t *sp = json_array_get(spans, i);
    assert_non_null(sp);
    *start = json_integer_value(json_array_get(sp, 0));
    *len = json_integer_value(json_array_get(sp, 1));
}

/*
 * Matching tokens are told by the forward record's positions: a token too long to index
 * still takes a position, and a stemmed form matches ("Roasted" for "roast").
 */
static void test_highlight_positions(void **state)
{
    struct sfx *f = *state;
    struct es_event ev;
    char title[160], ids[IDS], long_word[80];
    json_int_t at, len;
    memset(long_word, 'x', 70);
    long_word[70] = '\0';
    snprintf(title, sizeof(title), "Roasted %s Pumpkin, pumpkin soup", long_word);
    sfx_recipe(&ev, 160, 1, "en", title, "", J("[s]", "1 small pumpkin"), J("[s]", "Roast it."),
               J("[]"));
    assert_int_equal(sfx_batch(f, &ev, 1, NULL), 0);
    es_event_release(&ev);
    json_t *res = sfx_q(f, "pumpkin roast", ids, sizeof(ids));
    assert_string_equal(ids, "160");
    json_t *hl = json_object_get(hit(res, 0), "highlight");
    json_t *spans = json_object_get(hl, "title");
    assert_int_equal(json_array_size(spans), 3);
    span_at(spans, 0, &at, &len);
    assert_true(at == 0 && len == 7); /* Roasted */
    span_at(spans, 1, &at, &len);
    assert_true(at == 8 + 70 + 1 && len == 7); /* Pumpkin, after the long word */
    span_at(spans, 2, &at, &len);
    assert_true(at == 8 + 70 + 1 + 9 && len == 7); /* pumpkin */
    json_t *snip = json_object_get(hl, "snippet");
    assert_string_equal(json_string_value(json_object_get(snip, "text")), "1 small pumpkin");
    span_at(json_object_get(snip, "spans"), 0, &at, &len);
    assert_true(at == 8 && len == 7);
    json_decref(res);
    sfx_event(&ev, "RecipeDeleted", "recipe", 160, 2, json_object()); /* the view as it was */
    assert_int_equal(sfx_batch(f, &ev, 1, NULL), 0);
    es_event_release(&ev);
}

/* ------------------------------------------------------------------ changes */

static void test_update_delete(void **state)
{
    struct sfx *f = *state;
    struct es_event ev[4];
    int rcs[4];
    char ids[IDS];
    size_t before = proj_search_pending(f->w);

    sfx_event(&ev[0], "RecipeUpdated", "recipe", 107, 2,
              J("{s:s,s:[s,s,s],s:[s]}", "title", "Lemon Tofu", "ingredients", "tofu", "lemon",
                "garlic", "steps", "Roast the tofu with lemon and garlic."));
    sfx_event(&ev[1], "RecipeDeleted", "recipe", 103, 2, json_object());
    sfx_event(&ev[2], "RecipeUpdated", "recipe", 999, 2, J("{s:s}", "title", "Ghost"));
    sfx_event(&ev[3], "ProfileUpdated", "user", 999, 2, J("{s:s}", "full_name", "Nobody"));
    assert_int_equal(sfx_batch(f, ev, 4, rcs), 0);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], 0);
    assert_int_equal(rcs[2], SP_ENOTFOUND);
    assert_int_equal(rcs[3], SP_ENOTFOUND);
    assert_int_equal(before, 0);
    free_events(ev, 4);

    expect(f, "chicken ", "106"); /* 107 is tofu now */
    expect(f, "tofu", "107");
    expect_set(f, "garlic", "102,107");
    expect(f, "chocolate", "");
    expect(f, "cookies ", "");
    /* 103's tags are gone from the counts */
    json_t *res = sfx_q(f, "sugar", ids, sizeof(ids));
    assert_string_equal(ids, "101");
    char *s = json_dumps(json_object_get(json_object_get(res, "facets"), "tags"), JSON_COMPACT);
    assert_string_equal(s, "[{\"tag\":\"dessert\",\"count\":1},{\"tag\":\"french\",\"count\":1}]");
    free(s);
    json_decref(res);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(proj_search_tags(f->r, txn, "ba", 2, 10, &res, NULL), 0);
    s = json_dumps(res, JSON_COMPACT);
    assert_string_equal(s, "{\"tags\":[]}");
    free(s);
    json_decref(res);
    assert_int_equal(proj_search_tags(f->r, txn, "Des", 3, 10, &res, NULL), 0);
    s = json_dumps(res, JSON_COMPACT);
    assert_string_equal(s, "{\"tags\":[{\"tag\":\"dessert\",\"count\":2}]}");
    free(s);
    json_decref(res);
    struct proj_search_stats st;
    assert_int_equal(proj_search_stats(f->r, txn, &st, NULL), 0);
    assert_int_equal(st.recipes, 8); /* 8 + 150 (snippet test) - 103 */
    assert_int_equal(st.users, 4);
    mdb_txn_abort(txn);
}

/* A failed fold leaves the pending changes as they were. */
static void test_fold_error_keeps_pending(void **state)
{
    struct sfx *f = *state;
    struct es_event ev[2];
    MDB_txn *txn;
    struct sp_errbuf eb;
    struct sp_buf a, b;

    sfx_recipe(&ev[0], 120, 1, "en", "Plain rice", "", J("[s]", "rice"), J("[s]", "boil"), J("[]"));
    sfx_event(&ev[1], "RecipeDeleted", "recipe", 121, 2, json_object());
    assert_int_equal(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
    assert_int_equal(proj_search_fold(f->w, txn, &ev[0], &eb), 0);
    assert_int_equal(proj_search_pending(f->w), 1);
    assert_int_equal(proj_search_fold(f->w, txn, &ev[1], &eb), SP_ENOTFOUND);
    assert_int_equal(proj_search_pending(f->w), 1);
    proj_search_discard(f->w);
    assert_int_equal(proj_search_pending(f->w), 0);
    mdb_txn_abort(txn);
    /* nothing was written */
    sp_buf_init(&a, 0);
    sp_buf_init(&b, 0);
    sfx_dump(f, &a);
    assert_int_equal(sfx_batch(f, NULL, 0, NULL), 0);
    sfx_dump(f, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    sp_buf_release(&a);
    sp_buf_release(&b);
    free_events(ev, 2);
}

/* ------------------------------------------------------------------ users and tags */

static json_t *users(struct sfx *f, const char *text, char *ids, size_t size)
{
    MDB_txn *txn;
    json_t *res = NULL;
    assert_int_equal(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
    if (f->r == NULL)
        assert_int_equal(proj_search_reader_open(txn, &f->r, NULL), 0);
    assert_int_equal(proj_search_users(f->r, txn, text, strlen(text), 10, &res, NULL), 0);
    mdb_txn_abort(txn);
    sfx_hit_ids(res, ids, size);
    return res;
}

static void test_users(void **state)
{
    struct sfx *f = *state;
    char ids[IDS];
    json_t *res = users(f, "jul", ids, sizeof(ids));
    assert_string_equal(ids, "1");
    assert_string_equal(json_string_value(json_object_get(hit(res, 0), "full_name")),
                        "Julia Child");
    json_decref(res);
    json_decref(users(f, "ramsay", ids, sizeof(ids)));
    assert_string_equal(ids, "2");
    json_decref(users(f, "gordn ", ids, sizeof(ids))); /* one typo */
    assert_string_equal(ids, "2");
    json_decref(users(f, "julia chi", ids, sizeof(ids)));
    assert_string_equal(ids, "1");
    /* exact word before prefix: chen.wei has "chen", chenoa only begins with it */
    res = users(f, "chen", ids, sizeof(ids));
    assert_string_equal(ids, "3,4");
    assert_true(json_is_null(json_object_get(hit(res, 0), "full_name")));
    json_decref(res);
    json_decref(users(f, "julia -child", ids, sizeof(ids)));
    assert_string_equal(ids, "");
}

static void test_tags_and_authors(void **state)
{
    struct sfx *f = *state;
    MDB_txn *txn;
    json_t *res;
    char ids[IDS];
    assert_int_equal(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
    if (f->r == NULL)
        assert_int_equal(proj_search_reader_open(txn, &f->r, NULL), 0);
    assert_int_equal(proj_search_tags(f->r, txn, "", 0, 3, &res, NULL), 0);
    char *s = json_dumps(res, JSON_COMPACT);
    assert_string_equal(s, "{\"tags\":[{\"tag\":\"dessert\",\"count\":3},{\"tag\":\"quick & "
                           "easy\",\"count\":2},{\"tag\":\"baking\",\"count\":1}]}");
    free(s);
    json_decref(res);
    assert_int_equal(proj_search_tags(f->r, txn, "QUICK ", 6, 10, &res, NULL), 0);
    s = json_dumps(res, JSON_COMPACT);
    assert_string_equal(s, "{\"tags\":[{\"tag\":\"quick & easy\",\"count\":2}]}");
    free(s);
    json_decref(res);
    assert_int_equal(proj_search_tags(f->r, txn, "x", 1, 0, &res, NULL), SP_EINVAL);
    mdb_txn_abort(txn);
    /* author names are looked up at query time */
    res = sfx_q(f, "shrimp", ids, sizeof(ids));
    json_t *author = json_object_get(hit(res, 0), "author");
    assert_string_equal(json_string_value(json_object_get(author, "id")), "2");
    assert_string_equal(json_string_value(json_object_get(author, "username")), "gordon");
    json_decref(res);
}

/* ------------------------------------------------------------------ many recipes */

static void generated(struct es_event *ev, size_t i)
{
    char title[64], tag[16];
    snprintf(title, sizeof(title), "Generated stew %zu", i);
    snprintf(tag, sizeof(tag), "tag%zu", i % 7);
    sfx_recipe(ev, 1000 + i, 1 + i % 3, "en", title, "", J("[s]", "water"),
               J("[s]", i % 2 ? "stir the pot" : "stir well"), J("[s,s]", tag, "all"));
}

static void test_paging_and_facets_many(void **state)
{
    struct sfx *f = *state;
    struct es_event ev[300];
    char ids1[IDS * 4], ids2[IDS * 4], both[IDS * 4];
    int rc;

    for (size_t i = 0; i < 300; i++)
        generated(&ev[i], i);
    assert_int_equal(sfx_batch(f, ev, 300, NULL), 0);
    free_events(ev, 300);
    struct proj_search_query q = {.text = "stew", .text_len = 4, .limit = 10, .page = 1};
    json_t *p1 = sfx_search(f, &q, &rc);
    q.page = 2;
    json_t *p2 = sfx_search(f, &q, &rc);
    q.page = 1;
    q.limit = 20;
    json_t *p12 = sfx_search(f, &q, &rc);
    sfx_hit_ids(p1, ids1, sizeof(ids1));
    sfx_hit_ids(p2, ids2, sizeof(ids2));
    sfx_hit_ids(p12, both, sizeof(both));
    char joined[IDS * 8];
    snprintf(joined, sizeof(joined), "%s,%s", ids1, ids2);
    assert_string_equal(joined, both);
    assert_int_equal(json_integer_value(json_object_get(p1, "total_hits")), 300);
    assert_true(json_is_true(json_object_get(p1, "has_more")));
    /* facets over all 300 hits (the tag-list path) */
    json_t *tags = json_object_get(json_object_get(p1, "facets"), "tags");
    assert_int_equal(json_array_size(tags), 8);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tags, 0), "tag")), "all");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(tags, 0), "count")), 300);
    for (size_t k = 0; k < 7; k++) { /* tag0..tag5: 43 each, tag6: 42 */
        json_t *t = json_array_get(tags, 1 + k);
        char want[8];
        snprintf(want, sizeof(want), "tag%zu", k);
        assert_string_equal(json_string_value(json_object_get(t, "tag")), want);
        assert_int_equal(json_integer_value(json_object_get(t, "count")), k < 6 ? 43 : 42);
    }
    json_decref(p1);
    json_decref(p2);
    json_decref(p12);
    /* the last page */
    q.limit = 100;
    q.page = 3;
    p1 = sfx_search(f, &q, &rc);
    assert_int_equal(json_array_size(json_object_get(p1, "hits")), 100);
    assert_true(json_is_false(json_object_get(p1, "has_more")));
    json_decref(p1);
    q.page = 4;
    p1 = sfx_search(f, &q, &rc);
    assert_int_equal(json_array_size(json_object_get(p1, "hits")), 0);
    json_decref(p1);
    /* phrase over many: "stir the" in odd ones only */
    q.text = "\"stir the\"";
    q.text_len = strlen(q.text);
    q.page = 1;
    p1 = sfx_search(f, &q, &rc);
    assert_int_equal(json_integer_value(json_object_get(p1, "total_hits")), 150);
    json_decref(p1);
}

/* ------------------------------------------------------------------ facets, many tags */

#define BULK      1200
#define BULK_TAGS 10

/* Tag @p j of bulk recipe @p i: 10 per recipe, so recipes straddle doc_tags pages. */
static void bulk_tag(size_t i, size_t j, char *out, size_t size)
{
    static const unsigned mod[4] = {3, 5, 7, 11};
    if (j == 0)
        snprintf(out, size, "all");
    else if (j <= 4)
        snprintf(out, size, "m%u-%zu", mod[j - 1], i % mod[j - 1]);
    else
        snprintf(out, size, "x%zu", j - 5);
}

struct want_tag {
    char tag[16];
    long count;
};

static int want_cmp(const void *pa, const void *pb)
{
    const struct want_tag *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return strcmp(a->tag, b->tag);
}

/* The facets JSON expected for the bulk recipes @p hits (n of them), computed directly. */
static char *bulk_facets(const size_t *hits, size_t n)
{
    struct want_tag w[64];
    size_t nw = 0;
    char tag[16];
    for (size_t h = 0; h < n; h++) {
        for (size_t j = 0; j < BULK_TAGS; j++) {
            size_t k = 0;
            bulk_tag(hits[h], j, tag, sizeof(tag));
            while (k < nw && strcmp(w[k].tag, tag) != 0)
                k++;
            if (k == nw) {
                snprintf(w[nw].tag, sizeof(w[nw].tag), "%s", tag);
                w[nw++].count = 0;
            }
            w[k].count++;
        }
    }
    qsort(w, nw, sizeof(w[0]), want_cmp);
    json_t *arr = json_array();
    for (size_t k = 0; k < nw && k < PROJ_SEARCH_FACET_TAGS; k++)
        json_array_append_new(arr,
                              json_pack("{s:s,s:i}", "tag", w[k].tag, "count", (int)w[k].count));
    char *out = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return out;
}

static void check_bulk_facets(struct sfx *f, const char *text, const size_t *hits, size_t n)
{
    char ids[IDS * 16];
    struct proj_search_query q = {.text = text, .text_len = strlen(text), .limit = 5, .page = 1};
    int rc;
    json_t *res = sfx_search(f, &q, &rc);
    assert_int_equal(rc, 0);
    sfx_hit_ids(res, ids, sizeof(ids));
    assert_int_equal(json_integer_value(json_object_get(res, "total_hits")), n);
    char *got = json_dumps(json_object_get(json_object_get(res, "facets"), "tags"), JSON_COMPACT);
    char *want = bulk_facets(hits, n);
    assert_string_equal(got, want);
    free(got);
    free(want);
    json_decref(res);
}

/* RecipeCreated of the BULK recipes 5000.. into @p ev. */
static void bulk_recipes(struct es_event *ev)
{
    for (size_t i = 0; i < BULK; i++) {
        char title[32], marker[32], tag[16];
        json_t *tags = json_array();
        for (size_t j = 0; j < BULK_TAGS; j++) {
            bulk_tag(i, j, tag, sizeof(tag));
            json_array_append_new(tags, json_string(tag));
        }
        snprintf(title, sizeof(title), "bulk item %zu", i);
        snprintf(marker, sizeof(marker), "marker%zu", i % 400);
        sfx_recipe(&ev[i], 5000 + i, 9, "en", title, "", J("[s]", marker), J("[s]", "mix"), tags);
    }
}

static void test_facets_bulk(void **state)
{
    struct sfx f;
    struct es_event *ev = calloc(BULK, sizeof(*ev));
    size_t all[BULK], few[3] = {7, 407, 807};
    (void)state;
    sfx_open(&f, 0);
    bulk_recipes(ev);
    for (size_t i = 0; i < BULK; i++)
        all[i] = i;
    assert_int_equal(sfx_batch(&f, ev, BULK, NULL), 0);
    free_events(ev, BULK);
    free(ev);
    check_bulk_facets(&f, "\"marker7\"", few, 3); /* few hits: seeks to their pages */
    check_bulk_facets(&f, "bulk ", all, BULK);    /* every recipe: pages stepped through */
    sfx_close(&f);
}

/* ------------------------------------------------------------------ the reader's copies */

/* Queries whose answers (facets, typo and prefix walks) the reader's copies could change. */
static const char *const copy_queries[] = {
    "bulk ", "bulk ite", "marker7", "markr12", "m", "\"mix\" bulk", "item -marker3",
};
#define N_COPY_QUERIES (sizeof(copy_queries) / sizeof(copy_queries[0]))

/* The answer to copy query @p i by @p r in @p txn, as compact JSON (owned). */
static char *copy_answer(struct proj_search_reader *r, MDB_txn *txn, size_t i)
{
    struct proj_search_query q = {
        .text = copy_queries[i], .text_len = strlen(copy_queries[i]), .limit = 5, .page = 1};
    json_t *res = NULL;
    assert_int_equal(proj_search_recipes(r, txn, &q, &res, NULL), 0);
    char *s = json_dumps(res, JSON_COMPACT);
    json_decref(res);
    return s;
}

/* Every copy query answered by @p r (NULL: a new reader, which has no copies yet). */
static void copy_answers(struct sfx *f, struct proj_search_reader *r, unsigned flags, char **out)
{
    struct proj_search_reader *fresh = NULL;
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(f->env, NULL, flags, &txn), 0);
    if (r == NULL)
        assert_int_equal(proj_search_reader_open(txn, &fresh, NULL), 0);
    for (size_t i = 0; i < N_COPY_QUERIES; i++)
        out[i] = copy_answer(r != NULL ? r : fresh, txn, i);
    mdb_txn_abort(txn);
    proj_search_reader_free(fresh);
}

/* The answers of @p r are those of a new reader, @p rounds times in a row. */
static void expect_fresh_answers(struct sfx *f, struct proj_search_reader *r, int rounds)
{
    char *want[N_COPY_QUERIES], *got[N_COPY_QUERIES];
    copy_answers(f, NULL, MDB_RDONLY, want);
    for (int k = 0; k < rounds; k++) {
        copy_answers(f, r, k % 2 ? 0 : MDB_RDONLY, got); /* write transactions in between */
        for (size_t i = 0; i < N_COPY_QUERIES; i++) {
            assert_string_equal(got[i], want[i]);
            free(got[i]);
        }
    }
    for (size_t i = 0; i < N_COPY_QUERIES; i++)
        free(want[i]);
}

/*
 * A reader answering many queries on one snapshot copies the lexicon and the tag column
 * into memory (after as much work as a copy costs: about 12 rounds here); the answers are
 * those without copies, also after a write makes new copies due.
 */
static void test_reader_copies(void **state)
{
    struct sfx f;
    struct es_event *ev = calloc(BULK, sizeof(*ev));
    struct proj_search_reader *r;
    MDB_txn *txn;
    (void)state;
    sfx_open(&f, 0);
    bulk_recipes(ev);
    assert_int_equal(sfx_batch(&f, ev, BULK, NULL), 0);
    free_events(ev, BULK);
    assert_int_equal(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(proj_search_reader_open(txn, &r, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    expect_fresh_answers(&f, r, 40);
    /* new tags and words: the copies of the old snapshot must not answer */
    sfx_event(&ev[0], "RecipeUpdated", "recipe", 5007, 2,
              J("{s:s,s:[s,s]}", "title", "bulk item marvel", "tags", "fresh", "m3-1"));
    sfx_recipe(&ev[1], 9001, 9, "en", "bulk item 9001", "", J("[s]", "marker7"), J("[s]", "mix"),
               J("[s,s]", "all", "fresh"));
    assert_int_equal(sfx_batch(&f, ev, 2, NULL), 0);
    free_events(ev, 2);
    expect_fresh_answers(&f, r, 40);
    proj_search_reader_free(r);
    free(ev);
    sfx_close(&f);
}

/* ------------------------------------------------------------------ determinism */

static void
dump_of(const size_t *order, size_t n, const size_t *cuts, size_t n_cuts, struct sp_buf *out)
{
    struct sfx f;
    struct es_event all[MAX_EVENTS], ev[MAX_EVENTS];
    size_t m = corpus(all), from = 0;

    assert_int_equal(m + 4, n);
    sfx_event(&all[m++], "RecipeUpdated", "recipe", 107, 2,
              J("{s:s,s:[s]}", "title", "Lemon Tofu", "tags", "Vegan"));
    sfx_event(&all[m++], "RecipeDeleted", "recipe", 103, 2, json_object());
    sfx_event(&all[m++], "RecipeUpdated", "recipe", 104, 2, J("{s:s}", "language", "fr"));
    sfx_event(&all[m++], "ProfileUpdated", "user", 2, 3, J("{s:n}", "full_name"));
    sfx_open(&f, 0);
    for (size_t i = 0; i < n; i++)
        ev[i] = all[order[i]];
    for (size_t c = 0; c <= n_cuts; c++) {
        size_t to = c < n_cuts ? cuts[c] : n;
        int rcs[MAX_EVENTS];
        assert_int_equal(sfx_batch(&f, ev + from, to - from, rcs), 0);
        for (size_t i = 0; i < to - from; i++)
            assert_int_equal(rcs[i], 0);
        from = to;
    }
    sfx_dump(&f, out);
    sfx_close(&f);
    free_events(all, m);
}

static void test_determinism(void **state)
{
    /* corpus: 0..7 recipes, 8..13 users; 14..17 the later events of streams 107, 103,
     * 104 and user 2, each after its stream's earlier events */
    size_t a[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
    size_t b[] = {13, 12, 7, 10, 11, 17, 6, 14, 5, 4, 3, 16, 2, 15, 1, 8, 9, 0};
    size_t cuts_b[] = {2, 5, 9, 11, 16}, cuts_c[] = {1, 8};
    struct sp_buf da, db, dc;
    (void)state;
    sp_buf_init(&da, 0);
    sp_buf_init(&db, 0);
    sp_buf_init(&dc, 0);
    dump_of(a, 18, NULL, 0, &da);
    dump_of(b, 18, cuts_b, 5, &db);
    dump_of(a, 18, cuts_c, 2, &dc);
    assert_true(da.len > 1000);
    assert_int_equal(da.len, db.len);
    assert_memory_equal(da.data, db.data, da.len);
    assert_int_equal(da.len, dc.len);
    assert_memory_equal(da.data, dc.data, da.len);
    sp_buf_release(&da);
    sp_buf_release(&db);
    sp_buf_release(&dc);
}

/* ------------------------------------------------------------------ bad queries */

static void bad(struct sfx *f, struct proj_search_query q, const char *field)
{
    struct sp_errbuf eb = {{0}, {0}};
    MDB_txn *txn;
    json_t *out = NULL;
    assert_int_equal(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
    if (f->r == NULL)
        assert_int_equal(proj_search_reader_open(txn, &f->r, NULL), 0);
    assert_int_equal(proj_search_recipes(f->r, txn, &q, &out, &eb), SP_EINVAL);
    assert_null(out);
    assert_string_equal(eb.field, field);
    mdb_txn_abort(txn);
}

static void test_bad_queries(void **state)
{
    struct sfx *f = *state;
    char longq[PROJ_SEARCH_MAX_QUERY_BYTES + 2], many[200] = "";
    const char *tags[PROJ_SEARCH_MAX_TAGS + 1] = {0};
    struct proj_search_query q = {.text = "soup", .text_len = 4, .limit = 10, .page = 1};

    bad(f, (struct proj_search_query){.text = "", .text_len = 0, .limit = 1, .page = 1}, "q");
    bad(f, (struct proj_search_query){.text = "   ", .text_len = 3, .limit = 1, .page = 1}, "q");
    memset(longq, 'a', sizeof(longq) - 1);
    longq[sizeof(longq) - 1] = '\0';
    bad(f,
        (struct proj_search_query){
            .text = longq, .text_len = sizeof(longq) - 1, .limit = 1, .page = 1},
        "q");
    for (int i = 0; i < PROJ_SEARCH_MAX_TERMS / 2 + 1; i++)
        snprintf(many + (size_t)4 * (size_t)i, sizeof(many) - (size_t)4 * (size_t)i, "a b ");
    bad(f,
        (struct proj_search_query){.text = many, .text_len = strlen(many), .limit = 1, .page = 1},
        "q");
    bad(f, (struct proj_search_query){.text = "so\xC3up", .text_len = 5, .limit = 1, .page = 1},
        "q");
    q.limit = 0;
    bad(f, q, "limit");
    q.limit = 101;
    bad(f, q, "limit");
    q.limit = 10;
    q.page = 0;
    bad(f, q, "page");
    q.page = 1;
    q.author_id = -1;
    bad(f, q, "author_id");
    q.author_id = 0;
    q.language = "english";
    bad(f, q, "language");
    q.language = NULL;
    q.tags = tags;
    q.n_tags = PROJ_SEARCH_MAX_TAGS + 1;
    for (size_t i = 0; i < q.n_tags; i++)
        tags[i] = "x";
    bad(f, q, "tags");
    q.n_tags = 1;
    tags[0] = "   ";
    bad(f, q, "tags");
    /* 32 words are fine; separators only give no hits */
    char ids[IDS];
    json_t *res = sfx_q(f, "!!! ???", ids, sizeof(ids));
    assert_string_equal(ids, "");
    json_decref(res);
}

/* proj_search_clear empties every database: the view equals a new one. */
static void test_clear(void **state)
{
    struct sfx f, empty;
    struct es_event ev[MAX_EVENTS];
    struct sp_buf a, b;
    MDB_txn *txn;
    size_t n;
    (void)state;
    sfx_open(&f, 0);
    sfx_open(&empty, 0);
    n = corpus(ev);
    assert_int_equal(sfx_batch(&f, ev, n, NULL), 0);
    free_events(ev, n);
    assert_int_equal(mdb_txn_begin(f.env, NULL, 0, &txn), 0);
    assert_int_equal(proj_search_clear(f.w, txn, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    sp_buf_init(&a, 0);
    sp_buf_init(&b, 0);
    sfx_dump(&f, &a);
    sfx_dump(&empty, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    sp_buf_release(&a);
    sp_buf_release(&b);
    sfx_close(&f);
    sfx_close(&empty);
}

/* ------------------------------------------------------------------ the map filling up */

static void test_map_full(void **state)
{
    struct sfx f;
    struct es_event ev[300];
    (void)state;
    sfx_open(&f, (size_t)64 * 1024);
    for (size_t i = 0; i < 300; i++)
        generated(&ev[i], i);
    MDB_txn *txn;
    struct sp_errbuf eb = {{0}, {0}};
    int rc = 0;
    assert_int_equal(mdb_txn_begin(f.env, NULL, 0, &txn), 0);
    for (size_t i = 0; i < 300; i++)
        assert_int_equal(proj_search_fold(f.w, txn, &ev[i], &eb), 0);
    rc = proj_search_flush(f.w, txn, &eb);
    assert_int_equal(rc, SP_EDB);
    assert_non_null(strstr(eb.msg, "MDB_MAP_FULL"));
    mdb_txn_abort(txn);
    proj_search_discard(f.w);
    free_events(ev, 300);
    sfx_close(&f);
}

int main(void)
{
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_bm25f_hand), cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_map_full),   cmocka_unit_test(test_facets_bulk),
        cmocka_unit_test(test_clear),      cmocka_unit_test(test_reader_copies),
    };
    const struct CMUnitTest view[] = {
        cmocka_unit_test(test_and),
        cmocka_unit_test(test_phrase),
        cmocka_unit_test(test_exclude),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_typos),
        cmocka_unit_test(test_stop_words),
        cmocka_unit_test(test_folding_stemming),
        cmocka_unit_test(test_cjk),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_facets),
        cmocka_unit_test(test_highlight),
        cmocka_unit_test(test_highlight_positions),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_tags_and_authors),
        cmocka_unit_test(test_bad_queries),
        cmocka_unit_test(test_snippet_window),
        cmocka_unit_test(test_fold_error_keeps_pending),
        cmocka_unit_test(test_update_delete),
        cmocka_unit_test(test_paging_and_facets_many),
    };
    int rc = cmocka_run_group_tests_name("search", unit, NULL, NULL);
    return rc + cmocka_run_group_tests_name("search_view", view, setup, teardown);
}
