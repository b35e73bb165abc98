/*
 * Set-wise folding of the "pg" projection: a batch of events in a few statements per event
 * type instead of one to three statements (and round trips) per event.
 *
 * Two events that touch different row keys (a user, a recipe, a follow pair, a like pair, a
 * comment) commute: every table of the view is a function of its rows' own streams (the
 * counters' deltas are summed at the batch's end, users.version takes the greatest noted, the
 * feed is computed by each statement from the current rows of the other table:
 * pg_internal.h), which is what already makes a rebuild on a partitioned log equal the
 * live view whatever the interleaving of partitions. So only the order of the events of
 * one key matters: the k-th event of a key in the batch goes to round k, and the rounds
 * fold in order, each as one statement per event type present (a fixed order of types),
 * which takes the round's events of that type as one JSON array parameter. A like, its
 * unlike and a like again fold in three rounds; likes of different pairs in one statement.
 * Sessions and read marks have no key: their statements fold several events of one row
 * themselves (the last refresh, the greatest read mark; a session starts first in its
 * stream and its revocation sets another column).
 *
 * Chat events go by room instead (room_round): a room's run of messages, or of read marks,
 * shares a round; its other events each take a round of their own.
 *
 * The statements are those of the per-event folds (pg_projection.c, pg_social.c) applied
 * to sets of rows; the chat types have only their set statement (pg_chat.c), which their
 * per-event folds run on a set of one (proj__pg_fold_one). The tests fold the same logs
 * both ways and compare checksums.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "es/catalogue.h"
#include "pg_internal.h"
#include "proj/pg.h"
#include "proj/projection.h"
#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/pg_channels.h"
#include "sp/time.h"
#include "view_codec.h"

#include "sp/banned.h"

#define SQL_NOTIFY_ONCE(rel)                                                                       \
    "SELECT pg_notify('" SP_PG_CHANNEL_NOTIFICATIONS "', '') FROM (SELECT 1 FROM " rel             \
    " LIMIT 1) AS once"
#define SQL_NOTIFICATIONS_INSERT                                                                   \
    "INSERT INTO notifications (id, user_id, kind, actor_id, recipe_id, comment_id, "              \
    "partition, \"offset\", created_at) "

/* clang-format off */
static const char sql_user_registered[] =
    "WITH " SQL_ROWS ", f AS (" SQL_FORGET_DELTAS("USING ev WHERE x.id = ev.id", SQL_USER_COLS) ") "
    "INSERT INTO users (id, username, created_at, updated_at, "
    "version, follower_count, following_count, recipe_count) "
    "SELECT ev.id, ev.d->>'username', ev.at, ev.at, ev.v, " SQL_USER_COUNTS_OF("ev.id") " FROM ev";

/* a count of the rows updated: fewer than the events means a user the view does not hold */
static const char sql_profile_updated[] =
    "WITH " SQL_ROWS ", upd AS (UPDATE users u SET "
    "full_name = CASE WHEN ev.d ? 'full_name' THEN ev.d->>'full_name' ELSE u.full_name END, "
    "bio = CASE WHEN ev.d ? 'bio' THEN ev.d->>'bio' ELSE u.bio END, "
    "avatar_media_id = CASE WHEN ev.d ? 'avatar_media_id' "
    "THEN (ev.d->>'avatar_media_id')::bigint ELSE u.avatar_media_id END, "
    "updated_at = ev.at, version = ev.v FROM ev WHERE u.id = ev.id RETURNING 1) "
    "SELECT count(*) FROM upd";

#define SQL_RECIPE_CREATED_WITH                                                                    \
    "WITH " SQL_ROWS ", r AS (INSERT INTO recipes (id, author_id, title, description, "            \
    "ingredients, steps, tags, image_media_ids, created_at, updated_at, version, like_count, "     \
    "comment_count) SELECT ev.id, " SQL_ID("author_id") ", ev.d->>'title', "                       \
    "coalesce(ev.d->>'description', ''), coalesce(ev.d->'ingredients', '[]'), "                    \
    "coalesce(ev.d->'steps', '[]'), " SQL_TEXT_SET("coalesce(ev.d->'tags', '[]')") ", "            \
    SQL_ID_ARRAY("coalesce(ev.d->'image_media_ids', '[]')") ", ev.at, ev.at, ev.v, "               \
    SQL_RECIPE_COUNTS_OF("ev.id") " FROM ev RETURNING id, author_id), "                            \
    "t AS (INSERT INTO recipe_tags (tag, recipe_id) SELECT DISTINCT e, ev.id FROM ev, "            \
    "jsonb_array_elements_text(coalesce(ev.d->'tags', '[]')) AS e ON CONFLICT DO NOTHING), "       \
    "f AS (" SQL_FORGET_DELTAS("USING ev WHERE x.id = ev.id", SQL_RECIPE_COLS) ") "
