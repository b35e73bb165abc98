/* The query API's routes: users, recipes, social lists and notifications from PostgreSQL
 * (the chat routes: chat.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "es/json.h"
#include "sp/alloc.h"
#include "sp/http.h"
#include "qry/after.h"
#include "qry/analytics.h"
#include "qry/auth.h"
#include "qry/db.h"
#include "qry/notify.h"
#include "qry/params.h"
#include "qry/search.h"
#include "qry/server.h"
#include "chat.h"

#include "sp/banned.h"

#define SRV_MAX_BODY_BYTES ((size_t)64 * 1024 * 1024) /* cap on one list response */

enum srv_kind {
    SRV_USER,
    SRV_RECIPE,
    SRV_USER_RECIPES,
    SRV_RECIPES,
    SRV_FOLLOWERS,
    SRV_FOLLOWING,
    SRV_COMMENTS,
    SRV_FEED,
    SRV_NOTIFICATIONS,
    SRV_KIND_COUNT
};

enum srv_auth { SRV_AUTH_NONE, SRV_AUTH_OPTIONAL, SRV_AUTH_REQUIRED };

/* What distinguishes the routes; everything else is shared. */
struct srv_route_def {
    const char *pattern;  /* route pattern, also the path of the Link header */
    enum qry_stmt stmt;   /* the entity or page statement */
    enum qry_stmt exists; /* on an empty page: 404 unless this finds the id; COUNT = none */
    const char *what;     /* entity named in 404 details */
    enum srv_auth auth;
};

static const struct srv_route_def srv_defs[SRV_KIND_COUNT] = {
    [SRV_USER] = {"/users/{id}", QRY_STMT_USER, QRY_STMT_COUNT, "user", SRV_AUTH_NONE},
    [SRV_RECIPE] = {"/recipes/{id}", QRY_STMT_RECIPE, QRY_STMT_COUNT, "recipe", SRV_AUTH_OPTIONAL},
    [SRV_USER_RECIPES] = {"/users/{id}/recipes", QRY_STMT_RECIPES_BY_USER, QRY_STMT_USER_EXISTS,
                          "user", SRV_AUTH_NONE},
    [SRV_RECIPES] = {"/recipes", QRY_STMT_RECIPES_ALL, QRY_STMT_COUNT, NULL, SRV_AUTH_NONE},
    [SRV_FOLLOWERS] = {"/users/{id}/followers", QRY_STMT_FOLLOWERS, QRY_STMT_USER_EXISTS, "user",
                       SRV_AUTH_NONE},
    [SRV_FOLLOWING] = {"/users/{id}/following", QRY_STMT_FOLLOWING, QRY_STMT_USER_EXISTS, "user",
                       SRV_AUTH_NONE},
    [SRV_COMMENTS] = {"/recipes/{id}/comments", QRY_STMT_COMMENTS, QRY_STMT_RECIPE_EXISTS, "recipe",
                      SRV_AUTH_NONE},
    [SRV_FEED] = {"/feed", QRY_STMT_FEED, QRY_STMT_COUNT, NULL, SRV_AUTH_REQUIRED},
    [SRV_NOTIFICATIONS] = {"/notifications", QRY_STMT_NOTIFICATIONS, QRY_STMT_COUNT, NULL,
                           SRV_AUTH_REQUIRED},
};

struct qry_server;

/* The user data of one route: the server and which route it is. */
struct srv_route {
    struct qry_server *srv;
    enum srv_kind kind;
};

struct qry_server {
    struct sp_http_server *http;     /* owned */
    struct qry_db *db;               /* owned */
    struct qry_after *after;         /* owned */
    struct qry_auth *auth;           /* owned */
    struct qry_notify *notify;       /* owned */
    struct qry_chat *chat;           /* owned: the chat routes and their stream */
    struct qry_search *search;       /* owned: the search routes, over the LMDB search view */
    struct qry_analytics *analytics; /* owned: the analytics routes, over the LMDB analytics view */
    struct srv_route routes[SRV_KIND_COUNT];
};

/*
 * One parsed request, alive from parsing until the reply: across a Stockpot-After wait,
 * the session check and the asynchronous queries. Every path ends in exactly one reply
 * and srv_done.
 */
struct srv_call {
    struct qry_server *srv;  /* borrowed */
    struct sp_http_req *req; /* borrowed until the reply; set once past the gate */
    enum srv_kind kind;
    int64_t id;      /* user or recipe id from the path; 0 when the path has none */
    const char *tag; /* borrowed from the request; NULL = no tag filter */
    struct qry_page page;
    bool authed; /* claims hold a verified token (session checked once served) */
    struct sp_jwt_claims claims;
    struct sp_buf body; /* a list body being built across two queries (notifications) */
};

