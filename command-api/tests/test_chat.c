/*
 * The chat commands (issue 12) over real HTTP: rooms, members, messages and read markers,
 * with the real handlers, write model and embedded LMDB log in a mkdtemp directory; the
 * events are read back from the log itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/thread.h>
#include <jansson.h>

#include "cmd/app.h"
#include "sp/log.h"
#include "cmd_test.h"

#include "sp/banned.h"

static int setup(void **state)
{
    struct cmd_test_fx *fx = calloc(1, sizeof(*fx));
    cmd_test_fx_init(fx, "/tmp/cmd-chat-XXXXXX");
    cmd_test_fx_use_lmdb(fx);
    cmd_test_cfg_set(fx, "chat.max_members", "4");
    cmd_test_app_start(fx);
    *state = fx;
    return 0;
}

/* Create a room as @p u with @p body; its id into @p id (CMD 201 or @p want). */
static void room_new(
    struct cmd_test_fx *fx, const struct cmd_test_user *u, const char *body, int want, char *id)
{
    json_t *r = NULL;
    assert_int_equal(cmd_test_act(fx, u, "POST", body, &r, "/chat/rooms"), want);
    snprintf(id, 24, "%s", cmd_test_jstr(r, "room_id"));
    json_decref(r);
}

/* Body of a room: "{is_group, member_ids:[ids...], title?}". */
static void room_body(char *out, size_t size, bool group, const char *title, const char *ids)
{
    if (title)
        snprintf(out, size, "{\"is_group\":%s,\"member_ids\":[%s],\"title\":\"%s\"}",
                 group ? "true" : "false", ids, title);
    else
        snprintf(out, size, "{\"is_group\":%s,\"member_ids\":[%s]}", group ? "true" : "false", ids);
}

static int send_msg(struct cmd_test_fx *fx,
                    const struct cmd_test_user *u,
                    const char *room,
                    const char *content,
                    const char *txn_id,
                    json_t **out)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"content\":\"%s\",\"txn_id\":\"%s\"}", content, txn_id);
    return cmd_test_act(fx, u, "POST", body, out, "/chat/rooms/%s/messages", room);
}

