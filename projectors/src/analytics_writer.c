/*
 * The analytics view's writer (proj/analytics.h): each fold adds to in-memory buffers of
 * the batch (counters per day, bitmaps per day and per signup week, recipe counts per hour
 * and day), reading the view but never writing it; the flush merges the buffers into the
 * databases once per batch, so a bitmap is decoded and encoded once per batch, not once per
 * event.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "analytics_internal.h"
#include "es/catalogue.h"
#include "es/id.h"
#include "sp/alloc.h"

#include "sp/banned.h"

/* A day's counters, or a bitmap of a day or a week, buffered for the batch. */
struct an_day {
    int32_t day;
    uint64_t counts[PROJ_ANALYTICS_COUNTERS];
};
struct an_bitmap {
    int32_t bucket;
    roaring_bitmap_t *bm; /* owned */
};
struct an_bitmaps {
    struct proj_idmap ix; /* bucket -> index in v */
    struct an_bitmap *v;
    size_t n, cap;
};
/* A user registered in this batch. */
struct an_user {
    uint64_t id;
    uint32_t number;
    int32_t day;
};
/* A recipe record as it is after the batch. */
struct an_recipe {
    uint64_t id, author_id;
    uint8_t flags;
    uint16_t title_len;
    char title[AN_TITLE_MAX];
};
/* Recipe counts keyed by a (bucket, id) pair or by id. */
struct an_counts_map {
    struct proj_strmap ix; /* AN_PAIR_KEY_BYTES keys (hours, days) -> index */
    struct proj_idmap idx; /* ids (totals) -> index */
    struct an_counts *v;
    size_t n, cap;
};

struct proj_analytics_writer {
    struct proj_analytics_dbs dbs;
    /* per batch */
    struct proj_idmap day_ix;
    struct an_day *days;
    size_t n_days, cap_days;
    struct an_bitmaps active, cohorts;
    struct an_user *users;
    size_t n_users, cap_users;
    struct {
        bool loaded;
        uint32_t base, added; /* registrations stored / added by the batch */
    } parts[AN_PARTITIONS];
    struct proj_strmap pending;     /* (day, actor) of actors unknown when folded */
    struct proj_bytes pending_done; /* stored pending keys the batch resolved */
    struct proj_idmap recipe_ix;
    struct an_recipe *recipes;
    size_t n_recipes, cap_recipes;
    struct an_counts_map hours, days_rc, totals;
    /* across batches: user id -> number, for users whose registration is committed or in
     * this batch (emptied when a batch is discarded) */
    struct proj_idmap numbers;
    struct proj_bytes scratch;
};

#define NUMBERS_CACHE_MAX (UINT32_C(1) << 22)

int proj_analytics_writer_new(struct proj_analytics_writer **out)
{
    *out = sp_xcalloc(1, sizeof(**out));
    return 0;
}

static void bitmaps_reset(struct an_bitmaps *b)
{
    for (size_t i = 0; i < b->n; i++)
        roaring_bitmap_free(b->v[i].bm);
    b->n = 0;
    proj__idmap_reset(&b->ix);
}

static void counts_reset(struct an_counts_map *m)
{
    proj__strmap_reset(&m->ix);
    proj__idmap_reset(&m->idx);
    m->n = 0;
}

static void batch_reset(struct proj_analytics_writer *w)
{
    proj__idmap_reset(&w->day_ix);
    w->n_days = 0;
    bitmaps_reset(&w->active);
    bitmaps_reset(&w->cohorts);
    w->n_users = 0;
    memset(w->parts, 0, sizeof(w->parts));
    proj__strmap_reset(&w->pending);
    w->pending_done.len = 0;
    proj__idmap_reset(&w->recipe_ix);
    w->n_recipes = 0;
    counts_reset(&w->hours);
    counts_reset(&w->days_rc);
    counts_reset(&w->totals);
}

