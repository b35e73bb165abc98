/*
 * `stockpot-replay export` run as a child process over an embedded log of hand-made events
 * (the example of projectors/tests/test_analytics.c plus a few more): the analytics
 * numbers against the events, CSV that RFC 4180 reads back (Python's csv module writes
 * it again byte for byte), NDJSON lines that parse, manifests whose SHA-256 and row counts
 * match the files, no secret in an exported event, byte-identical exports of one --until
 * position before and after more events are appended (and equal to the live view's at
 * that position), and bad arguments refused with a message. With the argument "kafka"
 * (ctest test_export_kafka): the same events on librdkafka's mock cluster, 3 partitions
 * written in transactions: --until bounds in the middle of every partition hold exactly,
 * and the tables equal the embedded log's.
 */
/* nftw() needs X/Open 5. NOLINTNEXTLINE(bugprone-*,cert-*) */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "es/catalogue.h"
#include "es/event.h"
#include "es/log.h"
#include "proj/analytics.h"
#include "replay_test_run.h"
#include "sp_test_events.h"
#include "sp_test_kafka.h"

#include "sp/banned.h"

#define SOUP_TITLE "Soup, \"Best\"\nEver"
#define BRULEE     "Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" /* "Crème brûlée" */

enum { U1 = 1001, U2 = 1002, U3 = 1003, U4 = 1004, R50 = 50, R100 = 100, R200 = 200, R300 = 300 };

static char root[64];      /* the test's directory: log/, views/, exports */
static int32_t d0;         /* Monday 2026-11-02 */
static int64_t n_appended; /* events in the log */
static char from_s[16], to_s[16];

/* ------------------------------------------------------------------ files */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL)
        fail_msg("cannot open \"%s\"", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len != NULL)
        *len = (size_t)n;
    return buf;
}

static void path_of(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s/%s", root, dir, name);
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;

    assert_int_equal(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL), 1);
    for (unsigned i = 0; i < md_len; i++)
        snprintf(out + (size_t)2 * i, 3, "%02x", md[i]);
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* The export files, manifest.json last. */
static const char *const export_files[] = {"days.csv", "active.csv", "popular.csv", "retention.csv",
                                           "manifest.json"};
#define N_EXPORT_FILES (sizeof(export_files) / sizeof(export_files[0]))

/* Whether the first @p n files of export_files are the same bytes in dirs @p a and @p b. */
static void assert_same_files(const char *a, const char *b, size_t n)
{
    const char *const *names = export_files;
    char pa[256], pb[256];

    for (size_t i = 0; i < n; i++) {
        size_t la, lb;
        path_of(pa, sizeof(pa), a, names[i]);
        path_of(pb, sizeof(pb), b, names[i]);
        char *x = read_file(pa, &la), *y = read_file(pb, &lb);
        if (la != lb || memcmp(x, y, la) != 0)
            fail_msg("%s differs between %s and %s", names[i], a, b);
        free(x);
        free(y);
    }
}

/* Whether the two exports have the same files with the same bytes. */
static void assert_same_dirs(const char *a, const char *b)
{
    assert_same_files(a, b, N_EXPORT_FILES);
}

/* ------------------------------------------------------------------ running */

static char *run(int want, const char *const *args)
{
    char *out = NULL;
    int rc = replay_test_run(&out, args);
    if (rc != want)
        fail_msg("exit %d, expected %d; output:\n%s", rc, want, out);
    return out;
}

static void run_ok(const char *const *args)
{
    free(run(0, args));
}

/* Run, expect @p want and a message holding @p msg. */
static void run_msg(int want, const char *msg, const char *const *args)
{
    char *out = run(want, args);
    if (strstr(out, msg) == NULL)
        fail_msg("output lacks \"%s\":\n%s", msg, out);
    free(out);
}

/* ------------------------------------------------------------------ the log */

/* This test's events: the log assigns their positions, so the helpers' partition is 0. */
static int64_t at(int32_t day, int h, int m, int s, int us)
{
    return sp_test_at(day, h, m, s, us);
}

static struct es_event *registered(uint64_t user, int64_t t)
{
    return sp_test_registered(user, t, 0);
}

static struct es_event *login(uint64_t user, uint64_t session, int64_t t)
{
    return sp_test_login(user, session, t, 0);
}

static struct es_event *created(uint64_t recipe, uint64_t author, const char *title, int64_t t)
{
    return sp_test_created(recipe, author, title, t, 0);
}

static struct es_event *
reaction(const char *type, uint64_t user, uint64_t recipe, uint64_t author, int64_t t)
{
    return sp_test_reaction(type, user, recipe, author, t, 0);
}

