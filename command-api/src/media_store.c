/* The media store's interface dispatch and its filesystem backend (write, fsync, rename). */
#include "media_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sp/alloc.h"

#include "sp/banned.h"

#define SHA_HEX_LEN    64
#define MAX_SUFFIX_LEN 32
#define TMP_PREFIX     ".tmp-"

struct fs_store {
    struct cmd__media_store base; /* first: the interface */
    char *root;                   /* owned, no trailing '/' */
};

bool cmd__media_key_valid(const char *key)
{
    size_t n = strlen(key);

    if (n < SHA_HEX_LEN || n > SHA_HEX_LEN + MAX_SUFFIX_LEN)
        return false;
    for (size_t i = 0; i < SHA_HEX_LEN; i++)
        if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f')))
            return false;
    if (n == SHA_HEX_LEN)
        return true;
    if (key[SHA_HEX_LEN] != '.' || strstr(key, "..") != NULL || key[n - 1] == '.')
        return false;
    for (size_t i = SHA_HEX_LEN + 1; i < n; i++)
        if (!((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9') ||
              key[i] == '.'))
            return false;
    return true;
}

/* A name errno for the message: what an operator should look at. */
static const char *why(int err)
{
    switch (err) {
    case ENOSPC:
        return "disk full";
    case EDQUOT:
        return "disk quota exceeded";
    case EACCES:
    case EPERM:
        return "permission denied";
    case EROFS:
        return "read-only file system";
    default:
        return strerror(err);
    }
}

static int sys_fail(struct sp_errbuf *eb, int err, const char *what, const char *path)
{
    return sp_err_set(eb, -err, NULL, "could not %s \"%s\": %s", what, path, why(err));
}

static int check_key(const char *key, struct sp_errbuf *eb)
{
    if (!cmd__media_key_valid(key))
        return sp_err_set(eb, SP_EINVAL, "key", "malformed media key \"%.80s\"", key);
    return 0;
}

static bool fits(int written, size_t size)
{
    return written >= 0 && (size_t)written < size;
}

/* "<root>/ab/cd" into @p out. */
static int fs_dir(const struct fs_store *fs, const char *key, char *out, size_t n)
{
    int w = snprintf(out, n, "%s/%.2s/%.2s", fs->root, key, key + 2);

    return w < 0 || (size_t)w >= n ? SP_ETOOBIG : 0;
}

static int fsync_dir(const char *dir, struct sp_errbuf *eb)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return sys_fail(eb, errno, "open directory", dir);
    if (fsync(fd) != 0)
        rc = sys_fail(eb, errno, "fsync directory", dir);
    close(fd);
    return rc;
}

/* mkdir @p dir if missing; when made, fsync @p parent so the new entry is durable. */
static int make_dir(const char *dir, const char *parent, struct sp_errbuf *eb)
{
    if (mkdir(dir, 0755) == 0)
        return fsync_dir(parent, eb);
    if (errno == EEXIST)
        return 0;
    return sys_fail(eb, errno, "create directory", dir);
}

