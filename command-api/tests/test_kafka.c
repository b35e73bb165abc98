/*
 * command-api on the Kafka log backend, over real HTTP: the real handlers and write model
 * with librdkafka's in-process mock cluster (3 brokers, topic pre-created with 3
 * partitions and replication factor 3; the 2.0.2 mock has no CreateTopics), while the
 * app's event loop runs in a second thread. Faults are driven through the mock: a broker
 * down during appends, fencing and other broker errors injected as the broker's answer
 * (rd_kafka_mock_push_request_errors; the 2.0.2 mock does not enforce producer epochs).
 * The log is checked with a read_committed reader over every partition.
 */
/* strdup() needs X/Open 7. NOLINTNEXTLINE(bugprone-*,cert-*) */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cmd/app.h"
#include "es/log.h"
#include "sp/config.h"
#include "sp/log.h"
#include "sp_test_http.h"
#include "sp_test_kafka.h"
#include "cmd_test.h"

#include "sp/banned.h"

#define TOPIC      "cmd.events"
#define PARTS      3
#define TXN_ID     "cmd-kafka-test"
#define TIMEOUT_MS 2000 /* kafka.timeout_ms: an append fails within a few of these */
#define MAX_SEEN   512

/* The shared app fixture plus the mock cluster it runs against. */
struct fx {
    struct cmd_test_fx t; /* the app under test (cmd_test.h) */
    struct sp_test_kafka mock;
};

/* One committed event as a read_committed reader sees it. */
struct seen {
    struct es_position pos;
    char id[ES_UUID_STR_LEN + 1];
    char type[32];
    char stream[48];
    char title[48]; /* RecipeCreated / RecipeUpdated title, "" otherwise */
};

struct seen_list {
    size_t n;
    struct seen v[MAX_SEEN];
};

/* Progress line with the elapsed time (the mock is slow: shows where time goes). */
static void note(const char *what)
{
    static struct timespec t0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (t0.tv_sec == 0)
        t0 = now;
    print_message("[%8.3f s] %s\n",
                  (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9,
                  what);
}

/* ---- app in a thread (cmd_test.h), with progress lines ---- */

static void app_start(struct fx *fx)
{
    note("app start");
    cmd_test_app_start(&fx->t);
}

static void app_stop(struct fx *fx)
{
    note("app stop");
    cmd_test_app_stop(&fx->t);
    note("app stopped");
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    char num[16];

    cmd_test_fx_init(&fx->t, "/tmp/cmd-kafka-XXXXXX");
    assert_int_equal(sp_test_kafka_start(&fx->mock, 3, TOPIC, PARTS), 0);
    cmd_test_cfg_set(&fx->t, "log.backend", "kafka");
    cmd_test_cfg_set(&fx->t, "kafka.brokers", fx->mock.brokers);
    cmd_test_cfg_set(&fx->t, "kafka.topic", TOPIC);
    snprintf(num, sizeof(num), "%d", PARTS);
    cmd_test_cfg_set(&fx->t, "kafka.partitions", num);
    cmd_test_cfg_set(&fx->t, "kafka.replication_factor", "3");
    cmd_test_cfg_set(&fx->t, "kafka.transactional_id", TXN_ID);
    snprintf(num, sizeof(num), "%d", TIMEOUT_MS);
    cmd_test_cfg_set(&fx->t, "kafka.timeout_ms", num);
    app_start(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->t.app)
        app_stop(fx);
    cmd_test_fx_fini(&fx->t);
    note("mock destroy");
    sp_test_kafka_stop(&fx->mock);
    note("mock destroyed");
    free(fx);
    return 0;
}

/* ---- HTTP helpers (cmd_test.h) ---- */

static void register_user(struct fx *fx, const char *name)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"username\":\"%s\",\"email\":\"%s@example.org\",\"password\":\"correct horse\"}",
             name, name);
    assert_int_equal(cmd_test_call(&fx->t, "POST", "/auth/register", NULL, body, NULL), 201);
}

static int login_status(struct fx *fx, const char *name, json_t **out)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"correct horse\"}", name);
    return cmd_test_call(&fx->t, "POST", "/auth/login", NULL, body, out);
}

