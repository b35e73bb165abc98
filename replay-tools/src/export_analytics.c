/* export analytics: the analytics view's tables (days, active, popular, retention) as files. */
/* nftw() needs X/Open 5. NOLINTNEXTLINE(bugprone-*,cert-*) */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "export.h"
#include "proj/analytics.h"
#include "proj/projection.h"
#include "proj/runner.h"
#include "proj/view.h"
#include "replay/replay.h"
#include "sp/alloc.h"
#include "sp/time.h"

#include "sp/banned.h"

/* The view exported and the files written so far. */
struct an_export {
    const struct replay__export_opts *o;
    char dir[PATH_MAX - 128]; /* o->out */
    bool made_dir;            /* we created dir: removed if the export fails */
    MDB_txn *txn;             /* one read snapshot for every table */
    struct proj_analytics_dbs dbs;
    json_t *files; /* the manifest's "files" */
    json_t *position;
    const char *written[8]; /* names of the files written, removed on failure */
    size_t n_written;
};

/* A table file of the export: @p fill writes its rows into @p t. */
typedef int (*table_fill_fn)(struct an_export *x, struct replay__table *t, struct sp_errbuf *eb);

static int write_table(struct an_export *x,
                       const char *base,
                       const char *const *cols,
                       size_t ncols,
                       table_fill_fn fill)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct replay__table t;
    char name[64], path[PATH_MAX], sha[65];
    int64_t rows = 0;
    int rc;

    snprintf(name, sizeof(name), "%s.%s", base, replay__format_ext(x->o->fmt));
    snprintf(path, sizeof(path), "%s/%s", x->dir, name);
    x->written[x->n_written++] = base;
    if ((rc = replay__table_open(&t, path, x->o->fmt, cols, ncols, &eb)) == 0 &&
        (rc = fill(x, &t, &eb)) == 0)
        rc = replay__table_close(&t, sha, &rows, &eb);
    if (rc != 0) {
        replay__table_abort(&t);
        replay__error("export analytics: %s failed: %s", name, eb.msg);
        return rc;
    }
    replay__manifest_file(x->files, name, rows, sha);
    return 0;
}

/* --- the four tables ------------------------------------------------------------------ */

static int fill_days(struct an_export *x, struct replay__table *t, struct sp_errbuf *eb)
{
    struct proj_analytics_summary s;
    char date[16];
    int rc;

    memset(&s, 0, sizeof(s));
    rc = proj_analytics_summary(&x->dbs, x->txn, x->o->from, x->o->to, &s, eb);

    for (size_t i = 0; rc == 0 && i < s.n_days; i++) {
        replay__table_cstr(t, proj_analytics_date_format(s.days[i].day, date, sizeof(date)));
        replay__table_uint(t, s.days[i].active);
        for (int c = 0; c < PROJ_ANALYTICS_COUNTERS; c++)
            replay__table_uint(t, s.days[i].counts[c]);
        rc = replay__table_end_row(t, eb);
    }
    proj_analytics_summary_release(&s);
    return rc;
}

static int fill_active(struct an_export *x, struct replay__table *t, struct sp_errbuf *eb)
{
    static const char *const names[] = {"day", "week", "month"};
    static const enum proj_analytics_granularity gs[] = {PROJ_AN_DAY, PROJ_AN_WEEK, PROJ_AN_MONTH};
    char start[16], end[16];
    int rc = 0;

    for (size_t g = 0; rc == 0 && g < sizeof(gs) / sizeof(gs[0]); g++) {
        struct proj_analytics_period *p = NULL;
        size_t n = 0;
        rc =
            proj_analytics_active_periods(&x->dbs, x->txn, gs[g], x->o->from, x->o->to, &p, &n, eb);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            replay__table_cstr(t, names[g]);
            replay__table_cstr(t, proj_analytics_date_format(p[i].start, start, sizeof(start)));
            replay__table_cstr(t, proj_analytics_date_format(p[i].end, end, sizeof(end)));
            replay__table_uint(t, p[i].active);
            rc = replay__table_end_row(t, eb);
        }
        free(p);
    }
    return rc;
}

/* Where the popular windows end: --at, else the last microsecond of --to. */
static int64_t popular_at(const struct replay__export_opts *o)
{
    return o->has_at ? o->at_us : ((int64_t)o->to + 1) * PROJ_ANALYTICS_DAY_US - 1;
}

