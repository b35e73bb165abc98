/* LMDB views: generations, format check, checkpoints, dead letters, checksum, rebuild swap. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <xxhash.h>

#include "proj/view.h"
#include "sp/alloc.h"
#include "sp/log.h"

#include "sp/banned.h"

#define CHECKPOINT_PREFIX "checkpoint/"
#define GEN_MAX           32 /* bytes of a generation name, "g<N>" */
#define OPEN_RETRIES      5  /* a rebuild may remove a generation between readlink and open */

struct proj_view {
    char *dir;          /* owned */
    char gen[GEN_MAX];  /* the generation open, "g<N>" */
    MDB_env *env;       /* owned */
    MDB_dbi meta, dead; /* this module's databases */
    int lock_fd;        /* rebuild: the flock on DIR/rebuild.lock; -1 otherwise */
};

static int mdb_err(int rc, struct sp_errbuf *eb, const char *what)
{
    return sp_err_set(eb, SP_EDB, NULL, "%s: %s", what, mdb_strerror(rc));
}

/* The live generation's name into @p gen. @return 0, -ENOENT if there is none, -errno. */
static int live_generation(const char *dir, char *gen, size_t gen_size)
{
    char link[PATH_MAX];
    ssize_t n;

    snprintf(link, sizeof(link), "%s/current", dir);
    n = readlink(link, gen, gen_size - 1);
    if (n < 0)
        return -errno;
    gen[n] = '\0';
    return 0;
}

static int mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    size_t n = (size_t)snprintf(path, sizeof(path), "%s", dir);

    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST)
            return -errno;
        path[i] = i < n ? '/' : '\0';
    }
    return 0;
}

/* Remove a generation directory and the files LMDB keeps in it. */
static void remove_generation(const char *dir, const char *gen)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char path[PATH_MAX];

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s/%s", dir, gen, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/%s", dir, gen);
    if (rmdir(path) != 0 && errno != ENOENT)
        sp_log(SP_LOG_WARN, "could not remove old view generation \"%s\": %s", path,
               strerror(errno));
}

/* Point DIR/current at @p gen atomically (symlink a temporary name, rename it over). */
static int link_generation(const char *dir, const char *gen)
{
    char tmp[PATH_MAX], cur[PATH_MAX];
    int fd;

    snprintf(tmp, sizeof(tmp), "%s/current.tmp", dir);
    snprintf(cur, sizeof(cur), "%s/current", dir);
    unlink(tmp);
    if (symlink(gen, tmp) != 0 || rename(tmp, cur) != 0)
        return -errno;
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY)) >= 0) { /* make the rename durable */
        fsync(fd);
        close(fd);
    }
    return 0;
}

/* Open (and in WRITE mode create) the module's databases and check the format. */
static int open_dbs(struct proj_view *v, const char *format, bool write, struct sp_errbuf *eb)
{
    static char format_key[] = "format";
    unsigned flags = write ? MDB_CREATE : 0;
    char stored[128];
    MDB_txn *txn;
    MDB_val key = {sizeof(format_key) - 1, format_key}, val;
    int rc = mdb_txn_begin(v->env, NULL, write ? 0 : MDB_RDONLY, &txn);

    if (rc != 0)
        return mdb_err(rc, eb, "could not begin a view transaction");
    rc = mdb_dbi_open(txn, PROJ_VIEW_META_DB, flags, &v->meta);
    if (rc == 0)
        rc = mdb_dbi_open(txn, PROJ_VIEW_DEAD_LETTERS_DB, flags, &v->dead);
    if (rc == MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return sp_err_set(eb, SP_ESTATE, NULL,
                          "\"%s/%s\" is not a view of this format (no meta): rebuild it", v->dir,
                          v->gen);
    }
    if (rc == 0 && (rc = mdb_get(txn, v->meta, &key, &val)) == MDB_NOTFOUND && write) {
        val.mv_size = (size_t)snprintf(stored, sizeof(stored), "%s", format);
        val.mv_data = stored;
        rc = mdb_put(txn, v->meta, &key, &val, 0);
    } else if (rc == 0 &&
               (val.mv_size != strlen(format) || memcmp(val.mv_data, format, val.mv_size) != 0)) {
        sp_err_set(eb, SP_ESTATE, NULL,
                   "view \"%s\" has format \"%.*s\" but this build reads \"%s\": rebuild it "
                   "(stockpot-replay rebuild <projection>)",
                   v->dir, (int)val.mv_size, (const char *)val.mv_data, format);
        mdb_txn_abort(txn);
        return SP_ESTATE;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return mdb_err(rc, eb, "could not open the view's meta database");
    }
    rc = mdb_txn_commit(txn);
    return rc == 0 ? 0 : mdb_err(rc, eb, "could not commit a view transaction");
}

