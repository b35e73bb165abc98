/* Configuration: one table of keys driving defaults, file parsing, env overrides and help. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp/alloc.h"
#include "sp/config.h"
#include "sp/log.h"
#include "sp/banned.h"

enum sp__cfg_type { SP__CFG_STR, SP__CFG_INT, SP__CFG_BOOL, SP__CFG_ENUM, SP__CFG_REAL };

struct sp__cfg_key {
    const char *key;
    enum sp__cfg_type type;
    const char *def;   /* default, as text */
    int64_t min, max;  /* bounds for integers and reals */
    const char *enums; /* "|"-separated allowed values for enums */
    const char *desc;
};

#define MIB INT64_C(1048576)

/* The one table of every key (see sp/config.h). */
static const struct sp__cfg_key sp__keys[] = {
    {"mode", SP__CFG_ENUM, "dev", 0, 0, "dev|production",
     "dev or production (production requires jwt.secret)"},
    {"logging.level", SP__CFG_ENUM, "info", 0, 0, "debug|info|warn|error", "minimum log level"},
    {"log.backend", SP__CFG_ENUM, "lmdb", 0, 0, "lmdb|kafka",
     "event log backend: embedded LMDB log or Apache Kafka"},
    {"log.dir", SP__CFG_STR, "var/eventlog", 0, 0, NULL, "embedded LMDB log directory"},
    {"log.map_size_mb", SP__CFG_INT, "4096", 1, INT64_C(1024) * 1024, NULL,
     "LMDB map size of the log, MiB"},
    {"log.max_event_bytes", SP__CFG_INT, "1048576", 1024, 64 * MIB, NULL,
     "cap on one encoded event, bytes"},
    {"kafka.brokers", SP__CFG_STR, "localhost:9092", 0, 0, NULL,
     "Kafka bootstrap servers, host:port[,host:port...]"},
    {"kafka.topic", SP__CFG_STR, "stockpot.events", 0, 0, NULL, "Kafka topic of the event log"},
    {"kafka.partitions", SP__CFG_INT, "6", 1, 100000, NULL,
     "partitions of the topic when Stockpot creates it"},
    {"kafka.replication_factor", SP__CFG_INT, "3", 1, 32767, NULL,
     "replication factor of the topic when Stockpot creates it"},
    {"kafka.transactional_id", SP__CFG_STR, "stockpot-command-api", 0, 0, NULL,
     "transactional.id of the log writer; a new writer with the same id fences the old"},
    {"kafka.timeout_ms", SP__CFG_INT, "10000", 100, 3600000, NULL,
     "longest wait for one Kafka operation (append, read, metadata), milliseconds"},
    {"writemodel.dir", SP__CFG_STR, "var/writemodel", 0, 0, NULL,
     "command-api write model LMDB directory"},
    {"writemodel.map_size_mb", SP__CFG_INT, "1024", 1, INT64_C(1024) * 1024, NULL,
     "LMDB map size of the write model, MiB"},
    {"command.host", SP__CFG_STR, "127.0.0.1", 0, 0, NULL, "command-api listen address"},
    {"command.port", SP__CFG_INT, "8080", 0, 65535, NULL, "command-api listen port (0 = any)"},
    {"query.host", SP__CFG_STR, "127.0.0.1", 0, 0, NULL, "query-api listen address"},
    {"query.port", SP__CFG_INT, "8081", 0, 65535, NULL, "query-api listen port (0 = any)"},
    {"projector.host", SP__CFG_STR, "127.0.0.1", 0, 0, NULL, "projector listen address"},
    {"projector.port", SP__CFG_INT, "8082", 0, 65535, NULL, "projector listen port (0 = any)"},
    {"pg.conninfo", SP__CFG_STR, "", 0, 0, NULL,
     "libpq connection string (\"\" = libpq defaults / PG* env)"},
    {"jwt.secret", SP__CFG_STR, "", 0, 0, NULL,
     "HS256 key for access tokens (required in production)"},
    {"jwt.ttl_s", SP__CFG_INT, "900", 1, 86400, NULL, "access token lifetime, seconds"},
    {"auth.rate_limit_per_minute", SP__CFG_INT, "30", 0, 1000000, NULL,
     "login and registration requests per minute per client address, each counted apart "
     "(a whole minute's worth may come at once; 0 = no limit)"},
    {"refresh.ttl_s", SP__CFG_INT, "2592000", 60, 31622400, NULL,
     "refresh token lifetime, seconds"},
    {"argon2.t_cost", SP__CFG_INT, "2", 1, 64, NULL, "argon2id iterations (RFC 9106 §4)"},
    {"argon2.m_cost_kib", SP__CFG_INT, "19456", 8, INT64_C(4) * 1024 * 1024, NULL,
     "argon2id memory, KiB"},
    {"argon2.parallelism", SP__CFG_INT, "1", 1, 64, NULL, "argon2id lanes"},
    {"http.max_body_bytes", SP__CFG_INT, "262144", 1024, 64 * MIB, NULL, "request body cap, bytes"},
    {"http.max_header_bytes", SP__CFG_INT, "16384", 1024, MIB, NULL, "request header cap, bytes"},
    {"http.timeout_s", SP__CFG_INT, "30", 1, 3600, NULL, "request read/write timeout, seconds"},
    {"http.max_json_depth", SP__CFG_INT, "16", 1, 1000, NULL, "maximum nesting of request JSON"},
    {"command.batch_max", SP__CFG_INT, "256", 1, 65536, NULL,
     "most commands in one group-commit batch"},
    {"chat.max_members", SP__CFG_INT, "256", 2, 1024, NULL,
     "members of a chat group at most, its admin included"},
    {"command.writemodel_commit_ms", SP__CFG_INT, "10", 0, 1000, NULL,
     "longest time the write model folds batches before it commits them, milliseconds"},
    {"query.after_timeout_ms", SP__CFG_INT, "5000", 0, 600000, NULL,
     "longest wait for Stockpot-After, milliseconds"},
    {"query.sse_poll_ms", SP__CFG_INT, "1000", 100, 3600000, NULL,
     "while PostgreSQL NOTIFY is heard, longest time between polls of the notification "
     "streams, milliseconds (without it they poll every 100 ms)"},
    {"projector.batch_max", SP__CFG_INT, "500", 1, 1000000, NULL,
     "most events applied in one PostgreSQL transaction"},
    {"projector.catchup_batch_max", SP__CFG_INT, "20000", 1, 1000000, NULL,
     "most events applied in one PostgreSQL transaction while a backlog is applied (after a "
     "full batch) and by stockpot-replay rebuild pg"},
    {"projector.batch_linger_ms", SP__CFG_INT, "0", 0, 10000, NULL,
     "live: how long a projection waits for a full batch before it applies fewer, "
     "milliseconds (0: never waits)"},
    {"projector.poison_policy", SP__CFG_ENUM, "dead-letter", 0, 0, "dead-letter|halt",
     "what a projector does with an event it cannot apply"},
    {"projector.poll_ms", SP__CFG_INT, "5", 1, 60000, NULL,
     "longest sleep between polls of the log tail, milliseconds"},
    {"projector.projections", SP__CFG_STR, "pg,search,analytics", 0, 0, NULL,
     "comma-separated projections this projector runs (pg, search, analytics), each with its own "
     "consumer and checkpoint"},
    {"views.dir", SP__CFG_STR, "var/views", 0, 0, NULL,
     "directory of the LMDB views; view <name> lives in <views.dir>/<name>"},
    {"views.map_size_mb", SP__CFG_INT, "4096", 16, INT64_C(1024) * 1024, NULL,
     "LMDB map size of each view, MiB (sparse: only used pages take disk)"},
    {"views.batch_max", SP__CFG_INT, "4096", 1, 1000000, NULL,
     "most events folded in one LMDB view write transaction"},
    /* BM25F (Robertson & Zaragoza 2009, section 4.1): see projectors/include/proj/search.h */
    {"search.k1", SP__CFG_REAL, "1.2", 0, 100, NULL,
     "BM25F term frequency saturation k1 of the search view"},
    {"search.b", SP__CFG_REAL, "0.75", 0, 1, NULL,
     "BM25F length normalisation b of every field of the search view"},
    {"search.weight.title", SP__CFG_REAL, "4", 0, 1000, NULL, "BM25F weight of recipe titles"},
    {"search.weight.tags", SP__CFG_REAL, "3", 0, 1000, NULL, "BM25F weight of recipe tags"},
    {"search.weight.ingredients", SP__CFG_REAL, "2", 0, 1000, NULL,
     "BM25F weight of recipe ingredients"},
    {"search.weight.description", SP__CFG_REAL, "1", 0, 1000, NULL,
     "BM25F weight of recipe descriptions"},
    {"search.weight.steps", SP__CFG_REAL, "1", 0, 1000, NULL, "BM25F weight of recipe steps"},
    {"search.threads", SP__CFG_INT, "2", 0, 64, NULL,
     "query-api threads running searches (0 = on the event loop); one per core"},
    {"analytics.operators", SP__CFG_STR, "", 0, 0, NULL,
     "comma-separated usernames (case-insensitive) whose access tokens, issued at login and "
     "refresh, carry the role \"operator\" that the query API's /analytics routes require "
     "(\"\" = nobody)"},
    {"analytics.threads", SP__CFG_INT, "2", 0, 64, NULL,
     "query-api threads running analytics queries (0 = on the event loop); one per core"},
};

