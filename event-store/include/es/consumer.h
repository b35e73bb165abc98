/*
 * Consumers for projections: deliver the log's records, partition by partition in offset
 * order, to a projection that keeps its own checkpoints. One API, both log backends.
 *
 * Offsets live in the projection's own store (in the same transaction as its view
 * update), never in Kafka's __consumer_offsets: when partitions are assigned, on_assign
 * asks the projection where to start each one; the consumer never commits offsets.
 * A checkpoint is the offset of the NEXT record to apply (last applied offset + 1).
 *
 * Embedded LMDB log: one partition, 0, assigned to the consumer on its first
 * es_consumer_poll (on_assign([0])); group_id is ignored (every consumer reads the whole
 * log); reads go through es_log_read and waits through es_log_wait's polling of the end.
 * The consumer opens its own reader handle on the log: do not open the same LMDB log again
 * in the same process while the consumer is open (see es/log.h).
 *
 * Kafka: a high-level consumer (librdkafka) in consumer group group_id, subscribed to
 * kafka.topic, with isolation.level=read_committed (aborted transactions are never
 * delivered), enable.auto.commit=false, enable.auto.offset.store=false and
 * auto.offset.reset=earliest (a start offset already deleted by retention restarts at the
 * earliest record still kept). Consumers of one group split the topic's partitions.
 * Rebalancing uses the EAGER protocol (partition.assignment.strategy=range,roundrobin):
 * on every rebalance each member's whole assignment is revoked (on_revoke) and a new one
 * assigned (on_assign), even for partitions it keeps. Every record's xxh3 header is
 * verified, as es_log_read does. The consumer opens its own connections; it does not need
 * an es_log handle.
 *
 * Threads: a consumer is used from one thread at a time; the callbacks run on the thread
 * calling es_consumer_poll (or es_consumer_close).
 */
#ifndef ES_CONSUMER_H
#define ES_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#include "es/log.h"
#include "sp/config.h"
#include "sp/err.h"

struct es_consumer;

/**
 * Partitions @p partitions[0..n) were just assigned to this consumer. Set
 * @p start_offsets[i] (preset to 0, the beginning) to the offset to start partition
 * @p partitions[i] from: the projection's stored checkpoint. Runs inside
 * es_consumer_poll. @return 0; any non-zero value (e.g. the checkpoints could not be
 * loaded) makes es_consumer_poll return it and leaves the consumer failed: close it.
 */
typedef int (*es_consumer_assign_fn)(void *ud,
                                     const int32_t *partitions,
                                     size_t n,
                                     int64_t *start_offsets);

/**
 * Partitions @p partitions[0..n) are about to be taken away (a rebalance, or
 * es_consumer_close). The projection finishes (commits) or abandons (rolls back) its
 * current batch before returning; after it returns, records of these partitions must not
 * be applied by this consumer. Runs inside es_consumer_poll or es_consumer_close.
 */
typedef void (*es_consumer_revoke_fn)(void *ud, const int32_t *partitions, size_t n);

/** Options of a consumer; strings are copied by es_consumer_open. */
struct es_consumer_opts {
    const char *group_id;            /* Kafka consumer group, e.g. "stockpot-projection-pg";
                                      * required for Kafka, ignored by LMDB */
    es_consumer_assign_fn on_assign; /* NULL = start every partition at 0 */
    es_consumer_revoke_fn on_revoke; /* may be NULL */
    void *ud;                        /* passed to both callbacks */
    int session_timeout_ms;          /* Kafka session.timeout.ms; 0 = librdkafka's default
                                      * (45000). Lower it only in tests: the mock cluster
                                      * waits about this long for members to rejoin. */
    int heartbeat_interval_ms;       /* Kafka heartbeat.interval.ms; 0 = default (3000) */
};

/**
 * Open a consumer on the log chosen by config key log.backend (as es_log_open: log.dir,
 * log.map_size_mb, log.max_event_bytes; or kafka.brokers, kafka.topic,
 * kafka.timeout_ms, log.max_event_bytes). No partition is assigned until the first
 * es_consumer_poll.
 * @param opts      callbacks and group; copied (ud is kept as is)
 * @param[out] out  owned; close with es_consumer_close()
 * @return 0; SP_EINVAL for a bad option (eb->field names it, e.g. "group_id"); the errors
 *         of es_consumer_open_lmdb / es_consumer_open_kafka.
 */
SP_MUST_CHECK int es_consumer_open(const struct sp_config *cfg,
                                   const struct es_consumer_opts *opts,
                                   struct es_consumer **out,
                                   struct sp_errbuf *eb);

