/*
 * The PostgreSQL projection "pg": users and recipes (with tags) of schema stockpot, folded
 * from the v1 events of schemas/events/README.md, plus the social tables of pg_social.c and
 * the chat tables of pg_chat.c.
 * Secrets (email, password hash, refresh hash) are never written.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/catalogue.h"
#include "es/id.h"
#include "pg_internal.h"
#include "proj/pg.h"
#include "proj/projection.h"
#include "sp/alloc.h"
#include "sp/time.h"

#include "sp/banned.h"

void proj__stream_id(const struct es_event *ev, char *out, size_t out_size)
{
    snprintf(out, out_size, "%lld", (long long)es_event_stream_id(ev));
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

    proj__stream_id(ev, sid, sizeof(sid));
    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    snprintf(version, sizeof(version), "%lld", (long long)ev->stream_version);
    const char *params[] = {id, json_string_value(json_object_get(ev->data, "username")), at,
                            version};
    return proj_pg_exec(
        conn,
        "WITH f AS (" SQL_FORGET_DELTAS(
            "WHERE x.id = $1::bigint",
            SQL_USER_COLS) ") "
                           "INSERT INTO users (id, username, created_at, updated_at, "
                           "version, follower_count, following_count, recipe_count) "
                           "VALUES ($1, $2, $3, $3, $4, " SQL_USER_COUNTS ")",
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
    int rc;

    proj__stream_id(ev, id, sizeof(id));
    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    snprintf(version, sizeof(version), "%lld", (long long)ev->stream_version);
    data = json_dumps(ev->data, JSON_COMPACT);
    const char *params[] = {id, data, at, version};
    rc =
        expect_one_row(conn,
                       "UPDATE users SET "
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
                        "INSERT INTO recipe_tags (tag, recipe_id) "
                        "SELECT DISTINCT e, $1::bigint FROM jsonb_array_elements_text($2::jsonb) "
                        "AS x(e) ON CONFLICT DO NOTHING",
                        2, params, NULL, eb);
}

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
    /* clang-format off */
    rc = proj_pg_exec(conn,
                      "WITH r AS (INSERT INTO recipes (id, author_id, title, "
                      "description, ingredients, steps, tags, image_media_ids, created_at, "
                      "updated_at, version, like_count, comment_count) VALUES ($1, $2, $3, $4, "
                      "$5::jsonb, $6::jsonb, " SQL_TEXT_SET("$7::jsonb") ", "
                      SQL_ID_ARRAY("$8::jsonb") ", $9, $9, $10, " SQL_RECIPE_COUNTS ") "
                      "RETURNING id, author_id), "
                      "f AS (" SQL_FORGET_DELTAS("WHERE x.id = $1::bigint", SQL_RECIPE_COLS) "), "
                      "d AS (" SQL_COUNT_DELTAS("SELECT author_id, " SQL_COL_RECIPES ", 1 "
                                                "FROM r") ") "
                      SQL_FEED_ADD_RECIPE("r"),
                      10, params, NULL, eb);
    /* clang-format on */
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

    proj__stream_id(ev, id, sizeof(id));
    return recipe_insert(conn, ev, id, eb);
}

