/*
 * The chat folds of the "pg" projection (issue 12, schemas/sql/005_chat.sql): rooms, their
 * membership spans and read markers, messages, the room events of GET /chat/stream
 * (chat_events) and message notifications.
 *
 * Each chat type has one statement, written for a set of events (SQL_ROWS): pg_fold_set.c
 * folds a round's events of the type with it, and the per-event fold below runs it on a set
 * of one and names the reason when it folds nothing. Every event of a room is on the room's
 * stream, so the room's ConversationCreated and the membership changes before an event are
 * folded before it (earlier in its partition, or an earlier round); an event of a room the
 * view does not hold, a message from or a read mark of a user who is not a member, or the
 * removal of one who is not, is poison (SP_ENOTFOUND), as ProfileUpdated of an unknown
 * user is. A MemberAdded of a member changes nothing but the room's version.
 *
 * Message notifications (pg_internal.h has the set rules): a message notifies every other
 * member. A member has at most one pending message notification per room (pending: not
 * covered by their MessagesRead since, and not removed since); a new message moves it to
 * itself (id, position, time, actor, message_id) instead of adding one, so a member sees one
 * notification per room, the newest, unread again if NotificationsRead covered it before.
 * Only the room's own stream decides this, never NotificationsRead (another partition), so
 * a rebuild gives the same rows; the query API derives "read" from both read marks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/catalogue.h"
#include "pg_internal.h"
#include "proj/pg.h"
#include "sp/pg_channels.h"

#include "sp/banned.h"

/* The answer of every chat statement: (events folded @p ok, events whose room exists
 * @p rooms), and one NOTIFY of the chat streams when the statement wrote chat_events (e),
 * its payload the ids of the rooms written, comma-separated (empty when they would not
 * fit PostgreSQL's 8,000-byte payload: then every stream may have rows), so that the query
 * API polls only the WebSockets of those rooms (query-api/src/sse.h). */
#define SQL_CHAT_ANSWER(ok, rooms)                                                                 \
    "SELECT (SELECT count(*) FROM " ok "), (" rooms "), (SELECT count(*) FROM (SELECT "            \
    "pg_notify('" SP_PG_CHANNEL_CHAT "', CASE WHEN length(y.x) < 7000 THEN y.x ELSE '' END) "      \
    "FROM (SELECT string_agg(DISTINCT e.r::text, ',') AS x FROM e) y WHERE y.x IS NOT NULL) "      \
    "AS once)"
/* The events of ev whose room the view holds (before the statement). */
#define SQL_CHAT_ROOMS "SELECT count(*) FROM ev JOIN conversations r ON r.id = ev.id"
/* Insert the chat_events rows of @p rel (an ev-shaped relation) as @p kind. */
#define SQL_CHAT_EVENTS(kind, msg, data, rel)                                                      \
    "e AS (INSERT INTO chat_events (partition, \"offset\", seq, conversation_id, kind, "           \
    "message_id, data, created_at) SELECT " rel ".p, " rel ".o, " SQL_CHAT_SEQ ", " rel            \
    ".id, '" kind "', " msg ", " data ", " rel ".at FROM " rel " RETURNING conversation_id AS r) "

/* clang-format off */

/* A group's creator is its admin; every member, the creator too, opens a span at the event,
 * with nothing read (there is nothing to read yet). */
const char proj__sql_chat_created[] =
    "WITH " SQL_ROWS ", "
    "c AS (INSERT INTO conversations (id, is_group, title, admin_id, creator_id, created_at, "
    "version, last_message_id, last_activity_at, activity_id) "
    "SELECT ev.id, (ev.d->>'is_group')::boolean, ev.d->>'title', "
    "CASE WHEN (ev.d->>'is_group')::boolean THEN (ev.d->>'creator_id')::bigint END, "
    "(ev.d->>'creator_id')::bigint, ev.at, ev.v, NULL, ev.at, ev.id FROM ev "
    "RETURNING id, admin_id), "
    "m AS (INSERT INTO conversation_members (conversation_id, user_id, joined_offset, "
    "joined_at, read_up_to) SELECT DISTINCT ev.id, x.u, ev.o, ev.at, 0::bigint FROM ev "
    "CROSS JOIN LATERAL (SELECT u::bigint FROM jsonb_array_elements_text(ev.d->'member_ids') "
    "AS u UNION SELECT (ev.d->>'creator_id')::bigint) AS x(u)), "
    "w AS (SELECT ev.p, ev.o, ev.id, ev.at, CASE WHEN c.admin_id IS NULL THEN ev.d "
    "ELSE ev.d || jsonb_build_object('admin_id', c.admin_id::text) END AS d "
    "FROM ev JOIN c ON c.id = ev.id), "
    SQL_CHAT_EVENTS("room_created", "NULL::bigint", "w.d", "w")
    SQL_CHAT_ANSWER("c", "SELECT count(*) FROM c");

