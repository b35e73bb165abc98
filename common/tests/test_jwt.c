/* Tests of HS256 access tokens: round trip, bad signature, alg none/HS384, exp, iat, claims,
 * roles, and the cache of verified tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jwt.h>

#include "sp/jwt.h"
#include "sp/banned.h"

#define KEY     ((const unsigned char *)"test-secret-of-some-length")
#define KEY_LEN (sizeof("test-secret-of-some-length") - 1)
#define NOW     1750000000

static void test_round_trip(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c;
    char *tok = NULL;

    (void)state;
    assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, 42, 4242, 0, "jti-1", NOW, 900, &tok), 0);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW + 10, &c, &eb), 0);
    assert_int_equal(c.user_id, 42);
    assert_int_equal(c.session_id, 4242);
    assert_int_equal(c.iat_s, NOW);
    assert_int_equal(c.exp_s, NOW + 900);
    assert_string_equal(c.jti, "jti-1");
    assert_int_equal(c.roles, 0); /* no roles claim at all */
    free(tok);

    /* random jti: 32 hex digits, differing between tokens */
    char *tok2 = NULL;
    assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, 42, 4242, 0, NULL, NOW, 900, &tok), 0);
    assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, 42, 4242, 0, NULL, NOW, 900, &tok2), 0);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &c, &eb), 0);
    assert_int_equal(strlen(c.jti), 32);
    assert_string_not_equal(tok, tok2);
    free(tok);
    free(tok2);
}

static void test_bad_signature(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c;
    char *tok = NULL;
    size_t n;

    (void)state;
    assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, 42, 4242, 0, NULL, NOW, 900, &tok), 0);
    assert_int_equal(sp_jwt_verify((const unsigned char *)"other-key", 9, tok, NOW, &c, &eb),
                     SP_EAUTH);
    assert_non_null(strstr(eb.msg, "signature"));
    /* flip one character of the signature */
    n = strlen(tok);
    tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &c, &eb), SP_EAUTH);
    free(tok);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, "not.a.jwt", NOW, &c, &eb), SP_EAUTH);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, "", NOW, &c, &eb), SP_EAUTH);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, NULL, NOW, &c, &eb), SP_EAUTH);
}

/* A token of algorithm @p alg with valid claims, signed with @p key (NULL for none). */
static char *make_token(jwt_alg_t alg, const unsigned char *key, size_t key_len)
{
    jwt_t *jwt = NULL;
    char *tok;

    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", "42"), 0);
    assert_int_equal(jwt_add_grant(jwt, "sid", "4242"), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "iat", NOW), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", NOW + 900), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, key, (int)key_len), 0);
    tok = jwt_encode_str(jwt);
    assert_non_null(tok);
    jwt_free(jwt);
    return tok;
}

static void test_alg_pinned(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c;
    char *tok;

    (void)state;
    tok = make_token(JWT_ALG_NONE, NULL, 0);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &c, &eb), SP_EAUTH);
    free(tok);
    tok = make_token(JWT_ALG_HS384, KEY, KEY_LEN);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &c, &eb), SP_EAUTH);
    free(tok);
    tok = make_token(JWT_ALG_HS256, KEY, KEY_LEN);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &c, &eb), 0);
    free(tok);
}

static void test_times(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c;
    char *tok = NULL;

    (void)state;
    assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, 42, 4242, 0, NULL, NOW, 900, &tok), 0);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW + 899, &c, &eb), 0);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW + 900, &c, &eb), SP_EAUTH);
    assert_non_null(strstr(eb.msg, "expired"));
    /* issued up to SP_JWT_SKEW_S in the future is fine, beyond is not */
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW - SP_JWT_SKEW_S, &c, &eb), 0);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW - SP_JWT_SKEW_S - 1, &c, &eb), SP_EAUTH);
    assert_non_null(strstr(eb.msg, "future"));
    free(tok);
}