#define SP__NKEYS (sizeof(sp__keys) / sizeof(sp__keys[0]))

/* Fixed dev-only JWT secret used when mode=dev and jwt.secret is empty. */
static const char sp__dev_jwt_secret[] = "stockpot-dev-only-insecure-jwt-secret-do-not-use";

struct sp_config {
    char *str[SP__NKEYS]; /* owned; text of string and enum keys */
    int64_t num[SP__NKEYS];
    bool flag[SP__NKEYS];
    double real[SP__NKEYS];
};

static int sp__key_index(const char *key)
{
    for (size_t i = 0; i < SP__NKEYS; i++)
        if (strcmp(sp__keys[i].key, key) == 0)
            return (int)i;
    return -1;
}

static bool sp__enum_ok(const char *enums, const char *v)
{
    size_t vlen = strlen(v);
    for (const char *p = enums; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vlen && strncmp(p, v, n) == 0)
            return true;
        p += n + (bar ? 1 : 0);
    }
    return false;
}

static int sp__set_index(struct sp_config *cfg, int i, const char *value, struct sp_errbuf *eb)
{
    const struct sp__cfg_key *k = &sp__keys[i];
    char *end = NULL;
    switch (k->type) {
    case SP__CFG_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end != '\0')
            return sp_err_set(eb, SP_EINVAL, k->key, "%s: \"%s\" is not an integer", k->key, value);
        if (v < k->min || v > k->max)
            return sp_err_set(eb, SP_EINVAL, k->key,
                              "%s: %lld is out of range [%" PRId64 ", %" PRId64 "]", k->key, v,
                              k->min, k->max);
        cfg->num[i] = v;
        return 0;
    }
    case SP__CFG_REAL: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end != '\0' || v != v)
            return sp_err_set(eb, SP_EINVAL, k->key, "%s: \"%s\" is not a number", k->key, value);
        if (v < (double)k->min || v > (double)k->max)
            return sp_err_set(eb, SP_EINVAL, k->key,
                              "%s: %g is out of range [%" PRId64 ", %" PRId64 "]", k->key, v,
                              k->min, k->max);
        cfg->real[i] = v;
        return 0;
    }
    case SP__CFG_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
            cfg->flag[i] = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
            cfg->flag[i] = false;
        else
            return sp_err_set(eb, SP_EINVAL, k->key, "%s: \"%s\" is not a boolean", k->key, value);
        return 0;
    case SP__CFG_ENUM:
        if (!sp__enum_ok(k->enums, value))
            return sp_err_set(eb, SP_EINVAL, k->key, "%s: \"%s\" is not one of %s", k->key, value,
                              k->enums);
        break;
    case SP__CFG_STR:
        break;
    }
    free(cfg->str[i]);
    cfg->str[i] = sp_xstrdup(value);
    return 0;
}