#define SQL_RECIPE_CREATED_DELTAS SQL_COUNT_DELTAS("SELECT author_id, " SQL_COL_RECIPES ", 1 FROM r")
static const char sql_recipe_created[] =
    SQL_RECIPE_CREATED_WITH ", d AS (" SQL_RECIPE_CREATED_DELTAS ") " SQL_FEED_ADD_RECIPE("r");
/* PROJ_FOLD_BULK: the feed is derived at the rebuild's end (pg_rebuild_end) */
static const char sql_recipe_created_bulk[] = SQL_RECIPE_CREATED_WITH SQL_RECIPE_CREATED_DELTAS;

/* a count of the rows updated, as for profiles; the tags follow in two more statements */
static const char sql_recipe_updated[] =
    "WITH " SQL_ROWS ", upd AS (UPDATE recipes r SET "
    "title = CASE WHEN ev.d ? 'title' THEN ev.d->>'title' ELSE r.title END, "
    "description = CASE WHEN ev.d ? 'description' "
    "THEN coalesce(ev.d->>'description', '') ELSE r.description END, "
    "ingredients = CASE WHEN ev.d ? 'ingredients' THEN ev.d->'ingredients' "
    "ELSE r.ingredients END, "
    "steps = CASE WHEN ev.d ? 'steps' THEN ev.d->'steps' ELSE r.steps END, "
    "tags = CASE WHEN ev.d ? 'tags' THEN " SQL_TEXT_SET("ev.d->'tags'") " ELSE r.tags END, "
    "image_media_ids = CASE WHEN ev.d ? 'image_media_ids' "
    "THEN " SQL_ID_ARRAY("ev.d->'image_media_ids'") " ELSE r.image_media_ids END, "
    "updated_at = ev.at, version = ev.v FROM ev WHERE r.id = ev.id RETURNING 1) "
    "SELECT count(*) FROM upd";
static const char sql_recipe_tags_delete[] =
    "WITH " SQL_ROWS " DELETE FROM recipe_tags t USING ev "
    "WHERE ev.d ? 'tags' AND t.recipe_id = ev.id";
static const char sql_recipe_tags_insert[] =
    "WITH " SQL_ROWS " INSERT INTO recipe_tags (tag, recipe_id) "
    "SELECT DISTINCT e, ev.id FROM ev, jsonb_array_elements_text(ev.d->'tags') AS e "
    "WHERE ev.d ? 'tags' ON CONFLICT DO NOTHING";

#define SQL_RECIPE_DELETED_WITH                                                                    \
    "WITH " SQL_ROWS ", t AS (DELETE FROM recipe_tags t USING ev "                                 \
    "WHERE t.recipe_id = ev.id), "                                                                 \
    "r AS (DELETE FROM recipes r USING ev WHERE r.id = ev.id "                                     \
    "RETURNING r.id, r.author_id) "
#define SQL_RECIPE_DELETED_DELTAS SQL_COUNT_DELTAS("SELECT author_id, " SQL_COL_RECIPES ", -1 FROM r")
static const char sql_recipe_deleted[] =
    SQL_RECIPE_DELETED_WITH ", f AS (" SQL_FEED_REMOVE_RECIPE("r") ") " SQL_RECIPE_DELETED_DELTAS;
static const char sql_recipe_deleted_bulk[] = SQL_RECIPE_DELETED_WITH SQL_RECIPE_DELETED_DELTAS;

#define SQL_USER_FOLLOWED_WITH                                                                     \
    "WITH " SQL_ROWS ", ins AS (INSERT INTO follows (follower_id, followee_id, "                   \
    "created_at) SELECT ev.id, " SQL_ID("followee_id") ", ev.at FROM ev "                          \
    "ON CONFLICT DO NOTHING RETURNING follower_id, followee_id), "                                 \
    "upd AS (" SQL_COUNT_DELTAS("SELECT w.id, w.col, 1 FROM ins, LATERAL (VALUES "                 \
                                "(ins.followee_id, " SQL_COL_FOLLOWERS "), "                       \
                                "(ins.follower_id, " SQL_COL_FOLLOWING ")) AS w(id, col)") "), "
#define SQL_USER_FOLLOWED_FEED                                                                     \
    "fe AS (INSERT INTO feed_entries (user_id, recipe_id) "                                        \
    "SELECT ins.follower_id, r.id FROM ins JOIN recipes r "                                        \
    "ON r.author_id = ins.followee_id ON CONFLICT DO NOTHING), "
#define SQL_USER_FOLLOWED_NOTIFY                                                                   \
    "nt AS (" SQL_NOTIFICATIONS_INSERT "SELECT ev.n, " SQL_ID("followee_id") ", 'follow', "        \
    "ev.id, NULL, NULL, ev.p, ev.o, ev.at FROM ev WHERE " SQL_ID("followee_id") " <> ev.id "       \
    "AND NOT EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = ev.id "                         \
    "AND f.followee_id = " SQL_ID("followee_id") ") ON CONFLICT DO NOTHING RETURNING 1) "          \
    SQL_NOTIFY_ONCE("nt")
