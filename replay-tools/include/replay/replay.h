/*
 * stockpot-replay, the operator CLI: its subcommands as a library (replay_lib), so the
 * binary's main.c only finds the command and loads the configuration. Each subcommand
 * takes the loaded configuration and its own arguments (after the command name), prints
 * its results on stdout and its messages on stderr ("stockpot-replay: ..."), and returns
 * the process exit status: REPLAY_EXIT_OK, REPLAY_EXIT_FAIL (failure, or a fault found)
 * or REPLAY_EXIT_USAGE (bad arguments). "--help" as the first argument prints the
 * command's usage on stdout and returns REPLAY_EXIT_OK.
 *
 * The log is opened as a reader (log.dir: the embedded log's writer may keep running);
 * PostgreSQL is reached with pg.conninfo / the PG* environment.
 */
#ifndef REPLAY_REPLAY_H
#define REPLAY_REPLAY_H

#include <stdio.h>

#include "sp/config.h"

#define REPLAY_EXIT_OK    0
#define REPLAY_EXIT_FAIL  1
#define REPLAY_EXIT_USAGE 2

/** A subcommand: `stockpot-replay <name> [args]`. */
struct replay_cmd {
    const char *name;    /* e.g. "rebuild" */
    const char *summary; /* one line for the top-level usage */
    int (*fn)(const struct sp_config *cfg, int argc, char **argv);
};

/**
 * Find a subcommand by name.
 * @return borrowed, static; NULL if there is no such command
 */
const struct replay_cmd *replay_cmd_find(const char *name);

/** Print the top-level usage (every command and its summary) and the config keys to @p f. */
void replay_usage(FILE *f);

/**
 * `dump [--stream S] [--type T] [--from OFFSET] [--limit N]`: print the stored envelope
 * JSON of each event, one per line (NDJSON), in log order, filtered. Records that fail
 * their checksum or do not decode are reported on stderr and skipped.
 * @return REPLAY_EXIT_OK; REPLAY_EXIT_FAIL if the log cannot be opened or read;
 *         REPLAY_EXIT_USAGE for a bad option.
 */
int replay_cmd_dump(const struct sp_config *cfg, int argc, char **argv);

/**
 * `verify`: scan the whole log: checksums, every record decodes, per-stream versions
 * contiguous from 1, event ids unique. Prints each fault and a summary line
 * ("verified N records in M streams: F faults").
 * @return REPLAY_EXIT_OK; REPLAY_EXIT_FAIL if any fault was found or the log cannot be
 *         read; REPLAY_EXIT_USAGE for an argument.
 */
int replay_cmd_verify(const struct sp_config *cfg, int argc, char **argv);

/**
 * `migrate`: apply the numbered SQL migrations not yet recorded (proj/migrate.h).
 * @return REPLAY_EXIT_OK; REPLAY_EXIT_FAIL if PostgreSQL is unreachable or a migration
 *         fails (it is rolled back); REPLAY_EXIT_USAGE for an argument.
 */
int replay_cmd_migrate(const struct sp_config *cfg, int argc, char **argv);

/**
 * `rebuild <projection>`: apply the migrations, then empty the projection's tables,
 * checkpoint and dead letters and re-apply the whole log in one transaction
 * (proj_rebuild: readers keep seeing the old view until it commits). Prints the totals
 * and the speed (events/s) under projector.poison_policy and projector.batch_max.
 * @return REPLAY_EXIT_OK; REPLAY_EXIT_FAIL if it failed (nothing changed);
 *         REPLAY_EXIT_USAGE for an unknown projection.
 */
int replay_cmd_rebuild(const struct sp_config *cfg, int argc, char **argv);

/**
 * `checksum <projection>`: print the md5 of the projection's tables in a total order
 * (proj_checksum), to compare a live view with a rebuilt one.
 * @return REPLAY_EXIT_OK; REPLAY_EXIT_FAIL on a database error; REPLAY_EXIT_USAGE for
 *         an unknown projection.
 */
int replay_cmd_checksum(const struct sp_config *cfg, int argc, char **argv);

#endif
