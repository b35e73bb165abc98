/*
 * The deciders of issue 4 (profiles, follows, likes, comments, notification reads): every
 * rule is checked against the write model as the batch's transaction sees it, so a
 * duplicate decided earlier in the same batch is seen too. Follows and likes live on the
 * acting user's stream, comments on their own; a repeated follow, like, unfollow or
 * unlike is a no-op answering with the position of the acting user's stream's last event.
 */
#include <stdio.h>
#include <string.h>

#include "app_priv.h"

#include "sp/banned.h"

#define ID_STR CMD__ID_STR

void cmd__id_str(int64_t id, char *out)
{
    snprintf(out, ID_STR, "%lld", (long long)id);
}

static void user_stream(int64_t uid, char *out, size_t size)
{
    snprintf(out, size, "user-%lld", (long long)uid);
}

int cmd__noop(
    struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, const char *stream, json_t *resp)
{
    int64_t ver, pos_ver = 0;
    struct es_position pos;
    char tok[32];
    int rc = cmd__wm_stream_version(app->wm, txn, stream, &ver);
    if (rc == 0)
        rc = cmd__wm_stream_pos(app->wm, txn, stream, &pos_ver, &pos);
    if (rc == SP_EDB) {
        json_decref(resp);
        return rc;
    }
    if (rc == 0 && pos_ver == ver) {
        es_position_format(pos, tok, sizeof(tok));
        json_object_set_new(resp, "position", json_string(tok));
    } else {
        snprintf(c->pos_stream, sizeof(c->pos_stream), "%s", stream);
    }
    c->status = 200;
    c->resp = resp;
    return 0;
}

static int decide_profile(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    static const char *const fields[] = {"full_name", "bio", "avatar_media_id"};
    char uid_s[ID_STR], stream[ID_STR + 8];
    int64_t version;
    int rc = cmd__session_live(app, txn, c);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    if (c->target_id != c->user_id) {
        cmd__fail(c, 403, "forbidden", "only the user may change their profile");
        return 0;
    }
    cmd__id_str(c->user_id, uid_s);
    user_stream(c->user_id, stream, sizeof(stream));
    if ((rc = cmd__wm_stream_version(app->wm, txn, stream, &version)) != 0)
        return rc;
    if (c->if_match >= 0 && c->if_match != version) {
        cmd__fail(c, 412, "precondition-failed", "If-Match version %lld is stale; current is %lld",
                  (long long)c->if_match, (long long)version);
        return 0;
    }
    json_t *data = json_object();
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *v = json_object_get(c->input, fields[i]);
        if (v)
            json_object_set(data, fields[i], v);
    }
    if ((rc = cmd__emit(app, txn, c, ES_TYPE_PROFILE_UPDATED, stream, false, data)) != 0)
        return rc;
    c->status = 200;
    c->resp = json_pack("{s:s, s:I}", "user_id", uid_s, "version", (json_int_t)version + 1);
    return 0;
}

static int decide_follow(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, bool follow)
{
    char uid_s[ID_STR], other_s[ID_STR], stream[ID_STR + 8];
    bool now;
    int rc = cmd__session_live(app, txn, c);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    rc = cmd__wm_user_exists(app->wm, txn, c->target_id);
    if (rc == SP_ENOTFOUND) {
        cmd__fail(c, 404, "not-found", "user not found");
        return 0;
    }
    if (rc != 0 || (rc = cmd__wm_follows(app->wm, txn, c->user_id, c->target_id, &now)) != 0)
        return rc;
    user_stream(c->user_id, stream, sizeof(stream));
    if (now == follow)
        return cmd__noop(app, txn, c, stream, json_pack("{s:b}", "following", follow));
    cmd__id_str(c->user_id, uid_s);
    cmd__id_str(c->target_id, other_s);
    rc = cmd__emit(app, txn, c, follow ? ES_TYPE_USER_FOLLOWED : ES_TYPE_USER_UNFOLLOWED, stream,
                   false, json_pack("{s:s, s:s}", "user_id", uid_s, "followee_id", other_s));
    if (rc != 0)
        return rc;
    c->status = 200;
    c->resp = json_pack("{s:b}", "following", follow);
    return 0;
}

/* 0 and *r if c's recipe (target_id) exists and is not deleted; 1 after failing c 404. */
static int
live_recipe(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, struct cmd__recipe *r)
{
    int rc = cmd__wm_recipe_get(app->wm, txn, c->target_id, r);
    if (rc == SP_EDB)
        return rc;
    if (rc != 0 || r->deleted) {
        cmd__fail(c, 404, "not-found", "recipe not found");
        return 1;
    }
    return 0;
}

