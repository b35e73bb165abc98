/* The query API's PostgreSQL access: a pool of non-blocking libpq connections on libevent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"
#include "qry/db.h"

#include "sp/banned.h"

#define DB_BACKOFF_MIN_MS 100  /* first reconnect delay after a failed attempt */
#define DB_BACKOFF_MAX_MS 2000 /* cap of the doubling reconnect delay */
#define DB_BACKSTOP_MS    1000 /* client-side grace beyond statement_timeout */
#define DB_MAX_PARAMS     5
#define DB_MAX_CHANNELS   4 /* channels of qry_db_listen */

/* RFC 3339 UTC with microseconds, as DESIGN.md writes every timestamp. */
#define DB_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* clang-format off */
/* The recipe in row r as one JSON object; row_to_json keeps the column order. */
#define DB_RECIPE_JSON                                                                             \
    "(SELECT row_to_json(x)::text FROM (SELECT r.id::text AS id, r.author_id::text AS "            \
    "author_id, r.title, r.description, r.ingredients, r.steps, r.tags, "                          \
    "r.image_media_ids::text[] AS image_media_ids, "                                               \
    DB_TS("r.created_at") " AS created_at, " DB_TS("r.updated_at") " AS updated_at, "              \
    "r.version, r.like_count, r.comment_count) x)"

#define DB_USER_JSON                                                                               \
    "(SELECT row_to_json(x)::text FROM (SELECT u.id::text AS id, u.username, u.full_name, "        \
    "u.bio, u.avatar_media_id::text AS avatar_media_id, "                                          \
    DB_TS("u.created_at") " AS created_at, u.version, u.follower_count, u.following_count, "       \
    "u.recipe_count) x)"

/* A user in a follower/following list; u may be NULL-extended (not projected yet). */
#define DB_PERSON_JSON(idcol)                                                                      \
    "(SELECT row_to_json(x)::text FROM (SELECT " idcol "::text AS id, u.username, u.full_name, "   \
    "u.avatar_media_id::text AS avatar_media_id) x)"

#define DB_COMMENT_JSON                                                                            \
    "(SELECT row_to_json(x)::text FROM (SELECT c.id::text AS id, c.recipe_id::text AS recipe_id, " \
    "c.user_id::text AS user_id, u.username, c.content, "                                          \
    DB_TS("c.created_at") " AS created_at) x)"
/* clang-format on */

/*
 * Whether notification n is covered by its recipient's chat read marker: a message
 * notification whose message the recipient has read in its room (their latest span's
 * marker). NotificationsRead covers the others too (n.id <= its up_to_id).
 */
/* clang-format off */
#define DB_NOTIF_CHAT_READ                                                                         \
    "(n.kind = 'message' AND coalesce(n.message_id <= (SELECT cm.read_up_to FROM "                 \
    "stockpot.conversation_members cm WHERE cm.conversation_id = n.conversation_id "               \
    "AND cm.user_id = n.user_id ORDER BY cm.joined_offset DESC LIMIT 1), false))"

/*
 * A notification n of recipient with read marker rd (both may be NULL-extended) and actor
 * u; recipe_id, comment_id, conversation_id and message_id only when set.
 */
#define DB_NOTIF_JSON                                                                              \
    "(jsonb_build_object('id', n.id::text, 'kind', n.kind, 'actor_id', n.actor_id::text, "         \
    "'actor_username', u.username, 'created_at', " DB_TS("n.created_at") ", "                      \
    "'read', n.id <= coalesce(rd.up_to_id, 0) OR " DB_NOTIF_CHAT_READ ") || "                      \
    "jsonb_strip_nulls(jsonb_build_object('recipe_id', n.recipe_id::text, "                        \
    "'comment_id', n.comment_id::text, 'conversation_id', n.conversation_id::text, "               \
    "'message_id', n.message_id::text)))::text"

/* A message msg with its sender u, as GET /chat/rooms/{id}/messages and the chat stream
 * show it to user @p caller: txn_id is the sender's own, null for everyone else. */
#define DB_CHAT_MESSAGE_JSON(caller)                                                               \
    "json_build_object('id', msg.id::text, 'conversation_id', msg.conversation_id::text, "         \
    "'sender_id', msg.sender_id::text, 'sender_username', u.username, 'content', msg.content, "    \
    "'created_at', " DB_TS("msg.created_at") ", 'txn_id', CASE WHEN msg.sender_id = " caller      \
    " THEN msg.txn_id END)::text"

/* Room c as its member me (a conversation_members row) sees it: the current members, the
 * last message, me's unread count (messages after me's marker not sent by me). */
#define DB_CHAT_ROOM_JSON                                                                          \
    "(SELECT row_to_json(x)::text FROM (SELECT c.id::text AS id, c.is_group, c.title, "            \
    "c.admin_id::text AS admin_id, c.creator_id::text AS creator_id, "                             \
    DB_TS("c.created_at") " AS created_at, c.version, "                                            \
    "(SELECT coalesce(json_agg(json_build_object('id', mb.user_id::text, 'username', "             \
    "mu.username) ORDER BY mb.user_id), '[]'::json) FROM stockpot.conversation_members mb "        \
    "LEFT JOIN stockpot.users mu ON mu.id = mb.user_id WHERE mb.conversation_id = c.id "           \
    "AND mb.left_offset IS NULL) AS members, "                                                     \
    "(SELECT json_build_object('id', lm.id::text, 'sender_id', lm.sender_id::text, "               \
    "'sender_username', lu.username, 'content', lm.content, 'created_at', "                        \
    DB_TS("lm.created_at") ") FROM stockpot.messages lm LEFT JOIN stockpot.users lu "              \
    "ON lu.id = lm.sender_id WHERE lm.id = c.last_message_id) AS last_message, "                   \
    "(SELECT count(*) FROM stockpot.messages um WHERE um.conversation_id = c.id "                  \
    "AND um.id > me.read_up_to AND um.sender_id <> me.user_id) AS unread_count, "                  \
    "me.read_up_to::text AS read_up_to, " DB_TS("c.last_activity_at") " AS last_activity_at, "     \
    "c.activity_id::text AS activity_id) x)"

