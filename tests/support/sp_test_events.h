/*
 * Catalogue-valid events for tests that fold or append them by hand (the analytics view's
 * unit test, the export tests): an envelope on stream "<category>-<id>" at that stream's
 * next version, with the actor, time and partition a test chooses, checked against the
 * event catalogue (a test event that breaks its schema fails the test). Helpers for the
 * types the analytics view folds build their payloads.
 *
 * Not thread-safe: stream versions and the id strings live in process-wide state.
 */
#ifndef SP_TEST_EVENTS_H
#define SP_TEST_EVENTS_H

#include <stdint.h>

#include <jansson.h>

#include "es/event.h"

/**
 * A new event. @p data is stolen; @p actor 0 means none; pos = {@p partition, 0}.
 * @return owned: sp_test_event_free().
 */
struct es_event *sp_test_event(const char *type,
                               const char *category,
                               uint64_t id,
                               uint64_t actor,
                               int64_t time_us,
                               int32_t partition,
                               json_t *data);

/** Free an event of sp_test_event; NULL is a no-op. */
void sp_test_event_free(struct es_event *ev);

/** Forget the stream versions handed out so far (each stream starts at 1 again). */
void sp_test_events_reset(void);

/** @p id as a decimal string. @return borrowed: valid for the next 7 calls. */
const char *sp_test_id(uint64_t id);

/** µs since the epoch of @p day (days since 1970-01-01) at h:m:s.us. */
int64_t sp_test_at(int32_t day, int h, int m, int s, int us);

/* Events of each type (actor = the user who acted). The password and refresh hashes are
 * recognisable strings (SP_TEST_PASSWORD_HASH, SP_TEST_REFRESH_HASH), so that a test can
 * check they never leave in an export. */
#define SP_TEST_PASSWORD_HASH "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$SECRETPWHASH"
#define SP_TEST_REFRESH_HASH  "5ec5e75ec5e75ec5e75ec5e75ec5e75ec5e75ec5e75ec5e75ec5e75ec5e75ec5"

struct es_event *sp_test_registered(uint64_t user, int64_t time_us, int32_t partition);
struct es_event *sp_test_login(uint64_t user, uint64_t session, int64_t time_us, int32_t partition);
struct es_event *sp_test_created(
    uint64_t recipe, uint64_t author, const char *title, int64_t time_us, int32_t partition);
struct es_event *
sp_test_deleted(uint64_t recipe, uint64_t author, int64_t time_us, int32_t partition);
/** RecipeLiked or RecipeUnliked (@p type), on the user's stream. */
struct es_event *sp_test_reaction(const char *type,
                                  uint64_t user,
                                  uint64_t recipe,
                                  uint64_t author,
                                  int64_t time_us,
                                  int32_t partition);
struct es_event *sp_test_commented(uint64_t comment,
                                   uint64_t user,
                                   uint64_t recipe,
                                   uint64_t author,
                                   int64_t time_us,
                                   int32_t partition);

#endif
