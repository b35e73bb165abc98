/*
 * Bearer authentication for the query API (DESIGN.md "Auth", RFC 6750): the access token
 * is verified with sp_jwt_verify (HS256 with jwt.secret, algorithm pinned, exp and iat
 * checked; a token verified before is answered from an sp_jwt_cache), then its session is looked up
 * in stockpot.sessions through the asynchronous pool: a session known to be revoked, expired or of
 * another user is refused; a session the projection does not know yet is accepted (the projection
 * may lag behind the command API that issued the token).
 *
 * @locality the thread of the event_base of the qry_db given to qry_auth_new.
 */
#ifndef QRY_AUTH_H
#define QRY_AUTH_H

#include "sp/err.h"
#include "sp/http.h"
#include "sp/jwt.h"
#include "qry/db.h"

struct qry_auth;

/**
 * @param db      borrowed; must outlive the auth object
 * @param secret  jwt.secret (copied), non-empty
 * @return owned; free with qry_auth_free(). Never NULL.
 */
struct qry_auth *qry_auth_new(struct qry_db *db, const char *secret);

/** Free; NULL is a no-op. Session checks in flight must have completed (free the pool first). */
void qry_auth_free(struct qry_auth *auth);

/**
 * Verify the request's `Authorization: Bearer` token now, without the session check.
 * @return 0 and @p out; SP_EAUTH (missing, malformed, bad signature, wrong algorithm,
 *         expired) with the reason in @p eb.
 */
SP_MUST_CHECK int qry_auth_token(const struct qry_auth *auth,
                                 struct sp_http_req *req,
                                 struct sp_jwt_claims *out,
                                 struct sp_errbuf *eb);

/**
 * Verify the access token @p token (NULL: none) as qry_auth_token does; for tokens that
 * come another way than the Authorization header (a WebSocket's Sec-WebSocket-Protocol).
 * @return 0 and @p out; SP_EAUTH with the reason in @p eb.
 */
SP_MUST_CHECK int qry_auth_token_str(const struct qry_auth *auth,
                                     const char *token,
                                     struct sp_jwt_claims *out,
                                     struct sp_errbuf *eb);

/**
 * Completion of a session check, called exactly once from the event loop.
 * @param err  0 (session valid or unknown); SP_EAUTH (revoked, expired or of another
 *             user); SP_EUNAVAIL, SP_ETIMEDOUT or SP_EDB as qry_db_fn
 */
typedef void (*qry_auth_fn)(void *ud, int err);

/** Check the session of @p claims (copied) asynchronously; @p fn(@p ud, err) later. */
void qry_auth_session(struct qry_auth *auth,
                      const struct sp_jwt_claims *claims,
                      qry_auth_fn fn,
                      void *ud);

/**
 * Reply 401 problem+json (type .../unauthorized) with `WWW-Authenticate: Bearer` and,
 * when a token was sent, `error="invalid_token"` (RFC 6750 §3).
 */
void qry_auth_reply_401(struct sp_http_req *req, const char *detail);

#endif