/* A chat event e for the stream of user s.uid: a message as in the history (msg, u: its
 * sender), any other event its payload with the room, the time and, for the events about a
 * member, the member's username (u). */
#define DB_CHAT_EVENT_JSON                                                                         \
    "CASE WHEN e.kind = 'message' THEN coalesce(" DB_CHAT_MESSAGE_JSON("s.uid") ", '{}') "        \
    "ELSE (jsonb_build_object('conversation_id', e.conversation_id::text, 'at', "                  \
    DB_TS("e.created_at") ") || e.data || CASE WHEN e.kind IN ('member_added', "                   \
    "'member_removed', 'read') THEN jsonb_build_object('username', u.username) "                   \
    "ELSE '{}'::jsonb END)::text END"

/* The caller's current span of room $1 */
#define DB_CHAT_MEMBER(room, caller)                                                               \
    "SELECT 1 FROM stockpot.conversation_members me WHERE me.conversation_id = " room              \
    " AND me.user_id = " caller " AND me.left_offset IS NULL"

/* The cursors of the streams' poll: key, user and the cursor (c0, c1, c2) per stream. */
#define DB_STREAMS                                                                                 \
    "unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) "                \
    "AS s(k, uid, c0, c1, c2)"
/* clang-format on */

#define DB_NOTIF_JOINS                                                                             \
    " LEFT JOIN stockpot.users u ON u.id = n.actor_id"                                             \
    " LEFT JOIN stockpot.notification_reads rd ON rd.user_id = n.user_id"

struct db_stmt {
    const char *name;
    const char *sql;
    int nparams;
};

