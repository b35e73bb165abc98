/*
 * stockpot-loggen: append a deterministic, realistic event log of N events, shaped like a
 * social network's traffic, straight through es_log_append (either backend), each event
 * exactly as the command-api would have appended it (tests/bench/README.md).
 *
 * The same seed, N, --users, --start, --days and recipes file give the same log, byte for
 * byte: every time, entity id (Snowflake layout of es/id.h), event id (UUIDv7, RFC 9562
 * §5.7 with the §6.2 method 1 counter), refresh hash and request id comes from the event
 * schedule and one seeded xoshiro256** (Blackman and Vigna, 2018), never from the clock.
 *
 * Model: a schedule of N slots over [start, start + days), hourly weights following the
 * number of registered users (accelerating growth) times a daily and weekly rhythm. A slot
 * is a registration while fewer users are registered than the growth curve asks for, else
 * one step of a user's visit: log in (no live session) or refresh (access token expired),
 * else an action. Visitors are drawn by a heavy-tailed activity weight and drop out when
 * their lifetime ends (churn); followees by a heavy-tailed fame weight; liked and
 * commented recipes by preferential attachment (a random existing like's recipe), recency
 * or at random. Every rule the command side enforces holds (see the actions below).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bench_util.h"
#include "es/catalogue.h"
#include "es/event.h"
#include "es/id.h"
#include "es/log.h"
#include "sp/alloc.h"
#include "sp/config.h"
#include "sp/log.h"
#include "sp/time.h"
#include "sp/banned.h"

/* argon2id of "stockpot-loggen" with the command-api's default cost (m=19456, t=2, p=1),
 * computed once with libargon2: every generated user has that password. */
#define LG_PASSWORD_HASH                                                                           \
    "$argon2id$v=19$m=19456,t=2,p=1$bG9nZ2VuLXNhbHQtMDAwMQ$RBijbM3tGPwUo//cVEsFoHx7xeLa7y/pX8irmo" \
    "JHBq8"
#define LG_COMMAND_API_TXID "stockpot-command-api" /* kafka.transactional_id's default */
#define LG_TXID             "stockpot-loggen"
#define LG_NONE             UINT32_MAX
#define LG_HOUR_US          INT64_C(3600000000)
#define LG_DAY_US           (24 * LG_HOUR_US)
#define LG_ID_STR           24
#define LG_MIN_START_US     INT64_C(1704067200000000) /* 2024-01-01: ids count from it */
#define LG_MAX_END_US       INT64_C(3786912000000000) /* 2090-01-01 */
#define LG_WALK             32                        /* entries looked at per own-list walk */
#define LG_TRIES            8                         /* random picks before giving up */

/* ---------------------------------------------------------------------------------------- */
/* Options                                                                                  */

struct lg_opts {
    const char *config;  /* stockpot config file, or NULL (STOCKPOT_CONFIG, defaults) */
    const char *recipes; /* recipes JSONL, read in place */
    long events;         /* events to append, >= 1 */
    long seed;           /* PRNG seed */
    long days;           /* length of the period, days */
    long users;          /* users to register; 0 = about events / 50 */
    long batch;          /* events per es_log_append */
    long chat;           /* share of a visit's actions that are chat actions, per mille */
    int64_t start_us;    /* start of the period, µs since the epoch (UTC midnight) */
};

/* ---------------------------------------------------------------------------------------- */
/* PRNG: xoshiro256** seeded through splitmix64 (https://prng.di.unimi.it/)                 */

struct lg_rng {
    uint64_t s[4];
};

static uint64_t lg_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void lg_rng_seed(struct lg_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = lg_splitmix64(&seed);
}

static uint64_t lg_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t lg_rand(struct lg_rng *r)
{
    uint64_t *s = r->s, out = lg_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lg_rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n), n >= 1 (modulo bias below 2^-40 for every n used here). */
static uint64_t lg_below(struct lg_rng *r, uint64_t n)
{
    return lg_rand(r) % n;
}

/* Uniform in [0, 1). */
static double lg_unit(struct lg_rng *r)
{
    return (double)(lg_rand(r) >> 11) * 0x1.0p-53;
}

/* True with probability @p permille / 1000. */
static bool lg_chance(struct lg_rng *r, unsigned permille)
{
    return lg_below(r, 1000) < permille;
}

/* 2^k with P(k) = 2^-(k+1), k capped at @p max_k: a power law, P(w >= x) ~ 1/x. */
static uint32_t lg_heavy(struct lg_rng *r, int max_k)
{
    int k = __builtin_ctzll(lg_rand(r) | (UINT64_C(1) << max_k));
    return UINT32_C(1) << k;
}

/* ---------------------------------------------------------------------------------------- */
/* Weighted sampling with changing weights: a Fenwick tree (Fenwick, 1994)                  */

struct lg_fenwick {
    int64_t *tree; /* 1-based partial sums, n + 1 entries */
    uint32_t *w;   /* weight of each item */
    size_t n, top; /* items; highest power of two <= n */
    int64_t total; /* sum of the weights */
};

static void lg_fen_init(struct lg_fenwick *f, size_t n)
{
    f->tree = sp_xcalloc(n + 1, sizeof(int64_t));
    f->w = sp_xcalloc(n ? n : 1, sizeof(uint32_t));
    f->n = n;
    f->total = 0;
    for (f->top = 1; f->top * 2 <= n; f->top *= 2)
        ;
}

static void lg_fen_release(struct lg_fenwick *f)
{
    free(f->tree);
    free(f->w);
}

static void lg_fen_set(struct lg_fenwick *f, uint32_t i, uint32_t weight)
{
    int64_t delta = (int64_t)weight - (int64_t)f->w[i];
    f->w[i] = weight;
    f->total += delta;
    for (size_t j = (size_t)i + 1; j <= f->n; j += j & (~j + 1))
        f->tree[j] += delta;
}

/* The item holding weight unit @p k, 0 <= k < total. */
static uint32_t lg_fen_find(const struct lg_fenwick *f, int64_t k)
{
    size_t pos = 0;
    for (size_t step = f->top; step > 0; step >>= 1) {
        if (pos + step <= f->n && f->tree[pos + step] <= k) {
            pos += step;
            k -= f->tree[pos];
        }
    }
    return (uint32_t)pos;
}

/* ---------------------------------------------------------------------------------------- */
/* A set of 64-bit keys: open addressing, linear probing, backward-shift deletion (Knuth)   */

#define LG_SET_EMPTY UINT64_MAX

struct lg_set {
    uint64_t *keys; /* cap slots, LG_SET_EMPTY when free */
    size_t cap, n;  /* cap a power of two, n <= cap / 2 */
};

static uint64_t lg_mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    return k ^ (k >> 33);
}

static void lg_set_init(struct lg_set *s, size_t cap)
{
    s->keys = sp_xmalloc(cap * sizeof(uint64_t));
    memset(s->keys, 0xff, cap * sizeof(uint64_t));
    s->cap = cap;
    s->n = 0;
}

/* Slot of @p key, or the free slot where it would go. */
static size_t lg_set_slot(const struct lg_set *s, uint64_t key)
{
    size_t mask = s->cap - 1, i = lg_mix(key) & mask;
    while (s->keys[i] != LG_SET_EMPTY && s->keys[i] != key)
        i = (i + 1) & mask;
    return i;
}

static bool lg_set_has(const struct lg_set *s, uint64_t key)
{
    return s->keys[lg_set_slot(s, key)] == key;
}

static void lg_set_add(struct lg_set *s, uint64_t key)
{
    if ((s->n + 1) * 2 > s->cap) {
        struct lg_set big;
        lg_set_init(&big, s->cap * 2);
        for (size_t i = 0; i < s->cap; i++)
            if (s->keys[i] != LG_SET_EMPTY)
                big.keys[lg_set_slot(&big, s->keys[i])] = s->keys[i];
        big.n = s->n;
        free(s->keys);
        *s = big;
    }
    size_t i = lg_set_slot(s, key);
    if (s->keys[i] == LG_SET_EMPTY) {
        s->keys[i] = key;
        s->n++;
    }
}

