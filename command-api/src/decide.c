/*
 * The deciders: each command is decided against the write model as seen by the batch's
 * transaction, and its events are folded into that transaction at once (cmd__wm_apply),
 * so later commands in the same batch see them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_priv.h"

#include "sp/alloc.h"
#include "sp/jwt.h"
#include "sp/log.h"
#include "sp/time.h"

#include "sp/banned.h"

#define ID_STR 24

static void id_str(int64_t id, char *out)
{
    snprintf(out, ID_STR, "%lld", (long long)id);
}

void cmd__fail(struct cmd__command *c, int status, const char *slug, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
    vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
    va_end(ap);
    c->status = status;
    c->slug = slug;
}

void cmd__fail_field(
    struct cmd__command *c, int status, const char *slug, const char *field, const char *detail)
{
    cmd__fail(c, status, slug, "%s %s", field, detail);
    json_decref(c->errors);
    c->errors = json_pack("[{s:s, s:s}]", "field", field, "detail", detail);
}

/*
 * Encode the complete event once for the log's append (es_event_seal), refusing one the
 * log would refuse (log.max_event_bytes) with 413 for this command alone, rather than
 * failing the whole batch's append. @return 0, SP_ETOOBIG or SP_EINVAL.
 */
static int check_size(struct cmd_app *app, struct cmd__command *c, struct es_event *ev)
{
    int rc = es_event_seal(ev, app->max_event_bytes, NULL);
    if (rc == SP_ETOOBIG)
        cmd__fail(c, 413, "too-big", "the resulting event exceeds %zu bytes", app->max_event_bytes);
    return rc;
}

int64_t cmd__next_id(struct cmd_app *app)
{
    if (app->hooks.next_id)
        return app->hooks.next_id(app->hooks.next_id_ud);
    return es_snowflake_next(&app->ids);
}

/*
 * A fresh id's stream must not exist yet: a Snowflake id repeats if the wall clock
 * steps back across a restart. Fails c with 503 and @return SP_ECONFLICT if it does.
 */
static int check_fresh(struct cmd__command *c, const char *stream, int64_t ver)
{
    if (ver == 0)
        return 0;
    sp_logf(SP_LOG_ERROR, (const char *[]){"stream", stream, "request_id", c->request_id, NULL},
            "fresh entity id is already taken (version %lld): did the clock step back?",
            (long long)ver);
    cmd__fail(c, 503, "unavailable", "could not allocate a new id; retry later");
    return SP_ECONFLICT;
}

/*
 * Make event @p type on @p stream at its next version and fold it into @p txn; a
 * @p fresh stream (new entity) must be empty (check_fresh). @p data is stolen. The
 * event's time is the clock's, or the command's Stockpot-Dev-Time (mode = dev).
 */
static int emit(struct cmd_app *app,
                MDB_txn *txn,
                struct cmd__command *c,
                enum es_type type,
                const char *stream,
                bool fresh,
                int64_t actor,
                json_t *data)
{
    struct sp_errbuf eb = {0};
    const char *name = es_type_name(type);
    char actor_s[ID_STR];
    int64_t ver;
    int rc;

    SP_ASSERT(c->n_evs < CMD__MAX_EVENTS);
    rc = cmd__wm_stream_version(app->wm, txn, stream, &ver);
    if (rc == 0 && fresh)
        rc = check_fresh(c, stream, ver);
    if (rc != 0) {
        json_decref(data);
        return rc;
    }
    id_str(actor, actor_s);
    struct es_event *ev = &c->evs[c->n_evs];
    rc = es_event_make(ev, name, stream, ver + 1, actor_s, c->request_id, NULL, data);
    if (rc != 0) {
        sp_log(SP_LOG_ERROR, "could not make %s event: %s", name, sp_strerror(rc));
        return rc;
    }
    c->n_evs++;
    if (c->dev_time)
        ev->time_us = c->dev_time_us;
    if (c->idem_on) { /* so catch-up can rebuild the idempotency answer (wm.h) */
        char fp[CMD__IDEM_FP_LEN + 1];
        cmd__wm_idem_fp_format(app->wm, c->idem_fp, fp);
        ev->idempotency_key = sp_xstrdup(c->idem_key);
        ev->idempotency_fp = sp_xstrdup(fp);
    }
    /* Validation let the request through, so its event must match the schema: if not,
     * that is our bug, and the event is never appended (500). */
    if ((rc = es_event_check(ev, NULL, &eb)) != 0) {
        sp_logf(SP_LOG_ERROR, (const char *[]){"event_type", name, "field", eb.field, NULL},
                "refusing to append an event that violates its schema: %s", eb.msg);
        return rc;
    }
    if ((rc = check_size(app, c, ev)) != 0)
        return rc;
    rc = cmd__wm_apply(app->wm, txn, ev, &eb);
    if (rc != 0)
        sp_log(SP_LOG_ERROR, "could not fold own %s event: %s", name, eb.msg);
    return rc;
}