int sp_config_set(struct sp_config *cfg, const char *key, const char *value, struct sp_errbuf *eb)
{
    int i = sp__key_index(key);
    if (i < 0)
        return sp_err_set(eb, SP_EINVAL, key, "unknown configuration key \"%s\"", key);
    return sp__set_index(cfg, i, value, eb);
}

/* Prefix eb->msg with @p prefix (truncating at the end if needed). */
static void sp__prefix_msg(struct sp_errbuf *eb, const char *prefix)
{
    if (!eb)
        return;
    char tmp[sizeof(eb->msg)];
    size_t plen = strnlen(prefix, sizeof(tmp) - 1);
    size_t mlen = strnlen(eb->msg, sizeof(tmp) - 1 - plen);
    memcpy(tmp, prefix, plen);
    memcpy(tmp + plen, eb->msg, mlen);
    tmp[plen + mlen] = '\0';
    memcpy(eb->msg, tmp, plen + mlen + 1);
}

static char *sp__trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Apply one `key = value` line; @p lineno for messages. */
static int sp__apply_line(
    struct sp_config *cfg, char *line, int lineno, const char *path, struct sp_errbuf *eb)
{
    char *s = sp__trim(line);
    if (*s == '\0' || *s == '#')
        return 0;
    char *eq = strchr(s, '=');
    if (!eq)
        return sp_err_set(eb, SP_EINVAL, "", "%s:%d: expected `key = value`", path, lineno);
    *eq = '\0';
    char *key = sp__trim(s), *value = sp__trim(eq + 1);
    size_t vlen = strlen(value);
    if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
        value[vlen - 1] = '\0';
        value++;
    }
    int rc = sp_config_set(cfg, key, value, eb);
    if (rc) {
        char where[128];
        snprintf(where, sizeof(where), "%s:%d: ", path, lineno);
        sp__prefix_msg(eb, where);
    }
    return rc;
}

