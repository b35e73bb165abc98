/* The stockpot-projector daemon: migrations, the projection thread, and the HTTP probes. */
#ifndef PROJ_DAEMON_H
#define PROJ_DAEMON_H

#include "sp/config.h"

/**
 * Run the daemon until SIGTERM or SIGINT: apply migrations, run projection "pg" on a
 * projection thread, serve GET /healthz /readyz /metrics on projector.host:port from the
 * main thread's libevent loop.
 * @return the process exit status: 0 after a clean shutdown, 1 on a fatal start-up
 *         error (bad config value, port taken, a failing migration).
 * @locality the main thread
 */
int proj_daemon_run(const struct sp_config *cfg);

#endif
