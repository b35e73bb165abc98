/*
 * The event catalogue: every event type's name, version, stream and payload fields, in one
 * place. The tables are generated at build time from the JSON Schemas (2020-12) in
 * schemas/events/<Type>.v<N>.json by schemas/events/gen-catalogue.py, so adding a field or
 * a type is one change to a schema, and the command side (which checks every event it
 * appends), every projection (which checks every event it folds), the replay tools and the
 * tests all read the same definitions. The generator accepts only the keywords checked
 * here, so a schema never promises more than the code enforces:
 *
 *   type (string, null, array, integer, boolean; an object only at the top),
 *   minLength / maxLength (Unicode code points, as JSON Schema counts them), pattern
 *   (ECMA-262 translated to a POSIX extended regular expression, matched on the UTF-8
 *   bytes; `\s` is ASCII white space there), enum (strings), items, minItems / maxItems,
 *   required, additionalProperties (always false), minProperties / maxProperties,
 *   $ref to the schema's own $defs, anyOf of single-type branches, format date-time
 *   (an annotation: a pattern must say the shape).
 *
 * Two Stockpot annotations tie a payload to its envelope: x-stockpot-stream (the stream
 * category, "recipe" for stream recipe-<id>) and x-stockpot-stream-id (the payload field
 * that must equal the stream's id).
 *
 * One rule is stricter than the schemas: no string may contain U+0000 (PostgreSQL text
 * cannot hold it, and the command side never writes it).
 */
#ifndef ES_CATALOGUE_H
#define ES_CATALOGUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "es/event.h"
#include "es/event_types.h" /* generated: ES_EVENT_TYPE_LIST, enum es_type */
#include "sp/err.h"

/** JSON types a schema node allows (bit set). */
enum es_json_type {
    ES_JSON_STRING = 1 << 0,
    ES_JSON_NULL = 1 << 1,
    ES_JSON_ARRAY = 1 << 2,
    ES_JSON_INTEGER = 1 << 3,
    ES_JSON_BOOLEAN = 1 << 4,
};

/** A compiled (sub)schema of one payload value; -1 = keyword absent. */
struct es_schema_node {
    unsigned types;                     /* enum es_json_type bits */
    int32_t min_length, max_length;     /* strings, code points */
    const char *pattern;                /* POSIX ERE, or NULL */
    const char *const *enum_values;     /* NULL-terminated allowed strings, or NULL */
    int32_t min_items, max_items;       /* arrays */
    const struct es_schema_node *items; /* every array element, or NULL */
};

/** One payload field (a property of the schema). */
struct es_field {
    const char *name;
    const struct es_schema_node *schema;
    bool required;
};

/** One event type of the catalogue. */
struct es_event_type {
    enum es_type type;
    const char *name;              /* e.g. "RecipeCreated" */
    int version;                   /* the schema's version, N of <Type>.v<N>.json */
    const char *dataschema;        /* "schemas/events/<Type>.v<N>.json" */
    const char *stream_category;   /* e.g. "recipe" */
    const char *stream_id_field;   /* payload field equal to the stream id, or NULL */
    const struct es_field *fields; /* n_fields, in the schema's order */
    size_t n_fields;
    int32_t min_properties, max_properties; /* -1 = none */
};

/** The generated table, indexed by enum es_type ([ES_TYPE_UNKNOWN] = NULL). Use
 *  es_catalogue_get. */
extern const struct es_event_type *const es__catalogue[ES_TYPE__COUNT];

/** The type named @p name; ES_TYPE_UNKNOWN if the catalogue has none (or NULL). */
enum es_type es_type_of(const char *name);

/** The catalogue entry of @p type. @return borrowed, static; NULL for ES_TYPE_UNKNOWN or
 *  a value out of range. */
const struct es_event_type *es_catalogue_get(enum es_type type);

/** The name of @p type, e.g. "RecipeCreated". @return borrowed, static; NULL if unknown. */
const char *es_type_name(enum es_type type);

/** The field @p name of @p t. @return borrowed, static; NULL if @p t has no such field. */
const struct es_field *es_event_type_field(const struct es_event_type *t, const char *name);

/**
 * Check one value against a schema node: its JSON type, and for a string its length in
 * code points, pattern and enum, for an array its item count and every item.
 * @param path  the value's field name for messages, e.g. "title"
 * @return 0; SP_ESCHEMA with eb->field = @p path (or "<path>/<i>" for an array element)
 *         and eb->msg saying what is wrong, without the field name ("must be 1 to 200
 *         characters long (is 0)").
 */
SP_MUST_CHECK int es_value_check(const struct es_schema_node *node,
                                 const json_t *v,
                                 const char *path,
                                 struct sp_errbuf *eb);

/**
 * Check a payload against its type's schema: an object; every required field present;
 * no other field; each field of its type, length, pattern, enum and items; the property
 * count within min/maxProperties.
 * @return 0; SP_ESCHEMA with eb->field naming the field ("ingredients/3" for an element;
 *         "data" for the object itself) and eb->msg saying what is wrong.
 */
SP_MUST_CHECK int es_data_check(const struct es_event_type *t, json_t *data, struct sp_errbuf *eb);

/**
 * Check an event against the catalogue: a known type; dataschema the type's; stream
 * "<stream_category>-<id>" with a valid id (es/id.h); stream_id_field, when the payload has
 * it, equal to that id; and the payload (es_data_check).
 * @param[out] type  the event's type (may be NULL); ES_TYPE_UNKNOWN when unknown
 * @return 0; SP_ESCHEMA naming the attribute ("type", "dataschema", "stream") or the
 *         payload field in eb->field.
 */
SP_MUST_CHECK int
es_event_check(const struct es_event *ev, enum es_type *type, struct sp_errbuf *eb);

/**
 * The stream id of @p ev as a number, after es_event_check passed (the stream is
 * "<category>-<id>"). @return the id; 0 if the stream has no valid id.
 */
int64_t es_event_stream_id(const struct es_event *ev);

#endif
