/*
 * Access tokens shared by both APIs: JSON Web Tokens (RFC 7519) signed with HMAC-SHA256
 * (HS256, RFC 7518 §3.2) through libjwt 1.10, with the claims sub (user id), sid
 * (session id), iat, exp (seconds since the epoch), jti and, when the user has any, roles.
 *
 * roles (RFC 9068 §2.2.3.1, the SCIM attribute of RFC 7643 §4.1.2): a JSON array of role
 * names, e.g. "roles":["operator"], carried as the bitmask SP_JWT_ROLE_* in the code. An
 * absent claim (or an empty array) means no role. A claim that is not an array of at most
 * SP_JWT_MAX_ROLES non-empty strings of at most SP_JWT_ROLE_NAME_MAX bytes makes the
 * whole token invalid (never a token with fewer rights). A name this code does not know
 * grants nothing and is not an error, so a newer issuer may add roles without breaking
 * older verifiers. The command API decides the roles when it issues a token, at login
 * and at refresh (config analytics.operators); a role taken away applies from the next
 * token, so at most jwt.ttl_s later.
 *
 * Debian's libjwt 1.10 accepts alg=none when a token is decoded without a key and never
 * checks exp: sp_jwt_verify always decodes with the key, pins the algorithm to HS256 and
 * checks exp and iat itself (DESIGN.md, "Auth"). It does not know about sessions:
 * callers check that the session is not revoked.
 *
 * @locality sp_jwt_sign and sp_jwt_verify: any thread, no shared state. A struct
 * sp_jwt_cache belongs to one thread.
 */
#ifndef SP_JWT_H
#define SP_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "sp/err.h"

#define SP_JWT_SKEW_S    60   /* tolerated clock skew for iat in the future, seconds */
#define SP_JWT_MAX_BYTES 4096 /* longer tokens are refused before decoding */
#define SP_JWT_JTI_MAX   64   /* longest jti kept, characters */

/* Roles of the roles claim, as bits. */
#define SP_JWT_ROLE_OPERATOR (1U << 0) /* "operator": reads the analytics routes */
#define SP_JWT_ROLES_ALL     SP_JWT_ROLE_OPERATOR
#define SP_JWT_MAX_ROLES     16 /* most entries of a roles claim */
#define SP_JWT_ROLE_NAME_MAX 64 /* longest role name, bytes */

/** The claims of a verified access token. */
struct sp_jwt_claims {
    int64_t user_id;              /* sub, > 0 */
    int64_t session_id;           /* sid, > 0 */
    int64_t iat_s;                /* issued at, seconds since the epoch */
    int64_t exp_s;                /* expiry, seconds since the epoch; > now when verified */
    char jti[SP_JWT_JTI_MAX + 1]; /* token id; "" when absent */
    unsigned roles;               /* SP_JWT_ROLE_* of the roles claim; 0 when absent */
};

/**
 * Sign an HS256 access token {sub, sid, iat = now_s, exp = now_s + ttl_s, jti, roles};
 * sub and sid are written as decimal strings, roles as an array of names (no claim when
 * @p roles is 0).
 * @param key, key_len  HMAC key, at least 1 byte; borrowed
 * @param roles         SP_JWT_ROLE_* bits, 0 for none
 * @param jti           token id (≤ SP_JWT_JTI_MAX characters, copied), or NULL for 32
 *                      random hex digits
 * @param[out] out      owned, NUL-terminated compact JWS; free with free()
 * @return 0; SP_EINVAL for an empty key, a bad id, a role bit outside SP_JWT_ROLES_ALL or
 *         a too long jti; -ENOMEM; -errno if no randomness is available.
 */
SP_MUST_CHECK int sp_jwt_sign(const unsigned char *key,
                              size_t key_len,
                              int64_t user_id,
                              int64_t session_id,
                              unsigned roles,
                              const char *jti,
                              int64_t now_s,
                              int64_t ttl_s,
                              char **out);

/**
 * Verify an access token: at most SP_JWT_MAX_BYTES, decoded with @p key, alg exactly
 * HS256, exp an integer > @p now_s, iat an integer ≤ @p now_s + SP_JWT_SKEW_S, sub and sid
 * decimal ids (1–19 digits, > 0; as strings or integers), jti a string if present, roles
 * as the file comment says if present.
 * @param token    NUL-terminated compact JWS; borrowed
 * @param now_s    current time, seconds since the epoch
 * @param[out] out the claims, filled only on success
 * @return 0; SP_EAUTH with the reason in @p eb (safe to show to the client).
 */
SP_MUST_CHECK int sp_jwt_verify(const unsigned char *key,
                                size_t key_len,
                                const char *token,
                                int64_t now_s,
                                struct sp_jwt_claims *out,
                                struct sp_errbuf *eb);

/**
 * A cache of verified access tokens, so a client that sends the same token with every
 * request pays for its HMAC and JSON decoding once (as Envoy's jwt_authn caches verified
 * tokens). Direct-mapped: @p slots entries (rounded up to a power of two), each holding
 * one token of at most SP_JWT_CACHE_TOKEN_MAX bytes and its claims; longer tokens are
 * verified every time. A slot is chosen by XXH3-64 of the token with a random seed, so a
 * client cannot aim at another's slot, and a hit compares the whole token in constant
 * time (OpenSSL's CRYPTO_memcmp). Only tokens that verified are kept; a hit still checks
 * exp and iat against @p now_s, so a cached token expires exactly when an uncached one
 * would. The cache is bound to the key it was made with. About
 * (SP_JWT_CACHE_TOKEN_MAX + 128) bytes per slot.
 */
struct sp_jwt_cache;

#define SP_JWT_CACHE_TOKEN_MAX 512 /* longest token kept in the cache, bytes */

/**
 * New cache of @p slots (1 .. 1 << 20) entries for tokens signed with @p key (copied,
 * 1 .. 1024 bytes).
 * @param[out] out owned; free with sp_jwt_cache_free
 * @return 0; SP_EINVAL for a bad @p slots or key; -errno if no randomness is available.
 */
SP_MUST_CHECK int
sp_jwt_cache_new(const unsigned char *key, size_t key_len, size_t slots, struct sp_jwt_cache **out);

/** Free @p cache; NULL is a no-op. */
void sp_jwt_cache_free(struct sp_jwt_cache *cache);

/**
 * sp_jwt_verify with the cache's key, answered from the cache when @p token verified
 * before; same inputs, outputs and errors. A token that verifies is put in its slot
 * (replacing what was there).
 */
SP_MUST_CHECK int sp_jwt_verify_cached(struct sp_jwt_cache *cache,
                                       const char *token,
                                       int64_t now_s,
                                       struct sp_jwt_claims *out,
                                       struct sp_errbuf *eb);

#endif
