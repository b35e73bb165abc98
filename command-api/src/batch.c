/*
 * Group commit (DESIGN.md "Command side"): queued commands are decided in arrival order
 * inside one write-model transaction, each in a nested transaction that is aborted if
 * the command fails; their events are appended to the log as one durable batch; only
 * then is the write model committed (with the checkpoint) and every client answered.
 * If that commit fails the write model is caught up from the log; if that fails too the
 * app is "broken" (app_priv.h) and decides nothing until a catch-up succeeds, so the
 * write model never skips an event and its checkpoint never passes what it folded.
 * Checkpoints are per partition (Kafka); a command's position is that of its last event.
 * A fenced append (SP_EFENCED) stops the app for good: see cmd/app.h.
 *
 * Threads: the loop thread parses, validates and answers; the committer thread (one, so
 * the log and the write model keep a single writer) decides, appends and commits. While
 * the committer waits for one batch's fsync the loop reads and validates the next one
 * and writes the answers of the one before, so throughput grows with concurrency until
 * the CPU or the disk is spent. A batch is still answered only once it is durable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "app_priv.h"

#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"

#include "sp/banned.h"

const char *cmd__kind_name(enum cmd__kind kind)
{
    static const char *const names[] = {
        "register",       "login",          "refresh",        "logout",        "recipe_create",
        "recipe_update",  "recipe_delete",  "profile_update", "follow",        "unfollow",
        "comment_create", "comment_delete", "like",           "unlike",        "notifications_read",
        "room_create",    "room_update",    "member_add",     "member_remove", "message_send",
        "room_read"};
    return (size_t)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "unknown";
}

struct cmd__command *cmd__command_new(enum cmd__kind kind, struct sp_http_req *req)
{
    struct cmd__command *c = sp_xcalloc(1, sizeof(*c));
    c->kind = kind;
    c->req = req;
    c->if_match = -1;
    snprintf(c->request_id, sizeof(c->request_id), "%s", sp_http_req_id(req));
    for (size_t i = 0; i < CMD__MAX_EVENTS; i++)
        es_event_init(&c->evs[i]);
    return c;
}

static void release_events(struct cmd__command *c)
{
    for (size_t i = 0; i < CMD__MAX_EVENTS; i++)
        es_event_release(&c->evs[i]);
    c->n_evs = 0;
}

void cmd__command_free(struct cmd__command *c)
{
    if (!c)
        return;
    json_decref(c->input);
    json_decref(c->resp);
    json_decref(c->errors);
    release_events(c);
    free(c);
}

void cmd__enqueue(struct cmd_app *app, struct cmd__command *c)
{
    if (!app->ready) { /* draining: nothing new may be in flight when the loop exits */
        sp_http_add_header(c->req, "Retry-After", "1");
        sp_http_reply_problem(c->req, 503, "unavailable",
                              "command-api is shutting down; retry later", NULL);
        cmd__command_free(c);
        return;
    }
    TAILQ_INSERT_TAIL(&app->pending, c, link);
    event_active(app->flush_ev, EV_TIMEOUT, 1);
}

/* Catch the write model up from the log (with the test seam). */
static int catch_up(struct cmd_app *app, struct sp_errbuf *eb)
{
    if (app->hooks.fail_catch_up)
        return sp_err_set(eb, SP_EDB, NULL, "catch-up failure injected by a test");
    return cmd__wm_catch_up(app->wm, app->log, NULL, eb);
}

/* Commit the batch's top-level txn (with the test seam). @return 0 or an MDB code. */
static int wm_commit(struct cmd_app *app, MDB_txn *txn)
{
    if (app->hooks.fail_commits > 0) {
        app->hooks.fail_commits--;
        mdb_txn_abort(txn);
        return EIO;
    }
    return mdb_txn_commit(txn);
}

static void mark_broken(struct cmd_app *app, const char *why);

/* Committer: take the write model's open transaction (NULL if none) out of the app. */
static MDB_txn *wm_take(struct cmd_app *app)
{
    MDB_txn *top = app->wm_top;

    app->wm_top = NULL;
    pthread_mutex_lock(&app->mu);
    app->wm_open = false;
    app->flush_req = false;
    pthread_mutex_unlock(&app->mu);
    return top;
}

