/*
 * The search view's flush: turns the batch's pending recipe and user states into changes
 * of every database (old version analysed against new), then writes each changed key once,
 * in key order.
 */
#include <stdlib.h>
#include <string.h>

#include "search_writer_impl.h"
#include "sp/alloc.h"
#include "sp/banned.h"

static int pending_cmp(const void *pa, const void *pb)
{
    const struct search_pending *a = pa, *b = pb;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* ------------------------------------------------------------------ recipe deltas */

static void
word_delta(struct proj_search_writer *w, const struct search_docterms *dt, uint32_t word, int32_t d)
{
    size_t len, stem_len;
    const uint8_t *key = proj__strmap_key(&dt->words, word, &len);
    const uint8_t *stem = proj__strmap_key(&dt->terms, dt->word_term[word], &stem_len);
    bool added;
    uint32_t i = proj__strmap_put(&w->words, key, len, &added);
    struct search_word_delta *wd;

    if (added) {
        PROJ_GROW(w->word_delta, w->word_delta_cap, (size_t)i + 1);
        memset(&w->word_delta[i], 0, sizeof(w->word_delta[i]));
    }
    wd = &w->word_delta[i];
    wd->d[dt->lang] += d;
    if (!wd->has_stem[dt->lang]) {
        wd->has_stem[dt->lang] = true;
        wd->stem_off[dt->lang] = (uint32_t)w->stems.len;
        wd->stem_len[dt->lang] = (uint32_t)stem_len - 1;
        proj__bytes_add(&w->stems, stem + 1, stem_len - 1);
    }
}

static void tag_delta(struct proj_search_writer *w, const uint8_t *tag, size_t len, int d)
{
    bool added;
    uint32_t i = proj__strmap_put(&w->tags, tag, len, &added);

    if (added) {
        PROJ_GROW(w->tag_delta, w->tag_delta_cap, (size_t)i + 1);
        w->tag_delta[i] = 0;
    }
    w->tag_delta[i] += d;
}

/* Posting changes of recipe @p id: entries of @p old (may be NULL) -> entries of @p now. */
static void postings_delta(struct proj_search_writer *w,
                           uint64_t id,
                           const struct search_docterms *old,
                           const struct search_docterms *now)
{
    uint8_t ea[PROJ_SEARCH_POSTING_BYTES], eb_[PROJ_SEARCH_POSTING_BYTES];
    size_t len;

    for (uint32_t t = 0; now != NULL && t < now->terms.n; t++) {
        const uint8_t *key = proj__strmap_key(&now->terms, t, &len);
        int64_t o = old ? proj__strmap_get(&old->terms, key, len) : -1;
        search__posting_encode(ea, id, now->tf[t], now->len);
        if (o >= 0) {
            search__posting_encode(eb_, id, old->tf[o], old->len);
            if (memcmp(ea, eb_, sizeof(ea)) == 0)
                continue;
            search__dupdelta_add(&w->postings, key, len, true, eb_);
        }
        search__dupdelta_add(&w->postings, key, len, false, ea);
    }
    for (uint32_t t = 0; old != NULL && t < old->terms.n; t++) {
        const uint8_t *key = proj__strmap_key(&old->terms, t, &len);
        if (now == NULL || proj__strmap_get(&now->terms, key, len) < 0) {
            search__posting_encode(eb_, id, old->tf[t], old->len);
            search__dupdelta_add(&w->postings, key, len, true, eb_);
        }
    }
}

/* Filter key "t\0<tag>", "a\0<author>" or "l\0<lang>" in @p buf. @return its length. */
static size_t filter_key(uint8_t *buf, char kind, const void *v, size_t len)
{
    buf[0] = (uint8_t)kind;
    buf[1] = 0;
    memcpy(buf + 2, v, len);
    return len + 2;
}

static int u64_cmp(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

/* doc_tags pairs of the @p n tag hashes in w->tag_hashes: sorted, so they append. */
static void doc_tags_side(struct proj_search_writer *w, const uint8_t idb[8], size_t n, int sign)
{
    uint8_t pair[SEARCH_DOC_TAG_BYTES];

    if (n > 1)
        qsort(w->tag_hashes, n, sizeof(*w->tag_hashes), u64_cmp);
    memcpy(pair, idb, 8);
    for (size_t i = 0; i < n; i++) {
        proj__be64(pair + 8, w->tag_hashes[i]);
        search__dupdelta_add(&w->doc_tags, SEARCH_DOC_TAGS_KEY, 1, sign < 0, pair);
    }
}

/* Add (or remove, @p sign < 0) the tag, author and language entries of a recipe. */
static void filters_side(struct proj_search_writer *w,
                         uint64_t id,
                         const struct search_doc *d,
                         const struct search_docterms *dt,
                         const struct search_docterms *other,
                         int sign)
{
    uint8_t key[2 + SEARCH_TAG_MAX], idb[8], ab[8];
    size_t len, n = 0;

    proj__be64(idb, id);
    for (uint32_t t = 0; t < dt->tags.n; t++) {
        const uint8_t *tag = proj__strmap_key(&dt->tags, t, &len);
        if (other != NULL && proj__strmap_get(&other->tags, tag, len) >= 0)
            continue;
        tag_delta(w, tag, len, sign);
        search__dupdelta_add(&w->filters, key, filter_key(key, SEARCH_FILTER_TAG, tag, len),
                             sign < 0, idb);
        PROJ_GROW(w->tag_hashes, w->tag_hashes_cap, n + 1);
        w->tag_hashes[n++] = search__tag_hash(tag, len);
    }
    doc_tags_side(w, idb, n, sign);
    proj__be64(ab, d->author_id);
    search__dupdelta_add(&w->filters, key, filter_key(key, SEARCH_FILTER_AUTHOR, ab, 8), sign < 0,
                         idb);
    search__dupdelta_add(&w->filters, key,
                         filter_key(key, SEARCH_FILTER_LANG, d->lang, strlen(d->lang)), sign < 0,
                         idb);
}

static void recipe_side(struct proj_search_writer *w,
                        uint64_t id,
                        const struct search_doc *d,
                        const struct search_docterms *dt,
                        const struct search_docterms *other,
                        int sign)
{
    for (uint32_t i = 0; i < dt->words.n; i++)
        word_delta(w, dt, i, sign);
    for (int f = 0; f < PROJ_SEARCH_FIELDS; f++)
        w->len_delta[f] += sign * (int64_t)dt->len[f];
    w->recipes_delta += sign;
    filters_side(w, id, d, dt, other, sign);
}

/* Read and analyse the stored version of recipe @p id into w->before. 1 if none. */
static int
recipe_before(struct proj_search_writer *w, MDB_txn *txn, uint64_t id, struct sp_errbuf *eb)
{
    uint8_t key[8];
    MDB_val k = {8, key}, v;
    int rc;

    proj__be64(key, id);
    rc = mdb_get(txn, w->dbs.dbi[SDB_RECIPES], &k, &v);
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not read the search view");
    if (search__doc_decode(&w->before_doc, v.mv_data, v.mv_size) != 0)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "search record of recipe %llu is corrupt",
                          (unsigned long long)id);
    return search__analyze(w->text, &w->before_doc, &w->before, eb);
}

/*
 * The largest id @p dbi holds (0 if none): records of larger ids, written in id order,
 * can be appended (MDB_APPEND), which fills pages instead of splitting them in halves.
 */
static int append_floor(MDB_txn *txn, MDB_dbi dbi, uint64_t *floor, struct sp_errbuf *eb)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);

    *floor = 0;
    if (rc == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        if (rc == 0 && k.mv_size == 8)
            *floor = proj__get64(k.mv_data);
        mdb_cursor_close(cur);
    }
    return rc == 0 || rc == MDB_NOTFOUND ? 0
                                         : proj__mdb_err(eb, rc, "could not read the search view");
}

