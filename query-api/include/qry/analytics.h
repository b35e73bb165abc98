/*
 * The query API's analytics routes over the LMDB analytics view (proj/analytics.h), read-only
 * from the projector's process (MDB_RDONLY, proj/view.h), for operators only:
 *
 *   GET /analytics/summary?from=&to=
 *       {"from","to","days":[{"date","active",<counter>...}],
 *        "totals":{"active",<counter>...},"dau","wau","mau","stickiness"}
 *   GET /analytics/recipes/popular?window=&limit=&at=
 *       {"window","at","recipes":[{"id","title","author_id","score","likes","comments",
 *        "unlikes"}]}
 *   GET /analytics/users/active?granularity=&from=&to=
 *       {"granularity","from","to","periods":[{"start","end","active"}]}
 *   GET /analytics/retention?from=&to=
 *       {"from","to","cohorts":[{"week","size","weeks":[{"week","active","share"}]}]}
 *
 * Dates are "YYYY-MM-DD" (UTC days). `to` defaults to today (UTC) and `from` to 29 days
 * before `to` (30 days in all); a range spans at most PROJ_ANALYTICS_MAX_RANGE_DAYS days.
 * Counters are every proj_analytics_counter by its proj_analytics_counter_name, e.g.
 * "registrations", "recipes_created". In the summary "active" is a day's distinct active
 * users, and in totals the distinct users active on any day of the range (not a sum); dau,
 * wau and mau are the distinct users active on `to` and in the 7 and 30 days ending on it,
 * stickiness the mean DAU of those 30 days over mau (0 when mau is 0). Popular: `window`
 * 24h | 7d | 30d | all (default 7d), `limit` 1..100 (default 10), `at` an RFC 3339 instant
 * or a date meaning the end of that day (23:59:59.999999Z), default now; the window ends
 * at `at` as proj/analytics.h defines, "at" is answered in RFC 3339 with microseconds, ids
 * are strings and author_id is null while the recipe's creation is not folded yet.
 * Active users: `granularity` day | week (ISO, Monday first) | month (default day), one
 * period per day, week or month overlapping the range, clipped to it. Retention: one
 * cohort per signup week (named by its Monday) overlapping the range in which someone
 * registered (weeks without signups have no row), oldest first, followed week by week
 * (k = 0 is the signup week) up to the week of `to` (days after `to` not counted);
 * share = active / size.
 *
 * Access: `Authorization: Bearer` with an access token carrying the role "operator"
 * (sp/jwt.h; command-api grants it to the users named by analytics.operators). Checked in
 * this order: no or a bad token is 401 (qry/auth.h), a valid token without the role 403
 * problem+json (type .../forbidden), then the parameters: a bad date, from after to, a
 * range over the cap, an unknown window or granularity, a bad limit or at, a parameter
 * the route does not take or one given twice is 400 problem+json whose errors[] names the
 * parameter. Then Stockpot-After (waiting on the analytics view's own checkpoints, like
 * the search routes), then the token's session as every authenticated route of the query
 * API checks it (qry_auth_session: a revoked or expired session is 401), then the query.
 * Until the projector has created the view, the routes answer 503 with Retry-After: 1.
 *
 * Queries run on their own pool of analytics.threads worker threads (view_pool.h), apart
 * from the searches' pool: popular over 30 days or a 400-day retention triangle take
 * milliseconds, and neither holds up the event loop or a search. A rebuild
 * (stockpot-replay rebuild analytics) swaps a new generation in; each request first checks
 * the live generation (one readlink) and moves to a new one.
 *
 * Metrics: stockpot_analytics_queries_total{endpoint,status} (endpoint = summary, popular,
 * active, retention; every answer the route itself gives, 401 and 403 included) and
 * stockpot_analytics_seconds{endpoint} (the view's time per answered query, a histogram).
 *
 * @locality the thread of the event_base given to qry_analytics_new.
 */
#ifndef QRY_ANALYTICS_H
#define QRY_ANALYTICS_H

#include <stdint.h>

#include <event2/event.h>

#include "qry/auth.h"
#include "sp/config.h"
#include "sp/http.h"
#include "sp/metrics.h"

struct qry_analytics;

/**
 * Register the analytics routes on @p http. The view is <views.dir>/analytics, opened
 * when first needed. @p cfg, @p http, @p metrics and @p auth are borrowed and must
 * outlive the routes.
 * @param partitions  partitions of the event log for Stockpot-After (0 = unknown)
 * @return owned; free with qry_analytics_free(). Never NULL.
 */
struct qry_analytics *qry_analytics_new(struct event_base *base,
                                        struct sp_http_server *http,
                                        const struct sp_config *cfg,
                                        struct sp_metrics *metrics,
                                        struct qry_auth *auth,
                                        int32_t partitions);

/**
 * Drop waiting requests, stop the workers, close the view; NULL is a no-op. Free the
 * qry_db of @p auth first: that completes the session checks in flight.
 */
void qry_analytics_free(struct qry_analytics *an);

#endif
