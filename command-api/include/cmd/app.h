/*
 * The command-api application: the HTTP write API (README "HTTP API"), its write model
 * (an LMDB fold of the event log) and group commit onto the event log (DESIGN.md
 * "Command side").
 *
 * Threading: everything runs on the one thread of the event_base given to
 * cmd_app_new(). Password hashing (argon2id) runs inline in the request handlers, so
 * one registration or login blocks the loop for the hash's duration (config
 * argon2.*); the group-commit batch is flushed from a zero-timeout event on the same
 * loop, so at most one batch is ever in flight.
 *
 * Failures:
 * - The log refuses an append (full map, I/O error): every command of that batch gets
 *   503 with Retry-After: 1 and none of its decisions reaches the write model (the
 *   batch's transaction is aborted). /readyz stays 200: the write model is consistent
 *   and the next, smaller, append may succeed; stockpot_event_append_failures_total
 *   counts these batches.
 *   On Kafka the same holds for an append that timed out or whose transaction the
 *   broker aborted (SP_EUNAVAIL: nothing of it is visible to read_committed readers).
 *   If even the abort failed, the broker may still settle that batch as committed when
 *   the next append re-initialises the producer: its clients got 503 although its
 *   events may then be in the log (a false failure, never a false success). So after
 *   any failed append, each partition keeps its checkpoint at the next successful batch
 *   that goes to it and is refolded from there once that batch is committed: the write
 *   model never skips those events (a catch-up at start folds the other partitions).
 * - Fenced (Kafka: another command-api with the same kafka.transactional_id took over,
 *   or the producer hit a fatal error; es_log_append returned SP_EFENCED): one error log
 *   line names the transactional.id and the reason; the batch in flight gets 503 (none
 *   of it is acknowledged nor reaches the write model), and from then on every command
 *   route and /auth/validate answer 503 with Retry-After: 1 and /readyz 503 with the
 *   reason. The process keeps running (so /readyz can say why) but never appends nor
 *   acknowledges again; restart it to make it the writer again (which fences the other
 *   one). Gauge stockpot_command_fenced is 1 meanwhile.
 * - The append succeeded but the write model commit failed: the events are durable, so
 *   their clients get their success answers, and the write model is caught up from the
 *   log at once. If that catch-up fails too, the app is "broken": /readyz answers 503
 *   with the reason, every request to a command route (and /auth/validate, which reads
 *   the write model) gets 503 with Retry-After: 1, and nothing is decided until a
 *   catch-up succeeds (retried every second, before each batch and on requests, at most
 *   every 100 ms). The write model never skips an event and its checkpoint never passes
 *   what it folded. Gauge stockpot_writemodel_broken is 1 meanwhile.
 * - A fresh entity id (Snowflake) whose stream already exists (the clock stepped back
 *   across a restart) is never reused: the command gets 503 and an error is logged.
 *
 * Consistency token: the position "<partition>:<offset>" of the command's last event
 * (a command's events share one stream, hence one partition); the embedded log is
 * partition 0.
 *
 * Consistency token of a no-op (a repeated follow, unfollow, like or unlike, or a
 * notifications read not past the last one): the position of the last event of the
 * acting user's stream, which the write model keeps per stream.
 *
 * Idempotency-Key (register, POST /recipes, POST /recipes/{id}/comments, POST
 * /auth/logout; login and refresh ignore it because their answers hold tokens, which
 * are never stored): a record per scoped
 * key holds an HMAC-SHA256 fingerprint of (command kind, target id, raw body) and the
 * first successful answer. The HMAC key is HMAC-SHA256(random 32-byte secret kept in the
 * write model meta, label + jwt.secret), so neither the write model files nor the config
 * alone allow guessing a password offline from a register fingerprint. Scope: with an
 * access token, "u:<user id>:<key>" (same key, different request: 422); anonymous,
 * "a:" + HMAC(fingerprint, key), i.e. the key only ever matches an identical request, so
 * unrelated clients never collide and a different body is simply a new request.
 * Durability: the records are written in the batch's write model commit, synced before
 * the batch is answered. A crash (process or OS) between the log append and that commit,
 * or a failure of that commit, leaves the batch's events in the log without its records;
 * every event of a keyed command carries the record key and "<key id>:<fingerprint>"
 * (CloudEvents extensions idempotencykey, idempotencyfp), and catch-up rebuilds the
 * first answer from them (wm.c idem_rebuild), keeping a record already there. Rebuilding
 * the write model (writemodel.dir deleted, a new write model format) makes a new secret,
 * hence a new key id: the records of the old key are not rebuilt (no request could match
 * their fingerprints), so those keys are free again.
 *
 * Stockpot-Dev-Time (mode = dev only; README "HTTP API"): an RFC 3339 UTC timestamp
 * ("2026-11-03T10:15:00Z", optionally with a fraction, truncated to µs) on a command route
 * becomes the envelope time of every event that request appends, instead of the clock's,
 * so generated loads can span simulated days. It changes nothing else: access and refresh
 * token expiry, session checks, rate limits, idempotency records and the Snowflake and
 * UUIDv7 ids stay on the real clock, and the header is not part of the idempotency
 * fingerprint (a repeat with another time gets the first answer, appends nothing). A
 * malformed value, or any value in production mode, gets 400 problem+json naming the
 * header and changes nothing: production never honours it silently. The header is read
 * once per request, when the command is queued; /auth/validate ignores it (it appends
 * nothing).
 */
#ifndef CMD_APP_H
#define CMD_APP_H

#include <event2/event.h>

#include "sp/config.h"
#include "sp/err.h"
#include "sp/metrics.h"

struct cmd_app;

/**
 * Open the event log as its writer (config log.*; log.backend = kafka opens a
 * transactional producer, fencing any older command-api with the same
 * kafka.transactional_id), open the write model (writemodel.dir, writemodel.map_size_mb),
 * catch the write model up on every partition from its checkpoint to the partition's
 * end, then listen on command.host:command.port with every route installed.
 *
 * @param cfg   borrowed; must outlive the app
 * @param base  borrowed; must outlive the app
 * @param[out] out  owned; free with cmd_app_free()
 * @return 0; SP_ESTATE if another process is the log's writer or the write model is
 *         ahead of the log; Kafka: SP_EUNAVAIL if the brokers cannot be reached,
 *         SP_EFENCED if the producer cannot initialise; SP_EDB / -errno on storage failures; -errno
 * if the address cannot be bound. @p eb says which.
 */
SP_MUST_CHECK int cmd_app_new(const struct sp_config *cfg,
                              struct event_base *base,
                              struct cmd_app **out,
                              struct sp_errbuf *eb);

/** The TCP port the app listens on (useful with command.port = 0). */
int cmd_app_port(const struct cmd_app *app);

/** The app's metrics registry. @return borrowed, valid until cmd_app_free(). */
struct sp_metrics *cmd_app_metrics(struct cmd_app *app);

/**
 * First step of a clean shutdown, from a callback on the app's loop: report not ready
 * on /readyz, then decide, commit and answer every queued command now. Keep the loop
 * running briefly afterwards (e.g. event_base_loopexit with 100 ms) so the answers are
 * written, then call cmd_app_free().
 */
void cmd_app_drain(struct cmd_app *app);

/**
 * Clean shutdown: stop accepting requests, decide and commit every command already
 * queued (answering its client), then close the log and sync the write model.
 * Idempotent; cmd_app_free() calls it.
 */
void cmd_app_shutdown(struct cmd_app *app);

/** Shut down (if not yet) and free the app; NULL is a no-op. */
void cmd_app_free(struct cmd_app *app);

#endif
