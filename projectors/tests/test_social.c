/*
 * Integration tests of the social folds of the "pg" projection (issue 4): follows, likes,
 * comments and their counters, notifications, read marks and sessions, over a generated
 * embedded log (needs PostgreSQL: run under pg_virtualenv).
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
#include "sp/pg_channels.h"
#include "proj/runner.h"

#include "sp/banned.h"

#define USER_BASE    7301234567890000LL
#define RECIPE_BASE  7301234567891000LL
#define COMMENT_BASE 7301234567892000LL
#define SESSION_BASE 7301234567893000LL

/* Every recipe's counters, "<recipe>:<likes>/<comments>" by id (recipe = id - RECIPE_BASE). */
#define SQL_RECIPE_COUNTERS                                                                        \
    "SELECT string_agg(id - 7301234567891000 || ':' || like_count || '/' || comment_count, ','"    \
    " ORDER BY id) FROM stockpot.recipes"
/* Every user's recipe_count, by id. */
#define SQL_RECIPE_COUNTS                                                                          \
    "SELECT string_agg(recipe_count::text, ',' ORDER BY id) FROM stockpot.users"

struct id {
    char s[24];
};

/* When non-zero, the time of every appended event (µs since the epoch), so that two logs
 * holding the same events give the same rows. */
static int64_t fixed_time_us;

static struct id mkid(long long base, int n)
{
    struct id id;
    snprintf(id.s, sizeof(id.s), "%lld", base + n);
    return id;
}

static void append(struct pgtest *t,
                   const char *type,
                   const char *category,
                   struct id id,
                   int64_t version,
                   json_t *data)
{
    char stream[48];
    struct es_event ev;
    const struct es_event *evs[1] = {&ev};
    struct sp_errbuf eb = {{0}, {0}};

    snprintf(stream, sizeof(stream), "%s-%s", category, id.s);
    es_event_init(&ev);
    assert_int_equal(es_event_make(&ev, type, stream, version, NULL, NULL, NULL, data), 0);
    if (fixed_time_us != 0)
        ev.time_us = fixed_time_us;
    assert_int_equal(es_log_append(t->log, evs, 1, NULL, &eb), 0);
    es_event_release(&ev);
}

static void user_registered(struct pgtest *t, int u)
{
    struct id id = mkid(USER_BASE, u);
    char name[16];
    snprintf(name, sizeof(name), "user%d", u);
    append(t, "UserRegistered", "user", id, 1,
           json_pack("{s:s,s:s,s:s,s:s}", "user_id", id.s, "username", name, "email",
                     "u@example.com", "password_hash", "$argon2id$v=19$secret"));
}

/* UserFollowed or UserUnfollowed of @p a following @p b, at version @p ver of a's stream. */
static void follow(struct pgtest *t, const char *type, int a, int b, int64_t ver)
{
    struct id ida = mkid(USER_BASE, a), idb = mkid(USER_BASE, b);
    append(t, type, "user", ida, ver,
           json_pack("{s:s,s:s}", "user_id", ida.s, "followee_id", idb.s));
}

/* RecipeLiked or RecipeUnliked of recipe @p r (by @p author) by @p u. */
static void like(struct pgtest *t, const char *type, int u, int r, int author, int64_t ver)
{
    struct id idu = mkid(USER_BASE, u), idr = mkid(RECIPE_BASE, r), ida = mkid(USER_BASE, author);
    append(t, type, "user", idu, ver,
           json_pack("{s:s,s:s,s:s}", "user_id", idu.s, "recipe_id", idr.s, "recipe_author_id",
                     ida.s));
}

static void comment(struct pgtest *t, int c, int r, int u, int author)
{
    struct id idc = mkid(COMMENT_BASE, c), idr = mkid(RECIPE_BASE, r);
    struct id idu = mkid(USER_BASE, u), ida = mkid(USER_BASE, author);
    append(t, "RecipeCommented", "comment", idc, 1,
           json_pack("{s:s,s:s,s:s,s:s,s:s}", "comment_id", idc.s, "recipe_id", idr.s, "user_id",
                     idu.s, "content", "好吃! tasty", "recipe_author_id", ida.s));
}

static void comment_deleted(struct pgtest *t, int c, int r, int author)
{
    struct id idc = mkid(COMMENT_BASE, c), idr = mkid(RECIPE_BASE, r);
    struct id ida = mkid(USER_BASE, author);
    append(t, "CommentDeleted", "comment", idc, 2,
           json_pack("{s:s,s:s,s:s}", "comment_id", idc.s, "recipe_id", idr.s, "recipe_author_id",
                     ida.s));
}

