/*
 * Read-your-writes for the query API: the `Stockpot-After: <token>` request header
 * (DESIGN.md, "Positions and consistency tokens"). A request carrying a token is held,
 * without blocking the event loop, until the checkpoint of the view it reads (projection
 * QRY_PROJECTION's in PostgreSQL, or an LMDB view's: qry_after_new_source) in the token's
 * partition has passed the token's offset (next_offset > offset), or until
 * query.after_timeout_ms runs out (503 problem+json with `Retry-After: 1`).
 *
 * Waiting is a poll: while any request waits, one libevent timer ticks every
 * QRY_AFTER_POLL_MS, times out overdue requests and, unless a read is already in flight,
 * reads the checkpoints through the asynchronous pool (qry/db.h); each result releases
 * every request it satisfies. Polling needs nothing from the projector (LISTEN/NOTIFY
 * would); one query serves all waiting requests at once. A request that arrives while
 * PostgreSQL is unavailable gets 503 as soon as its first read fails; one that already
 * waits keeps waiting until its deadline.
 *
 * A token naming a partition the log does not have gets 400 at once: the embedded log
 * (log.backend = lmdb) has exactly one partition, 0.
 *
 * Metrics: stockpot_query_after_wait_seconds (histogram, every request with a valid
 * token, time until it was released or timed out) and
 * stockpot_query_after_timeouts_total (counter).
 *
 * @locality the thread of the event_base given to qry_after_new.
 */
#ifndef QRY_AFTER_H
#define QRY_AFTER_H

#include <stdint.h>

#include <event2/event.h>

#include "sp/http.h"
#include "sp/metrics.h"
#include "qry/db.h"

#define QRY_AFTER_POLL_MS 3
/* Most partitions a checkpoint read reports. */
#define QRY_AFTER_MAX_PARTITIONS 1024

struct qry_after;

/**
 * Continuation of a gated request. Called exactly once per qry_after_gate: with the
 * request when it may be served now; with req == NULL when the gate has already replied
 * (bad token 400, timeout or database down 503) or the request was dropped at shutdown,
 * so the continuation only frees @p ud.
 */
typedef void (*qry_after_fn)(struct sp_http_req *req, void *ud);

/**
 * New gate. @p db and @p metrics are borrowed and must outlive the gate.
 * @param timeout_ms  longest wait for a token, milliseconds (query.after_timeout_ms)
 * @param partitions  partitions of the event log; tokens naming partition >= this get
 *                    400; 0 = unknown, any partition >= 0 is accepted
 * @return owned; free with qry_after_free(). Never NULL.
 */
struct qry_after *qry_after_new(struct event_base *base,
                                struct qry_db *db,
                                struct sp_metrics *metrics,
                                int64_t timeout_ms,
                                int32_t partitions);

/**
 * Synchronous source of a view's checkpoints (an LMDB view: a read costs microseconds, so
 * it runs on the loop): up to @p cap (partition, next_offset) pairs into @p parts /
 * @p offsets and their number into @p n.
 * @return 0; SP_EUNAVAIL if the view cannot be read now (not built yet); SP_EDB.
 */
typedef int (*qry_after_read_fn)(void *ud, int32_t *parts, int64_t *offsets, size_t cap, size_t *n);

/**
 * New gate over one of two checkpoint sources: the PostgreSQL projection's rows through
 * @p db (as qry_after_new), or @p read (an LMDB view such as the search view), called on
 * the loop at each poll. Exactly one of @p db and @p read is given.
 * @return owned; free with qry_after_free(). Never NULL.
 */
struct qry_after *qry_after_new_source(struct event_base *base,
                                       struct qry_db *db,
                                       qry_after_read_fn read,
                                       void *read_ud,
                                       struct sp_metrics *metrics,
                                       int64_t timeout_ms,
                                       int32_t partitions);

/**
 * Drop every waiting request without replying (the HTTP server frees pending requests
 * when it is freed, which must happen after this), calling each continuation with
 * req == NULL, and free the gate. NULL is a no-op. Free the qry_db first: that completes
 * the gate's checkpoint read still in flight, whose callback needs the gate.
 */
void qry_after_free(struct qry_after *after);

/**
 * Pass @p req through the gate: no Stockpot-After header calls @p fn(req, ud) at once; a
 * malformed token, or one naming a partition the log does not have, gets 400
 * problem+json naming the header "Stockpot-After" (and fn(NULL, ud) at once); otherwise
 * the request waits as the file comment describes, at least for one checkpoint read.
 */
void qry_after_gate(struct qry_after *after, struct sp_http_req *req, qry_after_fn fn, void *ud);

/** Number of requests waiting now; for tests. */
size_t qry_after_waiting(const struct qry_after *after);

#endif
