/*
 * Applying a batch of log records to a projection inside the runner's open batch: each
 * record is decoded and checked against the event catalogue, then folded by the store all
 * or nothing, ignored by type, or treated as poison (dead-lettered, or halting the
 * projection) without losing the rest of the batch; a transient error fails the whole
 * batch for a retry.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proj/runner.h"
#include "runner_impl.h"
#include "sp/alloc.h"
#include "sp/log.h"

#include "sp/banned.h"

/* Best-effort id and type of a record that did not decode, for the dead letter. */
static void
raw_id_type(const struct es_log_record *rec, char *id, size_t id_size, char *type, size_t type_size)
{
    json_t *root = json_loadb(rec->value, rec->value_len, 0, NULL);
    const char *s;

    id[0] = type[0] = '\0';
    if (root == NULL)
        return;
    if ((s = json_string_value(json_object_get(root, "id"))) != NULL)
        snprintf(id, id_size, "%s", s);
    if ((s = json_string_value(json_object_get(root, "type"))) != NULL)
        snprintf(type, type_size, "%s", s);
    json_decref(root);
}

static int dead_letter(struct proj__apply *c,
                       const struct es_log_record *rec,
                       const struct es_event *ev,
                       const char *error)
{
    char part[16], off[32], id[64], type[128];

    if (ev->type != NULL) {
        snprintf(id, sizeof(id), "%s", ev->id);
        snprintf(type, sizeof(type), "%s", ev->type);
    } else {
        raw_id_type(rec, id, sizeof(id), type, sizeof(type));
    }
    snprintf(part, sizeof(part), "%d", (int)rec->pos.partition);
    snprintf(off, sizeof(off), "%lld", (long long)rec->pos.offset);
    sp_logf(SP_LOG_WARN,
            (const char *[]){"projection", c->r->proj->name, "partition", part, "offset", off,
                             "event_type", type, "error", error, NULL},
            "poison event dead-lettered");
    return c->r->ops->dead_letter(c->r, rec, id[0] != '\0' ? id : NULL,
                                  type[0] != '\0' ? type : NULL, error, c->eb);
}

/* Decode @p rec and check it against the catalogue; sets *poison with the reason in
 * @p perr (a corrupt record, one that does not decode, or breaks its schema). No side
 * effects but on @p ev and @p perr: runs on decoding threads. */
static void decode_check(const struct es_log_record *rec,
                         unsigned flags,
                         struct es_event *ev,
                         bool *poison,
                         struct sp_errbuf *perr)
{
    if (rec->status != 0) {
        *poison = true;
        (void)sp_err_set(perr, 0, NULL, "checksum mismatch: %s",
                         rec->error ? rec->error : sp_strerror(rec->status));
        return;
    }
    if (es_log_record_decode_ex(rec, flags, ev, perr) != 0) {
        char why[sizeof(perr->msg)], field[sizeof(perr->field)];
        snprintf(why, sizeof(why), "%s", perr->msg);
        snprintf(field, sizeof(field), "%s", perr->field);
        es_event_release(ev);
        *poison = true;
        (void)sp_err_set(perr, 0, field[0] ? field : NULL, "undecodable event: %s", why);
        return;
    }
    if (es_event_check(ev, NULL, perr) != 0)
        *poison = true; /* perr: unknown type, or which field breaks the schema */
}

/* A PostgreSQL projection sends payloads to the server as text (pg_fold_set.c): decoding
 * keeps it, instead of encoding ev->data again there. */
static unsigned decode_flags(const struct proj_runner *r)
{
    return r->proj->store == PROJ_STORE_PG ? ES_DECODE_DATA_JSON : 0;
}

static void halt(struct proj__apply *c, const struct es_log_record *rec, const char *error)
{
    c->stats->halted = true;
    c->stats->halt_offset = rec->pos.offset;
    snprintf(c->stats->halt_error, sizeof(c->stats->halt_error), "offset %lld: %s",
             (long long)rec->pos.offset, error);
}

/*
 * Apply one record already decoded and checked (@p ev, @p poison, @p perr as decode_check
 * left them): fold (unless @p folded: fold_many did, and @p poison is its outcome), ignore
 * by type, or dead-letter / halt a poison event. The caller releases @p ev.
 * @return 0 to go on; 1 to stop (halted, or a fatal error in c->fatal).
 */