static const struct db_stmt db_stmts[QRY_STMT_COUNT] = {
    [QRY_STMT_USER] = {"qry_user",
                       "SELECT u.version, " DB_USER_JSON " FROM stockpot.users u WHERE u.id = $1",
                       1},
    [QRY_STMT_RECIPE] = {"qry_recipe",
                         "SELECT r.version, " DB_RECIPE_JSON
                         " FROM stockpot.recipes r WHERE r.id = $1",
                         1},
    [QRY_STMT_RECIPES_ALL] = {"qry_recipes_all",
                              "SELECT r.id, " DB_RECIPE_JSON " FROM stockpot.recipes r"
                              " WHERE r.id < $1 AND r.id > $2 ORDER BY r.id DESC LIMIT $3",
                              3},
    [QRY_STMT_RECIPES_BY_TAG] = {"qry_recipes_by_tag",
                                 "SELECT r.id, " DB_RECIPE_JSON
                                 " FROM stockpot.recipe_tags t JOIN stockpot.recipes r"
                                 " ON r.id = t.recipe_id WHERE t.tag = $1 AND t.recipe_id < $2"
                                 " AND t.recipe_id > $3 ORDER BY t.recipe_id DESC LIMIT $4",
                                 4},
    [QRY_STMT_RECIPES_BY_USER] = {"qry_recipes_by_user",
                                  "SELECT r.id, " DB_RECIPE_JSON " FROM stockpot.recipes r"
                                  " WHERE r.author_id = $1 AND r.id < $2 AND r.id > $3"
                                  " ORDER BY r.id DESC LIMIT $4",
                                  4},
    [QRY_STMT_USER_EXISTS] = {"qry_user_exists", "SELECT 1 FROM stockpot.users WHERE id = $1", 1},
    [QRY_STMT_CHECKPOINTS] = {"qry_checkpoints",
                              "SELECT partition, next_offset FROM stockpot.checkpoints"
                              " WHERE projection = $1",
                              1},
    [QRY_STMT_SCHEMA] = {"qry_schema", "SELECT to_regclass('stockpot.checkpoints') IS NOT NULL", 0},
    [QRY_STMT_RECIPE_ME] = {"qry_recipe_me",
                            "SELECT r.version, " DB_RECIPE_JSON ", EXISTS (SELECT 1 FROM"
                            " stockpot.likes l WHERE l.recipe_id = r.id AND l.user_id = $2)"
                            " FROM stockpot.recipes r WHERE r.id = $1",
                            2},
    [QRY_STMT_RECIPE_EXISTS] = {"qry_recipe_exists", "SELECT 1 FROM stockpot.recipes WHERE id = $1",
                                1},
    [QRY_STMT_FOLLOWERS] =
        {"qry_followers",
         "SELECT f.follower_id, " DB_PERSON_JSON(
             "f.follower_id") " FROM stockpot.follows f LEFT JOIN stockpot.users u"
                              " ON u.id = f.follower_id WHERE f.followee_id = $1"
                              " AND f.follower_id < $2 AND f.follower_id > $3"
                              " ORDER BY f.follower_id DESC LIMIT $4",
         4},
    [QRY_STMT_FOLLOWING] =
        {"qry_following",
         "SELECT f.followee_id, " DB_PERSON_JSON(
             "f.followee_id") " FROM stockpot.follows f LEFT JOIN stockpot.users u"
                              " ON u.id = f.followee_id WHERE f.follower_id = $1"
                              " AND f.followee_id < $2 AND f.followee_id > $3"
                              " ORDER BY f.followee_id DESC LIMIT $4",
         4},
    [QRY_STMT_COMMENTS] = {"qry_comments",
                           "SELECT c.id, " DB_COMMENT_JSON " FROM stockpot.comments c"
                           " LEFT JOIN stockpot.users u ON u.id = c.user_id"
                           " WHERE c.recipe_id = $1 AND c.id < $2 AND c.id > $3"
                           " AND EXISTS (SELECT 1 FROM stockpot.recipes r WHERE r.id = $1)"
                           " ORDER BY c.id DESC LIMIT $4",
                           4},
    [QRY_STMT_FEED] = {"qry_feed",
                       "SELECT r.id, " DB_RECIPE_JSON " FROM stockpot.feed_entries e"
                       " JOIN stockpot.recipes r ON r.id = e.recipe_id WHERE e.user_id = $1"
                       " AND e.recipe_id < $2 AND e.recipe_id > $3"
                       " ORDER BY e.recipe_id DESC LIMIT $4",
                       4},
    [QRY_STMT_NOTIFICATIONS] = {"qry_notifications",
                                "SELECT n.id, " DB_NOTIF_JSON
                                " FROM stockpot.notifications n" DB_NOTIF_JOINS
                                " WHERE n.user_id = $1 AND n.id < $2"
                                " AND n.id > $3 ORDER BY n.id DESC LIMIT $4",
                                4},
    [QRY_STMT_UNREAD] = {"qry_unread",
                         "SELECT count(*) FROM stockpot.notifications n WHERE n.user_id = $1"
                         " AND n.id > coalesce((SELECT rd.up_to_id FROM"
                         " stockpot.notification_reads rd WHERE rd.user_id = $1), 0)"
                         " AND NOT " DB_NOTIF_CHAT_READ,
                         1},
    [QRY_STMT_SESSION] = {"qry_session",
                          "SELECT s.user_id, s.revoked OR s.expires_at <= now()"
                          " FROM stockpot.sessions s WHERE s.id = $1",
                          1},
    [QRY_STMT_STREAM_START] = {"qry_stream_start",
                               "SELECT (SELECT n.id FROM stockpot.notifications n"
                               " WHERE n.partition = $2::integer AND n.\"offset\" = $3::bigint"
                               " AND n.user_id = $1::bigint), 0, 0, coalesce((SELECT max(n.id)"
                               " FROM stockpot.notifications n WHERE n.user_id = $1::bigint), 0),"
                               " 0, 0",
                               3},
    [QRY_STMT_STREAM_POLL] =
        {"qry_stream_poll",
         "SELECT s.k, n.id, 0, 0, n.partition, n.\"offset\", 'notification', " DB_NOTIF_JSON
         " FROM " DB_STREAMS " CROSS JOIN LATERAL (SELECT * FROM"
         " stockpot.notifications n WHERE n.user_id = s.uid"
         " AND n.id > s.c0 ORDER BY n.id LIMIT 50) n" DB_NOTIF_JOINS " ORDER BY s.k, n.id",
         5},
    [QRY_STMT_CHAT_ROOMS] = {"qry_chat_rooms",
                             "SELECT c.activity_id, " DB_CHAT_ROOM_JSON
                             " FROM stockpot.conversation_members me JOIN stockpot.conversations c"
                             " ON c.id = me.conversation_id WHERE me.user_id = $1"
                             " AND me.left_offset IS NULL AND c.activity_id < $2"
                             " AND c.activity_id > $3 ORDER BY c.activity_id DESC LIMIT $4",
                             4},
    [QRY_STMT_CHAT_ROOM] = {"qry_chat_room",
                            "SELECT c.version, me.user_id IS NOT NULL, CASE WHEN me.user_id IS NOT"
                            " NULL THEN " DB_CHAT_ROOM_JSON " END FROM stockpot.conversations c"
                            " LEFT JOIN stockpot.conversation_members me"
                            " ON me.conversation_id = c.id AND me.user_id = $2::bigint"
                            " AND me.left_offset IS NULL WHERE c.id = $1",
                            2},
    [QRY_STMT_CHAT_MESSAGES] =
        {"qry_chat_messages",
         "SELECT msg.id, " DB_CHAT_MESSAGE_JSON(
             "$2::bigint") " FROM stockpot.messages msg LEFT JOIN stockpot.users u"
                           " ON u.id = msg.sender_id WHERE msg.conversation_id = $1::bigint"
                           " AND msg.id < $3 AND msg.id > $4 AND EXISTS (" DB_CHAT_MEMBER(
                               "$1::bigint", "$2::bigint") ")"
                                                           " ORDER BY msg.id DESC LIMIT $5",
         5},
    [QRY_STMT_CHAT_ACCESS] = {"qry_chat_access",
                              "SELECT EXISTS (SELECT 1 FROM stockpot.conversations"
                              " WHERE id = $1::bigint), EXISTS (" DB_CHAT_MEMBER("$1::bigint",
                                                                                 "$2::bigint") ")",
                              2},
    [QRY_STMT_CHAT_STREAM_START] =
        {"qry_chat_stream_start",
         "SELECT e.seq, e.partition, e.\"offset\", m.s, 2147483647, 9223372036854775807"
         " FROM (SELECT coalesce(max(x.seq), 0) AS s FROM stockpot.conversation_members mb"
         " CROSS JOIN LATERAL (SELECT ce.seq FROM stockpot.chat_events ce"
         " WHERE ce.conversation_id = mb.conversation_id ORDER BY ce.seq DESC LIMIT 1) x"
         " WHERE mb.user_id = $1::bigint) m LEFT JOIN stockpot.chat_events e"
         " ON e.partition = $2::integer AND e.\"offset\" = $3::bigint",
         3},
    [QRY_STMT_CHAT_STREAM_POLL] =
        {"qry_chat_stream_poll",
         "SELECT s.k, e.seq, e.partition, e.\"offset\", e.partition, e.\"offset\", "
         "e.kind, " DB_CHAT_EVENT_JSON ", e.conversation_id FROM " DB_STREAMS
         " CROSS JOIN LATERAL (SELECT e.* FROM"
         " stockpot.conversation_members mb JOIN stockpot.chat_events e"
         " ON e.conversation_id = mb.conversation_id AND e.\"offset\" >= mb.joined_offset"
         " AND (mb.left_offset IS NULL OR e.\"offset\" <= mb.left_offset)"
         " WHERE mb.user_id = s.uid AND (e.seq, e.partition, e.\"offset\") > (s.c0, s.c1, s.c2)"
         " ORDER BY e.seq, e.partition, e.\"offset\" LIMIT 50) e"
         /* the message and the user of each row by key: as plain joins, the planner's
          * estimate for a thousand streams hashes all messages (40 ms instead of 5) */
         " LEFT JOIN LATERAL (SELECT * FROM stockpot.messages m WHERE e.kind = 'message'"
         " AND m.id = e.message_id OFFSET 0) msg ON true"
         " LEFT JOIN LATERAL (SELECT x.username FROM stockpot.users x WHERE x.id ="
         " coalesce(msg.sender_id, (e.data->>'user_id')::bigint) OFFSET 0) u ON true"
         " ORDER BY s.k, e.seq, e.partition, e.\"offset\"",
         5},
};

