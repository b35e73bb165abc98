/*
 * The event log: append batches of events durably, read them back from a position, and
 * tail the end. Backends: the embedded LMDB log (one writer process, any number of
 * reader processes; behaves as a one-partition Kafka topic) and, from issue 3, Kafka.
 *
 * Embedded layout (LMDB environment in log.dir): table "log" keyed by the 64-bit offset
 * (big-endian, so keys sort by offset) holding [8-byte little-endian XXH3-64 of the
 * value][encoded envelope JSON]; table "meta" ("format" = "1"; "writer" = JSON
 * {pid, host, opened_at} of the last writer to open it). The writer holds an exclusive
 * flock on <dir>/writer.lock (which also holds its pid, for messages) for its lifetime
 * and opens the environment with full sync (no MDB_NOSYNC / MDB_NOMETASYNC). Readers
 * open it with MDB_RDONLY: they never write data.mdb, but LMDB needs <dir>/lock.mdb
 * writable (its reader table), so a reader needs write access to that file. Readers map
 * the size the writer set and adopt a larger one if the writer reopens with it.
 *
 * Threads: handles use MDB_NOTLS, so es_log_read, es_log_end and es_log_wait may run
 * concurrently from several threads on one handle; es_log_append from one thread at a
 * time. Never use a handle across fork(): open a new one in the child. Do not open the
 * same log twice in one process while a handle is open (LMDB's POSIX locks are per
 * process); the writer handle reads as well.
 */
#ifndef ES_LOG_H
#define ES_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "es/event.h"
#include "sp/config.h"
#include "sp/err.h"

struct es_log;

enum es_log_mode {
    ES_LOG_READER = 0, /* read and tail only */
    ES_LOG_WRITER = 1, /* also append; at most one per log */
};

/**
 * Open the log chosen by config key log.backend (log.dir, log.map_size_mb,
 * log.max_event_bytes). A writer creates the directory and environment if absent.
 * @param[out] out  owned; close with es_log_close()
 * @return 0; SP_ESTATE if @p mode is writer and another process holds the writer lock;
 *         SP_ENOTFOUND if a reader finds no log; SP_EINVAL (eb->field "log.backend") for
 *         a backend other than "lmdb"; SP_EDB / -errno on open failure.
 */
SP_MUST_CHECK int es_log_open(const struct sp_config *cfg,
                              enum es_log_mode mode,
                              struct es_log **out,
                              struct sp_errbuf *eb);

/** Open the embedded LMDB log at @p dir directly (tests, tools). Same errors as es_log_open. */
SP_MUST_CHECK int es_log_open_lmdb(const char *dir,
                                   size_t map_size_bytes,
                                   size_t max_event_bytes,
                                   enum es_log_mode mode,
                                   struct es_log **out,
                                   struct sp_errbuf *eb);

/** Close the log (releasing the writer lock); NULL is a no-op. */
void es_log_close(struct es_log *log);

/** Number of partitions (1 for the embedded log). */
int32_t es_log_partitions(const struct es_log *log);

/**
 * Append @p n events as one batch, all or nothing: either every event is durable (LMDB
 * commit synced to disk) and readers see all of them at once, or none is.
 * @param evs        events to append (not modified; encoded and checksummed here)
 * @param[out] pos   n positions, one per event, in order (may be NULL)
 * @return 0; SP_ETOOBIG if an encoded event exceeds log.max_event_bytes (nothing
 *         appended); SP_ESTATE if opened as reader; SP_EUNAVAIL / SP_EDB / -errno on
 *         storage failure (nothing appended).
 * @locality the writer's thread
 */
SP_MUST_CHECK int es_log_append(struct es_log *log,
                                const struct es_event *const *evs,
                                size_t n,
                                struct es_position *pos,
                                struct sp_errbuf *eb);

/** One record as read from the log; everything borrowed for the callback's duration. */
struct es_log_record {
    struct es_position pos;
    const void *value; /* encoded envelope JSON (not NUL-terminated) */
    size_t value_len;  /* bytes */
    uint64_t checksum; /* as stored */
    int status;        /* 0, or SP_ECORRUPT if the checksum does not match the value */
    const char *error; /* human detail when status != 0, else NULL */
};

/** Called per record; return 0 to continue, non-zero to stop (returned by es_log_read). */
typedef int (*es_log_record_fn)(const struct es_log_record *rec, void *ud);

/**
 * Call @p fn for up to @p max records of @p partition with offset ≥ @p from_offset, in
 * offset order, from one consistent snapshot. Corrupt records are passed with status
 * SP_ECORRUPT rather than skipped, so callers decide (dead-letter, halt, report).
 * @param[out] next_offset  offset after the last record passed, including one on which
 *                          @p fn stopped (from_offset if none)
 * @return 0 at the end of the snapshot or after max records; the callback's non-zero
 *         value if it stopped; SP_EINVAL for a bad partition; SP_EDB on read failure.
 */
SP_MUST_CHECK int es_log_read(struct es_log *log,
                              int32_t partition,
                              int64_t from_offset,
                              size_t max,
                              es_log_record_fn fn,
                              void *ud,
                              int64_t *next_offset,
                              struct sp_errbuf *eb);

/**
 * The offset the next appended event of @p partition will get (= number of records).
 * @return 0 or SP_EDB / SP_EINVAL.
 */
SP_MUST_CHECK int
es_log_end(struct es_log *log, int32_t partition, int64_t *end_offset, struct sp_errbuf *eb);

/**
 * Wait until @p partition's end offset is greater than @p offset (a record at or past
 * @p offset exists), or @p timeout_ms passes. Works across processes: polls the end
 * with short read transactions, backing off from 0.2 ms to 5 ms.
 * @return 0 when data is there; SP_ETIMEDOUT; SP_EDB.
 */
SP_MUST_CHECK int es_log_wait(
    struct es_log *log, int32_t partition, int64_t offset, int timeout_ms, struct sp_errbuf *eb);

/**
 * Convenience for one record: decode and verify it into @p ev (see es_event_decode);
 * sets ev->pos. @return 0; rec->status if it is corrupt; es_event_decode's errors.
 */
SP_MUST_CHECK int
es_log_record_decode(const struct es_log_record *rec, struct es_event *ev, struct sp_errbuf *eb);

#endif
