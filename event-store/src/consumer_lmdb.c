/* Consumer on the embedded LMDB log: partition 0 is assigned on the first poll; records
 * come from es_log_read on a reader handle, waits from es_log_wait's polling of the end. */
#include <stdlib.h>

#include "consumer_impl.h"
#include "sp/alloc.h"

#include "sp/banned.h"

struct es_consumer_lmdb {
    struct es_consumer base; /* first */
    struct es_log *log;      /* owned reader handle */
};

static const struct es__consumer_ops lmdb_consumer_ops;

int es_consumer_open_lmdb(const char *dir,
                          size_t map_size_bytes,
                          size_t max_event_bytes,
                          const struct es_consumer_opts *opts,
                          struct es_consumer **out,
                          struct sp_errbuf *eb)
{
    struct es_consumer_lmdb *lc;
    struct es_log *log;
    int rc;

    *out = NULL;
    if ((rc = es__consumer_opts_check(opts, eb)))
        return rc;
    rc = es_log_open_lmdb(dir, map_size_bytes, max_event_bytes, ES_LOG_READER, &log, eb);
    if (rc)
        return rc;
    lc = sp_xcalloc(1, sizeof(*lc));
    es__consumer_init(&lc->base, &lmdb_consumer_ops, opts);
    lc->log = log;
    *out = &lc->base;
    return 0;
}

static void lmdb_consumer_close(struct es_consumer *c)
{
    struct es_consumer_lmdb *lc = (struct es_consumer_lmdb *)c;

    es__consumer_revoke(c); /* as Kafka does on close: the projection ends its batch */
    es_log_close(lc->log);
    es__consumer_release(c);
    free(lc);
}

static int lmdb_consumer_poll(struct es_consumer *c,
                              size_t max,
                              int timeout_ms,
                              es_log_record_fn fn,
                              void *ud,
                              struct sp_errbuf *eb)
{
    struct es_consumer_lmdb *lc = (struct es_consumer_lmdb *)c;
    static const int32_t only = 0;
    int rc;

    if (c->n_parts == 0) {
        rc = es__consumer_assign(c, &only, 1);
        if (rc)
            return rc;
    }
    rc = es_log_wait(lc->log, 0, c->next[0], timeout_ms, eb);
    if (rc == SP_ETIMEDOUT) {
        sp_err_clear(eb);
        return 0;
    }
    if (rc)
        return rc;
    return es_log_read(lc->log, 0, c->next[0], max, fn, ud, &c->next[0], eb);
}

static int lmdb_consumer_seek(struct es_consumer *c, size_t i, int64_t offset, struct sp_errbuf *eb)
{
    (void)eb;
    c->next[i] = offset;
    return 0;
}

static const struct es__consumer_ops lmdb_consumer_ops = {
    .name = "lmdb",
    .close = lmdb_consumer_close,
    .poll = lmdb_consumer_poll,
    .seek = lmdb_consumer_seek,
};
