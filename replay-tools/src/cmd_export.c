/* The export subcommand: options, the --until bound, manifests and the progress line. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "export.h"
#include "proj/analytics.h"
#include "replay/replay.h"
#include "sp/alloc.h"
#include "sp/time.h"

#include "sp/banned.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: stockpot-replay export analytics --from DATE --to DATE --format csv|ndjson\n"
            "                              --out DIR [--force] [--until POSITION[,POSITION...]]\n"
            "                              [--window W[,W...]] [--limit N] [--at TIME]\n"
            "                              [--tmp-dir DIR]\n"
            "       stockpot-replay export events --format ndjson|csv [--out FILE|-] [--force]\n"
            "                              [--type T[,T...]] [--from DATE] [--to DATE]\n"
            "                              [--until POSITION[,POSITION...]]\n"
            "\n"
            "analytics: the analytics view's tables, one file each in DIR (created; a DIR that\n"
            "is not empty needs --force): days (date, DAU, every counter, each day of\n"
            "[from, to]), active (users active per day, ISO week and month, periods clipped\n"
            "to the range), popular (rank of recipes per window W of 24h, 7d, 30d, all,\n"
            "default all four, ending at TIME, default the end of --to; N per window, default\n"
            "and at most 100), retention (signup cohorts by ISO week, followed week by week to\n"
            "--to). DATE is YYYY-MM-DD (UTC days); at most 400 days. TIME is a DATE (its end)\n"
            "or RFC 3339. Without --until the live view (views.dir/analytics) is exported;\n"
            "with it, a private view is built from the log in a temporary directory (--tmp-dir,\n"
            "default $TMPDIR or /tmp), exported and removed.\n"
            "\n"
            "events: one row per event in log order (partition by partition, offset order):\n"
            "partition, offset, stream, stream_version, type, time, actor, id, data (the\n"
            "payload, compact JSON; password_hash, refresh_hash and token_hash removed), kept\n"
            "by catalogue type T and by the UTC day of its time. To stdout by default; --out\n"
            "FILE (an existing one needs --force) also writes FILE.manifest.json when FILE is\n"
            "a regular file.\n"
            "\n"
            "POSITION is <partition>:<offset>, one per partition of the log: the export holds\n"
            "the records with an offset BELOW it (offset 0 up to offset - 1), the meaning of a\n"
            "checkpoint and of a manifest's \"position\"; a command's consistency token names\n"
            "its last event, so add 1 to include that event. Same log and same --until give\n"
            "byte-identical files whenever they run. Without --until: the log as it is now.\n"
            "\n"
            "CSV is RFC 4180 (header row, CRLF); NDJSON one JSON object per line; UTF-8.\n"
            "manifest.json in DIR (events: FILE.manifest.json) is written last: format, kind,\n"
            "range, position (the checkpoints of the view exported, or the bound of the\n"
            "events) and each file's name, rows and SHA-256. No file holds the time of the\n"
            "export.\n");
}

/* --- option parsing ------------------------------------------------------------------- */

/* Print what is wrong with the arguments; the value is REPLAY_EXIT_USAGE. */
#define BAD(...) (replay__error(__VA_ARGS__), REPLAY_EXIT_USAGE)

static int parse_date(const char *opt, const char *val, bool *has, int32_t *day)
{
    if (proj_analytics_date_parse(val, day) != 0)
        return BAD("export: bad %s \"%s\": expected a date YYYY-MM-DD", opt, val);
    *has = true;
    return 0;
}

/* Each of a comma-separated list passed to @p one. */
static int each_item(const char *opt,
                     const char *list,
                     int (*one)(const char *, const char *, void *),
                     void *ud)
{
    char item[128];
    const char *p = list;
    int rc = 0;

    do {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof(item))
            return BAD("export: bad %s \"%s\": an empty or overlong item", opt, list);
        memcpy(item, p, n);
        item[n] = '\0';
        rc = one(opt, item, ud);
        p += n;
    } while (rc == 0 && *p++ == ',');
    return rc;
}

static int window_item(const char *opt, const char *s, void *ud)
{
    enum proj_analytics_window w;
    if (proj_analytics_window_parse(s, &w) != 0)
        return BAD("export: unknown %s \"%s\": expected 24h, 7d, 30d or all", opt, s);
    *(unsigned *)ud |= 1U << w;
    return 0;
}

