/* Records of the search view: recipes and users, their binary codec, payloads and tags. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "es/id.h"
#include "search_internal.h"
#include "sp/alloc.h"
#include "sp/banned.h"

/* proj_text's word folding (proj/text.h, step 3). */
#define SEARCH_FOLD_FLAGS                                                                          \
    (UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE |  \
     UTF8PROC_STRIPMARK)

void search__doc_release(struct search_doc *d)
{
    for (int f = 0; f < PROJ_SEARCH_FIELDS; f++)
        free(d->items[f]);
    free(d->tags_folded);
    proj__bytes_release(&d->fold_mem);
    memset(d, 0, sizeof(*d));
}

void search__doc_set(struct search_doc *d, int f, uint32_t i, const char *s, size_t len)
{
    if (i >= d->cap[f]) { /* decoding the hits of a query mostly reuses the arrays */
        size_t cap = d->cap[f];
        PROJ_GROW(d->items[f], cap, (size_t)i + 1);
        d->cap[f] = (uint32_t)cap;
    }
    d->items[f][i] = (struct search_str){s, (uint32_t)len};
}

static void doc_set_folded(struct search_doc *d, uint32_t i, const char *s, size_t len)
{
    if (i >= d->folded_cap) {
        size_t cap = d->folded_cap;
        PROJ_GROW(d->tags_folded, cap, (size_t)i + 1);
        d->folded_cap = (uint32_t)cap;
    }
    d->tags_folded[i] = (struct search_str){s, (uint32_t)len};
}

/* ------------------------------------------------------------------ decoding */

/* Bounds-checked reader over a record. */
struct rd {
    const uint8_t *p, *end;
    bool bad;
};

static const uint8_t *rd_take(struct rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *at = r->p;
    r->p += n;
    return at;
}

