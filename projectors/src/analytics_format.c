/* The analytics view's databases, names, dates and bitmap codec (proj/analytics.h). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "analytics_internal.h"

#include "sp/banned.h"

static const struct {
    const char *name;
    size_t off;
} an_db_defs[] = {
    {"days", offsetof(struct proj_analytics_dbs, days)},
    {"active", offsetof(struct proj_analytics_dbs, active)},
    {"cohorts", offsetof(struct proj_analytics_dbs, cohorts)},
    {"users", offsetof(struct proj_analytics_dbs, users)},
    {"partitions", offsetof(struct proj_analytics_dbs, partitions)},
    {"pending", offsetof(struct proj_analytics_dbs, pending)},
    {"recipes", offsetof(struct proj_analytics_dbs, recipes)},
    {"recipe_hours", offsetof(struct proj_analytics_dbs, recipe_hours)},
    {"recipe_days", offsetof(struct proj_analytics_dbs, recipe_days)},
    {"recipe_totals", offsetof(struct proj_analytics_dbs, recipe_totals)},
    {"popular", offsetof(struct proj_analytics_dbs, popular)},
};
_Static_assert(sizeof(an_db_defs) / sizeof(an_db_defs[0]) == PROJ_ANALYTICS_MAX_DBS,
               "PROJ_ANALYTICS_MAX_DBS is the database count");

int an__dbs_open(MDB_txn *txn, bool create, struct proj_analytics_dbs *dbs, struct sp_errbuf *eb)
{
    for (size_t i = 0; i < PROJ_ANALYTICS_MAX_DBS; i++) {
        MDB_dbi *dbi = (MDB_dbi *)(void *)((char *)dbs + an_db_defs[i].off);
        int rc = mdb_dbi_open(txn, an_db_defs[i].name, create ? MDB_CREATE : 0, dbi);
        if (rc == MDB_NOTFOUND)
            return sp_err_set(eb, SP_ENOTFOUND, NULL, "analytics view has no database \"%s\"",
                              an_db_defs[i].name);
        if (rc != 0)
            return proj__mdb_err(eb, rc, "could not open an analytics database");
    }
    return 0;
}

int proj_analytics_dbs_open(MDB_txn *txn, struct proj_analytics_dbs *dbs, struct sp_errbuf *eb)
{
    return an__dbs_open(txn, false, dbs, eb);
}

static const char *const counter_names[PROJ_ANALYTICS_COUNTERS] = {
    [PROJ_AN_REGISTRATIONS] = "registrations",
    [PROJ_AN_LOGINS] = "logins",
    [PROJ_AN_REFRESHES] = "refreshes",
    [PROJ_AN_LOGOUTS] = "logouts",
    [PROJ_AN_PROFILE_UPDATES] = "profile_updates",
    [PROJ_AN_RECIPES_CREATED] = "recipes_created",
    [PROJ_AN_RECIPES_UPDATED] = "recipes_updated",
    [PROJ_AN_RECIPES_DELETED] = "recipes_deleted",
    [PROJ_AN_LIKES] = "likes",
    [PROJ_AN_UNLIKES] = "unlikes",
    [PROJ_AN_COMMENTS] = "comments",
    [PROJ_AN_COMMENTS_DELETED] = "comments_deleted",
    [PROJ_AN_FOLLOWS] = "follows",
    [PROJ_AN_UNFOLLOWS] = "unfollows",
    [PROJ_AN_NOTIFICATIONS_READ] = "notifications_read",
    [PROJ_AN_MESSAGES] = "messages",
};

const char *proj_analytics_counter_name(enum proj_analytics_counter c)
{
    return (unsigned)c < PROJ_ANALYTICS_COUNTERS ? counter_names[c] : "?";
}

/* ------------------------------------------------------------------- dates */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int32_t proj_analytics_day_of(int64_t ts_us)
{
    return (int32_t)floor_div(ts_us, PROJ_ANALYTICS_DAY_US);
}

int32_t proj_analytics_week_of(int32_t day)
{
    /* 1970-01-01 was a Thursday: Monday is 3 days before day 0. */
    return day - (int32_t)(((int64_t)day + 3 - floor_div((int64_t)day + 3, 7) * 7));
}