static void recipe_created(struct pgtest *t, int r, int author)
{
    struct id idr = mkid(RECIPE_BASE, r), ida = mkid(USER_BASE, author);
    append(t, "RecipeCreated", "recipe", idr, 1,
           json_pack("{s:s,s:s,s:s,s:s,s:[s],s:[s],s:[s],s:[]}", "recipe_id", idr.s, "author_id",
                     ida.s, "title", "soup", "description", "", "ingredients", "water", "steps",
                     "boil", "tags", "汤", "image_media_ids"));
}

static void recipe_deleted(struct pgtest *t, int r, int64_t ver)
{
    append(t, "RecipeDeleted", "recipe", mkid(RECIPE_BASE, r), ver, json_object());
}

/* Every counter equals its count over the rows; no self-notification; ids as specified. */
static void assert_invariants(PGconn *conn)
{
    pgtest_check(
        conn,
        "SELECT count(*) FROM stockpot.users u WHERE "
        "follower_count <> (SELECT count(*) FROM stockpot.follows WHERE followee_id = u.id) "
        "OR following_count <> (SELECT count(*) FROM stockpot.follows "
        "WHERE follower_id = u.id) "
        "OR recipe_count <> (SELECT count(*) FROM stockpot.recipes WHERE author_id = u.id)",
        "0");
    pgtest_check(conn,
                 "SELECT count(*) FROM stockpot.recipes r WHERE "
                 "like_count <> (SELECT count(*) FROM stockpot.likes WHERE recipe_id = r.id) "
                 "OR comment_count <> (SELECT count(*) FROM stockpot.comments "
                 "WHERE recipe_id = r.id)",
                 "0");
    pgtest_check(conn, "SELECT count(*) FROM stockpot.notifications WHERE user_id = actor_id", "0");
    pgtest_check(conn,
                 "SELECT count(*) FROM stockpot.notifications WHERE id <> "
                 "(((floor(extract(epoch FROM created_at) * 1000)::bigint - 1704067200000) << 22) "
                 "| ((partition & 1023)::bigint << 12) | (\"offset\" & 4095))",
                 "0");
    pgtest_check(conn, "SELECT count(*) FROM stockpot.dead_letters", "0");
    /* the feed holds exactly each live recipe for its author and the author's followers */
    pgtest_check(conn,
                 "WITH want AS (SELECT author_id AS u, id AS r FROM stockpot.recipes UNION "
                 "SELECT f.follower_id, r.id FROM stockpot.follows f JOIN stockpot.recipes r "
                 "ON r.author_id = f.followee_id), "
                 "got AS (SELECT user_id AS u, recipe_id AS r FROM stockpot.feed_entries) "
                 "SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT SELECT * FROM got) a) "
                 "|| '/' || (SELECT count(*) FROM (SELECT * FROM got EXCEPT SELECT * FROM want) b)",
                 "0/0");
}

static void test_follows(void **state)
{
    struct pgtest t;
    (void)state;

    pgtest_setup(&t);
    for (int u = 1; u <= 3; u++)
        user_registered(&t, u);            /* offsets 0-2 */
    follow(&t, "UserFollowed", 1, 2, 2);   /* 3: notification to 2 */
    follow(&t, "UserFollowed", 1, 2, 3);   /* 4: repeat, no change */
    follow(&t, "UserFollowed", 3, 2, 2);   /* 5: notification to 2 */
    follow(&t, "UserFollowed", 2, 1, 2);   /* 6: notification to 1 */
    follow(&t, "UserFollowed", 1, 4, 4);   /* 7: user 4 is not registered yet */
    follow(&t, "UserUnfollowed", 1, 2, 5); /* 8 */
    follow(&t, "UserUnfollowed", 1, 3, 6); /* 9: not a follow, no change */
    pgtest_catch_up(&t, 3);
    pgtest_check(t.conn,
                 "SELECT string_agg(follower_id - 7301234567890000 || '>' || "
                 "(followee_id - 7301234567890000), ',' ORDER BY follower_id, followee_id) "
                 "FROM stockpot.follows",
                 "1>4,2>1,3>2");
    pgtest_check(t.conn,
                 "SELECT string_agg(id - 7301234567890000 || ':' || follower_count || '/' || "
                 "following_count || 'v' || version, ',' ORDER BY id) FROM stockpot.users",
                 "1:1/1v6,2:1/1v2,3:0/1v2");
    /* the followee registered after being followed starts with the follow counted */
    user_registered(&t, 4);
    pgtest_catch_up(&t, 100);
    pgtest_check(t.conn,
                 "SELECT follower_count || '/' || following_count FROM stockpot.users "
                 "WHERE id = 7301234567890004",
                 "1/0");
    /* unfollow leaves the notifications; the repeat made none */
    pgtest_check(t.conn,
                 "SELECT string_agg(user_id - 7301234567890000 || ':' || kind || ':' || "
                 "(actor_id - 7301234567890000) || ':' || coalesce(recipe_id::text, '-') || ':' "
                 "|| coalesce(comment_id::text, '-') || '@' || partition || '/' || \"offset\", ',' "
                 "ORDER BY \"offset\") FROM stockpot.notifications",
                 "2:follow:1:-:-@0/3,2:follow:3:-:-@0/5,1:follow:2:-:-@0/6,4:follow:1:-:-@0/7");
    assert_invariants(t.conn);
    pgtest_teardown(&t);
}

