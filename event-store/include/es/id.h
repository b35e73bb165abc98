/* Identifiers: UUIDv7 event ids (RFC 9562 §5.7) and Snowflake-style 64-bit entity ids. */
#ifndef ES_ID_H
#define ES_ID_H

#include <stdint.h>

#include "sp/err.h"

#define ES_UUID_STR_LEN 36 /* "xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx" without NUL */

/**
 * New UUIDv7 (RFC 9562 §5.7): 48-bit Unix ms timestamp, version 7, 12-bit rand_a used as
 * a monotonic sub-ms counter (§6.2 method 1) so ids from this process sort by creation,
 * 62 random bits from getrandom(2), variant 10. Written as lower-case hex with hyphens.
 * Thread-safe.
 * @param out  at least ES_UUID_STR_LEN + 1 bytes
 * @return 0 or -errno if the random source fails
 */
SP_MUST_CHECK int es_uuid7_new(char *out);

/** Whether @p s is a well-formed lower- or upper-case hyphenated UUID string. */
int es_uuid_valid(const char *s);

/*
 * Snowflake-style ids (Twitter's 2010 layout): 41 bits of milliseconds since
 * ES_SNOWFLAKE_EPOCH_MS, 10 bits of node id, 12 bits of per-millisecond sequence.
 * Positive int64, increasing per generator; rendered in JSON as decimal strings.
 */
#define ES_SNOWFLAKE_EPOCH_MS 1704067200000LL /* 2024-01-01T00:00:00Z */

struct es_snowflake {
    uint16_t node_id;  /* 0..1023 */
    int64_t last_ms;   /* ms since epoch of the last id */
    uint16_t sequence; /* within last_ms */
};

/** Initialise a generator for @p node_id (0..1023; larger values are masked). */
void es_snowflake_init(struct es_snowflake *sf, uint16_t node_id);

/**
 * Next id; waits (spins to the next millisecond) if 4096 ids were taken this ms, and
 * never goes backwards if the wall clock does. Not thread-safe: one generator per thread.
 */
int64_t es_snowflake_next(struct es_snowflake *sf);

/**
 * Parse a decimal id string: 1–19 digits, no sign, no leading zeros, > 0.
 * @return 0 and *out, or SP_EINVAL.
 */
int es_id_parse(const char *s, int64_t *out);

#endif
