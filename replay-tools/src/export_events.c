/* export events: the events of the log, one row each, in log order, secrets removed. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "export.h"
#include "proj/analytics.h"
#include "replay/replay.h"
#include "sp/alloc.h"
#include "sp/time.h"

#include "sp/banned.h"

/*
 * Decoding (jansson) is most of the cost, so records are decoded and formatted by
 * worker threads, a chunk of the log each, into slots of a ring; the main thread writes
 * the chunks in log order, so the output is the same bytes whatever the thread count.
 */
#define CHUNK_RECORDS    1024 /* offsets per chunk */
#define MAX_WORKERS      8
#define SLOTS_PER_WORKER 2 /* chunks formatted ahead of the writer, per worker */

/*
 * Payload fields that never leave the log, whatever the event type: the catalogue
 * (schemas/events) has no notion of a secret field, so this list is the one place that
 * names them. password_hash (UserRegistered, PasswordChanged): an argon2id PHC string;
 * refresh_hash (SessionStarted, SessionRefreshed): the SHA-256 of a refresh token;
 * token_hash (DeviceSubscribed, DESIGN.md): the hash of a push token. A new secret field
 * must be added here.
 */
static const char *const secret_fields[] = {"password_hash", "refresh_hash", "token_hash"};

static const char *const columns[] = {
    "partition", "offset", "stream", "stream_version", "type", "time", "actor", "id", "data"};
#define NCOLUMNS (sizeof(columns) / sizeof(columns[0]))

/* One chunk of the log being formatted, or formatted and waiting for the writer. */
struct ev_slot {
    const struct replay__export_opts *o;
    struct replay__table rows; /* in memory */
    struct sp_buf notes;       /* "skipping ..." lines for stderr, in order */
    int64_t end;               /* offsets below this belong to the chunk */
    int64_t read, skipped;     /* records of the chunk read; of them, skipped */
    int rc;                    /* es_log_read's error, or a row's */
    struct sp_errbuf eb;
    bool done; /* formatted: the writer's turn (under the lock) */
};

struct ev_export {
    const struct replay__export_opts *o;
    struct es_log *log;
    const int64_t *ends; /* the bound of each partition */
    int32_t nparts;
    int64_t nchunks;
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* a slot was formatted, or freed by the writer */
    int64_t next_claim;    /* the next chunk a worker takes (under mu) */
    int64_t next_write;    /* the next chunk the writer writes (under mu) */
    bool stop;             /* under mu */
    struct ev_slot *slots; /* chunk i is formatted in slots[i % nslots] */
    size_t nslots;
    struct replay__table t; /* the output */
    struct replay__progress pg;
    int64_t done, total, skipped; /* records read / to read, about / skipped (writer) */
};

/* The partition and the offsets [*from, *to) of chunk @p i. */
static void
chunk_range(const struct ev_export *x, int64_t i, int32_t *p, int64_t *from, int64_t *to)
{
    for (*p = 0; *p < x->nparts; (*p)++) {
        int64_t n = (x->ends[*p] + CHUNK_RECORDS - 1) / CHUNK_RECORDS;
        if (i < n)
            break;
        i -= n;
    }
    *from = i * CHUNK_RECORDS;
    *to = *from + CHUNK_RECORDS < x->ends[*p] ? *from + CHUNK_RECORDS : x->ends[*p];
}

static bool keep(const struct replay__export_opts *o, const struct es_event *ev)
{
    int32_t day;

    if (o->has_types && (ev->type_id == ES_TYPE_UNKNOWN || !o->types[ev->type_id]))
        return false;
    day = proj_analytics_day_of(ev->time_us);
    return (!o->has_from || day >= o->from) && (!o->has_to || day <= o->to);
}

static int write_row(struct ev_slot *s, const struct es_event *ev)
{
    struct replay__table *t = &s->rows;
    char time[32];

    for (size_t i = 0; i < sizeof(secret_fields) / sizeof(secret_fields[0]); i++)
        json_object_del(ev->data, secret_fields[i]);
    replay__table_int(t, ev->pos.partition);
    replay__table_int(t, ev->pos.offset);
    replay__table_cstr(t, ev->stream);
    replay__table_int(t, ev->stream_version);
    replay__table_cstr(t, ev->type);
    replay__table_cstr(t, sp_time_format_rfc3339(ev->time_us, time, sizeof(time)));
    replay__table_cstr(t, ev->actor);
    replay__table_cstr(t, ev->id);
    replay__table_json(t, ev->data);
    return replay__table_end_row(t, &s->eb);
}

