/*
 * The embedded event log on LMDB: table "log" keyed by the big-endian 64-bit offset,
 * holding [8-byte little-endian XXH3-64 of the envelope][envelope JSON]; table "meta"
 * with "format" and "writer" (pid, host, opened_at of the current writer).
 *
 * Processes: one writer, holding an exclusive flock on <dir>/writer.lock, opens the
 * environment read-write with full sync (no MDB_NOSYNC / MDB_NOMETASYNC), so a commit is
 * on disk when mdb_txn_commit returns, and keeps zeros written ahead of the last page in use
 * (es_lmdb_write_ahead). Readers open it with MDB_RDONLY: data.mdb is mapped
 * read-only, while lock.mdb must be writable (LMDB records readers there). Every handle
 * uses MDB_NOTLS, so reads may run concurrently from several threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "es/checksum.h"
#include "es/lmdb_ahead.h"
#include "log_impl.h"
#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"

#include "sp/banned.h"

#define LMDB_CHECKSUM_BYTES 8
#define LMDB_FORMAT         "1"

struct es_log_lmdb {
    struct es_log base; /* first */
    MDB_env *env;
    MDB_dbi log_dbi;
    MDB_dbi meta_dbi;
    int lock_fd; /* writer.lock held with LOCK_EX; -1 for readers */
    char *dir;   /* owned */
    /* read txns hold it shared; adopting a map size grown by the writer holds it exclusive */
    pthread_rwlock_t map_lock;
    /* writer: data.mdb is written (zeros past the pages in use) up to here, in bytes; -1
     * once writing ahead failed (es/lmdb_ahead.h) */
    int64_t ahead_to;
};

static const struct es__log_ops lmdb_ops;

static int lmdb_err(struct sp_errbuf *eb, int rc, const char *what, const char *dir)
{
    if (rc == MDB_MAP_FULL)
        return sp_err_set(eb, SP_EDB, "log.map_size_mb", "could not %s log \"%s\": %s", what, dir,
                          "the log is full; raise log.map_size_mb");
    return sp_err_set(eb, SP_EDB, NULL, "could not %s log \"%s\": %s", what, dir, mdb_strerror(rc));
}

static void key_encode(int64_t offset, uint8_t key[8])
{
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)((uint64_t)offset >> (8 * (7 - i)));
}

static int64_t key_decode(const uint8_t key[8])
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | key[i];
    return (int64_t)v;
}

static void sum_encode(uint64_t sum, uint8_t out[8])
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(sum >> (8 * i));
}

static uint64_t sum_decode(const uint8_t in[8])
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | in[i];
    return v;
}

/* mkdir -p */
static int make_dirs(const char *dir)
{
    char *path = sp_xstrdup(dir);
    int rc = 0;

    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    free(path);
    return rc;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = sp_xmalloc(n);

    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Take the exclusive, non-blocking flock that makes this process the only writer. */
static int writer_lock(struct es_log_lmdb *lg, struct sp_errbuf *eb)
{
    char *path = path_join(lg->dir, "writer.lock");
    char pid[32];
    int rc = 0;

    lg->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lg->lock_fd < 0) {
        rc = -errno;
        sp_err_set(eb, rc, NULL, "could not open \"%s\": %s", path, strerror(errno));
        goto out_free_path;
    }
    if (flock(lg->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            ssize_t n = pread(lg->lock_fd, pid, sizeof(pid) - 1, 0);
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            rc = sp_err_set(eb, SP_ESTATE, NULL, "log \"%s\" already has a writer (pid %s)",
                            lg->dir, pid[0] ? pid : "unknown");
        } else {
            rc = -errno;
            sp_err_set(eb, rc, NULL, "could not lock \"%s\": %s", path, strerror(errno));
        }
        goto out_free_path;
    }
    /* Diagnostic only: the flock, not this text, is the lock. */
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(lg->lock_fd, 0) != 0 || pwrite(lg->lock_fd, pid, strlen(pid), 0) < 0) {
        /* best effort */
    }
