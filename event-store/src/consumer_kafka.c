/*
 * Consumer on Kafka: a librdkafka high-level consumer in a consumer group, subscribed to
 * the log's topic, read_committed, committing nothing. Its rebalance callback asks the
 * projection for start offsets (on_assign) and assigns the partitions there, or lets the
 * projection end its batch (on_revoke) and unassigns. Eager rebalancing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer_impl.h"
#include "log_kafka.h"
#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"

#include "sp/banned.h"

#define KAFKA_POLL_MS 100 /* longest single consumer poll, so deadlines are kept */

struct es_consumer_kafka {
    struct es_consumer base; /* first */
    rd_kafka_t *rk;
    char *topic;      /* owned */
    int timeout_ms;   /* bound on seek */
    bool rebalanced;  /* set by a revoke inside a poll: that poll ends */
    char errbuf[256]; /* detail of base.failed when set in the rebalance callback */
};

static const struct es__consumer_ops kafka_consumer_ops;

/* The partitions of our topic in @p list, as ids (owned; free). */
static int32_t *
list_parts(struct es_consumer_kafka *kc, const rd_kafka_topic_partition_list_t *list, size_t *n)
{
    int32_t *parts = sp_xcalloc((size_t)list->cnt + 1, sizeof(*parts));

    *n = 0;
    for (int i = 0; i < list->cnt; i++)
        if (strcmp(list->elems[i].topic, kc->topic) == 0)
            parts[(*n)++] = list->elems[i].partition;
    return parts;
}

/* ASSIGN: ask on_assign for the start offsets and assign the partitions there. */
static void on_assigned(struct es_consumer_kafka *kc, rd_kafka_topic_partition_list_t *list)
{
    size_t n;
    int32_t *parts = list_parts(kc, list, &n);
    rd_kafka_topic_partition_list_t *at = rd_kafka_topic_partition_list_new((int)n);
    rd_kafka_resp_err_t err;
    int rc = es__consumer_assign(&kc->base, parts, n);

    for (size_t i = 0; rc == 0 && i < kc->base.n_parts; i++)
        rd_kafka_topic_partition_list_add(at, kc->topic, kc->base.parts[i])->offset =
            kc->base.next[i];
    if (rc != 0)
        snprintf(kc->errbuf, sizeof(kc->errbuf),
                 "on_assign refused %zu partition(s) of kafka topic \"%s\": %s", n, kc->topic,
                 sp_strerror(rc));
    /* on failure nothing is fetched: the caller must close the consumer, which leaves the
     * group so the partitions go to another member */
    err = rd_kafka_assign(kc->rk, rc == 0 ? at : NULL);
    if (err && rc == 0) {
        snprintf(kc->errbuf, sizeof(kc->errbuf), "could not assign kafka topic \"%s\": %s",
                 kc->topic, rd_kafka_err2str(err));
        es__consumer_release(&kc->base);
        kc->base.failed = SP_EUNAVAIL;
    }
    if (kc->base.failed == 0)
        sp_log(SP_LOG_INFO, "kafka consumer: %zu partition(s) of \"%s\" assigned", n, kc->topic);
    rd_kafka_topic_partition_list_destroy(at);
    free(parts);
}

static void rebalance_cb(rd_kafka_t *rk,
                         rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list,
                         void *opaque)
{
    struct es_consumer_kafka *kc = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assigned(kc, list);
        return;
    }
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        sp_log(SP_LOG_WARN, "kafka consumer: rebalance failed: %s", rd_kafka_err2str(err));
    es__consumer_revoke(&kc->base); /* the projection ends its batch first */
    (void)rd_kafka_assign(rk, NULL);
    kc->rebalanced = true;
    rd_kafka_yield(rk); /* end the poll now */
}

static int conf_set_ms(rd_kafka_conf_t *conf, const char *name, int ms, struct sp_errbuf *eb)
{
    char text[16];

    if (ms <= 0)
        return 0;
    snprintf(text, sizeof(text), "%d", ms);
    return es__kafka_conf_set(conf, name, text, eb);
}

static rd_kafka_conf_t *consumer_conf(struct es_consumer_kafka *kc,
                                      const struct es_kafka_opts *kopts,
                                      const struct es_consumer_opts *opts,
                                      struct sp_errbuf *eb)
{
    rd_kafka_conf_t *conf = es__kafka_conf_new(kopts->brokers, eb);

