/*
 * Configuration: one table of keys (type, default, bounds, description) for every
 * daemon and tool, read from an optional file of `key = value` lines, each key
 * overridable by the environment variable STOCKPOT_<KEY> (dots become underscores,
 * upper case: log.dir -> STOCKPOT_LOG_DIR). Precedence: env > file > default.
 *
 * Keys (see sp_config_print_help for the authoritative list with defaults):
 *   mode                      dev | production (production requires jwt.secret)
 *   logging.level             debug | info | warn | error
 *   log.backend               lmdb | kafka
 *   log.dir                   embedded LMDB log environment directory
 *   log.map_size_mb           LMDB map size of the log, MiB
 *   log.max_event_bytes       cap on one encoded event, bytes
 *   kafka.brokers             Kafka bootstrap servers (default localhost:9092)
 *   kafka.topic               event log topic (default stockpot.events)
 *   kafka.partitions          partitions when the topic is created (default 6)
 *   kafka.replication_factor  replication factor when the topic is created (default 3)
 *   kafka.transactional_id    writer's transactional.id (default stockpot-command-api)
 *   kafka.timeout_ms          longest wait for one Kafka operation, ms (default 10000)
 *   writemodel.dir            command-api write model LMDB directory
 *   writemodel.map_size_mb    LMDB map size of the write model, MiB
 *   command.host/port         command-api listen address
 *   query.host/port           query-api listen address
 *   projector.host/port       projector daemon listen address (health, metrics)
 *   pg.conninfo               libpq connection string ("" = libpq defaults / PG* env)
 *   jwt.secret                HS256 key for access tokens
 *   jwt.ttl_s                 access token lifetime, seconds
 *   refresh.ttl_s             refresh token lifetime, seconds
 *   argon2.t_cost             argon2id iterations (RFC 9106 §4)
 *   argon2.m_cost_kib         argon2id memory, KiB
 *   argon2.parallelism        argon2id lanes
 *   http.max_body_bytes       request body cap, bytes
 *   http.max_header_bytes     request header cap, bytes
 *   http.timeout_s            request read/write timeout, seconds
 *   http.max_json_depth       maximum nesting of request JSON
 *   command.batch_max         most commands in one group-commit batch
 *   query.after_timeout_ms    longest wait for Stockpot-After, milliseconds
 *   projector.batch_max       most events applied in one PostgreSQL transaction
 *   projector.poison_policy   dead-letter | halt
 *   projector.poll_ms         longest sleep between polls of the log tail, milliseconds
 *
 * File format: one `key = value` per line; blank lines and lines starting with '#' are
 * ignored (no trailing comments: '#' may be part of a value); spaces around key and
 * value are trimmed; a value may be wrapped in double quotes (`pg.conninfo = ""`).
 * jwt.secret: empty in mode=dev means a fixed, publicly known dev-only secret (a warning
 * is logged at load and sp_config_str(cfg, "jwt.secret") returns that secret); empty in
 * mode=production is a load error.
 */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sp/err.h"

struct sp_config;

/**
 * Load the configuration: defaults, then the file at @p path (NULL = none; if NULL the
 * STOCKPOT_CONFIG environment variable names the file, if set), then STOCKPOT_<KEY>
 * environment overrides. Every value is validated (type, bounds, enum).
 *
 * @param[out] out  owned; free with sp_config_free()
 * @return 0; -errno if the file cannot be read; SP_EINVAL with eb->field = key for an
 *         unknown key, a malformed line, a value of the wrong type or out of bounds, or
 *         production mode without jwt.secret.
 */
SP_MUST_CHECK int sp_config_load(struct sp_config **out, const char *path, struct sp_errbuf *eb);

/** Free a configuration; NULL is a no-op. */
void sp_config_free(struct sp_config *cfg);

/**
 * Set one key from text, validated as on load (for tests and command-line overrides).
 * @return 0 or SP_EINVAL (unknown key, bad value), eb->field = key.
 */
SP_MUST_CHECK int
sp_config_set(struct sp_config *cfg, const char *key, const char *value, struct sp_errbuf *eb);

/**
 * Value of a string key. Asking for an unknown key or a key of another type is a
 * programming error (SP_ASSERT).
 * @return borrowed, valid until the config is freed or the key set again
 */
const char *sp_config_str(const struct sp_config *cfg, const char *key);
/** Value of an integer key (SP_ASSERT on unknown key or wrong type). */
int64_t sp_config_int(const struct sp_config *cfg, const char *key);
/** Value of a boolean key ("true"/"false"/"1"/"0"; SP_ASSERT on unknown key/type). */
bool sp_config_bool(const struct sp_config *cfg, const char *key);
/** Value of a number key (asserts the key exists and is a number). */
double sp_config_real(const struct sp_config *cfg, const char *key);

/** Print every key with its type, default, bounds, env variable and description. */
void sp_config_print_help(FILE *f);

#endif
