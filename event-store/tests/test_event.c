/* Unit tests for es/event.h: CloudEvents round trips of every v1 type, strict decode, the
 * encoding against jansson's, sealed encodings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "es/event.h"
#include "sp/time.h"

#include "sp/banned.h"

struct sample {
    const char *type;
    const char *stream;
    const char *data; /* JSON */
};

static const struct sample samples[] = {
    {"UserRegistered", "user-7301234567890",
     "{\"user_id\":\"7301234567890\",\"username\":\"chef_李\",\"email\":\"li@example.com\","
     "\"password_hash\":\"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g\"}"},
    {"SessionStarted", "session-7301234567891",
     "{\"session_id\":\"7301234567891\",\"user_id\":\"7301234567890\",\"refresh_hash\":"
     "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\","
     "\"expires_at\":\"2026-12-21T05:35:00.123456Z\"}"},
    {"SessionRefreshed", "session-7301234567891",
     "{\"session_id\":\"7301234567891\",\"refresh_hash\":"
     "\"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752\","
     "\"expires_at\":\"2026-12-22T05:35:00.000000Z\"}"},
    {"SessionRevoked", "session-7301234567891",
     "{\"session_id\":\"7301234567891\",\"reason\":\"refresh_token_reuse\"}"},
    {"RecipeCreated", "recipe-7301234567892",
     "{\"recipe_id\":\"7301234567892\",\"author_id\":\"7301234567890\",\"title\":\"crème "
     "brûlée\",\"description\":\"法式焦糖布丁 — a classic\",\"ingredients\":[\"4 egg yolks\","
     "\"500 ml crème fraîche\",\"糖 80 g\"],\"steps\":[\"Whisk\",\"Bake at 150 °C\"],"
     "\"tags\":[\"dessert\",\"甜点\"],\"image_media_ids\":[]}"},
    {"RecipeUpdated", "recipe-7301234567892",
     "{\"title\":\"Crème brûlée (改良版)\",\"tags\":[\"dessert\"]}"},
    {"RecipeDeleted", "recipe-7301234567892", "{}"},
};

static void make_sample(struct es_event *ev, const struct sample *s, int64_t version)
{
    json_error_t jerr;
    json_t *data = json_loads(s->data, 0, &jerr);

    assert_non_null(data);
    es_event_init(ev);
    assert_int_equal(
        es_event_make(ev, s->type, s->stream, version, "7301234567890", "req-1", NULL, data), 0);
}

static void test_round_trip_all_types(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        struct es_event ev, back;
        struct sp_errbuf eb = {{0}, {0}};
        struct sp_buf buf;
        char schema[128];

        make_sample(&ev, &samples[i], (int64_t)i + 1);
        ev.causation_id = strdup("01890a5d-ac96-774b-bcce-b302099a8057");
        sp_buf_init(&buf, 0);
        assert_int_equal(es_event_encode(&ev, &buf, &eb), 0);
        es_event_init(&back);
        assert_int_equal(es_event_decode(buf.data, buf.len, &back, &eb), 0);

        assert_string_equal(back.id, ev.id);
        assert_string_equal(back.source, ES_SOURCE_COMMAND_API);
        assert_string_equal(back.type, samples[i].type);
        assert_string_equal(back.stream, samples[i].stream);
        assert_int_equal(strncmp(back.subject, samples[i].stream, strcspn(samples[i].stream, "-")),
                         0);
        assert_int_equal(back.subject[strcspn(samples[i].stream, "-")], '/');
        snprintf(schema, sizeof(schema), "schemas/events/%s.v1.json", samples[i].type);
        assert_string_equal(back.dataschema, schema);
        assert_int_equal(back.time_us, ev.time_us);
        assert_int_equal(back.stream_version, (int64_t)i + 1);
        assert_string_equal(back.actor, "7301234567890");
        assert_string_equal(back.correlation_id, "req-1");
        assert_string_equal(back.causation_id, "01890a5d-ac96-774b-bcce-b302099a8057");
        assert_true(json_equal(back.data, ev.data));
        assert_int_equal(back.pos.offset, -1);
        assert_null(back.data_json); /* kept only on request */

        /* ES_DECODE_DATA_JSON: the payload's text, as the encoder wrote it (compact) */
        struct es_event kept;
        char *dumped = json_dumps(ev.data, JSON_COMPACT);
        es_event_init(&kept);
        assert_int_equal(es_event_decode_ex(buf.data, buf.len, ES_DECODE_DATA_JSON, &kept, &eb), 0);
        assert_true(json_equal(kept.data, ev.data));
        assert_non_null(kept.data_json);
        assert_string_equal(kept.data_json, dumped);
        assert_int_equal(kept.data_json_len, strlen(dumped));
        free(dumped);
        es_event_release(&kept);
        assert_null(kept.data_json);

        es_event_release(&ev);
        es_event_release(&back);
        sp_buf_release(&buf);
    }
}

