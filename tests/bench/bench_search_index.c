/* Search view benchmark (in-process, no HTTP): builds the view from a recipes JSONL file
 * (RecipeCreated events made in memory, folded in batches of one write transaction each,
 * one nested transaction per event as the projector runner does) and prints the build time,
 * events/s and the view's size; then runs the queries of a file N times and prints
 * queries/s and p50/p90/p99/max latency of proj_search_recipes (read transaction included).
 * Recipe ids are snowflakes made from the record's line, not the clock, so that two runs
 * build the same view and --dump gives the same answers: a check that an engine change
 * keeps its results. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <lmdb.h>

#include "bench_util.h"
#include "es/catalogue.h"
#include "es/event.h"
#include "proj/search.h"
#include "sp/alloc.h"
#include "sp/log.h"
#include "sp/time.h"
#include "sp/banned.h"

#define BENCH_MAX_QUERIES 4096

struct bench_opts {
    const char *data;    /* recipes JSONL */
    const char *queries; /* one query per line */
    const char *dir;     /* environment directory; NULL = a temporary one, removed */
    long batch;          /* events per write transaction */
    long repeat;         /* timed passes over the queries */
    long limit;          /* hits per query */
    long map_size_mb;
    int no_facets;
    const char *dump; /* write each query's JSON answer, one line each, to this file */
};

struct bench {
    struct bench_opts opt;
    struct bench_records recipes; /* owned json_t objects */
    struct es_event *evs;         /* n_evs valid RecipeCreated events */
    size_t n_evs, skipped;
    char *queries[BENCH_MAX_QUERIES];
    size_t n_queries;
    char tmpdir[64];
    MDB_env *env;
};

/* Snowflake id of record @p i: one millisecond apart from a fixed day, node 7. */
static int64_t recipe_id(size_t i)
{
    const int64_t base_ms = 86400000LL * 365;

    return ((base_ms + (int64_t)i) << 22) | (7 << 12);
}

/* RecipeCreated of record @p i, checked against the catalogue as the runner checks it. */
static int make_event(struct bench *b, size_t i, struct es_event *ev)
{
    const json_t *rec = b->recipes.items[i];
    char id_s[24], author[24], stream[40];

    snprintf(id_s, sizeof(id_s), "%lld", (long long)recipe_id(i));
    snprintf(author, sizeof(author), "%zu", 1 + i % 1000);
    snprintf(stream, sizeof(stream), "recipe-%s", id_s);
    es_event_init(ev);
    if (es_event_make(ev, "RecipeCreated", stream, 1, author, NULL, NULL,
                      bench_recipe_payload(rec, id_s, author, true)) != 0)
        return -1;
    return es_event_check(ev, NULL, NULL);
}

static void make_events(struct bench *b)
{
    b->evs = sp_xcalloc(b->recipes.n, sizeof(*b->evs));
    for (size_t i = 0; i < b->recipes.n; i++) {
        if (make_event(b, i, &b->evs[b->n_evs]) == 0) {
            b->n_evs++;
        } else {
            es_event_release(&b->evs[b->n_evs]);
            b->skipped++;
        }
    }
}

static int load_queries(struct bench *b)
{
    FILE *f = fopen(b->opt.queries, "r");
    char line[1024];

    if (f == NULL)
        return -1;
    while (b->n_queries < BENCH_MAX_QUERIES && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] != '\0' && line[0] != '#')
            b->queries[b->n_queries++] = sp_xstrdup(line);
    }
    fclose(f);
    return b->n_queries > 0 ? 0 : -1;
}

static int open_env(struct bench *b)
{
    const char *dir = b->opt.dir;

    if (dir == NULL) {
        snprintf(b->tmpdir, sizeof(b->tmpdir), "/tmp/sp-bench-search-XXXXXX");
        if (mkdtemp(b->tmpdir) == NULL)
            return -1;
        dir = b->tmpdir;
    }
    if (mdb_env_create(&b->env) != 0 || mdb_env_set_maxdbs(b->env, PROJ_SEARCH_MAX_DBS + 2) ||
        mdb_env_set_mapsize(b->env, (size_t)b->opt.map_size_mb << 20) != 0)
        return -1;
    return mdb_env_open(b->env, dir, MDB_NOSYNC, 0600);
}