static struct es_event *
commented(uint64_t comment, uint64_t user, uint64_t recipe, uint64_t author, int64_t t)
{
    return sp_test_commented(comment, user, recipe, author, t, 0);
}

/* The example of test_analytics.c: 18 events over D0..D15. */
static size_t example(struct es_event **evs)
{
    size_t n = 0;
    evs[n++] = registered(U1, at(d0, 10, 0, 0, 0));
    evs[n++] = login(U1, 9001, at(d0, 10, 1, 0, 0));
    evs[n++] = created(R100, U1, SOUP_TITLE, at(d0, 11, 0, 0, 0));
    evs[n++] = registered(U2, at(d0, 23, 59, 59, 999999));
    evs[n++] = registered(U3, at(d0 + 1, 0, 0, 0, 0));
    evs[n++] = reaction("RecipeLiked", U2, R100, U1, at(d0 + 1, 9, 0, 0, 0));
    evs[n++] = created(R200, U3, BRULEE, at(d0 + 1, 12, 0, 0, 0));
    evs[n++] = created(R50, U3, "Bread", at(d0 + 1, 13, 0, 0, 0));
    evs[n++] = commented(7001, U2, R200, U3, at(d0 + 2, 8, 0, 0, 0));
    evs[n++] = reaction("RecipeUnliked", U2, R100, U1, at(d0 + 3, 8, 0, 0, 0));
    evs[n++] = registered(U4, at(d0 + 7, 6, 0, 0, 0));
    evs[n++] = created(R300, U4, "Cake", at(d0 + 7, 7, 0, 0, 0));
    evs[n++] = login(U1, 9002, at(d0 + 8, 7, 0, 0, 0));
    evs[n++] = reaction("RecipeLiked", U1, R300, U4, at(d0 + 8, 8, 0, 0, 0));
    evs[n++] = commented(7002, U1, R50, U3, at(d0 + 8, 9, 0, 0, 0));
    evs[n++] = reaction("RecipeLiked", U3, R100, U1, at(d0 + 14, 8, 0, 0, 0));
    evs[n++] = reaction("RecipeLiked", U3, R300, U4, at(d0 + 14, 9, 0, 0, 0));
    evs[n++] = sp_test_deleted(R300, U4, at(d0 + 15, 9, 0, 0, 0), 0);
    return n;
}

/* More traffic inside the same days: registrations, logins and likes of R100. */
static size_t more(struct es_event **evs, uint64_t first_user, size_t users)
{
    size_t n = 0;
    for (uint64_t u = first_user; u < first_user + users; u++) {
        evs[n++] = registered(u, at(d0 + 2, 6, (int)(u % 60), 0, 0));
        evs[n++] = login(u, 20000 + u, at(d0 + 9, 6, (int)(u % 60), 0, 0));
        evs[n++] = reaction("RecipeLiked", u, R100, U1, at(d0 + 12, 6, (int)(u % 60), 0, 0));
    }
    return n;
}

/* Append @p evs as batches of at most @p batch events (each a Kafka transaction), free them. */
static void append_to(struct es_log *log, struct es_event **evs, size_t n, size_t batch)
{
    struct sp_errbuf eb = {{0}, {0}};

    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        if (es_log_append(log, (const struct es_event *const *)evs + i, k, NULL, &eb) != 0)
            fail_msg("append failed: %s", eb.msg);
    }
    for (size_t i = 0; i < n; i++)
        sp_test_event_free(evs[i]);
}

/* Append to the embedded log, one batch. */
static void append(struct es_event **evs, size_t n)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct es_log *log = NULL;
    char dir[128];

    snprintf(dir, sizeof(dir), "%s/log", root);
    if (es_log_open_lmdb(dir, 64U << 20, 1U << 20, ES_LOG_WRITER, &log, &eb) != 0)
        fail_msg("cannot open the log: %s", eb.msg);
    append_to(log, evs, n, n);
    es_log_close(log);
    n_appended += (int64_t)n;
}

