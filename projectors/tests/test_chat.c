/*
 * Integration tests of the chat folds of the "pg" projection (issue 12, pg_chat.c): rooms,
 * membership spans and read markers, messages, the chat events of GET /chat/stream and
 * message notifications, each log folded one event per batch (the per-event folds) and in
 * one batch (set-wise, pg_fold_set.c) with the same rows; poison chat events; replays and
 * rebuilds. Needs PostgreSQL (pg_virtualenv).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>

#include <cmocka.h>

#include "pgtest.h"
#include "proj/pg.h"
#include "proj/runner.h"
#include "sp/pg_channels.h"

#include "sp/banned.h"

#define USER(n) (PGTEST_CHAT_USER + (n))
#define ROOM(n) (PGTEST_CHAT_ROOM + (n))
#define MSG(n)  (PGTEST_CHAT_MESSAGE + (n))

/* 2026-03-01T12:00:00Z plus the event's number in ms: notification ids depend on time */
#define BASE_TIME_US 1772366400000000LL

static int64_t next_time_us;

static void append(struct pgtest *t, const char *type, int room, int64_t version, json_t *data)
{
    char stream[48];
    struct es_event ev;
    const struct es_event *evs[1] = {&ev};
    struct sp_errbuf eb = {{0}, {0}};

    snprintf(stream, sizeof(stream), "conversation-%lld", ROOM(room));
    es_event_init(&ev);
    assert_int_equal(es_event_make(&ev, type, stream, version, NULL, NULL, NULL, data), 0);
    ev.time_us = next_time_us;
    next_time_us += 1000;
    assert_int_equal(es_log_append(t->log, evs, 1, NULL, &eb), 0);
    es_event_release(&ev);
}

static json_t *idstr(long long id)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", id);
    return json_string(s);
}

/* ConversationCreated of @p room by user @p creator with the users @p members (0-ended). */
static void
created(struct pgtest *t, int room, bool group, const char *title, int creator, const int *members)
{
    json_t *ids = json_array();
    json_t *d;

    for (const int *m = members; *m != 0; m++)
        json_array_append_new(ids, idstr(USER(*m)));
    d = json_pack("{s:o,s:b,s:o,s:o}", "conversation_id", idstr(ROOM(room)), "is_group", group,
                  "creator_id", idstr(USER(creator)), "member_ids", ids);
    if (title != NULL)
        json_object_set_new(d, "title", json_string(title));
    append(t, "ConversationCreated", room, 1, d);
}

static void message(struct pgtest *t, int room, int64_t ver, int msg, int sender)
{
    char content[32], txn[16];

    snprintf(content, sizeof(content), "message %d: Grüße", msg);
    snprintf(txn, sizeof(txn), "txn-%d", msg);
    append(t, "MessageSent", room, ver,
           json_pack("{s:o,s:o,s:o,s:s,s:s}", "conversation_id", idstr(ROOM(room)), "message_id",
                     idstr(MSG(msg)), "sender_id", idstr(USER(sender)), "content", content,
                     "txn_id", txn));
}

static void read_mark(struct pgtest *t, int room, int64_t ver, int user, int up_to_msg)
{
    append(t, "MessagesRead", room, ver,
           json_pack("{s:o,s:o,s:o}", "conversation_id", idstr(ROOM(room)), "user_id",
                     idstr(USER(user)), "up_to_id", idstr(MSG(up_to_msg))));
}

static void member(struct pgtest *t, const char *type, int room, int64_t ver, int user, int by)
{
    bool added = strcmp(type, "MemberAdded") == 0;

    append(t, type, room, ver,
           json_pack("{s:o,s:o,s:o}", "conversation_id", idstr(ROOM(room)), "user_id",
                     idstr(USER(user)), added ? "added_by" : "removed_by", idstr(USER(by))));
}

