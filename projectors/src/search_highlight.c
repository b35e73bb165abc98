/*
 * Highlights of a recipe hit: the byte spans of the query's words in its title, and a
 * snippet of about SNIPPET_BYTES from the item (ingredient line, step...) matching the most
 * query words, chosen from the forward record so that only that item is analysed again.
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

void search__hset_build(struct proj_search_reader *r)
{
    const struct search_plan *p = &r->plan;
    size_t need = 16;

    while (need < 2 * p->nv + 2)
        need *= 2;
    if (need > r->hset_slots) {
        free(r->hset);
        r->hset = sp_xmalloc(need * sizeof(*r->hset));
        r->hset_slots = need;
    }
    memset(r->hset, 0, r->hset_slots * sizeof(*r->hset));
    for (size_t t = 0; t < p->n_terms && t < 64; t++) {
        const struct search_term *term = &p->terms[t];
        if (term->role != SEARCH_REQUIRED) /* optional stop words are not highlighted */
            continue;
        for (size_t i = term->v0; i < term->v0 + term->nv; i++) {
            uint32_t h = p->v[i].hash;
            if (p->v[i].filter || h == 0)
                continue;
            size_t s = h & (r->hset_slots - 1);
            while (r->hset[s].hash != 0 && r->hset[s].hash != h)
                s = (s + 1) & (r->hset_slots - 1);
            r->hset[s].hash = h;
            r->hset[s].mask |= 1ULL << t;
        }
    }
}

static uint64_t hset_mask(const struct proj_search_reader *r, uint32_t h)
{
    if (r->hset_slots == 0 || h <= SEARCH_FWD_GAP)
        return 0;
    for (size_t s = h & (r->hset_slots - 1);; s = (s + 1) & (r->hset_slots - 1)) {
        if (r->hset[s].hash == h)
            return r->hset[s].mask;
        if (r->hset[s].hash == 0)
            return 0;
    }
}

/* ------------------------------------------------------------------ tokens of a text */

static int on_hl_token(const struct proj_token *tok, void *ud)
{
    struct proj_search_reader *r = ud;

    SEARCH_GROW(r->toks, r->toks_cap, r->n_toks + 1);
    r->toks[r->n_toks++] = (struct search_hl_tok){
        tok->start, tok->len, hset_mask(r, search__stem_hash(tok->stem, tok->stem_len)) != 0};
    return 0;
}

static int hl_tokens(struct proj_search_reader *r, const struct search_str *s)
{
    r->n_toks = 0;
    return proj_text_analyze(r->text, search__lang_of(r->doc.lang), s->s, s->len, on_hl_token, r);
}

