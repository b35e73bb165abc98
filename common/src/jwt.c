/* HS256 access tokens (RFC 7519) on libjwt 1.10: signing and strict verification. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <xxhash.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>

#include "sp/alloc.h"
#include "sp/jwt.h"
#include "sp/banned.h"

/* A decimal id: 1–19 digits, no leading zero, > 0, fits int64 (as es_id_parse). */
static int jwt__parse_id(const char *s, int64_t *out)
{
    int64_t v = 0;
    size_t n = strlen(s);

    if (n == 0 || n > 19 || s[0] == '0')
        return SP_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int d = s[i] - '0';

        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - d) / 10)
            return SP_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Claim @p name as an id, written as a decimal string or as a positive integer. */
static int jwt__claim_id(jwt_t *jwt, const char *name, int64_t *out)
{
    const char *s = jwt_get_grant(jwt, name);
    long v;

    if (s != NULL)
        return jwt__parse_id(s, out);
    errno = 0;
    v = jwt_get_grant_int(jwt, name);
    if (errno != 0 || v <= 0)
        return SP_EINVAL;
    *out = (int64_t)v;
    return 0;
}

/* The names of the roles claim, by bit (sp/jwt.h). */
static const struct {
    unsigned bit;
    const char *name;
} jwt__roles[] = {
    {SP_JWT_ROLE_OPERATOR, "operator"},
};

#define JWT__N_ROLES (sizeof(jwt__roles) / sizeof(jwt__roles[0]))

/* Add the claim "roles":[names of @p roles] (roles != 0). @return 0 or -ENOMEM. */
static int jwt__add_roles(jwt_t *jwt, unsigned roles)
{
    json_t *names = json_array(), *grant = json_pack("{s:o}", "roles", names);
    char *text = NULL;
    int rc = -ENOMEM;

    if (grant == NULL)
        goto out_free;
    for (size_t i = 0; i < JWT__N_ROLES; i++)
        if ((roles & jwt__roles[i].bit) != 0 &&
            json_array_append_new(names, json_string(jwt__roles[i].name)) != 0)
            goto out_free;
    text = json_dumps(grant, JSON_COMPACT);
    if (text != NULL && jwt_add_grants_json(jwt, text) == 0)
        rc = 0;
out_free:
    free(text);
    json_decref(grant);
    return rc;
}

/* The roles claim: absent = none; malformed (sp/jwt.h) = SP_EINVAL. */
static int jwt__claim_roles(jwt_t *jwt, unsigned *roles)
{
    char *text = jwt_get_grants_json(jwt, "roles");
    json_t *names, *v;
    size_t i;
    int rc = 0;

    *roles = 0;
    if (text == NULL)
        return 0;
    names = json_loads(text, JSON_DECODE_ANY, NULL);
    free(text);
    if (!json_is_array(names) || json_array_size(names) > SP_JWT_MAX_ROLES)
        rc = SP_EINVAL;
    json_array_foreach(names, i, v) {
        const char *name = json_string_value(v);

        if (name == NULL || json_string_length(v) == 0 ||
            json_string_length(v) > SP_JWT_ROLE_NAME_MAX || strlen(name) != json_string_length(v))
            rc = SP_EINVAL;
        for (size_t k = 0; rc == 0 && k < JWT__N_ROLES; k++)
            if (strcmp(name, jwt__roles[k].name) == 0)
                *roles |= jwt__roles[k].bit;
    }
    json_decref(names);
    if (rc != 0)
        *roles = 0;
    return rc;
}

static int jwt__random_jti(char *out, size_t size)
{
    unsigned char raw[16];

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return errno ? -errno : -EIO;
    for (size_t i = 0; i < sizeof(raw) && 2 * i + 2 < size; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

int sp_jwt_sign(const unsigned char *key,
                size_t key_len,
                int64_t user_id,
                int64_t session_id,
                unsigned roles,
                const char *jti,
                int64_t now_s,
                int64_t ttl_s,
                char **out)
{
    jwt_t *jwt = NULL;
    char sub[24], sid[24], rnd[33] = "";
    int rc;

    *out = NULL;
    if (key_len == 0 || key_len > INT32_MAX || user_id <= 0 || session_id <= 0 ||
        (roles & ~SP_JWT_ROLES_ALL) != 0 || (jti != NULL && strlen(jti) > SP_JWT_JTI_MAX))
        return SP_EINVAL;
    if (jti == NULL) {
        rc = jwt__random_jti(rnd, sizeof(rnd));
        if (rc != 0)
            return rc;
        jti = rnd;
    }
    if (jwt_new(&jwt) != 0)
        return -ENOMEM;
    snprintf(sub, sizeof(sub), "%" PRId64, user_id);
    snprintf(sid, sizeof(sid), "%" PRId64, session_id);
    if (jwt_add_grant(jwt, "sub", sub) != 0 || jwt_add_grant(jwt, "sid", sid) != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)) != 0 ||
        jwt_add_grant(jwt, "jti", jti) != 0 || (roles != 0 && jwt__add_roles(jwt, roles) != 0)) {
        rc = -ENOMEM;
        goto out_free_jwt;
    }
    if (jwt_set_alg(jwt, JWT_ALG_HS256, key, (int)key_len) != 0) {
        rc = SP_EINVAL;
        goto out_free_jwt;
    }
    *out = jwt_encode_str(jwt);
    rc = *out != NULL ? 0 : -ENOMEM;
out_free_jwt:
    jwt_free(jwt);
    return rc;
}