/* The log of a group's life (room 1) and a 1:1 room (room 2); offsets in the comments. */
static void append_lifecycle(struct pgtest *t)
{
    next_time_us = BASE_TIME_US;
    created(t, 1, true, "Soup club", 1, (const int[]){1, 2, 3, 0}); /* 0 */
    message(t, 1, 2, 1, 1);                 /* 1: 2 and 3 get a notification of m1 */
    message(t, 1, 3, 2, 2);                 /* 2: 1 gets one of m2; 3's moves to m2 */
    read_mark(t, 1, 4, 3, 2);               /* 3: 3 read it all: 3's is done */
    message(t, 1, 5, 3, 1);                 /* 4: 2's moves to m3; 3 gets a new one */
    member(t, "MemberAdded", 1, 6, 4, 1);   /* 5: 4 joins, having read up to m3 */
    message(t, 1, 7, 4, 4);                 /* 6: 1's, 2's and 3's move to m4 */
    member(t, "MemberRemoved", 1, 8, 2, 1); /* 7: 2 is removed: 2's is done */
    message(t, 1, 9, 5, 3);                 /* 8: 1's moves to m5; 4 gets one; 2 nothing */
    append(t, "ConversationUpdated", 1, 10,
           json_pack("{s:o,s:s,s:o}", "conversation_id", idstr(ROOM(1)), "title", "Soup club 2",
                     "admin_id", idstr(USER(3))));         /* 9 */
    member(t, "MemberAdded", 1, 11, 2, 3);                 /* 10: 2 is back, a new span */
    read_mark(t, 1, 12, 1, 4);                             /* 11: 1 read up to m4: 1's (m5) stays */
    created(t, 2, false, NULL, 5, (const int[]){5, 6, 0}); /* 12 */
    message(t, 2, 2, 6, 6);                                /* 13 */
    member(t, "MemberAdded", 1, 13, 3, 3); /* 14: already a member: only the version */
}

/* The rows of the lifecycle, whichever way it was folded. */
static void check_lifecycle(PGconn *conn)
{
    pgtest_check(conn,
                 "SELECT string_agg(concat_ws(':', id - 7304000000000000, is_group, "
                 "coalesce(title, '-'), coalesce((admin_id - 7303000000000000)::text, '-'), "
                 "creator_id - 7303000000000000, version, last_message_id - 7305000000000000, "
                 "activity_id - 7305000000000000, last_activity_at = created_at), ',' "
                 "ORDER BY id) FROM stockpot.conversations",
                 "1:t:Soup club 2:3:1:13:5:5:f,2:f:-:-:5:2:6:6:f");
    /* spans: user@joined-left:read marker (message number) */
    pgtest_check(conn,
                 "SELECT string_agg((user_id - 7303000000000000) || '@' || joined_offset || '-' "
                 "|| coalesce(left_offset::text, '') || ':' || greatest(read_up_to - "
                 "7305000000000000, 0), ',' ORDER BY conversation_id, user_id, joined_offset) "
                 "FROM stockpot.conversation_members",
                 "1@0-:4,2@0-7:0,2@10-:5,3@0-:2,4@5-:3,5@12-:0,6@12-:0");
    pgtest_check(conn,
                 "SELECT string_agg((id - 7305000000000000) || ':' || (sender_id - "
                 "7303000000000000) || ':' || content || ':' || txn_id || '@' || \"offset\", ',' "
                 "ORDER BY id) FROM stockpot.messages",
                 "1:1:message 1: Grüße:txn-1@1,2:2:message 2: Grüße:txn-2@2,"
                 "3:1:message 3: Grüße:txn-3@4,4:4:message 4: Grüße:txn-4@6,"
                 "5:3:message 5: Grüße:txn-5@8,6:6:message 6: Grüße:txn-6@13");
    /* the added-again member is no new event; the event data is the payload */
    pgtest_check(conn,
                 "SELECT string_agg(\"offset\" || kind || coalesce(':' || (message_id - "
                 "7305000000000000), ''), ',' ORDER BY \"offset\") FROM stockpot.chat_events",
                 "0room_created,1message:1,2message:2,3read,4message:3,5member_added,"
                 "6message:4,7member_removed,8message:5,9room_updated,10member_added,11read,"
                 "12room_created,13message:6");
    pgtest_check(conn,
                 "SELECT data->>'admin_id' = '7303000000000001' AND data->>'title' = 'Soup club' "
                 "AND jsonb_array_length(data->'member_ids') = 3 FROM stockpot.chat_events "
                 "WHERE \"offset\" = 0",
                 "t");
    pgtest_check(conn, "SELECT data ? 'admin_id' FROM stockpot.chat_events WHERE \"offset\" = 12",
                 "f");
    /* message notifications: recipient:message(actor)@offset, pending or done */
    pgtest_check(conn,
                 "SELECT string_agg((user_id - 7303000000000000) || ':m' || (message_id - "
                 "7305000000000000) || '(' || (actor_id - 7303000000000000) || ')@' || \"offset\" "
                 "|| CASE WHEN pending THEN '' ELSE ' done' END, ',' ORDER BY user_id, id) "
                 "FROM stockpot.notifications WHERE kind = 'message'",
                 "1:m5(3)@8,2:m4(4)@6 done,3:m2(2)@2 done,3:m4(4)@6,4:m5(3)@8,5:m6(6)@13");
    /* each notification's id is the one of its (latest) event, and names its room */
    pgtest_check(conn,
                 "SELECT count(*) FROM stockpot.notifications WHERE id <> "
                 "(((floor(extract(epoch FROM created_at) * 1000)::bigint - 1704067200000) << 22) "
                 "| ((partition & 1023)::bigint << 12) | (\"offset\" & 4095)) "
                 "OR conversation_id IS NULL",
                 "0");
    pgtest_check(conn, "SELECT count(*) FROM stockpot.dead_letters", "0");
}

