/* Tests of HS256 access tokens: round trip, bad signature, alg none/HS384, exp, iat, claims,
 * roles. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_alg_pinned),  cmocka_unit_test(test_times),
        cmocka_unit_test(test_claims),      cmocka_unit_test(test_roles_round_trip),
        cmocka_unit_test(test_roles_claim),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
