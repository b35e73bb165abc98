/* Tables as CSV (RFC 4180) or NDJSON with their SHA-256, for stockpot-replay export. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "export_table.h"
#include "sp/alloc.h"

#include "sp/banned.h"

int replay__format_parse(const char *s, enum replay__format *out)
{
    if (s != NULL && strcmp(s, "csv") == 0)
        *out = REPLAY_FORMAT_CSV;
    else if (s != NULL && strcmp(s, "ndjson") == 0)
        *out = REPLAY_FORMAT_NDJSON;
    else
        return SP_EINVAL;
    return 0;
}

const char *replay__format_ext(enum replay__format fmt)
{
    return fmt == REPLAY_FORMAT_CSV ? "csv" : "ndjson";
}

static void fail(struct replay__table *t, int rc)
{
    if (t->err == 0)
        t->err = rc;
}

static void add(struct replay__table *t, const void *p, size_t n)
{
    int rc = sp_buf_add(&t->out, p, n);
    if (rc != 0)
        fail(t, rc);
}

/* Length of the valid UTF-8 sequence (RFC 3629) at @p s, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    size_t n = s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;

    if (n == 0 || n > avail)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) || /* overlong, UTF-16 */
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))   /* overlong, > 10FFFF */
        return 0;
    return n;
}

static bool csv_needs_quotes(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
            return true;
    return false;
}

/* A CSV field: quoted with doubled quotes when RFC 4180 asks; invalid UTF-8 -> U+FFFD. */
static void csv_field(struct replay__table *t, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    bool quote = csv_needs_quotes(s, len);
    size_t run = 0; /* start of the bytes not yet copied */

    if (quote)
        add(t, "\"", 1);
    for (size_t i = 0; i < len;) {
        size_t n = p[i] < 0x80 ? 1 : utf8_len(p + i, len - i);
        if (n == 1 && p[i] == '"') {
            add(t, p + run, i + 1 - run); /* the quote, then its double */
            run = i;
        } else if (n == 0) {
            add(t, p + run, i - run);
            add(t, "\xef\xbf\xbd", 3);
            run = i + 1;
            n = 1;
        }
        i += n;
    }
    add(t, p + run, len - run);
    if (quote)
        add(t, "\"", 1);
}

/* The separator and, in NDJSON, the key of the next cell. */
static void cell_begin(struct replay__table *t)
{
    SP_ASSERT(t->col < t->ncols);
    if (t->fmt == REPLAY_FORMAT_CSV) {
        if (t->col > 0)
            add(t, ",", 1);
    } else {
        add(t, t->col == 0 ? "{\"" : ",\"", 2);
        add(t, t->cols[t->col], strlen(t->cols[t->col]));
        add(t, "\":", 2);
    }
    t->col++;
}

/* A number or literal, the same in both formats (CSV never quotes it). */
static void cell_raw(struct replay__table *t, const char *s, size_t len)
{
    cell_begin(t);
    add(t, s, len);
}

void replay__table_str(struct replay__table *t, const char *s, size_t len)
{
    int rc = 0;

    if (s == NULL) {
        cell_raw(t, "null", t->fmt == REPLAY_FORMAT_CSV ? 0 : 4);
        return;
    }
    cell_begin(t);
    if (t->fmt == REPLAY_FORMAT_CSV) {
        csv_field(t, s, len);
        return;
    }
    add(t, "\"", 1);
    if ((rc = sp_buf_add_json_str(&t->out, s, len)) != 0)
        fail(t, rc);
    add(t, "\"", 1);
}

void replay__table_cstr(struct replay__table *t, const char *s)
{
    replay__table_str(t, s, s != NULL ? strlen(s) : 0);
}

void replay__table_int(struct replay__table *t, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);
    cell_raw(t, num, (size_t)n);
}

void replay__table_uint(struct replay__table *t, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRIu64, v);
    cell_raw(t, num, (size_t)n);
}

void replay__table_id(struct replay__table *t, int64_t id)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, id);

    if (id == 0)
        replay__table_str(t, NULL, 0);
    else if (t->fmt == REPLAY_FORMAT_CSV)
        cell_raw(t, num, (size_t)n);
    else
        replay__table_str(t, num, (size_t)n);
}

void replay__table_fixed6(struct replay__table *t, double v)
{
    char num[64];
    int n = snprintf(num, sizeof(num), "%.6f", v);
    cell_raw(t, num, (size_t)n);
}

static int dump_to_buf(const char *s, size_t len, void *ud)
{
    return sp_buf_add(ud, s, len) == 0 ? 0 : -1;
}