static int fill_popular(struct an_export *x, struct replay__table *t, struct sp_errbuf *eb)
{
    struct proj_analytics_recipe *r = sp_xcalloc(x->o->limit, sizeof(*r));
    int64_t at_us = popular_at(x->o);
    int rc = 0;

    for (int w = PROJ_AN_WINDOW_24H; rc == 0 && w <= PROJ_AN_WINDOW_ALL; w++) {
        size_t n = 0;
        if ((x->o->windows & (1U << w)) == 0)
            continue;
        rc = proj_analytics_popular(&x->dbs, x->txn, (enum proj_analytics_window)w, at_us,
                                    x->o->limit, r, &n, eb);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            replay__table_cstr(t, proj_analytics_window_name((enum proj_analytics_window)w));
            replay__table_uint(t, i + 1);
            replay__table_id(t, r[i].id);
            replay__table_str(t, r[i].title, strlen(r[i].title)); /* whole: proj/analytics.h */
            replay__table_id(t, r[i].author_id);
            replay__table_int(t, r[i].score);
            replay__table_uint(t, r[i].likes);
            replay__table_uint(t, r[i].comments);
            replay__table_uint(t, r[i].unlikes);
            rc = replay__table_end_row(t, eb);
        }
    }
    free(r);
    return rc;
}

static int fill_retention(struct an_export *x, struct replay__table *t, struct sp_errbuf *eb)
{
    struct proj_analytics_cohort *c = NULL;
    size_t n = 0;
    char week[16];
    int rc = proj_analytics_retention(&x->dbs, x->txn, x->o->from, x->o->to, &c, &n, eb);

    for (size_t i = 0; rc == 0 && i < n; i++) {
        proj_analytics_date_format(c[i].week, week, sizeof(week));
        for (size_t k = 0; rc == 0 && k < c[i].n_weeks; k++) {
            replay__table_cstr(t, week);
            replay__table_uint(t, c[i].size);
            replay__table_uint(t, k);
            replay__table_uint(t, c[i].active[k]);
            replay__table_fixed6(t,
                                 c[i].size > 0 ? (double)c[i].active[k] / (double)c[i].size : 0.0);
            rc = replay__table_end_row(t, eb);
        }
    }
    if (c != NULL)
        proj_analytics_cohorts_free(c, n);
    return rc;
}

static int write_tables(struct an_export *x)
{
    static const char *const active[] = {"granularity", "start", "end", "active"};
    static const char *const popular[] = {"window", "rank",  "recipe_id", "title",  "author_id",
                                          "score",  "likes", "comments",  "unlikes"};
    static const char *const retention[] = {"cohort_week", "size", "week", "active", "share"};
    const char *days[2 + PROJ_ANALYTICS_COUNTERS] = {"date", "active"};
    int rc;

    for (int c = 0; c < PROJ_ANALYTICS_COUNTERS; c++)
        days[2 + c] = proj_analytics_counter_name((enum proj_analytics_counter)c);
    if ((rc = write_table(x, "days", days, 2 + PROJ_ANALYTICS_COUNTERS, fill_days)) == 0 &&
        (rc = write_table(x, "active", active, 4, fill_active)) == 0 &&
        (rc = write_table(x, "popular", popular, 9, fill_popular)) == 0)
        rc = write_table(x, "retention", retention, 5, fill_retention);
    return rc;
}

/* --- the directory, the view, the manifest ---------------------------------------------- */

/* Create DIR (and its parents), or check that it is empty (or --force). */
static int prepare_dir(struct an_export *x)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char manifest[PATH_MAX];
    bool empty = true;

    if (stat(x->dir, &st) != 0) {
        char path[sizeof(x->dir)];
        snprintf(path, sizeof(path), "%s", x->dir);
        for (char *p = path + 1; *p != '\0'; p++) /* mkdir -p */
            if (*p == '/') {
                *p = '\0';
                (void)mkdir(path, 0755);
                *p = '/';
            }
        if (mkdir(x->dir, 0755) != 0) {
            replay__error("export: could not create \"%s\": %s", x->dir, strerror(errno));
            return REPLAY_EXIT_FAIL;
        }
        x->made_dir = true;
        return 0;
    }
    if (!S_ISDIR(st.st_mode) || (d = opendir(x->dir)) == NULL) {
        replay__error("export: \"%s\" is not a directory one can write to", x->dir);
        return REPLAY_EXIT_FAIL;
    }
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    if (!empty && !x->o->force) {
        replay__error("export: \"%s\" exists and is not empty (--force writes into it)", x->dir);
        return REPLAY_EXIT_FAIL;
    }
    /* an old manifest must not vouch for files this export is about to replace */
    snprintf(manifest, sizeof(manifest), "%s/manifest.json", x->dir);
    if (unlink(manifest) != 0 && errno != ENOENT) {
        replay__error("export: could not remove \"%s\": %s", manifest, strerror(errno));
        return REPLAY_EXIT_FAIL;
    }
    return 0;
}

