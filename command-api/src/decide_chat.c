/*
 * The chat deciders (issue 12): rooms, members, messages and read markers. Every event of
 * a room is on its stream "conversation-<room id>", so on Kafka a room's events keep
 * their order (one partition). Rules, checked against the write model as the batch's
 * transaction sees it (an earlier command of the same batch included):
 *   - a direct (1:1) room is unique per pair of users: creating it again, in either
 *     order, answers 200 with the existing room; its members never change;
 *   - a group's creator is its admin; only the admin adds members, changes the title or
 *     hands the admin role on; any member may leave, the admin only as the last member;
 *   - only members send and mark read (403 otherwise; 404 for an unknown room);
 *   - the same sender and txn_id in the same room is one message: a retry answers 201
 *     with the first message's ids and appends nothing (Matrix's PUT /send/{txnId}).
 */
#include <stdio.h>
#include <string.h>

#include "app_priv.h"

#include "sp/banned.h"

#define ROOM_STREAM (CMD__ID_STR + 16)

static void room_stream(int64_t room_id, char *out)
{
    snprintf(out, ROOM_STREAM, "conversation-%lld", (long long)room_id);
}

/*
 * Session live, room exists, caller a member: 0 and *@p r; 1 when c failed (401, 404 or
 * 403); SP_EDB.
 */
static int
member_gate(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, struct cmd__room *r)
{
    bool member;
    int rc = cmd__session_live(app, txn, c);
    if (rc != 0)
        return rc;
    rc = cmd__wm_room_get(app->wm, txn, c->target_id, r);
    if (rc == SP_ENOTFOUND) {
        cmd__fail(c, 404, "not-found", "room not found");
        return 1;
    }
    if (rc != 0 || (rc = cmd__wm_member(app->wm, txn, c->target_id, c->user_id, &member, NULL)))
        return rc;
    if (!member) {
        cmd__fail(c, 403, "forbidden", "you are not a member of this room");
        return 1;
    }
    return 0;
}

/* A group whose admin is the caller: 0; 1 when c failed (409 direct room, 403 not admin). */
static int admin_gate(struct cmd__command *c, const struct cmd__room *r, const char *what)
{
    if (!r->is_group) {
        cmd__fail(c, 409, "direct-room", "a direct (1:1) room has no admin; %s", what);
        return 1;
    }
    if (r->admin_id != c->user_id) {
        cmd__fail(c, 403, "forbidden", "only the room's admin may %s", what);
        return 1;
    }
    return 0;
}

/*
 * The members of a new room: the caller first, then member_ids in order without the
 * caller (validated: ids, no repeats). Unknown users fail c 400 naming each one.
 * @return the count (0 when c failed), or -1 on SP_EDB.
 */
static int room_members(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, json_t *out)
{
    json_t *ids = json_object_get(c->input, "member_ids"), *v, *errors = json_array();
    char me[CMD__ID_STR], field[40];
    size_t i;
    int64_t uid;
    cmd__id_str(c->user_id, me);
    json_array_append_new(out, json_string(me));
    json_array_foreach(ids, i, v) {
        if (es_id_parse(json_string_value(v), &uid) != 0 || uid == c->user_id)
            continue;
        int rc = cmd__wm_user_exists(app->wm, txn, uid);
        if (rc == SP_EDB) {
            json_decref(errors);
            return -1;
        }
        if (rc != 0) {
            snprintf(field, sizeof(field), "member_ids[%zu]", i);
            json_array_append_new(
                errors, json_pack("{s:s, s:s}", "field", field, "detail", "no such user"));
        }
        json_array_append(out, v);
    }
    if (json_array_size(errors) > 0) {
        cmd__fail(c, 400, "validation", "member_ids names %zu unknown user(s)",
                  json_array_size(errors));
        json_decref(c->errors);
        c->errors = errors;
        return 0;
    }
    json_decref(errors);
    return (int)json_array_size(out);
}