/* Log in as @p name; "Authorization: Bearer ..." into @p auth. */
static void login_auth(struct fx *fx, const char *name, char *auth, size_t size)
{
    json_t *t = NULL;
    assert_int_equal(login_status(fx, name, &t), 200);
    snprintf(auth, size, "Authorization: Bearer %s", cmd_test_jstr(t, "access_token"));
    json_decref(t);
}

static void recipe_body(const char *title, char *out, size_t size)
{
    snprintf(out, size,
             "{\"title\":\"%s\",\"description\":\"\",\"ingredients\":[\"a\"],"
             "\"steps\":[\"b\"],\"tags\":[]}",
             title);
}

/* POST /recipes titled @p title: the status; recipe id and position (if 201) copied out. */
static int
post_recipe(struct fx *fx, const char *auth, const char *title, char *id, char *pos, char *ra)
{
    const char *h[] = {auth, NULL};
    char body[256];
    json_t *r = NULL;
    recipe_body(title, body, sizeof(body));
    int status = cmd_test_call_full(&fx->t, "POST", "/recipes", h, body, &r, ra, 16);
    id[0] = pos[0] = '\0';
    if (status == 201) {
        snprintf(id, 32, "%s", cmd_test_jstr(r, "recipe_id"));
        snprintf(pos, 32, "%s", cmd_test_jstr(r, "position"));
    }
    json_decref(r);
    return status;
}

static int put_title(struct fx *fx, const char *auth, const char *id, int if_match, json_t **out)
{
    char im[32], path[64];
    snprintf(im, sizeof(im), "If-Match: \"%d\"", if_match);
    snprintf(path, sizeof(path), "/recipes/%s", id);
    const char *h[] = {auth, im, NULL};
    return cmd_test_call(&fx->t, "PUT", path, h, "{\"title\":\"retitled\"}", out);
}

static int readyz(struct fx *fx, char *out, size_t size)
{
    struct sp_test_resp resp = {0};
    int status = sp_test_http(fx->t.port, "GET", "/readyz", NULL, NULL, &resp);
    snprintf(out, size, "%s", resp.body ? resp.body : "");
    sp_test_resp_release(&resp);
    return status;
}

/* ---- the log as a read_committed reader sees it ---- */

static int collect(const struct es_log_record *rec, void *ud)
{
    struct seen_list *l = ud;
    struct es_event ev;
    struct sp_errbuf eb = {0};
    const char *title;

    assert_int_equal(rec->status, 0);
    assert_true(l->n < MAX_SEEN);
    es_event_init(&ev);
    assert_int_equal(es_log_record_decode(rec, &ev, &eb), 0);
    struct seen *s = &l->v[l->n++];
    memset(s, 0, sizeof(*s));
    s->pos = rec->pos;
    snprintf(s->id, sizeof(s->id), "%s", ev.id);
    snprintf(s->type, sizeof(s->type), "%s", ev.type);
    snprintf(s->stream, sizeof(s->stream), "%s", ev.stream);
    title = json_string_value(json_object_get(ev.data, "title"));
    snprintf(s->title, sizeof(s->title), "%s", title ? title : "");
    es_event_release(&ev);
    return 0;
}

/* Every committed event of every partition, read with a separate reader handle. */
static void read_log(struct fx *fx, struct seen_list *l)
{
    struct es_kafka_opts opts = {.brokers = fx->mock.brokers,
                                 .topic = TOPIC,
                                 .partitions = PARTS,
                                 .replication_factor = 3,
                                 .transactional_id = "unused-by-readers",
                                 .timeout_ms = 10000,
                                 .max_event_bytes = 1 << 20};
    struct sp_errbuf eb = {0};
    struct es_log *log = NULL;
    l->n = 0;
    note("read log");
    if (es_log_open_kafka(&opts, ES_LOG_READER, &log, &eb) != 0)
        fail_msg("reader: %s", eb.msg);
    assert_int_equal(es_log_partitions(log), PARTS);
    for (int32_t p = 0; p < PARTS; p++) {
        int64_t next = 0;
        if (es_log_read(log, p, 0, SIZE_MAX, collect, l, &next, &eb) != 0)
            fail_msg("read partition %d: %s", (int)p, eb.msg);
    }
    es_log_close(log);
    note("log read");
}