void replay__table_json(struct replay__table *t, const json_t *v)
{
    struct sp_buf *to = t->fmt == REPLAY_FORMAT_CSV ? &t->scratch : &t->out;

    cell_begin(t);
    sp_buf_reset(&t->scratch);
    if (json_dump_callback(v, dump_to_buf, to, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        fail(t, SP_ETOOBIG);
    else if (t->fmt == REPLAY_FORMAT_CSV)
        csv_field(t, t->scratch.data, t->scratch.len);
}

/* Hash and write what is buffered. */
static int flush(struct replay__table *t, struct sp_errbuf *eb)
{
    const char *p = t->out.data;
    size_t left = t->out.len;

    if (t->err == 0 && EVP_DigestUpdate(t->sha, p, left) != 1)
        t->err = SP_EINVAL;
    while (t->err == 0 && left > 0) {
        ssize_t n = write(t->fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            t->err = -errno;
        else {
            p += n;
            left -= (size_t)n;
        }
    }
    sp_buf_reset(&t->out);
    if (t->err != 0)
        return sp_err_set(eb, t->err, NULL, "could not write \"%s\": %s",
                          t->path ? t->path : "stdout", sp_strerror(t->err));
    return 0;
}

int replay__table_open(struct replay__table *t,
                       const char *path,
                       enum replay__format fmt,
                       const char *const *cols,
                       size_t ncols,
                       struct sp_errbuf *eb)
{
    struct stat st;

    replay__table_open_mem(t, fmt, cols, ncols);
    t->sha = EVP_MD_CTX_new();
    if (t->sha == NULL || EVP_DigestInit_ex(t->sha, EVP_sha256(), NULL) != 1)
        return sp_err_set(eb, SP_EINVAL, NULL, "could not start a SHA-256 (libcrypto)");
    if (path == NULL) {
        t->fd = STDOUT_FILENO;
    } else {
        t->path = sp_xstrdup(path);
        t->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (t->fd < 0)
            return sp_err_set(eb, -errno, NULL, "could not create \"%s\": %s", path,
                              strerror(errno));
        t->remove_on_abort = fstat(t->fd, &st) == 0 && S_ISREG(st.st_mode);
    }
    if (fmt == REPLAY_FORMAT_CSV) {
        for (size_t i = 0; i < ncols; i++) {
            if (i > 0)
                add(t, ",", 1);
            add(t, cols[i], strlen(cols[i]));
        }
        add(t, "\r\n", 2);
    }
    return 0;
}

int replay__table_end_row(struct replay__table *t, struct sp_errbuf *eb)
{
    SP_ASSERT(t->col == t->ncols);
    if (t->fmt == REPLAY_FORMAT_CSV)
        add(t, "\r\n", 2);
    else
        add(t, "}\n", 2);
    t->col = 0;
    t->rows++;
    if (t->sha == NULL) /* in memory */
        return t->err == 0 ? 0 : sp_err_set(eb, t->err, NULL, "could not format a row");
    if (t->err != 0 || t->out.len >= REPLAY_TABLE_FLUSH_BYTES)
        return flush(t, eb);
    return 0;
}

void replay__table_open_mem(struct replay__table *t,
                            enum replay__format fmt,
                            const char *const *cols,
                            size_t ncols)
{
    memset(t, 0, sizeof(*t));
    t->fd = -1;
    t->fmt = fmt;
    t->cols = cols;
    t->ncols = ncols;
    sp_buf_init(&t->out, 0);
    sp_buf_init(&t->scratch, 0);
}

int replay__table_append(struct replay__table *t, struct replay__table *rows, struct sp_errbuf *eb)
{
    SP_ASSERT(rows->sha == NULL && rows->fmt == t->fmt && rows->col == 0);
    if (rows->err != 0)
        fail(t, rows->err);
    add(t, rows->out.data, rows->out.len);
    t->rows += rows->rows;
    sp_buf_reset(&rows->out);
    rows->rows = 0;
    if (t->err != 0 || t->out.len >= REPLAY_TABLE_FLUSH_BYTES)
        return flush(t, eb);
    return 0;
}

static void release(struct replay__table *t)
{
    sp_buf_release(&t->out);
    sp_buf_release(&t->scratch);
    EVP_MD_CTX_free(t->sha);
    t->sha = NULL;
    free(t->path);
    t->path = NULL;
}

int replay__table_close(struct replay__table *t,
                        char *sha256_hex,
                        int64_t *rows,
                        struct sp_errbuf *eb)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    int rc = flush(t, eb);

    if (rc == 0 && EVP_DigestFinal_ex(t->sha, md, &md_len) != 1)
        rc = sp_err_set(eb, SP_EINVAL, NULL, "could not finish a SHA-256 (libcrypto)");
    if (t->path != NULL) { /* stdout stays open: the caller's */
        int crc = close(t->fd);
        int err = errno;
        t->fd = -1;
        if (rc == 0 && crc != 0)
            rc = sp_err_set(eb, -err, NULL, "could not write \"%s\": %s", t->path, strerror(err));
    }
    if (rc != 0) {
        replay__table_abort(t);
        return rc;
    }
    for (unsigned i = 0; i < md_len; i++)
        snprintf(sha256_hex + (size_t)2 * i, 3, "%02x", md[i]);
    *rows = t->rows;
    release(t);
    return 0;
}

void replay__table_abort(struct replay__table *t)
{
    if (t->path != NULL) {
        if (t->fd >= 0)
            close(t->fd);
        if (t->remove_on_abort)
            unlink(t->path);
    }
    t->fd = -1;
    release(t);
}