static void test_encode_key_order_and_utf8(void **state)
{
    struct es_event ev;
    struct sp_buf buf;
    const char *keys[] = {"\"specversion\"",
                          "\"id\"",
                          "\"source\"",
                          "\"type\"",
                          "\"subject\"",
                          "\"time\"",
                          "\"datacontenttype\"",
                          "\"dataschema\"",
                          "\"stream\"",
                          "\"streamversion\"",
                          "\"actor\"",
                          "\"correlationid\"",
                          "\"data\""};
    const char *prev = NULL;

    (void)state;
    make_sample(&ev, &samples[4], 1);
    sp_buf_init(&buf, 0);
    assert_int_equal(es_event_encode(&ev, &buf, NULL), 0);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *p = strstr(buf.data, keys[i]);
        assert_non_null(p);
        assert_true(prev == NULL || p > prev);
        prev = p;
    }
    assert_null(strstr(buf.data, "causationid"));      /* absent optional attribute */
    assert_non_null(strstr(buf.data, "crème brûlée")); /* raw UTF-8, not \u escapes */
    assert_non_null(strstr(buf.data, "法式焦糖布丁"));
    es_event_release(&ev);
    sp_buf_release(&buf);
}

static void test_encode_too_big(void **state)
{
    struct es_event ev;
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_buf buf;

    (void)state;
    make_sample(&ev, &samples[4], 1);
    sp_buf_init(&buf, 100);
    assert_int_equal(sp_buf_adds(&buf, "x"), 0);
    assert_int_equal(es_event_encode(&ev, &buf, &eb), SP_ETOOBIG);
    assert_int_equal(buf.len, 1); /* unchanged */
    assert_string_equal(buf.data, "x");
    es_event_release(&ev);
    sp_buf_release(&buf);
}

static void test_make_rejects(void **state)
{
    struct es_event ev;

    (void)state;
    es_event_init(&ev);
    assert_int_equal(
        es_event_make(&ev, "RecipeCreated", "recipe", 1, NULL, NULL, NULL, json_object()),
        SP_EINVAL);
    assert_int_equal(es_event_make(&ev, "RecipeCreated", "-73", 1, NULL, NULL, NULL, json_object()),
                     SP_EINVAL);
    assert_int_equal(
        es_event_make(&ev, "RecipeCreated", "recipe-", 1, NULL, NULL, NULL, json_object()),
        SP_EINVAL);
    assert_int_equal(
        es_event_make(&ev, "RecipeCreated", "recipe-73", 0, NULL, NULL, NULL, json_object()),
        SP_EINVAL);
    assert_int_equal(es_event_make(&ev, "", "recipe-73", 1, NULL, NULL, NULL, json_object()),
                     SP_EINVAL);
    assert_int_equal(
        es_event_make(&ev, "RecipeCreated", "recipe-73", 1, NULL, NULL, NULL, json_array()),
        SP_EINVAL);
    assert_int_equal(es_event_make(&ev, "RecipeCreated", "recipe-73", 1, NULL, NULL,
                                   "/stockpot/replay", json_object()),
                     0);
    assert_string_equal(ev.source, "/stockpot/replay");
    assert_string_equal(ev.subject, "recipe/73");
    assert_null(ev.actor);
    es_event_release(&ev);
}