/* Open the environment of generation v->gen. */
static int open_env(struct proj_view *v,
                    const struct proj_view_opts *opts,
                    unsigned env_flags,
                    struct sp_errbuf *eb)
{
    char path[PATH_MAX];
    int rc, dead = 0;

    snprintf(path, sizeof(path), "%s/%s", v->dir, v->gen);
    if ((rc = mdb_env_create(&v->env)) != 0)
        return mdb_err(rc, eb, "could not create an LMDB environment");
    mdb_env_set_maxdbs(v->env, opts->max_dbs + PROJ_VIEW_OWN_DBS);
    mdb_env_set_mapsize(v->env, opts->map_size_bytes);
    rc = mdb_env_open(v->env, path, env_flags | MDB_NOTLS, 0640);
    if (rc != 0) {
        mdb_env_close(v->env);
        v->env = NULL;
        return rc == ENOENT ? -ENOENT
                            : sp_err_set(eb, rc > 0 ? -rc : SP_EDB, NULL,
                                         "could not open view \"%s\": %s", path, mdb_strerror(rc));
    }
    if (mdb_reader_check(v->env, &dead) == 0 && dead > 0)
        sp_log(SP_LOG_WARN, "view \"%s\": cleared %d stale reader slot(s)", path, dead);
    return 0;
}

static struct proj_view *view_alloc(const char *dir)
{
    struct proj_view *v = sp_xcalloc(1, sizeof(*v));

    v->dir = sp_xstrdup(dir);
    v->lock_fd = -1;
    return v;
}

/* Create a fresh generation named @p gen and open it (WRITE). */
static int create_generation(struct proj_view *v,
                             const struct proj_view_opts *opts,
                             unsigned env_flags,
                             struct sp_errbuf *eb)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", v->dir, v->gen);
    remove_generation(v->dir, v->gen); /* a leftover of a crashed rebuild */
    if (mkdir(path, 0750) != 0)
        return sp_err_set(eb, -errno, NULL, "could not create \"%s\": %s", path, strerror(errno));
    return open_env(v, opts, env_flags, eb);
}

int proj_view_open(const struct proj_view_opts *opts,
                   enum proj_view_mode mode,
                   struct proj_view **out,
                   struct sp_errbuf *eb)
{
    bool write = mode == PROJ_VIEW_WRITE;
    struct proj_view *v = view_alloc(opts->dir);
    int rc = -ENOENT;

    *out = NULL;
    if (write && (rc = mkdir_p(opts->dir)) != 0) {
        sp_err_set(eb, rc, NULL, "could not create \"%s\": %s", opts->dir, strerror(-rc));
        goto out_free;
    }
    rc = -ENOENT;
    for (int i = 0; i < OPEN_RETRIES && rc == -ENOENT; i++) {
        rc = live_generation(opts->dir, v->gen, sizeof(v->gen));
        if (rc == -ENOENT && write) {
            snprintf(v->gen, sizeof(v->gen), "g1");
            rc = create_generation(v, opts, MDB_NOMETASYNC, eb);
            if (rc == 0 && (rc = open_dbs(v, opts->format, true, eb)) == 0 &&
                (rc = link_generation(opts->dir, v->gen)) != 0)
                sp_err_set(eb, rc, NULL, "could not link view \"%s\": %s", opts->dir,
                           strerror(-rc));
            goto out_done;
        }
        if (rc == 0)
            rc = open_env(v, opts, write ? MDB_NOMETASYNC : MDB_RDONLY, eb);
    }
    if (rc == -ENOENT) {
        sp_err_set(eb, SP_ENOTFOUND, NULL, "no view in \"%s\" (not built yet?)", opts->dir);
        rc = SP_ENOTFOUND;
    }
    if (rc == 0)
        rc = open_dbs(v, opts->format, write, eb);
out_done:
    if (rc == 0) {
        *out = v;
        return 0;
    }
out_free:
    proj_view_close(v);
    return rc;
}

