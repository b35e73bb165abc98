/*
 * The search view (DESIGN.md "Projections", "Query side"): an inverted index over recipes
 * and users in LMDB named databases, its writer (a fold of the recipe and user events,
 * buffered per batch) and its query engine (BM25F ranking, phrases, exclusion, typo and
 * prefix tolerance, tag / author / language filters, facets, highlights).
 *
 * The caller (the projector runner) owns the LMDB environment, its transactions, the
 * checkpoint and the dead letters; this module owns the databases listed below and their
 * format, PROJ_SEARCH_FORMAT. The runner stores that string and refuses a view whose
 * stored format differs.
 *
 * FORMAT. All integers are big-endian. A "posting key" is one language byte (enum
 * proj_lang: 0 none, 1 en, 2 de; the stemmer the recipe's language selects) followed by
 * the stem bytes (proj/text.h). Field order everywhere: title, tags, ingredients,
 * description, steps (enum proj_search_field).
 *
 *   recipes     id(8) -> doc record:
 *                 u8 lang_len, lang (the recipe's BCP 47 primary subtag as given, "en"
 *                 when absent), u64 author_id,
 *                 u16 n_tags, n x {u16 len, folded tag, u16 len, tag as written},
 *                 u32 len, title, u32 len, description,
 *                 u16 n, n x {u32 len, ingredient}, u16 n, n x {u32 len, step}
 *   postings    DUPSORT|DUPFIXED: posting key -> entries of PROJ_SEARCH_POSTING_BYTES,
 *                 sorted by id: id(8), tf(u8 x 5, saturating at 255: occurrences of the
 *                 stem per field), len(u16 x 5, saturating at 65535: tokens per field of
 *                 the recipe), so that BM25F never reads the doc record
 *   forward     id(8) -> u16 x 5 item counts per field, then per item (fields in order,
 *                 items in order) one u32 per token position: XXH32 (seed 0) of the stem,
 *                 0 and 1 mapped to 2 and 3; 1 = a position the analyzer skipped; 0 ends
 *                 the item. Read to verify "phrases" and to pick the snippet's item.
 *   words       folded unstemmed word -> u32 x 3: recipes using it per language byte
 *                 (none, en, de); the lexicon that prefix and typo expansion walk
 *   word_stems  DUPSORT: word -> language byte + stem, one per language whose count in
 *                 `words` is > 0 (the posting key the word produced)
 *   filters     DUPSORT|DUPFIXED: "t\0" folded tag | "a\0" author id(8) | "l\0" language
 *                 subtag -> recipe ids(8)
 *   tags        folded tag -> u32 recipe count. A tag's display form is its folded form
 *                 (proj_text's NFKC + case folding + accent stripping, white space runs
 *                 made one space, trimmed): "Quick & Easy" -> "quick & easy"
 *   tag_rank    u32 (0xFFFFFFFF - count) + folded tag -> "" (tags most used first)
 *   doc_tags    DUPSORT|DUPFIXED: "*" -> (recipe id(8), XXH3-64 of a folded tag(8)) for
 *                 every tag of every recipe, sorted: a column that facet counting merges
 *                 with the hits a page at a time
 *   tag_names   XXH3-64 of a folded tag(8) -> the folded tag (names of facet counts; two
 *                 tags with one 64-bit hash would share their counts)
 *   users       id(8) -> u8 flags (1 full_name set, 2 bio set), u16 len, username,
 *                 u16 len, full_name, u16 len, bio
 *   user_words  DUPSORT|DUPFIXED: folded word of the username (each token and the whole
 *                 folded username) or of the full name -> user ids(8)
 *   stats       "recipes" -> u64 count, u64 x 5 sums of tokens per field;
 *                 "users" -> u64 count
 *
 * Recipes and users are keyed by their ids, never by arrival order, and every count is
 * a sum over recipes, so the content of every database depends only on the last state of
 * each stream, not on how streams interleave nor on batch boundaries.
 *
 * Text analysis is proj/text.h's: a recipe's fields are analysed with the stemmer of its
 * "language" (en, de; any other language is folded only); CJK text gives bigrams.
 */