    if (conf == NULL)
        return NULL;
    if (es__kafka_conf_set(conf, "group.id", opts->group_id, eb) ||
        es__kafka_conf_set(conf, "enable.auto.commit", "false", eb) ||
        es__kafka_conf_set(conf, "enable.auto.offset.store", "false", eb) ||
        es__kafka_conf_set(conf, "isolation.level", "read_committed", eb) ||
        es__kafka_conf_set(conf, "auto.offset.reset", "earliest", eb) ||
        es__kafka_conf_set(conf, "enable.partition.eof", "false", eb) ||
        es__kafka_conf_set(conf, "partition.assignment.strategy", "range,roundrobin", eb) ||
        es__kafka_conf_set(conf, "fetch.wait.max.ms", "100", eb) ||
        conf_set_ms(conf, "session.timeout.ms", opts->session_timeout_ms, eb) ||
        conf_set_ms(conf, "heartbeat.interval.ms", opts->heartbeat_interval_ms, eb)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, kc);
    return conf;
}

/* Check the topic exists, then join the group by subscribing to it. */
static int
subscribe(struct es_consumer_kafka *kc, const struct es_kafka_opts *kopts, struct sp_errbuf *eb)
{
    rd_kafka_topic_partition_list_t *topics;
    rd_kafka_resp_err_t err;
    int32_t n;
    int rc;

    rc = es__kafka_topic_partitions(kc->rk, kopts->brokers, kc->topic, kopts->timeout_ms, &n, eb);
    if (rc)
        return rc;
    topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, kc->topic, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(kc->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err)
        return sp_err_set(eb, SP_EUNAVAIL, NULL, "could not subscribe to kafka topic \"%s\": %s",
                          kc->topic, rd_kafka_err2str(err));
    return 0;
}

static int kopts_check(const struct es_kafka_opts *kopts,
                       const struct es_consumer_opts *opts,
                       struct sp_errbuf *eb)
{
    int rc = es__consumer_opts_check(opts, eb);

    if (rc)
        return rc;
    if (opts->group_id == NULL || opts->group_id[0] == '\0')
        return sp_err_set(eb, SP_EINVAL, "group_id", "a kafka consumer needs a group id");
    if (kopts->brokers == NULL || kopts->brokers[0] == '\0')
        return sp_err_set(eb, SP_EINVAL, "kafka.brokers", "kafka.brokers is empty");
    if (kopts->topic == NULL || kopts->topic[0] == '\0')
        return sp_err_set(eb, SP_EINVAL, "kafka.topic", "kafka.topic is empty");
    if (kopts->timeout_ms < 1)
        return sp_err_set(eb, SP_EINVAL, "kafka.timeout_ms", "kafka.timeout_ms must be positive");
    return 0;
}

int es_consumer_open_kafka(const struct es_kafka_opts *kopts,
                           const struct es_consumer_opts *opts,
                           struct es_consumer **out,
                           struct sp_errbuf *eb)
{
    struct es_consumer_kafka *kc;
    rd_kafka_conf_t *conf;
    char errstr[256];
    int rc;

    *out = NULL;
    if ((rc = kopts_check(kopts, opts, eb)))
        return rc;
    kc = sp_xcalloc(1, sizeof(*kc));
    es__consumer_init(&kc->base, &kafka_consumer_ops, opts);
    kc->topic = sp_xstrdup(kopts->topic);
    kc->timeout_ms = kopts->timeout_ms;
    if ((conf = consumer_conf(kc, kopts, opts, eb)) == NULL) {
        rc = SP_EINVAL;
        goto out_close;
    }
    kc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (kc->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        rc = sp_err_set(eb, SP_EINVAL, "kafka.brokers", "could not create a kafka consumer: %s",
                        errstr);
        goto out_close;
    }
    rd_kafka_poll_set_consumer(kc->rk); /* one queue: logs, errors and rebalances */
    if ((rc = subscribe(kc, kopts, eb)))
        goto out_close;
    *out = &kc->base;
    return 0;
out_close:
    kafka_consumer_ops.close(&kc->base);
    return rc;
}

static void kafka_consumer_close(struct es_consumer *c)
{
    struct es_consumer_kafka *kc = (struct es_consumer_kafka *)c;

    if (kc->rk != NULL) {
        /* leaves the group; the revoke reaches rebalance_cb, hence on_revoke */
        rd_kafka_consumer_close(kc->rk);
        rd_kafka_destroy(kc->rk);
    }
    es__consumer_release(c);
    free(kc->topic);
    free(kc);
}