/**
 * Open a consumer on the embedded LMDB log at @p dir (tests, tools).
 * @return 0; SP_ENOTFOUND if there is no log; es_log_open_lmdb's errors.
 */
SP_MUST_CHECK int es_consumer_open_lmdb(const char *dir,
                                        size_t map_size_bytes,
                                        size_t max_event_bytes,
                                        const struct es_consumer_opts *opts,
                                        struct es_consumer **out,
                                        struct sp_errbuf *eb);

/**
 * Open a consumer on Kafka (tests, tools): joins group opts->group_id and subscribes to
 * @p kopts->topic (kopts->partitions, replication_factor and transactional_id are unused).
 * @return 0; SP_EINVAL for bad options (eb->field "group_id" or the kafka.* key);
 *         SP_ENOTFOUND if the topic does not exist; SP_EUNAVAIL if the brokers cannot be
 *         reached within kopts->timeout_ms.
 */
SP_MUST_CHECK int es_consumer_open_kafka(const struct es_kafka_opts *kopts,
                                         const struct es_consumer_opts *opts,
                                         struct es_consumer **out,
                                         struct sp_errbuf *eb);

/**
 * Deliver up to @p max records of the assigned partitions to @p fn, in offset order per
 * partition (partitions interleave), each with its checksum verified: a corrupt record is
 * passed with status SP_ECORRUPT, not skipped (see struct es_log_record; everything
 * borrowed for the callback's duration). Rebalance callbacks (on_assign, on_revoke) fire
 * inside this call; a revoke ends the call, so the records delivered before on_revoke
 * form the batch that on_revoke finishes or abandons (an assignment does not: the call
 * goes on reading the new partitions from the offsets on_assign gave).
 * Waits up to @p timeout_ms for the first record; then delivers what is already fetched,
 * up to @p max, without waiting again. Returning with no record is not an error. Kafka:
 * bounded by @p timeout_ms (plus the callbacks' own time) whatever the brokers do: a down
 * leader or coordinator only means no records (librdkafka retries in the background).
 * The next poll continues after the last record passed (including one on which @p fn
 * stopped), unless es_consumer_seek moved the partition.
 * @return 0; the callback's non-zero value if it stopped; SP_ESTATE if the consumer failed
 *         earlier (on_assign refused); on_assign's non-zero value; SP_EUNAVAIL for a fatal
 *         Kafka consumer error; es_log_read / es_log_wait errors (LMDB).
 * @locality the consumer's thread
 */
SP_MUST_CHECK int es_consumer_poll(struct es_consumer *c,
                                   size_t max,
                                   int timeout_ms,
                                   es_log_record_fn fn,
                                   void *ud,
                                   struct sp_errbuf *eb);

/**
 * Make the next poll deliver @p partition from @p offset (rewinding after a rolled-back
 * batch: re-read from the checkpoint). Records of the partition already fetched are
 * dropped. Kafka: waits up to kafka.timeout_ms for the fetcher to take the new offset.
 * @return 0; SP_ESTATE if @p partition is not assigned to this consumer; SP_EINVAL for a
 *         negative offset; Kafka: SP_EUNAVAIL if the seek failed.
 */
SP_MUST_CHECK int
es_consumer_seek(struct es_consumer *c, int32_t partition, int64_t offset, struct sp_errbuf *eb);

/**
 * The partitions currently assigned (ascending): up to @p cap are copied to
 * @p partitions; @return how many are assigned (may exceed @p cap). 0 before the first
 * poll and after a revoke.
 */
size_t es_consumer_assignment(const struct es_consumer *c, int32_t *partitions, size_t cap);

/**
 * Call on_revoke for the current assignment (if any), leave the group (Kafka) and free
 * the consumer. Commits nothing. NULL is a no-op.
 * Kafka: bounded whatever the brokers do. With the group coordinator unreachable no
 * LeaveGroup is sent and it returns at once (the group rebalances when the member's
 * session times out); with a coordinator that accepts but does not answer it returns
 * when librdkafka's LeaveGroup request times out (fixed at 5 s, no retries; checked
 * every second, so up to about 6 s). An outstanding JoinGroup does not hold it. A
 * shorter bound would need the leave skipped on every close, which would cost healthy
 * groups a session timeout per shutdown; and rd_kafka_destroy waits for an outstanding
 * LeaveGroup even after rd_kafka_consumer_close_queue.
 */
void es_consumer_close(struct es_consumer *c);

#endif
