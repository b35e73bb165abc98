/* Internals of the analytics view shared by its writer and reader (see proj/analytics.h). */
#ifndef PROJ_ANALYTICS_INTERNAL_H
#define PROJ_ANALYTICS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>
#include <roaring/roaring.h>

#include "es/event_types.h"
#include "proj/analytics.h"
#include "sp/err.h"
#include "view_codec.h"

/* Bytes of a stored bucket (day, week, hour): u32 of value + 2^31. */
#define AN_BUCKET_BYTES 4
/* Bytes of a day row: PROJ_ANALYTICS_COUNTERS x u64. */
#define AN_DAY_BYTES (8 * PROJ_ANALYTICS_COUNTERS)
/* Bytes of a (bucket, id) key: recipe_hours, recipe_days, pending. */
#define AN_PAIR_KEY_BYTES 12
/* Bytes of a recipe's three counts. */
#define AN_COUNTS_BYTES 12
/* Bytes of a users value: number + day. */
#define AN_USER_BYTES 8
/* Bytes of a popular key: u64 (2^63 - score) + id. */
#define AN_POPULAR_KEY_BYTES 16
/* Dense user numbers: partition << 24 | registrations before it in the partition. */
#define AN_PARTITIONS      256
#define AN_PER_PARTITION   ((UINT32_C(1) << 24) - 1)
#define AN_PARTITION_SHIFT 24
/* Longest title kept in the recipes database (bytes; longer ones are cut at a UTF-8
 * boundary). */
#define AN_TITLE_MAX 500

/* Open the databases (@p create in a write transaction). SP_ENOTFOUND if one is missing. */
SP_MUST_CHECK int
an__dbs_open(MDB_txn *txn, bool create, struct proj_analytics_dbs *dbs, struct sp_errbuf *eb);

static inline void an__bucket_put(uint8_t *p, int32_t v)
{
    proj__be32(p, (uint32_t)v + UINT32_C(0x80000000));
}
static inline int32_t an__bucket_get(const uint8_t *p)
{
    return (int32_t)(proj__get32(p) - UINT32_C(0x80000000));
}

/* Hour (hours since the epoch, floor) of an instant in µs since the epoch. */
static inline int32_t an__hour_of(int64_t ts_us)
{
    int64_t q = ts_us / PROJ_ANALYTICS_HOUR_US;
    return (int32_t)(ts_us % PROJ_ANALYTICS_HOUR_US < 0 ? q - 1 : q);
}

/* The types the analytics view folds, by enum es_type (the others only advance it). */
extern const bool proj__analytics_types[ES_TYPE__COUNT];

/* A (bucket, id) key of recipe_hours, recipe_days and pending. */
static inline void an__pair_key(uint8_t key[AN_PAIR_KEY_BYTES], int32_t bucket, uint64_t id)
{
    an__bucket_put(key, bucket);
    proj__be64(key + AN_BUCKET_BYTES, id);
}

/* A recipe's likes, comments and unlikes. */
struct an_counts {
    uint32_t likes, comments, unlikes;
};

static inline int64_t an__score(const struct an_counts *c)
{
    return (int64_t)c->likes + 2 * (int64_t)c->comments - (int64_t)c->unlikes;
}
static inline void an__counts_put(uint8_t *p, const struct an_counts *c)
{
    proj__be32(p, c->likes);
    proj__be32(p + 4, c->comments);
    proj__be32(p + 8, c->unlikes);
}
static inline struct an_counts an__counts_get(const uint8_t *p)
{
    return (struct an_counts){proj__get32(p), proj__get32(p + 4), proj__get32(p + 8)};
}
/* Key of a recipe in popular: highest score first (2^63 - score ascending), then id. */
static inline void an__popular_key(uint8_t key[AN_POPULAR_KEY_BYTES], int64_t score, uint64_t id)
{
    proj__be64(key, (UINT64_C(1) << 63) - (uint64_t)score);
    proj__be64(key + 8, id);
}

/* A recipes value: u64 author id, u8 flags, u16 title length, the title. */
#define AN_RECIPE_HEAD_BYTES 11
#define AN_RECIPE_DELETED    1 /* flags */
struct an_recipe_rec {
    uint64_t author_id;
    uint8_t flags;
    uint16_t title_len;
    const uint8_t *title; /* borrowed from the value */
};

/* Decode a recipes value (the title borrowed from @p v). @return 0 or SP_ECORRUPT. */
static inline int an__recipe_decode(const MDB_val *v, struct an_recipe_rec *r, struct sp_errbuf *eb)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < AN_RECIPE_HEAD_BYTES ||
        v->mv_size != AN_RECIPE_HEAD_BYTES + (size_t)proj__get16(p + 9) ||
        proj__get16(p + 9) > AN_TITLE_MAX)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "analytics recipe record is corrupt");
    *r = (struct an_recipe_rec){proj__get64(p), p[8], proj__get16(p + 9), p + AN_RECIPE_HEAD_BYTES};
    return 0;
}

/*
 * A stored bitmap value (active, cohorts): u64 cardinality + portable Roaring bytes.
 * @param[out] out  owned (roaring_bitmap_free); an empty bitmap if @p v is NULL
 * @return 0 or SP_ECORRUPT (eb names @p what).
 */
SP_MUST_CHECK int
an__bitmap_decode(const MDB_val *v, roaring_bitmap_t **out, const char *what, struct sp_errbuf *eb);

/* Cardinality of a stored bitmap value (its prefix). @return 0 or SP_ECORRUPT. */
SP_MUST_CHECK int an__bitmap_card(const MDB_val *v, uint64_t *card, struct sp_errbuf *eb);

/* Encode @p bm into @p out (reset), canonically: one set, one encoding (changes bm's
 * containers, not its contents). */
void an__bitmap_encode(roaring_bitmap_t *bm, struct proj_bytes *out);

#endif
