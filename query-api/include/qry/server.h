/*
 * The query API server: GET /users/{id}, /users/{id}/recipes, /recipes/{id} and
 * /recipes?tag= (README "HTTP API", query-api table), and the issue 4 read side:
 * /users/{id}/followers, /users/{id}/following, /recipes/{id}/comments, /feed,
 * /notifications and /notifications/stream (qry/notify.h), over the PostgreSQL read
 * models, /search/recipes, /search/users, /search/tags over the LMDB search view
 * (qry/search.h), and /analytics/summary, /analytics/recipes/popular,
 * /analytics/users/active, /analytics/retention (operators only) over the LMDB analytics
 * view (qry/analytics.h), /chat/rooms, /chat/rooms/{id}, /chat/rooms/{id}/messages and
 * /chat/stream over the chat read model (query-api/src/chat.h), on the common HTTP core
 * (which also serves /healthz, /readyz and /metrics).
 *
 * Users carry follower_count, following_count and recipe_count; recipes (single and in
 * lists) like_count and comment_count, and GET /recipes/{id} with a valid Bearer adds
 * liked_by_me (an invalid or dead token there is served as anonymous, and the reply
 * says `Vary: Authorization`). Followers/following items are {id, username, full_name,
 * avatar_media_id} by user id desc (cursor = user id); comments {id, recipe_id,
 * user_id, username, content, created_at} newest first; the feed is the recipes of the
 * caller's followees and their own, newest first; notifications {id, kind, actor_id,
 * actor_username, recipe_id?, comment_id?, created_at, read} newest first, the body
 * also carrying unread_count. /feed and /notifications* need a Bearer (qry/auth.h):
 * 401 problem+json otherwise. Counters and liked_by_me do not change the ETag (the
 * stream version): a client revalidating with If-None-Match may keep stale counters.
 *
 * Entities answer with `ETag: "<version>"` and 304 when If-None-Match matches. Lists
 * answer {"items":[...],"next_max_id":"<id>"} (next_max_id only when the page is full),
 * newest first, with `Link: <path?params&max_id=<last id>&limit=<n>>; rel="next"` when
 * the page is full (qry/params.h describes max_id and since_id). Unknown or deleted
 * entities are 404; bad parameters 400 naming the parameter. PostgreSQL is read through
 * an asynchronous pool (qry/db.h: QRY_DB_CONNS connections, a FIFO of QRY_DB_QUEUE_MAX
 * waiting queries, QRY_DB_TIMEOUT_MS per query), so the event loop never waits for it:
 * PostgreSQL unreachable, a full queue or a query past its timeout (e.g. a table locked
 * by a rebuild) is 503 problem+json with `Retry-After: 1`, and /healthz, /readyz and
 * /metrics always answer at once. Every route honours Stockpot-After (qry/after.h). Tags
 * match exactly as written by the author.
 *
 * @locality the thread of the event_base given to qry_server_new.
 */
#ifndef QRY_SERVER_H
#define QRY_SERVER_H

#include <event2/event.h>

#include "sp/config.h"
#include "sp/err.h"
#include "sp/metrics.h"

struct qry_server;

/**
 * Connect to PostgreSQL (pg.conninfo; failure to connect is reported by /readyz, not
 * here) and listen on query.host:query.port (0 = any free port) with the http.* caps.
 * @p cfg and @p metrics are borrowed and must outlive the server.
 * @param[out] out  owned; free with qry_server_free()
 * @return 0; -errno if the address cannot be bound (eb says which).
 */
SP_MUST_CHECK int qry_server_new(struct event_base *base,
                                 const struct sp_config *cfg,
                                 struct sp_metrics *metrics,
                                 struct qry_server **out,
                                 struct sp_errbuf *eb);

/** Drop waiting requests, stop listening, close the database; NULL is a no-op. */
void qry_server_free(struct qry_server *srv);

/** The TCP port actually bound. */
int qry_server_port(const struct qry_server *srv);

#endif