out_free_path:
    free(path);
    return rc;
}

/* Put @p key = @p val in "meta"; with MDB_NOOVERWRITE an existing key is kept. */
static int
meta_put(struct es_log_lmdb *lg, MDB_txn *txn, const char *key, const char *val, unsigned flags)
{
    char key_copy[32];
    char *val_copy = sp_xstrdup(val); /* MDB_val wants a non-const pointer */
    MDB_val k, v;
    int rc;

    snprintf(key_copy, sizeof(key_copy), "%s", key);
    k.mv_data = key_copy;
    k.mv_size = strlen(key_copy);
    v.mv_data = val_copy;
    v.mv_size = strlen(val_copy);
    rc = mdb_put(txn, lg->meta_dbi, &k, &v, flags); /* on MDB_KEYEXIST, v = existing value */
    free(val_copy);
    return rc == MDB_KEYEXIST && (flags & MDB_NOOVERWRITE) ? 0 : rc;
}

/* Record the layout version and the writer's identity in "meta". */
static int meta_write(struct es_log_lmdb *lg, MDB_txn *txn)
{
    char host[256] = "";
    char opened[40];
    json_t *writer;
    char *text;
    int rc;

    if (gethostname(host, sizeof(host) - 1) != 0)
        host[0] = '\0';
    sp_time_format_rfc3339(sp_time_now_us(), opened, sizeof(opened));
    rc = meta_put(lg, txn, "format", LMDB_FORMAT, MDB_NOOVERWRITE);
    if (rc)
        return rc;
    /* json_pack fails on a host name that is not UTF-8: then the identity has no host */
    writer = json_pack("{s:I, s:s, s:s}", "pid", (json_int_t)getpid(), "host", host, "opened_at",
                       opened);
    if (writer == NULL)
        writer = json_pack("{s:I, s:s}", "pid", (json_int_t)getpid(), "opened_at", opened);
    text = writer ? json_dumps(writer, JSON_COMPACT) : NULL;
    rc = text ? meta_put(lg, txn, "writer", text, 0) : 0; /* identity is informational */
    free(text);
    json_decref(writer);
    return rc;
}

/* Open (writer: create) the "log" and "meta" tables; the handles outlive the txn. */
static int tables_open(struct es_log_lmdb *lg, struct sp_errbuf *eb)
{
    bool writer = lg->base.mode == ES_LOG_WRITER;
    unsigned flags = writer ? MDB_CREATE : 0;
    MDB_txn *txn;
    int rc;

    rc = mdb_txn_begin(lg->env, NULL, writer ? 0 : MDB_RDONLY, &txn);
    if (rc)
        return lmdb_err(eb, rc, "begin a transaction on", lg->dir);
    rc = mdb_dbi_open(txn, "log", flags, &lg->log_dbi);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "meta", flags, &lg->meta_dbi);
    if (rc == 0 && writer)
        rc = meta_write(lg, txn);
    if (rc) {
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND)
            return sp_err_set(eb, SP_ENOTFOUND, "log.dir", "no log in \"%s\"", lg->dir);
        return lmdb_err(eb, rc, "open the tables of", lg->dir);
    }
    rc = mdb_txn_commit(txn);
    if (rc)
        return lmdb_err(eb, rc, "open the tables of", lg->dir);
    return 0;
}

/*
 * Clear the reader slots of processes that died inside a read transaction (kill -9): a
 * stale slot pins the pages of its snapshot, so the writer can never reuse them and the
 * log grows until it is full. LMDB only clears them on request.
 */
static void readers_check(struct es_log_lmdb *lg)
{
    int dead = 0;
    int rc = mdb_reader_check(lg->env, &dead);

    if (rc)
        sp_log(SP_LOG_WARN, "could not check the reader table of log \"%s\": %s", lg->dir,
               mdb_strerror(rc));
    else if (dead > 0)
        sp_log(SP_LOG_WARN, "log \"%s\": cleared %d stale reader slot(s) left by dead processes",
               lg->dir, dead);
}

