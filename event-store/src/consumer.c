/* The consumer interface: backend selection, argument checks, the assignment and its
 * callbacks; the backends (consumer_lmdb.c, consumer_kafka.c) fetch the records. */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "consumer_impl.h"
#include "log_impl.h"
#include "sp/alloc.h"

#include "sp/banned.h"

void es__consumer_init(struct es_consumer *c,
                       const struct es__consumer_ops *ops,
                       const struct es_consumer_opts *opts)
{
    c->ops = ops;
    c->on_assign = opts->on_assign;
    c->on_revoke = opts->on_revoke;
    c->ud = opts->ud;
}

void es__consumer_release(struct es_consumer *c)
{
    free(c->parts);
    free(c->next);
    c->parts = NULL;
    c->next = NULL;
    c->n_parts = 0;
}

static int part_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

    return (x > y) - (x < y);
}

int es__consumer_assign(struct es_consumer *c, const int32_t *parts, size_t n)
{
    int rc = 0;

    es__consumer_release(c);
    if (n == 0)
        return 0;
    c->parts = sp_xcalloc(n, sizeof(*c->parts));
    c->next = sp_xcalloc(n, sizeof(*c->next)); /* 0 = from the beginning */
    memcpy(c->parts, parts, n * sizeof(*parts));
    qsort(c->parts, n, sizeof(*c->parts), part_cmp);
    c->n_parts = n;
    if (c->on_assign != NULL)
        rc = c->on_assign(c->ud, c->parts, n, c->next);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (c->next[i] < 0)
            rc = SP_EINVAL; /* on_assign returned a negative start offset */
    if (rc != 0) {
        es__consumer_release(c);
        c->failed = rc;
    }
    return rc;
}

void es__consumer_revoke(struct es_consumer *c)
{
    if (c->n_parts > 0 && c->on_revoke != NULL)
        c->on_revoke(c->ud, c->parts, c->n_parts);
    es__consumer_release(c);
}

ssize_t es__consumer_find(const struct es_consumer *c, int32_t partition)
{
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i] == partition)
            return (ssize_t)i;
    return -1;
}

int es__consumer_opts_check(const struct es_consumer_opts *opts, struct sp_errbuf *eb)
{
    if (opts == NULL)
        return sp_err_set(eb, SP_EINVAL, NULL, "consumer options are missing");
    if (opts->session_timeout_ms < 0 || opts->heartbeat_interval_ms < 0)
        return sp_err_set(eb, SP_EINVAL,
                          opts->session_timeout_ms < 0 ? "session_timeout_ms"
                                                       : "heartbeat_interval_ms",
                          "consumer timeouts must not be negative");
    return 0;
}

int es_consumer_open(const struct sp_config *cfg,
                     const struct es_consumer_opts *opts,
                     struct es_consumer **out,
                     struct sp_errbuf *eb)
{
    struct es__backend_cfg bc;
    int rc;

    *out = NULL;
    if ((rc = es__backend_cfg_read(cfg, &bc, eb)) != 0)
        return rc;
    if (bc.kafka)
        return es_consumer_open_kafka(&bc.kafka_opts, opts, out, eb);
    return es_consumer_open_lmdb(bc.dir, bc.map_size_bytes, bc.max_event_bytes, opts, out, eb);
}

int es_consumer_poll(struct es_consumer *c,
                     size_t max,
                     int timeout_ms,
                     es_log_record_fn fn,
                     void *ud,
                     struct sp_errbuf *eb)
{
    if (c->failed != 0)
        return sp_err_set(eb, SP_ESTATE, NULL,
                          "consumer failed earlier (%s): close it and open a new one",
                          sp_strerror(c->failed));
    if (max == 0)
        return 0;
    return c->ops->poll(c, max, timeout_ms < 0 ? 0 : timeout_ms, fn, ud, eb);
}

int es_consumer_seek(struct es_consumer *c, int32_t partition, int64_t offset, struct sp_errbuf *eb)
{
    ssize_t i = es__consumer_find(c, partition);

    if (i < 0)
        return sp_err_set(eb, SP_ESTATE, "partition",
                          "partition %d is not assigned to this consumer", (int)partition);
    if (offset < 0)
        return sp_err_set(eb, SP_EINVAL, "offset", "offset %lld is negative", (long long)offset);
    return c->ops->seek(c, (size_t)i, offset, eb);
}

size_t es_consumer_assignment(const struct es_consumer *c, int32_t *partitions, size_t cap)
{
    for (size_t i = 0; i < c->n_parts && i < cap; i++)
        partitions[i] = c->parts[i];
    return c->n_parts;
}

void es_consumer_close(struct es_consumer *c)
{
    if (c != NULL)
        c->ops->close(c);
}
