/*
 * The event log on Apache Kafka (librdkafka): one topic, record key = stream, value =
 * CloudEvents envelope, headers ce_type, ce_id, content-type and xxh3. Appends are Kafka
 * transactions of an idempotent producer; reads use a read_committed consumer assigned
 * to one partition at a time (no group subscription, no offset commits). See es/log.h.
 */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "es/checksum.h"
#include "log_kafka.h"
#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"

#include "sp/banned.h"

#define KAFKA_READER_GROUP "stockpot-log-reader" /* never joined: partitions are assigned */

static const struct es__log_ops kafka_ops;

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    enum sp_log_level lvl = level <= 3 ? SP_LOG_ERROR : level == 4 ? SP_LOG_WARN : SP_LOG_DEBUG;

    if (sp_log_enabled(lvl))
        sp_log(lvl, "kafka %s %s: %s", rd_kafka_name(rk), fac, buf);
}

/* Set one librdkafka property; a failure names the property (it is our own bug or a bad
 * option such as kafka.brokers). */
int es__kafka_conf_set(rd_kafka_conf_t *conf,
                       const char *name,
                       const char *value,
                       struct sp_errbuf *eb)
{
    char errstr[256];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return sp_err_set(eb, SP_EINVAL, name, "could not set kafka property %s=\"%s\": %s", name,
                          value, errstr);
    return 0;
}

/* A configuration with the settings every handle shares. */
rd_kafka_conf_t *es__kafka_conf_new(const char *brokers, struct sp_errbuf *eb)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    if (es__kafka_conf_set(conf, "bootstrap.servers", brokers, eb) ||
        es__kafka_conf_set(conf, "client.id", "stockpot", eb)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static int consumer_new(struct es_log_kafka *kl, struct sp_errbuf *eb)
{
    rd_kafka_conf_t *conf = es__kafka_conf_new(kl->brokers, eb);
    char errstr[256];

    if (conf == NULL)
        return SP_EINVAL;
    if (es__kafka_conf_set(conf, "group.id", KAFKA_READER_GROUP, eb) ||
        es__kafka_conf_set(conf, "isolation.level", "read_committed", eb) ||
        es__kafka_conf_set(conf, "enable.auto.commit", "false", eb) ||
        es__kafka_conf_set(conf, "enable.auto.offset.store", "false", eb) ||
        es__kafka_conf_set(conf, "enable.partition.eof", "true", eb) ||
        es__kafka_conf_set(conf, "auto.offset.reset", "error", eb) ||
        es__kafka_conf_set(conf, "fetch.wait.max.ms", "50", eb)) {
        rd_kafka_conf_destroy(conf);
        return SP_EINVAL;
    }
    kl->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (kl->consumer == NULL) {
        rd_kafka_conf_destroy(conf);
        return sp_err_set(eb, SP_EINVAL, "kafka.brokers", "could not create a kafka consumer: %s",
                          errstr);
    }
    return 0;
}

/*
 * Partition count of @p topic from the brokers' metadata: 0 and *n = count; SP_ENOTFOUND
 * if the topic does not exist; SP_EUNAVAIL if no broker answers.
 */
int es__kafka_topic_partitions(rd_kafka_t *rk,
                               const char *brokers,
                               const char *topic,
                               int timeout_ms,
                               int32_t *n,
                               struct sp_errbuf *eb)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    int rc = SP_ENOTFOUND;

    /* all topics: asking for one would auto-create it on brokers whose Metadata API
     * predates AllowAutoTopicCreation (the mock cluster among them) */
    err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (err)
        return sp_err_set(eb, SP_EUNAVAIL, "kafka.brokers",
                          "could not get metadata of kafka topic \"%s\" from \"%s\": %s", topic,
                          brokers, rd_kafka_err2str(err));
    for (int i = 0; i < md->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *t = &md->topics[i];
        if (strcmp(t->topic, topic) != 0 || t->err != 0 || t->partition_cnt <= 0)
            continue;
        *n = t->partition_cnt;
        rc = 0;
    }
    rd_kafka_metadata_destroy(md);
    if (rc)
        sp_err_set(eb, SP_ENOTFOUND, "kafka.topic", "no kafka topic \"%s\" on \"%s\"", topic,
                   brokers);
    return rc;
}

static int
topic_partitions(struct es_log_kafka *kl, int timeout_ms, int32_t *n, struct sp_errbuf *eb)
{
    return es__kafka_topic_partitions(kl->consumer, kl->brokers, kl->topic, timeout_ms, n, eb);
}