void proj_analytics_writer_free(struct proj_analytics_writer *w)
{
    if (w == NULL)
        return;
    batch_reset(w);
    proj__idmap_release(&w->day_ix);
    free(w->days);
    proj__idmap_release(&w->active.ix);
    free(w->active.v);
    proj__idmap_release(&w->cohorts.ix);
    free(w->cohorts.v);
    free(w->users);
    proj__strmap_release(&w->pending);
    proj__bytes_release(&w->pending_done);
    proj__idmap_release(&w->recipe_ix);
    free(w->recipes);
    struct an_counts_map *maps[] = {&w->hours, &w->days_rc, &w->totals};
    for (size_t i = 0; i < 3; i++) {
        proj__strmap_release(&maps[i]->ix);
        proj__idmap_release(&maps[i]->idx);
        free(maps[i]->v);
    }
    proj__idmap_release(&w->numbers);
    proj__bytes_release(&w->scratch);
    free(w);
}

int proj_analytics_writer_open(struct proj_analytics_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    return an__dbs_open(txn, true, &w->dbs, eb);
}

void proj_analytics_discard(struct proj_analytics_writer *w)
{
    batch_reset(w);
    /* Numbers of users registered by the rolled-back batch are not committed. */
    proj__idmap_reset(&w->numbers);
}

/* ------------------------------------------------------------------ buffers */

static uint64_t bucket_key(int32_t bucket)
{
    return (uint64_t)(uint32_t)bucket;
}

static struct an_day *day_row(struct proj_analytics_writer *w, int32_t day)
{
    int64_t i = proj__idmap_get(&w->day_ix, bucket_key(day));
    if (i >= 0)
        return &w->days[i];
    PROJ_GROW(w->days, w->cap_days, w->n_days + 1);
    struct an_day *d = &w->days[w->n_days];
    memset(d, 0, sizeof(*d));
    d->day = day;
    proj__idmap_put(&w->day_ix, bucket_key(day), (uint32_t)w->n_days++);
    return d;
}

static void bitmap_add(struct an_bitmaps *b, int32_t bucket, uint32_t number)
{
    int64_t i = proj__idmap_get(&b->ix, bucket_key(bucket));
    if (i < 0) {
        PROJ_GROW(b->v, b->cap, b->n + 1);
        b->v[b->n] = (struct an_bitmap){bucket, roaring_bitmap_create()};
        proj__idmap_put(&b->ix, bucket_key(bucket), (uint32_t)b->n);
        i = (int64_t)b->n++;
    }
    roaring_bitmap_add(b->v[i].bm, number);
}

static struct an_counts *counts_at_pair(struct an_counts_map *m, int32_t bucket, uint64_t id)
{
    uint8_t key[AN_PAIR_KEY_BYTES];
    bool added;

    an__pair_key(key, bucket, id);
    uint32_t i = proj__strmap_put(&m->ix, key, sizeof(key), &added);
    if (added) {
        PROJ_GROW(m->v, m->cap, (size_t)i + 1);
        m->v[i] = (struct an_counts){0, 0, 0};
        m->n = (size_t)i + 1;
    }
    return &m->v[i];
}

static struct an_counts *counts_at_id(struct an_counts_map *m, uint64_t id)
{
    int64_t i = proj__idmap_get(&m->idx, id);
    if (i >= 0)
        return &m->v[i];
    PROJ_GROW(m->v, m->cap, m->n + 1);
    m->v[m->n] = (struct an_counts){0, 0, 0};
    proj__idmap_put(&m->idx, id, (uint32_t)m->n);
    return &m->v[m->n++];
}

/* ------------------------------------------------------------------ reads */

