/* Growable arrays, byte strings and hash maps of the LMDB views (view_codec.h). */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "view_codec.h"
#include "sp/alloc.h"
#include "sp/banned.h"

int proj__mdb_err(struct sp_errbuf *eb, int rc, const char *what)
{
    return sp_err_set(eb, SP_EDB, NULL, "%s: %s", what, mdb_strerror(rc));
}

void proj__grow(void **arr, size_t *cap, size_t need, size_t elem_bytes)
{
    size_t n = *cap ? *cap : 16;

    if (need <= *cap)
        return;
    while (n < need)
        n *= 2;
    *arr = sp_xrealloc(*arr, n * elem_bytes);
    *cap = n;
}

void proj__bytes_release(struct proj_bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

uint8_t *proj__bytes_reserve(struct proj_bytes *b, size_t n)
{
    PROJ_GROW(b->data, b->cap, b->len + n + 1);
    return b->data + b->len;
}

void proj__bytes_add(struct proj_bytes *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    memcpy(proj__bytes_reserve(b, n), p, n);
    b->len += n;
}

void proj__strmap_release(struct proj_strmap *m)
{
    free(m->slots);
    free(m->ents);
    proj__bytes_release(&m->keys);
    memset(m, 0, sizeof(*m));
}

void proj__strmap_reset(struct proj_strmap *m)
{
    if (m->n > 0)
        memset(m->slots, 0, m->n_slots * sizeof(*m->slots));
    m->n = 0;
    m->keys.len = 0;
}

static void strmap_rehash(struct proj_strmap *m)
{
    size_t n_slots = m->n_slots ? m->n_slots * 2 : 64;

    free(m->slots);
    m->slots = sp_xcalloc(n_slots, sizeof(*m->slots));
    m->n_slots = n_slots;
    for (size_t i = 0; i < m->n; i++) {
        size_t s = m->ents[i].hash & (n_slots - 1);
        while (m->slots[s] != 0)
            s = (s + 1) & (n_slots - 1);
        m->slots[s] = (uint32_t)i + 1;
    }
}

/* Slot of @p key, or of the empty slot where it would go. */
static size_t strmap_find(const struct proj_strmap *m, const void *key, size_t len, uint64_t h)
{
    size_t s = h & (m->n_slots - 1);

    for (;; s = (s + 1) & (m->n_slots - 1)) {
        uint32_t i1 = m->slots[s];
        if (i1 == 0)
            return s;
        const struct proj_strmap_ent *e = &m->ents[i1 - 1];
        if (e->hash == h && e->len == len && memcmp(m->keys.data + e->off, key, len) == 0)
            return s;
    }
}

uint32_t proj__strmap_put(struct proj_strmap *m, const void *key, size_t len, bool *added)
{
    uint64_t h = XXH3_64bits(key, len);

    if ((m->n + 1) * 2 > m->n_slots)
        strmap_rehash(m);
    size_t s = strmap_find(m, key, len, h);
    if (m->slots[s] != 0) {
        *added = false;
        return m->slots[s] - 1;
    }
    PROJ_GROW(m->ents, m->cap, m->n + 1);
    m->ents[m->n] = (struct proj_strmap_ent){h, (uint32_t)m->keys.len, (uint32_t)len};
    proj__bytes_add(&m->keys, key, len);
    m->slots[s] = (uint32_t)++m->n;
    *added = true;
    return (uint32_t)m->n - 1;
}

int64_t proj__strmap_get(const struct proj_strmap *m, const void *key, size_t len)
{
    if (m->n == 0)
        return -1;
    size_t s = strmap_find(m, key, len, XXH3_64bits(key, len));
    return m->slots[s] ? (int64_t)m->slots[s] - 1 : -1;
}

static _Thread_local const struct proj_strmap *sort_map;

static int strmap_cmp(const void *pa, const void *pb)
{
    const struct proj_strmap_ent *a = &sort_map->ents[*(const uint32_t *)pa];
    const struct proj_strmap_ent *b = &sort_map->ents[*(const uint32_t *)pb];
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(sort_map->keys.data + a->off, sort_map->keys.data + b->off, n);

    if (c != 0)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

uint32_t *proj__strmap_sorted(const struct proj_strmap *m)
{
    uint32_t *idx = sp_xmalloc((m->n ? m->n : 1) * sizeof(*idx));

    for (size_t i = 0; i < m->n; i++)
        idx[i] = (uint32_t)i;
    sort_map = m;
    qsort(idx, m->n, sizeof(*idx), strmap_cmp);
    sort_map = NULL;
    return idx;
}

void proj__idmap_release(struct proj_idmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

void proj__idmap_reset(struct proj_idmap *m)
{
    if (m->n > 0)
        memset(m->slots, 0, m->n_slots * sizeof(*m->slots));
    m->n = 0;
}

/* splitmix64's finaliser: ids are sequential-ish, so spread them. */
static uint64_t id_hash(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

int64_t proj__idmap_get(const struct proj_idmap *m, uint64_t key)
{
    if (m->n == 0)
        return -1;
    for (size_t s = id_hash(key) & (m->n_slots - 1);; s = (s + 1) & (m->n_slots - 1)) {
        if (m->slots[s].idx1 == 0)
            return -1;
        if (m->slots[s].key == key)
            return (int64_t)m->slots[s].idx1 - 1;
    }
}

static void idmap_insert(struct proj_idmap *m, uint64_t key, uint32_t idx1)
{
    size_t s = id_hash(key) & (m->n_slots - 1);

    while (m->slots[s].idx1 != 0)
        s = (s + 1) & (m->n_slots - 1);
    m->slots[s].key = key;
    m->slots[s].idx1 = idx1;
}

void proj__idmap_put(struct proj_idmap *m, uint64_t key, uint32_t idx)
{
    if ((m->n + 1) * 2 > m->n_slots) {
        struct proj_idmap_slot *old = m->slots;
        size_t n_old = m->n_slots;
        m->n_slots = n_old ? n_old * 2 : 64;
        m->slots = sp_xcalloc(m->n_slots, sizeof(*m->slots));
        for (size_t i = 0; i < n_old; i++)
            if (old[i].idx1 != 0)
                idmap_insert(m, old[i].key, old[i].idx1);
        free(old);
    }
    idmap_insert(m, key, idx + 1);
    m->n++;
}