static int setup(void **state)
{
    struct es_event *evs[64];
    char dir[128];
    (void)state;

    snprintf(root, sizeof(root), "/tmp/sp-export-XXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof(dir), "%s/log", root);
    setenv("STOCKPOT_LOG_DIR", dir, 1);
    snprintf(dir, sizeof(dir), "%s/views", root);
    setenv("STOCKPOT_VIEWS_DIR", dir, 1);
    setenv("STOCKPOT_VIEWS_MAP_SIZE_MB", "64", 1);
    setenv("STOCKPOT_LOG_MAP_SIZE_MB", "64", 1);
    snprintf(dir, sizeof(dir), "%s/tmp", root);
    assert_int_equal(mkdir(dir, 0700), 0);
    setenv("TMPDIR", dir, 1);
    sp_test_events_reset();
    assert_int_equal(proj_analytics_date_parse("2026-11-02", &d0), 0);
    proj_analytics_date_format(d0, from_s, sizeof(from_s));
    proj_analytics_date_format(d0 + 15, to_s, sizeof(to_s));
    append(evs, example(evs));
    append(evs, more(evs, 2001, 6));
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    sp_test_events_reset();
    return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------ checks */

/*
 * Python's csv module reads every CSV file of @p dir and writes it again with
 * lineterminator CRLF and minimal quoting: RFC 4180 output comes back byte for byte. It
 * prints "<file> <rows>" per file.
 */
static char *python_csv_check(const char *dir)
{
    static const char script[] =
        "import csv, io, os, sys\n"
        "d = sys.argv[1]\n"
        "for name in sorted(os.listdir(d)):\n"
        "    if not name.endswith('.csv'):\n"
        "        continue\n"
        "    raw = open(os.path.join(d, name), 'rb').read()\n"
        "    rows = list(csv.reader(io.StringIO(raw.decode('utf-8'), newline=''), strict=True))\n"
        "    out = io.StringIO(newline='')\n"
        "    csv.writer(out, lineterminator='\\r\\n').writerows(rows)\n"
        "    assert out.getvalue().encode('utf-8') == raw, name + ' is not canonical RFC 4180'\n"
        "    assert all(len(r) == len(rows[0]) for r in rows), name + ' has ragged rows'\n"
        "    print(name, len(rows) - 1)\n";
    char python[] = "python3", spath[160], dpath[160];
    char *const argv[] = {python, spath, dpath, NULL};
    char *out = NULL;
    FILE *f;

    snprintf(spath, sizeof(spath), "%s/csvcheck.py", root);
    snprintf(dpath, sizeof(dpath), "%s/%s", root, dir);
    f = fopen(spath, "w");
    assert_non_null(f);
    fputs(script, f);
    fclose(f);
    if (replay_test_exec(&out, argv) != 0)
        fail_msg("python3 csv check of %s failed:\n%s", dir, out);
    return out;
}

/* The manifest of @p dir: every file's SHA-256 and, for NDJSON, its row count. */
static json_t *check_manifest(const char *manifest, const char *files_dir, const char *kind)
{
    json_error_t jerr;
    json_t *m = json_load_file(manifest, 0, &jerr), *f;
    size_t i;

    if (m == NULL)
        fail_msg("manifest %s: %s", manifest, jerr.text);
    assert_string_equal(json_string_value(json_object_get(m, "format")), "stockpot-export/1");
    assert_string_equal(json_string_value(json_object_get(m, "kind")), kind);
    json_array_foreach(json_object_get(m, "files"), i, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        char path[256], sha[65];
        size_t len;
        char *data;
        snprintf(path, sizeof(path), "%s/%s", files_dir, name);
        data = read_file(path, &len);
        sha256_hex(data, len, sha);
        assert_string_equal(json_string_value(json_object_get(f, "sha256")), sha);
        if (strstr(name, ".ndjson") != NULL)
            assert_int_equal(json_integer_value(json_object_get(f, "rows")),
                             count_char(data, '\n'));
        free(data);
    }
    return m;
}

/* The row of days.csv for @p day, as fields. */
static void day_row(const char *csv, int32_t day, char fields[18][24])
{
    char date[16], key[20];
    const char *p;
    size_t k = 0;

    proj_analytics_date_format(day, date, sizeof(date));
    snprintf(key, sizeof(key), "\r\n%s,", date);
    p = strstr(csv, key);
    if (p == NULL)
        fail_msg("days.csv has no row for %s", date);
    for (p += 2; *p != '\r' && k < 18; k++) {
        size_t n = strcspn(p, ",\r");
        snprintf(fields[k], 24, "%.*s", (int)n, p);
        p += n + (p[n] == ',');
    }
    assert_int_equal(k, 18);
}

/* ------------------------------------------------------------------ tests */

static void test_bad_arguments(void **state)
{
    char dir[128];
    (void)state;

    snprintf(dir, sizeof(dir), "%s/never", root);
    run_msg(2, "--from and --to are required",
            (const char *[]){"export", "analytics", "--format", "csv", "--out", dir, NULL});
    run_msg(2, "bad --from \"2026-13-01\"",
            (const char *[]){"export", "analytics", "--from", "2026-13-01", "--to", "2026-12-01",
                             "--format", "csv", "--out", dir, NULL});
    run_msg(2, "--to is before --from",
            (const char *[]){"export", "analytics", "--from", "2026-12-02", "--to", "2026-12-01",
                             "--format", "csv", "--out", dir, NULL});
    run_msg(2, "spans 401 days; at most 400",
            (const char *[]){"export", "analytics", "--from", "2026-01-01", "--to", "2027-02-05",
                             "--format", "csv", "--out", dir, NULL});
    run_msg(2, "unknown --format \"xml\"",
            (const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                             "xml", "--out", dir, NULL});
    run_msg(2, "--format is required", (const char *[]){"export", "events", "--out", dir, NULL});
    run_msg(2, "unknown --window \"1y\"",
            (const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                             "csv", "--out", dir, "--window", "7d,1y", NULL});
    run_msg(2, "unknown --type \"RecipeBaked\"",
            (const char *[]){"export", "events", "--format", "ndjson", "--type",
                             "RecipeLiked,RecipeBaked", NULL});
    run_msg(2, "bad --until position \"0-5\"",
            (const char *[]){"export", "events", "--format", "ndjson", "--until", "0-5", NULL});
    run_msg(
        2, "is beyond the end of the log",
        (const char *[]){"export", "events", "--format", "ndjson", "--until", "0:100000", NULL});
    run_msg(2, "names partition 1, but the log has 1 partition",
            (const char *[]){"export", "events", "--format", "ndjson", "--until", "0:3,1:0", NULL});
    run_msg(2, "names partition 0 twice",
            (const char *[]){"export", "events", "--format", "ndjson", "--until", "0:3", "--until",
                             "0:4", NULL});
    run_msg(2, "--window is an option of export analytics",
            (const char *[]){"export", "events", "--format", "ndjson", "--window", "7d", NULL});
    run_msg(2, "bad --limit \"101\"",
            (const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                             "csv", "--out", dir, "--limit", "101", NULL});
    run_msg(2, "expected \"analytics\" or \"events\"", (const char *[]){"export", "views", NULL});
    run_msg(0, "--until", (const char *[]){"export", "--help", NULL});
    assert_int_equal(access(dir, F_OK), -1); /* nothing was created */
}

static void test_view_not_built(void **state)
{
    char dir[128];
    (void)state;

    snprintf(dir, sizeof(dir), "%s/unbuilt", root);
    run_msg(1, "stockpot-replay rebuild analytics",
            (const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                             "csv", "--out", dir, NULL});
    assert_int_equal(access(dir, F_OK), -1); /* the directory it made is gone again */
}

static void test_analytics_csv(void **state)
{
    char dir[128], path[160], f[18][24], *days, *popular, *checked;
    json_t *m;
    (void)state;

    run_ok((const char *[]){"rebuild", "analytics", NULL});
    snprintf(dir, sizeof(dir), "%s/a-csv", root);
    run_ok((const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                            "csv", "--out", dir, NULL});
    snprintf(path, sizeof(path), "%s/manifest.json", dir);
    m = check_manifest(path, dir, "analytics");
    assert_string_equal(json_string_value(json_array_get(json_object_get(m, "position"), 0)),
                        "0:36");
    assert_string_equal(json_string_value(json_object_get(m, "from")), "2026-11-02");
    json_decref(m);

    checked = python_csv_check("a-csv");
    assert_non_null(strstr(checked, "days.csv 16\n"));
    assert_non_null(strstr(checked, "active.csv 20\n")); /* 16 days, 3 weeks, 1 month */
    assert_non_null(strstr(checked, "popular.csv 7\n"));
    assert_non_null(strstr(checked, "retention.csv 5\n")); /* cohorts D0, D7: 3 + 2 weeks */
    free(checked);

    /* The numbers of the example: DAU, registrations (+6 on D2), likes (+6 on D12). */
    path_of(path, sizeof(path), "a-csv", "days.csv");
    days = read_file(path, NULL);
    assert_non_null(strstr(days, "date,active,registrations,logins,refreshes,logouts,"));
    day_row(days, d0, f);
    assert_string_equal(f[1], "2"); /* active */
    assert_string_equal(f[2], "2"); /* registrations */
    assert_string_equal(f[3], "1"); /* logins */
    day_row(days, d0 + 1, f);
    assert_string_equal(f[7], "2"); /* recipes_created */
    day_row(days, d0 + 2, f);
    assert_string_equal(f[1], "7"); /* U2 and the six new users */
    assert_string_equal(f[2], "6");
    day_row(days, d0 + 3, f);
    assert_string_equal(f[11], "1"); /* unlikes */
    day_row(days, d0 + 12, f);
    assert_string_equal(f[10], "6"); /* likes */
    day_row(days, d0 + 15, f);
    assert_string_equal(f[9], "1"); /* recipes_deleted */
    free(days);

    /* Popular, ranked: all-time R50 and R200 (2, ties by id), R100 (8 likes - 1 unlike). The
     * title with a comma, quotes and a line break is quoted with its quotes doubled. */
    path_of(path, sizeof(path), "a-csv", "popular.csv");
    popular = read_file(path, NULL);
    assert_non_null(strstr(popular, "window,rank,recipe_id,title,author_id,score,likes,"
                                    "comments,unlikes\r\n7d,1,100,\"Soup, \"\"Best\"\"\nEver\","
                                    "1001,7,7,0,0\r\n30d,1,100,"));
    assert_non_null(strstr(popular, "\r\nall,1,100,\"Soup, \"\"Best\"\"\nEver\",1001,7,8,0,1\r\n"
                                    "all,2,50,Bread,1003,2,0,1,0\r\n"
                                    "all,3,200," BRULEE ",1003,2,0,1,0\r\n"));
    assert_null(strstr(popular, "Cake")); /* deleted */
    free(popular);
}

static void test_analytics_ndjson(void **state)
{
    char dir[128], path[160], *text, *line, *save = NULL;
    json_t *m, *row;
    int n = 0;
    (void)state;

    snprintf(dir, sizeof(dir), "%s/a-ndjson", root);
    run_ok((const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                            "ndjson", "--out", dir, "--window", "all", "--limit", "2", NULL});
    snprintf(path, sizeof(path), "%s/manifest.json", dir);
    m = check_manifest(path, dir, "analytics");
    json_decref(m);
    path_of(path, sizeof(path), "a-ndjson", "popular.ndjson");
    text = read_file(path, NULL);
    assert_string_equal(
        text, "{\"window\":\"all\",\"rank\":1,\"recipe_id\":\"100\",\"title\":\"Soup, "
              "\\\"Best\\\"\\nEver\","
              "\"author_id\":\"1001\",\"score\":7,\"likes\":8,\"comments\":0,\"unlikes\":1}\n"
              "{\"window\":\"all\",\"rank\":2,\"recipe_id\":\"50\",\"title\":\"Bread\","
              "\"author_id\":\"1003\",\"score\":2,\"likes\":0,\"comments\":1,\"unlikes\":0}\n");
    free(text);
    path_of(path, sizeof(path), "a-ndjson", "retention.ndjson");
    text = read_file(path, NULL);
    assert_non_null(strstr(text, "\"cohort_week\":\"2026-11-02\",\"size\":9,\"week\":1,"
                                 "\"active\":7,\"share\":0.777778"));
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        row = json_loads(line, 0, NULL);
        assert_non_null(row);
        assert_true(json_is_string(json_object_get(row, "cohort_week")));
        assert_true(json_is_real(json_object_get(row, "share")));
        json_decref(row);
        n++;
    }
    assert_int_equal(n, 5);
    free(text);
}

static void test_events(void **state)
{
    char path[160], mpath[192], *text, *line, *save = NULL, *checked;
    json_t *m, *ev;
    int n = 0, recipes = 0;
    (void)state;

    path_of(path, sizeof(path), "ev", "");
    assert_int_equal(mkdir(path, 0700), 0);
    path_of(path, sizeof(path), "ev", "all.ndjson");
    run_ok((const char *[]){"export", "events", "--format", "ndjson", "--out", path, NULL});
    snprintf(mpath, sizeof(mpath), "%s.manifest.json", path);
    path_of(path, sizeof(path), "ev", "");
    m = check_manifest(mpath, path, "events");
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(json_object_get(m, "files"), 0), "rows")),
        n_appended);
    json_decref(m);
    path_of(path, sizeof(path), "ev", "all.ndjson");
    text = read_file(path, NULL);
    assert_null(strstr(text, "password_hash"));
    assert_null(strstr(text, "refresh_hash"));
    assert_null(strstr(text, "SECRETPWHASH"));
    assert_null(strstr(text, "5ec5e75e"));
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        ev = json_loads(line, 0, NULL);
        assert_non_null(ev);
        assert_int_equal(json_integer_value(json_object_get(ev, "offset")), n);
        if (n == 2) {
            assert_string_equal(json_string_value(json_object_get(ev, "type")), "RecipeCreated");
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(ev, "data"), "title")),
                SOUP_TITLE);
            assert_string_equal(json_string_value(json_object_get(ev, "time")),
                                "2026-11-02T11:00:00.000000Z");
            assert_string_equal(json_string_value(json_object_get(ev, "actor")), "1001");
        }
        json_decref(ev);
        n++;
    }
    assert_int_equal(n, n_appended);
    free(text);

    /* Filters: RecipeCreated on D1 only; CSV through Python's csv module. */
    path_of(path, sizeof(path), "ev", "d1.csv");
    run_ok((const char *[]){"export", "events", "--format", "csv", "--type",
                            "RecipeCreated,RecipeLiked", "--from", "2026-11-03", "--to",
                            "2026-11-03", "--out", path, NULL});
    checked = python_csv_check("ev");
    assert_non_null(strstr(checked, "d1.csv 3\n")); /* R200, R50, U2 likes R100 */
    free(checked);
    text = read_file(path, NULL);
    assert_non_null(strstr(text,
                           "partition,offset,stream,stream_version,type,time,actor,id,data\r\n"
                           "0,5,user-1002,2,RecipeLiked,2026-11-03T09:00:00.000000Z,1002,"));
    assert_non_null(strstr(text, ",\"{\"\"user_id\"\":\"\"1002\"\",\"\"recipe_id\"\":\"\"100\"\","
                                 "\"\"recipe_author_id\"\":\"\"1001\"\"}\"\r\n"));
    for (const char *p = text; (p = strstr(p, "RecipeCreated")) != NULL; p++)
        recipes++;
    assert_int_equal(recipes, 2);
    free(text);

    /* An existing file is kept without --force. */
    run_msg(1, "exists (--force replaces it)",
            (const char *[]){"export", "events", "--format", "csv", "--out", path, NULL});
    run_ok((const char *[]){"export", "events", "--format", "csv", "--out", path, "--force", NULL});
}

