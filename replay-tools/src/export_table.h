/*
 * A table written as CSV (RFC 4180) or NDJSON (one JSON object per line, RFC 8259), with
 * its SHA-256 (OpenSSL libcrypto) and row count computed on the bytes as they are written:
 * the files of `stockpot-replay export` (private to replay-tools).
 *
 * CSV: a header row of the column names, then one record per row, every line ended by
 * CRLF; a field holding a comma, a double quote, CR or LF is enclosed in double quotes
 * with its quotes doubled; a NULL value is an empty field. NDJSON: each row is a compact
 * object whose keys are the column names in column order, ended by LF; a NULL value is
 * null, ids (replay__table_id) are strings, as in every Stockpot JSON. Both: UTF-8 (an
 * invalid byte in a string becomes U+FFFD), numbers in the C locale, no trailing spaces,
 * so the same rows always give the same bytes.
 */
#ifndef REPLAY_EXPORT_TABLE_H
#define REPLAY_EXPORT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sp/buf.h"
#include "sp/err.h"

enum replay__format {
    REPLAY_FORMAT_CSV = 0,
    REPLAY_FORMAT_NDJSON = 1,
};

/** Parse "csv" | "ndjson". @return 0 or SP_EINVAL. */
int replay__format_parse(const char *s, enum replay__format *out);

/** The file name extension of @p fmt ("csv", "ndjson"). @return static. */
const char *replay__format_ext(enum replay__format fmt);

/* Bytes buffered before they are hashed and written. */
#define REPLAY_TABLE_FLUSH_BYTES ((size_t)256 * 1024)

/** A table being written; fields private to export_table.c. */
struct replay__table {
    int fd;                  /* -1 once closed, or for a table in memory */
    bool remove_on_abort;    /* path is a regular file this table created or truncated */
    char *path;              /* owned; NULL when writing to stdout or in memory */
    enum replay__format fmt; /* of every row */
    const char *const *cols; /* borrowed: ncols column names, valid until close */
    size_t ncols;
    size_t col;            /* the next cell of the row being written */
    struct sp_buf out;     /* rows not yet written */
    struct sp_buf scratch; /* a JSON value rendered for a CSV field */
    void *sha;             /* EVP_MD_CTX *, over every byte written */
    int64_t rows;          /* rows ended, the header excluded */
    int err;               /* first write failure (-errno), then every call is a no-op */
};

/**
 * Create @p path (truncating a file there) or, with @p path NULL, write to stdout; CSV
 * starts with its header row.
 * @param cols  @p ncols column names (ASCII, no character CSV or JSON would quote);
 *              borrowed until replay__table_close / _abort
 * @return 0; -errno (eb names the file) if it cannot be created.
 */
int replay__table_open(struct replay__table *t,
                       const char *path,
                       enum replay__format fmt,
                       const char *const *cols,
                       size_t ncols,
                       struct sp_errbuf *eb);

/**
 * A table in memory: rows are only buffered (no header), to be moved into a file's table
 * with replay__table_append, e.g. rows formatted on another thread. Release with
 * replay__table_abort.
 */
void replay__table_open_mem(struct replay__table *t,
                            enum replay__format fmt,
                            const char *const *cols,
                            size_t ncols);

/**
 * Move the rows buffered in the memory table @p rows (same format and columns) to the end
 * of @p t, as if they were written there; @p rows is left empty, ready for more.
 * @return 0; -errno if writing failed (eb says where).
 */
int replay__table_append(struct replay__table *t, struct replay__table *rows, struct sp_errbuf *eb);

/** A string cell of @p len bytes; @p s NULL is the null value. */
void replay__table_str(struct replay__table *t, const char *s, size_t len);

/** A NUL-terminated string cell; NULL is the null value. */
void replay__table_cstr(struct replay__table *t, const char *s);

/** An integer cell. */
void replay__table_int(struct replay__table *t, int64_t v);

/** An unsigned integer cell. */
void replay__table_uint(struct replay__table *t, uint64_t v);

/** An id cell: a JSON string of the decimal number (ids are strings in Stockpot JSON),
 *  bare in CSV; 0 (no id) is the null value. */
void replay__table_id(struct replay__table *t, int64_t id);

/** A number with exactly 6 decimals (printf "%.6f"), e.g. a share. */
void replay__table_fixed6(struct replay__table *t, double v);

/** A JSON value cell, compact (JSON_COMPACT, keys in their order): NDJSON embeds it, CSV
 *  holds its text as one field. @p v is borrowed. */
void replay__table_json(struct replay__table *t, const json_t *v);

/**
 * End the row (every column must have had its cell); writes out what is buffered once it
 * passes REPLAY_TABLE_FLUSH_BYTES.
 * @return 0; -errno if writing failed (eb says where).
 */
int replay__table_end_row(struct replay__table *t, struct sp_errbuf *eb);

/**
 * Write what is left and close the file (stdout is flushed, not closed).
 * @param[out] sha256_hex  ≥ 65 bytes: the SHA-256 of every byte written, lower-case hex
 * @param[out] rows        rows written, the header excluded
 * @return 0; -errno if a write or the close failed (the file is then removed).
 */
int replay__table_close(struct replay__table *t,
                        char *sha256_hex,
                        int64_t *rows,
                        struct sp_errbuf *eb);

/** Give up: close the file and remove it if this table created or truncated a regular
 *  file there (never stdout, a device or a pipe). Safe after close and after a failed
 *  open (which always initialises @p t). */
void replay__table_abort(struct replay__table *t);

#endif
