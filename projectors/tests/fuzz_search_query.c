/*
 * libFuzzer target for the search view's query side (proj/search.h): proj_search_recipes,
 * proj_search_users and proj_search_tags run on a real view, built once per process in a
 * temporary LMDB environment with the writer as the runner drives it: a dozen hand-written
 * recipes (several languages and scripts, long fields for snippets) and five users, plus
 * BULK generated recipes whose lists span several LMDB pages (BULK 0 leaves the dozen).
 *
 * Input: byte 0 limit, byte 1 page, byte 2 language and tag count, byte 3 tags, author
 * filter and facets; the rest (at most QUERY_MAX_BYTES, past the 256-byte cap on purpose)
 * is the query text for all three calls, in a heap copy of its exact length so that a
 * read past it is an ASan report. Inputs longer than PARAM_BYTES + QUERY_MAX_BYTES add
 * nothing: run with -max_len=404, the seeds in tests/fuzz_search_query_seeds/ as a second,
 * read-only corpus directory after a scratch one (libFuzzer adds its finds to the first).
 *
 * Checks: no crash or sanitizer report; each call returns 0 or SP_EINVAL, SP_EINVAL for
 * every query the contract rejects (limit, page, empty, too long, invalid UTF-8) and no
 * output on error; a recipe answer has at most limit hits, exactly the page's share of
 * total_hits, has_more as the page implies, hits in rank order with distinct ids,
 * highlight spans inside the title / snippet text on code point boundaries, facets in
 * order with counts <= total_hits; the same query gives the same answer again after the
 * other calls used the reader; a query recipes accept is accepted by users; users and
 * tags answers have at most limit entries.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <lmdb.h>

#include "es/event.h"
#include "proj/search.h"
#include "sp/err.h"

#include "sp/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PARAM_BYTES     4
#define QUERY_MAX_BYTES 400

/* The view every input queries: built on the first call, kept for the process. */
static MDB_env *fz_env;
static struct proj_search_reader *fz_reader;

static _Noreturn void check_failed(const char *cond, int line)
{
    fprintf(stderr, "fuzz_search_query: invariant failed: %s (line %d)\n", cond, line);
    abort();
}

/* An invariant of the harness or of the answer (an expression, as assert). */
#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __LINE__))

/* ------------------------------------------------------------------ the view */

static void make_event(
    struct es_event *ev, const char *type, const char *category, int id, int version, json_t *data)
{
    char stream[64];

    CHECK(data != NULL);
    snprintf(stream, sizeof(stream), "%s-%d", category, id);
    es_event_init(ev);
    CHECK(es_event_make(ev, type, stream, version, NULL, NULL, NULL, data) == 0);
}

static void recipe(struct es_event *ev,
                   int id,
                   int author,
                   const char *lang,
                   const char *title,
                   const char *description,
                   json_t *ingredients,
                   json_t *steps,
                   json_t *tags)
{
    char rid[16], aid[16];
    json_t *d;

    snprintf(rid, sizeof(rid), "%d", id);
    snprintf(aid, sizeof(aid), "%d", author);
    d = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:[]}", "recipe_id", rid, "author_id", aid, "title",
                  title, "description", description, "ingredients", ingredients, "steps", steps,
                  "tags", tags, "image_media_ids");
    CHECK(d != NULL);
    if (lang != NULL)
        json_object_set_new(d, "language", json_string(lang));
    make_event(ev, "RecipeCreated", "recipe", id, 1, d);
}

static void user(struct es_event *ev, int id, const char *username, const char *full_name)
{
    char uid[16], email[32];

    snprintf(uid, sizeof(uid), "%d", id);
    snprintf(email, sizeof(email), "u%d@example.org", id);
    make_event(ev, "UserRegistered", "user", id, 1,
               json_pack("{s:s,s:s,s:s,s:s}", "user_id", uid, "username", username, "email", email,
                         "password_hash", "$argon2id$x"));
    if (full_name != NULL)
        make_event(ev + 1, "ProfileUpdated", "user", id, 2,
                   json_pack("{s:s,s:s}", "full_name", full_name, "bio", "cook"));
}

#define J(...) json_pack(__VA_ARGS__)

/* Recipes in several languages and scripts, short and long fields; users 1-5 (author 99
 * has no user record). @return the number of events. */