static void test_likes_comments(void **state)
{
    struct pgtest t;
    (void)state;

    pgtest_setup(&t);
    user_registered(&t, 1);
    user_registered(&t, 2);
    recipe_created(&t, 1, 1);
    like(&t, "RecipeLiked", 2, 1, 1, 2);   /* notification to 1 */
    like(&t, "RecipeLiked", 2, 1, 1, 3);   /* repeat: nothing */
    like(&t, "RecipeLiked", 1, 1, 1, 2);   /* own recipe: no notification */
    like(&t, "RecipeUnliked", 2, 1, 1, 4); /* notification stays */
    like(&t, "RecipeUnliked", 2, 1, 1, 5); /* repeat: nothing */
    comment(&t, 1, 1, 2, 1);               /* notification to 1 */
    comment(&t, 2, 1, 1, 1);               /* own recipe: none */
    comment_deleted(&t, 1, 1, 1);
    comment_deleted(&t, 1, 1, 1); /* repeat: nothing */
    pgtest_catch_up(&t, 2);
    pgtest_check(t.conn, "SELECT like_count || '/' || comment_count FROM stockpot.recipes", "1/1");
    pgtest_check(t.conn, "SELECT user_id - 7301234567890000 FROM stockpot.likes", "1");
    pgtest_check(t.conn,
                 "SELECT id - 7301234567892000 || ':' || (user_id - 7301234567890000) || ':' || "
                 "content FROM stockpot.comments",
                 "2:1:好吃! tasty");
    pgtest_check(t.conn,
                 "SELECT string_agg(kind || ':' || (actor_id - 7301234567890000) || ':' || "
                 "(recipe_id - 7301234567891000) || ':' || "
                 "coalesce((comment_id - 7301234567892000)::text, '-'), ',' ORDER BY id) "
                 "FROM stockpot.notifications WHERE user_id = 7301234567890001",
                 "like:2:1:-,comment:2:1:1");
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.notifications", "2");

    /* likes and comments before their recipe is created are counted; a deleted recipe's
     * likes and comments stay (facts of the likers' and commenters' streams, removed only
     * by their own events) and its author's recipe_count follows */
    like(&t, "RecipeLiked", 2, 2, 1, 6);
    recipe_created(&t, 2, 1);
    recipe_created(&t, 3, 2);
    like(&t, "RecipeLiked", 1, 3, 2, 3);
    comment(&t, 3, 3, 1, 2);
    comment(&t, 4, 3, 2, 2);
    pgtest_catch_up(&t, 100);
    pgtest_check(t.conn, SQL_RECIPE_COUNTERS, "1:1/1,2:1/0,3:1/2");
    pgtest_check(t.conn, SQL_RECIPE_COUNTS, "2,1");
    recipe_deleted(&t, 3, 2);
    pgtest_catch_up(&t, 100);
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.recipes WHERE id = 7301234567891003", "0");
    pgtest_check(t.conn,
                 "SELECT count(*) FROM stockpot.recipe_tags "
                 "WHERE recipe_id = 7301234567891003",
                 "0");
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.likes WHERE recipe_id = 7301234567891003",
                 "1");
    pgtest_check(t.conn,
                 "SELECT count(*) FROM stockpot.comments WHERE recipe_id = 7301234567891003", "2");
    pgtest_check(t.conn, SQL_RECIPE_COUNTS, "2,0");
    /* notifications are kept: like of 1 and comment of 1 on recipe 3 */
    pgtest_check(t.conn,
                 "SELECT count(*) FROM stockpot.notifications WHERE recipe_id = 7301234567891003",
                 "2");
    /* a like and a comment deletion applied after the recipe row is gone touch no counter */
    like(&t, "RecipeLiked", 2, 3, 2, 7);
    comment_deleted(&t, 4, 3, 2);
    pgtest_catch_up(&t, 100);
    pgtest_check(t.conn, SQL_RECIPE_COUNTERS, "1:1/1,2:1/0");
    pgtest_check(t.conn,
                 "SELECT (SELECT count(*) FROM stockpot.likes WHERE recipe_id = 7301234567891003) "
                 "|| '/' || (SELECT count(*) FROM stockpot.comments "
                 "WHERE recipe_id = 7301234567891003)",
                 "2/1");
    assert_invariants(t.conn);
    pgtest_teardown(&t);
}

