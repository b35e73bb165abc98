/*
 * The social folds of the "pg" projection (issue 4, schemas/sql/002_social.sql): follows,
 * likes, comments with their counters, notifications, read marks and sessions.
 *
 * Every counter equals a count over its rows in every committed state: a row change notes
 * +1 or -1 for the counting entity in the same statement (ON CONFLICT DO NOTHING / DELETE
 * ... RETURNING, only when rows were actually affected) and the batch's end adds each
 * entity's sum once (pg_internal.h); an entity created later starts its counters from the rows
 * already there (pg_projection.c), as the log is ordered per stream only. Likes and comments are
 * facts of the liker's and commenter's streams: only their own RecipeUnliked / CommentDeleted
 * remove them, never RecipeDeleted (rows of a deleted recipe stay, counted nowhere), so no table
 * depends on how partitions interleave. Notifications depend only on the causing stream's order.
 * Notification ids are derived from the causing event's time and log position, so a rebuild yields
 * the same rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/catalogue.h"
#include "pg_internal.h"
#include "proj/pg.h"
#include "sp/pg_channels.h"
#include "sp/time.h"

#include "sp/banned.h"

/* Custom epoch of notification ids (2024-01-01T00:00:00Z), ms since the Unix epoch. */
#define NOTIF_EPOCH_MS 1704067200000LL
/* Notification ids hold 41 bits of milliseconds (until 2093). */
#define NOTIF_MAX_MS (1LL << 41)

/* A notification to write; ids are decimal text, recipe_id and comment_id may be NULL. */
struct notification {
    const char *recipient;
    const char *kind; /* "follow" | "like" | "comment" */
    const char *actor;
    const char *recipe_id;
    const char *comment_id;
};

static const char *field(const struct es_event *ev, const char *key)
{
    return json_string_value(json_object_get(ev->data, key));
}

/* Run @p sql whose result is one count(*); @p count receives it. */
static int exec_count(PGconn *conn,
                      const char *sql,
                      int nparams,
                      const char *const *params,
                      long long *count,
                      struct sp_errbuf *eb)
{
    PGresult *res;
    int rc = proj_pg_exec(conn, sql, nparams, params, &res, eb);

    if (rc != 0)
        return rc;
    *count = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return 0;
}

/* The user-<id> stream moved to the event's version: users.version follows it (the
 * If-Match of PUT /users/{id}), though the profile itself did not change. Noted for the
 * batch's end, which moves each user's row once (pg_internal.h). */
static int
user_version(PGconn *conn, const struct es_event *ev, const char *id, struct sp_errbuf *eb)
{
    char version[32];

    snprintf(version, sizeof(version), "%lld", (long long)ev->stream_version);
    const char *params[] = {id, version};
    return proj_pg_exec(conn, SQL_USER_VERSION, 2, params, NULL, eb);
}

int proj__notification_id(const struct es_event *ev, int64_t *id, struct sp_errbuf *eb)
{
    int64_t ms = ev->time_us / 1000;

    if (ev->pos.partition < 0 || ev->pos.offset < 0)
        return sp_err_set(eb, SP_EINVAL, "position", "event has no log position");
    if (ms < NOTIF_EPOCH_MS || ms - NOTIF_EPOCH_MS >= NOTIF_MAX_MS)
        return sp_err_set(eb, SP_ESCHEMA, "time", "event time is outside 2024-2093");
    *id = (int64_t)(((uint64_t)(ms - NOTIF_EPOCH_MS) << 22) |
                    ((uint64_t)(ev->pos.partition & 0x3FF) << 12) |
                    ((uint64_t)ev->pos.offset & 0xFFF));
    return 0;
}

/* Write @p n caused by @p ev, unless it would go to its own actor. Idempotent. */
static int
notify(PGconn *conn, const struct es_event *ev, const struct notification *n, struct sp_errbuf *eb)
{
    char id[32], partition[16], offset[32], at[32];
    int rc;

    if (strcmp(n->recipient, n->actor) == 0)
        return 0;
    int64_t nid = 0;
    if ((rc = proj__notification_id(ev, &nid, eb)) != 0)
        return rc;
    snprintf(id, sizeof(id), "%lld", (long long)nid);
    snprintf(partition, sizeof(partition), "%d", (int)ev->pos.partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)ev->pos.offset);
    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    const char *params[] = {id,        n->recipient, n->kind, n->actor, n->recipe_id, n->comment_id,
                            partition, offset,       at};
    /* the query API's notification streams LISTEN: told at commit (sp/pg_channels.h) */
    return proj_pg_exec(conn,
                        "WITH ins AS (INSERT INTO notifications (id, user_id, kind, "
                        "actor_id, recipe_id, comment_id, partition, \"offset\", created_at) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING "
                        "RETURNING 1) SELECT pg_notify('" SP_PG_CHANNEL_NOTIFICATIONS "', '') "
                        "FROM ins",
                        9, params, NULL, eb);
}

