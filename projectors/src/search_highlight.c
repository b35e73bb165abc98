/*
 * Highlights of a recipe hit: the byte spans of the query's words in its title, and a
 * snippet of about SNIPPET_BYTES from the item (ingredient line, step...) matching the most
 * query words, chosen from the forward record so that only that item is analysed again.
 * Which tokens match comes from the forward record too (the stem hash of each position),
 * so that the analysis only has to find the tokens' bytes: no stemming.
 */
#include <stdlib.h>
#include <string.h>

#include "search_reader_impl.h"
#include "sp/alloc.h"
#include "sp/banned.h"

/* Snippet window, in bytes of the item, and the text kept before the first match. */
#define SNIPPET_BYTES 160
#define SNIPPET_LEAD  40
#define ELLIPSIS      "\xE2\x80\xA6" /* U+2026 HORIZONTAL ELLIPSIS */

/* Empty r->hset, sized for @p n hashes. */
static void hset_reset(struct proj_search_reader *r, size_t n)
{
    size_t need = 16;

    while (need < 2 * n + 2)
        need *= 2;
    if (need > r->hset_slots) {
        free(r->hset);
        r->hset = sp_xmalloc(need * sizeof(*r->hset));
        r->hset_slots = need;
    }
    memset(r->hset, 0, r->hset_slots * sizeof(*r->hset));
    memset(r->hbloom, 0, sizeof(r->hbloom));
    r->hbloom[0] = 1; /* the top bits of SEARCH_FWD_END and SEARCH_FWD_GAP */
    r->hset_words = 0;
}

/* Add stem hash @p h of query word @p t. */
static void hset_add(struct proj_search_reader *r, uint32_t h, size_t t)
{
    size_t s = h & (r->hset_slots - 1);

    while (r->hset[s].hash != 0 && r->hset[s].hash != h)
        s = (s + 1) & (r->hset_slots - 1);
    r->hset[s].hash = h;
    r->hset[s].mask |= 1ULL << t;
    r->hbloom[(h >> 22) / 64] |= 1ULL << ((h >> 22) % 64);
}

void search__hset_build(struct proj_search_reader *r)
{
    const struct search_plan *p = &r->plan;
    uint64_t words = 0;

    hset_reset(r, p->nv);
    for (size_t t = 0; t < p->n_terms && t < 64; t++) {
        const struct search_term *term = &p->terms[t];
        if (term->role != SEARCH_REQUIRED) /* optional stop words are not highlighted */
            continue;
        for (size_t i = term->v0; i < term->v0 + term->nv; i++) {
            if (p->v[i].filter || p->v[i].hash == 0)
                continue;
            hset_add(r, p->v[i].hash, t);
            words |= 1ULL << t;
        }
    }
    r->hset_words = __builtin_popcountll(words);
}

/* Whether a hash whose top 10 bits are @p top10 may be in r->hset. */
static bool hset_maybe(const struct proj_search_reader *r, uint32_t top10)
{
    return (r->hbloom[top10 / 64] & (1ULL << (top10 % 64))) != 0;
}

static uint64_t hset_mask(const struct proj_search_reader *r, uint32_t h)
{
    if (r->hset_slots == 0 || h <= SEARCH_FWD_GAP || !hset_maybe(r, h >> 22))
        return 0; /* most positions of a forward record: no probe */
    for (size_t s = h & (r->hset_slots - 1);; s = (s + 1) & (r->hset_slots - 1)) {
        if (r->hset[s].hash == h)
            return r->hset[s].mask;
        if (r->hset[s].hash == 0)
            return 0;
    }
}

/* ------------------------------------------------------------------ tokens of a text */

/* An item's positions in the forward record: the stem hash of each token, by position. */
struct fwd_item {
    const uint8_t *pos; /* NULL: unknown (no usable forward record) */
    uint32_t n;
};

/* How the tokens of a text are told matching. */
enum hl_mode {
    HL_STEMS,     /* by their stems in the doc's language (no forward record to read) */
    HL_POSITIONS, /* by the forward record's hash at their position: no stemming */
    HL_NONE,      /* none matches */
};

/* The analysis stopped: the tokens read are all the snippet window needs. */
#define HL_DONE 1

