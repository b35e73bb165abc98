/* Bearer authentication for the query API: JWT verification plus the session check. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp/alloc.h"
#include "sp/time.h"
#include "qry/auth.h"

#include "sp/banned.h"

struct qry_auth {
    struct qry_db *db; /* borrowed */
    char *secret;      /* owned */
    size_t secret_len;
    struct sp_jwt_cache *tokens; /* owned verified tokens; NULL = verify each time */
};

#define AUTH_TOKEN_CACHE_SLOTS 4096 /* verified tokens remembered (sp_jwt_cache) */

/* One session check in flight. */
struct auth_check {
    int64_t user_id; /* sub of the token */
    qry_auth_fn fn;
    void *ud;
};

struct qry_auth *qry_auth_new(struct qry_db *db, const char *secret)
{
    struct qry_auth *auth = sp_xcalloc(1, sizeof(*auth));

    auth->db = db;
    auth->secret = sp_xstrdup(secret);
    auth->secret_len = strlen(secret);
    if (sp_jwt_cache_new((const unsigned char *)secret, auth->secret_len, AUTH_TOKEN_CACHE_SLOTS,
                         &auth->tokens) != 0)
        auth->tokens = NULL; /* a key too long to cache: every token is verified in full */
    return auth;
}

void qry_auth_free(struct qry_auth *auth)
{
    if (auth == NULL)
        return;
    sp_jwt_cache_free(auth->tokens);
    free(auth->secret);
    free(auth);
}

int qry_auth_token(const struct qry_auth *auth,
                   struct sp_http_req *req,
                   struct sp_jwt_claims *out,
                   struct sp_errbuf *eb)
{
    return qry_auth_token_str(auth, sp_http_req_bearer(req), out, eb);
}

int qry_auth_token_str(const struct qry_auth *auth,
                       const char *token,
                       struct sp_jwt_claims *out,
                       struct sp_errbuf *eb)
{
    if (token == NULL)
        return sp_err_set(eb, SP_EAUTH, NULL, "a bearer access token is required");
    if (auth->tokens)
        return sp_jwt_verify_cached(auth->tokens, token, sp_time_now_us() / 1000000, out, eb);
    return sp_jwt_verify((const unsigned char *)auth->secret, auth->secret_len, token,
                         sp_time_now_us() / 1000000, out, eb);
}

static void auth_on_session(void *ud, const PGresult *res, int err)
{
    struct auth_check *check = ud;

    if (err == 0 && PQntuples(res) == 1 &&
        (strcmp(PQgetvalue(res, 0, 1), "t") == 0 ||
         strtoll(PQgetvalue(res, 0, 0), NULL, 10) != check->user_id))
        err = SP_EAUTH;
    check->fn(check->ud, err);
    free(check);
}

void qry_auth_session(struct qry_auth *auth,
                      const struct sp_jwt_claims *claims,
                      qry_auth_fn fn,
                      void *ud)
{
    struct auth_check *check = sp_xcalloc(1, sizeof(*check));
    char sid[24];
    const char *params[] = {sid};

    check->user_id = claims->user_id;
    check->fn = fn;
    check->ud = ud;
    snprintf(sid, sizeof(sid), "%" PRId64, claims->session_id);
    qry_db_query(auth->db, QRY_STMT_SESSION, params, auth_on_session, check);
}

void qry_auth_reply_401(struct sp_http_req *req, const char *detail)
{
    sp_http_add_header(req, "WWW-Authenticate",
                       sp_http_req_header(req, "Authorization") != NULL
                           ? "Bearer error=\"invalid_token\""
                           : "Bearer");
    sp_http_reply_problem(req, 401, "unauthorized", detail, NULL);
}