int proj__pg_user_followed(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char follower[32], at[32];
    long long inserted = 0;
    int rc = 0;

    proj__stream_id(ev, follower, sizeof(follower));

    if (rc != 0 || (rc = user_version(conn, ev, follower, eb)) != 0)
        return rc;
    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    const char *params[] = {follower, field(ev, "followee_id"), at};
    /* count it for both users (the same one twice, for a self-follow); a new follow brings the
     * followee's live recipes into the follower's feed (pg_internal.h) */
    /* clang-format off */
    rc = exec_count(conn,
                    "WITH ins AS (INSERT INTO follows (follower_id, followee_id, "
                    "created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1), "
                    "upd AS (" SQL_COUNT_DELTAS("SELECT w.id, w.col, 1 FROM ins, (VALUES "
                                                "($2::bigint, " SQL_COL_FOLLOWERS "), "
                                                "($1::bigint, " SQL_COL_FOLLOWING ")) "
                                                "AS w(id, col)") "), "
                    "fe AS (INSERT INTO feed_entries (user_id, recipe_id) "
                    "SELECT $1::bigint, r.id FROM ins, recipes r "
                    "WHERE r.author_id = $2::bigint ON CONFLICT DO NOTHING) "
                    "SELECT count(*) FROM ins",
                    3, params, &inserted, eb);
    /* clang-format on */
    if (rc != 0 || inserted == 0)
        return rc;
    struct notification n = {params[1], "follow", follower, NULL, NULL};
    return notify(conn, ev, &n, eb);
}

int proj__pg_user_unfollowed(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char follower[32];
    int rc = 0;

    proj__stream_id(ev, follower, sizeof(follower));

    if (rc != 0 || (rc = user_version(conn, ev, follower, eb)) != 0)
        return rc;
    const char *params[] = {follower, field(ev, "followee_id")};
    /* the followee's recipes leave the follower's feed, unless they are the follower's
     * own (a self-follow, which the write model refuses, must not empty one's own feed) */
    /* clang-format off */
    return proj_pg_exec(conn,
                        "WITH del AS (DELETE FROM follows WHERE follower_id = $1 "
                        "AND followee_id = $2 RETURNING 1), "
                        "fe AS (DELETE FROM feed_entries e USING del, recipes r "
                        "WHERE r.author_id = $2::bigint AND $1::bigint <> $2::bigint "
                        "AND e.user_id = $1::bigint AND e.recipe_id = r.id) "
                        SQL_COUNT_DELTAS("SELECT w.id, w.col, -1 FROM del, (VALUES "
                                         "($2::bigint, " SQL_COL_FOLLOWERS "), "
                                         "($1::bigint, " SQL_COL_FOLLOWING ")) AS w(id, col)"),
                        2, params, NULL, eb);
    /* clang-format on */
}

int proj__pg_recipe_liked(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char liker[32], at[32];
    long long inserted = 0;
    int rc = 0;

    proj__stream_id(ev, liker, sizeof(liker));

    if (rc != 0 || (rc = user_version(conn, ev, liker, eb)) != 0)
        return rc;
    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    const char *params[] = {field(ev, "recipe_id"), liker, at};
    /* clang-format off */
    rc = exec_count(conn,
                    "WITH ins AS (INSERT INTO likes (recipe_id, user_id, created_at) "
                    "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING recipe_id), "
                    "upd AS (" SQL_COUNT_DELTAS("SELECT recipe_id, " SQL_COL_LIKES ", 1 "
                                                "FROM ins") ") "
                    "SELECT count(*) FROM ins",
                    3, params, &inserted, eb);
    /* clang-format on */
    if (rc != 0 || inserted == 0)
        return rc;
    struct notification n = {field(ev, "recipe_author_id"), "like", liker, params[0], NULL};
    return notify(conn, ev, &n, eb);
}