/*
 * Committer: commit the write model's open transaction (the batches folded since its last
 * commit; their events are durable in the log). If the commit fails, the catch-up refolds
 * them from the log. @return 0, or the commit's MDB code.
 */
static int wm_flush(struct cmd_app *app)
{
    struct sp_errbuf eb = {0};
    MDB_txn *top;
    int rc;

    if (app->wm_top == NULL)
        return 0;
    top = wm_take(app);
    if ((rc = wm_commit(app, top)) != 0) {
        sp_log(SP_LOG_ERROR, "write model commit failed (%d); catching up from the log", rc);
        if (catch_up(app, &eb) != 0)
            mark_broken(app, eb.msg);
        return rc;
    }
    cmd__wm_write_ahead(app->wm); /* no write transaction is open now */
    return 0;
}

/* Committer: has command.writemodel_commit_ms passed since the open transaction began? */
static bool wm_commit_due(const struct cmd_app *app)
{
    return sp_time_mono_us() >= app->wm_top_since_us + app->wm_commit_us;
}

/* Committer: drop the open transaction (a refold from the log follows). */
static void wm_drop(struct cmd_app *app)
{
    if (app->wm_top != NULL)
        mdb_txn_abort(wm_take(app));
}

/* Committer: the nested transaction a batch folds into (opening the top one if needed).
 * @return 0 or an MDB code. */
static int wm_batch_begin(struct cmd_app *app, MDB_txn **txn)
{
    int rc;

    if (app->wm_top == NULL) {
        if ((rc = cmd__wm_txn_begin(app->wm, NULL, false, &app->wm_top)) != 0)
            return rc;
        app->wm_top_since_us = sp_time_mono_us();
        pthread_mutex_lock(&app->mu);
        app->wm_open = true;
        pthread_mutex_unlock(&app->mu);
    }
    return cmd__wm_txn_begin(app->wm, app->wm_top, false, txn);
}

/* Committer thread; takes mu. */
static void mark_broken(struct cmd_app *app, const char *why)
{
    if (!app->broken)
        sp_log(SP_LOG_ERROR, "write model is behind the log, refusing commands: %s", why);
    pthread_mutex_lock(&app->mu);
    app->broken = true;
    snprintf(app->broken_why, sizeof(app->broken_why), "write model is behind the log: %.160s",
             why);
    pthread_mutex_unlock(&app->mu);
    app->recover_at_us = sp_time_mono_us();
    sp_metrics_gauge_set(app->metrics, "stockpot_writemodel_broken", "", 1);
}

void cmd__mark_fenced(struct cmd_app *app, const char *why)
{
    const char *tid = sp_config_str(app->cfg, "kafka.transactional_id");
    if (app->fenced)
        return;
    pthread_mutex_lock(&app->mu);
    app->fenced = true;
    snprintf(app->fenced_why, sizeof(app->fenced_why),
             "fenced: another command-api with transactional.id \"%s\" took over the event log "
             "(or the log writer hit a fatal error): %s",
             tid, why);
    pthread_mutex_unlock(&app->mu);
    sp_log(SP_LOG_ERROR,
           "command-api is fenced: another command-api with transactional.id \"%s\" took over "
           "the event log (or the log writer hit a fatal error); acknowledging nothing more, "
           "every command gets 503 until this process is restarted: %s",
           tid, why);
    sp_metrics_gauge_set(app->metrics, "stockpot_command_fenced", "", 1);
}

bool cmd__wm_recover(struct cmd_app *app, bool force)
{
    struct sp_errbuf eb = {0};
    if (!app->broken)
        return true;
    if (!app->wm || !app->log)
        return false;
    if (!force && sp_time_mono_us() - app->recover_at_us < 100000)
        return false;
    if (catch_up(app, &eb) != 0) {
        mark_broken(app, eb.msg);
        return false;
    }
    pthread_mutex_lock(&app->mu);
    app->broken = false;
    app->broken_why[0] = '\0';
    pthread_mutex_unlock(&app->mu);
    sp_metrics_gauge_set(app->metrics, "stockpot_writemodel_broken", "", 0);
    sp_log(SP_LOG_INFO, "write model caught up with the log again; accepting commands");
    return true;
}

