/*
 * Parsing of the query API's request parameters: entity ids, cursor pagination
 * (limit, max_id, since_id), bounded integers, the set of parameters a route takes, and
 * If-None-Match (RFC 9110 §13.1.2).
 */
#ifndef QRY_PARAMS_H
#define QRY_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "sp/err.h"
#include "sp/http.h"

#define QRY_LIMIT_DEFAULT 20
#define QRY_LIMIT_MAX     100

/**
 * One page request of a list, newest first by id (ids are time-ordered). max_id is an
 * exclusive upper bound, since_id an exclusive lower bound; with both absent the page
 * starts at the newest item. With since_id the page is still the newest @p limit items
 * above it (as Twitter's API), not the oldest: a client catching up pages down with
 * max_id while keeping since_id.
 */
struct qry_page {
    int limit;        /* 1..QRY_LIMIT_MAX */
    int64_t max_id;   /* exclusive upper bound; INT64_MAX when absent */
    int64_t since_id; /* exclusive lower bound; 0 when absent */
    bool has_max_id;
    bool has_since_id;
};

/**
 * Parse an entity id (es_id_parse: 1–19 digits, > 0).
 * @param field  name for the error ("id", "max_id", ...)
 * @return 0 and *out; SP_EINVAL with eb->field = @p field.
 */
SP_MUST_CHECK int
qry_params_id(const char *s, const char *field, int64_t *out, struct sp_errbuf *eb);

/**
 * Parse the page parameters (each NULL when absent from the query string).
 * @return 0 and *page; SP_EINVAL naming "limit" (not an integer 1..100), "max_id" or
 *         "since_id" (not a valid id) in eb->field.
 */
SP_MUST_CHECK int qry_params_page(const char *limit,
                                  const char *max_id,
                                  const char *since_id,
                                  struct qry_page *page,
                                  struct sp_errbuf *eb);

/**
 * Parse a decimal integer in [@p min, @p max] (digits only, no sign or spaces).
 * @param field  name for the error ("limit", "page", ...)
 * @return 0 and *out; SP_EINVAL with eb->field = @p field ("<field> must be an integer
 *         from <min> to <max>").
 */
SP_MUST_CHECK int qry_params_uint(const char *s,
                                  const char *field,
                                  unsigned min,
                                  unsigned max,
                                  unsigned *out,
                                  struct sp_errbuf *eb);

/**
 * Refuse query parameters a route does not take, so that a misspelt one is an error
 * rather than silently ignored.
 * @param known       the route's parameters, NULL-terminated
 * @param repeatable  those of them that may be given more than once, NULL-terminated;
 *                    NULL: any of them may repeat (the first is read)
 * @return 0; SP_EINVAL with eb->field naming the first unknown or repeated parameter.
 */
SP_MUST_CHECK int qry_params_known(const struct sp_http_req *req,
                                   const char *const *known,
                                   const char *const *repeatable,
                                   struct sp_errbuf *eb);

/**
 * Whether an If-None-Match header value matches the entity tag "\"<version>\"": "*", or
 * a comma-separated list containing it, weak (W/) tags compared weakly as RFC 9110
 * §13.1.2 says. NULL never matches.
 */
bool qry_params_etag_match(const char *if_none_match, int64_t version);

#endif