static int type_item(const char *opt, const char *s, void *ud)
{
    enum es_type type = es_type_of(s);
    if (type == ES_TYPE_UNKNOWN)
        return BAD("export: unknown %s \"%s\": not an event type of the catalogue", opt, s);
    ((bool *)ud)[type] = true;
    return 0;
}

static int position_item(const char *opt, const char *s, void *ud)
{
    struct es_position pos;
    (void)ud;
    if (es_position_parse(s, &pos) != 0)
        return BAD("export: bad %s position \"%s\": expected <partition>:<offset>, e.g. 0:1200",
                   opt, s);
    return 0;
}

static int parse_at(const char *val, struct replay__export_opts *o)
{
    int32_t day;

    if (proj_analytics_date_parse(val, &day) == 0)
        o->at_us = ((int64_t)day + 1) * PROJ_ANALYTICS_DAY_US - 1;
    else if (sp_time_parse_rfc3339(val, &o->at_us) != 0)
        return BAD("export: bad --at \"%s\": expected YYYY-MM-DD or an RFC 3339 time", val);
    o->has_at = true;
    return 0;
}

/* One "--name value" option (or --force, *used = 1) into @p o. */
static int parse_option(const char *opt, const char *val, struct replay__export_opts *o, int *used)
{
    int64_t n;

    *used = 2;
    if (strcmp(opt, "--force") == 0) {
        *used = 1;
        o->force = true;
        return 0;
    }
    if (val == NULL)
        return BAD("export: %s needs a value", opt);
    if (strcmp(opt, "--format") == 0)
        return replay__format_parse(val, &o->fmt) == 0
                   ? 0
                   : BAD("export: unknown %s \"%s\": expected csv or ndjson", opt, val);
    if (strcmp(opt, "--from") == 0)
        return parse_date(opt, val, &o->has_from, &o->from);
    if (strcmp(opt, "--to") == 0)
        return parse_date(opt, val, &o->has_to, &o->to);
    if (strcmp(opt, "--out") == 0) {
        o->out = strcmp(val, "-") == 0 ? NULL : val;
        return 0;
    }
    if (strcmp(opt, "--until") == 0) {
        if (o->n_until == REPLAY_EXPORT_MAX_UNTIL)
            return BAD("export: too many %s options", opt);
        o->until[o->n_until++] = val;
        return each_item(opt, val, position_item, NULL);
    }
    if (strcmp(opt, "--window") == 0)
        return each_item(opt, val, window_item, &o->windows);
    if (strcmp(opt, "--type") == 0) {
        o->has_types = true;
        return each_item(opt, val, type_item, o->types);
    }
    if (strcmp(opt, "--limit") == 0) {
        if (replay__parse_count(val, &n) != 0 || n < 1 || n > PROJ_ANALYTICS_MAX_LIMIT)
            return BAD("export: bad %s \"%s\": expected 1 to 100", opt, val);
        o->limit = (size_t)n;
        return 0;
    }
    if (strcmp(opt, "--at") == 0)
        return parse_at(val, o);
    if (strcmp(opt, "--tmp-dir") == 0) {
        o->tmp_dir = val;
        return 0;
    }
    return BAD("export: unknown option \"%s\"", opt);
}

/* Options that only one kind takes, and what each kind requires. */
static int check_kind(bool analytics, char **argv, int argc, const struct replay__export_opts *o)
{
    static const char *const analytics_only[] = {"--window", "--limit", "--at", "--tmp-dir"};
    bool has_format = false, has_out = false;

    for (int i = 0; i < argc; i++) {
        has_format |= strcmp(argv[i], "--format") == 0;
        has_out |= strcmp(argv[i], "--out") == 0;
        for (size_t k = 0; !analytics && k < sizeof(analytics_only) / sizeof(*analytics_only); k++)
            if (strcmp(argv[i], analytics_only[k]) == 0)
                return BAD("export: %s is an option of export analytics, not events", argv[i]);
        if (analytics && strcmp(argv[i], "--type") == 0)
            return BAD("export: %s is an option of export events, not analytics", argv[i]);
    }
    if (!has_format)
        return BAD("export: --format is required (csv or ndjson)");
    if (analytics && (!o->has_from || !o->has_to))
        return BAD("export analytics: --from and --to are required");
    if (analytics && (!has_out || o->out == NULL))
        return BAD("export analytics: --out DIR is required");
    if (o->has_from && o->has_to && o->to < o->from)
        return BAD("export: --to is before --from");
    if (analytics && o->to - o->from >= PROJ_ANALYTICS_MAX_RANGE_DAYS) {
        return BAD("export analytics: [--from, --to] spans %d days; at most %d",
                   (int)(o->to - o->from + 1), PROJ_ANALYTICS_MAX_RANGE_DAYS);
    }
    return 0;
}

