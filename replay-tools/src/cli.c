/* The stockpot-replay command table, its usage, and helpers shared by the subcommands. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "replay/replay.h"
#include "sp/err.h"

#include "sp/banned.h"

static const struct replay_cmd cmds[] = {
    {"migrate", "apply the SQL migrations", replay_cmd_migrate},
    {"rebuild", "rebuild a projection from the whole log and swap it in", replay_cmd_rebuild},
    {"dump", "print events as NDJSON", replay_cmd_dump},
    {"verify", "check checksums, decoding and stream versions", replay_cmd_verify},
    {"checksum", "print a checksum of a projection's tables", replay_cmd_checksum},
    {"copy-log", "copy the embedded log into kafka (--to kafka)", replay_cmd_copy_log},
    {"export", "export analytics tables or events as CSV / NDJSON", replay_cmd_export},
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

const struct replay_cmd *replay_cmd_find(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++) {
        if (strcmp(name, cmds[i].name) == 0)
            return &cmds[i];
    }
    return NULL;
}

void replay_usage(FILE *f)
{
    fprintf(f, "usage: stockpot-replay [--config FILE] <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f, "\n`stockpot-replay <command> --help` describes a command. The log is opened as\n"
               "a reader (log.dir); PostgreSQL from pg.conninfo / the PG* environment.\n"
               "Exit status: 0 ok, 1 failure or fault found, 2 bad usage.\n\n");
    sp_config_print_help(f);
}

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
    (void)vsnprintf(msg, sizeof(msg), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    fprintf(stderr, "stockpot-replay: %s\n", msg);
}
