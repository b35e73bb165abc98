/* The query API's routes: users and recipes read from the PostgreSQL read models. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "sp/alloc.h"
#include "sp/http.h"
#include "qry/after.h"
#include "qry/db.h"
#include "qry/params.h"
#include "qry/server.h"

#include "sp/banned.h"

#define SRV_MAX_BODY_BYTES ((size_t)64 * 1024 * 1024) /* cap on one list response */

struct qry_server {
    struct sp_http_server *http; /* owned */
    struct qry_db *db;           /* owned */
    struct qry_after *after;     /* owned */
};

enum srv_kind { SRV_USER, SRV_RECIPE, SRV_USER_RECIPES, SRV_RECIPES };

/*
 * One parsed request, alive from parsing until the reply: across a Stockpot-After wait
 * and the asynchronous queries. Every path ends in exactly one reply and srv_done.
 */
struct srv_call {
    struct qry_server *srv;  /* borrowed */
    struct sp_http_req *req; /* borrowed until the reply; set once past the gate */
    enum srv_kind kind;
    int64_t id;      /* user or recipe id from the path; 0 for /recipes */
    const char *tag; /* borrowed from the request; NULL = no tag filter */
    struct qry_page page;
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
    free(call);
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
        srv_reply_not_found(req, call->kind == SRV_USER ? "user" : "recipe", call->id);
    } else {
        version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(etag, sizeof(etag), "\"%" PRId64 "\"", version);
        sp_http_add_header(req, "ETag", etag);
        if (qry_params_etag_match(sp_http_req_header(req, "If-None-Match"), version)) {
            sp_http_reply(req, 304, NULL, NULL, 0);
        } else {
            json = PQgetvalue(res, 0, 1);
            sp_http_reply(req, 200, "application/json", json, strlen(json));
        }
    }
    srv_done(call);
}

static void srv_serve_entity(struct srv_call *call)
{
    char id[24];
    const char *params[] = {id};

    snprintf(id, sizeof(id), "%" PRId64, call->id);
    qry_db_query(call->srv->db, call->kind == SRV_USER ? QRY_STMT_USER : QRY_STMT_RECIPE, params,
                 srv_on_entity, call);
}

/* Link: <path?tag=..&since_id=..&max_id=<last>&limit=n>; rel="next" (RFC 8288). */
static void srv_add_link(struct srv_call *call, struct sp_http_req *req, const char *last_id)
{
    struct sp_buf link;
    char *tag;
    int rc = 0;

    sp_buf_init(&link, 0);
    if (call->kind == SRV_USER_RECIPES)
        rc |= sp_buf_addf(&link, "</users/%" PRId64 "/recipes?", call->id);
    else
        rc |= sp_buf_adds(&link, "</recipes?");
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

/* {"items":[...],"next_max_id":"<id>"}; rows are (id, json) with json built by SQL. */
static int srv_list_body(const PGresult *res, bool full, struct sp_buf *body)
{
    int n = res != NULL ? PQntuples(res) : 0;
    int rc = 0;

    rc |= sp_buf_adds(body, "{\"items\":[");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            rc |= sp_buf_add(body, ",", 1);
        rc |= sp_buf_add(body, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1));
    }
    rc |= sp_buf_add(body, "]", 1);
    if (full)
        rc |= sp_buf_addf(body, ",\"next_max_id\":\"%s\"", PQgetvalue(res, n - 1, 0));
    rc |= sp_buf_add(body, "}", 1);
    return rc;
}

/* Reply with the page in @p res (NULL = empty page). */
static void srv_reply_list(struct srv_call *call, const PGresult *res)
{
    struct sp_http_req *req = call->req;
    struct sp_buf body;
    bool full;
    int rc;

    full = res != NULL && PQntuples(res) == call->page.limit;
    if (full)
        srv_add_link(call, req, PQgetvalue(res, PQntuples(res) - 1, 0));
    sp_buf_init(&body, SRV_MAX_BODY_BYTES);
    rc = srv_list_body(res, full, &body);
    if (rc != 0)
        sp_http_reply_problem(req, 500, NULL, "the response is too large", NULL);
    else
        sp_http_reply(req, 200, "application/json", body.data, body.len);
    sp_buf_release(&body);
}

