/* JSON-lines logging on stderr (DESIGN.md): time, level, service, msg, then fields. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sp/buf.h"
#include "sp/err.h"
#include "sp/log.h"
#include "sp/time.h"
#include "sp/banned.h"

static enum sp_log_level sp__log_min = SP_LOG_INFO;
static char sp__log_service[64] = "";

static const char *const sp__level_names[] = {"debug", "info", "warn", "error"};

void sp_log_setup(enum sp_log_level min_level, const char *service)
{
    sp__log_min = min_level;
    snprintf(sp__log_service, sizeof(sp__log_service), "%s", service ? service : "");
}

int sp_log_level_parse(const char *s, enum sp_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (s && strcmp(s, sp__level_names[i]) == 0) {
            *out = (enum sp_log_level)i;
            return 0;
        }
    }
    return SP_EINVAL;
}

bool sp_log_enabled(enum sp_log_level level)
{
    return level >= sp__log_min;
}

/*
 * Whether @p s is a JSON number of the form -?(0|[1-9][0-9]*)(\.[0-9]+)? of at most 16
 * characters, so that every JSON parser reads it exactly (IEEE 754 doubles hold 15 decimal
 * digits); longer digit strings, such as 64-bit ids, stay strings.
 */
static bool sp__is_number(const char *s)
{
    const char *start = s;
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return false;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0' && s - start <= 16;
}

/* Ids are strings everywhere in Stockpot (DESIGN.md), whatever they look like. */
static bool sp__is_id_key(const char *key)
{
    size_t len = strlen(key);
    return strcmp(key, "id") == 0 || (len > 3 && strcmp(key + len - 3, "_id") == 0);
}

static int sp__log_field(struct sp_buf *line, const char *key, const char *value)
{
    int rc = sp_buf_adds(line, ",\"");
    rc = rc ? rc : sp_buf_add_json_str(line, key, strlen(key));
    rc = rc ? rc : sp_buf_adds(line, "\":");
    if (rc)
        return rc;
    if (!value)
        return sp_buf_adds(line, "null");
    if (!sp__is_id_key(key) && sp__is_number(value))
        return sp_buf_adds(line, value);
    rc = sp_buf_adds(line, "\"");
    rc = rc ? rc : sp_buf_add_json_str(line, value, strlen(value));
    return rc ? rc : sp_buf_adds(line, "\"");
}

static void sp__write_all(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/*
 * Each thread's reused line buffer (a log line is written for every request), freed by
 * the key's destructor when the thread exits. NULL if one cannot be made.
 */
static pthread_key_t sp__log_key;
static pthread_once_t sp__log_once = PTHREAD_ONCE_INIT;
static bool sp__log_key_ok;

static void sp__log_line_free(void *p)
{
    sp_buf_release(p);
    free(p);
}

static void sp__log_key_make(void)
{
    sp__log_key_ok = pthread_key_create(&sp__log_key, sp__log_line_free) == 0;
}

static struct sp_buf *sp__log_line(void)
{
    struct sp_buf *b;
    (void)pthread_once(&sp__log_once, sp__log_key_make);
    if (!sp__log_key_ok)
        return NULL;
    if ((b = pthread_getspecific(sp__log_key)) != NULL)
        return b;
    if ((b = malloc(sizeof(*b))) == NULL)
        return NULL;
    sp_buf_init(b, 0);
    if (pthread_setspecific(sp__log_key, b) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

/* Build and write one line; @p extra are already formatted fields (may be NULL). */
static void sp__log_emit(enum sp_log_level level,
                         const char *const *kv,
                         const char *extra,
                         const char *fmt,
                         va_list ap) __attribute__((format(printf, 4, 0)));

static void sp__log_emit(
    enum sp_log_level level, const char *const *kv, const char *extra, const char *fmt, va_list ap)
{
    struct sp_buf *line = sp__log_line(), own, msg;
    const char *text = fmt; /* a constant message ("request", "audit") as it is */
    size_t text_len = strlen(fmt);
    char ts[32];
    int rc = 0;
    if (line == NULL) { /* no per-thread buffer: one for this line */
        sp_buf_init(&own, 0);
        line = &own;
    }
    sp_buf_reset(line);
    sp_buf_init(&msg, (size_t)64 * 1024);
    if (strchr(fmt, '%') != NULL) {
        if (sp_buf_vaddf(&msg, fmt, ap))
            rc = sp_buf_adds(&msg, "(log message too long)");
        text = msg.data;
        text_len = msg.len;
    }
    sp_time_format_rfc3339(sp_time_now_us(), ts, sizeof(ts));
    rc = rc ? rc : sp_buf_adds(line, "{\"time\":\"");
    rc = rc ? rc : sp_buf_adds(line, ts);
    rc = rc ? rc : sp_buf_adds(line, "\",\"level\":\"");
    rc = rc ? rc : sp_buf_adds(line, sp__level_names[level]);
    rc = rc ? rc : sp_buf_adds(line, "\",\"service\":\"");
    rc = rc ? rc : sp_buf_add_json_str(line, sp__log_service, strlen(sp__log_service));
    rc = rc ? rc : sp_buf_adds(line, "\",\"msg\":\"");
    rc = rc ? rc : sp_buf_add_json_str(line, text, text_len);
    rc = rc ? rc : sp_buf_adds(line, "\"");
    if (extra && !rc)
        rc = sp_buf_adds(line, extra);
    for (size_t i = 0; kv && kv[i] && kv[i + 1] && !rc; i += 2)
        rc = sp__log_field(line, kv[i], kv[i + 1]);
    rc = rc ? rc : sp_buf_adds(line, "}\n");
    if (!rc)
        sp__write_all(line->data, line->len);
    sp_buf_release(&msg);
    if (line == &own || line->cap > 4096) /* keep a typical line's allocation only */
        sp_buf_release(line);
}

void sp_log(enum sp_log_level level, const char *fmt, ...)
{
    if (!sp_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    sp__log_emit(level, NULL, NULL, fmt, ap);
    va_end(ap);
}

void sp_logf(enum sp_log_level level, const char *const *kv, const char *fmt, ...)
{
    if (!sp_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    sp__log_emit(level, kv, NULL, fmt, ap);
    va_end(ap);
}

static void sp__log_audit_emit(const char *const *kv, const char *extra, ...)
{
    /* "%s" with one argument, the message "audit" */
    va_list ap;
    va_start(ap, extra);
    sp__log_emit(SP_LOG_INFO, kv, extra, "%s", ap);
    va_end(ap);
}

void sp_log_audit(const char *event, const char *const *kv)
{
    struct sp_buf extra;
    sp_buf_init(&extra, 0);
    int rc = sp_buf_adds(&extra, ",\"audit\":true,\"event\":\"");
    rc = rc ? rc : sp_buf_add_json_str(&extra, event, strlen(event));
    rc = rc ? rc : sp_buf_adds(&extra, "\"");
    if (!rc)
        sp__log_audit_emit(kv, extra.data, "audit");
    sp_buf_release(&extra);
}
