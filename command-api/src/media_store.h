/*
 * Content-addressed media storage behind a small interface (a table of function
 * pointers), so an S3-compatible backend can sit beside the filesystem one, the default.
 *
 * A key is a lower-case hex SHA-256 (64 characters), optionally followed by a variant
 * suffix of '.' and [a-z0-9.] (at most 32 characters, no ".."): "<sha>", "<sha>.w640.webp".
 * Every function refuses any other key with SP_EINVAL, so a key never names a path
 * outside the store.
 */
#ifndef CMD_MEDIA_STORE_H
#define CMD_MEDIA_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "sp/err.h"

struct cmd__media_store;

/** A backend's methods; each is the contract of the cmd__media_store_* function it backs. */
struct cmd__media_store_ops {
    int (*put)(struct cmd__media_store *st,
               const char *key,
               const void *data,
               size_t size_bytes,
               struct sp_errbuf *eb);
    int (*exists)(struct cmd__media_store *st, const char *key, bool *found, struct sp_errbuf *eb);
    int (*path)(struct cmd__media_store *st,
                const char *key,
                char *out,
                size_t out_size,
                struct sp_errbuf *eb);
    int (*remove)(struct cmd__media_store *st, const char *key, struct sp_errbuf *eb);
    int (*sweep_tmp)(struct cmd__media_store *st,
                     long min_age_s,
                     size_t *n_removed,
                     struct sp_errbuf *eb);
    void (*close)(struct cmd__media_store *st);
};

/** The interface; a backend embeds it as its first member. */
struct cmd__media_store {
    const struct cmd__media_store_ops *ops; /* borrowed, static */
};

/**
 * Open the filesystem backend rooted at directory @p root, which must exist. Objects live
 * at `<root>/ab/cd/<key>` where ab and cd are the key's first two hex byte pairs;
 * temporary files are `<root>/ab/cd/.tmp-<key>-XXXXXX` (mkstemp(3)) beside them.
 *
 * @param root      a directory; copied
 * @param[out] st   owned: cmd__media_store_close
 * @return 0; -ENOENT, -ENOTDIR, -EACCES if @p root is no usable directory.
 */
SP_MUST_CHECK int
cmd__media_store_fs_open(const char *root, struct cmd__media_store **st, struct sp_errbuf *eb);

/**
 * Store @p size_bytes at @p data under @p key, durably: written to a temporary file in the
 * final directory, fsync(2)ed, renamed over the final name, then the directory fsynced
 * (and the ab/ and cd/ directories' parents when this call made them). After a 0 return
 * the object survives a crash; a crash before leaves at most a temporary file, never a
 * partial object under its final name. A key that exists already is left as it is and the
 * call succeeds: identical uploads share one file.
 *
 * @param data, size_bytes  copied; the caller keeps ownership
 * @return 0; SP_EINVAL for a malformed key; -ENOSPC or -EDQUOT if the disk or quota is
 *         full; -EACCES, -EPERM or -EROFS if the store may not be written; other -errno on
 *         I/O failure. No temporary file is left on any failure.
 */
SP_MUST_CHECK int cmd__media_store_put(struct cmd__media_store *st,
                                       const char *key,
                                       const void *data,
                                       size_t size_bytes,
                                       struct sp_errbuf *eb);

/**
 * Whether the object @p key is stored.
 * @param[out] found  true if it is
 * @return 0; SP_EINVAL for a malformed key; -errno (e.g. -EACCES) if that cannot be known.
 */
SP_MUST_CHECK int cmd__media_store_exists(struct cmd__media_store *st,
                                          const char *key,
                                          bool *found,
                                          struct sp_errbuf *eb);

/**
 * The local file of @p key, for serving with sendfile(2); the object need not exist.
 * A remote backend answers SP_ESTATE (it has no local files).
 * @param out, out_size  receives the NUL-terminated path
 * @return 0; SP_EINVAL for a malformed key; SP_ETOOBIG if @p out_size is too small.
 */
SP_MUST_CHECK int cmd__media_store_path(
    struct cmd__media_store *st, const char *key, char *out, size_t out_size, struct sp_errbuf *eb);

/**
 * Remove the object @p key durably (the directory is fsynced); removing an absent key
 * succeeds, so a sweep can be rerun. Empty ab/cd directories are kept.
 * @return 0; SP_EINVAL for a malformed key; -EACCES, -EPERM, -EROFS or other -errno.
 */
SP_MUST_CHECK int
cmd__media_store_remove(struct cmd__media_store *st, const char *key, struct sp_errbuf *eb);

/**
 * Remove temporary files that crashed puts left, those last modified at least
 * @p min_age_s seconds ago (0 = all; only 0 while no put can be running, e.g. at start).
 * @param[out] n_removed  temporary files removed (may be NULL)
 * @return 0; -errno if a directory could not be read or a file removed (the sweep stops;
 *         it can be rerun).
 */
SP_MUST_CHECK int cmd__media_store_sweep_tmp(struct cmd__media_store *st,
                                             long min_age_s,
                                             size_t *n_removed,
                                             struct sp_errbuf *eb);

/** Close @p st and free it; NULL is a no-op. */
void cmd__media_store_close(struct cmd__media_store *st);

/** Whether @p key is a well-formed key (see the top of this file). */
bool cmd__media_key_valid(const char *key);

#endif
