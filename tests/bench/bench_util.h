/* What the benchmark programs (bench_http, bench_append, bench_search_index) share around
 * their timed loops: numeric option values, the records of a JSONL data file, recipe
 * payloads and latency percentiles. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sp/err.h"

/**
 * Parse a numeric option value.
 *
 * @param s         NUL-terminated text; all of it must be one base-10 integer
 * @param min, max  accepted range, inclusive
 * @param[out] out  the value; left unchanged on error
 * @return 0; SP_EINVAL if @p s is not a base-10 integer (empty, trailing characters);
 *         -ERANGE if it is outside [@p min, @p max] or does not fit a long.
 *         Prints nothing: the caller says what was wrong.
 */
SP_MUST_CHECK int bench_parse_long(const char *s, long min, long max, long *out);

/**
 * Make one record from one line of a JSONL file.
 *
 * @param line  the line, NUL-terminated, with its newline if it had one; borrowed
 * @return an owned record (freed by the caller, as the callback's owner defines), or
 *         NULL to skip the line
 */
typedef void *(*bench_record_fn)(const char *line);

/** Frees one record made by a bench_record_fn. */
typedef void (*bench_record_free_fn)(void *rec);

/** Records loaded from a JSONL file, in file order. */
struct bench_records {
    void **items; /* owned array of n records, each owned (made by the bench_record_fn) */
    size_t n;
};

/**
 * Load every line of the JSONL file at @p path through @p make, keeping the records it
 * returns (lines it returns NULL for are skipped).
 *
 * @param path       file to read
 * @param make       turns a line into a record; see bench_record_fn
 * @param[out] recs  filled on success; release with bench_records_release(). On error it
 *                   is left empty ({NULL, 0}) and holds nothing to free.
 * @return 0; -errno if @p path cannot be opened; -ENODATA if no line made a record.
 *         Allocation failure aborts (sp_xmalloc).
 */
SP_MUST_CHECK int
bench_records_load(const char *path, bench_record_fn make, struct bench_records *recs);

/**
 * Free every record with @p free_rec, then the array, and leave @p recs empty.
 * Safe on an empty or already released @p recs.
 */
void bench_records_release(struct bench_records *recs, bench_record_free_fn free_rec);

/** bench_record_fn of a recipes JSONL file: the line as a JSON object (owned, free with
 *  bench_recipe_free) when it has a string title, else NULL (skipped). */
void *bench_recipe_of(const char *line);

/** bench_record_free_fn of bench_recipe_of's records. */
void bench_recipe_free(void *rec);

/**
 * The RecipeCreated payload (schemas/events/RecipeCreated.v1.json) of a recipe record:
 * the given ids, title, description, ingredients, steps and tags from @p rec (empty when
 * absent or null), no images and, when @p with_language, the record's "lang" as language.
 * @return owned (json_decref)
 */
json_t *bench_recipe_payload(const json_t *rec,
                             const char *recipe_id,
                             const char *author_id,
                             bool with_language);

/** Latency percentiles of a run, in milliseconds. */
struct bench_latency {
    double p50_ms; /* nearest-rank percentiles (the smallest latency that at least */
    double p90_ms; /* that share of the samples does not exceed); all 0 if no sample */
    double p99_ms;
    double max_ms;
};

/**
 * Sort latencies and take their p50, p90, p99 and maximum.
 *
 * @param lat_us  @p n latencies in microseconds; sorted in place (ascending). May be
 *                NULL when @p n is 0.
 * @param n       number of latencies, >= 0
 * @param[out] out  the percentiles in milliseconds (microseconds / 1000); all 0 if @p n is 0
 */
void bench_latency_summarize(int64_t *lat_us, long n, struct bench_latency *out);

#endif
