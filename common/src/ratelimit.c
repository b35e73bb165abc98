/* GCRA rate limits per key in a bounded table (see sp/ratelimit.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp/alloc.h"
#include "sp/ratelimit.h"

#include "sp/banned.h"

#define RL_KEY_BYTES 64
#define RL_NONE      UINT32_MAX

struct rl_entry {
    char key[RL_KEY_BYTES]; /* NUL-terminated; "" = free */
    int64_t tat_us;         /* theoretical arrival time */
    uint32_t next;          /* next entry of the bucket chain or of the free list */
};

struct sp_ratelimit {
    struct sp_ratelimit_opts opts;
    int64_t t_us;             /* emission interval: period / limit */
    int64_t tau_us;           /* burst tolerance: (burst - 1) * T */
    struct rl_entry *entries; /* max_keys */
    uint32_t *buckets;        /* nbuckets heads, RL_NONE = empty */
    size_t nbuckets;          /* a power of two >= 2 * max_keys */
    uint32_t free_head;
    size_t used;
};

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

/* Unlink entry @p i from its bucket and put it on the free list. */
static void rl_forget(struct sp_ratelimit *rl, uint32_t i)
{
    uint32_t *p = rl_head(rl, rl->entries[i].key);

    while (*p != i)
        p = &rl->entries[*p].next;
    *p = rl->entries[i].next;
    rl->entries[i].key[0] = '\0';
    rl->entries[i].next = rl->free_head;
    rl->free_head = i;
    rl->used--;
}

/* Make room in a full table: forget every idle key (TAT passed: nothing to remember), or
 * else the key closest to idle. */
static void rl_make_room(struct sp_ratelimit *rl, int64_t now_us)
{
    uint32_t oldest = RL_NONE;

    for (uint32_t i = 0; i < rl->opts.max_keys; i++) {
        if (rl->entries[i].key[0] == '\0')
            continue;
        if (rl->entries[i].tat_us <= now_us)
            rl_forget(rl, i);
        else if (oldest == RL_NONE || rl->entries[i].tat_us < rl->entries[oldest].tat_us)
            oldest = i;
    }
    if (rl->free_head == RL_NONE)
        rl_forget(rl, oldest);
}

/* The entry of @p key, created (with TAT = now) if absent. */
static struct rl_entry *rl_entry(struct sp_ratelimit *rl, const char *key, int64_t now_us)
{
    uint32_t *head = rl_head(rl, key);
    uint32_t i;

    for (i = *head; i != RL_NONE; i = rl->entries[i].next) {
        if (strncmp(rl->entries[i].key, key, RL_KEY_BYTES - 1) == 0)
            return &rl->entries[i];
    }
    if (rl->free_head == RL_NONE) {
        rl_make_room(rl, now_us);
        head = rl_head(rl, key);
    }
    i = rl->free_head;
    rl->free_head = rl->entries[i].next;
    snprintf(rl->entries[i].key, RL_KEY_BYTES, "%s", key);
    rl->entries[i].tat_us = now_us;
    rl->entries[i].next = *head;
    *head = i;
    rl->used++;
    return &rl->entries[i];
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
    if (opts->max_keys < 1 || opts->max_keys >= RL_NONE / 2)
        return sp_err_set(eb, SP_EINVAL, "max_keys", "max_keys must be within 1..2^31");
    rl = sp_xcalloc(1, sizeof(*rl));
    rl->opts = *opts;
    rl->t_us = opts->period_us / opts->limit;
    rl->tau_us = (opts->burst - 1) * rl->t_us;
    rl->nbuckets = 1;
    while (rl->nbuckets < 2 * opts->max_keys)
        rl->nbuckets *= 2;
    rl->buckets = sp_xcalloc(rl->nbuckets, sizeof(*rl->buckets));
    memset(rl->buckets, 0xFF, rl->nbuckets * sizeof(*rl->buckets)); /* all RL_NONE */
    rl->entries = sp_xcalloc(opts->max_keys, sizeof(*rl->entries));
    for (size_t i = 0; i < opts->max_keys; i++)
        rl->entries[i].next = i + 1 < opts->max_keys ? (uint32_t)(i + 1) : RL_NONE;
    rl->free_head = 0;
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