static int parse_args(bool analytics, int argc, char **argv, struct replay__export_opts *o)
{
    int used = 0, rc = 0;

    o->limit = PROJ_ANALYTICS_MAX_LIMIT;
    for (int i = 0; rc == 0 && i < argc; i += used) {
        if (replay__is_help(argv[i])) {
            usage(stdout);
            return -1;
        }
        rc = parse_option(argv[i], i + 1 < argc ? argv[i + 1] : NULL, o, &used);
    }
    if (rc == 0)
        rc = check_kind(analytics, argv, argc, o);
    if (rc == 0 && o->windows == 0)
        o->windows = (1U << PROJ_AN_WINDOW_24H) | (1U << PROJ_AN_WINDOW_7D) |
                     (1U << PROJ_AN_WINDOW_30D) | (1U << PROJ_AN_WINDOW_ALL);
    if (rc == 0 && o->tmp_dir == NULL) {
        const char *tmp = getenv("TMPDIR");
        o->tmp_dir = tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp";
    }
    if (rc != 0)
        fprintf(stderr, "(try stockpot-replay export --help)\n");
    return rc;
}

/* --- interruption --------------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

bool replay__export_interrupted(void)
{
    return interrupted != 0;
}

int replay_cmd_export(const struct sp_config *cfg, int argc, char **argv)
{
    struct replay__export_opts o;
    struct sigaction sa, old_int, old_term;
    bool analytics;
    int rc;

    memset(&o, 0, sizeof(o));
    o.cfg = cfg;
    if (argc >= 1 && replay__is_help(argv[0])) {
        usage(stdout);
        return REPLAY_EXIT_OK;
    }
    if (argc < 1 || (strcmp(argv[0], "analytics") != 0 && strcmp(argv[0], "events") != 0)) {
        replay__error("export: expected \"analytics\" or \"events\"%s%s%s",
                      argc >= 1 ? ", not \"" : "", argc >= 1 ? argv[0] : "", argc >= 1 ? "\"" : "");
        usage(stderr);
        return REPLAY_EXIT_USAGE;
    }
    analytics = strcmp(argv[0], "analytics") == 0;
    if ((rc = parse_args(analytics, argc - 1, argv + 1, &o)) != 0)
        return rc < 0 ? REPLAY_EXIT_OK : rc;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked write returns */
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    rc = analytics ? replay__export_analytics(&o) : replay__export_events(&o);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}

/* --- the bound, manifests, progress ---------------------------------------------------- */

struct bound_ctx {
    int64_t *ends;           /* per partition; -1 = not named yet */
    const int64_t *log_ends; /* per partition */
    int32_t nparts;
};

/* Apply one --until position to the bound. */
static int bound_item(const char *opt, const char *s, void *ud)
{
    struct bound_ctx *c = ud;
    struct es_position pos;

    if (es_position_parse(s, &pos) != 0)
        return BAD("export: bad %s position \"%s\": expected <partition>:<offset>", opt, s);
    if (pos.partition >= c->nparts)
        return BAD("export: %s names partition %d, but the log has %d partition%s", opt,
                   (int)pos.partition, (int)c->nparts, c->nparts == 1 ? "" : "s");
    if (c->ends[pos.partition] >= 0)
        return BAD("export: %s names partition %d twice", opt, (int)pos.partition);
    if (pos.offset > c->log_ends[pos.partition])
        return BAD("export: %s position %s is beyond the end of the log (partition %d holds "
                   "offsets below %lld: at most %d:%lld)",
                   opt, s, (int)pos.partition, (long long)c->log_ends[pos.partition],
                   (int)pos.partition, (long long)c->log_ends[pos.partition]);
    c->ends[pos.partition] = pos.offset;
    return 0;
}

