/* UUIDv7 event ids (RFC 9562 §5.7, §6.2 method 1) and Snowflake-style 64-bit entity ids. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "es/id.h"
#include "sp/time.h"

#include "sp/banned.h"

#define UUID7_COUNTER_MAX 0xfff /* rand_a is 12 bits */

/* Process-wide UUIDv7 state: ms timestamp and counter of the last id issued. */
static pthread_mutex_t uuid7_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t uuid7_last_ms = -1;
static uint16_t uuid7_counter;

static int random_fill(void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = getrandom((char *)buf + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    return 0;
}

/*
 * Take the next (ms, counter) pair: a new millisecond restarts the counter at 0; within a
 * millisecond, or if the clock went back, the counter increments; on counter overflow the
 * timestamp is advanced by one ms (RFC 9562 §6.2), so ids never go backwards.
 */
static void uuid7_next_tick(int64_t now_ms, int64_t *ms, uint16_t *counter)
{
    pthread_mutex_lock(&uuid7_lock);
    if (now_ms > uuid7_last_ms) {
        uuid7_last_ms = now_ms;
        uuid7_counter = 0;
    } else if (uuid7_counter < UUID7_COUNTER_MAX) {
        uuid7_counter++;
    } else {
        uuid7_last_ms++;
        uuid7_counter = 0;
    }
    *ms = uuid7_last_ms;
    *counter = uuid7_counter;
    pthread_mutex_unlock(&uuid7_lock);
}

/*
 * Per-thread pool of getrandom(2) bytes, so an id costs a copy rather than a system
 * call; each byte is handed out once (the bytes become public ids: nothing to wipe).
 */
#define RANDOM_POOL 512
static _Thread_local uint8_t random_pool[RANDOM_POOL];
static _Thread_local size_t random_left;

static int random_take(uint8_t *out, size_t len)
{
    if (random_left < len) {
        int rc = random_fill(random_pool, sizeof(random_pool));
        if (rc)
            return rc;
        random_left = sizeof(random_pool);
    }
    memcpy(out, random_pool + sizeof(random_pool) - random_left, len);
    random_left -= len;
    return 0;
}

int es_uuid7_new(char *out)
{
    uint8_t b[16];
    uint8_t rnd[8];
    int64_t ms;
    uint16_t counter;
    int rc;

    rc = random_take(rnd, sizeof(rnd));
    if (rc)
        return rc;
    uuid7_next_tick(sp_time_now_us() / 1000, &ms, &counter);

    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)((uint64_t)ms >> (8 * (5 - i)));
    b[6] = (uint8_t)(0x70 | ((counter >> 8) & 0x0f));
    b[7] = (uint8_t)(counter & 0xff);
    memcpy(b + 8, rnd, 8);
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f)); /* variant 10 */

    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) { /* 8-4-4-4-12 hex digits, RFC 9562 §4 */
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 0x0f];
    }
    *o = '\0';
    return 0;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int es_uuid_valid(const char *s)
{
    if (s == NULL)
        return 0;
    for (int i = 0; i < ES_UUID_STR_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (s[i] == '\0')
            return 0;
        if (dash ? s[i] != '-' : !is_hex(s[i]))
            return 0;
    }
    return s[ES_UUID_STR_LEN] == '\0';
}

void es_snowflake_init(struct es_snowflake *sf, uint16_t node_id)
{
    sf->node_id = node_id & 0x3ff;
    sf->last_ms = -1;
    sf->sequence = 0;
}

static int64_t snowflake_now_ms(void)
{
    return sp_time_now_us() / 1000 - ES_SNOWFLAKE_EPOCH_MS;
}

int64_t es_snowflake_next(struct es_snowflake *sf)
{
    int64_t now_ms = snowflake_now_ms();

    if (now_ms > sf->last_ms) {
        sf->last_ms = now_ms;
        sf->sequence = 0;
    } else if (sf->sequence < 0xfff) {
        sf->sequence++;
    } else {
        /* 4096 ids this ms: wait for the next one; if the clock went back, borrow it. */
        int64_t next_ms = sf->last_ms + 1;
        while (now_ms >= sf->last_ms - 1 && now_ms < next_ms) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
            now_ms = snowflake_now_ms();
        }
        sf->last_ms = now_ms > next_ms ? now_ms : next_ms;
        sf->sequence = 0;
    }
    return (sf->last_ms << 22) | ((int64_t)sf->node_id << 12) | sf->sequence;
}

int es_id_parse(const char *s, int64_t *out)
{
    int64_t v = 0;
    size_t n;

    if (s == NULL)
        return SP_EINVAL;
    n = strlen(s);
    if (n == 0 || n > 19 || s[0] == '0')
        return SP_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int d;
        if (s[i] < '0' || s[i] > '9')
            return SP_EINVAL;
        d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return SP_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}