static uint64_t rd_uint(struct rd *r, size_t n)
{
    const uint8_t *p = rd_take(r, n);
    uint64_t v = 0;

    for (size_t i = 0; p != NULL && i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static struct search_str rd_str(struct rd *r, size_t len_bytes)
{
    uint32_t len = (uint32_t)rd_uint(r, len_bytes);
    const uint8_t *p = rd_take(r, len);

    return p ? (struct search_str){(const char *)p, len} : (struct search_str){"", 0};
}

static void rd_head(struct search_doc *d, struct rd *r)
{
    uint32_t lang_len = (uint32_t)rd_uint(r, 1);
    const uint8_t *lang = rd_take(r, lang_len);

    if (lang_len >= sizeof(d->lang))
        r->bad = true;
    if (!r->bad) {
        memcpy(d->lang, lang, lang_len);
        d->lang[lang_len] = '\0';
    }
    d->author_id = rd_uint(r, 8);
    d->n[PROJ_SEARCH_TAGS] = (uint32_t)rd_uint(r, 2);
    for (uint32_t i = 0; i < d->n[PROJ_SEARCH_TAGS] && !r->bad; i++) {
        struct search_str folded = rd_str(r, 2), tag = rd_str(r, 2);
        doc_set_folded(d, i, folded.s, folded.len);
        search__doc_set(d, PROJ_SEARCH_TAGS, i, tag.s, tag.len);
    }
}

int search__doc_decode_head(struct search_doc *d, const void *rec, size_t len)
{
    struct rd r = {rec, (const uint8_t *)rec + len, false};

    rd_head(d, &r);
    return r.bad ? SP_ECORRUPT : 0;
}

static void rd_list(struct search_doc *d, struct rd *r, int f)
{
    d->n[f] = (uint32_t)rd_uint(r, 2);
    for (uint32_t i = 0; i < d->n[f] && !r->bad; i++) {
        struct search_str s = rd_str(r, 4);
        search__doc_set(d, f, i, s.s, s.len);
    }
}

int search__doc_decode(struct search_doc *d, const void *rec, size_t len)
{
    struct rd r = {rec, (const uint8_t *)rec + len, false};
    struct search_str title, desc;

    rd_head(d, &r);
    title = rd_str(&r, 4);
    desc = rd_str(&r, 4);
    search__doc_set(d, PROJ_SEARCH_TITLE, 0, title.s, title.len);
    search__doc_set(d, PROJ_SEARCH_DESCRIPTION, 0, desc.s, desc.len);
    d->n[PROJ_SEARCH_TITLE] = d->n[PROJ_SEARCH_DESCRIPTION] = 1;
    rd_list(d, &r, PROJ_SEARCH_INGREDIENTS);
    rd_list(d, &r, PROJ_SEARCH_STEPS);
    return r.bad || r.p != r.end ? SP_ECORRUPT : 0;
}

/* ------------------------------------------------------------------ encoding */

static void wr_uint(struct proj_bytes *out, uint64_t v, size_t n)
{
    uint8_t *p = proj__bytes_reserve(out, n);

    for (size_t i = n; i-- > 0; v >>= 8)
        p[i] = (uint8_t)v;
    out->len += n;
}

static int wr_str(struct proj_bytes *out, struct search_str s, size_t len_bytes)
{
    if (len_bytes == 2 && s.len > UINT16_MAX)
        return SP_ETOOBIG;
    wr_uint(out, s.len, len_bytes);
    proj__bytes_add(out, s.s, s.len);
    return 0;
}

static int wr_list(struct proj_bytes *out, const struct search_doc *d, int f)
{
    if (d->n[f] > UINT16_MAX)
        return SP_ETOOBIG;
    wr_uint(out, d->n[f], 2);
    for (uint32_t i = 0; i < d->n[f]; i++)
        (void)wr_str(out, d->items[f][i], 4);
    return 0;
}

int search__doc_encode(const struct search_doc *d, struct proj_bytes *out, struct sp_errbuf *eb)
{
    size_t lang_len = strlen(d->lang);
    int rc = d->n[PROJ_SEARCH_TAGS] > UINT16_MAX ? SP_ETOOBIG : 0;

    out->len = 0;
    wr_uint(out, lang_len, 1);
    proj__bytes_add(out, d->lang, lang_len);
    wr_uint(out, d->author_id, 8);
    wr_uint(out, d->n[PROJ_SEARCH_TAGS], 2);
    for (uint32_t i = 0; i < d->n[PROJ_SEARCH_TAGS] && rc == 0; i++) {
        rc = wr_str(out, d->tags_folded[i], 2);
        if (rc == 0)
            rc = wr_str(out, d->items[PROJ_SEARCH_TAGS][i], 2);
    }
    if (rc == 0) {
        (void)wr_str(out, d->items[PROJ_SEARCH_TITLE][0], 4);
        (void)wr_str(out, d->items[PROJ_SEARCH_DESCRIPTION][0], 4);
        rc = wr_list(out, d, PROJ_SEARCH_INGREDIENTS);
    }
    if (rc == 0)
        rc = wr_list(out, d, PROJ_SEARCH_STEPS);
    if (rc != 0)
        return sp_err_set(eb, rc, NULL, "recipe does not fit the search record format");
    return 0;
}

/* ------------------------------------------------------------------ tags */

int search__tag_fold(const char *s, size_t len, struct proj_bytes *out)
{
    utf8proc_uint8_t *folded = NULL;
    utf8proc_ssize_t n;
    size_t start = out->len, w = 0;
    bool space = true; /* drops leading white space */

    if (len == 0)
        return 0;
    n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &folded,
                     SEARCH_FOLD_FLAGS);
    if (n < 0)
        return n == UTF8PROC_ERROR_NOMEM ? -ENOMEM : SP_EINVAL;
    uint8_t *dst = proj__bytes_reserve(out, (size_t)n);
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        uint8_t c = folded[i];
        bool ws = c == ' ' || (c >= '\t' && c <= '\r');
        if (ws && space)
            continue;
        dst[w++] = ws ? ' ' : c;
        space = ws;
    }
    free(folded);
    if (w > 0 && dst[w - 1] == ' ')
        w--;
    if (w > SEARCH_TAG_MAX)
        w = 0;
    out->len = start + w;
    return (int)w;
}

/* ------------------------------------------------------------------ payloads */

static int
json_field_str(json_t *data, const char *name, struct search_str *out, struct sp_errbuf *eb)
{
    json_t *v = json_object_get(data, name);

    if (v == NULL)
        return 1;
    if (!json_is_string(v))
        return sp_err_set(eb, SP_ESCHEMA, name, "must be a string");
    *out = (struct search_str){json_string_value(v), (uint32_t)json_string_length(v)};
    return 0;
}

static int
json_list(struct search_doc *d, json_t *data, int f, const char *name, struct sp_errbuf *eb)
{
    json_t *v = json_object_get(data, name), *item;
    size_t i;

    if (v == NULL)
        return 0;
    if (!json_is_array(v))
        return sp_err_set(eb, SP_ESCHEMA, name, "must be an array");
    json_array_foreach(v, i, item) {
        if (!json_is_string(item))
            return sp_err_set(eb, SP_ESCHEMA, name, "items must be strings");
        search__doc_set(d, f, (uint32_t)i, json_string_value(item), json_string_length(item));
    }
    d->n[f] = (uint32_t)json_array_size(v);
    return 0;
}

