/* WebSocket /ws/chat/{room_id}: see chat.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "es/event.h"
#include "es/id.h"
#include "es/json.h"
#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/json.h"
#include "sp/log.h"
#include "sp/ws.h"
#include "chat.h"
#include "cmd_client.h"

#include "sp/banned.h"

#define WS_MAX_OFFERS 16
#define WS_IN_FLIGHT  4096 /* sends waiting for the command API, at most (all connections) */

struct qry_chat_ws {
    struct qry_db *db;          /* borrowed */
    struct qry_auth *auth;      /* borrowed */
    struct qry_sse *stream;     /* borrowed: the chat streams' engine */
    struct qry_cmd_client *cmd; /* owned */
    size_t in_flight;           /* sends waiting for the command API */
};

/* A handshake across its session and access checks. */
struct ws_open {
    struct qry_chat_ws *cw;
    struct sp_http_req *req; /* borrowed until handed on or answered */
    struct sp_jwt_claims claims;
    char *bearer;   /* owned */
    char *protocol; /* owned, or NULL */
    int64_t room;
    int32_t last_partition;
    int64_t last_offset;
};

/* A send frame handed to the command API. */
struct ws_send {
    struct qry_chat_ws *cw;
    uint64_t key; /* the stream: it may be gone when the answer comes */
    json_t *txn_id;
};

static void ws_open_free(struct ws_open *o)
{
    free(o->bearer);
    free(o->protocol);
    free(o);
}

/* Whether @p s looks like a JWS compact serialisation (RFC 7515 §7.1): three base64url
 * parts. A subprotocol offer of that shape is taken as the access token. */
static bool ws_is_jwt(const char *s)
{
    size_t dots = 0;

    for (; *s; s++) {
        if (*s == '.')
            dots++;
        else if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                   (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return false;
    }
    return dots == 2;
}

/*
 * The caller's token: the Authorization header, else an offered subprotocol shaped like a
 * JWT (browsers cannot set headers on a WebSocket; Mastodon's streaming API does the
 * same). The subprotocol to answer: QRY_CHAT_WS_PROTOCOL if offered, else the token offer
 * itself (a browser that offered protocols fails a 101 that selects none).
 */
static const char *ws_token(struct sp_http_req *req, char *scratch, size_t size, const char **proto)
{
    const char *offers[WS_MAX_OFFERS], *token = sp_http_req_bearer(req), *offered = NULL;
    size_t n = sp_ws_protocols(req, offers, WS_MAX_OFFERS, scratch, size);

    *proto = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(offers[i], QRY_CHAT_WS_PROTOCOL) == 0)
            *proto = offers[i];
        else if (offered == NULL && ws_is_jwt(offers[i]))
            offered = offers[i];
    }
    if (*proto == NULL)
        *proto = offered;
    return token != NULL ? token : offered;
}

/* "<partition>:<offset>" of ?after= or Last-Event-ID. @return 0, or SP_EINVAL (answered). */
static int ws_resume(struct sp_http_req *req, int32_t *partition, int64_t *offset)
{
    const char *after = sp_http_req_query(req, "after"), *field = "after";
    struct es_position pos;
    struct sp_errbuf eb = {{0}, {0}};

    if (after == NULL) {
        after = sp_http_req_header(req, "Last-Event-ID");
        field = "Last-Event-ID";
    }
    *partition = -1;
    *offset = 0;
    if (after == NULL)
        return 0;
    if (es_position_parse(after, &pos) != 0 || pos.offset < 0) {
        sp_err_set(&eb, SP_EINVAL, field, "%s must be a log position \"<partition>:<offset>\"",
                   field);
        sp_http_reply_error(req, SP_EINVAL, &eb);
        return SP_EINVAL;
    }
    *partition = pos.partition;
    *offset = pos.offset;
    return 0;
}

/* The access query answered: (room exists, caller a member). */
static void ws_on_access(void *ud, const PGresult *res, int err)
{
    struct ws_open *o = ud;

    if (err != 0) {
        sp_http_add_header(o->req, "Retry-After", "1");
        sp_http_reply_problem(o->req, 503, "unavailable", "the read model database is unavailable",
                              NULL);
    } else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        sp_http_reply_problem(o->req, 404, "not-found", "room not found", NULL);
    } else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        sp_http_reply_problem(o->req, 403, "forbidden", "you are not a member of this room", NULL);
    } else {
        qry__sse_handle_ws(o->cw->stream, o->req, &o->claims, o->bearer, o->room, o->last_partition,
                           o->last_offset, o->protocol);
    }
    ws_open_free(o);
}

static void ws_on_request(struct sp_http_req *req, void *ud)
{
    struct qry_chat_ws *cw = ud;
    struct sp_errbuf eb = {{0}, {0}};
    char scratch[4096], user[24], room[24];
    const char *proto, *token, *params[] = {room, user};
    struct ws_open *o;

    if (sp_ws_check(req) != 0)
        return;
    o = sp_xcalloc(1, sizeof(*o));
    o->cw = cw;
    o->req = req;
    if (es_id_parse(sp_http_req_param(req, "room_id"), &o->room) != 0) {
        sp_http_reply_problem(req, 404, "not-found", "room not found", NULL);
        ws_open_free(o);
        return;
    }
    token = ws_token(req, scratch, sizeof(scratch), &proto);
    if (qry_auth_token_str(cw->auth, token, &o->claims, &eb) != 0) {
        qry_auth_reply_401(req, eb.msg);
        ws_open_free(o);
        return;
    }
    if (ws_resume(req, &o->last_partition, &o->last_offset) != 0) {
        ws_open_free(o);
        return;
    }
    o->bearer = sp_xstrdup(token);
    o->protocol = proto != NULL ? sp_xstrdup(proto) : NULL;
    snprintf(room, sizeof(room), "%" PRId64, o->room);
    snprintf(user, sizeof(user), "%" PRId64, o->claims.user_id);
    qry_db_query(cw->db, QRY_STMT_CHAT_ACCESS, params, ws_on_access, o);
}