/* One --until position gives the same bytes before and after more events are appended,
 * and the same as the live view had at that position. */
static void test_until_reproducible(void **state)
{
    struct es_event *evs[64];
    char until[32], a[128], b[128], c[128], pa[160], pb[160];
    char *x, *y;
    size_t lx, ly;
    (void)state;

    snprintf(until, sizeof(until), "0:%lld", (long long)n_appended);
    snprintf(a, sizeof(a), "%s/u1", root);
    snprintf(b, sizeof(b), "%s/u2", root);
    snprintf(c, sizeof(c), "%s/live1", root);
    path_of(pa, sizeof(pa), "ev", "u1.ndjson");
    path_of(pb, sizeof(pb), "ev", "u2.ndjson");
    run_ok((const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                            "csv", "--out", a, "--until", until, NULL});
    run_ok((const char *[]){"export", "events", "--format", "ndjson", "--out", pa, "--until", until,
                            NULL});
    run_ok((const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                            "csv", "--out", c, NULL}); /* the live view, rebuilt at 0:36 */
    assert_same_dirs("u1", "live1");

    append(evs, more(evs, 3001, 5));
    run_ok((const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                            "csv", "--out", b, "--until", until, NULL});
    run_ok((const char *[]){"export", "events", "--format", "ndjson", "--out", pb, "--until", until,
                            NULL});
    assert_same_dirs("u1", "u2");
    x = read_file(pa, &lx);
    y = read_file(pb, &ly);
    assert_int_equal(lx, ly);
    assert_memory_equal(x, y, lx);
    free(x);
    free(y);

    /* the new events are in a later position: the export differs, and counts them */
    snprintf(until, sizeof(until), "0:%lld", (long long)n_appended);
    snprintf(b, sizeof(b), "%s/u3", root);
    run_ok((const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                            "csv", "--out", b, "--until", until, NULL});
    path_of(pb, sizeof(pb), "u3", "days.csv");
    x = read_file(pb, NULL);
    assert_non_null(strstr(x, "\r\n2026-11-04,12,11,")); /* D2: 6 + 5 registrations */
    free(x);
    /* the private view is gone */
    snprintf(a, sizeof(a), "%s/tmp", root);
    DIR *d = opendir(a);
    struct dirent *e;
    int entries = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        entries += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(entries, 0);
}