static int format_record(const struct es_log_record *rec, void *ud)
{
    struct ev_slot *s = ud;
    struct sp_errbuf eb = {{0}, {0}};
    struct es_event ev;
    int rc = 0;

    if (rec->pos.offset >= s->end)
        return 1;
    s->read++;
    es_event_init(&ev);
    if (es_log_record_decode(rec, &ev, &eb) != 0) {
        s->skipped++;
        rc = sp_buf_addf(&s->notes, "stockpot-replay: skipping %d:%lld: %s\n",
                         (int)rec->pos.partition, (long long)rec->pos.offset,
                         rec->status != 0 ? (rec->error ? rec->error : "checksum mismatch")
                                          : eb.msg);
    } else if (keep(s->o, &ev)) {
        rc = write_row(s, &ev);
    }
    es_event_release(&ev);
    if (rc != 0 && s->rc == 0)
        s->rc = rc;
    return rc != 0 || replay__export_interrupted() ? 2 : 0;
}

/* Format chunk @p i into @p s. */
static void format_chunk(struct ev_export *x, int64_t i, struct ev_slot *s)
{
    int32_t p;
    int64_t from, next;
    int rc;

    chunk_range(x, i, &p, &from, &s->end);
    s->read = s->skipped = 0;
    s->rc = 0;
    sp_buf_reset(&s->notes);
    rc = es_log_read(x->log, p, from, (size_t)(s->end - from), format_record, s, &next, &s->eb);
    if (rc < 0 && s->rc == 0)
        s->rc = rc;
    else if (rc == 2 && s->rc == 0)
        s->rc = sp_err_set(&s->eb, SP_ESTATE, NULL, "interrupted");
}

