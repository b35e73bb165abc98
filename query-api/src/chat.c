/* The query API's chat routes: rooms, a room, its messages and the chat event stream. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/pg_channels.h"
#include "qry/params.h"
#include "chat.h"
#include "sse.h"

#include "sp/banned.h"

#define CHAT_MAX_BODY_BYTES ((size_t)64 * 1024 * 1024) /* cap on one list response */

/* the cursor is (chat_events.seq, partition, offset) */
static const struct qry_sse_def chat_stream_def = {
    .what = "chat",
    .gauge = "stockpot_query_chat_streams",
    .gauge_help = "open Server-Sent Events streams of GET /chat/stream",
    .polls = "stockpot_query_chat_polls_total",
    .polls_help = "queries of new chat events for the open chat streams, answered",
    .channel = SP_PG_CHANNEL_CHAT,
    .payload_rooms = true,
    .start = QRY_STMT_CHAT_STREAM_START,
    .poll = QRY_STMT_CHAT_STREAM_POLL,
};

enum chat_kind { CHAT_ROOMS, CHAT_ROOM, CHAT_MESSAGES, CHAT_KIND_COUNT };

static const char *const chat_page_params[] = {"limit", "max_id", "since_id", NULL};
static const char *const chat_no_params[] = {NULL};

static const struct chat_def {
    const char *pattern;       /* route; also the path of the Link header */
    const char *const *params; /* the query parameters it takes */
} chat_defs[CHAT_KIND_COUNT] = {
    [CHAT_ROOMS] = {"/chat/rooms", chat_page_params},
    [CHAT_ROOM] = {"/chat/rooms/{id}", chat_no_params},
    [CHAT_MESSAGES] = {"/chat/rooms/{id}/messages", chat_page_params},
};

struct chat_route {
    struct qry_chat *chat;
    enum chat_kind kind;
};

struct qry_chat {
    struct qry_db *db;       /* borrowed */
    struct qry_after *after; /* borrowed */
    struct qry_auth *auth;   /* borrowed */
    struct qry_sse *stream;  /* owned: GET /chat/stream and the WebSockets */
    struct qry_chat_ws *ws;  /* owned: /ws/chat/{room_id} */
    struct chat_route routes[CHAT_KIND_COUNT];
};

/* One request from parsing to its one reply (across the gate, the session check and the
 * queries). */
struct chat_call {
    struct qry_chat *chat;
    struct sp_http_req *req; /* borrowed until the reply */
    enum chat_kind kind;
    int64_t room; /* CHAT_ROOM, CHAT_MESSAGES */
    struct qry_page page;
    struct sp_jwt_claims claims;
};

static void chat_reply_db_error(struct sp_http_req *req, int err)
{
    if (err == SP_EUNAVAIL || err == SP_ETIMEDOUT) {
        sp_http_add_header(req, "Retry-After", "1");
        sp_http_reply_problem(req, 503, "unavailable",
                              err == SP_ETIMEDOUT ? "the read model query timed out"
                                                  : "the read model database is unavailable",
                              NULL);
        return;
    }
    sp_http_reply_problem(req, 500, NULL, "the read model query failed", NULL);
}

/* 404 for a room the read model does not hold, 403 for one the caller is not in. */
static void chat_reply_access(struct chat_call *call, bool exists)
{
    char detail[96];

    if (!exists) {
        snprintf(detail, sizeof(detail), "conversation %" PRId64 " does not exist", call->room);
        sp_http_reply_problem(call->req, 404, "not-found", detail, NULL);
    } else {
        snprintf(detail, sizeof(detail), "you are not a member of conversation %" PRId64,
                 call->room);
        sp_http_reply_problem(call->req, 403, "forbidden", detail, NULL);
    }
}

/* Link: <path?since_id=..&max_id=<last>&limit=n>; rel="next" (RFC 8288). */
static void chat_add_link(struct chat_call *call, const char *last)
{
    struct sp_buf link;
    int rc;

    sp_buf_init(&link, 0);
    if (call->kind == CHAT_MESSAGES)
        rc = sp_buf_addf(&link, "</chat/rooms/%" PRId64 "/messages?", call->room);
    else
        rc = sp_buf_adds(&link, "</chat/rooms?");
    if (call->page.has_since_id)
        rc |= sp_buf_addf(&link, "since_id=%" PRId64 "&", call->page.since_id);
    rc |= sp_buf_addf(&link, "max_id=%s&limit=%d>; rel=\"next\"", last, call->page.limit);
    SP_ASSERT(rc == 0); /* the buffer has no cap */
    sp_http_add_header(call->req, "Link", link.data);
    sp_buf_release(&link);
}