static const char sql_user_followed[] =
    SQL_USER_FOLLOWED_WITH SQL_USER_FOLLOWED_FEED SQL_USER_FOLLOWED_NOTIFY;
static const char sql_user_followed_bulk[] = SQL_USER_FOLLOWED_WITH SQL_USER_FOLLOWED_NOTIFY;

#define SQL_USER_UNFOLLOWED_WITH                                                                   \
    "WITH " SQL_ROWS ", del AS (DELETE FROM follows f USING ev "                                   \
    "WHERE f.follower_id = ev.id AND f.followee_id = " SQL_ID("followee_id") " "                   \
    "RETURNING f.follower_id, f.followee_id) "
#define SQL_USER_UNFOLLOWED_DELTAS                                                                 \
    SQL_COUNT_DELTAS("SELECT w.id, w.col, -1 FROM del, LATERAL (VALUES "                           \
                     "(del.followee_id, " SQL_COL_FOLLOWERS "), "                                  \
                     "(del.follower_id, " SQL_COL_FOLLOWING ")) AS w(id, col)")
static const char sql_user_unfollowed[] =
    SQL_USER_UNFOLLOWED_WITH ", x AS MATERIALIZED (SELECT del.follower_id AS u, r.id FROM del "
    "JOIN recipes r ON r.author_id = del.followee_id WHERE del.follower_id <> del.followee_id), "
    "fe AS (DELETE FROM feed_entries e USING x WHERE e.user_id = x.u "
    "AND e.recipe_id = x.id) " SQL_USER_UNFOLLOWED_DELTAS;
static const char sql_user_unfollowed_bulk[] =
    SQL_USER_UNFOLLOWED_WITH SQL_USER_UNFOLLOWED_DELTAS;

static const char sql_recipe_liked[] =
    "WITH " SQL_ROWS ", ins AS (INSERT INTO likes (recipe_id, user_id, created_at) "
    "SELECT " SQL_ID("recipe_id") ", ev.id, ev.at FROM ev ON CONFLICT DO NOTHING "
    "RETURNING recipe_id, user_id), "
    "upd AS (" SQL_COUNT_DELTAS("SELECT recipe_id, " SQL_COL_LIKES ", 1 FROM ins") "), "
    "nt AS (" SQL_NOTIFICATIONS_INSERT "SELECT ev.n, " SQL_ID("recipe_author_id") ", 'like', "
    "ev.id, " SQL_ID("recipe_id") ", NULL, ev.p, ev.o, ev.at FROM ev "
    "WHERE " SQL_ID("recipe_author_id") " <> ev.id AND NOT EXISTS (SELECT 1 FROM "
    "likes l WHERE l.recipe_id = " SQL_ID("recipe_id") " AND l.user_id = ev.id) "
    "ON CONFLICT DO NOTHING RETURNING 1) "
    SQL_NOTIFY_ONCE("nt");

static const char sql_recipe_unliked[] =
    "WITH " SQL_ROWS ", del AS (DELETE FROM likes l USING ev "
    "WHERE l.recipe_id = " SQL_ID("recipe_id") " AND l.user_id = ev.id "
    "RETURNING l.recipe_id) " SQL_COUNT_DELTAS("SELECT recipe_id, " SQL_COL_LIKES ", -1 FROM del");

static const char sql_recipe_commented[] =
    "WITH " SQL_ROWS ", ins AS (INSERT INTO comments (id, recipe_id, user_id, "
    "content, created_at) SELECT ev.id, " SQL_ID("recipe_id") ", " SQL_ID("user_id") ", "
    "ev.d->>'content', ev.at FROM ev ON CONFLICT DO NOTHING "
    "RETURNING id, recipe_id, user_id), "
    "upd AS (" SQL_COUNT_DELTAS("SELECT recipe_id, " SQL_COL_COMMENTS ", 1 FROM ins") "), "
    "nt AS (" SQL_NOTIFICATIONS_INSERT "SELECT ev.n, " SQL_ID("recipe_author_id") ", 'comment', "
    SQL_ID("user_id") ", " SQL_ID("recipe_id") ", ev.id, ev.p, ev.o, ev.at FROM ev "
    "WHERE " SQL_ID("recipe_author_id") " <> " SQL_ID("user_id") " AND NOT EXISTS "
    "(SELECT 1 FROM comments c WHERE c.id = ev.id) "
    "ON CONFLICT DO NOTHING RETURNING 1) "
    SQL_NOTIFY_ONCE("nt");

static const char sql_comment_deleted[] =
    "WITH " SQL_ROWS ", del AS (DELETE FROM comments c USING ev WHERE c.id = ev.id "
    "RETURNING c.recipe_id) " SQL_COUNT_DELTAS("SELECT recipe_id, " SQL_COL_COMMENTS ", -1 FROM del");