struct db_query {
    TAILQ_ENTRY(db_query) link;
    enum qry_stmt stmt;
    char *params[DB_MAX_PARAMS]; /* owned copies; NULL = SQL NULL */
    qry_db_fn fn;
    void *ud;
    int64_t deadline_us; /* monotonic; latest start of execution */
    bool retried;        /* re-sent once already after its connection broke */
    PGresult *res;       /* owned once completed; may be NULL */
    int err;             /* set once completed */
};

TAILQ_HEAD(db_query_list, db_query);

enum db_state {
    DB_DOWN,       /* no connection; the timer starts the next attempt */
    DB_CONNECTING, /* PQconnectPoll in progress; the timer is the connect deadline */
    DB_SETUP,      /* session SETs in flight */
    DB_IDLE,       /* ready; the read event notices a server-side close */
    DB_BUSY,       /* q in flight; the timer is the backstop deadline */
};

struct db_conn {
    struct qry_db *db; /* the owning pool */
    PGconn *conn;      /* owned; NULL while DB_DOWN */
    struct event *io;  /* owned; on PQsocket(conn); NULL while DB_DOWN */
    struct event *timer;
    enum db_state state;
    bool flushing;  /* PQflush has more to send: also wait for writability */
    bool preparing; /* DB_BUSY: the PREPARE of q's statement is in flight */
    bool prepared[QRY_STMT_COUNT];
    struct db_query *q; /* owned while DB_BUSY */
    PGresult *res;      /* owned; first result (or first error) of the command in flight */
    int backoff_ms;     /* delay before the next attempt if this one fails */
    bool listener;      /* the LISTEN connection of qry_db_listen: never runs queries */
};

struct qry_db {
    struct event_base *base; /* borrowed */
    char *conninfo;          /* owned */
    int timeout_ms;
    size_t queue_max;
    int nconns;
    struct db_conn *conns;    /* owned array of nconns */
    struct db_conn *listener; /* owned; NULL until qry_db_listen */
    struct db_channel {
        char *name;                   /* owned; the channel listened on */
        qry_db_notify_fn fn;          /* called on its notifications and after each connect */
        qry_db_payload_fn payload_fn; /* called with each notification's payload, or NULL */
        void *ud;
        bool heard; /* notified in the burst being read */
    } channels[DB_MAX_CHANNELS];
    int nchannels;
    struct db_query_list queue; /* waiting for a connection, oldest (earliest deadline) first */
    size_t queued;
    struct event *queue_timer; /* fires at the deadline of the queue's head */
    struct db_query_list done; /* completed; callbacks not called yet */
    struct event *done_ev;     /* activated while done is not empty */
    bool outage;               /* the latest connection attempt failed */
    bool schema_ok;            /* the latest schema check found the migrations */
    bool checking;             /* a schema check is in flight */
    bool closing;              /* qry_db_free is running */
};

static void db_pump(struct qry_db *db);
static void db_conn_start(struct db_conn *c);
static void db_conn_on_io(evutil_socket_t fd, short what, void *arg);
static void db_conn_broken(struct db_conn *c, const char *why);

static void db_query_free(struct db_query *q)
{
    for (int i = 0; i < DB_MAX_PARAMS; i++)
        free(q->params[i]);
    PQclear(q->res);
    free(q);
}

/* Hand @p q (owned) with @p res (owned, may be NULL) to the done list; see db_on_done. */
static void db_complete(struct qry_db *db, struct db_query *q, PGresult *res, int err)
{
    q->res = res;
    q->err = err;
    TAILQ_INSERT_TAIL(&db->done, q, link);
    event_active(db->done_ev, EV_TIMEOUT, 0);
}

