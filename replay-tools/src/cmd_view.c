/* View subcommands: migrate, rebuild <projection>, checksum <projection>. */
#include <stdio.h>
#include <string.h>

#include "es/log.h"
#include "proj/migrate.h"
#include "proj/pg.h"
#include "proj/projection.h"
#include "proj/runner.h"
#include "proj/view.h"
#include "cli.h"
#include "replay/replay.h"
#include "sp/time.h"

#include "sp/banned.h"

static int connect_pg(const struct sp_config *cfg, PGconn **conn)
{
    struct sp_errbuf eb = {{0}, {0}};
    if (proj_pg_connect(sp_config_str(cfg, "pg.conninfo"), "stockpot-replay", conn, &eb) != 0) {
        replay__error("%s", eb.msg);
        return REPLAY_EXIT_FAIL;
    }
    return 0;
}

static int migrate(PGconn *conn, bool verbose)
{
    struct sp_errbuf eb = {{0}, {0}};
    char dir[4096];
    int applied = 0;

    if (proj_migrate_sql_dir(dir, sizeof(dir), &eb) != 0 ||
        proj_migrate_run(conn, dir, &applied, &eb) != 0) {
        replay__error("could not apply migrations: %s", eb.msg);
        return REPLAY_EXIT_FAIL;
    }
    if (verbose)
        printf("migrations up to date: %d applied from %s\n", applied, dir);
    return 0;
}

/* Handles --help and the single <projection> argument. */
static int projection_arg(
    const char *cmd, const char *what, int argc, char **argv, const struct proj_projection **proj)
{
    bool help = argc >= 1 && replay__is_help(argv[0]);

    if (!help && argc == 1 && (*proj = proj_registry_find(argv[0])) != NULL)
        return 0;
    if (!help && argc == 1)
        replay__error("%s: unknown projection \"%s\"", cmd, argv[0]);
    else if (!help)
        replay__error("%s: expected one projection name", cmd);
    fprintf(help ? stdout : stderr, "usage: stockpot-replay %s <projection>\n%s\nprojections:", cmd,
            what);
    for (size_t i = 0; i < proj_registry_count(); i++)
        fprintf(help ? stdout : stderr, " %s", proj_registry_at(i)->name);
    fputc('\n', help ? stdout : stderr);
    return help ? -1 : REPLAY_EXIT_USAGE;
}

int replay_cmd_migrate(const struct sp_config *cfg, int argc, char **argv)
{
    PGconn *conn = NULL;
    int rc;

    if (argc > 0) {
        bool help = replay__is_help(argv[0]);
        if (!help)
            replay__error("migrate: unexpected argument \"%s\"", argv[0]);
        fprintf(help ? stdout : stderr,
                "usage: stockpot-replay migrate\nApplies the numbered SQL migrations not yet "
                "recorded in stockpot.schema_migrations\n(directory: $STOCKPOT_SQL_DIR, else "
                "the source tree's schemas/sql, else\n<bindir>/../share/stockpot/sql).\n");
        return help ? REPLAY_EXIT_OK : REPLAY_EXIT_USAGE;
    }
    if ((rc = connect_pg(cfg, &conn)) != 0)
        return rc;
    rc = migrate(conn, true);
    PQfinish(conn);
    return rc;
}

/* <views.dir>/<name>: where an LMDB projection's view lives (as the projector has it). */
static void
view_dir(const struct sp_config *cfg, const struct proj_projection *proj, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", sp_config_str(cfg, "views.dir"), proj->name);
}

static int rebuild(const struct sp_config *cfg,
                   const struct proj_projection *proj,
                   PGconn *conn,
                   struct es_log *log,
                   bool keep_old)
{
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_batch_stats st;
    enum proj_poison_policy policy = PROJ_POISON_DEAD_LETTER;
    int64_t t0_us = sp_time_mono_us();
    char dir[4096];
    double secs;
    int rc;

    if (proj_poison_policy_parse(sp_config_str(cfg, "projector.poison_policy"), &policy) != 0)
        policy = PROJ_POISON_DEAD_LETTER;
    view_dir(cfg, proj, dir, sizeof(dir));
    if (proj->store == PROJ_STORE_LMDB)
        rc =
            proj_rebuild_view(proj, dir, (size_t)sp_config_int(cfg, "views.map_size_mb") << 20, log,
                              (size_t)sp_config_int(cfg, "views.batch_max"), policy, &st, &eb);
    else
        rc =
            proj_rebuild(conn, proj, log, (size_t)sp_config_int(cfg, "projector.catchup_batch_max"),
                         policy, keep_old, &st, &eb);
    if (rc != 0) {
        replay__error("rebuild of \"%s\" failed, nothing changed: %s", proj->name, eb.msg);
        return REPLAY_EXIT_FAIL;
    }
    secs = (double)(sp_time_mono_us() - t0_us) / 1e6;
    printf("rebuilt projection %s: %lld events applied, %lld dead-lettered, checkpoint 0:%lld, "
           "%.3f s, %.0f events/s\n",
           proj->name, (long long)st.applied, (long long)st.dead, (long long)st.next_offset, secs,
           secs > 0 ? (double)(st.applied + st.dead) / secs : 0.0);
    return REPLAY_EXIT_OK;
}

