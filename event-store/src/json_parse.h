/*
 * Parsing the log's JSON (RFC 8259) into jansson values, fast: simdjson (Langdale and
 * Lemire, "Parsing gigabytes of JSON per second", VLDB Journal 28(6), 2019; Debian's
 * libsimdjson) validates and parses, and the document is then built as the jansson tree
 * the rest of the code reads. About six times faster than json_loadb on our envelopes
 * (600 bytes: 1.4 µs against 8.9 µs), which is most of what decoding an event costs.
 *
 * It accepts what json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) accepts, and reads
 * it as the same value (tests/test_json_parse.c checks both on mutated input); a string
 * or key containing U+0000 is refused (as jansson without JSON_ALLOW_NUL), an object with a
 * key twice is refused, integers must fit int64_t (jansson's json_int_t). The one
 * difference: documents nest at most 1,024 deep (simdjson's default; jansson's 2,048).
 */
#ifndef ES_JSON_PARSE_H
#define ES_JSON_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "es/json.h" /* es_json_parse, the plain parse */
#include "sp/err.h"

/**
 * es_json_parse, and besides, when @p key is not NULL and the document is an object with
 * a member @p key, that member's value as compact JSON text: RFC 8259 without whitespace,
 * strings escaped only where JSON requires it (quote, backslash, U+0000-U+001F), integers in
 * decimal (simdjson::to_string). It is the same value as the member of *out, not
 * necessarily its original bytes (whitespace goes, escapes may change).
 * @param[out] text      malloc'd, NUL-terminated, the caller frees it; NULL when there is no
 *                       such member (or @p key or @p text is NULL)
 * @param[out] text_len  its length in bytes, without the NUL
 * @return 0; SP_ECORRUPT as es_json_parse (and out of memory); *out and *text NULL then.
 */
int es__json_parse_ex(const void *buf,
                      size_t len,
                      const char *key,
                      json_t **out,
                      char **text,
                      size_t *text_len,
                      struct sp_errbuf *eb);

/** true if the @p len bytes at @p s are valid UTF-8 (RFC 3629), by simdjson. Any thread. */
bool es__utf8_valid(const char *s, size_t len);

#ifdef __cplusplus
}
#endif

#endif