/* A 1:1 room is unique per pair, in either order and with the caller listed or not. */
static void test_direct_room_unique(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a, b, c;
    char body[256], ids[80], room[24], again[24];
    json_t *r = NULL;
    cmd_test_user_new(fx, "ann", &a);
    cmd_test_user_new(fx, "bob", &b);
    cmd_test_user_new(fx, "cid", &c);
    snprintf(ids, sizeof(ids), "\"%s\"", b.id);
    room_body(body, sizeof(body), false, NULL, ids);
    room_new(fx, &a, body, 201, room);
    room_new(fx, &a, body, 200, again);
    assert_string_equal(again, room);
    snprintf(ids, sizeof(ids), "\"%s\"", a.id);
    room_body(body, sizeof(body), false, NULL, ids);
    room_new(fx, &b, body, 200, again);
    assert_string_equal(again, room);
    snprintf(ids, sizeof(ids), "\"%s\",\"%s\"", b.id, a.id);
    room_body(body, sizeof(body), false, NULL, ids);
    room_new(fx, &b, body, 200, again);
    assert_string_equal(again, room);
    assert_int_equal(cmd_test_count(fx, "ConversationCreated"), 1);
    json_t *evs = cmd_test_events(fx, "ConversationCreated");
    json_t *d = json_object_get(json_array_get(evs, 0), "data");
    assert_string_equal(cmd_test_jstr(d, "creator_id"), a.id);
    assert_true(json_is_false(json_object_get(d, "is_group")));
    assert_int_equal(json_array_size(json_object_get(d, "member_ids")), 2);
    char stream[64];
    snprintf(stream, sizeof(stream), "conversation-%s", room);
    assert_string_equal(cmd_test_jstr(json_array_get(evs, 0), "stream"), stream);
    json_decref(evs);
    /* another pair is another room */
    snprintf(ids, sizeof(ids), "\"%s\"", c.id);
    room_body(body, sizeof(body), false, NULL, ids);
    room_new(fx, &a, body, 201, again);
    assert_string_not_equal(again, room);

    /* bad bodies: named fields, nothing appended */
    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"member_ids\":[\"5\"]}", "is_group"},
        {"{\"is_group\":\"no\",\"member_ids\":[\"5\"]}", "is_group"},
        {"{\"is_group\":false}", "member_ids"},
        {"{\"is_group\":false,\"member_ids\":[]}", "member_ids"},
        {"{\"is_group\":false,\"member_ids\":[5]}", "member_ids[0]"},
        {"{\"is_group\":true,\"member_ids\":[\"5\",\"6\",\"5\"],\"title\":\"t\"}", "member_ids[2]"},
        {"{\"is_group\":true,\"member_ids\":[\"5\"]}", "title"},
        {"{\"is_group\":true,\"member_ids\":[\"5\"],\"title\":\"\"}", "title"},
        {"{\"is_group\":true,\"member_ids\":[\"5\"],\"title\":\"a\\u0007b\"}", "title"},
        {"{\"is_group\":false,\"member_ids\":[\"5\"],\"title\":\"t\"}", "title"},
        {"{\"is_group\":false,\"member_ids\":[\"5\",\"6\"]}", "member_ids"},
        {"{\"is_group\":true,\"member_ids\":[\"5\",\"6\",\"7\",\"8\"],\"title\":\"t\"}",
         "member_ids"},
        {"{\"is_group\":true,\"member_ids\":[\"5\"],\"title\":\"t\",\"x\":1}", "x"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cmd_test_act(fx, &a, "POST", bad[i].body, &r, "/chat/rooms"), 400);
        if (!cmd_test_names_field(r, bad[i].field))
            fail_msg("%s: expected errors[] to name %s", bad[i].body, bad[i].field);
        json_decref(r);
    }
    /* a direct room with yourself only */
    snprintf(body, sizeof(body), "{\"is_group\":false,\"member_ids\":[\"%s\"]}", a.id);
    assert_int_equal(cmd_test_act(fx, &a, "POST", body, &r, "/chat/rooms"), 400);
    assert_true(cmd_test_names_field(r, "member_ids"));
    json_decref(r);
    /* unknown users are named, one by one */
    snprintf(body, sizeof(body),
             "{\"is_group\":true,\"title\":\"t\",\"member_ids\":[\"%s\",\"42\",\"43\"]}", b.id);
    assert_int_equal(cmd_test_act(fx, &a, "POST", body, &r, "/chat/rooms"), 400);
    assert_true(cmd_test_names_field(r, "member_ids[1]"));
    assert_true(cmd_test_names_field(r, "member_ids[2]"));
    assert_false(cmd_test_names_field(r, "member_ids[0]"));
    json_decref(r);
    assert_int_equal(cmd_test_act(fx, NULL, "POST", body, NULL, "/chat/rooms"), 401);
    assert_int_equal(cmd_test_count(fx, "ConversationCreated"), 2);
}

/* Two creates of the same pair in one batch, in both orders: one room, both told of it. */
static void test_direct_room_concurrent(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a, b;
    char body_a[128], body_b[128];
    cmd_test_user_new(fx, "left", &a);
    cmd_test_user_new(fx, "right", &b);
    snprintf(body_a, sizeof(body_a), "{\"is_group\":false,\"member_ids\":[\"%s\"]}", b.id);
    snprintf(body_b, sizeof(body_b), "{\"is_group\":false,\"member_ids\":[\"%s\"]}", a.id);
    struct cmd_test_raw reqs[2] = {
        {.method = "POST", .path = "/chat/rooms", .auth = a.auth, .body = body_a},
        {.method = "POST", .path = "/chat/rooms", .auth = b.auth, .body = body_b},
    };
    cmd_test_one_batch(fx, reqs, 2);
    assert_int_equal(reqs[0].status, 201);
    assert_int_equal(reqs[1].status, 200);
    const char *id0 = strstr(reqs[0].buf, "\"room_id\":\""),
               *id1 = strstr(reqs[1].buf, "\"room_id\":\"");
    assert_non_null(id0);
    assert_non_null(id1);
    assert_memory_equal(id0, id1, 30);
    assert_int_equal(cmd_test_count(fx, "ConversationCreated"), 1);
}