static int decide_room_create(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    char rid_s[CMD__ID_STR], stream[ROOM_STREAM];
    bool group = json_is_true(json_object_get(c->input, "is_group"));
    json_t *members = json_array(), *title = json_object_get(c->input, "title");
    int64_t rid, other;
    int n, rc = cmd__session_live(app, txn, c);
    if (rc != 0) {
        json_decref(members);
        return rc > 0 ? 0 : rc;
    }
    if ((n = room_members(app, txn, c, members)) <= 0) {
        json_decref(members);
        return n < 0 ? SP_EDB : 0;
    }
    if (!group) { /* the handler checked: exactly one other member */
        if (es_id_parse(json_string_value(json_array_get(members, 1)), &other) != 0) {
            json_decref(members);
            return SP_EINVAL;
        }
        rc = cmd__wm_direct_room(app->wm, txn, c->user_id, other, &rid);
        if (rc == 0) {
            cmd__id_str(rid, rid_s);
            room_stream(rid, stream);
            return cmd__noop(app, txn, c, stream,
                             json_pack("{s:s, s:b, s:o}", "room_id", rid_s, "is_group", 0,
                                       "member_ids", members));
        }
        if (rc != SP_ENOTFOUND) {
            json_decref(members);
            return rc;
        }
    }
    rid = cmd__next_id(app);
    cmd__id_str(rid, rid_s);
    room_stream(rid, stream);
    json_t *data =
        json_pack("{s:s, s:b, s:s, s:o}", "conversation_id", rid_s, "is_group", group, "creator_id",
                  json_string_value(json_array_get(members, 0)), "member_ids", members);
    if (title)
        json_object_set(data, "title", title);
    if ((rc = cmd__emit(app, txn, c, ES_TYPE_CONVERSATION_CREATED, stream, true, data)) != 0)
        return rc;
    c->status = cmd__answer_of(&c->evs[c->n_evs - 1], &c->resp);
    return 0;
}

static int decide_room_update(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    char rid_s[CMD__ID_STR], stream[ROOM_STREAM];
    struct cmd__room r;
    json_t *admin = json_object_get(c->input, "admin_id"),
           *title = json_object_get(c->input, "title");
    int64_t version;
    int rc = member_gate(app, txn, c, &r);
    if (rc == 0)
        rc = admin_gate(c, &r, "change the room");
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    if (admin) {
        int64_t aid;
        bool member;
        if (es_id_parse(json_string_value(admin), &aid) != 0)
            return SP_EINVAL;
        if ((rc = cmd__wm_member(app->wm, txn, c->target_id, aid, &member, NULL)) != 0)
            return rc;
        if (!member) {
            cmd__fail_field(c, 400, "validation", "admin_id", "is not a member of the room");
            return 0;
        }
    }
    cmd__id_str(c->target_id, rid_s);
    room_stream(c->target_id, stream);
    json_t *data = json_pack("{s:s}", "conversation_id", rid_s);
    if (title)
        json_object_set(data, "title", title);
    if (admin)
        json_object_set(data, "admin_id", admin);
    if ((rc = cmd__emit(app, txn, c, ES_TYPE_CONVERSATION_UPDATED, stream, false, data)) != 0 ||
        (rc = cmd__wm_stream_version(app->wm, txn, stream, &version)) != 0)
        return rc;
    c->status = 200;
    c->resp = json_pack("{s:s, s:I}", "room_id", rid_s, "version", (json_int_t)version);
    return 0;
}

/* Answer of a membership command: {room_id, user_id, member}. */
static json_t *member_answer(const struct cmd__command *c, int64_t uid, bool member)
{
    char rid_s[CMD__ID_STR], uid_s[CMD__ID_STR];
    cmd__id_str(c->target_id, rid_s);
    cmd__id_str(uid, uid_s);
    return json_pack("{s:s, s:s, s:b}", "room_id", rid_s, "user_id", uid_s, "member", member);
}

