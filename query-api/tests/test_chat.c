/*
 * Integration tests of the chat routes (query-api/src/chat.h) against a real PostgreSQL
 * whose read model the "pg" projection folds from an embedded log the test appends chat
 * events to: the caller's rooms by activity with members, last message and unread counts,
 * paging with Link (also while messages arrive), 403/404, read markers and message
 * notifications, removed members, Stockpot-After, and GET /chat/stream live, resumed with
 * Last-Event-ID, catching up more than one poll's batch, and for a removed member. The
 * safety-net poll is an hour away: streams learn of new events from the projector's
 * NOTIFY only. Needs the PG* environment (pg_virtualenv).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "es/log.h"
#include "proj/projection.h"
#include "proj/runner.h"
#include "sp/time.h"
#include "qry_test_db.h"
#include "qry_test_srv.h"
#include "sp_test_http.h"

#include "sp/banned.h"

#define USER(n) (7303000000000000LL + (n))
#define ROOM(n) (7304000000000000LL + (n))
#define MSG(n)  (7305000000000000LL + (n))

enum { ALICE = 1, BOB, CAROL, DAVE, ERIN, N_USERS = ERIN };
static const char *const names[] = {"", "alice", "bob", "carol", "dave", "erin"};

#define N_ROOMS 16

static struct qry_test_fx fx;
static struct es_log *elog;       /* the embedded log the projection folds */
static char log_root[64];         /* its temporary directory */
static int64_t versions[N_ROOMS]; /* stream version of each room */
static int last_msg;              /* message numbers handed out */
static char tokens[N_USERS + 1][4096];
static char auths[N_USERS + 1][4200]; /* "Authorization: Bearer <token>" */

/* ------------------------------------------------------------ the log */

static json_t *idstr(long long id)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", id);
    return json_string(s);
}

/* Append one event; @return its offset. */
static int64_t append(const char *type, const char *stream, int64_t version, json_t *data)
{
    struct es_event ev;
    const struct es_event *evs[1] = {&ev};
    struct es_position pos = {0, -1};
    struct sp_errbuf eb = {{0}, {0}};

    es_event_init(&ev);
    assert_int_equal(es_event_make(&ev, type, stream, version, NULL, NULL, NULL, data), 0);
    assert_int_equal(es_log_append(elog, evs, 1, &pos, &eb), 0);
    es_event_release(&ev);
    return pos.offset;
}

static int64_t room_event(const char *type, int room, json_t *data)
{
    char stream[48];

    snprintf(stream, sizeof(stream), "conversation-%lld", ROOM(room));
    json_object_set_new(data, "conversation_id", idstr(ROOM(room)));
    return append(type, stream, ++versions[room], data);
}

/* ConversationCreated of @p room by @p creator with @p members (0-ended); title NULL: 1:1. */
static int64_t create_room(int room, const char *title, int creator, const int *members)
{
    json_t *ids = json_array();
    json_t *d;

    for (const int *m = members; *m != 0; m++)
        json_array_append_new(ids, idstr(USER(*m)));
    d = json_pack("{s:b,s:o,s:o}", "is_group", title != NULL, "creator_id", idstr(USER(creator)),
                  "member_ids", ids);
    if (title != NULL)
        json_object_set_new(d, "title", json_string(title));
    return room_event("ConversationCreated", room, d);
}

/* MessageSent of the next message number by @p sender; @return the offset. */
static int64_t send_message(int room, int sender)
{
    char content[48], txn[24];
    int k = ++last_msg;

    snprintf(content, sizeof(content), "message %d from %s 🍲", k, names[sender]);
    snprintf(txn, sizeof(txn), "txn-%d", k);
    return room_event("MessageSent", room,
                      json_pack("{s:o,s:o,s:s,s:s}", "message_id", idstr(MSG(k)), "sender_id",
                                idstr(USER(sender)), "content", content, "txn_id", txn));
}

static int64_t mark_read(int room, int user, int up_to_msg)
{
    return room_event(
        "MessagesRead", room,
        json_pack("{s:o,s:o}", "user_id", idstr(USER(user)), "up_to_id", idstr(MSG(up_to_msg))));
}

static int64_t add_member(int room, int user, int by)
{
    return room_event(
        "MemberAdded", room,
        json_pack("{s:o,s:o}", "user_id", idstr(USER(user)), "added_by", idstr(USER(by))));
}

static int64_t remove_member(int room, int user, int by)
{
    return room_event(
        "MemberRemoved", room,
        json_pack("{s:o,s:o}", "user_id", idstr(USER(user)), "removed_by", idstr(USER(by))));
}