static void test_claims(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c;
    jwt_t *jwt = NULL;
    char *tok;

    (void)state;
    /* sid missing */
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", "42"), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "iat", NOW), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", NOW + 900), 0);
    assert_int_equal(jwt_set_alg(jwt, JWT_ALG_HS256, KEY, (int)KEY_LEN), 0);
    tok = jwt_encode_str(jwt);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &c, &eb), SP_EAUTH);
    free(tok);
    /* sub not an id */
    assert_int_equal(jwt_add_grant(jwt, "sid", "7"), 0);
    assert_int_equal(jwt_del_grants(jwt, "sub"), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", "007"), 0);
    tok = jwt_encode_str(jwt);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &c, &eb), SP_EAUTH);
    free(tok);
    /* integer sub is accepted */
    assert_int_equal(jwt_del_grants(jwt, "sub"), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "sub", 9), 0);
    tok = jwt_encode_str(jwt);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &c, &eb), 0);
    assert_int_equal(c.user_id, 9);
    assert_int_equal(c.session_id, 7);
    assert_string_equal(c.jti, "");
    free(tok);
    jwt_free(jwt);
    /* bad arguments to sign */
    assert_int_equal(sp_jwt_sign(KEY, 0, 1, 1, 0, NULL, NOW, 1, &tok), SP_EINVAL);
    assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, 0, 1, 0, NULL, NOW, 1, &tok), SP_EINVAL);
    assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, 1, 1, 1U << 30, NULL, NOW, 1, &tok), SP_EINVAL);
}

/* The claim "roles" of @p tok as JSON text (owned), or NULL if it has none. */
static char *roles_of(const char *tok)
{
    jwt_t *jwt = NULL;
    char *text;

    assert_int_equal(jwt_decode(&jwt, tok, KEY, (int)KEY_LEN), 0);
    text = jwt_get_grants_json(jwt, "roles");
    jwt_free(jwt);
    return text;
}

static void test_roles_round_trip(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c;
    char *tok = NULL, *roles;

    (void)state;
    assert_int_equal(
        sp_jwt_sign(KEY, KEY_LEN, 42, 4242, SP_JWT_ROLE_OPERATOR, "jti-2", NOW, 900, &tok), 0);
    /* on the wire: "roles":["operator"] (RFC 9068 §2.2.3.1) */
    roles = roles_of(tok);
    assert_non_null(roles);
    assert_string_equal(roles, "[\"operator\"]");
    free(roles);
    memset(&c, 0, sizeof(c));
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &c, &eb), 0);
    assert_int_equal(c.roles, SP_JWT_ROLE_OPERATOR);
    assert_int_equal(c.user_id, 42);
    free(tok);
    /* no roles: no claim, and none read back */
    assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, 42, 4242, 0, "jti-3", NOW, 900, &tok), 0);
    assert_null(roles_of(tok));
    c.roles = 99;
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &c, &eb), 0);
    assert_int_equal(c.roles, 0);
    free(tok);
}

/* An HS256 token with valid claims and the grant "roles" = JSON text @p roles. */
static char *roles_token(const char *roles)
{
    jwt_t *jwt = NULL;
    char grant[256];
    char *tok;

    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", "42"), 0);
    assert_int_equal(jwt_add_grant(jwt, "sid", "4242"), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "iat", NOW), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", NOW + 900), 0);
    snprintf(grant, sizeof(grant), "{\"roles\":%s}", roles);
    assert_int_equal(jwt_add_grants_json(jwt, grant), 0);
    assert_int_equal(jwt_set_alg(jwt, JWT_ALG_HS256, KEY, (int)KEY_LEN), 0);
    tok = jwt_encode_str(jwt);
    assert_non_null(tok);
    jwt_free(jwt);
    return tok;
}