#ifndef PROJ_SEARCH_H
#define PROJ_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <lmdb.h>

#include "es/event.h"
#include "sp/err.h"

/* Format of the view's databases; stored by the runner, which refuses another. */
#define PROJ_SEARCH_FORMAT "stockpot-search/1"
/* Named databases this module opens (the runner adds its own "meta" and "dead_letters"). */
#define PROJ_SEARCH_MAX_DBS 13

/* Bytes of one postings entry: id(8) + tf(5) + len(2 x 5). */
#define PROJ_SEARCH_POSTING_BYTES 23

/* Query limits: bytes and terms of proj_search_query.text, tags in a filter. */
#define PROJ_SEARCH_MAX_QUERY_BYTES 256
#define PROJ_SEARCH_MAX_TERMS       32
#define PROJ_SEARCH_MAX_TAGS        8
#define PROJ_SEARCH_MAX_LIMIT       100
#define PROJ_SEARCH_MAX_PAGE        1000

/*
 * Expansion caps (a query never takes unbounded time): a word of >= 5 code points
 * tolerates 1 typo and of >= 9 two (restricted Damerau-Levenshtein, proj/typo.h;
 * Meilisearch's word sizes), never on its first code point (as Lucene's FuzzyQuery with
 * prefixLength 1: the walk then stays among the lexicon words of that first letter, about
 * 30 times fewer than all); the last word of a query also matches as a prefix. Each
 * expansion walks the `words` lexicon (proj_typo_expand) until it has found at most
 * PROJ_SEARCH_EXPAND_SCAN words, in lexicon order, and keeps the PROJ_SEARCH_EXPAND_WORDS
 * best: fewest typos, then most recipes, then lexicon order; of those it takes words in that
 * order until their recipes add up to PROJ_SEARCH_EXPAND_POSTINGS (at least one word).
 * A one-letter prefix thus means the few most used words of that letter, among the first
 * 1000 in lexicon order, and reads at most about that many postings more.
 */
#define PROJ_SEARCH_EXPAND_SCAN     1000
#define PROJ_SEARCH_EXPAND_WORDS    50
#define PROJ_SEARCH_EXPAND_POSTINGS 16384

/* Facets: the most used tags among all hits. */
#define PROJ_SEARCH_FACET_TAGS 20

/** Fields of a recipe, in index order. */
enum proj_search_field {
    PROJ_SEARCH_TITLE = 0,
    PROJ_SEARCH_TAGS = 1,
    PROJ_SEARCH_INGREDIENTS = 2,
    PROJ_SEARCH_DESCRIPTION = 3,
    PROJ_SEARCH_STEPS = 4,
};
#define PROJ_SEARCH_FIELDS 5

/** Name of a field as the API spells it ("title", ...). @return static; "?" if out of range. */
const char *proj_search_field_name(enum proj_search_field f);

/*
 * BM25F (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond",
 * Foundations and Trends in IR 3(4), 2009, section 4.1 "BM25F"), per query term t and
 * recipe d:
 *
 *   tf~ = sum_f weight_f * tf_f / ((1 - b_f) + b_f * len_f / avglen_f)
 *   score = idf(t) * tf~ / (k1 + tf~)
 *   idf(t) = log(1 + (N - df + 0.5) / (df + 0.5))
 *
 * idf is the non-negative variant Lucene's BM25Similarity uses; N = recipes indexed, df =
 * recipes whose field texts hold the stem; len_f = tokens of field f of d, avglen_f = mean
 * tokens of field f over all recipes (a field with avglen 0 is not normalised).
 * A recipe's score is the sum over the query's terms; for a term expanded to several
 * stems (languages, typos, prefixes) the best one counts.
 */
struct proj_bm25f_params {
    double weight[PROJ_SEARCH_FIELDS]; /* default title 4, tags 3, ingredients 2,
                                        * description 1, steps 1 */
    double b[PROJ_SEARCH_FIELDS];      /* length normalisation per field, default 0.75 */
    double k1;                         /* term frequency saturation, default 1.2 */
};

/** Fill @p p with the defaults above. */
void proj_bm25f_params_default(struct proj_bm25f_params *p);