/* Check the result event of CreateTopics: 0 if created or already there. */
static int create_result(struct es_log_kafka *kl, rd_kafka_event_t *ev, struct sp_errbuf *eb)
{
    const rd_kafka_CreateTopics_result_t *res;
    const rd_kafka_topic_result_t **topics;
    size_t n = 0;

    if (ev == NULL)
        return sp_err_set(eb, SP_EUNAVAIL, "kafka.brokers",
                          "could not create kafka topic \"%s\": no answer within %d ms", kl->topic,
                          kl->timeout_ms);
    if (rd_kafka_event_error(ev))
        return sp_err_set(eb, SP_EUNAVAIL, "kafka.brokers",
                          "could not create kafka topic \"%s\": %s", kl->topic,
                          rd_kafka_event_error_string(ev));
    res = rd_kafka_event_CreateTopics_result(ev);
    topics = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(topics[i]);
        const char *msg = rd_kafka_topic_result_error_string(topics[i]);
        if (err != 0 && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            return sp_err_set(eb, SP_EUNAVAIL, "kafka.topic",
                              "could not create kafka topic \"%s\": %s", kl->topic,
                              msg ? msg : rd_kafka_err2str(err));
    }
    return 0;
}

/* Admin CreateTopics with kafka.partitions and kafka.replication_factor. */
static int topic_create(struct es_log_kafka *kl, struct sp_errbuf *eb)
{
    char errstr[256];
    rd_kafka_NewTopic_t *nt;
    rd_kafka_AdminOptions_t *opts;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    int rc;

    nt = rd_kafka_NewTopic_new(kl->topic, kl->new_partitions, kl->new_replication_factor, errstr,
                               sizeof(errstr));
    if (nt == NULL)
        return sp_err_set(eb, SP_EINVAL, "kafka.topic", "could not describe kafka topic \"%s\": %s",
                          kl->topic, errstr);
    opts = rd_kafka_AdminOptions_new(kl->consumer, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    if (rd_kafka_AdminOptions_set_request_timeout(opts, kl->timeout_ms, errstr, sizeof(errstr)) ||
        rd_kafka_AdminOptions_set_operation_timeout(opts, kl->timeout_ms, errstr, sizeof(errstr))) {
        /* only fails for out-of-range timeouts, which the config bounds exclude */
    }
    q = rd_kafka_queue_new(kl->consumer);
    sp_log(SP_LOG_INFO, "creating kafka topic \"%s\" (%d partitions, replication factor %d)",
           kl->topic, (int)kl->new_partitions, (int)kl->new_replication_factor);
    rd_kafka_CreateTopics(kl->consumer, &nt, 1, opts, q);
    ev = rd_kafka_queue_poll(q, kl->timeout_ms + 1000);
    rc = create_result(kl, ev, eb);
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

/* Find the topic's partition count; a writer creates the topic if it is absent. */
static int topic_open(struct es_log_kafka *kl, struct sp_errbuf *eb)
{
    int64_t deadline_us = sp_time_mono_us() + (int64_t)kl->timeout_ms * 1000;
    int rc = topic_partitions(kl, kl->timeout_ms, &kl->partitions, eb);

    if (rc != SP_ENOTFOUND || kl->base.mode != ES_LOG_WRITER)
        return rc;
    if ((rc = topic_create(kl, eb)))
        return rc;
    /* metadata lags creation a little: poll until the topic shows */
    while ((rc = topic_partitions(kl, kl->timeout_ms, &kl->partitions, eb)) == SP_ENOTFOUND &&
           sp_time_mono_us() < deadline_us)
        rd_kafka_poll(kl->consumer, 100);
    return rc;
}

/* The transactional id is the writer's: a reader never uses it (es/log.h). */
static int opts_check(const struct es_kafka_opts *o, enum es_log_mode mode, struct sp_errbuf *eb)
{
    if (o->brokers == NULL || o->brokers[0] == '\0')
        return sp_err_set(eb, SP_EINVAL, "kafka.brokers", "kafka.brokers is empty");
    if (o->topic == NULL || o->topic[0] == '\0')
        return sp_err_set(eb, SP_EINVAL, "kafka.topic", "kafka.topic is empty");
    if (mode == ES_LOG_WRITER && (o->transactional_id == NULL || o->transactional_id[0] == '\0'))
        return sp_err_set(eb, SP_EINVAL, "kafka.transactional_id",
                          "kafka.transactional_id is empty");
    if (o->partitions < 1 || o->replication_factor < 1)
        return sp_err_set(eb, SP_EINVAL,
                          o->partitions < 1 ? "kafka.partitions" : "kafka.replication_factor",
                          "kafka.partitions and kafka.replication_factor must be at least 1");
    if (o->timeout_ms < 1 || o->max_event_bytes < 1)
        return sp_err_set(eb, SP_EINVAL,
                          o->timeout_ms < 1 ? "kafka.timeout_ms" : "log.max_event_bytes",
                          "kafka.timeout_ms and log.max_event_bytes must be positive");
    return 0;
}

int es_log_open_kafka(const struct es_kafka_opts *opts,
                      enum es_log_mode mode,
                      struct es_log **out,
                      struct sp_errbuf *eb)
{
    struct es_log_kafka *kl;
    int rc;

    *out = NULL;
    if ((rc = opts_check(opts, mode, eb)))
        return rc;
    kl = sp_xcalloc(1, sizeof(*kl));
    kl->base.ops = &kafka_ops;
    kl->base.mode = mode;
    kl->base.max_event_bytes = opts->max_event_bytes;
    kl->brokers = sp_xstrdup(opts->brokers);
    kl->topic = sp_xstrdup(opts->topic);
    kl->transactional_id = mode == ES_LOG_WRITER ? sp_xstrdup(opts->transactional_id) : NULL;
    kl->new_partitions = opts->partitions;
    kl->new_replication_factor = opts->replication_factor;
    kl->timeout_ms = opts->timeout_ms;
    pthread_mutex_init(&kl->read_lock, NULL);
    if ((rc = consumer_new(kl, eb)) || (rc = topic_open(kl, eb)))
        goto out_close;
    if (mode == ES_LOG_WRITER && (rc = es__kafka_producer_open(kl, eb)))
        goto out_close;
    *out = &kl->base;
    return 0;
out_close:
    kafka_ops.close(&kl->base);
    return rc;
}

static void kafka_close(struct es_log *log)
{
    struct es_log_kafka *kl = (struct es_log_kafka *)log;

    es__kafka_producer_close(kl);
    if (kl->consumer != NULL) {
        rd_kafka_consumer_close(kl->consumer);
        rd_kafka_destroy(kl->consumer);
    }
    pthread_mutex_destroy(&kl->read_lock);
    free(kl->brokers);
    free(kl->topic);
    free(kl->transactional_id);
    free(kl);
}

static int32_t kafka_partitions(const struct es_log *log)
{
    return ((const struct es_log_kafka *)log)->partitions;
}

/*
 * One ListOffsets query (RD_KAFKA_OFFSET_END or _BEGINNING) for @p partition, answered by
 * @p deadline_us or not at all. Not rd_kafka_query_watermark_offsets: in librdkafka before
 * 2.3.0 it waits for its replies with no deadline, and a request queued for a leader that
 * is down only fails after socket.timeout.ms (60 s) and then is retried (librdkafka issue
 * #2588). rd_kafka_offsets_for_times sends the same request (with isolation.level, so END
 * is the last stable offset for read_committed) but stops waiting at its timeout; a late
 * reply is dropped. The leader lookup before it is bounded by the same timeout.
 */
int es__kafka_offset_query(struct es_log_kafka *kl,
                           int32_t partition,
                           int64_t which,
                           int64_t deadline_us,
                           int64_t *offset,
                           struct sp_errbuf *eb)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(parts, kl->topic, partition);
    int64_t left_ms = (deadline_us - sp_time_mono_us() + 999) / 1000;
    int wait_ms = left_ms < 1 ? 1 : left_ms > INT_MAX ? INT_MAX : (int)left_ms;
    rd_kafka_resp_err_t err;
    int rc = 0;

    tp->offset = which;
    err = rd_kafka_offsets_for_times(kl->consumer, parts, wait_ms);
    if (err == 0)
        err = tp->err;
    if (err == 0 && tp->offset < 0)
        err = RD_KAFKA_RESP_ERR__BAD_MSG; /* no offset in the answer */
    if (err)
        rc = sp_err_set(eb, SP_EUNAVAIL, NULL,
                        "could not read the %s of kafka topic \"%s\" partition %d within %d ms: %s",
                        which == RD_KAFKA_OFFSET_END ? "end" : "beginning", kl->topic,
                        (int)partition, wait_ms, rd_kafka_err2str(err));
    else
        *offset = tp->offset;
    rd_kafka_topic_partition_list_destroy(parts);
    return rc;
}

int64_t es__kafka_deadline(const struct es_log_kafka *kl, int timeout_ms)
{
    if (timeout_ms < 1 || timeout_ms > kl->timeout_ms)
        timeout_ms = kl->timeout_ms;
    return sp_time_mono_us() + (int64_t)timeout_ms * 1000;
}

static int kafka_end(struct es_log *log,
                     int32_t partition,
                     int timeout_ms,
                     int64_t *end_offset,
                     struct sp_errbuf *eb)
{
    struct es_log_kafka *kl = (struct es_log_kafka *)log;

    return es__kafka_offset_query(kl, partition, RD_KAFKA_OFFSET_END,
                                  es__kafka_deadline(kl, timeout_ms), end_offset, eb);
}

static const struct es__log_ops kafka_ops = {
    .name = "kafka",
    .close = kafka_close,
    .partitions = kafka_partitions,
    .append = es__kafka_append,
    .read = es__kafka_read,
    .end = kafka_end,
};