void proj_view_close(struct proj_view *v)
{
    if (v == NULL)
        return;
    if (v->env != NULL)
        mdb_env_close(v->env);
    if (v->lock_fd >= 0)
        close(v->lock_fd); /* releases the flock */
    free(v->dir);
    free(v);
}

MDB_env *proj_view_env(const struct proj_view *v)
{
    return v->env;
}

const char *proj_view_generation(const struct proj_view *v)
{
    return v->gen;
}

bool proj_view_is_current(const struct proj_view *v)
{
    char gen[GEN_MAX];

    return live_generation(v->dir, gen, sizeof(gen)) == 0 && strcmp(gen, v->gen) == 0;
}

static void checkpoint_key(int32_t partition, char *buf, size_t size, MDB_val *key)
{
    key->mv_size = (size_t)snprintf(buf, size, CHECKPOINT_PREFIX "%d", (int)partition);
    key->mv_data = buf;
}

int proj_view_checkpoint_get(const struct proj_view *v,
                             MDB_txn *txn,
                             int32_t partition,
                             int64_t *next_offset,
                             struct sp_errbuf *eb)
{
    char buf[32];
    MDB_val key, val;
    int rc;

    checkpoint_key(partition, buf, sizeof(buf), &key);
    *next_offset = 0;
    rc = mdb_get(txn, v->meta, &key, &val);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return mdb_err(rc, eb, "could not read a view checkpoint");
    if (val.mv_size != sizeof(*next_offset))
        return sp_err_set(eb, SP_EDB, NULL, "view checkpoint of partition %d is %zu bytes",
                          (int)partition, val.mv_size);
    memcpy(next_offset, val.mv_data, sizeof(*next_offset)); /* little-endian hosts only */
    return 0;
}

int proj_view_checkpoint_put(
    struct proj_view *v, MDB_txn *txn, int32_t partition, int64_t next_offset, struct sp_errbuf *eb)
{
    char buf[32];
    MDB_val key, val = {sizeof(next_offset), &next_offset};
    int rc;

    checkpoint_key(partition, buf, sizeof(buf), &key);
    rc = mdb_put(txn, v->meta, &key, &val, 0);
    return rc == 0 ? 0 : mdb_err(rc, eb, "could not store a view checkpoint");
}

int proj_view_checkpoints(const struct proj_view *v,
                          MDB_txn *txn,
                          int32_t *parts,
                          int64_t *offsets,
                          size_t cap,
                          struct sp_errbuf *eb)
{
    static char start[] = CHECKPOINT_PREFIX;
    size_t prefix = sizeof(start) - 1, n = 0;
    MDB_val key = {prefix, start}, val;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, v->meta, &cur);

    if (rc != 0)
        return mdb_err(rc, eb, "could not read the view checkpoints");
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        char num[16];
        if (key.mv_size <= prefix || key.mv_size - prefix >= sizeof(num) ||
            memcmp(key.mv_data, CHECKPOINT_PREFIX, prefix) != 0)
            break;
        memcpy(num, (const char *)key.mv_data + prefix, key.mv_size - prefix);
        num[key.mv_size - prefix] = '\0';
        if (n < cap && val.mv_size == sizeof(int64_t)) {
            parts[n] = (int32_t)strtol(num, NULL, 10);
            memcpy(&offsets[n], val.mv_data, sizeof(int64_t));
        }
        n++;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return mdb_err(rc, eb, "could not read the view checkpoints");
    /* keys sort as text ("checkpoint/10" before "checkpoint/2"): order by partition */
    for (size_t i = 1; i < n && i < cap; i++) {
        for (size_t j = i; j > 0 && parts[j - 1] > parts[j]; j--) {
            int32_t p = parts[j];
            int64_t o = offsets[j];
            parts[j] = parts[j - 1];
            offsets[j] = offsets[j - 1];
            parts[j - 1] = p;
            offsets[j - 1] = o;
        }
    }
    return (int)n;
}

int proj_view_dead_letter_put(struct proj_view *v,
                              MDB_txn *txn,
                              int32_t partition,
                              int64_t offset,
                              const char *event_id,
                              const char *event_type,
                              const char *error,
                              struct sp_errbuf *eb)
{
    unsigned char k[12];
    json_t *doc = json_pack("{s:s?, s:s?, s:s}", "event_id", event_id, "event_type", event_type,
                            "error", error);
    char *text = json_dumps(doc, JSON_COMPACT);
    MDB_val key = {sizeof(k), k}, val = {text != NULL ? strlen(text) : 0, text};
    int rc;

