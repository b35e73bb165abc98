/*
 * Kafka log writer: an idempotent transactional producer (acks=all, murmur2_random);
 * each append is one transaction whose positions come from the delivery reports. Fatal
 * and fencing errors fence the handle for good; other failures abort the transaction
 * and drop the producer, so the next append starts on a fresh producer id and epoch.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/checksum.h"
#include "log_kafka.h"
#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/log.h"

#include "sp/banned.h"

#define KAFKA_MSG_OVERHEAD       65536 /* headers and framing above one value, bytes */
#define KAFKA_MSG_MAX_BYTES      1000000000
#define KAFKA_TXN_TIMEOUT_MIN_MS 60000  /* transaction.timeout.ms floor */
#define KAFKA_TXN_TIMEOUT_MAX_MS 900000 /* brokers' default transaction.max.timeout.ms */

/* Delivery report of one record of the current append. */
struct kafka_dr {
    int64_t offset;
    int32_t partition;
    rd_kafka_resp_err_t err;
    bool done;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_dr *dr = m->_private;

    (void)rk;
    (void)opaque;
    if (dr == NULL)
        return;
    dr->err = m->err;
    dr->partition = m->partition;
    dr->offset = m->offset;
    dr->done = true;
}

static bool err_is_fencing(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__FENCED || err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
           err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

void es__kafka_producer_close(struct es_log_kafka *kl)
{
    if (kl->producer != NULL)
        rd_kafka_destroy(kl->producer);
    kl->producer = NULL;
}

/* Mark the writer fenced for good and say why, once, in the log and in @p eb. */
static int writer_fence(struct es_log_kafka *kl, const char *why, struct sp_errbuf *eb)
{
    kl->fenced = true;
    snprintf(kl->fenced_why, sizeof(kl->fenced_why), "%s", why);
    sp_log(SP_LOG_ERROR,
           "kafka log writer \"%s\" is fenced (another writer with the same transactional.id "
           "took over, or a fatal producer error): %s; refusing every further append",
           kl->transactional_id, why);
    es__kafka_producer_close(kl);
    return sp_err_set(eb, SP_EFENCED, "kafka.transactional_id",
                      "kafka log writer \"%s\" is fenced: %s", kl->transactional_id, why);
}

static int producer_conf(struct es_log_kafka *kl, rd_kafka_conf_t *conf, struct sp_errbuf *eb)
{
    int txn_ms =
        kl->timeout_ms < KAFKA_TXN_TIMEOUT_MIN_MS ? KAFKA_TXN_TIMEOUT_MIN_MS : kl->timeout_ms;
    size_t max_bytes = kl->base.max_event_bytes + KAFKA_MSG_OVERHEAD;
    char txn_text[16], msg_text[16], max_text[24];

    if (txn_ms > KAFKA_TXN_TIMEOUT_MAX_MS)
        txn_ms = KAFKA_TXN_TIMEOUT_MAX_MS;
    snprintf(txn_text, sizeof(txn_text), "%d", txn_ms);
    snprintf(msg_text, sizeof(msg_text), "%d", kl->timeout_ms < txn_ms ? kl->timeout_ms : txn_ms);
    snprintf(max_text, sizeof(max_text), "%zu",
             max_bytes > KAFKA_MSG_MAX_BYTES ? (size_t)KAFKA_MSG_MAX_BYTES : max_bytes);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    if (es__kafka_conf_set(conf, "transactional.id", kl->transactional_id, eb) ||
        es__kafka_conf_set(conf, "enable.idempotence", "true", eb) ||
        es__kafka_conf_set(conf, "acks", "all", eb) ||
        es__kafka_conf_set(conf, "partitioner", "murmur2_random", eb) ||
        es__kafka_conf_set(conf, "transaction.timeout.ms", txn_text, eb) ||
        es__kafka_conf_set(conf, "message.timeout.ms", msg_text, eb) ||
        es__kafka_conf_set(conf, "message.max.bytes", max_text, eb) ||
        es__kafka_conf_set(conf, "linger.ms", "1", eb))
        return SP_EINVAL;
    return 0;
}

int es__kafka_producer_open(struct es_log_kafka *kl, struct sp_errbuf *eb)
{
    rd_kafka_conf_t *conf = es__kafka_conf_new(kl->brokers, eb);
    rd_kafka_error_t *error;
    char errstr[256];
    int rc;

    if (conf == NULL)
        return SP_EINVAL;
    if ((rc = producer_conf(kl, conf, eb))) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    kl->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (kl->producer == NULL) {
        rd_kafka_conf_destroy(conf);
        return sp_err_set(eb, SP_EINVAL, "kafka.brokers", "could not create a kafka producer: %s",
                          errstr);
    }
    error = rd_kafka_init_transactions(kl->producer, kl->timeout_ms);
    if (error == NULL)
        return 0;
    snprintf(errstr, sizeof(errstr), "%s", rd_kafka_error_string(error));
    if (rd_kafka_error_is_fatal(error) || err_is_fencing(rd_kafka_error_code(error))) {
        rd_kafka_error_destroy(error);
        return writer_fence(kl, errstr, eb);
    }
    rd_kafka_error_destroy(error);
    es__kafka_producer_close(kl);
    return sp_err_set(eb, SP_EUNAVAIL, "kafka.brokers",
                      "could not initialise kafka transactions for \"%s\" on \"%s\": %s",
                      kl->transactional_id, kl->brokers, errstr);
}

/* Abort the open transaction and drop the producer. @return SP_EUNAVAIL or SP_EFENCED. */
static int
txn_abort(struct es_log_kafka *kl, const char *what, const char *why, struct sp_errbuf *eb)
{
    rd_kafka_error_t *error = rd_kafka_abort_transaction(kl->producer, kl->timeout_ms);
    char abort_why[200];
    bool committing = strcmp(what, "commit") == 0;

    if (error == NULL) {
        es__kafka_producer_close(kl);
        return sp_err_set(eb, SP_EUNAVAIL, NULL,
                          "could not %s a kafka transaction on topic \"%s\": %s; the batch was "
                          "aborted, nothing of it is visible",
                          what, kl->topic, why);
    }
    snprintf(abort_why, sizeof(abort_why), "%s", rd_kafka_error_string(error));
    if (rd_kafka_error_is_fatal(error) || err_is_fencing(rd_kafka_error_code(error))) {
        rd_kafka_error_destroy(error);
        return writer_fence(kl, abort_why, eb);
    }
    rd_kafka_error_destroy(error);
    es__kafka_producer_close(kl); /* the next producer's init_transactions aborts it */
    return sp_err_set(eb, SP_EUNAVAIL, NULL,
                      "could not %s a kafka transaction on topic \"%s\": %s; aborting it failed "
                      "too (%s)%s",
                      what, kl->topic, why, abort_why,
                      committing ? ": outcome unknown, re-read the log" : "");
}

/*
 * Classify a failed step of a transaction: fatal or fencing → SP_EFENCED for good;
 * anything else → abort, SP_EUNAVAIL. Takes ownership of @p error (may be NULL, then
 * @p err is the failure).
 */
static int txn_fail(struct es_log_kafka *kl,
                    rd_kafka_error_t *error,
                    rd_kafka_resp_err_t err,
                    const char *what,
                    struct sp_errbuf *eb)
{
    char why[200];
    bool fatal = false;

    if (error != NULL) {
        err = rd_kafka_error_code(error);
        fatal = rd_kafka_error_is_fatal(error);
        snprintf(why, sizeof(why), "%s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else {
        snprintf(why, sizeof(why), "%s", rd_kafka_err2str(err));
    }
    if (rd_kafka_fatal_error(kl->producer, why, sizeof(why)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        fatal = true; /* why now holds the fatal error's own text */
    if (fatal || err_is_fencing(err))
        return writer_fence(kl, why, eb);
    return txn_abort(kl, what, why, eb);
}

static rd_kafka_resp_err_t produce_one(struct es_log_kafka *kl,
                                       const struct es_event *ev,
                                       const struct sp_buf *val,
                                       struct kafka_dr *dr)
{
    char hex[ES_CHECKSUM_HEX_LEN + 1];

    es_checksum_hex(es_checksum(val->data, val->len), hex);
    return rd_kafka_producev(
        kl->producer, RD_KAFKA_V_TOPIC(kl->topic), RD_KAFKA_V_KEY(ev->stream, strlen(ev->stream)),
        RD_KAFKA_V_VALUE(val->data, val->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("ce_type", ev->type, -1), RD_KAFKA_V_HEADER("ce_id", ev->id, -1),
        RD_KAFKA_V_HEADER("content-type", ES_KAFKA_CONTENT_TYPE, -1),
        RD_KAFKA_V_HEADER("xxh3", hex, ES_CHECKSUM_HEX_LEN), RD_KAFKA_V_OPAQUE(dr), RD_KAFKA_V_END);
}

/* begin, produce every record, flush, check every delivery report, commit. */
static int txn_run(struct es_log_kafka *kl,
                   const struct es_event *const *evs,
                   const struct sp_buf *vals,
                   struct kafka_dr *drs,
                   size_t n,
                   struct sp_errbuf *eb)
{
    rd_kafka_error_t *error;
    rd_kafka_resp_err_t err;

    if ((error = rd_kafka_begin_transaction(kl->producer)))
        return txn_fail(kl, error, 0, "begin", eb);
    for (size_t i = 0; i < n; i++)
        if ((err = produce_one(kl, evs[i], &vals[i], &drs[i])))
            return txn_fail(kl, NULL, err, "produce to", eb);
    if ((err = rd_kafka_flush(kl->producer, kl->timeout_ms)))
        return txn_fail(kl, NULL, err, "deliver the records of", eb);
    for (size_t i = 0; i < n; i++) {
        if (!drs[i].done)
            return txn_fail(kl, NULL, RD_KAFKA_RESP_ERR__TIMED_OUT, "deliver the records of", eb);
        if (drs[i].err)
            return txn_fail(kl, NULL, drs[i].err, "deliver the records of", eb);
    }
    if ((error = rd_kafka_commit_transaction(kl->producer, kl->timeout_ms)))
        return txn_fail(kl, error, 0, "commit", eb);
    return 0;
}

static int values_encode(struct es_log_kafka *kl,
                         const struct es_event *const *evs,
                         size_t n,
                         struct sp_buf *vals,
                         struct sp_errbuf *eb)
{
    for (size_t i = 0; i < n; i++) {
        int rc = es_event_encode(evs[i], &vals[i], eb);
        if (rc == SP_ETOOBIG)
            return sp_err_set(eb, SP_ETOOBIG, "log.max_event_bytes",
                              "event %s of type \"%s\" encodes to more than %zu bytes", evs[i]->id,
                              evs[i]->type ? evs[i]->type : "", kl->base.max_event_bytes);
        if (rc)
            return rc;
    }
    return 0;
}

int es__kafka_append(struct es_log *log,
                     const struct es_event *const *evs,
                     size_t n,
                     struct es_position *pos,
                     struct sp_errbuf *eb)
{
    struct es_log_kafka *kl = (struct es_log_kafka *)log;
    struct sp_buf *vals;
    struct kafka_dr *drs;
    int rc;

    if (kl->fenced)
        return sp_err_set(eb, SP_EFENCED, "kafka.transactional_id",
                          "kafka log writer \"%s\" is fenced, appends are refused: %s",
                          kl->transactional_id, kl->fenced_why);
    vals = sp_xcalloc(n, sizeof(*vals));
    drs = sp_xcalloc(n, sizeof(*drs));
    for (size_t i = 0; i < n; i++)
        sp_buf_init(&vals[i], kl->base.max_event_bytes);
    if ((rc = values_encode(kl, evs, n, vals, eb)))
        goto out_free;
    if (kl->producer == NULL && (rc = es__kafka_producer_open(kl, eb)))
        goto out_free;
    if ((rc = txn_run(kl, evs, vals, drs, n, eb)))
        goto out_free;
    for (size_t i = 0; pos != NULL && i < n; i++) {
        pos[i].partition = drs[i].partition;
        pos[i].offset = drs[i].offset;
    }
out_free:
    for (size_t i = 0; i < n; i++)
        sp_buf_release(&vals[i]);
    free(drs);
    free(vals);
    return rc;
}