/* Write (or delete, @p p->rec NULL) the doc and forward records of one recipe. */
static int recipe_records(struct proj_search_writer *w,
                          MDB_txn *txn,
                          const struct search_pending *p,
                          bool existed,
                          struct sp_errbuf *eb)
{
    uint8_t key[8];
    MDB_val k = {8, key}, v = {p->len, p->rec}, f = {w->after.fwd.len, w->after.fwd.data};
    unsigned flags = p->id > w->append_floor ? MDB_APPEND : 0;
    int rc;

    proj__be64(key, p->id);
    if (p->rec == NULL) {
        rc = existed ? mdb_del(txn, w->dbs.dbi[SDB_RECIPES], &k, NULL) : 0;
        if (rc == 0 && existed)
            rc = mdb_del(txn, w->dbs.dbi[SDB_FORWARD], &k, NULL);
    } else {
        rc = mdb_put(txn, w->dbs.dbi[SDB_RECIPES], &k, &v, flags);
        if (rc == 0)
            rc = mdb_put(txn, w->dbs.dbi[SDB_FORWARD], &k, &f, flags);
    }
    return rc != 0 ? proj__mdb_err(eb, rc, "could not write a search record") : 0;
}

static int flush_recipe(struct proj_search_writer *w,
                        MDB_txn *txn,
                        const struct search_pending *p,
                        struct sp_errbuf *eb)
{
    int rc = recipe_before(w, txn, p->id, eb);
    bool existed = rc == 0;
    const struct search_docterms *old = existed ? &w->before : NULL, *now = NULL;