static void test_roles_claim(void **state)
{
    static const struct {
        const char *roles; /* JSON of the claim */
        int rc;            /* of sp_jwt_verify */
        unsigned want;     /* roles read, when rc == 0 */
    } cases[] = {
        {"[\"operator\"]", 0, SP_JWT_ROLE_OPERATOR},
        {"[]", 0, 0},
        {"[\"auditor\",\"operator\"]", 0, SP_JWT_ROLE_OPERATOR}, /* unknown names: ignored */
        {"[\"auditor\"]", 0, 0},
        {"[\"operator\",\"operator\"]", 0, SP_JWT_ROLE_OPERATOR},
        /* malformed: the whole token is refused */
        {"\"operator\"", SP_EAUTH, 0},
        {"{\"operator\":true}", SP_EAUTH, 0},
        {"null", SP_EAUTH, 0},
        {"true", SP_EAUTH, 0},
        {"1", SP_EAUTH, 0},
        {"[1]", SP_EAUTH, 0},
        {"[\"operator\",null]", SP_EAUTH, 0},
        {"[[\"operator\"]]", SP_EAUTH, 0},
        {"[\"\"]", SP_EAUTH, 0},
        {"[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
         "\"a\",\"a\","
         "\"operator\"]",
         SP_EAUTH, 0}, /* 17 entries */
        {"[\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]", SP_EAUTH,
         0}, /* 65 bytes */
    };
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tok = roles_token(cases[i].roles);
        int rc;

        memset(&c, 0, sizeof(c));
        c.user_id = -1;
        rc = sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &c, &eb);
        if (rc != cases[i].rc)
            fail_msg("roles %s: verify %d, want %d (%s)", cases[i].roles, rc, cases[i].rc, eb.msg);
        if (rc == 0)
            assert_int_equal(c.roles, cases[i].want);
        else /* nothing filled on failure */
            assert_int_equal(c.user_id, -1);
        if (rc != 0)
            assert_non_null(strstr(eb.msg, "roles"));
        free(tok);
    }
}

/* Every field of @p got equals @p want. */
static void assert_claims_equal(const struct sp_jwt_claims *got, const struct sp_jwt_claims *want)
{
    assert_int_equal(got->user_id, want->user_id);
    assert_int_equal(got->session_id, want->session_id);
    assert_int_equal(got->iat_s, want->iat_s);
    assert_int_equal(got->exp_s, want->exp_s);
    assert_string_equal(got->jti, want->jti);
    assert_int_equal(got->roles, want->roles);
}

static struct sp_jwt_cache *cache_of(size_t slots)
{
    struct sp_jwt_cache *cache = NULL;

    assert_int_equal(sp_jwt_cache_new(KEY, KEY_LEN, slots, &cache), 0);
    assert_non_null(cache);
    return cache;
}

static void test_cache_same_claims(void **state)
{
    static const struct {
        int64_t user_id, session_id;
        unsigned roles;
        const char *jti; /* NULL: random */
    } cases[] = {
        {42, 4242, SP_JWT_ROLE_OPERATOR, "jti-c1"},
        {7, 8, 0, NULL},
        {INT64_MAX, INT64_MAX - 1, 0,
         "0123456789012345678901234567890123456789012345678901234567890123"},
    };
    struct sp_jwt_cache *cache = cache_of(64);
    struct sp_errbuf eb = {{0}, {0}};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sp_jwt_claims want, got;
        char *tok = NULL;

        assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, cases[i].user_id, cases[i].session_id,
                                     cases[i].roles, cases[i].jti, NOW, 900, &tok),
                         0);
        memset(&want, 0, sizeof(want));
        assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW + 10, &want, &eb), 0);
        assert_int_equal(want.user_id, cases[i].user_id);
        assert_int_equal(want.roles, cases[i].roles);
        /* first call: a miss, verified and kept; second and third: hits */
        for (int round = 0; round < 3; round++) {
            memset(&got, 0x5a, sizeof(got));
            assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW + 10 + round, &got, &eb), 0);
            assert_claims_equal(&got, &want);
        }
        free(tok);
    }
    sp_jwt_cache_free(cache);
}

