/* stockpot-replay subcommands; each returns the process exit status (0 ok, 1 failure or
 * fault found, 2 usage error) and prints its own messages. */
#ifndef REPLAY_H
#define REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "sp/config.h"

#define REPLAY_EXIT_OK    0
#define REPLAY_EXIT_FAIL  1
#define REPLAY_EXIT_USAGE 2

/** Whether @p arg is --help or -h. */
bool replay__is_help(const char *arg);

/** Parse a non-negative decimal integer. @return 0 or SP_EINVAL. */
int replay__parse_count(const char *s, int64_t *out);

/** Print "stockpot-replay: <msg>" on stderr. */
void replay__error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int replay_cmd_dump(const struct sp_config *cfg, int argc, char **argv);
int replay_cmd_verify(const struct sp_config *cfg, int argc, char **argv);
int replay_cmd_migrate(const struct sp_config *cfg, int argc, char **argv);
int replay_cmd_rebuild(const struct sp_config *cfg, int argc, char **argv);
int replay_cmd_checksum(const struct sp_config *cfg, int argc, char **argv);

#endif
