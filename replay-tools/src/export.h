/*
 * `stockpot-replay export` (private to replay-tools): its parsed options, the log bound
 * both exports share (--until), the manifest, the progress line, and the two exports:
 * export_analytics.c (the analytics view's tables) and export_events.c (the events).
 */
#ifndef REPLAY_EXPORT_H
#define REPLAY_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "es/catalogue.h"
#include "es/log.h"
#include "export_table.h"
#include "sp/config.h"

/* Value of "format" in every manifest. */
#define REPLAY_EXPORT_FORMAT "stockpot-export/1"
/* --until options accepted (each may name several positions). */
#define REPLAY_EXPORT_MAX_UNTIL 64

/** What `stockpot-replay export <kind>` was asked; cmd_export.c fills and checks it. */
struct replay__export_opts {
    const struct sp_config *cfg; /* borrowed */
    enum replay__format fmt;
    const char *out; /* analytics: the directory; events: the file, NULL = stdout */
    bool force;      /* write into a non-empty directory / over a file */
    bool has_from, has_to;
    int32_t from, to;                           /* days (proj/analytics.h), inclusive */
    const char *until[REPLAY_EXPORT_MAX_UNTIL]; /* the --until values, borrowed from argv */
    size_t n_until;
    unsigned windows; /* analytics: bit (1 << enum proj_analytics_window) per window */
    size_t limit;     /* analytics: recipes per popular window, 1..100 */
    bool has_at;
    int64_t at_us;       /* analytics: popular windows end here (default: end of `to`) */
    const char *tmp_dir; /* analytics --until: where the private view is built */
    bool has_types;
    bool types[ES_TYPE__COUNT]; /* events: the types kept, when has_types */
};

/**
 * The bound of an export, one next offset per partition of @p log: the --until positions
 * of @p o (records with offset < the bound are exported: the meaning of a checkpoint),
 * or the log's ends now. With --until every partition must be named once, at or below
 * its end. Prints what is wrong (replay__error).
 * @param[out] ends    owned (free()), *nparts entries
 * @return 0; REPLAY_EXIT_USAGE if the positions do not fit the log; REPLAY_EXIT_FAIL if
 *         the log's ends cannot be read.
 */
int replay__export_bounds(const struct replay__export_opts *o,
                          struct es_log *log,
                          int64_t **ends,
                          int32_t *nparts);

/** The position vector ["<partition>:<next offset>", ...] of @p n bounds. @return new
 *  reference. */
json_t *replay__position_json(const int64_t *ends, int32_t n);

/**
 * Write @p manifest (borrowed) to @p path as 2-space indented JSON with a final newline,
 * keys in insertion order, through a temporary file renamed into place.
 * @return 0; -errno (printed) on failure.
 */
int replay__manifest_write(const char *path, const json_t *manifest);

/** Add {"name", "rows", "sha256"} of one written file to the array @p files. */
void replay__manifest_file(json_t *files, const char *name, int64_t rows, const char *sha256);

/** A progress line on stderr, drawn only when stderr is a terminal. */
struct replay__progress {
    bool on;          /* stderr is a terminal */
    const char *what; /* e.g. "folded" */
    int64_t t0_us, last_us;
};

/** Start a progress line for @p what ("folded", "exported"), on if stderr is a tty. */
void replay__progress_init(struct replay__progress *pg, const char *what);

/** Redraw (at most 4 times a second, and when @p done reaches @p total): done, events/s,
 *  ETA from @p total. */
void replay__progress_update(struct replay__progress *pg, int64_t done, int64_t total);

/** End the line (a newline if anything was drawn). */
void replay__progress_end(struct replay__progress *pg);

/** Whether SIGINT or SIGTERM arrived since the export started (cmd_export.c catches
 *  them so a stopped export still removes what it wrote). */
bool replay__export_interrupted(void);

/**
 * `export analytics`: the analytics view's tables into o->out (see replay.h).
 * @return a REPLAY_EXIT_* status; what failed is printed.
 */
int replay__export_analytics(const struct replay__export_opts *o);

/**
 * `export events`: the events of the log into o->out or stdout (see replay.h).
 * @return a REPLAY_EXIT_* status; what failed is printed.
 */
int replay__export_events(const struct replay__export_opts *o);

#endif