static int make_dirs(const struct fs_store *fs, const char *key, struct sp_errbuf *eb)
{
    char ab[PATH_MAX], abcd[PATH_MAX];
    int rc;

    if (!fits(snprintf(ab, sizeof(ab), "%s/%.2s", fs->root, key), sizeof(ab)) ||
        fs_dir(fs, key, abcd, sizeof(abcd)) != 0)
        return sp_err_set(eb, SP_ETOOBIG, "key", "media path too long");
    if ((rc = make_dir(ab, fs->root, eb)) != 0)
        return rc;
    return make_dir(abcd, ab, eb);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write the temporary file @p tmp (a mkstemp template, filled in) with the bytes, fsynced. */
static int write_tmp(char *tmp, const void *data, size_t size_bytes, struct sp_errbuf *eb)
{
    int fd = mkstemp(tmp);
    int rc;

    if (fd < 0)
        return sys_fail(eb, errno, "create temporary file", tmp);
    if (fchmod(fd, 0644) != 0 || (rc = write_all(fd, data, size_bytes)) != 0)
        rc = sys_fail(eb, errno, "write", tmp);
    else if (fsync(fd) != 0)
        rc = sys_fail(eb, errno, "fsync", tmp);
    if (close(fd) != 0 && rc == 0)
        rc = sys_fail(eb, errno, "close", tmp);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

static int fs_put(struct cmd__media_store *st,
                  const char *key,
                  const void *data,
                  size_t size_bytes,
                  struct sp_errbuf *eb)
{
    struct fs_store *fs = (struct fs_store *)st;
    char dir[PATH_MAX], final[PATH_MAX], tmp[PATH_MAX];
    bool found = false;
    int rc;

    if ((rc = st->ops->exists(st, key, &found, eb)) != 0 || found)
        return rc;
    if ((rc = make_dirs(fs, key, eb)) != 0)
        return rc;
    /* fs_open bounded the root's length, so these fit; checked all the same */
    if (fs_dir(fs, key, dir, sizeof(dir)) != 0 ||
        !fits(snprintf(final, sizeof(final), "%s/%s", dir, key), sizeof(final)) ||
        !fits(snprintf(tmp, sizeof(tmp), "%s/" TMP_PREFIX "%s-XXXXXX", dir, key), sizeof(tmp)))
        return sp_err_set(eb, SP_ETOOBIG, "key", "media path too long");
    if ((rc = write_tmp(tmp, data, size_bytes, eb)) != 0)
        return rc;
    if (rename(tmp, final) != 0) {
        rc = sys_fail(eb, errno, "rename into", final);
        unlink(tmp);
        return rc;
    }
    return fsync_dir(dir, eb);
}

static int fs_path(
    struct cmd__media_store *st, const char *key, char *out, size_t out_size, struct sp_errbuf *eb)
{
    const struct fs_store *fs = (const struct fs_store *)st;
    int rc = check_key(key, eb);
    int w;

    if (rc != 0)
        return rc;
    w = snprintf(out, out_size, "%s/%.2s/%.2s/%s", fs->root, key, key + 2, key);
    if (w < 0 || (size_t)w >= out_size)
        return sp_err_set(eb, SP_ETOOBIG, NULL, "media path longer than %zu bytes", out_size);
    return 0;
}

static int
fs_exists(struct cmd__media_store *st, const char *key, bool *found, struct sp_errbuf *eb)
{
    char path[PATH_MAX];
    struct stat sb;
    int rc;

    *found = false;
    if ((rc = fs_path(st, key, path, sizeof(path), eb)) != 0)
        return rc;
    if (stat(path, &sb) == 0) {
        *found = true;
        return 0;
    }
    if (errno == ENOENT || errno == ENOTDIR)
        return 0;
    return sys_fail(eb, errno, "look up", path);
}

static int fs_remove(struct cmd__media_store *st, const char *key, struct sp_errbuf *eb)
{
    const struct fs_store *fs = (const struct fs_store *)st;
    char path[PATH_MAX], dir[PATH_MAX];
    int rc;

    if ((rc = fs_path(st, key, path, sizeof(path), eb)) != 0)
        return rc;
    if (unlink(path) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return sys_fail(eb, errno, "remove", path);
    }
    SP_ASSERT(fs_dir(fs, key, dir, sizeof(dir)) == 0); /* shorter than path */
    return fsync_dir(dir, eb);
}

static bool is_hex_pair(const char *name)
{
    return strlen(name) == 2 && strspn(name, "0123456789abcdef") == 2;
}

/* Remove old temporary files from one leaf directory <root>/ab/cd. */
static int sweep_leaf(const char *dir, time_t cutoff, size_t *n, struct sp_errbuf *eb)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    struct stat sb;
    int rc = 0;

    if (d == NULL)
        return sys_fail(eb, errno, "read directory", dir);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || sb.st_mtime > cutoff)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            (*n)++;
        else if (errno != ENOENT)
            rc = sys_fail(eb, errno, "remove temporary file in", dir);
    }
    closedir(d);
    return rc;
}