static size_t count_title(const struct seen_list *l, const char *type, const char *title)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++)
        k += strcmp(l->v[i].type, type) == 0 && strcmp(l->v[i].title, title) == 0;
    return k;
}

static const struct seen *find_pos(const struct seen_list *l, const char *token)
{
    struct es_position pos;
    assert_int_equal(es_position_parse(token, &pos), 0);
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].pos.partition == pos.partition && l->v[i].pos.offset == pos.offset)
            return &l->v[i];
    return NULL;
}

/* ---- stderr capture (the fenced log line) ---- */

struct capture {
    int saved_fd;
    char path[200];
};

static void capture_start(struct fx *fx, struct capture *c)
{
    snprintf(c->path, sizeof(c->path), "%s/stderr.log", fx->t.dir);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved_fd = dup(2);
    assert_true(c->saved_fd >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
}

/* Restore stderr; @return the captured text (owned, free()). */
static char *capture_stop(struct capture *c)
{
    fflush(stderr);
    assert_int_equal(dup2(c->saved_fd, 2), 2);
    close(c->saved_fd);
    FILE *f = fopen(c->path, "r");
    assert_non_null(f);
    char *text = calloc(1, 1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    text[n] = '\0';
    fputs(text, stderr); /* keep it in the test output */
    return text;
}

/* ---- tests ---- */

/*
 * Commands work on Kafka as on the embedded log: the consistency token is the position
 * "<partition>:<offset>" of the command's last event; the write model is rebuilt from
 * every partition at start (write model dir deleted): users still log in and recipes
 * keep their versions.
 */
static void test_kafka_commands_and_catch_up(void **state)
{
    struct fx *fx = *state;
    struct seen_list *l = calloc(1, sizeof(*l));
    char auth[1024], id[8][32], pos[8][32], ra[16], title[32];
    bool parts_used[PARTS] = {false};
    json_t *r = NULL;

    register_user(fx, "kcook");
    login_auth(fx, "kcook", auth, sizeof(auth));
    for (int i = 0; i < 8; i++) {
        snprintf(title, sizeof(title), "dish-%d", i);
        assert_int_equal(post_recipe(fx, auth, title, id[i], pos[i], ra), 201);
    }
    assert_int_equal(put_title(fx, auth, id[0], 1, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 2);
    json_decref(r);
    assert_int_equal(put_title(fx, auth, id[0], 2, NULL), 200);

    read_log(fx, l);
    assert_int_equal(l->n, 12); /* registered, session, 8 created, 2 updated */
    for (int i = 0; i < 8; i++) {
        const struct seen *s = find_pos(l, pos[i]);
        char stream[48];
        assert_non_null(s);
        snprintf(stream, sizeof(stream), "recipe-%s", id[i]);
        assert_string_equal(s->stream, stream);
        assert_string_equal(s->type, "RecipeCreated");
        parts_used[s->pos.partition] = true;
    }
    assert_true(parts_used[0] + parts_used[1] + parts_used[2] >= 2);

    /* restart keeping the write model: nothing to catch up */
    app_stop(fx);
    app_start(fx);
    assert_true(cmd_test_metric(&fx->t, "stockpot_writemodel_events_caught_up_total", "") == 0);
    /* restart without it: rebuilt from every partition */
    app_stop(fx);
    cmd_test_rm_tree(fx->t.wm_dir);
    app_start(fx);
    assert_true(cmd_test_metric(&fx->t, "stockpot_writemodel_events_caught_up_total", "") == 12);
    login_auth(fx, "kcook", auth, sizeof(auth));
    assert_int_equal(put_title(fx, auth, id[0], 2, NULL), 412);
    assert_int_equal(put_title(fx, auth, id[0], 3, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 4);
    json_decref(r);
    assert_int_equal(put_title(fx, auth, id[5], 1, NULL), 200);
    assert_int_equal(cmd_test_call(&fx->t, "POST", "/auth/register", NULL,
                                   "{\"username\":\"KCOOK\",\"email\":\"k2@example.org\","
                                   "\"password\":\"12345678\"}",
                                   NULL),
                     409);
    free(l);
}

#define DOWN_CMDS 16

/* Pin the transaction coordinator to broker 3 and partition p's leader to broker p + 1. */
static void pin_brokers(struct fx *fx)
{
    assert_int_equal(rd_kafka_mock_coordinator_set(fx->mock.mc, "transaction", TXN_ID, 3), 0);
    for (int32_t p = 0; p < PARTS; p++)
        assert_int_equal(rd_kafka_mock_partition_set_leader(fx->mock.mc, TOPIC, p, p + 1), 0);
}

/*
 * Brokers go down during appends and come back: first broker 1 (leader of partition 0
 * only), then broker 3 (transaction coordinator and leader of partition 2). Every
 * command either succeeded (201) and its event is in the log exactly once, or got 503
 * with Retry-After and nothing of it is visible to a read_committed reader. Afterwards
 * commands succeed, and the write model agrees with the log.
 */
static void test_kafka_broker_down(void **state)
{
    struct fx *fx = *state;
    struct seen_list *l = calloc(1, sizeof(*l));
    char auth[1024], id[DOWN_CMDS][32], pos[DOWN_CMDS][32], ra[16], title[32];
    int status[DOWN_CMDS], ok = 0, failed = 0;

    app_stop(fx);
    pin_brokers(fx);
    app_start(fx);
    register_user(fx, "downcook");
    login_auth(fx, "downcook", auth, sizeof(auth));
    for (int i = 0; i < DOWN_CMDS; i++) {
        if (i == 3)
            assert_int_equal(rd_kafka_mock_broker_set_down(fx->mock.mc, 1), 0);
        if (i == 9) {
            assert_int_equal(rd_kafka_mock_broker_set_up(fx->mock.mc, 1), 0);
            assert_int_equal(rd_kafka_mock_broker_set_down(fx->mock.mc, 3), 0);
        }
        if (i == 13)
            assert_int_equal(rd_kafka_mock_broker_set_up(fx->mock.mc, 3), 0);
        snprintf(title, sizeof(title), "down-%d", i);
        status[i] = post_recipe(fx, auth, title, id[i], pos[i], ra);
        if (status[i] == 503)
            assert_string_equal(ra, "1");
        else
            assert_int_equal(status[i], 201);
        ok += status[i] == 201;
        failed += status[i] == 503;
        print_message("%s: %d %s\n", title, status[i], pos[i]);
    }
    /*
     * once the brokers are back, commands succeed again (possibly after retries, spaced
     * as a client that honours Retry-After would, if sooner: the write model's catch-up
     * runs on the committer thread, kicked by the refused requests). If a catch-up timed
     * out while a broker was down, the write model waits for librdkafka to reconnect to
     * it, which backs off up to reconnect.backoff.max.ms (10 s): allow 15 s.
     */
    int last = 503;
    for (int tries = 0; tries < 60 && last != 201; tries++) {
        char lid[32], lpos[32];
        if (tries > 0)
            usleep(250 * 1000);
        last = post_recipe(fx, auth, "after-down", lid, lpos, ra);
        assert_true(last == 201 || last == 503);
    }
    assert_int_equal(last, 201);
    print_message("brokers down: %d of %d commands succeeded, %d got 503\n", ok, DOWN_CMDS, failed);

    read_log(fx, l);
    for (int i = 0; i < DOWN_CMDS; i++) {
        snprintf(title, sizeof(title), "down-%d", i);
        if (status[i] == 201) {
            assert_int_equal(count_title(l, "RecipeCreated", title), 1);
            assert_non_null(find_pos(l, pos[i]));
        } else {
            assert_int_equal(count_title(l, "RecipeCreated", title), 0);
        }
    }
    assert_int_equal(count_title(l, "RecipeCreated", "after-down"), 1);
    assert_true(ok >= 3 && failed >= 4); /* before, and with the coordinator down */
    /* the write model agrees with the log: a rebuild folds exactly the log's events */
    app_stop(fx);
    cmd_test_rm_tree(fx->t.wm_dir);
    app_start(fx);
    assert_true(cmd_test_metric(&fx->t, "stockpot_writemodel_events_caught_up_total", "") ==
                (double)l->n);
    free(l);
}

/*
 * Fenced by the broker's answer @p err on @p api_key: the batch in flight gets 503, one
 * error line names the transactional.id, every later command gets 503 with Retry-After,
 * /readyz is 503 with the reason, and nothing is acknowledged or appended after it.
 */
static void fence_with(struct fx *fx, int16_t api_key, rd_kafka_resp_err_t err)
{
    struct seen_list *l = calloc(1, sizeof(*l));
    char auth[1024], id[32], pos[32], ra[16], why[1024];
    struct capture cap;
    size_t before;

    register_user(fx, "fenced");
    login_auth(fx, "fenced", auth, sizeof(auth));
    assert_int_equal(post_recipe(fx, auth, "before-fence", id, pos, ra), 201);
    assert_int_equal(readyz(fx, why, sizeof(why)), 200);
    read_log(fx, l);
    before = l->n;
    double appended = cmd_test_metric(&fx->t, "stockpot_events_appended_total", "");

    capture_start(fx, &cap);
    rd_kafka_mock_push_request_errors(fx->mock.mc, api_key, 5, err, err, err, err, err);
    assert_int_equal(post_recipe(fx, auth, "in-flight", id, pos, ra), 503);
    assert_string_equal(ra, "1");
    rd_kafka_mock_clear_request_errors(fx->mock.mc, api_key);
    char *text = capture_stop(&cap);
    assert_non_null(strstr(text, "command-api is fenced: another command-api with "
                                 "transactional.id \\\"" TXN_ID "\\\" took over"));
    free(text);
    /*
     * Fenced at Produce or AddPartitionsToTxn, the batch's records were never stored.
     * Fenced at EndTxn they were: a real cluster keeps them invisible to read_committed
     * readers (the transaction is open until the new writer's init_transactions aborts
     * it), but the 2.0.2 mock writes no transaction markers and shows them.
     */
    read_log(fx, l);
    if (api_key != SP_TEST_KAFKA_API_ENDTXN)
        assert_int_equal(l->n, before);
    before = l->n;

    /* nothing is acknowledged after it, and it says why */
    assert_int_equal(post_recipe(fx, auth, "after-fence", id, pos, ra), 503);
    assert_string_equal(ra, "1");
    json_t *r = NULL;
    assert_int_equal(login_status(fx, "fenced", &r), 503);
    assert_non_null(strstr(cmd_test_jstr(r, "detail"), "another command-api took over"));
    json_decref(r);
    assert_int_equal(cmd_test_call_full(&fx->t, "POST", "/auth/register", NULL,
                                        "{\"username\":\"late\",\"email\":\"late@example.org\","
                                        "\"password\":\"12345678\"}",
                                        NULL, ra, sizeof(ra)),
                     503);
    assert_string_equal(ra, "1");
    assert_int_equal(readyz(fx, why, sizeof(why)), 503);
    assert_non_null(strstr(why, "fenced"));
    assert_non_null(strstr(why, TXN_ID));
    assert_true(cmd_test_metric(&fx->t, "stockpot_events_appended_total", "") == appended);
    assert_true(cmd_test_metric(&fx->t, "stockpot_command_fenced", "") == 1);
    read_log(fx, l); /* nothing appended after the fence */
    assert_int_equal(l->n, before);
    assert_int_equal(count_title(l, "RecipeCreated", "after-fence"), 0);

    /* a new command-api (same transactional.id) takes over and works */
    app_stop(fx);
    app_start(fx);
    assert_int_equal(readyz(fx, why, sizeof(why)), 200);
    login_auth(fx, "fenced", auth, sizeof(auth));
    assert_int_equal(post_recipe(fx, auth, "new-writer", id, pos, ra), 201);
    free(l);
}

static void test_kafka_fenced_on_endtxn(void **state)
{
    fence_with(*state, SP_TEST_KAFKA_API_ENDTXN, RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
}

static void test_kafka_fenced_on_addpartitions(void **state)
{
    fence_with(*state, SP_TEST_KAFKA_API_ADDPARTS, RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
}

static void test_kafka_fenced_on_produce(void **state)
{
    fence_with(*state, SP_TEST_KAFKA_API_PRODUCE, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH);
}

static void test_kafka_invalid_epoch_on_endtxn(void **state)
{
    fence_with(*state, SP_TEST_KAFKA_API_ENDTXN, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH);
}

/*
 * Retriable broker errors (and coordinator moves) are retried: the command succeeds and
 * its event is in the log once. A non-retriable one is a clear 503, never a success, and
 * the next command works (not fenced, still ready).
 */
static void test_kafka_broker_errors(void **state)
{
    struct fx *fx = *state;
    static const struct {
        int16_t api;
        rd_kafka_resp_err_t err;
    } retriable[] = {
        {SP_TEST_KAFKA_API_PRODUCE,
         RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION}, /* NOT_LEADER_OR_FOLLOWER */
        {SP_TEST_KAFKA_API_PRODUCE, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT},
        {SP_TEST_KAFKA_API_PRODUCE, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS},
        {SP_TEST_KAFKA_API_ENDTXN, RD_KAFKA_RESP_ERR_NOT_COORDINATOR},
        {SP_TEST_KAFKA_API_ADDPARTS, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS},
    };
    size_t n = sizeof(retriable) / sizeof(retriable[0]);
    struct seen_list *l = calloc(1, sizeof(*l));
    char auth[1024], id[32], pos[32], ra[16], title[32], why[1024];

    register_user(fx, "errcook");
    login_auth(fx, "errcook", auth, sizeof(auth));
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = retriable[i].err;
        snprintf(title, sizeof(title), "retried-%zu", i);
        rd_kafka_mock_push_request_errors(fx->mock.mc, retriable[i].api, 2, e, e);
        int st = post_recipe(fx, auth, title, id, pos, ra);
        rd_kafka_mock_clear_request_errors(fx->mock.mc, retriable[i].api);
        if (st != 201)
            fail_msg("%s: expected 201 after retries, got %d", rd_kafka_err2name(e), st);
    }
    rd_kafka_mock_push_request_errors(
        fx->mock.mc, SP_TEST_KAFKA_API_PRODUCE, 3, RD_KAFKA_RESP_ERR_INVALID_RECORD,
        RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_INVALID_RECORD);
    assert_int_equal(post_recipe(fx, auth, "rejected", id, pos, ra), 503);
    assert_string_equal(ra, "1");
    rd_kafka_mock_clear_request_errors(fx->mock.mc, SP_TEST_KAFKA_API_PRODUCE);
    assert_true(cmd_test_metric(&fx->t, "stockpot_event_append_failures_total", "") == 1);
    assert_int_equal(readyz(fx, why, sizeof(why)), 200);
    assert_int_equal(post_recipe(fx, auth, "accepted", id, pos, ra), 201);

    read_log(fx, l);
    for (size_t i = 0; i < n; i++) {
        snprintf(title, sizeof(title), "retried-%zu", i);
        assert_int_equal(count_title(l, "RecipeCreated", title), 1);
    }
    assert_int_equal(count_title(l, "RecipeCreated", "rejected"), 0);
    assert_int_equal(count_title(l, "RecipeCreated", "accepted"), 1);
    assert_int_equal(l->n, 2 + n + 1);
    free(l);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]); /* e.g. "*broker_down" */
    evthread_use_pthreads();             /* event_base_loopbreak from the test thread */
    sp_log_setup(SP_LOG_WARN, "test-command-api-kafka");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kafka_commands_and_catch_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_broker_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_fenced_on_endtxn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_fenced_on_addpartitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_fenced_on_produce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_invalid_epoch_on_endtxn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_broker_down, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