static int apply_decoded(struct proj__apply *c,
                         const struct es_log_record *rec,
                         struct es_event *ev,
                         bool poison,
                         struct sp_errbuf *perr,
                         bool folded)
{
    char error[sizeof(perr->msg) + sizeof(perr->field) + 4];
    int rc = 0;

    if (!folded && !poison && proj_projection_handles(c->r->proj, ev->type_id))
        rc = c->r->ops->fold(c->r, ev, &poison, perr, c->eb);
    if (rc == 0 && poison) {
        if (perr->field[0] != '\0' && strstr(perr->msg, perr->field) == NULL)
            snprintf(error, sizeof(error), "%s: %s", perr->field, perr->msg);
        else
            snprintf(error, sizeof(error), "%s", perr->msg);
        if (c->policy == PROJ_POISON_HALT) {
            halt(c, rec, error);
            return 1;
        }
        rc = dead_letter(c, rec, ev, error);
        c->stats->dead++;
    } else if (rc == 0) {
        c->stats->applied++;
    }
    if (rc != 0) {
        c->fatal = rc;
        return 1;
    }
    c->stats->next_offset = rec->pos.offset + 1;
    return 0;
}

int proj__apply_record(const struct es_log_record *rec, void *ud)
{
    struct proj__apply *c = ud;
    struct sp_errbuf perr = {{0}, {0}};
    struct es_event ev;
    bool poison = false;
    int stop;

    es_event_init(&ev);
    decode_check(rec, decode_flags(c->r), &ev, &poison, &perr);
    stop = apply_decoded(c, rec, &ev, poison, &perr, false);
    es_event_release(&ev);
    return stop;
}

/* ------------------------------------------------------------ parallel decoding */

/* A record decoded and checked ahead of its fold. */
struct decoded {
    struct es_event ev;
    bool poison;
    struct sp_errbuf perr;
};

struct decode_slice {
    const struct proj__rec *recs;
    unsigned flags; /* es_event_decode_ex's */
    struct decoded *out;
    size_t lo, hi;
};

static void *decode_slice_main(void *arg)
{
    struct decode_slice *s = arg;
    for (size_t i = s->lo; i < s->hi; i++) {
        struct decoded *d = &s->out[i];
        es_event_init(&d->ev);
        d->poison = false;
        memset(&d->perr, 0, sizeof(d->perr));
        decode_check(&s->recs[i].rec, s->flags, &d->ev, &d->poison, &d->perr);
    }
    return NULL;
}

/* Threads that decode a large batch: the online CPUs, at most PROJ_DECODE_THREADS_MAX. */
static unsigned decode_threads(size_t n)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < PROJ_DECODE_PARALLEL_MIN || cpus < 2)
        return 1;
    return cpus > PROJ_DECODE_THREADS_MAX ? PROJ_DECODE_THREADS_MAX : (unsigned)cpus;
}

/* Decode and check recs[0..n) into out, on several threads when the batch is large (a
 * thread that cannot be started leaves its slice to the caller's thread). */
static void decode_all(const struct proj__rec *recs, size_t n, unsigned flags, struct decoded *out)
{
    unsigned t = decode_threads(n);
    pthread_t tid[PROJ_DECODE_THREADS_MAX];
    struct decode_slice slice[PROJ_DECODE_THREADS_MAX];
    bool started[PROJ_DECODE_THREADS_MAX] = {false};

    for (unsigned i = 0; i < t; i++)
        slice[i] = (struct decode_slice){recs, flags, out, n * i / t, n * (i + 1) / t};
    for (unsigned i = 1; i < t; i++)
        started[i] = pthread_create(&tid[i], NULL, decode_slice_main, &slice[i]) == 0;
    decode_slice_main(&slice[0]);
    for (unsigned i = 1; i < t; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            decode_slice_main(&slice[i]);
    }
}

/*
 * The store folds the batch's events in one call (ops->fold_many): the ones that decoded,
 * passed the catalogue and that the projection handles, in order, up to the first poison
 * one when the policy halts. The poison ones it finds are marked in dec[] with their reason,
 * so that apply_decoded only settles each record afterwards (in order; a halt stops that
 * walk at the first poison record, before anything fold_many left unapplied).
 * @return 0, or the store's transient error.
 */
static int fold_many(struct proj__apply *c, struct decoded *dec, size_t n)
{
    struct es_event **evs = sp_xcalloc(n, sizeof(*evs));
    struct proj__fold_outcome *out = sp_xcalloc(n, sizeof(*out));
    size_t *at = sp_xcalloc(n, sizeof(*at)), m = 0, done = 0;
    bool halt_first = c->policy == PROJ_POISON_HALT;
    int rc;

    for (size_t i = 0; i < n; i++) {
        if (dec[i].poison && halt_first)
            break; /* the walk halts there: nothing after it is folded */
        if (!dec[i].poison && proj_projection_handles(c->r->proj, dec[i].ev.type_id)) {
            at[m] = i;
            evs[m++] = &dec[i].ev;
        }
    }
    rc = c->r->ops->fold_many(c->r, evs, m, halt_first, out, &done, c->eb);
    for (size_t k = 0; rc == 0 && k < done; k++) {
        if (out[k].poison) {
            dec[at[k]].poison = true;
            dec[at[k]].perr = out[k].perr;
        }
    }
    free(out);
    free(at);
    free(evs);
    return rc;
}

