/*
 * GET /notifications/stream: the caller's new notifications as Server-Sent Events (WHATWG
 * HTML §9.2), on the streamed replies of the HTTP core (sp_http_stream_*).
 *
 * Each event is
 *     id: <partition>:<offset>        log position of the notification's causing event
 *     event: notification
 *     data: <the notification JSON, as in GET /notifications>
 * Each stream keeps a cursor: the id of the last notification it sent; it sends the
 * caller's notifications with a greater id, in id order. A new stream starts after the
 * caller's newest notification; with `Last-Event-ID: <partition>:<offset>` it starts
 * after the caller's notification at that position instead, so a client that reconnects
 * gets exactly what it missed. A position the read model does not hold (yet) for the
 * caller (e.g. during a rebuild) starts as without the header. A malformed header is 400.
 *
 * The streams are a kind of the read model's event streams (query-api/src/sse.h, shared
 * with GET /chat/stream), whose cursor here is the notification id: one query through the
 * asynchronous pool fetches, for every open stream at once, up to 50 notifications past
 * its cursor (a LATERAL join over the (user_id, id) key), when PostgreSQL notifies
 * SP_PG_CHANNEL_NOTIFICATIONS (the projector NOTIFYs in every transaction that adds or
 * moves notifications: sp/pg_channels.h) and as a safety net every listen_poll_ms (every
 * poll_ms while the LISTEN connection is down); keep-alives every keepalive_ms, the end
 * at the token's expiry or for a client too slow, 503 beyond max_streams, 401 as
 * qry/auth.h says.
 *
 * A message notification (kind "message", with conversation_id and message_id) moves to
 * each newer message of its room while it is pending (schemas/sql/005_chat.sql): it gets
 * the newer message's id and position, so the stream sends it again; a client keeps the
 * newest per conversation_id.
 *
 * Limit: notification ids come from the causing event's time; a notification projected
 * after one with a greater id (clock skew between command-api writers, or partitions
 * projected unevenly under Kafka) is behind the stream's cursor and is not sent live; it
 * is in GET /notifications.
 *
 * Metrics: stockpot_query_sse_streams (gauge, open streams), stockpot_query_sse_polls_total
 * (queries of new notifications answered).
 *
 * @locality the thread of the event_base given to qry_notify_new.
 */
#ifndef QRY_NOTIFY_H
#define QRY_NOTIFY_H

#include <stddef.h>

#include <event2/event.h>

#include "sp/http.h"
#include "sp/metrics.h"
#include "qry/auth.h"
#include "qry/db.h"

#define QRY_NOTIFY_POLL_MS        100   /* poll interval while streams are open, milliseconds */
#define QRY_NOTIFY_LISTEN_POLL_MS 1000  /* the same while NOTIFY is heard (a safety net) */
#define QRY_NOTIFY_KEEPALIVE_MS   15000 /* keep-alive comment interval, milliseconds */
#define QRY_NOTIFY_MAX_STREAMS    1000  /* open streams (and streams being set up) at most */
#define QRY_NOTIFY_BATCH          50    /* notifications per stream and poll at most */

struct qry_notify;

struct qry_notify_opts {
    int poll_ms;                /* >= 1; also the resolution of keep-alives and expiry */
    int listen_poll_ms;         /* >= poll_ms: poll interval while NOTIFY is heard */
    int keepalive_ms;           /* >= 1 */
    size_t max_streams;         /* >= 1 */
    struct sp_metrics *metrics; /* borrowed, may be NULL */
};

/**
 * @param db, auth  borrowed; must outlive the object, and db must be freed before it
 * @return owned; free with qry_notify_free(). Never NULL.
 */
struct qry_notify *qry_notify_new(struct event_base *base,
                                  struct qry_db *db,
                                  struct qry_auth *auth,
                                  const struct qry_notify_opts *opts);

/**
 * End every open stream (the last chunk is sent) and free. Free the qry_db first: that
 * completes the queries of streams being set up (their requests get 503). NULL is a no-op.
 */
void qry_notify_free(struct qry_notify *nt);

/** Handler of GET /notifications/stream: takes over @p req (one reply or a stream). */
void qry_notify_handle(struct qry_notify *nt, struct sp_http_req *req);

/** Streams open or being set up now; for tests. */
size_t qry_notify_streams(const struct qry_notify *nt);

#endif