/* Fold events [from, to) in one write transaction, one nested transaction each. */
static int build_batch(
    struct bench *b, struct proj_search_writer *w, size_t from, size_t to, struct sp_errbuf *eb)
{
    MDB_txn *txn, *child;
    int rc = mdb_txn_begin(b->env, NULL, 0, &txn);

    for (size_t i = from; rc == 0 && i < to; i++) {
        rc = mdb_txn_begin(b->env, txn, 0, &child);
        if (rc == 0 && (rc = proj_search_fold(w, child, &b->evs[i], eb)) == 0)
            rc = mdb_txn_commit(child);
        else if (rc != 0 && child != NULL)
            mdb_txn_abort(child);
    }
    if (rc == 0)
        rc = proj_search_flush(w, txn, eb);
    if (rc == 0)
        return mdb_txn_commit(txn);
    mdb_txn_abort(txn);
    return rc;
}

static int build(struct bench *b)
{
    struct proj_search_writer *w;
    struct sp_errbuf eb = {{0}, {0}};
    MDB_txn *txn;
    int rc = proj_search_writer_new(&w);

    if (rc == 0 && (rc = mdb_txn_begin(b->env, NULL, 0, &txn)) == 0) {
        rc = proj_search_writer_open(w, txn, &eb);
        rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
    }
    int64_t start = sp_time_mono_us();
    for (size_t i = 0; rc == 0 && i < b->n_evs; i += (size_t)b->opt.batch) {
        size_t to = i + (size_t)b->opt.batch < b->n_evs ? i + (size_t)b->opt.batch : b->n_evs;
        rc = build_batch(b, w, i, to, &eb);
    }
    int64_t built = sp_time_mono_us();
    int sync_rc = mdb_env_sync(b->env, 1);
    int64_t synced = sp_time_mono_us();
    proj_search_writer_free(w);
    if (rc != 0) {
        fprintf(stderr, "bench_search_index: build failed: %s (%s)\n", eb.msg, sp_errname(rc));
        return rc;
    }
    double s = (double)(built - start) / 1e6;
    printf("build: %zu RecipeCreated events (%zu skipped by es_event_check), batches of %ld, "
           "MDB_NOSYNC\n",
           b->n_evs, b->skipped, b->opt.batch);
    printf("build time: %.3f s (%.0f events/s, analysis included); final sync %.3f s%s\n", s,
           (double)b->n_evs / s, (double)(synced - built) / 1e6, sync_rc ? " (failed)" : "");
    return 0;
}

static void print_size(struct bench *b)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat fs;
    char path[128];

    mdb_env_info(b->env, &info);
    mdb_env_stat(b->env, &st);
    snprintf(path, sizeof(path), "%s/data.mdb", b->opt.dir ? b->opt.dir : b->tmpdir);
    if (stat(path, &fs) != 0)
        memset(&fs, 0, sizeof(fs));
    printf("index size: data.mdb %.1f MB on disk (%llu bytes), %.1f MB of pages in use\n",
           (double)fs.st_blocks * 512 / 1e6, (unsigned long long)fs.st_blocks * 512,
           (double)(info.me_last_pgno + 1) * st.ms_psize / 1e6);
}

/* One query: read transaction, search, answer written to @p dump (if not NULL) and freed.
 * @return its latency in µs, or -1. */
static int64_t one_query(
    struct bench *b, struct proj_search_reader **r, const char *text, size_t *hits, FILE *dump)
{
    struct proj_search_query q = {.text = text,
                                  .text_len = strlen(text),
                                  .limit = (unsigned)b->opt.limit,
                                  .page = 1,
                                  .no_facets = b->opt.no_facets != 0};
    struct sp_errbuf eb = {{0}, {0}};
    MDB_txn *txn;
    json_t *out = NULL;
    int64_t t0 = sp_time_mono_us();
    int rc = mdb_txn_begin(b->env, NULL, MDB_RDONLY, &txn);

