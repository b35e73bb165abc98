/*
 * Read-your-writes for the query API: the `Stockpot-After: <token>` request header
 * (DESIGN.md, "Positions and consistency tokens"). A request carrying a token is held,
 * without blocking the event loop, until projection QRY_PROJECTION's checkpoint in the
 * token's partition has passed the token's offset (next_offset > offset), or until
 * query.after_timeout_ms runs out (503 problem+json with `Retry-After: 1`).
 *
 * Waiting is a poll: while any request waits, one libevent timer re-reads the
 * checkpoints every QRY_AFTER_POLL_MS and releases every request it satisfies. Polling
 * needs nothing from the projector (LISTEN/NOTIFY would); one query per tick serves all
 * waiting requests at once.
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
 * @return owned; free with qry_after_free(). Never NULL.
 */
struct qry_after *qry_after_new(struct event_base *base,
                                struct qry_db *db,
                                struct sp_metrics *metrics,
                                int64_t timeout_ms);

/**
 * Drop every waiting request without replying (the HTTP server frees pending requests
 * when it is freed, which must happen after this), calling each continuation with
 * req == NULL, and free the gate. NULL is a no-op.
 */
void qry_after_free(struct qry_after *after);

/**
 * Pass @p req through the gate: no Stockpot-After header, or a token already applied,
 * calls @p fn(req, ud) at once; a malformed token gets 400 problem+json naming the
 * header "Stockpot-After"; otherwise the request waits as the file comment describes.
 */
void qry_after_gate(struct qry_after *after, struct sp_http_req *req, qry_after_fn fn, void *ud);

/** Number of requests waiting now; for tests. */
size_t qry_after_waiting(const struct qry_after *after);

#endif