struct reap {
    struct decoded *dec;
    size_t n;
};

/* Release the events dec[0..n) and free dec (NULL: nothing). */
static void decoded_free(struct decoded *dec, size_t n)
{
    for (size_t i = 0; dec != NULL && i < n; i++)
        es_event_release(&dec[i].ev);
    free(dec);
}

static void *reap_main(void *arg)
{
    struct reap *k = arg;
    decoded_free(k->dec, k->n);
    free(k);
    return NULL;
}

void proj__reaper_join(struct proj_runner *r)
{
    if (r->reaping)
        pthread_join(r->reaper, NULL);
    r->reaping = false;
}

/* Release the events dec[0..n) and free dec: a large batch's on a thread of its own (its
 * jansson trees took a tenth of a catch-up's time to free), joined before the next one. */
static void release_decoded(struct proj_runner *r, struct decoded *dec, size_t n)
{
    struct reap *k = sp_xmalloc(sizeof(*k));

    *k = (struct reap){dec, n};
    proj__reaper_join(r);
    if (n >= PROJ_DECODE_PARALLEL_MIN && pthread_create(&r->reaper, NULL, reap_main, k) == 0)
        r->reaping = true;
    else
        (void)reap_main(k);
}

/* proj__apply_recs with recs[0..n) decoded and checked into dec[] already; frees dec. */
static int apply_decoded_all(struct proj__apply *c,
                             const struct proj__rec *recs,
                             struct decoded *dec,
                             size_t n,
                             size_t *done)
{
    bool batch_folds = c->r->ops->fold_many != NULL;
    size_t i = 0;
    int stop = 0;

    *done = 0;
    if (batch_folds && (c->fatal = fold_many(c, dec, n)) != 0)
        stop = 1; /* the batch is rolled back: nothing is settled */
    for (; i < n && stop == 0; i++) {
        stop = apply_decoded(c, &recs[i].rec, &dec[i].ev, dec[i].poison, &dec[i].perr, batch_folds);
        if (stop == 0)
            (*done)++;
    }
    release_decoded(c->r, dec, n);
    return stop;
}

int proj__apply_recs(struct proj__apply *c, const struct proj__rec *recs, size_t n, size_t *done)
{
    struct decoded *dec;

    *done = 0;
    if (n == 0)
        return 0;
    dec = sp_xcalloc(n, sizeof(*dec));
    decode_all(recs, n, decode_flags(c->r), dec);
    return apply_decoded_all(c, recs, dec, n, done);
}

void proj__recs_release(struct proj__rec *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(recs[i].value);
        free(recs[i].error);
    }
}

void proj__rec_copy(struct proj__rec *b, const struct es_log_record *rec)
{
    b->rec = *rec;
    b->value = sp_xmalloc(rec->value_len > 0 ? rec->value_len : 1);
    memcpy(b->value, rec->value, rec->value_len);
    b->rec.value = b->value;
    b->error = rec->error != NULL ? sp_xstrdup(rec->error) : NULL;
    b->rec.error = b->error;
}

struct collect_ctx {
    struct proj__rec *recs;
    size_t n, cap;
};

static int collect_record(const struct es_log_record *rec, void *ud)
{
    struct collect_ctx *k = ud;
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 256;
        k->recs = sp_xrealloc(k->recs, k->cap * sizeof(*k->recs));
    }
    proj__rec_copy(&k->recs[k->n++], rec);
    return 0;
}

/* ------------------------------------------------------------ read-ahead */

/*
 * The next batch of a partition, read and decoded while the one before it folds: in a
 * catch-up or a rebuild the store (PostgreSQL's backend) and the decoding then use a core
 * each instead of taking turns. The log is append-only, so records read ahead stay valid;
 * a batch asked for at another place (after a halt or a failed batch) drops them.
 */
struct proj__ahead {
    struct es_log *log;
    int32_t partition;
    int64_t from;
    size_t max;
    struct collect_ctx k; /* the records read */
    int64_t next;         /* es_log_read's next offset after them */
    struct decoded *dec;  /* [k.n], filled by the thread */
    unsigned flags;
    pthread_t tid;
    bool running; /* tid is to be joined */
};

