/* The command-api write model: LMDB tables folded from the event log (see wm.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wm.h"
#include "auth.h"

#include "es/catalogue.h"
#include "es/id.h"
#include "es/lmdb_ahead.h"
#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"

#include "sp/banned.h"

enum wm_table {
    WM_META,
    WM_STREAMS,
    WM_NAMES,
    WM_EMAILS,
    WM_USERS,
    WM_SESSIONS,
    WM_REFRESH,
    WM_RECIPES,
    WM_IDEM,
    WM_FOLLOWS,
    WM_LIKES,
    WM_COMMENTS,
    WM_READS,
    WM_POSITIONS,
    WM_ROOMS,
    WM_MEMBERS,
    WM_DIRECT,
    WM_CHAT_TXNS,
    WM_NTABLES
};

static const char *const wm_table_names[WM_NTABLES] = {
    "meta",    "streams",   "usernames",   "emails",  "users",  "sessions",
    "refresh", "recipes",   "idempotency", "follows", "likes",  "comments",
    "reads",   "positions", "rooms",       "members", "direct", "chat_txns"};

struct cmd__wm {
    MDB_env *env;
    MDB_dbi dbi[WM_NTABLES];
    unsigned char secret[CMD__WM_SECRET_LEN]; /* meta "idem_secret" */
    char idem_kid[CMD__IDEM_KID_LEN + 1];     /* cmd__wm_set_idem_kid; "" = rebuild nothing */
    int64_t ahead_to; /* data file written up to here, bytes (es_lmdb_write_ahead); -1 = off */
};

void cmd__wm_set_idem_kid(struct cmd__wm *wm, const char *kid)
{
    snprintf(wm->idem_kid, sizeof(wm->idem_kid), "%s", kid);
}

void cmd__wm_idem_fp_format(const struct cmd__wm *wm, const unsigned char *fp, char *out)
{
    memcpy(out, wm->idem_kid, CMD__IDEM_KID_LEN);
    out[CMD__IDEM_KID_LEN] = ':';
    cmd__hex32(fp, out + CMD__IDEM_KID_LEN + 1);
}

#define WM_CATCHUP_BATCH 1024
#define WM_DIGEST_LEN    32 /* name and email keys: SHA-256 */
#define WM_POS_LEN       24 /* positions value: version, partition, offset (8 bytes each) */

static void id_key(int64_t id, unsigned char out[8])
{
    uint64_t u = (uint64_t)id;
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(u & 0xff);
        u >>= 8;
    }
}

static int64_t id_from_val(const MDB_val *v)
{
    uint64_t u = 0;
    const unsigned char *p = v->mv_data;
    for (size_t i = 0; i < 8 && i < v->mv_size; i++)
        u = (u << 8) | p[i];
    return (int64_t)u;
}

/* LMDB's MDB_val is not const-correct; it never writes through key or data on put/get. */
static void *unconst(const void *p)
{
    void *q;
    memcpy(&q, &p, sizeof(q));
    return q;
}

static int wm_get(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, MDB_val *v)
{
    MDB_val key = {.mv_size = klen, .mv_data = unconst(k)};
    int rc = mdb_get(txn, dbi, &key, v);
    if (rc == MDB_NOTFOUND)
        return SP_ENOTFOUND;
    if (rc != 0) {
        sp_log(SP_LOG_ERROR, "write model read failed: %s", mdb_strerror(rc));
        return SP_EDB;
    }
    return 0;
}

static int wm_put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v, size_t vlen)
{
    MDB_val key = {.mv_size = klen, .mv_data = unconst(k)};
    MDB_val val = {.mv_size = vlen, .mv_data = unconst(v)};
    int rc = mdb_put(txn, dbi, &key, &val, 0);
    if (rc != 0) {
        sp_log(SP_LOG_ERROR, "write model write failed: %s", mdb_strerror(rc));
        return SP_EDB;
    }
    return 0;
}

/* Delete key @p k. @return 0, SP_ENOTFOUND (there was none) or SP_EDB. */
static int wm_del(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen)
{
    MDB_val key = {.mv_size = klen, .mv_data = unconst(k)};
    int rc = mdb_del(txn, dbi, &key, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        sp_log(SP_LOG_ERROR, "write model delete failed: %s", mdb_strerror(rc));
        return SP_EDB;
    }
    return rc == MDB_NOTFOUND ? SP_ENOTFOUND : 0;
}

/* Value stored under 8-byte id key @p id in @p dbi (borrowed, valid until @p txn ends). */
static int id_get(MDB_txn *txn, MDB_dbi dbi, int64_t id, MDB_val *v)
{
    unsigned char k[8];
    id_key(id, k);
    return wm_get(txn, dbi, k, sizeof(k), v);
}

static int id_put(MDB_txn *txn, MDB_dbi dbi, int64_t id, const void *v, size_t vlen)
{
    unsigned char k[8];
    id_key(id, k);
    return wm_put(txn, dbi, k, sizeof(k), v, vlen);
}

/*
 * Copy the fixed-size record of @p id (@p size bytes) into @p out.
 * @return 0, SP_ENOTFOUND or SP_EDB (also when the stored record has another size).
 */
static int record_get(MDB_txn *txn, MDB_dbi dbi, int64_t id, void *out, size_t size)
{
    MDB_val v;
    int rc = id_get(txn, dbi, id, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size != size)
        return SP_EDB;
    memcpy(out, v.mv_data, size);
    return 0;
}

/* The 8-byte big-endian integer stored under @p k, 0 when there is none. @return 0 or SP_EDB. */
static int i64_get_or_zero(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, int64_t *out)
{
    MDB_val v;
    int rc = wm_get(txn, dbi, k, klen, &v);
    *out = 0;
    if (rc == SP_ENOTFOUND)
        return 0;
    if (rc == 0)
        *out = id_from_val(&v);
    return rc;
}

static int i64_put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, int64_t value)
{
    unsigned char v[8];
    id_key(value, v);
    return wm_put(txn, dbi, k, klen, v, sizeof(v));
}

/* Key of a username or email: SHA-256 of its ASCII lower-case form (any length fits). */
static void digest_key(const char *s, unsigned char out[WM_DIGEST_LEN])
{
    size_t n = strlen(s);
    char *low = sp_xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        low[i] = (char)((c >= 'A' && c <= 'Z') ? (c | 0x20) : c);
    }
    cmd__sha256(low, n, out);
    free(low);
}