/* Encode a valid event, apply @p edit to its JSON object, and decode the result. */
static int decode_edited(void (*edit)(json_t *obj, void *arg), void *arg, struct sp_errbuf *eb)
{
    struct es_event ev, back;
    struct sp_buf buf;
    json_t *obj;
    char *text;
    int rc;

    make_sample(&ev, &samples[0], 1);
    sp_buf_init(&buf, 0);
    assert_int_equal(es_event_encode(&ev, &buf, NULL), 0);
    obj = json_loads(buf.data, 0, NULL);
    assert_non_null(obj);
    edit(obj, arg);
    text = json_dumps(obj, JSON_COMPACT);
    es_event_init(&back);
    memset(eb, 0, sizeof(*eb));
    rc = es_event_decode(text, strlen(text), &back, eb);
    if (rc != 0) {
        assert_null(back.type); /* left empty on failure */
        assert_null(back.data);
    }
    es_event_release(&back);
    es_event_release(&ev);
    free(text);
    json_decref(obj);
    sp_buf_release(&buf);
    return rc;
}

struct set_arg {
    const char *key;
    json_t *value; /* stolen */
};

static void edit_delete(json_t *obj, void *arg)
{
    const struct set_arg *a = arg;
    json_object_del(obj, a->key);
}

static void edit_set(json_t *obj, void *arg)
{
    struct set_arg *a = arg;
    json_object_set_new(obj, a->key, a->value);
}

static void expect_bad(const char *key, json_t *value, const char *field)
{
    struct sp_errbuf eb;
    struct set_arg a = {key, value};
    int rc = value ? decode_edited(edit_set, &a, &eb) : decode_edited(edit_delete, &a, &eb);

    assert_int_equal(rc, SP_ESCHEMA);
    assert_string_equal(eb.field, field);
    assert_true(strlen(eb.msg) > 0);
}

static void test_decode_rejects_missing(void **state)
{
    const char *required[] = {
        "specversion",     "id",         "source", "type",          "subject", "time",
        "datacontenttype", "dataschema", "stream", "streamversion", "data"};
    (void)state;
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        expect_bad(required[i], NULL, required[i]);
}

static void test_decode_rejects_bad_values(void **state)
{
    (void)state;
    expect_bad("specversion", json_string("0.3"), "specversion");
    expect_bad("specversion", json_real(1.0), "specversion");
    expect_bad("time", json_string("2026-11-21 05:35:00"), "time");
    expect_bad("time", json_string("yesterday"), "time");
    expect_bad("time", json_integer(1700000000), "time");
    expect_bad("data", json_string("{}"), "data");
    expect_bad("data", json_array(), "data");
    expect_bad("data", json_null(), "data");
    expect_bad("id", json_string("not-a-uuid"), "id");
    expect_bad("datacontenttype", json_string("text/plain"), "datacontenttype");
    expect_bad("streamversion", json_integer(0), "streamversion");
    expect_bad("streamversion", json_string("1"), "streamversion");
    expect_bad("stream", json_string("recipe73"), "stream");
    expect_bad("source", json_string(""), "source");
    expect_bad("actor", json_integer(5), "actor");
    expect_bad("data_base64", json_string("e30="), "data_base64");
}

static void test_decode_not_json(void **state)
{
    struct es_event ev;
    struct sp_errbuf eb = {{0}, {0}};

    (void)state;
    es_event_init(&ev);
    assert_int_equal(es_event_decode("{\"specversion\":", 15, &ev, &eb), SP_ECORRUPT);
    assert_true(strlen(eb.msg) > 0);
    assert_int_equal(es_event_decode("[1,2]", 5, &ev, &eb), SP_ESCHEMA);
    assert_int_equal(es_event_decode("", 0, &ev, &eb), SP_ECORRUPT);
    assert_int_equal(es_event_decode("{\"a\":1,\"a\":2}", 13, &ev, &eb), SP_ECORRUPT);
}

static void test_decode_optional_null_and_unknown(void **state)
{
    struct sp_errbuf eb;
    struct set_arg a = {"actor", json_null()};
    struct set_arg b = {"traceparent", json_string("00-abc")};

    (void)state;
    assert_int_equal(decode_edited(edit_set, &a, &eb), 0);
    assert_int_equal(decode_edited(edit_set, &b, &eb), 0); /* unknown extensions ignored */
}