/* Every callback runs here, so none runs inside qry_db_query or in the middle of I/O. */
static void db_on_done(evutil_socket_t fd, short what, void *arg)
{
    struct qry_db *db = arg;
    struct db_query *q;

    (void)fd;
    (void)what;
    while ((q = TAILQ_FIRST(&db->done)) != NULL) {
        TAILQ_REMOVE(&db->done, q, link);
        q->fn(q->ud, q->err == 0 ? q->res : NULL, q->err);
        db_query_free(q);
    }
}

static bool db_any_up(const struct qry_db *db)
{
    for (int i = 0; i < db->nconns; i++) {
        if (db->conns[i].state == DB_IDLE || db->conns[i].state == DB_BUSY)
            return true;
    }
    return false;
}

static void db_fail_queue(struct qry_db *db, int err)
{
    struct db_query *q;

    while ((q = TAILQ_FIRST(&db->queue)) != NULL) {
        TAILQ_REMOVE(&db->queue, q, link);
        db->queued--;
        db_complete(db, q, NULL, err);
    }
}

static void db_arm_ms(struct event *timer, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    evtimer_add(timer, &tv);
}

/* Watch the connection's socket for @p what (EV_READ and/or EV_WRITE). */
static void db_conn_watch(struct db_conn *c, short what)
{
    evutil_socket_t fd = PQsocket(c->conn);

    what |= EV_PERSIST;
    if (c->io != NULL && event_get_fd(c->io) == fd && event_get_events(c->io) == what)
        return;
    if (c->io != NULL)
        event_free(c->io);
    c->io = event_new(c->db->base, fd, what, db_conn_on_io, c);
    SP_ASSERT(c->io != NULL);
    event_add(c->io, NULL);
}

/* Close the connection (if any) and clear its per-connection state. */
static void db_conn_close(struct db_conn *c)
{
    if (c->io != NULL)
        event_free(c->io);
    c->io = NULL;
    evtimer_del(c->timer);
    PQfinish(c->conn);
    c->conn = NULL;
    PQclear(c->res);
    c->res = NULL;
    c->flushing = false;
    c->preparing = false;
    memset(c->prepared, 0, sizeof(c->prepared));
    c->state = DB_DOWN;
}

/* A connection attempt failed: retry after the backoff; in an outage, fail the queue. */
static void db_conn_failed(struct db_conn *c, const char *why)
{
    struct qry_db *db = c->db;

    sp_log(db->outage || c->listener ? SP_LOG_DEBUG : SP_LOG_WARN,
           "%scould not connect to postgresql: %s", c->listener ? "listener " : "", why);
    db_conn_close(c);
    db_arm_ms(c->timer, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS : c->backoff_ms * 2;
    if (c->listener)
        return; /* the pool's own connections report outages */
    db->outage = true;
    if (!db_any_up(db))
        db_fail_queue(db, SP_EUNAVAIL);
}

/* Flush after a PQsend*; @return false if the connection broke (already handled). */
static bool db_conn_flush(struct db_conn *c)
{
    int rc = PQflush(c->conn);

    if (rc < 0) {
        db_conn_broken(c, PQerrorMessage(c->conn));
        return false;
    }
    c->flushing = rc == 1;
    db_conn_watch(c, (short)(EV_READ | (c->flushing ? EV_WRITE : 0)));
    return true;
}

/* Connected: make the session read-only with a statement timeout (the listener LISTENs
 * to every channel first). */
static void db_conn_setup(struct db_conn *c)
{
    struct sp_buf sql;
    int rc, ok;

    sp_buf_init(&sql, 0);
    rc = sp_buf_addf(&sql, "SET statement_timeout = %d; ", c->db->timeout_ms);
    for (int i = 0; c->listener && i < c->db->nchannels; i++)
        rc |= sp_buf_addf(&sql, "LISTEN %s; ", c->db->channels[i].name);
    rc |= sp_buf_adds(&sql, "SET default_transaction_read_only = on");
    SP_ASSERT(rc == 0); /* the buffer has no cap */
    ok = PQsetnonblocking(c->conn, 1) == 0 && PQsendQuery(c->conn, sql.data);
    sp_buf_release(&sql);
    if (!ok) {
        db_conn_failed(c, PQerrorMessage(c->conn));
        return;
    }
    c->state = DB_SETUP;
    db_conn_flush(c);
}

static void db_on_schema(void *ud, const PGresult *res, int err)
{
    struct qry_db *db = ud;

    db->checking = false;
    if (err == 0)
        db->schema_ok = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
}

static void db_check_schema(struct qry_db *db)
{
    if (db->checking || db->closing)
        return;
    db->checking = true;
    qry_db_query(db, QRY_STMT_SCHEMA, NULL, db_on_schema, db);
}

/* Take the notifications libpq holds, marking their channels heard. */
static void db_conn_drain_notifies(struct db_conn *c)
{
    struct qry_db *db = c->db;
    PGnotify *n;

    while ((n = PQnotifies(c->conn)) != NULL) {
        for (int i = 0; i < db->nchannels; i++) {
            if (strcmp(n->relname, db->channels[i].name) != 0)
                continue;
            db->channels[i].heard = true;
            if (db->channels[i].payload_fn != NULL)
                db->channels[i].payload_fn(db->channels[i].ud, n->extra);
        }
        PQfreemem(n);
    }
}

/* Call the callbacks of the channels heard (@p all: of every channel), once each. */
static void db_tell_listeners(struct qry_db *db, bool all)
{
    for (int i = 0; i < db->nchannels; i++) {
        struct db_channel *ch = &db->channels[i];
        bool heard = ch->heard || all;

        ch->heard = false;
        if (heard)
            ch->fn(ch->ud);
    }
}

static void db_conn_setup_done(struct db_conn *c, PGresult *res)
{
    struct qry_db *db = c->db;

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_conn_failed(c, PQresultErrorMessage(res));
        PQclear(res);
        return;
    }
    PQclear(res);
    evtimer_del(c->timer);
    if (c->listener) {
        sp_log(SP_LOG_INFO, "listening for postgresql notifications on %d channels", db->nchannels);
        c->state = DB_IDLE;
        c->backoff_ms = DB_BACKOFF_MIN_MS;
        db_conn_drain_notifies(c);
        db_tell_listeners(db, true); /* whatever was sent while not listening */
        return;
    }
    if (!db_any_up(db))
        sp_log(SP_LOG_INFO, "connected to postgresql");
    c->state = DB_IDLE;
    c->backoff_ms = DB_BACKOFF_MIN_MS;
    db->outage = false;
    if (!db->schema_ok)
        db_check_schema(db);
    db_pump(db);
}

