/* Tests of configuration loading: defaults, file, env overrides, validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sp/config.h"
#include "sp/log.h"
#include "sp/banned.h"

static const char *const env_keys[] = {"STOCKPOT_CONFIG",
                                       "STOCKPOT_HTTP_MAX_BODY_BYTES",
                                       "STOCKPOT_LOG_DIR",
                                       "STOCKPOT_MODE",
                                       "STOCKPOT_JWT_SECRET",
                                       "STOCKPOT_COMMAND_PORT",
                                       "STOCKPOT_PROJECTOR_POISON_POLICY"};

static int clean_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(env_keys) / sizeof(env_keys[0]); i++)
        unsetenv(env_keys[i]);
    return 0;
}

static void write_file(char *path, size_t size, const char *text)
{
    snprintf(path, size, "/tmp/sp_test_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_defaults(void **state)
{
    (void)state;
    struct sp_config *cfg = NULL;
    struct sp_errbuf eb;
    assert_int_equal(sp_config_load(&cfg, NULL, &eb), 0);
    assert_string_equal(sp_config_str(cfg, "mode"), "dev");
    assert_string_equal(sp_config_str(cfg, "log.dir"), "var/eventlog");
    assert_string_equal(sp_config_str(cfg, "command.host"), "127.0.0.1");
    assert_int_equal(sp_config_int(cfg, "command.port"), 8080);
    assert_int_equal(sp_config_int(cfg, "query.port"), 8081);
    assert_int_equal(sp_config_int(cfg, "http.max_body_bytes"), 262144);
    assert_int_equal(sp_config_int(cfg, "argon2.m_cost_kib"), 19456);
    assert_string_equal(sp_config_str(cfg, "projector.poison_policy"), "dead-letter");
    assert_string_equal(sp_config_str(cfg, "pg.conninfo"), "");
    /* dev mode with no secret: a fixed dev-only secret */
    assert_true(strlen(sp_config_str(cfg, "jwt.secret")) >= 32);
    sp_config_free(cfg);
}

static void test_file_and_env(void **state)
{
    (void)state;
    char path[64];
    write_file(path, sizeof(path),
               "# a comment\n\n  log.dir = /tmp/x/log  \ncommand.port=9000\n"
               "pg.conninfo = \"dbname=a user=b\"\nhttp.max_body_bytes = 4096\n");
    setenv("STOCKPOT_HTTP_MAX_BODY_BYTES", "8192", 1);
    struct sp_config *cfg = NULL;
    struct sp_errbuf eb;
    assert_int_equal(sp_config_load(&cfg, path, &eb), 0);
    assert_string_equal(sp_config_str(cfg, "log.dir"), "/tmp/x/log");
    assert_int_equal(sp_config_int(cfg, "command.port"), 9000);
    assert_string_equal(sp_config_str(cfg, "pg.conninfo"), "dbname=a user=b");
    assert_int_equal(sp_config_int(cfg, "http.max_body_bytes"), 8192); /* env > file */
    assert_int_equal(sp_config_set(cfg, "projector.poison_policy", "halt", &eb), 0);
    assert_string_equal(sp_config_str(cfg, "projector.poison_policy"), "halt");
    sp_config_free(cfg);
    /* STOCKPOT_CONFIG names the file when the path is NULL */
    setenv("STOCKPOT_CONFIG", path, 1);
    assert_int_equal(sp_config_load(&cfg, NULL, &eb), 0);
    assert_int_equal(sp_config_int(cfg, "command.port"), 9000);
    sp_config_free(cfg);
    unlink(path);
}

static void test_bad_values_name_key(void **state)
{
    (void)state;
    struct sp_config *cfg = NULL;
    struct sp_errbuf eb;
    setenv("STOCKPOT_COMMAND_PORT", "80x", 1);
    assert_int_equal(sp_config_load(&cfg, NULL, &eb), SP_EINVAL);
    assert_null(cfg);
    assert_string_equal(eb.field, "command.port");
    assert_non_null(strstr(eb.msg, "STOCKPOT_COMMAND_PORT"));
    setenv("STOCKPOT_COMMAND_PORT", "70000", 1);
    assert_int_equal(sp_config_load(&cfg, NULL, &eb), SP_EINVAL);
    assert_string_equal(eb.field, "command.port");
    unsetenv("STOCKPOT_COMMAND_PORT");
    setenv("STOCKPOT_PROJECTOR_POISON_POLICY", "ignore", 1);
    assert_int_equal(sp_config_load(&cfg, NULL, &eb), SP_EINVAL);
    assert_string_equal(eb.field, "projector.poison_policy");
    unsetenv("STOCKPOT_PROJECTOR_POISON_POLICY");

    char path[64];
    write_file(path, sizeof(path), "log.dir = a\nno.such.key = 1\n");
    assert_int_equal(sp_config_load(&cfg, path, &eb), SP_EINVAL);
    assert_string_equal(eb.field, "no.such.key");
    assert_non_null(strstr(eb.msg, ":2:"));
    unlink(path);
    write_file(path, sizeof(path), "just words\n");
    assert_int_equal(sp_config_load(&cfg, path, &eb), SP_EINVAL);
    unlink(path);
    assert_true(sp_config_load(&cfg, "/nonexistent/stockpot.conf", &eb) < 0);
}

static void test_production_needs_secret(void **state)
{
    (void)state;
    struct sp_config *cfg = NULL;
    struct sp_errbuf eb;
    setenv("STOCKPOT_MODE", "production", 1);
    assert_int_equal(sp_config_load(&cfg, NULL, &eb), SP_EINVAL);
    assert_string_equal(eb.field, "jwt.secret");
    setenv("STOCKPOT_JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
    assert_int_equal(sp_config_load(&cfg, NULL, &eb), 0);
    assert_string_equal(sp_config_str(cfg, "jwt.secret"), "0123456789abcdef0123456789abcdef");
    sp_config_free(cfg);
}

static void test_help(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    sp_config_print_help(f);
    fclose(f);
    assert_non_null(strstr(text, "STOCKPOT_LOG_MAP_SIZE_MB"));
    assert_non_null(strstr(text, "projector.poll_ms"));
    free(text);
}

int main(void)
{
    sp_log_setup(SP_LOG_ERROR, "test_config");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_file_and_env, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_bad_values_name_key, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_production_needs_secret, clean_env, clean_env),
        cmocka_unit_test_setup_teardown(test_help, clean_env, clean_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