/* The lifecycle folded one event per batch and in one batch: the same rows. */
static void test_lifecycle(void **state)
{
    struct pgtest t, u;
    char one[40], set[40];
    struct sp_errbuf eb = {{0}, {0}};
    (void)state;

    pgtest_setup(&t);
    append_lifecycle(&t);
    pgtest_catch_up(&t, 1);
    check_lifecycle(t.conn);
    pgtest_setup_db(&u);
    u.log = t.log;
    pgtest_catch_up(&u, 100);
    check_lifecycle(u.conn);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), one, sizeof(one), &eb), 0);
    assert_int_equal(proj_checksum(u.conn, proj_pg_projection(), set, sizeof(set), &eb), 0);
    assert_string_equal(one, set);
    /* one value of seq per batch: 15 batches of one, and one batch */
    pgtest_check(t.conn, "SELECT count(DISTINCT seq) FROM stockpot.chat_events", "14");
    pgtest_check(u.conn, "SELECT count(DISTINCT seq) FROM stockpot.chat_events", "1");
    u.log = NULL;
    pgtest_teardown(&u);
    pgtest_teardown(&t);
}

/* Poison chat events are dead-lettered, one by one and set-wise alike, and the events
 * around them folded. */
static void check_poison(PGconn *conn)
{
    pgtest_check(conn,
                 "SELECT string_agg(\"offset\" || ':' || event_type || ':' || "
                 "split_part(error, E'\\n', 1), E'\\n' ORDER BY \"offset\") "
                 "FROM stockpot.dead_letters",
                 "0:MessageSent:conversation_id: conversation 7304000000000009 not found\n"
                 "2:MessageSent:sender_id: user 7303000000000005 is not a member of "
                 "conversation 7304000000000003\n"
                 "3:MemberRemoved:user_id: user 7303000000000005 is not a member of "
                 "conversation 7304000000000003\n"
                 "4:MessagesRead:user_id: user 7303000000000005 is not a member of "
                 "conversation 7304000000000003\n"
                 "5:ConversationUpdated:conversation_id: conversation 7304000000000009 not found\n"
                 "6:ConversationCreated:23505: postgresql: ERROR:  duplicate key value violates "
                 "unique constraint \"conversations_pkey\"\n"
                 "9:MessageSent:23505: postgresql: ERROR:  duplicate key value violates unique "
                 "constraint \"messages_pkey\"\n"
                 "10:MemberAdded:conversation_id: conversation 7304000000000009 not found\n"
                 "11:MessagesRead:conversation_id: conversation 7304000000000009 not found");
    pgtest_check(conn,
                 "SELECT string_agg(\"offset\" || kind, ',' ORDER BY \"offset\") "
                 "FROM stockpot.chat_events",
                 "1room_created,7message,12read");
    pgtest_check(conn,
                 "SELECT version || ':' || (last_message_id - 7305000000000000) "
                 "FROM stockpot.conversations",
                 "9:1");
    pgtest_check(conn, "SELECT count(*) FROM stockpot.messages", "1");
    pgtest_check(conn,
                 "SELECT string_agg((user_id - 7303000000000000) || ':' || pending, ',' ORDER BY "
                 "user_id) FROM stockpot.notifications",
                 "1:false");
}