static void *worker(void *arg)
{
    struct ev_export *x = arg;

    pthread_mutex_lock(&x->mu);
    while (!x->stop && x->next_claim < x->nchunks) {
        int64_t i = x->next_claim;
        struct ev_slot *s = &x->slots[i % (int64_t)x->nslots];
        if (i >= x->next_write + (int64_t)x->nslots) { /* its slot is not written yet */
            pthread_cond_wait(&x->cv, &x->mu);
            continue;
        }
        x->next_claim++;
        pthread_mutex_unlock(&x->mu);
        format_chunk(x, i, s);
        pthread_mutex_lock(&x->mu);
        s->done = true;
        pthread_cond_broadcast(&x->cv);
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

/* Write chunk @p i once formatted; frees its slot. */
static int write_chunk(struct ev_export *x, int64_t i)
{
    struct ev_slot *s = &x->slots[i % (int64_t)x->nslots];
    struct sp_errbuf eb = {{0}, {0}};
    int rc;

    pthread_mutex_lock(&x->mu);
    while (!s->done)
        pthread_cond_wait(&x->cv, &x->mu);
    pthread_mutex_unlock(&x->mu);
    fputs(s->notes.data, stderr);
    x->done += s->read;
    x->skipped += s->skipped;
    if ((rc = s->rc) != 0)
        replay__error("export events: %s", s->eb.msg);
    else if ((rc = replay__table_append(&x->t, &s->rows, &eb)) != 0)
        replay__error("export events: %s", eb.msg);
    replay__progress_update(&x->pg, x->done, x->total);
    pthread_mutex_lock(&x->mu);
    s->done = false;
    x->next_write++;
    if (rc != 0 || replay__export_interrupted())
        x->stop = true;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    return rc != 0 ? rc : replay__export_interrupted() ? SP_ESTATE : 0;
}

static size_t worker_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (size_t)n;
}

/* Every chunk, formatted by the workers, written here in order. */
static int scan(struct ev_export *x)
{
    pthread_t threads[MAX_WORKERS];
    size_t nthreads = worker_count(), started = 0;
    int rc = 0;

    x->nslots = nthreads * SLOTS_PER_WORKER;
    x->slots = sp_xcalloc(x->nslots, sizeof(*x->slots));
    for (size_t k = 0; k < x->nslots; k++) {
        x->slots[k].o = x->o;
        replay__table_open_mem(&x->slots[k].rows, x->o->fmt, columns, NCOLUMNS);
        sp_buf_init(&x->slots[k].notes, 0);
    }
    for (; started < nthreads; started++)
        if (pthread_create(&threads[started], NULL, worker, x) != 0)
            break;
    if (started == 0) {
        replay__error("export events: could not start a thread");
        rc = REPLAY_EXIT_FAIL;
    }
    for (int64_t i = 0; rc == 0 && i < x->nchunks; i++)
        rc = write_chunk(x, i);
    if (rc == SP_ESTATE)
        replay__error("export events: interrupted");
    pthread_mutex_lock(&x->mu);
    x->stop = true;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    for (size_t k = 0; k < started; k++)
        pthread_join(threads[k], NULL);
    for (size_t k = 0; k < x->nslots; k++) {
        replay__table_abort(&x->slots[k].rows);
        sp_buf_release(&x->slots[k].notes);
    }
    free(x->slots);
    return rc == 0 ? 0 : REPLAY_EXIT_FAIL;
}

/* Whether @p path (NULL: stdout) is a regular file: only one gets a manifest (a device
 * or a pipe has no bytes to vouch for), and only one is removed after a failure. */
static bool is_regular(const char *path)
{
    struct stat st;
    return path != NULL && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* An existing FILE (or its manifest) is only replaced with --force. */
static int check_out(const struct replay__export_opts *o, const char *manifest)
{
    struct stat st;

    if (o->out == NULL || o->force)
        return 0;
    if (stat(o->out, &st) == 0 || stat(manifest, &st) == 0) {
        replay__error("export events: \"%s\" exists (--force replaces it)",
                      stat(o->out, &st) == 0 ? o->out : manifest);
        return REPLAY_EXIT_FAIL;
    }
    return 0;
}

static int write_manifest(const struct ev_export *x,
                          const char *path,
                          const int64_t *ends,
                          int32_t nparts,
                          int64_t rows,
                          const char *sha)
{
    const struct replay__export_opts *o = x->o;
    const char *base = strrchr(o->out, '/') != NULL ? strrchr(o->out, '/') + 1 : o->out;
    char from[16], to[16];
    json_t *types = json_null(), *files = json_array(), *m;
    int rc;

    if (o->has_types) {
        types = json_array();
        for (int t = 0; t < ES_TYPE__COUNT; t++)
            if (o->types[t])
                json_array_append_new(types, json_string(es_type_name((enum es_type)t)));
    }
    replay__manifest_file(files, base, rows, sha);
    m = json_pack("{s:s,s:s,s:s?,s:s?,s:o,s:o,s:I,s:o}", "format", REPLAY_EXPORT_FORMAT, "kind",
                  "events", "from",
                  o->has_from ? proj_analytics_date_format(o->from, from, sizeof(from)) : NULL,
                  "to", o->has_to ? proj_analytics_date_format(o->to, to, sizeof(to)) : NULL,
                  "types", types, "position", replay__position_json(ends, nparts), "skipped",
                  (json_int_t)x->skipped, "files", files);
    rc = replay__manifest_write(path, m);
    json_decref(m);
    return rc == 0 ? 0 : REPLAY_EXIT_FAIL;
}

int replay__export_events(const struct replay__export_opts *o)
{
    struct ev_export x = {.o = o, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct sp_errbuf eb = {{0}, {0}};
    char manifest[PATH_MAX], sha[65];
    int64_t *ends = NULL, rows = 0;
    int rc;

    snprintf(manifest, sizeof(manifest), "%s.manifest.json", o->out != NULL ? o->out : "-");
    if ((rc = check_out(o, manifest)) != 0)
        return rc;
    if (es_log_open(o->cfg, ES_LOG_READER, &x.log, &eb) != 0) {
        replay__error("could not open the event log \"%s\": %s", sp_config_str(o->cfg, "log.dir"),
                      eb.msg);
        return REPLAY_EXIT_FAIL;
    }
    if ((rc = replay__export_bounds(o, x.log, &ends, &x.nparts)) != 0)
        goto out_close_log;
    x.ends = ends;
    for (int32_t p = 0; p < x.nparts; p++) {
        x.total += ends[p];
        x.nchunks += (ends[p] + CHUNK_RECORDS - 1) / CHUNK_RECORDS;
    }
    if (o->out != NULL)
        unlink(manifest); /* --force: the old one must not vouch for the new file */
    if (replay__table_open(&x.t, o->out, o->fmt, columns, NCOLUMNS, &eb) != 0) {
        replay__error("export events: %s", eb.msg);
        replay__table_abort(&x.t);
        rc = REPLAY_EXIT_FAIL;
        goto out_close_log;
    }
    replay__progress_init(&x.pg, "exported");
    x.pg.on = x.pg.on && (o->out != NULL || isatty(STDOUT_FILENO) == 0);
    rc = scan(&x);
    replay__progress_end(&x.pg);
    if (rc != 0) {
        replay__table_abort(&x.t);
    } else if (replay__table_close(&x.t, sha, &rows, &eb) != 0) {
        replay__error("export events: %s", eb.msg);
        rc = REPLAY_EXIT_FAIL;
    } else if (is_regular(o->out) &&
               (rc = write_manifest(&x, manifest, ends, x.nparts, rows, sha)) != 0) {
        unlink(o->out);
    }
    if (x.skipped > 0)
        replay__error("export events: %lld records skipped (corrupt or not decodable)",
                      (long long)x.skipped);
out_close_log:
    free(ends);
    es_log_close(x.log);
    return rc;
}
