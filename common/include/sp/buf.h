/* Growable NUL-terminated byte buffer with a maximum size (Git's strbuf + curl's dynbuf). */
#ifndef SP_BUF_H
#define SP_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "sp/err.h"

/** Invariant: data != NULL after init, data[len] == '\0', len < cap, len <= max_bytes. */
struct sp_buf {
    char *data;       /* owned */
    size_t len;       /* bytes in use, excluding the terminating NUL */
    size_t cap;       /* bytes allocated */
    size_t max_bytes; /* appends that would exceed this fail with SP_ETOOBIG; 0 = no limit */
};

/** Initialise an empty buffer; no allocation until the first append. */
void sp_buf_init(struct sp_buf *b, size_t max_bytes);
/** Free the buffer's memory; @p b can be re-initialised after. */
void sp_buf_release(struct sp_buf *b);
/** Set length to zero, keeping the allocation. */
void sp_buf_reset(struct sp_buf *b);
/** Append @p n bytes. @return 0, or SP_ETOOBIG (buffer unchanged) past max_bytes. */
SP_MUST_CHECK int sp_buf_add(struct sp_buf *b, const void *data, size_t n);
/** Append a NUL-terminated string. @return 0 or SP_ETOOBIG. */
SP_MUST_CHECK int sp_buf_adds(struct sp_buf *b, const char *s);
/** Append printf-formatted text. @return 0 or SP_ETOOBIG (buffer unchanged). */
SP_MUST_CHECK int sp_buf_addf(struct sp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** sp_buf_addf with a va_list (consumed). @return 0 or SP_ETOOBIG (buffer unchanged). */
SP_MUST_CHECK int sp_buf_vaddf(struct sp_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/**
 * Append @p len bytes of @p s JSON-escaped (RFC 8259 §7) without the surrounding quotes:
 * '"' and '\' escaped, control characters as \n, \t, \uXXXX, and every invalid UTF-8
 * byte replaced by \ufffd, so the output is always valid JSON string content.
 * @return 0 or SP_ETOOBIG (buffer may hold a partial escape).
 */
SP_MUST_CHECK int sp_buf_add_json_str(struct sp_buf *b, const char *s, size_t len);
/**
 * Length of the valid UTF-8 sequence (RFC 3629 §4: no overlong forms, no surrogates,
 * nothing above U+10FFFF) that starts at @p s, of the @p avail bytes there (avail >= 1).
 * @return 1 to 4; 0 when the bytes there are not one.
 */
size_t sp_utf8_seq_len(const unsigned char *s, size_t avail);
/**
 * Take the contents: returns the NUL-terminated data (owned by the caller, free()) and
 * re-initialises @p b empty. Never NULL.
 */
char *sp_buf_detach(struct sp_buf *b, size_t *len);

#endif