    if (rc < 0)
        return rc;
    if (p->rec != NULL) {
        if (search__doc_decode(&w->after_doc, p->rec, p->len) != 0)
            return sp_err_set(eb, SP_ECORRUPT, NULL, "pending search record is corrupt");
        rc = search__analyze(w->text, &w->after_doc, &w->after, eb);
        if (rc != 0)
            return rc;
        now = &w->after;
    }
    postings_delta(w, p->id, old, now);
    if (old != NULL)
        recipe_side(w, p->id, &w->before_doc, old, now, -1);
    if (now != NULL)
        recipe_side(w, p->id, &w->after_doc, now, old, +1);
    return recipe_records(w, txn, p, existed, eb);
}

/* ------------------------------------------------------------------ lexicon, tags, stats */

static int word_stem_change(struct proj_search_writer *w,
                            MDB_txn *txn,
                            MDB_val *word,
                            const struct search_word_delta *wd,
                            int lang,
                            bool add)
{
    uint8_t buf[SEARCH_KEY_MAX];
    size_t n = wd->stem_len[lang] < SEARCH_KEY_MAX - 1 ? wd->stem_len[lang] : SEARCH_KEY_MAX - 1;
    MDB_val k = *word, v = {n + 1, buf};

    buf[0] = (uint8_t)lang;
    memcpy(buf + 1, w->stems.data + wd->stem_off[lang], n);
    int rc = add ? mdb_put(txn, w->dbs.dbi[SDB_WORD_STEMS], &k, &v, MDB_NODUPDATA)
                 : mdb_del(txn, w->dbs.dbi[SDB_WORD_STEMS], &k, &v);
    return rc == MDB_KEYEXIST ? 0 : rc;
}