static void srv_reply_db_error(struct sp_http_req *req, int err)
{
    if (err == SP_EUNAVAIL || err == SP_ETIMEDOUT) {
        sp_http_add_header(req, "Retry-After", "1");
        sp_http_reply_problem(req, 503, "unavailable",
                              err == SP_ETIMEDOUT ? "the read model query timed out"
                                                  : "the read model database is unavailable",
                              NULL);
        return;
    }
    /* PostgreSQL's message is logged by qry_db, not shown to clients */
    sp_http_reply_problem(req, 500, NULL, "the read model query failed", NULL);
}

static void srv_reply_not_found(struct sp_http_req *req, const char *what, int64_t id)
{
    char detail[96];

    snprintf(detail, sizeof(detail), "%s %" PRId64 " does not exist", what, id);
    sp_http_reply_problem(req, 404, "not-found", detail, NULL);
}

/* The call has been answered (or dropped): free it. */
static void srv_done(struct srv_call *call)
{
    sp_buf_release(&call->body);
    free(call);
}

/* Reply with the recipe JSON in @p json plus "liked_by_me" before its closing brace. */
static void srv_reply_liked(struct sp_http_req *req, const char *json, bool liked)
{
    struct sp_buf b;
    size_t n = strlen(json);
    int rc;

    SP_ASSERT(n >= 2 && json[n - 1] == '}');
    sp_buf_init(&b, 0);
    rc = sp_buf_add(&b, json, n - 1);
    rc |= sp_buf_addf(&b, ",\"liked_by_me\":%s}", liked ? "true" : "false");
    SP_ASSERT(rc == 0); /* the buffer has no cap */
    sp_http_reply(req, 200, "application/json", b.data, b.len);
    sp_buf_release(&b);
}

/* GET /users/{id} and /recipes/{id}: the JSON object with its ETag, or 304. */
static void srv_on_entity(void *ud, const PGresult *res, int err)
{
    struct srv_call *call = ud;
    struct sp_http_req *req = call->req;
    const char *json;
    char etag[32];
    int64_t version;

    if (err != 0) {
        srv_reply_db_error(req, err);
    } else if (PQntuples(res) == 0) {
        srv_reply_not_found(req, srv_defs[call->kind].what, call->id);
    } else {
        version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(etag, sizeof(etag), "\"%" PRId64 "\"", version);
        sp_http_add_header(req, "ETag", etag);
        if (call->kind == SRV_RECIPE)
            sp_http_add_header(req, "Vary", "Authorization");
        json = PQgetvalue(res, 0, 1);
        if (qry_params_etag_match(sp_http_req_header(req, "If-None-Match"), version))
            sp_http_reply(req, 304, NULL, NULL, 0);
        else if (PQnfields(res) == 3)
            srv_reply_liked(req, json, strcmp(PQgetvalue(res, 0, 2), "t") == 0);
        else
            sp_http_reply(req, 200, "application/json", json, strlen(json));
    }
    srv_done(call);
}

static void srv_serve_entity(struct srv_call *call)
{
    char id[24];
    char user[24];
    const char *params[] = {id, user};
    enum qry_stmt stmt = srv_defs[call->kind].stmt;

    snprintf(id, sizeof(id), "%" PRId64, call->id);
    snprintf(user, sizeof(user), "%" PRId64, call->claims.user_id);
    if (call->kind == SRV_RECIPE && call->authed)
        stmt = QRY_STMT_RECIPE_ME;
    qry_db_query(call->srv->db, stmt, params, srv_on_entity, call);
}

/* Link: <path?tag=..&since_id=..&max_id=<last>&limit=n>; rel="next" (RFC 8288). */
static void srv_add_link(struct srv_call *call, struct sp_http_req *req, const char *last_id)
{
    const char *pattern = srv_defs[call->kind].pattern;
    const char *param = strstr(pattern, "{id}");
    struct sp_buf link;
    char id[24];
    char *tag;
    int rc = 0;

    sp_buf_init(&link, 0);
    snprintf(id, sizeof(id), "%" PRId64, call->id);
    rc |= sp_buf_add(&link, "<", 1);
    rc |= sp_buf_add(&link, pattern, param != NULL ? (size_t)(param - pattern) : strlen(pattern));
    if (param != NULL)
        rc |= sp_buf_addf(&link, "%s%s", id, param + strlen("{id}"));
    rc |= sp_buf_add(&link, "?", 1);
    if (call->tag != NULL) {
        tag = evhttp_uriencode(call->tag, -1, 0);
        SP_ASSERT(tag != NULL);
        rc |= sp_buf_addf(&link, "tag=%s&", tag);
        free(tag);
    }
    if (call->page.has_since_id)
        rc |= sp_buf_addf(&link, "since_id=%" PRId64 "&", call->page.since_id);
    rc |= sp_buf_addf(&link, "max_id=%s&limit=%d>; rel=\"next\"", last_id, call->page.limit);
    SP_ASSERT(rc == 0); /* the buffer has no cap */
    sp_http_add_header(req, "Link", link.data);
    sp_buf_release(&link);
}