/* read marks only move forward, so several of one user fold as their greatest */
static const char sql_notifications_read[] =
    "WITH " SQL_ROWS " INSERT INTO notification_reads (user_id, up_to_id) "
    "SELECT ev.id, max(" SQL_ID("up_to_id") ") FROM ev GROUP BY ev.id "
    "ON CONFLICT (user_id) DO UPDATE SET "
    "up_to_id = greatest(notification_reads.up_to_id, EXCLUDED.up_to_id)";

static const char sql_session_started[] =
    "WITH " SQL_ROWS " INSERT INTO sessions (id, user_id, expires_at) "
    "SELECT ev.id, " SQL_ID("user_id") ", (ev.d->>'expires_at')::timestamptz FROM ev "
    "ON CONFLICT (id) DO NOTHING";

/* of several refreshes of one session the last (by stream version) stands; the session's
 * SessionStarted comes first in its stream, so in an earlier batch or this round's earlier
 * statement, and SessionRevoked sets another column */
static const char sql_session_refreshed[] =
    "WITH " SQL_ROWS ", last AS (SELECT DISTINCT ON (ev.id) ev.id, ev.d FROM ev "
    "ORDER BY ev.id, ev.v DESC) UPDATE sessions s "
    "SET expires_at = (last.d->>'expires_at')::timestamptz FROM last WHERE s.id = last.id";

static const char sql_session_revoked[] =
    "WITH " SQL_ROWS " UPDATE sessions s SET revoked = true FROM ev WHERE s.id = ev.id";

/* the user-<id> streams' versions of the events that change no user row (pg_internal.h) */
static const char sql_user_versions[] =
    "INSERT INTO pg_temp.proj_user_versions (id, version) "
    "SELECT id, v FROM json_to_recordset($1::json) AS r(id bigint, v bigint)";
/* clang-format on */

/* How each type folds as a set: its statement, whether it expects one row per event
 * (the statement returns the count of rows it updated), whether its events notify (the
 * rows carry a notification id), whether it notes the user stream's version, and which
 * row key its events touch. */
enum key_kind {
    KEY_NONE = 0, /* the type's statement folds several events of one row itself */
    KEY_USER,
    KEY_RECIPE,
    KEY_FOLLOW,
    KEY_LIKE,
    KEY_COMMENT,
    KEY_ROOM, /* chat: rounds by room and run of messages or read marks (room_round) */
};

struct set_fold {
    bool data; /* the statements read ev.d (more than SQL_ID's id fields) */
    const char *sql;
    const char *bulk_sql; /* under PROJ_FOLD_BULK, if not sql: without the feed's rows */
    bool expect_each;     /* sql returns count(*) of updated rows: fewer is SP_ENOTFOUND */
    bool notifies;
    bool notes_version;
    enum key_kind key;
};

static const struct set_fold set_folds[ES_TYPE__COUNT] = {
    [ES_TYPE_USER_REGISTERED] = {true, sql_user_registered, NULL, false, false, false, KEY_USER},
    [ES_TYPE_PROFILE_UPDATED] = {true, sql_profile_updated, NULL, true, false, false, KEY_USER},
    [ES_TYPE_RECIPE_CREATED] = {true, sql_recipe_created, sql_recipe_created_bulk, false, false,
                                false, KEY_RECIPE},
    [ES_TYPE_RECIPE_UPDATED] = {true, sql_recipe_updated, NULL, true, false, false, KEY_RECIPE},
    [ES_TYPE_RECIPE_DELETED] = {false, sql_recipe_deleted, sql_recipe_deleted_bulk, false, false,
                                false, KEY_RECIPE},
    [ES_TYPE_USER_FOLLOWED] = {false, sql_user_followed, sql_user_followed_bulk, false, true, true,
                               KEY_FOLLOW},
    [ES_TYPE_USER_UNFOLLOWED] = {false, sql_user_unfollowed, sql_user_unfollowed_bulk, false, false,
                                 true, KEY_FOLLOW},
    [ES_TYPE_RECIPE_LIKED] = {false, sql_recipe_liked, NULL, false, true, true, KEY_LIKE},
    [ES_TYPE_RECIPE_UNLIKED] = {false, sql_recipe_unliked, NULL, false, false, true, KEY_LIKE},
    [ES_TYPE_RECIPE_COMMENTED] = {true, sql_recipe_commented, NULL, false, true, false,
                                  KEY_COMMENT},
    [ES_TYPE_COMMENT_DELETED] = {false, sql_comment_deleted, NULL, false, false, false,
                                 KEY_COMMENT},
    [ES_TYPE_NOTIFICATIONS_READ] = {false, sql_notifications_read, NULL, false, false, true,
                                    KEY_NONE},
    [ES_TYPE_SESSION_STARTED] = {true, sql_session_started, NULL, false, false, false, KEY_NONE},
    [ES_TYPE_SESSION_REFRESHED] = {true, sql_session_refreshed, NULL, false, false, false,
                                   KEY_NONE},
    [ES_TYPE_SESSION_REVOKED] = {false, sql_session_revoked, NULL, false, false, false, KEY_NONE},
    /* chat (pg_chat.c): every statement answers (events folded, ...): fewer is SP_ENOTFOUND */
    [ES_TYPE_CONVERSATION_CREATED] = {true, proj__sql_chat_created, NULL, true, true, false,
                                      KEY_ROOM},
    [ES_TYPE_CONVERSATION_UPDATED] = {true, proj__sql_chat_updated, NULL, true, true, false,
                                      KEY_ROOM},
    [ES_TYPE_MEMBER_ADDED] = {true, proj__sql_chat_member_added, NULL, true, true, false, KEY_ROOM},
    [ES_TYPE_MEMBER_REMOVED] = {true, proj__sql_chat_member_removed, NULL, true, true, false,
                                KEY_ROOM},
    [ES_TYPE_MESSAGE_SENT] = {true, proj__sql_chat_message_sent, NULL, true, true, false, KEY_ROOM},
    [ES_TYPE_MESSAGES_READ] = {true, proj__sql_chat_messages_read, NULL, true, true, false,
                               KEY_ROOM},
};