static void notifications_read(struct pgtest *t, int u, const char *up_to, int64_t ver)
{
    struct id id = mkid(USER_BASE, u);
    append(t, "NotificationsRead", "user", id, ver,
           json_pack("{s:s,s:s}", "user_id", id.s, "up_to_id", up_to));
}

/* NOTIFYs of SP_PG_CHANNEL_NOTIFICATIONS that @p conn (LISTENing) receives: waits up to
 * @p first_ms for the first one (they arrive asynchronously after the commit), then
 * 200 ms for more. */
static int notifies_heard(PGconn *conn, int first_ms)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    int count = 0, left_ms = first_ms;
    PGnotify *n;

    for (;;) {
        assert_int_equal(PQconsumeInput(conn), 1);
        while ((n = PQnotifies(conn)) != NULL) {
            assert_string_equal(n->relname, SP_PG_CHANNEL_NOTIFICATIONS);
            PQfreemem(n);
            if (count++ == 0)
                left_ms = 200;
        }
        if (left_ms <= 0)
            return count;
        assert_true(poll(&pfd, 1, 50) >= 0);
        left_ms -= 50;
    }
}

/* A batch that adds notifications NOTIFYs the query API's streams once, at commit; one
 * that adds none (a like of one's own recipe) does not. */
static void test_notify_on_commit(void **state)
{
    struct pgtest t;
    (void)state;

    pgtest_setup(&t);
    free(pgtest_value(t.conn, "LISTEN " SP_PG_CHANNEL_NOTIFICATIONS));
    user_registered(&t, 1);
    user_registered(&t, 2);
    recipe_created(&t, 1, 1);
    like(&t, "RecipeLiked", 1, 1, 1, 2); /* own recipe: no notification */
    pgtest_catch_up(&t, 100);
    assert_int_equal(notifies_heard(t.conn, 300), 0);
    like(&t, "RecipeLiked", 2, 1, 1, 2);
    follow(&t, "UserFollowed", 2, 1, 3);
    pgtest_catch_up(&t, 100); /* one batch, two notifications: one NOTIFY */
    assert_int_equal(notifies_heard(t.conn, 5000), 1);
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.notifications", "2");
    pgtest_teardown(&t);
}

static void test_notifications_read(void **state)
{
    struct pgtest t;
    (void)state;

    pgtest_setup(&t);
    user_registered(&t, 1);
    notifications_read(&t, 1, "7345678901234567", 2);
    pgtest_catch_up(&t, 100);
    pgtest_check(t.conn, "SELECT user_id || ':' || up_to_id FROM stockpot.notification_reads",
                 "7301234567890001:7345678901234567");
    notifications_read(&t, 1, "1000", 3); /* an older mark never moves it back */
    pgtest_catch_up(&t, 100);
    pgtest_check(t.conn, "SELECT up_to_id FROM stockpot.notification_reads", "7345678901234567");
    notifications_read(&t, 1, "7345678901234999", 4);
    pgtest_catch_up(&t, 100);
    pgtest_check(t.conn,
                 "SELECT up_to_id || 'v' || (SELECT version FROM stockpot.users) "
                 "FROM stockpot.notification_reads",
                 "7345678901234999v4");
    assert_invariants(t.conn);
    pgtest_teardown(&t);
}