static void lg_set_del(struct lg_set *s, uint64_t key)
{
    size_t mask = s->cap - 1, i = lg_set_slot(s, key), j = i;
    if (s->keys[i] != key)
        return;
    for (;;) {
        j = (j + 1) & mask;
        if (s->keys[j] == LG_SET_EMPTY)
            break;
        size_t home = lg_mix(s->keys[j]) & mask;
        /* keys[j] may move into the hole at i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            s->keys[i] = s->keys[j];
            i = j;
        }
    }
    s->keys[i] = LG_SET_EMPTY;
    s->n--;
}

static uint64_t lg_pair(uint32_t a, uint32_t b)
{
    return ((uint64_t)a << 32) | b;
}

/* Grow a dynamic array so that it holds at least @p n + 1 elements. */
static void *lg_grow(void *p, size_t *cap, size_t n, size_t elem_bytes)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 1024;
    return sp_xrealloc(p, *cap * elem_bytes);
}

/* ---------------------------------------------------------------------------------------- */
/* The recipes file: offsets of the lines the command side would accept, read in place      */

struct lg_source {
    int fd;
    uint64_t *off; /* byte offset of each accepted line */
    uint32_t *len; /* its length, bytes */
    size_t n, cap;
    size_t lines;   /* lines read */
    char *buf;      /* one line, NUL-terminated */
    size_t buf_cap; /* bytes */
};

/* The command side's character rule (command-api valid.c): no C0, DEL or C1 control
 * characters, but "\n" and "\t" in multi-line fields. The text is UTF-8 (jansson). */
static bool lg_text_ok(const json_t *v, bool multiline)
{
    const unsigned char *s = (const unsigned char *)json_string_value(v);
    size_t len = json_string_length(v);
    for (size_t i = 0; s != NULL && i < len; i++) {
        if (s[i] < 0x20 && !(multiline && (s[i] == '\n' || s[i] == '\t')))
            return false;
        if (s[i] == 0x7f || (s[i] == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f))
            return false;
    }
    return true;
}

static bool lg_texts_ok(const json_t *data, const char *key, bool multiline)
{
    const json_t *v = json_object_get(data, key), *e;
    size_t i;
    if (json_is_string(v))
        return lg_text_ok(v, multiline);
    json_array_foreach(v, i, e) {
        if (!lg_text_ok(e, multiline))
            return false;
    }
    return true;
}

/*
 * The RecipeCreated payload the command-api makes of the body deploy/local/import-recipes.py
 * sends for @p rec: bench_recipe_payload's fields, language = the record's BCP 47 primary
 * subtag in lower case when it is 2-3 letters. @return owned
 */
static json_t *lg_recipe_payload(const json_t *rec, const char *rid, const char *uid)
{
    json_t *data = bench_recipe_payload(rec, rid, uid, false);
    const char *lang = json_string_value(json_object_get(rec, "lang"));
    char sub[4];
    size_t n = 0;

    while (lang != NULL && n < sizeof(sub) && lang[n] >= 'A' && lang[n] <= 'z' &&
           (lang[n] >= 'a' || lang[n] <= 'Z')) {
        sub[n] = (char)(lang[n] | 0x20);
        n++;
    }
    if (n >= 2 && n <= 3 && (lang[n] == '\0' || lang[n] == '-')) {
        sub[n] = '\0';
        json_object_set_new(data, "language", json_string(sub));
    }
    return data;
}

/* Whether the command-api would accept @p rec as a recipe (schema and character rules). */
static bool lg_recipe_ok(const json_t *rec)
{
    const struct es_event_type *t = es_catalogue_get(ES_TYPE_RECIPE_CREATED);
    struct sp_errbuf eb = {{0}, {0}};
    json_t *data = lg_recipe_payload(rec, "1", "1");
    bool ok = es_data_check(t, data, &eb) == 0 && lg_texts_ok(data, "title", false) &&
              lg_texts_ok(data, "description", true) && lg_texts_ok(data, "ingredients", false) &&
              lg_texts_ok(data, "steps", true) && lg_texts_ok(data, "tags", false);
    json_decref(data);
    return ok;
}

/* Index the acceptable lines of @p path. @return 0; -errno; -ENODATA if none is usable. */
static int lg_source_open(struct lg_source *src, const char *path, size_t max_line_bytes)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    uint64_t off = 0;
    ssize_t got;

    memset(src, 0, sizeof(*src));
    src->fd = -1;
    if (f == NULL)
        return -errno;
    while ((got = getline(&line, &cap, f)) > 0) {
        size_t len = (size_t)got - (line[got - 1] == '\n');
        json_t *rec = len <= max_line_bytes ? bench_recipe_of(line) : NULL;
        if (rec != NULL && lg_recipe_ok(rec)) {
            src->off = lg_grow(src->off, &src->cap, src->n, sizeof(uint64_t));
            src->len = sp_xrealloc(src->len, src->cap * sizeof(uint32_t));
            src->off[src->n] = off;
            src->len[src->n++] = (uint32_t)len;
            src->buf_cap = len + 1 > src->buf_cap ? len + 1 : src->buf_cap;
        }
        json_decref(rec);
        off += (uint64_t)got;
        src->lines++;
    }
    free(line);
    fclose(f);
    if (src->n == 0)
        return -ENODATA;
    src->buf = sp_xmalloc(src->buf_cap);
    src->fd = open(path, O_RDONLY | O_CLOEXEC);
    return src->fd < 0 ? -errno : 0;
}

static void lg_source_close(struct lg_source *src)
{
    if (src->fd >= 0)
        close(src->fd);
    free(src->off);
    free(src->len);
    free(src->buf);
    memset(src, 0, sizeof(*src));
    src->fd = -1;
}

/* Recipe record of accepted line @p i. @return owned; NULL if the file changed under us. */
static json_t *lg_source_get(struct lg_source *src, uint32_t i)
{
    ssize_t got = pread(src->fd, src->buf, src->len[i], (off_t)src->off[i]);
    if (got != (ssize_t)src->len[i])
        return NULL;
    return json_loadb(src->buf, src->len[i], 0, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Generator state                                                                          */

struct lg_user {
    int64_t id;              /* Snowflake; stream user-<id> */
    int64_t version;         /* of stream user-<id> */
    int64_t sess_id;         /* current session (stream session-<id>); 0 = none */
    int64_t sess_version;    /* of its stream */
    int64_t sess_exp_us;     /* its refresh token's expiry */
    int64_t token_exp_us;    /* its access token's expiry */
    int64_t notif_ms;        /* time of the newest notification to this user, ms; 0 = none */
    int64_t read_up_to;      /* last NotificationsRead up_to_id */
    int64_t active_until_us; /* churns (is drawn no more) from then */
    uint32_t recipes, likes, follows, comments; /* newest own entry of each list, or LG_NONE */
    uint32_t rooms;     /* newest own chat membership (struct lg_member), or LG_NONE */
    int32_t visit_left; /* actions left in the current visit; 0 = not visiting */
    bool profiled;      /* has updated the profile */
};

/* A follow (follower -> followee) or a like (user -> recipe); per-user lists through prev. */
struct lg_edge {
    uint32_t from, to, prev;
    bool dead; /* unfollowed / unliked */
};

struct lg_recipe {
    int64_t id;
    int64_t version; /* of stream recipe-<id> */
    uint32_t author, line, prev;
    bool deleted;
};

struct lg_comment {
    int64_t id;
    uint32_t recipe, author, prev;
    bool deleted;
};

#define LG_ROOM_MAX 8 /* members of a generated group at most */

/* A chat room: stream conversation-<id>; members[] are the current ones. */
struct lg_room {
    int64_t id;
    int64_t version;  /* of stream conversation-<id> */
    int64_t last_msg; /* id of its newest message, 0 = none */
    uint32_t admin;   /* LG_NONE for a direct room */
    uint32_t members[LG_ROOM_MAX];
    uint8_t n;
    bool group;
};

/* A user's membership of a room; per-user list through prev. */
struct lg_member {
    uint32_t room, prev;
    int64_t read_up_to; /* the member's read marker */
    bool dead;          /* left or removed */
};

enum lg_action {
    LG_LIKE,
    LG_FOLLOW,
    LG_COMMENT,
    LG_READ,
    LG_CREATE,
    LG_PROFILE,
    LG_UNLIKE,
    LG_UNFOLLOW,
    LG_UPDATE,
    LG_UNCOMMENT,
    LG_DELETE,
    LG_ACTION__COUNT
};

/* Share of each action among a visit's actions, per mille. */
static const unsigned lg_action_weight[LG_ACTION__COUNT] = {
    [LG_LIKE] = 330,  [LG_FOLLOW] = 150,   [LG_COMMENT] = 100, [LG_READ] = 90,
    [LG_CREATE] = 70, [LG_PROFILE] = 30,   [LG_UNLIKE] = 60,   [LG_UNFOLLOW] = 25,
    [LG_UPDATE] = 25, [LG_UNCOMMENT] = 10, [LG_DELETE] = 10,
};

/* A batch of events for one es_log_append. */
struct lg_batch {
    struct es_event *evs; /* opt.batch initialised events; the first n are filled */
    const struct es_event **evp;
    size_t n;
};

/*
 * The writer thread: appends one batch while the main thread builds the next, so that
 * encoding and the LMDB commit (or the Kafka transaction) overlap with generation.
 * @locks mu guards every field but thread.
 */
struct lg_writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct es_log *log;
    struct lg_batch *pending; /* handed over, not yet appended; NULL = idle */
    bool stop;                /* no batch will come any more */
    int err;                  /* first append error; later batches are dropped */
    struct sp_errbuf eb;      /* its detail */
    int64_t appended;         /* events appended */
};

struct lg {
    struct lg_opts opt;
    struct lg_rng rng;
    struct lg_source src;
    struct es_log *log;
    struct lg_batch batch[2]; /* one being built, one being appended by the writer */
    int cur;                  /* index of the one being built */
    struct lg_writer writer;

    int64_t *first_slot; /* slot of each hour's first event; hours + 1 entries */
    size_t hours, hour;  /* of the period; of the current slot */
    int64_t now_us;      /* time of the current slot */
    int64_t slot;        /* current slot, 0-based */
    double seed_share;   /* share of users registered at the start */

    int64_t id_ms, uuid_ms; /* ms of the last entity id / event id */
    uint32_t id_seq, uuid_seq;
    uint32_t node; /* Snowflake node id, 0..1023 */
    int64_t jwt_ttl_us, refresh_ttl_us;

    struct lg_user *users;
    size_t n_users, max_users;
    struct lg_fenwick activity; /* visit weight; 0 once churned */
    struct lg_fenwick fame;     /* followee weight */
    uint32_t *online;           /* users visiting now */
    size_t n_online, max_online;
    struct lg_edge *follows, *likes;
    size_t n_follows, cap_follows, n_likes, cap_likes;
    struct lg_set follow_set, like_set; /* live (follower, followee), (user, recipe) */
    struct lg_recipe *recipes;
    size_t n_recipes, cap_recipes;
    struct lg_comment *comments;
    size_t n_comments, cap_comments;
    struct lg_room *rooms;
    size_t n_rooms, cap_rooms;
    struct lg_member *members;
    size_t n_members, cap_members;
    struct lg_set direct_set; /* (smaller, larger user index) of every direct room */
    uint64_t n_txns;          /* messages sent: their txn_ids */

    int64_t by_type[ES_TYPE__COUNT];
};

/* ---------------------------------------------------------------------------------------- */
/* Ids, hashes and times, all from the slot's time and the PRNG                             */

/* Next Snowflake id at the current time: (ms - epoch) << 22 | node << 12 | sequence. */
static int64_t lg_next_id(struct lg *g)
{
    int64_t ms = g->now_us / 1000;
    if (ms > g->id_ms) {
        g->id_ms = ms;
        g->id_seq = (uint32_t)lg_below(&g->rng, 1024);
    } else if (++g->id_seq > 0xfff) {
        g->id_ms++; /* 4096 ids in one ms: borrow the next one, as es_snowflake waits for it */
        g->id_seq = 0;
    }
    return ((g->id_ms - ES_SNOWFLAKE_EPOCH_MS) << 22) | ((int64_t)g->node << 12) | g->id_seq;
}

static void lg_hex(struct lg *g, char *out, size_t digits)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t r = 0;
    for (size_t i = 0; i < digits; i++) {
        if (i % 16 == 0)
            r = lg_rand(&g->rng);
        out[i] = hex[r & 0xf];
        r >>= 4;
    }
    out[digits] = '\0';
}

/* UUIDv7 (RFC 9562 §5.7) of the current time: 48-bit ms, version 7, rand_a a counter within
 * the ms from a random start (§6.2 method 1), variant 10, 62 random bits. */