/*
 * One analysis of a text. A snippet window ends at most SNIPPET_BYTES after its anchor
 * (its first match, or its first token when none is expected), so once a token ends
 * beyond that the rest of the item cannot change the window or its spans.
 */
struct hl_scan {
    struct proj_search_reader *r;
    enum hl_mode mode;
    struct fwd_item fwd; /* HL_POSITIONS */
    bool window;         /* a snippet's item, not the title: stop past the window */
    bool anchored;       /* the anchor was read; window_end is set */
    uint64_t window_end;
};

static bool token_hit(const struct hl_scan *hs, const struct proj_token *tok)
{
    switch (hs->mode) {
    case HL_STEMS:
        return hset_mask(hs->r, search__stem_hash(tok->stem, tok->stem_len)) != 0;
    case HL_POSITIONS:
        return tok->pos < hs->fwd.n &&
               hset_mask(hs->r, proj__get32(hs->fwd.pos + 4 * (size_t)tok->pos)) != 0;
    case HL_NONE:
    default:
        return false;
    }
}

static int on_hl_token(const struct proj_token *tok, void *ud)
{
    struct hl_scan *hs = ud;
    struct proj_search_reader *r = hs->r;
    bool hit = token_hit(hs, tok);

    PROJ_GROW(r->toks, r->toks_cap, r->n_toks + 1);
    r->toks[r->n_toks++] = (struct search_hl_tok){tok->start, tok->len, hit};
    if (hs->window && !hs->anchored && (hit || hs->mode == HL_NONE)) {
        hs->anchored = true;
        hs->window_end = (uint64_t)tok->start + SNIPPET_BYTES;
    }
    return hs->anchored && (uint64_t)tok->start + tok->len > hs->window_end ? HL_DONE : 0;
}

/*
 * Tokens of @p s into r->toks: all of them, or (@p window) those a snippet needs. Unless
 * matches are told by stems, the text is analysed without a stemmer: tokens, their bytes
 * and positions do not depend on the language.
 */
static int hl_tokens(struct proj_search_reader *r,
                     const struct search_str *s,
                     enum hl_mode mode,
                     struct fwd_item fwd,
                     bool window)
{
    struct hl_scan hs = {r, mode, fwd, window, false, 0};
    enum proj_lang lang = mode == HL_STEMS ? search__lang_of(r->doc.lang) : PROJ_LANG_NONE;
    int rc;

    r->n_toks = 0;
    rc = proj_text_analyze(r->text, lang, s->s, s->len, on_hl_token, &hs);
    return rc == HL_DONE ? 0 : rc;
}

/* [start, len] of one span, or NULL. */
static json_t *span_json(json_int_t start, json_int_t len)
{
    json_t *arr = json_array();

    if (json_array_append_new(arr, json_integer(start)) != 0 ||
        json_array_append_new(arr, json_integer(len)) != 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* [[start, len], ...] of the matched tokens inside [from, to), shifted by @p shift. */
static json_t *
spans_json(const struct proj_search_reader *r, uint32_t from, uint32_t to, int64_t shift)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < r->n_toks; i++) {
        const struct search_hl_tok *t = &r->toks[i];
        if (t->hit && t->start >= from && t->start + t->len <= to)
            json_array_append_new(arr, span_json((json_int_t)t->start + shift, t->len));
    }
    return arr;
}

/* ------------------------------------------------------------------ snippet item */

/* Rank of a field for the snippet (lower first); the title is never chosen. */
static int field_rank(int f)
{
    static const int rank[PROJ_SEARCH_FIELDS] = {
        [PROJ_SEARCH_TITLE] = 9, [PROJ_SEARCH_DESCRIPTION] = 0, [PROJ_SEARCH_INGREDIENTS] = 1,
        [PROJ_SEARCH_STEPS] = 2, [PROJ_SEARCH_TAGS] = 3,
    };
    return rank[f];
}

/*
 * What the forward record tells about a hit: the item matching the most query words
 * (outside the title), and whether the title matches any, which spares analysing a title
 * without spans.
 */
struct item_pick {
    int field, words; /* words = query words matched; 0 = none */
    uint32_t item;
    struct fwd_item at;    /* positions of that item */
    struct fwd_item title; /* positions of the title; pos NULL if the record has none */
    bool title_hit;
};

