/* Parsing of ids, page parameters and If-None-Match for the query API. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/id.h"
#include "qry/params.h"

#include "sp/banned.h"

int qry_params_id(const char *s, const char *field, int64_t *out, struct sp_errbuf *eb)
{
    if (s == NULL || es_id_parse(s, out) != 0)
        return sp_err_set(eb, SP_EINVAL, field,
                          "%s must be a decimal id of 1 to 19 digits greater than 0", field);
    return 0;
}

static int params_limit(const char *s, int *out, struct sp_errbuf *eb)
{
    char *end = NULL;
    long long v;

    if (s == NULL) {
        *out = QRY_LIMIT_DEFAULT;
        return 0;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || errno != 0 || end == s || *end != '\0' || v < 1 ||
        v > QRY_LIMIT_MAX)
        return sp_err_set(eb, SP_EINVAL, "limit", "limit must be an integer from 1 to %d",
                          QRY_LIMIT_MAX);
    *out = (int)v;
    return 0;
}

int qry_params_page(const char *limit,
                    const char *max_id,
                    const char *since_id,
                    struct qry_page *page,
                    struct sp_errbuf *eb)
{
    int rc;

    memset(page, 0, sizeof(*page));
    page->max_id = INT64_MAX;
    page->since_id = 0;
    rc = params_limit(limit, &page->limit, eb);
    if (rc != 0)
        return rc;
    if (max_id != NULL) {
        rc = qry_params_id(max_id, "max_id", &page->max_id, eb);
        if (rc != 0)
            return rc;
        page->has_max_id = true;
    }
    if (since_id != NULL) {
        rc = qry_params_id(since_id, "since_id", &page->since_id, eb);
        if (rc != 0)
            return rc;
        page->has_since_id = true;
    }
    return 0;
}

int qry_params_uint(const char *s,
                    const char *field,
                    unsigned min,
                    unsigned max,
                    unsigned *out,
                    struct sp_errbuf *eb)
{
    char *end = NULL;
    unsigned long long v;

    errno = 0;
    v = s != NULL && s[0] >= '0' && s[0] <= '9' ? strtoull(s, &end, 10) : 0;
    if (end == NULL || errno != 0 || *end != '\0' || v < min || v > max)
        return sp_err_set(eb, SP_EINVAL, field, "%s must be an integer from %u to %u", field, min,
                          max);
    *out = (unsigned)v;
    return 0;
}

/* Whether @p name is in the NULL-terminated @p names. */
static bool params_in(const char *name, const char *const *names)
{
    for (; *names != NULL; names++)
        if (strcmp(*names, name) == 0)
            return true;
    return false;
}

int qry_params_known(const struct sp_http_req *req,
                     const char *const *known,
                     const char *const *repeatable,
                     struct sp_errbuf *eb)
{
    size_t n = sp_http_req_query_count(req);

    for (size_t i = 0; i < n; i++) {
        const char *name, *value, *other;

        sp_http_req_query_at(req, i, &name, &value);
        if (!params_in(name, known))
            return sp_err_set(eb, SP_EINVAL, name, "unknown parameter \"%.64s\"", name);
        if (repeatable == NULL || params_in(name, repeatable))
            continue;
        for (size_t k = 0; k < i; k++) {
            sp_http_req_query_at(req, k, &other, &value);
            if (strcmp(other, name) == 0)
                return sp_err_set(eb, SP_EINVAL, name, "parameter \"%.64s\" is given twice", name);
        }
    }
    return 0;
}

/* Whether the entity-tag at @p s (length @p n, surrounding spaces removed) is ours. */
static bool params_tag_equal(const char *s, size_t n, const char *want)
{
    if (n >= 2 && s[0] == 'W' && s[1] == '/') {
        s += 2;
        n -= 2;
    }
    if (n == 1 && s[0] == '*')
        return true;
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

bool qry_params_etag_match(const char *if_none_match, int64_t version)
{
    char want[32];
    const char *p = if_none_match;

    if (p == NULL)
        return false;
    snprintf(want, sizeof(want), "\"%" PRId64 "\"", version);
    while (*p != '\0') {
        const char *start;
        const char *end;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        start = p;
        while (*p != '\0' && *p != ',')
            p++;
        end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end > start && params_tag_equal(start, (size_t)(end - start), want))
            return true;
    }
    return false;
}
