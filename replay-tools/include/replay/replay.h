/*
 * stockpot-replay, the operator CLI: its subcommands as a library (replay_lib), so the
 * binary's main.c only finds the command and loads the configuration. Each subcommand
 * takes the loaded configuration and its own arguments (after the command name), prints
 * its results on stdout and its messages on stderr ("stockpot-replay: ..."), and returns
 * the process exit status: REPLAY_EXIT_OK, REPLAY_EXIT_FAIL (failure, or a fault found)
 * or REPLAY_EXIT_USAGE (bad arguments). "--help" as the first argument prints the
 * command's usage on stdout and returns REPLAY_EXIT_OK.
 *
 * The log is opened as a reader (log.dir: the embedded log's writer may keep running,
 * except during copy-log); PostgreSQL is reached with pg.conninfo / the PG* environment.
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

/**
 * `copy-log --to kafka [--batch N] [--limit N] [--live]`: copy the embedded log
 * (log.dir, whatever log.backend says) into the Kafka log (kafka.brokers, kafka.topic;
 * created with kafka.partitions and kafka.replication_factor when absent).
 *
 * Records are copied in embedded-log order, each envelope byte for byte (an event whose
 * decode and re-encode differ from the stored bytes stops the copy before it), keyed by
 * stream, so each stream lands in one partition in order, with every event id. Batches
 * of N events (default 500) are appended with es_log_append, one Kafka transaction each,
 * by a writer with transactional.id "<kafka.transactional_id>-copy-log" (a running
 * command-api is not fenced; a rerun aborts any transaction an interrupted copy left
 * open).
 *
 * Exactly once across reruns: before copying, the id of every committed record of every
 * partition is read (read_committed); embedded events with one of those ids are skipped.
 * Since batches are committed in log order, what an interrupted run (or --limit N) has
 * copied is a prefix of the embedded log, so the next run continues it in order.
 *
 * command-api must be stopped during the copy, or the embedded log would keep growing
 * under it: the copy holds the embedded writer lock (<log.dir>/writer.lock) and refuses
 * to start while a writer holds it. --live skips the lock and copies the log up to its
 * end at the start (stop command-api and run again to copy the rest). The topic must
 * keep every record (no retention deletes): the ids are read from offset 0.
 *
 * Prints progress on stderr (at most once a second) and a summary on stdout: events
 * read, copied, skipped as already present, seconds and events/s; warns if the topic
 * holds events the embedded log does not.
 * @return REPLAY_EXIT_OK; REPLAY_EXIT_FAIL if there is no embedded log, its writer is
 *         running, the brokers cannot be reached, an append fails (the batch is aborted:
 *         run again), or a record is corrupt; REPLAY_EXIT_USAGE for `--to` other than
 *         kafka or a bad option.
 */
int replay_cmd_copy_log(const struct sp_config *cfg, int argc, char **argv);

#endif