static void
pick_offer(struct item_pick *best, int f, uint32_t item, struct fwd_item at, uint64_t mask)
{
    int words = mask != 0 ? __builtin_popcountll(mask) : 0;

    if (f == PROJ_SEARCH_TITLE) {
        best->title = item == 0 ? at : (struct fwd_item){NULL, 0};
        best->title_hit = mask != 0;
        return;
    }
    if (words > best->words || (words == best->words && field_rank(f) < field_rank(best->field))) {
        if (words == 0)
            return;
        best->field = f;
        best->words = words;
        best->item = item;
        best->at = at;
    }
}

/*
 * Whether the items from field @p f on cannot rank before @p best: it matches every query
 * word, and none of those fields ranks before its own. The rest of the record (often the
 * long steps) is then not read.
 */
static bool pick_final(const struct proj_search_reader *r, const struct item_pick *best, int f)
{
    int rank = field_rank(best->field);

    if (best->words == 0 || best->words < r->hset_words)
        return false;
    for (; f < PROJ_SEARCH_FIELDS; f++)
        if (field_rank(f) < rank)
            return false;
    return true;
}

/* The positions of the next item at @p *p, and the query words they match. */
static uint64_t item_scan(const struct proj_search_reader *r,
                          const uint8_t **p,
                          const uint8_t *end,
                          struct fwd_item *at)
{
    const uint8_t *q = *p;
    uint64_t mask = 0;

    /* The filter's bits are a hash's first (most significant) ten, read from the bytes as
     * stored; the end marker (0) passes the filter (its bit 0 is always set), so most
     * positions cost one test. */
    _Static_assert(SEARCH_FWD_END == 0, "the end marker is four zero bytes");
    for (; q + 4 <= end; q += 4) {
        if (!hset_maybe(r, ((uint32_t)q[0] << 2) | (q[1] >> 6)))
            continue;
        if (memcmp(q, "\0\0\0\0", 4) == 0)
            break;
        mask |= hset_mask(r, proj__get32(q));
    }
    *at = (struct fwd_item){*p, (uint32_t)((size_t)(q - *p) / 4)};
    if (q + 4 > end) /* no end marker: the record is cut, its positions are not trusted */
        *at = (struct fwd_item){NULL, 0};
    *p = q + 4;
    return mask;
}

/* The item of the forward record @p fwd matching the most query words. */
static struct item_pick pick_item(const struct proj_search_reader *r, const MDB_val *fwd)
{
    struct item_pick best = {.field = PROJ_SEARCH_TITLE, .title_hit = true};
    const uint8_t *p = fwd->mv_data, *end = p + fwd->mv_size;
    uint32_t n_items[PROJ_SEARCH_FIELDS];
    struct fwd_item at;

    if (fwd->mv_size < (size_t)2 * PROJ_SEARCH_FIELDS)
        return best;
    for (size_t f = 0; f < PROJ_SEARCH_FIELDS; f++)
        n_items[f] = proj__get16(p + 2 * f);
    p += (size_t)2 * PROJ_SEARCH_FIELDS;
    for (int f = 0; f < PROJ_SEARCH_FIELDS && !pick_final(r, &best, f); f++) {
        for (uint32_t i = 0; i < n_items[f] && !pick_final(r, &best, f); i++) {
            uint64_t mask = item_scan(r, &p, end, &at);
            pick_offer(&best, f, i, at, mask);
        }
    }
    if (best.title.pos == NULL || n_items[PROJ_SEARCH_TITLE] != 1) {
        best.title = (struct fwd_item){NULL, 0}; /* not as written: told by stems */
        best.title_hit = true;
    }
    return best;
}

/* ------------------------------------------------------------------ snippet window */

/* Window [from, to) of about SNIPPET_BYTES around the first match, on token bounds. */
static void
snippet_window(const struct proj_search_reader *r, uint32_t len, uint32_t *from, uint32_t *to)
{
    size_t first = 0, i;

    *from = 0;
    *to = len;
    if (len <= SNIPPET_BYTES || r->n_toks == 0)
        return;
    while (first < r->n_toks && !r->toks[first].hit)
        first++;
    if (first == r->n_toks)
        first = 0;
    for (i = 0; i < first && r->toks[i].start + SNIPPET_LEAD < r->toks[first].start; i++)
        ;
    *from = i == 0 && r->toks[first].start <= SNIPPET_LEAD ? 0 : r->toks[i].start;
    *to = r->toks[i].start + r->toks[i].len;
    for (; i < r->n_toks && r->toks[i].start + r->toks[i].len <= *from + SNIPPET_BYTES; i++)
        *to = r->toks[i].start + r->toks[i].len;
    if (i == r->n_toks && *from + SNIPPET_BYTES >= len)
        *to = len;
}