static void db_conn_poll_connect(struct db_conn *c)
{
    switch (PQconnectPoll(c->conn)) {
    case PGRES_POLLING_READING:
        db_conn_watch(c, EV_READ);
        break;
    case PGRES_POLLING_WRITING:
        db_conn_watch(c, EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        db_conn_setup(c);
        break;
    default:
        db_conn_failed(c, PQerrorMessage(c->conn));
        break;
    }
}

/* libpq would print notices (and a FATAL sent to an idle session) raw on stderr. */
static void db_on_notice(void *arg, const PGresult *res)
{
    (void)arg;
    sp_log(SP_LOG_INFO, "postgresql: %s", PQresultErrorMessage(res));
}

static void db_conn_start(struct db_conn *c)
{
    /* jit=off: every statement reads a page by key; a misestimate must not buy a JIT
     * compilation (tens to hundreds of ms) on the request path */
    const char *const keys[] = {"dbname", "client_encoding", "application_name", "options", NULL};
    const char *const vals[] = {c->db->conninfo, "UTF8",
                                c->listener ? "stockpot-query-api-listener" : "stockpot-query-api",
                                "-c jit=off", NULL};

    c->conn = PQconnectStartParams(keys, vals, 1);
    if (c->conn == NULL || PQstatus(c->conn) == CONNECTION_BAD) {
        db_conn_failed(c, c->conn != NULL ? PQerrorMessage(c->conn) : "out of memory");
        return;
    }
    PQsetNoticeReceiver(c->conn, db_on_notice, NULL);
    c->state = DB_CONNECTING;
    db_arm_ms(c->timer, c->db->timeout_ms); /* PQconnectPoll ignores connect_timeout */
    db_conn_watch(c, EV_WRITE);             /* libpq: start as if PGRES_POLLING_WRITING */
}

/* Send q's statement: PREPARE first on a connection that has not seen it. */
static void db_conn_send(struct db_conn *c)
{
    const struct db_stmt *s = &db_stmts[c->q->stmt];
    int ok;

    c->preparing = !c->prepared[c->q->stmt];
    if (c->preparing)
        ok = PQsendPrepare(c->conn, s->name, s->sql, s->nparams, NULL);
    else
        ok = PQsendQueryPrepared(c->conn, s->name, s->nparams, (const char *const *)c->q->params,
                                 NULL, NULL, 0);
    if (!ok) {
        db_conn_broken(c, PQerrorMessage(c->conn));
        return;
    }
    db_conn_flush(c);
}

static void db_conn_dispatch(struct db_conn *c, struct db_query *q)
{
    c->q = q;
    c->state = DB_BUSY;
    db_arm_ms(c->timer, (int64_t)c->db->timeout_ms + DB_BACKSTOP_MS);
    db_conn_send(c);
}

/* SQLSTATE 57014 query_canceled (statement_timeout) and 55P03 lock_not_available. */
static int db_classify(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return 0;
    if (state != NULL && (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0))
        return SP_ETIMEDOUT;
    return SP_EDB;
}

/* The command in flight on a DB_BUSY connection finished with @p res (owned). */
static void db_conn_query_done(struct db_conn *c, PGresult *res)
{
    struct db_query *q = c->q;
    int err;

    if (PQstatus(c->conn) == CONNECTION_BAD) {
        PQclear(res);
        db_conn_broken(c, PQerrorMessage(c->conn));
        return;
    }
    if (c->preparing && PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        c->prepared[q->stmt] = true;
        db_conn_send(c);
        return;
    }
    evtimer_del(c->timer);
    c->q = NULL;
    c->state = DB_IDLE;
    err = db_classify(res);
    if (err != 0)
        sp_log(err == SP_EDB ? SP_LOG_ERROR : SP_LOG_WARN, "query %s failed: %s",
               db_stmts[q->stmt].name, PQresultErrorMessage(res));
    db_complete(c->db, q, res, err);
    db_pump(c->db);
}

static bool db_is_error(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);

    return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE;
}

/*
 * Read what arrived; keep the first result, or the first error.
 * @return 1 when the command finished (PQgetResult gave NULL), 0 if more is to come,
 *         -1 if the connection broke.
 */
