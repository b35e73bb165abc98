/* Unit tests for the embedded LMDB event log: order, durability across reopen, checksums,
 * the single-writer lock, a reader tailing from another process, the size cap, stale
 * reader slots of killed readers, and the consumer API on the embedded log. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "es/consumer.h"
#include "es/lmdb_ahead.h"
#include "es/log.h"
#include "sp/config.h"

#include "sp/banned.h"

#define MAP_BYTES    ((size_t)16 << 20)
#define MAX_EVENT    4096
#define TAIL_BATCHES 5
#define TAIL_BATCH   2

static int setup_dir(void **state)
{
    char *dir = strdup("/tmp/es-test-log-XXXXXX");

    if (dir == NULL || mkdtemp(dir) == NULL) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

/* Remove the log directory: it holds only files (data.mdb, lock.mdb, writer.lock). */
static int teardown_dir(void **state)
{
    char *dir = *state;
    char path[512];
    struct dirent *de;
    DIR *d = opendir(dir);
    int rc = 0;

    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        rc |= unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rc |= rmdir(dir);
    free(dir);
    return rc;
}

/* A RecipeUpdated event of stream recipe-73 at @p version, with non-ASCII text. */
static void make_event(struct es_event *ev, int64_t version, size_t pad_bytes)
{
    char *pad = calloc(1, pad_bytes + 1);

    assert_non_null(pad);
    memset(pad, 'x', pad_bytes);
    es_event_init(ev);
    assert_int_equal(es_event_make(ev, "RecipeUpdated", "recipe-73", version, "42", NULL, NULL,
                                   json_pack("{s:s, s:I, s:s}", "title", "crème brûlée 焦糖布丁",
                                             "n", (json_int_t)version, "description", pad)),
                     0);
    free(pad);
}

/* Append events with stream versions first_version.. as one batch. */
static int append_batch(struct es_log *log,
                        int64_t first_version,
                        size_t n,
                        size_t pad_bytes,
                        struct es_position *pos,
                        struct sp_errbuf *eb)
{
    struct es_event evs[8];
    const struct es_event *ptrs[8];
    int rc;

    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        make_event(&evs[i], first_version + (int64_t)i, pad_bytes);
        ptrs[i] = &evs[i];
    }
    rc = es_log_append(log, ptrs, n, pos, eb);
    for (size_t i = 0; i < n; i++)
        es_event_release(&evs[i]);
    return rc;
}

struct collect {
    int64_t next_expected; /* offset the next record must have */
    int corrupt;           /* records with status SP_ECORRUPT */
    int ok;                /* records decoded and checked */
    char error[200];       /* last corruption message */
};

/* Record callback: offsets contiguous; stream version = offset + 1; data intact. */
static int collect_cb(const struct es_log_record *rec, void *ud)
{
    struct collect *c = ud;
    struct es_event ev;
    struct sp_errbuf eb = {{0}, {0}};
    int rc;

    if (rec->pos.partition != 0 || rec->pos.offset != c->next_expected)
        return 1;
    c->next_expected++;
    es_event_init(&ev);
    rc = es_log_record_decode(rec, &ev, &eb);
    if (rec->status == SP_ECORRUPT) {
        c->corrupt++;
        snprintf(c->error, sizeof(c->error), "%s", rec->error);
        return rc == SP_ECORRUPT && strcmp(eb.msg, rec->error) == 0 ? 0 : 2;
    }
    if (rc != 0 || ev.stream_version != rec->pos.offset + 1 || ev.pos.offset != rec->pos.offset ||
        strcmp(json_string_value(json_object_get(ev.data, "title")), "crème brûlée 焦糖布丁") != 0)
        rc = 3;
    else
        c->ok++;
    es_event_release(&ev);
    return rc;
}

static void read_all(struct es_log *log, int64_t from, struct collect *c, int64_t *next)
{
    struct sp_errbuf eb = {{0}, {0}};

    memset(c, 0, sizeof(*c));
    c->next_expected = from;
    assert_int_equal(es_log_read(log, 0, from, SIZE_MAX, collect_cb, c, next, &eb), 0);
}

