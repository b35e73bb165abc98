/*
 * The analytics view (DESIGN.md "Projections"): per-day counters of what users did, the
 * exact set of users active each day as compressed bitmaps (Roaring: Chambi, Lemire,
 * Kaser, Godin, "Better bitmap performance with Roaring bitmaps", Software: Practice and
 * Experience 46(5), 2016; CRoaring's portable serialization format,
 * https://github.com/RoaringBitmap/RoaringFormatSpec), signup cohorts, and the likes and
 * comments of recipes per hour and per day, in LMDB named databases. From them: DAU, WAU
 * and MAU over any window as exact unions, stickiness, the retention cohort triangle and
 * popular recipes over a window.
 *
 * The caller (the projector runner, or a rebuild) owns the LMDB environment, its
 * transactions, the checkpoints and the dead letters (proj/view.h); this module owns the
 * databases below and their format, PROJ_ANALYTICS_FORMAT.
 *
 * TIME. Every bucket comes from the event's own `time` (UTC), never from when it was
 * folded: day = floor(time_us / 86,400,000,000), days since 1970-01-01 (so
 * 23:59:59.999999 is the day before 00:00:00); hour likewise with 3,600,000,000; a week
 * starts on Monday (ISO 8601) and is named by its Monday's day; a month is a calendar
 * month. Dates convert with Howard Hinnant's days_from_civil / civil_from_days
 * ("chrono-Compatible Low-Level Date Algorithms", proleptic Gregorian calendar).
 *
 * USERS. Roaring bitmaps hold 32-bit values and user ids are 64-bit Snowflakes, so every
 * user gets a dense 32-bit number when their UserRegistered is folded:
 * (n << 8) | partition, where n counts the registrations before it in its own partition
 * (a user stream lives in one partition, in order). The number depends only on the
 * partition's own order, so it is the same live, in a rebuild and under any interleaving
 * of partitions. Limits: partitions 0..255 and 16,777,215 registrations per partition
 * (a registration beyond is refused as SP_ETOOBIG: dead-lettered or halting, per
 * projector.poison_policy). An event whose actor's registration has not been folded yet
 * (another partition, on Kafka) is kept in `pending` and added to the bitmaps when the
 * registration arrives.
 *
 * FORMAT. All integers big-endian; "day" / "week" / "hour" are u32 of (value + 2^31), so
 * keys sort by time and dates before 1970 work.
 *   days          day -> PROJ_ANALYTICS_COUNTERS x u64: the day's counters (enum
 *                   proj_analytics_counter)
 *   active        day -> u64 cardinality + the portable Roaring bitmap of the numbers
 *                   of users active that day (an event with that `actor`)
 *   cohorts       week -> u64 cardinality + bitmap of the users registered that week
 *   users         user id(8) -> u32 number + day of registration
 *   partitions    partition(u32) -> u32 registrations folded from it
 *   pending       actor id(8) + day -> "": activity of a user not registered yet
 *   recipes       recipe id(8) -> u64 author id, u8 flags (1 = deleted), u16 len, title
 *   recipe_hours  hour + recipe id(8) -> u32 likes, u32 comments, u32 unlikes
 *   recipe_days   day + recipe id(8) -> the same three counts
 *   recipe_totals recipe id(8) -> the same three counts, all time
 *   popular       u64 (2^63 - score) + recipe id(8) -> "": every recipe of recipe_totals
 *                   by all-time score, highest first, ties by recipe id
 * Bitmaps are stored canonically (every container first made an array or a bitmap by its
 * cardinality, then run-optimised), so a set has one encoding. Every
 * value is a sum, a union or the last state of a stream, so the databases depend only on
 * which events were folded, not on their interleaving nor on batch boundaries: a rebuild
 * has the live view's checksum.
 *
 * Score of a recipe over a window: likes + 2 x comments - unlikes of the events whose time
 * falls in the window (comments deleted later still count: they happened). Windows end
 * at an instant `at`: 24h = the 24 whole hours ending with at's hour; 7d and 30d = the 7 and
 * 30 UTC days ending with at's day; all = everything. Deleted recipes drop out.
 */
