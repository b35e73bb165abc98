/* stockpot-replay: the operator CLI (migrate, rebuild, dump, verify, checksum, copy-log,
 * export). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "replay/replay.h"
#include "sp/err.h"
#include "sp/log.h"

#include "sp/banned.h"

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
    const struct replay_cmd *cmd;
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_config *cfg = NULL;
    int status;

    argc = take_config(argc, argv, &config_path);
    if (argc < 0) {
        replay__error("--config needs a file name");
        return REPLAY_EXIT_USAGE;
    }
    if (argc < 2 || replay__is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        replay_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? REPLAY_EXIT_USAGE : REPLAY_EXIT_OK;
    }
    if ((cmd = replay_cmd_find(argv[1])) == NULL) {
        replay__error("unknown command \"%s\" (try --help)", argv[1]);
        return REPLAY_EXIT_USAGE;
    }
    /* quiet while loading: config warnings (dev-mode jwt.secret) do not concern us */
    sp_log_setup(SP_LOG_ERROR, "replay");
    if (sp_config_load(&cfg, config_path, &eb) != 0) {
        replay__error("bad configuration: %s", eb.msg);
        return REPLAY_EXIT_USAGE;
    }
    sp_log_setup(SP_LOG_WARN, "replay");
    status = cmd->fn(cfg, argc - 2, argv + 2);
    sp_config_free(cfg);
    return status;
}