static int wm_open_tables(struct cmd__wm *wm, struct sp_errbuf *eb)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(wm->env, NULL, 0, &txn);
    if (rc != 0)
        return sp_err_set(eb, SP_EDB, NULL, "could not begin write model txn: %s",
                          mdb_strerror(rc));
    for (int i = 0; i < WM_NTABLES; i++) {
        rc = mdb_dbi_open(txn, wm_table_names[i], MDB_CREATE, &wm->dbi[i]);
        if (rc != 0) {
            mdb_txn_abort(txn);
            return sp_err_set(eb, SP_EDB, NULL, "could not open write model table \"%s\": %s",
                              wm_table_names[i], mdb_strerror(rc));
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return sp_err_set(eb, SP_EDB, NULL, "could not create write model tables: %s",
                          mdb_strerror(rc));
    return 0;
}

static int wm_empty(struct cmd__wm *wm, MDB_txn *txn)
{
    for (int i = 0; i < WM_NTABLES; i++) {
        int rc = mdb_drop(txn, wm->dbi[i], 0);
        if (rc != 0) {
            sp_log(SP_LOG_ERROR, "could not empty write model table: %s", mdb_strerror(rc));
            return SP_EDB;
        }
    }
    return 0;
}

/* Empty every table if the stored format is not CMD__WM_FORMAT, then store it. */
static int wm_check_format(struct cmd__wm *wm, MDB_txn *txn)
{
    MDB_val v;
    size_t flen = strlen(CMD__WM_FORMAT);
    int rc = wm_get(txn, wm->dbi[WM_META], "format", 6, &v);
    if (rc == 0 && v.mv_size == flen && memcmp(v.mv_data, CMD__WM_FORMAT, flen) == 0)
        return 0;
    if (rc != 0 && rc != SP_ENOTFOUND)
        return rc;
    if (wm_get(txn, wm->dbi[WM_META], "checkpoint", 10, &v) == 0)
        sp_log(SP_LOG_WARN, "write model has an older format: rebuilding it from the log "
                            "(stored idempotency answers are dropped)");
    if ((rc = wm_empty(wm, txn)) != 0)
        return rc;
    return wm_put(txn, wm->dbi[WM_META], "format", 6, CMD__WM_FORMAT, flen);
}

/*
 * Empty every table if the write model was folded from another log than @p log_id (no
 * "log" in meta: "lmdb", the only backend before Kafka), then store @p log_id.
 */
static int wm_check_log(struct cmd__wm *wm, MDB_txn *txn, const char *log_id)
{
    MDB_val v;
    size_t len = strlen(log_id);
    const char *stored = "lmdb";
    size_t stored_len = 4;
    int rc = wm_get(txn, wm->dbi[WM_META], "log", 3, &v);
    if (rc != 0 && rc != SP_ENOTFOUND)
        return rc;
    if (rc == 0) {
        stored = v.mv_data;
        stored_len = v.mv_size;
    }
    if (stored_len != len || memcmp(stored, log_id, len) != 0) {
        if (wm_get(txn, wm->dbi[WM_META], "checkpoint", 10, &v) == 0)
            sp_log(SP_LOG_WARN,
                   "write model was folded from log \"%.*s\", now \"%s\": rebuilding it from "
                   "the log (stored idempotency answers are dropped)",
                   (int)stored_len, stored, log_id);
        if ((rc = wm_empty(wm, txn)) != 0 ||
            (rc = wm_put(txn, wm->dbi[WM_META], "format", 6, CMD__WM_FORMAT,
                         strlen(CMD__WM_FORMAT))) != 0)
            return rc;
    }
    return wm_put(txn, wm->dbi[WM_META], "log", 3, log_id, len);
}

/* Load the idempotency key from meta, making a random one at the first open. */
static int wm_load_secret(struct cmd__wm *wm, MDB_txn *txn)
{
    MDB_val v;
    int rc = wm_get(txn, wm->dbi[WM_META], "idem_secret", 11, &v);
    if (rc == 0 && v.mv_size == sizeof(wm->secret)) {
        memcpy(wm->secret, v.mv_data, sizeof(wm->secret));
        return 0;
    }
    if (rc != 0 && rc != SP_ENOTFOUND)
        return rc;
    if ((rc = cmd__random(wm->secret, sizeof(wm->secret))) != 0)
        return rc;
    return wm_put(txn, wm->dbi[WM_META], "idem_secret", 11, wm->secret, sizeof(wm->secret));
}

static int wm_init_meta(struct cmd__wm *wm, const char *log_id, struct sp_errbuf *eb)
{
    MDB_txn *txn = NULL;
    int rc = cmd__wm_txn_begin(wm, NULL, false, &txn);
    if (rc != 0)
        return sp_err_set(eb, rc, NULL, "could not begin write model txn");
    if ((rc = wm_check_format(wm, txn)) != 0 || (rc = wm_check_log(wm, txn, log_id)) != 0 ||
        (rc = wm_load_secret(wm, txn)) != 0) {
        mdb_txn_abort(txn);
        return sp_err_set(eb, rc, NULL, "could not initialise the write model meta: %s",
                          sp_strerror(rc));
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return sp_err_set(eb, SP_EDB, NULL, "could not commit the write model meta: %s",
                          mdb_strerror(rc));
    return 0;
}

int cmd__wm_open(const char *dir,
                 size_t map_size_bytes,
                 const char *log_id,
                 struct cmd__wm **out,
                 struct sp_errbuf *eb)
{
    struct cmd__wm *wm = sp_xcalloc(1, sizeof(*wm));
    int rc;

    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        rc = sp_err_set(eb, -errno, NULL, "could not create write model dir \"%s\": %s", dir,
                        strerror(errno));
        goto out_free;
    }
    rc = mdb_env_create(&wm->env);
    if (rc != 0) {
        rc = sp_err_set(eb, SP_EDB, NULL, "could not create write model env: %s", mdb_strerror(rc));
        goto out_free;
    }
    if (mdb_env_set_maxdbs(wm->env, WM_NTABLES + 2) != 0 ||
        mdb_env_set_mapsize(wm->env, map_size_bytes) != 0) {
        rc = sp_err_set(eb, SP_EDB, NULL, "could not size write model env");
        goto out_close_env;
    }
    /* Commits sync their pages, not their meta page (see wm.h, "Durability"). */
    rc = mdb_env_open(wm->env, dir, MDB_NOTLS | MDB_NOMETASYNC, 0640);
    if (rc != 0) {
        rc = sp_err_set(eb, SP_EDB, NULL, "could not open write model \"%s\": %s", dir,
                        mdb_strerror(rc));
        goto out_close_env;
    }
    rc = wm_open_tables(wm, eb);
    if (rc == 0)
        rc = wm_init_meta(wm, log_id, eb);
    if (rc == 0 && cmd__wm_sync(wm) != 0) /* the idempotency secret */
        rc = sp_err_set(eb, SP_EDB, NULL, "could not sync write model \"%s\"", dir);
    if (rc != 0)
        goto out_close_env;
    wm->ahead_to = es_lmdb_file_size(wm->env); /* zeros follow its first commit */
    *out = wm;
    return 0;

out_close_env:
    mdb_env_close(wm->env);
out_free:
    free(wm);
    return rc;
}

int cmd__wm_sync(struct cmd__wm *wm)
{
    int rc = mdb_env_sync(wm->env, 1);
    if (rc != 0) {
        sp_log(SP_LOG_ERROR, "write model sync failed: %s", mdb_strerror(rc));
        return SP_EDB;
    }
    return 0;
}

void cmd__wm_close(struct cmd__wm *wm)
{
    if (!wm)
        return;
    (void)mdb_env_sync(wm->env, 1);
    mdb_env_close(wm->env);
    free(wm);
}

void cmd__wm_write_ahead(struct cmd__wm *wm)
{
    es_lmdb_write_ahead(wm->env, &wm->ahead_to, "write model");
}

const unsigned char *cmd__wm_secret(const struct cmd__wm *wm)
{
    return wm->secret;
}

int cmd__wm_txn_begin(struct cmd__wm *wm, MDB_txn *parent, bool rdonly, MDB_txn **txn)
{
    int rc = mdb_txn_begin(wm->env, parent, rdonly ? MDB_RDONLY : 0, txn);
    if (rc != 0) {
        sp_log(SP_LOG_ERROR, "could not begin write model txn: %s", mdb_strerror(rc));
        return SP_EDB;
    }
    return 0;
}

/* ---- lookups ---- */

/* Meta key of @p partition's checkpoint: "checkpoint" for 0 (as before Kafka), else
 * "checkpoint/<partition>". @return its length. */
static size_t checkpoint_key(int32_t partition, char out[32])
{
    if (partition == 0)
        return (size_t)snprintf(out, 32, "checkpoint");
    return (size_t)snprintf(out, 32, "checkpoint/%d", (int)partition);
}

int cmd__wm_checkpoint_put(struct cmd__wm *wm, MDB_txn *txn, int32_t partition, int64_t next_offset)
{
    char key[32];
    size_t klen = checkpoint_key(partition, key);
    return i64_put(txn, wm->dbi[WM_META], key, klen, next_offset);
}

int cmd__wm_checkpoint_get(struct cmd__wm *wm,
                           MDB_txn *txn,
                           int32_t partition,
                           int64_t *next_offset)
{
    char key[32];
    size_t klen = checkpoint_key(partition, key);
    return i64_get_or_zero(txn, wm->dbi[WM_META], key, klen, next_offset);
}

int cmd__wm_stream_version(struct cmd__wm *wm, MDB_txn *txn, const char *stream, int64_t *version)
{
    return i64_get_or_zero(txn, wm->dbi[WM_STREAMS], stream, strlen(stream), version);
}

static int lookup_digest(MDB_txn *txn, MDB_dbi dbi, const char *s, int64_t *user_id)
{
    unsigned char key[WM_DIGEST_LEN];
    MDB_val v;
    digest_key(s, key);
    int rc = wm_get(txn, dbi, key, sizeof(key), &v);
    if (rc == 0)
        *user_id = id_from_val(&v);
    return rc;
}

int cmd__wm_user_by_name(struct cmd__wm *wm, MDB_txn *txn, const char *username, int64_t *user_id)
{
    return lookup_digest(txn, wm->dbi[WM_NAMES], username, user_id);
}

int cmd__wm_user_by_email(struct cmd__wm *wm, MDB_txn *txn, const char *email, int64_t *user_id)
{
    return lookup_digest(txn, wm->dbi[WM_EMAILS], email, user_id);
}

int cmd__wm_user_hash(struct cmd__wm *wm, MDB_txn *txn, int64_t user_id, char *out, size_t out_size)
{
    MDB_val v;
    int rc = id_get(txn, wm->dbi[WM_USERS], user_id, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size >= out_size)
        return SP_ETOOBIG;
    memcpy(out, v.mv_data, v.mv_size);
    out[v.mv_size] = '\0';
    return 0;
}

int cmd__wm_session_get(struct cmd__wm *wm,
                        MDB_txn *txn,
                        int64_t session_id,
                        struct cmd__session *out)
{
    return record_get(txn, wm->dbi[WM_SESSIONS], session_id, out, sizeof(*out));
}

static int
session_put(struct cmd__wm *wm, MDB_txn *txn, int64_t session_id, const struct cmd__session *s)
{
    return id_put(txn, wm->dbi[WM_SESSIONS], session_id, s, sizeof(*s));
}

int cmd__wm_refresh_session(struct cmd__wm *wm,
                            MDB_txn *txn,
                            const char *hash_hex,
                            int64_t *session_id)
{
    MDB_val v;
    int rc = wm_get(txn, wm->dbi[WM_REFRESH], hash_hex, strlen(hash_hex), &v);
    if (rc == 0)
        *session_id = id_from_val(&v);
    return rc;
}

int cmd__wm_recipe_get(struct cmd__wm *wm, MDB_txn *txn, int64_t recipe_id, struct cmd__recipe *out)
{
    return record_get(txn, wm->dbi[WM_RECIPES], recipe_id, out, sizeof(*out));
}

int cmd__wm_user_exists(struct cmd__wm *wm, MDB_txn *txn, int64_t user_id)
{
    MDB_val v;
    return id_get(txn, wm->dbi[WM_USERS], user_id, &v);
}

/* Key of a pair of ids: both 8-byte big-endian. */
static void pair_key(int64_t a, int64_t b, unsigned char out[16])
{
    id_key(a, out);
    id_key(b, out + 8);
}

static int pair_has(MDB_txn *txn, MDB_dbi dbi, int64_t a, int64_t b, bool *yes)
{
    unsigned char k[16];
    MDB_val v;
    pair_key(a, b, k);
    int rc = wm_get(txn, dbi, k, sizeof(k), &v);
    *yes = rc == 0;
    return rc == SP_ENOTFOUND ? 0 : rc;
}

int cmd__wm_follows(struct cmd__wm *wm, MDB_txn *txn, int64_t follower, int64_t followee, bool *yes)
{
    return pair_has(txn, wm->dbi[WM_FOLLOWS], follower, followee, yes);
}

int cmd__wm_likes(struct cmd__wm *wm, MDB_txn *txn, int64_t user_id, int64_t recipe_id, bool *yes)
{
    return pair_has(txn, wm->dbi[WM_LIKES], user_id, recipe_id, yes);
}

int cmd__wm_comment_get(struct cmd__wm *wm,
                        MDB_txn *txn,
                        int64_t comment_id,
                        struct cmd__comment *out)
{
    return record_get(txn, wm->dbi[WM_COMMENTS], comment_id, out, sizeof(*out));
}

int cmd__wm_read_up_to(struct cmd__wm *wm, MDB_txn *txn, int64_t user_id, int64_t *up_to_id)
{
    unsigned char k[8];
    id_key(user_id, k);
    return i64_get_or_zero(txn, wm->dbi[WM_READS], k, sizeof(k), up_to_id);
}

int cmd__wm_stream_pos(
    struct cmd__wm *wm, MDB_txn *txn, const char *stream, int64_t *version, struct es_position *pos)
{
    MDB_val v;
    int rc = wm_get(txn, wm->dbi[WM_POSITIONS], stream, strlen(stream), &v);
    if (rc != 0)
        return rc;
    if (v.mv_size != WM_POS_LEN)
        return SP_EDB;
    const unsigned char *p = v.mv_data;
    MDB_val part = {.mv_size = 8, .mv_data = unconst(p + 8)};
    MDB_val off = {.mv_size = 8, .mv_data = unconst(p + 16)};
    *version = id_from_val(&v);
    pos->partition = (int32_t)id_from_val(&part);
    pos->offset = id_from_val(&off);
    return 0;
}

int cmd__wm_stream_pos_put(
    struct cmd__wm *wm, MDB_txn *txn, const char *stream, int64_t version, struct es_position pos)
{
    unsigned char v[WM_POS_LEN];
    id_key(version, v);
    id_key(pos.partition, v + 8);
    id_key(pos.offset, v + 16);
    return wm_put(txn, wm->dbi[WM_POSITIONS], stream, strlen(stream), v, WM_POS_LEN);
}

int cmd__wm_idem_get(struct cmd__wm *wm, MDB_txn *txn, const char *key, struct cmd__idem *out)
{
    MDB_val v;
    int rc = wm_get(txn, wm->dbi[WM_IDEM], key, strlen(key), &v);
    if (rc != 0)
        return rc;
    if (v.mv_size < 36)
        return SP_EDB;
    const unsigned char *p = v.mv_data;
    memcpy(out->fingerprint, p, 32);
    memcpy(&out->status, p + 32, 4);
    out->body = v.mv_size > 36 ? sp_xstrndup((const char *)p + 36, v.mv_size - 36) : NULL;
    return 0;
}

int cmd__wm_idem_put(struct cmd__wm *wm, MDB_txn *txn, const char *key, const struct cmd__idem *rec)
{
    size_t body_len = rec->body ? strlen(rec->body) : 0;
    unsigned char *v = sp_xmalloc(36 + body_len);
    memcpy(v, rec->fingerprint, 32);
    memcpy(v + 32, &rec->status, 4);
    if (body_len)
        memcpy(v + 36, rec->body, body_len);
    int rc = wm_put(txn, wm->dbi[WM_IDEM], key, strlen(key), v, 36 + body_len);
    free(v);
    return rc;
}

/* ---- the fold ---- */

static int data_id(const struct es_event *ev, const char *field, int64_t *out, struct sp_errbuf *eb)
{
    const char *s = json_string_value(json_object_get(ev->data, field));
    if (!s || es_id_parse(s, out) != 0) {
        sp_err_set(eb, SP_ESCHEMA, field, "%s %s: bad or missing %s", ev->type, ev->id, field);
        return SP_ESCHEMA;
    }
    return 0;
}

static const char *data_str(const struct es_event *ev, const char *field)
{
    return json_string_value(json_object_get(ev->data, field));
}

/* Id of the aggregate from the stream name "<category>-<id>". */
static int stream_id(const struct es_event *ev, int64_t *out, struct sp_errbuf *eb)
{
    const char *dash = strrchr(ev->stream, '-');
    if (!dash || es_id_parse(dash + 1, out) != 0) {
        sp_err_set(eb, SP_ESCHEMA, "stream", "bad stream \"%s\"", ev->stream);
        return SP_ESCHEMA;
    }
    return 0;
}

static int put_digest(MDB_txn *txn, MDB_dbi dbi, const char *s, int64_t user_id)
{
    unsigned char key[WM_DIGEST_LEN];
    digest_key(s, key);
    return i64_put(txn, dbi, key, sizeof(key), user_id);
}

static int apply_user_registered(struct cmd__wm *wm,
                                 MDB_txn *txn,
                                 const struct es_event *ev,
                                 struct sp_errbuf *eb)
{
    int64_t uid;
    const char *name = data_str(ev, "username"), *email = data_str(ev, "email");
    const char *hash = data_str(ev, "password_hash");
    int rc = data_id(ev, "user_id", &uid, eb);
    if (rc != 0)
        return rc;
    if (!name || !email || !hash)
        return sp_err_set(eb, SP_ESCHEMA, NULL, "UserRegistered %s: missing field", ev->id);
    if ((rc = put_digest(txn, wm->dbi[WM_NAMES], name, uid)) != 0 ||
        (rc = put_digest(txn, wm->dbi[WM_EMAILS], email, uid)) != 0 ||
        (rc = id_put(txn, wm->dbi[WM_USERS], uid, hash, strlen(hash))) != 0)
        return rc;
    return 0;
}

/* SessionStarted and SessionRefreshed: set the current refresh hash and expiry. */
static int apply_session_hash(
    struct cmd__wm *wm, MDB_txn *txn, const struct es_event *ev, bool started, struct sp_errbuf *eb)
{
    int64_t sid, exp_us;
    struct cmd__session s;
    const char *hash = data_str(ev, "refresh_hash"), *exp = data_str(ev, "expires_at");
    int rc = data_id(ev, "session_id", &sid, eb);
    if (rc != 0)
        return rc;
    if (!hash || strlen(hash) != CMD__HASH_HEX_LEN || !exp ||
        sp_time_parse_rfc3339(exp, &exp_us) != 0)
        return sp_err_set(eb, SP_ESCHEMA, NULL, "%s %s: bad refresh_hash or expires_at", ev->type,
                          ev->id);
    if (started) {
        memset(&s, 0, sizeof(s));
        if ((rc = data_id(ev, "user_id", &s.user_id, eb)) != 0)
            return rc;
    } else if ((rc = cmd__wm_session_get(wm, txn, sid, &s)) != 0) {
        return rc == SP_ENOTFOUND ? sp_err_set(eb, SP_ESCHEMA, NULL, "unknown session") : rc;
    }
    s.expires_at_us = exp_us;
    memcpy(s.refresh_hash, hash, CMD__HASH_HEX_LEN + 1);
    if ((rc = session_put(wm, txn, sid, &s)) != 0)
        return rc;
    return i64_put(txn, wm->dbi[WM_REFRESH], hash, CMD__HASH_HEX_LEN, sid);
}

static int apply_session_revoked(struct cmd__wm *wm,
                                 MDB_txn *txn,
                                 const struct es_event *ev,
                                 struct sp_errbuf *eb)
{
    int64_t sid;
    struct cmd__session s;
    int rc = data_id(ev, "session_id", &sid, eb);
    if (rc != 0)
        return rc;
    rc = cmd__wm_session_get(wm, txn, sid, &s);
    if (rc != 0)
        return rc == SP_ENOTFOUND ? sp_err_set(eb, SP_ESCHEMA, NULL, "unknown session") : rc;
    s.revoked = 1;
    return session_put(wm, txn, sid, &s);
}

static int apply_recipe(
    struct cmd__wm *wm, MDB_txn *txn, const struct es_event *ev, bool created, struct sp_errbuf *eb)
{
    int64_t rid;
    struct cmd__recipe r;
    int rc = stream_id(ev, &rid, eb);
    if (rc != 0)
        return rc;
    memset(&r, 0, sizeof(r));
    if (created) {
        if ((rc = data_id(ev, "author_id", &r.author_id, eb)) != 0)
            return rc;
    } else if ((rc = cmd__wm_recipe_get(wm, txn, rid, &r)) != 0) {
        return rc == SP_ENOTFOUND ? sp_err_set(eb, SP_ESCHEMA, NULL, "unknown recipe") : rc;
    } else {
        r.deleted = 1;
    }
    return id_put(txn, wm->dbi[WM_RECIPES], rid, &r, sizeof(r));
}

/* UserFollowed/UserUnfollowed and RecipeLiked/RecipeUnliked: a pair (user_id, @p other). */
static int apply_pair(MDB_txn *txn,
                      MDB_dbi dbi,
                      const struct es_event *ev,
                      const char *other,
                      bool add,
                      struct sp_errbuf *eb)
{
    int64_t uid, oid;
    unsigned char k[16];
    int rc = data_id(ev, "user_id", &uid, eb);
    if (rc != 0 || (rc = data_id(ev, other, &oid, eb)) != 0)
        return rc;
    pair_key(uid, oid, k);
    if (add)
        return wm_put(txn, dbi, k, sizeof(k), "", 1);
    rc = wm_del(txn, dbi, k, sizeof(k));
    return rc == SP_ENOTFOUND ? 0 : rc;
}

/* RecipeCommented (@p created) and CommentDeleted. */
static int apply_comment(
    struct cmd__wm *wm, MDB_txn *txn, const struct es_event *ev, bool created, struct sp_errbuf *eb)
{
    int64_t cid;
    struct cmd__comment cm;
    int rc = data_id(ev, "comment_id", &cid, eb);
    if (rc != 0)
        return rc;
    memset(&cm, 0, sizeof(cm));
    if (created) {
        if ((rc = data_id(ev, "user_id", &cm.author_id, eb)) != 0 ||
            (rc = data_id(ev, "recipe_id", &cm.recipe_id, eb)) != 0 ||
            (rc = data_id(ev, "recipe_author_id", &cm.recipe_author_id, eb)) != 0)
            return rc;
    } else if ((rc = cmd__wm_comment_get(wm, txn, cid, &cm)) != 0) {
        return rc == SP_ENOTFOUND ? sp_err_set(eb, SP_ESCHEMA, NULL, "unknown comment") : rc;
    } else {
        cm.deleted = 1;
    }
    return id_put(txn, wm->dbi[WM_COMMENTS], cid, &cm, sizeof(cm));
}

/* NotificationsRead: the user's up_to_id only ever grows. */
static int
apply_read(struct cmd__wm *wm, MDB_txn *txn, const struct es_event *ev, struct sp_errbuf *eb)
{
    int64_t uid, up_to, cur;
    unsigned char k[8];
    int rc = data_id(ev, "user_id", &uid, eb);
    if (rc != 0 || (rc = data_id(ev, "up_to_id", &up_to, eb)) != 0 ||
        (rc = cmd__wm_read_up_to(wm, txn, uid, &cur)) != 0)
        return rc;
    if (up_to <= cur)
        return 0;
    id_key(uid, k);
    return i64_put(txn, wm->dbi[WM_READS], k, sizeof(k), up_to);
}

/* ---- chat (issue 12) ---- */

/* Key of a member row or a chat transaction: room id, user id (8 bytes big-endian each). */
#define WM_TXN_KEY_MAX (16 + CMD__TXN_ID_MAX)

int cmd__wm_room_get(struct cmd__wm *wm, MDB_txn *txn, int64_t room_id, struct cmd__room *out)
{
    return record_get(txn, wm->dbi[WM_ROOMS], room_id, out, sizeof(*out));
}

int cmd__wm_member(struct cmd__wm *wm,
                   MDB_txn *txn,
                   int64_t room_id,
                   int64_t user_id,
                   bool *yes,
                   int64_t *read_up_to)
{
    unsigned char k[16];
    MDB_val v;
    pair_key(room_id, user_id, k);
    int rc = wm_get(txn, wm->dbi[WM_MEMBERS], k, sizeof(k), &v);
    *yes = rc == 0;
    if (read_up_to)
        *read_up_to = rc == 0 ? id_from_val(&v) : 0;
    return rc == SP_ENOTFOUND ? 0 : rc;
}

/* The key of the direct room of users @p a and @p b, smaller id first: either order. */
static void direct_key(int64_t a, int64_t b, unsigned char out[16])
{
    pair_key(a < b ? a : b, a < b ? b : a, out);
}

int cmd__wm_direct_room(struct cmd__wm *wm, MDB_txn *txn, int64_t a, int64_t b, int64_t *room_id)
{
    unsigned char k[16];
    MDB_val v;
    direct_key(a, b, k);
    int rc = wm_get(txn, wm->dbi[WM_DIRECT], k, sizeof(k), &v);
    if (rc == 0)
        *room_id = id_from_val(&v);
    return rc;
}

/* Key of a chat transaction: room, sender, txn_id bytes. @return its length. */
static size_t txn_key(int64_t room_id, int64_t sender_id, const char *txn_id, unsigned char *out)
{
    size_t n = strlen(txn_id);
    if (n > CMD__TXN_ID_MAX)
        n = CMD__TXN_ID_MAX;
    pair_key(room_id, sender_id, out);
    memcpy(out + 16, txn_id, n);
    return 16 + n;
}

int cmd__wm_chat_txn(struct cmd__wm *wm,
                     MDB_txn *txn,
                     int64_t room_id,
                     int64_t sender_id,
                     const char *txn_id,
                     int64_t *message_id)
{
    unsigned char k[WM_TXN_KEY_MAX];
    MDB_val v;
    int rc = wm_get(txn, wm->dbi[WM_CHAT_TXNS], k, txn_key(room_id, sender_id, txn_id, k), &v);
    if (rc == 0)
        *message_id = id_from_val(&v);
    return rc;
}

static int room_put(struct cmd__wm *wm, MDB_txn *txn, int64_t room_id, const struct cmd__room *r)
{
    return id_put(txn, wm->dbi[WM_ROOMS], room_id, r, sizeof(*r));
}

/* The room of a chat event (its stream's id), which must exist unless @p created. */
static int chat_room(struct cmd__wm *wm,
                     MDB_txn *txn,
                     const struct es_event *ev,
                     int64_t *room_id,
                     struct cmd__room *r,
                     struct sp_errbuf *eb)
{
    int rc = stream_id(ev, room_id, eb);
    if (rc != 0)
        return rc;
    rc = cmd__wm_room_get(wm, txn, *room_id, r);
    if (rc == SP_ENOTFOUND)
        return sp_err_set(eb, SP_ESCHEMA, NULL, "%s %s: unknown room", ev->type, ev->id);
    return rc;
}

static int apply_room_created(struct cmd__wm *wm,
                              MDB_txn *txn,
                              const struct es_event *ev,
                              struct sp_errbuf *eb)
{
    int64_t rid, creator, uid, pair[2] = {0, 0};
    struct cmd__room r;
    unsigned char k[16];
    json_t *ids = json_object_get(ev->data, "member_ids"), *v;
    size_t i;
    int rc = stream_id(ev, &rid, eb);
    if (rc != 0 || (rc = data_id(ev, "creator_id", &creator, eb)) != 0)
        return rc;
    if (!json_is_array(ids) || json_array_size(ids) < 2)
        return sp_err_set(eb, SP_ESCHEMA, "member_ids", "%s: bad member_ids", ev->id);
    memset(&r, 0, sizeof(r));
    r.is_group = json_is_true(json_object_get(ev->data, "is_group"));
    r.admin_id = r.is_group ? creator : 0;
    json_array_foreach(ids, i, v) {
        if (!json_is_string(v) || es_id_parse(json_string_value(v), &uid) != 0)
            return sp_err_set(eb, SP_ESCHEMA, "member_ids", "%s: bad member id", ev->id);
        pair_key(rid, uid, k);
        if ((rc = i64_put(txn, wm->dbi[WM_MEMBERS], k, sizeof(k), 0)) != 0)
            return rc;
        if (i < 2)
            pair[i] = uid;
        r.n_members++;
    }
    if (!r.is_group) {
        direct_key(pair[0], pair[1], k);
        if ((rc = i64_put(txn, wm->dbi[WM_DIRECT], k, sizeof(k), rid)) != 0)
            return rc;
    }
    return room_put(wm, txn, rid, &r);
}

/* MemberAdded (@p add) and MemberRemoved: the member row and the room's member count. */
static int apply_membership(
    struct cmd__wm *wm, MDB_txn *txn, const struct es_event *ev, bool add, struct sp_errbuf *eb)
{
    int64_t rid, uid;
    struct cmd__room r;
    unsigned char k[16];
    int rc = chat_room(wm, txn, ev, &rid, &r, eb);
    if (rc != 0 || (rc = data_id(ev, "user_id", &uid, eb)) != 0)
        return rc;
    pair_key(rid, uid, k);
    if (add) {
        MDB_val v;
        if ((rc = wm_get(txn, wm->dbi[WM_MEMBERS], k, sizeof(k), &v)) != SP_ENOTFOUND)
            return rc; /* 0: a member already */
        if ((rc = i64_put(txn, wm->dbi[WM_MEMBERS], k, sizeof(k), 0)) != 0)
            return rc;
        r.n_members++;
    } else {
        if ((rc = wm_del(txn, wm->dbi[WM_MEMBERS], k, sizeof(k))) != 0)
            return rc == SP_ENOTFOUND ? 0 : rc;
        r.n_members--;
    }
    return room_put(wm, txn, rid, &r);
}

static int
apply_chat(struct cmd__wm *wm, MDB_txn *txn, const struct es_event *ev, struct sp_errbuf *eb)
{
    int64_t rid, uid, mid;
    struct cmd__room r;
    unsigned char k[WM_TXN_KEY_MAX];
    int rc;

    switch (ev->type_id) {
    case ES_TYPE_CONVERSATION_CREATED:
        return apply_room_created(wm, txn, ev, eb);
    case ES_TYPE_CONVERSATION_UPDATED:
        if ((rc = chat_room(wm, txn, ev, &rid, &r, eb)) != 0 ||
            !json_object_get(ev->data, "admin_id"))
            return rc;
        if ((rc = data_id(ev, "admin_id", &r.admin_id, eb)) != 0)
            return rc;
        return room_put(wm, txn, rid, &r);
    case ES_TYPE_MEMBER_ADDED:
    case ES_TYPE_MEMBER_REMOVED:
        return apply_membership(wm, txn, ev, ev->type_id == ES_TYPE_MEMBER_ADDED, eb);
    case ES_TYPE_MESSAGE_SENT: {
        const char *tid = data_str(ev, "txn_id");
        if ((rc = chat_room(wm, txn, ev, &rid, &r, eb)) != 0 ||
            (rc = data_id(ev, "sender_id", &uid, eb)) != 0 ||
            (rc = data_id(ev, "message_id", &mid, eb)) != 0)
            return rc;
        if (!tid || !*tid)
            return sp_err_set(eb, SP_ESCHEMA, "txn_id", "%s: missing txn_id", ev->id);
        return i64_put(txn, wm->dbi[WM_CHAT_TXNS], k, txn_key(rid, uid, tid, k), mid);
    }
    case ES_TYPE_MESSAGES_READ: {
        int64_t up_to, cur;
        bool member;
        if ((rc = chat_room(wm, txn, ev, &rid, &r, eb)) != 0 ||
            (rc = data_id(ev, "user_id", &uid, eb)) != 0 ||
            (rc = data_id(ev, "up_to_id", &up_to, eb)) != 0 ||
            (rc = cmd__wm_member(wm, txn, rid, uid, &member, &cur)) != 0)
            return rc;
        if (!member || up_to <= cur)
            return 0;
        pair_key(rid, uid, k);
        return i64_put(txn, wm->dbi[WM_MEMBERS], k, 16, up_to);
    }
    default:
        return 0;
    }
}

/* The issue 4 event types; others are left alone. */
static int
apply_social(struct cmd__wm *wm, MDB_txn *txn, const struct es_event *ev, struct sp_errbuf *eb)
{
    const char *t = ev->type;
    if (strcmp(t, "UserFollowed") == 0 || strcmp(t, "UserUnfollowed") == 0)
        return apply_pair(txn, wm->dbi[WM_FOLLOWS], ev, "followee_id",
                          strcmp(t, "UserFollowed") == 0, eb);
    if (strcmp(t, "RecipeLiked") == 0 || strcmp(t, "RecipeUnliked") == 0)
        return apply_pair(txn, wm->dbi[WM_LIKES], ev, "recipe_id", strcmp(t, "RecipeLiked") == 0,
                          eb);
    if (strcmp(t, "RecipeCommented") == 0)
        return apply_comment(wm, txn, ev, true, eb);
    if (strcmp(t, "CommentDeleted") == 0)
        return apply_comment(wm, txn, ev, false, eb);
    if (strcmp(t, "NotificationsRead") == 0)
        return apply_read(wm, txn, ev, eb);
    return apply_chat(wm, txn, ev, eb); /* ProfileUpdated and others: version only */
}

int cmd__wm_apply(struct cmd__wm *wm, MDB_txn *txn, const struct es_event *ev, struct sp_errbuf *eb)
{
    const char *t = ev->type;
    int rc;

    if (!ev->stream || !t || !ev->data)
        return sp_err_set(eb, SP_ESCHEMA, NULL, "event without stream, type or data");
    rc = i64_put(txn, wm->dbi[WM_STREAMS], ev->stream, strlen(ev->stream), ev->stream_version);
    if (rc == 0 && ev->pos.offset >= 0)
        rc = cmd__wm_stream_pos_put(wm, txn, ev->stream, ev->stream_version, ev->pos);
    if (rc != 0)
        return rc;
    if (strcmp(t, "UserRegistered") == 0)
        return apply_user_registered(wm, txn, ev, eb);
    if (strcmp(t, "SessionStarted") == 0)
        return apply_session_hash(wm, txn, ev, true, eb);
    if (strcmp(t, "SessionRefreshed") == 0)
        return apply_session_hash(wm, txn, ev, false, eb);
    if (strcmp(t, "SessionRevoked") == 0)
        return apply_session_revoked(wm, txn, ev, eb);
    if (strcmp(t, "RecipeCreated") == 0)
        return apply_recipe(wm, txn, ev, true, eb);
    if (strcmp(t, "RecipeDeleted") == 0)
        return apply_recipe(wm, txn, ev, false, eb);
    return apply_social(wm, txn, ev, eb); /* RecipeUpdated: version only */
}

/* ---- catch-up ---- */

int cmd__answer_of(const struct es_event *ev, json_t **body)
{
    const json_t *d = ev->data;
    int status = 0;
    *body = NULL;
    switch (ev->type_id) {
    case ES_TYPE_USER_REGISTERED:
        status = 201;
        *body = json_pack("{s:O, s:O}", "user_id", json_object_get(d, "user_id"), "username",
                          json_object_get(d, "username"));
        break;
    case ES_TYPE_RECIPE_CREATED:
        status = 201;
        *body = json_pack("{s:O, s:I}", "recipe_id", json_object_get(d, "recipe_id"), "version",
                          (json_int_t)ev->stream_version);
        break;
    case ES_TYPE_RECIPE_COMMENTED:
        status = 201;
        *body = json_pack("{s:O}", "comment_id", json_object_get(d, "comment_id"));
        break;
    case ES_TYPE_SESSION_REVOKED:
        status = 200;
        *body = json_object();
        break;
    case ES_TYPE_CONVERSATION_CREATED:
        status = 201;
        *body =
            json_pack("{s:O, s:O, s:O, s:I}", "room_id", json_object_get(d, "conversation_id"),
                      "is_group", json_object_get(d, "is_group"), "member_ids",
                      json_object_get(d, "member_ids"), "version", (json_int_t)ev->stream_version);
        if (*body && json_is_true(json_object_get(d, "is_group")))
            json_object_set(*body, "admin_id", json_object_get(d, "creator_id"));
        if (*body && json_object_get(d, "title"))
            json_object_set(*body, "title", json_object_get(d, "title"));
        break;
    case ES_TYPE_MESSAGE_SENT:
        status = 201;
        *body = json_pack("{s:O, s:O}", "message_id", json_object_get(d, "message_id"), "room_id",
                          json_object_get(d, "conversation_id"));
        break;
    default:
        break;
    }
    return *body ? status : 0;
}

/*
 * Store the idempotency answer of the command that made @p ev, read back from the log
 * (the event carries the command's key and fingerprint): what batch.c stored when it
 * answered, for a batch the write model missed (its commit failed, or the process died
 * after the log append): cmd__answer_of, the answer decide.c gave, with the event's
 * position (each command that takes a key appends one event). A record already there is
 * kept: a first answer never changes (a Kafka batch settled as committed after the client
 * was told 503 and had retried is refolded later, and must not replace the retry's
 * answer). A fingerprint made with another key (a rebuilt write model's new secret, a
 * rotated jwt.secret) is skipped: no request could match it. test_cmd_api checks the
 * answers against the first ones. @return 0 or SP_EDB; an event it cannot read is logged
 * and skipped.
 */
static int idem_rebuild(struct cmd__wm *wm, MDB_txn *txn, const struct es_event *ev)
{
    struct cmd__idem rec = {.status = 0, .body = NULL};
    json_t *body = NULL;
    char tok[32];
    const char *fp = ev->idempotency_fp;
    int rc = 0;
    if (!wm->idem_kid[0] || strlen(fp) != CMD__IDEM_FP_LEN || fp[CMD__IDEM_KID_LEN] != ':')
        goto out_skip;
    if (memcmp(fp, wm->idem_kid, CMD__IDEM_KID_LEN) != 0)
        return 0; /* made with another key */
    if (cmd__unhex32(fp + CMD__IDEM_KID_LEN + 1, rec.fingerprint) != 0)
        goto out_skip;
    struct cmd__idem old = {.status = 0, .body = NULL};
    rc = cmd__wm_idem_get(wm, txn, ev->idempotency_key, &old);
    free(old.body);
    if (rc != SP_ENOTFOUND)
        return rc; /* 0: the first answer stays; SP_EDB */
    rc = 0;
    rec.status = cmd__answer_of(ev, &body);
    if (!body)
        goto out_skip;
    es_position_format(ev->pos, tok, sizeof(tok));
    json_object_set_new(body, "position", json_string(tok));
    rec.body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    rc = rec.body ? cmd__wm_idem_put(wm, txn, ev->idempotency_key, &rec) : 0;
    free(rec.body);
    return rc;
out_skip:
    sp_logf(SP_LOG_WARN, (const char *[]){"event_id", ev->id, "event_type", ev->type, NULL},
            "cannot rebuild the idempotency answer of this event's command");
    return 0;
}

struct catchup {
    struct cmd__wm *wm;
    MDB_txn *txn;
    int64_t applied;
};

static int catchup_record(const struct es_log_record *rec, void *ud)
{
    struct catchup *cu = ud;
    struct es_event ev;
    struct sp_errbuf eb = {0};
    int rc;

    es_event_init(&ev);
    rc = es_log_record_decode(rec, &ev, &eb);
    if (rc == 0)
        rc = cmd__wm_apply(cu->wm, cu->txn, &ev, &eb);
    if (rc == 0 && ev.idempotency_key && ev.idempotency_fp)
        rc = idem_rebuild(cu->wm, cu->txn, &ev);
    es_event_release(&ev);
    if (rc == SP_EDB)
        return rc;
    if (rc != 0) {
        char off[24];
        snprintf(off, sizeof(off), "%lld", (long long)rec->pos.offset);
        sp_logf(SP_LOG_WARN, (const char *[]){"offset", off, NULL},
                "write model skipped an event it could not fold: %s", eb.msg);
        return 0;
    }
    cu->applied++;
    return 0;
}

/* One catch-up step of @p partition: fold up to WM_CATCHUP_BATCH records; *done at the end. */
static int catchup_step(struct cmd__wm *wm,
                        struct es_log *log,
                        int32_t partition,
                        struct catchup *cu,
                        bool *done,
                        struct sp_errbuf *eb)
{
    int64_t from, next, end;
    int rc = cmd__wm_txn_begin(wm, NULL, false, &cu->txn);
    if (rc != 0)
        return sp_err_set(eb, rc, NULL, "could not begin write model txn");
    if ((rc = cmd__wm_checkpoint_get(wm, cu->txn, partition, &from)) != 0 ||
        (rc = es_log_end(log, partition, &end, eb)) != 0)
        goto out_abort;
    if (from > end) {
        rc = sp_err_set(eb, SP_ESTATE, NULL,
                        "write model checkpoint %lld of partition %d is past the log end %lld: "
                        "delete writemodel.dir to rebuild it",
                        (long long)from, (int)partition, (long long)end);
        goto out_abort;
    }
    next = from; /* es_log_read leaves it alone when there is nothing to read */
    rc = es_log_read(log, partition, from, WM_CATCHUP_BATCH, catchup_record, cu, &next, eb);
    if (rc != 0)
        goto out_abort;
    if (next != from && (rc = cmd__wm_checkpoint_put(wm, cu->txn, partition, next)) != 0)
        goto out_abort;
    rc = mdb_txn_commit(cu->txn);
    cu->txn = NULL;
    if (rc != 0)
        return sp_err_set(eb, SP_EDB, NULL, "write model commit failed: %s", mdb_strerror(rc));
    cmd__wm_write_ahead(wm);
    *done = next == from || next >= end;
    return 0;
out_abort:
    mdb_txn_abort(cu->txn);
    cu->txn = NULL;
    return rc;
}

int cmd__wm_catch_up_partition(struct cmd__wm *wm,
                               struct es_log *log,
                               int32_t partition,
                               int64_t *applied,
                               struct sp_errbuf *eb)
{
    struct catchup cu = {.wm = wm};
    bool done = false;
    int rc = 0;
    while (!done && rc == 0)
        rc = catchup_step(wm, log, partition, &cu, &done, eb);
    if (applied)
        *applied += cu.applied;
    return rc;
}

int cmd__wm_catch_up(struct cmd__wm *wm, struct es_log *log, int64_t *applied, struct sp_errbuf *eb)
{
    int64_t n = 0;
    int rc = 0;
    for (int32_t p = 0; p < es_log_partitions(log) && rc == 0; p++)
        rc = cmd__wm_catch_up_partition(wm, log, p, &n, eb);
    if (applied)
        *applied = n;
    return rc;
}
