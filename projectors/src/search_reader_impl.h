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

/* Field @p f's share of tf~, for a term found @p tf > 0 times in @p len tokens. */
static inline double
search__bm25_field(const struct search_bm25 *s, int f, uint32_t tf, uint32_t len)
{
    double norm = s->one_minus_b[f] + s->b_over_avg[f] * (double)len;

    return s->w[f] * (double)tf / (norm > 0.0 ? norm : 1.0);
}

/* tf~ of a postings entry, read in place (search__bm25_tf of its decoded fields). */
static inline double search__bm25_entry(const struct search_bm25 *s, const uint8_t *e)
{
    double sum = 0.0;

    for (int f = 0; f < PROJ_SEARCH_FIELDS; f++) {
        uint32_t tf = e[SEARCH_POSTING_TF + f];
        if (tf != 0)
            sum += search__bm25_field(s, f, tf, proj__get16(e + SEARCH_POSTING_LEN + 2 * f));
    }
    return sum;
}

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
    MDB_cursor *cur; /* owned during a query: on the list (search__expand); NULL = none */
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

/*
 * Copies of a database held in memory for one committed snapshot: what a copy has been
 * paid towards. A copy is made once the work it would have spared on a snapshot (LMDB
 * reads, in the copy's units) adds up to its price: ski rental, so that with a copy or
 * without, the work is never more than twice the cheaper way's, however often the view
 * changes (under steady writes no copy is made and nothing is lost).
 */
struct search_rental {
    uint64_t snapshot; /* the snapshot debt was paid on */
    size_t debt;
};
/*
 * Pay @p work done on @p snapshot (0: a write transaction, never copied).
 * @return true when a copy of @p price is now worth making (the debt is then cleared).
 */
bool search__rental_pay(struct search_rental *rent, uint64_t snapshot, size_t work, size_t price);
/* The committed snapshot @p txn reads (mdb_txn_id); 0 for a write transaction. */
uint64_t search__txn_snapshot(MDB_txn *txn);

/* A tag counted for the facets: hash, count and number in the copy (UINT32_MAX: none). */
struct search_fcount {
    uint64_t hash;
    uint32_t count;
    uint32_t tag;
};

/*
 * The doc_tags column of one committed snapshot, copied into memory (search_facets.c):
 * recipes with tags in id order, each with the numbers of its tags.
 */
struct search_tagcol {
    uint64_t snapshot;         /* of the copy; 0 = no copy */
    struct search_rental rent; /* in column pages merged */
    struct search_tagcol_row {
        uint64_t id;
        uint32_t first; /* its tags are tag[first .. the next row's first) */
    } * rows;           /* n_rows ascending by id, then one more: UINT64_MAX, n_pairs */
    uint32_t *tag;      /* n_pairs tag numbers */
    size_t n_rows, rows_cap, n_pairs, tag_cap;
    struct search_tagcol_tag {
        uint64_t hash;
        uint32_t name_off, name_len; /* in names; len UINT32_MAX: unread, -1 more: none */
    } * tags;                        /* by number */
    uint32_t *counts;                /* by number: while counting; 0 between counts */
    size_t n_tags, tags_cap, counts_cap;
    struct proj_idmap numbers; /* tag hash -> number */
    struct proj_bytes names;   /* names read from tag_names */
};
void search__tagcol_release(struct search_tagcol *tc);

/* The `words` lexicon of one committed snapshot copied into memory (search_expand.c). */
struct search_lexcopy {
    uint64_t snapshot;         /* of the copy; 0 = no copy */
    struct search_rental rent; /* in lexicon keys read from LMDB */
    struct search_lexword {
        uint32_t off, len;               /* the word's bytes in bytes */
        uint32_t count[PROJ_LANG_COUNT]; /* its value in `words` (0s if malformed) */
    } * w;                               /* n, in key order */
    size_t n, cap;
    struct proj_bytes bytes;
};
void search__lexcopy_release(struct search_lexcopy *lc);

struct proj_search_reader {
    struct proj_text *text; /* owned analyzer */
    struct search_dbs dbs;
    uint64_t snapshot; /* of the current recipe search (search__txn_snapshot) */
    struct search_plan plan;
    struct search_cands c, tmp;
    struct search_bm25 bm25;
    uint64_t n_docs;
    struct search_doc doc;
    struct proj_bytes buf; /* scratch */
    /* facet counts: open addressing by tag hash, and the slots in use */
    struct search_fslot {
        uint64_t hash;
        uint32_t count; /* 0 = empty */
    } * fslots;
    size_t fslots_n; /* power of two */
    uint32_t *fused;
    size_t n_fused, fused_cap;
    struct search_fcount *fcounts; /* the tags of the hits, counted */
    size_t n_fcounts, fcounts_cap;
    uint32_t *fseen; /* scratch: numbers of the copy's tags as first counted */
    size_t fseen_cap;
    struct search_tagcol tagcol;
    struct search_lexcopy lexcopy;
    /* stem hash -> bit set of the query words it matches (highlighting) */
    struct search_hslot {
        uint32_t hash; /* 0 = empty */
        uint64_t mask;
    } * hset;
    size_t hset_slots;   /* power of two */
    uint64_t hbloom[16]; /* bit (hash >> 22) of every hash in hset, and bit 0: most misses
                          * are told without a probe */
    int hset_words;      /* query words with a hash in hset */
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

/*
 * Give every term of r->plan its variants and document frequencies, each variant with a
 * cursor on its list (search_expand.c); close them with search__variants_close before
 * @p txn ends, whatever the result.
 */
SP_MUST_CHECK int search__expand(struct proj_search_reader *r, MDB_txn *txn, struct sp_errbuf *eb);
/* Close the cursors of the variants of @p p. */
void search__variants_close(struct search_plan *p);
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
    const struct search_lexcopy *copy;        /* not NULL: walked instead of cur */
    size_t lo, hi, at;                        /* copy: the words beginning with head; the current */
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
    size_t visited; /* keys the walk read from the lexicon's cursor (not a copy) */
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

/*
 * Iterate a DUPFIXED list: every entry (search_exec.c). @p key NULL: @p cur is already on
 * the list's key (its first value), as a variant's cursor is.
 */
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
    return proj__get64(p);
}

#endif