/*
 * The order of the statements of a round. Events of one key are in different rounds, so
 * only the types without a key (KEY_NONE) depend on it: a session starts before it is
 * refreshed or revoked (the enum's order is the catalogue's, alphabetical). A round holds
 * one kind of chat event per room (room_round), so the chat types' order does not matter.
 */
static const enum es_type fold_order[] = {
    ES_TYPE_USER_REGISTERED,      ES_TYPE_PROFILE_UPDATED,      ES_TYPE_RECIPE_CREATED,
    ES_TYPE_RECIPE_UPDATED,       ES_TYPE_RECIPE_DELETED,       ES_TYPE_USER_FOLLOWED,
    ES_TYPE_USER_UNFOLLOWED,      ES_TYPE_RECIPE_LIKED,         ES_TYPE_RECIPE_UNLIKED,
    ES_TYPE_RECIPE_COMMENTED,     ES_TYPE_COMMENT_DELETED,      ES_TYPE_NOTIFICATIONS_READ,
    ES_TYPE_SESSION_STARTED,      ES_TYPE_SESSION_REFRESHED,    ES_TYPE_SESSION_REVOKED,
    ES_TYPE_CONVERSATION_CREATED, ES_TYPE_CONVERSATION_UPDATED, ES_TYPE_MEMBER_ADDED,
    ES_TYPE_MEMBER_REMOVED,       ES_TYPE_MESSAGE_SENT,         ES_TYPE_MESSAGES_READ,
};

/* Whether the statements of type @p t run in a round (else its events fold one by one). */
static bool in_fold_order(enum es_type t)
{
    for (size_t k = 0; k < sizeof(fold_order) / sizeof(fold_order[0]); k++)
        if (fold_order[k] == t)
            return true;
    return false;
}

/* ------------------------------------------------------------ rounds by row key */

/*
 * How many events of the batch touched each row key so far: the key's hash (a proj_idmap,
 * view_codec.h) -> its slot in counts[]. Two keys of one hash only put an event in a
 * later round than it needs, which is always correct.
 */
struct keycount {
    struct proj_idmap slots;
    uint32_t *counts; /* [slots.n] */
    size_t cap;
};

static void keycount_free(struct keycount *k)
{
    proj__idmap_release(&k->slots);
    free(k->counts);
}

/* Forget every key (after an event folded alone: everything after it comes later). */
static void keycount_reset(struct keycount *k)
{
    proj__idmap_reset(&k->slots);
}

/* Count one more event of key @p h. @return how many came before it (0 for the first). */
static uint32_t keycount_next(struct keycount *k, uint64_t h)
{
    int64_t i = proj__idmap_get(&k->slots, h);
    if (i >= 0)
        return k->counts[i]++;
    PROJ_GROW(k->counts, k->cap, k->slots.n + 1);
    k->counts[k->slots.n] = 1;
    proj__idmap_put(&k->slots, h, (uint32_t)k->slots.n);
    return 0;
}

/*
 * The rounds of chat events, by room: a room's messages that follow each other share a
 * round, and so do its read marks; any other event of the room (created, updated, member
 * added or removed), and a change between messages and read marks, starts the room's next
 * round. Messages of one room commute with each other (the room keeps the greatest, each
 * member's notification the last not their own), read marks too (each member's greatest),
 * but not with membership changes or with each other's kind (a read mark ends a pending
 * notification that a later message starts again).
 */
struct roomrounds {
    struct proj_idmap slots; /* room id -> index in st[] */
    struct roomround {
        uint32_t round; /* the room's latest round */
        int run;        /* its kind: ROOM_RUN_* */
    } * st;
    size_t cap;
};

