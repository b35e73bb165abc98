/*
 * Request rate limits per key (a client address): the generic cell rate algorithm (GCRA,
 * ATM Forum Traffic Management Specification 4.1, the "virtual scheduling" form), which
 * is a token bucket kept as one number per key, its theoretical arrival time (TAT).
 *
 * A limiter admits `limit` requests per `period_us` per key, of which up to `burst` at
 * once: requests are spaced T = period_us / limit apart on average, and a request is
 * admitted while TAT - now <= (burst - 1) * T; each admitted request moves TAT to
 * max(TAT, now) + T. A key whose TAT has passed has its whole burst again, so it can be
 * forgotten without changing any answer: that is how the table stays within max_keys.
 * When every key in a full table is still active, the one closest to idle is forgotten.
 *
 * The answers carry what the RateLimit header fields of draft-ietf-httpapi-ratelimit-
 * headers (RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset) and Retry-After
 * (RFC 9110 §10.2.3) need.
 *
 * Time is the caller's (monotonic microseconds), so the limiter is deterministic.
 * @locality one thread; not thread-safe.
 */
#ifndef SP_RATELIMIT_H
#define SP_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp/err.h"

struct sp_ratelimit;

struct sp_ratelimit_opts {
    int64_t limit;     /* requests per period, >= 1 */
    int64_t period_us; /* microseconds, >= limit (T is at least 1 µs) */
    int64_t burst;     /* requests admitted at once, 1..limit */
    size_t max_keys;   /* keys remembered at most, >= 1 */
};

/** The answer for one request. Times are whole seconds, rounded up. */
struct sp_ratelimit_verdict {
    bool allowed;
    int64_t limit;         /* opts.limit, for RateLimit-Limit */
    int64_t remaining;     /* requests the key may still make now, for RateLimit-Remaining */
    int64_t reset_s;       /* until the key has its whole burst again, for RateLimit-Reset */
    int64_t retry_after_s; /* when denied: until the next request is admitted (>= 1) */
};

/**
 * @param[out] out  owned; free with sp_ratelimit_free()
 * @return 0; SP_EINVAL naming the bad option in eb->field ("limit", "period_us",
 *         "burst", "max_keys").
 */
SP_MUST_CHECK int sp_ratelimit_new(const struct sp_ratelimit_opts *opts,
                                   struct sp_ratelimit **out,
                                   struct sp_errbuf *eb);

/** NULL is a no-op. */
void sp_ratelimit_free(struct sp_ratelimit *rl);

/**
 * Count one request of @p key at @p now_us (monotonic µs, never decreasing between
 * calls) and say whether it is admitted. A denied request does not count.
 * @param key  NUL-terminated; only its first 63 bytes tell keys apart
 */
void sp_ratelimit_take(struct sp_ratelimit *rl,
                       const char *key,
                       int64_t now_us,
                       struct sp_ratelimit_verdict *out);

/** Keys remembered now (at most opts.max_keys); for tests and metrics. */
size_t sp_ratelimit_keys(const struct sp_ratelimit *rl);

#endif