/* Number of user @p id: 0 and *number; SP_ENOTFOUND if not registered; SP_EDB. */
static int user_number(struct proj_analytics_writer *w,
                       MDB_txn *txn,
                       uint64_t id,
                       uint32_t *number,
                       struct sp_errbuf *eb)
{
    int64_t cached = proj__idmap_get(&w->numbers, id);
    if (cached >= 0) {
        *number = (uint32_t)cached;
        return 0;
    }
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;
    proj__be64(kb, id);
    int rc = mdb_get(txn, w->dbs.users, &k, &v);
    if (rc == MDB_NOTFOUND)
        return SP_ENOTFOUND;
    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not read the analytics users");
    if (v.mv_size != AN_USER_BYTES)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "analytics user record of %zu bytes", v.mv_size);
    *number = proj__get32(v.mv_data);
    if (w->numbers.n >= NUMBERS_CACHE_MAX)
        proj__idmap_reset(&w->numbers);
    proj__idmap_put(&w->numbers, id, *number);
    return 0;
}

/* The batch's record of recipe @p id, loaded from the view (or new and empty). */
static int recipe_record(struct proj_analytics_writer *w,
                         MDB_txn *txn,
                         uint64_t id,
                         struct an_recipe **out,
                         struct sp_errbuf *eb)
{
    int64_t i = proj__idmap_get(&w->recipe_ix, id);
    if (i >= 0) {
        *out = &w->recipes[i];
        return 0;
    }
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;
    struct an_recipe r = {.id = id};
    proj__be64(kb, id);
    int rc = mdb_get(txn, w->dbs.recipes, &k, &v);
    if (rc == 0) {
        struct an_recipe_rec rec = {0};
        if ((rc = an__recipe_decode(&v, &rec, eb)) != 0)
            return rc;
        r.author_id = rec.author_id;
        r.flags = rec.flags;
        r.title_len = rec.title_len;
        memcpy(r.title, rec.title, rec.title_len);
    } else if (rc != MDB_NOTFOUND) {
        return proj__mdb_err(eb, rc, "could not read the analytics recipes");
    }
    PROJ_GROW(w->recipes, w->cap_recipes, w->n_recipes + 1);
    w->recipes[w->n_recipes] = r;
    proj__idmap_put(&w->recipe_ix, id, (uint32_t)w->n_recipes);
    *out = &w->recipes[w->n_recipes++];
    return 0;
}

/* Registrations stored for partition @p p (loaded once per batch). */
static int
partition_load(struct proj_analytics_writer *w, MDB_txn *txn, int32_t p, struct sp_errbuf *eb)
{
    if (w->parts[p].loaded)
        return 0;
    uint8_t kb[4];
    MDB_val k = {4, kb}, v;
    proj__be32(kb, (uint32_t)p);
    int rc = mdb_get(txn, w->dbs.partitions, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return proj__mdb_err(eb, rc, "could not read the analytics partitions");
    if (rc == 0 && v.mv_size != 4)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "analytics partition record is corrupt");
    w->parts[p].base = rc == 0 ? proj__get32(v.mv_data) : 0;
    w->parts[p].added = 0;
    w->parts[p].loaded = true;
    return 0;
}

/* ------------------------------------------------------------------ folds */