static void fail_internal(struct cmd__command *c, int status, const char *slug, const char *msg)
{
    release_events(c);
    json_decref(c->resp);
    c->resp = NULL;
    json_decref(c->errors);
    c->errors = NULL;
    c->audit = NULL;
    cmd__fail(c, status, slug, "%s", msg);
}

/* Earlier command of this batch holding the same idempotency key, or NULL. */
static struct cmd__command *idem_first(struct cmd__command **batch, size_t i)
{
    for (size_t j = 0; j < i; j++) {
        if (batch[j]->idem_on && !batch[j]->replayed &&
            strcmp(batch[j]->idem_key, batch[i]->idem_key) == 0)
            return batch[j];
    }
    return NULL;
}

/* 1 if the idempotency record answers c (replay, mismatch, duplicate); 0 to decide. */
static int idem_check(struct cmd_app *app, MDB_txn *txn, struct cmd__command **batch, size_t i)
{
    struct cmd__command *c = batch[i];
    struct cmd__idem rec = {0};
    int rc = cmd__wm_idem_get(app->wm, txn, c->idem_key, &rec);
    if (rc != 0)
        return rc == SP_ENOTFOUND ? 0 : rc;
    c->replayed = true;
    if (memcmp(rec.fingerprint, c->idem_fp, sizeof(rec.fingerprint)) != 0) {
        cmd__fail(c, 422, "idempotency-key-reused",
                  "Idempotency-Key was already used with a different request");
    } else if (rec.status == 0) {
        c->dup_of = idem_first(batch, i);
        c->replayed = c->dup_of != NULL;
    } else {
        c->status = rec.status;
        c->resp = rec.body ? json_loads(rec.body, 0, NULL) : json_object();
    }
    free(rec.body);
    return c->replayed ? 1 : 0;
}

static int idem_pending(struct cmd_app *app, MDB_txn *txn, struct cmd__command *c)
{
    struct cmd__idem rec = {.status = 0, .body = NULL};
    memcpy(rec.fingerprint, c->idem_fp, sizeof(rec.fingerprint));
    return cmd__wm_idem_put(app->wm, txn, c->idem_key, &rec);
}

/* Decide batch[i] in a nested txn of @p parent, kept only if it produced events. */
static void decide_one(struct cmd_app *app, MDB_txn *parent, struct cmd__command **batch, size_t i)
{
    struct cmd__command *c = batch[i];
    MDB_txn *txn = NULL;
    int rc = cmd__wm_txn_begin(app->wm, parent, false, &txn);
    if (rc != 0)
        goto out_fail;
    rc = c->idem_on ? idem_check(app, txn, batch, i) : 0;
    if (rc == 1) {
        mdb_txn_abort(txn);
        return;
    }
    if (rc == 0)
        rc = cmd__decide(app, txn, c);
    if (rc == 0 && c->idem_on && c->status < 300)
        rc = idem_pending(app, txn, c);
    if ((rc == SP_ETOOBIG && c->status == 413) || (rc == SP_ECONFLICT && c->status == 503)) {
        release_events(c);
        mdb_txn_abort(txn);
        return;
    }
    if (rc != 0)
        goto out_abort;
    if (c->n_evs == 0) {
        mdb_txn_abort(txn);
        return;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        sp_log(SP_LOG_ERROR, "nested write model commit failed: %s", mdb_strerror(rc));
        goto out_fail;
    }
    return;
out_abort:
    mdb_txn_abort(txn);
out_fail:
    sp_log(SP_LOG_ERROR, "command %s failed: %s", cmd__kind_name(c->kind), sp_strerror(rc));
    fail_internal(c, 500, "internal", "internal error while deciding the command");
}

/*
 * Store the checkpoint of every partition the batch's @p n_evs events went to: the offset
 * after its last event there (a batch is the only writer, so nothing is skipped; offsets
 * in between may be Kafka transaction markers).
 */