static int flush_word(struct proj_search_writer *w, MDB_txn *txn, uint32_t i, struct sp_errbuf *eb)
{
    size_t len;
    const uint8_t *word = proj__strmap_key(&w->words, i, &len);
    const struct search_word_delta *wd = &w->word_delta[i];
    uint8_t val[4 * PROJ_LANG_COUNT] = {0};
    MDB_val k = {len, proj__mdb_data(word)}, v;
    int rc = mdb_get(txn, w->dbs.dbi[SDB_WORDS], &k, &v);
    bool any = false;

    if (rc == 0 && v.mv_size == sizeof(val))
        memcpy(val, v.mv_data, sizeof(val));
    else if (rc != MDB_NOTFOUND)
        return rc != 0 ? proj__mdb_err(eb, rc, "could not read the search lexicon")
                       : sp_err_set(eb, SP_ECORRUPT, NULL, "search lexicon entry is corrupt");
    rc = 0;
    for (int l = 0; l < PROJ_LANG_COUNT && rc == 0; l++) {
        uint8_t *at = val + (size_t)4 * (size_t)l;
        int64_t old = proj__get32(at), now = old + wd->d[l];
        if (now < 0)
            return sp_err_set(eb, SP_ECORRUPT, NULL, "search lexicon count went negative");
        proj__be32(at, (uint32_t)now);
        any = any || now > 0;
        if ((old == 0) != (now == 0))
            rc = word_stem_change(w, txn, &k, wd, l, now > 0);
    }
    k = (MDB_val){len, proj__mdb_data(word)};
    v = (MDB_val){sizeof(val), val};
    if (rc == 0)
        rc = any ? mdb_put(txn, w->dbs.dbi[SDB_WORDS], &k, &v, 0)
                 : mdb_del(txn, w->dbs.dbi[SDB_WORDS], &k, NULL);
    return rc != 0 ? proj__mdb_err(eb, rc, "could not write the search lexicon") : 0;
}

static int flush_words(struct proj_search_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    uint32_t *order = proj__strmap_sorted(&w->words);
    int rc = 0;

    for (size_t i = 0; i < w->words.n && rc == 0; i++) {
        const struct search_word_delta *wd = &w->word_delta[order[i]];
        if (wd->d[0] != 0 || wd->d[1] != 0 || wd->d[2] != 0)
            rc = flush_word(w, txn, order[i], eb);
    }
    free(order);
    return rc;
}

/* tag_rank key of @p tag used by @p count recipes. */
static MDB_val rank_key(uint8_t *buf, const uint8_t *tag, size_t len, uint32_t count)
{
    proj__be32(buf, UINT32_MAX - count);
    memcpy(buf + 4, tag, len);
    return (MDB_val){len + 4, buf};
}

/* Add or remove the tag_names entry of a tag coming into or going out of use. */
static int
tag_name(struct proj_search_writer *w, MDB_txn *txn, const uint8_t *tag, size_t len, bool add)
{
    uint8_t hb[8];
    MDB_val k = {8, hb}, v = {len, proj__mdb_data(tag)};

    proj__be64(hb, search__tag_hash(tag, len));
    return add ? mdb_put(txn, w->dbs.dbi[SDB_TAG_NAMES], &k, &v, 0)
               : mdb_del(txn, w->dbs.dbi[SDB_TAG_NAMES], &k, NULL);
}

static int flush_tag(struct proj_search_writer *w, MDB_txn *txn, uint32_t i, struct sp_errbuf *eb)
{
    size_t len;
    const uint8_t *tag = proj__strmap_key(&w->tags, i, &len);
    uint8_t rk[4 + SEARCH_TAG_MAX], cnt[4];
    MDB_val k = {len, proj__mdb_data(tag)}, v, empty = {0, NULL}, r;
    int64_t old = 0, now;
    int rc = mdb_get(txn, w->dbs.dbi[SDB_TAGS], &k, &v);

    if (rc == 0 && v.mv_size == 4)
        old = proj__get32(v.mv_data);
    else if (rc != MDB_NOTFOUND)
        return rc != 0 ? proj__mdb_err(eb, rc, "could not read the search tags")
                       : sp_err_set(eb, SP_ECORRUPT, NULL, "search tag count is corrupt");
    now = old + w->tag_delta[i];
    if (now < 0)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "search tag count went negative");
    r = rank_key(rk, tag, len, (uint32_t)old);
    rc = old > 0 ? mdb_del(txn, w->dbs.dbi[SDB_TAG_RANK], &r, NULL) : 0;
    proj__be32(cnt, (uint32_t)now);
    v = (MDB_val){4, cnt};
    k = (MDB_val){len, proj__mdb_data(tag)};
    if (rc == 0)
        rc = now > 0 ? mdb_put(txn, w->dbs.dbi[SDB_TAGS], &k, &v, 0)
                     : mdb_del(txn, w->dbs.dbi[SDB_TAGS], &k, NULL);
    r = rank_key(rk, tag, len, (uint32_t)now);
    if (rc == 0 && now > 0)
        rc = mdb_put(txn, w->dbs.dbi[SDB_TAG_RANK], &r, &empty, 0);
    if (rc == 0 && (old == 0) != (now == 0))
        rc = tag_name(w, txn, tag, len, now > 0);
    return rc != 0 ? proj__mdb_err(eb, rc, "could not write the search tags") : 0;
}