static int decide_like(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, bool like)
{
    char uid_s[ID_STR], rid_s[ID_STR], author_s[ID_STR], stream[ID_STR + 8];
    struct cmd__recipe r;
    bool now;
    int rc = cmd__session_live(app, txn, c);
    if (rc == 0)
        rc = live_recipe(app, txn, c, &r);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    if ((rc = cmd__wm_likes(app->wm, txn, c->user_id, c->target_id, &now)) != 0)
        return rc;
    user_stream(c->user_id, stream, sizeof(stream));
    if (now == like)
        return cmd__noop(app, txn, c, stream, json_pack("{s:b}", "liked", like));
    cmd__id_str(c->user_id, uid_s);
    cmd__id_str(c->target_id, rid_s);
    cmd__id_str(r.author_id, author_s);
    rc = cmd__emit(app, txn, c, like ? ES_TYPE_RECIPE_LIKED : ES_TYPE_RECIPE_UNLIKED, stream, false,
                   json_pack("{s:s, s:s, s:s}", "user_id", uid_s, "recipe_id", rid_s,
                             "recipe_author_id", author_s));
    if (rc != 0)
        return rc;
    c->status = 200;
    c->resp = json_pack("{s:b}", "liked", like);
    return 0;
}

static int decide_comment(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    char cid_s[ID_STR], uid_s[ID_STR], rid_s[ID_STR], author_s[ID_STR], stream[ID_STR + 12];
    struct cmd__recipe r;
    int rc = cmd__session_live(app, txn, c);
    if (rc == 0)
        rc = live_recipe(app, txn, c, &r);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    int64_t cid = cmd__next_id(app);
    cmd__id_str(cid, cid_s);
    cmd__id_str(c->user_id, uid_s);
    cmd__id_str(c->target_id, rid_s);
    cmd__id_str(r.author_id, author_s);
    snprintf(stream, sizeof(stream), "comment-%s", cid_s);
    json_t *content = json_object_get(c->input, "content");
    rc = cmd__emit(app, txn, c, ES_TYPE_RECIPE_COMMENTED, stream, true,
                   json_pack("{s:s, s:s, s:s, s:O, s:s}", "comment_id", cid_s, "recipe_id", rid_s,
                             "user_id", uid_s, "content", content, "recipe_author_id", author_s));
    if (rc != 0)
        return rc;
    c->status = cmd__answer_of(&c->evs[c->n_evs - 1], &c->resp);
    return 0;
}

static int decide_comment_delete(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    char cid_s[ID_STR], rid_s[ID_STR], author_s[ID_STR], stream[ID_STR + 12];
    struct cmd__recipe r;
    struct cmd__comment cm;
    int rc = cmd__session_live(app, txn, c);
    if (rc == 0)
        rc = live_recipe(app, txn, c, &r);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    rc = cmd__wm_comment_get(app->wm, txn, c->arg_id, &cm);
    if (rc == SP_EDB)
        return rc;
    if (rc != 0 || cm.deleted || cm.recipe_id != c->target_id) {
        cmd__fail(c, 404, "not-found", "comment not found");
        return 0;
    }
    if (c->user_id != cm.author_id && c->user_id != cm.recipe_author_id) {
        cmd__fail(c, 403, "forbidden", "only the comment's or the recipe's author may delete it");
        return 0;
    }
    cmd__id_str(c->arg_id, cid_s);
    cmd__id_str(c->target_id, rid_s);
    cmd__id_str(cm.recipe_author_id, author_s);
    snprintf(stream, sizeof(stream), "comment-%s", cid_s);
    rc = cmd__emit(app, txn, c, ES_TYPE_COMMENT_DELETED, stream, false,
                   json_pack("{s:s, s:s, s:s}", "comment_id", cid_s, "recipe_id", rid_s,
                             "recipe_author_id", author_s));
    if (rc != 0)
        return rc;
    c->status = 200;
    c->resp = json_pack("{s:s}", "comment_id", cid_s);
    return 0;
}

static int decide_read(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    char uid_s[ID_STR], up_s[ID_STR], stream[ID_STR + 8];
    int64_t cur;
    int rc = cmd__session_live(app, txn, c);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    if ((rc = cmd__wm_read_up_to(app->wm, txn, c->user_id, &cur)) != 0)
        return rc;
    user_stream(c->user_id, stream, sizeof(stream));
    if (c->arg_id <= cur)
        return cmd__noop(app, txn, c, stream, json_object());
    cmd__id_str(c->user_id, uid_s);
    cmd__id_str(c->arg_id, up_s);
    rc = cmd__emit(app, txn, c, ES_TYPE_NOTIFICATIONS_READ, stream, false,
                   json_pack("{s:s, s:s}", "user_id", uid_s, "up_to_id", up_s));
    if (rc != 0)
        return rc;
    c->status = 200;
    c->resp = json_object();
    return 0;
}

int cmd__decide_social(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    switch (c->kind) {
    case CMD_PROFILE_UPDATE:
        return decide_profile(app, txn, c);
    case CMD_FOLLOW:
    case CMD_UNFOLLOW:
        return decide_follow(app, txn, c, c->kind == CMD_FOLLOW);
    case CMD_COMMENT_CREATE:
        return decide_comment(app, txn, c);
    case CMD_COMMENT_DELETE:
        return decide_comment_delete(app, txn, c);
    case CMD_LIKE:
    case CMD_UNLIKE:
        return decide_like(app, txn, c, c->kind == CMD_LIKE);
    case CMD_NOTIFICATIONS_READ:
        return decide_read(app, txn, c);
    default:
        return SP_EINVAL;
    }
}
