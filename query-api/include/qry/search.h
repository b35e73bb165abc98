/*
 * The query API's search routes over the LMDB search view (proj/search.h), read-only from
 * the projector's process (MDB_RDONLY, proj/view.h):
 *
 *   GET /search/recipes?q=&tag=&author_id=&language=&limit=&page=
 *   GET /search/users?q=&limit=
 *   GET /search/tags?q=&limit=
 *
 * Answers are the engine's JSON (ids as strings). /search/recipes pages with `page`
 * (1-based, the seed's parameter) and `limit` (default 20, 1..100), and answers
 * `Link: </search/recipes?...&page=<p+1>>; rel="next"` when there is a next page. `tag`
 * may repeat (every tag must be on the recipe). Bad input is 400 problem+json naming the
 * parameter: an empty, over-long (> 256 bytes) or over-wordy (> 32 words) query, invalid
 * UTF-8, a bad page, limit, author_id or language, a parameter the route does not know.
 * Every route honours `Stockpot-After`, waiting on the search view's own checkpoint (not
 * the PostgreSQL one). Until the projector has created the view, the routes answer 503
 * with `Retry-After: 1`.
 *
 * A rebuild (stockpot-replay rebuild search) swaps a new generation of the view in; each
 * request first checks the live generation (one readlink) and moves to a new one, so
 * requests are answered from the old view until the new one is complete, then from it.
 *
 * Bounded work: a query has at most 32 words, each expanded by prefix and typo matching to
 * at most PROJ_SEARCH_EXPAND_WORDS lexicon words (proj/search.h).
 *
 * Metrics: stockpot_search_queries_total{endpoint,status}, stockpot_search_seconds
 * {endpoint} (the engine's time, a histogram), stockpot_search_view_bytes,
 * stockpot_search_view_documents{kind="recipes"|"users"} and
 * stockpot_search_checkpoint{partition} (refreshed every second; the projector's
 * /metrics has the projection's lag).
 *
 * @locality the thread of the event_base given to qry_search_new.
 */
#ifndef QRY_SEARCH_H
#define QRY_SEARCH_H

#include <event2/event.h>

#include "sp/config.h"
#include "sp/http.h"
#include "sp/metrics.h"

struct qry_search;

/**
 * Register the search routes on @p http. The view is <views.dir>/search, opened when
 * first needed; BM25F parameters come from the search.* keys.
 * @p cfg, @p http and @p metrics are borrowed and must outlive the routes.
 * @param partitions  partitions of the event log for Stockpot-After (0 = unknown)
 * @return owned; free with qry_search_free(). Never NULL.
 */
struct qry_search *qry_search_new(struct event_base *base,
                                  struct sp_http_server *http,
                                  const struct sp_config *cfg,
                                  struct sp_metrics *metrics,
                                  int32_t partitions);

/** Drop waiting requests, close the view; NULL is a no-op. */
void qry_search_free(struct qry_search *s);

#endif