static void test_position_tokens(void **state)
{
    struct es_position pos = {0, 12};
    char tok[32];

    (void)state;
    es_position_format(pos, tok, sizeof(tok));
    assert_string_equal(tok, "0:12");
    pos.partition = -1;
    assert_int_equal(es_position_parse("3:9223372036854775807", &pos), 0);
    assert_int_equal(pos.partition, 3);
    assert_int_equal(pos.offset, INT64_MAX);
    assert_int_equal(es_position_parse("0:0", &pos), 0);
    assert_int_equal(pos.offset, 0);
    assert_int_equal(es_position_parse("", &pos), SP_EINVAL);
    assert_int_equal(es_position_parse("0", &pos), SP_EINVAL);
    assert_int_equal(es_position_parse("0:", &pos), SP_EINVAL);
    assert_int_equal(es_position_parse(":5", &pos), SP_EINVAL);
    assert_int_equal(es_position_parse("0:-1", &pos), SP_EINVAL);
    assert_int_equal(es_position_parse("0:01", &pos), SP_EINVAL);
    assert_int_equal(es_position_parse("0:5x", &pos), SP_EINVAL);
    assert_int_equal(es_position_parse("2147483648:5", &pos), SP_EINVAL);
    assert_int_equal(es_position_parse("0:9223372036854775808", &pos), SP_EINVAL);
    assert_int_equal(es_position_parse(NULL, &pos), SP_EINVAL);
}

/* json_dumps(JSON_COMPACT) of the envelope of @p ev built as a jansson object in the
 * documented key order (es/event.h); owned. */
static char *jansson_encoding(const struct es_event *ev)
{
    char time_buf[40];
    json_t *obj = json_object();
    char *text;

    assert_non_null(obj);
    sp_time_format_rfc3339(ev->time_us, time_buf, sizeof(time_buf));
    assert_int_equal(json_object_set_new(obj, "specversion", json_string("1.0")), 0);
    assert_int_equal(json_object_set_new(obj, "id", json_string(ev->id)), 0);
    assert_int_equal(json_object_set_new(obj, "source", json_string(ev->source)), 0);
    assert_int_equal(json_object_set_new(obj, "type", json_string(ev->type)), 0);
    assert_int_equal(json_object_set_new(obj, "subject", json_string(ev->subject)), 0);
    assert_int_equal(json_object_set_new(obj, "time", json_string(time_buf)), 0);
    assert_int_equal(json_object_set_new(obj, "datacontenttype", json_string("application/json")),
                     0);
    assert_int_equal(json_object_set_new(obj, "dataschema", json_string(ev->dataschema)), 0);
    assert_int_equal(json_object_set_new(obj, "stream", json_string(ev->stream)), 0);
    assert_int_equal(json_object_set_new(obj, "streamversion", json_integer(ev->stream_version)),
                     0);
    if (ev->actor != NULL)
        assert_int_equal(json_object_set_new(obj, "actor", json_string(ev->actor)), 0);
    if (ev->correlation_id != NULL)
        assert_int_equal(json_object_set_new(obj, "correlationid", json_string(ev->correlation_id)),
                         0);
    if (ev->causation_id != NULL)
        assert_int_equal(json_object_set_new(obj, "causationid", json_string(ev->causation_id)), 0);
    if (ev->idempotency_key != NULL)
        assert_int_equal(
            json_object_set_new(obj, "idempotencykey", json_string(ev->idempotency_key)), 0);
    if (ev->idempotency_fp != NULL)
        assert_int_equal(json_object_set_new(obj, "idempotencyfp", json_string(ev->idempotency_fp)),
                         0);
    assert_int_equal(json_object_set(obj, "data", ev->data), 0);
    text = json_dumps(obj, JSON_COMPACT);
    assert_non_null(text);
    json_decref(obj);
    return text;
}

