/* GCRA rate limits per key in a bounded table (see sp/ratelimit.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp/alloc.h"
#include "sp/ratelimit.h"

#include "sp/banned.h"

#define RL_KEY_BYTES 64
#define RL_NONE      0 /* links are entry index + 1, so zeroed memory holds no links */

struct rl_entry {
    char key[RL_KEY_BYTES]; /* NUL-terminated */
    int64_t tat_us;         /* theoretical arrival time */
    uint32_t next;          /* link: next entry of the bucket chain or of the free list */
};

/* Entries and buckets come zeroed from calloc and are touched only as keys arrive, so a
 * limiter costs resident memory for the keys it has seen, not for max_keys. */
struct sp_ratelimit {
    struct sp_ratelimit_opts opts;
    int64_t t_us;             /* emission interval: period / limit */
    int64_t tau_us;           /* burst tolerance: (burst - 1) * T */
    struct rl_entry *entries; /* max_keys */
    uint32_t *buckets;        /* nbuckets links */
    size_t nbuckets;          /* a power of two >= 2 * max_keys */
    uint32_t free_head;       /* link: entries of forgotten keys */
    size_t fresh;             /* entries [fresh, max_keys) were never used */
    size_t used;
};

static struct rl_entry *rl_at(struct sp_ratelimit *rl, uint32_t link)
{
    return &rl->entries[link - 1];
}

/* FNV-1a, 64 bits (Fowler, Noll, Vo; draft-eastlake-fnv): keys are short addresses. */
static uint64_t rl_hash(const char *key)
{
    uint64_t h = 14695981039346656037ULL;

    for (size_t i = 0; i < RL_KEY_BYTES - 1 && key[i] != '\0'; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint32_t *rl_head(struct sp_ratelimit *rl, const char *key)
{
    return &rl->buckets[rl_hash(key) & (rl->nbuckets - 1)];
}

/* Unlink the entry of link @p l from its bucket and put it on the free list. */
static void rl_forget(struct sp_ratelimit *rl, uint32_t l)
{
    uint32_t *p = rl_head(rl, rl_at(rl, l)->key);

    while (*p != l)
        p = &rl_at(rl, *p)->next;
    *p = rl_at(rl, l)->next;
    rl_at(rl, l)->next = rl->free_head;
    rl->free_head = l;
    rl->used--;
}

/* Make room in a full table (every entry holds a key): forget every idle key (TAT
 * passed: nothing to remember), or else the key closest to idle. */
static void rl_make_room(struct sp_ratelimit *rl, int64_t now_us)
{
    uint32_t oldest = RL_NONE;

    for (uint32_t l = 1; l <= rl->opts.max_keys; l++) {
        if (rl_at(rl, l)->tat_us <= now_us)
            rl_forget(rl, l);
        else if (oldest == RL_NONE || rl_at(rl, l)->tat_us < rl_at(rl, oldest)->tat_us)
            oldest = l;
    }
    if (rl->free_head == RL_NONE)
        rl_forget(rl, oldest);
}

/* The entry of @p key, created (with TAT = now) if absent. */
static struct rl_entry *rl_entry(struct sp_ratelimit *rl, const char *key, int64_t now_us)
{
    uint32_t *head = rl_head(rl, key);
    struct rl_entry *e;
    uint32_t l;

    for (l = *head; l != RL_NONE; l = rl_at(rl, l)->next) {
        if (strncmp(rl_at(rl, l)->key, key, RL_KEY_BYTES - 1) == 0)
            return rl_at(rl, l);
    }
    if (rl->fresh < rl->opts.max_keys) {
        l = (uint32_t)++rl->fresh;
    } else {
        if (rl->free_head == RL_NONE)
            rl_make_room(rl, now_us);
        l = rl->free_head;
        rl->free_head = rl_at(rl, l)->next;
    }
    e = rl_at(rl, l);
    snprintf(e->key, RL_KEY_BYTES, "%s", key);
    e->tat_us = now_us;
    e->next = *head;
    *head = l;
    rl->used++;
    return e;
}

static int64_t rl_ceil_s(int64_t us)
{
    return us <= 0 ? 0 : (us + 999999) / 1000000;
}

void sp_ratelimit_take(struct sp_ratelimit *rl,
                       const char *key,
                       int64_t now_us,
                       struct sp_ratelimit_verdict *out)
{
    struct rl_entry *e = rl_entry(rl, key, now_us);
    int64_t tat = e->tat_us > now_us ? e->tat_us : now_us;

    out->limit = rl->opts.limit;
    if (tat - now_us > rl->tau_us) {
        out->allowed = false;
        out->remaining = 0;
        out->reset_s = rl_ceil_s(tat - now_us);
        out->retry_after_s = rl_ceil_s(tat - rl->tau_us - now_us);
        if (out->retry_after_s < 1)
            out->retry_after_s = 1;
        return;
    }
    e->tat_us = tat + rl->t_us;
    out->allowed = true;
    out->remaining = (rl->tau_us - (e->tat_us - now_us) + rl->t_us) / rl->t_us;
    out->reset_s = rl_ceil_s(e->tat_us - now_us);
    out->retry_after_s = 0;
}

int sp_ratelimit_new(const struct sp_ratelimit_opts *opts,
                     struct sp_ratelimit **out,
                     struct sp_errbuf *eb)
{
    struct sp_ratelimit *rl;

    *out = NULL;
    if (opts->limit < 1)
        return sp_err_set(eb, SP_EINVAL, "limit", "limit must be at least 1");
    if (opts->period_us < opts->limit)
        return sp_err_set(eb, SP_EINVAL, "period_us", "period must be at least limit µs");
    if (opts->burst < 1 || opts->burst > opts->limit)
        return sp_err_set(eb, SP_EINVAL, "burst", "burst must be within 1..limit");
    if (opts->max_keys < 1 || opts->max_keys >= UINT32_MAX / 2)
        return sp_err_set(eb, SP_EINVAL, "max_keys", "max_keys must be within 1..2^31");
    rl = sp_xcalloc(1, sizeof(*rl));
    rl->opts = *opts;
    rl->t_us = opts->period_us / opts->limit;
    rl->tau_us = (opts->burst - 1) * rl->t_us;
    rl->nbuckets = 1;
    while (rl->nbuckets < 2 * opts->max_keys)
        rl->nbuckets *= 2;
    rl->buckets = sp_xcalloc(rl->nbuckets, sizeof(*rl->buckets));
    rl->entries = sp_xcalloc(opts->max_keys, sizeof(*rl->entries));
    *out = rl;
    return 0;
}

void sp_ratelimit_free(struct sp_ratelimit *rl)
{
    if (rl == NULL)
        return;
    free(rl->entries);
    free(rl->buckets);
    free(rl);
}

size_t sp_ratelimit_keys(const struct sp_ratelimit *rl)
{
    return rl->used;
}