/*
 * Start call->body as {"items":[...],"next_max_id":"<id>" (without the closing brace)
 * from rows (cursor id, json) of @p res (NULL = empty page); add the Link when full.
 */
static int srv_list_body(struct srv_call *call, const PGresult *res)
{
    struct sp_buf *body = &call->body;
    int n = res != NULL ? PQntuples(res) : 0;
    bool full = n > 0 && n == call->page.limit;
    int rc = 0;

    if (full)
        srv_add_link(call, call->req, PQgetvalue(res, n - 1, 0));
    rc |= sp_buf_adds(body, "{\"items\":[");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            rc |= sp_buf_add(body, ",", 1);
        rc |= sp_buf_add(body, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1));
    }
    rc |= sp_buf_add(body, "]", 1);
    if (full)
        rc |= sp_buf_addf(body, ",\"next_max_id\":\"%s\"", PQgetvalue(res, n - 1, 0));
    return rc;
}

/* Close call->body and reply with it. */
static void srv_reply_body(struct srv_call *call, int rc)
{
    rc |= sp_buf_add(&call->body, "}", 1);
    if (rc != 0)
        sp_http_reply_problem(call->req, 500, NULL, "the response is too large", NULL);
    else
        sp_http_reply(call->req, 200, "application/json", call->body.data, call->body.len);
}

/* GET /notifications: the page is in call->body; add the unread count and reply. */
static void srv_on_unread(void *ud, const PGresult *res, int err)
{
    struct srv_call *call = ud;

    if (err != 0)
        srv_reply_db_error(call->req, err);
    else
        srv_reply_body(call,
                       sp_buf_addf(&call->body, ",\"unread_count\":%s", PQgetvalue(res, 0, 0)));
    srv_done(call);
}

/* Reply with the page in @p res (NULL = empty page), or go on to the unread count. */
static void srv_reply_list(struct srv_call *call, const PGresult *res)
{
    char user[24];
    const char *params[] = {user};
    int rc = srv_list_body(call, res);

    if (rc == 0 && call->kind == SRV_NOTIFICATIONS) {
        snprintf(user, sizeof(user), "%" PRId64, call->claims.user_id);
        qry_db_query(call->srv->db, QRY_STMT_UNREAD, params, srv_on_unread, call);
        return;
    }
    srv_reply_body(call, rc);
    srv_done(call);
}

/* An empty page of a list under an entity is 404 when the entity does not exist. */
static void srv_on_exists(void *ud, const PGresult *res, int err)
{
    struct srv_call *call = ud;

    if (err != 0) {
        srv_reply_db_error(call->req, err);
    } else if (PQntuples(res) == 0) {
        srv_reply_not_found(call->req, srv_defs[call->kind].what, call->id);
    } else {
        srv_reply_list(call, NULL);
        return;
    }
    srv_done(call);
}

static void srv_on_list(void *ud, const PGresult *res, int err)
{
    struct srv_call *call = ud;
    enum qry_stmt exists = srv_defs[call->kind].exists;
    char id[24];
    const char *params[] = {id};

    if (err != 0) {
        srv_reply_db_error(call->req, err);
    } else if (PQntuples(res) == 0 && exists != QRY_STMT_COUNT) {
        snprintf(id, sizeof(id), "%" PRId64, call->id);
        qry_db_query(call->srv->db, exists, params, srv_on_exists, call);
        return;
    } else {
        srv_reply_list(call, res);
        return;
    }
    srv_done(call);
}