static void assert_str_or_null_equal(const char *got, const char *want)
{
    if (want == NULL)
        assert_null(got);
    else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

/* @p ev encodes to the bytes jansson makes of its envelope, and decodes back to it. */
static void check_encoding(const struct es_event *ev)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct es_event back;
    struct sp_buf buf;
    char *want = jansson_encoding(ev);

    sp_buf_init(&buf, 0);
    assert_int_equal(sp_buf_adds(&buf, "prefix"), 0); /* appended after what is there */
    assert_int_equal(es_event_encode(ev, &buf, &eb), 0);
    assert_int_equal(buf.len, strlen("prefix") + strlen(want));
    assert_memory_equal(buf.data, "prefix", strlen("prefix"));
    assert_string_equal(buf.data + strlen("prefix"), want);

    es_event_init(&back);
    assert_int_equal(
        es_event_decode(buf.data + strlen("prefix"), buf.len - strlen("prefix"), &back, &eb), 0);
    assert_string_equal(back.id, ev->id);
    assert_string_equal(back.source, ev->source);
    assert_string_equal(back.type, ev->type);
    assert_int_equal(back.type_id, ev->type_id);
    assert_string_equal(back.subject, ev->subject);
    assert_int_equal(back.time_us, ev->time_us);
    assert_string_equal(back.dataschema, ev->dataschema);
    assert_string_equal(back.stream, ev->stream);
    assert_int_equal(back.stream_version, ev->stream_version);
    assert_str_or_null_equal(back.actor, ev->actor);
    assert_str_or_null_equal(back.correlation_id, ev->correlation_id);
    assert_str_or_null_equal(back.causation_id, ev->causation_id);
    assert_str_or_null_equal(back.idempotency_key, ev->idempotency_key);
    assert_str_or_null_equal(back.idempotency_fp, ev->idempotency_fp);
    assert_true(json_equal(back.data, ev->data));
    assert_null(back.wire);
    es_event_release(&back);
    sp_buf_release(&buf);
    free(want);
}

/* Data whose strings need escaping: quotes, backslash, newline, tab, \x01, non-ASCII. */
static json_t *escaping_data(void)
{
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:[s,s], s:{s:s}, s:i, s:b, s:n, s:f}", "title",
                  "say \"oui\" \\ non", "description", "line 1\nline 2\tcol\x01 end\x1f\b\f\r\x7f/",
                  "name", "crème brûlée 🍮 法式焦糖布丁", "tags", "\"q\"", "a\\b", "nested", "k\"\\",
                  "\n\t", "count", 3, "ok", 1, "none", "ratio", 0.5);

    assert_non_null(data);
    return data;
}

static void test_encode_matches_jansson(void **state)
{
    struct es_event ev;

    (void)state;
    es_event_init(&ev);
    /* actor and correlation id, no causation id, data that needs escaping */
    assert_int_equal(es_event_make(&ev, "RecipeCreated", "recipe-7301234567892", 3, "7301234567890",
                                   "req-1", NULL, escaping_data()),
                     0);
    check_encoding(&ev);
    /* and a causation id set by hand */
    ev.causation_id = strdup("01890a5d-ac96-774b-bcce-b302099a8057");
    assert_non_null(ev.causation_id);
    check_encoding(&ev);
    /* and a command's idempotency key and fingerprint, after the causation id */
    ev.idempotency_key = strdup("u:7301234567890:import-12");
    ev.idempotency_fp = strdup("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    assert_non_null(ev.idempotency_key);
    assert_non_null(ev.idempotency_fp);
    check_encoding(&ev);
    free(ev.idempotency_key);
    free(ev.idempotency_fp);
    ev.idempotency_key = ev.idempotency_fp = NULL;
    /* only the causation id */
    free(ev.actor);
    free(ev.correlation_id);
    ev.actor = NULL;
    ev.correlation_id = NULL;
    check_encoding(&ev);
    es_event_release(&ev);

    /* no actor, no correlation id, empty data, another source */
    assert_int_equal(es_event_make(&ev, "RecipeDeleted", "recipe-73", 1, NULL, NULL,
                                   "/stockpot/replay", json_object()),
                     0);
    check_encoding(&ev);
    es_event_release(&ev);

    /* every sample type */
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        make_sample(&ev, &samples[i], (int64_t)i + 1);
        check_encoding(&ev);
        es_event_release(&ev);
    }

    /* the largest stream version and a time with zero microseconds */
    assert_int_equal(es_event_make(&ev, "RecipeUpdated", "recipe-7301234567892", INT64_MAX, "1",
                                   NULL, NULL, json_pack("{s:s}", "title", "t")),
                     0);
    ev.time_us = 1750000000LL * 1000000;
    check_encoding(&ev);
    es_event_release(&ev);
}