/* Groups: admin rules, member cap, leaving, handing over; non-members refused. */
static void test_group_membership(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user adm, m1, m2, m3, out;
    char body[256], ids[128], room[24], uid_body[64];
    json_t *r = NULL;
    cmd_test_user_new(fx, "admin", &adm);
    cmd_test_user_new(fx, "one", &m1);
    cmd_test_user_new(fx, "two", &m2);
    cmd_test_user_new(fx, "three", &m3);
    cmd_test_user_new(fx, "outsider", &out);
    snprintf(ids, sizeof(ids), "\"%s\",\"%s\"", m1.id, adm.id);
    room_body(body, sizeof(body), true, "supper club", ids);
    assert_int_equal(cmd_test_act(fx, &adm, "POST", body, &r, "/chat/rooms"), 201);
    snprintf(room, sizeof(room), "%s", cmd_test_jstr(r, "room_id"));
    assert_string_equal(cmd_test_jstr(r, "admin_id"), adm.id);
    assert_string_equal(cmd_test_jstr(r, "title"), "supper club");
    assert_int_equal(json_array_size(json_object_get(r, "member_ids")), 2);
    json_decref(r);

    /* only the admin adds; the user must exist */
    snprintf(uid_body, sizeof(uid_body), "{\"user_id\":\"%s\"}", m2.id);
    assert_int_equal(cmd_test_act(fx, &m1, "POST", uid_body, NULL, "/chat/rooms/%s/members", room),
                     403);
    assert_int_equal(cmd_test_act(fx, &out, "POST", uid_body, NULL, "/chat/rooms/%s/members", room),
                     403);
    assert_int_equal(cmd_test_act(fx, &adm, "POST", uid_body, &r, "/chat/rooms/%s/members", room),
                     200);
    assert_true(json_is_true(json_object_get(r, "member")));
    json_decref(r);
    assert_int_equal(/* again: a no-op */
                     cmd_test_act(fx, &adm, "POST", uid_body, NULL, "/chat/rooms/%s/members", room),
                     200);
    assert_int_equal(cmd_test_count(fx, "MemberAdded"), 1);
    assert_int_equal(
        cmd_test_act(fx, &adm, "POST", "{\"user_id\":\"77\"}", &r, "/chat/rooms/%s/members", room),
        400);
    assert_true(cmd_test_names_field(r, "user_id"));
    json_decref(r);
    assert_int_equal(
        cmd_test_act(fx, &adm, "POST", "{\"user_id\":7}", &r, "/chat/rooms/%s/members", room), 400);
    assert_true(cmd_test_names_field(r, "user_id"));
    json_decref(r);
    /* the cap (chat.max_members = 4): a fourth fits, a fifth does not */
    snprintf(uid_body, sizeof(uid_body), "{\"user_id\":\"%s\"}", m3.id);
    assert_int_equal(cmd_test_act(fx, &adm, "POST", uid_body, NULL, "/chat/rooms/%s/members", room),
                     200);
    snprintf(uid_body, sizeof(uid_body), "{\"user_id\":\"%s\"}", out.id);
    assert_int_equal(cmd_test_act(fx, &adm, "POST", uid_body, &r, "/chat/rooms/%s/members", room),
                     409);
    assert_string_equal(cmd_test_jstr(r, "title"), "Conflict");
    json_decref(r);

    /* a member leaves; a member cannot remove another; the admin can */
    assert_int_equal(
        cmd_test_act(fx, &m3, "DELETE", NULL, NULL, "/chat/rooms/%s/members/%s", room, m3.id), 200);
    assert_int_equal(cmd_test_act(fx, &m3, "POST", "{\"content\":\"hi\",\"txn_id\":\"1\"}", NULL,
                                  "/chat/rooms/%s/messages", room),
                     403);
    assert_int_equal(
        cmd_test_act(fx, &m1, "DELETE", NULL, NULL, "/chat/rooms/%s/members/%s", room, m2.id), 403);
    assert_int_equal(
        cmd_test_act(fx, &adm, "DELETE", NULL, NULL, "/chat/rooms/%s/members/%s", room, m2.id),
        200);
    assert_int_equal(
        cmd_test_act(fx, &adm, "DELETE", NULL, NULL, "/chat/rooms/%s/members/%s", room, m2.id),
        404);
    assert_int_equal(cmd_test_count(fx, "MemberRemoved"), 2);
    /* the admin leaves last: hand over first, to a member only */
    assert_int_equal(
        cmd_test_act(fx, &adm, "DELETE", NULL, NULL, "/chat/rooms/%s/members/%s", room, adm.id),
        409);
    snprintf(body, sizeof(body), "{\"admin_id\":\"%s\"}", out.id);
    assert_int_equal(cmd_test_act(fx, &adm, "PUT", body, &r, "/chat/rooms/%s", room), 400);
    assert_true(cmd_test_names_field(r, "admin_id"));
    json_decref(r);
    snprintf(body, sizeof(body), "{\"admin_id\":\"%s\",\"title\":\"new\"}", m1.id);
    assert_int_equal(cmd_test_act(fx, &m1, "PUT", body, NULL, "/chat/rooms/%s", room), 403);
    assert_int_equal(cmd_test_act(fx, &adm, "PUT", body, &r, "/chat/rooms/%s", room), 200);
    json_decref(r);
    assert_int_equal(cmd_test_act(fx, &adm, "PUT", "{}", &r, "/chat/rooms/%s", room), 400);
    json_decref(r);
    assert_int_equal(
        cmd_test_act(fx, &adm, "DELETE", NULL, NULL, "/chat/rooms/%s/members/%s", room, adm.id),
        200);
    json_t *evs = cmd_test_events(fx, "ConversationUpdated");
    assert_int_equal(json_array_size(evs), 1);
    json_t *d = json_object_get(json_array_get(evs, 0), "data");
    assert_string_equal(cmd_test_jstr(d, "admin_id"), m1.id);
    assert_string_equal(cmd_test_jstr(d, "title"), "new");
    json_decref(evs);

    /* unknown rooms and bad ids */
    assert_int_equal(cmd_test_act(fx, &m1, "PUT", "{\"title\":\"x\"}", NULL, "/chat/rooms/123"),
                     404);
    assert_int_equal(cmd_test_act(fx, &m1, "PUT", "{\"title\":\"x\"}", NULL, "/chat/rooms/abc"),
                     404);
    assert_int_equal(
        cmd_test_act(fx, &m1, "DELETE", NULL, NULL, "/chat/rooms/%s/members/xyz", room), 404);

    /* direct rooms: members are fixed, there is no admin */
    char direct[24];
    snprintf(ids, sizeof(ids), "\"%s\"", m2.id);
    room_body(body, sizeof(body), false, NULL, ids);
    room_new(fx, &m1, body, 201, direct);
    snprintf(uid_body, sizeof(uid_body), "{\"user_id\":\"%s\"}", m3.id);
    assert_int_equal(
        cmd_test_act(fx, &m1, "POST", uid_body, NULL, "/chat/rooms/%s/members", direct), 409);
    assert_int_equal(
        cmd_test_act(fx, &m1, "DELETE", NULL, NULL, "/chat/rooms/%s/members/%s", direct, m1.id),
        409);
    assert_int_equal(
        cmd_test_act(fx, &m1, "PUT", "{\"title\":\"x\"}", NULL, "/chat/rooms/%s", direct), 409);
}