int replay_cmd_rebuild(const struct sp_config *cfg, int argc, char **argv)
{
    const struct proj_projection *proj = NULL;
    struct sp_errbuf eb = {{0}, {0}};
    struct es_log *log = NULL;
    PGconn *conn = NULL;
    bool keep_old = argc >= 1 && strcmp(argv[argc - 1], "--keep-old") == 0;
    int rc = projection_arg(
        "rebuild",
        "Re-applies the whole log to the projection, readers keeping the old view until\n"
        "the new one is complete. PostgreSQL (pg): folds into new tables in schema\n"
        "stockpot_next in one transaction and swaps them in at its end; it waits for a\n"
        "running projector's batch (both hold the projection's advisory lock).\n"
        "--keep-old (pg, after the projection) keeps the previous tables in schema\n"
        "stockpot_old. LMDB views (search, analytics): builds a new generation in\n"
        "views.dir/<name> beside the live one and swaps it in atomically. A running\n"
        "projector then resumes from the new checkpoint.",
        keep_old ? argc - 1 : argc, argv, &proj);
    if (rc != 0)
        return rc < 0 ? REPLAY_EXIT_OK : rc;
    if (keep_old && proj->store != PROJ_STORE_PG) {
        replay__error("rebuild: --keep-old applies to PostgreSQL projections; \"%s\" is an LMDB "
                      "view (its previous generation is replaced)",
                      proj->name);
        return REPLAY_EXIT_USAGE;
    }
    if (es_log_open(cfg, ES_LOG_READER, &log, &eb) != 0) {
        replay__error("could not open the event log \"%s\": %s", sp_config_str(cfg, "log.dir"),
                      eb.msg);
        return REPLAY_EXIT_FAIL;
    }
    if (proj->store == PROJ_STORE_LMDB)
        rc = rebuild(cfg, proj, NULL, log, false);
    else if ((rc = connect_pg(cfg, &conn)) == 0 && (rc = migrate(conn, false)) == 0)
        rc = rebuild(cfg, proj, conn, log, keep_old);
    PQfinish(conn);
    es_log_close(log);
    return rc;
}

/* The logical checksum of an LMDB view's live generation (proj_view_checksum). */
static int view_checksum(const struct sp_config *cfg, const struct proj_projection *proj)
{
    struct proj_view_opts opts = {NULL, proj->view->format, proj->view->max_dbs,
                                  (size_t)sp_config_int(cfg, "views.map_size_mb") << 20};
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_view *v = NULL;
    char dir[4096], sum[64];
    int rc;

    view_dir(cfg, proj, dir, sizeof(dir));
    opts.dir = dir;
    rc = proj_view_open(&opts, PROJ_VIEW_READ, &v, &eb);
    if (rc == 0)
        rc = proj_view_checksum(v, sum, sizeof(sum), &eb);
    proj_view_close(v);
    if (rc != 0) {
        replay__error("checksum of \"%s\" failed: %s", proj->name, eb.msg);
        return REPLAY_EXIT_FAIL;
    }
    printf("%s\n", sum);
    return REPLAY_EXIT_OK;
}

int replay_cmd_checksum(const struct sp_config *cfg, int argc, char **argv)
{
    const struct proj_projection *proj = NULL;
    struct sp_errbuf eb = {{0}, {0}};
    PGconn *conn = NULL;
    char sum[64];
    int rc = projection_arg("checksum",
                            "Prints a checksum of the projection's contents, to compare a "
                            "live view with a\nrebuilt one: for PostgreSQL an md5 of its "
                            "tables in a total order, for an\nLMDB view an XXH3-128 of its "
                            "databases in key order (checkpoints and dead\nletters excluded "
                            "in both).",
                            argc, argv, &proj);
    if (rc != 0)
        return rc < 0 ? REPLAY_EXIT_OK : rc;
    if (proj->store == PROJ_STORE_LMDB)
        return view_checksum(cfg, proj);
    if ((rc = connect_pg(cfg, &conn)) != 0)
        return rc;
    if (proj_checksum(conn, proj, sum, sizeof(sum), &eb) != 0) {
        replay__error("checksum of \"%s\" failed: %s", proj->name, eb.msg);
        rc = REPLAY_EXIT_FAIL;
    } else {
        printf("%s\n", sum);
    }
    PQfinish(conn);
    return rc;
}