    for (int i = 0; i < 4; i++)
        k[i] = (unsigned char)((uint32_t)partition >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        k[4 + i] = (unsigned char)((uint64_t)offset >> (56 - 8 * i));
    rc = text != NULL ? mdb_put(txn, v->dead, &key, &val, 0) : ENOMEM;
    free(text);
    json_decref(doc);
    return rc == 0 ? 0 : mdb_err(rc, eb, "could not store a dead letter");
}

int proj_view_dead_letter_count(const struct proj_view *v,
                                MDB_txn *txn,
                                size_t *n,
                                struct sp_errbuf *eb)
{
    MDB_stat st;
    int rc = mdb_stat(txn, v->dead, &st);

    *n = rc == 0 ? st.ms_entries : 0;
    return rc == 0 ? 0 : mdb_err(rc, eb, "could not count the dead letters");
}

static void hash_item(XXH3_state_t *h, const MDB_val *item)
{
    uint64_t len = item->mv_size;

    XXH3_128bits_update(h, &len, sizeof(len));
    XXH3_128bits_update(h, item->mv_data, item->mv_size);
}

/* Hash every item of the named database @p name (opened in @p txn). */
static int hash_db(XXH3_state_t *h, MDB_txn *txn, const MDB_val *name, struct sp_errbuf *eb)
{
    char dbname[256];
    MDB_val key, val;
    MDB_cursor *cur;
    MDB_dbi dbi;
    int rc;

    if (name->mv_size >= sizeof(dbname))
        return sp_err_set(eb, SP_EDB, NULL, "view database name too long");
    memcpy(dbname, name->mv_data, name->mv_size);
    dbname[name->mv_size] = '\0';
    if (strcmp(dbname, PROJ_VIEW_META_DB) == 0 || strcmp(dbname, PROJ_VIEW_DEAD_LETTERS_DB) == 0)
        return 0;
    if ((rc = mdb_dbi_open(txn, dbname, 0, &dbi)) != 0 ||
        (rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
        return mdb_err(rc, eb, "could not open a view database");
    hash_item(h, name);
    while ((rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
        hash_item(h, &key);
        hash_item(h, &val);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : mdb_err(rc, eb, "could not read a view database");
}

int proj_view_checksum(const struct proj_view *v, char *out, size_t out_size, struct sp_errbuf *eb)
{
    XXH3_state_t *h = XXH3_createState();
    XXH128_hash_t sum;
    MDB_val name, val;
    MDB_cursor *cur = NULL;
    MDB_txn *txn;
    MDB_dbi main_dbi;
    int rc = mdb_txn_begin(v->env, NULL, MDB_RDONLY, &txn);

    if (h == NULL)
        abort(); /* out of memory */
    XXH3_128bits_reset(h);
    if (rc == 0 && (rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) == 0)
        rc = mdb_cursor_open(txn, main_dbi, &cur);
    if (rc != 0) {
        rc = mdb_err(rc, eb, "could not read the view");
        goto out;
    }
    /* the main database's keys are the named databases, in name order */
    while ((rc = mdb_cursor_get(cur, &name, &val, MDB_NEXT)) == 0) {
        if ((rc = hash_db(h, txn, &name, eb)) != 0)
            goto out;
    }
    rc = rc == MDB_NOTFOUND ? 0 : mdb_err(rc, eb, "could not list the view databases");
    sum = XXH3_128bits_digest(h);
    snprintf(out, out_size, "%016llx%016llx", (unsigned long long)sum.high64,
             (unsigned long long)sum.low64);
out:
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    XXH3_freeState(h);
    return rc;
}

int proj_view_disk_bytes(const struct proj_view *v, uint64_t *bytes)
{
    char path[PATH_MAX];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s/data.mdb", v->dir, v->gen);
    if (stat(path, &st) != 0)
        return -errno;
    *bytes = (uint64_t)st.st_blocks * 512;
    return 0;
}

/* The next generation's name: one past the largest g<N> in DIR. */
static void next_generation(const char *dir, char *gen, size_t gen_size)
{
    long max = 0;
    struct dirent *de;
    DIR *d = opendir(dir);

    while (d != NULL && (de = readdir(d)) != NULL) {
        char *end = NULL;
        long n;

        if (de->d_name[0] != 'g')
            continue;
        n = strtol(de->d_name + 1, &end, 10);
        if (n > max && end != NULL && *end == '\0') /* "g<N>" only, not "g<N>.compact" */
            max = n;
    }
    if (d != NULL)
        closedir(d);
    snprintf(gen, gen_size, "g%ld", max + 1);
}

int proj_view_build_begin(const struct proj_view_opts *opts,
                          struct proj_view **out,
                          struct sp_errbuf *eb)
{
    struct proj_view *v = view_alloc(opts->dir);
    char path[PATH_MAX];
    int rc = mkdir_p(opts->dir);

    *out = NULL;
    snprintf(path, sizeof(path), "%s/rebuild.lock", opts->dir);
    if (rc == 0 && (v->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0)
        rc = -errno;
    if (rc != 0) {
        sp_err_set(eb, rc, NULL, "could not prepare \"%s\": %s", path, strerror(-rc));
        goto out_free;
    }
    if (flock(v->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = sp_err_set(eb, SP_ESTATE, NULL, "another rebuild of \"%s\" is running", opts->dir);
        goto out_free;
    }
    next_generation(opts->dir, v->gen, sizeof(v->gen));
    if ((rc = create_generation(v, opts, MDB_NOSYNC, eb)) == 0 &&
        (rc = open_dbs(v, opts->format, true, eb)) == 0) {
        *out = v;
        return 0;
    }
    remove_generation(opts->dir, v->gen);
out_free:
    proj_view_close(v);
    return rc;
}

/*
 * Replace the new generation by a compacted copy of it (mdb_env_copy2 with MDB_CP_COMPACT:
 * pages in order, none free), then sync it. A rebuild writes many batches, and LMDB's
 * copy-on-write leaves the pages each one replaced free in the file: the copy is about a
 * third smaller on the search view, and costs one sequential pass.
 */
static int compact_generation(struct proj_view *v, struct sp_errbuf *eb)
{
    char gen[PATH_MAX - 16], tmp[PATH_MAX - 16], from[PATH_MAX], to[PATH_MAX];
    int rc;

    snprintf(gen, sizeof(gen), "%s/%s", v->dir, v->gen);
    snprintf(tmp, sizeof(tmp), "%s/%s.compact", v->dir, v->gen);
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
        return sp_err_set(eb, -errno, NULL, "could not create \"%s\": %s", tmp, strerror(errno));
    rc = mdb_env_copy2(v->env, tmp, MDB_CP_COMPACT);
    mdb_env_close(v->env);
    v->env = NULL;
    snprintf(from, sizeof(from), "%s/data.mdb", tmp);
    snprintf(to, sizeof(to), "%s/data.mdb", gen);
    if (rc == 0 && rename(from, to) != 0) /* the copy replaces the generation's data */
        rc = errno;
    snprintf(from, sizeof(from), "%s/lock.mdb", tmp);
    unlink(from);
    rmdir(tmp);
    snprintf(from, sizeof(from), "%s/lock.mdb", gen); /* the next open makes a fresh one */
    unlink(from);
    if (rc != 0)
        return sp_err_set(eb, rc > 0 ? -rc : SP_EDB, NULL, "could not compact the rebuilt view: %s",
                          mdb_strerror(rc));
    rc = open(to, O_RDONLY | O_CLOEXEC);
    if (rc >= 0) { /* the copy is written without sync */
        fsync(rc);
        close(rc);
    }
    return 0;
}

int proj_view_build_commit(struct proj_view *v, struct sp_errbuf *eb)
{
    char old[GEN_MAX];
    bool had_old = live_generation(v->dir, old, sizeof(old)) == 0;
    int rc = compact_generation(v, eb);

    if (rc != 0) {
        proj_view_build_abort(v);
        return rc;
    }
    if ((rc = link_generation(v->dir, v->gen)) != 0) {
        sp_err_set(eb, rc, NULL, "could not swap in the rebuilt view: %s", strerror(-rc));
        proj_view_build_abort(v);
        return rc;
    }
    if (had_old && strcmp(old, v->gen) != 0)
        remove_generation(v->dir, old);
    proj_view_close(v);
    return 0;
}

void proj_view_build_abort(struct proj_view *v)
{
    if (v == NULL)
        return;
    if (v->env != NULL) {
        mdb_env_close(v->env);
        v->env = NULL;
    }
    remove_generation(v->dir, v->gen);
    proj_view_close(v);
}
