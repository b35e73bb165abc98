/* The search view's query engine: its reader object and a query's plan and candidates. */
#ifndef PROJ_SEARCH_READER_IMPL_H
#define PROJ_SEARCH_READER_IMPL_H

#include "proj/typo.h"
#include "search_internal.h"

/* BM25F constants of one query (search_bm25.c). */
struct search_bm25 {
    double w[PROJ_SEARCH_FIELDS];
    double one_minus_b[PROJ_SEARCH_FIELDS];
    double b_over_avg[PROJ_SEARCH_FIELDS]; /* b_f / avglen_f */
    double k1;
};
void search__bm25_prepare(struct search_bm25 *s,
                          const struct proj_bm25f_params *p,
                          const double avg_len[PROJ_SEARCH_FIELDS]);
/* The pseudo-frequency tf~ of BM25F. */
double search__bm25_tf(const struct search_bm25 *s,
                       const uint32_t tf[PROJ_SEARCH_FIELDS],
                       const uint32_t len[PROJ_SEARCH_FIELDS]);

enum search_role {
    SEARCH_REQUIRED = 0, /* every hit matches it */
    SEARCH_OPTIONAL,     /* scores where present (a stop word) */
    SEARCH_EXCLUDED,     /* no hit matches it (-word) */
    SEARCH_NEG_PHRASE,   /* a word of an excluded phrase: verified only */
};

/* Longest key a variant looks up: a filters key "t\0<tag>". */
#define SEARCH_VKEY_MAX (2 + SEARCH_TAG_MAX)

/* One posting list (or filter list) a term matches through. */
struct search_variant {
    uint8_t key[SEARCH_VKEY_MAX];
    uint16_t key_len;
    bool filter;   /* a filters key: ids only, scores nothing */
    uint8_t typos; /* edits from the query word */
    uint32_t hash; /* search__stem_hash of the stem (0 for filters) */
    uint64_t df;   /* entries of the list */
    double idf;
};

struct search_term {
    char word[PROJ_TEXT_MAX_TOKEN_BYTES + 1]; /* folded query word; "" for a filter */
    size_t word_len;
    bool cjk, stop;
    bool prefix; /* the open last word: also matches words it begins */
    bool exact;  /* quoted: no typos */
    enum search_role role;
    int phrase;      /* index in search_plan.phrases, -1 = none */
    uint32_t offset; /* position in its phrase */
    size_t v0, nv;   /* its variants in search_plan.v */
    uint64_t est;    /* sum of the variants' df */
};

struct search_phrase {
    size_t t0, nt; /* its terms */
    bool negated;
};

/* Terms of a query: words (at most PROJ_SEARCH_MAX_TERMS) then filters. */
#define SEARCH_PLAN_TERMS (PROJ_SEARCH_MAX_TERMS + PROJ_SEARCH_MAX_TAGS + 2)

struct search_plan {
    struct search_term terms[SEARCH_PLAN_TERMS];
    size_t n_terms;
    struct search_phrase phrases[PROJ_SEARCH_MAX_TERMS];
    size_t n_phrases;
    struct search_variant *v; /* owned */
    size_t nv, v_cap;
    bool lang_filter;    /* the query names a language */
    enum proj_lang lang; /* its stemmer, when lang_filter */
};

/* Candidate recipes of a query, sorted by id, with their scores so far. */
struct search_cands {
    uint64_t *id;
    double *score;
    uint32_t *typos;
    double *tscore;  /* best score of the current term; < 0 = no match yet */
    uint8_t *ttypos; /* typos of that best match */
    size_t n, cap;
};

struct proj_search_reader {
    struct proj_text *text; /* owned analyzer */
    struct search_dbs dbs;
    struct search_plan plan;
    struct search_cands c, tmp;
    struct search_bm25 bm25;
    uint64_t n_docs;
    struct search_doc doc;
    struct search_bytes buf; /* scratch */
    /* facet counts: open addressing by tag hash, and the slots in use */
    struct search_fslot {
        uint64_t hash;
        uint32_t count; /* 0 = empty */
    } * fslots;
    size_t fslots_n; /* power of two */
    uint32_t *fused;
    size_t n_fused, fused_cap;
    /* stem hash -> bit set of the query words it matches (highlighting) */
    struct search_hslot {
        uint32_t hash; /* 0 = empty */
        uint64_t mask;
    } * hset;
    size_t hset_slots; /* power of two */
    struct search_hl_tok {
        uint32_t start, len;
        bool hit;
    } * toks; /* tokens of the text being highlighted */
    size_t n_toks, toks_cap;
};

/* Build r->hset from the words of r->plan (search_highlight.c). */
void search__hset_build(struct proj_search_reader *r);

