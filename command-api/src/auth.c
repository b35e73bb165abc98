/* Password hashing and refresh tokens (see auth.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <argon2.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "wm.h"

#include "sp/jwt.h"

#include "sp/banned.h"

#define SALT_BYTES     16
#define TAG_BYTES      32
#define NAME_MAX_BYTES 1024 /* longer entries of analytics.operators name nobody */

int cmd__random(void *out, size_t n)
{
    unsigned char *p = out;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

void cmd__sha256(const void *data, size_t len, unsigned char *out)
{
    unsigned int md_len = 0;
    int ok = EVP_Digest(data, len, out, &md_len, EVP_sha256(), NULL);
    SP_ASSERT(ok == 1 && md_len == 32);
}

void cmd__hmac_sha256(
    const void *key, size_t key_len, const void *data, size_t len, unsigned char *out)
{
    unsigned int md_len = 0;
    SP_ASSERT(key_len <= INT32_MAX);
    const unsigned char *md = HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &md_len);
    SP_ASSERT(md != NULL && md_len == 32);
}

void cmd__hex32(const unsigned char *in, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[64] = '\0';
}

int cmd__unhex32(const char *in, unsigned char *out)
{
    size_t n = 0;
    if (strlen(in) != 64 || OPENSSL_hexstr2buf_ex(out, 32, &n, in, '\0') != 1 || n != 32)
        return SP_EINVAL;
    return 0;
}

void cmd__sha256_hex(const void *data, size_t len, char *out)
{
    unsigned char md[32];
    cmd__sha256(data, len, md);
    cmd__hex32(md, out);
}

int cmd__password_hash(const struct cmd__argon2 *p,
                       const char *password,
                       char *out,
                       struct sp_errbuf *eb)
{
    unsigned char salt[SALT_BYTES];
    int rc = cmd__random(salt, sizeof(salt));
    if (rc != 0)
        return sp_err_set(eb, rc, NULL, "could not read random salt: %s", strerror(-rc));
    rc = argon2id_hash_encoded(p->t_cost, p->m_cost_kib, p->lanes, password, strlen(password), salt,
                               sizeof(salt), TAG_BYTES, out, CMD__PHC_MAX);
    if (rc != ARGON2_OK)
        return sp_err_set(eb, SP_EINVAL, NULL, "argon2id hashing failed: %s",
                          argon2_error_message(rc));
    return 0;
}

int cmd__password_verify(const char *phc, const char *password)
{
    return argon2id_verify(phc, password, strlen(password)) == ARGON2_OK ? 0 : SP_EAUTH;
}

int cmd__refresh_new(char *token, char *hash_hex)
{
    unsigned char raw[32];
    unsigned char b64[48];
    int rc = cmd__random(raw, sizeof(raw));
    if (rc != 0)
        return rc;
    int n = EVP_EncodeBlock(b64, raw, sizeof(raw)); /* 44 chars, one '=' */
    SP_ASSERT(n == 44);
    for (int i = 0; i < CMD__REFRESH_TOKEN_LEN; i++) {
        unsigned char c = b64[i];
        token[i] = (char)(c == '+' ? '-' : c == '/' ? '_' : c);
    }
    token[CMD__REFRESH_TOKEN_LEN] = '\0';
    cmd__sha256_hex(token, CMD__REFRESH_TOKEN_LEN, hash_hex);
    return 0;
}

int cmd__token_roles(
    const struct sp_config *cfg, struct cmd__wm *wm, MDB_txn *txn, int64_t user_id, unsigned *roles)
{
    const char *p = sp_config_str(cfg, "analytics.operators");
    char name[NAME_MAX_BYTES + 1];
    int64_t uid;

    *roles = 0;
    while (*p != '\0') {
        size_t n;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        n = strcspn(p, ",");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n > 0 && n <= NAME_MAX_BYTES) {
            memcpy(name, p, n);
            name[n] = '\0';
            int rc = cmd__wm_user_by_name(wm, txn, name, &uid);
            if (rc == 0 && uid == user_id) {
                *roles |= SP_JWT_ROLE_OPERATOR;
                return 0;
            }
            if (rc != 0 && rc != SP_ENOTFOUND)
                return rc;
        }
        p += strcspn(p, ",");
    }
    return 0;
}
