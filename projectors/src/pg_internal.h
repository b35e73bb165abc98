/*
 * Internals of the PostgreSQL projection "pg" shared by pg_projection.c (users, recipes,
 * payload shape checks) and pg_social.c (follows, likes, comments, notifications,
 * sessions). Each fold runs inside the runner's transaction (see proj_apply_fn).
 */
#ifndef PROJ_PG_INTERNAL_H
#define PROJ_PG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "es/event.h"
#include "sp/err.h"

enum proj__field_kind {
    PROJ__F_ID,           /* decimal id string */
    PROJ__F_ID_OR_NULL,   /* decimal id string or null */
    PROJ__F_TEXT,         /* string */
    PROJ__F_TEXT_OR_NULL, /* string or null */
    PROJ__F_TEXT_ARRAY,   /* array of strings */
    PROJ__F_ID_ARRAY,     /* array of decimal id strings */
    PROJ__F_TIME,         /* RFC 3339 UTC time string */
};

struct proj__field_spec {
    const char *name;
    enum proj__field_kind kind;
    bool required;
};

#define PROJ__NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/**
 * Check @p data against @p specs (@p n of them): every required field present, every
 * present field of its kind. Other keys are allowed.
 * @return 0; SP_ESCHEMA naming the field in eb->field.
 */
int proj__fields_check(const json_t *data,
                       const struct proj__field_spec *specs,
                       size_t n,
                       struct sp_errbuf *eb);

/**
 * The entity id of the event's stream "<category>-<id>", as canonical decimal text.
 * @param out  ≥ 21 bytes
 * @return 0; SP_ESCHEMA if the stream is not "<category>-<id>" with a valid id.
 */
int proj__stream_id(const struct es_event *ev,
                    const char *category,
                    char *out,
                    size_t out_size,
                    struct sp_errbuf *eb);

/** @return 0 if data.<key> is absent or equals @p id; SP_ESCHEMA otherwise. */
int proj__id_matches(const json_t *data, const char *key, const char *id, struct sp_errbuf *eb);

/* Folds of pg_social.c, each a proj_apply_fn (see proj/projection.h). */
int proj__pg_user_followed(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_user_unfollowed(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_recipe_liked(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_recipe_unliked(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_recipe_commented(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_comment_deleted(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_notifications_read(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_session_started(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_session_refreshed(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);
int proj__pg_session_revoked(PGconn *conn, const struct es_event *ev, struct sp_errbuf *eb);

#endif