    if (rc == 0 && *r == NULL)
        rc = proj_search_reader_open(txn, r, &eb);
    if (rc == 0)
        rc = proj_search_recipes(*r, txn, &q, &out, &eb);
    if (rc == 0)
        *hits = (size_t)json_integer_value(json_object_get(out, "total_hits"));
    if (rc == 0 && dump != NULL) {
        json_dumpf(out, dump, JSON_COMPACT);
        fputc('\n', dump);
    }
    json_decref(out);
    mdb_txn_commit(txn);
    if (rc != 0) {
        fprintf(stderr, "bench_search_index: query \"%s\" failed: %s\n", text, eb.msg);
        return -1;
    }
    return sp_time_mono_us() - t0;
}

/* The warm-up pass (pages into the cache), its answers written to --dump if asked. */
static int warm_up(struct bench *b, struct proj_search_reader **r)
{
    FILE *dump = b->opt.dump ? fopen(b->opt.dump, "w") : NULL;
    size_t hits;
    int rc = b->opt.dump != NULL && dump == NULL ? -1 : 0;

    for (size_t i = 0; i < b->n_queries && rc == 0; i++)
        if (one_query(b, r, b->queries[i], &hits, dump) < 0)
            rc = -1;
    if (dump != NULL && fclose(dump) != 0)
        rc = -1;
    return rc;
}

/* The 5 slowest queries on average over @p passes (@p per_q: their summed latencies). */
static void print_slowest(const struct bench *b, int64_t *per_q, long passes)
{
    for (int worst = 0; worst < 5; worst++) {
        size_t at = 0;
        for (size_t i = 1; i < b->n_queries; i++)
            if (per_q[i] > per_q[at])
                at = i;
        printf("  slow: %.3f ms \"%s\"\n", (double)per_q[at] / (double)passes / 1000.0,
               b->queries[at]);
        per_q[at] = -1;
    }
}

static int run_queries(struct bench *b)
{
    struct proj_search_reader *r = NULL;
    size_t n = b->n_queries * (size_t)b->opt.repeat, k = 0, hits = 0, total_hits = 0;
    int64_t *lat = sp_xcalloc(n, sizeof(*lat)), *per_q = sp_xcalloc(b->n_queries, sizeof(*lat));
    int64_t *best = sp_xcalloc(b->n_queries, sizeof(*best)), best_sum = 0;
    int64_t start, elapsed;
    struct bench_latency l;

    if (warm_up(b, &r) != 0)
        return -1;
    start = sp_time_mono_us();
    for (long p = 0; p < b->opt.repeat; p++) {
        for (size_t i = 0; i < b->n_queries; i++, k++) {
            lat[k] = one_query(b, &r, b->queries[i], &hits, NULL);
            if (lat[k] < 0)
                return -1;
            per_q[i] += lat[k];
            best[i] = p == 0 || lat[k] < best[i] ? lat[k] : best[i];
            total_hits += hits;
        }
    }
    elapsed = sp_time_mono_us() - start;
    bench_latency_summarize(lat, (long)n, &l);
    printf("queries: %zu distinct x %ld passes, limit %ld, facets %s, mean %.0f hits\n",
           b->n_queries, b->opt.repeat, b->opt.limit, b->opt.no_facets ? "off" : "on",
           (double)total_hits / (double)n);
    printf("query speed: %.0f queries/s on one thread; p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, "
           "max %.3f ms\n",
           (double)n / ((double)elapsed / 1e6), l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms);
    for (size_t i = 0; i < b->n_queries; i++)
        best_sum += best[i];
    /* each query's fastest pass: what the engine costs with the machine's noise left out */
    printf("best of passes: mean %.1f us per query\n", (double)best_sum / (double)b->n_queries);
    print_slowest(b, per_q, b->opt.repeat);
    proj_search_reader_free(r);
    free(lat);
    free(per_q);
    free(best);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_search_index [options]\n"
                 "  --data FILE        recipes JSONL (default ../shared/data/recipes.jsonl)\n"
                 "  --queries FILE     one query per line (default "
                 "tests/bench/search/queries.txt)\n"
                 "  --dir DIR          build the view in DIR (default: a temporary directory, "
                 "removed)\n"
                 "  --batch N          events per write transaction (default 4096)\n"
                 "  --repeat N         timed passes over the queries (default 20)\n"
                 "  --limit N          hits per query (default 10)\n"
                 "  --no-facets        skip facet counting\n"
                 "  --dump FILE        write the JSON answer of each query to FILE, one a line\n"
                 "  --map-size-mb N    LMDB map size (default 2048)\n");
}