int cmd__emit(struct cmd_app *app,
              MDB_txn *txn,
              struct cmd__command *c,
              enum es_type type,
              const char *stream,
              bool fresh,
              json_t *data)
{
    return emit(app, txn, c, type, stream, fresh, c->user_id, data);
}

static const char *in_str(const struct cmd__command *c, const char *key)
{
    return json_string_value(json_object_get(c->input, key));
}

static int decide_register(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    const char *name = in_str(c, "username"), *email = in_str(c, "email");
    char uid_s[ID_STR], stream[ID_STR + 8];
    int64_t uid;
    int rc = cmd__wm_user_by_name(app->wm, txn, name, &uid);
    if (rc == 0) {
        cmd__fail_field(c, 409, "conflict", "username", "is already taken");
        return 0;
    }
    if (rc != SP_ENOTFOUND)
        return rc;
    rc = cmd__wm_user_by_email(app->wm, txn, email, &uid);
    if (rc == 0) {
        cmd__fail_field(c, 409, "conflict", "email", "is already registered");
        return 0;
    }
    if (rc != SP_ENOTFOUND)
        return rc;
    uid = cmd__next_id(app);
    id_str(uid, uid_s);
    snprintf(stream, sizeof(stream), "user-%s", uid_s);
    rc = emit(app, txn, c, ES_TYPE_USER_REGISTERED, stream, true, uid,
              json_pack("{s:s, s:s, s:s, s:s}", "user_id", uid_s, "username", name, "email", email,
                        "password_hash", c->password_hash));
    if (rc != 0)
        return rc;
    c->user_id = uid;
    c->status = cmd__answer_of(&c->evs[c->n_evs - 1], &c->resp);
    c->audit = "register";
    return 0;
}

/*
 * Answer with a fresh access token and @p refresh_token (RFC 6749 §5.1 fields); the
 * token carries the user's roles (analytics.operators, cmd__token_roles).
 */
static int token_response(struct cmd_app *app,
                          MDB_txn *txn,
                          struct cmd__command *c,
                          int64_t sid,
                          const char *refresh_token)
{
    char uid_s[ID_STR], jti[ES_UUID_STR_LEN + 1], *access = NULL;
    unsigned roles = 0;
    int rc = es_uuid7_new(jti);
    if (rc == 0)
        rc = cmd__token_roles(app->cfg, app->wm, txn, c->user_id, &roles);
    if (rc == 0)
        rc = sp_jwt_sign(app->jwt_key, app->jwt_key_len, c->user_id, sid, roles, jti,
                         sp_time_now_us() / 1000000, app->jwt_ttl_s, &access);
    if (rc != 0)
        return rc;
    id_str(c->user_id, uid_s);
    c->session_id = sid;
    c->status = 200;
    c->resp = json_pack("{s:s, s:s, s:I, s:s, s:s}", "access_token", access, "token_type", "Bearer",
                        "expires_in", (json_int_t)app->jwt_ttl_s, "refresh_token", refresh_token,
                        "user_id", uid_s);
    free(access);
    return 0;
}