static size_t corpus(struct es_event *ev)
{
    size_t n = 0;

    recipe(&ev[n++], 101, 1, NULL, "Crème Brûlée",
           "A classic French custard dessert with caramelized sugar",
           J("[s,s,s,s]", "4 egg yolks", "2 cups heavy cream", "1/2 cup sugar", "1 vanilla bean"),
           J("[s,s]", "Heat the cream with the vanilla bean.",
             "Whisk the yolks and sugar, then bake in a water bath."),
           J("[s,s]", "Dessert", "French"));
    recipe(&ev[n++], 102, 2, "en", "Garlic Butter Shrimp",
           "Quick weeknight shrimp in garlic butter",
           J("[s,s,s]", "1 pound shrimp", "4 cloves garlic", "3 tablespoons butter"),
           J("[s,s]", "Melt the butter in a skillet.", "Add garlic and shrimp; cook until pink."),
           J("[s,s]", "Seafood", "Quick & Easy"));
    recipe(&ev[n++], 103, 1, "en", "Chocolate Chip Cookies", "",
           J("[s,s,s]", "2 cups flour", "1 cup butter", "1 cup chocolate chips"),
           J("[s,s]", "Cream the butter and sugar.", "Fold in the chocolate chips and bake."),
           J("[s,s]", "Dessert", "Baking"));
    recipe(&ev[n++], 104, 2, "de", "Apfelkuchen mit Streuseln", "Ein einfacher Kuchen mit Äpfeln",
           J("[s,s,s]", "500 g Äpfel", "200 g Mehl", "100 g Butter"),
           J("[s,s]", "Die Äpfel schälen und in Scheiben schneiden.", "Den Kuchen backen."),
           J("[s,s]", "Kuchen", "Dessert"));
    recipe(&ev[n++], 105, 3, "zh", "番茄炒蛋", "简单的家常菜", J("[s,s,s]", "番茄", "鸡蛋", "盐"),
           J("[s,s]", "番茄切块，鸡蛋打散。", "先炒鸡蛋，再炒番茄。"),
           J("[s,s]", "荤菜", "staple"));
    recipe(&ev[n++], 106, 3, "en", "Chicken Noodle Soup",
           "Comforting soup with chicken and noodles",
           J("[s,s,s]", "1 whole chicken", "egg noodles", "carrots and celery"),
           J("[s,s]",
             "Simmer the chicken in plenty of salted water for about an hour, skimming the foam "
             "from the surface now and then, until the meat falls from the bones; lift it out, "
             "shred it and return it to the pot with the noodles, carrots and celery.",
             "Add noodles and vegetables."),
           J("[s]", "Soup"));
    recipe(&ev[n++], 107, 2, "EN", "Lemon Chicken", "Bright and easy",
           J("[s,s,s]", "chicken breast", "lemon", "garlic"),
           J("[s]", "Roast the chicken with lemon and garlic."), J("[s]", "  Quick   &  EASY "));
    recipe(&ev[n++], 108, 99, "fr", "Crêpes Suzette ﬂambées", "Œufs, farine, beurre: ﬁn",
           J("[s,s]", "3 œufs", "250 g de farine"), J("[s]", "Flamber au Grand Marnier."),
           J("[s,s]", "Dessert", "Français"));
    recipe(&ev[n++], 109, 4, "en", "Stir-fry Vegetables",
           "A stir-fry of crisp vegetables: broccoli, peppers, snow peas, carrots and spring "
           "onions tossed in a very hot wok with garlic, ginger and soy sauce, then finished "
           "with sesame oil. Serve the stir-fry at once over rice or noodles, or wrap it in "
           "lettuce leaves for a lighter meal that is ready in twenty minutes.",
           J("[s,s,s]", "broccoli", "red pepper", "soy sauce"),
           J("[s]", "Stir-fry everything over high heat."), J("[s,s]", "Vegan", "Quick & Easy"));
    recipe(&ev[n++], 110, 1, "de", "Kartoffelsalat", "Schwäbischer Kartoffelsalat mit Brühe",
           J("[s,s]", "1 kg Kartoffeln", "Weißweinessig"), J("[s]", "Die Straße entlang gehen."),
           J("[s]", "Beilage"));
    recipe(&ev[n++], 111, 5, "ja", "親子丼", "鶏肉と卵のどんぶり", J("[s]", "鶏もも肉"),
           J("[s]", "玉ねぎを煮る。"), J("[]"));
    recipe(&ev[n++], 112, 2, "it", "🍕 Pizza Margherita", "Pizza napoletana",
           J("[s,s]", "farina 00", "mozzarella di bufala"), J("[s]", "Cuocere a 450 °C."),
           J("[s,s]", "Italian", "pizza"));
    user(&ev[n], 1, "julia_child", "Julia Child");
    n += 2;
    user(&ev[n], 2, "gordon", "Gordon Ramsay");
    n += 2;
    user(&ev[n++], 3, "chen.wei", NULL);
    user(&ev[n++], 4, "chenoa", NULL);
    user(&ev[n], 5, "zoe", "Zoë Ünal");
    n += 2;
    return n;
}