/* Reply {"items":[...],"next_max_id"?} from rows (cursor, json) of @p res (NULL: none). */
static void chat_reply_list(struct chat_call *call, const PGresult *res)
{
    int n = res != NULL ? PQntuples(res) : 0;
    bool full = n > 0 && n == call->page.limit;
    struct sp_buf body;
    int rc;

    sp_buf_init(&body, CHAT_MAX_BODY_BYTES);
    if (full)
        chat_add_link(call, PQgetvalue(res, n - 1, 0));
    rc = sp_buf_adds(&body, "{\"items\":[");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            rc |= sp_buf_add(&body, ",", 1);
        rc |= sp_buf_add(&body, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1));
    }
    rc |= sp_buf_add(&body, "]", 1);
    if (full)
        rc |= sp_buf_addf(&body, ",\"next_max_id\":\"%s\"", PQgetvalue(res, n - 1, 0));
    rc |= sp_buf_add(&body, "}", 1);
    if (rc != 0)
        sp_http_reply_problem(call->req, 500, NULL, "the response is too large", NULL);
    else
        sp_http_reply(call->req, 200, "application/json", body.data, body.len);
    sp_buf_release(&body);
}

static void chat_done(struct chat_call *call)
{
    free(call);
}

/* An empty page of messages: (room exists, caller is a member). */
static void chat_on_access(void *ud, const PGresult *res, int err)
{
    struct chat_call *call = ud;

    if (err != 0)
        chat_reply_db_error(call->req, err);
    else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
        chat_reply_access(call, strcmp(PQgetvalue(res, 0, 0), "t") == 0);
    else
        chat_reply_list(call, NULL);
    chat_done(call);
}

static void chat_on_list(void *ud, const PGresult *res, int err)
{
    struct chat_call *call = ud;
    char room[24], user[24];
    const char *params[] = {room, user};

    if (err != 0) {
        chat_reply_db_error(call->req, err);
    } else if (PQntuples(res) == 0 && call->kind == CHAT_MESSAGES) {
        /* none, or not the caller's to see */
        snprintf(room, sizeof(room), "%" PRId64, call->room);
        snprintf(user, sizeof(user), "%" PRId64, call->claims.user_id);
        qry_db_query(call->chat->db, QRY_STMT_CHAT_ACCESS, params, chat_on_access, call);
        return;
    } else {
        chat_reply_list(call, res);
    }
    chat_done(call);
}

/* (version, member, json) or no row. */
static void chat_on_room(void *ud, const PGresult *res, int err)
{
    struct chat_call *call = ud;
    struct sp_http_req *req = call->req;
    int64_t version;
    char etag[32];

    if (err != 0) {
        chat_reply_db_error(req, err);
    } else if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        chat_reply_access(call, PQntuples(res) > 0);
    } else {
        version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(etag, sizeof(etag), "\"%" PRId64 "\"", version);
        sp_http_add_header(req, "ETag", etag);
        if (qry_params_etag_match(sp_http_req_header(req, "If-None-Match"), version))
            sp_http_reply(req, 304, NULL, NULL, 0);
        else
            sp_http_reply(req, 200, "application/json", PQgetvalue(res, 0, 2),
                          (size_t)PQgetlength(res, 0, 2));
    }
    chat_done(call);
}