/* Remove what a failed export wrote into DIR (and DIR if we made it). */
static void undo_dir(struct an_export *x)
{
    char path[PATH_MAX];

    for (size_t i = 0; i < x->n_written; i++) {
        snprintf(path, sizeof(path), "%s/%s.%s", x->dir, x->written[i],
                 replay__format_ext(x->o->fmt));
        unlink(path);
    }
    if (x->made_dir)
        rmdir(x->dir);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    (void)remove(path); /* best effort: go on with the rest */
    return 0;
}

static int on_batch(int64_t done, int64_t total, void *ud)
{
    replay__progress_update(ud, done, total);
    return replay__export_interrupted() ? 1 : 0;
}

/* --until: a private view of the log up to the bound, built in @p tmp/analytics. */
static int build_private(const struct replay__export_opts *o,
                         char *view_dir,
                         size_t size,
                         char *tmp,
                         bool *made_tmp,
                         json_t **position)
{
    const struct sp_config *cfg = o->cfg;
    struct sp_errbuf eb = {{0}, {0}};
    struct replay__progress pg;
    struct proj_batch_stats st;
    enum proj_poison_policy policy = PROJ_POISON_DEAD_LETTER;
    struct es_log *log = NULL;
    int64_t *ends = NULL;
    int32_t nparts = 0;
    int rc;

    if (es_log_open(cfg, ES_LOG_READER, &log, &eb) != 0) {
        replay__error("could not open the event log \"%s\": %s", sp_config_str(cfg, "log.dir"),
                      eb.msg);
        return REPLAY_EXIT_FAIL;
    }
    if ((rc = replay__export_bounds(o, log, &ends, &nparts)) != 0)
        goto out_close_log;
    if (mkdtemp(tmp) == NULL) {
        replay__error("export: could not create a directory in \"%s\": %s", o->tmp_dir,
                      strerror(errno));
        rc = REPLAY_EXIT_FAIL;
        goto out_close_log;
    }
    *made_tmp = true;
    snprintf(view_dir, size, "%s/analytics", tmp);
    if (proj_poison_policy_parse(sp_config_str(cfg, "projector.poison_policy"), &policy) != 0)
        policy = PROJ_POISON_DEAD_LETTER;
    replay__progress_init(&pg, "folded");
    rc = proj_rebuild_view_until(proj_analytics_projection(), view_dir,
                                 (size_t)sp_config_int(cfg, "views.map_size_mb") << 20, log, ends,
                                 (size_t)sp_config_int(cfg, "views.batch_max"), policy, on_batch,
                                 &pg, &st, &eb);
    replay__progress_end(&pg);
    if (rc != 0) {
        replay__error("export analytics: could not build the view up to --until: %s",
                      replay__export_interrupted() ? "interrupted" : eb.msg);
        rc = REPLAY_EXIT_FAIL;
    } else {
        *position = replay__position_json(ends, nparts);
        if (st.dead > 0) /* as the projector would have: policy dead-letter */
            replay__error("export analytics: %lld poison events skipped while building the view",
                          (long long)st.dead);
    }
out_close_log:
    free(ends);
    es_log_close(log);
    return rc;
}

/* The checkpoints of the view in @p txn, as a position vector (a partition without one is
 * at 0). */
static int view_position(struct proj_view *v, MDB_txn *txn, json_t **position)
{
    struct sp_errbuf eb = {{0}, {0}};
    int32_t parts[256];
    int64_t offsets[256], ends[256] = {0};
    int n = proj_view_checkpoints(v, txn, parts, offsets, 256, &eb);
    int32_t nparts = 0;

    if (n < 0 || n > 256) {
        replay__error("export analytics: could not read the view's checkpoints: %s",
                      n < 0 ? eb.msg : "more than 256 partitions");
        return REPLAY_EXIT_FAIL;
    }
    for (int i = 0; i < n; i++) {
        if (parts[i] >= 0 && parts[i] < 256) {
            ends[parts[i]] = offsets[i];
            nparts = parts[i] + 1 > nparts ? parts[i] + 1 : nparts;
        }
    }
    *position = replay__position_json(ends, nparts);
    return 0;
}