#ifndef PROJ_ANALYTICS_H
#define PROJ_ANALYTICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "es/event.h"
#include "sp/err.h"

/* Format of the view's databases; stored by the runner, which refuses another. */
#define PROJ_ANALYTICS_FORMAT "stockpot-analytics/1"
/* Named databases this module opens (the runner adds "meta" and "dead_letters"). */
#define PROJ_ANALYTICS_MAX_DBS 11

#define PROJ_ANALYTICS_DAY_US  INT64_C(86400000000)
#define PROJ_ANALYTICS_HOUR_US INT64_C(3600000000)
/* Longest range (days) a query or an export may span: callers cap their inputs with it. */
#define PROJ_ANALYTICS_MAX_RANGE_DAYS 400
#define PROJ_ANALYTICS_MAX_LIMIT      100

/** The per-day counters, in stored order. Names: proj_analytics_counter_name(). */
enum proj_analytics_counter {
    PROJ_AN_REGISTRATIONS,      /* UserRegistered */
    PROJ_AN_LOGINS,             /* SessionStarted */
    PROJ_AN_REFRESHES,          /* SessionRefreshed */
    PROJ_AN_LOGOUTS,            /* SessionRevoked */
    PROJ_AN_PROFILE_UPDATES,    /* ProfileUpdated */
    PROJ_AN_RECIPES_CREATED,    /* RecipeCreated */
    PROJ_AN_RECIPES_UPDATED,    /* RecipeUpdated */
    PROJ_AN_RECIPES_DELETED,    /* RecipeDeleted */
    PROJ_AN_LIKES,              /* RecipeLiked */
    PROJ_AN_UNLIKES,            /* RecipeUnliked */
    PROJ_AN_COMMENTS,           /* RecipeCommented */
    PROJ_AN_COMMENTS_DELETED,   /* CommentDeleted */
    PROJ_AN_FOLLOWS,            /* UserFollowed */
    PROJ_AN_UNFOLLOWS,          /* UserUnfollowed */
    PROJ_AN_NOTIFICATIONS_READ, /* NotificationsRead */
    PROJ_AN_MESSAGES,           /* chat messages: 0 until the chat events exist */
    PROJ_ANALYTICS_COUNTERS
};

/** Snake-case name of a counter, e.g. "recipes_created". @return static. */
const char *proj_analytics_counter_name(enum proj_analytics_counter c);

/* ------------------------------------------------------------------- dates */

/** Day (days since 1970-01-01 UTC) of an instant in µs since the epoch (floor). */
int32_t proj_analytics_day_of(int64_t ts_us);

/** Monday (as a day) of the ISO week holding @p day. */
int32_t proj_analytics_week_of(int32_t day);

/** First day of the calendar month holding @p day. */
int32_t proj_analytics_month_of(int32_t day);

/** First day of the month after the one holding @p day. */
int32_t proj_analytics_next_month(int32_t day);

/**
 * Parse a date "YYYY-MM-DD" (ISO 8601 calendar date, extended format, years 1970-9999).
 * @return 0 and *day; SP_EINVAL if @p s is anything else (a missing digit, a 13th month,
 *         February 30th, trailing characters).
 */
SP_MUST_CHECK int proj_analytics_date_parse(const char *s, int32_t *day);

/** Format @p day as "YYYY-MM-DD" into @p out (≥ 11 bytes). @return out. */
char *proj_analytics_date_format(int32_t day, char *out, size_t out_size);

/* ------------------------------------------------------------ the writer (fold) */

/** The view's writer: its database handles and the batch's buffered changes. */
struct proj_analytics_writer;

/** New writer. @param[out] out owned: free with proj_analytics_writer_free. @return 0. */
SP_MUST_CHECK int proj_analytics_writer_new(struct proj_analytics_writer **out);

/** Free a writer and what it buffered. NULL is a no-op. */
void proj_analytics_writer_free(struct proj_analytics_writer *w);

/**
 * Open (creating) the view's databases in the write transaction @p txn of an environment
 * with room for PROJ_ANALYTICS_MAX_DBS more named databases. The handles stay valid once
 * @p txn commits. @return 0 or SP_EDB.
 */
