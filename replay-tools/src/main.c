/* stockpot-replay: the operator CLI (migrate, rebuild, dump, verify, checksum). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "sp/err.h"
#include "sp/log.h"

#include "sp/banned.h"

struct replay_cmd {
    const char *name;
    int (*fn)(const struct sp_config *cfg, int argc, char **argv);
    const char *summary;
};

static const struct replay_cmd cmds[] = {
    {"migrate", replay_cmd_migrate, "apply the SQL migrations"},
    {"rebuild", replay_cmd_rebuild, "empty a projection and re-apply the whole log"},
    {"dump", replay_cmd_dump, "print events as NDJSON"},
    {"verify", replay_cmd_verify, "check checksums, decoding and stream versions"},
    {"checksum", replay_cmd_checksum, "print a checksum of a projection's tables"},
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

bool replay__is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int replay__parse_count(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || s[0] < '0' || s[0] > '9')
        return SP_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
        return SP_EINVAL;
    *out = v;
    return 0;
}

void replay__error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "stockpot-replay: %s\n", msg);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: stockpot-replay [--config FILE] <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f, "\n`stockpot-replay <command> --help` describes a command. The log is opened as\n"
               "a reader (log.dir); PostgreSQL from pg.conninfo / the PG* environment.\n"
               "Exit status: 0 ok, 1 failure or fault found, 2 bad usage.\n\n");
    sp_config_print_help(f);
}

/* Removes "--config FILE" from argv wherever it is; returns the new argc, or -1. */
static int take_config(int argc, char **argv, const char **path)
{
    int out = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return -1;
            *path = argv[++i];
            continue;
        }
        argv[out++] = argv[i];
    }
    return out;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_config *cfg = NULL;
    int status = REPLAY_EXIT_USAGE;

    argc = take_config(argc, argv, &config_path);
    if (argc < 0) {
        replay__error("--config needs a file name");
        return REPLAY_EXIT_USAGE;
    }
    if (argc < 2 || replay__is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? REPLAY_EXIT_USAGE : REPLAY_EXIT_OK;
    }
    for (size_t i = 0; i < NCMDS; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0)
            continue;
        /* quiet while loading: config warnings (dev-mode jwt.secret) do not concern us */
        sp_log_setup(SP_LOG_ERROR, "replay");
        if (sp_config_load(&cfg, config_path, &eb) != 0) {
            replay__error("bad configuration: %s", eb.msg);
            return REPLAY_EXIT_USAGE;
        }
        sp_log_setup(SP_LOG_WARN, "replay");
        status = cmds[i].fn(cfg, argc - 2, argv + 2);
        sp_config_free(cfg);
        return status;
    }
    replay__error("unknown command \"%s\" (try --help)", argv[1]);
    return status;
}