static void test_cache_expiry_and_key(void **state)
{
    struct sp_jwt_cache *cache = cache_of(16);
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c;
    char *tok = NULL, *forged = NULL;

    (void)state;
    assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, 42, 4242, 0, "jti-exp", NOW, 900, &tok), 0);
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW, &c, &eb), 0);
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW + 899, &c, &eb), 0); /* hit */
    assert_int_equal(c.exp_s, NOW + 900);
    /* a hit checks exp: refused from exp on, exactly as sp_jwt_verify, nothing filled */
    c.user_id = -1;
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW + 900, &c, &eb), SP_EAUTH);
    assert_non_null(strstr(eb.msg, "expired"));
    assert_int_equal(c.user_id, -1);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW + 900, &c, &eb), SP_EAUTH);
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW + 901, &c, &eb), SP_EAUTH);
    assert_int_equal(c.user_id, -1);
    /* and it verifies again for a time before exp, as an uncached token would */
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW + 1, &c, &eb), 0);
    assert_int_equal(c.user_id, 42);

    /* the same claims signed with another key: refused although tok is cached */
    assert_int_equal(sp_jwt_sign((const unsigned char *)"other-key", 9, 42, 4242, 0, "jti-exp", NOW,
                                 900, &forged),
                     0);
    assert_string_not_equal(forged, tok);
    c.user_id = -1;
    assert_int_equal(sp_jwt_verify_cached(cache, forged, NOW + 1, &c, &eb), SP_EAUTH);
    assert_non_null(strstr(eb.msg, "signature"));
    assert_int_equal(c.user_id, -1);
    /* refusing it did not evict or replace the cached token */
    assert_int_equal(sp_jwt_verify_cached(cache, forged, NOW + 2, &c, &eb), SP_EAUTH);
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW + 2, &c, &eb), 0);
    assert_int_equal(c.user_id, 42);
    sp_jwt_cache_free(cache);

    /* a cache is bound to its key: tok does not verify through a cache of another key */
    assert_int_equal(sp_jwt_cache_new((const unsigned char *)"other-key", 9, 16, &cache), 0);
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW + 1, &c, &eb), SP_EAUTH);
    assert_int_equal(sp_jwt_verify_cached(cache, forged, NOW + 1, &c, &eb), 0);
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW + 1, &c, &eb), SP_EAUTH);
    sp_jwt_cache_free(cache);
    free(forged);
    free(tok);
}

static void test_cache_near_miss(void **state)
{
    /* one slot: every token looks in the slot that holds the cached one */
    struct sp_jwt_cache *cache = cache_of(1);
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c;
    char *tok = NULL, *bad;
    size_t n, dot;

    (void)state;
    assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, 42, 4242, 0, "jti-near", NOW, 900, &tok), 0);
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW, &c, &eb), 0);
    n = strlen(tok);
    bad = strdup(tok);
    assert_non_null(bad);
    /* the last signature character: 4 bits of the MAC and 2 zero bits, so change it to
     * another character whose low 2 bits are zero ("A" = 0, "E" = 4) */
    bad[n - 1] = tok[n - 1] == 'A' ? 'E' : 'A';
    c.user_id = -1;
    assert_int_equal(sp_jwt_verify_cached(cache, bad, NOW, &c, &eb), SP_EAUTH);
    assert_int_equal(c.user_id, -1);
    /* the first signature character */
    memcpy(bad, tok, n + 1);
    dot = (size_t)(strrchr(tok, '.') - tok);
    bad[dot + 1] = tok[dot + 1] == 'A' ? 'B' : 'A';
    assert_int_equal(sp_jwt_verify_cached(cache, bad, NOW, &c, &eb), SP_EAUTH);
    assert_int_equal(c.user_id, -1);
    /* the first character (header) */
    memcpy(bad, tok, n + 1);
    bad[0] = tok[0] == 'e' ? 'f' : 'e';
    assert_int_equal(sp_jwt_verify_cached(cache, bad, NOW, &c, &eb), SP_EAUTH);
    /* a prefix of the cached token, one byte shorter */
    memcpy(bad, tok, n + 1);
    bad[n - 1] = '\0';
    assert_int_equal(sp_jwt_verify_cached(cache, bad, NOW, &c, &eb), SP_EAUTH);
    /* the cached token itself is still answered */
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW, &c, &eb), 0);
    assert_int_equal(c.user_id, 42);
    assert_string_equal(c.jti, "jti-near");
    free(bad);
    free(tok);
    sp_jwt_cache_free(cache);
}