static int env_open(struct es_log_lmdb *lg, size_t map_size_bytes, struct sp_errbuf *eb)
{
    bool writer = lg->base.mode == ES_LOG_WRITER;
    int rc;

    if (!writer) {
        char *data = path_join(lg->dir, "data.mdb");
        int missing = access(data, F_OK) != 0;
        free(data);
        if (missing)
            return sp_err_set(eb, SP_ENOTFOUND, "log.dir", "no log in \"%s\"", lg->dir);
    }
    rc = mdb_env_create(&lg->env);
    if (rc)
        return lmdb_err(eb, rc, "create an environment for", lg->dir);
    if ((rc = mdb_env_set_maxdbs(lg->env, 4)) ||
        (rc = mdb_env_set_mapsize(lg->env, map_size_bytes)))
        return lmdb_err(eb, rc, "configure", lg->dir);
    rc = mdb_env_open(lg->env, lg->dir, MDB_NOTLS | (writer ? 0 : MDB_RDONLY), 0644);
    if (rc)
        return lmdb_err(eb, rc, "open", lg->dir);
    readers_check(lg);
    if (writer) /* what is written already, zeros ahead or not (es/lmdb_ahead.h) */
        lg->ahead_to = es_lmdb_file_size(lg->env);
    return tables_open(lg, eb);
}

int es_log_open_lmdb(const char *dir,
                     size_t map_size_bytes,
                     size_t max_event_bytes,
                     enum es_log_mode mode,
                     struct es_log **out,
                     struct sp_errbuf *eb)
{
    struct es_log_lmdb *lg;
    int rc;

    *out = NULL;
    if (dir == NULL || dir[0] == '\0')
        return sp_err_set(eb, SP_EINVAL, "log.dir", "log directory is empty");
    lg = sp_xcalloc(1, sizeof(*lg));
    lg->base.ops = &lmdb_ops;
    lg->base.mode = mode;
    lg->base.max_event_bytes = max_event_bytes;
    lg->lock_fd = -1;
    lg->dir = sp_xstrdup(dir);
    pthread_rwlock_init(&lg->map_lock, NULL);
    if (mode == ES_LOG_WRITER) {
        rc = make_dirs(dir);
        if (rc) {
            sp_err_set(eb, rc, "log.dir", "could not create log directory \"%s\": %s", dir,
                       strerror(-rc));
            goto out_close;
        }
        if ((rc = writer_lock(lg, eb)))
            goto out_close;
    }
    if ((rc = env_open(lg, map_size_bytes, eb)))
        goto out_close;
    *out = &lg->base;
    return 0;
out_close:
    lmdb_ops.close(&lg->base);
    return rc;
}

static void lmdb_close(struct es_log *log)
{
    struct es_log_lmdb *lg = (struct es_log_lmdb *)log;

    if (lg->env != NULL)
        mdb_env_close(lg->env);
    if (lg->lock_fd >= 0)
        close(lg->lock_fd); /* releases the flock */
    pthread_rwlock_destroy(&lg->map_lock);
    free(lg->dir);
    free(lg);
}

static int32_t lmdb_partitions(const struct es_log *log)
{
    (void)log;
    return 1;
}

/*
 * Begin a read txn with map_lock held shared (released by read_end). If the writer grew
 * the map since we opened, adopt its size (LMDB requires no txn of ours be active: hence
 * the exclusive lock) and retry.
 */
static int read_begin(struct es_log_lmdb *lg, MDB_txn **txn)
{
    int rc;

    pthread_rwlock_rdlock(&lg->map_lock);
    rc = mdb_txn_begin(lg->env, NULL, MDB_RDONLY, txn);
    if (rc != MDB_MAP_RESIZED)
        goto out;
    pthread_rwlock_unlock(&lg->map_lock);
    pthread_rwlock_wrlock(&lg->map_lock);
    rc = mdb_env_set_mapsize(lg->env, 0);
    pthread_rwlock_unlock(&lg->map_lock);
    pthread_rwlock_rdlock(&lg->map_lock);
    if (rc == 0)
        rc = mdb_txn_begin(lg->env, NULL, MDB_RDONLY, txn);
out:
    if (rc)
        pthread_rwlock_unlock(&lg->map_lock);
    return rc;
}

