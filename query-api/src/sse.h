/*
 * Server-Sent Events streams fed from the read model (WHATWG HTML §9.2), on the streamed
 * replies of the HTTP core (sp_http_stream_*): the engine of GET /notifications/stream
 * (qry/notify.h) and GET /chat/stream (chat.h). A qry__sse is one kind of stream; what it
 * sends comes from two statements of qry/db.h that its definition names.
 *
 * Each event is
 *     id: <partition>:<offset>        log position of the event that made the row
 *     event: <name>
 *     data: <JSON>
 * Each stream keeps a cursor: three integers (c0, c1, c2), compared in that order, of the
 * last row it sent; it sends the caller's rows past it, in cursor order. A new stream
 * starts after the caller's newest row; with `Last-Event-ID: <partition>:<offset>` it
 * starts after the caller's row at that position instead, so a client that reconnects
 * gets exactly what it missed. A position the read model does not hold (yet) for the
 * caller (e.g. during a rebuild) starts as without the header. A malformed header is 400.
 *
 * Discovery: one query through the asynchronous pool fetches, for every open stream at
 * once, up to QRY_NOTIFY_BATCH rows past its cursor. It runs when PostgreSQL notifies the
 * definition's channel (sp/pg_channels.h), heard on the pool's LISTEN connection
 * (qry_db_listen): one query per notification burst, whatever the number of streams; a
 * burst arriving while a query is in flight runs one more after it, and so does a stream
 * that got a full batch (it may have more waiting). As a safety net it also runs every
 * listen_poll_ms, and every poll_ms while the LISTEN connection is down (notifications
 * sent meanwhile are lost: reconnecting polls at once). The event loop never waits for
 * PostgreSQL; with no stream open nothing runs.
 *
 * A stream also sends `: keep-alive` every keepalive_ms, ends itself when the access token
 * expires (the client reconnects with a fresh one) or when the client reads too slowly
 * (more than 1 MiB waiting), and is refused with 503 beyond max_streams open streams.
 * Authentication is qry/auth.h's (401 problem+json), checked once at connect.
 *
 * @locality the thread of the event_base given to qry__sse_new.
 */
#ifndef QRY_SSE_H
#define QRY_SSE_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "sp/http.h"
#include "qry/auth.h"
#include "qry/db.h"
#include "qry/notify.h"

/** What a kind of stream sends. Strings are static. */
struct qry_sse_def {
    const char *what;       /* "notification", "chat": log lines and 503 details */
    const char *gauge;      /* metric: streams open or being set up (gauge) */
    const char *gauge_help; /* its help text */
    const char *polls;      /* metric: poll queries answered (counter) */
    const char *polls_help;
    const char *channel; /* the PostgreSQL channel that announces new rows */
    /* true: its notifications' payloads name the rooms that have new rows (comma-separated
     * ids; "" = any), and a poll asks only for the WebSocket streams of those rooms */
    bool payload_rooms;
    /* $1 user id, $2 partition, $3 offset (both NULL without Last-Event-ID) -> one row: the
     * cursor of the user's row at that position (three columns, NULL when there is none),
     * then the cursor after the user's newest row (three columns) */
    enum qry_stmt start;
    /* $1 keys, $2 user ids, $3, $4, $5 the cursors' c0, c1, c2 (bigint array literals) ->
     * rows (key, c0, c1, c2, partition, offset, event name, JSON data), by key then cursor,
     * at most QRY_NOTIFY_BATCH per key */
    enum qry_stmt poll;
};

struct qry_sse;

/**
 * @param db, auth  borrowed; must outlive the object, and db must be freed before it
 * @param def       borrowed, static
 * @param opts      copied (metrics borrowed)
 * @return owned; free with qry__sse_free(). Never NULL.
 */
struct qry_sse *qry__sse_new(struct event_base *base,
                             struct qry_db *db,
                             struct qry_auth *auth,
                             const struct qry_sse_def *def,
                             const struct qry_notify_opts *opts);

/**
 * End every open stream (the last chunk is sent) and free. Free the qry_db first: that
 * completes the queries of streams being set up (their requests get 503). NULL is a no-op.
 */
void qry__sse_free(struct qry_sse *sse);

/** Handler of a stream's route: takes over @p req (one reply or a stream). */
void qry__sse_handle(struct qry_sse *sse, struct sp_http_req *req);

/*
 * WebSocket streams (RFC 6455, sp/ws.h): the same rows, each a text frame
 *     {"type":"<event>","position":"<partition>:<offset>","data":<JSON>}
 * of one room only (the poll's ninth column, the room of the row; rows of the user's other
 * rooms only move the cursor). Pings replace the keep-alive comments. The stream closes
 * with QRY_SSE_WS_EXPIRED when the access token expires and with QRY_SSE_WS_REMOVED right
 * after the member_removed frame of the user's own removal from the room.
 */
#define QRY_SSE_WS_EXPIRED 4001 /* close code: the access token expired; reconnect */
#define QRY_SSE_WS_REMOVED 4003 /* close code: no longer a member of the room */

/** What the owner of WebSocket streams does with the text frames their clients send. */
struct qry_sse_ws_hooks {
    /* A whole text message (valid UTF-8) from stream @p key of @p user_id, whose access
     * token is @p bearer (borrowed for the call), on @p room. Answer with qry__sse_ws_send. */
    void (*on_text)(void *ud,
                    uint64_t key,
                    int64_t user_id,
                    const char *bearer,
                    int64_t room,
                    const char *data,
                    size_t len);
};

/** Set the hooks of the WebSocket streams (@p hooks borrowed, static). */
void qry__sse_set_ws_hooks(struct qry_sse *sse, const struct qry_sse_ws_hooks *hooks, void *ud);

/**
 * Open a WebSocket stream of @p room for @p req, a WebSocket handshake already checked
 * (sp_ws_check) whose caller's token (@p bearer, copied; @p claims, copied) is verified
 * and who is a member of @p room: the session check and start query run as for an event
 * stream (401 or 503 problem+json before the upgrade), then the 101 (echoing @p protocol,
 * copied, if not NULL) and the room's rows past @p last_partition:@p last_offset (-1: past
 * the newest). 503 beyond max_streams open streams (both kinds count).
 */
void qry__sse_handle_ws(struct qry_sse *sse,
                        struct sp_http_req *req,
                        const struct sp_jwt_claims *claims,
                        const char *bearer,
                        int64_t room,
                        int32_t last_partition,
                        int64_t last_offset,
                        const char *protocol);

/**
 * Send text frame @p text (@p len bytes of UTF-8) on WebSocket stream @p key.
 * @return 0; SP_ENOTFOUND if the stream is gone or not a WebSocket; as sp_ws_send_text.
 */
int qry__sse_ws_send(struct qry_sse *sse, uint64_t key, const char *text, size_t len);

/** Streams open or being set up now; for tests. */
size_t qry__sse_streams(const struct qry_sse *sse);

#endif