#define HASH1 "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
#define HASH2 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static void test_sessions(void **state)
{
    struct pgtest t;
    struct id s1 = mkid(SESSION_BASE, 1), s2 = mkid(SESSION_BASE, 2), s9 = mkid(SESSION_BASE, 9);
    struct id u1 = mkid(USER_BASE, 1);
    (void)state;

    pgtest_setup(&t);
    append(&t, "SessionStarted", "session", s1, 1,
           json_pack("{s:s,s:s,s:s,s:s}", "session_id", s1.s, "user_id", u1.s, "refresh_hash",
                     HASH1, "expires_at", "2030-01-01T00:00:00.000000Z"));
    append(&t, "SessionStarted", "session", s2, 1,
           json_pack("{s:s,s:s,s:s,s:s}", "session_id", s2.s, "user_id", u1.s, "refresh_hash",
                     HASH1, "expires_at", "2030-01-02T00:00:00.000000Z"));
    append(&t, "SessionRefreshed", "session", s1, 2,
           json_pack("{s:s,s:s,s:s}", "session_id", s1.s, "refresh_hash", HASH2, "expires_at",
                     "2030-02-01T12:30:00.250000Z"));
    append(&t, "SessionRevoked", "session", s2, 2,
           json_pack("{s:s,s:s}", "session_id", s2.s, "reason", "logout"));
    /* an unknown session (its start not in this view) changes nothing */
    append(&t, "SessionRevoked", "session", s9, 2,
           json_pack("{s:s,s:s}", "session_id", s9.s, "reason", "refresh_token_reuse"));
    pgtest_catch_up(&t, 2);
    pgtest_check(t.conn,
                 "SELECT string_agg(id - 7301234567893000 || ':' || (user_id - 7301234567890000) "
                 "|| ':' || to_char(expires_at, 'YYYY-MM-DD HH24:MI:SS.US') || ':' || revoked, "
                 "',' ORDER BY id) FROM stockpot.sessions",
                 "1:1:2030-02-01 12:30:00.250000:false,2:1:2030-01-02 00:00:00.000000:true");
    pgtest_check(t.conn,
                 "SELECT count(*) FROM stockpot.sessions t WHERE t::text LIKE '%" HASH1 "%' "
                 "OR t::text LIKE '%" HASH2 "%'",
                 "0");
    pgtest_check(t.conn,
                 "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'stockpot' "
                 "AND column_name LIKE '%hash%'",
                 "0");
    assert_invariants(t.conn);
    pgtest_teardown(&t);
}

/* Payloads of the wrong shape are poison: dead-lettered naming the field, others go on. */
static void test_bad_shapes(void **state)
{
    struct pgtest t;
    struct id u1 = mkid(USER_BASE, 1), u2 = mkid(USER_BASE, 2), c1 = mkid(COMMENT_BASE, 1);
    struct id s1 = mkid(SESSION_BASE, 1);
    (void)state;

    pgtest_setup(&t);
    user_registered(&t, 1);
    append(&t, "UserFollowed", "user", u1, 2, json_pack("{s:s}", "user_id", u1.s));
    append(&t, "RecipeLiked", "user", u2, 1,
           json_pack("{s:s,s:s,s:s}", "user_id", u1.s, "recipe_id", "7301234567891001",
                     "recipe_author_id", u2.s));
    append(&t, "RecipeCommented", "comment", c1, 1,
           json_pack("{s:s,s:s,s:s,s:i,s:s}", "comment_id", c1.s, "recipe_id", "7301234567891001",
                     "user_id", u1.s, "content", 7, "recipe_author_id", u2.s));
    append(&t, "SessionStarted", "session", s1, 1,
           json_pack("{s:s,s:s,s:s,s:s}", "session_id", s1.s, "user_id", u1.s, "refresh_hash",
                     HASH1, "expires_at", "tomorrow"));
    append(&t, "NotificationsRead", "user", u1, 2,
           json_pack("{s:s,s:i}", "user_id", u1.s, "up_to_id", 12));
    follow(&t, "UserFollowed", 1, 2, 2);
    pgtest_catch_up(&t, 100);
    pgtest_check(t.conn,
                 "SELECT string_agg(\"offset\" || ':' || event_type, ',' ORDER BY \"offset\") "
                 "FROM stockpot.dead_letters",
                 "1:UserFollowed,2:RecipeLiked,3:RecipeCommented,4:SessionStarted,"
                 "5:NotificationsRead");
    pgtest_check(t.conn,
                 "SELECT count(*) FROM stockpot.dead_letters WHERE error LIKE '%followee_id%' "
                 "OR error LIKE '%\"user_id\" does not match%' OR error LIKE '%content%' "
                 "OR error LIKE '%expires_at%' OR error LIKE '%up_to_id%'",
                 "5");
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.follows", "1");
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.sessions", "0");
    pgtest_teardown(&t);
}

/* What test_batched_counters wants, after its catch-up and after its rebuild alike. */
static void assert_batched_counters(PGconn *conn)
{
    pgtest_check(conn,
                 "SELECT string_agg(follower_count || '/' || following_count || '/' || "
                 "recipe_count, ',' ORDER BY id) FROM stockpot.users",
                 "0/1/0,1/0/29,0/0/3");
    pgtest_check(conn, SQL_RECIPE_COUNTERS " WHERE like_count > 0 OR comment_count > 0", "11:1/1");
}