static void read_end(struct es_log_lmdb *lg, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&lg->map_lock);
}

/* Offset after the last record visible to @p txn (0 for an empty log). */
static int end_in_txn(struct es_log_lmdb *lg, MDB_txn *txn, int64_t *end)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    rc = mdb_cursor_open(txn, lg->log_dbi, &cur);
    if (rc)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    *end = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (k.mv_size != 8)
        return MDB_CORRUPTED;
    *end = key_decode(k.mv_data) + 1;
    return 0;
}

static int lmdb_end(struct es_log *log,
                    int32_t partition,
                    int timeout_ms,
                    int64_t *end_offset,
                    struct sp_errbuf *eb)
{
    struct es_log_lmdb *lg = (struct es_log_lmdb *)log;
    MDB_txn *txn;
    int rc;

    (void)partition;
    (void)timeout_ms; /* a local read transaction: never waits on a server */
    rc = read_begin(lg, &txn);
    if (rc)
        return lmdb_err(eb, rc, "read", lg->dir);
    rc = end_in_txn(lg, txn, end_offset);
    read_end(lg, txn);
    if (rc)
        return lmdb_err(eb, rc, "read the end of", lg->dir);
    return 0;
}

/* Value = [XXH3-64 LE][envelope]; SP_ETOOBIG if the envelope exceeds max_event_bytes. */
static int value_encode(const struct es_event *ev, struct sp_buf *val, struct sp_errbuf *eb)
{
    static const uint8_t zero[LMDB_CHECKSUM_BYTES];
    int rc;

    sp_buf_reset(val);
    rc = sp_buf_add(val, zero, sizeof(zero));
    if (rc == 0)
        rc = es_event_encode(ev, val, eb);
    if (rc == SP_ETOOBIG)
        return sp_err_set(eb, SP_ETOOBIG, "log.max_event_bytes",
                          "event %s of type \"%s\" encodes to more than %zu bytes", ev->id,
                          ev->type ? ev->type : "", val->max_bytes - LMDB_CHECKSUM_BYTES);
    if (rc)
        return rc;
    sum_encode(es_checksum(val->data + LMDB_CHECKSUM_BYTES, val->len - LMDB_CHECKSUM_BYTES),
               (uint8_t *)val->data);
    return 0;
}

static int append_in_txn(struct es_log_lmdb *lg,
                         MDB_txn *txn,
                         const struct es_event *const *evs,
                         size_t n,
                         int64_t *first,
                         struct sp_errbuf *eb)
{
    struct sp_buf val;
    uint8_t key[8];
    MDB_val k = {sizeof(key), key}, v;
    int rc;

    sp_buf_init(&val, lg->base.max_event_bytes + LMDB_CHECKSUM_BYTES);
    rc = end_in_txn(lg, txn, first);
    if (rc) {
        rc = lmdb_err(eb, rc, "read the end of", lg->dir);
        goto out_release;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = value_encode(evs[i], &val, eb)))
            goto out_release;
        key_encode(*first + (int64_t)i, key);
        v.mv_size = val.len;
        v.mv_data = val.data;
        rc = mdb_put(txn, lg->log_dbi, &k, &v, MDB_APPEND);
        if (rc) {
            rc = lmdb_err(eb, rc, "append to", lg->dir);
            goto out_release;
        }
    }
out_release:
    sp_buf_release(&val);
    return rc;
}

static int lmdb_append(struct es_log *log,
                       const struct es_event *const *evs,
                       size_t n,
                       struct es_position *pos,
                       struct sp_errbuf *eb)
{
    struct es_log_lmdb *lg = (struct es_log_lmdb *)log;
    MDB_txn *txn;
    int64_t first = 0;
    int rc;