/* An empty page of /users/{id}/recipes is 404 when the user does not exist. */
static void srv_on_user_exists(void *ud, const PGresult *res, int err)
{
    struct srv_call *call = ud;

    if (err != 0)
        srv_reply_db_error(call->req, err);
    else if (PQntuples(res) == 0)
        srv_reply_not_found(call->req, "user", call->id);
    else
        srv_reply_list(call, NULL);
    srv_done(call);
}

static void srv_on_list(void *ud, const PGresult *res, int err)
{
    struct srv_call *call = ud;
    char id[24];
    const char *params[] = {id};

    if (err != 0) {
        srv_reply_db_error(call->req, err);
    } else if (PQntuples(res) == 0 && call->kind == SRV_USER_RECIPES) {
        snprintf(id, sizeof(id), "%" PRId64, call->id);
        qry_db_query(call->srv->db, QRY_STMT_USER_EXISTS, params, srv_on_user_exists, call);
        return;
    } else {
        srv_reply_list(call, res);
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
    enum qry_stmt stmt = QRY_STMT_RECIPES_ALL;

    snprintf(id, sizeof(id), "%" PRId64, call->id);
    snprintf(max_id, sizeof(max_id), "%" PRId64, call->page.max_id);
    snprintf(since_id, sizeof(since_id), "%" PRId64, call->page.since_id);
    snprintf(limit, sizeof(limit), "%d", call->page.limit);
    if (call->kind == SRV_USER_RECIPES) {
        stmt = QRY_STMT_RECIPES_BY_USER;
        params[n++] = id;
    } else if (call->tag != NULL) {
        stmt = QRY_STMT_RECIPES_BY_TAG;
        params[n++] = call->tag;
    }
    params[n++] = max_id;
    params[n++] = since_id;
    params[n] = limit;
    qry_db_query(call->srv->db, stmt, params, srv_on_list, call);
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
    if (call->kind == SRV_USER || call->kind == SRV_RECIPE)
        srv_serve_entity(call);
    else
        srv_serve_list(call);
}

static int srv_parse(struct srv_call *call, struct sp_http_req *req, struct sp_errbuf *eb)
{
    int rc;

    if (call->kind != SRV_RECIPES) {
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

static void srv_start(struct qry_server *srv, struct sp_http_req *req, enum srv_kind kind)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct srv_call *call = sp_xcalloc(1, sizeof(*call));
    int rc;

    call->srv = srv;
    call->kind = kind;
    rc = srv_parse(call, req, &eb);
    if (rc != 0) {
        free(call);
        sp_http_reply_error(req, rc, &eb);
        return;
    }
    qry_after_gate(srv->after, req, srv_serve, call);
}

static void srv_on_user(struct sp_http_req *req, void *ud)
{
    srv_start(ud, req, SRV_USER);
}

static void srv_on_user_recipes(struct sp_http_req *req, void *ud)
{
    srv_start(ud, req, SRV_USER_RECIPES);
}

static void srv_on_recipe(struct sp_http_req *req, void *ud)
{
    srv_start(ud, req, SRV_RECIPE);
}

static void srv_on_recipes(struct sp_http_req *req, void *ud)
{
    srv_start(ud, req, SRV_RECIPES);
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
    sp_http_route(srv->http, SP_HTTP_GET, "/users/{id}", srv_on_user, srv);
    sp_http_route(srv->http, SP_HTTP_GET, "/users/{id}/recipes", srv_on_user_recipes, srv);
    sp_http_route(srv->http, SP_HTTP_GET, "/recipes/{id}", srv_on_recipe, srv);
    sp_http_route(srv->http, SP_HTTP_GET, "/recipes", srv_on_recipes, srv);
    *out = srv;
    return 0;
}

/*
 * Order matters: freeing the pool completes its pending queries (their callbacks answer
 * 503 to requests the HTTP server still holds, and the gate's checkpoint read needs the
 * gate), then the gate drops its waiters, then the server drops what is left.
 */
void qry_server_free(struct qry_server *srv)
{
    if (srv == NULL)
        return;
    qry_db_free(srv->db);
    qry_after_free(srv->after);
    sp_http_server_free(srv->http);
    free(srv);
}

int qry_server_port(const struct qry_server *srv)
{
    return sp_http_server_port(srv->http);
}