static void test_cache_replacement(void **state)
{
    struct sp_jwt_cache *cache = cache_of(1);
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c;
    char *a = NULL, *b = NULL;

    (void)state;
    assert_int_equal(
        sp_jwt_sign(KEY, KEY_LEN, 11, 111, SP_JWT_ROLE_OPERATOR, "jti-a", NOW, 900, &a), 0);
    assert_int_equal(sp_jwt_sign(KEY, KEY_LEN, 22, 222, 0, "jti-b", NOW, 600, &b), 0);
    for (int round = 0; round < 4; round++) {
        memset(&c, 0, sizeof(c));
        assert_int_equal(sp_jwt_verify_cached(cache, a, NOW + round, &c, &eb), 0);
        assert_int_equal(c.user_id, 11);
        assert_int_equal(c.session_id, 111);
        assert_int_equal(c.exp_s, NOW + 900);
        assert_string_equal(c.jti, "jti-a");
        assert_int_equal(c.roles, SP_JWT_ROLE_OPERATOR);
        memset(&c, 0, sizeof(c));
        assert_int_equal(sp_jwt_verify_cached(cache, b, NOW + round, &c, &eb), 0);
        assert_int_equal(c.user_id, 22);
        assert_int_equal(c.session_id, 222);
        assert_int_equal(c.exp_s, NOW + 600);
        assert_string_equal(c.jti, "jti-b");
        assert_int_equal(c.roles, 0);
    }
    /* b (in the slot now) expires before a; a still verifies after b's expiry */
    assert_int_equal(sp_jwt_verify_cached(cache, b, NOW + 600, &c, &eb), SP_EAUTH);
    assert_int_equal(sp_jwt_verify_cached(cache, a, NOW + 600, &c, &eb), 0);
    assert_int_equal(c.user_id, 11);
    free(a);
    free(b);
    sp_jwt_cache_free(cache);
}

static void test_cache_long_tokens(void **state)
{
    struct sp_jwt_cache *cache = cache_of(4);
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c, want;
    char pad[601], grant[700];
    jwt_t *jwt = NULL;
    char *tok, *garbage;

    (void)state;
    /* a valid token longer than SP_JWT_CACHE_TOKEN_MAX (an extra claim): verified each time */
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    snprintf(grant, sizeof(grant), "{\"pad\":\"%s\"}", pad);
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", "42"), 0);
    assert_int_equal(jwt_add_grant(jwt, "sid", "4242"), 0);
    assert_int_equal(jwt_add_grant(jwt, "jti", "jti-long"), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "iat", NOW), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", NOW + 900), 0);
    assert_int_equal(jwt_add_grants_json(jwt, grant), 0);
    assert_int_equal(jwt_set_alg(jwt, JWT_ALG_HS256, KEY, (int)KEY_LEN), 0);
    tok = jwt_encode_str(jwt);
    assert_non_null(tok);
    jwt_free(jwt);
    assert_true(strlen(tok) > SP_JWT_CACHE_TOKEN_MAX);
    assert_int_equal(sp_jwt_verify(KEY, KEY_LEN, tok, NOW, &want, &eb), 0);
    for (int round = 0; round < 2; round++) {
        memset(&c, 0, sizeof(c));
        assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW + round, &c, &eb), 0);
        assert_claims_equal(&c, &want);
        assert_string_equal(c.jti, "jti-long");
    }
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW + 900, &c, &eb), SP_EAUTH);
    /* one slot: a long token that differs from a verified one only after byte
     * SP_JWT_CACHE_TOKEN_MAX (in its signature) is refused */
    sp_jwt_cache_free(cache);
    cache = cache_of(1);
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW, &c, &eb), 0);
    garbage = strdup(tok);
    assert_non_null(garbage);
    garbage[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
    c.user_id = -1;
    assert_int_equal(sp_jwt_verify_cached(cache, garbage, NOW, &c, &eb), SP_EAUTH);
    assert_int_equal(c.user_id, -1);
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW, &c, &eb), 0);
    assert_int_equal(sp_jwt_verify_cached(cache, garbage, NOW, &c, &eb), SP_EAUTH);
    free(garbage);
    free(tok);

    /* garbage of SP_JWT_CACHE_TOKEN_MAX + 1 bytes and more, and beyond SP_JWT_MAX_BYTES */
    static const size_t lens[] = {SP_JWT_CACHE_TOKEN_MAX + 1, 600, SP_JWT_MAX_BYTES + 1};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        garbage = malloc(lens[i] + 1);
        assert_non_null(garbage);
        memset(garbage, 'x', lens[i]);
        garbage[10] = '.';
        garbage[lens[i] - 10] = '.';
        garbage[lens[i]] = '\0';
        c.user_id = -1;
        assert_int_equal(sp_jwt_verify_cached(cache, garbage, NOW, &c, &eb), SP_EAUTH);
        assert_int_equal(sp_jwt_verify_cached(cache, garbage, NOW, &c, &eb), SP_EAUTH);
        assert_int_equal(c.user_id, -1);
        free(garbage);
    }
    /* short garbage, empty and NULL tokens are refused too */
    assert_int_equal(sp_jwt_verify_cached(cache, "not.a.jwt", NOW, &c, &eb), SP_EAUTH);
    assert_int_equal(sp_jwt_verify_cached(cache, "", NOW, &c, &eb), SP_EAUTH);
    assert_int_equal(sp_jwt_verify_cached(cache, NULL, NOW, &c, &eb), SP_EAUTH);
    assert_int_equal(c.user_id, -1);
    sp_jwt_cache_free(cache);
}