/*
 * Counters are recounted once per batch from rows the folds marked: within one batch many
 * changes of one row, a late author counting recipes folded before it, repeats that change
 * nothing, and a poison event that fails after its row change and mark (the like of an
 * event time outside the notification ids' range) all end exact; so does a rebuild.
 */
static void test_batched_counters(void **state)
{
    struct pgtest t;
    struct proj_batch_stats st;
    struct sp_errbuf eb = {{0}, {0}};
    (void)state;

    pgtest_setup(&t);
    for (int r = 1; r <= 3; r++)
        recipe_created(&t, r, 3); /* before their author registers */
    user_registered(&t, 1);
    user_registered(&t, 2);
    for (int r = 10; r < 40; r++)
        recipe_created(&t, r, 2);
    user_registered(&t, 3);
    follow(&t, "UserFollowed", 1, 2, 2);
    follow(&t, "UserFollowed", 1, 2, 3); /* repeat: changes nothing */
    fixed_time_us = 1577836800000000LL;  /* 2020: no notification id, poison after the row */
    like(&t, "RecipeLiked", 1, 10, 2, 4);
    fixed_time_us = 0;
    like(&t, "RecipeLiked", 3, 11, 2, 2);
    like(&t, "RecipeLiked", 3, 11, 2, 3); /* repeat */
    comment(&t, 1, 11, 1, 2);
    recipe_deleted(&t, 39, 2);
    pgtest_catch_up(&t, 500);
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.dead_letters", "1");
    assert_batched_counters(t.conn);
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.likes", "1");
    assert_int_equal(proj_rebuild(t.conn, proj_pg_projection(), t.log, 7, PROJ_POISON_DEAD_LETTER,
                                  false, &st, &eb),
                     0);
    assert_batched_counters(t.conn);
    pgtest_teardown(&t);
}

/* ---- randomised sequence against a model ---- */

#define NU   8   /* users; user NU-1 registers last */
#define NR   6   /* recipes; NR-1 is created late by user NU-1, NR-2 deleted half-way */
#define NC   200 /* comments at most */
#define NOPS 900

struct model {
    uint64_t rng;
    bool follows[NU][NU];
    bool likes[NR][NU];
    int comment_recipe[NC]; /* -1 = none or deleted */
    int n_comments;
    int64_t user_ver[NU];
    bool user_registered[NU];
    bool recipe_deleted[NR];
    bool recipe_created[NR];
    int notifications;
};

static unsigned rnd(struct model *m, unsigned n)
{
    m->rng ^= m->rng << 13; /* xorshift64 (Marsaglia 2003) */
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return (unsigned)(m->rng % n);
}

static int author_of(int r)
{
    return r == NR - 1 ? NU - 1 : r % 3;
}

/* An actor: a registered user (their own stream's events follow their registration). */
static int actor(struct model *m)
{
    return (int)rnd(m, m->user_registered[NU - 1] ? NU : NU - 1);
}

static void random_follow(struct pgtest *t, struct model *m, bool on)
{
    int a = actor(m), b = (int)rnd(m, NU);
    follow(t, on ? "UserFollowed" : "UserUnfollowed", a, b, ++m->user_ver[a]);
    if (on && !m->follows[a][b] && a != b)
        m->notifications++;
    m->follows[a][b] = on;
}

static void random_like(struct pgtest *t, struct model *m, bool on)
{
    int u = actor(m), r = (int)rnd(m, NR);
    if (m->recipe_deleted[r])
        return; /* the write model refuses it */
    like(t, on ? "RecipeLiked" : "RecipeUnliked", u, r, author_of(r), ++m->user_ver[u]);
    if (on && !m->likes[r][u] && u != author_of(r))
        m->notifications++;
    m->likes[r][u] = on;
}

static void random_comment(struct pgtest *t, struct model *m)
{
    int u = actor(m), r = (int)rnd(m, NR);
    if (m->recipe_deleted[r] || m->n_comments == NC)
        return;
    comment(t, m->n_comments, r, u, author_of(r));
    m->comment_recipe[m->n_comments++] = r;
    if (u != author_of(r))
        m->notifications++;
}

static void random_comment_delete(struct pgtest *t, struct model *m)
{
    if (m->n_comments == 0)
        return;
    int c = (int)rnd(m, (unsigned)m->n_comments); /* may be deleted already: a repeat */
    int r = m->comment_recipe[c];
    comment_deleted(t, c, r < 0 ? 0 : r, r < 0 ? 0 : author_of(r));
    m->comment_recipe[c] = -1;
}

