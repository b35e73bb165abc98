/*
 * The event envelope: CloudEvents 1.0 structured-mode JSON
 * (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md)
 * with Stockpot's extensions, encoded in a fixed key order and decoded strictly (jansson).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/catalogue.h"
#include "es/event.h"
#include "json_parse.h"
#include "sp/buf.h"
#include "sp/json.h"
#include "sp/alloc.h"
#include "sp/time.h"

#include "sp/banned.h"

#define ES_DATACONTENTTYPE "application/json"
#define ES_MAX_NAME_BYTES  200 /* type, stream category and stream id */

void es_event_init(struct es_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->pos.partition = -1;
    ev->pos.offset = -1;
}

void es_event_release(struct es_event *ev)
{
    free(ev->source);
    free(ev->type);
    free(ev->subject);
    free(ev->dataschema);
    free(ev->stream);
    free(ev->actor);
    free(ev->correlation_id);
    free(ev->causation_id);
    free(ev->idempotency_key);
    free(ev->idempotency_fp);
    free(ev->wire);
    free(ev->data_json);
    json_decref(ev->data);
    es_event_init(ev);
}

static bool is_name_char(char c, bool upper_ok)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           (upper_ok && c >= 'A' && c <= 'Z');
}

/* Stream "<category>-<id>": category [a-z0-9_]+, id [A-Za-z0-9_-]+ ("recipe-73"). */
static int stream_split(const char *stream, size_t *category_len)
{
    const char *dash;
    size_t n;

    if (stream == NULL || (n = strlen(stream)) == 0 || n > ES_MAX_NAME_BYTES)
        return SP_EINVAL;
    dash = strchr(stream, '-');
    if (dash == NULL || dash == stream || dash[1] == '\0')
        return SP_EINVAL;
    for (const char *p = stream; p < dash; p++)
        if (!is_name_char(*p, false))
            return SP_EINVAL;
    for (const char *p = dash + 1; *p; p++)
        if (!is_name_char(*p, true) && *p != '-')
            return SP_EINVAL;
    *category_len = (size_t)(dash - stream);
    return 0;
}

/* Event type: [A-Za-z0-9_]+, e.g. "RecipeCreated". */
static int type_valid(const char *type)
{
    size_t n = type ? strlen(type) : 0;

    if (n == 0 || n > ES_MAX_NAME_BYTES)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(type[i], true))
            return 0;
    return 1;
}

static char *xstrdup_or_null(const char *s)
{
    return s ? sp_xstrdup(s) : NULL;
}

int es_event_make(struct es_event *ev,
                  const char *type,
                  const char *stream,
                  int64_t stream_version,
                  const char *actor,
                  const char *correlation_id,
                  const char *source,
                  json_t *data)
{
    size_t cat_len;
    char *buf;
    size_t n;
    int rc;

    es_event_release(ev);
    if (!type_valid(type) || stream_split(stream, &cat_len) || stream_version < 1 ||
        !json_is_object(data)) {
        json_decref(data);
        return SP_EINVAL;
    }
    rc = es_uuid7_new(ev->id);
    if (rc) {
        json_decref(data);
        return rc;
    }
    ev->time_us = sp_time_now_us();
    ev->source = sp_xstrdup(source ? source : ES_SOURCE_COMMAND_API);
    ev->type = sp_xstrdup(type);
    ev->type_id = es_type_of(type);
    ev->stream = sp_xstrdup(stream);
    ev->subject = sp_xstrdup(stream);
    ev->subject[cat_len] = '/';
    n = strlen(type) + sizeof("schemas/events/.v1.json");
    buf = sp_xmalloc(n);
    snprintf(buf, n, "schemas/events/%s.v1.json", type);
    ev->dataschema = buf;
    ev->stream_version = stream_version;
    ev->actor = xstrdup_or_null(actor);
    ev->correlation_id = xstrdup_or_null(correlation_id);
    ev->data = data;
    return 0;
}

/* true if @p s needs escaping in a JSON string: '"', '\\' or a control character. */
static bool needs_escape(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\')
            return true;
    return false;
}