static const enum proj_analytics_counter counter_of[ES_TYPE__COUNT] = {
    [ES_TYPE_USER_REGISTERED] = PROJ_AN_REGISTRATIONS,
    [ES_TYPE_SESSION_STARTED] = PROJ_AN_LOGINS,
    [ES_TYPE_SESSION_REFRESHED] = PROJ_AN_REFRESHES,
    [ES_TYPE_SESSION_REVOKED] = PROJ_AN_LOGOUTS,
    [ES_TYPE_PROFILE_UPDATED] = PROJ_AN_PROFILE_UPDATES,
    [ES_TYPE_RECIPE_CREATED] = PROJ_AN_RECIPES_CREATED,
    [ES_TYPE_RECIPE_UPDATED] = PROJ_AN_RECIPES_UPDATED,
    [ES_TYPE_RECIPE_DELETED] = PROJ_AN_RECIPES_DELETED,
    [ES_TYPE_RECIPE_LIKED] = PROJ_AN_LIKES,
    [ES_TYPE_RECIPE_UNLIKED] = PROJ_AN_UNLIKES,
    [ES_TYPE_RECIPE_COMMENTED] = PROJ_AN_COMMENTS,
    [ES_TYPE_COMMENT_DELETED] = PROJ_AN_COMMENTS_DELETED,
    [ES_TYPE_USER_FOLLOWED] = PROJ_AN_FOLLOWS,
    [ES_TYPE_USER_UNFOLLOWED] = PROJ_AN_UNFOLLOWS,
    [ES_TYPE_NOTIFICATIONS_READ] = PROJ_AN_NOTIFICATIONS_READ,
};
const bool proj__analytics_types[ES_TYPE__COUNT] = {
    [ES_TYPE_USER_REGISTERED] = true,    [ES_TYPE_SESSION_STARTED] = true,
    [ES_TYPE_SESSION_REFRESHED] = true,  [ES_TYPE_SESSION_REVOKED] = true,
    [ES_TYPE_PROFILE_UPDATED] = true,    [ES_TYPE_RECIPE_CREATED] = true,
    [ES_TYPE_RECIPE_UPDATED] = true,     [ES_TYPE_RECIPE_DELETED] = true,
    [ES_TYPE_RECIPE_LIKED] = true,       [ES_TYPE_RECIPE_UNLIKED] = true,
    [ES_TYPE_RECIPE_COMMENTED] = true,   [ES_TYPE_COMMENT_DELETED] = true,
    [ES_TYPE_USER_FOLLOWED] = true,      [ES_TYPE_USER_UNFOLLOWED] = true,
    [ES_TYPE_NOTIFICATIONS_READ] = true,
};

static int
id_field(const struct es_event *ev, const char *field, uint64_t *out, struct sp_errbuf *eb)
{
    int64_t id;
    const char *s = json_string_value(json_object_get(ev->data, field));
    if (s == NULL || es_id_parse(s, &id) != 0)
        return sp_err_set(eb, SP_ESCHEMA, field, "%s has no valid %s", ev->type, field);
    *out = (uint64_t)id;
    return 0;
}

/* Copy at most AN_TITLE_MAX bytes of @p s, cut at a UTF-8 character boundary. */
static void set_title(struct an_recipe *r, const char *s)
{
    size_t len = strlen(s);
    if (len > AN_TITLE_MAX) {
        len = AN_TITLE_MAX;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(r->title, s, len);
    r->title_len = (uint16_t)len;
}

/* Stored pending days of @p id: their keys go to pending_done, their days to @p days. */
static int pending_scan(struct proj_analytics_writer *w,
                        MDB_txn *txn,
                        uint64_t id,
                        struct proj_bytes *days,
                        struct sp_errbuf *eb)
{
    MDB_cursor *cur;
    uint8_t kb[AN_PAIR_KEY_BYTES];
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_open(txn, w->dbs.pending, &cur);

    if (rc != 0)
        return proj__mdb_err(eb, rc, "could not read the analytics pending activity");
    proj__be64(kb, id);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != AN_PAIR_KEY_BYTES || proj__get64(k.mv_data) != id)
            break;
        proj__bytes_add(days, (const uint8_t *)k.mv_data + 8, AN_BUCKET_BYTES);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return proj__mdb_err(eb, rc, "could not read the analytics pending activity");
    return 0;
}

static int fold_registration(struct proj_analytics_writer *w,
                             MDB_txn *txn,
                             const struct es_event *ev,
                             int32_t day,
                             struct sp_errbuf *eb)
{
    uint64_t id = 0;
    uint32_t number;
    int32_t p = ev->pos.partition < 0 ? 0 : ev->pos.partition;
    int rc;

