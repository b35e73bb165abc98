/* Internals of the search view shared by its writer and reader (see proj/search.h). */
#ifndef PROJ_SEARCH_INTERNAL_H
#define PROJ_SEARCH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <lmdb.h>

#include "proj/search.h"
#include "proj/text.h"
#include "sp/err.h"
#include "view_codec.h"

/* ------------------------------------------------------------------ databases */

enum search_db {
    SDB_RECIPES = 0,
    SDB_POSTINGS,
    SDB_FORWARD,
    SDB_WORDS,
    SDB_WORD_STEMS,
    SDB_FILTERS,
    SDB_TAGS,
    SDB_TAG_RANK,
    SDB_USERS,
    SDB_USER_WORDS,
    SDB_STATS,
    SDB_DOC_TAGS,
    SDB_TAG_NAMES,
    SDB__COUNT,
};
_Static_assert(SDB__COUNT == PROJ_SEARCH_MAX_DBS, "PROJ_SEARCH_MAX_DBS is the database count");

struct search_dbs {
    MDB_dbi dbi[SDB__COUNT];
};

/* Open every database; @p create adds MDB_CREATE (write txn). SP_ENOTFOUND if missing. */
SP_MUST_CHECK int
search__dbs_open(MDB_txn *txn, bool create, struct search_dbs *dbs, struct sp_errbuf *eb);

/* Name of database @p db ("recipes", ...). */
const char *search__db_name(enum search_db db);

/* Stats keys. */
#define SEARCH_STATS_RECIPES "recipes"
#define SEARCH_STATS_USERS   "users"
/* Longest posting key: language byte + stem. */
#define SEARCH_KEY_MAX (1 + 2 * PROJ_TEXT_MAX_TOKEN_BYTES)
/* Longest folded tag kept (longer ones are displayed but not indexed as tags). */
#define SEARCH_TAG_MAX 255
/* Filter key kinds. */
#define SEARCH_FILTER_TAG    't'
#define SEARCH_FILTER_AUTHOR 'a'
#define SEARCH_FILTER_LANG   'l'
/* The one key of doc_tags; its values are (recipe id, tag hash) pairs. */
#define SEARCH_DOC_TAGS_KEY  "*"
#define SEARCH_DOC_TAG_BYTES 16
/* Hash of a folded tag in doc_tags and tag_names (XXH3-64). */
uint64_t search__tag_hash(const void *tag, size_t len);
/* Forward record markers. */
#define SEARCH_FWD_END 0u /* ends an item */
#define SEARCH_FWD_GAP 1u /* a position the analyzer skipped */

/* XXH32 of a stem as the forward record holds it (never a marker). */
uint32_t search__stem_hash(const void *stem, size_t len);

/* ------------------------------------------------------------------ records */

struct search_str {
    const char *s;
    uint32_t len;
};

/*
 * A recipe: the doc record decoded (strings borrowed from the record) or built from an
 * event payload (strings borrowed from the JSON, folded tags in fold_mem).
 */
struct search_doc {
    uint64_t author_id;
    char lang[4];                                 /* language subtag, NUL-terminated */
    struct search_str *items[PROJ_SEARCH_FIELDS]; /* owned arrays; title, description: 1 */
    uint32_t n[PROJ_SEARCH_FIELDS];
    uint32_t cap[PROJ_SEARCH_FIELDS];
    struct search_str *tags_folded; /* n[PROJ_SEARCH_TAGS]; len 0 = not indexed */
    uint32_t folded_cap;
    struct proj_bytes fold_mem; /* folded tags built from JSON */
};
void search__doc_release(struct search_doc *d);
/* Decode a doc record (strings borrowed from @p rec). @return 0 or SP_ECORRUPT. */
SP_MUST_CHECK int search__doc_decode(struct search_doc *d, const void *rec, size_t len);
/* Decode only the header: language, author, tags (cheap: for hits and facets). */
SP_MUST_CHECK int search__doc_decode_head(struct search_doc *d, const void *rec, size_t len);
/* Encode @p d as a doc record into @p out (reset first). @return 0 or SP_ETOOBIG. */
SP_MUST_CHECK int
search__doc_encode(const struct search_doc *d, struct proj_bytes *out, struct sp_errbuf *eb);
/*
 * Apply the fields of a RecipeCreated / RecipeUpdated payload to @p d (fields absent
 * from @p data are kept). @return 0 or SP_ESCHEMA naming the field.
 */
SP_MUST_CHECK int search__doc_from_json(struct search_doc *d, json_t *data, struct sp_errbuf *eb);
/* Set item @p i of field @p f, growing its array. */
void search__doc_set(struct search_doc *d, int f, uint32_t i, const char *s, size_t len);