/* SessionStarted or SessionRefreshed with a new refresh token, then the token answer. */
static int
new_refresh(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, int64_t sid, bool start)
{
    char tok[CMD__REFRESH_TOKEN_LEN + 1], hash[CMD__HASH_HEX_LEN + 1];
    char sid_s[ID_STR], uid_s[ID_STR], stream[ID_STR + 8], exp[32];
    int rc = cmd__refresh_new(tok, hash);
    if (rc != 0)
        return rc;
    sp_time_format_rfc3339(sp_time_now_us() + app->refresh_ttl_s * 1000000, exp, sizeof(exp));
    id_str(sid, sid_s);
    id_str(c->user_id, uid_s);
    snprintf(stream, sizeof(stream), "session-%s", sid_s);
    json_t *data =
        json_pack("{s:s, s:s, s:s}", "session_id", sid_s, "refresh_hash", hash, "expires_at", exp);
    if (start)
        json_object_set_new(data, "user_id", json_string(uid_s));
    rc = emit(app, txn, c, start ? ES_TYPE_SESSION_STARTED : ES_TYPE_SESSION_REFRESHED, stream,
              start, c->user_id, data);
    if (rc != 0)
        return rc;
    return token_response(app, txn, c, sid, tok);
}

static int decide_login(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    char hash[CMD__PHC_MAX];
    int rc = cmd__wm_user_hash(app->wm, txn, c->user_id, hash, sizeof(hash));
    if (rc == SP_ENOTFOUND) {
        cmd__fail(c, 401, "unauthorized", "invalid credentials");
        return 0;
    }
    if (rc != 0)
        return rc;
    c->audit = "login_ok";
    return new_refresh(app, txn, c, cmd__next_id(app), true);
}

static int
revoke(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, int64_t sid, const char *reason)
{
    char sid_s[ID_STR], stream[ID_STR + 8];
    id_str(sid, sid_s);
    snprintf(stream, sizeof(stream), "session-%s", sid_s);
    return emit(app, txn, c, ES_TYPE_SESSION_REVOKED, stream, false, c->user_id,
                json_pack("{s:s, s:s}", "session_id", sid_s, "reason", reason));
}

static int decide_refresh(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    struct cmd__session s;
    int64_t sid;
    int rc = cmd__wm_refresh_session(app->wm, txn, c->refresh_hash, &sid);
    if (rc == 0)
        rc = cmd__wm_session_get(app->wm, txn, sid, &s);
    if (rc == SP_ENOTFOUND) {
        cmd__fail(c, 401, "unauthorized", "refresh token is not valid");
        return 0;
    }
    if (rc != 0)
        return rc;
    c->user_id = s.user_id;
    c->session_id = sid;
    if (s.revoked) {
        cmd__fail(c, 401, "unauthorized", "session has been revoked");
        return 0;
    }
    if (strcmp(s.refresh_hash, c->refresh_hash) != 0) {
        cmd__fail(c, 401, "unauthorized", "refresh token was already used; session revoked");
        c->audit = "refresh_token_reuse";
        return revoke(app, txn, c, sid, "refresh_token_reuse");
    }
    if (s.expires_at_us <= sp_time_now_us()) {
        cmd__fail(c, 401, "unauthorized", "session has expired");
        return 0;
    }
    c->audit = "refresh";
    return new_refresh(app, txn, c, sid, false);
}

int cmd__session_live(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    struct cmd__session s;
    int rc = cmd__wm_session_get(app->wm, txn, c->session_id, &s);
    if (rc == SP_EDB)
        return rc;
    if (rc != 0 || s.revoked || s.user_id != c->user_id || s.expires_at_us <= sp_time_now_us()) {
        cmd__fail(c, 401, "unauthorized", "session is not active");
        return 1;
    }
    return 0;
}

static int decide_logout(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    int rc = cmd__session_live(app, txn, c);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    rc = revoke(app, txn, c, c->session_id, "logout");
    if (rc != 0)
        return rc;
    c->status = cmd__answer_of(&c->evs[c->n_evs - 1], &c->resp);
    c->audit = "logout";
    return 0;
}

/*
 * RecipeCreated's payload: the ids, then every other field of its schema from the request
 * (validated by cmd__valid_recipe); a required field the request may omit gets its empty
 * value ("" or []), an optional one stays absent.
 */
static json_t *recipe_created_data(const json_t *input, const char *rid_s, const char *uid_s)
{
    const struct es_event_type *t = es_catalogue_get(ES_TYPE_RECIPE_CREATED);
    json_t *data = json_pack("{s:s, s:s}", "recipe_id", rid_s, "author_id", uid_s), *v;

    for (size_t i = 0; i < t->n_fields; i++) {
        const struct es_field *f = &t->fields[i];
        if (json_object_get(data, f->name) != NULL)
            continue;
        if ((v = json_object_get(input, f->name)) != NULL)
            json_object_set(data, f->name, v);
        else if (f->required)
            json_object_set_new(
                data, f->name, (f->schema->types & ES_JSON_ARRAY) ? json_array() : json_string(""));
    }
    return data;
}