/* Messages: members only, content rules, txn_id retries are one message. */
static void test_messages(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a, b, c;
    char body[256], ids[80], room[24], first[64], mid[24];
    json_t *r = NULL;
    cmd_test_user_new(fx, "sender", &a);
    cmd_test_user_new(fx, "receiver", &b);
    cmd_test_user_new(fx, "stranger", &c);
    snprintf(ids, sizeof(ids), "\"%s\"", b.id);
    room_body(body, sizeof(body), false, NULL, ids);
    room_new(fx, &a, body, 201, room);

    assert_int_equal(send_msg(fx, &a, room, "hello \\u00e9t\\u00e9\\nline", "t-1", &r), 201);
    snprintf(mid, sizeof(mid), "%s", cmd_test_jstr(r, "message_id"));
    assert_string_equal(cmd_test_jstr(r, "room_id"), room);
    snprintf(first, sizeof(first), "%s", cmd_test_jstr(r, "position"));
    json_decref(r);
    /* the retry: same answer, no second event, whatever the content */
    assert_int_equal(send_msg(fx, &a, room, "hello again", "t-1", &r), 201);
    assert_string_equal(cmd_test_jstr(r, "message_id"), mid);
    assert_string_equal(cmd_test_jstr(r, "position"), first);
    json_decref(r);
    /* the same txn_id from another sender is another message */
    assert_int_equal(send_msg(fx, &b, room, "hi", "t-1", &r), 201);
    assert_string_not_equal(cmd_test_jstr(r, "message_id"), mid);
    json_decref(r);
    assert_int_equal(send_msg(fx, &c, room, "let me in", "t-9", NULL), 403);
    assert_int_equal(send_msg(fx, &a, "999", "nobody", "t-9", NULL), 404);
    assert_int_equal(send_msg(fx, NULL, room, "anon", "t-9", NULL), 401);

    json_t *evs = cmd_test_events(fx, "MessageSent");
    assert_int_equal(json_array_size(evs), 2);
    json_t *d = json_object_get(json_array_get(evs, 0), "data");
    assert_string_equal(cmd_test_jstr(d, "content"), "hello \xc3\xa9t\xc3\xa9\nline");
    assert_string_equal(cmd_test_jstr(d, "sender_id"), a.id);
    assert_string_equal(cmd_test_jstr(d, "txn_id"), "t-1");
    assert_string_equal(cmd_test_jstr(d, "conversation_id"), room);
    json_decref(evs);

    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"txn_id\":\"x\"}", "content"},
        {"{\"content\":\"\",\"txn_id\":\"x\"}", "content"},
        {"{\"content\":\"a\\u0001b\",\"txn_id\":\"x\"}", "content"},
        {"{\"content\":7,\"txn_id\":\"x\"}", "content"},
        {"{\"content\":\"hi\"}", "txn_id"},
        {"{\"content\":\"hi\",\"txn_id\":\"\"}", "txn_id"},
        {"{\"content\":\"hi\",\"txn_id\":\"a b\"}", "txn_id"},
        {"{\"content\":\"hi\",\"txn_id\":\"a/b\"}", "txn_id"},
        {"{\"content\":\"hi\",\"txn_id\":12}", "txn_id"},
        {"{\"content\":\"hi\",\"txn_id\":\"x\",\"to\":\"y\"}", "to"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            cmd_test_act(fx, &a, "POST", bad[i].body, &r, "/chat/rooms/%s/messages", room), 400);
        if (!cmd_test_names_field(r, bad[i].field))
            fail_msg("%s: expected errors[] to name %s", bad[i].body, bad[i].field);
        json_decref(r);
    }
    /* 4000 code points fit, 4001 do not */
    size_t cap = 4001 * 2 + 64, n;
    char *big = malloc(cap);
    n = (size_t)snprintf(big, cap, "{\"txn_id\":\"big\",\"content\":\"");
    for (int i = 0; i < 4000; i++)
        n += (size_t)snprintf(big + n, cap - n, "\xc3\xa9");
    snprintf(big + n, cap - n, "\"}");
    assert_int_equal(cmd_test_act(fx, &a, "POST", big, NULL, "/chat/rooms/%s/messages", room), 201);
    snprintf(big + n, cap - n, "x\"}");
    assert_int_equal(cmd_test_act(fx, &a, "POST", big, NULL, "/chat/rooms/%s/messages", room), 400);
    free(big);
    assert_int_equal(cmd_test_count(fx, "MessageSent"), 3);

    /* three retries in one batch with the first send: one message, four equal answers */
    char mbody[96];
    snprintf(mbody, sizeof(mbody), "{\"content\":\"once\",\"txn_id\":\"batch-1\"}");
    char path[64];
    snprintf(path, sizeof(path), "/chat/rooms/%s/messages", room);
    struct cmd_test_raw reqs[4];
    for (int i = 0; i < 4; i++)
        reqs[i] =
            (struct cmd_test_raw){.method = "POST", .path = path, .auth = a.auth, .body = mbody};
    cmd_test_one_batch(fx, reqs, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(reqs[i].status, 201);
        const char *body0 = strstr(reqs[0].buf, "\r\n\r\n"),
                   *bodyi = strstr(reqs[i].buf, "\r\n\r\n");
        assert_non_null(bodyi);
        assert_string_equal(bodyi, body0);
    }
    assert_int_equal(cmd_test_count(fx, "MessageSent"), 4);
}