    if ((rc = id_field(ev, "user_id", &id, eb)) != 0)
        return rc;
    if (p >= AN_PARTITIONS)
        return sp_err_set(eb, SP_ETOOBIG, NULL,
                          "the analytics view numbers users of partitions 0..%d only, not %d",
                          AN_PARTITIONS - 1, (int)p);
    rc = user_number(w, txn, id, &number, eb);
    if (rc == 0)
        return sp_err_set(eb, SP_ESCHEMA, "user_id", "user %llu registered twice",
                          (unsigned long long)id);
    if (rc != SP_ENOTFOUND)
        return rc;
    if ((rc = partition_load(w, txn, p, eb)) != 0)
        return rc;
    uint32_t n = w->parts[p].base + w->parts[p].added;
    if (n >= AN_PER_PARTITION)
        return sp_err_set(eb, SP_ETOOBIG, NULL,
                          "the analytics view numbers %lu registrations per partition at most",
                          (unsigned long)AN_PER_PARTITION);
    w->scratch.len = 0;
    if ((rc = pending_scan(w, txn, id, &w->scratch, eb)) != 0)
        return rc;
    /* Every read is done: from here on the fold cannot fail. */
    number = ((uint32_t)p << AN_PARTITION_SHIFT) | n;
    w->parts[p].added++;
    PROJ_GROW(w->users, w->cap_users, w->n_users + 1);
    w->users[w->n_users++] = (struct an_user){id, number, day};
    proj__idmap_put(&w->numbers, id, number);
    bitmap_add(&w->cohorts, proj_analytics_week_of(day), number);
    for (size_t i = 0; i < w->scratch.len; i += AN_BUCKET_BYTES) {
        uint8_t key[AN_PAIR_KEY_BYTES]; /* as stored: id + day */
        bitmap_add(&w->active, an__bucket_get(w->scratch.data + i), number);
        proj__be64(key, id);
        memcpy(key + 8, w->scratch.data + i, AN_BUCKET_BYTES);
        proj__bytes_add(&w->pending_done, key, sizeof(key));
    }
    return 0;
}

/* The actor was active on @p day (pending if not registered yet). */
static int fold_actor(struct proj_analytics_writer *w,
                      MDB_txn *txn,
                      const struct es_event *ev,
                      int32_t day,
                      struct sp_errbuf *eb)
{
    int64_t actor;
    uint32_t number;

    /* Events without a user as actor count, but make nobody active. */
    if (ev->actor == NULL || es_id_parse(ev->actor, &actor) != 0)
        return 0;
    int rc = user_number(w, txn, (uint64_t)actor, &number, eb);
    if (rc == 0) {
        bitmap_add(&w->active, day, number);
        return 0;
    }
    if (rc != SP_ENOTFOUND)
        return rc;
    uint8_t key[AN_PAIR_KEY_BYTES];
    bool added;
    proj__be64(key, (uint64_t)actor);
    an__bucket_put(key + 8, day);
    (void)proj__strmap_put(&w->pending, key, sizeof(key), &added);
    return 0;
}

static int fold_recipe(struct proj_analytics_writer *w,
                       MDB_txn *txn,
                       const struct es_event *ev,
                       struct sp_errbuf *eb)
{
    struct an_recipe *r;
    uint64_t id = (uint64_t)es_event_stream_id(ev), author = 0;
    int rc;

    if (id == 0)
        return sp_err_set(eb, SP_ESCHEMA, NULL, "%s has no recipe id in its stream", ev->type);
    if (ev->type_id == ES_TYPE_RECIPE_CREATED && (rc = id_field(ev, "author_id", &author, eb)) != 0)
        return rc;
    if ((rc = recipe_record(w, txn, id, &r, eb)) != 0)
        return rc;
    const char *title = json_string_value(json_object_get(ev->data, "title"));
    switch (ev->type_id) {
    case ES_TYPE_RECIPE_CREATED:
        r->author_id = author;
        r->flags = 0;
        set_title(r, title != NULL ? title : "");
        break;
    case ES_TYPE_RECIPE_UPDATED:
        if (title != NULL)
            set_title(r, title);
        break;
    default:
        r->flags |= AN_RECIPE_DELETED;
        break;
    }
    return 0;
}