/*
 * Append ,"key":"val"; a NULL @p val is skipped when optional. A value that needs escaping
 * (never one this code makes: ids, names, request ids) is escaped by jansson itself, so
 * the bytes stay those json_dumps wrote (stockpot-replay copy-log compares them).
 * @return 0; SP_EINVAL (missing, not UTF-8) with @p eb; SP_ETOOBIG from @p b's cap.
 */
static int
put_str(struct sp_buf *b, const char *key, const char *val, bool required, struct sp_errbuf *eb)
{
    int rc;
    if (val == NULL) {
        if (!required)
            return 0;
        return sp_err_set(eb, SP_EINVAL, key, "event attribute \"%s\" is missing", key);
    }
    size_t n = strlen(val);
    if (!es__utf8_valid(val, n))
        return sp_err_set(eb, SP_EINVAL, key, "event attribute \"%s\" is not valid UTF-8", key);
    if ((rc = sp_buf_add(b, ",\"", 2)) != 0 || (rc = sp_buf_adds(b, key)) != 0 ||
        (rc = sp_buf_add(b, "\":", 2)) != 0)
        return rc;
    if (!needs_escape(val, n)) {
        if ((rc = sp_buf_add(b, "\"", 1)) != 0 || (rc = sp_buf_add(b, val, n)) != 0)
            return rc;
        return sp_buf_add(b, "\"", 1);
    }
    json_t *js = json_stringn(val, n);
    char *dumped = js ? json_dumps(js, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(js);
    if (!dumped)
        return sp_err_set(eb, SP_EINVAL, key, "event attribute \"%s\" cannot be encoded", key);
    rc = sp_buf_adds(b, dumped);
    free(dumped);
    return rc;
}

/*
 * Write the envelope in the fixed CloudEvents key order straight into @p out (the bytes
 * json_dumps(JSON_COMPACT) made of the object it once built), data by sp_json_dump (the
 * same bytes as jansson's).
 * @return 0; SP_EINVAL with @p eb; SP_ETOOBIG from @p out's cap.
 */
static int envelope_write(const struct es_event *ev, struct sp_buf *out, struct sp_errbuf *eb)
{
    char time_buf[40], num[48];
    int rc;

    if (!es_uuid_valid(ev->id))
        return sp_err_set(eb, SP_EINVAL, "id", "event id \"%s\" is not a UUID", ev->id);
    if (ev->stream_version < 1)
        return sp_err_set(eb, SP_EINVAL, "streamversion", "event stream version must be >= 1");
    if (!json_is_object(ev->data))
        return sp_err_set(eb, SP_EINVAL, "data", "event data must be a JSON object");
    sp_time_format_rfc3339(ev->time_us, time_buf, sizeof(time_buf));
    snprintf(num, sizeof(num), ",\"streamversion\":%lld", (long long)ev->stream_version);

    if ((rc = sp_buf_adds(out, "{\"specversion\":\"1.0\"")) ||
        (rc = put_str(out, "id", ev->id, true, eb)) ||
        (rc = put_str(out, "source", ev->source, true, eb)) ||
        (rc = put_str(out, "type", ev->type, true, eb)) ||
        (rc = put_str(out, "subject", ev->subject, true, eb)) ||
        (rc = put_str(out, "time", time_buf, true, eb)) ||
        (rc = put_str(out, "datacontenttype", ES_DATACONTENTTYPE, true, eb)) ||
        (rc = put_str(out, "dataschema", ev->dataschema, true, eb)) ||
        (rc = put_str(out, "stream", ev->stream, true, eb)) || (rc = sp_buf_adds(out, num)) ||
        (rc = put_str(out, "actor", ev->actor, false, eb)) ||
        (rc = put_str(out, "correlationid", ev->correlation_id, false, eb)) ||
        (rc = put_str(out, "causationid", ev->causation_id, false, eb)) ||
        (rc = put_str(out, "idempotencykey", ev->idempotency_key, false, eb)) ||
        (rc = put_str(out, "idempotencyfp", ev->idempotency_fp, false, eb)) ||
        (rc = sp_buf_adds(out, ",\"data\":")))
        return rc;
    if ((rc = sp_json_dump(out, ev->data)) != 0)
        return rc == SP_ETOOBIG
                   ? rc
                   : sp_err_set(eb, SP_EINVAL, "data", "could not encode event %s", ev->id);
    return sp_buf_add(out, "}", 1);
}

int es_event_encode(const struct es_event *ev, struct sp_buf *out, struct sp_errbuf *eb)
{
    size_t start = out->len;
    int rc = ev->wire ? sp_buf_add(out, ev->wire, ev->wire_len) : envelope_write(ev, out, eb);
    if (rc == 0)
        return 0;
    if (out->data != NULL && out->len > start) {
        out->len = start;
        out->data[start] = '\0';
    }
    if (rc == SP_ETOOBIG)
        return sp_err_set(eb, SP_ETOOBIG, NULL, "encoded event %s exceeds %zu bytes", ev->id,
                          out->max_bytes);
    return rc;
}

int es_event_seal(struct es_event *ev, size_t max_bytes, struct sp_errbuf *eb)
{
    struct sp_buf b;
    free(ev->wire);
    ev->wire = NULL;
    ev->wire_len = 0;
    sp_buf_init(&b, max_bytes);
    int rc = es_event_encode(ev, &b, eb);
    if (rc == 0)
        ev->wire = sp_buf_detach(&b, &ev->wire_len);
    sp_buf_release(&b);
    return rc;
}

/* Borrow the string attribute @p key: required ones must be non-empty strings. */
static int
get_str(json_t *root, const char *key, bool required, const char **out, struct sp_errbuf *eb)
{
    json_t *js = json_object_get(root, key);

    *out = NULL;
    if (js == NULL || (json_is_null(js) && !required)) {
        if (!required)
            return 0;
        return sp_err_set(eb, SP_ESCHEMA, key, "event attribute \"%s\" is missing", key);
    }
    if (!json_is_string(js))
        return sp_err_set(eb, SP_ESCHEMA, key, "event attribute \"%s\" is not a string", key);
    if (required && json_string_length(js) == 0)
        return sp_err_set(eb, SP_ESCHEMA, key, "event attribute \"%s\" is empty", key);
    if (strlen(json_string_value(js)) != json_string_length(js))
        return sp_err_set(eb, SP_ESCHEMA, key, "event attribute \"%s\" contains NUL", key);
    *out = json_string_value(js);
    return 0;
}

/* The fixed-value and specially formatted attributes: specversion, id, time, ... */
static int decode_checked(json_t *root, struct es_event *ev, struct sp_errbuf *eb)
{
    const char *s;
    size_t cat_len;
    int rc;

    if ((rc = get_str(root, "specversion", true, &s, eb)))
        return rc;
    if (strcmp(s, "1.0") != 0)
        return sp_err_set(eb, SP_ESCHEMA, "specversion", "event specversion \"%s\" is not \"1.0\"",
                          s);
    if ((rc = get_str(root, "id", true, &s, eb)))
        return rc;
    if (!es_uuid_valid(s))
        return sp_err_set(eb, SP_ESCHEMA, "id", "event id \"%.64s\" is not a UUID", s);
    memcpy(ev->id, s, ES_UUID_STR_LEN + 1);
    if ((rc = get_str(root, "time", true, &s, eb)))
        return rc;
    if (sp_time_parse_rfc3339(s, &ev->time_us) != 0)
        return sp_err_set(eb, SP_ESCHEMA, "time", "event time \"%.64s\" is not RFC 3339", s);
    if ((rc = get_str(root, "datacontenttype", true, &s, eb)))
        return rc;
    if (strcmp(s, ES_DATACONTENTTYPE) != 0)
        return sp_err_set(eb, SP_ESCHEMA, "datacontenttype",
                          "event datacontenttype \"%.64s\" is not \"" ES_DATACONTENTTYPE "\"", s);
    if ((rc = get_str(root, "type", true, &s, eb)))
        return rc;
    if (!type_valid(s))
        return sp_err_set(eb, SP_ESCHEMA, "type", "event type \"%.64s\" is malformed", s);
    if ((rc = get_str(root, "stream", true, &s, eb)))
        return rc;
    if (stream_split(s, &cat_len) != 0)
        return sp_err_set(eb, SP_ESCHEMA, "stream",
                          "event stream \"%.64s\" is not \"<category>-<id>\"", s);
    return 0;
}

struct str_attr {
    const char *key;
    size_t offset; /* of the char * in struct es_event */
    bool required;
};

static const struct str_attr str_attrs[] = {
    {"source", offsetof(struct es_event, source), true},
    {"type", offsetof(struct es_event, type), true},
    {"subject", offsetof(struct es_event, subject), true},
    {"dataschema", offsetof(struct es_event, dataschema), true},
    {"stream", offsetof(struct es_event, stream), true},
    {"actor", offsetof(struct es_event, actor), false},
    {"correlationid", offsetof(struct es_event, correlation_id), false},
    {"causationid", offsetof(struct es_event, causation_id), false},
    {"idempotencykey", offsetof(struct es_event, idempotency_key), false},
    {"idempotencyfp", offsetof(struct es_event, idempotency_fp), false},
};

static int decode_attrs(json_t *root, struct es_event *ev, struct sp_errbuf *eb)
{
    json_t *js;
    int rc;

    if ((rc = decode_checked(root, ev, eb)))
        return rc;
    for (size_t i = 0; i < sizeof(str_attrs) / sizeof(str_attrs[0]); i++) {
        const char *s;
        if ((rc = get_str(root, str_attrs[i].key, str_attrs[i].required, &s, eb)))
            return rc;
        *(char **)((char *)ev + str_attrs[i].offset) = xstrdup_or_null(s);
    }
    js = json_object_get(root, "streamversion");
    if (js == NULL)
        return sp_err_set(eb, SP_ESCHEMA, "streamversion",
                          "event attribute \"streamversion\" is missing");
    if (!json_is_integer(js) || json_integer_value(js) < 1)
        return sp_err_set(eb, SP_ESCHEMA, "streamversion",
                          "event streamversion must be an integer >= 1");
    ev->stream_version = json_integer_value(js);
    ev->type_id = es_type_of(ev->type);
    if (json_object_get(root, "data_base64") != NULL)
        return sp_err_set(eb, SP_ESCHEMA, "data_base64", "event data must be JSON, not base64");
    js = json_object_get(root, "data");
    if (js == NULL)
        return sp_err_set(eb, SP_ESCHEMA, "data", "event attribute \"data\" is missing");
    if (!json_is_object(js))
        return sp_err_set(eb, SP_ESCHEMA, "data", "event data is not a JSON object");
    ev->data = json_incref(js);
    return 0;
}

int es_event_decode_ex(
    const void *json, size_t len, unsigned flags, struct es_event *ev, struct sp_errbuf *eb)
{
    struct sp_errbuf jerr = {{0}, {0}};
    bool keep = (flags & ES_DECODE_DATA_JSON) != 0;
    char *text = NULL;
    size_t text_len = 0;
    json_t *root;
    int rc;

    es_event_release(ev);
    if (es__json_parse_ex(json, len, keep ? "data" : NULL, &root, keep ? &text : NULL,
                          keep ? &text_len : NULL, &jerr) != 0)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "event is not valid JSON: %s", jerr.msg);
    if (!json_is_object(root)) {
        rc = sp_err_set(eb, SP_ESCHEMA, NULL, "event is not a JSON object");
        goto out_free_root;
    }
    rc = decode_attrs(root, ev, eb);
    if (rc) {
        es_event_release(ev);
    } else {
        ev->data_json = text; /* data is an object: decode_attrs checked it */
        ev->data_json_len = text_len;
        text = NULL;
    }
out_free_root:
    free(text);
    json_decref(root);
    return rc;
}

int es_event_decode(const void *json, size_t len, struct es_event *ev, struct sp_errbuf *eb)
{
    return es_event_decode_ex(json, len, 0, ev, eb);
}
