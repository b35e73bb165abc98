/*
 * The analytics view (proj/analytics.h) on a real LMDB environment: dates and day
 * boundaries, a hand-computed example (counters, DAU/WAU/MAU, stickiness, periods, the
 * cohort triangle, popular recipes with unlikes, ties and a deletion), the same view
 * whatever the interleaving of partitions and the batch boundaries, activity before a
 * registration, and a poison event that changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <lmdb.h>

#include "es/catalogue.h"
#include "es/event.h"
#include "proj/analytics.h"
#include "sp/buf.h"
#include "sp_test_events.h"

#include "sp/banned.h"

static const char *const an_dbs[] = {"days",        "active",        "cohorts", "users",
                                     "partitions",  "pending",       "recipes", "recipe_hours",
                                     "recipe_days", "recipe_totals", "popular"};

struct fx {
    char dir[64];
    MDB_env *env;
    struct proj_analytics_writer *w;
    struct proj_analytics_dbs dbs;
};

static void fx_open(struct fx *f)
{
    MDB_txn *txn;

    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/sp-analytics-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(mdb_env_create(&f->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(f->env, PROJ_ANALYTICS_MAX_DBS), 0);
    assert_int_equal(mdb_env_set_mapsize(f->env, 256U << 20), 0);
    assert_int_equal(mdb_env_open(f->env, f->dir, MDB_NOSYNC, 0600), 0);
    assert_int_equal(proj_analytics_writer_new(&f->w), 0);
    assert_int_equal(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
    assert_int_equal(proj_analytics_writer_open(f->w, txn, NULL), 0);
    assert_int_equal(proj_analytics_dbs_open(txn, &f->dbs, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

static void fx_close(struct fx *f)
{
    char path[128];

    proj_analytics_writer_free(f->w);
    mdb_env_close(f->env);
    snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", f->dir);
    unlink(path);
    rmdir(f->dir);
}

/* Fold @p n events in one batch (fold + flush + commit); rcs[i] receives each fold's code. */
static void fx_batch(struct fx *f, struct es_event *const *evs, size_t n, int *rcs)
{
    MDB_txn *txn;
    struct sp_errbuf eb = {{0}, {0}};

    assert_int_equal(mdb_txn_begin(f->env, NULL, 0, &txn), 0);
    for (size_t i = 0; i < n; i++) {
        int rc = proj_analytics_fold(f->w, txn, evs[i], &eb);
        if (rcs != NULL)
            rcs[i] = rc;
        else if (rc != 0)
            fail_msg("fold of %s failed: %s", evs[i]->type, eb.msg);
    }
    int frc = proj_analytics_flush(f->w, txn, &eb);
    if (frc != 0)
        fail_msg("flush failed (%s): %s", sp_errname(frc), eb.msg);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

/* Every database's keys and values, in order, as hex lines. */
static void fx_dump(struct fx *f, struct sp_buf *out)
{
    MDB_txn *txn;

    assert_int_equal(mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn), 0);
    for (size_t d = 0; d < sizeof(an_dbs) / sizeof(an_dbs[0]); d++) {
        MDB_dbi dbi;
        MDB_cursor *cur;
        MDB_val k, v;
        assert_int_equal(mdb_dbi_open(txn, an_dbs[d], 0, &dbi), 0);
        assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
        assert_int_equal(sp_buf_addf(out, "[%s]\n", an_dbs[d]), 0);
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            for (size_t i = 0; i < k.mv_size; i++)
                assert_int_equal(sp_buf_addf(out, "%02x", ((uint8_t *)k.mv_data)[i]), 0);
            assert_int_equal(sp_buf_add(out, "=", 1), 0);
            for (size_t i = 0; i < v.mv_size; i++)
                assert_int_equal(sp_buf_addf(out, "%02x", ((uint8_t *)v.mv_data)[i]), 0);
            assert_int_equal(sp_buf_add(out, "\n", 1), 0);
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
}

static int32_t day_of(const char *date)
{
    int32_t d;
    assert_int_equal(proj_analytics_date_parse(date, &d), 0);
    return d;
}

/* ------------------------------------------------------------------ dates */

static void test_dates(void **state)
{
    (void)state;
    int32_t d;
    char buf[16];

    assert_int_equal(proj_analytics_date_parse("1970-01-01", &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(proj_analytics_date_parse("2026-12-05", &d), 0);
    assert_string_equal(proj_analytics_date_format(d, buf, sizeof(buf)), "2026-12-05");
    assert_int_equal(proj_analytics_date_parse("2024-02-29", &d), 0);
    assert_string_equal(proj_analytics_date_format(d + 1, buf, sizeof(buf)), "2024-03-01");
    const char *bad[] = {"2026-02-29", "2026-13-01", "2026-00-10", "2026-1-05",  "2026-12-05x",
                         "2026/12/05", "",           "1900-02-29", "2026-12-32", "20261205"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (proj_analytics_date_parse(bad[i], &d) != SP_EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
    /* Day boundaries: 23:59:59.999999 is the day before 00:00:00, also before 1970. */
    d = day_of("2026-12-05");
    assert_int_equal(proj_analytics_day_of(sp_test_at(d, 0, 0, 0, 0)), d);
    assert_int_equal(proj_analytics_day_of(sp_test_at(d, 0, 0, 0, 0) - 1), d - 1);
    assert_int_equal(proj_analytics_day_of(sp_test_at(d, 23, 59, 59, 999999)), d);
    assert_int_equal(proj_analytics_day_of(-1), -1);
    assert_int_equal(proj_analytics_day_of(0), 0);
    /* 2026-12-05 is a Saturday: its week starts on Monday 2026-11-30. */
    assert_string_equal(proj_analytics_date_format(proj_analytics_week_of(d), buf, sizeof(buf)),
                        "2026-11-30");
    assert_int_equal(proj_analytics_week_of(day_of("2026-11-30")), day_of("2026-11-30"));
    assert_int_equal(proj_analytics_week_of(day_of("2026-12-06")), day_of("2026-11-30"));
    assert_int_equal(proj_analytics_week_of(day_of("2026-12-07")), day_of("2026-12-07"));
    assert_int_equal(proj_analytics_week_of(-1), -3); /* Wed 1969-12-31 -> Mon 12-29 */
    assert_int_equal(proj_analytics_month_of(d), day_of("2026-12-01"));
    assert_int_equal(proj_analytics_next_month(d), day_of("2027-01-01"));
    assert_int_equal(proj_analytics_next_month(day_of("2024-01-31")), day_of("2024-02-01"));
}

/* ------------------------------------------------------------------ hand example */

enum { U1 = 1001, U2 = 1002, U3 = 1003, U4 = 1004, R50 = 50, R100 = 100, R200 = 200, R300 = 300 };

/* The example of the comments below; D0 = Monday 2026-11-02. */
static size_t example(struct es_event **evs, int32_t d0)
{
    size_t n = 0;
    evs[n++] = sp_test_registered(U1, sp_test_at(d0, 10, 0, 0, 0), 0);
    evs[n++] = sp_test_login(U1, 9001, sp_test_at(d0, 10, 1, 0, 0), 0);
    evs[n++] = sp_test_created(R100, U1, "Soup", sp_test_at(d0, 11, 0, 0, 0), 0);
    evs[n++] = sp_test_registered(U2, sp_test_at(d0, 23, 59, 59, 999999), 0);
    evs[n++] = sp_test_registered(U3, sp_test_at(d0 + 1, 0, 0, 0, 0), 0);
    evs[n++] = sp_test_reaction("RecipeLiked", U2, R100, U1, sp_test_at(d0 + 1, 9, 0, 0, 0), 0);
    evs[n++] = sp_test_created(R200, U3, "Stew", sp_test_at(d0 + 1, 12, 0, 0, 0), 0);
    evs[n++] = sp_test_created(R50, U3, "Bread", sp_test_at(d0 + 1, 13, 0, 0, 0), 0);
    evs[n++] = sp_test_commented(7001, U2, R200, U3, sp_test_at(d0 + 2, 8, 0, 0, 0), 0);
    evs[n++] = sp_test_reaction("RecipeUnliked", U2, R100, U1, sp_test_at(d0 + 3, 8, 0, 0, 0), 0);
    evs[n++] = sp_test_registered(U4, sp_test_at(d0 + 7, 6, 0, 0, 0), 0);
    evs[n++] = sp_test_created(R300, U4, "Cake", sp_test_at(d0 + 7, 7, 0, 0, 0), 0);
    evs[n++] = sp_test_login(U1, 9002, sp_test_at(d0 + 8, 7, 0, 0, 0), 0);
    evs[n++] = sp_test_reaction("RecipeLiked", U1, R300, U4, sp_test_at(d0 + 8, 8, 0, 0, 0), 0);
    evs[n++] = sp_test_commented(7002, U1, R50, U3, sp_test_at(d0 + 8, 9, 0, 0, 0), 0);
    evs[n++] = sp_test_reaction("RecipeLiked", U3, R100, U1, sp_test_at(d0 + 14, 8, 0, 0, 0), 0);
    evs[n++] = sp_test_reaction("RecipeLiked", U3, R300, U4, sp_test_at(d0 + 14, 9, 0, 0, 0), 0);
    evs[n++] = sp_test_deleted(R300, U4, sp_test_at(d0 + 15, 9, 0, 0, 0), 0);
    return n;
}

static void test_example(void **state)
{
    (void)state;
    struct fx f;
    struct es_event *evs[32];
    int32_t d0 = day_of("2026-11-02");
    size_t n = example(evs, d0);
    struct sp_errbuf eb = {{0}, {0}};
    MDB_txn *txn;

    fx_open(&f);
    fx_batch(&f, evs, n, NULL);
    assert_int_equal(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);

    /* Counters and DAU per day, totals, DAU/WAU/MAU and stickiness at D15. */
    struct proj_analytics_summary s;
    assert_int_equal(proj_analytics_summary(&f.dbs, txn, d0, d0 + 15, &s, &eb), 0);
    assert_int_equal(s.n_days, 16);
    const uint64_t dau[16] = {2, 2, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1};
    for (int i = 0; i < 16; i++) {
        assert_int_equal(s.days[i].day, d0 + i);
        assert_int_equal(s.days[i].active, dau[i]);
    }
    assert_int_equal(s.days[0].counts[PROJ_AN_REGISTRATIONS], 2);
    assert_int_equal(s.days[0].counts[PROJ_AN_LOGINS], 1);
    assert_int_equal(s.days[1].counts[PROJ_AN_REGISTRATIONS], 1);
    assert_int_equal(s.days[1].counts[PROJ_AN_RECIPES_CREATED], 2);
    assert_int_equal(s.days[3].counts[PROJ_AN_UNLIKES], 1);
    assert_int_equal(s.days[14].counts[PROJ_AN_LIKES], 2);
    assert_int_equal(s.days[15].counts[PROJ_AN_RECIPES_DELETED], 1);
    assert_int_equal(s.totals[PROJ_AN_REGISTRATIONS], 4);
    assert_int_equal(s.totals[PROJ_AN_LOGINS], 2);
    assert_int_equal(s.totals[PROJ_AN_RECIPES_CREATED], 4);
    assert_int_equal(s.totals[PROJ_AN_LIKES], 4);
    assert_int_equal(s.totals[PROJ_AN_UNLIKES], 1);
    assert_int_equal(s.totals[PROJ_AN_COMMENTS], 2);
    assert_int_equal(s.totals[PROJ_AN_MESSAGES], 0);
    assert_int_equal(s.active, 4);
    assert_int_equal(s.dau, 1); /* U4 */
    assert_int_equal(s.wau, 2); /* D9..D15: U3, U4 */
    assert_int_equal(s.mau, 4);
    /* mean DAU over 30 days = 10 / 30, over MAU 4 */
    assert_true(s.stickiness > 10.0 / 30.0 / 4.0 - 1e-12 &&
                s.stickiness < 10.0 / 30.0 / 4.0 + 1e-12);
    proj_analytics_summary_release(&s);

    /* Periods: ISO weeks clipped to the range, one month. */
    struct proj_analytics_period *p;
    size_t np;
    assert_int_equal(
        proj_analytics_active_periods(&f.dbs, txn, PROJ_AN_WEEK, d0, d0 + 15, &p, &np, &eb), 0);
    assert_int_equal(np, 3);
    assert_int_equal(p[0].start, d0);
    assert_int_equal(p[0].end, d0 + 6);
    assert_int_equal(p[0].active, 3);
    assert_int_equal(p[1].active, 2);
    assert_int_equal(p[2].start, d0 + 14);
    assert_int_equal(p[2].end, d0 + 15);
    assert_int_equal(p[2].active, 2);
    free(p);
    assert_int_equal(
        proj_analytics_active_periods(&f.dbs, txn, PROJ_AN_MONTH, d0 - 2, d0 + 15, &p, &np, &eb),
        0);
    assert_int_equal(np, 2); /* Oct 31 .. Oct 31, Nov 1 .. Nov 17 */
    assert_int_equal(p[0].start, d0 - 2);
    assert_int_equal(p[0].end, d0 - 2);
    assert_int_equal(p[0].active, 0);
    assert_int_equal(p[1].start, d0 - 1);
    assert_int_equal(p[1].active, 4);
    free(p);
    assert_int_equal(
        proj_analytics_active_periods(&f.dbs, txn, PROJ_AN_DAY, d0, d0 + 15, &p, &np, &eb), 0);
    assert_int_equal(np, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(p[i].active, dau[i]);
    free(p);

    /* The cohort triangle. */
    struct proj_analytics_cohort *c;
    size_t nc;
    assert_int_equal(proj_analytics_retention(&f.dbs, txn, d0, d0 + 15, &c, &nc, &eb), 0);
    assert_int_equal(nc, 2);
    assert_int_equal(c[0].week, d0);
    assert_int_equal(c[0].size, 3);
    assert_int_equal(c[0].n_weeks, 3);
    assert_int_equal(c[0].active[0], 3);
    assert_int_equal(c[0].active[1], 1); /* U1 */
    assert_int_equal(c[0].active[2], 1); /* U3 */
    assert_int_equal(c[1].week, d0 + 7);
    assert_int_equal(c[1].size, 1);
    assert_int_equal(c[1].n_weeks, 2);
    assert_int_equal(c[1].active[0], 1);
    assert_int_equal(c[1].active[1], 1);
    proj_analytics_cohorts_free(c, nc);

    /* Popular: all (R300 deleted; R50 and R200 tie at 2, lower id first), 7d, 30d, 24h. */
    struct proj_analytics_recipe r[8];
    size_t nr;
    assert_int_equal(proj_analytics_popular(&f.dbs, txn, PROJ_AN_WINDOW_ALL, 0, 8, r, &nr, &eb), 0);
    assert_int_equal(nr, 3);
    assert_int_equal(r[0].id, R50);
    assert_int_equal(r[0].score, 2);
    assert_string_equal(r[0].title, "Bread");
    assert_int_equal(r[0].author_id, U3);
    assert_int_equal(r[1].id, R200);
    assert_int_equal(r[1].score, 2);
    assert_int_equal(r[2].id, R100);
    assert_int_equal(r[2].score, 1);
    assert_int_equal(r[2].likes, 2);
    assert_int_equal(r[2].unlikes, 1);
    assert_int_equal(proj_analytics_popular(&f.dbs, txn, PROJ_AN_WINDOW_ALL, 0, 1, r, &nr, &eb), 0);
    assert_int_equal(nr, 1);
    assert_int_equal(r[0].id, R50);
    assert_int_equal(proj_analytics_popular(&f.dbs, txn, PROJ_AN_WINDOW_7D,
                                            sp_test_at(d0 + 15, 12, 0, 0, 0), 8, r, &nr, &eb),
                     0);
    assert_int_equal(nr, 1);
    assert_int_equal(r[0].id, R100);
    assert_int_equal(r[0].score, 1);
    assert_int_equal(proj_analytics_popular(&f.dbs, txn, PROJ_AN_WINDOW_30D,
                                            sp_test_at(d0 + 3, 23, 0, 0, 0), 8, r, &nr, &eb),
                     0);
    assert_int_equal(nr, 2);
    assert_int_equal(r[0].id, R200);
    assert_int_equal(r[0].score, 2);
    assert_int_equal(r[1].id, R100);
    assert_int_equal(r[1].score, 0);
    assert_int_equal(proj_analytics_popular(&f.dbs, txn, PROJ_AN_WINDOW_24H,
                                            sp_test_at(d0 + 1, 9, 30, 0, 0), 8, r, &nr, &eb),
                     0);
    assert_int_equal(nr, 1);
    assert_int_equal(r[0].id, R100);
    /* The hour of 08:59 ends 24h before the like of D1 09:00 is in it: at D2 08:59 it is. */
    assert_int_equal(proj_analytics_popular(&f.dbs, txn, PROJ_AN_WINDOW_24H,
                                            sp_test_at(d0 + 2, 8, 59, 0, 0), 8, r, &nr, &eb),
                     0);
    assert_int_equal(nr, 2); /* R200's comment at D2 08:00 and R100's like at D1 09:00 */
    assert_int_equal(proj_analytics_popular(&f.dbs, txn, PROJ_AN_WINDOW_24H,
                                            sp_test_at(d0 + 2, 9, 0, 0, 0), 8, r, &nr, &eb),
                     0);
    assert_int_equal(nr, 1);
    assert_int_equal(r[0].id, R200);

    /* Bad ranges and limits. */
    assert_int_equal(proj_analytics_summary(&f.dbs, txn, d0 + 1, d0, &s, &eb), SP_EINVAL);
    assert_int_equal(
        proj_analytics_summary(&f.dbs, txn, d0, d0 + PROJ_ANALYTICS_MAX_RANGE_DAYS, &s, &eb),
        SP_EINVAL);
    assert_int_equal(proj_analytics_popular(&f.dbs, txn, PROJ_AN_WINDOW_ALL, 0, 0, r, &nr, &eb),
                     SP_EINVAL);
    mdb_txn_abort(txn);
    for (size_t i = 0; i < n; i++)
        sp_test_event_free(evs[i]);
    fx_close(&f);
}

/* ------------------------------------------------------------------ interleavings */

#define RAND_USERS  60
#define RAND_EVENTS 1500
#define PARTS       3

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A log of 3 partitions: the streams user-<id> and recipe-<id> live in partition id % 3, as
 * on Kafka; sessions and comments (streams of their own) in random partitions, so activity
 * often precedes its actor's registration in another one.
 * Times are random over 40 days, not in log order. */
static size_t random_log(struct es_event **evs, struct es_event **per[PARTS], size_t n_per[PARTS])
{
    uint64_t seed = 42;
    size_t n = 0;
    int32_t d0 = day_of("2026-10-01");

    for (int p = 0; p < PARTS; p++)
        n_per[p] = 0;
    for (uint64_t u = 0; u < RAND_USERS; u++) {
        int32_t p = (int32_t)(u % PARTS);
        int64_t t =
            sp_test_at(d0, 0, 0, 0, 0) + (int64_t)(rng_next(&seed) % (40 * 86400ULL)) * 1000000;
        evs[n] = sp_test_registered(5000 + u, t, p);
        per[p][n_per[p]++] = evs[n++];
    }
    for (size_t i = 0; i < RAND_EVENTS; i++) {
        uint64_t r = rng_next(&seed);
        uint64_t user = 5000 + r % RAND_USERS, recipe = 100 + (r >> 8) % 40;
        int32_t p = (int32_t)((r >> 16) % PARTS);
        int64_t t = sp_test_at(d0, 0, 0, 0, 0) + (int64_t)((r >> 20) % (40 * 86400ULL)) * 1000000;
        switch ((r >> 40) % 6) {
        case 0:
            evs[n] = sp_test_login(user, 100000 + i, t, p);
            break;
        case 1: /* likes are on the liker's stream: user-<id> in id % 3 */
            p = (int32_t)(user % PARTS);
            evs[n] = sp_test_reaction("RecipeLiked", user, recipe, 5000, t, p);
            break;
        case 2:
            p = (int32_t)(user % PARTS);
            evs[n] = sp_test_reaction("RecipeUnliked", user, recipe, 5000, t, p);
            break;
        case 3:
            evs[n] = sp_test_commented(200000 + i, user, recipe, 5000, t, p);
            break;
        case 4: /* a stream lives in one partition: recipe-<id> in id % 3 */
            evs[n] =
                sp_test_created(recipe, user, i % 2 ? "Rye" : "Rice", t, (int32_t)(recipe % PARTS));
            p = (int32_t)(recipe % PARTS);
            break;
        default:
            evs[n] = sp_test_deleted(recipe, user, t, (int32_t)(recipe % PARTS));
            p = (int32_t)(recipe % PARTS);
            break;
        }
        per[p][n_per[p]++] = evs[n++];
    }
    return n;
}

/* Fold the partitions interleaved as @p order says (partition per step, each in its own
 * order) in batches of random sizes. */
static void fold_interleaved(
    struct fx *f, struct es_event **per[PARTS], const size_t n_per[PARTS], uint64_t seed, int mode)
{
    size_t next[PARTS] = {0};
    struct es_event *batch[64];
    size_t nb = 0, left = 0, want = 1 + rng_next(&seed) % 64;

    for (int p = 0; p < PARTS; p++)
        left += n_per[p];
    while (left > 0) {
        int p;
        if (mode == 0) { /* partition after partition */
            for (p = 0; next[p] == n_per[p]; p++)
                ;
        } else if (mode == 1) { /* backwards */
            for (p = PARTS - 1; next[p] == n_per[p]; p--)
                ;
        } else { /* random */
            do
                p = (int)(rng_next(&seed) % PARTS);
            while (next[p] == n_per[p]);
        }
        batch[nb++] = per[p][next[p]++];
        left--;
        if (nb == want || left == 0) {
            fx_batch(f, batch, nb, NULL);
            nb = 0;
            want = 1 + rng_next(&seed) % 64;
        }
    }
}

static void test_interleavings(void **state)
{
    (void)state;
    static struct es_event *evs[RAND_USERS + RAND_EVENTS];
    static struct es_event *per_mem[PARTS][RAND_USERS + RAND_EVENTS];
    struct es_event **per[PARTS] = {per_mem[0], per_mem[1], per_mem[2]};
    size_t n_per[PARTS];
    size_t n = random_log(evs, per, n_per);
    struct sp_buf first, other;

    sp_buf_init(&first, 0);
    for (int mode = 0; mode < 5; mode++) {
        struct fx f;
        fx_open(&f);
        fold_interleaved(&f, per, n_per, 1000 + (uint64_t)mode, mode);
        if (mode == 0) {
            fx_dump(&f, &first);
            /* DAU of every day against a direct count over the events. */
            MDB_txn *txn;
            struct proj_analytics_summary s;
            int32_t d0 = day_of("2026-10-01");
            assert_int_equal(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
            assert_int_equal(proj_analytics_summary(&f.dbs, txn, d0, d0 + 39, &s, NULL), 0);
            for (int d = 0; d < 40; d++) {
                uint64_t seen[RAND_USERS] = {0}, count = 0;
                for (size_t i = 0; i < n; i++)
                    if (proj_analytics_day_of(evs[i]->time_us) == d0 + d) {
                        uint64_t a = strtoull(evs[i]->actor, NULL, 10) - 5000;
                        if (!seen[a]++)
                            count++;
                    }
                assert_int_equal(s.days[d].active, count);
            }
            uint64_t pending_total = 0;
            MDB_stat st;
            assert_int_equal(mdb_stat(txn, f.dbs.pending, &st), 0);
            pending_total = st.ms_entries;
            assert_int_equal(pending_total, 0); /* everyone registered: nothing left pending */
            proj_analytics_summary_release(&s);
            mdb_txn_abort(txn);
        } else {
            sp_buf_init(&other, 0);
            fx_dump(&f, &other);
            if (other.len != first.len || memcmp(other.data, first.data, first.len) != 0) {
                FILE *fa = fopen("/tmp/sp-analytics-a.txt", "w"),
                     *fb = fopen("/tmp/sp-analytics-b.txt", "w");
                fputs(first.data, fa);
                fputs(other.data, fb);
                fclose(fa);
                fclose(fb);
                fail_msg("interleaving %d gave another view (dumps: /tmp/sp-analytics-[ab].txt)",
                         mode);
            }
            sp_buf_release(&other);
        }
        fx_close(&f);
    }
    sp_buf_release(&first);
    for (size_t i = 0; i < n; i++)
        sp_test_event_free(evs[i]);
}

/* Activity before the registration stays pending, then joins the day's bitmap. */
static void test_pending(void **state)
{
    (void)state;
    struct fx f;
    int32_t d = day_of("2026-11-10");
    struct es_event *like = sp_test_reaction("RecipeLiked", 77, 5, 1, sp_test_at(d, 1, 0, 0, 0), 1);
    struct es_event *reg = sp_test_registered(77, sp_test_at(d - 1, 1, 0, 0, 0), 0);
    MDB_txn *txn;
    MDB_stat st;
    struct proj_analytics_summary s;

    fx_open(&f);
    fx_batch(&f, &like, 1, NULL);
    assert_int_equal(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_stat(txn, f.dbs.pending, &st), 0);
    assert_int_equal(st.ms_entries, 1);
    assert_int_equal(proj_analytics_summary(&f.dbs, txn, d - 1, d, &s, NULL), 0);
    assert_int_equal(s.days[1].active, 0);
    assert_int_equal(s.days[1].counts[PROJ_AN_LIKES], 1);
    proj_analytics_summary_release(&s);
    mdb_txn_abort(txn);
    fx_batch(&f, &reg, 1, NULL);
    assert_int_equal(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_stat(txn, f.dbs.pending, &st), 0);
    assert_int_equal(st.ms_entries, 0);
    assert_int_equal(proj_analytics_summary(&f.dbs, txn, d - 1, d, &s, NULL), 0);
    assert_int_equal(s.days[0].active, 1);
    assert_int_equal(s.days[1].active, 1);
    assert_int_equal(s.mau, 1);
    proj_analytics_summary_release(&s);
    mdb_txn_abort(txn);
    sp_test_event_free(like);
    sp_test_event_free(reg);
    fx_close(&f);
}

/* A second registration of one user is poison and changes nothing; so is one past the
 * partition limit; a rolled-back batch leaves no trace. */
static void test_poison(void **state)
{
    (void)state;
    struct fx a, b;
    int32_t d = day_of("2026-11-10");
    struct es_event *evs[3] = {sp_test_registered(1, sp_test_at(d, 1, 0, 0, 0), 0),
                               sp_test_login(1, 50, sp_test_at(d, 2, 0, 0, 0), 0),
                               sp_test_registered(1, sp_test_at(d, 3, 0, 0, 0), 0)};
    struct es_event *big = sp_test_registered(2, sp_test_at(d, 1, 0, 0, 0), 300);
    int rcs[3];
    struct sp_buf da, db;
    MDB_txn *txn;
    struct sp_errbuf eb = {{0}, {0}};

    fx_open(&a);
    fx_open(&b);
    fx_batch(&a, evs, 3, rcs);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], 0);
    assert_int_equal(rcs[2], SP_ESCHEMA);
    fx_batch(&b, evs, 2, NULL);
    /* A batch folded and then discarded (its transaction aborted) changes nothing. */
    assert_int_equal(mdb_txn_begin(b.env, NULL, 0, &txn), 0);
    assert_int_equal(proj_analytics_fold(b.w, txn, evs[1], &eb), 0);
    assert_int_equal(proj_analytics_fold(b.w, txn, big, &eb), SP_ETOOBIG);
    proj_analytics_discard(b.w);
    mdb_txn_abort(txn);
    fx_batch(&b, NULL, 0, NULL);
    sp_buf_init(&da, 0);
    sp_buf_init(&db, 0);
    fx_dump(&a, &da);
    fx_dump(&b, &db);
    assert_int_equal(da.len, db.len);
    assert_memory_equal(da.data, db.data, da.len);
    sp_buf_release(&da);
    sp_buf_release(&db);
    for (int i = 0; i < 3; i++)
        sp_test_event_free(evs[i]);
    sp_test_event_free(big);
    fx_close(&a);
    fx_close(&b);
}

/* Popular over many candidates: the bounded selection, and its fallback to a full sort when
 * deleted recipes fill the top of the ranking. Recipe 1000 + i gets i likes (i = 1..200) on
 * one day; the 45 best are deleted, so the top 10 are recipes 1155 down to 1146. */
static void test_popular_many(void **state)
{
    (void)state;
    struct fx f;
    int32_t d = day_of("2026-11-10");
    size_t n = 0, cap = 200 * 201 / 2 + 300;
    struct es_event **evs = calloc(cap, sizeof(*evs));
    struct proj_analytics_recipe r[10];
    size_t nr;
    MDB_txn *txn;

    assert_non_null(evs);
    evs[n++] = sp_test_registered(1, sp_test_at(d, 0, 0, 0, 0), 0);
    for (int i = 1; i <= 200; i++) {
        evs[n++] = sp_test_created(1000 + (uint64_t)i, 1, "R", sp_test_at(d, 1, 0, 0, 0), 0);
        for (int k = 0; k < i; k++)
            evs[n++] = sp_test_reaction("RecipeLiked", 1, 1000 + (uint64_t)i, 1,
                                        sp_test_at(d, 2, 0, 0, k), 0);
    }
    for (int i = 200; i > 155; i--)
        evs[n++] = sp_test_deleted(1000 + (uint64_t)i, 1, sp_test_at(d, 3, 0, 0, 0), 0);
    assert_true(n <= cap);
    fx_open(&f);
    fx_batch(&f, evs, n, NULL);
    assert_int_equal(mdb_txn_begin(f.env, NULL, MDB_RDONLY, &txn), 0);
    for (int w = 0; w < 2; w++) {
        enum proj_analytics_window win = w ? PROJ_AN_WINDOW_ALL : PROJ_AN_WINDOW_7D;
        assert_int_equal(
            proj_analytics_popular(&f.dbs, txn, win, sp_test_at(d, 12, 0, 0, 0), 10, r, &nr, NULL),
            0);
        assert_int_equal(nr, 10);
        for (int i = 0; i < 10; i++) {
            assert_int_equal(r[i].id, 1155 - i);
            assert_int_equal(r[i].score, 155 - i);
        }
    }
    mdb_txn_abort(txn);
    for (size_t i = 0; i < n; i++)
        sp_test_event_free(evs[i]);
    free(evs);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates),         cmocka_unit_test(test_example),
        cmocka_unit_test(test_interleavings), cmocka_unit_test(test_pending),
        cmocka_unit_test(test_poison),        cmocka_unit_test(test_popular_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