static void test_poison(void **state)
{
    struct pgtest t, u;
    (void)state;

    pgtest_setup(&t);
    next_time_us = BASE_TIME_US;
    message(&t, 9, 2, 1, 1);                                   /* 0: unknown room */
    created(&t, 3, true, "Poison", 1, (const int[]){1, 2, 0}); /* 1 */
    message(&t, 3, 2, 1, 5);                                   /* 2: not a member */
    member(&t, "MemberRemoved", 3, 3, 5, 1);                   /* 3: not a member */
    read_mark(&t, 3, 4, 5, 1);                                 /* 4: not a member */
    append(&t, "ConversationUpdated", 9, 2,
           json_pack("{s:o,s:s}", "conversation_id", idstr(ROOM(9)), "title", "x")); /* 5 */
    created(&t, 3, true, "Again", 1, (const int[]){1, 2, 0});                        /* 6: exists */
    message(&t, 3, 5, 1, 2);                                                         /* 7 */
    member(&t, "MemberAdded", 3, 6, 2, 1); /* 8: a member already */
    message(&t, 3, 7, 1, 1);               /* 9: message id taken */
    member(&t, "MemberAdded", 9, 3, 4, 1); /* 10: unknown room */
    read_mark(&t, 9, 4, 1, 1);             /* 11: unknown room */
    read_mark(&t, 3, 9, 1, 1);             /* 12: ends 1's */
    pgtest_catch_up(&t, 1);
    check_poison(t.conn);
    pgtest_setup_db(&u);
    u.log = t.log;
    pgtest_catch_up(&u, 100);
    check_poison(u.conn);
    u.log = NULL;
    pgtest_teardown(&u);
    pgtest_teardown(&t);
}

/* Chat events of every (partition, offset) with their seq, in log order. Owned. */
static char *seqs(PGconn *conn)
{
    return pgtest_value(conn, "SELECT string_agg(partition || ':' || \"offset\" || '=' || seq, ',' "
                              "ORDER BY partition, \"offset\") FROM stockpot.chat_events");
}

/* A log folded in two runs (a crash between batches) equals it folded at once; a catch-up
 * at the end changes nothing; seq grows with the batches; a rebuild gives the same
 * checksum and keeps every seq, and what is folded after it comes later. */