static void srv_serve_list(struct srv_call *call)
{
    char id[24];
    char max_id[24];
    char since_id[24];
    char limit[16];
    const char *params[4];
    int n = 0;
    enum qry_stmt stmt = srv_defs[call->kind].stmt;

    /* the first parameter: the path's id, the caller, or the tag */
    snprintf(id, sizeof(id), "%" PRId64, call->authed ? call->claims.user_id : call->id);
    snprintf(max_id, sizeof(max_id), "%" PRId64, call->page.max_id);
    snprintf(since_id, sizeof(since_id), "%" PRId64, call->page.since_id);
    snprintf(limit, sizeof(limit), "%d", call->page.limit);
    if (call->kind == SRV_RECIPES && call->tag != NULL) {
        stmt = QRY_STMT_RECIPES_BY_TAG;
        params[n++] = call->tag;
    } else if (call->kind != SRV_RECIPES) {
        params[n++] = id;
    }
    params[n++] = max_id;
    params[n++] = since_id;
    params[n] = limit;
    qry_db_query(call->srv->db, stmt, params, srv_on_list, call);
}

static void srv_dispatch(struct srv_call *call)
{
    if (call->kind == SRV_USER || call->kind == SRV_RECIPE)
        srv_serve_entity(call);
    else
        srv_serve_list(call);
}

/* The session of the token has been checked. */
static void srv_on_session(void *ud, int err)
{
    struct srv_call *call = ud;

    if (err == SP_EAUTH && srv_defs[call->kind].auth == SRV_AUTH_OPTIONAL) {
        call->authed = false; /* a dead session on an optional route: serve anonymously */
    } else if (err == SP_EAUTH) {
        qry_auth_reply_401(call->req, "the session of the access token is revoked or expired");
        srv_done(call);
        return;
    } else if (err != 0) {
        srv_reply_db_error(call->req, err);
        srv_done(call);
        return;
    }
    srv_dispatch(call);
}

/* Continuation after the Stockpot-After gate; req == NULL: already answered. */
static void srv_serve(struct sp_http_req *req, void *ud)
{
    struct srv_call *call = ud;

    if (req == NULL) {
        srv_done(call);
        return;
    }
    call->req = req;
    if (call->authed)
        qry_auth_session(call->srv->auth, &call->claims, srv_on_session, call);
    else
        srv_dispatch(call);
}

static int srv_parse(struct srv_call *call, struct sp_http_req *req, struct sp_errbuf *eb)
{
    int rc;

    if (strstr(srv_defs[call->kind].pattern, "{id}") != NULL) {
        rc = qry_params_id(sp_http_req_param(req, "id"), "id", &call->id, eb);
        if (rc != 0)
            return rc;
    }
    if (call->kind == SRV_USER || call->kind == SRV_RECIPE)
        return 0;
    if (call->kind == SRV_RECIPES) {
        call->tag = sp_http_req_query(req, "tag");
        if (call->tag != NULL && call->tag[0] == '\0')
            return sp_err_set(eb, SP_EINVAL, "tag", "tag must not be empty");
    }
    return qry_params_page(sp_http_req_query(req, "limit"), sp_http_req_query(req, "max_id"),
                           sp_http_req_query(req, "since_id"), &call->page, eb);
}

static void srv_on_request(struct sp_http_req *req, void *ud)
{
    const struct srv_route *route = ud;
    enum srv_auth auth = srv_defs[route->kind].auth;
    struct sp_errbuf eb = {{0}, {0}};
    struct srv_call *call = sp_xcalloc(1, sizeof(*call));
    int rc;

    call->srv = route->srv;
    call->kind = route->kind;
    sp_buf_init(&call->body, SRV_MAX_BODY_BYTES);
    rc = srv_parse(call, req, &eb);
    if (rc != 0) {
        srv_done(call);
        sp_http_reply_error(req, rc, &eb);
        return;
    }
    if (auth != SRV_AUTH_NONE) {
        rc = qry_auth_token(call->srv->auth, req, &call->claims, &eb);
        call->authed = rc == 0;
        if (rc != 0 && auth == SRV_AUTH_REQUIRED) {
            srv_done(call);
            qry_auth_reply_401(req, eb.msg);
            return;
        }
    }
    qry_after_gate(call->srv->after, req, srv_serve, call);
}

static void srv_on_stream(struct sp_http_req *req, void *ud)
{
    struct qry_server *srv = ud;

    qry_notify_handle(srv->notify, req);
}

static bool srv_ready(void *ud, struct sp_buf *why)
{
    struct qry_server *srv = ud;

    return qry_db_ready(srv->db, why);
}

/* Partitions of the event log, for Stockpot-After tokens; 0 = unknown (any accepted). */
static int32_t srv_partitions(const struct sp_config *cfg)
{
    if (strcmp(sp_config_str(cfg, "log.backend"), "lmdb") == 0)
        return 1;
    return 0; /* kafka: the topic's partition count is not known here yet; accept any >= 0 */
}