static int db_conn_collect(struct db_conn *c)
{
    PGresult *res;

    if (!PQconsumeInput(c->conn))
        return -1;
    while (!PQisBusy(c->conn)) {
        res = PQgetResult(c->conn);
        if (res == NULL)
            return 1;
        if (c->res == NULL || (!db_is_error(c->res) && db_is_error(res))) {
            PQclear(c->res);
            c->res = res;
        } else {
            PQclear(res);
        }
    }
    return 0;
}

/* Socket events in DB_SETUP, DB_BUSY and DB_IDLE. */
static void db_conn_io(struct db_conn *c, short what)
{
    PGresult *res;
    int rc;

    if (c->flushing && (what & EV_WRITE) != 0 && !db_conn_flush(c))
        return;
    if ((what & EV_READ) == 0)
        return;
    rc = db_conn_collect(c);
    if (rc < 0 || (c->state == DB_IDLE && PQstatus(c->conn) == CONNECTION_BAD)) {
        db_conn_broken(c, PQerrorMessage(c->conn));
        return;
    }
    if (c->state == DB_IDLE) {
        PQclear(c->res); /* nothing is expected: drop strays */
        c->res = NULL;
        if (c->listener) {
            db_conn_drain_notifies(c);
            db_tell_listeners(c->db, false);
        }
        return;
    }
    if (rc == 0)
        return;
    res = c->res;
    c->res = NULL;
    if (c->state == DB_SETUP)
        db_conn_setup_done(c, res);
    else
        db_conn_query_done(c, res);
}

static void db_conn_on_io(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;

    (void)fd;
    if (c->state == DB_CONNECTING)
        db_conn_poll_connect(c);
    else
        db_conn_io(c, what);
}

/*
 * An established connection was lost (server restart, pg_terminate_backend, network) or
 * dropped by the backstop: reconnect at once; re-send the query in flight once.
 */
static void db_conn_broken(struct db_conn *c, const char *why)
{
    struct qry_db *db = c->db;
    struct db_query *q = c->q;

    if (c->state == DB_SETUP || c->state == DB_CONNECTING) {
        db_conn_failed(c, why);
        return;
    }
    sp_log(SP_LOG_WARN, "postgresql %sconnection lost: %s", c->listener ? "listener " : "", why);
    c->q = NULL;
    db_conn_close(c);
    c->backoff_ms = DB_BACKOFF_MIN_MS;
    db_arm_ms(c->timer, 0);
    if (c->listener)
        return; /* it has no query and no part in the queue */
    if (q != NULL && !q->retried && !db->closing) {
        q->retried = true;
        TAILQ_INSERT_HEAD(&db->queue, q, link);
        db->queued++;
    } else if (q != NULL) {
        db_complete(db, q, NULL, SP_EUNAVAIL);
    }
    db_arm_ms(db->queue_timer, 0); /* pump from the loop: no recursion through db_pump */
}

static void db_conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    struct db_query *q = c->q;

    (void)fd;
    (void)what;
    if (c->state == DB_DOWN) {
        db_conn_start(c);
    } else if (c->state == DB_CONNECTING || c->state == DB_SETUP) {
        db_conn_failed(c, "connection timed out");
    } else if (c->state == DB_BUSY) {
        sp_log(SP_LOG_WARN, "query %s got no answer within %d ms, dropping the connection",
               db_stmts[q->stmt].name, c->db->timeout_ms + DB_BACKSTOP_MS);
        c->q = NULL;
        db_complete(c->db, q, NULL, SP_ETIMEDOUT);
        db_conn_broken(c, "no answer from the server");
    }
}

static void db_arm_queue_timer(struct qry_db *db)
{
    struct db_query *q = TAILQ_FIRST(&db->queue);
    int64_t left_us;

    if (q == NULL) {
        evtimer_del(db->queue_timer);
        return;
    }
    left_us = q->deadline_us - sp_time_mono_us();
    db_arm_ms(db->queue_timer, left_us > 0 ? left_us / 1000 + 1 : 0);
}

/* Expire overdue queries, start waiting ones on idle connections, fail fast in an outage. */
static void db_pump(struct qry_db *db)
{
    int64_t now_us = sp_time_mono_us();
    struct db_query *q;
    int i = 0;

    while ((q = TAILQ_FIRST(&db->queue)) != NULL && q->deadline_us <= now_us) {
        TAILQ_REMOVE(&db->queue, q, link);
        db->queued--;
        db_complete(db, q, NULL, SP_ETIMEDOUT);
    }
    while ((q = TAILQ_FIRST(&db->queue)) != NULL) {
        while (i < db->nconns && db->conns[i].state != DB_IDLE)
            i++;
        if (i == db->nconns)
            break;
        TAILQ_REMOVE(&db->queue, q, link);
        db->queued--;
        db_conn_dispatch(&db->conns[i], q);
    }
    if (db->outage && !db_any_up(db))
        db_fail_queue(db, SP_EUNAVAIL);
    db_arm_queue_timer(db);
}

static void db_on_queue_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    db_pump(arg);
}

struct qry_db *qry_db_new(struct event_base *base, const struct qry_db_opts *opts)
{
    struct qry_db *db = sp_xcalloc(1, sizeof(*db));

