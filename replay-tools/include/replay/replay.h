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

/**
 * `export analytics|events [options]`: write what the log and the analytics view hold as
 * files another tool can read, reproducibly: the same source gives the same bytes.
 *
 * `export analytics --from DATE --to DATE --format csv|ndjson --out DIR [--force]
 * [--until POS[,POS...]] [--window W[,W...]] [--limit N] [--at TIME] [--tmp-dir DIR]`:
 * one file per table of the analytics view (proj/analytics.h) into DIR, created (a DIR
 * that exists and is not empty only with --force, which replaces the files of the same
 * names and removes an old manifest.json first):
 *  - days.<ext>: date, active, then every counter by proj_analytics_counter_name, one row
 *    per day of [from, to] (at most PROJ_ANALYTICS_MAX_RANGE_DAYS days);
 *  - active.<ext>: granularity (day, week, month), start, end, active: every period
 *    overlapping [from, to], clipped to it (proj_analytics_active_periods);
 *  - popular.<ext>: window, rank, recipe_id, title, author_id, score, likes, comments,
 *    unlikes: the N (default and at most 100) most popular recipes of each window W
 *    (24h, 7d, 30d, all; default all four) ending at TIME (YYYY-MM-DD = the end of that
 *    day, or RFC 3339; default 23:59:59.999999 of `to`);
 *  - retention.<ext>: cohort_week, size, week (0 = the signup week), active, share
 *    (active / size, 6 decimals; 0 for an empty cohort);
 *  - manifest.json, written last (its presence means the export is complete):
 *    {"format": "stockpot-export/1", "kind": "analytics", "from", "to", "popular": {"at",
 *    "windows", "limit"}, "position": ["<partition>:<next offset>", ...], "files":
 *    [{"name", "rows", "sha256"}, ...]}.
 * The view is the live one, <views.dir>/analytics, read in one snapshot whose checkpoints
 * are the position (a partition without a checkpoint is at 0). With --until, a private
 * view of the log up to the given position is built in a temporary directory under
 * --tmp-dir ($TMPDIR, else /tmp) with proj_rebuild_view_until (projector.poison_policy,
 * views.batch_max, views.map_size_mb), exported, then removed.
 *
 * `export events --format ndjson|csv [--out FILE|-] [--force] [--type T[,T...]]
 * [--from DATE] [--to DATE] [--until POS[,POS...]]`: one row per event in log order
 * (partition 0 first, offset order within a partition): partition, offset, stream,
 * stream_version, type, time (RFC 3339 UTC µs), actor (null if none), id, data (the
 * payload as compact JSON: an object in NDJSON, its text in CSV) without the secret
 * fields password_hash, refresh_hash and token_hash (export_events.c lists them), kept
 * when the type is one of T (catalogue names) and the UTC day of its time is within
 * [from, to] (either bound optional). Streamed: memory does not grow with the log. To
 * stdout by default; --out FILE (replaced only with --force), when it is a regular file,
 * also gets FILE.manifest.json, shaped as above with kind "events", "types" (null = every type),
 * "skipped" (records that fail their checksum or do not decode: reported on stderr and
 * left out) and one file.
 *
 * --until: one "<partition>:<offset>" per partition of the log (es_position_parse;
 * comma-separated, or --until repeated), the EXCLUSIVE bound: the records with offset
 * below it, as a checkpoint or a manifest's position means it (so a manifest's position
 * given back as --until exports the same records). Every partition must be named
 * exactly once, each at most its end: a partition left out, named twice, unknown, or a
 * position past the end is refused. Without --until the bound is each partition's end
 * when the export starts. Same log and same --until: byte-identical files (manifest
 * included), whenever and wherever it runs: no file holds the time of the run.
 *
 * CSV is RFC 4180 (header row, CRLF line ends, fields with a comma, a quote or a line
 * break quoted, quotes doubled); NDJSON is one compact JSON object per line, keys in
 * column order, ids as strings; UTF-8 throughout; numbers in the C locale. A progress
 * line (events, events/s, ETA) is drawn on stderr while folding (--until) or exporting
 * events, only when stderr is a terminal. SIGINT / SIGTERM stop the export and remove
 * what it wrote.
 * @return REPLAY_EXIT_OK; REPLAY_EXIT_USAGE for bad options (a missing or bad date, an
 *         inverted or too long range, an unknown format, window or type, a bad --until
 *         position or one that does not fit the log); REPLAY_EXIT_FAIL if the view is not
 *         built (the message suggests `stockpot-replay rebuild analytics`), DIR is not
 *         empty or FILE exists without --force, the log or the view cannot be read, a
 *         write fails, a poison event halts the private view (projector.poison_policy =
 *         halt), or it was interrupted; what was written is then removed.
 */
int replay_cmd_export(const struct sp_config *cfg, int argc, char **argv);

#endif