/* [[start, len], ...] of the matched tokens inside [from, to), shifted by @p shift. */
static json_t *
spans_json(const struct proj_search_reader *r, uint32_t from, uint32_t to, int64_t shift)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < r->n_toks; i++) {
        const struct search_hl_tok *t = &r->toks[i];
        if (t->hit && t->start >= from && t->start + t->len <= to)
            json_array_append_new(
                arr, json_pack("[I,I]", (json_int_t)t->start + shift, (json_int_t)t->len));
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

struct item_pick {
    int field, words; /* words = query words matched; 0 = none */
    uint32_t item;
};

static void pick_offer(struct item_pick *best, int f, uint32_t item, uint64_t mask)
{
    int words = __builtin_popcountll(mask);

    if (f == PROJ_SEARCH_TITLE || words == 0)
        return;
    if (words > best->words || (words == best->words && field_rank(f) < field_rank(best->field)))
        *best = (struct item_pick){f, words, item};
}

/* The item of the forward record @p fwd matching the most query words. */
static struct item_pick pick_item(const struct proj_search_reader *r, const MDB_val *fwd)
{
    struct item_pick best = {PROJ_SEARCH_TITLE, 0, 0};
    const uint8_t *p = fwd->mv_data, *end = p + fwd->mv_size;
    uint32_t n_items[PROJ_SEARCH_FIELDS];

    if (fwd->mv_size < (size_t)2 * PROJ_SEARCH_FIELDS)
        return best;
    for (size_t f = 0; f < PROJ_SEARCH_FIELDS; f++)
        n_items[f] = search__get16(p + 2 * f);
    p += (size_t)2 * PROJ_SEARCH_FIELDS;
    for (int f = 0; f < PROJ_SEARCH_FIELDS; f++) {
        for (uint32_t i = 0; i < n_items[f]; i++) {
            uint64_t mask = 0;
            uint32_t h;
            for (; p + 4 <= end && (h = search__get32(p)) != SEARCH_FWD_END; p += 4)
                mask |= hset_mask(r, h);
            p += 4;
            pick_offer(&best, f, i, mask);
        }
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

static json_t *snippet_json(struct proj_search_reader *r, int field, const struct search_str *s)
{
    uint32_t from, to;
    bool head;
    struct sp_buf text;

    snippet_window(r, s->len, &from, &to);
    head = from > 0;
    sp_buf_init(&text, 0);
    if ((head && sp_buf_adds(&text, ELLIPSIS) != 0) || sp_buf_add(&text, s->s + from, to - from) ||
        (to < s->len && sp_buf_adds(&text, ELLIPSIS) != 0))
        SP_ASSERT(!"unbounded buffer");
    json_t *o =
        json_pack("{s:s,s:s%,s:o}", "field", proj_search_field_name(field), "text", text.data,
                  text.len, "spans", spans_json(r, from, to, (int64_t)(head ? 3 : 0) - from));
    sp_buf_release(&text);
    return o;
}

static int snippet(struct proj_search_reader *r, MDB_txn *txn, uint64_t id, json_t **out)
{
    uint8_t key[8];
    MDB_val k = {8, key}, fwd = {0, NULL};
    struct item_pick pick;
    int rc;

    search__be64(key, id);
    rc = mdb_get(txn, r->dbs.dbi[SDB_FORWARD], &k, &fwd);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return SP_EDB;
    pick = pick_item(r, &fwd);
    if (pick.words == 0) { /* nothing outside the title: the text's start */
        pick.field = r->doc.items[PROJ_SEARCH_DESCRIPTION][0].len > 0 ||
                             r->doc.n[PROJ_SEARCH_INGREDIENTS] == 0
                         ? PROJ_SEARCH_DESCRIPTION
                         : PROJ_SEARCH_INGREDIENTS;
        pick.item = 0;
    }
    if (pick.item >= r->doc.n[pick.field])
        return SP_ECORRUPT;
    rc = hl_tokens(r, &r->doc.items[pick.field][pick.item]);
    if (rc != 0)
        return rc;
    if (pick.words == 0)
        for (size_t i = 0; i < r->n_toks; i++)
            r->toks[i].hit = false;
    *out = snippet_json(r, pick.field, &r->doc.items[pick.field][pick.item]);
    return 0;
}

int search__highlight(
    struct proj_search_reader *r, MDB_txn *txn, uint64_t id, json_t **out, struct sp_errbuf *eb)
{
    const struct search_str *title = &r->doc.items[PROJ_SEARCH_TITLE][0];
    json_t *snip = NULL, *spans;
    int rc = hl_tokens(r, title);

    if (rc != 0)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "could not analyse a stored title");
    spans = spans_json(r, 0, title->len, 0);
    rc = snippet(r, txn, id, &snip);
    if (rc != 0) {
        json_decref(spans);
        return rc == SP_EDB ? sp_err_set(eb, rc, NULL, "could not read the search index")
                            : sp_err_set(eb, SP_ECORRUPT, NULL, "a search record is corrupt");
    }
    *out = json_pack("{s:o,s:o}", "title", spans, "snippet", snip);
    return 0;
}
