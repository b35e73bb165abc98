/* Compact JSON text of jansson values (sp/json.h). */
#include <stdint.h>
#include <string.h>

#include "sp/json.h"

#include "sp/banned.h"

#define SP__JSON_MAX_DEPTH 2048

/* Append "s" quoted and escaped as jansson's dump_string does without flags. */
static int sp__json_str(struct sp_buf *out, const char *str, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0; /* start of the bytes not yet appended */
    int rc = sp_buf_add(out, "\"", 1);
    for (size_t i = 0; i < len && rc == 0;) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = sp_utf8_seq_len(s + i, len - i);
            if (n == 0)
                return SP_EINVAL;
            i += n;
            continue;
        }
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t esc_len = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0x0f];
            esc_len = 6;
        }
        rc = sp_buf_add(out, s + run, i - run);
        rc = rc ? rc : sp_buf_add(out, esc, esc_len);
        run = ++i;
    }
    rc = rc ? rc : sp_buf_add(out, s + run, len - run);
    return rc ? rc : sp_buf_add(out, "\"", 1);
}

/* Decimal text of @p v into @p out (at least 21 bytes). @return its length. */
static size_t sp__json_int(json_int_t v, char *out)
{
    char tmp[24];
    size_t n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        out[len++] = '-';
    while (n > 0)
        out[len++] = tmp[--n];
    return len;
}

static int sp__json_value(struct sp_buf *out, json_t *v, unsigned depth)
{
    char num[64];
    size_t i, n;
    int rc;
    if (v == NULL || depth > SP__JSON_MAX_DEPTH)
        return SP_EINVAL;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *member;
        void *iter;
        rc = sp_buf_add(out, "{", 1);
        i = 0;
        for (iter = json_object_iter(v); iter != NULL && rc == 0;
             iter = json_object_iter_next(v, iter), i++) {
            key = json_object_iter_key(iter);
            member = json_object_iter_value(iter);
            rc = i > 0 ? sp_buf_add(out, ",", 1) : 0;
            rc = rc ? rc : sp__json_str(out, key, json_object_iter_key_len(iter));
            rc = rc ? rc : sp_buf_add(out, ":", 1);
            rc = rc ? rc : sp__json_value(out, member, depth + 1);
        }
        return rc ? rc : sp_buf_add(out, "}", 1);
    }
    case JSON_ARRAY:
        rc = sp_buf_add(out, "[", 1);
        n = json_array_size(v);
        for (i = 0; i < n && rc == 0; i++) {
            rc = i > 0 ? sp_buf_add(out, ",", 1) : 0;
            rc = rc ? rc : sp__json_value(out, json_array_get(v, i), depth + 1);
        }
        return rc ? rc : sp_buf_add(out, "]", 1);
    case JSON_STRING:
        return sp__json_str(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return sp_buf_add(out, num, sp__json_int(json_integer_value(v), num));
    case JSON_REAL: /* rare here: jansson's own formatting (precision, exponent, ".0") */
        n = json_dumpb(v, num, sizeof(num), JSON_COMPACT | JSON_ENCODE_ANY);
        return n == 0 || n >= sizeof(num) ? SP_EINVAL : sp_buf_add(out, num, n);
    case JSON_TRUE:
        return sp_buf_add(out, "true", 4);
    case JSON_FALSE:
        return sp_buf_add(out, "false", 5);
    case JSON_NULL:
        return sp_buf_add(out, "null", 4);
    }
    return SP_EINVAL;
}

int sp_json_dump(struct sp_buf *out, json_t *v)
{
    return sp__json_value(out, v, 0);
}
