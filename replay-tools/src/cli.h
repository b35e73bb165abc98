/* Helpers shared by the stockpot-replay subcommands (private to replay-tools). */
#ifndef REPLAY_CLI_H
#define REPLAY_CLI_H

#include <stdbool.h>
#include <stdint.h>

/** Whether @p arg is --help or -h. */
bool replay__is_help(const char *arg);

/** Parse a non-negative decimal integer (NULL is an error). @return 0 or SP_EINVAL. */
int replay__parse_count(const char *s, int64_t *out);

/** Print "stockpot-replay: <msg>" on stderr. */
void replay__error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
