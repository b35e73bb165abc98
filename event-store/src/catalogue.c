/* Checking events against the catalogue generated from schemas/events (es/catalogue.h). */
#include <pthread.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue_impl.h"
#include "es/catalogue.h"
#include "es/id.h"

#include "sp/banned.h"

#define MAX_PATTERNS 64 /* distinct patterns in the catalogue; SP_ASSERTed */
#define MAX_ATOMS    24 /* atoms of a pattern run by the simple matcher */

/*
 * The catalogue's patterns are POSIX EREs made by gen-catalogue.py from a small ECMA-262
 * subset, and nearly all are a row of quantified character classes ("^[1-9][0-9]{0,18}$").
 * Those run on a small backtracking matcher over byte sets, several times faster than
 * regexec (which is most of the cost of checking an id); anything else (groups,
 * alternation) runs on regexec. Both read bytes as the C locale does, so they agree on
 * every string: [^@[:space:]] takes any byte but '@' and the six ASCII spaces.
 */
struct atom {
    uint8_t set[32]; /* bit b: byte b matches */
    uint32_t min, max;
};
struct simple {
    bool ok;  /* the pattern is in the subset; otherwise use the regex */
    bool end; /* anchored with $ */
    size_t n;
    struct atom atoms[MAX_ATOMS];
};

/* Every distinct pattern of the catalogue, compiled once (POSIX ERE, no sub-matches). */
static struct {
    const char *src[MAX_PATTERNS];
    regex_t re[MAX_PATTERNS];
    struct simple simple[MAX_PATTERNS];
    size_t n;
} patterns;
static pthread_once_t patterns_once = PTHREAD_ONCE_INIT;

static void set_add(struct atom *a, unsigned lo, unsigned hi)
{
    for (unsigned b = lo; b <= hi; b++)
        a->set[b >> 3] |= (uint8_t)(1u << (b & 7));
}

static bool set_has(const struct atom *a, unsigned char b)
{
    return (a->set[b >> 3] >> (b & 7)) & 1;
}

/* Parse the bracket expression at *p (after '['); @return false if outside the subset. */
static bool parse_bracket(const char **p, struct atom *a)
{
    const char *s = *p;
    bool neg = false, first = true;
    struct atom in = {{0}, 0, 0};

    if (*s == '^') {
        neg = true;
        s++;
    }
    for (; *s != '\0' && (*s != ']' || first); first = false) {
        if (strncmp(s, "[:space:]", 9) == 0) {
            set_add(&in, ' ', ' ');
            set_add(&in, '\t', '\r'); /* \t \n \v \f \r */
            s += 9;
        } else if (*s == '[') {
            return false; /* another class or an equivalence class */
        } else if (s[1] == '-' && s[2] != ']' && s[2] != '\0') {
            if ((unsigned char)s[2] < (unsigned char)s[0])
                return false;
            set_add(&in, (unsigned char)s[0], (unsigned char)s[2]);
            s += 3;
        } else {
            set_add(&in, (unsigned char)s[0], (unsigned char)s[0]);
            s++;
        }
    }
    if (*s != ']')
        return false;
    for (int i = 0; i < 32; i++)
        a->set[i] = neg ? (uint8_t)~in.set[i] : in.set[i];
    *p = s + 1;
    return true;
}

/* Parse a quantifier at *p into a (default {1,1}); @return false if malformed. */
static bool parse_quantifier(const char **p, struct atom *a)
{
    const char *s = *p;
    a->min = a->max = 1;
    if (*s == '+' || *s == '*' || *s == '?') {
        a->min = *s == '+' ? 1 : 0;
        a->max = *s == '?' ? 1 : UINT32_MAX;
        *p = s + 1;
        return true;
    }
    if (*s != '{')
        return true;
    char *end;
    unsigned long lo = strtoul(s + 1, &end, 10), hi = lo;
    if (end == s + 1 || lo > 10000)
        return false;
    if (*end == ',') {
        const char *h = end + 1;
        hi = strtoul(h, &end, 10);
        if (end == h || hi < lo || hi > 10000)
            return false;
    }
    if (*end != '}')
        return false;
    a->min = (uint32_t)lo;
    a->max = (uint32_t)hi;
    *p = end + 1;
    return true;
}