static void test_force(void **state)
{
    char dir[128], path[160];
    (void)state;

    snprintf(dir, sizeof(dir), "%s/a-csv", root);
    run_msg(1, "exists and is not empty",
            (const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                             "csv", "--out", dir, NULL});
    run_ok((const char *[]){"export", "analytics", "--from", from_s, "--to", from_s, "--format",
                            "ndjson", "--out", dir, "--force", NULL});
    snprintf(path, sizeof(path), "%s/manifest.json", dir);
    json_decref(check_manifest(path, dir, "analytics"));
}

/* ------------------------------------------------------------------ Kafka */

#define KTOPIC "stockpot.export-test"
#define KPARTS 3

static struct sp_test_kafka mock;

static struct es_kafka_opts kafka_opts(void)
{
    struct es_kafka_opts ko = {mock.brokers, KTOPIC, KPARTS, 3, "test-export", 10000, 1U << 20};
    return ko;
}

/* The same events as the embedded log, on a 3-partition topic, in transactions of 4 and 5
 * events. (A real broker's commit markers would leave gaps between offsets; librdkafka
 * 2.0.2's mock writes none, so the gaps themselves are not exercised here.) */
static int setup_kafka(void **state)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct es_kafka_opts ko;
    struct es_log *log = NULL;
    struct es_event *evs[64];

    setup(state);
    if (sp_test_kafka_start(&mock, 3, KTOPIC, KPARTS) != 0)
        return -1;
    setenv("STOCKPOT_KAFKA_BROKERS", mock.brokers, 1);
    setenv("STOCKPOT_KAFKA_TOPIC", KTOPIC, 1);
    setenv("STOCKPOT_KAFKA_PARTITIONS", "3", 1);
    setenv("STOCKPOT_KAFKA_REPLICATION_FACTOR", "3", 1);
    setenv("STOCKPOT_KAFKA_TIMEOUT_MS", "10000", 1);
    ko = kafka_opts();
    if (es_log_open_kafka(&ko, ES_LOG_WRITER, &log, &eb) != 0)
        fail_msg("kafka writer: %s", eb.msg);
    sp_test_events_reset();
    append_to(log, evs, example(evs), 4);
    append_to(log, evs, more(evs, 2001, 6), 5);
    es_log_close(log);
    return 0;
}