SP_MUST_CHECK int
proj_analytics_writer_open(struct proj_analytics_writer *w, MDB_txn *txn, struct sp_errbuf *eb);

/**
 * Fold one event (it passed es_event_check, and has its position) into the batch's
 * buffers. Reads @p txn (users, recipes, partitions) but never writes it. On error the
 * buffers are as before the call.
 * @return 0; SP_ETOOBIG past the view's user limits; SP_ESCHEMA if the actor or an id
 *         is not a valid id, or a user registers twice; SP_EDB if a read failed.
 */
SP_MUST_CHECK int proj_analytics_fold(struct proj_analytics_writer *w,
                                      MDB_txn *txn,
                                      const struct es_event *ev,
                                      struct sp_errbuf *eb);

/** Write what the batch buffered into @p txn, then empty the buffers.
 *  @return 0 or SP_EDB (MDB_MAP_FULL included); SP_ECORRUPT if a stored value is bad. */
SP_MUST_CHECK int
proj_analytics_flush(struct proj_analytics_writer *w, MDB_txn *txn, struct sp_errbuf *eb);

/** Forget what the batch buffered (its transaction was rolled back). */
void proj_analytics_discard(struct proj_analytics_writer *w);

/* ------------------------------------------------------------- the reader */

/** Handles of the view's databases, for reads. */
struct proj_analytics_dbs {
    MDB_dbi days, active, cohorts, users, partitions, pending, recipes, recipe_hours, recipe_days,
        recipe_totals, popular;
};

/**
 * Open the view's databases for reading in @p txn (read or write transaction).
 * @return 0; SP_ENOTFOUND if the view has none of them (not built by this module);
 *         SP_EDB.
 */
SP_MUST_CHECK int
proj_analytics_dbs_open(MDB_txn *txn, struct proj_analytics_dbs *dbs, struct sp_errbuf *eb);

/** One day's row. */
struct proj_analytics_day {
    int32_t day;                              /* days since 1970-01-01 */
    uint64_t counts[PROJ_ANALYTICS_COUNTERS]; /* enum proj_analytics_counter */
    uint64_t active;                          /* distinct users active (DAU) */
};

/** A query's summary of [from, to]. */
struct proj_analytics_summary {
    struct proj_analytics_day *days; /* owned: to - from + 1 rows, every day */
    size_t n_days;
    uint64_t totals[PROJ_ANALYTICS_COUNTERS]; /* sums over the days */
    uint64_t active;                          /* distinct users active in [from, to] */
    uint64_t dau, wau, mau; /* distinct active on to, in the 7 and 30 days ending on to */
    double stickiness;      /* mean DAU over the 30 days ending on to / mau; 0 if mau = 0 */
};

/**
 * Per-day rows and totals of [from, to] (days; to - from < PROJ_ANALYTICS_MAX_RANGE_DAYS)
 * and DAU / WAU / MAU / stickiness at @p to, all exact.
 * @param[out] out  release with proj_analytics_summary_release
 * @return 0; SP_EINVAL if the range is inverted or too long; SP_EDB; SP_ECORRUPT.
 */
SP_MUST_CHECK int proj_analytics_summary(const struct proj_analytics_dbs *dbs,
                                         MDB_txn *txn,
                                         int32_t from,
                                         int32_t to,
                                         struct proj_analytics_summary *out,
                                         struct sp_errbuf *eb);

void proj_analytics_summary_release(struct proj_analytics_summary *s);

/**
 * Distinct users active on at least one day of [from, to] (an exact union of the day
 * bitmaps). @return 0; SP_EDB; SP_ECORRUPT.
 */
SP_MUST_CHECK int proj_analytics_active_count(const struct proj_analytics_dbs *dbs,
                                              MDB_txn *txn,
                                              int32_t from,
                                              int32_t to,
                                              uint64_t *out,
                                              struct sp_errbuf *eb);

enum proj_analytics_granularity {
    PROJ_AN_DAY,
    PROJ_AN_WEEK,  /* ISO weeks, Monday first */
    PROJ_AN_MONTH, /* calendar months */
};

