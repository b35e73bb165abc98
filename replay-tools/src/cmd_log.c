/* Log subcommands: dump (events as NDJSON) and verify (checksums, decoding, versions). */
#include <stdio.h>
#include <string.h>

#include "es/catalogue.h"
#include "es/log.h"
#include "cli.h"
#include "replay/replay.h"

#include "sp/banned.h"

#define READ_CHUNK 1000

static int open_log(const struct sp_config *cfg, struct es_log **log)
{
    struct sp_errbuf eb = {{0}, {0}};
    if (es_log_open(cfg, ES_LOG_READER, log, &eb) != 0) {
        replay__error("could not open the event log \"%s\": %s", sp_config_str(cfg, "log.dir"),
                      eb.msg);
        return REPLAY_EXIT_FAIL;
    }
    return 0;
}

/* Reads every partition from @p from in chunks, calling @p fn per record. */
static int scan(struct es_log *log, int64_t from, es_log_record_fn fn, void *ud)
{
    struct sp_errbuf eb = {{0}, {0}};
    int64_t next, end;
    int rc = 0;

    for (int32_t p = 0; rc == 0 && p < es_log_partitions(log); p++) {
        rc = es_log_end(log, p, &end, &eb);
        for (int64_t off = from; rc == 0 && off < end; off = next) {
            rc = es_log_read(log, p, off, READ_CHUNK, fn, ud, &next, &eb);
            if (rc == 0 && next == off)
                break;
        }
    }
    if (rc < 0)
        replay__error("could not read the event log: %s", eb.msg);
    return rc;
}

struct dump_ctx {
    const char *stream, *type;
    int64_t limit, printed, corrupt;
};

static int dump_record(const struct es_log_record *rec, void *ud)
{
    struct dump_ctx *c = ud;
    struct sp_errbuf eb = {{0}, {0}};
    struct es_event ev;
    bool keep = true;

    if (c->limit >= 0 && c->printed >= c->limit)
        return 1;
    es_event_init(&ev);
    if (es_log_record_decode(rec, &ev, &eb) != 0) {
        fprintf(stderr, "stockpot-replay: skipping offset %d:%lld: %s\n", (int)rec->pos.partition,
                (long long)rec->pos.offset, eb.msg);
        c->corrupt++;
        keep = false;
    } else {
        keep = (c->stream == NULL || strcmp(ev.stream, c->stream) == 0) &&
               (c->type == NULL || strcmp(ev.type, c->type) == 0);
    }
    es_event_release(&ev);
    if (keep) {
        fwrite(rec->value, 1, rec->value_len, stdout);
        fputc('\n', stdout);
        c->printed++;
    }
    return 0;
}

static void dump_usage(FILE *f)
{
    fprintf(f, "usage: stockpot-replay dump [--stream S] [--type T] [--from OFFSET] [--limit N]\n"
               "Prints the stored envelope JSON of each event, one per line (NDJSON), in log\n"
               "order, filtered by stream and type, from OFFSET (default 0), at most N events.\n"
               "Records that fail their checksum or do not decode are reported on stderr.\n");
}

int replay_cmd_dump(const struct sp_config *cfg, int argc, char **argv)
{
    struct dump_ctx c = {NULL, NULL, -1, 0, 0};
    struct es_log *log = NULL;
    int64_t from = 0;
    int rc;

    for (int i = 0; i < argc; i += 2) { /* every option takes a value */
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (replay__is_help(argv[i])) {
            dump_usage(stdout);
            return REPLAY_EXIT_OK;
        }
        if (strcmp(argv[i], "--stream") == 0 && val != NULL) {
            c.stream = val;
        } else if (strcmp(argv[i], "--type") == 0 && val != NULL) {
            c.type = val;
        } else if (!(strcmp(argv[i], "--from") == 0 && replay__parse_count(val, &from) == 0) &&
                   !(strcmp(argv[i], "--limit") == 0 && replay__parse_count(val, &c.limit) == 0)) {
            replay__error("dump: bad argument \"%s\"%s", argv[i],
                          val == NULL || val[0] == '-' ? "" : " or its value");
            dump_usage(stderr);
            return REPLAY_EXIT_USAGE;
        }
    }
    if ((rc = open_log(cfg, &log)) != 0)
        return rc;
    rc = scan(log, from, dump_record, &c);
    es_log_close(log);
    fflush(stdout);
    return rc < 0 ? REPLAY_EXIT_FAIL : REPLAY_EXIT_OK;
}

