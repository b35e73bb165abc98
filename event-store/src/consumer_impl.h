/*
 * Private backend interface of the consumer: consumer.c checks arguments, keeps the
 * assignment and calls on_assign / on_revoke; each backend (consumer_lmdb.c,
 * consumer_kafka.c) embeds struct es_consumer first.
 */
#ifndef ES_CONSUMER_IMPL_H
#define ES_CONSUMER_IMPL_H

#include <stdbool.h>
#include <sys/types.h>

#include "es/consumer.h"

struct es__consumer_ops {
    const char *name; /* "lmdb", "kafka" */
    void (*close)(struct es_consumer *c);
    /* max >= 1; the consumer has not failed */
    int (*poll)(struct es_consumer *c,
                size_t max,
                int timeout_ms,
                es_log_record_fn fn,
                void *ud,
                struct sp_errbuf *eb);
    /* partition is assigned (index @p i of the assignment); offset >= 0 */
    int (*seek)(struct es_consumer *c, size_t i, int64_t offset, struct sp_errbuf *eb);
};

/** Base of every backend's consumer; first member of the backend struct. */
struct es_consumer {
    const struct es__consumer_ops *ops;
    es_consumer_assign_fn on_assign;
    es_consumer_revoke_fn on_revoke;
    void *ud;
    int32_t *parts; /* owned; assigned partitions, ascending; n_parts of them */
    int64_t *next;  /* owned; per assigned partition, the offset the next record delivered
                     * must reach (records below it are stale and dropped) */
    size_t n_parts;
    int failed; /* sticky: on_assign's error (or SP_EUNAVAIL); polls return it */
};

/** Check the backend-independent options. @return 0 or SP_EINVAL naming the field. */
int es__consumer_opts_check(const struct es_consumer_opts *opts, struct sp_errbuf *eb);

/** Initialise @p c's base fields from @p opts. */
void es__consumer_init(struct es_consumer *c,
                       const struct es__consumer_ops *ops,
                       const struct es_consumer_opts *opts);

/** Free the base's allocations (not @p c itself). */
void es__consumer_release(struct es_consumer *c);

/**
 * Take @p parts[0..n) (any order) as the new assignment and ask on_assign for the start
 * offsets, which land in c->next (parallel to c->parts, ascending). On a non-zero return
 * of on_assign the assignment is cleared, c->failed set and the value returned.
 */
int es__consumer_assign(struct es_consumer *c, const int32_t *parts, size_t n);

/** Call on_revoke for the whole assignment (if any) and clear it. */
void es__consumer_revoke(struct es_consumer *c);

/** Index of @p partition in the assignment, or -1. */
ssize_t es__consumer_find(const struct es_consumer *c, int32_t partition);

#endif
