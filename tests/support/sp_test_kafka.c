/* librdkafka mock cluster for tests (sp_test_kafka.h). */
#include <stdlib.h>
#include <string.h>

#include "sp_test_kafka.h"

#include "sp/banned.h"

int sp_test_kafka_start(struct sp_test_kafka *k, int brokers, const char *topic, int partitions)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256];

    memset(k, 0, sizeof(*k));
    if (rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (k->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    k->mc = rd_kafka_mock_cluster_new(k->rk, brokers);
    if (k->mc == NULL)
        return -1;
    if (topic != NULL &&
        rd_kafka_mock_topic_create(k->mc, topic, partitions, brokers < 3 ? brokers : 3) != 0)
        return -1;
    k->brokers = strdup(rd_kafka_mock_cluster_bootstraps(k->mc));
    return k->brokers != NULL ? 0 : -1;
}

void sp_test_kafka_stop(struct sp_test_kafka *k)
{
    if (k->mc != NULL)
        rd_kafka_mock_cluster_destroy(k->mc);
    if (k->rk != NULL)
        rd_kafka_destroy(k->rk);
    free(k->brokers);
    memset(k, 0, sizeof(*k));
}