static void test_append_read_reopen(void **state)
{
    const char *dir = *state;
    struct es_log *log;
    struct es_position pos[3];
    struct sp_errbuf eb = {{0}, {0}};
    struct collect c;
    int64_t end, next;

    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(es_log_partitions(log), 1);
    assert_int_equal(es_log_end(log, 0, &end, &eb), 0);
    assert_int_equal(end, 0);
    assert_int_equal(append_batch(log, 1, 3, 10, pos, &eb), 0);
    assert_int_equal(pos[0].partition, 0);
    assert_int_equal(pos[0].offset, 0);
    assert_int_equal(pos[2].offset, 2);
    assert_int_equal(append_batch(log, 4, 1, 10, pos, &eb), 0);
    assert_int_equal(pos[0].offset, 3);
    assert_int_equal(append_batch(log, 5, 2, 10, NULL, &eb), 0);

    read_all(log, 0, &c, &next);
    assert_int_equal(c.ok, 6);
    assert_int_equal(next, 6);
    read_all(log, 4, &c, &next); /* from the middle */
    assert_int_equal(c.ok, 2);
    assert_int_equal(next, 6);
    memset(&c, 0, sizeof(c));
    c.next_expected = 1;
    assert_int_equal(es_log_read(log, 0, 1, 2, collect_cb, &c, &next, &eb), 0); /* max */
    assert_int_equal(c.ok, 2);
    assert_int_equal(next, 3);
    assert_int_equal(es_log_read(log, 1, 0, 10, collect_cb, &c, &next, &eb), SP_EINVAL);
    es_log_close(log);

    /* reopen as writer: everything kept, appends continue */
    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(es_log_end(log, 0, &end, &eb), 0);
    assert_int_equal(end, 6);
    assert_int_equal(append_batch(log, 7, 1, 10, pos, &eb), 0);
    assert_int_equal(pos[0].offset, 6);
    es_log_close(log);

    /* and as reader */
    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_READER, &log, &eb), 0);
    read_all(log, 0, &c, &next);
    assert_int_equal(c.ok, 7);
    assert_int_equal(es_log_append(log, NULL, 0, NULL, &eb), SP_ESTATE);
    es_log_close(log);
}

/* Bytes of data.mdb in use (through its last page) and its size, read with raw LMDB. */
static void data_file_sizes(const char *dir, int64_t *used, int64_t *size)
{
    MDB_env *env;
    MDB_envinfo info;
    MDB_stat st;
    char path[512];
    struct stat sb;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
    assert_int_equal(mdb_env_info(env, &info), 0);
    assert_int_equal(mdb_env_stat(env, &st), 0);
    *used = ((int64_t)info.me_last_pgno + 1) * (int64_t)st.ms_psize;
    mdb_env_close(env);
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    assert_int_equal(stat(path, &sb), 0);
    *size = (int64_t)sb.st_size;
}

/* The bytes of data.mdb from @p from to @p to are zeros. */
static void assert_zeros(const char *dir, int64_t from, int64_t to)
{
    char path[512], buf[65536];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)from, SEEK_SET), 0);
    for (int64_t at = from; at < to;) {
        size_t want = to - at < (int64_t)sizeof(buf) ? (size_t)(to - at) : sizeof(buf);
        assert_int_equal(fread(buf, 1, want, f), want);
        for (size_t i = 0; i < want; i++)
            assert_int_equal(buf[i], 0);
        at += (int64_t)want;
    }
    fclose(f);
}

/*
 * The writer keeps zeros written 2 to 4 MB past the last page in use (es_lmdb_write_ahead),
 * never past the map size, and what it appends there reads back.
 */
