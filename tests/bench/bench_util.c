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

void *bench_recipe_of(const char *line)
{
    json_t *rec = json_loads(line, 0, NULL);

    if (!json_is_object(rec) || !json_is_string(json_object_get(rec, "title"))) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

void bench_recipe_free(void *rec)
{
    json_decref(rec);
}

/* Copy @p key of @p rec into @p data, or @p fallback (stolen) if absent. */
static void copy_field(json_t *data, const json_t *rec, const char *key, json_t *fallback)
{
    json_t *v = json_object_get(rec, key);

    if (v != NULL && !json_is_null(v)) {
        json_object_set(data, key, v);
        json_decref(fallback);
    } else {
        json_object_set_new(data, key, fallback);
    }
}

json_t *bench_recipe_payload(const json_t *rec,
                             const char *recipe_id,
                             const char *author_id,
                             bool with_language)
{
    json_t *data = json_object();
    const char *lang = json_string_value(json_object_get(rec, "lang"));

    json_object_set_new(data, "recipe_id", json_string(recipe_id));
    json_object_set_new(data, "author_id", json_string(author_id));
    copy_field(data, rec, "title", json_string(""));
    copy_field(data, rec, "description", json_string(""));
    copy_field(data, rec, "ingredients", json_array());
    copy_field(data, rec, "steps", json_array());
    copy_field(data, rec, "tags", json_array());
    json_object_set_new(data, "image_media_ids", json_array());
    if (with_language && lang != NULL)
        json_object_set_new(data, "language", json_string(lang));
    return data;
}
