/* PostgreSQL (libpq) helpers shared by the projections, the projector and the replay tool. */
#ifndef PROJ_PG_H
#define PROJ_PG_H

#include <libpq-fe.h>

#include "sp/err.h"

/**
 * Connect with a libpq connection string ("" = libpq defaults and the PG* environment),
 * with client_encoding UTF8, TimeZone UTC, jit off (folds and recounts touch rows by key;
 * a misestimate must not buy a JIT compilation), search_path stockpot (the folds name the
 * view's tables unqualified), client_min_messages warning (no NOTICEs on stderr) and
 * application_name @p app (may be NULL).
 * @param[out] out  owned; PQfinish() it
 * @return 0; SP_EUNAVAIL if the server cannot be reached (eb says why).
 */
SP_MUST_CHECK int
proj_pg_connect(const char *conninfo, const char *app, PGconn **out, struct sp_errbuf *eb);

/**
 * Run one parameterised statement (text parameters and results). On a connection made by
 * proj_pg_connect each distinct @p sql text is prepared once per session (PQprepare) and
 * then executed with PQexecPrepared: the server parses and plans it once, not per call
 * (up to 256 texts per connection; others, and connections made elsewhere, use
 * PQexecParams). Prepared statements are session state: ROLLBACK keeps them.
 * @param params, nparams  text values; a NULL entry is SQL NULL; copied by libpq
 * @param[out] out  the result if it succeeded (owned: PQclear()); may be NULL to discard
 * @return 0; SP_EUNAVAIL if the connection is lost; SP_EDB for any other error
 *         (eb->msg holds the server's message, eb->field its SQLSTATE).
 */
SP_MUST_CHECK int proj_pg_exec(PGconn *conn,
                               const char *sql,
                               int nparams,
                               const char *const *params,
                               PGresult **out,
                               struct sp_errbuf *eb);

/** Like proj_pg_exec without parameters; @p sql may hold several statements (simple query). */
SP_MUST_CHECK int proj_pg_exec_script(PGconn *conn, const char *sql, struct sp_errbuf *eb);

/** Roll back the open transaction if there is one; errors are ignored (best effort). */
void proj_pg_rollback(PGconn *conn);

#endif