static int flush_tags(struct proj_search_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    uint32_t *order = proj__strmap_sorted(&w->tags);
    int rc = 0;

    for (size_t i = 0; i < w->tags.n && rc == 0; i++)
        if (w->tag_delta[order[i]] != 0)
            rc = flush_tag(w, txn, order[i], eb);
    free(order);
    return rc;
}

static int put_stat(struct proj_search_writer *w,
                    MDB_txn *txn,
                    const char *key,
                    const uint64_t *vals,
                    size_t n,
                    struct sp_errbuf *eb)
{
    uint8_t buf[8 * (1 + PROJ_SEARCH_FIELDS)];
    MDB_val k = {strlen(key), proj__mdb_data(key)}, v = {8 * n, buf};

    for (size_t i = 0; i < n; i++)
        proj__be64(buf + 8 * i, vals[i]);
    int rc = mdb_put(txn, w->dbs.dbi[SDB_STATS], &k, &v, 0);
    return rc != 0 ? proj__mdb_err(eb, rc, "could not write the search stats") : 0;
}

static int flush_stats(struct proj_search_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    uint64_t vals[1 + PROJ_SEARCH_FIELDS], users;
    int rc = search__stats_recipes(txn, &w->dbs, &vals[0], vals + 1, eb);

    if (rc == 0 && w->recipes.n > 0) {
        vals[0] += (uint64_t)w->recipes_delta;
        for (int f = 0; f < PROJ_SEARCH_FIELDS; f++)
            vals[1 + f] += (uint64_t)w->len_delta[f];
        rc = put_stat(w, txn, SEARCH_STATS_RECIPES, vals, 1 + PROJ_SEARCH_FIELDS, eb);
    }
    if (rc == 0)
        rc = search__stats_u64(txn, &w->dbs, SEARCH_STATS_USERS, &users, eb);
    if (rc == 0 && w->users.n > 0) {
        users += (uint64_t)w->users_delta;
        rc = put_stat(w, txn, SEARCH_STATS_USERS, &users, 1, eb);
    }
    return rc;
}

static int flush_recipes(struct proj_search_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    int rc = 0;

    if (w->recipes.n > 1)
        qsort(w->recipes.items, w->recipes.n, sizeof(*w->recipes.items), pending_cmp);
    rc = append_floor(txn, w->dbs.dbi[SDB_RECIPES], &w->append_floor, eb);
    for (size_t i = 0; i < w->recipes.n && rc == 0; i++)
        rc = flush_recipe(w, txn, &w->recipes.items[i], eb);
    if (rc == 0)
        rc = search__dupdelta_apply(&w->postings, txn, w->dbs.dbi[SDB_POSTINGS], eb);
    if (rc == 0)
        rc = search__dupdelta_apply(&w->filters, txn, w->dbs.dbi[SDB_FILTERS], eb);
    if (rc == 0)
        rc = search__dupdelta_apply(&w->doc_tags, txn, w->dbs.dbi[SDB_DOC_TAGS], eb);
    if (rc == 0)
        rc = flush_words(w, txn, eb);
    if (rc == 0)
        rc = flush_tags(w, txn, eb);
    return rc;
}

/* ------------------------------------------------------------------ users */

static int on_user_token(const struct proj_token *tok, void *ud)
{
    bool added;

    (void)proj__strmap_put(ud, tok->word, tok->word_len, &added);
    return 0;
}