static void random_op(struct pgtest *t, struct model *m, int i)
{
    if (i == NOPS / 2) { /* delete a recipe: its likes and comments stay */
        recipe_deleted(t, NR - 2, 2);
        m->recipe_deleted[NR - 2] = true;
    } else if (i == NOPS * 2 / 3) {
        recipe_created(t, NR - 1, NU - 1); /* its author is not registered yet */
        m->recipe_created[NR - 1] = true;
    } else if (i == NOPS * 3 / 4) {
        user_registered(t, NU - 1);
        m->user_registered[NU - 1] = true;
        m->user_ver[NU - 1] = 1;
    }
    switch (rnd(m, 6)) {
    case 0:
        random_follow(t, m, true);
        break;
    case 1:
        random_follow(t, m, false);
        break;
    case 2:
        random_like(t, m, true);
        break;
    case 3:
        random_like(t, m, false);
        break;
    case 4:
        random_comment(t, m);
        break;
    default:
        random_comment_delete(t, m);
        break;
    }
}

static int model_count(const bool *cells, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += cells[i];
    return k;
}

static void assert_model(PGconn *conn, const struct model *m)
{
    char want[32];
    int alive = 0;

    for (int c = 0; c < m->n_comments; c++)
        alive += m->comment_recipe[c] >= 0;
    snprintf(want, sizeof(want), "%d", model_count(&m->follows[0][0], (size_t)NU * NU));
    pgtest_check(conn, "SELECT count(*) FROM stockpot.follows", want);
    snprintf(want, sizeof(want), "%d", model_count(&m->likes[0][0], (size_t)NR * NU));
    pgtest_check(conn, "SELECT count(*) FROM stockpot.likes", want);
    snprintf(want, sizeof(want), "%d", alive);
    pgtest_check(conn, "SELECT count(*) FROM stockpot.comments", want);
    snprintf(want, sizeof(want), "%d", m->notifications);
    pgtest_check(conn, "SELECT count(*) FROM stockpot.notifications", want);
    /* feed: every live recipe for its author and for whoever follows the author */
    int feed = 0;
    for (int r = 0; r < NR; r++) {
        int a = author_of(r);
        for (int u = 0; u < NU && m->recipe_created[r] && !m->recipe_deleted[r]; u++)
            feed += u == a || m->follows[u][a];
    }
    snprintf(want, sizeof(want), "%d", feed);
    pgtest_check(conn, "SELECT count(*) FROM stockpot.feed_entries", want);
}

static void test_randomised(void **state)
{
    struct pgtest t;
    struct model *m = calloc(1, sizeof(*m));
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_batch_stats st;
    char live[40], rebuilt[40];
    char *want;
    (void)state;

    assert_non_null(m);
    m->rng = 0x9E3779B97F4A7C15ULL;
    pgtest_setup(&t);
    for (int u = 0; u < NU - 1; u++) {
        user_registered(&t, u);
        m->user_registered[u] = true;
        m->user_ver[u] = 1;
    }
    for (int r = 0; r < NR - 1; r++) {
        recipe_created(&t, r, author_of(r));
        m->recipe_created[r] = true;
    }
    for (int i = 0; i < NOPS; i++) {
        random_op(&t, m, i);
        if (i % 97 == 96)
            pgtest_catch_up(&t, 7); /* incremental, in small batches */
    }
    pgtest_catch_up(&t, 7);
    assert_invariants(t.conn);
    assert_model(t.conn, m);
    pgtest_check(t.conn, "SELECT count(*) FROM stockpot.users", "8");
    /* the late recipe of the late user: counters include what was folded before them */
    want = pgtest_value(t.conn, "SELECT '1/' || (SELECT count(*) FROM stockpot.likes "
                                "WHERE recipe_id = 7301234567891005) || '/' || "
                                "(SELECT count(*) FROM stockpot.comments "
                                "WHERE recipe_id = 7301234567891005)");
    pgtest_check(t.conn,
                 "SELECT recipe_count || '/' || like_count || '/' || comment_count "
                 "FROM stockpot.users u JOIN stockpot.recipes r ON r.author_id = u.id "
                 "WHERE u.id = 7301234567890007",
                 want);
    free(want);

    /* a rebuild from the log gives identical tables */
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), live, sizeof(live), &eb), 0);
    assert_int_equal(
        proj_rebuild(t.conn, proj_pg_projection(), t.log, 50, PROJ_POISON_HALT, false, &st, &eb),
        0);
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), rebuilt, sizeof(rebuilt), &eb), 0);
    assert_string_equal(live, rebuilt);
    assert_invariants(t.conn);
    assert_model(t.conn, m);
    pgtest_teardown(&t);
    free(m);
}

/* ---- the same events in two partition interleavings ---- */