static void test_log_writes_ahead(void **state)
{
    const char *dir = *state;
    const int64_t chunk = (int64_t)2 << 20;
    struct es_log *log;
    struct sp_errbuf eb = {{0}, {0}};
    struct collect c;
    int64_t used, size, next, version = 1;

    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(append_batch(log, version, 1, 10, NULL, &eb), 0);
    version++;
    es_log_close(log);
    data_file_sizes(dir, &used, &size);
    assert_true(size >= used + chunk && size <= used + 2 * chunk);
    assert_zeros(dir, used, size);

    /* about 13 MB of events in a 16 MB map: the zeros stop at the map's end */
    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    for (int b = 0; b < 400; b++, version += 8)
        assert_int_equal(append_batch(log, version, 8, 2500, NULL, &eb), 0);
    read_all(log, 0, &c, &next);
    assert_int_equal(c.ok, version - 1);
    assert_int_equal(c.corrupt, 0);
    es_log_close(log);
    data_file_sizes(dir, &used, &size);
    assert_true(used > (int64_t)MAP_BYTES - 2 * chunk);
    assert_int_equal(size, (int64_t)MAP_BYTES);
    assert_zeros(dir, used, size);
}

/* es_lmdb_write_ahead on a plain environment: 1-2 chunks ahead, idle while enough is, off
 * at -1, and the data stays readable. */
static void test_write_ahead_raw_env(void **state)
{
    const char *dir = *state;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    static char value[3000];
    char key[16];
    MDB_val k, v = {sizeof(value), value};
    int64_t ahead, used, size, before;

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_mapsize(env, MAP_BYTES), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    ahead = es_lmdb_file_size(env);
    assert_true(ahead >= 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 1000; i++) { /* about 4 MB: past the first chunks */
            memset(value, 'a' + round, sizeof(value));
            snprintf(key, sizeof(key), "%d-%05d", round, i);
            k.mv_size = strlen(key);
            k.mv_data = key;
            assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
        }
        assert_int_equal(mdb_txn_commit(txn), 0);
        es_lmdb_write_ahead(env, &ahead, "test env");
        mdb_env_close(env);
        data_file_sizes(dir, &used, &size);
        assert_int_equal(size, ahead);
        assert_true(size >= used + ES_LMDB_AHEAD_CHUNK && size <= used + 2 * ES_LMDB_AHEAD_CHUNK);
        assert_zeros(dir, used, size);
        assert_int_equal(mdb_env_create(&env), 0);
        assert_int_equal(mdb_env_set_mapsize(env, MAP_BYTES), 0);
        assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
        before = ahead;
        es_lmdb_write_ahead(env, &ahead, "test env"); /* enough ahead: nothing to do */
        assert_int_equal(ahead, before);
        assert_int_equal(es_lmdb_file_size(env), before);
        assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
        assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    }
    /* what was written before the zeros reads back */
    snprintf(key, sizeof(key), "0-00999");
    k.mv_size = strlen(key);
    k.mv_data = key;
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    assert_int_equal(v.mv_size, sizeof(value));
    assert_int_equal(((const char *)v.mv_data)[0], 'a');
    mdb_txn_abort(txn);
    ahead = -1; /* off: writes nothing */
    before = es_lmdb_file_size(env);
    es_lmdb_write_ahead(env, &ahead, "test env");
    assert_int_equal(ahead, -1);
    assert_int_equal(es_lmdb_file_size(env), before);
    mdb_env_close(env);
}

/* Overwrite one stored value's bytes through a raw LMDB write, keeping its checksum. */
static void corrupt_record(const char *dir, int64_t offset)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t key[8];
    MDB_val k = {sizeof(key), key}, v;
    char key_writer[] = "writer";
    char *copy;

    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)((uint64_t)offset >> (8 * (7 - i)));
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_set_mapsize(env, MAP_BYTES), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "log", 0, &dbi), 0);
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    copy = malloc(v.mv_size);
    assert_non_null(copy);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size - 3] ^= 0x01; /* flip one bit inside the JSON */
    v.mv_data = copy;
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    free(copy);

    /* the writer recorded who it was */
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    k.mv_data = key_writer;
    k.mv_size = strlen(key_writer);
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    copy = strndup(v.mv_data, v.mv_size);
    assert_non_null(strstr(copy, "\"pid\":"));
    free(copy);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