static int open_view(const struct sp_config *cfg, const char *dir, bool live, struct proj_view **v)
{
    const struct proj_projection *proj = proj_analytics_projection();
    struct proj_view_opts opts = {dir, proj->view->format, proj->view->max_dbs,
                                  (size_t)sp_config_int(cfg, "views.map_size_mb") << 20};
    struct sp_errbuf eb = {{0}, {0}};
    int rc = proj_view_open(&opts, PROJ_VIEW_READ, v, &eb);

    if (rc == SP_ENOTFOUND && live)
        replay__error("export analytics: the analytics view \"%s\" is not built: run "
                      "`stockpot-replay rebuild analytics` (or start the projector), or export "
                      "with --until",
                      dir);
    else if (rc != 0)
        replay__error("export analytics: could not open the view \"%s\": %s", dir, eb.msg);
    return rc == 0 ? 0 : REPLAY_EXIT_FAIL;
}

static json_t *manifest_new(const struct an_export *x)
{
    char from[16], to[16], at[32];
    const struct replay__export_opts *o = x->o;
    int64_t at_us = popular_at(o);
    json_t *windows = json_array();

    for (int w = PROJ_AN_WINDOW_24H; w <= PROJ_AN_WINDOW_ALL; w++)
        if (o->windows & (1U << w))
            json_array_append_new(
                windows, json_string(proj_analytics_window_name((enum proj_analytics_window)w)));
    return json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:o,s:I},s:O,s:O}", "format", REPLAY_EXPORT_FORMAT,
                     "kind", "analytics", "from",
                     proj_analytics_date_format(o->from, from, sizeof(from)), "to",
                     proj_analytics_date_format(o->to, to, sizeof(to)), "popular", "at",
                     sp_time_format_rfc3339(at_us, at, sizeof(at)), "windows", windows, "limit",
                     (json_int_t)o->limit, "position", x->position, "files", x->files);
}

/* Every table and the manifest, from the view @p v. */
static int export_view(struct an_export *x, struct proj_view *v)
{
    struct sp_errbuf eb = {{0}, {0}};
    char path[PATH_MAX];
    json_t *manifest;
    int rc;

    if (mdb_txn_begin(proj_view_env(v), NULL, MDB_RDONLY, &x->txn) != 0) {
        replay__error("export analytics: could not read the view");
        return REPLAY_EXIT_FAIL;
    }
    if (proj_analytics_dbs_open(x->txn, &x->dbs, &eb) != 0) {
        replay__error("export analytics: %s", eb.msg);
        rc = REPLAY_EXIT_FAIL;
    } else if ((rc = x->position != NULL ? 0 : view_position(v, x->txn, &x->position)) == 0 &&
               (rc = write_tables(x)) == 0) {
        snprintf(path, sizeof(path), "%s/manifest.json", x->dir);
        manifest = manifest_new(x);
        rc = replay__manifest_write(path, manifest);
        json_decref(manifest);
    }
    mdb_txn_abort(x->txn);
    return rc == 0 ? 0 : REPLAY_EXIT_FAIL;
}

int replay__export_analytics(const struct replay__export_opts *o)
{
    struct an_export x = {.o = o};
    struct proj_view *v = NULL;
    char tmp[PATH_MAX - 64], view_dir[PATH_MAX];
    bool made_tmp = false;
    int rc;

    snprintf(x.dir, sizeof(x.dir), "%s", o->out);
    snprintf(tmp, sizeof(tmp), "%s/stockpot-export-XXXXXX", o->tmp_dir);
    if ((rc = prepare_dir(&x)) != 0)
        return rc;
    x.files = json_array();
    if (o->n_until > 0)
        rc = build_private(o, view_dir, sizeof(view_dir), tmp, &made_tmp, &x.position);
    else
        snprintf(view_dir, sizeof(view_dir), "%s/analytics", sp_config_str(o->cfg, "views.dir"));
    if (rc == 0 && (rc = open_view(o->cfg, view_dir, o->n_until == 0, &v)) == 0) {
        rc = export_view(&x, v);
        proj_view_close(v);
    }
    if (made_tmp)
        (void)nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc == 0 && replay__export_interrupted()) {
        replay__error("export analytics: interrupted");
        rc = REPLAY_EXIT_FAIL;
    }
    if (rc != 0)
        undo_dir(&x);
    json_decref(x.files);
    json_decref(x.position);
    return rc;
}
