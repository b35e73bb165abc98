/*
 * The PostgreSQL projection "pg": users and recipes (with tags) of schema stockpot, folded
 * from the v1 events of schemas/events/README.md. Secrets (email, password hash) are
 * never written.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/id.h"
#include "proj/pg.h"
#include "proj/projection.h"
#include "sp/alloc.h"
#include "sp/time.h"

#include "sp/banned.h"

enum field_kind {
    F_ID,           /* decimal id string */
    F_ID_OR_NULL,   /* decimal id string or null */
    F_TEXT,         /* string */
    F_TEXT_OR_NULL, /* string or null */
    F_TEXT_ARRAY,   /* array of strings */
    F_ID_ARRAY,     /* array of decimal id strings */
};

struct field_spec {
    const char *name;
    enum field_kind kind;
    bool required;
};

static const struct field_spec user_registered_fields[] = {
    {"user_id", F_ID, true},
    {"username", F_TEXT, true},
};

static const struct field_spec profile_updated_fields[] = {
    {"full_name", F_TEXT_OR_NULL, false},
    {"bio", F_TEXT_OR_NULL, false},
    {"avatar_media_id", F_ID_OR_NULL, false},
};

static const struct field_spec recipe_created_fields[] = {
    {"recipe_id", F_ID, false},
    {"author_id", F_ID, true},
    {"title", F_TEXT, true},
    {"description", F_TEXT_OR_NULL, false},
    {"ingredients", F_TEXT_ARRAY, true},
    {"steps", F_TEXT_ARRAY, true},
    {"tags", F_TEXT_ARRAY, false},
    {"image_media_ids", F_ID_ARRAY, false},
};

static const struct field_spec recipe_updated_fields[] = {
    {"title", F_TEXT, false},
    {"description", F_TEXT_OR_NULL, false},
    {"ingredients", F_TEXT_ARRAY, false},
    {"steps", F_TEXT_ARRAY, false},
    {"tags", F_TEXT_ARRAY, false},
    {"image_media_ids", F_ID_ARRAY, false},
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static bool text_ok(const json_t *v)
{
    /* PostgreSQL text cannot hold NUL: reject "\u0000" here with a clear error. */
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static bool id_ok(const json_t *v)
{
    int64_t id;
    return json_is_string(v) && es_id_parse(json_string_value(v), &id) == 0;
}

static bool array_ok(const json_t *v, bool ids)
{
    size_t i;
    json_t *e;

    if (!json_is_array(v))
        return false;
    json_array_foreach(v, i, e) {
        if (ids ? !id_ok(e) : !text_ok(e))
            return false;
    }
    return true;
}

static bool field_ok(const json_t *v, enum field_kind kind)
{
    switch (kind) {
    case F_ID:
        return id_ok(v);
    case F_ID_OR_NULL:
        return json_is_null(v) || id_ok(v);
    case F_TEXT:
        return text_ok(v);
    case F_TEXT_OR_NULL:
        return json_is_null(v) || text_ok(v);
    case F_TEXT_ARRAY:
        return array_ok(v, false);
    case F_ID_ARRAY:
        return array_ok(v, true);
    }
    return false;
}

static const char *kind_name(enum field_kind kind)
{
    static const char *const names[] = {
        "an id string",     "an id string or null", "a string",
        "a string or null", "an array of strings",  "an array of id strings"};
    return names[kind];
}

static int
fields_check(const json_t *data, const struct field_spec *specs, size_t n, struct sp_errbuf *eb)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(data, specs[i].name);
        if (v == NULL) {
            if (specs[i].required)
                return sp_err_set(eb, SP_ESCHEMA, specs[i].name, "missing field \"%s\"",
                                  specs[i].name);
            continue;
        }
        if (!field_ok(v, specs[i].kind))
            return sp_err_set(eb, SP_ESCHEMA, specs[i].name, "field \"%s\" must be %s",
                              specs[i].name, kind_name(specs[i].kind));
    }
    return 0;
}