static void test_corrupt_record(void **state)
{
    const char *dir = *state;
    struct es_log *log;
    struct sp_errbuf eb = {{0}, {0}};
    struct collect c;
    int64_t next;

    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(append_batch(log, 1, 3, 10, NULL, &eb), 0);
    es_log_close(log);
    corrupt_record(dir, 1);

    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_READER, &log, &eb), 0);
    read_all(log, 0, &c, &next); /* passed with status SP_ECORRUPT, not skipped */
    assert_int_equal(c.ok, 2);
    assert_int_equal(c.corrupt, 1);
    assert_int_equal(next, 3);
    assert_non_null(strstr(c.error, "checksum mismatch at offset 1: stored "));
    assert_non_null(strstr(c.error, " computed "));
    es_log_close(log);
}

static void test_second_writer(void **state)
{
    const char *dir = *state;
    struct es_log *log, *other = NULL;
    struct sp_errbuf eb = {{0}, {0}};

    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &other, &eb),
                     SP_ESTATE);
    assert_null(other);
    assert_non_null(strstr(eb.msg, "already has a writer"));
    es_log_close(log);
    /* the lock goes with the writer */
    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &other, &eb), 0);
    es_log_close(other);
}

static void test_reader_missing_and_wait_timeout(void **state)
{
    const char *dir = *state;
    struct es_log *log = NULL;
    struct sp_errbuf eb = {{0}, {0}};

    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_READER, &log, &eb),
                     SP_ENOTFOUND);
    assert_null(log);
    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(es_log_wait(log, 0, 0, 20, &eb), SP_ETIMEDOUT);
    assert_int_equal(append_batch(log, 1, 1, 10, NULL, &eb), 0);
    assert_int_equal(es_log_wait(log, 0, 0, 20, &eb), 0);
    es_log_close(log);
}

static void test_max_event_bytes(void **state)
{
    const char *dir = *state;
    struct es_log *log;
    struct sp_errbuf eb = {{0}, {0}};
    struct es_event evs[2];
    const struct es_event *ptrs[2] = {&evs[0], &evs[1]};
    int64_t end;

    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    make_event(&evs[0], 1, 10);
    make_event(&evs[1], 2, MAX_EVENT); /* the envelope alone takes it over the cap */
    assert_int_equal(es_log_append(log, ptrs, 2, NULL, &eb), SP_ETOOBIG);
    assert_string_equal(eb.field, "log.max_event_bytes");
    assert_int_equal(es_log_end(log, 0, &end, &eb), 0);
    assert_int_equal(end, 0); /* nothing appended, not even the first */
    es_event_release(&evs[0]);
    es_event_release(&evs[1]);
    es_log_close(log);
}

/* Child: open a reader, tell the parent, then tail every record the parent appends. */
static int tail_child(const char *dir, int ready_fd)
{
    struct es_log *log;
    struct sp_errbuf eb = {{0}, {0}};
    struct collect c;
    int64_t off = 0, end = 0;
    int total = TAIL_BATCHES * TAIL_BATCH;

    if (es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_READER, &log, &eb) != 0)
        return 10;
    if (es_log_end(log, 0, &end, &eb) != 0 || end != 1)
        return 11;
    off = end;
    if (write(ready_fd, "r", 1) != 1)
        return 12;
    memset(&c, 0, sizeof(c));
    c.next_expected = off;
    while (off < 1 + total) {
        if (es_log_wait(log, 0, off, 10000, &eb) != 0)
            return 13;
        if (es_log_read(log, 0, off, SIZE_MAX, collect_cb, &c, &off, &eb) != 0)
            return 14;
    }
    es_log_close(log);
    return c.ok == total && c.corrupt == 0 ? 0 : 15;
}