#define MAX_EVENTS 32
#define BULK       600

/* Made-up word of bulk recipe @p i: "k" and three letters, about 1200 distinct ones, so
 * that typo and prefix walks of "k..." reach PROJ_SEARCH_EXPAND_SCAN. */
static void bulk_word(char out[8], unsigned i)
{
    out[0] = 'k';
    out[1] = (char)('a' + i % 26);
    out[2] = (char)('a' + i / 26 % 26);
    out[3] = (char)('a' + i / 676 % 26);
    out[4] = '\0';
}

/* Bulk recipe @p i (id 1000 + i): "garlic" in all, "chicken" in every 2nd, "soup" in every
 * 3rd, so their lists span several MDB_GET_MULTIPLE pages; about 1100 distinct tags, so
 * that counting facets of many hits grows its table; author 6 has no user. */
static void bulk_recipe(struct es_event *ev, unsigned i)
{
    static const char *const langs[] = {"en", "de", NULL, "fr"};
    char w1[8], w2[8], title[64], desc[128], step[64], t1[16], t2[16];

    bulk_word(w1, i);
    bulk_word(w2, i * 7 + 3);
    snprintf(title, sizeof(title), "%s %s", i % 3 ? "Garlic" : "Soup", w1);
    snprintf(desc, sizeof(desc), "A %s dish with %s and garlic%s", w1, w2,
             i % 2 ? "" : ", chicken and lemon");
    snprintf(step, sizeof(step), "Cook the %s slowly, then serve the %s.", w1, w2);
    snprintf(t1, sizeof(t1), "t%u", i % 700);
    snprintf(t2, sizeof(t2), "t%u", i * 13 % 1100);
    recipe(ev, 1000 + (int)i, 1 + (int)(i % 6), langs[i % 4], title, desc,
           J("[s,s]", i % 2 ? "garlic" : "1 chicken", i % 3 ? w2 : "soup bones"), J("[s]", step),
           J("[s,s,s]", t1, t2, "bulk"));
}

static void fold_one(struct proj_search_writer *w, MDB_txn *txn, struct es_event *ev)
{
    struct sp_errbuf eb = {{0}, {0}};
    MDB_txn *child;

    CHECK(mdb_txn_begin(fz_env, txn, 0, &child) == 0);
    if (proj_search_fold(w, child, ev, &eb) != 0) {
        fprintf(stderr, "fuzz_search_query: fold of %s: %s\n", ev->stream, eb.msg);
        abort();
    }
    CHECK(mdb_txn_commit(child) == 0);
    es_event_release(ev);
}

/* Fold the corpus and the bulk in one write transaction, one nested transaction per
 * event, as the runner does, and flush. */
static void build_view(void)
{
    struct es_event ev[MAX_EVENTS];
    struct proj_search_writer *w;
    struct sp_errbuf eb = {{0}, {0}};
    MDB_txn *txn;
    size_t n = corpus(ev);

    CHECK(n <= MAX_EVENTS);
    CHECK(proj_search_writer_new(&w) == 0);
    CHECK(mdb_txn_begin(fz_env, NULL, 0, &txn) == 0);
    CHECK(proj_search_writer_open(w, txn, &eb) == 0);
    for (size_t i = 0; i < n; i++)
        fold_one(w, txn, &ev[i]);
    for (unsigned i = 0; i < BULK; i++) {
        bulk_recipe(&ev[0], i);
        fold_one(w, txn, &ev[0]);
    }
    if (proj_search_flush(w, txn, &eb) != 0) {
        fprintf(stderr, "fuzz_search_query: flush: %s\n", eb.msg);
        abort();
    }
    CHECK(mdb_txn_commit(txn) == 0);
    proj_search_writer_free(w);
}

/*
 * Open the environment as the runner does (PROJ_SEARCH_MAX_DBS plus its own two), build
 * the view and open the reader. The files are unlinked as soon as LMDB holds them open:
 * nothing is left behind when libFuzzer stops the process on a crash or a timeout.
 */
