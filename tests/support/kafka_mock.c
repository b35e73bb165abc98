/*
 * stockpot-kafka-mock: start librdkafka's mock Kafka cluster (rdkafka_mock.h), which speaks
 * the Kafka protocol on real sockets, print its bootstrap servers as one line on stdout,
 * and keep serving until SIGTERM or SIGINT. For tests and local runs without a broker.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "sp/banned.h"

struct mock_opts {
    int brokers;       /* 1..32 */
    const char *topic; /* created at start unless NULL */
    int partitions;    /* of that topic */
    int replication;   /* of that topic; 0 = min(3, brokers) */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: stockpot-kafka-mock [--brokers N] [--topic NAME] [--partitions N]\n"
               "                           [--replication-factor N] [--no-topic]\n"
               "\n"
               "Starts an in-process librdkafka mock cluster with N brokers (default 3), prints\n"
               "its bootstrap servers (host:port,...) as one line on stdout and runs until\n"
               "SIGTERM or SIGINT. It also creates topic NAME (default stockpot.events) with\n"
               "--partitions (default 6) and --replication-factor (default min(3, N)): the mock\n"
               "of librdkafka 2.0.2 does not implement CreateTopics, so Stockpot cannot create\n"
               "the topic itself there. Known mock limits: no producer epoch enforcement, no\n"
               "transaction markers (aborted records stay visible), slow consumers.\n");
}

/* Parse a positive int in [1, max]; -1 on error. */
static int parse_count(const char *s, int max)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < 1 || v > max)
        return -1;
    return (int)v;
}

static int parse_args(int argc, char **argv, struct mock_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--no-topic") == 0) {
            o->topic = NULL;
            continue;
        }
        if (v == NULL)
            return -1;
        if (strcmp(a, "--brokers") == 0)
            o->brokers = parse_count(v, 32);
        else if (strcmp(a, "--topic") == 0)
            o->topic = v;
        else if (strcmp(a, "--partitions") == 0)
            o->partitions = parse_count(v, 10000);
        else if (strcmp(a, "--replication-factor") == 0)
            o->replication = parse_count(v, 32);
        else
            return -1;
        if (o->brokers < 0 || o->partitions < 0 || o->replication < 0)
            return -1;
        i++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct mock_opts o = {3, "stockpot.events", 6, 0};
    char errstr[256];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    sigset_t set;
    int sig = 0;

    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    /* block the signals before librdkafka starts threads, so they inherit the mask */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        fprintf(stderr, "stockpot-kafka-mock: %s\n", errstr);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "stockpot-kafka-mock: could not create a kafka handle: %s\n", errstr);
        return 1;
    }
    mc = rd_kafka_mock_cluster_new(rk, o.brokers);
    if (mc == NULL) {
        fprintf(stderr, "stockpot-kafka-mock: could not start a mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    if (o.replication == 0)
        o.replication = o.brokers < 3 ? o.brokers : 3;
    if (o.topic != NULL &&
        rd_kafka_mock_topic_create(mc, o.topic, o.partitions, o.replication) != 0) {
        fprintf(stderr, "stockpot-kafka-mock: could not create topic \"%s\"\n", o.topic);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    while (sig != SIGTERM && sig != SIGINT)
        if (sigwait(&set, &sig) != 0)
            break;
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