static void chat_dispatch(struct chat_call *call)
{
    char room[24], user[24], max_id[24], since_id[24], limit[16];
    const char *params[5];
    int n = 0;

    snprintf(room, sizeof(room), "%" PRId64, call->room);
    snprintf(user, sizeof(user), "%" PRId64, call->claims.user_id);
    snprintf(max_id, sizeof(max_id), "%" PRId64, call->page.max_id);
    snprintf(since_id, sizeof(since_id), "%" PRId64, call->page.since_id);
    snprintf(limit, sizeof(limit), "%d", call->page.limit);
    if (call->kind != CHAT_ROOMS)
        params[n++] = room;
    params[n++] = user;
    if (call->kind == CHAT_ROOM) {
        qry_db_query(call->chat->db, QRY_STMT_CHAT_ROOM, params, chat_on_room, call);
        return;
    }
    params[n++] = max_id;
    params[n++] = since_id;
    params[n] = limit;
    qry_db_query(call->chat->db,
                 call->kind == CHAT_ROOMS ? QRY_STMT_CHAT_ROOMS : QRY_STMT_CHAT_MESSAGES, params,
                 chat_on_list, call);
}

static void chat_on_session(void *ud, int err)
{
    struct chat_call *call = ud;

    if (err == SP_EAUTH) {
        qry_auth_reply_401(call->req, "the session of the access token is revoked or expired");
    } else if (err != 0) {
        chat_reply_db_error(call->req, err);
    } else {
        chat_dispatch(call);
        return;
    }
    chat_done(call);
}

/* Past the Stockpot-After gate; req == NULL: already answered. */
static void chat_serve(struct sp_http_req *req, void *ud)
{
    struct chat_call *call = ud;

    if (req == NULL) {
        chat_done(call);
        return;
    }
    call->req = req;
    qry_auth_session(call->chat->auth, &call->claims, chat_on_session, call);
}

static int chat_parse(struct chat_call *call, struct sp_http_req *req, struct sp_errbuf *eb)
{
    int rc = qry_params_known(req, chat_defs[call->kind].params, chat_no_params, eb);

    if (rc == 0 && call->kind != CHAT_ROOMS)
        rc = qry_params_id(sp_http_req_param(req, "id"), "id", &call->room, eb);
    if (rc == 0 && call->kind != CHAT_ROOM)
        rc = qry_params_page(sp_http_req_query(req, "limit"), sp_http_req_query(req, "max_id"),
                             sp_http_req_query(req, "since_id"), &call->page, eb);
    return rc;
}

static void chat_on_request(struct sp_http_req *req, void *ud)
{
    const struct chat_route *route = ud;
    struct sp_errbuf eb = {{0}, {0}};
    struct chat_call *call = sp_xcalloc(1, sizeof(*call));
    int rc;

    call->chat = route->chat;
    call->kind = route->kind;
    rc = chat_parse(call, req, &eb);
    if (rc != 0) {
        chat_done(call);
        sp_http_reply_error(req, rc, &eb);
        return;
    }
    if (qry_auth_token(call->chat->auth, req, &call->claims, &eb) != 0) {
        chat_done(call);
        qry_auth_reply_401(req, eb.msg);
        return;
    }
    qry_after_gate(call->chat->after, req, chat_serve, call);
}

static void chat_on_stream(struct sp_http_req *req, void *ud)
{
    struct qry_chat *chat = ud;

    qry__sse_handle(chat->stream, req);
}

struct qry_chat *qry__chat_new(struct event_base *base,
                               struct sp_http_server *http,
                               struct qry_db *db,
                               struct qry_after *after,
                               struct qry_auth *auth,
                               const struct qry_notify_opts *opts,
                               const struct qry_chat_cmd *cmd)
{
    struct qry_chat *chat = sp_xcalloc(1, sizeof(*chat));

    chat->db = db;
    chat->after = after;
    chat->auth = auth;
    for (int k = 0; k < CHAT_KIND_COUNT; k++) {
        chat->routes[k].chat = chat;
        chat->routes[k].kind = (enum chat_kind)k;
        sp_http_route(http, SP_HTTP_GET, chat_defs[k].pattern, chat_on_request, &chat->routes[k]);
    }
    chat->stream = qry__sse_new(base, db, auth, &chat_stream_def, opts);
    sp_http_route(http, SP_HTTP_GET, "/chat/stream", chat_on_stream, chat);
    chat->ws =
        qry__chat_ws_new(base, http, db, auth, chat->stream, cmd->host, cmd->port, cmd->timeout_s);
    return chat;
}

void qry__chat_free(struct qry_chat *chat)
{
    if (chat == NULL)
        return;
    qry__sse_free(chat->stream);
    qry__chat_ws_free(chat->ws);
    free(chat);
}