static int teardown_kafka(void **state)
{
    sp_test_kafka_stop(&mock);
    return teardown(state);
}

/* What the topic holds: each record's partition, offset and type. */
struct krec {
    int32_t partition;
    int64_t offset;
    char type[32];
};

struct kscan {
    struct krec recs[128];
    size_t n;
};

static int krecord(const struct es_log_record *rec, void *ud)
{
    struct kscan *k = ud;
    struct es_event ev;

    es_event_init(&ev);
    assert_int_equal(es_log_record_decode(rec, &ev, NULL), 0);
    assert_true(k->n < 128);
    k->recs[k->n].partition = rec->pos.partition;
    k->recs[k->n].offset = rec->pos.offset;
    snprintf(k->recs[k->n].type, sizeof(k->recs[k->n].type), "%s", ev.type);
    k->n++;
    es_event_release(&ev);
    return 0;
}

static void kafka_scan(struct kscan *k, int64_t ends[KPARTS])
{
    struct sp_errbuf eb = {{0}, {0}};
    struct es_kafka_opts ko = kafka_opts();
    struct es_log *log = NULL;
    int64_t next;

    k->n = 0;
    assert_int_equal(es_log_open_kafka(&ko, ES_LOG_READER, &log, &eb), 0);
    for (int32_t p = 0; p < KPARTS; p++) {
        assert_int_equal(es_log_end(log, p, &ends[p], &eb), 0);
        for (int64_t off = 0; off < ends[p]; off = next) {
            assert_int_equal(es_log_read(log, p, off, 100, krecord, k, &next, &eb), 0);
            if (next == off)
                break;
        }
    }
    es_log_close(log);
    assert_int_equal(k->n, 36);
}