static void lg_uuid7(struct lg *g, char *out)
{
    int64_t ms = g->now_us / 1000;
    uint64_t rb = lg_rand(&g->rng);
    if (ms > g->uuid_ms) {
        g->uuid_ms = ms;
        g->uuid_seq = (uint32_t)lg_below(&g->rng, 2048);
    } else if (++g->uuid_seq > 0xfff) {
        g->uuid_ms++;
        g->uuid_seq = 0;
    }
    uint64_t hi = ((uint64_t)g->uuid_ms << 16) | 0x7000 | g->uuid_seq;
    uint64_t lo = (rb >> 2) | (UINT64_C(1) << 63);
    snprintf(out, ES_UUID_STR_LEN + 1,
             "%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%012" PRIx64, hi >> 32,
             (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48, lo & UINT64_C(0xffffffffffff));
}

static void lg_id_str(int64_t id, char *out)
{
    snprintf(out, LG_ID_STR, "%" PRId64, id);
}

/* Hour weights (UTC): quiet nights, a lunch bump, the evening peak. */
static const unsigned lg_hour_weight[24] = {4,  3,  2, 2, 2,  3,  5,  7,  8,  8,  9, 10,
                                            11, 10, 9, 9, 10, 12, 14, 15, 14, 12, 9, 6};

/* Share of the users registered at period fraction @p x in [0, 1]: a seed share at the
 * start, then growth that speeds up (0.4 x + 0.6 x^2 of the rest). */
static double lg_growth(const struct lg *g, double x)
{
    return g->seed_share + (1.0 - g->seed_share) * (0.4 * x + 0.6 * x * x);
}

/* Spread the N slots over the hours: weight = registered users x hour x weekday rhythm. */
static void lg_schedule_init(struct lg *g)
{
    double *cum = sp_xcalloc(g->hours + 1, sizeof(double));
    for (size_t h = 0; h < g->hours; h++) {
        int64_t t_us = g->opt.start_us + (int64_t)h * LG_HOUR_US;
        int64_t day = t_us / LG_DAY_US, dow = (day + 4) % 7; /* 1970-01-01 was a Thursday */
        double w = lg_growth(g, ((double)h + 0.5) / (double)g->hours) *
                   lg_hour_weight[(t_us / LG_HOUR_US) % 24] * (dow == 0 || dow == 6 ? 1.2 : 1.0);
        cum[h + 1] = cum[h] + w;
    }
    g->first_slot = sp_xcalloc(g->hours + 1, sizeof(int64_t));
    for (size_t h = 0; h <= g->hours; h++)
        g->first_slot[h] = (int64_t)((double)g->opt.events * (cum[h] / cum[g->hours]));
    g->first_slot[g->hours] = g->opt.events;
    free(cum);
}

/* Set now_us for the current slot: within its hour, evenly spread with jitter. */
static void lg_clock(struct lg *g)
{
    while (g->first_slot[g->hour + 1] <= g->slot)
        g->hour++;
    int64_t first = g->first_slot[g->hour], cnt = g->first_slot[g->hour + 1] - first;
    double frac = ((double)(g->slot - first) + lg_unit(&g->rng)) / (double)cnt;
    int64_t t = g->opt.start_us + (int64_t)g->hour * LG_HOUR_US + (int64_t)(frac * LG_HOUR_US);
    g->now_us = t > g->now_us ? t : g->now_us;
}

/* ---------------------------------------------------------------------------------------- */
/* Emitting events                                                                          */

static void *lg_writer_main(void *arg)
{
    struct lg_writer *w = arg;
    struct sp_errbuf eb = {{0}, {0}};

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->pending == NULL && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        struct lg_batch *b = w->pending;
        if (b == NULL)
            break;
        int err = w->err;
        pthread_mutex_unlock(&w->mu);
        if (err == 0)
            err = es_log_append(w->log, b->evp, b->n, NULL, &eb);
        for (size_t i = 0; i < b->n; i++)
            es_event_release(&b->evs[i]);
        pthread_mutex_lock(&w->mu);
        if (err == 0)
            w->appended += (int64_t)b->n;
        else if (w->err == 0)
            w->err = err, w->eb = eb;
        b->n = 0;
        w->pending = NULL;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Hand the batch being built to the writer (once it is idle) and build the other one.
 * @return 0 or the writer's first append error. */
static int lg_flush(struct lg *g)
{
    struct lg_writer *w = &g->writer;
    struct lg_batch *b = &g->batch[g->cur];
    int err;

    pthread_mutex_lock(&w->mu);
    while (w->pending != NULL)
        pthread_cond_wait(&w->cv, &w->mu);
    if ((err = w->err) == 0 && b->n > 0) {
        w->pending = b;
        g->cur ^= 1;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return err;
}

/* Refuse a log that holds events: ids and stream versions would clash with ours. @return 0
 * or -1 after saying why. */
static int lg_check_empty(struct lg *g)
{
    struct sp_errbuf eb = {{0}, {0}};
    int64_t end = 0;

    for (int32_t p = 0; p < es_log_partitions(g->log); p++) {
        if (es_log_end(g->log, p, &end, &eb) != 0) {
            fprintf(stderr, "stockpot-loggen: could not read the end of the event log: %s\n",
                    eb.msg);
            return -1;
        }
        if (end > 0) {
            fprintf(stderr,
                    "stockpot-loggen: the event log is not empty (partition %d ends at %" PRId64
                    "): stockpot-loggen writes a new log; point log.dir or kafka.topic at an "
                    "empty one\n",
                    (int)p, end);
            return -1;
        }
    }
    return 0;
}

/* Start the writer thread on the open log. @return 0 or -errno. */
static int lg_writer_start(struct lg *g)
{
    struct lg_writer *w = &g->writer;
    w->log = g->log;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    return -pthread_create(&w->thread, NULL, lg_writer_main, w);
}

/* Wait for the last batch and stop the writer. @return its first append error or 0. */
static int lg_writer_finish(struct lg *g)
{
    struct lg_writer *w = &g->writer;
    int err;

    pthread_mutex_lock(&w->mu);
    while (w->pending != NULL)
        pthread_cond_wait(&w->cv, &w->mu);
    w->stop = true;
    err = w->err;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return err;
}

/*
 * Add event @p type on @p stream at @p version by user @p actor to the batch, as the
 * command-api's emit() makes it (actor, a 16-hex-digit request id as correlation id), with
 * our time and id, and check it against the catalogue: a failure is a bug here, so abort.
 * @p data is stolen.
 */
static void lg_emit(struct lg *g,
                    enum es_type type,
                    const char *stream,
                    int64_t version,
                    int64_t actor,
                    json_t *data)
{
    struct lg_batch *b = &g->batch[g->cur];
    struct es_event *ev = &b->evs[b->n];
    struct sp_errbuf eb = {{0}, {0}};
    char actor_s[LG_ID_STR], request_id[17];
    int rc;

    lg_id_str(actor, actor_s);
    lg_hex(g, request_id, 16);
    rc = es_event_make(ev, es_type_name(type), stream, version, actor_s, request_id, NULL, data);
    if (rc == 0) {
        ev->time_us = g->now_us;
        lg_uuid7(g, ev->id);
        rc = es_event_check(ev, NULL, &eb);
    }
    if (rc != 0) {
        fprintf(stderr, "stockpot-loggen: generator bug: %s event on \"%s\" is invalid: %s%s%s\n",
                es_type_name(type), stream, eb.msg[0] ? eb.msg : sp_strerror(rc),
                eb.field[0] ? " at " : "", eb.field);
        abort();
    }
    g->by_type[type]++;
    b->n++;
}

/* Emit on the user's own stream user-<id> (its next version). */
static void lg_emit_user(struct lg *g, uint32_t u, enum es_type type, json_t *data)
{
    char stream[LG_ID_STR + 8];
    struct lg_user *us = &g->users[u];
    snprintf(stream, sizeof(stream), "user-%" PRId64, us->id);
    lg_emit(g, type, stream, ++us->version, us->id, data);
}

static void lg_notify(struct lg *g, uint32_t recipient, uint32_t actor)
{
    if (recipient != actor)
        g->users[recipient].notif_ms = g->now_us / 1000;
}

/* ---------------------------------------------------------------------------------------- */
/* Accounts: registration, sessions, profiles                                               */

static const char *const lg_first[] = {
    "ada",  "alex",  "amara", "ana",   "ben",   "carla", "chen",  "dara",  "diego", "elena",
    "emma", "farah", "finn",  "grace", "hana",  "ivan",  "jamal", "jonas", "kai",   "lea",
    "leo",  "lucia", "maya",  "mei",   "nadia", "noah",  "olga",  "omar",  "paulo", "priya",
    "rosa", "sam",   "sara",  "tariq", "tomas", "una",   "vera",  "wei",   "yara",  "zoe"};
static const char *const lg_last[] = {"baker",  "costa",  "dubois",   "fischer", "garcia", "haddad",
                                      "ito",    "jensen", "kim",      "kowal",   "larsen", "lopez",
                                      "mendes", "moreau", "nakamura", "novak",   "okafor", "patel",
                                      "quinn",  "rossi",  "santos",   "schmidt", "silva",  "tanaka",
                                      "vargas", "weber",  "wong",     "yilmaz",  "zhang",  "ahmed"};
static const char *const lg_domains[] = {"example.com", "example.org", "example.net"};
#define LG_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The first and last name of user @p u (username, email and full name agree). */
static void lg_name(const struct lg *g, uint32_t u, const char **first, const char **last)
{
    uint64_t h = lg_mix((uint64_t)g->opt.seed * 0x9e3779b97f4a7c15ULL + u);
    *first = lg_first[h % LG_COUNT(lg_first)];
    *last = lg_last[(h >> 32) % LG_COUNT(lg_last)];
}

/* Start a visit of @p u (if there is room among the visitors). */
static void lg_visit_start(struct lg *g, uint32_t u, int32_t min_len)
{
    struct lg_user *us = &g->users[u];
    int32_t len = min_len;
    if (us->visit_left > 0 || g->n_online >= 2 * g->max_online)
        return;
    while (len < 60 && lg_chance(&g->rng, 850))
        len++;
    if (lg_chance(&g->rng, 40))
        us->sess_id = 0; /* a new device: logs in again; the old session just lingers */
    us->visit_left = len;
    g->online[g->n_online++] = u;
}

static void lg_visit_end(struct lg *g, uint32_t u)
{
    for (size_t i = 0; i < g->n_online; i++) {
        if (g->online[i] == u) {
            g->online[i] = g->online[--g->n_online];
            break;
        }
    }
}

/* UserRegistered (POST /users), then the new user's first visit. */
static void lg_register(struct lg *g)
{
    uint32_t u = (uint32_t)g->n_users++;
    struct lg_user *us = &g->users[u];
    char uid_s[LG_ID_STR], stream[LG_ID_STR + 8], name[48], email[64];
    const char *first, *last;
    uint64_t r;
    int64_t life;

    memset(us, 0, sizeof(*us));
    us->id = lg_next_id(g);
    us->recipes = us->likes = us->follows = us->comments = us->rooms = LG_NONE;
    lg_id_str(us->id, uid_s);
    snprintf(stream, sizeof(stream), "user-%s", uid_s);
    lg_name(g, u, &first, &last);
    snprintf(name, sizeof(name), "%s.%s%u", first, last, u + 1);
    snprintf(email, sizeof(email), "%s@%s", name, lg_domains[u % LG_COUNT(lg_domains)]);
    us->version = 1;
    lg_emit(g, ES_TYPE_USER_REGISTERED, stream, 1, us->id,
            json_pack("{s:s, s:s, s:s, s:s}", "user_id", uid_s, "username", name, "email", email,
                      "password_hash", LG_PASSWORD_HASH));
    /* lifetime: 30 % leave within two days, 40 % within 2-45 days, 30 % stay */
    r = lg_below(&g->rng, 100);
    life = r < 30   ? (int64_t)lg_below(&g->rng, 2 * LG_DAY_US)
           : r < 70 ? 2 * LG_DAY_US + (int64_t)lg_below(&g->rng, 43 * LG_DAY_US)
                    : INT64_MAX / 2;
    us->active_until_us = g->now_us + life;
    lg_fen_set(&g->activity, u, lg_heavy(&g->rng, 8));
    lg_fen_set(&g->fame, u, lg_heavy(&g->rng, 13));
    lg_visit_start(g, u, 3);
}

/* SessionStarted or SessionRefreshed with a new refresh token (decide.c new_refresh). */
static void lg_session_token(struct lg *g, uint32_t u, bool start)
{
    struct lg_user *us = &g->users[u];
    char sid_s[LG_ID_STR], uid_s[LG_ID_STR], stream[LG_ID_STR + 8], hash[65], exp[32];

    if (start) {
        us->sess_id = lg_next_id(g);
        us->sess_version = 0;
    }
    us->sess_exp_us = g->now_us + g->refresh_ttl_us;
    us->token_exp_us = g->now_us + g->jwt_ttl_us;
    lg_hex(g, hash, 64);
    sp_time_format_rfc3339(us->sess_exp_us, exp, sizeof(exp));
    lg_id_str(us->sess_id, sid_s);
    lg_id_str(us->id, uid_s);
    snprintf(stream, sizeof(stream), "session-%s", sid_s);
    json_t *data =
        json_pack("{s:s, s:s, s:s}", "session_id", sid_s, "refresh_hash", hash, "expires_at", exp);
    if (start)
        json_object_set_new(data, "user_id", json_string(uid_s));
    lg_emit(g, start ? ES_TYPE_SESSION_STARTED : ES_TYPE_SESSION_REFRESHED, stream,
            ++us->sess_version, us->id, data);
}

/* SessionRevoked: logout, or an old refresh token presented again (decide.c revoke). */
static void lg_session_revoke(struct lg *g, uint32_t u, const char *reason)
{
    struct lg_user *us = &g->users[u];
    char sid_s[LG_ID_STR], stream[LG_ID_STR + 8];

    lg_id_str(us->sess_id, sid_s);
    snprintf(stream, sizeof(stream), "session-%s", sid_s);
    lg_emit(g, ES_TYPE_SESSION_REVOKED, stream, ++us->sess_version, us->id,
            json_pack("{s:s, s:s}", "session_id", sid_s, "reason", reason));
    us->sess_id = 0;
}

static const char *const lg_bios[] = {
    "Home cook. Mostly vegetables, sometimes cake.",
    "Weeknight dinners in 30 minutes or less.",
    "Baking bread since 2019.\nSourdough starter named Gus.",
    "Cooking my grandmother's recipes, one at a time.",
    "Spice collector; ask me about cardamom.",
    "Student on a budget: cheap, filling, tasty.",
    "Former line cook, now cooking for two kids.",
    "Vegan most days. Cheese on Sundays.",
    "Grilling, smoking, and the occasional salad.",
    "I test every recipe twice before posting.\tNo exceptions.",
};

/* ProfileUpdated (PUT /users/{id}): full name and bio the first time, then one of them. */
static bool lg_profile(struct lg *g, uint32_t u)
{
    struct lg_user *us = &g->users[u];
    uint64_t r = lg_rand(&g->rng);
    const char *first, *last;
    char full[48];
    json_t *data = json_object();

    lg_name(g, u, &first, &last);
    snprintf(full, sizeof(full), "%c%s %c%s", first[0] - 'a' + 'A', first + 1, last[0] - 'a' + 'A',
             last + 1);
    if (!us->profiled || r % 3 == 0)
        json_object_set_new(data, "full_name", json_string(full));
    if (!us->profiled || r % 3 != 0)
        json_object_set_new(data, "bio",
                            (r >> 8) % 10 == 0 && us->profiled
                                ? json_null()
                                : json_string(lg_bios[(r >> 16) % LG_COUNT(lg_bios)]));
    us->profiled = true;
    lg_emit_user(g, u, ES_TYPE_PROFILE_UPDATED, data);
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Social graph and notifications                                                           */

/* UserFollowed of a user drawn by fame (or at random): never self, never a duplicate. */
static bool lg_follow(struct lg *g, uint32_t u)
{
    char uid_s[LG_ID_STR], other_s[LG_ID_STR];
    for (int t = 0; t < LG_TRIES && g->n_users > 1; t++) {
        uint32_t v =
            lg_chance(&g->rng, 700)
                ? lg_fen_find(&g->fame, (int64_t)lg_below(&g->rng, (uint64_t)g->fame.total))
                : (uint32_t)lg_below(&g->rng, g->n_users);
        if (v == u || lg_set_has(&g->follow_set, lg_pair(u, v)))
            continue;
        lg_id_str(g->users[u].id, uid_s);
        lg_id_str(g->users[v].id, other_s);
        lg_emit_user(g, u, ES_TYPE_USER_FOLLOWED,
                     json_pack("{s:s, s:s}", "user_id", uid_s, "followee_id", other_s));
        g->follows = lg_grow(g->follows, &g->cap_follows, g->n_follows, sizeof(struct lg_edge));
        g->follows[g->n_follows] = (struct lg_edge){u, v, g->users[u].follows, false};
        g->users[u].follows = (uint32_t)g->n_follows++;
        lg_set_add(&g->follow_set, lg_pair(u, v));
        lg_notify(g, v, u);
        return true;
    }
    return false;
}

/* A per-user list (follows, likes, recipes or comments), newest first. */
struct lg_list {
    uint32_t (*prev)(const struct lg *g, uint32_t i); /* the user's entry before i, or LG_NONE */
    bool (*live)(const struct lg *g, uint32_t i);     /* whether entry i may still be undone */
};

/* The live ones among the newest LG_WALK entries from @p head. @return how many, in @p out. */
static size_t lg_walk(const struct lg *g, const struct lg_list *list, uint32_t head, uint32_t *out)
{
    size_t n = 0;
    for (int k = 0; k < LG_WALK && head != LG_NONE; k++) {
        if (list->live(g, head))
            out[n++] = head;
        head = list->prev(g, head);
    }
    return n;
}

static uint32_t lg_follow_prev(const struct lg *g, uint32_t i)
{
    return g->follows[i].prev;
}

static bool lg_follow_live(const struct lg *g, uint32_t i)
{
    return !g->follows[i].dead;
}

static const struct lg_list lg_follow_list = {lg_follow_prev, lg_follow_live};

/* UserUnfollowed of one of the user's recent follows that still stands. */
static bool lg_unfollow(struct lg *g, uint32_t u)
{
    uint32_t cand[LG_WALK];
    char uid_s[LG_ID_STR], other_s[LG_ID_STR];
    size_t n = lg_walk(g, &lg_follow_list, g->users[u].follows, cand);
    if (n == 0)
        return false;
    struct lg_edge *e = &g->follows[cand[lg_below(&g->rng, n)]];
    lg_id_str(g->users[u].id, uid_s);
    lg_id_str(g->users[e->to].id, other_s);
    lg_emit_user(g, u, ES_TYPE_USER_UNFOLLOWED,
                 json_pack("{s:s, s:s}", "user_id", uid_s, "followee_id", other_s));
    e->dead = true;
    lg_set_del(&g->follow_set, lg_pair(u, e->to));
    return true;
}

/* NotificationsRead up to every notification the user got so far: up_to_id = the largest
 * notification id (projectors' layout: ms << 22 | partition << 12 | offset) of that ms. */
static bool lg_read(struct lg *g, uint32_t u)
{
    struct lg_user *us = &g->users[u];
    char uid_s[LG_ID_STR], up_s[LG_ID_STR];
    if (us->notif_ms == 0)
        return false;
    int64_t up = ((us->notif_ms - ES_SNOWFLAKE_EPOCH_MS) << 22) | 0x3fffff;
    if (up <= us->read_up_to)
        return false;
    us->read_up_to = up;
    lg_id_str(us->id, uid_s);
    lg_id_str(up, up_s);
    lg_emit_user(g, u, ES_TYPE_NOTIFICATIONS_READ,
                 json_pack("{s:s, s:s}", "user_id", uid_s, "up_to_id", up_s));
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Recipes, likes, comments                                                                 */

/* A recipe by popularity (the recipe of a random like), recency or at random; LG_NONE if
 * there is none or it was deleted. */
static uint32_t lg_pick_recipe(struct lg *g)
{
    uint64_t r = lg_below(&g->rng, 100);
    size_t n = g->n_recipes, recent = n / 10 > 50 ? n / 10 : 50;
    uint32_t i;
    if (n == 0)
        return LG_NONE;
    if (r < 40 && g->n_likes > 0)
        i = g->likes[lg_below(&g->rng, g->n_likes)].to;
    else if (r < 75)
        i = (uint32_t)(n - 1 - lg_below(&g->rng, recent < n ? recent : n));
    else
        i = (uint32_t)lg_below(&g->rng, n);
    return g->recipes[i].deleted ? LG_NONE : i;
}

/* The ids of user @p u, recipe @p ri and its author, as decimal strings. */
static void
lg_ids3(const struct lg *g, uint32_t u, uint32_t ri, char *uid_s, char *rid_s, char *author_s)
{
    lg_id_str(g->users[u].id, uid_s);
    lg_id_str(g->recipes[ri].id, rid_s);
    lg_id_str(g->users[g->recipes[ri].author].id, author_s);
}

/* RecipeLiked (on the liker's stream) of a live recipe of someone else, not liked yet. */
static bool lg_like(struct lg *g, uint32_t u)
{
    char uid_s[LG_ID_STR], rid_s[LG_ID_STR], author_s[LG_ID_STR];
    for (int t = 0; t < LG_TRIES; t++) {
        uint32_t ri = lg_pick_recipe(g);
        if (ri == LG_NONE || g->recipes[ri].author == u || lg_set_has(&g->like_set, lg_pair(u, ri)))
            continue;
        lg_ids3(g, u, ri, uid_s, rid_s, author_s);
        lg_emit_user(g, u, ES_TYPE_RECIPE_LIKED,
                     json_pack("{s:s, s:s, s:s}", "user_id", uid_s, "recipe_id", rid_s,
                               "recipe_author_id", author_s));
        g->likes = lg_grow(g->likes, &g->cap_likes, g->n_likes, sizeof(struct lg_edge));
        g->likes[g->n_likes] = (struct lg_edge){u, ri, g->users[u].likes, false};
        g->users[u].likes = (uint32_t)g->n_likes++;
        lg_set_add(&g->like_set, lg_pair(u, ri));
        lg_notify(g, g->recipes[ri].author, u);
        return true;
    }
    return false;
}

static uint32_t lg_like_prev(const struct lg *g, uint32_t i)
{
    return g->likes[i].prev;
}

static bool lg_like_live(const struct lg *g, uint32_t i)
{
    return !g->likes[i].dead && !g->recipes[g->likes[i].to].deleted;
}

static const struct lg_list lg_like_list = {lg_like_prev, lg_like_live};

/* RecipeUnliked of one of the user's recent likes of a recipe still there. */
static bool lg_unlike(struct lg *g, uint32_t u)
{
    uint32_t cand[LG_WALK];
    char uid_s[LG_ID_STR], rid_s[LG_ID_STR], author_s[LG_ID_STR];
    size_t n = lg_walk(g, &lg_like_list, g->users[u].likes, cand);
    if (n == 0)
        return false;
    struct lg_edge *e = &g->likes[cand[lg_below(&g->rng, n)]];
    lg_ids3(g, u, e->to, uid_s, rid_s, author_s);
    lg_emit_user(g, u, ES_TYPE_RECIPE_UNLIKED,
                 json_pack("{s:s, s:s, s:s}", "user_id", uid_s, "recipe_id", rid_s,
                           "recipe_author_id", author_s));
    e->dead = true;
    lg_set_del(&g->like_set, lg_pair(u, e->to));
    return true;
}

static const char *const lg_remarks[] = {
    "Made this tonight and it was a hit.",
    "Turned out great, thanks for sharing!",
    "I added a little more garlic.",
    "Could I use butter instead of oil?",
    "My kids asked for seconds.",
    "A bit too salty for me, next time I'll use less.",
    "This is now on our weekly rotation.",
    "Doubled the recipe for a party, worked perfectly.",
    "How long does it keep in the fridge?",
    "Swapped the cream for yogurt: still delicious.",
    "The timing in step 2 was spot on.",
    "Beautiful photos, can't wait to try it.",
    "Reminds me of my grandmother's version.",
    "Worked with gluten-free flour too.",
    "Lovely!\nWill make it again.",
    "Needed 10 more minutes in my oven.",
};

/* RecipeCommented on a live recipe: a new comment-<id> stream at version 1. */
static bool lg_comment(struct lg *g, uint32_t u)
{
    char uid_s[LG_ID_STR], rid_s[LG_ID_STR], author_s[LG_ID_STR], cid_s[LG_ID_STR];
    char stream[LG_ID_STR + 12], text[256];
    uint32_t ri = LG_NONE;
    for (int t = 0; t < LG_TRIES && ri == LG_NONE; t++)
        ri = lg_pick_recipe(g);
    if (ri == LG_NONE)
        return false;
    uint64_t r = lg_rand(&g->rng);
    snprintf(text, sizeof(text), "%s%s%s", lg_remarks[r % LG_COUNT(lg_remarks)],
             (r >> 8) % 3 == 0 ? " " : "",
             (r >> 8) % 3 == 0 ? lg_remarks[(r >> 16) % LG_COUNT(lg_remarks)] : "");
    int64_t cid = lg_next_id(g);
    lg_id_str(cid, cid_s);
    lg_ids3(g, u, ri, uid_s, rid_s, author_s);
    snprintf(stream, sizeof(stream), "comment-%s", cid_s);
    lg_emit(g, ES_TYPE_RECIPE_COMMENTED, stream, 1, g->users[u].id,
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "comment_id", cid_s, "recipe_id", rid_s,
                      "user_id", uid_s, "content", text, "recipe_author_id", author_s));
    g->comments = lg_grow(g->comments, &g->cap_comments, g->n_comments, sizeof(struct lg_comment));
    g->comments[g->n_comments] = (struct lg_comment){cid, ri, u, g->users[u].comments, false};
    g->users[u].comments = (uint32_t)g->n_comments++;
    lg_notify(g, g->recipes[ri].author, u);
    return true;
}

static uint32_t lg_comment_prev(const struct lg *g, uint32_t i)
{
    return g->comments[i].prev;
}

static bool lg_comment_live(const struct lg *g, uint32_t i)
{
    return !g->comments[i].deleted && !g->recipes[g->comments[i].recipe].deleted;
}

static const struct lg_list lg_comment_list = {lg_comment_prev, lg_comment_live};

/* CommentDeleted by its author, of a recent comment on a recipe still there (version 2). */
static bool lg_uncomment(struct lg *g, uint32_t u)
{
    uint32_t cand[LG_WALK];
    char cid_s[LG_ID_STR], rid_s[LG_ID_STR], author_s[LG_ID_STR], uid_s[LG_ID_STR];
    char stream[LG_ID_STR + 12];
    size_t n = lg_walk(g, &lg_comment_list, g->users[u].comments, cand);
    if (n == 0)
        return false;
    struct lg_comment *c = &g->comments[cand[lg_below(&g->rng, n)]];
    lg_id_str(c->id, cid_s);
    lg_ids3(g, u, c->recipe, uid_s, rid_s, author_s);
    snprintf(stream, sizeof(stream), "comment-%s", cid_s);
    lg_emit(g, ES_TYPE_COMMENT_DELETED, stream, 2, g->users[u].id,
            json_pack("{s:s, s:s, s:s}", "comment_id", cid_s, "recipe_id", rid_s,
                      "recipe_author_id", author_s));
    c->deleted = true;
    return true;
}

/* RecipeCreated of a random accepted line of the recipes file. */
static bool lg_create(struct lg *g, uint32_t u)
{
    char rid_s[LG_ID_STR], uid_s[LG_ID_STR], stream[LG_ID_STR + 8];
    uint32_t line = (uint32_t)lg_below(&g->rng, g->src.n);
    json_t *rec = lg_source_get(&g->src, line);
    if (rec == NULL) {
        fprintf(stderr, "stockpot-loggen: the recipes file changed while reading it\n");
        exit(1);
    }
    int64_t rid = lg_next_id(g);
    lg_id_str(rid, rid_s);
    lg_id_str(g->users[u].id, uid_s);
    snprintf(stream, sizeof(stream), "recipe-%s", rid_s);
    lg_emit(g, ES_TYPE_RECIPE_CREATED, stream, 1, g->users[u].id,
            lg_recipe_payload(rec, rid_s, uid_s));
    json_decref(rec);
    g->recipes = lg_grow(g->recipes, &g->cap_recipes, g->n_recipes, sizeof(struct lg_recipe));
    g->recipes[g->n_recipes] = (struct lg_recipe){rid, 1, u, line, g->users[u].recipes, false};
    g->users[u].recipes = (uint32_t)g->n_recipes++;
    return true;
}

static uint32_t lg_recipe_prev(const struct lg *g, uint32_t i)
{
    return g->recipes[i].prev;
}

static bool lg_recipe_live(const struct lg *g, uint32_t i)
{
    return !g->recipes[i].deleted;
}

static const struct lg_list lg_recipe_list = {lg_recipe_prev, lg_recipe_live};

/* One of the user's recent live recipes, or LG_NONE. */
static uint32_t lg_own_recipe(struct lg *g, uint32_t u)
{
    uint32_t cand[LG_WALK];
    size_t n = lg_walk(g, &lg_recipe_list, g->users[u].recipes, cand);
    return n == 0 ? LG_NONE : cand[lg_below(&g->rng, n)];
}

static const char *const lg_tags[] = {
    "easy",    "quick",   "vegetarian", "vegan",       "dessert", "breakfast", "dinner",
    "lunch",   "baking",  "soup",       "salad",       "spicy",   "healthy",   "comfort food",
    "holiday", "grill",   "one-pot",    "gluten-free", "kids",    "budget",    "summer",
    "winter",  "italian", "mexican",    "indian",      "thai",    "french",    "meal prep"};
static const char *const lg_notes[] = {
    "Updated after cooking it again: less sugar, more lemon.",
    "Clarified the oven temperature.",
    "Now with a make-ahead tip.",
    "Tested at high altitude; added notes.",
    "Reader favourite, slightly simplified.",
};

/* Unicode code points of UTF-8 text @p s. */
static size_t lg_code_points(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* A new steps array: @p steps (borrowed) and one more tip, if there is room for it. */
static json_t *lg_more_steps(const json_t *steps, const char *tip)
{
    json_t *out = json_array(), *e;
    size_t i;
    json_array_foreach(steps, i, e) {
        json_array_append(out, e);
    }
    if (json_array_size(out) < 200)
        json_array_append_new(out, json_string(tip));
    return out;
}

/*
 * The fields a RecipeUpdated changes, in schema order (as decide.c copies them): a non-empty
 * subset of a new title (the original with the version), a note as description, the
 * original steps plus a tip, and new tags. @p rec is the recipe's line. @return owned
 */
static json_t *lg_update_data(struct lg *g, const struct lg_recipe *r, const json_t *rec)
{
    uint64_t m = 1 + lg_below(&g->rng, 15), pick = lg_rand(&g->rng);
    const char *title = json_string_value(json_object_get(rec, "title"));
    json_t *data = json_object(), *tags;
    char buf[1024];

    snprintf(buf, sizeof(buf), "%s (v%" PRId64 ")", title, r->version + 1);
    if ((m & 1) && strlen(title) < 900 && lg_code_points(buf) <= 200)
        json_object_set_new(data, "title", json_string(buf));
    if ((m & 2) || json_object_size(data) == 0)
        json_object_set_new(data, "description", json_string(lg_notes[pick % LG_COUNT(lg_notes)]));
    if (m & 4)
        json_object_set_new(data, "steps",
                            lg_more_steps(json_object_get(rec, "steps"),
                                          "Let it rest for five minutes before serving."));
    if (m & 8) {
        tags = json_array();
        for (uint64_t k = 0; k <= (pick >> 8) % 4; k++)
            json_array_append_new(tags,
                                  json_string(lg_tags[(pick >> (16 + 5 * k)) % LG_COUNT(lg_tags)]));
        json_object_set_new(data, "tags", tags);
    }
    return data;
}

/* RecipeUpdated or RecipeDeleted of one of the author's own live recipes. */
static bool lg_change(struct lg *g, uint32_t u, bool del)
{
    char stream[LG_ID_STR + 8];
    uint32_t ri = lg_own_recipe(g, u);
    if (ri == LG_NONE)
        return false;
    struct lg_recipe *r = &g->recipes[ri];
    json_t *data = json_object();
    if (!del) {
        json_t *rec = lg_source_get(&g->src, r->line);
        if (rec == NULL) {
            fprintf(stderr, "stockpot-loggen: the recipes file changed while reading it\n");
            exit(1);
        }
        json_decref(data);
        data = lg_update_data(g, r, rec);
        json_decref(rec);
    }
    snprintf(stream, sizeof(stream), "recipe-%" PRId64, r->id);
    lg_emit(g, del ? ES_TYPE_RECIPE_DELETED : ES_TYPE_RECIPE_UPDATED, stream, ++r->version,
            g->users[u].id, data);
    r->deleted = del;
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Chat: rooms, members, messages, read markers (--chat)                                    */

static uint32_t lg_member_prev(const struct lg *g, uint32_t i)
{
    return g->members[i].prev;
}

static bool lg_member_live(const struct lg *g, uint32_t i)
{
    return !g->members[i].dead;
}

static const struct lg_list lg_member_list = {lg_member_prev, lg_member_live};

/* Emit on the room's stream conversation-<id> (its next version) as user @p u. */
static void lg_emit_room(struct lg *g, uint32_t ri, uint32_t u, enum es_type type, json_t *data)
{
    char stream[LG_ID_STR + 16];
    struct lg_room *r = &g->rooms[ri];
    snprintf(stream, sizeof(stream), "conversation-%" PRId64, r->id);
    lg_emit(g, type, stream, ++r->version, g->users[u].id, data);
}

/* Make @p u a member of room @p ri (its membership list and the room's members). */
static void lg_join(struct lg *g, uint32_t ri, uint32_t u)
{
    struct lg_room *r = &g->rooms[ri];
    r->members[r->n++] = u;
    g->members = lg_grow(g->members, &g->cap_members, g->n_members, sizeof(struct lg_member));
    g->members[g->n_members] = (struct lg_member){ri, g->users[u].rooms, 0, false};
    g->users[u].rooms = (uint32_t)g->n_members++;
}

static const char *const lg_room_titles[] = {
    "Sunday dinner", "Bread club", "Meal prep", "Family recipes", "Spice swap", "BBQ crew",
};

/*
 * ConversationCreated: a direct room with one of @p u's followees (none yet for the
 * pair), or now and then a group of @p u and 2 to LG_ROOM_MAX - 1 of them, @p u its admin.
 */
static bool lg_room_new(struct lg *g, uint32_t u)
{
    uint32_t cand[LG_WALK], pick[LG_ROOM_MAX];
    char id_s[LG_ID_STR], creator_s[LG_ID_STR];
    size_t n = lg_walk(g, &lg_follow_list, g->users[u].follows, cand), k;
    if (n == 0)
        return false;
    bool group = n >= 2 && lg_chance(&g->rng, 300);
    if (group) {
        k = 2 + lg_below(&g->rng, (n < LG_ROOM_MAX - 1 ? n : LG_ROOM_MAX - 1) - 1);
        for (size_t i = 0; i < k; i++) { /* k distinct follows: a partial shuffle */
            size_t j = i + lg_below(&g->rng, n - i);
            uint32_t t = cand[i];
            cand[i] = cand[j];
            cand[j] = t;
            pick[i] = g->follows[cand[i]].to;
        }
    } else {
        k = 1;
        pick[0] = g->follows[cand[lg_below(&g->rng, n)]].to;
        uint32_t a = u < pick[0] ? u : pick[0], b = u < pick[0] ? pick[0] : u;
        if (lg_set_has(&g->direct_set, lg_pair(a, b)))
            return false;
        lg_set_add(&g->direct_set, lg_pair(a, b));
    }
    g->rooms = lg_grow(g->rooms, &g->cap_rooms, g->n_rooms, sizeof(struct lg_room));
    uint32_t ri = (uint32_t)g->n_rooms++;
    struct lg_room *r = &g->rooms[ri];
    *r = (struct lg_room){.id = lg_next_id(g), .admin = group ? u : LG_NONE, .group = group};
    lg_join(g, ri, u);
    json_t *ids = json_array();
    lg_id_str(g->users[u].id, creator_s);
    json_array_append_new(ids, json_string(creator_s));
    for (size_t i = 0; i < k; i++) {
        lg_join(g, ri, pick[i]);
        lg_id_str(g->users[pick[i]].id, id_s);
        json_array_append_new(ids, json_string(id_s));
    }
    lg_id_str(r->id, id_s);
    json_t *data = json_pack("{s:s, s:b, s:s, s:o}", "conversation_id", id_s, "is_group", group,
                             "creator_id", creator_s, "member_ids", ids);
    if (group)
        json_object_set_new(
            data, "title",
            json_string(lg_room_titles[lg_below(&g->rng, LG_COUNT(lg_room_titles))]));
    lg_emit_room(g, ri, u, ES_TYPE_CONVERSATION_CREATED, data);
    return true;
}

/* One of @p u's live memberships among the newest LG_WALK, by @p ok (NULL: any). */
static uint32_t
lg_pick_member(struct lg *g, uint32_t u, bool (*ok)(const struct lg *g, uint32_t m, uint32_t u))
{
    uint32_t cand[LG_WALK], keep[LG_WALK];
    size_t n = lg_walk(g, &lg_member_list, g->users[u].rooms, cand), k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ok || ok(g, cand[i], u))
            keep[k++] = cand[i];
    }
    return k == 0 ? LG_NONE : keep[lg_below(&g->rng, k)];
}

/* MessageSent to one of @p u's rooms; notifies the other members. */
static bool lg_message(struct lg *g, uint32_t u)
{
    char rid_s[LG_ID_STR], mid_s[LG_ID_STR], uid_s[LG_ID_STR], txn[32];
    uint32_t m = lg_pick_member(g, u, NULL);
    if (m == LG_NONE)
        return false;
    uint32_t ri = g->members[m].room;
    struct lg_room *r = &g->rooms[ri];
    r->last_msg = lg_next_id(g);
    g->members[m].read_up_to = r->last_msg; /* one's own messages are read */
    lg_id_str(r->id, rid_s);
    lg_id_str(r->last_msg, mid_s);
    lg_id_str(g->users[u].id, uid_s);
    snprintf(txn, sizeof(txn), "lg.%" PRIu64, ++g->n_txns);
    lg_emit_room(g, ri, u, ES_TYPE_MESSAGE_SENT,
                 json_pack("{s:s, s:s, s:s, s:s, s:s}", "conversation_id", rid_s, "message_id",
                           mid_s, "sender_id", uid_s, "content",
                           lg_remarks[lg_below(&g->rng, LG_COUNT(lg_remarks))], "txn_id", txn));
    for (uint8_t i = 0; i < r->n; i++)
        lg_notify(g, r->members[i], u);
    return true;
}

static bool lg_unread(const struct lg *g, uint32_t m, uint32_t u)
{
    (void)u;
    return g->rooms[g->members[m].room].last_msg > g->members[m].read_up_to;
}

/* MessagesRead up to the newest message of one of @p u's rooms with unread ones. */
static bool lg_room_read(struct lg *g, uint32_t u)
{
    char rid_s[LG_ID_STR], uid_s[LG_ID_STR], up_s[LG_ID_STR];
    uint32_t m = lg_pick_member(g, u, lg_unread);
    if (m == LG_NONE)
        return false;
    struct lg_room *r = &g->rooms[g->members[m].room];
    g->members[m].read_up_to = r->last_msg;
    lg_id_str(r->id, rid_s);
    lg_id_str(g->users[u].id, uid_s);
    lg_id_str(r->last_msg, up_s);
    lg_emit_room(
        g, g->members[m].room, u, ES_TYPE_MESSAGES_READ,
        json_pack("{s:s, s:s, s:s}", "conversation_id", rid_s, "user_id", uid_s, "up_to_id", up_s));
    return true;
}

static bool lg_may_leave(const struct lg *g, uint32_t m, uint32_t u)
{
    const struct lg_room *r = &g->rooms[g->members[m].room];
    return r->group && r->admin != u;
}

/* MemberRemoved: @p u leaves one of their groups (not one they administer). */
static bool lg_room_leave(struct lg *g, uint32_t u)
{
    char rid_s[LG_ID_STR], uid_s[LG_ID_STR];
    uint32_t m = lg_pick_member(g, u, lg_may_leave);
    if (m == LG_NONE)
        return false;
    struct lg_room *r = &g->rooms[g->members[m].room];
    for (uint8_t i = 0; i < r->n; i++) {
        if (r->members[i] == u)
            r->members[i] = r->members[--r->n];
    }
    g->members[m].dead = true;
    lg_id_str(r->id, rid_s);
    lg_id_str(g->users[u].id, uid_s);
    lg_emit_room(g, g->members[m].room, u, ES_TYPE_MEMBER_REMOVED,
                 json_pack("{s:s, s:s, s:s}", "conversation_id", rid_s, "user_id", uid_s,
                           "removed_by", uid_s));
    return true;
}

static bool lg_may_add(const struct lg *g, uint32_t m, uint32_t u)
{
    const struct lg_room *r = &g->rooms[g->members[m].room];
    return r->group && r->admin == u && r->n < LG_ROOM_MAX;
}

/* MemberAdded: @p u, admin of a group with room left, adds a followee not in it yet. */
static bool lg_room_add(struct lg *g, uint32_t u)
{
    uint32_t cand[LG_WALK];
    char rid_s[LG_ID_STR], uid_s[LG_ID_STR], by_s[LG_ID_STR];
    uint32_t m = lg_pick_member(g, u, lg_may_add);
    size_t n = lg_walk(g, &lg_follow_list, g->users[u].follows, cand);
    if (m == LG_NONE || n == 0)
        return false;
    uint32_t ri = g->members[m].room, v = g->follows[cand[lg_below(&g->rng, n)]].to;
    struct lg_room *r = &g->rooms[ri];
    for (uint8_t i = 0; i < r->n; i++) {
        if (r->members[i] == v)
            return false;
    }
    lg_join(g, ri, v);
    lg_id_str(r->id, rid_s);
    lg_id_str(g->users[v].id, uid_s);
    lg_id_str(g->users[u].id, by_s);
    lg_emit_room(
        g, ri, u, ES_TYPE_MEMBER_ADDED,
        json_pack("{s:s, s:s, s:s}", "conversation_id", rid_s, "user_id", uid_s, "added_by", by_s));
    return true;
}

/* A chat action: messages most, then read markers, new rooms, joins and leaves. */
static bool lg_chat(struct lg *g, uint32_t u)
{
    uint64_t r = lg_below(&g->rng, 1000);
    if (r < 640)
        return lg_message(g, u) || lg_room_new(g, u);
    if (r < 840)
        return lg_room_read(g, u) || lg_message(g, u);
    if (r < 960)
        return lg_room_new(g, u) || lg_message(g, u);
    if (r < 980)
        return lg_room_add(g, u) || lg_message(g, u);
    return lg_room_leave(g, u) || lg_message(g, u);
}

/* ---------------------------------------------------------------------------------------- */
/* Visits and slots                                                                         */

/* Do action @p a as user @p u. @return false if nothing fits (no event then). */
static bool lg_act(struct lg *g, uint32_t u, enum lg_action a)
{
    switch (a) {
    case LG_LIKE:
        return lg_like(g, u);
    case LG_FOLLOW:
        return lg_follow(g, u);
    case LG_COMMENT:
        return lg_comment(g, u);
    case LG_READ:
        return lg_read(g, u);
    case LG_CREATE:
        return lg_create(g, u);
    case LG_PROFILE:
        return lg_profile(g, u);
    case LG_UNLIKE:
        return lg_unlike(g, u);
    case LG_UNFOLLOW:
        return lg_unfollow(g, u);
    case LG_UPDATE:
        return lg_change(g, u, false);
    case LG_UNCOMMENT:
        return lg_uncomment(g, u);
    case LG_DELETE:
        return lg_change(g, u, true);
    default:
        return false;
    }
}

static enum lg_action lg_choose(struct lg *g, const struct lg_user *us)
{
    unsigned total = 0;
    if (!us->profiled && lg_chance(&g->rng, 400))
        return LG_PROFILE; /* new users fill in their profile early */
    for (int a = 0; a < LG_ACTION__COUNT; a++)
        total += lg_action_weight[a];
    uint64_t r = lg_below(&g->rng, total);
    for (int a = 0; a < LG_ACTION__COUNT; a++) {
        if (r < lg_action_weight[a])
            return (enum lg_action)a;
        r -= lg_action_weight[a];
    }
    return LG_LIKE;
}

/* A user to start a visit: drawn by activity among those not churned and not visiting. */
static uint32_t lg_pick_visitor(struct lg *g)
{
    for (int t = 0; t < LG_TRIES && g->activity.total > 0; t++) {
        uint32_t u =
            lg_fen_find(&g->activity, (int64_t)lg_below(&g->rng, (uint64_t)g->activity.total));
        if (g->users[u].active_until_us <= g->now_us) {
            lg_fen_set(&g->activity, u, 0); /* churned: never drawn again */
            continue;
        }
        if (g->users[u].visit_left == 0)
            return u;
    }
    return LG_NONE;
}

/* The user who acts in this slot: a new visitor while there is room, else a visiting one. */
static uint32_t lg_pick_actor(struct lg *g)
{
    uint32_t u;
    if (g->n_online < g->max_online && (u = lg_pick_visitor(g)) != LG_NONE) {
        lg_visit_start(g, u, 1);
        return u;
    }
    if (g->n_online > 0)
        return g->online[lg_below(&g->rng, g->n_online)];
    u = (uint32_t)lg_below(&g->rng, g->n_users); /* everyone churned: someone comes back */
    lg_visit_start(g, u, 1);
    return u;
}

/* One step of @p u's visit: log in, refresh the access token, or act (exactly one event). */
static void lg_step(struct lg *g, uint32_t u)
{
    struct lg_user *us = &g->users[u];
    if (us->sess_id == 0 || us->sess_exp_us <= g->now_us) {
        lg_session_token(g, u, true);
        return;
    }
    if (us->token_exp_us <= g->now_us) {
        if (lg_chance(&g->rng, 3))
            lg_session_revoke(g, u, "refresh_token_reuse");
        else
            lg_session_token(g, u, false);
        return;
    }
    bool last = --us->visit_left <= 0;
    if (last) {
        us->visit_left = 0;
        lg_visit_end(g, u);
        if (lg_chance(&g->rng, 120)) {
            lg_session_revoke(g, u, "logout");
            return;
        }
    }
    if (g->opt.chat > 0 && lg_chance(&g->rng, (unsigned)g->opt.chat) && lg_chat(g, u))
        return;
    if (!lg_act(g, u, lg_choose(g, us)) && !lg_like(g, u) && !lg_follow(g, u))
        lg_create(g, u);
}

/* The event of the current slot: a registration while the growth curve asks for one (or
 * only registrations fit in the slots left), else one step of a visit. */
static void lg_slot(struct lg *g)
{
    int64_t users = g->opt.users, left = users - (int64_t)g->n_users;
    double x = (double)(g->now_us - g->opt.start_us) / (double)(g->opt.days * LG_DAY_US);
    double want_d = (double)users * lg_growth(g, x);
    int64_t want = (int64_t)want_d;

    want += (double)want < want_d;
    if (left > 0 && ((int64_t)g->n_users < want || left >= g->opt.events - g->slot))
        lg_register(g);
    else
        lg_step(g, lg_pick_actor(g));
}

static void lg_progress(const struct lg *g, int64_t t0_us)
{
    double s = (double)(sp_time_mono_us() - t0_us) / 1e6;
    fprintf(stderr, "\rstockpot-loggen: %" PRId64 " / %ld events, %.0f events/s ", g->slot,
            g->opt.events, s > 0 ? (double)g->slot / s : 0.0);
}

/* Generate every slot, appending full batches through the writer thread. @return 0 or the
 * first append error (writer.eb says why). */
static int lg_run(struct lg *g)
{
    int64_t t0 = sp_time_mono_us(), shown = t0;
    bool tty = isatty(STDERR_FILENO);
    int err = 0;

    for (g->slot = 0; g->slot < g->opt.events && err == 0; g->slot++) {
        size_t before = g->batch[g->cur].n;
        lg_clock(g);
        lg_slot(g);
        SP_ASSERT(g->batch[g->cur].n == before + 1); /* one event per slot */
        if (g->batch[g->cur].n == (size_t)g->opt.batch)
            err = lg_flush(g);
        if (tty && (g->slot & 0xfff) == 0 && sp_time_mono_us() - shown > 500000) {
            shown = sp_time_mono_us();
            lg_progress(g, t0);
        }
    }
    if (err == 0)
        err = lg_flush(g);
    int last = lg_writer_finish(g);
    if (tty) {
        lg_progress(g, t0);
        fputc('\n', stderr);
    }
    return err != 0 ? err : last;
}

/* ---------------------------------------------------------------------------------------- */
/* Set-up, options, report                                                                  */

static void lg_init(struct lg *g)
{
    const struct lg_opts *o = &g->opt;
    lg_rng_seed(&g->rng, (uint64_t)o->seed);
    g->node = (uint32_t)lg_below(&g->rng, 1024);
    g->hours = (size_t)o->days * 24;
    g->seed_share = 2.0 / (double)o->users > 0.03 ? 2.0 / (double)o->users : 0.03;
    g->seed_share = g->seed_share < 1.0 ? g->seed_share : 1.0;
    lg_schedule_init(g);
    g->now_us = o->start_us;
    g->max_users = (size_t)o->users;
    g->users = sp_xcalloc(g->max_users, sizeof(struct lg_user));
    lg_fen_init(&g->activity, g->max_users);
    lg_fen_init(&g->fame, g->max_users);
    /* visitors at once: about two minutes of events, 1..256 */
    long per_min = o->events / (o->days * 1440);
    g->max_online = (size_t)(per_min * 2 < 1 ? 1 : per_min * 2 > 256 ? 256 : per_min * 2);
    g->online = sp_xcalloc(2 * g->max_online, sizeof(uint32_t));
    lg_set_init(&g->follow_set, 1024);
    lg_set_init(&g->like_set, 1024);
    lg_set_init(&g->direct_set, 1024);
    for (int k = 0; k < 2; k++) {
        struct lg_batch *b = &g->batch[k];
        b->evs = sp_xcalloc((size_t)o->batch, sizeof(struct es_event));
        b->evp = sp_xcalloc((size_t)o->batch, sizeof(struct es_event *));
        for (long i = 0; i < o->batch; i++) {
            es_event_init(&b->evs[i]);
            b->evp[i] = &b->evs[i];
        }
    }
}

static void lg_release(struct lg *g)
{
    for (int k = 0; k < 2; k++) {
        struct lg_batch *b = &g->batch[k];
        for (long i = 0; b->evs != NULL && i < g->opt.batch; i++)
            es_event_release(&b->evs[i]);
        free(b->evs);
        free((void *)b->evp);
    }
    free(g->first_slot);
    free(g->users);
    lg_fen_release(&g->activity);
    lg_fen_release(&g->fame);
    free(g->online);
    free(g->follow_set.keys);
    free(g->like_set.keys);
    free(g->follows);
    free(g->likes);
    free(g->recipes);
    free(g->comments);
    free(g->direct_set.keys);
    free(g->rooms);
    free(g->members);
    lg_source_close(&g->src);
}

static void lg_usage(FILE *f)
{
    fprintf(f,
            "usage: stockpot-loggen --events N --recipes FILE [options]\n"
            "Appends a deterministic, realistic social-network event log of N events to the\n"
            "event log the configuration names (embedded LMDB log or Kafka), each event as\n"
            "the command-api would have appended it, and prints a JSON summary on stdout.\n"
            "  --config FILE   stockpot configuration (default: $STOCKPOT_CONFIG, else the\n"
            "                  built-in defaults); STOCKPOT_<KEY> variables override it.\n"
            "                  kafka.transactional_id %s becomes %s\n"
            "  --events N      events to append (required)\n"
            "  --recipes FILE  recipes JSONL, read in place (required)\n"
            "  --seed S        PRNG seed (default 1): the same seed and options give the\n"
            "                  same log, byte for byte\n"
            "  --start DATE    start of the period, YYYY-MM-DD UTC (default 2026-01-01)\n"
            "  --days D        length of the period in days (default 30)\n"
            "  --users U       users registering over the period (default about N/50)\n"
            "  --batch B       events per es_log_append (default 1000)\n"
            "  --chat C        share of visit actions that are chat actions (rooms, messages,\n"
            "                  read markers, joins, leaves), per mille (default 0: none)\n"
            "Every generated user's password is \"stockpot-loggen\".\n",
            LG_COMMAND_API_TXID, LG_TXID);
}

/* Parse "YYYY-MM-DD" as UTC midnight. @return 0 or SP_EINVAL. */
static int lg_parse_date(const char *s, int64_t *out_us)
{
    char ts[32];
    if (strlen(s) != 10)
        return SP_EINVAL;
    snprintf(ts, sizeof(ts), "%sT00:00:00Z", s);
    return sp_time_parse_rfc3339(ts, out_us);
}

/* Store numeric option @p ch. @return 0, or -1 after saying what is wrong. */
static int lg_parse_num(struct lg_opts *o, int ch, const char *name, const char *arg)
{
    const struct {
        int ch;
        long *dst, min, max;
    } nums[] = {
        {'n', &o->events, 1, 1000000000}, {'s', &o->seed, 0, LONG_MAX}, {'d', &o->days, 1, 3650},
        {'u', &o->users, 1, 100000000},   {'b', &o->batch, 1, 65536},   {'C', &o->chat, 0, 1000},
    };
    for (size_t i = 0; i < LG_COUNT(nums); i++) {
        if (nums[i].ch != ch)
            continue;
        if (bench_parse_long(arg, nums[i].min, nums[i].max, nums[i].dst) == 0)
            return 0;
        fprintf(stderr, "stockpot-loggen: --%s must be an integer from %ld to %ld, not \"%s\"\n",
                name, nums[i].min, nums[i].max, arg);
        return -1;
    }
    return -1;
}

/* Cross-option checks and defaults. @return 0 or -1 after saying what is wrong. */
static int lg_check_opts(struct lg_opts *o)
{
    if (o->events == 0 || o->recipes == NULL) {
        fprintf(stderr, "stockpot-loggen: --events and --recipes are required\n");
        return -1;
    }
    if (o->users == 0)
        o->users = o->events / 50 < 2 ? (o->events < 2 ? o->events : 2) : o->events / 50;
    if (o->users > o->events) {
        fprintf(stderr, "stockpot-loggen: --users (%ld) must not exceed --events (%ld)\n", o->users,
                o->events);
        return -1;
    }
    if (o->start_us < LG_MIN_START_US || o->start_us + o->days * LG_DAY_US > LG_MAX_END_US) {
        fprintf(stderr, "stockpot-loggen: the period must lie within 2024-01-01 and 2090-01-01 "
                        "(Snowflake and notification ids count from 2024)\n");
        return -1;
    }
    return 0;
}

static int lg_parse(struct lg_opts *o, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"events", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"start", required_argument, NULL, 'S'},
        {"days", required_argument, NULL, 'd'},
        {"users", required_argument, NULL, 'u'},
        {"recipes", required_argument, NULL, 'r'},
        {"batch", required_argument, NULL, 'b'},
        {"chat", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch, idx = 0;
    opterr = 0; /* our own messages, named stockpot-loggen whatever argv[0] is */
    while ((ch = getopt_long(argc, argv, "h", lopts, &idx)) != -1) {
        if (ch == 'h') {
            lg_usage(stdout);
            exit(0);
        } else if (ch == 'c') {
            o->config = optarg;
        } else if (ch == 'r') {
            o->recipes = optarg;
        } else if (ch == 'S') {
            if (lg_parse_date(optarg, &o->start_us) != 0) {
                fprintf(stderr, "stockpot-loggen: --start must be a date YYYY-MM-DD, not \"%s\"\n",
                        optarg);
                return -1;
            }
        } else if (ch == '?') {
            fprintf(stderr, "stockpot-loggen: unknown option, or its value is missing: \"%s\"\n",
                    argv[optind - 1]);
            return -1;
        } else if (lg_parse_num(o, ch, lopts[idx].name, optarg) != 0) {
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "stockpot-loggen: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    return lg_check_opts(o);
}

static void lg_report(struct lg *g, double seconds)
{
    struct sp_errbuf eb = {{0}, {0}};
    char pos[32];
    const char *sep = "";

    printf("{\"events\": %" PRId64 ", \"by_type\": {", g->writer.appended);
    for (int t = 1; t < ES_TYPE__COUNT; t++) {
        printf("%s\"%s\": %" PRId64, sep, es_type_name((enum es_type)t), g->by_type[t]);
        sep = ", ";
    }
    printf("}, \"seconds\": %.3f, \"events_per_s\": %.0f, \"end\": [", seconds,
           seconds > 0 ? (double)g->writer.appended / seconds : 0.0);
    for (int32_t p = 0; p < es_log_partitions(g->log); p++) {
        struct es_position end = {p, -1};
        if (es_log_end(g->log, p, &end.offset, &eb) != 0)
            fprintf(stderr, "stockpot-loggen: could not read the end of partition %d: %s\n", (int)p,
                    eb.msg);
        es_position_format(end, pos, sizeof(pos));
        printf("%s\"%s\"", p > 0 ? ", " : "", pos);
    }
    printf("]}\n");
}

/* Load the configuration as the daemons do; keep a Kafka writer off the command-api's
 * transactional.id, which would fence a running command-api. @return 0 or -1. */
static int lg_config(const char *path, struct sp_config **cfg)
{
    struct sp_errbuf eb = {{0}, {0}};
    sp_log_setup(SP_LOG_ERROR, "loggen");
    if (sp_config_load(cfg, path, &eb) != 0) {
        fprintf(stderr, "stockpot-loggen: bad configuration: %s\n", eb.msg);
        return -1;
    }
    sp_log_setup(SP_LOG_WARN, "loggen");
    if (strcmp(sp_config_str(*cfg, "kafka.transactional_id"), LG_COMMAND_API_TXID) == 0 &&
        sp_config_set(*cfg, "kafka.transactional_id", LG_TXID, &eb) != 0) {
        fprintf(stderr, "stockpot-loggen: %s\n", eb.msg);
        return -1;
    }
    return 0;
}

/* Index the recipes file. @return 0, or -1 after saying why. */
static int lg_load_recipes(struct lg *g, const struct sp_config *cfg)
{
    /* a recipe line longer than this would make an event over log.max_event_bytes */
    size_t max_event = (size_t)sp_config_int(cfg, "log.max_event_bytes");
    int rc = lg_source_open(&g->src, g->opt.recipes,
                            max_event > 8192 ? max_event - 4096 : max_event / 2);
    if (rc == 0)
        return 0;
    fprintf(stderr, "stockpot-loggen: could not use recipes file \"%s\": %s\n", g->opt.recipes,
            rc == -ENODATA ? "no line is a recipe the command-api would accept" : sp_strerror(rc));
    lg_source_close(&g->src);
    return -1;
}

int main(int argc, char **argv)
{
    static struct lg g; /* large; zero-initialised */
    struct sp_config *cfg = NULL;
    int rc, status = 1;

    g.opt = (struct lg_opts){.seed = 1, .days = 30, .batch = 1000};
    if (lg_parse_date("2026-01-01", &g.opt.start_us) != 0 || lg_parse(&g.opt, argc, argv) != 0) {
        fprintf(stderr, "try stockpot-loggen --help\n");
        return 2;
    }
    if (lg_config(g.opt.config, &cfg) != 0)
        return 2;
    if (lg_load_recipes(&g, cfg) != 0) {
        sp_config_free(cfg);
        return 2;
    }
    lg_init(&g);
    g.jwt_ttl_us = sp_config_int(cfg, "jwt.ttl_s") * 1000000;
    g.refresh_ttl_us = sp_config_int(cfg, "refresh.ttl_s") * 1000000;
    if (es_log_open(cfg, ES_LOG_WRITER, &g.log, &g.writer.eb) != 0) {
        fprintf(stderr, "stockpot-loggen: could not open the %s event log: %s\n",
                sp_config_str(cfg, "log.backend"), g.writer.eb.msg);
        goto out_release;
    }
    if (lg_check_empty(&g) != 0)
        goto out_close_log;
    if ((rc = lg_writer_start(&g)) != 0) {
        fprintf(stderr, "stockpot-loggen: could not start the writer thread: %s\n",
                sp_strerror(rc));
        goto out_close_log;
    }
    int64_t t0 = sp_time_mono_us();
    if ((rc = lg_run(&g)) != 0)
        fprintf(stderr, "stockpot-loggen: append failed after %" PRId64 " events: %s (%s)\n",
                g.writer.appended, g.writer.eb.msg, sp_errname(rc));
    else
        lg_report(&g, (double)(sp_time_mono_us() - t0) / 1e6);
    status = rc == 0 ? 0 : 1;
out_close_log:
    es_log_close(g.log);
out_release:
    lg_release(&g);
    sp_config_free(cfg);
    return status;
}
