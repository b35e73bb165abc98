/* The search view's databases (names, flags, opening), its key codecs and LMDB errors. */
#include <string.h>

#include <xxhash.h>

#include "search_internal.h"
#include "sp/banned.h"

static const struct {
    const char *name;
    unsigned flags;
} search_db_defs[SDB__COUNT] = {
    [SDB_RECIPES] = {"recipes", 0},
    [SDB_POSTINGS] = {"postings", MDB_DUPSORT | MDB_DUPFIXED},
    [SDB_FORWARD] = {"forward", 0},
    [SDB_WORDS] = {"words", 0},
    [SDB_WORD_STEMS] = {"word_stems", MDB_DUPSORT},
    [SDB_FILTERS] = {"filters", MDB_DUPSORT | MDB_DUPFIXED},
    [SDB_TAGS] = {"tags", 0},
    [SDB_TAG_RANK] = {"tag_rank", 0},
    [SDB_USERS] = {"users", 0},
    [SDB_USER_WORDS] = {"user_words", MDB_DUPSORT | MDB_DUPFIXED},
    [SDB_STATS] = {"stats", 0},
    [SDB_DOC_TAGS] = {"doc_tags", MDB_DUPSORT | MDB_DUPFIXED},
    [SDB_TAG_NAMES] = {"tag_names", 0},
};

const char *search__db_name(enum search_db db)
{
    return (unsigned)db < SDB__COUNT ? search_db_defs[db].name : "?";
}

int search__dbs_open(MDB_txn *txn, bool create, struct search_dbs *dbs, struct sp_errbuf *eb)
{
    for (int i = 0; i < SDB__COUNT; i++) {
        unsigned flags = search_db_defs[i].flags | (create ? MDB_CREATE : 0);
        int rc = mdb_dbi_open(txn, search_db_defs[i].name, flags, &dbs->dbi[i]);
        if (rc == MDB_NOTFOUND)
            return sp_err_set(eb, SP_ENOTFOUND, NULL, "search view has no database \"%s\"",
                              search_db_defs[i].name);
        if (rc != 0)
            return sp_err_set(eb, SP_EDB, NULL, "could not open search database \"%s\": %s",
                              search_db_defs[i].name, mdb_strerror(rc));
    }
    return 0;
}

const char *proj_search_field_name(enum proj_search_field f)
{
    static const char *const names[PROJ_SEARCH_FIELDS] = {"title", "tags", "ingredients",
                                                          "description", "steps"};
    return (unsigned)f < PROJ_SEARCH_FIELDS ? names[f] : "?";
}

uint32_t search__stem_hash(const void *stem, size_t len)
{
    uint32_t h = XXH32(stem, len, 0);
    return h <= SEARCH_FWD_GAP ? h + 2 : h;
}

uint64_t search__tag_hash(const void *tag, size_t len)
{
    return XXH3_64bits(tag, len);
}

enum proj_lang search__lang_of(const char *subtag)
{
    enum proj_lang lang = PROJ_LANG_NONE;

    if (proj_lang_parse(subtag, &lang) != 0)
        return PROJ_LANG_NONE;
    return lang;
}

void search__posting_encode(uint8_t out[PROJ_SEARCH_POSTING_BYTES],
                            uint64_t id,
                            const uint32_t tf[PROJ_SEARCH_FIELDS],
                            const uint32_t len[PROJ_SEARCH_FIELDS])
{
    proj__be64(out, id);
    for (size_t f = 0; f < PROJ_SEARCH_FIELDS; f++) {
        out[SEARCH_POSTING_TF + f] = (uint8_t)(tf[f] > 255 ? 255 : tf[f]);
        proj__be16(out + SEARCH_POSTING_LEN + 2 * f, (uint16_t)(len[f] > 65535 ? 65535 : len[f]));
    }
}

int search__stats_u64(MDB_txn *txn,
                      const struct search_dbs *dbs,
                      const char *key,
                      uint64_t *out,
                      struct sp_errbuf *eb)
{
    MDB_val k = {strlen(key), proj__mdb_data(key)}, v;
    int rc = mdb_get(txn, dbs->dbi[SDB_STATS], &k, &v);

    *out = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not read search stats");
    if (v.mv_size < 8)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "search stat \"%s\" is %zu bytes", key, v.mv_size);
    *out = proj__get64(v.mv_data);
    return 0;
}

int search__stats_recipes(MDB_txn *txn,
                          const struct search_dbs *dbs,
                          uint64_t *count,
                          uint64_t sums[PROJ_SEARCH_FIELDS],
                          struct sp_errbuf *eb)
{
    MDB_val k = {strlen(SEARCH_STATS_RECIPES), proj__mdb_data(SEARCH_STATS_RECIPES)}, v;
    int rc = mdb_get(txn, dbs->dbi[SDB_STATS], &k, &v);

    *count = 0;
    memset(sums, 0, PROJ_SEARCH_FIELDS * sizeof(*sums));
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not read search stats");
    if (v.mv_size != (size_t)8 * (1 + PROJ_SEARCH_FIELDS))
        return sp_err_set(eb, SP_ECORRUPT, NULL, "search stat \"recipes\" is %zu bytes", v.mv_size);
    *count = proj__get64(v.mv_data);
    for (size_t f = 0; f < PROJ_SEARCH_FIELDS; f++)
        sums[f] = proj__get64((const uint8_t *)v.mv_data + 8 * (1 + f));
    return 0;
}
