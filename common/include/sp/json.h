/* Compact JSON text of jansson values, written straight into an sp_buf. */
#ifndef SP_JSON_H
#define SP_JSON_H

#include <jansson.h>

#include "sp/buf.h"
#include "sp/err.h"

/**
 * Append the compact JSON text (RFC 8259) of @p v to @p out: byte for byte what
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) of jansson 2.14 writes (object members
 * in their insertion order, '"', '\' and control characters escaped, \u00XX in upper-case
 * hex, other text as UTF-8, reals as jansson formats them), without jansson's
 * per-call allocation and its cycle check (which formats every container's address):
 * the values written here are trees.
 * @param out  appended to; on failure it may hold a partial text (truncate to its old len)
 * @param v    borrowed, not changed (jansson's iterators take it non-const); NULL is an error
 * @return 0; SP_EINVAL when @p v is NULL, a string is not valid UTF-8 (jansson refuses
 *         those too), or nesting is deeper than 2,048; SP_ETOOBIG past out->max_bytes.
 */
SP_MUST_CHECK int sp_json_dump(struct sp_buf *out, json_t *v);

#endif
