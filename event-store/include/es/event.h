/*
 * The event envelope: a CloudEvents 1.0 JSON object in structured mode
 * (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md)
 * with the extensions stream, streamversion, actor, correlationid and causationid
 * (DESIGN.md, "Envelope"), encoded and decoded with jansson.
 */
#ifndef ES_EVENT_H
#define ES_EVENT_H

#include <stdint.h>

#include <jansson.h>

#include "sp/buf.h"
#include "sp/err.h"
#include "es/event_types.h" /* generated from schemas/events: enum es_type */
#include "es/id.h"

#define ES_SOURCE_COMMAND_API "/stockpot/command-api"

/** A log position: Kafka's (partition, offset); the embedded log is partition 0. */
struct es_position {
    int32_t partition;
    int64_t offset; /* 0-based; -1 = none */
};

/**
 * One event. Strings are owned by the event (freed by es_event_release) unless noted;
 * optional attributes are NULL when absent.
 */
struct es_event {
    char id[ES_UUID_STR_LEN + 1]; /* UUIDv7 */
    char *source;                 /* e.g. "/stockpot/command-api" */
    char *type;                   /* catalogue name, e.g. "RecipeCreated" */
    enum es_type type_id;         /* the catalogue's type (es/catalogue.h) of @type, set by
                                   * es_event_make and es_event_decode; ES_TYPE_UNKNOWN if
                                   * the catalogue has no such type */
    char *subject;                /* aggregate, e.g. "recipe/7301234567890" */
    int64_t time_us;              /* µs since the epoch; RFC 3339 UTC µs on the wire */
    char *dataschema;             /* "schemas/events/<type>.v<N>.json" */
    char *stream;                 /* "<category>-<id>", e.g. "recipe-7301234567890" */
    int64_t stream_version;       /* 1-based version of the stream after this event */
    char *actor;                  /* user id or NULL */
    char *correlation_id;         /* request id or NULL */
    char *causation_id;           /* causing event id or NULL */
    /*
     * Extensions "idempotencykey" and "idempotencyfp": the command's scoped
     * Idempotency-Key record key and "<key id>:<hex HMAC-SHA256 fingerprint>" of its
     * request, on
     * every event of a command sent with an Idempotency-Key, so the command API can
     * rebuild the idempotency answer from the log (command-api/src/wm.h); NULL otherwise.
     */
    char *idempotency_key;
    char *idempotency_fp;
    json_t *data; /* payload object; one owned reference */
    /*
     * The payload as compact JSON text (NUL-terminated, data_json_len bytes), owned: kept
     * by es_event_decode_ex with ES_DECODE_DATA_JSON for a reader that passes the payload
     * on as text (the PostgreSQL projection sends it as a query parameter) so it need not
     * encode @data again; NULL otherwise. It is the text of @data as decoded: code that
     * changes @data must free it and set it to NULL.
     */
    char *data_json;
    size_t data_json_len;
    struct es_position pos; /* set when read from a log; {-1,-1} otherwise */
    char *wire;             /* owned encoding kept by es_event_seal, or NULL */
    size_t wire_len;        /* its length, bytes */
};

/** Initialise an empty event (all NULL, pos = {-1,-1}). */
void es_event_init(struct es_event *ev);

/** Free everything the event owns and re-initialise it. */
void es_event_release(struct es_event *ev);

/**
 * Fill a new event: fresh UUIDv7 id, time = now, source = @p source (NULL =
 * ES_SOURCE_COMMAND_API), dataschema = "schemas/events/<type>.v1.json", subject =
 * "<category>/<id>" derived from @p stream ("recipe-73" -> "recipe/73").
 * Strings are copied; @p data is stolen (even on error). @p actor and
 * @p correlation_id may be NULL. @p ev must be initialised.
 * @return 0; SP_EINVAL if stream is not "<category>-<id>" (see es_event_decode), type is
 *         not [A-Za-z0-9_]+, version < 1 or @p data is not an object; -errno from the
 *         random source.
 */
SP_MUST_CHECK int es_event_make(struct es_event *ev,
                                const char *type,
                                const char *stream,
                                int64_t stream_version,
                                const char *actor,
                                const char *correlation_id,
                                const char *source,
                                json_t *data);

/**
 * Encode as compact CloudEvents JSON appended to @p out, keys in this order: specversion,
 * id, source, type, subject, time, datacontenttype, dataschema, stream, streamversion,
 * actor, correlationid, causationid, idempotencykey, idempotencyfp (the last five only
 * when set), data. Text is UTF-8,
 * not \u-escaped. On error @p out is unchanged.
 * @return 0; SP_EINVAL if a required attribute is missing; SP_ETOOBIG from @p out's cap.
 */
SP_MUST_CHECK int
es_event_encode(const struct es_event *ev, struct sp_buf *out, struct sp_errbuf *eb);

/**
 * Encode @p ev once (es_event_encode) and keep the bytes in ev->wire, so every later
 * es_event_encode of it (a log's append) copies them instead of encoding again. For an
 * event that is complete: nothing of it may change after (es_event_release drops the
 * bytes with the rest). @p max_bytes caps the encoding (0 = no cap).
 * @return 0; the errors of es_event_encode (SP_EINVAL, SP_ETOOBIG), ev->wire then NULL.
 */
SP_MUST_CHECK int es_event_seal(struct es_event *ev, size_t max_bytes, struct sp_errbuf *eb);

/**
 * Decode @p len bytes of CloudEvents JSON into @p ev (initialised; its old contents are
 * released first). Checks specversion "1.0", every required attribute and its type, a
 * UUID id, an RFC 3339 time, datacontenttype "application/json", streamversion ≥ 1 and
 * an object `data`; type is [A-Za-z0-9_]+, stream "<category>-<id>" with category
 * [a-z0-9_]+ and id [A-Za-z0-9_-]+. Optional attributes (actor, correlationid,
 * causationid) may be absent or null; unknown extension attributes are ignored;
 * data_base64 is rejected. Does not check the payload against its schema.
 * On error @p ev is left initialised (empty).
 * @return 0; SP_ECORRUPT if not JSON (or a duplicate key); SP_ESCHEMA naming the bad
 *         attribute in eb->field.
 */
SP_MUST_CHECK int
es_event_decode(const void *json, size_t len, struct es_event *ev, struct sp_errbuf *eb);

/** es_event_decode_ex flag: keep the payload's text in ev->data_json. */
#define ES_DECODE_DATA_JSON 1u

/**
 * es_event_decode with @p flags: ES_DECODE_DATA_JSON also keeps the payload as compact
 * JSON text in ev->data_json (see struct es_event; made by the same parse, about a tenth
 * of what building ev->data costs). 0 is es_event_decode.
 * @return es_event_decode's.
 */
SP_MUST_CHECK int es_event_decode_ex(
    const void *json, size_t len, unsigned flags, struct es_event *ev, struct sp_errbuf *eb);

/** Format a position as the opaque consistency token "<partition>:<offset>". @p out ≥ 32 bytes. */
void es_position_format(struct es_position pos, char *out, size_t out_size);

/** Parse a consistency token. @return 0 or SP_EINVAL. */
int es_position_parse(const char *token, struct es_position *out);

#endif