static int decide_create(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    char rid_s[ID_STR], uid_s[ID_STR], stream[ID_STR + 8];
    int rc = cmd__session_live(app, txn, c);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    int64_t rid = cmd__next_id(app);
    id_str(rid, rid_s);
    id_str(c->user_id, uid_s);
    snprintf(stream, sizeof(stream), "recipe-%s", rid_s);
    json_t *data = recipe_created_data(c->input, rid_s, uid_s);
    if ((rc = emit(app, txn, c, ES_TYPE_RECIPE_CREATED, stream, true, c->user_id, data)) != 0)
        return rc;
    c->target_id = rid;
    c->status = cmd__answer_of(&c->evs[c->n_evs - 1], &c->resp);
    return 0;
}

/* 0 if c may change its recipe (*version = current); 1 after failing c; SP_EDB. */
static int recipe_editable(
    struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, const char *stream, int64_t *version)
{
    struct cmd__recipe r;
    int rc = cmd__session_live(app, txn, c);
    if (rc != 0)
        return rc;
    rc = cmd__wm_recipe_get(app->wm, txn, c->target_id, &r);
    if (rc == SP_EDB)
        return rc;
    if (rc != 0 || r.deleted) {
        cmd__fail(c, 404, "not-found", "recipe not found");
        return 1;
    }
    if (r.author_id != c->user_id) {
        cmd__fail(c, 403, "forbidden", "only the author may change this recipe");
        return 1;
    }
    if ((rc = cmd__wm_stream_version(app->wm, txn, stream, version)) != 0)
        return rc;
    if (c->if_match >= 0 && c->if_match != *version) {
        cmd__fail(c, 412, "precondition-failed", "If-Match version %lld is stale; current is %lld",
                  (long long)c->if_match, (long long)*version);
        return 1;
    }
    return 0;
}

static int decide_change(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, bool del)
{
    char rid_s[ID_STR], stream[ID_STR + 8];
    int64_t version;
    id_str(c->target_id, rid_s);
    snprintf(stream, sizeof(stream), "recipe-%s", rid_s);
    int rc = recipe_editable(app, txn, c, stream, &version);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    const struct es_event_type *t = es_catalogue_get(ES_TYPE_RECIPE_UPDATED);
    json_t *data = json_object();
    for (size_t i = 0; !del && i < t->n_fields; i++) {
        json_t *v = json_object_get(c->input, t->fields[i].name);
        if (v)
            json_object_set(data, t->fields[i].name, v);
    }
    rc = emit(app, txn, c, del ? ES_TYPE_RECIPE_DELETED : ES_TYPE_RECIPE_UPDATED, stream, false,
              c->user_id, data);
    if (rc != 0)
        return rc;
    c->status = 200;
    c->resp = json_pack("{s:s, s:I}", "recipe_id", rid_s, "version", (json_int_t)version + 1);
    return 0;
}

int cmd__decide(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    switch (c->kind) {
    case CMD_REGISTER:
        return decide_register(app, txn, c);
    case CMD_LOGIN:
        return decide_login(app, txn, c);
    case CMD_REFRESH:
        return decide_refresh(app, txn, c);
    case CMD_LOGOUT:
        return decide_logout(app, txn, c);
    case CMD_RECIPE_CREATE:
        return decide_create(app, txn, c);
    case CMD_RECIPE_UPDATE:
        return decide_change(app, txn, c, false);
    case CMD_RECIPE_DELETE:
        return decide_change(app, txn, c, true);
    case CMD_ROOM_CREATE:
    case CMD_ROOM_UPDATE:
    case CMD_MEMBER_ADD:
    case CMD_MEMBER_REMOVE:
    case CMD_MESSAGE_SEND:
    case CMD_ROOM_READ:
        return cmd__decide_chat(app, txn, c);
    default:
        return cmd__decide_social(app, txn, c);
    }
}