/* Grow @p c to hold @p n candidates (keeps the first c->n). */
void search__cands_reserve(struct search_cands *c, size_t n);
void search__cands_release(struct search_cands *c);

/* Parse @p q's text into r->plan's words and phrases (search_qparse.c). */
SP_MUST_CHECK int
search__qparse(struct proj_search_reader *r, const char *text, size_t len, struct sp_errbuf *eb);

/* Give every term of r->plan its variants and document frequencies (search_expand.c). */
SP_MUST_CHECK int search__expand(struct proj_search_reader *r, MDB_txn *txn, struct sp_errbuf *eb);
/* Add a variant for @p key to term @p t, deduplicated (fewest typos kept). */
void search__variant_add(struct search_plan *p,
                         struct search_term *t,
                         const void *key,
                         size_t len,
                         bool filter,
                         int typos,
                         uint32_t hash);

/*
 * Lexicon walk over the keys of a database that begin with a fixed first code point,
 * presented without it (search_expand.c): typos are never on a word's first letter.
 */
struct search_lexicon {
    MDB_cursor *cur;
    MDB_val key, val; /* current entry */
    bool dup;         /* DUPSORT database: step with MDB_NEXT_NODUP */
    char head[4];     /* the first code point every key shown begins with */
    size_t head_len;
    char seek[4 + 4 * PROJ_TYPO_MAX_CP + 64]; /* head + the key sought */
};
/* Expansion candidates of a word: the best words found by a typo / prefix walk. */
struct search_expansion {
    struct {
        char word[PROJ_TEXT_MAX_TOKEN_BYTES + 1];
        size_t len;
        int dist;
        uint64_t weight; /* recipes using it (higher first) */
    } w[PROJ_SEARCH_EXPAND_WORDS];
    size_t n;
    struct search_lexicon *lex;
    int lang; /* recipes lexicon: the language counted, -1 = all; users lexicon: -2 */
};
/*
 * Walk the lexicon for @p word with @p max_dist typos (prefix: search as you type), none
 * on its first code point (Lucene FuzzyQuery's prefixLength 1): the walk stays among the
 * words of the same first letter, about 30 times fewer keys than the whole lexicon.
 */
SP_MUST_CHECK int search__expand_walk(struct search_expansion *ex,
                                      const char *word,
                                      size_t len,
                                      int max_dist,
                                      bool prefix,
                                      struct sp_errbuf *eb);
/* Typos a word of @p len bytes tolerates: 0, 1 (>= 5 code points) or 2 (>= 9). */
int search__typo_budget(const char *word, size_t len);

/* Run the required, optional and excluded terms and phrases into r->c (search_exec.c). */
SP_MUST_CHECK int search__execute(struct proj_search_reader *r, MDB_txn *txn, struct sp_errbuf *eb);

/* Count the tags of all candidates: the facets JSON array (search_facets.c). */
SP_MUST_CHECK int
search__facets(struct proj_search_reader *r, MDB_txn *txn, json_t **out, struct sp_errbuf *eb);

/* The "highlight" object of one hit whose doc is decoded in r->doc (search_highlight.c). */
SP_MUST_CHECK int search__highlight(
    struct proj_search_reader *r, MDB_txn *txn, uint64_t id, json_t **out, struct sp_errbuf *eb);

/* Iterate a DUPFIXED list: every entry (search_exec.c). */
typedef void (*search_entry_fn)(const uint8_t *entry, size_t cand, void *ud);
SP_MUST_CHECK int search__list_scan(MDB_cursor *cur,
                                    const void *key,
                                    size_t key_len,
                                    size_t val_bytes,
                                    search_entry_fn fn,
                                    void *ud);
/* Iterate the entries of a DUPFIXED list whose id is one of @p ids (sorted, n). */
SP_MUST_CHECK int search__list_probe(MDB_cursor *cur,
                                     const void *key,
                                     size_t key_len,
                                     size_t val_bytes,
                                     const uint64_t *ids,
                                     size_t n,
                                     search_entry_fn fn,
                                     void *ud);

/* First index in [lo, hi) of a page of @p vb-byte entries whose id is >= @p id. */
size_t search__page_lower(const uint8_t *e, size_t lo, size_t hi, size_t vb, uint64_t id);
/* First index in [lo, hi) of the sorted @p ids that is > @p id (@p upper) or >= @p id. */
size_t search__ids_bound(const uint64_t *ids, size_t lo, size_t hi, uint64_t id, bool upper);

/* Big-endian id at @p p. */
static inline uint64_t search__id_at(const uint8_t *p)
{
    return search__get64(p);
}

#endif