static void srv_add_routes(struct qry_server *srv,
                           struct event_base *base,
                           const struct sp_config *cfg,
                           struct sp_metrics *metrics)
{
    int64_t timeout_s = sp_config_int(cfg, "http.timeout_s");
    struct qry_notify_opts nopts = {
        .poll_ms = QRY_NOTIFY_POLL_MS,
        .listen_poll_ms = (int)sp_config_int(cfg, "query.sse_poll_ms"),
        /* a stream's connection times out after http.timeout_s without traffic */
        .keepalive_ms = timeout_s * 500 < QRY_NOTIFY_KEEPALIVE_MS ? (int)(timeout_s * 500)
                                                                  : QRY_NOTIFY_KEEPALIVE_MS,
        .max_streams = QRY_NOTIFY_MAX_STREAMS,
        .metrics = metrics,
    };

    for (int k = 0; k < SRV_KIND_COUNT; k++) {
        srv->routes[k].srv = srv;
        srv->routes[k].kind = (enum srv_kind)k;
        sp_http_route(srv->http, SP_HTTP_GET, srv_defs[k].pattern, srv_on_request, &srv->routes[k]);
    }
    srv->notify = qry_notify_new(base, srv->db, srv->auth, &nopts);
    sp_http_route(srv->http, SP_HTTP_GET, "/notifications/stream", srv_on_stream, srv);
    struct qry_chat_cmd cmd = {
        .host = sp_config_str(cfg, "command.host"),
        .port = (int)sp_config_int(cfg, "command.port"),
        .timeout_s = (int)timeout_s,
    };
    nopts.max_streams = QRY_CHAT_MAX_STREAMS; /* WebSockets and event streams of chat */
    srv->chat = qry__chat_new(base, srv->http, srv->db, srv->after, srv->auth, &nopts, &cmd);
}

int qry_server_new(struct event_base *base,
                   const struct sp_config *cfg,
                   struct sp_metrics *metrics,
                   struct qry_server **out,
                   struct sp_errbuf *eb)
{
    struct qry_server *srv = sp_xcalloc(1, sizeof(*srv));
    struct sp_http_opts opts = {
        .service = "query-api",
        .host = sp_config_str(cfg, "query.host"),
        .port = (int)sp_config_int(cfg, "query.port"),
        .max_body_bytes = (size_t)sp_config_int(cfg, "http.max_body_bytes"),
        .max_header_bytes = (size_t)sp_config_int(cfg, "http.max_header_bytes"),
        .timeout_s = (int)sp_config_int(cfg, "http.timeout_s"),
        .max_json_depth = (size_t)sp_config_int(cfg, "http.max_json_depth"),
        .json_parse = es_json_parse,
        .metrics = metrics,
        .ready = srv_ready,
        .ready_ud = srv,
    };

    struct qry_db_opts db_opts = {
        .conninfo = sp_config_str(cfg, "pg.conninfo"),
        .conns = QRY_DB_CONNS,
        .queue_max = QRY_DB_QUEUE_MAX,
        .timeout_ms = QRY_DB_TIMEOUT_MS,
    };
    int rc;

    rc = sp_http_server_new(base, &opts, &srv->http, eb);
    if (rc != 0) {
        free(srv);
        return rc;
    }
    srv->db = qry_db_new(base, &db_opts);
    srv->after = qry_after_new(base, srv->db, metrics, sp_config_int(cfg, "query.after_timeout_ms"),
                               srv_partitions(cfg));
    srv->auth = qry_auth_new(srv->db, sp_config_str(cfg, "jwt.secret"));
    srv_add_routes(srv, base, cfg, metrics);
    srv->search = qry_search_new(base, srv->http, cfg, metrics, srv_partitions(cfg));
    srv->analytics =
        qry_analytics_new(base, srv->http, cfg, metrics, srv->auth, srv_partitions(cfg));
    *out = srv;
    return 0;
}

/*
 * Order matters: freeing the pool completes its pending queries (their callbacks answer
 * 503 to requests the HTTP server still holds, and the gate's checkpoint read needs the
 * gate), then the open streams end, the gate drops its waiters, then the server drops
 * what is left.
 */
void qry_server_free(struct qry_server *srv)
{
    if (srv == NULL)
        return;
    qry_db_free(srv->db);
    qry_notify_free(srv->notify);
    qry__chat_free(srv->chat);
    qry_after_free(srv->after);
    qry_search_free(srv->search);
    qry_analytics_free(srv->analytics);
    qry_auth_free(srv->auth);
    sp_http_server_free(srv->http);
    free(srv);
}

int qry_server_port(const struct qry_server *srv)
{
    return sp_http_server_port(srv->http);
}
