/*
 * Acceptance of copy-log (issue 3): the stockpot-replay binary copies an embedded log into
 * Kafka (librdkafka's mock cluster, run in this process, 3 brokers, 3 partitions), and
 * `rebuild pg` from Kafka gives the same tables (`checksum pg`) as from the embedded log,
 * each into a fresh database (run under pg_virtualenv).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgtest.h"
#include "replay_test_run.h"
#include "sp_test_kafka.h"

#include "sp/banned.h"

#define TOPIC     "copy.acceptance"
#define PARTS     3
#define N_USERS   3
#define N_RECIPES 8

/* Runs `stockpot-replay <args...>` (see replay_test_run), echoing the command and its
 * output into the test log. */
static int run(char **out, const char *const *args)
{
    int status = replay_test_run(out, args);

    print_message("$ stockpot-replay %s ...\n%s", args[0], *out);
    return status;
}

/* Users, recipes created, updated and deleted, interleaved; non-ASCII text. */
static void build_log(struct pgtest *t)
{
    char id[32], stream[48], author[32], name[32];

    for (int u = 1; u <= N_USERS; u++) {
        snprintf(id, sizeof(id), "73012345678900%02d", u);
        snprintf(stream, sizeof(stream), "user-%s", id);
        snprintf(name, sizeof(name), "zoe_%d", u);
        pgtest_append(t, "UserRegistered", stream, 1,
                      json_pack("{s:s,s:s,s:s,s:s}", "user_id", id, "username", name, "email",
                                "zoe@example.com", "password_hash", "$argon2id$v=19$h"));
    }
    for (int r = 1; r <= N_RECIPES; r++) {
        snprintf(id, sizeof(id), "73012345678901%02d", r);
        snprintf(stream, sizeof(stream), "recipe-%s", id);
        snprintf(author, sizeof(author), "73012345678900%02d", 1 + r % N_USERS);
        pgtest_append(t, "RecipeCreated", stream, 1,
                      json_pack("{s:s,s:s,s:s,s:s,s:[s,s],s:[s],s:[s],s:[]}", "recipe_id", id,
                                "author_id", author, "title", "饺子", "description", "包饺子\tété",
                                "ingredients", "面粉", "猪肉", "steps", "包", "tags", "中餐",
                                "image_media_ids"));
    }
    for (int r = 1; r <= N_RECIPES; r++) {
        snprintf(stream, sizeof(stream), "recipe-73012345678901%02d", r);
        pgtest_append(
            t, "RecipeUpdated", stream, 2,
            json_pack("{s:s,s:[s]}", "title", r % 2 ? "猪肉饺子" : "Crème brûlée", "tags", "ß"));
        if (r % 3 == 0)
            pgtest_append(t, "RecipeDeleted", stream, 3, json_object());
    }
}

static void start_mock(struct sp_test_kafka *mock)
{
    assert_int_equal(sp_test_kafka_start(mock, 3, TOPIC, PARTS), 0);
    setenv("STOCKPOT_KAFKA_BROKERS", mock->brokers, 1);
    setenv("STOCKPOT_KAFKA_TOPIC", TOPIC, 1);
    setenv("STOCKPOT_KAFKA_PARTITIONS", "3", 1);
    setenv("STOCKPOT_KAFKA_REPLICATION_FACTOR", "3", 1);
    setenv("STOCKPOT_KAFKA_TIMEOUT_MS", "10000", 1);
}

/* `rebuild pg` from the backend into the database, then its `checksum pg` (owned). */
static char *rebuild_checksum(const char *backend, const struct pgtest *t, int n_events)
{
    char *out, *sum, want[64];

    setenv("STOCKPOT_LOG_BACKEND", backend, 1);
    setenv("STOCKPOT_PG_CONNINFO", t->conninfo, 1);
    assert_int_equal(run(&out, (const char *[]){"rebuild", "pg", NULL}), 0);
    snprintf(want, sizeof(want), "%d events applied, 0 dead-lettered", n_events);
    assert_non_null(strstr(out, want));
    free(out);
    assert_int_equal(run(&out, (const char *[]){"checksum", "pg", NULL}), 0);
    sum = strndup(out, strcspn(out, "\n"));
    assert_int_equal(strlen(sum), 32);
    free(out);
    return sum;
}

static void test_copy_then_rebuild(void **state)
{
    struct pgtest lmdb_db, kafka_db;
    struct sp_test_kafka mock;
    char *out, *sum_lmdb, *sum_kafka, want[128];
    const int n = N_USERS + 2 * N_RECIPES + N_RECIPES / 3;
    (void)state;

    pgtest_setup(&lmdb_db);
    pgtest_setup_db(&kafka_db);
    build_log(&lmdb_db);
    start_mock(&mock);
    setenv("STOCKPOT_LOG_DIR", lmdb_db.dir, 1);
    setenv("STOCKPOT_LOG_BACKEND", "lmdb", 1);

    /* beside a running writer (this process): refused, unless --live */
    assert_int_equal(run(&out, (const char *[]){"copy-log", "--to", "kafka", NULL}), 1);
    assert_non_null(strstr(out, "has a running writer"));
    assert_non_null(strstr(out, "stop command-api"));
    free(out);
    assert_int_equal(run(&out, (const char *[]){"copy-log", "--to", "kafka", "--live", "--limit",
                                                "7", "--batch", "3", NULL}),
                     0);
    assert_non_null(strstr(out, "7 events read, 7 copied, 0 skipped"));
    assert_non_null(strstr(out, "run copy-log again"));
    free(out);
    es_log_close(lmdb_db.log);
    lmdb_db.log = NULL;

    assert_int_equal(run(&out, (const char *[]){"copy-log", "--to", "kafka", NULL}), 0);
    snprintf(want, sizeof(want), "%d events read, %d copied, 7 skipped as already present", n,
             n - 7);
    assert_non_null(strstr(out, want));
    free(out);
    assert_int_equal(run(&out, (const char *[]){"copy-log", "--to", "kafka", NULL}), 0);
    snprintf(want, sizeof(want), "%d events read, 0 copied, %d skipped", n, n);
    assert_non_null(strstr(out, want));
    free(out);
    assert_int_equal(run(&out, (const char *[]){"copy-log", "--to", "pulsar", NULL}), 2);
    free(out);

    sum_lmdb = rebuild_checksum("lmdb", &lmdb_db, n);
    sum_kafka = rebuild_checksum("kafka", &kafka_db, n);
    assert_string_equal(sum_kafka, sum_lmdb);
    assert_int_equal(pgtest_count(kafka_db.conn, "SELECT count(*) FROM stockpot.recipes"),
                     pgtest_count(lmdb_db.conn, "SELECT count(*) FROM stockpot.recipes"));
    free(sum_lmdb);
    free(sum_kafka);
    sp_test_kafka_stop(&mock);
    pgtest_teardown(&kafka_db);
    pgtest_teardown(&lmdb_db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_then_rebuild),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