static int
fold_reaction(struct proj_analytics_writer *w, const struct es_event *ev, struct sp_errbuf *eb)
{
    uint64_t recipe = 0;
    int rc = id_field(ev, "recipe_id", &recipe, eb);
    if (rc != 0)
        return rc;
    struct an_counts *c[3] = {
        counts_at_pair(&w->hours, an__hour_of(ev->time_us), recipe),
        counts_at_pair(&w->days_rc, proj_analytics_day_of(ev->time_us), recipe),
        counts_at_id(&w->totals, recipe),
    };
    for (int i = 0; i < 3; i++) {
        if (ev->type_id == ES_TYPE_RECIPE_LIKED)
            c[i]->likes++;
        else if (ev->type_id == ES_TYPE_RECIPE_UNLIKED)
            c[i]->unlikes++;
        else
            c[i]->comments++;
    }
    return 0;
}

int proj_analytics_fold(struct proj_analytics_writer *w,
                        MDB_txn *txn,
                        const struct es_event *ev,
                        struct sp_errbuf *eb)
{
    enum es_type t = ev->type_id;
    int32_t day = proj_analytics_day_of(ev->time_us);
    int rc = 0;

    if ((unsigned)t >= ES_TYPE__COUNT || !proj__analytics_types[t])
        return 0;
    /* A poison event (SP_ESCHEMA, SP_ETOOBIG) is refused before any buffer changes; after
     * a change only SP_EDB / SP_ECORRUPT can follow, and on those the runner rolls the
     * whole batch back (proj_analytics_discard). */
    switch (t) {
    case ES_TYPE_USER_REGISTERED:
        rc = fold_registration(w, txn, ev, day, eb);
        break;
    case ES_TYPE_RECIPE_CREATED:
    case ES_TYPE_RECIPE_UPDATED:
    case ES_TYPE_RECIPE_DELETED:
        rc = fold_recipe(w, txn, ev, eb);
        break;
    case ES_TYPE_RECIPE_LIKED:
    case ES_TYPE_RECIPE_UNLIKED:
    case ES_TYPE_RECIPE_COMMENTED:
        rc = fold_reaction(w, ev, eb);
        break;
    default:
        break;
    }
    if (rc != 0)
        return rc;
    day_row(w, day)->counts[counter_of[t]]++;
    return fold_actor(w, txn, ev, day, eb);
}

/* ------------------------------------------------------------------ flush */

static int put(MDB_txn *txn,
               MDB_dbi dbi,
               const void *key,
               size_t klen,
               const void *val,
               size_t vlen,
               struct sp_errbuf *eb)
{
    MDB_val k = {klen, proj__mdb_data(key)}, v = {vlen, proj__mdb_data(val)};
    int rc = mdb_put(txn, dbi, &k, &v, 0);
    return rc == 0 ? 0 : proj__mdb_err(eb, rc, "could not write the analytics view");
}

/* Get @p key: 0 and *v; 1 if absent; SP_EDB. */
static int
get(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, MDB_val *v, struct sp_errbuf *eb)
{
    MDB_val k = {klen, proj__mdb_data(key)};
    int rc = mdb_get(txn, dbi, &k, v);
    if (rc == 0 || rc == MDB_NOTFOUND)
        return rc == 0 ? 0 : 1;
    return proj__mdb_err(eb, rc, "could not read the analytics view");
}

static int flush_days(struct proj_analytics_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    for (size_t i = 0; i < w->n_days; i++) {
        uint8_t key[AN_BUCKET_BYTES], row[AN_DAY_BYTES];
        MDB_val v;
        an__bucket_put(key, w->days[i].day);
        int rc = get(txn, w->dbs.days, key, sizeof(key), &v, eb);
        if (rc < 0)
            return rc;
        if (rc == 0 && v.mv_size != AN_DAY_BYTES)
            return sp_err_set(eb, SP_ECORRUPT, NULL, "analytics day row of %zu bytes", v.mv_size);
        for (int c = 0; c < PROJ_ANALYTICS_COUNTERS; c++) {
            uint64_t old = rc == 0 ? proj__get64((const uint8_t *)v.mv_data + 8 * c) : 0;
            proj__be64(row + 8 * c, old + w->days[i].counts[c]);
        }
        if ((rc = put(txn, w->dbs.days, key, sizeof(key), row, sizeof(row), eb)) != 0)
            return rc;
    }
    return 0;
}