/* Only the fields the event names change. */
const char proj__sql_chat_updated[] =
    "WITH " SQL_ROWS ", "
    "c AS (UPDATE conversations c SET "
    "title = CASE WHEN ev.d ? 'title' THEN ev.d->>'title' ELSE c.title END, "
    "admin_id = CASE WHEN ev.d ? 'admin_id' THEN (ev.d->>'admin_id')::bigint "
    "ELSE c.admin_id END, version = ev.v FROM ev WHERE c.id = ev.id RETURNING c.id), "
    "w AS (SELECT ev.* FROM ev JOIN c ON c.id = ev.id), "
    SQL_CHAT_EVENTS("room_updated", "NULL::bigint", "w.d", "w")
    SQL_CHAT_ANSWER("c", SQL_CHAT_ROOMS);

/* A new span whose read marker is the room's last message: what was said before one
 * joined is not unread. A member added again changes only the version. */
const char proj__sql_chat_member_added[] =
    "WITH " SQL_ROWS ", "
    "c AS (UPDATE conversations c SET version = ev.v FROM ev WHERE c.id = ev.id "
    "RETURNING c.id, coalesce(c.last_message_id, 0) AS last), "
    "m AS (INSERT INTO conversation_members (conversation_id, user_id, joined_offset, "
    "joined_at, read_up_to) SELECT ev.id, " SQL_ID("user_id") ", ev.o, ev.at, c.last "
    "FROM ev JOIN c ON c.id = ev.id "
    "ON CONFLICT (conversation_id, user_id) WHERE left_offset IS NULL DO NOTHING "
    "RETURNING conversation_id), "
    "w AS (SELECT ev.* FROM ev JOIN m ON m.conversation_id = ev.id), "
    SQL_CHAT_EVENTS("member_added", "NULL::bigint", "w.d", "w")
    SQL_CHAT_ANSWER("c", SQL_CHAT_ROOMS);

/* The span ends at the event (inclusive: the removed member sees their removal), and the
 * member's pending message notification of the room is no longer pending. */
const char proj__sql_chat_member_removed[] =
    "WITH " SQL_ROWS ", "
    "c AS (UPDATE conversations c SET version = ev.v FROM ev WHERE c.id = ev.id "
    "RETURNING c.id), "
    "m AS (UPDATE conversation_members m SET left_offset = ev.o, left_at = ev.at "
    "FROM ev JOIN c ON c.id = ev.id WHERE m.conversation_id = ev.id "
    "AND m.user_id = " SQL_ID("user_id") " AND m.left_offset IS NULL "
    "RETURNING m.conversation_id, m.user_id), "
    "n AS (UPDATE notifications n SET pending = false FROM m WHERE n.user_id = m.user_id "
    "AND n.conversation_id = m.conversation_id AND n.pending), "
    "w AS (SELECT ev.* FROM ev JOIN m ON m.conversation_id = ev.id), "
    SQL_CHAT_EVENTS("member_removed", "NULL::bigint", "w.d", "w")
    SQL_CHAT_ANSWER("m", SQL_CHAT_ROOMS);

/*
 * Messages s: those whose sender is a member. The room moves to its greatest message. Each
 * other member's notification of the room is the last message of the set not sent by them
 * (what folding them one by one leaves): it replaces the member's pending one, or is new.
 */
