/*
 * Test helpers for the query API's integration tests: a fresh PostgreSQL database per
 * test file (from the PG* environment that pg_virtualenv sets) with the migrations of
 * schemas/sql applied, and row inserts.
 */
#ifndef QRY_TEST_DB_H
#define QRY_TEST_DB_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct qry_test_db {
    char name[64];      /* database name */
    char conninfo[128]; /* "dbname=<name>"; host, port and user come from PG* */
    PGconn *conn;       /* owned: a connection to the new database */
};

/**
 * Create database "<prefix>_<pid>" (dropping a leftover of that name), apply the
 * migrations (001_init.sql ... 005_chat.sql, found under $SP_SOURCE_DIR) and
 * connect to it. Aborts the test on failure.
 */
void qry_test_db_create(struct qry_test_db *db, const char *prefix);

/**
 * Run @p sql (one statement, no rows) on a new connection to the server's default database
 * (from PG*), to create, drop or alter databases; fails the test on error.
 */
void qry_test_db_admin_exec(const char *sql);

/** Close the connection and drop the database. */
void qry_test_db_drop(struct qry_test_db *db);

/** Run @p sql (one or more statements) on the database; fails the test on error. */
void qry_test_db_exec(struct qry_test_db *db, const char *sql);

/** Insert a user row with version @p version. */
void qry_test_db_user(struct qry_test_db *db, int64_t id, const char *username, int64_t version);

/**
 * Insert a recipe row (and its recipe_tags rows). @p tags is a SQL array literal body,
 * e.g. "soup,quick" ("" for none); @p title may hold any UTF-8.
 */
void qry_test_db_recipe(struct qry_test_db *db,
                        int64_t id,
                        int64_t author_id,
                        const char *title,
                        const char *tags,
                        int64_t version);

/** Run printf-formatted SQL on the database; fails the test on error. */
void qry_test_db_execf(struct qry_test_db *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Upsert the "pg" checkpoint of partition 0 to @p next_offset. */
void qry_test_db_checkpoint(struct qry_test_db *db, int64_t next_offset);

#endif