static int parse(struct bench_opts *o, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"data", required_argument, NULL, 'f'},
        {"queries", required_argument, NULL, 'q'},
        {"dir", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'b'},
        {"repeat", required_argument, NULL, 'r'},
        {"limit", required_argument, NULL, 'l'},
        {"map-size-mb", required_argument, NULL, 'M'},
        {"no-facets", no_argument, NULL, 'F'},
        {"dump", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch, rc = 0;

    while (rc == 0 && (ch = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (ch) {
        case 'f':
            o->data = optarg;
            break;
        case 'q':
            o->queries = optarg;
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 'F':
            o->no_facets = 1;
            break;
        case 'D':
            o->dump = optarg;
            break;
        case 'b':
            rc = bench_parse_long(optarg, 1, 1000000, &o->batch);
            break;
        case 'r':
            rc = bench_parse_long(optarg, 1, 100000, &o->repeat);
            break;
        case 'l':
            rc = bench_parse_long(optarg, 1, PROJ_SEARCH_MAX_LIMIT, &o->limit);
            break;
        case 'M':
            rc = bench_parse_long(optarg, 16, 1048576, &o->map_size_mb);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            rc = -1;
        }
    }
    if (rc != 0)
        usage(stderr);
    return rc;
}

static void remove_tmpdir(struct bench *b)
{
    char path[128];

    if (b->tmpdir[0] == '\0')
        return;
    snprintf(path, sizeof(path), "%s/data.mdb", b->tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", b->tmpdir);
    unlink(path);
    rmdir(b->tmpdir);
}

int main(int argc, char **argv)
{
    struct bench b;
    int status = 1;

    memset(&b, 0, sizeof(b));
    b.opt = (struct bench_opts){.data = "../shared/data/recipes.jsonl",
                                .queries = "tests/bench/search/queries.txt",
                                .batch = 4096,
                                .repeat = 20,
                                .limit = 10,
                                .map_size_mb = 2048};
    if (parse(&b.opt, argc, argv) != 0)
        return 2;
    sp_log_setup(SP_LOG_WARN, "bench-search-index");
    if (bench_records_load(b.opt.data, bench_recipe_of, &b.recipes) != 0 || load_queries(&b) != 0) {
        fprintf(stderr, "bench_search_index: could not load \"%s\" or \"%s\"\n", b.opt.data,
                b.opt.queries);
        goto out;
    }
    make_events(&b);
    if (open_env(&b) != 0) {
        fprintf(stderr, "bench_search_index: could not open the environment\n");
        goto out;
    }
    if (build(&b) == 0) {
        print_size(&b);
        status = run_queries(&b) == 0 ? 0 : 1;
    }
    mdb_env_close(b.env);
    remove_tmpdir(&b);
out:
    for (size_t i = 0; i < b.n_evs; i++)
        es_event_release(&b.evs[i]);
    free(b.evs);
    for (size_t i = 0; i < b.n_queries; i++)
        free(b.queries[i]);
    bench_records_release(&b.recipes, bench_recipe_free);
    return status;
}