#define ROOM_RUN_ONE      0 /* an event alone in its round */
#define ROOM_RUN_MESSAGES 1
#define ROOM_RUN_READS    2

static void roomrounds_free(struct roomrounds *r)
{
    proj__idmap_release(&r->slots);
    free(r->st);
}

static uint32_t room_round(struct roomrounds *r, const struct es_event *ev)
{
    int run = ev->type_id == ES_TYPE_MESSAGE_SENT    ? ROOM_RUN_MESSAGES
              : ev->type_id == ES_TYPE_MESSAGES_READ ? ROOM_RUN_READS
                                                     : ROOM_RUN_ONE;
    uint64_t room = (uint64_t)es_event_stream_id(ev);
    int64_t i = proj__idmap_get(&r->slots, room);
    struct roomround *st;

    if (i < 0) {
        PROJ_GROW(r->st, r->cap, r->slots.n + 1);
        r->st[r->slots.n] = (struct roomround){0, run};
        proj__idmap_put(&r->slots, room, (uint32_t)r->slots.n);
        return 0;
    }
    SP_ASSERT(r->st != NULL); /* a room is stored only with its slot */
    st = &r->st[i];
    if (run == ROOM_RUN_ONE || st->run != run) {
        st->round++;
        st->run = run;
    }
    return st->round;
}

/* Hash of the row key @p ev touches; its numbers are those of the payload's id fields. */
static uint64_t event_key(const struct es_event *ev, enum key_kind kind)
{
    struct {
        int64_t kind, a, b;
    } key = {kind, es_event_stream_id(ev), 0};
    const char *other = NULL;

    if (kind == KEY_FOLLOW)
        other = json_string_value(json_object_get(ev->data, "followee_id"));
    else if (kind == KEY_LIKE)
        other = json_string_value(json_object_get(ev->data, "recipe_id"));
    if (other != NULL)
        key.b = (int64_t)XXH3_64bits(other, strlen(other));
    return XXH3_64bits(&key, sizeof(key));
}

/* The round of @p ev, whose row key is of kind @p key. */
static size_t event_round(struct keycount *keys,
                          struct roomrounds *rooms,
                          const struct es_event *ev,
                          enum key_kind key)
{
    if (key == KEY_ROOM)
        return room_round(rooms, ev);
    return key != KEY_NONE ? keycount_next(keys, event_key(ev, key)) : 0;
}

/* ------------------------------------------------------------ statements */

/* A round's events of one type as the JSON array text its statement takes as $1, written
 * straight from each event's fields and its payload's text (es_event.data_json, kept by
 * the runner's decoding), not built and encoded as jansson values: encoding the payloads
 * again (json_dumps) had been a third of the projector's time in a rebuild. */
struct rows {
    struct sp_buf text; /* "[{...},{...}": the closing bracket is added to send it */
    size_t n;           /* rows in it; 0: none (text not initialised) */
    bool tags;          /* RecipeUpdated: one of them sets the tags */
};

typedef struct rows round_rows[ES_TYPE__COUNT]; /* a round's rows by type */

struct fold_set {
    PGconn *conn;
    bool bulk;          /* PROJ_FOLD_BULK */
    round_rows *rounds; /* rounds[0..n_rounds) */
    size_t n_rounds, cap_rounds;
    struct rows versions;   /* {id, v}: each noted user's greatest version (versions_add) */
    struct proj_idmap vmap; /* user id -> index in vers[] */
    struct version {
        int64_t id, v;
    } * vers;
    size_t vcap;
    struct sp_errbuf *eb;
};

/* Note version @p v of user @p id's stream: only the greatest of a batch is sent. */
static void versions_add(struct fold_set *s, int64_t id, int64_t v)
{
    int64_t i = proj__idmap_get(&s->vmap, (uint64_t)id);

    if (i >= 0) {
        if (s->vers[i].v < v)
            s->vers[i].v = v;
        return;
    }
    PROJ_GROW(s->vers, s->vcap, s->vmap.n + 1);
    s->vers[s->vmap.n] = (struct version){id, v};
    proj__idmap_put(&s->vmap, (uint64_t)id, (uint32_t)s->vmap.n);
}

static void rows_release(struct rows *rows)
{
    if (rows->n > 0)
        sp_buf_release(&rows->text);
    rows->n = 0;
    rows->tags = false;
}

/* Run @p sql with the rows @p rows (n > 0) as $1. */
static int exec_rows(struct fold_set *s, const char *sql, struct rows *rows, PGresult **res)
{
    const char *params[1];
    int rc;

    if (sp_buf_add(&rows->text, "]", 1) != 0)
        return sp_err_set(s->eb, SP_EUNAVAIL, NULL, "out of memory encoding a batch");
    params[0] = rows->text.data;
    rc = proj_pg_exec(s->conn, sql, 1, params, res, s->eb);
    rows->text.data[--rows->text.len] = '\0'; /* sent again for the tags */
    return rc;
}