static void init_view(void)
{
    char dir[] = "/tmp/sp-fuzz-search-XXXXXX", path[64];
    MDB_txn *txn;

    CHECK(mkdtemp(dir) != NULL);
    CHECK(mdb_env_create(&fz_env) == 0);
    CHECK(mdb_env_set_maxdbs(fz_env, PROJ_SEARCH_MAX_DBS + 2) == 0);
    CHECK(mdb_env_set_mapsize(fz_env, 64U << 20) == 0);
    int rc = mdb_env_open(fz_env, dir, MDB_NOSYNC, 0600);
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
    CHECK(rc == 0);
    build_view();
    CHECK(mdb_txn_begin(fz_env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(proj_search_reader_open(txn, &fz_reader, NULL) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
}

/* ------------------------------------------------------------------ input */

struct fz_case {
    struct proj_search_query q;
    const char *tags[2];
    bool valid_params; /* limit, page, tags, language all acceptable */
    bool valid_text;   /* 1..256 bytes, not only white space, UTF-8 (RFC 3629) */
};

static const char *const fz_langs[] = {NULL, "en", "de", "xx", "bad!", "EN-us", "zh", "fr-CA", ""};
static const bool fz_lang_ok[] = {true, true, true, true, false, true, true, true, false};
static const char *const fz_tags[] = {
    "dessert", "Quick & Easy", "QUICK  &  easy ", "Soup", "荤菜", "\xff", "", "no such tag"};
static const bool fz_tag_ok[] = {true, true, true, true, true, false, false, true};
static const int64_t fz_authors[] = {0, 1, 2, 99};

/* Length of the valid UTF-8 sequence at @p s (RFC 3629 table 3-7), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t n;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

static bool utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0, n; i < len; i += n)
        if ((n = utf8_seq((const unsigned char *)s + i, len - i)) == 0)
            return false;
    return true;
}

static bool is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && !(s[i] >= '\t' && s[i] <= '\r'))
            return false;
    return true;
}

/* Decode the parameter bytes; the text is set by the caller. */
static void decode_params(const uint8_t p[PARAM_BYTES], struct fz_case *c)
{
    size_t nl = sizeof(fz_langs) / sizeof(fz_langs[0]), nt = sizeof(fz_tags) / sizeof(fz_tags[0]);
    size_t lang = (p[2] & 0x0F) % nl;

    memset(c, 0, sizeof(*c));
    c->q.limit = p[0] % (PROJ_SEARCH_MAX_LIMIT + 4); /* 0 and 101..103 are refused */
    c->q.page = p[1] == 255   ? PROJ_SEARCH_MAX_PAGE + 1
                : p[1] == 254 ? PROJ_SEARCH_MAX_PAGE
                              : p[1] % 8;
    c->q.language = fz_langs[lang];
    c->q.n_tags = (size_t)(p[2] >> 4) % 3;
    c->tags[0] = fz_tags[p[3] % nt];
    c->tags[1] = fz_tags[(p[3] >> 3) % nt];
    c->q.tags = c->q.n_tags ? c->tags : NULL;
    c->q.author_id = p[3] & 0x40 ? fz_authors[(p[2] >> 6) & 3] : 0;
    c->q.no_facets = (p[3] & 0x80) != 0;
    c->valid_params = c->q.limit >= 1 && c->q.limit <= PROJ_SEARCH_MAX_LIMIT && c->q.page >= 1 &&
                      c->q.page <= PROJ_SEARCH_MAX_PAGE && fz_lang_ok[lang];
    for (size_t i = 0; i < c->q.n_tags; i++)
        c->valid_params = c->valid_params && fz_tag_ok[(i ? p[3] >> 3 : p[3]) % nt];
}

/* ------------------------------------------------------------------ answer checks */

static bool is_boundary(const char *s, size_t off)
{
    return ((unsigned char)s[off] & 0xC0) != 0x80;
}

/* [[start, len], ...]: non-empty, inside @p text, on code point boundaries, in order. */
static void check_spans(const json_t *spans, const json_t *text)
{
    const char *s = json_string_value(text);
    size_t len = json_string_length(text), i;
    json_int_t prev = 0;
    json_t *sp;

    CHECK(json_is_array(spans) && s != NULL);
    json_array_foreach(spans, i, sp) {
        json_t *a = json_array_get(sp, 0), *b = json_array_get(sp, 1);
        CHECK(json_array_size(sp) == 2 && json_is_integer(a) && json_is_integer(b));
        json_int_t start = json_integer_value(a), n = json_integer_value(b);
        CHECK(start >= prev && n >= 1 && (size_t)start + (size_t)n <= len);
        CHECK(is_boundary(s, (size_t)start) &&
              ((size_t)(start + n) == len || is_boundary(s, (size_t)(start + n))));
        prev = start;
    }
}

static void check_highlight(const json_t *hit)
{
    json_t *hl = json_object_get(hit, "highlight"), *snip = json_object_get(hl, "snippet");
    const char *field = json_string_value(json_object_get(snip, "field"));

    CHECK(json_is_object(hl) && json_is_object(snip) && field != NULL);
    CHECK(strcmp(field, "tags") == 0 || strcmp(field, "ingredients") == 0 ||
          strcmp(field, "description") == 0 || strcmp(field, "steps") == 0);
    check_spans(json_object_get(hl, "title"), json_object_get(hit, "title"));
    check_spans(json_object_get(snip, "spans"), json_object_get(snip, "text"));
}

static void check_hit(const json_t *hit)
{
    json_t *author = json_object_get(hit, "author"), *name = json_object_get(author, "username");

    CHECK(json_is_string(json_object_get(hit, "id")) &&
          json_is_string(json_object_get(hit, "title")));
    CHECK(json_is_string(json_object_get(author, "id")) &&
          (json_is_string(name) || json_is_null(name)));
    CHECK(json_is_array(json_object_get(hit, "tags")) &&
          json_is_string(json_object_get(hit, "language")));
    CHECK(json_is_number(json_object_get(hit, "score")) &&
          json_number_value(json_object_get(hit, "score")) >= 0.0);
    CHECK(json_is_integer(json_object_get(hit, "typos")) &&
          json_integer_value(json_object_get(hit, "typos")) >= 0);
    check_highlight(hit);
}

/* Whether hit @p a may rank before hit @p b: fewer typos, then higher score. */
static bool rank_ok(const json_t *a, const json_t *b)
{
    json_int_t ta = json_integer_value(json_object_get(a, "typos"));
    json_int_t tb = json_integer_value(json_object_get(b, "typos"));

    if (ta != tb)
        return ta < tb;
    return json_number_value(json_object_get(a, "score")) >=
           json_number_value(json_object_get(b, "score"));
}

/* A list of {"tag", "count"}: at most @p max, counts in [1, max_count], count desc, tag asc. */
static void check_tag_list(const json_t *tags, size_t max, json_int_t max_count)
{
    json_t *t, *prev = NULL;
    size_t i;

    CHECK(json_is_array(tags) && json_array_size(tags) <= max);
    json_array_foreach(tags, i, t) {
        json_int_t n = json_integer_value(json_object_get(t, "count"));
        CHECK(json_is_string(json_object_get(t, "tag")) && n >= 1 && n <= max_count);
        if (prev != NULL) {
            json_int_t pn = json_integer_value(json_object_get(prev, "count"));
            CHECK(pn > n || (pn == n && strcmp(json_string_value(json_object_get(prev, "tag")),
                                               json_string_value(json_object_get(t, "tag"))) < 0));
        }
        prev = t;
    }
}

static void check_hits(const json_t *hits)
{
    json_t *hit;
    size_t i;

    json_array_foreach(hits, i, hit) {
        check_hit(hit);
        if (i > 0)
            CHECK(rank_ok(json_array_get(hits, i - 1), hit));
        for (size_t j = 0; j < i; j++)
            CHECK(!json_equal(json_object_get(hit, "id"),
                              json_object_get(json_array_get(hits, j), "id")));
    }
}

static void check_recipes(const struct proj_search_query *q, const json_t *res)
{
    json_t *hits = json_object_get(res, "hits"), *total = json_object_get(res, "total_hits");
    json_t *facets = json_object_get(res, "facets");
    size_t offset = (size_t)(q->page - 1) * q->limit;

    CHECK(json_is_object(res) && json_is_array(hits) && json_is_integer(total));
    json_int_t n = json_integer_value(total);
    size_t share = n < 0 || (size_t)n <= offset ? 0 : (size_t)n - offset;
    CHECK(n >= 0 && (size_t)n >= json_array_size(hits) && json_array_size(hits) <= q->limit);
    CHECK(json_array_size(hits) == (share < q->limit ? share : q->limit));
    CHECK(json_is_true(json_object_get(res, "total_hits_exact")));
    CHECK(json_integer_value(json_object_get(res, "page")) == q->page &&
          json_integer_value(json_object_get(res, "limit")) == q->limit);
    CHECK(json_is_boolean(json_object_get(res, "has_more")) &&
          json_is_true(json_object_get(res, "has_more")) == (share > q->limit));
    check_hits(hits);
    if (q->no_facets) {
        CHECK(facets == NULL);
    } else {
        CHECK(json_is_object(facets));
        check_tag_list(json_object_get(facets, "tags"), PROJ_SEARCH_FACET_TAGS, n);
    }
}

static void check_users(unsigned limit, const json_t *res)
{
    json_t *hits = json_object_get(res, "hits"), *hit;
    json_int_t total = json_integer_value(json_object_get(res, "total_hits"));
    size_t i;

    CHECK(json_is_array(hits) && json_array_size(hits) <= limit);
    CHECK(json_is_integer(json_object_get(res, "total_hits")) &&
          total >= (json_int_t)json_array_size(hits));
    json_array_foreach(hits, i, hit) {
        json_t *full = json_object_get(hit, "full_name");
        CHECK(json_is_string(json_object_get(hit, "id")) &&
              json_is_string(json_object_get(hit, "username")) &&
              (json_is_string(full) || json_is_null(full)));
    }
}

/* ------------------------------------------------------------------ one input */

/* Run one call's result through the contract: 0 with an answer, or SP_EINVAL without. */
static void check_rc(int rc, const json_t *out, bool must_fail, const struct sp_errbuf *eb)
{
    if (rc != 0 && rc != SP_EINVAL) {
        fprintf(stderr, "fuzz_search_query: unexpected %s: %s (field \"%s\")\n", sp_errname(rc),
                eb->msg, eb->field);
        abort();
    }
    CHECK(rc == 0 ? out != NULL : out == NULL);
    CHECK(!must_fail || rc == SP_EINVAL);
}

static void run_case(MDB_txn *txn, const struct fz_case *c)
{
    struct sp_errbuf eb = {{0}, {0}};
    json_t *res = NULL, *again = NULL, *users = NULL, *tags = NULL;
    const struct proj_search_query *q = &c->q;
    bool limit_ok = q->limit >= 1 && q->limit <= PROJ_SEARCH_MAX_LIMIT;
    bool tags_text_ok =
        q->text_len <= PROJ_SEARCH_MAX_QUERY_BYTES && utf8_valid(q->text, q->text_len);

    int rc = proj_search_recipes(fz_reader, txn, q, &res, &eb);
    check_rc(rc, res, !c->valid_params || !c->valid_text, &eb);
    if (rc == 0)
        check_recipes(q, res);
    int urc = proj_search_users(fz_reader, txn, q->text, q->text_len, q->limit, &users, &eb);
    check_rc(urc, users, !limit_ok || !c->valid_text, &eb);
    CHECK(rc != 0 || urc == 0);
    if (urc == 0)
        check_users(q->limit, users);
    int trc = proj_search_tags(fz_reader, txn, q->text, q->text_len, q->limit, &tags, &eb);
    check_rc(trc, tags, !limit_ok || !tags_text_ok, &eb);
    if (trc == 0)
        check_tag_list(json_object_get(tags, "tags"), q->limit, INT32_MAX);
    if (rc == 0) { /* the reader's scratch state must not leak from one call into another */
        CHECK(proj_search_recipes(fz_reader, txn, q, &again, &eb) == 0);
        CHECK(json_equal(res, again));
    }
    json_decref(again);
    json_decref(tags);
    json_decref(users);
    json_decref(res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t params[PARAM_BYTES] = {20, 1, 0, 0};
    struct fz_case c;
    MDB_txn *txn;

    if (fz_reader == NULL)
        init_view();
    memcpy(params, data, size < PARAM_BYTES ? size : PARAM_BYTES);
    decode_params(params, &c);
    size_t len = size > PARAM_BYTES ? size - PARAM_BYTES : 0;
    len = len < QUERY_MAX_BYTES ? len : QUERY_MAX_BYTES;
    char *text = malloc(len ? len : 1); /* exact length: ASan sees any read past it */
    CHECK(text != NULL);
    if (len > 0)
        memcpy(text, data + PARAM_BYTES, len);
    c.q.text = text;
    c.q.text_len = len;
    c.valid_text = len >= 1 && len <= PROJ_SEARCH_MAX_QUERY_BYTES && !is_blank(text, len) &&
                   utf8_valid(text, len);
    CHECK(mdb_txn_begin(fz_env, NULL, MDB_RDONLY, &txn) == 0);
    run_case(txn, &c);
    mdb_txn_abort(txn);
    free(text);
    return 0;
}