/* Fold every tag of @p d into fold_mem. */
static int doc_fold_tags(struct search_doc *d, struct sp_errbuf *eb)
{
    uint32_t n = d->n[PROJ_SEARCH_TAGS];
    uint32_t *off = sp_xmalloc((n ? n : 1) * sizeof(*off));
    int rc = 0;

    d->fold_mem.len = 0;
    for (uint32_t i = 0; i < n && rc >= 0; i++) {
        off[i] = (uint32_t)d->fold_mem.len;
        const struct search_str *t = &d->items[PROJ_SEARCH_TAGS][i];
        rc = search__tag_fold(t->s, t->len, &d->fold_mem);
    }
    for (uint32_t i = 0; i < n && rc >= 0; i++) {
        uint32_t end = i + 1 < n ? off[i + 1] : (uint32_t)d->fold_mem.len;
        doc_set_folded(d, i, (const char *)d->fold_mem.data + off[i], end - off[i]);
    }
    free(off);
    if (rc < 0)
        return sp_err_set(eb, SP_ESCHEMA, "tags", "a tag is not valid UTF-8");
    return 0;
}

static int doc_json_head(struct search_doc *d, json_t *data, struct sp_errbuf *eb)
{
    struct search_str s = {"", 0};
    int rc = json_field_str(data, "language", &s, eb);

    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (s.len < 2 || s.len >= sizeof(d->lang))
            return sp_err_set(eb, SP_ESCHEMA, "language", "must be a language subtag");
        memcpy(d->lang, s.s, s.len);
        d->lang[s.len] = '\0';
    }
    rc = json_field_str(data, "author_id", &s, eb);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        int64_t id;
        if (es_id_parse(s.s, &id) != 0)
            return sp_err_set(eb, SP_ESCHEMA, "author_id", "must be an id");
        d->author_id = (uint64_t)id;
    }
    return 0;
}

int search__doc_from_json(struct search_doc *d, json_t *data, struct sp_errbuf *eb)
{
    static const struct {
        int field;
        const char *name;
    } texts[] = {{PROJ_SEARCH_TITLE, "title"}, {PROJ_SEARCH_DESCRIPTION, "description"}};
    struct search_str s = {"", 0};
    int rc = doc_json_head(d, data, eb);

    for (size_t i = 0; i < 2 && rc == 0; i++) {
        rc = json_field_str(data, texts[i].name, &s, eb);
        if (rc == 0) {
            search__doc_set(d, texts[i].field, 0, s.s, s.len);
            d->n[texts[i].field] = 1;
        }
        rc = rc > 0 ? 0 : rc;
    }
    if (rc == 0)
        rc = json_list(d, data, PROJ_SEARCH_INGREDIENTS, "ingredients", eb);
    if (rc == 0)
        rc = json_list(d, data, PROJ_SEARCH_STEPS, "steps", eb);
    if (rc == 0 && json_object_get(data, "tags") != NULL) {
        rc = json_list(d, data, PROJ_SEARCH_TAGS, "tags", eb);
        if (rc == 0)
            rc = doc_fold_tags(d, eb);
    }
    return rc;
}

/* ------------------------------------------------------------------ users */

int search__user_decode(struct search_user *u, const void *rec, size_t len)
{
    struct rd r = {rec, (const uint8_t *)rec + len, false};
    unsigned flags = (unsigned)rd_uint(&r, 1);

    u->username = rd_str(&r, 2);
    u->full_name = rd_str(&r, 2);
    u->bio = rd_str(&r, 2);
    u->has_full_name = (flags & 1) != 0;
    u->has_bio = (flags & 2) != 0;
    return r.bad || r.p != r.end ? SP_ECORRUPT : 0;
}

int search__user_encode(const struct search_user *u, struct proj_bytes *out, struct sp_errbuf *eb)
{
    out->len = 0;
    wr_uint(out, (u->has_full_name ? 1U : 0U) | (u->has_bio ? 2U : 0U), 1);
    if (wr_str(out, u->username, 2) != 0 || wr_str(out, u->full_name, 2) != 0 ||
        wr_str(out, u->bio, 2) != 0)
        return sp_err_set(eb, SP_ETOOBIG, NULL, "user does not fit the search record format");
    return 0;
}