static void test_cache_new_args(void **state)
{
    static const unsigned char big_key[1025] = {1};
    struct sp_jwt_cache *cache = NULL;
    struct sp_errbuf eb = {{0}, {0}};
    struct sp_jwt_claims c;
    char *tok = NULL;

    (void)state;
    assert_int_equal(sp_jwt_cache_new(KEY, KEY_LEN, 0, &cache), SP_EINVAL);
    assert_int_equal(sp_jwt_cache_new(KEY, KEY_LEN, ((size_t)1 << 20) + 1, &cache), SP_EINVAL);
    assert_int_equal(sp_jwt_cache_new(KEY, KEY_LEN, SIZE_MAX, &cache), SP_EINVAL);
    assert_int_equal(sp_jwt_cache_new(KEY, 0, 16, &cache), SP_EINVAL);
    assert_int_equal(sp_jwt_cache_new(big_key, sizeof(big_key), 16, &cache), SP_EINVAL);
    assert_null(cache);
    sp_jwt_cache_free(NULL); /* no-op */

    /* the largest key is accepted and used; slots are rounded up (3 -> 4) */
    assert_int_equal(sp_jwt_cache_new(big_key, sizeof(big_key) - 1, 3, &cache), 0);
    assert_non_null(cache);
    assert_int_equal(sp_jwt_sign(big_key, sizeof(big_key) - 1, 5, 6, 0, "jti-big", NOW, 60, &tok),
                     0);
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW, &c, &eb), 0);
    assert_int_equal(c.user_id, 5);
    assert_int_equal(sp_jwt_verify_cached(cache, tok, NOW, &c, &eb), 0);
    assert_int_equal(c.session_id, 6);
    free(tok);
    sp_jwt_cache_free(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_alg_pinned),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_roles_round_trip),
        cmocka_unit_test(test_roles_claim),
        cmocka_unit_test(test_cache_same_claims),
        cmocka_unit_test(test_cache_expiry_and_key),
        cmocka_unit_test(test_cache_near_miss),
        cmocka_unit_test(test_cache_replacement),
        cmocka_unit_test(test_cache_long_tokens),
        cmocka_unit_test(test_cache_new_args),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