    SP_ASSERT(opts->conns >= 1 && opts->timeout_ms >= 1);
    db->base = base;
    db->conninfo = sp_xstrdup(opts->conninfo != NULL ? opts->conninfo : "");
    db->timeout_ms = opts->timeout_ms;
    db->queue_max = opts->queue_max;
    db->nconns = opts->conns;
    TAILQ_INIT(&db->queue);
    TAILQ_INIT(&db->done);
    db->queue_timer = evtimer_new(base, db_on_queue_timer, db);
    db->done_ev = event_new(base, -1, 0, db_on_done, db);
    SP_ASSERT(db->queue_timer != NULL && db->done_ev != NULL);
    db->conns = sp_xcalloc((size_t)db->nconns, sizeof(*db->conns));
    for (int i = 0; i < db->nconns; i++) {
        struct db_conn *c = &db->conns[i];

        c->db = db;
        c->backoff_ms = DB_BACKOFF_MIN_MS;
        c->timer = evtimer_new(base, db_conn_on_timer, c);
        SP_ASSERT(c->timer != NULL);
        db_conn_start(c);
    }
    return db;
}

void qry_db_free(struct qry_db *db)
{
    if (db == NULL)
        return;
    db->closing = true;
    for (int i = 0; i < db->nconns; i++) {
        if (db->conns[i].q != NULL)
            db_complete(db, db->conns[i].q, NULL, SP_EUNAVAIL);
        db->conns[i].q = NULL;
    }
    db_fail_queue(db, SP_EUNAVAIL);
    db_on_done(-1, 0, db); /* queries submitted meanwhile complete in the same loop */
    for (int i = 0; i < db->nconns; i++) {
        db_conn_close(&db->conns[i]);
        event_free(db->conns[i].timer);
    }
    free(db->conns);
    if (db->listener != NULL) {
        db_conn_close(db->listener);
        event_free(db->listener->timer);
        free(db->listener);
    }
    for (int i = 0; i < db->nchannels; i++)
        free(db->channels[i].name);
    event_free(db->queue_timer);
    event_free(db->done_ev);
    free(db->conninfo);
    free(db);
}

void qry_db_query(
    struct qry_db *db, enum qry_stmt stmt, const char *const *params, qry_db_fn fn, void *ud)
{
    struct db_query *q = sp_xcalloc(1, sizeof(*q));

    SP_ASSERT(stmt >= 0 && stmt < QRY_STMT_COUNT && db_stmts[stmt].nparams <= DB_MAX_PARAMS);
    SP_ASSERT(params != NULL || db_stmts[stmt].nparams == 0);
    q->stmt = stmt;
    q->fn = fn;
    q->ud = ud;
    q->deadline_us = sp_time_mono_us() + (int64_t)db->timeout_ms * 1000;
    for (int i = 0; params != NULL && i < db_stmts[stmt].nparams; i++)
        q->params[i] = params[i] != NULL ? sp_xstrdup(params[i]) : NULL;
    if (db->closing || (db->outage && !db_any_up(db))) {
        db_complete(db, q, NULL, SP_EUNAVAIL);
        return;
    }
    if (db->queued >= db->queue_max) {
        sp_log(SP_LOG_WARN, "too many queries waiting for postgresql (%zu)", db->queued);
        db_complete(db, q, NULL, SP_EUNAVAIL);
        return;
    }
    TAILQ_INSERT_TAIL(&db->queue, q, link);
    db->queued++;
    db_pump(db);
}

static void db_why(struct sp_buf *why, const char *reason)
{
    int rc = sp_buf_adds(why, reason);

    (void)rc; /* a reason cut short by the buffer's cap is still a reason */
}

bool qry_db_ready(struct qry_db *db, struct sp_buf *why)
{
    if (!db_any_up(db)) {
        db_why(why, "postgresql is unreachable");
        return false;
    }
    if (!db->schema_ok) {
        db_check_schema(db);
        db_why(why, "migrations not applied: stockpot.checkpoints is missing");
        return false;
    }
    return true;
}

size_t qry_db_queued(const struct qry_db *db)
{
    return db->queued;
}

void qry_db_listen(struct qry_db *db, const char *channel, qry_db_notify_fn fn, void *ud)
{
    struct db_channel *ch;
    struct db_conn *c;

    SP_ASSERT(db->nchannels < DB_MAX_CHANNELS && fn != NULL && channel[0] != '\0');
    for (const char *p = channel; *p != '\0'; p++)
        SP_ASSERT((*p >= 'a' && *p <= 'z') || *p == '_');
    for (int i = 0; i < db->nchannels; i++)
        SP_ASSERT(strcmp(db->channels[i].name, channel) != 0);
    ch = &db->channels[db->nchannels++];
    ch->name = sp_xstrdup(channel);
    ch->fn = fn;
    ch->ud = ud;
    if (db->listener != NULL) {
        c = db->listener;
        /* LISTENing already (or about to): reconnect to LISTEN to this channel too */
        if (c->state == DB_SETUP || c->state == DB_IDLE) {
            db_conn_close(c);
            db_arm_ms(c->timer, 0);
        }
        return;
    }
    c = sp_xcalloc(1, sizeof(*c));
    c->db = db;
    c->listener = true;
    c->backoff_ms = DB_BACKOFF_MIN_MS;
    c->timer = evtimer_new(db->base, db_conn_on_timer, c);
    SP_ASSERT(c->timer != NULL);
    db->listener = c;
    db_conn_start(c);
}

void qry_db_listen_payloads(struct qry_db *db, const char *channel, qry_db_payload_fn fn)
{
    for (int i = 0; i < db->nchannels; i++) {
        if (strcmp(db->channels[i].name, channel) == 0) {
            db->channels[i].payload_fn = fn;
            return;
        }
    }
    SP_ASSERT(!"qry_db_listen_payloads before qry_db_listen");
}

bool qry_db_listening(const struct qry_db *db)
{
    return db->listener != NULL && db->listener->state == DB_IDLE;
}