/* Fold one round's rows of type @p t. */
static int round_fold(struct fold_set *s, int t, struct rows *rows)
{
    PGresult *res = NULL;
    const char *sql = s->bulk && set_folds[t].bulk_sql ? set_folds[t].bulk_sql : set_folds[t].sql;
    int rc = exec_rows(s, sql, rows, set_folds[t].expect_each ? &res : NULL);

    if (rc == 0 && set_folds[t].expect_each) {
        long long n = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
        if (n != (long long)rows->n && set_folds[t].key == KEY_ROOM)
            rc = sp_err_set(s->eb, SP_ENOTFOUND, NULL,
                            "%s of a room the view does not hold or of a non-member",
                            es_type_name((enum es_type)t));
        else if (n != (long long)rows->n)
            rc = sp_err_set(s->eb, SP_ENOTFOUND, NULL, "%s of a %s the view does not hold",
                            es_type_name((enum es_type)t),
                            t == ES_TYPE_PROFILE_UPDATED ? "user" : "recipe");
    }
    PQclear(res);
    if (rc == 0 && t == ES_TYPE_RECIPE_UPDATED && rows->tags &&
        (rc = exec_rows(s, sql_recipe_tags_delete, rows, NULL)) == 0)
        rc = exec_rows(s, sql_recipe_tags_insert, rows, NULL);
    return rc;
}

/* Fold the rounds gathered (unless @p discard), in order, each type by type; then forget
 * them. */
static int rounds_flush(struct fold_set *s, bool discard)
{
    int rc = discard ? 1 : 0;

    for (size_t r = 0; r < s->n_rounds; r++) {
        for (size_t k = 0; k < sizeof(fold_order) / sizeof(fold_order[0]); k++) {
            enum es_type t = fold_order[k];
            if (rc == 0 && s->rounds[r][t].n > 0)
                rc = round_fold(s, t, &s->rounds[r][t]);
            rows_release(&s->rounds[r][t]);
        }
    }
    s->n_rounds = 0;
    return discard ? 0 : rc;
}

/* Start the next row of @p rows: "[" or ",". */
static int row_open(struct rows *rows)
{
    if (rows->n++ == 0) {
        sp_buf_init(&rows->text, 0);
        return sp_buf_add(&rows->text, "[", 1);
    }
    return sp_buf_add(&rows->text, ",", 1);
}

/* The payload fields every row carries as columns of their own (SQL_ROW_COLUMNS). */
static const char *const lifted_keys[] = {"author_id",        "followee_id", "recipe_id",
                                          "recipe_author_id", "user_id",     "up_to_id",
                                          "message_id",       "sender_id"};

/* Append ,"key":value of @p data's member @p key, if it has one, as JSON: the schemas make
 * ids decimal strings, which PostgreSQL reads into the bigint column as (d->>key)::bigint
 * did, failing the same way (SQLSTATE 22P02) on anything else. */