/* Events of several streams: on a partitioned log their relative order is not fixed. */
enum step {
    S_REG1,
    S_REG2,
    S_REG3,
    S_R1_CREATE,
    S_R2_CREATE,
    S_R1_DELETE,
    S_LIKE_2_R1,    /* notifies user 1 */
    S_COMMENT_1_R1, /* by user 3, notifies user 1 */
    S_LIKE_1_R1,    /* own recipe: no notification */
    S_LIKE_2_R2,    /* notifies user 1 */
    S_COMMENT_2_R2, /* by user 1, own recipe: no notification */
    S_COMMENT_1_DEL,
    S_COUNT
};

static void step_append(struct pgtest *t, enum step s)
{
    switch (s) {
    case S_REG1:
    case S_REG2:
    case S_REG3:
        user_registered(t, 1 + (int)(s - S_REG1));
        break;
    case S_R1_CREATE:
    case S_R2_CREATE:
        recipe_created(t, 1 + (int)(s - S_R1_CREATE), 1);
        break;
    case S_R1_DELETE:
        recipe_deleted(t, 1, 2);
        break;
    case S_LIKE_2_R1:
        like(t, "RecipeLiked", 2, 1, 1, 2);
        break;
    case S_COMMENT_1_R1:
        comment(t, 1, 1, 3, 1);
        break;
    case S_LIKE_1_R1:
        like(t, "RecipeLiked", 1, 1, 1, 2);
        break;
    case S_LIKE_2_R2:
        like(t, "RecipeLiked", 2, 2, 1, 3);
        break;
    case S_COMMENT_2_R2:
        comment(t, 2, 2, 1, 1);
        break;
    default:
        comment_deleted(t, 1, 1, 1);
        break;
    }
}

/* Fold @p order into a fresh database and log; @p sum receives the tables' checksum. */
static void fold_order(const enum step *order, char *sum, size_t sum_size)
{
    struct pgtest t;
    struct sp_errbuf eb = {{0}, {0}};

    pgtest_setup(&t);
    for (int i = 0; i < S_COUNT; i++)
        step_append(&t, order[i]);
    pgtest_catch_up(&t, 1);
    assert_invariants(t.conn);
    pgtest_check(t.conn, SQL_RECIPE_COUNTERS, "2:1/1");
    pgtest_check(t.conn,
                 "SELECT string_agg((recipe_id - 7301234567891000) || '<' || "
                 "(user_id - 7301234567890000), ',' ORDER BY recipe_id, user_id) "
                 "FROM stockpot.likes",
                 "1<1,1<2,2<2");
    pgtest_check(t.conn,
                 "SELECT string_agg((id - 7301234567892000)::text, ',') "
                 "FROM stockpot.comments",
                 "2");
    pgtest_check(t.conn,
                 "SELECT string_agg(kind || '@' || \"offset\", ',' ORDER BY id) "
                 "FROM stockpot.notifications",
                 "like@5,comment@6,like@8");
    assert_int_equal(proj_checksum(t.conn, proj_pg_projection(), sum, sum_size, &eb), 0);
    pgtest_teardown(&t);
}

/*
 * The recipe's deletion before and after the likes and comments of other streams gives the
 * same tables. Events that notify keep their offsets in both logs (as every event keeps its
 * Kafka position whatever the interleaving); the others move.
 */
static void test_interleavings(void **state)
{
    static const enum step deleted_first[S_COUNT] = {
        S_REG1,         S_REG2,      S_REG3,      S_R1_CREATE,    S_R1_DELETE,     S_LIKE_2_R1,
        S_COMMENT_1_R1, S_LIKE_1_R1, S_LIKE_2_R2, S_COMMENT_2_R2, S_COMMENT_1_DEL, S_R2_CREATE};
    static const enum step deleted_last[S_COUNT] = {
        S_REG1,         S_REG2,         S_REG3,      S_R1_CREATE,     S_R2_CREATE, S_LIKE_2_R1,
        S_COMMENT_1_R1, S_COMMENT_2_R2, S_LIKE_2_R2, S_COMMENT_1_DEL, S_LIKE_1_R1, S_R1_DELETE};
    char a[40], b[40];
    (void)state;

    fixed_time_us = 1767225600000000LL; /* 2026-01-01T00:00:00Z */
    fold_order(deleted_first, a, sizeof(a));
    fold_order(deleted_last, b, sizeof(b));
    fixed_time_us = 0;
    assert_string_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follows),
        cmocka_unit_test(test_likes_comments),
        cmocka_unit_test(test_notifications_read),
        cmocka_unit_test(test_notify_on_commit),
        cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_batched_counters),
        cmocka_unit_test(test_randomised),
        cmocka_unit_test(test_interleavings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
