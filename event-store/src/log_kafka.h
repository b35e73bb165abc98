/*
 * Private parts of the Kafka log backend shared by log_kafka.c (handle, topic, end
 * offsets), log_kafka_write.c (transactional producer, append), log_kafka_read.c
 * (read_committed consumer, checksum verification) and consumer_kafka.c (the projections'
 * group consumer).
 */
#ifndef ES_LOG_KAFKA_H
#define ES_LOG_KAFKA_H

#include <pthread.h>
#include <stdbool.h>

#include <librdkafka/rdkafka.h>

#include "log_impl.h"

#define ES_KAFKA_CONTENT_TYPE "application/cloudevents+json"

struct es_log_kafka {
    struct es_log base;             /* first */
    char *brokers;                  /* owned */
    char *topic;                    /* owned */
    char *transactional_id;         /* owned */
    int32_t new_partitions;         /* for CreateTopics */
    int16_t new_replication_factor; /* for CreateTopics */
    int timeout_ms;                 /* bound on one operation */
    int32_t partitions;             /* of the topic, from metadata at open */
    rd_kafka_t *consumer;           /* reads, watermarks, metadata, admin; always set */
    pthread_mutex_t read_lock;      /* serialises es_log_read on the consumer */
    rd_kafka_t *producer;           /* writer only; NULL after an aborted or failed transaction
                                     * until the next append re-creates it */
    bool fenced;                    /* sticky: a fatal producer error; appends are refused */
    char fenced_why[256];           /* the error that fenced this writer */
};

/** Set one librdkafka property. @return 0 or SP_EINVAL naming it. */
int es__kafka_conf_set(rd_kafka_conf_t *conf,
                       const char *name,
                       const char *value,
                       struct sp_errbuf *eb);

/** New configuration with bootstrap.servers, client.id and logging. @return owned or NULL. */
rd_kafka_conf_t *es__kafka_conf_new(const char *brokers, struct sp_errbuf *eb);

/** Partition count of @p topic from metadata (asked through @p rk). @return 0,
 *  SP_ENOTFOUND if the topic does not exist, SP_EUNAVAIL if no broker answers. */
int es__kafka_topic_partitions(rd_kafka_t *rk,
                               const char *brokers,
                               const char *topic,
                               int timeout_ms,
                               int32_t *n,
                               struct sp_errbuf *eb);

/** Fill @p rec from @p m (borrowed), verifying its xxh3 header: a missing, malformed or
 *  mismatching header gives status SP_ECORRUPT with the detail in @p errbuf (rec->error). */
void es__kafka_record_fill(struct es_log_record *rec,
                           const rd_kafka_message_t *m,
                           char *errbuf,
                           size_t errbuf_size);

/** Offset of @p partition's end (@p which = RD_KAFKA_OFFSET_END: the last stable offset,
 *  read_committed) or beginning (RD_KAFKA_OFFSET_BEGINNING), asked of its leader; gives up
 *  at @p deadline_us (sp_time_mono_us clock) whatever the brokers do.
 *  @return 0 or SP_EUNAVAIL (eb names the partition). */
int es__kafka_offset_query(struct es_log_kafka *kl,
                           int32_t partition,
                           int64_t which,
                           int64_t deadline_us,
                           int64_t *offset,
                           struct sp_errbuf *eb);

/** Deadline (sp_time_mono_us clock) @p timeout_ms from now, capped at kafka.timeout_ms;
 *  @p timeout_ms < 1 means kafka.timeout_ms. */
int64_t es__kafka_deadline(const struct es_log_kafka *kl, int timeout_ms);

/** Create the transactional producer and init its transactions. @return 0, SP_EUNAVAIL,
 *  SP_EFENCED or SP_EINVAL. */
int es__kafka_producer_open(struct es_log_kafka *kl, struct sp_errbuf *eb);

/** Destroy the producer, if any. */
void es__kafka_producer_close(struct es_log_kafka *kl);

/** es__log_ops.append: one Kafka transaction. */
int es__kafka_append(struct es_log *log,
                     const struct es_event *const *evs,
                     size_t n,
                     struct es_position *pos,
                     struct sp_errbuf *eb);

/** es__log_ops.read: read_committed consumer assigned at from_offset. */
int es__kafka_read(struct es_log *log,
                   int32_t partition,
                   int64_t from_offset,
                   size_t max,
                   es_log_record_fn fn,
                   void *ud,
                   int64_t *next_offset,
                   struct sp_errbuf *eb);

#endif