/* The folded words a user is found by (username tokens, whole username, full name). */
static int user_words(struct proj_search_writer *w,
                      const struct search_user *u,
                      struct proj_strmap *set,
                      struct sp_errbuf *eb)
{
    const char *whole;
    size_t whole_len;
    bool added;
    int rc;

    proj__strmap_reset(set);
    rc = proj_text_analyze(w->text, PROJ_LANG_NONE, u->username.s, u->username.len, on_user_token,
                           set);
    if (rc == 0 && proj_text_fold(w->text, u->username.s, u->username.len, &whole, &whole_len) == 0)
        (void)proj__strmap_put(set, whole, whole_len, &added);
    if (rc == 0 && u->has_full_name)
        rc = proj_text_analyze(w->text, PROJ_LANG_NONE, u->full_name.s, u->full_name.len,
                               on_user_token, set);
    return rc != 0 ? sp_err_set(eb, rc, NULL, "could not analyse a user: %s", sp_strerror(rc)) : 0;
}

static void user_words_delta(struct proj_search_writer *w,
                             uint64_t id,
                             const struct proj_strmap *from,
                             const struct proj_strmap *to,
                             bool del)
{
    uint8_t idb[8];
    size_t len;

    proj__be64(idb, id);
    for (uint32_t i = 0; i < from->n; i++) {
        const uint8_t *word = proj__strmap_key(from, i, &len);
        if (to == NULL || proj__strmap_get(to, word, len) < 0)
            search__dupdelta_add(&w->user_words, word, len, del, idb);
    }
}

static int flush_user(struct proj_search_writer *w,
                      MDB_txn *txn,
                      const struct search_pending *p,
                      struct sp_errbuf *eb)
{
    struct search_user before, after;
    uint8_t key[8];
    MDB_val k = {8, key}, v;
    int rc;

    proj__be64(key, p->id);
    rc = mdb_get(txn, w->dbs.dbi[SDB_USERS], &k, &v);
    bool existed = rc == 0;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return proj__mdb_err(eb, rc, "could not read the search view");
    if (existed && search__user_decode(&before, v.mv_data, v.mv_size) != 0)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "search record of user %llu is corrupt",
                          (unsigned long long)p->id);
    if (search__user_decode(&after, p->rec, p->len) != 0)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "pending search record is corrupt");
    proj__strmap_reset(&w->user_before);
    rc = existed ? user_words(w, &before, &w->user_before, eb) : 0;
    if (rc == 0)
        rc = user_words(w, &after, &w->user_after, eb);
    if (rc != 0)
        return rc;
    user_words_delta(w, p->id, &w->user_before, &w->user_after, true);
    user_words_delta(w, p->id, &w->user_after, &w->user_before, false);
    w->users_delta += existed ? 0 : 1;
    k = (MDB_val){8, key};
    v = (MDB_val){p->len, p->rec};
    rc = mdb_put(txn, w->dbs.dbi[SDB_USERS], &k, &v, p->id > w->append_floor ? MDB_APPEND : 0);
    return rc != 0 ? proj__mdb_err(eb, rc, "could not write a search record") : 0;
}

static int flush_users(struct proj_search_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    int rc = 0;

    if (w->users.n > 1)
        qsort(w->users.items, w->users.n, sizeof(*w->users.items), pending_cmp);
    rc = append_floor(txn, w->dbs.dbi[SDB_USERS], &w->append_floor, eb);
    for (size_t i = 0; i < w->users.n && rc == 0; i++)
        rc = flush_user(w, txn, &w->users.items[i], eb);
    if (rc == 0)
        rc = search__dupdelta_apply(&w->user_words, txn, w->dbs.dbi[SDB_USER_WORDS], eb);
    return rc;
}

int proj_search_flush(struct proj_search_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    int rc;

    SP_ASSERT(w->open);
    /* the pending sets are sorted in place: their id maps are stale from here on */
    rc = flush_recipes(w, txn, eb);
    if (rc == 0)
        rc = flush_users(w, txn, eb);
    if (rc == 0)
        rc = flush_stats(w, txn, eb);
    search__writer_reset(w);
    return rc;
}
