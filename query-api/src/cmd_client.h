/*
 * A client of the command API for the query API's WebSocket chat (chat_ws.c): the query
 * API never writes domain state, so a message sent over a WebSocket is handed to the
 * command API's own command path, POST /chat/rooms/{id}/messages, with the sender's bearer
 * token, and its answer (or problem) goes back as a frame. Requests go over a small pool
 * of keep-alive HTTP/1.1 connections (libevent's evhttp client; one request at a time per
 * connection, so the pool is how many are in flight), to command.host:command.port.
 *
 * @locality the thread of the event_base given to qry__cmd_client_new.
 */
#ifndef QRY_CMD_CLIENT_H
#define QRY_CMD_CLIENT_H

#include <stddef.h>

#include <event2/event.h>

#define QRY_CMD_CLIENT_CONNS 16 /* connections of the pool */

struct qry_cmd_client;

/**
 * Completion of a request, called exactly once from the event loop (never from within
 * qry__cmd_post, never after qry__cmd_client_free).
 * @param status  the command API's HTTP status; 0 if it could not be reached or did not
 *                answer within the timeout
 * @param body    the answer's body (JSON), borrowed for the call; NULL when status is 0
 */
typedef void (*qry_cmd_fn)(void *ud, int status, const char *body, size_t len);

/**
 * @param host, port  the command API (copied)
 * @param timeout_s   longest wait for an answer, seconds
 * @return owned; free with qry__cmd_client_free(). Never NULL.
 */
struct qry_cmd_client *
qry__cmd_client_new(struct event_base *base, const char *host, int port, int timeout_s);

/**
 * Free; requests still in flight are dropped without their callbacks. NULL is a no-op.
 */
void qry__cmd_client_free(struct qry_cmd_client *cl);

/**
 * POST @p body (@p len bytes of JSON) to @p path with `Authorization: Bearer @p bearer`
 * and `X-Request-Id: @p request_id` (may be NULL). Everything is copied.
 */
void qry__cmd_post(struct qry_cmd_client *cl,
                   const char *path,
                   const char *bearer,
                   const char *request_id,
                   const char *body,
                   size_t len,
                   qry_cmd_fn fn,
                   void *ud);

#endif