/* POST /chat/rooms/{id}/members (@p add, user in c->input) and DELETE .../{user_id}. */
static int decide_membership(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c, bool add)
{
    char rid_s[CMD__ID_STR], uid_s[CMD__ID_STR], by_s[CMD__ID_STR], stream[ROOM_STREAM];
    struct cmd__room r;
    int64_t uid = c->arg_id;
    bool member;
    int rc = member_gate(app, txn, c, &r);
    if (rc == 0 && (add || uid != c->user_id))
        rc = admin_gate(c, &r, add ? "add members" : "remove other members");
    if (rc == 0 && !r.is_group) {
        cmd__fail(c, 409, "direct-room", "a direct (1:1) room's members cannot change");
        rc = 1;
    }
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    if (add && (rc = cmd__wm_user_exists(app->wm, txn, uid)) != 0) {
        if (rc != SP_ENOTFOUND)
            return rc;
        cmd__fail_field(c, 400, "validation", "user_id", "no such user");
        return 0;
    }
    if ((rc = cmd__wm_member(app->wm, txn, c->target_id, uid, &member, NULL)) != 0)
        return rc;
    room_stream(c->target_id, stream);
    if (member == add)
        return add ? cmd__noop(app, txn, c, stream, member_answer(c, uid, true))
                   : (cmd__fail(c, 404, "not-found", "no such member in this room"), 0);
    if (add && r.n_members >= app->chat_max_members) {
        cmd__fail(c, 409, "room-full", "the room has the most members allowed (%lld)",
                  (long long)app->chat_max_members);
        return 0;
    }
    if (!add && uid == r.admin_id && r.n_members > 1) {
        cmd__fail(c, 409, "admin-must-hand-over",
                  "the admin leaves last: first make another member admin "
                  "(PUT /chat/rooms/{id} with admin_id)");
        return 0;
    }
    cmd__id_str(c->target_id, rid_s);
    cmd__id_str(uid, uid_s);
    cmd__id_str(c->user_id, by_s);
    rc = cmd__emit(app, txn, c, add ? ES_TYPE_MEMBER_ADDED : ES_TYPE_MEMBER_REMOVED, stream, false,
                   json_pack("{s:s, s:s, s:s}", "conversation_id", rid_s, "user_id", uid_s,
                             add ? "added_by" : "removed_by", by_s));
    if (rc != 0)
        return rc;
    c->status = 200;
    c->resp = member_answer(c, uid, add);
    return 0;
}

static int decide_message(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    char rid_s[CMD__ID_STR], mid_s[CMD__ID_STR], uid_s[CMD__ID_STR], stream[ROOM_STREAM];
    const char *txn_id = json_string_value(json_object_get(c->input, "txn_id"));
    struct cmd__room r;
    int64_t mid;
    int rc = member_gate(app, txn, c, &r);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    cmd__id_str(c->target_id, rid_s);
    room_stream(c->target_id, stream);
    rc = cmd__wm_chat_txn(app->wm, txn, c->target_id, c->user_id, txn_id, &mid);
    if (rc == 0) { /* a retry: the first answer again, nothing appended */
        cmd__id_str(mid, mid_s);
        rc = cmd__noop(app, txn, c, stream,
                       json_pack("{s:s, s:s}", "message_id", mid_s, "room_id", rid_s));
        c->status = 201;
        return rc;
    }
    if (rc != SP_ENOTFOUND)
        return rc;
    cmd__id_str(cmd__next_id(app), mid_s);
    cmd__id_str(c->user_id, uid_s);
    rc = cmd__emit(app, txn, c, ES_TYPE_MESSAGE_SENT, stream, false,
                   json_pack("{s:s, s:s, s:s, s:O, s:s}", "conversation_id", rid_s, "message_id",
                             mid_s, "sender_id", uid_s, "content",
                             json_object_get(c->input, "content"), "txn_id", txn_id));
    if (rc != 0)
        return rc;
    c->status = cmd__answer_of(&c->evs[c->n_evs - 1], &c->resp);
    return 0;
}

static int decide_room_read(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    char rid_s[CMD__ID_STR], uid_s[CMD__ID_STR], up_s[CMD__ID_STR], stream[ROOM_STREAM];
    struct cmd__room r;
    int64_t cur;
    bool member;
    int rc = member_gate(app, txn, c, &r);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    if ((rc = cmd__wm_member(app->wm, txn, c->target_id, c->user_id, &member, &cur)) != 0)
        return rc;
    room_stream(c->target_id, stream);
    if (c->arg_id <= cur)
        return cmd__noop(app, txn, c, stream, json_object());
    cmd__id_str(c->target_id, rid_s);
    cmd__id_str(c->user_id, uid_s);
    cmd__id_str(c->arg_id, up_s);
    rc = cmd__emit(
        app, txn, c, ES_TYPE_MESSAGES_READ, stream, false,
        json_pack("{s:s, s:s, s:s}", "conversation_id", rid_s, "user_id", uid_s, "up_to_id", up_s));
    if (rc != 0)
        return rc;
    c->status = 200;
    c->resp = json_object();
    return 0;
}

int cmd__decide_chat(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    switch (c->kind) {
    case CMD_ROOM_CREATE:
        return decide_room_create(app, txn, c);
    case CMD_ROOM_UPDATE:
        return decide_room_update(app, txn, c);
    case CMD_MEMBER_ADD:
    case CMD_MEMBER_REMOVE:
        return decide_membership(app, txn, c, c->kind == CMD_MEMBER_ADD);
    case CMD_MESSAGE_SEND:
        return decide_message(app, txn, c);
    case CMD_ROOM_READ:
        return decide_room_read(app, txn, c);
    default:
        return SP_EINVAL;
    }
}