const char proj__sql_chat_message_sent[] =
    "WITH " SQL_ROWS ", "
    "s AS MATERIALIZED (SELECT ev.* FROM ev JOIN conversation_members mb "
    "ON mb.conversation_id = ev.id AND mb.user_id = " SQL_ID("sender_id") " "
    "AND mb.left_offset IS NULL), "
    "c AS (UPDATE conversations c SET version = g.v, "
    "last_message_id = greatest(c.last_message_id, g.mid), "
    "last_activity_at = CASE WHEN g.mid > coalesce(c.last_message_id, 0) THEN g.at "
    "ELSE c.last_activity_at END, activity_id = greatest(c.activity_id, g.mid) "
    "FROM (SELECT s.id, max(s.v) AS v, max(s.message_id) AS mid, "
    "(array_agg(s.at ORDER BY s.message_id DESC))[1] AS at FROM s GROUP BY s.id) g "
    "WHERE c.id = g.id), "
    "m AS (INSERT INTO messages (id, conversation_id, sender_id, content, txn_id, created_at, "
    "partition, \"offset\") SELECT s.message_id, s.id, s.sender_id, s.d->>'content', "
    "s.d->>'txn_id', s.at, s.p, s.o FROM s), "
    "nt AS (INSERT INTO notifications (id, user_id, kind, actor_id, recipe_id, comment_id, "
    "partition, \"offset\", created_at, conversation_id, message_id, pending) "
    "SELECT DISTINCT ON (mb.user_id, s.id) s.n, mb.user_id, 'message', s.sender_id, NULL, "
    "NULL, s.p, s.o, s.at, s.id, s.message_id, true FROM s JOIN conversation_members mb "
    "ON mb.conversation_id = s.id AND mb.left_offset IS NULL AND mb.user_id <> s.sender_id "
    "ORDER BY mb.user_id, s.id, s.o DESC "
    "ON CONFLICT (user_id, conversation_id) WHERE pending DO UPDATE SET id = EXCLUDED.id, "
    "actor_id = EXCLUDED.actor_id, partition = EXCLUDED.partition, "
    "\"offset\" = EXCLUDED.\"offset\", created_at = EXCLUDED.created_at, "
    "message_id = EXCLUDED.message_id RETURNING 1), "
    "nn AS (SELECT pg_notify('" SP_PG_CHANNEL_NOTIFICATIONS "', '') FROM nt LIMIT 1), "
    SQL_CHAT_EVENTS("message", "s.message_id", "NULL::jsonb", "s")
    SQL_CHAT_ANSWER("s", SQL_CHAT_ROOMS) ", (SELECT count(*) FROM nn)";

/* Read marks r: those of members. Each member's marker moves to the greatest of theirs,
 * which ends their pending notification of the room if it covers its message. */
const char proj__sql_chat_messages_read[] =
    "WITH " SQL_ROWS ", "
    "s AS MATERIALIZED (SELECT ev.* FROM ev JOIN conversation_members mb "
    "ON mb.conversation_id = ev.id AND mb.user_id = " SQL_ID("user_id") " "
    "AND mb.left_offset IS NULL), "
    "g AS MATERIALIZED (SELECT s.id, s.user_id, max(s.up_to_id) AS up FROM s "
    "GROUP BY s.id, s.user_id), "
    "c AS (UPDATE conversations c SET version = v.v FROM (SELECT s.id, max(s.v) AS v FROM s "
    "GROUP BY s.id) v WHERE c.id = v.id), "
    "m AS (UPDATE conversation_members mb SET read_up_to = greatest(mb.read_up_to, g.up) "
    "FROM g WHERE mb.conversation_id = g.id AND mb.user_id = g.user_id "
    "AND mb.left_offset IS NULL), "
    "n AS (UPDATE notifications n SET pending = false FROM g WHERE n.user_id = g.user_id "
    "AND n.conversation_id = g.id AND n.pending AND n.message_id <= g.up), "
    SQL_CHAT_EVENTS("read", "NULL::bigint", "s.d", "s")
    SQL_CHAT_ANSWER("s", SQL_CHAT_ROOMS);

/* clang-format on */

/*
 * Fold @p ev with its type's statement; when it folded nothing, say why: its room is
 * unknown, or the user @p member_key of its payload is not a member (NULL: cannot be).
 */
static int
chat_fold(PGconn *conn, const struct es_event *ev, const char *member_key, struct sp_errbuf *eb)
{
    char room[32];
    PGresult *res = NULL;
    long long ok, rooms;
    int rc = proj__pg_fold_one(conn, ev, &res, eb);

    if (rc != 0)
        return rc;
    ok = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    rooms = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    if (ok > 0)
        return 0;
    proj__stream_id(ev, room, sizeof(room));
    if (rooms == 0 || member_key == NULL)
        return sp_err_set(eb, SP_ENOTFOUND, "conversation_id", "conversation %s not found", room);
    return sp_err_set(eb, SP_ENOTFOUND, member_key, "user %s is not a member of conversation %s",
                      json_string_value(json_object_get(ev->data, member_key)), room);
}

int proj__pg_conversation_created(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    return chat_fold(conn, ev, NULL, eb);
}

int proj__pg_conversation_updated(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    return chat_fold(conn, ev, NULL, eb);
}

int proj__pg_member_added(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    return chat_fold(conn, ev, NULL, eb);
}

int proj__pg_member_removed(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    return chat_fold(conn, ev, "user_id", eb);
}

int proj__pg_message_sent(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    return chat_fold(conn, ev, "sender_id", eb);
}

int proj__pg_messages_read(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb)
{
    return chat_fold(conn, ev, "user_id", eb);
}