/* Read markers only grow, members only. */
static void test_read_markers(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a, b, c;
    char body[256], ids[80], room[24];
    cmd_test_user_new(fx, "reader", &a);
    cmd_test_user_new(fx, "writer", &b);
    cmd_test_user_new(fx, "nosy", &c);
    snprintf(ids, sizeof(ids), "\"%s\"", b.id);
    room_body(body, sizeof(body), false, NULL, ids);
    room_new(fx, &a, body, 201, room);
    assert_int_equal(
        cmd_test_act(fx, &a, "POST", "{\"up_to_id\":\"500\"}", NULL, "/chat/rooms/%s/read", room),
        200);
    assert_int_equal(/* not higher: a no-op */
                     cmd_test_act(fx, &a, "POST", "{\"up_to_id\":\"400\"}", NULL,
                                  "/chat/rooms/%s/read", room),
                     200);
    assert_int_equal(
        cmd_test_act(fx, &a, "POST", "{\"up_to_id\":\"600\"}", NULL, "/chat/rooms/%s/read", room),
        200);
    assert_int_equal(
        cmd_test_act(fx, &c, "POST", "{\"up_to_id\":\"700\"}", NULL, "/chat/rooms/%s/read", room),
        403);
    assert_int_equal(
        cmd_test_act(fx, &a, "POST", "{\"up_to_id\":\"x\"}", NULL, "/chat/rooms/%s/read", room),
        400);
    json_t *evs = cmd_test_events(fx, "MessagesRead");
    assert_int_equal(json_array_size(evs), 2);
    assert_string_equal(cmd_test_jstr(json_object_get(json_array_get(evs, 1), "data"), "up_to_id"),
                        "600");
    json_decref(evs);
}

