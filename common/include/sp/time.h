/* Wall and monotonic clocks, and RFC 3339 timestamps. */
#ifndef SP_TIME_H
#define SP_TIME_H

#include <stddef.h>
#include <stdint.h>

/** Wall clock, microseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t sp_time_now_us(void);
/** Monotonic clock in microseconds (CLOCK_MONOTONIC), for durations only. */
int64_t sp_time_mono_us(void);

/**
 * Format @p ts_us as RFC 3339 UTC with microseconds: "2026-11-21T05:35:00.123456Z"
 * (27 characters + NUL). @p out must hold at least 28 bytes.
 * @return @p out
 */
char *sp_time_format_rfc3339(int64_t ts_us, char *out, size_t out_size);

/**
 * Parse an RFC 3339 timestamp (RFC 3339 §5.6: "Z" or "+hh:mm" offsets, 0–9 fraction
 * digits, truncated to microseconds).
 * @return 0 and *ts_us, or SP_EINVAL on any deviation from the grammar.
 */
int sp_time_parse_rfc3339(const char *s, int64_t *ts_us);

#endif
