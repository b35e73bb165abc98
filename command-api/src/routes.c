/*
 * HTTP handlers of the write API (README "command-api"): parse, authenticate and
 * validate a request, then queue it as a command for the group-commit batch. Bad
 * requests are answered here and never reach the write model or the log.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "app_priv.h"
#include "valid.h"

#include "sp/jwt.h"
#include "sp/log.h"
#include "sp/time.h"

#include "sp/banned.h"

/* Parse the JSON body; on failure answer 400/413 and return NULL. */
static json_t *read_body(struct sp_http_req *req)
{
    struct sp_errbuf eb = {0};
    json_t *body = NULL;
    int rc = sp_http_req_json(req, &body, &eb);
    if (rc != 0) {
        sp_http_reply_error(req, rc, &eb);
        return NULL;
    }
    return body;
}

/* Answer 400 naming every bad field if @p errors is not empty (stolen either way). */
static bool reply_invalid(struct sp_http_req *req, json_t *errors)
{
    if (json_array_size(errors) == 0) {
        json_decref(errors);
        return false;
    }
    sp_http_reply_problem(req, 400, "validation", "the request has invalid fields", errors);
    return true;
}

/* A body check of valid.h: appends one {field, detail} object to errors per bad field. */
typedef void (*valid_fn)(json_t *body, json_t *errors);

/*
 * Parse the JSON body and check it with @p valid; on failure answer as read_body() does,
 * or 400 naming every bad field.
 * @return the body, owned (json_decref), or NULL when answered.
 */
