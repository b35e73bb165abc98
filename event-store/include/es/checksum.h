/* Record checksums: XXH3-64 (xxHash, https://github.com/Cyan4973/xxHash) of the encoded value. */
#ifndef ES_CHECKSUM_H
#define ES_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#define ES_CHECKSUM_HEX_LEN 16

/** XXH3-64 with seed 0 of @p len bytes at @p data. */
uint64_t es_checksum(const void *data, size_t len);

/** Write @p sum as 16 lower-case hex digits plus NUL into @p out (≥ 17 bytes). */
void es_checksum_hex(uint64_t sum, char *out);

/** Parse 16 hex digits. @return 0 and *sum, or SP_EINVAL. */
int es_checksum_parse(const char *hex, uint64_t *sum);

#endif
