/*
 * The stockpot-projector daemon: migrations, one thread per projection, and the HTTP
 * probes. A new projection (search, analytics) plugs in by being registered
 * (proj_registry_at) and named in config key projector.projections.
 */
#ifndef PROJ_DAEMON_H
#define PROJ_DAEMON_H

#include <stddef.h>

#include "proj/projection.h"
#include "sp/config.h"

/**
 * Run the daemon until SIGTERM or SIGINT: apply migrations, open the log as a reader,
 * run each projection on its own thread with its own runner (PostgreSQL connection,
 * checkpoint, back-off: one projection failing or halted does not stop the others),
 * serve GET /healthz /readyz /metrics on projector.host:port from the main thread's
 * libevent loop. /readyz is 200 only when every projection's last step succeeded.
 * Log backends: the embedded LMDB log is read by log-mode runners sharing one reader
 * handle; Kafka by consumer-mode runners, one consumer group per projection
 * ("stockpot-projection-<name>"), so several projector processes share the partitions
 * (proj_runner_new_consumer).
 * Shutdown is bounded: every wait is sliced and Kafka calls are capped, and if a thread is
 * still busy 1.5 s after the signal (librdkafka waiting for an unreachable broker), the
 * process exits at once (_exit) without waiting for it.
 * @param projs, n_projs  projections to run (borrowed; must outlive the call); NULL =
 *                        those of config key projector.projections
 * @return the process exit status: 0 after a clean shutdown, 1 on a fatal start-up
 *         error (bad config value, port taken, a failing migration).
 * @locality the main thread; blocks SIGTERM and SIGINT in the threads it starts
 */
int proj_daemon_run(const struct sp_config *cfg,
                    const struct proj_projection *const *projs,
                    size_t n_projs);

#endif
