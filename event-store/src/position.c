/* Log positions and their opaque consistency tokens "<partition>:<offset>". */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "es/event.h"

#include "sp/banned.h"

void es_position_format(struct es_position pos, char *out, size_t out_size)
{
    snprintf(out, out_size, "%" PRId32 ":%" PRId64, pos.partition, pos.offset);
}

/* Decimal digits only, no sign, no leading zeros (except "0"), within [0, max]. */
static int parse_nonneg(const char *s, const char **end, int64_t max, int64_t *out)
{
    int64_t v = 0;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return SP_EINVAL;
    if (*p == '0' && p[1] >= '0' && p[1] <= '9')
        return SP_EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        int d = *p - '0';
        if (v > (max - d) / 10)
            return SP_EINVAL;
        v = v * 10 + d;
    }
    *end = p;
    *out = v;
    return 0;
}

int es_position_parse(const char *token, struct es_position *out)
{
    const char *p;
    int64_t partition, offset;

    if (token == NULL || parse_nonneg(token, &p, INT32_MAX, &partition) || *p != ':' ||
        parse_nonneg(p + 1, &p, INT64_MAX, &offset) || *p != '\0')
        return SP_EINVAL;
    out->partition = (int32_t)partition;
    out->offset = offset;
    return 0;
}
