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
 * the size the writer set and adopt a larger one if the writer reopens with it. Every open
 * (writer or reader) clears the reader slots of processes that died inside a read
 * transaction (mdb_reader_check: a stale slot pins old pages, so the log would only grow)
 * and logs at warn level how many it cleared.
 *
 * Threads: handles use MDB_NOTLS, so es_log_read, es_log_end and es_log_wait may run
 * concurrently from several threads on one handle; es_log_append from one thread at a
 * time. Never use a handle across fork(): open a new one in the child. Do not open the
 * same log twice in one process while a handle is open (LMDB's POSIX locks are per
 * process); the writer handle reads as well.
 *
 * Kafka backend (log.backend = kafka; librdkafka): one topic (kafka.topic) of N
 * partitions; record key = event stream (so a stream lives in one partition, in order),
 * partitioner murmur2_random, value = the encoded envelope, headers ce_type, ce_id,
 * content-type ("application/cloudevents+json") and xxh3 (16 lower-case hex digits of
 * the XXH3-64 of the value). A position is (partition, offset) as Kafka assigns it. The
 * writer is an idempotent transactional producer (acks=all, kafka.transactional_id):
 * each es_log_append is one Kafka transaction, so read_committed readers see a batch
 * whole or not at all, and a second writer with the same transactional.id fences the
 * first (SP_EFENCED). The writer creates the topic (kafka.partitions,
 * kafka.replication_factor) if absent; a reader never does (SP_ENOTFOUND). Readers use
 * a consumer with isolation.level=read_committed, no auto-commit and no group
 * subscription (the partition is assigned at the requested offset); callers keep their
 * own checkpoints (next_offset). Projections consume through es/consumer.h instead
 * (consumer groups, rebalances).
 *
 * Offsets on Kafka are NOT contiguous: transaction commit/abort markers (control records)
 * and aborted records take offsets that readers never see. Hence, for Kafka:
 *  - es_log_end is the partition's end as the broker reports it (the high watermark;
 *    the last stable offset for read_committed), not a record count: every committed
 *    record has an offset below it, and the next appended record gets an offset ≥ it.
 *  - es_log_read's next_offset, when the read reaches the end, is that end offset
 *    (past trailing control records), so a tail loop of es_log_wait + es_log_read never
 *    spins on a marker; otherwise it is the offset after the last record passed.
 *  - On a real cluster the markers of a committed transaction are written shortly after
 *    es_log_append returns, so a reader may briefly not see the batch yet: use
 *    es_log_wait (which polls es_log_end) for read-your-writes.
 * Kafka handles: es_log_read serialises on a per-handle lock (one consumer per handle);
 * es_log_end and es_log_wait may run from any thread; es_log_append from one thread.
 * Kafka calls are time-bounded whatever the brokers do (down, hung, leader unreachable):
 * es_log_end and es_log_read return within about kafka.timeout_ms, es_log_wait within
 * about its own timeout (at most kafka.timeout_ms once the end cannot be read). End
 * offsets are asked with ListOffsets through rd_kafka_offsets_for_times, not
 * rd_kafka_query_watermark_offsets, which in librdkafka < 2.3.0 ignores its timeout
 * (over 60 s with the partition's leader down: librdkafka issue #2588).
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
 * Open the log chosen by config key log.backend: "lmdb" (log.dir, log.map_size_mb,
 * log.max_event_bytes) or "kafka". A writer creates the directory and environment if absent.
 * log.backend = kafka opens es_log_open_kafka with the kafka.* keys and
 * log.max_event_bytes.
 * @param[out] out  owned; close with es_log_close()
 * @return 0; SP_ESTATE if @p mode is writer and another process holds the writer lock;
 *         SP_ENOTFOUND if a reader finds no log; SP_EINVAL (eb->field "log.backend") for
 *         an unknown backend; SP_EDB / -errno on open failure; for Kafka, the errors of
 *         es_log_open_kafka.
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

/** Settings of the Kafka backend (config keys kafka.*, see sp/config.h). */
struct es_kafka_opts {
    const char *brokers;          /* bootstrap servers "host:port[,host:port...]" */
    const char *topic;            /* e.g. "stockpot.events" */
    int32_t partitions;           /* used only when the writer creates the topic */
    int16_t replication_factor;   /* used only when the writer creates the topic */
    const char *transactional_id; /* writer's transactional.id; readers ignore it (NULL or
                                   * "" is fine for them) */
    int timeout_ms;               /* bound on one operation (open, append, read, end), ms */
    size_t max_event_bytes;       /* cap on one encoded envelope, bytes */
};

/**
 * Open the Kafka log directly (tests, tools); es_log_open calls it for log.backend =
 * kafka. @p opts and its strings are copied. A writer checks the topic (creating it with
 * Admin CreateTopics if absent; TOPIC_ALREADY_EXISTS is fine) and initialises its
 * transactions (init_transactions fences any older writer with the same
 * transactional.id). A reader only checks that the topic exists.
 * @param[out] out  owned; close with es_log_close()
 * @return 0; SP_EINVAL for bad options (eb->field names the kafka.* key; a writer needs
 *         a non-empty kafka.transactional_id, a reader none); SP_ENOTFOUND if
 *         a reader finds no topic; SP_EUNAVAIL if the brokers cannot be reached or the
 *         topic cannot be created within timeout_ms; SP_EFENCED if the writer's
 *         transactions cannot be initialised because of a fatal producer error.
 */
SP_MUST_CHECK int es_log_open_kafka(const struct es_kafka_opts *opts,
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
 *         Kafka: 0 only once the transaction is committed (every record acknowledged
 *         with acks=all, positions from the delivery reports). SP_EUNAVAIL if it could
 *         not be appended within kafka.timeout_ms or the broker returned an abortable
 *         error: the transaction is aborted, so read_committed readers never see any of
 *         it (if even the abort fails, eb says the outcome is unknown: re-read the log);
 *         the producer is then dropped and the next append re-creates it (a new
 *         init_transactions, which also resets idempotence sequence state).
 *         SP_EFENCED if another writer with the same transactional.id took over, or the
 *         producer hit a fatal error: nothing of this batch is acknowledged, and every
 *         later append on this handle fails with SP_EFENCED (the process must stop
 *         writing; reopen only if it should take over again).
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
 *                          @p fn stopped; from_offset if none was passed (nothing to
 *                          read, max = 0, or an error first), on every backend
 * Kafka: the "snapshot" is the partition up to its end as queried at the call; records
 * committed later are left for the next call. The whole call (end query, fetches) is
 * bounded by kafka.timeout_ms (plus, if another thread is reading on the same handle, the
 * wait for its read). A record whose xxh3 header is missing or
 * does not match its value is passed with status SP_ECORRUPT.
 * @return 0 at the end of the snapshot or after max records; the callback's non-zero
 *         value if it stopped; SP_EINVAL for a bad partition; SP_EDB on read failure;
 *         Kafka: SP_EUNAVAIL if the end was not reached within kafka.timeout_ms, or the
 *         partition's end could not be read (its leader is down: eb names the partition;
 *         next_offset still tells how far it got), SP_ENOTFOUND if @p from_offset was
 *         already deleted by retention.
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
 * Kafka: the end offset the broker reports (see the top of this file): the next record
 * gets an offset ≥ it, and not every offset below it holds a record.
 * @return 0 or SP_EDB / SP_EINVAL; Kafka: SP_EUNAVAIL (eb names the partition) if the
 *         partition's leader does not answer within kafka.timeout_ms.
 */
SP_MUST_CHECK int
es_log_end(struct es_log *log, int32_t partition, int64_t *end_offset, struct sp_errbuf *eb);

/**
 * Wait until @p partition's end offset is greater than @p offset (a record at or past
 * @p offset exists), or @p timeout_ms passes. Works across processes: polls the end
 * with short read transactions, backing off from 0.2 ms to 5 ms.
 * Kafka: each poll of the end is bounded by the time left (at least 100 ms) and
 * kafka.timeout_ms, so the call returns within about max(@p timeout_ms, 100 ms) and never
 * waits on a silent broker longer than kafka.timeout_ms. Callers that loop on it should
 * back off after SP_EUNAVAIL.
 * @return 0 when data is there; SP_ETIMEDOUT (eb says why when the end could not be read
 *         either); SP_EDB; Kafka: SP_EUNAVAIL if the end could not be read while time
 *         was left.
 */
SP_MUST_CHECK int es_log_wait(
    struct es_log *log, int32_t partition, int64_t offset, int timeout_ms, struct sp_errbuf *eb);

/**
 * Convenience for one record: decode and verify it into @p ev (see es_event_decode);
 * sets ev->pos. @return 0; rec->status if it is corrupt; es_event_decode's errors.
 */
SP_MUST_CHECK int
es_log_record_decode(const struct es_log_record *rec, struct es_event *ev, struct sp_errbuf *eb);

/** es_log_record_decode with es_event_decode_ex's @p flags (ES_DECODE_DATA_JSON).
 *  @return es_log_record_decode's. */
SP_MUST_CHECK int es_log_record_decode_ex(const struct es_log_record *rec,
                                          unsigned flags,
                                          struct es_event *ev,
                                          struct sp_errbuf *eb);

#endif
