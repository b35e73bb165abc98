/*
 * bench_json_parse: the log's JSON parser (event-store/src/json_parse.h, simdjson) against
 * jansson's json_loadb, which it replaced, on the same envelopes in the same run: reads an
 * NDJSON file (e.g. `stockpot-replay dump --limit 100000`), parses every line --repeat
 * times with each, checks that both read the same values, and prints µs per event, MB/s
 * and the ratio.
 *
 * usage: bench_json_parse FILE [--repeat K]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bench_util.h"
#include "json_parse.h"
#include "sp/time.h"

#include "sp/banned.h"

int main(int argc, char **argv)
{
    long repeat = 5;
    FILE *f;
    char *line = NULL, **lines = NULL;
    size_t cap = 0, n = 0, n_cap = 0, bytes = 0, *lens = NULL;
    ssize_t got;

    if (argc < 2 || (argc == 4 && strcmp(argv[2], "--repeat") != 0) || argc == 3 || argc > 4 ||
        (argc == 4 && bench_parse_long(argv[3], 1, 1000, &repeat) != 0)) {
        fprintf(stderr, "usage: bench_json_parse FILE [--repeat K (1..1000)]\n");
        return 2;
    }
    if ((f = fopen(argv[1], "r")) == NULL) {
        fprintf(stderr, "bench_json_parse: cannot open \"%s\"\n", argv[1]);
        return 2;
    }
    while ((got = getline(&line, &cap, f)) > 0) {
        if (n == n_cap) {
            n_cap = n_cap ? 2 * n_cap : 1024;
            lines = realloc(lines, n_cap * sizeof(*lines));
            lens = realloc(lens, n_cap * sizeof(*lens));
            if (lines == NULL || lens == NULL)
                return 1;
        }
        lens[n] = (size_t)got;
        lines[n] = malloc((size_t)got);
        if (lines[n] == NULL)
            return 1;
        memcpy(lines[n], line, (size_t)got);
        bytes += (size_t)got;
        n++;
    }
    fclose(f);
    free(line);
    if (n == 0) {
        fprintf(stderr, "bench_json_parse: \"%s\" has no lines\n", argv[1]);
        return 2;
    }
    for (size_t i = 0; i < n; i++) { /* same values, or the comparison means nothing */
        json_t *a = json_loadb(lines[i], lens[i], JSON_REJECT_DUPLICATES, NULL), *b = NULL;
        if (es_json_parse(lines[i], lens[i], &b, NULL) != 0 || a == NULL || !json_equal(a, b)) {
            fprintf(stderr, "bench_json_parse: line %zu is read differently\n", i + 1);
            return 1;
        }
        json_decref(a);
        json_decref(b);
    }
    int64_t t0 = sp_time_mono_us();
    for (long r = 0; r < repeat; r++)
        for (size_t i = 0; i < n; i++)
            json_decref(json_loadb(lines[i], lens[i], JSON_REJECT_DUPLICATES, NULL));
    int64_t t1 = sp_time_mono_us();
    for (long r = 0; r < repeat; r++)
        for (size_t i = 0; i < n; i++) {
            json_t *b = NULL;
            if (es_json_parse(lines[i], lens[i], &b, NULL) == 0)
                json_decref(b);
        }
    int64_t t2 = sp_time_mono_us();
    double per = (double)n * (double)repeat, ja = (double)(t1 - t0) / per,
           sj = (double)(t2 - t1) / per;
    printf("%zu events, %zu bytes on average, x%ld\n", n, bytes / n, repeat);
    printf("jansson json_loadb:        %.2f us/event, %.0f MB/s\n", ja,
           (double)bytes * (double)repeat / (double)(t1 - t0));
    printf("es_json_parse (simdjson): %.2f us/event, %.0f MB/s\n", sj,
           (double)bytes * (double)repeat / (double)(t2 - t1));
    printf("ratio: %.1fx faster\n", ja / sj);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    free(lens);
    return 0;
}
