/* Error codes: names and descriptions, the error detail buffer and the assert hook. */
#define _GNU_SOURCE    /* NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp)         \
                          strerrordesc_np, strerrorname_np: static strings, thread-safe */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp/err.h"
#include "sp/log.h"
#include "sp/banned.h"

struct sp__err_info {
    int code;
    const char *name;
    const char *desc;
};

static const struct sp__err_info sp__errs[] = {
    {SP_OK, "SP_OK", "success"},
    {SP_EINVAL, "SP_EINVAL", "invalid input"},
    {SP_ENOTFOUND, "SP_ENOTFOUND", "not found"},
    {SP_ECONFLICT, "SP_ECONFLICT", "conflict"},
    {SP_ETOOBIG, "SP_ETOOBIG", "size limit exceeded"},
    {SP_ECORRUPT, "SP_ECORRUPT", "corrupt data"},
    {SP_ETIMEDOUT, "SP_ETIMEDOUT", "timed out"},
    {SP_EUNAVAIL, "SP_EUNAVAIL", "dependency unavailable"},
    {SP_EAUTH, "SP_EAUTH", "authentication required or failed"},
    {SP_EFORBIDDEN, "SP_EFORBIDDEN", "forbidden"},
    {SP_EDB, "SP_EDB", "database error"},
    {SP_ESCHEMA, "SP_ESCHEMA", "schema violation"},
    {SP_EFENCED, "SP_EFENCED", "fenced by another writer"},
    {SP_ESTATE, "SP_ESTATE", "invalid state for this operation"},
};

static const struct sp__err_info *sp__err_find(int err)
{
    for (size_t i = 0; i < sizeof(sp__errs) / sizeof(sp__errs[0]); i++)
        if (sp__errs[i].code == err)
            return &sp__errs[i];
    return NULL;
}

const char *sp_strerror(int err)
{
    const struct sp__err_info *info = sp__err_find(err);
    if (info)
        return info->desc;
    if (err < 0 && err > -4096) {
        const char *d = strerrordesc_np(-err);
        if (d)
            return d;
    }
    return "unknown error";
}

const char *sp_errname(int err)
{
    const struct sp__err_info *info = sp__err_find(err);
    if (info)
        return info->name;
    if (err < 0 && err > -4096) {
        const char *n = strerrorname_np(-err);
        if (n)
            return n;
    }
    return "UNKNOWN";
}

int sp_err_set(struct sp_errbuf *eb, int err, const char *field, const char *fmt, ...)
{
    if (!eb)
        return err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    snprintf(eb->field, sizeof(eb->field), "%s", field ? field : "");
    return err;
}

void sp_err_clear(struct sp_errbuf *eb)
{
    if (!eb)
        return;
    eb->msg[0] = '\0';
    eb->field[0] = '\0';
}

void sp__assert_fail(const char *expr, const char *file, int line)
{
    char where[32];
    snprintf(where, sizeof(where), "%d", line);
    sp_logf(SP_LOG_ERROR, (const char *[]){"file", file, "line", where, NULL},
            "assertion failed: %s", expr);
    abort();
}
