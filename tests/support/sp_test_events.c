/* Catalogue-valid events for tests (sp_test_events.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "es/catalogue.h"
#include "sp_test_events.h"

#include "sp/banned.h"

static json_t *versions; /* stream -> last version handed out */

const char *sp_test_id(uint64_t id)
{
    static char buf[8][24];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof(buf[i]), "%llu", (unsigned long long)id);
    return buf[i];
}

int64_t sp_test_at(int32_t day, int h, int m, int s, int us)
{
    return (int64_t)day * INT64_C(86400000000) +
           ((int64_t)h * 3600 + (int64_t)m * 60 + s) * 1000000 + us;
}

struct es_event *sp_test_event(const char *type,
                               const char *category,
                               uint64_t id,
                               uint64_t actor,
                               int64_t time_us,
                               int32_t partition,
                               json_t *data)
{
    struct es_event *ev = malloc(sizeof(*ev));
    char stream[64];
    json_int_t version;

    assert_non_null(ev);
    if (versions == NULL)
        versions = json_object();
    snprintf(stream, sizeof(stream), "%s-%llu", category, (unsigned long long)id);
    version = json_integer_value(json_object_get(versions, stream)) + 1;
    json_object_set_new(versions, stream, json_integer(version));
    es_event_init(ev);
    assert_int_equal(es_event_make(ev, type, stream, version, actor ? sp_test_id(actor) : NULL,
                                   NULL, NULL, data),
                     0);
    ev->time_us = time_us;
    ev->pos.partition = partition;
    ev->pos.offset = 0;
    if (es_event_check(ev, NULL, NULL) != 0)
        fail_msg("test event %s breaks its schema", type);
    return ev;
}

void sp_test_event_free(struct es_event *ev)
{
    if (ev == NULL)
        return;
    es_event_release(ev);
    free(ev);
}

void sp_test_events_reset(void)
{
    json_decref(versions);
    versions = NULL;
}

struct es_event *sp_test_registered(uint64_t user, int64_t time_us, int32_t partition)
{
    char name[32];
    snprintf(name, sizeof(name), "user%llu", (unsigned long long)user);
    return sp_test_event("UserRegistered", "user", user, user, time_us, partition,
                         json_pack("{s:s,s:s,s:s,s:s}", "user_id", sp_test_id(user), "username",
                                   name, "email", "u@example.org", "password_hash",
                                   SP_TEST_PASSWORD_HASH));
}

struct es_event *sp_test_login(uint64_t user, uint64_t session, int64_t time_us, int32_t partition)
{
    return sp_test_event("SessionStarted", "session", session, user, time_us, partition,
                         json_pack("{s:s,s:s,s:s,s:s}", "session_id", sp_test_id(session),
                                   "user_id", sp_test_id(user), "refresh_hash",
                                   SP_TEST_REFRESH_HASH, "expires_at",
                                   "2030-01-01T00:00:00.000000Z"));
}

struct es_event *sp_test_created(
    uint64_t recipe, uint64_t author, const char *title, int64_t time_us, int32_t partition)
{
    return sp_test_event("RecipeCreated", "recipe", recipe, author, time_us, partition,
                         json_pack("{s:s,s:s,s:s,s:s,s:[s],s:[s],s:[],s:[]}", "recipe_id",
                                   sp_test_id(recipe), "author_id", sp_test_id(author), "title",
                                   title, "description", "d", "ingredients", "x", "steps", "y",
                                   "tags", "image_media_ids"));
}

struct es_event *
sp_test_deleted(uint64_t recipe, uint64_t author, int64_t time_us, int32_t partition)
{
    return sp_test_event("RecipeDeleted", "recipe", recipe, author, time_us, partition,
                         json_object());
}

struct es_event *sp_test_reaction(const char *type,
                                  uint64_t user,
                                  uint64_t recipe,
                                  uint64_t author,
                                  int64_t time_us,
                                  int32_t partition)
{
    return sp_test_event(type, "user", user, user, time_us, partition,
                         json_pack("{s:s,s:s,s:s}", "user_id", sp_test_id(user), "recipe_id",
                                   sp_test_id(recipe), "recipe_author_id", sp_test_id(author)));
}

struct es_event *sp_test_commented(uint64_t comment,
                                   uint64_t user,
                                   uint64_t recipe,
                                   uint64_t author,
                                   int64_t time_us,
                                   int32_t partition)
{
    return sp_test_event("RecipeCommented", "comment", comment, user, time_us, partition,
                         json_pack("{s:s,s:s,s:s,s:s,s:s}", "comment_id", sp_test_id(comment),
                                   "recipe_id", sp_test_id(recipe), "user_id", sp_test_id(user),
                                   "content", "nice", "recipe_author_id", sp_test_id(author)));
}