static void test_encode_envelope_escapes_match_jansson(void **state)
{
    /* envelope attributes (as es_event_decode accepts them) that need escaping */
    static const char *const texts[] = {
        "a\"b\\c", "line\nnext\ttab\rcr", "ctl\x01", "crème brûlée 🍮",
        "ctl\x1f", "bs\b ff\f",           "del\x7f", "slash/",
    };
    struct es_event ev;

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        es_event_init(&ev);
        assert_int_equal(es_event_make(&ev, "RecipeDeleted", "recipe-73", 1, texts[i], texts[i],
                                       NULL, json_object()),
                         0);
        ev.causation_id = strdup(texts[i]);
        assert_non_null(ev.causation_id);
        check_encoding(&ev);
        es_event_release(&ev);
    }
}

static void test_encode_rejects_bad_utf8(void **state)
{
    static const char *const bad[] = {"\xff\xfe", "ok\xc3", "\xc0\xaf", "\xed\xa0\x80"};
    struct es_event ev;
    struct sp_buf buf;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int attr = 0; attr < 3; attr++) {
            struct sp_errbuf eb = {{0}, {0}};
            char **slot;

            make_sample(&ev, &samples[4], 1);
            slot = attr == 0 ? &ev.actor : attr == 1 ? &ev.correlation_id : &ev.causation_id;
            free(*slot);
            *slot = strdup(bad[i]);
            assert_non_null(*slot);
            sp_buf_init(&buf, 0);
            assert_int_equal(sp_buf_adds(&buf, "x"), 0);
            assert_int_equal(es_event_encode(&ev, &buf, &eb), SP_EINVAL);
            assert_int_equal(buf.len, 1); /* unchanged */
            assert_string_equal(buf.data, "x");
            assert_string_equal(eb.field, attr == 0   ? "actor"
                                          : attr == 1 ? "correlationid"
                                                      : "causationid");
            assert_non_null(strstr(eb.msg, "UTF-8"));
            /* nor can it be sealed */
            assert_int_equal(es_event_seal(&ev, 0, &eb), SP_EINVAL);
            assert_null(ev.wire);
            assert_int_equal(ev.wire_len, 0);
            es_event_release(&ev);
            sp_buf_release(&buf);
        }
    }
    /* a required attribute too, into an empty buffer */
    make_sample(&ev, &samples[0], 1);
    free(ev.source);
    ev.source = strdup("/stockpot/\xff");
    assert_non_null(ev.source);
    sp_buf_init(&buf, 0);
    assert_int_equal(es_event_encode(&ev, &buf, NULL), SP_EINVAL);
    assert_int_equal(buf.len, 0);
    es_event_release(&ev);
    sp_buf_release(&buf);
}

