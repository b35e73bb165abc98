/* Record checksums: XXH3-64 with seed 0 (xxHash, https://github.com/Cyan4973/xxHash). */
#include <inttypes.h>
#include <stdio.h>

#include <xxhash.h>

#include "es/checksum.h"
#include "sp/err.h"

#include "sp/banned.h"

uint64_t es_checksum(const void *data, size_t len)
{
    return (uint64_t)XXH3_64bits(data, len);
}

void es_checksum_hex(uint64_t sum, char *out)
{
    snprintf(out, ES_CHECKSUM_HEX_LEN + 1, "%016" PRIx64, sum);
}

int es_checksum_parse(const char *hex, uint64_t *sum)
{
    uint64_t v = 0;

    if (hex == NULL)
        return SP_EINVAL;
    for (int i = 0; i < ES_CHECKSUM_HEX_LEN; i++) {
        char c = hex[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return SP_EINVAL;
        v = (v << 4) | d;
    }
    if (hex[ES_CHECKSUM_HEX_LEN] != '\0')
        return SP_EINVAL;
    *sum = v;
    return 0;
}