static void test_reader_other_process(void **state)
{
    const char *dir = *state;
    struct es_log *log;
    struct sp_errbuf eb = {{0}, {0}};
    int fds[2], status = -1;
    char byte;
    pid_t pid;

    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(append_batch(log, 1, 1, 10, NULL, &eb), 0);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        _exit(tail_child(dir, fds[1]));
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &byte, 1), 1); /* the child's reader is open */
    close(fds[0]);
    for (int b = 0; b < TAIL_BATCHES; b++) {
        assert_int_equal(append_batch(log, 2 + b * TAIL_BATCH, TAIL_BATCH, 10, NULL, &eb), 0);
        usleep(2000);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    es_log_close(log);
}

/* Child: keep the log open as its writer until @p stop_fd reaches EOF. */
static int holder_child(const char *dir, int ready_fd, int stop_fd)
{
    struct es_log *log;
    struct sp_errbuf eb = {{0}, {0}};
    char byte;

    if (es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb) != 0)
        return 10;
    if (write(ready_fd, "h", 1) != 1)
        return 11;
    while (read(stop_fd, &byte, 1) > 0) {
    }
    es_log_close(log);
    return 0;
}

/* Record callback of the reader child: report, then hang inside the read transaction. */
static int hang_cb(const struct es_log_record *rec, void *ud)
{
    int fd = *(int *)ud;

    (void)rec;
    if (write(fd, "r", 1) != 1)
        return 1;
    for (;;)
        pause();
}

/* Child: open a reader and stop for good in the middle of es_log_read. */
static int hung_reader_child(const char *dir, int ready_fd)
{
    struct es_log *log;
    struct sp_errbuf eb = {{0}, {0}};
    int64_t next;

    if (es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_READER, &log, &eb) != 0)
        return 10;
    return es_log_read(log, 0, 0, 10, hang_cb, &ready_fd, &next, &eb) == 0 ? 11 : 12;
}

/* Open a reader with stderr (where sp_log writes) captured into @p out. */
static void open_reader_captured(const char *dir, char *out, size_t out_size)
{
    char path[] = "/tmp/es-test-stderr-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    struct es_log *log;
    struct sp_errbuf eb = {{0}, {0}};
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0);
    unlink(path);
    assert_int_equal(dup2(fd, 2), 2);
    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_READER, &log, &eb), 0);
    es_log_close(log);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    n = pread(fd, out, out_size - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
}

/* A reader killed with kill -9 inside a read transaction leaves a stale reader slot; the
 * next open (while another process keeps the environment open, so LMDB does not simply
 * reset its lock file) clears it and says so. */