/* The entity id of stream "<category>-<id>", checked against the category. */
static int stream_id(const struct es_event *ev,
                     const char *category,
                     char *out,
                     size_t out_size,
                     struct sp_errbuf *eb)
{
    size_t n = strlen(category);
    int64_t id;

    if (ev->stream == NULL || strncmp(ev->stream, category, n) != 0 || ev->stream[n] != '-' ||
        es_id_parse(ev->stream + n + 1, &id) != 0)
        return sp_err_set(eb, SP_ESCHEMA, "stream", "stream \"%s\" is not \"%s-<id>\"",
                          ev->stream ? ev->stream : "", category);
    snprintf(out, out_size, "%lld", (long long)id);
    return 0;
}

/* Whether data.<key> (if present) names the same entity as the stream. */
static int id_matches(const json_t *data, const char *key, const char *id, struct sp_errbuf *eb)
{
    const json_t *v = json_object_get(data, key);
    if (v != NULL && strcmp(json_string_value(v), id) != 0)
        return sp_err_set(eb, SP_ESCHEMA, key, "field \"%s\" does not match the stream", key);
    return 0;
}

/* JSON text of data.<key>, or "[]" when absent. Owned: free(). */
static char *array_text(const json_t *data, const char *key)
{
    const json_t *v = json_object_get(data, key);
    char *s = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
    return s != NULL ? s : sp_xstrdup("[]");
}

static const char *opt_text(const json_t *data, const char *key)
{
    const char *s = json_string_value(json_object_get(data, key));
    return s != NULL ? s : "";
}

static int user_registered(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char at[32], version[32], sid[32];
    const char *id = json_string_value(json_object_get(ev->data, "user_id"));
    int rc = fields_check(ev->data, user_registered_fields, NFIELDS(user_registered_fields), eb);

    if (rc != 0)
        return rc;
    if ((rc = stream_id(ev, "user", sid, sizeof(sid), eb)) != 0 ||
        (rc = id_matches(ev->data, "user_id", sid, eb)) != 0)
        return rc;
    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    snprintf(version, sizeof(version), "%lld", (long long)ev->stream_version);
    const char *params[] = {id, json_string_value(json_object_get(ev->data, "username")), at,
                            version};
    return proj_pg_exec(conn,
                        "INSERT INTO stockpot.users (id, username, created_at, updated_at, "
                        "version) VALUES ($1, $2, $3, $3, $4)",
                        4, params, NULL, eb);
}

static int expect_one_row(PGconn *conn,
                          const char *sql,
                          int n,
                          const char *const *params,
                          const char *what,
                          struct sp_errbuf *eb)
{
    PGresult *res;
    int rc = proj_pg_exec(conn, sql, n, params, &res, eb);
    if (rc != 0)
        return rc;
    if (strcmp(PQcmdTuples(res), "0") == 0)
        rc = sp_err_set(eb, SP_ENOTFOUND, NULL, "%s %s not found", what, params[0]);
    PQclear(res);
    return rc;
}

static int profile_updated(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char at[32], version[32], id[32];
    char *data;
    int rc = fields_check(ev->data, profile_updated_fields, NFIELDS(profile_updated_fields), eb);

    if (rc != 0 || (rc = stream_id(ev, "user", id, sizeof(id), eb)) != 0)
        return rc;
    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    snprintf(version, sizeof(version), "%lld", (long long)ev->stream_version);
    data = json_dumps(ev->data, JSON_COMPACT);
    const char *params[] = {id, data, at, version};
    rc =
        expect_one_row(conn,
                       "UPDATE stockpot.users SET "
                       "full_name = CASE WHEN $2::jsonb ? 'full_name' THEN $2::jsonb->>'full_name' "
                       "ELSE full_name END, "
                       "bio = CASE WHEN $2::jsonb ? 'bio' THEN $2::jsonb->>'bio' ELSE bio END, "
                       "avatar_media_id = CASE WHEN $2::jsonb ? 'avatar_media_id' "
                       "THEN ($2::jsonb->>'avatar_media_id')::bigint ELSE avatar_media_id END, "
                       "updated_at = $3, version = $4 WHERE id = $1",
                       4, params, "user", eb);
    free(data);
    return rc;
}

