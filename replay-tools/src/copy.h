/* copy-log's engine, without the command line (private to replay-tools; used by tests). */
#ifndef REPLAY_COPY_H
#define REPLAY_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp/config.h"
#include "sp/err.h"

#define REPLAY_COPY_TXN_SUFFIX   "-copy-log" /* appended to kafka.transactional_id */
#define REPLAY_COPY_BATCH        500         /* default events per Kafka transaction */
#define REPLAY_COPY_BATCH_MAX    10000
#define REPLAY_COPY_PROGRESS_USS 1000000 /* at most one progress line per second, µs */

struct replay__copy_opts {
    size_t batch_max; /* events per append (one Kafka transaction), 1..REPLAY_COPY_BATCH_MAX */
    int64_t limit;    /* most events to copy in this run; -1 = all */
    bool live;        /* do not take the embedded writer lock (see replay_cmd_copy_log) */
    bool progress;    /* print progress lines on stderr */
};

struct replay__copy_stats {
    int64_t present; /* distinct event ids already in the topic before the copy */
    int64_t read;    /* records of the embedded log looked at */
    int64_t copied;  /* events appended to Kafka in this run */
    int64_t skipped; /* events not copied because their id was already in the topic */
    int64_t foreign; /* ids in the topic that the embedded log does not hold */
    int64_t end;     /* end offset of the embedded log (its record count) at the start */
    int64_t elapsed_us;
};

/**
 * Copy the embedded log (log.dir) into the Kafka log (kafka.*, created when absent) as
 * replay_cmd_copy_log describes; the statistics are filled even on failure (what was done).
 * @return 0 when the copy reached the end (or opts->limit); SP_ENOTFOUND if there is no
 *         embedded log; SP_ESTATE if its writer is running (unless opts->live);
 *         SP_EUNAVAIL if Kafka cannot be reached or an append failed; SP_EFENCED if
 *         another copy with the same transactional.id took over; SP_ECORRUPT if a record
 *         of either log fails its checksum or does not decode, or an event would not be
 *         copied byte for byte (nothing more is copied); eb says which and why.
 */
SP_MUST_CHECK int replay__copy_log(const struct sp_config *cfg,
                                   const struct replay__copy_opts *opts,
                                   struct replay__copy_stats *st,
                                   struct sp_errbuf *eb);

#endif