/** idf(t) above for @p n_docs recipes of which @p df hold the term; 0 if @p n_docs is 0. */
double proj_bm25f_idf(uint64_t n_docs, uint64_t df);

/**
 * One term's BM25F score in one recipe (the formula above).
 * @param tf       occurrences of the term per field
 * @param len      tokens per field of the recipe
 * @param avg_len  mean tokens per field over the collection
 * @return the score, >= 0
 * @locality any thread
 */
double proj_bm25f_term(const struct proj_bm25f_params *p,
                       double idf,
                       const uint32_t tf[PROJ_SEARCH_FIELDS],
                       const uint32_t len[PROJ_SEARCH_FIELDS],
                       const double avg_len[PROJ_SEARCH_FIELDS]);

/* ---------------------------------------------------------------- writer (the fold) */

/** The view's writer: an analyzer, its database handles and the batch's pending changes. */
struct proj_search_writer;

/**
 * Create a writer.
 * @param[out] out  owned: free with proj_search_writer_free()
 * @return 0; -ENOMEM if the analyzer could not be made.
 * @locality any thread; then one thread at a time
 */
SP_MUST_CHECK int proj_search_writer_new(struct proj_search_writer **out);

/** Free a writer and its pending changes. NULL is a no-op. */
void proj_search_writer_free(struct proj_search_writer *w);

/**
 * Create (if missing) and open the view's databases in the write transaction @p txn;
 * call it after each open of the environment (set mdb_env_set_maxdbs to at least
 * PROJ_SEARCH_MAX_DBS plus the caller's own). The handles stay valid once @p txn commits.
 * Forgets pending changes.
 * @return 0; SP_EDB if LMDB refused (MDB_DBS_FULL, MDB_READONLY...; eb->msg names it).
 */
SP_MUST_CHECK int
proj_search_writer_open(struct proj_search_writer *w, MDB_txn *txn, struct sp_errbuf *eb);

/**
 * Fold one event into the batch's pending changes. Handles RecipeCreated, RecipeUpdated
 * (changed fields only), RecipeDeleted, UserRegistered and ProfileUpdated; any other type
 * returns 0 and changes nothing. The event passed es_event_check. Reads the view through
 * @p txn (a write transaction, possibly nested) and writes nothing to it: changes are
 * written by proj_search_flush. Created twice, an entity is replaced.
 *
 * On any error the pending changes are exactly as before the call.
 * @return 0; SP_ENOTFOUND for RecipeUpdated/RecipeDeleted/ProfileUpdated of an entity the
 *         view does not hold (a poison event); SP_ESCHEMA if a payload field the view
 *         needs is missing or mistyped (eb->field names it); SP_ETOOBIG if a text does not
 *         fit the record format; SP_EDB if LMDB failed.
 */
SP_MUST_CHECK int proj_search_fold(struct proj_search_writer *w,
                                   MDB_txn *txn,
                                   const struct es_event *ev,
                                   struct sp_errbuf *eb);

/**
 * Write the batch's pending changes in @p txn (the batch's write transaction, before its
 * checkpoint and commit): each changed recipe and user is analysed (its old version, read
 * from the view, and its new one) and every changed key of every database is written
 * once, in key order. The pending changes are gone afterwards, whatever the result; on
 * error the transaction holds part of them: the caller aborts it (proj_search_discard()
 * is then harmless).
 * @return 0; SP_EDB if LMDB failed (MDB_MAP_FULL included: eb->msg names it);
 *         SP_ECORRUPT if a stored record cannot be decoded; -ENOMEM from the stemmer.
 */
SP_MUST_CHECK int
proj_search_flush(struct proj_search_writer *w, MDB_txn *txn, struct sp_errbuf *eb);

/** Forget the batch's pending changes (the batch was rolled back). */
void proj_search_discard(struct proj_search_writer *w);

/** Number of recipes and users with pending changes (to size batches). */
size_t proj_search_pending(const struct proj_search_writer *w);

/**
 * Empty every database of the view in @p txn (a rebuild from the log) and forget pending
 * changes. @return 0; SP_EDB if LMDB failed.
 */
SP_MUST_CHECK int
proj_search_clear(struct proj_search_writer *w, MDB_txn *txn, struct sp_errbuf *eb);

