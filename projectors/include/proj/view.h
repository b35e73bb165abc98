/*
 * LMDB views (DESIGN.md "Projections"): the store kind of projections whose view lives in
 * an LMDB environment of its own (the search view, the analytics view), next to the
 * PostgreSQL read models. This module owns what every such view shares: where it lives on
 * disk, its generations, its format check, its checkpoints and dead letters, its logical
 * checksum and the atomic swap of a rebuilt view. The view's own databases and their
 * encoding belong to the view's module (e.g. proj/search.h).
 *
 * On disk, a view is a directory DIR (e.g. var/views/search) holding generations
 * DIR/g<N> (each an LMDB environment: data.mdb, lock.mdb) and a symbolic link
 * DIR/current -> g<N> naming the live one. A rebuild builds g<N+1> beside the live view
 * while readers and the projector keep using g<N>, then replaces the link with rename(2),
 * which is atomic: every process that opens the view afterwards, or checks
 * proj_view_is_current, moves to the new generation; the old directory is then removed
 * (processes that still have it open keep their mapping until they close it).
 *
 * Two named databases of every generation belong to this module:
 *  - "meta": "format" -> the view's format string (e.g. "stockpot-search/1"), and
 *    "checkpoint/<partition>" -> the next offset to apply (8 bytes, little-endian),
 *    written in the same write transaction as the folds they cover, so each event is
 *    applied exactly once in effect across kill -9 and restarts;
 *  - "dead_letters": partition (4 bytes big-endian) + offset (8 bytes big-endian) ->
 *    JSON {"event_id", "event_type", "error"} of each poison event skipped.
 * A view's own databases must use other names.
 *
 * Durability: generations are opened with MDB_NOMETASYNC (a crash of the machine may lose
 * the last transactions but never breaks the environment; the checkpoint goes back with
 * them), a rebuild with MDB_NOSYNC and one forced sync before the swap.
 *
 * Threads: an open view (struct proj_view) may be used by several threads for read
 * transactions (MDB_NOTLS); write transactions from one thread at a time (LMDB's rule).
 */
#ifndef PROJ_VIEW_H
#define PROJ_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "sp/err.h"

#define PROJ_VIEW_META_DB         "meta"
#define PROJ_VIEW_DEAD_LETTERS_DB "dead_letters"
/* Named databases this module uses in every generation (add the view's own to maxdbs). */
#define PROJ_VIEW_OWN_DBS 2

/** How to open a view. */
struct proj_view_opts {
    const char *dir;       /* the view's directory, e.g. "var/views/search" */
    const char *format;    /* the code's format string, e.g. "stockpot-search/1" */
    unsigned max_dbs;      /* the view's own named databases (PROJ_VIEW_OWN_DBS is added) */
    size_t map_size_bytes; /* LMDB map size; sparse, only used pages take disk */
};

struct proj_view;

enum proj_view_mode {
    PROJ_VIEW_READ = 0,  /* MDB_RDONLY: the query API, checksums */
    PROJ_VIEW_WRITE = 1, /* the projector: creates the view if it has none */
};

/**
 * Open the live generation of a view. WRITE creates DIR, a first generation and the link
 * if DIR has none, and writes the format into a new generation's meta.
 * @param[out] out  owned; close with proj_view_close()
 * @return 0; SP_ENOTFOUND (READ) if DIR has no live generation; SP_ESTATE if the
 *         generation's stored format is not @p opts->format (eb says to rebuild the view
 *         with `stockpot-replay rebuild <name>`); -errno or SP_EDB if it cannot be opened.
 */
SP_MUST_CHECK int proj_view_open(const struct proj_view_opts *opts,
                                 enum proj_view_mode mode,
                                 struct proj_view **out,
                                 struct sp_errbuf *eb);

/** Close the view (every transaction on it must be over); NULL is a no-op. */
void proj_view_close(struct proj_view *v);

/** The LMDB environment. @return borrowed, valid until proj_view_close. */
MDB_env *proj_view_env(const struct proj_view *v);

/** The generation open, e.g. "g3". @return borrowed, valid until proj_view_close. */
const char *proj_view_generation(const struct proj_view *v);