/* Fold everything appended so far into the read model. */
static void fold(void)
{
    struct proj_runner_opts opts = {
        .proj = proj_pg_projection(),
        .conninfo = fx.db.conninfo,
        .batch_max = 100,
        .policy = PROJ_POISON_DEAD_LETTER,
    };
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_runner *r = NULL;

    assert_int_equal(proj_runner_new(&opts, elog, &r, &eb), 0);
    if (proj_runner_catch_up(r, &eb) != 0)
        fail_msg("fold: %s", eb.msg);
    proj_runner_free(r);
}

/* ------------------------------------------------------------ HTTP */

static json_t *
get(int user, const char *path, const char *extra, struct sp_test_resp *resp, int want)
{
    const char *headers[] = {user > 0 ? auths[user] : extra, user > 0 ? extra : NULL, NULL};

    return qry_test_srv_get_json(&fx.srv, path, headers, resp, want);
}

/* GET @p path as @p user, wanting 200: the body (owned); the response is released. */
static json_t *get_ok(int user, const char *path)
{
    struct sp_test_resp resp = {0};
    json_t *body = get(user, path, NULL, &resp, 200);

    sp_test_resp_release(&resp);
    return body;
}

static void get_problem(int user, const char *path, int want, const char *type_slug)
{
    struct sp_test_resp resp = {0};
    json_t *body = get(user, path, NULL, &resp, want);
    char type[96];

    snprintf(type, sizeof(type), "https://stockpot.dev/problems/%s", type_slug);
    assert_string_equal(sp_test_resp_header(&resp, "Content-Type"), "application/problem+json");
    assert_string_equal(json_string_value(json_object_get(body, "type")), type);
    json_decref(body);
    sp_test_resp_release(&resp);
}

static const char *str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (s == NULL)
        fail_msg("no string \"%s\"", key);
    return s;
}