static int lift(struct sp_buf *b, const json_t *data, const char *key)
{
    const json_t *v = json_object_get(data, key);
    char *text;
    int rc;

    if (v == NULL)
        return 0;
    if ((rc = sp_buf_addf(b, ",\"%s\":", key)) != 0)
        return rc;
    if (json_is_string(v)) {
        if ((rc = sp_buf_add(b, "\"", 1)) == 0 &&
            (rc = sp_buf_add_json_str(b, json_string_value(v), json_string_length(v))) == 0)
            rc = sp_buf_add(b, "\"", 1);
        return rc;
    }
    if ((text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
        return SP_EUNAVAIL;
    rc = sp_buf_adds(b, text);
    free(text);
    return rc;
}

/* Append the row of @p ev for its type's statement (SQL_ROW_COLUMNS) to @p rows. */
static int event_row(struct rows *rows, const struct es_event *ev, const struct set_fold *f)
{
    char at[32];
    int rc = row_open(rows);

    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    if (rc == 0)
        rc = sp_buf_addf(&rows->text, "{\"id\":%" PRId64 ",\"v\":%" PRId64 ",\"at\":\"%s\"",
                         es_event_stream_id(ev), ev->stream_version, at);
    if (rc == 0 && f->notifies) {
        struct sp_errbuf ignored = {{0}, {0}};
        int64_t id = 0;
        /* an id that cannot be made (a time outside 2024-2093) stays null: only a
         * notification actually written needs it, and its NOT NULL then fails the set,
         * whose events the caller folds one by one (pg_social.c says why) */
        if (proj__notification_id(ev, &id, &ignored) == 0)
            rc = sp_buf_addf(&rows->text, ",\"n\":%" PRId64, id);
        if (rc == 0)
            rc = sp_buf_addf(&rows->text, ",\"p\":%" PRId32 ",\"o\":%" PRId64, ev->pos.partition,
                             ev->pos.offset);
    }
    for (size_t k = 0; rc == 0 && k < sizeof(lifted_keys) / sizeof(lifted_keys[0]); k++)
        rc = lift(&rows->text, ev->data, lifted_keys[k]);
    if (rc == 0 && !f->data)
        return sp_buf_add(&rows->text, "}", 1);
    if (rc == 0)
        rc = sp_buf_add(&rows->text, ",\"d\":", 5);
    if (rc == 0 && ev->data_json != NULL) {
        rc = sp_buf_add(&rows->text, ev->data_json, ev->data_json_len);
    } else if (rc == 0) { /* an event not decoded by the runner (a test's) */
        char *text = json_dumps(ev->data, JSON_COMPACT);
        rc = text != NULL ? sp_buf_adds(&rows->text, text) : SP_EUNAVAIL;
        free(text);
    }
    if (rc == 0)
        rc = sp_buf_add(&rows->text, "}", 1);
    if (rc == 0 && json_object_get(ev->data, "tags") != NULL)
        rows->tags = true;
    return rc;
}

/* The rows of round @p r (allocating the rounds up to it) for type @p t. */
static struct rows *round_at(struct fold_set *s, size_t r, enum es_type t)
{
    if (r >= s->cap_rounds) {
        size_t cap = s->cap_rounds ? 2 * s->cap_rounds : 4;
        while (cap <= r)
            cap *= 2;
        s->rounds = sp_xrealloc(s->rounds, cap * sizeof(*s->rounds));
        memset(s->rounds + s->cap_rounds, 0, (cap - s->cap_rounds) * sizeof(*s->rounds));
        s->cap_rounds = cap;
    }
    if (r >= s->n_rounds)
        s->n_rounds = r + 1;
    return &s->rounds[r][t];
}

int proj__pg_fold_set(
    PGconn *conn, const struct es_event *const *evs, size_t n, unsigned flags, struct sp_errbuf *eb)
{
    struct fold_set s = {.conn = conn, .bulk = (flags & PROJ_FOLD_BULK) != 0, .eb = eb};
    struct keycount keys = {{NULL, 0, 0}, NULL, 0};
    struct roomrounds rooms = {{NULL, 0, 0}, NULL, 0};
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct es_event *ev = evs[i];
        const struct set_fold *f = &set_folds[ev->type_id];

        if (f->sql == NULL || !in_fold_order(ev->type_id)) {
            /* a type of the per-event folds without a set statement: folded alone, after
             * everything before it and before everything after it */
            proj_apply_fn one = proj_pg_projection()->folds[ev->type_id];
            if ((rc = rounds_flush(&s, false)) != 0 || one == NULL || (rc = one(conn, ev, eb)) != 0)
                break;
            keycount_reset(&keys);
            proj__idmap_reset(&rooms.slots);
            continue;
        }
        size_t round = event_round(&keys, &rooms, ev, f->key);
        rc = event_row(round_at(&s, round, ev->type_id), ev, f);
        if (rc == 0 && f->notes_version)
            versions_add(&s, es_event_stream_id(ev), ev->stream_version);
        if (rc != 0)
            rc = sp_err_set(eb, SP_EUNAVAIL, NULL, "out of memory encoding a batch");
    }
    if (rc == 0)
        rc = rounds_flush(&s, false);
    else
        (void)rounds_flush(&s, true);
    for (size_t i = 0; rc == 0 && i < s.vmap.n; i++) {
        if ((rc = row_open(&s.versions)) == 0)
            rc = sp_buf_addf(&s.versions.text, "{\"id\":%" PRId64 ",\"v\":%" PRId64 "}",
                             s.vers[i].id, s.vers[i].v);
        if (rc != 0)
            rc = sp_err_set(eb, SP_EUNAVAIL, NULL, "out of memory encoding a batch");
    }
    if (rc == 0 && s.versions.n > 0)
        rc = exec_rows(&s, sql_user_versions, &s.versions, NULL);
    rows_release(&s.versions);
    proj__idmap_release(&s.vmap);
    free(s.vers);
    free(s.rounds);
    keycount_free(&keys);
    roomrounds_free(&rooms);
    return rc;
}

int proj__pg_fold_one(PGconn *conn, const struct es_event *ev, PGresult **res, struct sp_errbuf *eb)
{
    struct fold_set s = {.conn = conn, .eb = eb};
    const struct set_fold *f = &set_folds[ev->type_id];
    struct rows rows = {.n = 0};
    int rc;

    SP_ASSERT(f->sql != NULL);
    *res = NULL;
    if (event_row(&rows, ev, f) != 0)
        rc = sp_err_set(eb, SP_EUNAVAIL, NULL, "out of memory encoding an event");
    else
        rc = exec_rows(&s, f->sql, &rows, res);
    rows_release(&rows);
    return rc;
}
