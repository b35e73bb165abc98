/*
 * Integration test of the stockpot-projector daemon: waits for a log that does not exist
 * yet, tails it into PostgreSQL, serves /healthz /readyz /metrics, halts on poison under
 * the halt policy without dying, stops cleanly on SIGTERM (run under pg_virtualenv).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "pgtest.h"
#include "sp_test_http.h"

#include "sp/banned.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick for port 0).
 * A port derived from the pid could be one another test's connection or daemon holds. */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Starts bin/@p name (stockpot-projector or proj_daemon_probe) on @p port. */
static pid_t start_binary(struct pgtest *t, const char *name, int port, const char *policy)
{
    const char *bin = getenv("SP_BINARY_DIR");
    char path[512], ports[16];
    pid_t pid;

    snprintf(path, sizeof(path), "%s/bin/%s", bin ? bin : "..", name);
    snprintf(ports, sizeof(ports), "%d", port);
    setenv("STOCKPOT_LOG_DIR", t->dir, 1);
    setenv("STOCKPOT_PG_CONNINFO", t->conninfo, 1);
    setenv("STOCKPOT_PROJECTOR_PORT", ports, 1);
    setenv("STOCKPOT_PROJECTOR_POISON_POLICY", policy, 1);
    setenv("STOCKPOT_PROJECTOR_BATCH_MAX", "2", 1);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static pid_t start_daemon(struct pgtest *t, int port, const char *policy)
{
    return start_binary(t, "stockpot-projector", port, policy);
}

/* GET @p path until it answers @p want (or 20 s pass); returns the last status. */
static int get_until(int port, const char *path, int want, char **body)
{
    struct sp_test_resp resp;
    int status = 0;

    for (int i = 0; i < 400 && status != want; i++) {
        if (i > 0)
            sleep_ms(50);
        memset(&resp, 0, sizeof(resp));
        status = sp_test_http(port, "GET", path, NULL, NULL, &resp);
        if (body != NULL && status == want) {
            *body = strdup(resp.body ? resp.body : "");
            assert_non_null(*body);
        }
        sp_test_resp_release(&resp);
    }
    return status;
}

static void wait_projection(struct pgtest *t, const char *projection, long long want)
{
    char sql[160];
    long long got = -1;

    snprintf(sql, sizeof(sql),
             "SELECT coalesce(max(next_offset), -1) FROM stockpot.checkpoints "
             "WHERE projection = '%s'",
             projection);
    for (int i = 0; i < 400 && got != want; i++) {
        if (i > 0)
            sleep_ms(50);
        got = pgtest_count(t->conn, sql);
    }
    assert_int_equal(got, want);
}

static void wait_checkpoint(struct pgtest *t, long long want)
{
    wait_projection(t, "pg", want);
}

static void user(struct pgtest *t, int i, const char *name)
{
    char id[32], stream[48];
    snprintf(id, sizeof(id), "730123456789%04d", i);
    snprintf(stream, sizeof(stream), "user-%s", id);
    pgtest_append(t, "UserRegistered", stream, 1,
                  json_pack("{s:s,s:s,s:s,s:s}", "user_id", id, "username", name, "email",
                            "a@example.com", "password_hash", "$argon2id$v=19$h"));
}

static void stop_daemon(pid_t pid)
{
    int status = 0;
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_tail_and_probes(void **state)
{
    struct pgtest t;
    int port = free_port();
    char *body = NULL;
    pid_t pid;
    (void)state;

    pgtest_setup_db(&t);
    pid = start_daemon(&t, port, "dead-letter");
    assert_int_equal(get_until(port, "/healthz", 200, NULL), 200);
    assert_int_equal(get_until(port, "/readyz", 503, NULL), 503); /* no log yet */

    pgtest_open_log(&t);
    for (int i = 1; i <= 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "name_%d", i);
        user(&t, i, name);
    }
    wait_checkpoint(&t, 5);
    assert_int_equal(get_until(port, "/readyz", 200, NULL), 200);
    user(&t, 6, "late");
    user(&t, 1, "dup"); /* same id again: a constraint violation, dead-lettered */
    wait_checkpoint(&t, 7);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 6);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.dead_letters"), 1);
    assert_int_equal(get_until(port, "/metrics", 200, &body), 200);
    assert_non_null(strstr(body, "stockpot_projection_events_applied_total{projection=\"pg\"} 6"));
    assert_non_null(strstr(body, "stockpot_projection_dead_letters_total{projection=\"pg\"} 1"));
    assert_non_null(
        strstr(body, "stockpot_projection_checkpoint{projection=\"pg\",partition=\"0\"} 7"));
    assert_non_null(
        strstr(body, "stockpot_projection_lag_events{projection=\"pg\",partition=\"0\"} 0"));
    assert_non_null(strstr(body, "stockpot_projection_batch_seconds_bucket"));
    free(body);
    stop_daemon(pid);
    pgtest_teardown(&t);
}

static void test_halt_keeps_running(void **state)
{
    struct pgtest t;
    int port = free_port();
    char *body = NULL;
    pid_t pid;
    (void)state;

    pgtest_setup(&t);
    user(&t, 1, "ann");
    pgtest_append(&t, "NoSuchEvent", "user-7301234567890001", 2, json_object());
    user(&t, 3, "cat");
    pid = start_daemon(&t, port, "halt");
    wait_checkpoint(&t, 1);
    assert_int_equal(get_until(port, "/readyz", 503, &body), 503);
    assert_non_null(strstr(body, "NoSuchEvent"));
    free(body);
    assert_int_equal(get_until(port, "/metrics", 200, &body), 200);
    assert_non_null(strstr(body, "stockpot_projection_halted{projection=\"pg\"} 1"));
    free(body);
    assert_int_equal(get_until(port, "/healthz", 200, NULL), 200);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 1);
    stop_daemon(pid);
    pgtest_teardown(&t);
}

/* The daemon runs every projection it is given, each with its own checkpoint and metrics;
 * one halting does not stop the other. */
static void test_every_projection(void **state)
{
    struct pgtest t;
    int port = free_port();
    char *body = NULL;
    pid_t pid;
    (void)state;

    pgtest_setup(&t);
    for (int i = 1; i <= 3; i++)
        user(&t, i, i == 1 ? "ann" : i == 2 ? "bob" : "cat");
    pid = start_binary(&t, "proj_daemon_probe", port, "halt");
    wait_projection(&t, "pg", 3);
    wait_projection(&t, "probe", 3);
    assert_int_equal(get_until(port, "/readyz", 200, NULL), 200);
    assert_int_equal(get_until(port, "/metrics", 200, &body), 200);
    assert_non_null(strstr(body, "stockpot_projection_events_applied_total{projection=\"pg\"} 3"));
    assert_non_null(
        strstr(body, "stockpot_projection_events_applied_total{projection=\"probe\"} 3"));
    free(body);
    /* "probe" refuses RecipeDeleted and halts; "pg" carries on */
    pgtest_append(&t, "RecipeDeleted", "recipe-7301234567890101", 1, json_object());
    user(&t, 4, "dan");
    wait_projection(&t, "pg", 5);
    assert_int_equal(get_until(port, "/readyz", 503, &body), 503);
    assert_non_null(strstr(body, "probe"));
    assert_non_null(strstr(body, "RecipeDeleted"));
    free(body);
    wait_projection(&t, "probe", 3);
    assert_int_equal(pgtest_count(t.conn, "SELECT count(*) FROM stockpot.users"), 4);
    stop_daemon(pid);
    pgtest_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_projection),
        cmocka_unit_test(test_tail_and_probes),
        cmocka_unit_test(test_halt_keeps_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
