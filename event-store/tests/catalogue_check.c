/*
 * catalogue_check: reads NDJSON lines {"type": "<Type>", "data": {...}} on stdin and prints
 * one verdict per line from es_data_check: "ok", or "bad\t<field>\t<message>". Driven by
 * test_catalogue_schema.py, which asks a real JSON Schema validator the same questions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/catalogue.h"

#include "sp/banned.h"

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    while ((n = getline(&line, &cap, stdin)) > 0) {
        struct sp_errbuf eb = {{0}, {0}};
        json_error_t jerr;
        json_t *root = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &jerr);
        const struct es_event_type *t =
            es_catalogue_get(es_type_of(json_string_value(json_object_get(root, "type"))));

        if (root == NULL || t == NULL) {
            fprintf(stderr, "catalogue_check: bad input line: %s", line);
            json_decref(root);
            free(line);
            return 2;
        }
        if (es_data_check(t, json_object_get(root, "data"), &eb) == 0)
            printf("ok\n");
        else
            printf("bad\t%s\t%s\n", eb.field, eb.msg);
        json_decref(root);
    }
    free(line);
    return 0;
}
