/* Test support of the search view (see search_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "search_fixture.h"
#include "sp/banned.h"

/* The view's databases, for dumps (proj/search.h "FORMAT"). */
static const char *const sfx_dbs[] = {"recipes", "postings", "forward",  "words", "word_stems",
                                      "filters", "tags",     "tag_rank", "users", "user_words",
                                      "stats",   "doc_tags", "tag_names"};

void sfx_open(struct sfx *f, size_t map_bytes)
{
    MDB_txn *txn;

    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/sp-search-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(mdb_env_create(&f->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(f->env, PROJ_SEARCH_MAX_DBS + 2), 0);
    assert_int_equal(mdb_env_set_mapsize(f->env, map_bytes ? map_bytes : 64U << 20), 0);
    assert_int_equal(mdb_env_open(f->env, f->dir, MDB_NOSYNC, 0600), 0);
    assert_int_equal(proj_search_writer_new(&f->w), 0);
    assert_int_equal(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
    assert_int_equal(proj_search_writer_open(f->w, txn, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

void sfx_close(struct sfx *f)
{
    char path[128];

    proj_search_reader_free(f->r);
    proj_search_writer_free(f->w);
    mdb_env_close(f->env);
    snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", f->dir);
    unlink(path);
    rmdir(f->dir);
}

void sfx_event(struct es_event *ev,
               const char *type,
               const char *category,
               uint64_t id,
               int64_t version,
               json_t *data)
{
    char stream[64];

    snprintf(stream, sizeof(stream), "%s-%llu", category, (unsigned long long)id);
    es_event_init(ev);
    assert_int_equal(es_event_make(ev, type, stream, version, NULL, NULL, NULL, data), 0);
}

void sfx_recipe(struct es_event *ev,
                uint64_t id,
                uint64_t author,
                const char *lang,
                const char *title,
                const char *description,
                json_t *ingredients,
                json_t *steps,
                json_t *tags)
{
    char rid[24], aid[24];
    json_t *data;

    snprintf(rid, sizeof(rid), "%llu", (unsigned long long)id);
    snprintf(aid, sizeof(aid), "%llu", (unsigned long long)author);
    data = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:[]}", "recipe_id", rid, "author_id", aid,
                     "title", title, "description", description, "ingredients", ingredients,
                     "steps", steps, "tags", tags, "image_media_ids");
    assert_non_null(data);
    if (lang != NULL)
        json_object_set_new(data, "language", json_string(lang));
    sfx_event(ev, "RecipeCreated", "recipe", id, 1, data);
}

int sfx_batch(struct sfx *f, struct es_event *evs, size_t n, int *rcs)
{
    MDB_txn *txn, *child;
    int rc;

    assert_int_equal(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
    for (size_t i = 0; i < n; i++) {
        struct sp_errbuf eb;
        assert_int_equal(mdb_txn_begin(f->env, txn, 0, &child), 0);
        rc = proj_search_fold(f->w, child, &evs[i], &eb);
        if (rcs != NULL)
            rcs[i] = rc;
        if (rc == 0)
            assert_int_equal(mdb_txn_commit(child), 0);
        else
            mdb_txn_abort(child);
    }
    struct sp_errbuf eb = {{0}, {0}};
    rc = proj_search_flush(f->w, txn, &eb);
    if (rc == 0) {
        assert_int_equal(mdb_txn_commit(txn), 0);
    } else {
        mdb_txn_abort(txn);
        proj_search_discard(f->w);
        print_message("flush: %s\n", eb.msg);
    }
    return rc;
}

json_t *sfx_search(struct sfx *f, const struct proj_search_query *q, int *rc)
{
    MDB_txn *txn;
    json_t *out = NULL;
    struct sp_errbuf eb = {{0}, {0}};

    assert_int_equal(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
    if (f->r == NULL)
        assert_int_equal(proj_search_reader_open(txn, &f->r, NULL), 0);
    *rc = proj_search_recipes(f->r, txn, q, &out, &eb);
    mdb_txn_commit(txn);
    if (*rc != 0) {
        print_message("search: %s (%s)\n", eb.msg, eb.field);
        assert_null(out);
    }
    return out;
}

void sfx_hit_ids(const json_t *res, char *out, size_t out_size)
{
    json_t *hits = json_object_get(res, "hits"), *h;
    size_t i, len = 0;

    out[0] = '\0';
    json_array_foreach(hits, i, h) {
        int n = snprintf(out + len, out_size - len, "%s%s", i ? "," : "",
                         json_string_value(json_object_get(h, "id")));
        assert_true(n > 0 && (size_t)n < out_size - len);
        len += (size_t)n;
    }
}

json_t *sfx_q(struct sfx *f, const char *text, char *ids, size_t ids_size)
{
    struct proj_search_query q = {.text = text, .text_len = strlen(text), .limit = 20, .page = 1};
    int rc;
    json_t *res = sfx_search(f, &q, &rc);

    assert_int_equal(rc, 0);
    sfx_hit_ids(res, ids, ids_size);
    return res;
}

static void dump_db(MDB_txn *txn, const char *name, struct sp_buf *out)
{
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    assert_int_equal(mdb_dbi_open(txn, name, 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    assert_int_equal(sp_buf_addf(out, "[%s]", name), 0);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        assert_int_equal(sp_buf_addf(out, "%zu:", k.mv_size), 0);
        assert_int_equal(sp_buf_add(out, k.mv_data, k.mv_size), 0);
        assert_int_equal(sp_buf_addf(out, "%zu:", v.mv_size), 0);
        assert_int_equal(sp_buf_add(out, v.mv_data, v.mv_size), 0);
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(cur);
}

void sfx_dump(struct sfx *f, struct sp_buf *out)
{
    MDB_txn *txn;

    assert_int_equal(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
    for (size_t i = 0; i < sizeof(sfx_dbs) / sizeof(sfx_dbs[0]); i++)
        dump_db(txn, sfx_dbs[i], out);
    mdb_txn_abort(txn);
}