/* The same tables; the manifests differ (their options). */
static void assert_same_tables(const char *a, const char *b)
{
    assert_same_files(a, b, N_EXPORT_FILES - 1);
}

/* The whole topic gives the tables the embedded log gives: the view depends only on
 * which events were folded, not on partitions. A partition left out of --until is
 * refused. */
static void test_kafka_same_as_lmdb(void **state)
{
    struct kscan k;
    int64_t ends[KPARTS];
    char until[96], dir[128];
    (void)state;

    kafka_scan(&k, ends);
    snprintf(dir, sizeof(dir), "%s/kl", root);
    setenv("STOCKPOT_LOG_BACKEND", "lmdb", 1);
    run_ok((const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                            "csv", "--out", dir, "--until", "0:36", NULL});
    setenv("STOCKPOT_LOG_BACKEND", "kafka", 1);
    snprintf(until, sizeof(until), "0:%lld,1:%lld,2:%lld", (long long)ends[0], (long long)ends[1],
             (long long)ends[2]);
    snprintf(dir, sizeof(dir), "%s/kk", root);
    run_ok((const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                            "csv", "--out", dir, "--until", until, NULL});
    assert_same_tables("kl", "kk");
    snprintf(until, sizeof(until), "0:%lld", (long long)ends[0]);
    run_msg(2, "names no position for partition 1",
            (const char *[]){"export", "events", "--format", "csv", "--until", until, NULL});
}