/* Deleting the write model: catch-up rebuilds rooms, members, pairs, txn ids and markers. */
static void test_catch_up_rebuilds_chat(void **state)
{
    struct cmd_test_fx *fx = *state;
    struct cmd_test_user a, b, c;
    char body[256], ids[80], direct[24], group[24], again[24], mid[24], uid_body[64];
    json_t *r = NULL;
    cmd_test_user_new(fx, "alpha", &a);
    cmd_test_user_new(fx, "beta", &b);
    cmd_test_user_new(fx, "gamma", &c);
    snprintf(ids, sizeof(ids), "\"%s\"", b.id);
    room_body(body, sizeof(body), false, NULL, ids);
    room_new(fx, &a, body, 201, direct);
    snprintf(ids, sizeof(ids), "\"%s\"", b.id);
    room_body(body, sizeof(body), true, "g", ids);
    room_new(fx, &a, body, 201, group);
    snprintf(uid_body, sizeof(uid_body), "{\"user_id\":\"%s\"}", c.id);
    assert_int_equal(cmd_test_act(fx, &a, "POST", uid_body, NULL, "/chat/rooms/%s/members", group),
                     200);
    assert_int_equal(
        cmd_test_act(fx, &a, "DELETE", NULL, NULL, "/chat/rooms/%s/members/%s", group, b.id), 200);
    assert_int_equal(send_msg(fx, &c, group, "kept", "k-1", &r), 201);
    snprintf(mid, sizeof(mid), "%s", cmd_test_jstr(r, "message_id"));
    json_decref(r);
    assert_int_equal(
        cmd_test_act(fx, &c, "POST", "{\"up_to_id\":\"900\"}", NULL, "/chat/rooms/%s/read", group),
        200);

    cmd_test_app_stop(fx);
    cmd_test_rm_tree(fx->wm_dir);
    cmd_test_app_start(fx);
    snprintf(ids, sizeof(ids), "\"%s\"", a.id);
    room_body(body, sizeof(body), false, NULL, ids);
    room_new(fx, &b, body, 200, again);
    assert_string_equal(again, direct);
    assert_int_equal(send_msg(fx, &c, group, "kept", "k-1", &r), 201);
    assert_string_equal(cmd_test_jstr(r, "message_id"), mid);
    json_decref(r);
    assert_int_equal(send_msg(fx, &b, group, "gone", "k-2", NULL), 403);
    assert_int_equal(
        cmd_test_act(fx, &c, "POST", "{\"user_id\":\"1\"}", NULL, "/chat/rooms/%s/members", group),
        403); /* not the admin */
    assert_int_equal(
        cmd_test_act(fx, &c, "POST", "{\"up_to_id\":\"900\"}", NULL, "/chat/rooms/%s/read", group),
        200);
    assert_int_equal(cmd_test_count(fx, "MessagesRead"), 1);
    assert_int_equal(cmd_test_count(fx, "MessageSent"), 1);
    assert_int_equal(cmd_test_count(fx, "ConversationCreated"), 2);
}

int main(void)
{
    evthread_use_pthreads();
    sp_log_setup(SP_LOG_WARN, "test-command-chat");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_direct_room_unique, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_direct_room_concurrent, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_group_membership, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_messages, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_read_markers, setup, cmd_test_teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_rebuilds_chat, setup, cmd_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