static long long num(const json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

static bool id_is(const json_t *obj, const char *key, long long want)
{
    return strtoll(str(obj, key), NULL, 10) == want;
}

/* The room of @p user's list with id ROOM(@p room), or NULL. Borrowed from @p list. */
static json_t *find_room(json_t *list, int room)
{
    size_t i;
    json_t *r;

    json_array_foreach(json_object_get(list, "items"), i, r) {
        if (id_is(r, "id", ROOM(room)))
            return r;
    }
    return NULL;
}

static long long unread(int user, int room)
{
    char path[64];
    json_t *r;
    long long n;

    snprintf(path, sizeof(path), "/chat/rooms/%lld", ROOM(room));
    r = get_ok(user, path);
    n = num(r, "unread_count");
    json_decref(r);
    return n;
}

/* ------------------------------------------------------------ fixture */

/*
 * Users alice..erin; room 1 "Soup club" (alice: alice, bob, carol) with 120 messages from
 * alice, bob, carol in turn, read by bob up to the 100th; room 2 (1:1 alice-dave) with 3;
 * room 3 "Bakers" (bob: bob, carol) with 1.
 */
static void build_world(void)
{
    for (int u = ALICE; u <= N_USERS; u++) {
        char stream[48];
        snprintf(stream, sizeof(stream), "user-%lld", USER(u));
        append("UserRegistered", stream, 1,
               json_pack("{s:o,s:s,s:s,s:s}", "user_id", idstr(USER(u)), "username", names[u],
                         "email", "x@example.com", "password_hash", "$argon2id$v=19$x"));
    }
    create_room(1, "Soup club", ALICE, (const int[]){ALICE, BOB, CAROL, 0});
    create_room(2, NULL, ALICE, (const int[]){ALICE, DAVE, 0});
    create_room(3, "Bakers", BOB, (const int[]){BOB, CAROL, 0});
    for (int k = 0; k < 120; k++)
        send_message(1, ALICE + k % 3); /* messages 1..120 */
    send_message(2, DAVE);              /* 121 */
    send_message(2, ALICE);             /* 122 */
    send_message(2, DAVE);              /* 123 */
    send_message(3, CAROL);             /* 124 */
    mark_read(1, BOB, 100);
    fold();
}

static int setup(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    char dir[96];

    /* while NOTIFY is heard, no safety-net poll within a test: only NOTIFY delivers */
    assert_int_equal(setenv("STOCKPOT_QUERY_SSE_POLL_MS", "3600000", 1), 0);
    qry_test_fx_setup(state, &fx, "qry_chat", NULL, 1000);
    snprintf(log_root, sizeof(log_root), "/tmp/qry-chat-XXXXXX");
    assert_non_null(mkdtemp(log_root));
    snprintf(dir, sizeof(dir), "%s/log", log_root);
    assert_int_equal(es_log_open_lmdb(dir, 64u << 20, 1u << 20, ES_LOG_WRITER, &elog, &eb), 0);
    for (int u = ALICE; u <= N_USERS; u++) {
        char *tok = qry_test_srv_token(&fx.srv, USER(u), 9000 + u, 900);
        snprintf(tokens[u], sizeof(tokens[u]), "%s", tok);
        snprintf(auths[u], sizeof(auths[u]), "Authorization: Bearer %s", tok);
        free(tok);
    }
    build_world();
    return 0;
}

static int teardown(void **state)
{
    char path[128];

    es_log_close(elog);
    for (const char *const *f = (const char *const[]){"data.mdb", "lock.mdb", "writer.lock", NULL};
         *f != NULL; f++) {
        snprintf(path, sizeof(path), "%s/log/%s", log_root, *f);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/log", log_root);
    rmdir(path);
    rmdir(log_root);
    return qry_test_fx_teardown(state);
}

/* ------------------------------------------------------------ rooms */

static void test_rooms(void **state)
{
    struct sp_test_resp resp = {0};
    json_t *list, *r1, *r2, *m, *page;
    char path[160];
    (void)state;

    list = get_ok(ALICE, "/chat/rooms");
    /* most recent activity first; room 3 is not alice's */
    assert_int_equal(json_array_size(json_object_get(list, "items")), 2);
    r2 = json_array_get(json_object_get(list, "items"), 0);
    r1 = json_array_get(json_object_get(list, "items"), 1);
    assert_true(id_is(r2, "id", ROOM(2)) && id_is(r1, "id", ROOM(1)));
    assert_null(json_object_get(list, "next_max_id"));
    /* the 1:1 room */
    assert_true(json_is_false(json_object_get(r2, "is_group")));
    assert_true(json_is_null(json_object_get(r2, "title")));
    assert_true(json_is_null(json_object_get(r2, "admin_id")));
    assert_int_equal(num(r2, "version"), 4);
    assert_int_equal(json_array_size(json_object_get(r2, "members")), 2);
    m = json_array_get(json_object_get(r2, "members"), 1);
    assert_true(id_is(m, "id", USER(DAVE)));
    assert_string_equal(str(m, "username"), "dave");
    m = json_object_get(r2, "last_message");
    assert_true(id_is(m, "id", MSG(123)) && id_is(m, "sender_id", USER(DAVE)));
    assert_string_equal(str(m, "content"), "message 123 from dave 🍲");
    assert_string_equal(str(m, "sender_username"), "dave");
    assert_true(id_is(r2, "activity_id", MSG(123)));
    assert_int_equal(num(r2, "unread_count"), 2); /* 121 and 123: not alice's */
    /* the group */
    assert_string_equal(str(r1, "title"), "Soup club");
    assert_true(id_is(r1, "admin_id", USER(ALICE)) && id_is(r1, "creator_id", USER(ALICE)));
    assert_int_equal(json_array_size(json_object_get(r1, "members")), 3);
    assert_int_equal(num(r1, "version"), 122);
    assert_int_equal(num(r1, "unread_count"), 80); /* the 80 of bob and carol */
    assert_string_equal(str(r1, "read_up_to"), "0");
    json_decref(list);
    /* bob read up to 100: 20 later, 7 of them his */
    assert_int_equal(unread(BOB, 1), 13);
    assert_int_equal(unread(CAROL, 1), 120 - 40);

    /* pages of one, following the Link */
    page = get(ALICE, "/chat/rooms?limit=1", NULL, &resp, 200);
    snprintf(path, sizeof(path), "</chat/rooms?max_id=%lld&limit=1>; rel=\"next\"", MSG(123));
    assert_string_equal(sp_test_resp_header(&resp, "Link"), path);
    assert_true(id_is(page, "next_max_id", MSG(123)));
    assert_true(id_is(json_array_get(json_object_get(page, "items"), 0), "id", ROOM(2)));
    json_decref(page);
    sp_test_resp_release(&resp);
    snprintf(path, sizeof(path), "/chat/rooms?max_id=%lld&limit=1", MSG(123));
    page = get_ok(ALICE, path);
    assert_true(id_is(json_array_get(json_object_get(page, "items"), 0), "id", ROOM(1)));
    json_decref(page);
    snprintf(path, sizeof(path), "/chat/rooms?max_id=%lld&limit=1", MSG(120));
    page = get(ALICE, path, NULL, &resp, 200);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    assert_null(sp_test_resp_header(&resp, "Link"));
    json_decref(page);
    sp_test_resp_release(&resp);
    snprintf(path, sizeof(path), "/chat/rooms?since_id=%lld", MSG(120));
    page = get_ok(ALICE, path);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
    json_decref(page);

    get_problem(0, "/chat/rooms", 401, "unauthorized");
    get_problem(ALICE, "/chat/rooms?limit=0", 400, "validation");
    get_problem(ALICE, "/chat/rooms?color=red", 400, "validation");
}

static void test_room_access(void **state)
{
    struct sp_test_resp resp = {0};
    char path[96];
    json_t *room;
    (void)state;

    snprintf(path, sizeof(path), "/chat/rooms/%lld", ROOM(1));
    room = get(ALICE, path, NULL, &resp, 200);
    assert_string_equal(sp_test_resp_header(&resp, "ETag"), "\"122\"");
    assert_true(id_is(room, "id", ROOM(1)));
    json_decref(room);
    sp_test_resp_release(&resp);
    assert_null(get(ALICE, path, "If-None-Match: \"122\"", &resp, 304));
    sp_test_resp_release(&resp);

    /* not a member: 403; no such room: 404; for the room and its messages alike */
    snprintf(path, sizeof(path), "/chat/rooms/%lld", ROOM(3));
    get_problem(ALICE, path, 403, "forbidden");
    snprintf(path, sizeof(path), "/chat/rooms/%lld/messages", ROOM(3));
    get_problem(ALICE, path, 403, "forbidden");
    snprintf(path, sizeof(path), "/chat/rooms/%lld", ROOM(15));
    get_problem(ALICE, path, 404, "not-found");
    snprintf(path, sizeof(path), "/chat/rooms/%lld/messages", ROOM(15));
    get_problem(ALICE, path, 404, "not-found");
    get_problem(ALICE, "/chat/rooms/abc", 400, "validation");
    get_problem(0, "/chat/rooms/7304000000000001/messages", 401, "unauthorized");
    /* an empty page of a room one is in is a page */
    snprintf(path, sizeof(path), "/chat/rooms/%lld/messages?max_id=%lld", ROOM(2), MSG(121));
    room = get_ok(DAVE, path);
    assert_int_equal(json_array_size(json_object_get(room, "items")), 0);
    json_decref(room);
}

/* Pages of 50 of room 1's 120 messages, newest first, following the Link while 5 more
 * messages arrive between the pages: each of the 120 once, in order. */
static void test_messages_paging(void **state)
{
    struct sp_test_resp resp = {0};
    char path[256];
    int seen = 0, pages = 0;
    (void)state;

    snprintf(path, sizeof(path), "/chat/rooms/%lld/messages?limit=50", ROOM(1));
    for (;;) {
        json_t *page = get(CAROL, path, NULL, &resp, 200);
        const char *link = sp_test_resp_header(&resp, "Link");
        size_t i;
        json_t *m;

        json_array_foreach(json_object_get(page, "items"), i, m) {
            int k = 120 - seen;
            assert_true(id_is(m, "id", MSG(k)));
            assert_true(id_is(m, "conversation_id", ROOM(1)));
            assert_true(id_is(m, "sender_id", USER(ALICE + (k - 1) % 3)));
            assert_string_equal(str(m, "sender_username"), names[ALICE + (k - 1) % 3]);
            /* the sender's transaction id is carol's to see on her messages only */
            if ((k - 1) % 3 == 2)
                assert_true(strncmp(str(m, "txn_id"), "txn-", 4) == 0);
            else
                assert_true(json_is_null(json_object_get(m, "txn_id")));
            seen++;
        }
        pages++;
        if (link == NULL) {
            json_decref(page);
            sp_test_resp_release(&resp);
            break;
        }
        assert_true(id_is(page, "next_max_id", MSG(120 - seen + 1)));
        snprintf(path, sizeof(path), "/chat/rooms/%lld/messages?max_id=%lld&limit=50", ROOM(1),
                 MSG(120 - seen + 1));
        assert_int_equal(strncmp(link + 1, path, strlen(path)), 0);
        json_decref(page);
        sp_test_resp_release(&resp);
        if (pages == 1) {
            for (int j = 0; j < 5; j++)
                send_message(1, BOB); /* 125..129 */
            fold();
        }
    }
    assert_int_equal(seen, 120);
    assert_int_equal(pages, 3);
    /* since_id: the newest page above it, and the Link keeps it */
    snprintf(path, sizeof(path), "/chat/rooms/%lld/messages?since_id=%lld&limit=2", ROOM(1),
             MSG(125));
    json_t *page = get(CAROL, path, NULL, &resp, 200);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 2);
    assert_true(id_is(json_array_get(json_object_get(page, "items"), 0), "id", MSG(129)));
    assert_true(id_is(json_array_get(json_object_get(page, "items"), 1), "id", MSG(128)));
    snprintf(path, sizeof(path), "</chat/rooms/%lld/messages?since_id=%lld&max_id=%lld&limit=2>",
             ROOM(1), MSG(125), MSG(128));
    assert_int_equal(strncmp(sp_test_resp_header(&resp, "Link"), path, strlen(path)), 0);
    json_decref(page);
    sp_test_resp_release(&resp);
}

/* The first item of @p user's notifications of kind message for @p room, or NULL
 * (owned), and the list's unread_count in *unread_n. */
static json_t *message_notification(int user, int room, long long *unread_n)
{
    json_t *list = get_ok(user, "/notifications?limit=100");
    json_t *found = NULL;
    size_t i;
    json_t *n;

    json_array_foreach(json_object_get(list, "items"), i, n) {
        if (found == NULL && strcmp(str(n, "kind"), "message") == 0 &&
            id_is(n, "conversation_id", ROOM(room)))
            found = json_incref(n);
    }
    *unread_n = num(list, "unread_count");
    json_decref(list);
    return found;
}

/* Room 4 (erin: erin, bob, dave): unread counts, read markers and the one pending message
 * notification per room and member; a member added later has not missed the history. */
static void test_unread_and_notifications(void **state)
{
    long long before, after;
    json_t *n, *list;
    int last;
    (void)state;

    create_room(4, "Pasta", ERIN, (const int[]){ERIN, BOB, DAVE, 0});
    send_message(4, ERIN);
    send_message(4, ERIN);
    send_message(4, DAVE);
    last = last_msg;
    fold();
    assert_int_equal(unread(BOB, 4), 3);
    assert_int_equal(unread(DAVE, 4), 2);
    assert_int_equal(unread(ERIN, 4), 1);
    /* one notification for bob, of the last message */
    n = message_notification(BOB, 4, &before);
    assert_non_null(n);
    assert_true(id_is(n, "message_id", MSG(last)) && id_is(n, "actor_id", USER(DAVE)));
    assert_string_equal(str(n, "actor_username"), "dave");
    assert_true(json_is_false(json_object_get(n, "read")));
    json_decref(n);
    /* bob's list: room 4 is the most recent */
    list = get_ok(BOB, "/chat/rooms");
    assert_int_equal(json_array_size(json_object_get(list, "items")), 3);
    assert_true(id_is(json_array_get(json_object_get(list, "items"), 0), "id", ROOM(4)));
    assert_true(id_is(json_array_get(json_object_get(list, "items"), 1), "id", ROOM(1)));
    assert_true(id_is(json_array_get(json_object_get(list, "items"), 2), "id", ROOM(3)));
    json_decref(list);

    mark_read(4, BOB, last);
    fold();
    assert_int_equal(unread(BOB, 4), 0);
    n = message_notification(BOB, 4, &after);
    assert_true(json_is_true(json_object_get(n, "read")));
    assert_int_equal(after, before - 1);
    json_decref(n);
    /* a new message: a new notification, unread */
    send_message(4, ERIN);
    fold();
    assert_int_equal(unread(BOB, 4), 1);
    n = message_notification(BOB, 4, &after);
    assert_true(id_is(n, "message_id", MSG(last_msg)));
    assert_true(json_is_false(json_object_get(n, "read")));
    assert_int_equal(after, before);
    json_decref(n);
    /* carol joins: the history is not unread for her, what follows is */
    add_member(4, CAROL, ERIN);
    fold();
    assert_int_equal(unread(CAROL, 4), 0);
    send_message(4, DAVE);
    fold();
    assert_int_equal(unread(CAROL, 4), 1);
    assert_int_equal(unread(BOB, 4), 2);
}

/* Room 5 (alice: alice, carol, erin): carol removed is a non-member from then on, and a
 * member again when added back. */
static void test_removed_member(void **state)
{
    char room[64], messages[96];
    json_t *list;
    (void)state;

    snprintf(room, sizeof(room), "/chat/rooms/%lld", ROOM(5));
    snprintf(messages, sizeof(messages), "/chat/rooms/%lld/messages", ROOM(5));
    create_room(5, "Leavers", ALICE, (const int[]){ALICE, CAROL, ERIN, 0});
    send_message(5, CAROL);
    fold();
    json_decref(get_ok(CAROL, room));
    remove_member(5, CAROL, ALICE);
    send_message(5, ERIN);
    fold();
    get_problem(CAROL, room, 403, "forbidden");
    get_problem(CAROL, messages, 403, "forbidden");
    list = get_ok(CAROL, "/chat/rooms");
    assert_null(find_room(list, 5));
    assert_non_null(find_room(list, 1));
    json_decref(list);
    json_decref(get_ok(ERIN, room));
    add_member(5, CAROL, ALICE);
    fold();
    list = get_ok(CAROL, messages);
    assert_int_equal(json_array_size(json_object_get(list, "items")), 2);
    json_decref(list);
    assert_int_equal(unread(CAROL, 5), 0);
}

struct waiting_get {
    char path[96];
    char after[64];
    int status;
    json_t *body;
};

static void *waiting_get_thread(void *arg)
{
    struct waiting_get *w = arg;
    struct sp_test_resp resp = {0};
    const char *headers[] = {auths[DAVE], w->after, NULL};

    w->status = sp_test_http(fx.srv.port, "GET", w->path, headers, NULL, &resp);
    w->body = resp.body != NULL ? json_loads(resp.body, 0, NULL) : NULL;
    sp_test_resp_release(&resp);
    return NULL;
}

/* A read with Stockpot-After waits until the projection has folded that position. */
static void test_stockpot_after(void **state)
{
    struct waiting_get w = {0};
    pthread_t thread;
    int64_t offset;
    (void)state;

    offset = send_message(2, ALICE);
    snprintf(w.path, sizeof(w.path), "/chat/rooms/%lld/messages?limit=1", ROOM(2));
    snprintf(w.after, sizeof(w.after), "Stockpot-After: 0:%lld", (long long)offset);
    assert_int_equal(pthread_create(&thread, NULL, waiting_get_thread, &w), 0);
    usleep(100000);
    fold();
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(w.status, 200);
    assert_true(id_is(json_array_get(json_object_get(w.body, "items"), 0), "id", MSG(last_msg)));
    json_decref(w.body);
    /* a position the projection does not reach in time: 503 */
    snprintf(w.after, sizeof(w.after), "Stockpot-After: 0:%lld", (long long)offset + 1000);
    assert_int_equal(pthread_create(&thread, NULL, waiting_get_thread, &w), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(w.status, 503);
    json_decref(w.body);
}

/* ------------------------------------------------------------ the stream */

/* An SSE connection read by hand: HTTP/1.0, so the body is the raw event stream. */
struct sse {
    int fd;
    char buf[1 << 18];
    size_t len; /* bytes in buf */
    size_t off; /* start of the first unparsed event block */
};

static struct sse *sse_open(int user, const char *last_id, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (suseconds_t)(timeout_ms % 1000) * 1000};
    struct sse *s = calloc(1, sizeof(*s));
    char req[8192];
    char *end;
    int n;

    assert_non_null(s);
    s->fd = sp_test_connect(fx.srv.port);
    assert_true(s->fd >= 0);
    assert_int_equal(setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    n = snprintf(req, sizeof(req),
                 "GET /chat/stream HTTP/1.0\r\nHost: test\r\n%s\r\nAccept: text/event-stream\r\n"
                 "%s%s%s\r\n",
                 auths[user], last_id != NULL ? "Last-Event-ID: " : "",
                 last_id != NULL ? last_id : "", last_id != NULL ? "\r\n" : "");
    assert_true(n > 0 && (size_t)n < sizeof(req));
    assert_int_equal(write(s->fd, req, (size_t)n), n);
    /* the head and the first ("retry") block */
    while ((end = strstr(s->buf, "\r\n\r\n")) == NULL || strstr(end, "retry: ") == NULL ||
           strstr(end, "\n\n") == NULL) {
        ssize_t got = read(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
        if (got <= 0)
            fail_msg("stream ended before its start: %s", s->buf);
        s->len += (size_t)got;
        s->buf[s->len] = '\0';
    }
    assert_non_null(strstr(s->buf, " 200 "));
    assert_non_null(strstr(s->buf, "Content-Type: text/event-stream"));
    s->off = (size_t)(strstr(end + 4, "\n\n") - s->buf) + 2;
    return s;
}

static void sse_close(struct sse *s)
{
    close(s->fd);
    free(s);
}

struct sse_event {
    char id[64];
    char name[32];
    json_t *data; /* owned */
};

/* The next event (comments skipped). @return false on timeout or EOF. */
static bool sse_next(struct sse *s, struct sse_event *ev)
{
    for (;;) {
        char *block = s->buf + s->off;
        char *end = strstr(block, "\n\n");
        char *line;

        if (end == NULL) {
            ssize_t got;
            if (s->off > 0) { /* keep the buffer from filling up */
                memmove(s->buf, block, s->len - s->off + 1);
                s->len -= s->off;
                s->off = 0;
            }
            got = read(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
            if (got <= 0)
                return false;
            s->len += (size_t)got;
            s->buf[s->len] = '\0';
            continue;
        }
        *end = '\0';
        s->off = (size_t)(end - s->buf) + 2;
        if (block[0] == ':')
            continue;
        line = strstr(block, "id: ");
        assert_non_null(line);
        snprintf(ev->id, sizeof(ev->id), "%.*s", (int)strcspn(line + 4, "\n"), line + 4);
        line = strstr(block, "\nevent: ");
        assert_non_null(line);
        snprintf(ev->name, sizeof(ev->name), "%.*s", (int)strcspn(line + 8, "\n"), line + 8);
        line = strstr(block, "\ndata: ");
        assert_non_null(line);
        ev->data = json_loads(line + 7, 0, NULL);
        assert_non_null(ev->data);
        return true;
    }
}

/* The next event must be @p name at offset @p offset; its data is returned (owned). */
static json_t *expect(struct sse *s, const char *name, int64_t offset)
{
    struct sse_event ev = {{0}, {0}, NULL};
    char id[32];

    snprintf(id, sizeof(id), "0:%lld", (long long)offset);
    if (!sse_next(s, &ev))
        fail_msg("no event %s %s arrived", name, id);
    if (strcmp(ev.id, id) != 0 || strcmp(ev.name, name) != 0)
        fail_msg("event %s %s, want %s %s", ev.name, ev.id, name, id);
    return ev.data;
}

static void expect_quiet(struct sse *s)
{
    struct sse_event ev;

    /* the socket timeout (short here) ends the wait */
    if (sse_next(s, &ev))
        fail_msg("unexpected event %s %s", ev.name, ev.id);
}

/* Alice's stream: live events of her rooms; after a dropped connection, Last-Event-ID
 * gives exactly what she missed (not room 3's, she is not in it), in order. */
static void test_stream_live_and_resume(void **state)
{
    struct sse *s = sse_open(ALICE, NULL, 3000);
    int64_t off[6];
    char last[32];
    json_t *d;
    (void)state;

    off[0] = send_message(2, DAVE);
    fold();
    d = expect(s, "message", off[0]);
    assert_true(id_is(d, "id", MSG(last_msg)) && id_is(d, "conversation_id", ROOM(2)));
    assert_string_equal(str(d, "sender_username"), "dave");
    assert_true(json_is_null(json_object_get(d, "txn_id")));
    json_decref(d);
    off[1] = mark_read(2, DAVE, last_msg);
    fold();
    d = expect(s, "read", off[1]);
    assert_true(id_is(d, "user_id", USER(DAVE)) && id_is(d, "up_to_id", MSG(last_msg)));
    assert_string_equal(str(d, "username"), "dave");
    json_decref(d);
    sse_close(s);                                              /* the connection drops */
    snprintf(last, sizeof(last), "0:%lld", (long long)off[1]); /* the last event she got */

    off[0] = send_message(1, BOB);
    off[1] = send_message(3, CAROL); /* not alice's room */
    off[2] = send_message(1, ALICE);
    off[3] =
        room_event("ConversationUpdated", 1,
                   json_pack("{s:s,s:o}", "title", "Soup club 2", "admin_id", idstr(USER(BOB))));
    off[4] = add_member(1, ERIN, BOB);
    off[5] = send_message(1, ERIN);
    fold();
    s = sse_open(ALICE, last, 600);
    json_decref(expect(s, "message", off[0]));
    d = expect(s, "message", off[2]);
    assert_true(strncmp(str(d, "txn_id"), "txn-", 4) == 0); /* her own */
    json_decref(d);
    d = expect(s, "room_updated", off[3]);
    assert_string_equal(str(d, "title"), "Soup club 2");
    assert_true(id_is(d, "admin_id", USER(BOB)));
    json_decref(d);
    d = expect(s, "member_added", off[4]);
    assert_true(id_is(d, "user_id", USER(ERIN)) && id_is(d, "added_by", USER(BOB)));
    assert_string_equal(str(d, "username"), "erin");
    json_decref(d);
    json_decref(expect(s, "message", off[5]));
    expect_quiet(s);
    sse_close(s);
}

/* Carol's stream: her removal from room 6 is the last she hears of it, live and resumed,
 * while her other rooms go on; added back, she hears it again from her MemberAdded on. */
static void test_stream_removed_member(void **state)
{
    struct sse *s;
    int64_t created, first, removed, after_removal, other, added, again;
    char last[32];
    json_t *d;
    (void)state;

    created = create_room(6, "Short stay", ALICE, (const int[]){ALICE, CAROL, 0});
    fold();
    s = sse_open(CAROL, NULL, 600);
    first = send_message(6, ALICE);
    fold();
    json_decref(expect(s, "message", first));
    removed = remove_member(6, CAROL, ALICE);
    after_removal = send_message(6, ALICE);
    other = send_message(3, BOB);
    fold();
    d = expect(s, "member_removed", removed);
    assert_true(id_is(d, "user_id", USER(CAROL)) && id_is(d, "removed_by", USER(ALICE)));
    json_decref(d);
    json_decref(expect(s, "message", other)); /* not after_removal */
    expect_quiet(s);
    sse_close(s);
    /* resumed from before the removal: the same */
    snprintf(last, sizeof(last), "0:%lld", (long long)first);
    s = sse_open(CAROL, last, 600);
    json_decref(expect(s, "member_removed", removed));
    json_decref(expect(s, "message", other));
    expect_quiet(s);
    sse_close(s);
    /* from the creation: the whole span, still nothing after it */
    snprintf(last, sizeof(last), "0:%lld", (long long)created - 1);
    s = sse_open(CAROL, last, 600);
    d = expect(s, "room_created", created);
    assert_string_equal(str(d, "title"), "Short stay");
    assert_true(id_is(d, "admin_id", USER(ALICE)));
    assert_int_equal(json_array_size(json_object_get(d, "member_ids")), 2);
    json_decref(d);
    json_decref(expect(s, "message", first));
    json_decref(expect(s, "member_removed", removed));
    json_decref(expect(s, "message", other));
    expect_quiet(s);
    /* added back: from her MemberAdded on */
    added = add_member(6, CAROL, ALICE);
    again = send_message(6, ALICE);
    fold();
    json_decref(expect(s, "member_added", added));
    json_decref(expect(s, "message", again));
    expect_quiet(s);
    sse_close(s);
    assert_true(after_removal > removed);
}

/* More than a poll's batch (50) missed: all of it at once, in order, once. */
static void test_stream_catch_up(void **state)
{
    int64_t offs[130];
    struct sse *s;
    char last[32];
    int64_t start_us;
    (void)state;

    offs[0] = send_message(1, BOB);
    fold();
    for (int i = 1; i < 130; i++)
        offs[i] = send_message(1, ALICE + i % 3);
    fold();
    snprintf(last, sizeof(last), "0:%lld", (long long)offs[0]);
    start_us = sp_time_mono_us();
    s = sse_open(ERIN, last, 600);
    for (int i = 1; i < 130; i++) {
        json_t *d = expect(s, "message", offs[i]);
        json_decref(d);
    }
    assert_true(sp_time_mono_us() - start_us < 5000000);
    expect_quiet(s);
    sse_close(s);
}

static void test_stream_errors(void **state)
{
    const char *bad[] = {"Last-Event-ID: 1x", NULL};
    struct sp_test_resp resp = {0};
    const char *headers[] = {auths[ALICE], bad[0], NULL};
    (void)state;

    assert_int_equal(sp_test_http(fx.srv.port, "GET", "/chat/stream", NULL, NULL, &resp), 401);
    sp_test_resp_release(&resp);
    assert_int_equal(sp_test_http(fx.srv.port, "GET", "/chat/stream", headers, NULL, &resp), 400);
    assert_non_null(strstr(resp.body, "Last-Event-ID"));
    sp_test_resp_release(&resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rooms),
        cmocka_unit_test(test_room_access),
        cmocka_unit_test(test_messages_paging),
        cmocka_unit_test(test_unread_and_notifications),
        cmocka_unit_test(test_removed_member),
        cmocka_unit_test(test_stockpot_after),
        cmocka_unit_test(test_stream_live_and_resume),
        cmocka_unit_test(test_stream_removed_member),
        cmocka_unit_test(test_stream_catch_up),
        cmocka_unit_test(test_stream_errors),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
