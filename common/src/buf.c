/* Growable NUL-terminated byte buffer with a maximum size. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/banned.h"

/* Shared empty string so data is never NULL before the first append (Git's slopbuf). */
static char sp__buf_empty[1];

void sp_buf_init(struct sp_buf *b, size_t max_bytes)
{
    b->data = sp__buf_empty;
    b->len = 0;
    b->cap = 0;
    b->max_bytes = max_bytes;
}

void sp_buf_release(struct sp_buf *b)
{
    if (b->cap)
        free(b->data);
    sp_buf_init(b, b->max_bytes);
}

void sp_buf_reset(struct sp_buf *b)
{
    b->len = 0;
    if (b->cap)
        b->data[0] = '\0';
}

/* Make room for @p extra more bytes plus the NUL. */
static int sp__buf_grow(struct sp_buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return SP_ETOOBIG;
    if (b->max_bytes && b->len + extra > b->max_bytes)
        return SP_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    if (b->cap) {
        b->data = sp_xrealloc(b->data, cap);
    } else {
        b->data = sp_xmalloc(cap);
        b->data[0] = '\0';
    }
    b->cap = cap;
    return 0;
}

int sp_buf_add(struct sp_buf *b, const void *data, size_t n)
{
    int rc = sp__buf_grow(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sp_buf_adds(struct sp_buf *b, const char *s)
{
    return sp_buf_add(b, s, strlen(s));
}

int sp_buf_addf(struct sp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sp_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int sp_buf_vaddf(struct sp_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(cp);
    if (n < 0)
        return SP_EINVAL;
    int rc = sp__buf_grow(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

char *sp_buf_detach(struct sp_buf *b, size_t *len)
{
    char *out;
    if (len)
        *len = b->len;
    if (b->cap)
        out = b->data;
    else
        out = sp_xcalloc(1, 1);
    sp_buf_init(b, b->max_bytes);
    return out;
}

size_t sp_utf8_seq_len(const unsigned char *s, size_t avail)
{
    size_t n;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Printable ASCII that a JSON string holds as it is (no quote, backslash or DEL). */
static bool sp__json_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

int sp_buf_add_json_str(struct sp_buf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        unsigned char c = p[i];
        if (sp__json_plain(c)) { /* a run of plain ASCII at once */
            size_t run = i + 1;
            while (run < len && sp__json_plain(p[run]))
                run++;
            rc = sp_buf_add(out, p + i, run - i);
            i = run;
            continue;
        }
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = sp_buf_add(out, esc, 2);
        } else if (c == '\n') {
            rc = sp_buf_adds(out, "\\n");
        } else if (c == '\r') {
            rc = sp_buf_adds(out, "\\r");
        } else if (c == '\t') {
            rc = sp_buf_adds(out, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            rc = sp_buf_addf(out, "\\u%04x", c);
        } else {
            size_t n = sp_utf8_seq_len(p + i, len - i);
            if (n == 0) {
                rc = sp_buf_adds(out, "\\ufffd");
                i++;
                continue;
            }
            rc = sp_buf_add(out, p + i, n);
            i += n;
            continue;
        }
        i++;
    }
    return rc;
}