/**
 * Whether the view's live generation is still the one @p v has open: false once a rebuild
 * swapped another one in (then close and reopen). One readlink(2), about a microsecond.
 */
bool proj_view_is_current(const struct proj_view *v);

/** The checkpoint of @p partition (0 if none is stored) in @p txn (read or write).
 *  @return 0 or SP_EDB. */
SP_MUST_CHECK int proj_view_checkpoint_get(const struct proj_view *v,
                                           MDB_txn *txn,
                                           int32_t partition,
                                           int64_t *next_offset,
                                           struct sp_errbuf *eb);

/** Store the checkpoint of @p partition in the write transaction @p txn.
 *  @return 0 or SP_EDB (MDB_MAP_FULL included: eb names it). */
SP_MUST_CHECK int proj_view_checkpoint_put(struct proj_view *v,
                                           MDB_txn *txn,
                                           int32_t partition,
                                           int64_t next_offset,
                                           struct sp_errbuf *eb);

/**
 * Every stored checkpoint, in partition order: up to @p cap (partition, next offset)
 * pairs into @p parts / @p offsets. @return the number stored (may exceed @p cap), or a
 * negative SP_EDB.
 */
int proj_view_checkpoints(const struct proj_view *v,
                          MDB_txn *txn,
                          int32_t *parts,
                          int64_t *offsets,
                          size_t cap,
                          struct sp_errbuf *eb);

/** Record a poison event in "dead_letters" in @p txn (@p event_id, @p event_type may be
 *  NULL). @return 0 or SP_EDB. */
SP_MUST_CHECK int proj_view_dead_letter_put(struct proj_view *v,
                                            MDB_txn *txn,
                                            int32_t partition,
                                            int64_t offset,
                                            const char *event_id,
                                            const char *event_type,
                                            const char *error,
                                            struct sp_errbuf *eb);

/** Number of dead letters stored. @return 0 or SP_EDB. */
SP_MUST_CHECK int proj_view_dead_letter_count(const struct proj_view *v,
                                              MDB_txn *txn,
                                              size_t *n,
                                              struct sp_errbuf *eb);

/**
 * Logical checksum of the view: XXH3-128 (xxhash) over every named database but "meta"
 * and "dead_letters", in name order, and each one's keys and values in key order (each
 * item length-prefixed), as 32 lower-case hex digits. Two views with the same contents
 * have the same checksum whatever their page layout, generation or history.
 * @param out  ≥ 33 bytes
 * @return 0 or SP_EDB.
 */
SP_MUST_CHECK int
proj_view_checksum(const struct proj_view *v, char *out, size_t out_size, struct sp_errbuf *eb);

/** Bytes the generation's data.mdb takes on disk (st_blocks). @return 0 or -errno. */
SP_MUST_CHECK int proj_view_disk_bytes(const struct proj_view *v, uint64_t *bytes);

/**
 * Start a rebuild: a new, empty generation g<N+1> beside the live one, opened for
 * writing with MDB_NOSYNC, its format written. Holds an exclusive flock on DIR/rebuild.lock
 * until commit or abort, so two rebuilds never race.
 * @param[out] out  owned by the rebuild; valid until proj_view_build_commit/abort
 * @return 0; SP_ESTATE if another rebuild runs; -errno / SP_EDB.
 */
SP_MUST_CHECK int proj_view_build_begin(const struct proj_view_opts *opts,
                                        struct proj_view **out,
                                        struct sp_errbuf *eb);

/**
 * Finish a rebuild: replace the new generation by a compacted copy (mdb_env_copy2,
 * MDB_CP_COMPACT: the free pages the batches' copy-on-write left are dropped), sync it to
 * disk, make it the live one (atomic rename of the link), remove the old generation,
 * close @p v.
 * @return 0; -errno or SP_EDB if the copy, the sync or the swap failed (then nothing
 *         changed and the new generation is removed).
 */
SP_MUST_CHECK int proj_view_build_commit(struct proj_view *v, struct sp_errbuf *eb);

/** Abandon a rebuild: close and remove the new generation; the live one is untouched. */
void proj_view_build_abort(struct proj_view *v);

#endif