struct verify_ctx {
    json_t *versions; /* stream -> last version seen */
    json_t *ids;      /* event id -> offset */
    int64_t records, faults;
};

static void
fault(struct verify_ctx *c, const struct es_log_record *rec, const char *stream, const char *what)
{
    c->faults++;
    printf("fault: offset %d:%lld stream %s: %s\n", (int)rec->pos.partition,
           (long long)rec->pos.offset, stream ? stream : "?", what);
}

static void
verify_event(struct verify_ctx *c, const struct es_log_record *rec, const struct es_event *ev)
{
    json_t *last = json_object_get(c->versions, ev->stream);
    int64_t want = last ? json_integer_value(last) + 1 : 1;
    json_t *seen = json_object_get(c->ids, ev->id);
    char what[160];

    if (ev->stream_version != want) {
        snprintf(what, sizeof(what), "version %lld, expected %lld (versions not contiguous)",
                 (long long)ev->stream_version, (long long)want);
        fault(c, rec, ev->stream, what);
    }
    json_object_set_new(c->versions, ev->stream, json_integer(ev->stream_version));
    if (seen != NULL) {
        snprintf(what, sizeof(what), "event id %s also at offset %lld", ev->id,
                 (long long)json_integer_value(seen));
        fault(c, rec, ev->stream, what);
    } else {
        json_object_set_new(c->ids, ev->id, json_integer(rec->pos.offset));
    }
}

static int verify_record(const struct es_log_record *rec, void *ud)
{
    struct verify_ctx *c = ud;
    struct sp_errbuf eb = {{0}, {0}};
    struct es_event ev;
    char what[400];

    c->records++;
    es_event_init(&ev);
    if (rec->status != 0) {
        snprintf(what, sizeof(what), "checksum: %s", rec->error ? rec->error : "mismatch");
        fault(c, rec, NULL, what);
    } else if (es_log_record_decode(rec, &ev, &eb) != 0) {
        snprintf(what, sizeof(what), "does not decode: %s%s%s", eb.msg, eb.field[0] ? " at " : "",
                 eb.field);
        fault(c, rec, NULL, what);
    } else {
        verify_event(c, rec, &ev);
        if (es_event_check(&ev, NULL, &eb) != 0) { /* what every projection refuses */
            snprintf(what, sizeof(what), "breaks the catalogue: %s%s%s", eb.msg,
                     eb.field[0] ? " at " : "", eb.field);
            fault(c, rec, ev.stream, what);
        }
    }
    es_event_release(&ev);
    return 0;
}

int replay_cmd_verify(const struct sp_config *cfg, int argc, char **argv)
{
    struct verify_ctx c = {json_object(), json_object(), 0, 0};
    struct es_log *log = NULL;
    int rc;

    if (argc > 0) {
        bool help = replay__is_help(argv[0]);
        if (!help)
            replay__error("verify: unexpected argument \"%s\"", argv[0]);
        fprintf(help ? stdout : stderr,
                "usage: stockpot-replay verify\nScans the whole log: every checksum, every "
                "record decodes and matches the\nevent catalogue (schemas/events), "
                "per-stream versions contiguous from 1,\nevent ids unique. "
                "Prints each fault and a\nsummary; exit status 1 if any fault was found.\n");
        json_decref(c.versions);
        json_decref(c.ids);
        return help ? REPLAY_EXIT_OK : REPLAY_EXIT_USAGE;
    }
    if ((rc = open_log(cfg, &log)) == 0) {
        rc = scan(log, 0, verify_record, &c);
        printf("verified %lld records in %lld streams: %lld faults\n", (long long)c.records,
               (long long)json_object_size(c.versions), (long long)c.faults);
        rc = rc < 0 || c.faults > 0 ? REPLAY_EXIT_FAIL : REPLAY_EXIT_OK;
        es_log_close(log);
    }
    json_decref(c.versions);
    json_decref(c.ids);
    return rc;
}