static int flush_bitmaps(struct proj_analytics_writer *w,
                         MDB_txn *txn,
                         MDB_dbi dbi,
                         struct an_bitmaps *b,
                         const char *what,
                         struct sp_errbuf *eb)
{
    for (size_t i = 0; i < b->n; i++) {
        uint8_t key[AN_BUCKET_BYTES];
        roaring_bitmap_t *stored;
        MDB_val v;
        an__bucket_put(key, b->v[i].bucket);
        int rc = get(txn, dbi, key, sizeof(key), &v, eb);
        if (rc < 0)
            return rc;
        if ((rc = an__bitmap_decode(rc == 0 ? &v : NULL, &stored, what, eb)) != 0)
            return rc;
        roaring_bitmap_or_inplace(stored, b->v[i].bm);
        an__bitmap_encode(stored, &w->scratch);
        roaring_bitmap_free(stored);
        if ((rc = put(txn, dbi, key, sizeof(key), w->scratch.data, w->scratch.len, eb)) != 0)
            return rc;
    }
    return 0;
}

/* The batch's pending activity: of users registered by now into the bitmaps, the rest
 * stored; stored pending keys the batch resolved deleted. Before flush_bitmaps. */
static int flush_pending(struct proj_analytics_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    for (size_t i = 0; i < w->pending.n; i++) {
        size_t len;
        const uint8_t *key = proj__strmap_key(&w->pending, (uint32_t)i, &len);
        uint32_t number;
        int rc = user_number(w, txn, proj__get64(key), &number, eb);
        if (rc == 0) {
            bitmap_add(&w->active, an__bucket_get(key + 8), number);
            continue;
        }
        if (rc != SP_ENOTFOUND)
            return rc;
        if ((rc = put(txn, w->dbs.pending, key, len, "", 0, eb)) != 0)
            return rc;
    }
    for (size_t i = 0; i < w->pending_done.len; i += AN_PAIR_KEY_BYTES) {
        MDB_val k = {AN_PAIR_KEY_BYTES, w->pending_done.data + i};
        int rc = mdb_del(txn, w->dbs.pending, &k, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return proj__mdb_err(eb, rc, "could not write the analytics view");
    }
    return 0;
}

static int flush_users(struct proj_analytics_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    for (size_t i = 0; i < w->n_users; i++) {
        uint8_t key[8], val[AN_USER_BYTES];
        proj__be64(key, w->users[i].id);
        proj__be32(val, w->users[i].number);
        an__bucket_put(val + 4, w->users[i].day);
        int rc = put(txn, w->dbs.users, key, sizeof(key), val, sizeof(val), eb);
        if (rc != 0)
            return rc;
    }
    for (int32_t p = 0; p < AN_PARTITIONS; p++) {
        if (!w->parts[p].loaded || w->parts[p].added == 0)
            continue;
        uint8_t key[4], val[4];
        proj__be32(key, (uint32_t)p);
        proj__be32(val, w->parts[p].base + w->parts[p].added);
        int rc = put(txn, w->dbs.partitions, key, sizeof(key), val, sizeof(val), eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int flush_recipes(struct proj_analytics_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    for (size_t i = 0; i < w->n_recipes; i++) {
        const struct an_recipe *r = &w->recipes[i];
        uint8_t key[8], val[AN_RECIPE_HEAD_BYTES + AN_TITLE_MAX];
        proj__be64(key, r->id);
        proj__be64(val, r->author_id);
        val[8] = r->flags;
        proj__be16(val + 9, r->title_len);
        memcpy(val + AN_RECIPE_HEAD_BYTES, r->title, r->title_len);
        int rc = put(txn, w->dbs.recipes, key, sizeof(key), val,
                     AN_RECIPE_HEAD_BYTES + (size_t)r->title_len, eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static struct an_counts counts_add(struct an_counts a, const struct an_counts *b)
{
    return (struct an_counts){a.likes + b->likes, a.comments + b->comments, a.unlikes + b->unlikes};
}

static int
flush_pair_counts(MDB_txn *txn, MDB_dbi dbi, struct an_counts_map *m, struct sp_errbuf *eb)
{
    for (size_t i = 0; i < m->n; i++) {
        size_t len;
        const uint8_t *key = proj__strmap_key(&m->ix, (uint32_t)i, &len);
        uint8_t val[AN_COUNTS_BYTES];
        struct an_counts c = {0, 0, 0};
        MDB_val v;
        int rc = get(txn, dbi, key, len, &v, eb);
        if (rc < 0)
            return rc;
        if (rc == 0 && v.mv_size != AN_COUNTS_BYTES)
            return sp_err_set(eb, SP_ECORRUPT, NULL, "analytics recipe counts are corrupt");
        if (rc == 0)
            c = an__counts_get(v.mv_data);
        c = counts_add(c, &m->v[i]);
        an__counts_put(val, &c);
        if ((rc = put(txn, dbi, key, len, val, sizeof(val), eb)) != 0)
            return rc;
    }
    return 0;
}

/* recipe_totals and the popular index that orders them. */
static int flush_totals(struct proj_analytics_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    for (size_t s = 0; s < w->totals.idx.n_slots; s++) {
        const struct proj_idmap_slot *slot = &w->totals.idx.slots[s];
        if (slot->idx1 == 0)
            continue;
        uint64_t id = slot->key;
        const struct an_counts *add = &w->totals.v[slot->idx1 - 1];
        uint8_t key[8], val[AN_COUNTS_BYTES], pkey[AN_POPULAR_KEY_BYTES];
        struct an_counts c = {0, 0, 0};
        MDB_val v;
        proj__be64(key, id);
        int rc = get(txn, w->dbs.recipe_totals, key, sizeof(key), &v, eb);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (v.mv_size != AN_COUNTS_BYTES)
                return sp_err_set(eb, SP_ECORRUPT, NULL, "analytics recipe totals are corrupt");
            c = an__counts_get(v.mv_data);
            an__popular_key(pkey, an__score(&c), id);
            MDB_val pk = {sizeof(pkey), pkey};
            rc = mdb_del(txn, w->dbs.popular, &pk, NULL);
            if (rc != 0 && rc != MDB_NOTFOUND)
                return proj__mdb_err(eb, rc, "could not write the analytics view");
        }
        c = counts_add(c, add);
        an__counts_put(val, &c);
        if ((rc = put(txn, w->dbs.recipe_totals, key, sizeof(key), val, sizeof(val), eb)) != 0)
            return rc;
        an__popular_key(pkey, an__score(&c), id);
        if ((rc = put(txn, w->dbs.popular, pkey, sizeof(pkey), "", 0, eb)) != 0)
            return rc;
    }
    return 0;
}

int proj_analytics_flush(struct proj_analytics_writer *w, MDB_txn *txn, struct sp_errbuf *eb)
{
    int rc;

    if ((rc = flush_pending(w, txn, eb)) != 0 || (rc = flush_days(w, txn, eb)) != 0 ||
        (rc = flush_bitmaps(w, txn, w->dbs.active, &w->active, "active", eb)) != 0 ||
        (rc = flush_bitmaps(w, txn, w->dbs.cohorts, &w->cohorts, "cohort", eb)) != 0 ||
        (rc = flush_users(w, txn, eb)) != 0 || (rc = flush_recipes(w, txn, eb)) != 0 ||
        (rc = flush_pair_counts(txn, w->dbs.recipe_hours, &w->hours, eb)) != 0 ||
        (rc = flush_pair_counts(txn, w->dbs.recipe_days, &w->days_rc, eb)) != 0 ||
        (rc = flush_totals(w, txn, eb)) != 0)
        return rc;
    batch_reset(w);
    return 0;
}
