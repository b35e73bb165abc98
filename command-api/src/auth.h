/*
 * Credentials: argon2id password hashes (RFC 9106, libargon2 PHC strings) and random
 * refresh tokens stored only as their SHA-256 (OpenSSL EVP). Access tokens (JWT HS256)
 * are signed and verified by the shared sp/jwt.h, as query-api verifies them; the roles
 * they carry come from cmd__token_roles.
 */
#ifndef CMD_AUTH_H
#define CMD_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "sp/config.h"
#include "sp/err.h"

#define CMD__REFRESH_TOKEN_LEN 43  /* base64url of 32 random bytes, no padding */
#define CMD__PHC_MAX           256 /* longest argon2id PHC string we produce or accept */

struct cmd__argon2 {
    uint32_t t_cost;     /* iterations */
    uint32_t m_cost_kib; /* memory, KiB */
    uint32_t lanes;      /* parallelism */
};

/** Fill @p out with @p n bytes from getrandom(2). @return 0 or -errno. */
SP_MUST_CHECK int cmd__random(void *out, size_t n);

/** Lower-case hex of the 32 bytes at @p in into @p out (65 bytes, NUL-terminated). */
void cmd__hex32(const unsigned char *in, char *out);

/**
 * The 32 bytes of @p in, 64 hex digits (as cmd__hex32 writes them), into @p out, by
 * OpenSSL's OPENSSL_hexstr2buf_ex. @return 0; SP_EINVAL for another length or a
 * character that is not a hex digit.
 */
SP_MUST_CHECK int cmd__unhex32(const char *in, unsigned char *out);

/** Lower-case hex SHA-256 of @p len bytes into @p out (65 bytes). */
void cmd__sha256_hex(const void *data, size_t len, char *out);

/** Raw SHA-256 of @p len bytes into @p out (32 bytes). */
void cmd__sha256(const void *data, size_t len, unsigned char *out);

/**
 * HMAC-SHA256 (RFC 2104) of @p len bytes with the @p key_len byte @p key into @p out
 * (32 bytes).
 */
void cmd__hmac_sha256(
    const void *key, size_t key_len, const void *data, size_t len, unsigned char *out);

/**
 * Hash @p password with argon2id, a 16-byte random salt and a 32-byte tag, as a PHC
 * string into @p out (CMD__PHC_MAX bytes).
 * @return 0; SP_EINVAL (eb says why) if libargon2 refuses the parameters; -errno.
 */
SP_MUST_CHECK int cmd__password_hash(const struct cmd__argon2 *p,
                                     const char *password,
                                     char *out,
                                     struct sp_errbuf *eb);

/** @return 0 if @p password matches the PHC string @p phc, else SP_EAUTH. */
SP_MUST_CHECK int cmd__password_verify(const char *phc, const char *password);

/**
 * New refresh token: 32 random bytes as base64url (RFC 4648 §5, no padding) into
 * @p token (CMD__REFRESH_TOKEN_LEN + 1 bytes) and its hex SHA-256 into @p hash_hex.
 * @return 0 or -errno.
 */
SP_MUST_CHECK int cmd__refresh_new(char *token, char *hash_hex);

struct cmd__wm;

/**
 * The roles (SP_JWT_ROLE_*, sp/jwt.h) of an access token issued now to @p user_id:
 * SP_JWT_ROLE_OPERATOR if config analytics.operators (comma-separated usernames, spaces
 * around each ignored, compared case-insensitively as usernames are) names the user.
 * Each listed name is looked up in the write model in @p txn (the batch's transaction,
 * so a user registered earlier in the batch counts); a name nobody has is skipped. A
 * change of the list applies to the tokens issued after a restart with the new config.
 * @return 0 and *roles; SP_EDB if a lookup failed.
 */
SP_MUST_CHECK int cmd__token_roles(const struct sp_config *cfg,
                                   struct cmd__wm *wm,
                                   MDB_txn *txn,
                                   int64_t user_id,
                                   unsigned *roles);

#endif
