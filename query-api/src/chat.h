/*
 * The query API's chat routes (README "chat"), over the chat read model
 * (schemas/sql/005_chat.sql), every one for a Bearer (qry/auth.h: 401 problem+json without
 * a valid token or with a revoked or expired session):
 *
 *   GET /chat/rooms?limit=&max_id=&since_id=
 *       {"items":[room...],"next_max_id"?}: the caller's rooms, most recent activity first
 *       (activity_id desc: the room's last message id, or its own id before the first;
 *       Snowflake ids are time-ordered). max_id and since_id bound activity_id (qry/params.h).
 *   GET /chat/rooms/{id}
 *       the room, with `ETag: "<version>"` (the stream version of conversation-<id>, which
 *       every event of the room moves) and 304 on a matching If-None-Match.
 *   GET /chat/rooms/{id}/messages?limit=&max_id=&since_id=
 *       {"items":[message...],"next_max_id"?}: the room's messages, newest first by id. A
 *       page ends strictly below max_id, so a message sent meanwhile (a greater id) never
 *       moves a page boundary: pages neither skip nor repeat messages.
 *   GET /chat/stream
 *       Server-Sent Events (sse.h) of the chat events of all the caller's rooms.
 *
 * A room is {id, is_group, title, admin_id, creator_id, created_at, version, members:
 * [{id, username}], last_message: {id, sender_id, sender_username, content, created_at} or
 * null, unread_count, read_up_to, last_activity_at, activity_id}; unread_count counts the
 * room's messages above the caller's read marker (read_up_to) not sent by the caller. A
 * message is {id, conversation_id, sender_id, sender_username, content, created_at,
 * txn_id} (txn_id: the sender's transaction id, shown to the sender only, else null).
 *
 * A room the read model does not hold is 404, a room the caller is not a member of (never
 * was, or removed) 403 problem+json (type .../forbidden); a bad id or parameter, or one the
 * route does not take, is 400. Lists page as the other routes: limit 1-100 (default 20),
 * `Link: <path?since_id=..&max_id=<last>&limit=n>; rel="next"` when the page is full. Every
 * route but the stream honours Stockpot-After (qry/after.h).
 *
 * The stream: each event is `id: <partition>:<offset>` (the log position of the event, as
 * GET /notifications/stream), `event: <name>`, `data: <JSON>`, with the names
 *   room_created    {conversation_id, is_group, title?, creator_id, admin_id?, member_ids, at}
 *   room_updated    {conversation_id, title?, admin_id?, at}
 *   member_added    {conversation_id, user_id, username, added_by, at}
 *   member_removed  {conversation_id, user_id, username, removed_by, at}
 *   message         a message as in the history
 *   read            {conversation_id, user_id, username, up_to_id, at}
 * (at: the event's time). A user gets a room's events from the event that made them a
 * member (ConversationCreated, MemberAdded) up to the MemberRemoved of their removal,
 * inclusive; nothing of the room between a removal and being added again. The cursor is
 * the batch order of the projection (chat_events.seq, then the position), so the stream
 * is exact on a log of many partitions too; Last-Event-ID resumes after the event at that
 * position. Metrics: stockpot_query_chat_streams (gauge), stockpot_query_chat_polls_total.
 *
 * @locality the thread of the event_base given to qry__chat_new.
 */
#ifndef QRY_CHAT_H
#define QRY_CHAT_H

#include <event2/event.h>

#include "sp/http.h"
#include "qry/after.h"
#include "qry/auth.h"
#include "qry/db.h"
#include "qry/notify.h"
#include "sse.h"

struct qry_chat;

/*
 * WebSocket /ws/chat/{room_id} (RFC 6455, sp/ws.h): the room's events pushed as they come,
 * one text frame each, {"type": <the stream's event name>, "position": "<p>:<o>", "data":
 * <as the stream's>}, from the connection on, or after the position given as ?after=<p>:<o>
 * (or Last-Event-ID). The caller must be a member (404/403 problem+json before the
 * upgrade, 401 without a valid token). The token comes in the Authorization header or,
 * since browsers cannot set one on a WebSocket, as an offered subprotocol (a JWT's shape,
 * as Mastodon's streaming API takes it); the 101 selects QRY_CHAT_WS_PROTOCOL if it was
 * offered, else the token's offer. No token is ever written to a log.
 *
 * A client sends {"type": "send", "content", "txn_id"}: the query API never writes domain
 * state, so it hands the message to the command API (POST /chat/rooms/{id}/messages with
 * the connection's token, cmd_client.h) and answers {"type": "ack", "txn_id", "status",
 * "message": <the command's answer>} or {"type": "error", "txn_id", "status", "problem"}
 * (a 503 error frame when the command API did not answer: the outcome is unknown, send
 * again with the same txn_id, which is one message however often it comes). Any other
 * frame gets a 400 error frame; the connection stays open. Close codes: 1000, 1001
 * (shutdown), 1002/1007/1009 (framing, sp/ws.h), 1008 (too slow a reader), 1011 (no
 * pong), QRY_SSE_WS_EXPIRED (token expired) and QRY_SSE_WS_REMOVED (no longer a member,
 * right after the member_removed frame).
 */
#define QRY_CHAT_WS_PROTOCOL "stockpot.chat.v1"
#define QRY_CHAT_MAX_STREAMS 10000 /* chat WebSockets and event streams open, at most */

struct qry_chat_ws;

/**
 * Register /ws/chat/{room_id} on @p http, streaming through @p stream (the chat streams'
 * engine, sse.h) and sending through the command API at @p cmd_host:@p cmd_port (answers
 * awaited @p timeout_s seconds). Everything borrowed must outlive the route.
 * @return owned; free with qry__chat_ws_free(). Never NULL.
 */
struct qry_chat_ws *qry__chat_ws_new(struct event_base *base,
                                     struct sp_http_server *http,
                                     struct qry_db *db,
                                     struct qry_auth *auth,
                                     struct qry_sse *stream,
                                     const char *cmd_host,
                                     int cmd_port,
                                     int timeout_s);

/** Free (sends in flight are dropped). NULL is a no-op. */
void qry__chat_ws_free(struct qry_chat_ws *cw);

/** Where the command API is, for sends over WebSockets. */
struct qry_chat_cmd {
    const char *host; /* borrowed for the call */
    int port;
    int timeout_s;
};

/**
 * Register the chat routes on @p http (the WebSocket's too, with @p cmd). Everything is borrowed
 * and must outlive the routes;
 * @p opts (copied) are the stream's, as GET /notifications/stream's.
 * @return owned; free with qry__chat_free(). Never NULL.
 */
struct qry_chat *qry__chat_new(struct event_base *base,
                               struct sp_http_server *http,
                               struct qry_db *db,
                               struct qry_after *after,
                               struct qry_auth *auth,
                               const struct qry_notify_opts *opts,
                               const struct qry_chat_cmd *cmd);

/** End the open streams and free; NULL is a no-op. Free the qry_db first (as qry_notify). */
void qry__chat_free(struct qry_chat *chat);

#endif