/* Send frame @p frame (stolen) on stream @p key, if it is still there. */
static void ws_frame(struct qry_chat_ws *cw, uint64_t key, json_t *frame)
{
    struct sp_buf b;

    sp_buf_init(&b, 0);
    if (frame != NULL && sp_json_dump(&b, frame) == 0)
        (void)qry__sse_ws_send(cw->stream, key, b.data, b.len);
    sp_buf_release(&b);
    json_decref(frame);
}

/* An error frame: {type: "error", status, problem: {type, title, status, detail}, txn_id?}. */
static void
ws_error(struct qry_chat_ws *cw, uint64_t key, json_t *txn_id, int status, const char *detail)
{
    json_t *f = json_pack("{s:s, s:i, s:{s:s, s:i, s:s}}", "type", "error", "status", status,
                          "problem", "title", status == 400 ? "Bad Request" : "Service Unavailable",
                          "status", status, "detail", detail);
    if (f != NULL && txn_id != NULL)
        json_object_set(f, "txn_id", txn_id);
    ws_frame(cw, key, f);
}

/* The command API answered a send: an ack frame, or an error frame with its problem. */
static void ws_on_sent(void *ud, int status, const char *body, size_t len)
{
    struct ws_send *s = ud;
    json_t *answer = status > 0 ? json_loadb(body, len, 0, NULL) : NULL;

    s->cw->in_flight--;
    if (status >= 200 && status < 300 && answer != NULL) {
        ws_frame(s->cw, s->key,
                 json_pack("{s:s, s:O, s:i, s:o}", "type", "ack", "txn_id", s->txn_id, "status",
                           status, "message", answer));
    } else if (status > 0 && answer != NULL) {
        ws_frame(s->cw, s->key,
                 json_pack("{s:s, s:O, s:i, s:o}", "type", "error", "txn_id", s->txn_id, "status",
                           status, "problem", answer));
    } else {
        json_decref(answer);
        ws_error(s->cw, s->key, s->txn_id, 503,
                 "the command API did not answer; the message may or may not be sent: send it "
                 "again with the same txn_id");
    }
    json_decref(s->txn_id);
    free(s);
}

/* A client frame: {"type": "send", "content": ..., "txn_id": ...}. */
static void ws_on_text(void *ud,
                       uint64_t key,
                       int64_t user_id,
                       const char *bearer,
                       int64_t room,
                       const char *data,
                       size_t len)
{
    struct qry_chat_ws *cw = ud;
    struct sp_errbuf eb = {{0}, {0}};
    json_t *frame = NULL, *body;
    const char *type;
    char path[64];
    struct sp_buf b;

    (void)user_id;
    if (es_json_parse(data, len, &frame, &eb) != 0 || !json_is_object(frame)) {
        ws_error(cw, key, NULL, 400, "a frame must be a JSON object");
        json_decref(frame);
        return;
    }
    if (cw->in_flight >= WS_IN_FLIGHT) {
        ws_error(cw, key, json_object_get(frame, "txn_id"), 503,
                 "too many messages waiting for the command API; send it again later");
        json_decref(frame);
        return;
    }
    type = json_string_value(json_object_get(frame, "type"));
    if (type == NULL || strcmp(type, "send") != 0) {
        ws_error(cw, key, json_object_get(frame, "txn_id"), 400,
                 "the only frame a client sends is {\"type\":\"send\", \"content\", \"txn_id\"}");
        json_decref(frame);
        return;
    }
    /* content and txn_id are the command's to judge: its problem comes back as a frame */
    body = json_object();
    json_object_set(body, "content", json_object_get(frame, "content"));
    json_object_set(body, "txn_id", json_object_get(frame, "txn_id"));
    sp_buf_init(&b, 0);
    if (sp_json_dump(&b, body) != 0) {
        ws_error(cw, key, NULL, 400, "content and txn_id must be valid JSON text");
    } else {
        struct ws_send *s = sp_xcalloc(1, sizeof(*s));
        s->cw = cw;
        s->key = key;
        s->txn_id = json_incref(json_object_get(frame, "txn_id"));
        snprintf(path, sizeof(path), "/chat/rooms/%" PRId64 "/messages", room);
        cw->in_flight++;
        qry__cmd_post(cw->cmd, path, bearer, NULL, b.data, b.len, ws_on_sent, s);
    }
    sp_buf_release(&b);
    json_decref(body);
    json_decref(frame);
}

static const struct qry_sse_ws_hooks ws_hooks = {ws_on_text};

struct qry_chat_ws *qry__chat_ws_new(struct event_base *base,
                                     struct sp_http_server *http,
                                     struct qry_db *db,
                                     struct qry_auth *auth,
                                     struct qry_sse *stream,
                                     const char *cmd_host,
                                     int cmd_port,
                                     int timeout_s)
{
    struct qry_chat_ws *cw = sp_xcalloc(1, sizeof(*cw));

    cw->db = db;
    cw->auth = auth;
    cw->stream = stream;
    cw->cmd = qry__cmd_client_new(base, cmd_host, cmd_port, timeout_s);
    qry__sse_set_ws_hooks(stream, &ws_hooks, cw);
    sp_http_route(http, SP_HTTP_GET, "/ws/chat/{room_id}", ws_on_request, cw);
    return cw;
}

void qry__chat_ws_free(struct qry_chat_ws *cw)
{
    if (cw == NULL)
        return;
    qry__cmd_client_free(cw->cmd);
    free(cw);
}