static void *ahead_main(void *arg)
{
    struct proj__ahead *a = arg;
    struct decode_slice all = {a->k.recs, a->flags, a->dec, 0, a->k.n};

    /* one thread: the other core is the store's */
    decode_slice_main(&all);
    return NULL;
}

/* Wait for @p a's decoding. */
static void ahead_join(struct proj__ahead *a)
{
    if (a->running)
        pthread_join(a->tid, NULL);
    a->running = false;
}

void proj__ahead_free(struct proj__ahead *a)
{
    if (a == NULL)
        return;
    ahead_join(a);
    decoded_free(a->dec, a->k.n);
    proj__recs_release(a->k.recs, a->k.n);
    free(a->k.recs);
    free(a);
}

/* Read @p max records of @p partition from @p from and start decoding them on a thread of
 * their own. @return the read-ahead, or NULL (nothing to read, a read error: the batch
 * then reads for itself). */
static struct proj__ahead *
ahead_start(struct proj_runner *r, struct es_log *log, int32_t partition, int64_t from, size_t max)
{
    struct proj__ahead *a = sp_xcalloc(1, sizeof(*a));
    struct sp_errbuf ignored = {{0}, {0}};

    a->log = log;
    a->partition = partition;
    a->from = a->next = from;
    a->max = max;
    a->flags = decode_flags(r);
    if (es_log_read(log, partition, from, max, collect_record, &a->k, &a->next, &ignored) < 0 ||
        a->k.n == 0) {
        proj__ahead_free(a);
        return NULL;
    }
    a->dec = sp_xcalloc(a->k.n, sizeof(*a->dec));
    a->running = pthread_create(&a->tid, NULL, ahead_main, a) == 0;
    if (!a->running)
        (void)ahead_main(a);
    return a;
}

/* Whether a batch that read @p n of @p max records should read the next one ahead: a full
 * batch of a store that folds batches, large enough to be decoded on several cores. */
static bool ahead_worth(const struct proj_runner *r, size_t n, size_t max)
{
    return r->ops->fold_many != NULL && n == max && max >= PROJ_DECODE_PARALLEL_MIN &&
           decode_threads(max) >= 2;
}

int proj__apply_batch(struct proj_runner *r,
                      struct es_log *log,
                      int32_t partition,
                      int64_t from_offset,
                      size_t max,
                      struct proj_batch_stats *stats,
                      struct sp_errbuf *eb)
{
    struct proj__apply c = {r, r->policy, stats, eb, 0};
    int64_t next = from_offset;
    int rc;

    stats->next_offset = from_offset;
    rc = r->ops->batch_begin(r, eb);
    if (rc != 0)
        return rc;
    /* Small batches (live) are decoded record by record as they are read; large ones
     * (catch-up, rebuild), and every batch of a store that folds a batch at once, are read
     * first and decoded (on every core when large). */
    if (r->ops->fold_many == NULL && (max < PROJ_DECODE_PARALLEL_MIN || decode_threads(max) < 2)) {
        rc = es_log_read(log, partition, from_offset, max, proj__apply_record, &c, &next, eb);
    } else {
        struct proj__ahead *a = r->ahead;
        struct collect_ctx k = {NULL, 0, 0};
        struct decoded *dec = NULL;
        size_t done;

        r->ahead = NULL;
        if (a != NULL && a->log == log && a->partition == partition && a->from == from_offset &&
            a->max == max) {
            ahead_join(a);
            k = a->k, dec = a->dec, next = a->next;
            a->k = (struct collect_ctx){NULL, 0, 0};
            a->dec = NULL;
        } else {
            rc = es_log_read(log, partition, from_offset, max, collect_record, &k, &next, eb);
        }
        proj__ahead_free(a);
        if (rc == 0 && ahead_worth(r, k.n, max))
            r->ahead = ahead_start(r, log, partition, next, max);
        if (dec != NULL) /* read ahead: rc is 0 and k.n > 0 */
            (void)apply_decoded_all(&c, k.recs, dec, k.n, &done);
        else if (rc == 0)
            (void)proj__apply_recs(&c, k.recs, k.n, &done);
        proj__recs_release(k.recs, k.n);
        free(k.recs);
    }
    if (c.fatal != 0)
        return c.fatal;
    if (rc < 0)
        return rc;
    /* also when halted: the events before the poison one are committed */
    rc = r->bulk ? 0 : r->ops->batch_end(r, eb);
    if (rc != 0)
        return rc;
    /* Kafka: the read may end past offsets that hold no record (transaction markers) */
    if (!stats->halted && next > stats->next_offset)
        stats->next_offset = next;
    return 0;
}