/* Compile @p re into the simple matcher if it is ^ then quantified atoms then $ or end. */
static void simple_compile(const char *re, struct simple *m)
{
    const char *s = re;

    memset(m, 0, sizeof(*m));
    if (*s++ != '^')
        return;
    while (*s != '\0') {
        struct atom *a;
        if (*s == '$' && s[1] == '\0') {
            m->end = true;
            break;
        }
        if (m->n == MAX_ATOMS || strchr("()|*+?{}^$", *s) != NULL)
            return;
        a = &m->atoms[m->n++];
        memset(a, 0, sizeof(*a));
        if (*s == '[') {
            s++;
            if (!parse_bracket(&s, a))
                return;
        } else if (*s == '\\' && s[1] != '\0' && strchr(".$^*+?()[]{}|\\/-", s[1]) != NULL) {
            set_add(a, (unsigned char)s[1], (unsigned char)s[1]);
            s += 2;
        } else if (*s == '.' || *s == '\\') {
            return;
        } else {
            set_add(a, (unsigned char)*s, (unsigned char)*s);
            s++;
        }
        if (!parse_quantifier(&s, a))
            return;
    }
    m->ok = true;
}

/* Whether s[pos..len) matches atoms i.. (then the end, if anchored). */
static bool
simple_match_at(const struct simple *m, size_t i, const unsigned char *s, size_t len, size_t pos)
{
    if (i == m->n)
        return !m->end || pos == len;
    const struct atom *a = &m->atoms[i];
    size_t k = 0;
    while (k < a->max && pos + k < len && set_has(a, s[pos + k]))
        k++;
    if (k < a->min)
        return false;
    for (;; k--) { /* greedy first, then give back */
        if (simple_match_at(m, i + 1, s, len, pos + k))
            return true;
        if (k == a->min)
            return false;
    }
}

static void pattern_add(const struct es_schema_node *node)
{
    for (; node != NULL; node = node->items) {
        size_t i = 0;
        if (node->pattern == NULL)
            continue;
        while (i < patterns.n && strcmp(patterns.src[i], node->pattern) != 0)
            i++;
        if (i < patterns.n)
            continue;
        SP_ASSERT(patterns.n < MAX_PATTERNS);
        SP_ASSERT(regcomp(&patterns.re[i], node->pattern, REG_EXTENDED | REG_NOSUB) == 0);
        simple_compile(node->pattern, &patterns.simple[i]);
        patterns.src[i] = node->pattern;
        patterns.n++;
    }
}

/* The compiled patterns live until the process exits (regfree is never needed). */
static void patterns_compile(void)
{
    for (size_t t = 1; t < ES_TYPE__COUNT; t++) {
        for (size_t f = 0; f < es__catalogue[t]->n_fields; f++)
            pattern_add(es__catalogue[t]->fields[f].schema);
    }
}

bool es__pattern_match(const char *pattern, const char *s, bool force_regex)
{
    pthread_once(&patterns_once, patterns_compile);
    for (size_t i = 0; i < patterns.n; i++) {
        if (strcmp(patterns.src[i], pattern) != 0)
            continue;
        if (patterns.simple[i].ok && !force_regex)
            return simple_match_at(&patterns.simple[i], 0, (const unsigned char *)s, strlen(s), 0);
        return regexec(&patterns.re[i], s, 0, NULL, 0) == 0;
    }
    SP_ASSERT(!"pattern not in the catalogue");
    return false;
}

bool es__pattern_simple(const char *pattern)
{
    pthread_once(&patterns_once, patterns_compile);
    for (size_t i = 0; i < patterns.n; i++)
        if (strcmp(patterns.src[i], pattern) == 0)
            return patterns.simple[i].ok;
    return false;
}

static bool pattern_match(const char *pattern, const char *s)
{
    return es__pattern_match(pattern, s, false);
}

enum es_type es_type_of(const char *name)
{
    /* the generated table is in name order */
    size_t lo = 1, hi = ES_TYPE__COUNT;