/** Parse "day" | "week" | "month". @return 0 or SP_EINVAL. */
SP_MUST_CHECK int proj_analytics_granularity_parse(const char *s,
                                                   enum proj_analytics_granularity *out);

/** One period of proj_analytics_active_periods. */
struct proj_analytics_period {
    int32_t start, end; /* the days of the period inside [from, to], inclusive */
    uint64_t active;    /* distinct users active on those days */
};

/**
 * Active users per period: every day, week or month overlapping [from, to], each clipped
 * to the range (so the first and last may be partial: start / end say).
 * @param[out] out  owned array (free()) of *n periods, oldest first
 * @return 0; SP_EINVAL (range); SP_EDB; SP_ECORRUPT.
 */
SP_MUST_CHECK int proj_analytics_active_periods(const struct proj_analytics_dbs *dbs,
                                                MDB_txn *txn,
                                                enum proj_analytics_granularity g,
                                                int32_t from,
                                                int32_t to,
                                                struct proj_analytics_period **out,
                                                size_t *n,
                                                struct sp_errbuf *eb);

/** One row of the retention triangle. */
struct proj_analytics_cohort {
    int32_t week;     /* Monday of the signup week */
    uint64_t size;    /* users who registered that week */
    size_t n_weeks;   /* weeks from the signup week to the week of `to`, inclusive */
    uint64_t *active; /* owned, n_weeks: of the cohort, how many were active in week k
                       * (days after `to` not counted); active[0] counts the signup week */
};

/**
 * The cohort triangle: one row per week overlapping [from, to] (from its Monday) in which
 * someone registered, oldest first, each cohort followed week by week up to the week of
 * @p to. Shares are active[k] / size.
 * @param[out] out  owned: free with proj_analytics_cohorts_free(*out, *n)
 * @return 0; SP_EINVAL (range); SP_EDB; SP_ECORRUPT.
 */
SP_MUST_CHECK int proj_analytics_retention(const struct proj_analytics_dbs *dbs,
                                           MDB_txn *txn,
                                           int32_t from,
                                           int32_t to,
                                           struct proj_analytics_cohort **out,
                                           size_t *n,
                                           struct sp_errbuf *eb);

void proj_analytics_cohorts_free(struct proj_analytics_cohort *c, size_t n);

enum proj_analytics_window {
    PROJ_AN_WINDOW_24H,
    PROJ_AN_WINDOW_7D,
    PROJ_AN_WINDOW_30D,
    PROJ_AN_WINDOW_ALL,
};

/** Parse "24h" | "7d" | "30d" | "all". @return 0 or SP_EINVAL. */
SP_MUST_CHECK int proj_analytics_window_parse(const char *s, enum proj_analytics_window *out);

/** Name of a window ("24h", ...). @return static. */
const char *proj_analytics_window_name(enum proj_analytics_window w);

/** One popular recipe. */
struct proj_analytics_recipe {
    int64_t id;
    int64_t author_id; /* 0 if the recipe's creation is not folded yet */
    int64_t score;     /* likes + 2 x comments - unlikes in the window */
    uint64_t likes, comments, unlikes;
    char title[512]; /* "" if the creation is not folded yet; the view keeps 500 bytes
                      * at most, cut at a UTF-8 character boundary */
};

/**
 * The @p limit (1..PROJ_ANALYTICS_MAX_LIMIT) highest-scoring recipes of the window ending
 * at @p at_us (ignored for "all"), highest first, ties by recipe id ascending; deleted
 * recipes and recipes with no likes, comments nor unlikes in the window are left out.
 * @param out  @p limit entries; *n receives how many were filled
 * @return 0; SP_EINVAL (limit); SP_EDB; SP_ECORRUPT.
 */
SP_MUST_CHECK int proj_analytics_popular(const struct proj_analytics_dbs *dbs,
                                         MDB_txn *txn,
                                         enum proj_analytics_window window,
                                         int64_t at_us,
                                         size_t limit,
                                         struct proj_analytics_recipe *out,
                                         size_t *n,
                                         struct sp_errbuf *eb);

#endif
