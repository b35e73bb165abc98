/* Fast JSON parsing into jansson values, for any caller (the log's own parser). */
#ifndef ES_JSON_H
#define ES_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "sp/err.h"

/**
 * Parse @p len bytes at @p buf (need not be NUL-terminated) as one JSON value (RFC 8259)
 * with simdjson (Langdale and Lemire, VLDB Journal 28(6), 2019), built as a jansson tree:
 * several times faster than json_loadb. It accepts and reads what
 * json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) does, but refuses documents nested
 * deeper than 1,024 (jansson: 2,048). Its shape matches sp_http_json_parse_fn (sp/http.h),
 * so an HTTP server can parse request bodies with it. Any thread: each keeps its own
 * parser, whose buffers grow to the largest document it parsed and live until it exits.
 * @param[out] out  owned reference (json_decref); NULL on error
 * @return 0; SP_ECORRUPT with "invalid JSON: ..." in @p eb (bad JSON or UTF-8, a duplicate
 *         key, U+0000 in a string, an integer outside int64_t, too deep, out of memory).
 */
SP_MUST_CHECK int es_json_parse(const void *buf, size_t len, json_t **out, struct sp_errbuf *eb);

#endif
