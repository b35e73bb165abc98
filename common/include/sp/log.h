/* JSON-lines logging on stderr, as DESIGN.md defines: time, level, msg, then fields. */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdbool.h>

enum sp_log_level { SP_LOG_DEBUG = 0, SP_LOG_INFO, SP_LOG_WARN, SP_LOG_ERROR };

/**
 * Set the process-wide minimum level and the "service" field written on every line
 * (e.g. "command-api"). @p service is copied. Call once at start-up; not thread-safe
 * against concurrent logging.
 */
void sp_log_setup(enum sp_log_level min_level, const char *service);

/** Parse "debug" | "info" | "warn" | "error". @return 0 or SP_EINVAL. */
int sp_log_level_parse(const char *s, enum sp_log_level *out);

/** Whether a line of @p level would be written; check before costly formatting. */
bool sp_log_enabled(enum sp_log_level level);

/**
 * Write one JSON line to stderr: {"time":"<RFC 3339 UTC µs>","level":..,"service":..,
 * "msg":"<formatted>"}. The message is JSON-escaped. Thread-safe (one write(2) per line).
 */
void sp_log(enum sp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Like sp_log, with extra fields: @p kv is a NULL-terminated list of key, value string
 * pairs, e.g. sp_logf(SP_LOG_INFO, (const char *[]){"route", "/x", "status", "200", NULL},
 * "request"). Values are written as JSON strings, except values that are entirely an
 * integer or decimal number of at most 16 characters (exact as an IEEE 754 double), which
 * are written as numbers. Keys "id" and "*_id" are always strings: ids are 64-bit.
 */
void sp_logf(enum sp_log_level level, const char *const *kv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Audit line for a security event: level "info", "audit":true, "event":@p event (e.g.
 * "login_failed"), plus the fields in @p kv (as sp_logf). Never pass secrets.
 * Audit lines are written whatever the minimum level.
 */
void sp_log_audit(const char *event, const char *const *kv);

#endif