static int put_checkpoints(struct cmd_app *app, MDB_txn *txn, size_t n_evs)
{
    const struct es_position *pos = app->positions;
    for (size_t i = 0; i < n_evs; i++) {
        bool last = true;
        for (size_t j = 0; j < n_evs && last; j++)
            last = j == i || pos[j].partition != pos[i].partition || pos[j].offset < pos[i].offset;
        if (!last || app->unsure[pos[i].partition])
            continue; /* refolded from its old checkpoint after the commit */
        int rc = cmd__wm_checkpoint_put(app->wm, txn, pos[i].partition, pos[i].offset + 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/*
 * Record the log position of c's events (@p pos, one per event) as their streams' last
 * positions, or, for a no-op waiting on one (c->pos_stream), put that stream's last
 * position into c's answer. In batch order, so a no-op sees the events decided before it.
 */
static int stream_positions(struct cmd_app *app,
                            MDB_txn *txn,
                            struct cmd__command *c,
                            const struct es_position *pos)
{
    struct es_position last;
    int64_t ver;
    char tok[32];
    int rc = 0;
    for (size_t e = 0; e < c->n_evs && rc == 0; e++)
        rc = cmd__wm_stream_pos_put(app->wm, txn, c->evs[e].stream, c->evs[e].stream_version,
                                    pos[e]);
    if (rc != 0 || c->n_evs > 0 || !c->pos_stream[0] || !c->resp)
        return rc;
    rc = cmd__wm_stream_pos(app->wm, txn, c->pos_stream, &ver, &last);
    if (rc == SP_ENOTFOUND)
        return 0; /* cannot happen: the event it waits on was just recorded */
    if (rc == 0) {
        es_position_format(last, tok, sizeof(tok));
        json_object_set_new(c->resp, "position", json_string(tok));
    }
    return rc;
}

/*
 * After a durable append: positions into answers, final idempotency records (*@p idem set
 * if there is any).
 */
static int finish_batch(struct cmd_app *app, MDB_txn *txn, size_t n, bool *idem)
{
    size_t k = 0;
    char tok[32];
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct cmd__command *c = app->batch[i];
        rc = stream_positions(app, txn, c, app->positions + k);
        if (rc != 0 || c->n_evs == 0)
            continue;
        k += c->n_evs;
        es_position_format(app->positions[k - 1], tok, sizeof(tok));
        if (!c->resp)
            continue;
        json_object_set_new(c->resp, "position", json_string(tok));
        if (c->idem_on && !c->replayed) {
            struct cmd__idem rec = {.status = c->status};
            memcpy(rec.fingerprint, c->idem_fp, sizeof(rec.fingerprint));
            rec.body = json_dumps(c->resp, JSON_COMPACT);
            rc = cmd__wm_idem_put(app->wm, txn, c->idem_key, &rec);
            free(rec.body);
            *idem = true;
        }
    }
    if (rc == 0)
        rc = put_checkpoints(app, txn, k);
    return rc;
}

/*
 * The log refused the batch: nothing of it is acknowledged. Fenced: stop for good.
 * Otherwise the log may still settle the batch as committed (Kafka: commit and abort
 * both failed), so every partition becomes unsure (see struct cmd_app).
 */
static void append_failed(struct cmd_app *app, size_t n, int rc, const struct sp_errbuf *eb)
{
    const char *detail = "the event log is unavailable; retry later";
    if (rc == SP_EFENCED) {
        cmd__mark_fenced(app, eb->msg);
        detail = CMD__FENCED_DETAIL;
    } else {
        sp_log(SP_LOG_ERROR, "event append failed: %s (%s)", eb->msg, sp_strerror(rc));
        for (int32_t p = 0; p < app->n_parts; p++)
            app->unsure[p] = true;
    }
    sp_metrics_counter_add(app->metrics, "stockpot_event_append_failures_total", "", 1);
    for (size_t i = 0; i < n; i++) {
        /* a no-op waiting on a position rests on an event of this batch */
        if (app->batch[i]->n_evs > 0 || app->batch[i]->pos_stream[0])
            fail_internal(app->batch[i], 503, "unavailable", detail);
    }
}

/*
 * After a durable append: refold every unsure partition the batch went to (see
 * struct cmd_app). @return 0, or the catch-up's error (eb says why).
 */
static int refold_unsure(struct cmd_app *app, size_t n_evs, struct sp_errbuf *eb)
{
    for (size_t i = 0; i < n_evs; i++) {
        int32_t p = app->positions[i].partition;
        if (!app->unsure[p])
            continue;
        int rc = app->hooks.fail_catch_up
                     ? sp_err_set(eb, SP_EDB, NULL, "catch-up failure injected by a test")
                     : cmd__wm_catch_up_partition(app->wm, app->log, p, NULL, eb);
        if (rc != 0)
            return rc;
        app->unsure[p] = false;
    }
    return 0;
}

/* Committer thread: wake the loop's done_ev. */
static void wake_loop(struct cmd_app *app)
{
    uint64_t one = 1;
    while (write(app->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

/*
 * Committer thread, mu not held: hand app->batch[0..n) to the loop to be answered; once
 * per batch (early from commit_batch, else when the batch is done).
 */
static void release(struct cmd_app *app, size_t n)
{
    pthread_mutex_lock(&app->mu);
    for (size_t i = 0; i < n; i++)
        TAILQ_INSERT_TAIL(&app->done, app->batch[i], link);
    pthread_mutex_unlock(&app->mu);
    app->released = true;
    wake_loop(app);
}

/*
 * Does the batch hold a command whose effect the loop thread reads from the write model
 * (login reads users and password hashes, /auth/validate reads sessions)? Such a batch is
 * answered only after the write model commit, so a client that registered or logged in
 * can log in or validate at once.
 */
static bool reads_own_writes(const struct cmd_app *app, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        enum cmd__kind k = app->batch[i]->kind;
        if (app->batch[i]->n_evs > 0 &&
            (k == CMD_REGISTER || k == CMD_LOGIN || k == CMD_REFRESH || k == CMD_LOGOUT))
            return true;
    }
    return false;
}

/* Did the batch's @p n_evs events go to a partition the write model is unsure of? */
static bool any_unsure(const struct cmd_app *app, size_t n_evs)
{
    for (size_t i = 0; i < n_evs; i++)
        if (app->unsure[app->positions[i].partition])
            return true;
    return false;
}

/*
 * Append the batch's events and fold the write model's changes (@p txn, nested in the
 * open top-level transaction); on failure answer 503. The top-level transaction is
 * committed (one flush) only when the batch needs it or command.writemodel_commit_ms has
 * passed since it began (await_work commits it then when idle): the write model is a fold of
 * the log, so batches folded but not yet committed are refolded from the log after a
 * failed commit (at once) or a crash (at start). Once the append is durable and the
 * answers are final, a batch is answered before that commit, except a batch that stores
 * idempotency answers (not in the log: committed and synced first) or that the loop reads
 * back (login reads users and password hashes, /auth/validate reads sessions).
 */
static void commit_batch(struct cmd_app *app, MDB_txn *txn, size_t n, size_t n_evs)
{
    struct sp_errbuf eb = {0};
    bool idem = false, own, now;
    int rc;
    if (n_evs == 0) {
        mdb_txn_abort(txn);
        return;
    }
    rc = es_log_append(app->log, app->ev_ptrs, n_evs, app->positions, &eb);
    if (rc != 0) {
        mdb_txn_abort(txn); /* the batches before it stay folded in wm_top */
        append_failed(app, n, rc, &eb);
        return;
    }
    sp_metrics_counter_add(app->metrics, "stockpot_events_appended_total", "", (double)n_evs);
    rc = finish_batch(app, txn, n, &idem);
    rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc); /* into wm_top */
    if (rc != 0) {
        /* The events are durable; rebuild what the write model missed from the log. */
        sp_log(SP_LOG_ERROR, "write model fold failed (%d); catching up from the log", rc);
        wm_drop(app);
        if (catch_up(app, &eb) != 0)
            mark_broken(app, eb.msg);
        return;
    }
    own = reads_own_writes(app, n);
    now = idem || own || any_unsure(app, n_evs) || wm_commit_due(app);
    if (!idem && !own)
        release(app, n); /* durable in the log: answer before the write model commits */
    if (!now || wm_flush(app) != 0)
        return;
    /* idempotency answers are not in the log: durable before anyone is answered */
    if (idem && cmd__wm_sync(app->wm) != 0)
        sp_log(SP_LOG_ERROR, "the batch's idempotency answers may not survive a system crash");
    if (refold_unsure(app, n_evs, &eb) != 0)
        mark_broken(app, eb.msg);
}

static void audit(const struct cmd__command *c)
{
    char uid[24], sid[24];
    snprintf(uid, sizeof(uid), "%lld", (long long)c->user_id);
    snprintf(sid, sizeof(sid), "%lld", (long long)c->session_id);
    sp_log_audit(c->audit, (const char *[]){"user_id", uid, "session_id", sid, "request_id",
                                            c->request_id, "peer", sp_http_req_peer(c->req), NULL});
}

static void answer_success(struct cmd__command *c)
{
    char buf[64];
    const char *pos = json_string_value(json_object_get(c->resp, "position"));
    json_t *ver = json_object_get(c->resp, "version");
    if (pos)
        sp_http_add_header(c->req, "Stockpot-Position", pos);
    if (json_is_integer(ver)) {
        snprintf(buf, sizeof(buf), "\"%lld\"", (long long)json_integer_value(ver));
        sp_http_add_header(c->req, "ETag", buf);
    }
    if (c->kind == CMD_RECIPE_CREATE && c->status == 201) {
        snprintf(buf, sizeof(buf), "/recipes/%s",
                 json_string_value(json_object_get(c->resp, "recipe_id")));
        sp_http_add_header(c->req, "Location", buf);
    }
    sp_http_reply_json(c->req, c->status, c->resp);
    c->resp = NULL;
}

/* A repeat of an earlier command of the same batch gets a copy of its answer. */
static void copy_dup(struct cmd__command *c)
{
    const struct cmd__command *first = c->dup_of;
    c->status = first->status;
    c->slug = first->slug;
    snprintf(c->detail, sizeof(c->detail), "%s", first->detail);
    c->resp = first->resp ? json_deep_copy(first->resp) : NULL;
    c->errors = first->errors ? json_deep_copy(first->errors) : NULL;
}

static void answer(struct cmd_app *app, struct cmd__command *c)
{
    char labels[96];
    if (c->status == 0)
        fail_internal(c, 500, "internal", "command was not decided");
    if (c->audit && c->status < 500 && !c->replayed)
        audit(c);
    snprintf(labels, sizeof(labels), "command=\"%s\",result=\"%d\"", cmd__kind_name(c->kind),
             c->status);
    sp_metrics_counter_add(app->metrics, "stockpot_commands_total", labels, 1);
    if (c->status < 400 && c->resp) {
        answer_success(c);
        return;
    }
    if (c->status == 503)
        sp_http_add_header(c->req, "Retry-After", "1");
    if (c->status == 401)
        sp_http_add_header(c->req, "WWW-Authenticate", "Bearer");
    sp_http_reply_problem(c->req, c->status, c->slug, c->detail, c->errors);
    c->errors = NULL;
}

/*
 * Loop thread: answer and free the decided commands of @p list, in order. A batch is
 * always whole on the list, so the first of a repeated idempotency key is still there.
 */
static void answer_list(struct cmd_app *app, struct cmd__queue *list)
{
    struct cmd__command *c;
    TAILQ_FOREACH(c, list, link)
        if (c->dup_of)
            copy_dup(c);
    TAILQ_FOREACH(c, list, link)
        answer(app, c);
    while ((c = TAILQ_FIRST(list)) != NULL) {
        TAILQ_REMOVE(list, c, link);
        cmd__command_free(c);
    }
}

/* Committer thread: decide, append and commit app->batch[0..n). */
static void decide_batch(struct cmd_app *app, size_t n)
{
    size_t n_evs = 0;
    int64_t t0_us = sp_time_mono_us();
    MDB_txn *txn = NULL;

    /* counted first: the answers may go out before this function returns (release) */
    sp_metrics_counter_add(app->metrics, "stockpot_batches_total", "", 1);
    sp_metrics_counter_add(app->metrics, "stockpot_batch_commands_total", "", (double)n);
    sp_metrics_gauge_set(app->metrics, "stockpot_batch_size", "", (double)n);
    if (app->broken)
        wm_drop(app); /* the catch-up (cmd__wm_recover) refolds from the log */
    if (app->fenced) {
        for (size_t i = 0; i < n; i++)
            fail_internal(app->batch[i], 503, "unavailable", CMD__FENCED_DETAIL);
    } else if (!cmd__wm_recover(app, true) || wm_batch_begin(app, &txn) != 0) {
        for (size_t i = 0; i < n; i++)
            fail_internal(app->batch[i], 503, "unavailable",
                          "the write model is unavailable; retry later");
    } else {
        for (size_t i = 0; i < n; i++)
            decide_one(app, txn, app->batch, i);
        for (size_t i = 0; i < n; i++)
            for (size_t e = 0; e < app->batch[i]->n_evs; e++)
                app->ev_ptrs[n_evs++] = &app->batch[i]->evs[e];
        commit_batch(app, txn, n, n_evs);
    }
    sp_metrics_observe(app->metrics, "stockpot_group_commit_seconds", "",
                       (double)(sp_time_mono_us() - t0_us) / 1e6);
}

/* Monotonic µs as an absolute time for work_cv (CLOCK_MONOTONIC). */
static struct timespec mono_at(int64_t us)
{
    struct timespec at = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    return at;
}

/*
 * Committer thread, with mu held: wait for work. Commit the write model's open
 * transaction when command.writemodel_commit_ms has passed since it began, when asked
 * (cmd__committer_wait_idle) and before stopping. While the write model is broken, retry
 * its catch-up each second, and when kicked (at most each 100 ms, cmd__wm_recover).
 * @return false when stopped with nothing queued.
 */
static bool await_work(struct cmd_app *app)
{
    for (;;) {
        if (!TAILQ_EMPTY(&app->queue))
            return true;
        if (app->wm_open && (app->stop || app->flush_req || wm_commit_due(app))) {
            pthread_mutex_unlock(&app->mu);
            (void)wm_flush(app);
            pthread_mutex_lock(&app->mu);
            pthread_cond_broadcast(&app->idle_cv);
            continue;
        }
        if (app->stop)
            return false;
        bool force = false;
        if (app->kick) {
            app->kick = false;
        } else if (!app->broken && app->wm_open) {
            struct timespec at = mono_at(app->wm_top_since_us + app->wm_commit_us);
            (void)pthread_cond_timedwait(&app->work_cv, &app->mu, &at);
            continue;
        } else if (!app->broken) {
            pthread_cond_wait(&app->work_cv, &app->mu);
            continue;
        } else {
            struct timespec at;
            clock_gettime(CLOCK_MONOTONIC, &at);
            at.tv_sec += 1;
            if (pthread_cond_timedwait(&app->work_cv, &app->mu, &at) != ETIMEDOUT)
                continue;
            force = true;
        }
        if (!app->broken)
            continue;
        pthread_mutex_unlock(&app->mu);
        (void)cmd__wm_recover(app, force);
        pthread_mutex_lock(&app->mu);
    }
}

static void *committer_main(void *ud)
{
    struct cmd_app *app = ud;
    struct cmd__command *c;
    pthread_mutex_lock(&app->mu);
    while (await_work(app)) {
        size_t n = 0;
        while (n < app->batch_max && (c = TAILQ_FIRST(&app->queue)) != NULL) {
            TAILQ_REMOVE(&app->queue, c, link);
            app->batch[n++] = c;
        }
        app->busy = true;
        app->released = false;
        pthread_mutex_unlock(&app->mu);
        decide_batch(app, n);
        if (!app->released)
            release(app, n);
        pthread_mutex_lock(&app->mu);
        app->busy = false;
        if (TAILQ_EMPTY(&app->queue))
            pthread_cond_broadcast(&app->idle_cv);
    }
    pthread_mutex_unlock(&app->mu);
    (void)wm_flush(app);
    return NULL;
}

/* Loop thread: move the commands of this loop pass to the committer. */
static void hand_over(struct cmd_app *app)
{
    if (TAILQ_EMPTY(&app->pending))
        return;
    pthread_mutex_lock(&app->mu);
    TAILQ_CONCAT(&app->queue, &app->pending, link);
    pthread_cond_signal(&app->work_cv);
    pthread_mutex_unlock(&app->mu);
}

/* Loop thread: answer what the committer has finished. */
static void answer_done(struct cmd_app *app)
{
    struct cmd__queue list = TAILQ_HEAD_INITIALIZER(list);
    pthread_mutex_lock(&app->mu);
    TAILQ_CONCAT(&list, &app->done, link);
    pthread_mutex_unlock(&app->mu);
    answer_list(app, &list);
}

static void flush_cb(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    hand_over(ud);
}

static void done_cb(evutil_socket_t fd, short what, void *ud)
{
    uint64_t n;
    (void)what;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN && errno != EINTR)
        sp_log(SP_LOG_ERROR, "command-api: reading the committer's eventfd failed: %s",
               strerror(errno));
    answer_done(ud);
}

int cmd__committer_start(struct cmd_app *app)
{
    app->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (app->wake_fd < 0)
        return -errno;
    app->flush_ev = event_new(app->base, -1, 0, flush_cb, app);
    app->done_ev = event_new(app->base, app->wake_fd, EV_READ | EV_PERSIST, done_cb, app);
    if (!app->flush_ev || !app->done_ev || event_add(app->done_ev, NULL) != 0)
        return -ENOMEM;
    int rc = pthread_create(&app->committer, NULL, committer_main, app);
    if (rc != 0)
        return -rc;
    app->committer_on = true;
    return 0;
}

void cmd__committer_wait_idle(struct cmd_app *app)
{
    pthread_mutex_lock(&app->mu);
    app->flush_req = true;
    pthread_cond_signal(&app->work_cv);
    while (app->committer_on && (!TAILQ_EMPTY(&app->queue) || app->busy || app->wm_open))
        pthread_cond_wait(&app->idle_cv, &app->mu);
    app->flush_req = false;
    pthread_mutex_unlock(&app->mu);
}

void cmd__flush_all(struct cmd_app *app)
{
    if (!app->committer_on)
        return;
    hand_over(app);
    cmd__committer_wait_idle(app);
    answer_done(app);
}

void cmd__committer_stop(struct cmd_app *app)
{
    if (!app->committer_on)
        return;
    cmd__flush_all(app);
    pthread_mutex_lock(&app->mu);
    app->stop = true;
    pthread_cond_signal(&app->work_cv);
    pthread_mutex_unlock(&app->mu);
    pthread_join(app->committer, NULL);
    app->committer_on = false;
}

bool cmd__usable(struct cmd_app *app, char *why, size_t why_size, bool *fenced)
{
    bool usable;
    pthread_mutex_lock(&app->mu);
    usable = !app->fenced && !app->broken;
    if (fenced)
        *fenced = app->fenced;
    if (why && why_size > 0)
        snprintf(why, why_size, "%s", app->fenced ? app->fenced_why : app->broken_why);
    if (app->broken && !app->fenced) {
        app->kick = true;
        pthread_cond_signal(&app->work_cv);
    }
    pthread_mutex_unlock(&app->mu);
    return usable;
}

void cmd__metrics_describe(struct sp_metrics *m)
{
    sp_metrics_describe(m, "stockpot_commands_total", SP_METRIC_COUNTER,
                        "Commands answered, by command and HTTP status");
    sp_metrics_describe(m, "stockpot_events_appended_total", SP_METRIC_COUNTER,
                        "Events appended durably to the log");
    sp_metrics_describe(m, "stockpot_batches_total", SP_METRIC_COUNTER,
                        "Group-commit batches flushed");
    sp_metrics_describe(m, "stockpot_batch_commands_total", SP_METRIC_COUNTER,
                        "Commands in all group-commit batches (divide by batches for the mean)");
    sp_metrics_describe(m, "stockpot_batch_size", SP_METRIC_GAUGE,
                        "Commands in the last group-commit batch");
    sp_metrics_describe(m, "stockpot_group_commit_seconds", SP_METRIC_HISTOGRAM,
                        "Time to decide, append and commit one batch, seconds");
    sp_metrics_describe(m, "stockpot_writemodel_events_caught_up_total", SP_METRIC_COUNTER,
                        "Events folded into the write model at start-up catch-up");
    sp_metrics_describe(m, "stockpot_event_append_failures_total", SP_METRIC_COUNTER,
                        "Group-commit batches whose append to the log failed (answered 503)");
    sp_metrics_describe(m, "stockpot_writemodel_broken", SP_METRIC_GAUGE,
                        "1 while the write model is behind the log and commands get 503");
    sp_metrics_describe(m, "stockpot_command_fenced", SP_METRIC_GAUGE,
                        "1 once another writer fenced this command-api (commands get 503)");
}