static void test_stale_reader_cleared(void **state)
{
    const char *dir = *state;
    struct es_log *log;
    struct sp_errbuf eb = {{0}, {0}};
    int ready[2], stop[2], status = -1;
    char byte, text[4096];
    pid_t holder, reader;

    assert_int_equal(es_log_open_lmdb(dir, MAP_BYTES, MAX_EVENT, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(append_batch(log, 1, 2, 10, NULL, &eb), 0);
    es_log_close(log);
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(stop), 0);
    holder = fork();
    assert_true(holder >= 0);
    if (holder == 0) {
        close(stop[1]); /* so that the parent closing its end is EOF here */
        _exit(holder_child(dir, ready[1], stop[0]));
    }
    close(stop[0]);
    assert_int_equal(read(ready[0], &byte, 1), 1);
    reader = fork();
    assert_true(reader >= 0);
    if (reader == 0)
        _exit(hung_reader_child(dir, ready[1]));
    assert_int_equal(read(ready[0], &byte, 1), 1); /* it is inside its read transaction */
    assert_int_equal(byte, 'r');
    assert_int_equal(kill(reader, SIGKILL), 0);
    assert_int_equal(waitpid(reader, &status, 0), reader);
    assert_true(WIFSIGNALED(status));

    open_reader_captured(dir, text, sizeof(text));
    assert_non_null(strstr(text, "cleared 1 stale reader slot(s) left by dead processes"));
    open_reader_captured(dir, text, sizeof(text)); /* nothing left to clear */
    assert_null(strstr(text, "stale reader"));

    close(stop[1]);
    assert_int_equal(waitpid(holder, &status, 0), holder);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(ready[0]);
    close(ready[1]);
}

static int count_cb(const struct es_log_record *rec, void *ud)
{
    int *n = ud;

    (void)rec;
    (*n)++;
    return 0;
}

/* es_consumer_open with log.backend = lmdb: no group needed, partition 0 on first poll. */
static void test_consumer_from_config(void **state)
{
    const char *dir = *state;
    struct sp_config *cfg;
    struct es_log *log = NULL;
    struct es_consumer *c = NULL;
    struct es_consumer_opts opts = {0};
    struct sp_errbuf eb = {{0}, {0}};
    int32_t part = -1;
    int n = 0;

    assert_int_equal(sp_config_load(&cfg, NULL, &eb), 0);
    assert_int_equal(sp_config_set(cfg, "log.dir", dir, &eb), 0);
    assert_int_equal(es_consumer_open(cfg, &opts, &c, &eb), SP_ENOTFOUND); /* no log yet */
    assert_null(c);
    assert_int_equal(es_log_open(cfg, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(append_batch(log, 1, 3, 10, NULL, &eb), 0);
    es_log_close(log);
    assert_int_equal(es_consumer_open(cfg, &opts, &c, &eb), 0);
    assert_int_equal(es_consumer_poll(c, 2, 0, count_cb, &n, &eb), 0);
    assert_int_equal(n, 2);
    assert_int_equal(es_consumer_assignment(c, &part, 1), 1);
    assert_int_equal(part, 0);
    assert_int_equal(es_consumer_poll(c, 10, 0, count_cb, &n, &eb), 0);
    assert_int_equal(n, 3);
    assert_int_equal(es_consumer_poll(c, 10, 20, count_cb, &n, &eb), 0); /* nothing: no error */
    assert_int_equal(n, 3);
    assert_int_equal(es_consumer_seek(c, 0, 1, &eb), 0);
    assert_int_equal(es_consumer_poll(c, 10, 0, count_cb, &n, &eb), 0);
    assert_int_equal(n, 5);
    es_consumer_close(c);
    assert_int_equal(sp_config_set(cfg, "log.backend", "kafka", &eb), 0);
    assert_int_equal(es_consumer_open(cfg, &opts, &c, &eb), SP_EINVAL); /* kafka: group */
    assert_string_equal(eb.field, "group_id");
    sp_config_free(cfg);
}

static void test_open_from_config(void **state)
{
    const char *dir = *state;
    struct sp_config *cfg;
    struct es_log *log = NULL;
    struct sp_errbuf eb = {{0}, {0}};

    assert_int_equal(sp_config_load(&cfg, NULL, &eb), 0);
    assert_int_equal(sp_config_set(cfg, "log.dir", dir, &eb), 0);
    assert_int_equal(es_log_open(cfg, ES_LOG_WRITER, &log, &eb), 0);
    assert_int_equal(append_batch(log, 1, 1, 10, NULL, &eb), 0);
    es_log_close(log);
    log = NULL;
    /* issue 3: kafka is a backend too (test_log_contract covers it); unreachable brokers
     * are SP_EUNAVAIL within kafka.timeout_ms, and an unknown backend is rejected */
    assert_int_equal(sp_config_set(cfg, "log.backend", "kafka", &eb), 0);
    assert_int_equal(sp_config_set(cfg, "kafka.brokers", "127.0.0.1:1", &eb), 0);
    assert_int_equal(sp_config_set(cfg, "kafka.timeout_ms", "500", &eb), 0);
    assert_int_equal(es_log_open(cfg, ES_LOG_WRITER, &log, &eb), SP_EUNAVAIL);
    assert_null(log);
    assert_int_equal(sp_config_set(cfg, "log.backend", "pulsar", &eb), SP_EINVAL);
    sp_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_read_reopen, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_log_writes_ahead, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_write_ahead_raw_env, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_corrupt_record, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_second_writer, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_reader_missing_and_wait_timeout, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_max_event_bytes, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_reader_other_process, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_stale_reader_cleared, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_open_from_config, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_consumer_from_config, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