static int recipe_updated(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char at[32], version[32], id[32];
    char *data;
    int rc;

    proj__stream_id(ev, id, sizeof(id));
    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    snprintf(version, sizeof(version), "%lld", (long long)ev->stream_version);
    data = json_dumps(ev->data, JSON_COMPACT);
    const char *params[] = {id, data, at, version};
    /* clang-format off */
    rc = expect_one_row(
        conn,
        "UPDATE recipes SET "
        "title = CASE WHEN $2::jsonb ? 'title' THEN $2::jsonb->>'title' ELSE title END, "
        "description = CASE WHEN $2::jsonb ? 'description' "
        "THEN coalesce($2::jsonb->>'description', '') ELSE description END, "
        "ingredients = CASE WHEN $2::jsonb ? 'ingredients' THEN $2::jsonb->'ingredients' "
        "ELSE ingredients END, "
        "steps = CASE WHEN $2::jsonb ? 'steps' THEN $2::jsonb->'steps' ELSE steps END, "
        "tags = CASE WHEN $2::jsonb ? 'tags' THEN " SQL_TEXT_SET("$2::jsonb->'tags'") " "
        "ELSE tags END, "
        "image_media_ids = CASE WHEN $2::jsonb ? 'image_media_ids' "
        "THEN " SQL_ID_ARRAY("$2::jsonb->'image_media_ids'") " ELSE image_media_ids END, "
        "updated_at = $3, version = $4 WHERE id = $1",
        4, params, "recipe", eb);
    /* clang-format on */
    if (rc == 0 && json_object_get(ev->data, "tags") != NULL) {
        const char *del[] = {id};
        char *tags = array_text(ev->data, "tags");
        rc = proj_pg_exec(conn, "DELETE FROM recipe_tags WHERE recipe_id = $1", 1, del, NULL, eb);
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

    /* the recipe's tags go with it; its author's count follows. Its likes and comments
     * stay: they are facts of the likers' and commenters' streams, which on a partitioned
     * log may be applied before or after this event, and only their own RecipeUnliked /
     * CommentDeleted remove them, so the tables do not depend on partition interleaving. */
    proj__stream_id(ev, id, sizeof(id));
    /* clang-format off */
    return proj_pg_exec(conn,
                        "WITH t AS (DELETE FROM recipe_tags WHERE recipe_id = $1), "
                        "r AS (DELETE FROM recipes WHERE id = $1 "
                        "RETURNING id, author_id), "
                        "f AS (" SQL_FEED_REMOVE_RECIPE("r") ") "
                        SQL_COUNT_DELTAS("SELECT author_id, " SQL_COL_RECIPES ", -1 FROM r"),
                        1, params, NULL, eb);
    /* clang-format on */
}

/* The folds by event type; every other type of the catalogue only advances the view. */
static const proj_apply_fn pg_folds[ES_TYPE__COUNT] = {
    [ES_TYPE_USER_REGISTERED] = user_registered,
    [ES_TYPE_PROFILE_UPDATED] = profile_updated,
    [ES_TYPE_RECIPE_CREATED] = recipe_created,
    [ES_TYPE_RECIPE_UPDATED] = recipe_updated,
    [ES_TYPE_RECIPE_DELETED] = recipe_deleted,
    [ES_TYPE_USER_FOLLOWED] = proj__pg_user_followed,
    [ES_TYPE_USER_UNFOLLOWED] = proj__pg_user_unfollowed,
    [ES_TYPE_RECIPE_LIKED] = proj__pg_recipe_liked,
    [ES_TYPE_RECIPE_UNLIKED] = proj__pg_recipe_unliked,
    [ES_TYPE_RECIPE_COMMENTED] = proj__pg_recipe_commented,
    [ES_TYPE_COMMENT_DELETED] = proj__pg_comment_deleted,
    [ES_TYPE_NOTIFICATIONS_READ] = proj__pg_notifications_read,
    [ES_TYPE_SESSION_STARTED] = proj__pg_session_started,
    [ES_TYPE_SESSION_REFRESHED] = proj__pg_session_refreshed,
    [ES_TYPE_SESSION_REVOKED] = proj__pg_session_revoked,
    [ES_TYPE_CONVERSATION_CREATED] = proj__pg_conversation_created,
    [ES_TYPE_CONVERSATION_UPDATED] = proj__pg_conversation_updated,
    [ES_TYPE_MEMBER_ADDED] = proj__pg_member_added,
    [ES_TYPE_MEMBER_REMOVED] = proj__pg_member_removed,
    [ES_TYPE_MESSAGE_SENT] = proj__pg_message_sent,
    [ES_TYPE_MESSAGES_READ] = proj__pg_messages_read,
};

/* Everything the view holds: a rebuild empties these and the checksum covers them. The late
 * indexes serve the query API only (a user's likes, a user's rooms, a room's messages and
 * events), and the feed's key is built after pg_rebuild_end derived its rows. */
static const struct proj_table pg_tables[] = {
    {"stockpot.users", "id", NULL, NULL},
    {"stockpot.recipes", "id", NULL, NULL},
    {"stockpot.recipe_tags", "tag, recipe_id", NULL, NULL},
    {"stockpot.follows", "follower_id, followee_id", NULL, NULL},
    {"stockpot.likes", "recipe_id, user_id", "likes_user_idx", NULL},
    {"stockpot.comments", "id", NULL, NULL},
    {"stockpot.notifications", "user_id, id", NULL, NULL},
    {"stockpot.notification_reads", "user_id", NULL, NULL},
    {"stockpot.sessions", "id", NULL, NULL},
    {"stockpot.feed_entries", "user_id, recipe_id", "feed_entries_pkey", NULL},
    {"stockpot.conversations", "id", NULL, NULL},
    {"stockpot.conversation_members", "conversation_id, user_id, joined_offset",
     "conversation_members_user_idx", NULL},
    {"stockpot.messages", "id", "messages_conversation_idx", NULL},
    /* seq: the order batches committed in (005_chat.sql); pg_rebuild_end keeps it */
    {"stockpot.chat_events", "partition, \"offset\"", "chat_events_conversation_idx", "seq"},
};

/*
 * The per-session scratch tables of the counters' deltas and the users' versions
 * (pg_internal.h), and the batch's plan methods: every fold joins a few rows (one
 * event's, or a round's: pg_fold_set.c) to the read model or the scratch tables by key,
 * which is an index probe per row. The planner's estimates say otherwise in the cases
 * that matter most: in a rebuild or a catch-up the tables grow within one transaction
 * from nothing, the statistics (and the prepared statements' plans, made at the first
 * batch) describe nearly empty tables, and it hash-joined a sequential scan of recipes or
 * follows in every statement (3-4 ms each at 3,000 recipes, growing with the table), and
 * rescanned all of a rebuild's counter notes per new recipe (never analyzed, a temporary
 * table looks small). So hash and merge joins and sequential scans where an index serves
 * are off. SET LOCAL: the batch's transaction only, before any fold is planned.
 * And the batch's value of the chat streams' order (SQL_CHAT_SEQ, pg_internal.h): the
 * runner holds the projection's lock, so a batch that commits later takes a greater one.
 */
static int pg_batch_begin(PGconn *conn, struct sp_errbuf *eb)
{
    return proj_pg_exec_script(conn,
                               "DO $$ BEGIN IF to_regclass('pg_temp.proj_count_deltas') IS NULL "
                               "THEN CREATE TEMP TABLE proj_count_deltas (id bigint NOT NULL, "
                               "col smallint NOT NULL, d bigint NOT NULL); "
                               "CREATE INDEX ON proj_count_deltas (id); "
                               "CREATE TEMP TABLE proj_user_versions (id bigint NOT NULL, "
                               "version bigint NOT NULL); "
                               "END IF; END $$; "
                               "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
                               "SET LOCAL enable_seqscan = off; "
                               "SELECT set_config('stockpot.chat_seq', "
                               "nextval('stockpot.chat_event_seq')::text, true)",
                               eb);
}

/* The rows of scratch table @p t as a set the planner sizes at a few rows (unnest of an
 * array it cannot see: 10), whatever the table's unknown statistics suggest. Joined to
 * users or recipes, that is an index probe per noted row; the table's default estimate
 * (2,260 rows) made PostgreSQL hash-join a sequential scan of the whole read model table
 * in every batch instead (about 9 ms a batch at 17,000 recipes, growing with the table). */
#define SQL_SCRATCH(t) "unnest(ARRAY(SELECT x FROM pg_temp." t " x))"

/* Add each entity's noted deltas to its counters, once per row and only where they do
 * not sum to nothing, and move each noted user's version; then forget the notes. A note
 * of a folded event that was rolled back (poison) went with its savepoint. Unformatted:
 * clang-format breaks this literal apart. */
/* clang-format off */
#define SQL_DELTA_SUM(c) "coalesce(sum(x.d) FILTER (WHERE x.col = " c "), 0)"
static const char pg_batch_end_sql[] =
    "UPDATE users u SET version = v.version FROM (SELECT id, max(version) AS "
    "version FROM " SQL_SCRATCH("proj_user_versions") " AS n(id, version) GROUP BY id) v "
    "WHERE u.id = v.id AND u.version < v.version; "
    "DELETE FROM pg_temp.proj_user_versions; "
    "UPDATE users u SET follower_count = u.follower_count + c.fr, "
    "following_count = u.following_count + c.fg, recipe_count = u.recipe_count + c.rc "
    "FROM (SELECT x.id, " SQL_DELTA_SUM(SQL_COL_FOLLOWERS) ", " SQL_DELTA_SUM(SQL_COL_FOLLOWING)
    ", " SQL_DELTA_SUM(SQL_COL_RECIPES) " FROM " SQL_SCRATCH("proj_count_deltas") " AS x "
    "WHERE x.col IN (" SQL_USER_COLS ") GROUP BY x.id) c(id, fr, fg, rc) "
    "WHERE u.id = c.id AND (c.fr, c.fg, c.rc) <> (0, 0, 0); "
    "UPDATE recipes r SET like_count = r.like_count + c.lc, "
    "comment_count = r.comment_count + c.cc "
    "FROM (SELECT x.id, " SQL_DELTA_SUM(SQL_COL_LIKES) ", " SQL_DELTA_SUM(SQL_COL_COMMENTS)
    " FROM " SQL_SCRATCH("proj_count_deltas") " AS x "
    "WHERE x.col IN (" SQL_RECIPE_COLS ") GROUP BY x.id) c(id, lc, cc) "
    "WHERE r.id = c.id AND (c.lc, c.cc) <> (0, 0); "
    "DELETE FROM pg_temp.proj_count_deltas";
/* clang-format on */

static int pg_batch_end(PGconn *conn, struct sp_errbuf *eb)
{
    return proj_pg_exec_script(conn, pg_batch_end_sql, eb);
}

/*
 * The end of a rebuild's load, before its one batch_end. The bulk folds (PROJ_FOLD_BULK)
 * wrote no feed rows, and a poison search's single folds may have written some without the
 * feed's key; the feed is by definition (schemas/sql/003_feed.sql) a function of recipes
 * and follows, so it is derived from them in one statement, with the joins the planner
 * finds best for whole tables, before its key is built (a late index). The counters are
 * counted over the tables in the same way, and the deltas noted for them dropped: applying
 * a million-event rebuild's notes (about 850,000) took longer than counting.
 */
/* clang-format off */
static const char pg_rebuild_end_sql[] =
    "SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on; "
    "SET LOCAL enable_seqscan = on; "
    "TRUNCATE feed_entries; "
    "INSERT INTO feed_entries (user_id, recipe_id) "
    "SELECT r.author_id, r.id FROM recipes r UNION "
    "SELECT f.follower_id, r.id FROM follows f JOIN recipes r ON r.author_id = f.followee_id; "
    /* each counter is its count over the rows (pg_internal.h): counted once over the
     * whole tables, which supersedes the deltas the folds noted */
    "UPDATE users u SET follower_count = c.fr, following_count = c.fg, recipe_count = c.rc "
    "FROM (SELECT x.id, coalesce(a.n, 0), coalesce(b.n, 0), coalesce(r.n, 0) FROM users x "
    "LEFT JOIN (SELECT followee_id, count(*) FROM follows GROUP BY 1) a(id, n) ON a.id = x.id "
    "LEFT JOIN (SELECT follower_id, count(*) FROM follows GROUP BY 1) b(id, n) ON b.id = x.id "
    "LEFT JOIN (SELECT author_id, count(*) FROM recipes GROUP BY 1) r(id, n) ON r.id = x.id) "
    "c(id, fr, fg, rc) WHERE u.id = c.id "
    "AND (u.follower_count, u.following_count, u.recipe_count) <> (c.fr, c.fg, c.rc); "
    "UPDATE recipes r SET like_count = c.lc, comment_count = c.cc "
    "FROM (SELECT x.id, coalesce(l.n, 0), coalesce(m.n, 0) FROM recipes x "
    "LEFT JOIN (SELECT recipe_id, count(*) FROM likes GROUP BY 1) l(id, n) ON l.id = x.id "
    "LEFT JOIN (SELECT recipe_id, count(*) FROM comments GROUP BY 1) m(id, n) ON m.id = x.id) "
    "c(id, lc, cc) WHERE r.id = c.id AND (r.like_count, r.comment_count) <> (c.lc, c.cc); "
    "TRUNCATE pg_temp.proj_count_deltas; "
    /* the chat events the old view had keep their place in the streams' order (seq): open
     * streams neither see them again nor miss the new ones, whose seq is greater */
    "UPDATE chat_events n SET seq = o.seq FROM stockpot.chat_events o "
    "WHERE o.partition = n.partition AND o.\"offset\" = n.\"offset\" "
    "AND o.conversation_id = n.conversation_id AND o.kind = n.kind "
    "AND o.created_at = n.created_at AND o.seq <> n.seq; "
    "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
    "SET LOCAL enable_seqscan = off";
/* clang-format on */

static int pg_rebuild_end(PGconn *conn, struct sp_errbuf *eb)
{
    return proj_pg_exec_script(conn, pg_rebuild_end_sql, eb);
}

static const struct proj_projection pg_projection = {
    .name = "pg",
    .store = PROJ_STORE_PG,
    .folds = pg_folds,
    .migrations = ".",
    .tables = pg_tables,
    .n_tables = sizeof(pg_tables) / sizeof(pg_tables[0]),
    .fold_set = proj__pg_fold_set,
    .batch_begin = pg_batch_begin,
    .batch_end = pg_batch_end,
    .rebuild_end = pg_rebuild_end,
};

const struct proj_projection *proj_pg_projection(void)
{
    return &pg_projection;
}