/*
 * Fold a tag for indexing: proj_text's folding (NFKC, case folding, marks stripped) plus
 * white space runs made one space and trimmed. Appends to @p out.
 * @return folded length (0 = folds to nothing or longer than SEARCH_TAG_MAX); SP_EINVAL
 *         if @p s is not valid UTF-8.
 */
int search__tag_fold(const char *s, size_t len, struct proj_bytes *out);

/* A user as stored. */
struct search_user {
    struct search_str username, full_name, bio;
    bool has_full_name, has_bio;
};
SP_MUST_CHECK int search__user_decode(struct search_user *u, const void *rec, size_t len);
SP_MUST_CHECK int
search__user_encode(const struct search_user *u, struct proj_bytes *out, struct sp_errbuf *eb);

/* ------------------------------------------------------------------ document analysis */

/* What one recipe puts into the index. */
struct search_docterms {
    enum proj_lang lang;
    struct proj_strmap terms;           /* posting key (lang byte + stem) -> term index */
    uint32_t (*tf)[PROJ_SEARCH_FIELDS]; /* per term */
    size_t tf_cap;
    struct proj_strmap words; /* folded word -> word index */
    uint32_t *word_term;      /* per word: index of its stem's term */
    size_t word_term_cap;
    uint32_t len[PROJ_SEARCH_FIELDS]; /* tokens per field */
    struct proj_strmap tags;          /* distinct folded tags */
    struct proj_bytes fwd;            /* forward record */
    /* analysis state */
    int field;
    uint32_t item_pos; /* next position expected in the current item */
};
void search__docterms_release(struct search_docterms *dt);
/* Analyse @p d into @p dt (reset first). @return 0; -ENOMEM / SP_EINVAL from proj_text. */
SP_MUST_CHECK int search__analyze(struct proj_text *a,
                                  const struct search_doc *d,
                                  struct search_docterms *dt,
                                  struct sp_errbuf *eb);
/* The language of a subtag ("en" -> PROJ_LANG_EN; unknown -> PROJ_LANG_NONE). */
enum proj_lang search__lang_of(const char *subtag);
/* Offsets in a postings entry: id(8), then tf per field (u8), then len per field (u16). */
#define SEARCH_POSTING_TF  8
#define SEARCH_POSTING_LEN (8 + PROJ_SEARCH_FIELDS)
/* Encode one postings entry. */
void search__posting_encode(uint8_t out[PROJ_SEARCH_POSTING_BYTES],
                            uint64_t id,
                            const uint32_t tf[PROJ_SEARCH_FIELDS],
                            const uint32_t len[PROJ_SEARCH_FIELDS]);

/* ------------------------------------------------------------------ dup deltas */

/*
 * Changes to a DUPSORT|DUPFIXED database collected over a batch: per key, a sequence of
 * deletions and insertions of fixed-size values, applied once per key in key order.
 */
struct search_dupdelta {
    size_t val_bytes;
    struct proj_strmap keys;
    uint32_t *key_of; /* per change: key index */
    uint8_t *del;     /* per change: 1 = delete the value with this id prefix, 0 = insert */
    uint8_t *vals;    /* per change: val_bytes */
    size_t n, cap;
};
void search__dupdelta_init(struct search_dupdelta *dd, size_t val_bytes);
void search__dupdelta_release(struct search_dupdelta *dd);
void search__dupdelta_reset(struct search_dupdelta *dd);
/* Record a change; insertions of one key in value order fill pages (MDB_APPENDDUP). */
void search__dupdelta_add(
    struct search_dupdelta *dd, const void *key, size_t key_len, bool del, const void *val);
/*
 * Write every change to @p dbi: deletions remove the exact value (SP_ECORRUPT if absent),
 * runs of insertions go in with MDB_MULTIPLE. @return 0 or SP_EDB.
 */
SP_MUST_CHECK int
search__dupdelta_apply(struct search_dupdelta *dd, MDB_txn *txn, MDB_dbi dbi, struct sp_errbuf *eb);

/* ------------------------------------------------------------------ query side */

/* Read the stats of recipes: count and per-field token sums. */
SP_MUST_CHECK int search__stats_recipes(MDB_txn *txn,
                                        const struct search_dbs *dbs,
                                        uint64_t *count,
                                        uint64_t sums[PROJ_SEARCH_FIELDS],
                                        struct sp_errbuf *eb);
/* Read a u64 stat (0 when absent). */
SP_MUST_CHECK int search__stats_u64(MDB_txn *txn,
                                    const struct search_dbs *dbs,
                                    const char *key,
                                    uint64_t *out,
                                    struct sp_errbuf *eb);

#endif