    while (name != NULL && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(name, es__catalogue[mid]->name);
        if (cmp == 0)
            return (enum es_type)mid;
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return ES_TYPE_UNKNOWN;
}

const struct es_event_type *es_catalogue_get(enum es_type type)
{
    return (int)type > 0 && type < ES_TYPE__COUNT ? es__catalogue[type] : NULL;
}

const char *es_type_name(enum es_type type)
{
    const struct es_event_type *t = es_catalogue_get(type);
    return t != NULL ? t->name : NULL;
}

const struct es_field *es_event_type_field(const struct es_event_type *t, const char *name)
{
    for (size_t i = 0; t != NULL && i < t->n_fields; i++) {
        if (strcmp(t->fields[i].name, name) == 0)
            return &t->fields[i];
    }
    return NULL;
}

static unsigned json_type_bit(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return ES_JSON_STRING;
    case JSON_NULL:
        return ES_JSON_NULL;
    case JSON_ARRAY:
        return ES_JSON_ARRAY;
    case JSON_INTEGER:
        return ES_JSON_INTEGER;
    case JSON_TRUE:
    case JSON_FALSE:
        return ES_JSON_BOOLEAN;
    default:
        return 0;
    }
}

/* "at least MIN", "at most MAX" or "MIN to MAX" of a -1-means-absent pair, into @p out. */
static const char *bounds(int32_t min, int32_t max, char *out, size_t out_size)
{
    if (max < 0)
        snprintf(out, out_size, "at least %d", (int)min);
    else if (min <= 0)
        snprintf(out, out_size, "at most %d", (int)max);
    else
        snprintf(out, out_size, "%d to %d", (int)min, (int)max);
    return out;
}

/* Code points of valid UTF-8 (jansson validated it): bytes that do not continue one. */
static size_t utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static int string_check(const struct es_schema_node *node,
                        const json_t *v,
                        const char *path,
                        struct sp_errbuf *eb)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v), n_cp;
    bool listed = node->enum_values == NULL;
    char range[48];

    if (strlen(s) != len)
        return sp_err_set(eb, SP_ESCHEMA, path, "must not contain NUL");
    n_cp = utf8_length(s, len);
    if ((node->min_length >= 0 && n_cp < (size_t)node->min_length) ||
        (node->max_length >= 0 && n_cp > (size_t)node->max_length))
        return sp_err_set(eb, SP_ESCHEMA, path, "must be %s characters long (is %zu)",
                          bounds(node->min_length, node->max_length, range, sizeof(range)), n_cp);
    if (node->pattern != NULL && !pattern_match(node->pattern, s))
        return sp_err_set(eb, SP_ESCHEMA, path, "does not match %s", node->pattern);
    for (size_t i = 0; !listed && node->enum_values[i] != NULL; i++)
        listed = strcmp(node->enum_values[i], s) == 0;
    if (!listed)
        return sp_err_set(eb, SP_ESCHEMA, path, "is not one of the allowed values");
    return 0;
}

static int array_check(const struct es_schema_node *node,
                       const json_t *v,
                       const char *path,
                       struct sp_errbuf *eb)
{
    size_t n = json_array_size(v), i;
    char item[96], range[48];
    json_t *e;
    int rc;

    if ((node->min_items >= 0 && n < (size_t)node->min_items) ||
        (node->max_items >= 0 && n > (size_t)node->max_items))
        return sp_err_set(eb, SP_ESCHEMA, path, "must have %s items (has %zu)",
                          bounds(node->min_items, node->max_items, range, sizeof(range)), n);
    if (node->items == NULL)
        return 0;
    json_array_foreach(v, i, e) {
        /* checked under @p path; the item's index goes into the field only on failure */
        if ((rc = es_value_check(node->items, e, path, eb)) == 0)
            continue;
        if (eb == NULL)
            return rc;
        size_t plen = strlen(path);
        const char *inner = strncmp(eb->field, path, plen) == 0 ? eb->field + plen : "";
        snprintf(item, sizeof(item), "%s/%zu%s", path, i, inner);
        size_t cut = strnlen(item, sizeof(eb->field) - 1); /* cut as sp_err_set cuts */
        memcpy(eb->field, item, cut);
        eb->field[cut] = '\0';
        return rc;
    }
    return 0;
}