static json_t *valid_body(struct sp_http_req *req, valid_fn valid)
{
    json_t *body = read_body(req);
    if (!body)
        return NULL;
    json_t *errors = json_array();
    valid(body, errors);
    if (reply_invalid(req, errors)) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* Read and validate the body into c->input. 0, or answered (then free c). */
static int take_body(struct cmd__command *c, valid_fn valid)
{
    c->input = valid_body(c->req, valid);
    return c->input ? 0 : SP_EINVAL;
}

/*
 * take_body, then the id string the validator checked in field @p field into c->arg_id
 * (which cannot fail once @p valid accepted it). 0, or answered (then free c).
 */
static int take_body_id(struct cmd__command *c, valid_fn valid, const char *field)
{
    if (take_body(c, valid) != 0)
        return SP_EINVAL;
    return es_id_parse(json_string_value(json_object_get(c->input, field)), &c->arg_id);
}

static void valid_recipe_create(json_t *body, json_t *errors)
{
    cmd__valid_recipe(body, false, errors);
}

static void valid_recipe_update(json_t *body, json_t *errors)
{
    cmd__valid_recipe(body, true, errors);
}

static void reply_unauthorized(struct sp_http_req *req, const char *detail)
{
    sp_http_add_header(req, "WWW-Authenticate", "Bearer");
    sp_http_reply_problem(req, 401, "unauthorized", detail, NULL);
}

/*
 * Answer 400 problem+json for a bad request header @p name: detail @p detail (NULL:
 * "bad <name> header"), errors[] naming the header with @p why.
 */
static void
reply_bad_header(struct sp_http_req *req, const char *name, const char *detail, const char *why)
{
    char buf[96];
    if (!detail) {
        snprintf(buf, sizeof(buf), "bad %s header", name);
        detail = buf;
    }
    sp_http_reply_problem(req, 400, "validation", detail,
                          json_pack("[{s:s, s:s}]", "field", name, "detail", why));
}

/* Verify the bearer token (not the session: the decider checks that). 0 or answered. */
static int authenticate(struct cmd_app *app, struct sp_http_req *req, struct sp_jwt_claims *cl)
{
    struct sp_errbuf eb = {0};
    const char *tok = sp_http_req_bearer(req);
    if (!tok) {
        reply_unauthorized(req, "a bearer access token is required");
        return SP_EAUTH;
    }
    int rc = sp_jwt_verify_cached(app->tokens, tok, sp_time_now_us() / 1000000, cl, &eb);
    if (rc != 0)
        reply_unauthorized(req, eb.msg);
    return rc;
}

/*
 * Answer 503 with Retry-After while fenced or while the write model is broken.
 * @return true if answered.
 */
static bool refuse_if_broken(struct cmd_app *app, struct sp_http_req *req)
{
    bool fenced = false;
    if (cmd__usable(app, NULL, 0, &fenced))
        return false;
    sp_http_add_header(req, "Retry-After", "1");
    if (fenced) {
        sp_http_reply_problem(req, 503, "unavailable", CMD__FENCED_DETAIL, NULL);
        return true;
    }
    sp_http_reply_problem(req, 503, "unavailable",
                          "the write model is catching up with the event log; retry later", NULL);
    return true;
}

/*
 * Common start of the commands without a token (register, login, refresh): 503 while
 * broken, else valid_body(). @return the body, owned, or NULL when answered.
 */
static json_t *anon_body(struct cmd_app *app, struct sp_http_req *req, valid_fn valid)
{
    return refuse_if_broken(app, req) ? NULL : valid_body(req, valid);
}

/* c->idem_fp = HMAC over (kind, target, raw body); c->idem_key = the scoped record key. */
static void idem_scope(struct cmd_app *app, struct cmd__command *c, const char *key)
{
    size_t body_len = 0;
    const void *body = sp_http_req_body(c->req, &body_len);
    unsigned char anon[32];
    char anon_hex[65];
    struct sp_buf b;
    sp_buf_init(&b, 0);
    if (sp_buf_addf(&b, "%s\n%lld\n", cmd__kind_name(c->kind), (long long)c->target_id) != 0 ||
        (body_len && sp_buf_add(&b, body, body_len) != 0))
        SP_ASSERT(!"unbounded buffer refused an append");
    cmd__hmac_sha256(app->idem_hmac_key, sizeof(app->idem_hmac_key), b.data, b.len, c->idem_fp);
    if (c->user_id != 0) {
        snprintf(c->idem_key, sizeof(c->idem_key), "u:%lld:%s", (long long)c->user_id, key);
    } else {
        /* Anonymous: the key names this exact request, so other clients never collide. */
        sp_buf_reset(&b);
        if (sp_buf_add(&b, c->idem_fp, sizeof(c->idem_fp)) != 0 || sp_buf_adds(&b, key) != 0)
            SP_ASSERT(!"unbounded buffer refused an append");
        cmd__hmac_sha256(app->idem_hmac_key, sizeof(app->idem_hmac_key), b.data, b.len, anon);
        cmd__hex32(anon, anon_hex);
        snprintf(c->idem_key, sizeof(c->idem_key), "a:%s", anon_hex);
    }
    sp_buf_release(&b);
}

/*
 * Idempotency-Key (README "HTTP API", cmd/app.h): check the header and scope it to the
 * acting user, or for anonymous requests to the exact request. 0 or answered 400.
 */
static int idem_setup(struct cmd_app *app, struct cmd__command *c)
{
    const char *key = sp_http_req_header(c->req, "Idempotency-Key");
    size_t len;
    if (!key)
        return 0;
    len = strlen(key);
    for (size_t i = 0; i < len; i++) {
        if (key[i] < 0x21 || key[i] > 0x7e)
            len = 0;
    }
    if (len == 0 || len > CMD__IDEM_KEY_MAX) {
        reply_bad_header(c->req, "Idempotency-Key", NULL,
                         "must be 1 to 128 visible ASCII characters");
        return SP_EINVAL;
    }
    idem_scope(app, c, key);
    c->idem_on = true;
    return 0;
}

/*
 * Stockpot-Dev-Time (README "HTTP API", cmd/app.h): in mode = dev, an RFC 3339 UTC
 * timestamp ("Z"; a fraction is truncated to µs; not before 1970) that becomes the
 * time of every event @p c appends; any other mode refuses the header. Read once here, so
 * deciding costs nothing more. 0, or answered 400.
 */
static int dev_time_setup(struct cmd_app *app, struct cmd__command *c)
{
    const char *h = sp_http_req_header(c->req, CMD__DEV_TIME_HEADER);
    size_t len;
    if (!h)
        return 0;
    if (!app->dev_mode) {
        reply_bad_header(c->req, CMD__DEV_TIME_HEADER,
                         CMD__DEV_TIME_HEADER " is accepted in dev mode only",
                         "is accepted in dev mode only (mode = dev); this command-api runs in "
                         "production mode");
        return SP_EINVAL;
    }
    len = strlen(h);
    if (len == 0 || (h[len - 1] != 'Z' && h[len - 1] != 'z') ||
        sp_time_parse_rfc3339(h, &c->dev_time_us) != 0 || c->dev_time_us < 0) {
        reply_bad_header(c->req, CMD__DEV_TIME_HEADER, NULL,
                         "must be an RFC 3339 UTC timestamp such as 2026-11-03T10:15:00Z");
        return SP_EINVAL;
    }
    c->dev_time = true;
    return 0;
}

/* Queue @p c once its Stockpot-Dev-Time is read; else free it (answered). */
static void submit(struct cmd_app *app, struct cmd__command *c)
{
    if (dev_time_setup(app, c) != 0) {
        cmd__command_free(c);
        return;
    }
    cmd__enqueue(app, c);
}

/*
 * Count the request against @p rl (NULL: no limit) by client address and add the
 * RateLimit-Limit, -Remaining and -Reset fields (draft-ietf-httpapi-ratelimit-headers);
 * over the limit, answer 429 problem+json with Retry-After (RFC 6585 §4, RFC 9110
 * §10.2.3). @return true if answered.
 */
static bool rate_limited(struct sp_ratelimit *rl, struct sp_http_req *req, const char *what)
{
    struct sp_ratelimit_verdict v;
    char n[24], detail[128];

    if (rl == NULL)
        return false;
    sp_ratelimit_take(rl, sp_http_req_peer(req), sp_time_mono_us(), &v);
    snprintf(n, sizeof(n), "%" PRId64, v.limit);
    sp_http_add_header(req, "RateLimit-Limit", n);
    snprintf(n, sizeof(n), "%" PRId64, v.remaining);
    sp_http_add_header(req, "RateLimit-Remaining", n);
    snprintf(n, sizeof(n), "%" PRId64, v.reset_s);
    sp_http_add_header(req, "RateLimit-Reset", n);
    if (v.allowed)
        return false;
    snprintf(n, sizeof(n), "%" PRId64, v.retry_after_s);
    sp_http_add_header(req, "Retry-After", n);
    snprintf(detail, sizeof(detail),
             "too many %s requests from this address; retry in %" PRId64 " s", what,
             v.retry_after_s);
    sp_http_reply_problem(req, 429, "rate-limited", detail, NULL);
    return true;
}

static void h_register(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct sp_errbuf eb = {0};
    if (rate_limited(app->rl_register, req, "registration"))
        return;
    json_t *body = anon_body(app, req, cmd__valid_register);
    if (!body)
        return;
    struct cmd__command *c = cmd__command_new(CMD_REGISTER, req);
    c->input = body;
    if (idem_setup(app, c) != 0)
        goto out_free;
    const char *password = json_string_value(json_object_get(body, "password"));
    int rc = cmd__password_hash(&app->argon2, password, c->password_hash, &eb);
    if (rc != 0) {
        sp_log(SP_LOG_ERROR, "%s", eb.msg);
        sp_http_reply_problem(req, 500, "internal", "could not hash the password", NULL);
        goto out_free;
    }
    submit(app, c);
    return;
out_free:
    cmd__command_free(c);
}

/* Look up the login's user and check the password; 0 and *uid, else SP_EAUTH/SP_EDB. */
static int check_login(struct cmd_app *app, json_t *body, int64_t *uid)
{
    const char *name = json_string_value(json_object_get(body, "username"));
    const char *email = json_string_value(json_object_get(body, "email"));
    const char *password = json_string_value(json_object_get(body, "password"));
    char hash[CMD__PHC_MAX];
    MDB_txn *txn = NULL;
    int rc = cmd__wm_txn_begin(app->wm, NULL, true, &txn);
    if (rc != 0)
        return rc;
    rc = name ? cmd__wm_user_by_name(app->wm, txn, name, uid)
              : cmd__wm_user_by_email(app->wm, txn, email, uid);
    if (rc == 0)
        rc = cmd__wm_user_hash(app->wm, txn, *uid, hash, sizeof(hash));
    mdb_txn_abort(txn);
    if (rc == SP_EDB)
        return rc;
    if (rc != 0) {
        /* Same work as a real check, so timing does not reveal unknown users. */
        if (cmd__password_verify(app->dummy_hash, password) == 0)
            sp_log(SP_LOG_DEBUG, "dummy password matched");
        return SP_EAUTH;
    }
    return cmd__password_verify(hash, password);
}

static void h_login(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    int64_t uid = 0;
    char uid_s[24];
    if (rate_limited(app->rl_login, req, "login"))
        return;
    json_t *body = anon_body(app, req, cmd__valid_login);
    if (!body)
        return;
    int rc = check_login(app, body, &uid);
    json_decref(body);
    if (rc == SP_EDB) {
        sp_http_reply_problem(req, 503, "unavailable", "the write model is unavailable", NULL);
        return;
    }
    if (rc != 0) {
        snprintf(uid_s, sizeof(uid_s), "%lld", (long long)uid);
        sp_log_audit("login_failed",
                     (const char *[]){"user_id", uid_s, "request_id", sp_http_req_id(req), "peer",
                                      sp_http_req_peer(req), NULL});
        reply_unauthorized(req, "invalid credentials");
        return;
    }
    struct cmd__command *c = cmd__command_new(CMD_LOGIN, req);
    c->user_id = uid;
    submit(app, c);
}

static void h_refresh(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    json_t *body = anon_body(app, req, cmd__valid_refresh);
    if (!body)
        return;
    struct cmd__command *c = cmd__command_new(CMD_REFRESH, req);
    json_t *tok = json_object_get(body, "refresh_token");
    cmd__sha256_hex(json_string_value(tok), json_string_length(tok), c->refresh_hash);
    json_decref(body);
    submit(app, c);
}

static void h_logout(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct sp_jwt_claims cl;
    if (refuse_if_broken(app, req))
        return;
    if (authenticate(app, req, &cl) != 0)
        return;
    struct cmd__command *c = cmd__command_new(CMD_LOGOUT, req);
    c->user_id = cl.user_id;
    c->session_id = cl.session_id;
    if (sp_http_req_method(req) == SP_HTTP_POST && idem_setup(app, c) != 0) {
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

static void h_validate(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct sp_jwt_claims cl;
    struct cmd__session s;
    MDB_txn *txn = NULL;
    char uid[24], sid[24], exp[32];
    if (refuse_if_broken(app, req))
        return;
    if (authenticate(app, req, &cl) != 0)
        return;
    int rc = cmd__wm_txn_begin(app->wm, NULL, true, &txn);
    if (rc == 0) {
        rc = cmd__wm_session_get(app->wm, txn, cl.session_id, &s);
        mdb_txn_abort(txn);
    }
    if (rc == SP_EDB) {
        sp_http_reply_problem(req, 503, "unavailable", "the write model is unavailable", NULL);
        return;
    }
    if (rc != 0 || s.revoked || s.user_id != cl.user_id || s.expires_at_us <= sp_time_now_us()) {
        reply_unauthorized(req, "session is not active");
        return;
    }
    snprintf(uid, sizeof(uid), "%lld", (long long)cl.user_id);
    snprintf(sid, sizeof(sid), "%lld", (long long)cl.session_id);
    sp_time_format_rfc3339(cl.exp_s * 1000000, exp, sizeof(exp));
    sp_http_reply_json(
        req, 200,
        json_pack("{s:s, s:s, s:s}", "user_id", uid, "session_id", sid, "expires_at", exp));
}

static void h_recipe_create(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct sp_jwt_claims cl;
    if (refuse_if_broken(app, req) || authenticate(app, req, &cl) != 0)
        return;
    json_t *body = valid_body(req, valid_recipe_create);
    if (!body)
        return;
    struct cmd__command *c = cmd__command_new(CMD_RECIPE_CREATE, req);
    c->input = body;
    c->user_id = cl.user_id;
    c->session_id = cl.session_id;
    if (idem_setup(app, c) != 0) {
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

#define IF_MATCH_WHY "must be a quoted stream version such as \"3\""

/*
 * If-Match: "<n>", <n> or *. @return 0 and *version (-1 for * or absent). A weak tag
 * W/"<n>" never matches: RFC 9110 §13.1.1 compares If-Match strongly, so it gets
 * INT64_MAX, which no stream reaches, and the command answers 412.
 */
static int parse_if_match(struct sp_http_req *req, int64_t *version)
{
    const char *h = sp_http_req_header(req, "If-Match");
    char digits[24];
    char *end = NULL;
    bool weak = false;
    *version = -1;
    if (!h || strcmp(h, "*") == 0)
        return 0;
    if (strncmp(h, "W/", 2) == 0) {
        h += 2;
        weak = true;
    }
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(digits) || strspn(h, "0123456789") < n)
        return SP_EINVAL;
    memcpy(digits, h, n);
    digits[n] = '\0';
    errno = 0;
    long long v = strtoll(digits, &end, 10);
    if (errno != 0 || *end != '\0')
        return SP_EINVAL;
    *version = weak ? INT64_MAX : v;
    return 0;
}

/* Common start of PUT and DELETE: token, recipe id, If-Match. NULL when answered. */
static struct cmd__command *
change_begin(struct cmd_app *app, struct sp_http_req *req, enum cmd__kind kind)
{
    struct sp_jwt_claims cl;
    int64_t rid, if_match;
    if (refuse_if_broken(app, req) || authenticate(app, req, &cl) != 0)
        return NULL;
    if (es_id_parse(sp_http_req_param(req, "id"), &rid) != 0) {
        sp_http_reply_problem(req, 404, "not-found", "recipe not found", NULL);
        return NULL;
    }
    if (parse_if_match(req, &if_match) != 0) {
        reply_bad_header(req, "If-Match", NULL, IF_MATCH_WHY);
        return NULL;
    }
    struct cmd__command *c = cmd__command_new(kind, req);
    c->user_id = cl.user_id;
    c->session_id = cl.session_id;
    c->target_id = rid;
    c->if_match = if_match;
    return c;
}

static void h_recipe_update(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct cmd__command *c = change_begin(app, req, CMD_RECIPE_UPDATE);
    if (!c)
        return;
    if (take_body(c, valid_recipe_update) != 0) {
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

static void h_recipe_delete(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct cmd__command *c = change_begin(app, req, CMD_RECIPE_DELETE);
    if (c)
        submit(app, c);
}

/*
 * Common start of the issue 4 commands: token, then the path's "id" (404 with
 * @p not_found when it is not an id). NULL when answered.
 */
static struct cmd__command *social_begin(struct cmd_app *app,
                                         struct sp_http_req *req,
                                         enum cmd__kind kind,
                                         const char *not_found)
{
    struct sp_jwt_claims cl;
    int64_t id = 0;
    if (refuse_if_broken(app, req) || authenticate(app, req, &cl) != 0)
        return NULL;
    if (not_found && es_id_parse(sp_http_req_param(req, "id"), &id) != 0) {
        sp_http_reply_problem(req, 404, "not-found", not_found, NULL);
        return NULL;
    }
    struct cmd__command *c = cmd__command_new(kind, req);
    c->user_id = cl.user_id;
    c->session_id = cl.session_id;
    c->target_id = id;
    return c;
}

static void h_profile_update(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct cmd__command *c = social_begin(app, req, CMD_PROFILE_UPDATE, "user not found");
    if (!c)
        return;
    if (parse_if_match(req, &c->if_match) != 0) {
        reply_bad_header(req, "If-Match", NULL, IF_MATCH_WHY);
        cmd__command_free(c);
        return;
    }
    if (take_body(c, cmd__valid_profile) != 0) {
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

static void follow_common(struct cmd_app *app, struct sp_http_req *req, enum cmd__kind kind)
{
    struct cmd__command *c = social_begin(app, req, kind, "user not found");
    if (!c)
        return;
    if (c->target_id == c->user_id) {
        sp_http_reply_problem(req, 400, "validation", "you cannot follow yourself",
                              json_pack("[{s:s, s:s}]", "field", "id", "detail",
                                        "must be another user than the caller"));
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

static void h_follow(struct sp_http_req *req, void *ud)
{
    follow_common(ud, req, CMD_FOLLOW);
}

static void h_unfollow(struct sp_http_req *req, void *ud)
{
    follow_common(ud, req, CMD_UNFOLLOW);
}

static void h_comment_create(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct cmd__command *c = social_begin(app, req, CMD_COMMENT_CREATE, "recipe not found");
    if (!c)
        return;
    if (take_body(c, cmd__valid_comment) != 0 || idem_setup(app, c) != 0) {
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

static void h_comment_delete(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct cmd__command *c = social_begin(app, req, CMD_COMMENT_DELETE, "recipe not found");
    if (!c)
        return;
    if (es_id_parse(sp_http_req_param(req, "comment_id"), &c->arg_id) != 0) {
        sp_http_reply_problem(req, 404, "not-found", "comment not found", NULL);
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

static void h_like(struct sp_http_req *req, void *ud)
{
    enum cmd__kind kind = sp_http_req_method(req) == SP_HTTP_DELETE ? CMD_UNLIKE : CMD_LIKE;
    struct cmd__command *c = social_begin(ud, req, kind, "recipe not found");
    if (c)
        submit(ud, c);
}

static void h_notifications_read(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct cmd__command *c = social_begin(app, req, CMD_NOTIFICATIONS_READ, NULL);
    if (!c)
        return;
    if (take_body_id(c, cmd__valid_read, "up_to_id") != 0) {
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

/* ---- chat (issue 12) ---- */

/* 400 naming member_ids with @p detail; always true. */
static bool reply_members(struct sp_http_req *req, const char *detail)
{
    sp_http_reply_problem(req, 400, "validation", detail,
                          json_pack("[{s:s, s:s}]", "field", "member_ids", "detail", detail));
    return true;
}

/* The room's size rules, which need the caller and chat.max_members. @return true if answered. */
static bool room_size_refused(struct cmd_app *app, struct cmd__command *c)
{
    json_t *ids = json_object_get(c->input, "member_ids"), *v;
    bool group = json_is_true(json_object_get(c->input, "is_group"));
    size_t i, n = json_array_size(ids) + 1;
    int64_t uid;
    char detail[96];
    json_array_foreach(ids, i, v) {
        if (es_id_parse(json_string_value(v), &uid) == 0 && uid == c->user_id)
            n--; /* the caller may be listed: counted once */
    }
    if (!group && n != 2)
        return reply_members(c->req, "a direct (1:1) room has exactly one member besides you");
    if (group && n < 2)
        return reply_members(c->req, "a group needs at least one member besides you");
    if (group && (int64_t)n > app->chat_max_members) {
        snprintf(detail, sizeof(detail), "a group has at most %lld members, you included",
                 (long long)app->chat_max_members);
        return reply_members(c->req, detail);
    }
    return false;
}

static void h_room_create(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct cmd__command *c = social_begin(app, req, CMD_ROOM_CREATE, NULL);
    if (!c)
        return;
    if (take_body(c, cmd__valid_room_create) != 0 || room_size_refused(app, c) ||
        idem_setup(app, c) != 0) {
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

/* A room command whose body @p valid checks: token, room id, body. */
static void room_command(struct sp_http_req *req, void *ud, enum cmd__kind kind, valid_fn valid)
{
    struct cmd_app *app = ud;
    struct cmd__command *c = social_begin(app, req, kind, "room not found");
    if (!c)
        return;
    if (take_body(c, valid) != 0) {
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

static void h_room_update(struct sp_http_req *req, void *ud)
{
    room_command(req, ud, CMD_ROOM_UPDATE, cmd__valid_room_update);
}

static void h_member(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    bool add = sp_http_req_method(req) == SP_HTTP_POST;
    struct cmd__command *c =
        social_begin(app, req, add ? CMD_MEMBER_ADD : CMD_MEMBER_REMOVE, "room not found");
    if (!c)
        return;
    if (add) {
        if (take_body_id(c, cmd__valid_member, "user_id") != 0) {
            cmd__command_free(c);
            return;
        }
    } else if (es_id_parse(sp_http_req_param(req, "user_id"), &c->arg_id) != 0) {
        sp_http_reply_problem(req, 404, "not-found", "no such member in this room", NULL);
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

static void h_message_send(struct sp_http_req *req, void *ud)
{
    room_command(req, ud, CMD_MESSAGE_SEND, cmd__valid_message);
}

static void h_room_read(struct sp_http_req *req, void *ud)
{
    struct cmd_app *app = ud;
    struct cmd__command *c = social_begin(app, req, CMD_ROOM_READ, "room not found");
    if (!c)
        return;
    if (take_body_id(c, cmd__valid_read, "up_to_id") != 0) {
        cmd__command_free(c);
        return;
    }
    submit(app, c);
}

void cmd__routes_install(struct cmd_app *app)
{
    sp_http_route(app->http, SP_HTTP_POST, "/auth/register", h_register, app);
    sp_http_route(app->http, SP_HTTP_POST, "/auth/login", h_login, app);
    sp_http_route(app->http, SP_HTTP_POST, "/auth/refresh", h_refresh, app);
    sp_http_route(app->http, SP_HTTP_POST | SP_HTTP_GET, "/auth/logout", h_logout, app);
    sp_http_route(app->http, SP_HTTP_GET, "/auth/validate", h_validate, app);
    sp_http_route(app->http, SP_HTTP_POST, "/recipes", h_recipe_create, app);
    sp_http_route(app->http, SP_HTTP_PUT, "/recipes/{id}", h_recipe_update, app);
    sp_http_route(app->http, SP_HTTP_DELETE, "/recipes/{id}", h_recipe_delete, app);
    sp_http_route(app->http, SP_HTTP_PUT, "/users/{id}", h_profile_update, app);
    sp_http_route(app->http, SP_HTTP_POST, "/users/{id}/follow", h_follow, app);
    sp_http_route(app->http, SP_HTTP_POST, "/users/{id}/unfollow", h_unfollow, app);
    sp_http_route(app->http, SP_HTTP_POST, "/recipes/{id}/comments", h_comment_create, app);
    sp_http_route(app->http, SP_HTTP_DELETE, "/recipes/{id}/comments/{comment_id}",
                  h_comment_delete, app);
    sp_http_route(app->http, SP_HTTP_POST | SP_HTTP_DELETE, "/recipes/{id}/like", h_like, app);
    sp_http_route(app->http, SP_HTTP_POST, "/notifications/read", h_notifications_read, app);
    sp_http_route(app->http, SP_HTTP_POST, "/chat/rooms", h_room_create, app);
    sp_http_route(app->http, SP_HTTP_PUT, "/chat/rooms/{id}", h_room_update, app);
    sp_http_route(app->http, SP_HTTP_POST, "/chat/rooms/{id}/members", h_member, app);
    sp_http_route(app->http, SP_HTTP_DELETE, "/chat/rooms/{id}/members/{user_id}", h_member, app);
    sp_http_route(app->http, SP_HTTP_POST, "/chat/rooms/{id}/messages", h_message_send, app);
    sp_http_route(app->http, SP_HTTP_POST, "/chat/rooms/{id}/read", h_room_read, app);
}
