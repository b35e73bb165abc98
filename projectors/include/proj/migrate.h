/*
 * Schema migrations: the numbered SQL files NNN_<name>.sql of one directory, applied in
 * numeric order, each in its own transaction, and recorded in
 * stockpot.schema_migrations(version, name, applied_at). Serialised across processes
 * with a session-level pg_advisory_lock, so two starting daemons never race.
 *
 * Where the SQL directory is found (proj_migrate_sql_dir), first match wins:
 *   1. the STOCKPOT_SQL_DIR environment variable;
 *   2. the source tree's schemas/sql, compiled in as PROJ_SQL_DIR (CMake: ${SP_SOURCE_DIR});
 *   3. install-relative: <dir of the executable>/../share/stockpot/sql.
 */
#ifndef PROJ_MIGRATE_H
#define PROJ_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "sp/err.h"

/** Largest migration file read, bytes. */
#define PROJ_MIGRATE_MAX_FILE_BYTES (4u << 20)

/**
 * Resolve the migrations directory as the file comment says.
 * @param out  receives a NUL-terminated path; @p out_size ≥ 64
 * @return 0; SP_ENOTFOUND if no candidate holds a readable directory (eb lists them).
 */
SP_MUST_CHECK int proj_migrate_sql_dir(char *out, size_t out_size, struct sp_errbuf *eb);

/**
 * Apply every migration of @p sql_dir not yet recorded. Idempotent.
 * @param[out] applied  number of migrations applied now (may be NULL)
 * @return 0; -errno if the directory or a file cannot be read; SP_EINVAL for two files
 *         with the same number; SP_ETOOBIG for a file over PROJ_MIGRATE_MAX_FILE_BYTES;
 *         SP_EDB if a migration fails (it is rolled back; eb names the file);
 *         SP_EUNAVAIL if the connection is lost.
 * @locks takes and releases a session advisory lock on @p conn
 */
SP_MUST_CHECK int
proj_migrate_run(PGconn *conn, const char *sql_dir, int *applied, struct sp_errbuf *eb);

#endif