static int sp__load_file(struct sp_config *cfg, const char *path, struct sp_errbuf *eb)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int rc = -errno;
        return sp_err_set(eb, rc, "", "could not open config \"%s\": %s", path, sp_strerror(rc));
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        lineno++;
        if (strlen(line) == sizeof(line) - 1 && line[sizeof(line) - 2] != '\n') {
            rc = sp_err_set(eb, SP_EINVAL, "", "%s:%d: line too long", path, lineno);
            break;
        }
        rc = sp__apply_line(cfg, line, lineno, path, eb);
    }
    if (rc == 0 && ferror(f))
        rc = sp_err_set(eb, -EIO, "", "could not read config \"%s\"", path);
    fclose(f);
    return rc;
}

/* STOCKPOT_<KEY>: dots become underscores, upper case. */
static void sp__env_name(const char *key, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "STOCKPOT_%s", key);
    for (size_t i = 9; i < n && i < size; i++)
        if (out[i] == '.')
            out[i] = '_';
        else
            out[i] = (char)toupper((unsigned char)out[i]);
}

static int sp__load_env(struct sp_config *cfg, struct sp_errbuf *eb)
{
    for (size_t i = 0; i < SP__NKEYS; i++) {
        char name[96];
        sp__env_name(sp__keys[i].key, name, sizeof(name));
        const char *v = getenv(name);
        if (!v)
            continue;
        int rc = sp__set_index(cfg, (int)i, v, eb);
        if (rc) {
            char where[128];
            snprintf(where, sizeof(where), "%s: ", name);
            sp__prefix_msg(eb, where);
            return rc;
        }
    }
    return 0;
}

