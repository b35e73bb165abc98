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
 */
#ifndef CMD_APP_H
#define CMD_APP_H

#include <event2/event.h>

#include "sp/config.h"
#include "sp/err.h"
#include "sp/metrics.h"

struct cmd_app;

/**
 * Open the event log as its writer (config log.*), open the write model (writemodel.dir,
 * writemodel.map_size_mb), catch the write model up from its checkpoint to the end of
 * the log, then listen on command.host:command.port with every route installed.
 *
 * @param cfg   borrowed; must outlive the app
 * @param base  borrowed; must outlive the app
 * @param[out] out  owned; free with cmd_app_free()
 * @return 0; SP_ESTATE if another process is the log's writer or the write model is
 *         ahead of the log; SP_EDB / -errno on storage failures; -errno if the address
 *         cannot be bound. @p eb says which.
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