    rc = mdb_txn_begin(lg->env, NULL, 0, &txn);
    if (rc)
        return lmdb_err(eb, rc, "begin an append to", lg->dir);
    rc = append_in_txn(lg, txn, evs, n, &first, eb);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn); /* synced: the environment has neither NOSYNC nor NOMETASYNC */
    if (rc)
        return lmdb_err(eb, rc, "commit an append to", lg->dir);
    es_lmdb_write_ahead(lg->env, &lg->ahead_to, lg->dir); /* between write txns */
    for (size_t i = 0; pos != NULL && i < n; i++) {
        pos[i].partition = 0;
        pos[i].offset = first + (int64_t)i;
    }
    return 0;
}

/* Fill @p rec from a stored value, checking its checksum; @p errbuf holds rec->error. */
static void record_fill(
    struct es_log_record *rec, int64_t offset, const MDB_val *v, char *errbuf, size_t errbuf_size)
{
    uint64_t computed;
    char stored_hex[ES_CHECKSUM_HEX_LEN + 1], computed_hex[ES_CHECKSUM_HEX_LEN + 1];

    memset(rec, 0, sizeof(*rec));
    rec->pos.partition = 0;
    rec->pos.offset = offset;
    if (v->mv_size < LMDB_CHECKSUM_BYTES) {
        rec->value = v->mv_data;
        rec->value_len = v->mv_size;
        rec->status = SP_ECORRUPT;
        snprintf(errbuf, errbuf_size,
                 "record at offset %" PRId64 " is %zu bytes, too short for its checksum", offset,
                 v->mv_size);
        rec->error = errbuf;
        return;
    }
    rec->value = (const uint8_t *)v->mv_data + LMDB_CHECKSUM_BYTES;
    rec->value_len = v->mv_size - LMDB_CHECKSUM_BYTES;
    rec->checksum = sum_decode(v->mv_data);
    computed = es_checksum(rec->value, rec->value_len);
    if (computed != rec->checksum) {
        es_checksum_hex(rec->checksum, stored_hex);
        es_checksum_hex(computed, computed_hex);
        snprintf(errbuf, errbuf_size,
                 "checksum mismatch at offset %" PRId64 ": stored %s computed %s", offset,
                 stored_hex, computed_hex);
        rec->status = SP_ECORRUPT;
        rec->error = errbuf;
    }
}

static int lmdb_read(struct es_log *log,
                     int32_t partition,
                     int64_t from_offset,
                     size_t max,
                     es_log_record_fn fn,
                     void *ud,
                     int64_t *next_offset,
                     struct sp_errbuf *eb)
{
    struct es_log_lmdb *lg = (struct es_log_lmdb *)log;
    struct es_log_record rec;
    char errbuf[160];
    uint8_t key[8];
    MDB_val k = {sizeof(key), key}, v;
    MDB_txn *txn;
    MDB_cursor *cur;
    size_t count = 0;
    int rc, stop = 0;

    (void)partition;
    if (next_offset != NULL)
        *next_offset = from_offset; /* until a record is passed */
    rc = read_begin(lg, &txn);
    if (rc)
        return lmdb_err(eb, rc, "read", lg->dir);
    rc = mdb_cursor_open(txn, lg->log_dbi, &cur);
    if (rc)
        goto out_end_txn;
    key_encode(from_offset, key);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && count < max && stop == 0) {
        if (k.mv_size != 8) {
            rc = MDB_CORRUPTED;
            break;
        }
        record_fill(&rec, key_decode(k.mv_data), &v, errbuf, sizeof(errbuf));
        stop = fn(&rec, ud);
        count++;
        if (next_offset != NULL)
            *next_offset = rec.pos.offset + 1;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = 0;
out_end_txn:
    read_end(lg, txn);
    if (stop)
        return stop;
    return rc ? lmdb_err(eb, rc, "read", lg->dir) : 0;
}

static const struct es__log_ops lmdb_ops = {
    .name = "lmdb",
    .close = lmdb_close,
    .partitions = lmdb_partitions,
    .append = lmdb_append,
    .read = lmdb_read,
    .end = lmdb_end,
};