/* ---------------------------------------------------------------- reader (queries) */

/**
 * The query engine: an analyzer, database handles and scratch memory. For the committed
 * snapshot its queries read (read-only transactions), it also keeps copies of the `words`
 * lexicon and of the doc_tags column in memory, each made once the queries on that snapshot
 * have done as much LMDB work as the copy costs (a view that changes faster is always read
 * from LMDB); at most about 8 MB each, larger views are always read from LMDB. Results are
 * the same either way.
 */
struct proj_search_reader;

/**
 * Create a reader and open the view's databases in @p txn (a read or write transaction
 * of the environment the view lives in). The handles are LMDB's: they stay valid in later
 * transactions only once @p txn commits (mdb_txn_commit, read-only ones included), and
 * while the environment stays open.
 * @param[out] out  owned: free with proj_search_reader_free()
 * @return 0; SP_ENOTFOUND if the view was never created (no writer opened it);
 *         SP_EDB if LMDB failed; -ENOMEM if the analyzer could not be made.
 * @locality any thread; the reader is then used by one thread at a time
 */
SP_MUST_CHECK int
proj_search_reader_open(MDB_txn *txn, struct proj_search_reader **out, struct sp_errbuf *eb);

/** Free a reader and its copies. NULL is a no-op. */
void proj_search_reader_free(struct proj_search_reader *r);

/** A recipe search. */
struct proj_search_query {
    const char *text; /* UTF-8, text_len bytes (NUL is a separator); see the query language */
    size_t text_len;  /* 1..PROJ_SEARCH_MAX_QUERY_BYTES, not only white space */
    const char *const *tags; /* n_tags tags every hit has (compared folded); may be NULL */
    size_t n_tags;           /* 0..PROJ_SEARCH_MAX_TAGS */
    int64_t author_id;       /* only this author's recipes; 0 = any */
    const char *language;    /* BCP 47 tag; hits whose language subtag is its primary
                              * subtag, stemmed as that language; NULL = any */
    unsigned limit;          /* hits per page, 1..PROJ_SEARCH_MAX_LIMIT */
    unsigned page;           /* 1-based, 1..PROJ_SEARCH_MAX_PAGE */
    bool no_facets;          /* true: skip the "facets" counting (cheaper) */
    const struct proj_bm25f_params *params; /* NULL = proj_bm25f_params_default */
};

/**
 * Search recipes.
 *
 * Query language: words are ANDed; "quoted phrases" match consecutive positions in order
 * within one field item (one ingredient line, one step); a quoted single word matches
 * exactly (no typo, no prefix); -word and -"phrase" exclude; a run of characters the
 * analyzer splits ("stir-fry", CJK bigrams) gives several ANDed words (an excluded one, a
 * phrase). The last word, when the text does not end with white space or a quote, also
 * matches as a prefix (search as you type). Words of >= 5 code points tolerate one typo,
 * >= 9 two, never on the first letter (not in phrases, exclusions, stop words; see
 * PROJ_SEARCH_EXPAND_SCAN). A stop word (English or German list, or the
 * list of @p q->language) outside a phrase is optional: it adds to the score where
 * present, unless every word of the query is a stop word. Each word is stemmed with the
 * stemmer of q->language, or else with the English and German ones, and also matched as
 * folded (for recipes in other languages and CJK bigrams). A query of separators only
 * (no word) has no hits; so has a query of exclusions only without a filter, while with a
 * filter it returns the filter's recipes minus the excluded ones.
 *
 * Ranking: fewest typos (summed over the words), then BM25F score (proj_bm25f_term, the
 * best expansion of each word), then recipe id. Execution: the required words and filters
 * are intersected smallest list first (each list read a page at a time with
 * MDB_GET_MULTIPLE, each page merged with the candidates in its range when they are about
 * as many, else matched from its smaller side), then optional words scored, exclusions
 * removed and phrases verified on the forward records of the remaining hits (a phrase of
 * common words costs a forward read per hit of its words). Only the page's hits read their
 * doc records (title, tags, highlights) and their author's user record; which of their
 * tokens match, and which item gives the snippet, comes from their forward records.
 *
 * @param[out] out  owned JSON object (json_decref):
 *   {"total_hits": n, "total_hits_exact": true (always counted exactly), "page": p,
 *    "limit": l, "has_more": bool,
 *    "hits": [{"id": "123", "title": "...", "author": {"id": "7", "username": "..." or
 *      null when the view has no such user}, "tags": [as written], "language": "en",
 *      "score": 1.23, "typos": 0,
 *      "highlight": {"title": [[start, len], ...],   (UTF-8 byte offsets into title)
 *                    "snippet": {"field": "steps", "text": "…about 160 bytes…",
 *                                "spans": [[start, len], ...]}}}],  (offsets into text)
 *    "facets": {"tags": [{"tag": "folded tag", "count": n}, ...]}}  (top
 *      PROJ_SEARCH_FACET_TAGS over all hits, exact, count desc then tag asc; counted by
 *      merging the hits with the doc_tags column a page at a time, or with the reader's
 *      copy of it; omitted with q->no_facets)
 *   The snippet comes from the item (outside the title) matching the most query words,
 *   cut at token boundaries with "…" where text was cut; a recipe matching in its title
 *   only gets the start of its description (or first ingredient) with no spans.
 * @return 0; SP_EINVAL with eb->field "q" (empty, longer than PROJ_SEARCH_MAX_QUERY_BYTES,
 *         more than PROJ_SEARCH_MAX_TERMS words, invalid UTF-8), "tags", "author_id",
 *         "language", "limit" or "page"; SP_EDB if LMDB failed; SP_ECORRUPT if a record
 *         of the view cannot be decoded.
 * @locality the reader's thread (the analyzer is not thread-safe)
 */