/* Call @p fn on every two-hex-character subdirectory of @p dir. */
static int each_pair_dir(const char *dir,
                         int (*fn)(const char *sub, time_t cutoff, size_t *n, struct sp_errbuf *eb),
                         time_t cutoff,
                         size_t *n,
                         struct sp_errbuf *eb)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char sub[PATH_MAX];
    int rc = 0;

    if (d == NULL)
        return sys_fail(eb, errno, "read directory", dir);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!is_hex_pair(de->d_name))
            continue;
        if (fits(snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name), sizeof(sub)))
            rc = fn(sub, cutoff, n, eb);
    }
    closedir(d);
    return rc;
}

static int sweep_mid(const char *dir, time_t cutoff, size_t *n, struct sp_errbuf *eb)
{
    return each_pair_dir(dir, sweep_leaf, cutoff, n, eb);
}

static int
fs_sweep_tmp(struct cmd__media_store *st, long min_age_s, size_t *n_removed, struct sp_errbuf *eb)
{
    const struct fs_store *fs = (const struct fs_store *)st;
    time_t cutoff = time(NULL) - (min_age_s > 0 ? min_age_s : 0);
    size_t n = 0;
    int rc;

    if (min_age_s <= 0)
        cutoff += 1; /* 0 = all: include files written in this very second */
    rc = each_pair_dir(fs->root, sweep_mid, cutoff, &n, eb);
    if (n_removed)
        *n_removed = n;
    return rc;
}

static void fs_close(struct cmd__media_store *st)
{
    struct fs_store *fs = (struct fs_store *)st;

    free(fs->root);
    free(fs);
}

static const struct cmd__media_store_ops fs_ops = {
    .put = fs_put,
    .exists = fs_exists,
    .path = fs_path,
    .remove = fs_remove,
    .sweep_tmp = fs_sweep_tmp,
    .close = fs_close,
};

int cmd__media_store_fs_open(const char *root, struct cmd__media_store **st, struct sp_errbuf *eb)
{
    struct fs_store *fs;
    struct stat sb;
    size_t n = strlen(root);

    *st = NULL;
    if (stat(root, &sb) != 0)
        return sys_fail(eb, errno, "open media store", root);
    if (!S_ISDIR(sb.st_mode))
        return sys_fail(eb, ENOTDIR, "open media store", root);
    if (n + 1 + 6 + SHA_HEX_LEN + MAX_SUFFIX_LEN + 32 >= PATH_MAX)
        return sp_err_set(eb, SP_EINVAL, "root", "media store path \"%s\" is too long", root);
    fs = sp_xcalloc(1, sizeof(*fs));
    fs->base.ops = &fs_ops;
    while (n > 1 && root[n - 1] == '/')
        n--;
    fs->root = sp_xstrndup(root, n);
    *st = &fs->base;
    return 0;
}

int cmd__media_store_put(struct cmd__media_store *st,
                         const char *key,
                         const void *data,
                         size_t size_bytes,
                         struct sp_errbuf *eb)
{
    int rc = check_key(key, eb);

    return rc != 0 ? rc : st->ops->put(st, key, data, size_bytes, eb);
}

int cmd__media_store_exists(struct cmd__media_store *st,
                            const char *key,
                            bool *found,
                            struct sp_errbuf *eb)
{
    int rc = check_key(key, eb);

    *found = false;
    return rc != 0 ? rc : st->ops->exists(st, key, found, eb);
}

int cmd__media_store_path(
    struct cmd__media_store *st, const char *key, char *out, size_t out_size, struct sp_errbuf *eb)
{
    int rc = check_key(key, eb);

    return rc != 0 ? rc : st->ops->path(st, key, out, out_size, eb);
}

int cmd__media_store_remove(struct cmd__media_store *st, const char *key, struct sp_errbuf *eb)
{
    int rc = check_key(key, eb);

    return rc != 0 ? rc : st->ops->remove(st, key, eb);
}

int cmd__media_store_sweep_tmp(struct cmd__media_store *st,
                               long min_age_s,
                               size_t *n_removed,
                               struct sp_errbuf *eb)
{
    if (n_removed)
        *n_removed = 0;
    return st->ops->sweep_tmp(st, min_age_s, n_removed, eb);
}

void cmd__media_store_close(struct cmd__media_store *st)
{
    if (st != NULL)
        st->ops->close(st);
}