/* Add @p value (owned) under @p key of @p obj; a NULL value (a failed conversion) fails. */
static int put(json_t *obj, const char *key, json_t *value)
{
    return value != NULL ? json_object_set_new_nocheck(obj, key, value) : -1;
}

static json_t *snippet_json(struct proj_search_reader *r, int field, const struct search_str *s)
{
    uint32_t from, to;
    bool head;
    struct proj_bytes *text = &r->buf;
    json_t *o = json_object();

    snippet_window(r, s->len, &from, &to);
    head = from > 0;
    text->len = 0;
    if (head)
        proj__bytes_add(text, ELLIPSIS, strlen(ELLIPSIS));
    proj__bytes_add(text, s->s + from, to - from);
    if (to < s->len)
        proj__bytes_add(text, ELLIPSIS, strlen(ELLIPSIS));
    if (put(o, "field", json_string_nocheck(proj_search_field_name(field))) != 0 ||
        put(o, "text", json_stringn((const char *)text->data, text->len)) != 0 ||
        put(o, "spans", spans_json(r, from, to, (int64_t)(head ? 3 : 0) - from)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int snippet(struct proj_search_reader *r, struct item_pick pick, json_t **out)
{
    enum hl_mode mode = pick.at.pos != NULL ? HL_POSITIONS : HL_STEMS;
    int rc;

    if (pick.words == 0) { /* nothing outside the title: the text's start */
        pick.field = r->doc.items[PROJ_SEARCH_DESCRIPTION][0].len > 0 ||
                             r->doc.n[PROJ_SEARCH_INGREDIENTS] == 0
                         ? PROJ_SEARCH_DESCRIPTION
                         : PROJ_SEARCH_INGREDIENTS;
        pick.item = 0;
        mode = HL_NONE;
    }
    if (pick.item >= r->doc.n[pick.field])
        return SP_ECORRUPT;
    rc = hl_tokens(r, &r->doc.items[pick.field][pick.item], mode, pick.at, true);
    if (rc != 0)
        return rc;
    *out = snippet_json(r, pick.field, &r->doc.items[pick.field][pick.item]);
    return *out != NULL ? 0 : SP_ECORRUPT;
}

/* The title's spans: none without analysis when the forward record shows no match. */
static int title_spans(struct proj_search_reader *r, const struct item_pick *pick, json_t **out)
{
    const struct search_str *title = &r->doc.items[PROJ_SEARCH_TITLE][0];
    enum hl_mode mode = pick->title.pos != NULL ? HL_POSITIONS : HL_STEMS;
    int rc = 0;

    r->n_toks = 0;
    if (pick->title_hit)
        rc = hl_tokens(r, title, mode, pick->title, false);
    *out = rc == 0 ? spans_json(r, 0, title->len, 0) : NULL;
    return rc;
}

int search__highlight(
    struct proj_search_reader *r, MDB_txn *txn, uint64_t id, json_t **out, struct sp_errbuf *eb)
{
    uint8_t key[8];
    MDB_val k = {8, key}, fwd = {0, NULL};
    json_t *snip = NULL, *spans = NULL;
    struct item_pick pick;
    int rc;

    proj__be64(key, id);
    rc = mdb_get(txn, r->dbs.dbi[SDB_FORWARD], &k, &fwd);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return sp_err_set(eb, SP_EDB, NULL, "could not read the search index");
    pick = pick_item(r, &fwd);
    if (title_spans(r, &pick, &spans) != 0)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "could not analyse a stored title");
    rc = snippet(r, pick, &snip);
    if (rc != 0) {
        json_decref(spans);
        return sp_err_set(eb, SP_ECORRUPT, NULL, "a search record is corrupt");
    }
    *out = json_object();
    json_object_set_new_nocheck(*out, "title", spans);
    json_object_set_new_nocheck(*out, "snippet", snip);
    return 0;
}