int es_value_check(const struct es_schema_node *node,
                   const json_t *v,
                   const char *path,
                   struct sp_errbuf *eb)
{
    unsigned bit = json_type_bit(v);

    if ((node->types & bit) == 0)
        return sp_err_set(eb, SP_ESCHEMA, path, "has the wrong type");
    if (bit == ES_JSON_STRING)
        return string_check(node, v, path, eb);
    if (bit == ES_JSON_ARRAY)
        return array_check(node, v, path, eb);
    return 0;
}

int es_data_check(const struct es_event_type *t, json_t *data, struct sp_errbuf *eb)
{
    const char *key;
    json_t *v;
    size_t n = json_object_size(data);
    int rc;

    if (!json_is_object(data))
        return sp_err_set(eb, SP_ESCHEMA, "data", "payload is not an object");
    if ((t->min_properties >= 0 && n < (size_t)t->min_properties) ||
        (t->max_properties >= 0 && n > (size_t)t->max_properties))
        return sp_err_set(eb, SP_ESCHEMA, "data", "%s payload has %zu fields, allowed %d to %d",
                          t->name, n, t->min_properties > 0 ? t->min_properties : 0,
                          t->max_properties);
    for (size_t i = 0; i < t->n_fields; i++) {
        if (t->fields[i].required && json_object_get(data, t->fields[i].name) == NULL)
            return sp_err_set(eb, SP_ESCHEMA, t->fields[i].name, "missing field \"%s\"",
                              t->fields[i].name);
    }
    json_object_foreach(data, key, v) {
        const struct es_field *f = es_event_type_field(t, key);
        if (f == NULL)
            return sp_err_set(eb, SP_ESCHEMA, key, "%s has no field \"%.64s\"", t->name, key);
        if ((rc = es_value_check(f->schema, v, f->name, eb)) != 0)
            return rc;
    }
    return 0;
}

int64_t es_event_stream_id(const struct es_event *ev)
{
    const char *dash = ev->stream != NULL ? strchr(ev->stream, '-') : NULL;
    int64_t id;

    return dash != NULL && es_id_parse(dash + 1, &id) == 0 ? id : 0;
}

int es_event_check(const struct es_event *ev, enum es_type *type, struct sp_errbuf *eb)
{
    enum es_type kind = es_type_of(ev->type);
    const struct es_event_type *t = es_catalogue_get(kind);
    size_t cat_len;
    const char *dash, *id;
    char want[32];

    if (type != NULL)
        *type = kind;
    if (t == NULL)
        return sp_err_set(eb, SP_ESCHEMA, "type", "unknown event type \"%.64s\"",
                          ev->type ? ev->type : "");
    if (ev->dataschema == NULL || strcmp(ev->dataschema, t->dataschema) != 0)
        return sp_err_set(eb, SP_ESCHEMA, "dataschema", "%s events have dataschema \"%s\"", t->name,
                          t->dataschema);
    cat_len = strlen(t->stream_category);
    dash = ev->stream != NULL ? strchr(ev->stream, '-') : NULL;
    if (dash == NULL || (size_t)(dash - ev->stream) != cat_len ||
        strncmp(ev->stream, t->stream_category, cat_len) != 0 || es_event_stream_id(ev) == 0)
        return sp_err_set(eb, SP_ESCHEMA, "stream", "%s events belong to streams \"%s-<id>\"",
                          t->name, t->stream_category);
    if (t->stream_id_field != NULL &&
        (id = json_string_value(json_object_get(ev->data, t->stream_id_field))) != NULL) {
        snprintf(want, sizeof(want), "%lld", (long long)es_event_stream_id(ev));
        if (strcmp(id, want) != 0)
            return sp_err_set(eb, SP_ESCHEMA, t->stream_id_field,
                              "field \"%s\" does not match the stream", t->stream_id_field);
    }
    return es_data_check(t, ev->data, eb);
}