/* Hinnant's days_from_civil: y-m-d (proleptic Gregorian) -> days since 1970-01-01. */
static int32_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + (int64_t)doe - 719468);
}

/* Hinnant's civil_from_days. */
static void civil_from_days(int32_t day, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t z = (int64_t)day + 719468;
    int64_t era = floor_div(z, 146097);
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int32_t proj_analytics_month_of(int32_t day)
{
    int64_t y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    return days_from_civil(y, m, 1);
}

int32_t proj_analytics_next_month(int32_t day)
{
    int64_t y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    return m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1);
}

static int digits(const char *s, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

int proj_analytics_date_parse(const char *s, int32_t *day)
{
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y, m, d;

    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || digits(s, 4, &y) != 0 ||
        digits(s + 5, 2, &m) != 0 || digits(s + 8, 2, &d) != 0)
        return SP_EINVAL;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return SP_EINVAL;
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return SP_EINVAL;
    *day = days_from_civil(y, m, d);
    return 0;
}

char *proj_analytics_date_format(int32_t day, char *out, size_t out_size)
{
    int64_t y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    snprintf(out, out_size, "%04lld-%02u-%02u", (long long)y, m, d);
    return out;
}

int proj_analytics_granularity_parse(const char *s, enum proj_analytics_granularity *out)
{
    static const char *const names[] = {"day", "week", "month"};
    for (int i = 0; i < 3; i++)
        if (s != NULL && strcmp(s, names[i]) == 0) {
            *out = (enum proj_analytics_granularity)i;
            return 0;
        }
    return SP_EINVAL;
}

static const char *const window_names[] = {"24h", "7d", "30d", "all"};

int proj_analytics_window_parse(const char *s, enum proj_analytics_window *out)
{
    for (int i = 0; i < 4; i++)
        if (s != NULL && strcmp(s, window_names[i]) == 0) {
            *out = (enum proj_analytics_window)i;
            return 0;
        }
    return SP_EINVAL;
}

const char *proj_analytics_window_name(enum proj_analytics_window w)
{
    return (unsigned)w < 4 ? window_names[w] : "?";
}

/* ------------------------------------------------------------------ bitmaps */

int an__bitmap_card(const MDB_val *v, uint64_t *card, struct sp_errbuf *eb)
{
    if (v->mv_size < 8)
        return sp_err_set(eb, SP_ECORRUPT, NULL, "analytics bitmap value of %zu bytes", v->mv_size);
    *card = proj__get64(v->mv_data);
    return 0;
}

int an__bitmap_decode(const MDB_val *v,
                      roaring_bitmap_t **out,
                      const char *what,
                      struct sp_errbuf *eb)
{
    uint64_t card = 0;
    int rc;

    *out = NULL;
    if (v == NULL) {
        *out = roaring_bitmap_create();
        return 0;
    }
    if ((rc = an__bitmap_card(v, &card, eb)) != 0)
        return rc;
    const char *bytes = (const char *)v->mv_data + 8;
    size_t len = v->mv_size - 8;
    /* portable_deserialize_safe never reads past len; it returns NULL on bad framing. */
    roaring_bitmap_t *bm = roaring_bitmap_portable_deserialize_safe(bytes, len);
    if (bm == NULL || roaring_bitmap_get_cardinality(bm) != card) {
        roaring_bitmap_free(bm);
        return sp_err_set(eb, SP_ECORRUPT, NULL, "analytics %s bitmap is corrupt", what);
    }
    *out = bm;
    return 0;
}

void an__bitmap_encode(roaring_bitmap_t *bm, struct proj_bytes *out)
{
    /* run_optimize alone keeps a container's type when two encodings are the same size,
     * so the result would depend on history: first make every container an array or a
     * bitmap (by cardinality only), then let run_optimize choose. */
    roaring_bitmap_remove_run_compression(bm);
    roaring_bitmap_run_optimize(bm);
    size_t len = roaring_bitmap_portable_size_in_bytes(bm);
    out->len = 0;
    uint8_t *p = proj__bytes_reserve(out, 8 + len);
    proj__be64(p, roaring_bitmap_get_cardinality(bm));
    size_t w = roaring_bitmap_portable_serialize(bm, (char *)p + 8);
    SP_ASSERT(w == len);
    out->len = 8 + len;
}
