/* The search view's writer object, shared by its fold (search_writer.c) and flush. */
#ifndef PROJ_SEARCH_WRITER_IMPL_H
#define PROJ_SEARCH_WRITER_IMPL_H

#include "search_internal.h"

/* The new state of one recipe or user in the current batch. */
struct search_pending {
    uint64_t id;
    uint8_t *rec; /* owned record; NULL = deleted */
    size_t len;
};

/* The pending states of one kind of entity, by id. */
struct search_pendset {
    struct proj_idmap map; /* id -> index in items */
    struct search_pending *items;
    size_t n, cap;
};

/* Per (folded word) change of the recipe lexicon over a batch. */
struct search_word_delta {
    int32_t d[PROJ_LANG_COUNT];         /* change of recipes using the word, per language */
    uint32_t stem_off[PROJ_LANG_COUNT]; /* stem the word has in that language, in stems */
    uint32_t stem_len[PROJ_LANG_COUNT];
    bool has_stem[PROJ_LANG_COUNT];
};

struct proj_search_writer {
    struct proj_text *text; /* owned analyzer */
    struct search_dbs dbs;
    bool open; /* dbs valid */
    struct search_pendset recipes, users;
    /* fold scratch */
    struct search_doc doc;
    struct proj_bytes rec;
    /* flush scratch: one entity's old and new analysis, the batch's deltas */
    struct search_doc before_doc, after_doc;
    struct search_docterms before, after;
    struct proj_strmap user_before, user_after;
    struct search_dupdelta postings, filters, user_words, doc_tags;
    uint64_t *tag_hashes; /* one recipe's tag hashes, sorted */
    size_t tag_hashes_cap;
    struct proj_strmap words; /* folded word -> index in word_delta */
    struct search_word_delta *word_delta;
    size_t word_delta_cap;
    struct proj_bytes stems;
    struct proj_strmap tags; /* folded tag -> index in tag_delta */
    int64_t *tag_delta;
    size_t tag_delta_cap;
    uint64_t append_floor; /* largest id of the records being written (MDB_APPEND above) */
    int64_t recipes_delta, users_delta;
    int64_t len_delta[PROJ_SEARCH_FIELDS];
};

/* Forget the pending states and the deltas. */
void search__writer_reset(struct proj_search_writer *w);

#endif