static int tags_insert(PGconn *conn, const char *id, const char *tags, struct sp_errbuf *eb)
{
    const char *params[] = {id, tags};
    return proj_pg_exec(conn,
                        "INSERT INTO stockpot.recipe_tags (tag, recipe_id) "
                        "SELECT DISTINCT e, $1::bigint FROM jsonb_array_elements_text($2::jsonb) "
                        "AS x(e) ON CONFLICT DO NOTHING",
                        2, params, NULL, eb);
}

/* Text array of a JSON array without duplicates, each value at its first occurrence (tags). */
#define SQL_TEXT_SET(p)                                                                            \
    "ARRAY(SELECT e FROM jsonb_array_elements_text(" p ") WITH ORDINALITY AS x(e, n) "             \
    "GROUP BY e ORDER BY min(n))"
#define SQL_ID_ARRAY(p)                                                                            \
    "ARRAY(SELECT e::bigint FROM jsonb_array_elements_text(" p                                     \
    ") WITH ORDINALITY AS x(e, n) ORDER BY n)"

static int
recipe_insert(PGconn *conn, const struct es_event *ev, const char *id, struct sp_errbuf *eb)
{
    char at[32], version[32];
    const json_t *d = ev->data;
    char *ingredients = array_text(d, "ingredients"), *steps = array_text(d, "steps");
    char *tags = array_text(d, "tags"), *images = array_text(d, "image_media_ids");
    int rc;

    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    snprintf(version, sizeof(version), "%lld", (long long)ev->stream_version);
    const char *params[] = {id,
                            json_string_value(json_object_get(d, "author_id")),
                            json_string_value(json_object_get(d, "title")),
                            opt_text(d, "description"),
                            ingredients,
                            steps,
                            tags,
                            images,
                            at,
                            version};
    rc = proj_pg_exec(conn,
                      "INSERT INTO stockpot.recipes (id, author_id, title, description, "
                      "ingredients, steps, tags, image_media_ids, created_at, updated_at, "
                      "version) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, " SQL_TEXT_SET(
                          "$7::jsonb") ", " SQL_ID_ARRAY("$8::jsonb") ", $9, $9, $10)",
                      10, params, NULL, eb);
    if (rc == 0)
        rc = tags_insert(conn, id, tags, eb);
    free(ingredients);
    free(steps);
    free(tags);
    free(images);
    return rc;
}

static int recipe_created(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char id[32];
    int rc = fields_check(ev->data, recipe_created_fields, NFIELDS(recipe_created_fields), eb);

    if (rc != 0 || (rc = stream_id(ev, "recipe", id, sizeof(id), eb)) != 0 ||
        (rc = id_matches(ev->data, "recipe_id", id, eb)) != 0)
        return rc;
    return recipe_insert(conn, ev, id, eb);
}