/* A consumer error: transient ones are retried by librdkafka; the rest end the poll. */
static int
message_error(struct es_consumer_kafka *kc, const rd_kafka_message_t *m, struct sp_errbuf *eb)
{
    switch (m->err) {
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
        return 0;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return sp_err_set(eb, SP_ENOTFOUND, "kafka.topic", "kafka consumer of \"%s\": %s",
                          kc->topic, rd_kafka_message_errstr(m));
    case RD_KAFKA_RESP_ERR__FATAL:
        kc->base.failed = SP_EUNAVAIL;
        return sp_err_set(eb, SP_EUNAVAIL, NULL, "kafka consumer of \"%s\" failed: %s", kc->topic,
                          rd_kafka_message_errstr(m));
    default:
        sp_log(SP_LOG_WARN, "kafka consumer of \"%s\": %s (retrying)", kc->topic,
               rd_kafka_message_errstr(m));
        return 0;
    }
}

/* Pass one record to @p fn if it is the next of an assigned partition; *passed = true. */
static int deliver(struct es_consumer_kafka *kc,
                   const rd_kafka_message_t *m,
                   es_log_record_fn fn,
                   void *ud,
                   bool *passed)
{
    ssize_t i = es__consumer_find(&kc->base, m->partition);
    struct es_log_record rec;
    char errbuf[200];

    *passed = false;
    if (i < 0 || m->offset < kc->base.next[i] || m->rkt == NULL ||
        strcmp(rd_kafka_topic_name(m->rkt), kc->topic) != 0)
        return 0; /* stale: revoked partition, or before a seek */
    es__kafka_record_fill(&rec, m, errbuf, sizeof(errbuf));
    kc->base.next[i] = m->offset + 1;
    *passed = true;
    return fn(&rec, ud);
}

/* Error raised inside the rebalance callback, reported once by the poll that ran it. */
static int failed_in_callback(struct es_consumer_kafka *kc, struct sp_errbuf *eb)
{
    return sp_err_set(eb, kc->base.failed, NULL, "%s",
                      kc->errbuf[0] ? kc->errbuf : "kafka consumer failed");
}

static int kafka_consumer_poll(struct es_consumer *c,
                               size_t max,
                               int timeout_ms,
                               es_log_record_fn fn,
                               void *ud,
                               struct sp_errbuf *eb)
{
    struct es_consumer_kafka *kc = (struct es_consumer_kafka *)c;
    int64_t deadline_us = sp_time_mono_us() + (int64_t)timeout_ms * 1000;
    size_t count = 0;
    int rc = 0;

    kc->rebalanced = false;
    while (count < max && rc == 0) {
        int64_t left_ms = (deadline_us - sp_time_mono_us()) / 1000;
        int wait_ms = count > 0 || left_ms <= 0 ? 0
                      : left_ms < KAFKA_POLL_MS ? (int)left_ms
                                                : KAFKA_POLL_MS;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kc->rk, wait_ms);
        bool passed = false;

        if (c->failed != 0)
            rc = failed_in_callback(kc, eb);
        else if (m != NULL && m->err != 0)
            rc = message_error(kc, m, eb);
        else if (m != NULL)
            rc = deliver(kc, m, fn, ud, &passed);
        if (m != NULL)
            rd_kafka_message_destroy(m);
        count += passed;
        if (kc->rebalanced || (m == NULL && (count > 0 || wait_ms == 0)))
            break;
    }
    return rc;
}

static int
kafka_consumer_seek(struct es_consumer *c, size_t i, int64_t offset, struct sp_errbuf *eb)
{
    struct es_consumer_kafka *kc = (struct es_consumer_kafka *)c;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_add(list, kc->topic, c->parts[i]);
    rd_kafka_error_t *error;
    int rc = 0;

    tp->offset = offset;
    error = rd_kafka_seek_partitions(kc->rk, list, kc->timeout_ms);
    if (error != NULL) {
        rc = sp_err_set(eb, SP_EUNAVAIL, NULL,
                        "could not seek kafka topic \"%s\" partition %d to %" PRId64 ": %s",
                        kc->topic, (int)c->parts[i], offset, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (tp->err) {
        rc = sp_err_set(eb, SP_EUNAVAIL, NULL,
                        "could not seek kafka topic \"%s\" partition %d to %" PRId64 ": %s",
                        kc->topic, (int)c->parts[i], offset, rd_kafka_err2str(tp->err));
    } else {
        c->next[i] = offset;
    }
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

static const struct es__consumer_ops kafka_consumer_ops = {
    .name = "kafka",
    .close = kafka_consumer_close,
    .poll = kafka_consumer_poll,
    .seek = kafka_consumer_seek,
};