/* exp, iat, sub, sid, jti and roles of a token whose signature and algorithm were checked. */
static int
jwt__check_claims(jwt_t *jwt, int64_t now_s, struct sp_jwt_claims *c, struct sp_errbuf *eb)
{
    const char *jti;

    errno = 0;
    c->exp_s = jwt_get_grant_int(jwt, "exp");
    if (errno != 0 || c->exp_s <= now_s)
        return sp_err_set(eb, SP_EAUTH, NULL, "access token has expired or has no exp");
    errno = 0;
    c->iat_s = jwt_get_grant_int(jwt, "iat");
    if (errno != 0 || c->iat_s > now_s + SP_JWT_SKEW_S)
        return sp_err_set(eb, SP_EAUTH, NULL, "access token has no iat or is issued in the future");
    if (jwt__claim_id(jwt, "sub", &c->user_id) != 0 ||
        jwt__claim_id(jwt, "sid", &c->session_id) != 0)
        return sp_err_set(eb, SP_EAUTH, NULL, "access token lacks a valid sub or sid");
    jti = jwt_get_grant(jwt, "jti");
    if (jti != NULL && strlen(jti) > SP_JWT_JTI_MAX)
        return sp_err_set(eb, SP_EAUTH, NULL, "access token jti is too long");
    snprintf(c->jti, sizeof(c->jti), "%s", jti != NULL ? jti : "");
    if (jwt__claim_roles(jwt, &c->roles) != 0)
        return sp_err_set(eb, SP_EAUTH, NULL, "access token has a malformed roles claim");
    return 0;
}

int sp_jwt_verify(const unsigned char *key,
                  size_t key_len,
                  const char *token,
                  int64_t now_s,
                  struct sp_jwt_claims *out,
                  struct sp_errbuf *eb)
{
    struct sp_jwt_claims c;
    jwt_t *jwt = NULL;
    int rc;

    memset(&c, 0, sizeof(c));
    if (key_len == 0 || key_len > INT32_MAX)
        return sp_err_set(eb, SP_EAUTH, NULL, "no key to verify access tokens");
    if (token == NULL || strnlen(token, SP_JWT_MAX_BYTES + 1) > SP_JWT_MAX_BYTES)
        return sp_err_set(eb, SP_EAUTH, NULL, "access token is missing or too long");
    /* always with the key: libjwt 1.10 accepts alg=none when no key is given */
    if (jwt_decode(&jwt, token, key, (int)key_len) != 0 || jwt == NULL)
        return sp_err_set(eb, SP_EAUTH, NULL,
                          "access token is malformed or its signature does not verify");
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        rc = sp_err_set(eb, SP_EAUTH, NULL, "access token algorithm is not HS256");
        goto out_free_jwt;
    }
    rc = jwt__check_claims(jwt, now_s, &c, eb);
    if (rc == 0)
        *out = c;
out_free_jwt:
    jwt_free(jwt);
    return rc;
}

struct jwt__cache_slot {
    uint64_t hash;
    size_t len; /* 0 = empty */
    struct sp_jwt_claims claims;
    char token[SP_JWT_CACHE_TOKEN_MAX];
};

struct sp_jwt_cache {
    unsigned char key[1024];
    size_t key_len;
    uint64_t seed;
    size_t mask;
    struct jwt__cache_slot *slots;
};

int sp_jwt_cache_new(const unsigned char *key,
                     size_t key_len,
                     size_t slots,
                     struct sp_jwt_cache **out)
{
    size_t n = 1;
    if (key_len == 0 || key_len > sizeof(((struct sp_jwt_cache *)NULL)->key) || slots == 0 ||
        slots > ((size_t)1 << 20))
        return SP_EINVAL;
    while (n < slots)
        n <<= 1;
    struct sp_jwt_cache *c = sp_xcalloc(1, sizeof(*c));
    if (getrandom(&c->seed, sizeof(c->seed), 0) != (ssize_t)sizeof(c->seed)) {
        int rc = -errno;
        free(c);
        return rc;
    }
    memcpy(c->key, key, key_len);
    c->key_len = key_len;
    c->mask = n - 1;
    c->slots = sp_xcalloc(n, sizeof(*c->slots));
    *out = c;
    return 0;
}

void sp_jwt_cache_free(struct sp_jwt_cache *cache)
{
    if (!cache)
        return;
    explicit_bzero(cache->slots, (cache->mask + 1) * sizeof(*cache->slots));
    explicit_bzero(cache->key, sizeof(cache->key));
    free(cache->slots);
    free(cache);
}

int sp_jwt_verify_cached(struct sp_jwt_cache *cache,
                         const char *token,
                         int64_t now_s,
                         struct sp_jwt_claims *out,
                         struct sp_errbuf *eb)
{
    size_t len = token ? strnlen(token, SP_JWT_CACHE_TOKEN_MAX + 1) : 0;
    if (len == 0 || len > SP_JWT_CACHE_TOKEN_MAX)
        return sp_jwt_verify(cache->key, cache->key_len, token, now_s, out, eb);
    uint64_t h = XXH3_64bits_withSeed(token, len, cache->seed);
    struct jwt__cache_slot *s = &cache->slots[h & cache->mask];
    if (s->len == len && s->hash == h && CRYPTO_memcmp(s->token, token, len) == 0) {
        if (s->claims.exp_s <= now_s) {
            s->len = 0;
            return sp_err_set(eb, SP_EAUTH, NULL, "access token has expired or has no exp");
        }
        if (s->claims.iat_s > now_s + SP_JWT_SKEW_S) /* the clock stepped back */
            return sp_err_set(eb, SP_EAUTH, NULL,
                              "access token has no iat or is issued in the future");
        *out = s->claims;
        return 0;
    }
    int rc = sp_jwt_verify(cache->key, cache->key_len, token, now_s, out, eb);
    if (rc == 0) {
        s->hash = h;
        s->len = len;
        s->claims = *out;
        memcpy(s->token, token, len);
    }
    return rc;
}
