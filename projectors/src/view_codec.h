/*
 * Internals every LMDB view's code shares (the search view, the analytics view): the
 * big-endian codec of keys and values, LMDB error conversion, growable arrays and byte
 * strings, and two open-addressing hash maps for the writers' batch buffers and the
 * query engines' scratch.
 */
#ifndef PROJ_VIEW_CODEC_H
#define PROJ_VIEW_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "sp/err.h"

/* Convert an LMDB error: SP_EDB with "<what>: <mdb_strerror>" (names MDB_MAP_FULL...). */
int proj__mdb_err(struct sp_errbuf *eb, int rc, const char *what);

/* An MDB_val's data pointer for bytes LMDB only reads (MDB_val has no const variant). */
static inline void *proj__mdb_data(const void *p)
{
    return (void *)(uintptr_t)p;
}

/* ------------------------------------------------------------------ big-endian codec */

static inline void proj__be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void proj__be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}
static inline void proj__be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}
static inline uint16_t proj__get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t proj__get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t proj__get64(const uint8_t *p)
{
    return ((uint64_t)proj__get32(p) << 32) | proj__get32(p + 4);
}

/* ------------------------------------------------------------------ growable bytes, maps */

/* Growable byte array (aborts on OOM). */
struct proj_bytes {
    uint8_t *data; /* owned */
    size_t len, cap;
};
void proj__bytes_release(struct proj_bytes *b);
/* Make room for @p n more bytes; @return pointer to data + len (len unchanged). */
uint8_t *proj__bytes_reserve(struct proj_bytes *b, size_t n);
/* Append @p n bytes. */
void proj__bytes_add(struct proj_bytes *b, const void *p, size_t n);

/* Grow a typed array to hold @p need elements (aborts on OOM). */
void proj__grow(void **arr, size_t *cap, size_t need, size_t elem_bytes);
#define PROJ_GROW(arr, cap, need) proj__grow((void **)&(arr), &(cap), (need), sizeof(*(arr)))

/* Byte-string -> dense index map (open addressing, keys copied into an arena). */
struct proj_strmap {
    uint32_t *slots; /* owned; 0 = empty, else index + 1 */
    size_t n_slots;  /* power of two, or 0 */
    struct proj_strmap_ent {
        uint64_t hash;
        uint32_t off, len; /* key bytes in keys */
    } * ents;              /* owned, n entries */
    size_t n, cap;
    struct proj_bytes keys;
};
void proj__strmap_release(struct proj_strmap *m);
void proj__strmap_reset(struct proj_strmap *m);
/* Index of @p key, added if missing (*added tells). */
uint32_t proj__strmap_put(struct proj_strmap *m, const void *key, size_t len, bool *added);
/* Index of @p key or -1. */
int64_t proj__strmap_get(const struct proj_strmap *m, const void *key, size_t len);
/* Key bytes of entry @p i: borrowed until the next put. */
static inline const uint8_t *proj__strmap_key(const struct proj_strmap *m, uint32_t i, size_t *len)
{
    *len = m->ents[i].len;
    return m->keys.data + m->ents[i].off;
}
/* Indices of all entries sorted by key bytes (memcmp, shorter first): owned array. */
uint32_t *proj__strmap_sorted(const struct proj_strmap *m);

/* u64 -> dense index map. */
struct proj_idmap {
    struct proj_idmap_slot {
        uint64_t key;
        uint32_t idx1; /* index + 1; 0 = empty */
    } * slots;         /* owned */
    size_t n_slots, n;
};
void proj__idmap_release(struct proj_idmap *m);
void proj__idmap_reset(struct proj_idmap *m);
/* Index stored for @p key or -1. */
int64_t proj__idmap_get(const struct proj_idmap *m, uint64_t key);
/* Store @p idx for @p key (new key). */
void proj__idmap_put(struct proj_idmap *m, uint64_t key, uint32_t idx);

#endif
