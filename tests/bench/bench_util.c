/* Option numbers, JSONL records and latency percentiles shared by the benchmark programs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "sp/alloc.h"
#include "sp/banned.h"

int bench_parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end != '\0')
        return SP_EINVAL;
    if (errno != 0 || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int bench_records_load(const char *path, bench_record_fn make, struct bench_records *recs)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, alloc = 1024;

    recs->items = NULL;
    recs->n = 0;
    if (f == NULL)
        return -errno;
    recs->items = sp_xmalloc(alloc * sizeof(void *));
    while (getline(&line, &cap, f) > 0) {
        void *rec = make(line);
        if (rec == NULL)
            continue;
        if (recs->n == alloc) {
            alloc *= 2;
            recs->items = sp_xrealloc(recs->items, alloc * sizeof(void *));
        }
        recs->items[recs->n++] = rec;
    }
    free(line);
    fclose(f);
    if (recs->n == 0) {
        free(recs->items);
        recs->items = NULL;
        return -ENODATA;
    }
    return 0;
}

void bench_records_release(struct bench_records *recs, bench_record_free_fn free_rec)
{
    for (size_t i = 0; i < recs->n; i++)
        free_rec(recs->items[i]);
    free(recs->items);
    recs->items = NULL;
    recs->n = 0;
}

static int bench_cmp_i64(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

/* Nearest-rank percentile @p pct (1..100) of @p n > 0 sorted latencies, in ms: the
 * sample of rank ceil(pct * n / 100), computed in integers so that no rounding of a
 * double moves it. */
static double bench_pct_ms(const int64_t *sorted_us, long n, long pct)
{
    long k = (pct * n + 99) / 100;
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (double)sorted_us[k - 1] / 1000.0;
}

void bench_latency_summarize(int64_t *lat_us, long n, struct bench_latency *out)
{
    *out = (struct bench_latency){0};
    if (n <= 0)
        return;
    qsort(lat_us, (size_t)n, sizeof(int64_t), bench_cmp_i64);
    out->p50_ms = bench_pct_ms(lat_us, n, 50);
    out->p90_ms = bench_pct_ms(lat_us, n, 90);
    out->p99_ms = bench_pct_ms(lat_us, n, 99);
    out->max_ms = (double)lat_us[n - 1] / 1000.0;
}