static void test_replay_and_rebuild(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_batch_stats st;
    struct proj_runner *r;
    struct pgtest t, u;
    char a[40], b[40], c[40];
    int64_t applied = 0;
    char *before, *after;
    (void)state;

    pgtest_setup(&t);
    pgtest_append_chat(&t, 3, 6, 10, 400);
    r = pgtest_runner_new(&t, 37, PROJ_POISON_DEAD_LETTER, NULL);
    assert_int_equal(proj_runner_step(r, &applied, &eb), 0);
    assert_int_equal(applied, 37);
    proj_runner_free(r); /* as if the projector died after its first batch */
    pgtest_catch_up(&t, 50);
    pgtest_catch_up(&t, 50); /* at the end: nothing */
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.chat_events", "400");
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.dead_letters", "0");
    /* seq never falls along the log (one partition), and moves with each batch */
    pgtest_check(t.conn,
                 "SELECT count(*) FROM stockpot.chat_events x JOIN stockpot.chat_events y "
                 "ON y.\"offset\" = x.\"offset\" + 1 WHERE y.seq < x.seq",
                 "0");
    assert_true(pgtest_count(t.conn, "SELECT count(DISTINCT seq) FROM stockpot.chat_events") >= 9);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), a, sizeof(a), &eb), 0);

    pgtest_setup_db(&u);
    u.log = t.log;
    pgtest_catch_up(&u, 1000);
    assert_int_equal(proj_checksum(u.conn, proj_pg_projection(), b, sizeof(b), &eb), 0);
    assert_string_equal(a, b);

    before = seqs(t.conn);
    assert_int_equal(proj_rebuild(t.conn, proj_pg_projection(), t.log, 64, PROJ_POISON_DEAD_LETTER,
                                  false, &st, &eb),
                     0);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), c, sizeof(c), &eb), 0);
    assert_string_equal(a, c);
    after = seqs(t.conn);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* events folded after the rebuild come after every earlier one */
    next_time_us = BASE_TIME_US;
    created(&t, 50, true, "after", 1, (const int[]){1, 2, 0});
    pgtest_catch_up(&t, 50);
    pgtest_check(t.conn,
                 "SELECT seq > (SELECT max(seq) FROM stockpot.chat_events WHERE conversation_id "
                 "<> 7304000000000050) FROM stockpot.chat_events "
                 "WHERE conversation_id = 7304000000000050",
                 "t");
    u.log = NULL;
    pgtest_teardown(&u);
    pgtest_teardown(&t);
}

static char last_payload[8192]; /* of the last NOTIFY notifies_heard counted */

/* NOTIFYs of @p channel that @p conn (LISTENing) receives within @p wait_ms. */
static int notifies_heard(PGconn *conn, const char *channel, int wait_ms)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    PGnotify *n;
    int count = 0;

    for (int left_ms = wait_ms; left_ms > 0; left_ms -= 50) {
        assert_int_equal(PQconsumeInput(conn), 1);
        while ((n = PQnotifies(conn)) != NULL) {
            if (strcmp(n->relname, channel) == 0) {
                count++;
                snprintf(last_payload, sizeof(last_payload), "%s", n->extra);
            }
            PQfreemem(n);
        }
        assert_true(poll(&pfd, 1, 50) >= 0);
    }
    return count;
}

/* A batch with chat events NOTIFYs the chat streams once at commit; a message also the
 * notification streams; a batch of only poison tells nobody. */
static void test_notify(void **state)
{
    struct pgtest t;
    (void)state;

    pgtest_setup(&t);
    free(pgtest_value(t.conn, "LISTEN " SP_PG_CHANNEL_CHAT));
    free(pgtest_value(t.conn, "LISTEN " SP_PG_CHANNEL_NOTIFICATIONS));
    next_time_us = BASE_TIME_US;
    created(&t, 1, true, "n", 1, (const int[]){1, 2, 0});
    pgtest_catch_up(&t, 100);
    assert_int_equal(notifies_heard(t.conn, SP_PG_CHANNEL_CHAT, 400), 1);
    /* the payload names the room written, for the query API's WebSockets of that room */
    char *room =
        pgtest_value(t.conn, "SELECT string_agg(id::text, ',') FROM stockpot.conversations");
    assert_string_equal(last_payload, room);
    free(room);
    message(&t, 1, 2, 1, 1);
    message(&t, 1, 3, 2, 2);
    pgtest_catch_up(&t, 100);
    free(pgtest_value(t.conn, "SELECT 1")); /* a round trip: the NOTIFYs arrive before it */
    assert_int_equal(notifies_heard(t.conn, SP_PG_CHANNEL_CHAT, 400), 1);
    message(&t, 9, 2, 3, 1); /* unknown room */
    pgtest_catch_up(&t, 100);
    assert_int_equal(notifies_heard(t.conn, SP_PG_CHANNEL_CHAT, 400), 0);
    message(&t, 1, 4, 3, 1);
    pgtest_catch_up(&t, 100);
    free(pgtest_value(t.conn, "SELECT 1"));
    assert_int_equal(notifies_heard(t.conn, SP_PG_CHANNEL_NOTIFICATIONS, 400), 1);
    pgtest_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_poison),
        cmocka_unit_test(test_replay_and_rebuild),
        cmocka_unit_test(test_notify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