int proj__pg_recipe_unliked(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char liker[32];
    int rc = 0;

    proj__stream_id(ev, liker, sizeof(liker));

    if (rc != 0 || (rc = user_version(conn, ev, liker, eb)) != 0)
        return rc;
    const char *params[] = {field(ev, "recipe_id"), liker};
    return proj_pg_exec(conn,
                        "WITH del AS (DELETE FROM likes WHERE recipe_id = $1 "
                        "AND user_id = $2 RETURNING recipe_id) " SQL_COUNT_DELTAS(
                            "SELECT recipe_id, " SQL_COL_LIKES ", -1 FROM del"),
                        2, params, NULL, eb);
}

int proj__pg_recipe_commented(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char comment[32], at[32];
    long long inserted = 0;
    int rc = 0;

    proj__stream_id(ev, comment, sizeof(comment));

    if (rc != 0)
        return rc;
    sp_time_format_rfc3339(ev->time_us, at, sizeof(at));
    const char *params[] = {comment, field(ev, "recipe_id"), field(ev, "user_id"),
                            field(ev, "content"), at};
    /* clang-format off */
    rc = exec_count(conn,
                    "WITH ins AS (INSERT INTO comments (id, recipe_id, user_id, "
                    "content, created_at) VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT DO NOTHING RETURNING recipe_id), "
                    "upd AS (" SQL_COUNT_DELTAS("SELECT recipe_id, " SQL_COL_COMMENTS ", 1 "
                                                "FROM ins") ") "
                    "SELECT count(*) FROM ins",
                    5, params, &inserted, eb);
    /* clang-format on */
    if (rc != 0 || inserted == 0)
        return rc;
    struct notification n = {field(ev, "recipe_author_id"), "comment", params[2], params[1],
                             comment};
    return notify(conn, ev, &n, eb);
}

int proj__pg_comment_deleted(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char comment[32];
    int rc = 0;

    proj__stream_id(ev, comment, sizeof(comment));

    if (rc != 0)
        return rc;
    const char *params[] = {comment};
    return proj_pg_exec(conn,
                        "WITH del AS (DELETE FROM comments WHERE id = $1 "
                        "RETURNING recipe_id) " SQL_COUNT_DELTAS(
                            "SELECT recipe_id, " SQL_COL_COMMENTS ", -1 FROM del"),
                        1, params, NULL, eb);
}

int proj__pg_notifications_read(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char user[32];
    int rc = 0;

    proj__stream_id(ev, user, sizeof(user));

    if (rc != 0 || (rc = user_version(conn, ev, user, eb)) != 0)
        return rc;
    const char *params[] = {user, field(ev, "up_to_id")};
    /* the read mark only moves forward */
    return proj_pg_exec(conn,
                        "INSERT INTO notification_reads (user_id, up_to_id) "
                        "VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE SET up_to_id = "
                        "greatest(notification_reads.up_to_id, EXCLUDED.up_to_id)",
                        2, params, NULL, eb);
}

int proj__pg_session_started(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char session[32];
    int rc = 0;

    proj__stream_id(ev, session, sizeof(session));

    if (rc != 0)
        return rc;
    /* refresh_hash is checked for shape only and never stored */
    const char *params[] = {session, field(ev, "user_id"), field(ev, "expires_at")};
    return proj_pg_exec(conn,
                        "INSERT INTO sessions (id, user_id, expires_at) "
                        "VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                        3, params, NULL, eb);
}

/* Session events of a session this view does not hold change nothing: the query API
 * accepts unknown sessions anyway. */
int proj__pg_session_refreshed(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char session[32];
    int rc = 0;

    proj__stream_id(ev, session, sizeof(session));

    if (rc != 0)
        return rc;
    const char *params[] = {session, field(ev, "expires_at")};
    return proj_pg_exec(conn, "UPDATE sessions SET expires_at = $2 WHERE id = $1", 2, params, NULL,
                        eb);
}

int proj__pg_session_revoked(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    char session[32];
    int rc = 0;

    proj__stream_id(ev, session, sizeof(session));

    if (rc != 0)
        return rc;
    const char *params[] = {session};
    return proj_pg_exec(conn, "UPDATE sessions SET revoked = true WHERE id = $1", 1, params, NULL,
                        eb);
}
