/*
 * librdkafka's mock Kafka cluster (rdkafka_mock.h) for tests: brokers, a topic, and the
 * protocol ApiKeys that request-error injection (rd_kafka_mock_push_request_errors)
 * names. The cluster lives in the test's process; its bootstrap servers are loopback.
 */
#ifndef SP_TEST_KAFKA_H
#define SP_TEST_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* Kafka protocol ApiKeys (not exported by librdkafka). */
#define SP_TEST_KAFKA_API_PRODUCE  0
#define SP_TEST_KAFKA_API_ADDPARTS 24 /* AddPartitionsToTxn */
#define SP_TEST_KAFKA_API_ENDTXN   26

struct sp_test_kafka {
    rd_kafka_t *rk;              /* owned; the handle hosting the cluster */
    rd_kafka_mock_cluster_t *mc; /* owned */
    char *brokers;               /* owned; bootstrap servers "host:port,..." */
};

/**
 * Start a mock cluster of @p brokers brokers (librdkafka logging at errors only) and,
 * unless @p topic is NULL, create @p topic with @p partitions partitions replicated on
 * min(3, brokers) of them (the 2.0.2 mock has no CreateTopics: as an operator would).
 * @return 0; -1 on failure (@p k is then safe to pass to sp_test_kafka_stop)
 */
int sp_test_kafka_start(struct sp_test_kafka *k, int brokers, const char *topic, int partitions);

/** Destroy the cluster and its handle and zero @p k; a zeroed @p k is a no-op. */
void sp_test_kafka_stop(struct sp_test_kafka *k);

#endif