/* Bounds in the middle of each partition: exactly the records below them, on every
 * export, byte-identical twice. */
static void test_kafka_mid_bounds(void **state)
{
    struct kscan k;
    int64_t ends[KPARTS], bounds[KPARTS] = {0};
    size_t per[KPARTS] = {0}, seen[KPARTS] = {0};
    int64_t want_rows = 0, want_regs = 0, regs = 0, counted = 0;
    char until[96], path[160], tok[32], *text, *line, *save = NULL;
    json_t *m;
    (void)state;

    setenv("STOCKPOT_LOG_BACKEND", "kafka", 1);
    kafka_scan(&k, ends);
    for (size_t i = 0; i < k.n; i++)
        per[k.recs[i].partition]++;
    for (size_t i = 0; i < k.n; i++) { /* the bound: the offset of each partition's middle */
        int32_t p = k.recs[i].partition;
        if (seen[p]++ == per[p] / 2)
            bounds[p] = k.recs[i].offset;
    }
    for (size_t i = 0; i < k.n; i++) {
        if (k.recs[i].offset < bounds[k.recs[i].partition]) {
            want_rows++;
            want_regs += strcmp(k.recs[i].type, "UserRegistered") == 0;
        }
    }
    assert_true(want_rows > 3 && want_rows < 33 && want_regs > 0);
    snprintf(until, sizeof(until), "0:%lld,1:%lld,2:%lld", (long long)bounds[0],
             (long long)bounds[1], (long long)bounds[2]);

    path_of(path, sizeof(path), "kev.ndjson", "");
    path[strlen(path) - 1] = '\0';
    run_ok((const char *[]){"export", "events", "--format", "ndjson", "--out", path, "--until",
                            until, NULL});
    text = read_file(path, NULL);
    assert_int_equal(count_char(text, '\n'), want_rows);
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        json_t *ev = json_loads(line, 0, NULL);
        int32_t p = (int32_t)json_integer_value(json_object_get(ev, "partition"));
        assert_true(json_integer_value(json_object_get(ev, "offset")) < bounds[p]);
        json_decref(ev);
    }
    free(text);
    strncat(path, ".manifest.json", sizeof(path) - strlen(path) - 1);
    m = json_load_file(path, 0, NULL);
    assert_non_null(m);
    for (int32_t p = 0; p < KPARTS; p++) {
        snprintf(tok, sizeof(tok), "%d:%lld", (int)p, (long long)bounds[p]);
        assert_string_equal(
            json_string_value(json_array_get(json_object_get(m, "position"), (size_t)p)), tok);
    }
    json_decref(m);

    for (int i = 0; i < 2; i++) {
        char dir[128];
        snprintf(dir, sizeof(dir), "%s/km%d", root, i);
        run_ok((const char *[]){"export", "analytics", "--from", from_s, "--to", to_s, "--format",
                                "csv", "--out", dir, "--until", until, NULL});
    }
    assert_same_dirs("km0", "km1");
    /* every event below the bounds is counted once, by its type's counter */
    path_of(path, sizeof(path), "km0", "days.csv");
    text = read_file(path, NULL);
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char *c = strchr(line, ','); /* date,active,registrations,logins,... */
        if (line[0] != '2')
            continue; /* the header */
        c = strchr(c + 1, ',');
        regs += strtoll(c + 1, NULL, 10);
        for (; c != NULL; c = strchr(c + 1, ','))
            counted += strtoll(c + 1, NULL, 10);
    }
    free(text);
    assert_int_equal(counted, want_rows);
    assert_int_equal(regs, want_regs);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_view_not_built),
        cmocka_unit_test(test_analytics_csv), cmocka_unit_test(test_analytics_ndjson),
        cmocka_unit_test(test_events),        cmocka_unit_test(test_until_reproducible),
        cmocka_unit_test(test_force),
    };
    const struct CMUnitTest kafka_tests[] = {
        cmocka_unit_test(test_kafka_same_as_lmdb),
        cmocka_unit_test(test_kafka_mid_bounds),
    };

    if (argc > 1 && strcmp(argv[1], "kafka") == 0) /* ctest test_export_kafka */
        return cmocka_run_group_tests(kafka_tests, setup_kafka, teardown_kafka);
    return cmocka_run_group_tests(tests, setup, teardown);
}