SP_MUST_CHECK int proj_search_recipes(struct proj_search_reader *r,
                                      MDB_txn *txn,
                                      const struct proj_search_query *q,
                                      json_t **out,
                                      struct sp_errbuf *eb);

/**
 * Search users by the words of their username and full name: every query word must begin
 * (last word) or equal (other words) a word of the user, with the typo rule of recipes.
 * Ranked by typos, then exact before prefix matches, then username (ASCII case
 * insensitive), then id.
 * @param text, len  query, rules as proj_search_query.text
 * @param limit      1..PROJ_SEARCH_MAX_LIMIT
 * @param[out] out   owned: {"total_hits": n, "hits": [{"id", "username", "full_name"
 *                   (null when unset)}]}
 * @return 0; SP_EINVAL ("q" or "limit"); SP_EDB; SP_ECORRUPT.
 * @locality the reader's thread
 */
SP_MUST_CHECK int proj_search_users(struct proj_search_reader *r,
                                    MDB_txn *txn,
                                    const char *text,
                                    size_t len,
                                    unsigned limit,
                                    json_t **out,
                                    struct sp_errbuf *eb);

/**
 * Tags beginning with @p prefix (folded as tags are; "" = all), most used first, ties by
 * tag. @param limit 1..PROJ_SEARCH_MAX_LIMIT
 * @param[out] out  owned: {"tags": [{"tag": "folded tag", "count": n}, ...]}
 * @return 0; SP_EINVAL ("q": invalid UTF-8 or longer than PROJ_SEARCH_MAX_QUERY_BYTES;
 *         "limit"); SP_EDB.
 * @locality the reader's thread
 */
SP_MUST_CHECK int proj_search_tags(struct proj_search_reader *r,
                                   MDB_txn *txn,
                                   const char *prefix,
                                   size_t len,
                                   unsigned limit,
                                   json_t **out,
                                   struct sp_errbuf *eb);

/** What the view holds (for /metrics). */
struct proj_search_stats {
    uint64_t recipes; /* recipes indexed */
    uint64_t users;   /* users indexed */
    uint64_t words;   /* distinct folded words of recipes (the lexicon) */
};

/** Read the view's counts. @return 0; SP_EDB. @locality the reader's thread */
SP_MUST_CHECK int proj_search_stats(struct proj_search_reader *r,
                                    MDB_txn *txn,
                                    struct proj_search_stats *out,
                                    struct sp_errbuf *eb);

#endif
