/* Allocation wrappers that abort with a log line on out-of-memory. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/banned.h"

static void sp__oom(size_t size_bytes) __attribute__((noreturn));

static void sp__oom(size_t size_bytes)
{
    sp_log(SP_LOG_ERROR, "out of memory allocating %zu bytes", size_bytes);
    abort();
}

void *sp_xmalloc(size_t size_bytes)
{
    void *p = malloc(size_bytes ? size_bytes : 1);
    if (!p)
        sp__oom(size_bytes);
    return p;
}

void *sp_xcalloc(size_t n, size_t size_bytes)
{
    if (size_bytes && n > SIZE_MAX / size_bytes)
        sp__oom(SIZE_MAX);
    void *p = calloc(n ? n : 1, size_bytes ? size_bytes : 1);
    if (!p)
        sp__oom(n * size_bytes);
    return p;
}

void *sp_xrealloc(void *p, size_t size_bytes)
{
    void *q = realloc(p, size_bytes ? size_bytes : 1);
    if (!q)
        sp__oom(size_bytes);
    return q;
}

char *sp_xstrdup(const char *s)
{
    return sp_xstrndup(s, strlen(s));
}

char *sp_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = sp_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