static void test_seal(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct es_event ev;
    struct sp_buf plain, sealed;
    char *want;

    (void)state;
    es_event_init(&ev);
    assert_int_equal(es_event_make(&ev, "RecipeCreated", "recipe-7301234567892", 2, "7301234567890",
                                   "req-9", NULL, escaping_data()),
                     0);
    ev.causation_id = strdup("01890a5d-ac96-774b-bcce-b302099a8057");
    assert_non_null(ev.causation_id);
    sp_buf_init(&plain, 0);
    assert_int_equal(es_event_encode(&ev, &plain, &eb), 0);
    assert_null(ev.wire);

    assert_int_equal(es_event_seal(&ev, 0, NULL), 0);
    assert_non_null(ev.wire);
    assert_int_equal(ev.wire_len, plain.len);
    assert_memory_equal(ev.wire, plain.data, plain.len);
    want = jansson_encoding(&ev);
    assert_int_equal(ev.wire_len, strlen(want));
    assert_memory_equal(ev.wire, want, ev.wire_len);
    free(want);

    /* encode copies the sealed bytes, appended to what the buffer holds, twice */
    sp_buf_init(&sealed, 0);
    assert_int_equal(es_event_encode(&ev, &sealed, &eb), 0);
    assert_int_equal(sealed.len, plain.len);
    assert_memory_equal(sealed.data, plain.data, plain.len);
    assert_int_equal(es_event_encode(&ev, &sealed, &eb), 0);
    assert_int_equal(sealed.len, 2 * plain.len);
    assert_memory_equal(sealed.data + plain.len, plain.data, plain.len);
    assert_int_equal(sealed.data[sealed.len], '\0');
    sp_buf_release(&sealed);

    /* a sealed event still obeys the output buffer's cap, leaving it unchanged */
    sp_buf_init(&sealed, plain.len);
    assert_int_equal(sp_buf_adds(&sealed, "x"), 0);
    assert_int_equal(es_event_encode(&ev, &sealed, &eb), SP_ETOOBIG);
    assert_int_equal(sealed.len, 1);
    assert_string_equal(sealed.data, "x");
    sp_buf_release(&sealed);

    /* sealing again (with exactly enough room) keeps the same bytes */
    assert_int_equal(es_event_seal(&ev, plain.len, &eb), 0);
    assert_non_null(ev.wire);
    assert_int_equal(ev.wire_len, plain.len);
    assert_memory_equal(ev.wire, plain.data, plain.len);

    /* encode copies ev->wire instead of encoding again: a change made after sealing (which
     * the contract forbids) does not show */
    ev.stream_version = 99;
    sp_buf_init(&sealed, 0);
    assert_int_equal(es_event_encode(&ev, &sealed, &eb), 0);
    assert_int_equal(sealed.len, plain.len);
    assert_memory_equal(sealed.data, plain.data, plain.len);
    sp_buf_release(&sealed);

    /* release frees the bytes (ASan would report a leak) and resets the event */
    es_event_release(&ev);
    assert_null(ev.wire);
    assert_int_equal(ev.wire_len, 0);
    sp_buf_release(&plain);
}

static void test_seal_too_big(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct es_event ev;
    struct sp_buf buf;

    (void)state;
    make_sample(&ev, &samples[4], 1);
    sp_buf_init(&buf, 0);
    assert_int_equal(es_event_encode(&ev, &buf, NULL), 0);
    assert_int_equal(es_event_seal(&ev, buf.len - 1, &eb), SP_ETOOBIG);
    assert_null(ev.wire);
    assert_int_equal(ev.wire_len, 0);
    assert_true(strlen(eb.msg) > 0);
    assert_int_equal(es_event_seal(&ev, 10, &eb), SP_ETOOBIG);
    assert_null(ev.wire);
    /* a failed seal drops the bytes of an earlier one */
    assert_int_equal(es_event_seal(&ev, 0, &eb), 0);
    assert_non_null(ev.wire);
    assert_int_equal(es_event_seal(&ev, buf.len - 1, &eb), SP_ETOOBIG);
    assert_null(ev.wire);
    assert_int_equal(ev.wire_len, 0);
    /* and the event still encodes in full */
    sp_buf_reset(&buf);
    assert_int_equal(es_event_encode(&ev, &buf, NULL), 0);
    assert_true(buf.len > 10);
    es_event_release(&ev);
    sp_buf_release(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_all_types),
        cmocka_unit_test(test_encode_key_order_and_utf8),
        cmocka_unit_test(test_encode_too_big),
        cmocka_unit_test(test_make_rejects),
        cmocka_unit_test(test_decode_rejects_missing),
        cmocka_unit_test(test_decode_rejects_bad_values),
        cmocka_unit_test(test_decode_not_json),
        cmocka_unit_test(test_decode_optional_null_and_unknown),
        cmocka_unit_test(test_position_tokens),
        cmocka_unit_test(test_encode_matches_jansson),
        cmocka_unit_test(test_encode_envelope_escapes_match_jansson),
        cmocka_unit_test(test_encode_rejects_bad_utf8),
        cmocka_unit_test(test_seal),
        cmocka_unit_test(test_seal_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