static int recipe_updated(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char at[32], version[32], id[32];
    char *data;
    int rc = fields_check(ev->data, recipe_updated_fields, NFIELDS(recipe_updated_fields), eb);

    if (rc != 0 || (rc = stream_id(ev, "recipe", id, sizeof(id), eb)) != 0)
        return rc;
    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    snprintf(version, sizeof(version), "%lld", (long long)ev->stream_version);
    data = json_dumps(ev->data, JSON_COMPACT);
    const char *params[] = {id, data, at, version};
    rc = expect_one_row(
        conn,
        "UPDATE stockpot.recipes SET "
        "title = CASE WHEN $2::jsonb ? 'title' THEN $2::jsonb->>'title' ELSE title END, "
        "description = CASE WHEN $2::jsonb ? 'description' "
        "THEN coalesce($2::jsonb->>'description', '') ELSE description END, "
        "ingredients = CASE WHEN $2::jsonb ? 'ingredients' THEN $2::jsonb->'ingredients' "
        "ELSE ingredients END, "
        "steps = CASE WHEN $2::jsonb ? 'steps' THEN $2::jsonb->'steps' ELSE steps END, "
        "tags = CASE WHEN $2::jsonb ? 'tags' THEN " SQL_TEXT_SET(
            "$2::jsonb->'tags'") " ELSE tags END, "
                                 "image_media_ids = CASE WHEN $2::jsonb ? 'image_media_ids' "
                                 "THEN " SQL_ID_ARRAY(
                                     "$2::jsonb->'image_media_ids'") " ELSE image_media_ids END, "
                                                                     "updated_at = $3, version = "
                                                                     "$4 WHERE id = $1",
        4, params, "recipe", eb);
    if (rc == 0 && json_object_get(ev->data, "tags") != NULL) {
        const char *del[] = {id};
        char *tags = array_text(ev->data, "tags");
        rc = proj_pg_exec(conn, "DELETE FROM stockpot.recipe_tags WHERE recipe_id = $1", 1, del,
                          NULL, eb);
        if (rc == 0)
            rc = tags_insert(conn, id, tags, eb);
        free(tags);
    }
    free(data);
    return rc;
}

static int recipe_deleted(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char id[32];
    const char *params[] = {id};
    int rc = stream_id(ev, "recipe", id, sizeof(id), eb);

    if (rc == 0)
        rc = proj_pg_exec(conn, "DELETE FROM stockpot.recipe_tags WHERE recipe_id = $1", 1, params,
                          NULL, eb);
    if (rc == 0)
        rc = proj_pg_exec(conn, "DELETE FROM stockpot.recipes WHERE id = $1", 1, params, NULL, eb);
    return rc;
}

static const struct {
    const char *type;
    proj_apply_fn fn;
} pg_handlers[] = {
    {"UserRegistered", user_registered}, {"ProfileUpdated", profile_updated},
    {"RecipeCreated", recipe_created},   {"RecipeUpdated", recipe_updated},
    {"RecipeDeleted", recipe_deleted},
};

static int pg_apply(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    for (size_t i = 0; i < NFIELDS(pg_handlers); i++) {
        if (strcmp(ev->type, pg_handlers[i].type) == 0)
            return pg_handlers[i].fn(conn, ev, eb);
    }
    return sp_err_set(eb, SP_ESCHEMA, "type", "unknown event type \"%s\"", ev->type);
}

static const char *const pg_handles[] = {"UserRegistered", "ProfileUpdated", "RecipeCreated",
                                         "RecipeUpdated",  "RecipeDeleted",  NULL};

/* v1 catalogue types (DESIGN.md) this view does not fold yet: they only advance it. */
static const char *const pg_ignores[] = {"SessionStarted",
                                         "SessionRefreshed",
                                         "SessionRevoked",
                                         "PasswordChanged",
                                         "UserFollowed",
                                         "UserUnfollowed",
                                         "RecipeCommented",
                                         "CommentDeleted",
                                         "RecipeLiked",
                                         "RecipeUnliked",
                                         "ConversationCreated",
                                         "MemberAdded",
                                         "MemberRemoved",
                                         "MessageSent",
                                         "MediaUploaded",
                                         "MediaDeleted",
                                         "NotificationsRead",
                                         "DeviceSubscribed",
                                         NULL};

static const struct proj_table pg_tables[] = {
    {"stockpot.users", "id"},
    {"stockpot.recipes", "id"},
    {"stockpot.recipe_tags", "tag, recipe_id"},
};

static const struct proj_projection pg_projection = {
    .name = "pg",
    .handles = pg_handles,
    .ignores = pg_ignores,
    .store = PROJ_STORE_PG,
    .migrations = ".",
    .tables = pg_tables,
    .n_tables = NFIELDS(pg_tables),
    .apply = pg_apply,
};

const struct proj_projection *proj_pg_projection(void)
{
    return &pg_projection;
}