static int read_ends(struct es_log *log, int64_t *ends, int32_t nparts)
{
    struct sp_errbuf eb = {{0}, {0}};

    for (int32_t p = 0; p < nparts; p++) {
        if (es_log_end(log, p, &ends[p], &eb) != 0) {
            replay__error("could not read the end of the event log: %s", eb.msg);
            return REPLAY_EXIT_FAIL;
        }
    }
    return 0;
}

int replay__export_bounds(const struct replay__export_opts *o,
                          struct es_log *log,
                          int64_t **ends,
                          int32_t *nparts)
{
    int32_t n = es_log_partitions(log);
    int64_t *log_ends = sp_xcalloc((size_t)n + 1, sizeof(*log_ends));
    struct bound_ctx c = {sp_xcalloc((size_t)n + 1, sizeof(int64_t)), log_ends, n};
    int rc = read_ends(log, log_ends, n);

    for (int32_t p = 0; p < n; p++)
        c.ends[p] = o->n_until > 0 ? -1 : log_ends[p];
    for (size_t i = 0; rc == 0 && i < o->n_until; i++)
        rc = each_item("--until", o->until[i], bound_item, &c);
    for (int32_t p = 0; rc == 0 && p < n; p++)
        if (c.ends[p] < 0)
            rc = BAD("export: --until names no position for partition %d: name one for each "
                     "of the log's %d partitions",
                     (int)p, (int)n);
    free(log_ends);
    if (rc != 0) {
        free(c.ends);
        return rc;
    }
    *ends = c.ends;
    *nparts = n;
    return 0;
}

json_t *replay__position_json(const int64_t *ends, int32_t n)
{
    json_t *a = json_array();
    char tok[48];

    for (int32_t p = 0; p < n; p++) {
        es_position_format((struct es_position){p, ends[p]}, tok, sizeof(tok));
        json_array_append_new(a, json_string(tok));
    }
    return a;
}

void replay__manifest_file(json_t *files, const char *name, int64_t rows, const char *sha256)
{
    json_array_append_new(files, json_pack("{s:s,s:I,s:s}", "name", name, "rows", (json_int_t)rows,
                                           "sha256", sha256));
}

int replay__manifest_write(const char *path, const json_t *manifest)
{
    char tmp[4096];
    char *text = json_dumps(manifest, JSON_INDENT(2));
    size_t len = text != NULL ? strlen(text) : 0;
    FILE *f;
    int rc = 0;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (text == NULL || (f = fopen(tmp, "w")) == NULL) {
        rc = text == NULL ? -ENOMEM : -errno;
    } else {
        if (fwrite(text, 1, len, f) != len || fputc('\n', f) == EOF)
            rc = -errno;
        if (fclose(f) != 0 && rc == 0)
            rc = -errno;
        if (rc == 0 && rename(tmp, path) != 0)
            rc = -errno;
        if (rc != 0)
            unlink(tmp);
    }
    free(text);
    if (rc != 0)
        replay__error("could not write the manifest \"%s\": %s", path, sp_strerror(rc));
    return rc;
}

void replay__progress_init(struct replay__progress *pg, const char *what)
{
    pg->on = isatty(STDERR_FILENO) == 1;
    pg->what = what;
    pg->t0_us = sp_time_mono_us();
    pg->last_us = 0;
}

void replay__progress_update(struct replay__progress *pg, int64_t done, int64_t total)
{
    int64_t now_us = sp_time_mono_us();
    double secs = (double)(now_us - pg->t0_us) / 1e6, rate;

    if (!pg->on || (now_us - pg->last_us < 250000 && done < total))
        return;
    pg->last_us = now_us;
    rate = secs > 0 ? (double)done / secs : 0.0;
    fprintf(stderr, "\r%s %lld of %lld events, %.0f events/s, ETA %.0f s   ", pg->what,
            (long long)done, (long long)total, rate,
            rate > 0 && total > done ? (double)(total - done) / rate : 0.0);
}

void replay__progress_end(struct replay__progress *pg)
{
    if (pg->on && pg->last_us != 0)
        fputc('\n', stderr);
}