static int sp__check(struct sp_config *cfg, struct sp_errbuf *eb)
{
    const char *secret = cfg->str[sp__key_index("jwt.secret")];
    if (secret[0] != '\0')
        return 0;
    if (strcmp(cfg->str[sp__key_index("mode")], "production") == 0)
        return sp_err_set(eb, SP_EINVAL, "jwt.secret",
                          "jwt.secret must be set in production mode (STOCKPOT_JWT_SECRET)");
    sp_log(SP_LOG_WARN, "jwt.secret is empty: using a fixed dev-only secret (mode=dev)");
    return 0;
}

int sp_config_load(struct sp_config **out, const char *path, struct sp_errbuf *eb)
{
    struct sp_config *cfg = sp_xcalloc(1, sizeof(*cfg));
    int rc = 0;
    sp_err_clear(eb);
    for (size_t i = 0; i < SP__NKEYS && rc == 0; i++)
        rc = sp__set_index(cfg, (int)i, sp__keys[i].def, eb);
    SP_ASSERT(rc == 0);
    if (!path)
        path = getenv("STOCKPOT_CONFIG");
    if (path && path[0])
        rc = sp__load_file(cfg, path, eb);
    rc = rc ? rc : sp__load_env(cfg, eb);
    rc = rc ? rc : sp__check(cfg, eb);
    if (rc) {
        sp_config_free(cfg);
        *out = NULL;
        return rc;
    }
    *out = cfg;
    return 0;
}

void sp_config_free(struct sp_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < SP__NKEYS; i++)
        free(cfg->str[i]);
    free(cfg);
}

static int sp__lookup(const char *key, enum sp__cfg_type t1, enum sp__cfg_type t2)
{
    int i = sp__key_index(key);
    SP_ASSERT(i >= 0);
    SP_ASSERT(sp__keys[i].type == t1 || sp__keys[i].type == t2);
    return i;
}

const char *sp_config_str(const struct sp_config *cfg, const char *key)
{
    int i = sp__lookup(key, SP__CFG_STR, SP__CFG_ENUM);
    if (strcmp(key, "jwt.secret") == 0 && cfg->str[i][0] == '\0')
        return sp__dev_jwt_secret; /* only reachable in dev mode, see sp__check */
    return cfg->str[i];
}

int64_t sp_config_int(const struct sp_config *cfg, const char *key)
{
    return cfg->num[sp__lookup(key, SP__CFG_INT, SP__CFG_INT)];
}

bool sp_config_bool(const struct sp_config *cfg, const char *key)
{
    return cfg->flag[sp__lookup(key, SP__CFG_BOOL, SP__CFG_BOOL)];
}

double sp_config_real(const struct sp_config *cfg, const char *key)
{
    return cfg->real[sp__lookup(key, SP__CFG_REAL, SP__CFG_REAL)];
}

void sp_config_print_help(FILE *f)
{
    static const char *const tnames[] = {"string", "integer", "boolean", "enum", "number"};
    fprintf(f, "Configuration keys (file `key = value`, env overrides file):\n");
    for (size_t i = 0; i < SP__NKEYS; i++) {
        const struct sp__cfg_key *k = &sp__keys[i];
        char env[96];
        sp__env_name(k->key, env, sizeof(env));
        fprintf(f, "  %-24s %s, default \"%s\"", k->key, tnames[k->type], k->def);
        if (k->type == SP__CFG_INT || k->type == SP__CFG_REAL)
            fprintf(f, ", range [%" PRId64 ", %" PRId64 "]", k->min, k->max);
        if (k->type == SP__CFG_ENUM)
            fprintf(f, ", one of %s", k->enums);
        fprintf(f, "\n      env %s: %s\n", env, k->desc);
    }
}
