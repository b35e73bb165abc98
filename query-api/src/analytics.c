/* The query API's analytics routes over the LMDB analytics view (qry/analytics.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proj/analytics.h"
#include "proj/view.h"
#include "qry/after.h"
#include "qry/analytics.h"
#include "qry/params.h"
#include "sp/alloc.h"
#include "sp/jwt.h"
#include "sp/time.h"
#include "view_pool.h"

#include "sp/banned.h"

#define AN_LIMIT_DEFAULT      10
#define AN_RANGE_DEFAULT_DAYS 30 /* from defaults to to - 29 */
#define AN_DATE_LEN           10 /* "YYYY-MM-DD" */

#define M_QUERIES "stockpot_analytics_queries_total"
#define M_SECONDS "stockpot_analytics_seconds"

enum an_kind { AN_SUMMARY, AN_POPULAR, AN_ACTIVE, AN_RETENTION, AN_KIND_COUNT };

struct qry_analytics;

/* One analytics request: the view pool's job, then its parsed parameters. */
struct an_job {
    struct view_job vj; /* first: the pool hands it back */
    struct qry_analytics *an;
    enum an_kind kind;
    struct sp_jwt_claims claims; /* the operator's token, for the session check */
    int32_t from, to;            /* days, inclusive */
    enum proj_analytics_granularity granularity;
    enum proj_analytics_window window;
    int64_t at_us; /* end of the popular window, µs since the epoch */
    unsigned limit;
};

struct an_route {
    struct qry_analytics *an;
    enum an_kind kind;
};

struct qry_analytics {
    struct qry_auth *auth;   /* borrowed */
    struct qry_after *after; /* owned: gated on the view's checkpoints */
    struct view_pool *pool;  /* owned: the queries, on worker threads */
    struct an_route routes[AN_KIND_COUNT];
};

static const char *const an_once[] = {NULL}; /* no parameter may repeat */

/* ------------------------------------------------------------------ answers */

/* Add every counter of @p counts to @p obj by its name. @return obj. */
static json_t *add_counters(json_t *obj, const uint64_t *counts)
{
    for (int c = 0; c < PROJ_ANALYTICS_COUNTERS; c++)
        json_object_set_new(obj, proj_analytics_counter_name((enum proj_analytics_counter)c),
                            json_integer((json_int_t)counts[c]));
    return obj;
}

/* A date as a JSON string. */
static json_t *date_json(int32_t day)
{
    char date[16];

    return json_string(proj_analytics_date_format(day, date, sizeof(date)));
}

/* {"from","to"} of the job's range, for the answer to start with. */
static json_t *range_json(const struct an_job *job)
{
    return json_pack("{s:o, s:o}", "from", date_json(job->from), "to", date_json(job->to));
}

/* view_job_run_fn of /analytics/summary. */
static int run_summary(struct view_job *vj, void *state, MDB_txn *txn, json_t **out)
{
    struct an_job *job = (struct an_job *)vj;
    struct proj_analytics_summary s;
    json_t *days = json_array(), *totals;
    int rc = proj_analytics_summary(state, txn, job->from, job->to, &s, &vj->eb);

    if (rc != 0) {
        json_decref(days);
        return rc;
    }
    for (size_t i = 0; i < s.n_days; i++)
        json_array_append_new(days,
                              add_counters(json_pack("{s:o, s:I}", "date", date_json(s.days[i].day),
                                                     "active", (json_int_t)s.days[i].active),
                                           s.days[i].counts));
    totals = add_counters(json_pack("{s:I}", "active", (json_int_t)s.active), s.totals);
    *out = range_json(job);
    json_object_set_new(*out, "days", days);
    json_object_set_new(*out, "totals", totals);
    json_object_set_new(*out, "dau", json_integer((json_int_t)s.dau));
    json_object_set_new(*out, "wau", json_integer((json_int_t)s.wau));
    json_object_set_new(*out, "mau", json_integer((json_int_t)s.mau));
    json_object_set_new(*out, "stickiness", json_real(s.stickiness));
    proj_analytics_summary_release(&s);
    return 0;
}

/* An id as a JSON string (ids are strings in this API); null for 0 (not known yet). */
static json_t *id_json(int64_t id)
{
    char s[24];

    if (id <= 0)
        return json_null();
    snprintf(s, sizeof(s), "%" PRId64, id);
    return json_string(s);
}

/* A title as a JSON string: the view keeps at most 500 bytes of it, cut at a UTF-8
 * character boundary, and the reader returns them whole (proj/analytics.h). */
static json_t *title_json(const char *title)
{
    json_t *s = json_string(title);
    return s != NULL ? s : json_string("");
}

static json_t *recipe_json(const struct proj_analytics_recipe *r)
{
    return json_pack("{s:o, s:o, s:o, s:I, s:I, s:I, s:I}", "id", id_json(r->id), "title",
                     title_json(r->title), "author_id", id_json(r->author_id), "score",
                     (json_int_t)r->score, "likes", (json_int_t)r->likes, "comments",
                     (json_int_t)r->comments, "unlikes", (json_int_t)r->unlikes);
}

/* view_job_run_fn of /analytics/recipes/popular. */
static int run_popular(struct view_job *vj, void *state, MDB_txn *txn, json_t **out)
{
    struct an_job *job = (struct an_job *)vj;
    struct proj_analytics_recipe *r = sp_xcalloc(job->limit, sizeof(*r));
    char at[32];
    json_t *recipes;
    size_t n = 0;
    int rc =
        proj_analytics_popular(state, txn, job->window, job->at_us, job->limit, r, &n, &vj->eb);

    if (rc == 0) {
        recipes = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(recipes, recipe_json(&r[i]));
        *out = json_pack("{s:s, s:s, s:o}", "window", proj_analytics_window_name(job->window), "at",
                         sp_time_format_rfc3339(job->at_us, at, sizeof(at)), "recipes", recipes);
    }
    free(r);
    return rc;
}

/* view_job_run_fn of /analytics/users/active. */
static int run_active(struct view_job *vj, void *state, MDB_txn *txn, json_t **out)
{
    static const char *const names[] = {
        [PROJ_AN_DAY] = "day", [PROJ_AN_WEEK] = "week", [PROJ_AN_MONTH] = "month"};
    struct an_job *job = (struct an_job *)vj;
    struct proj_analytics_period *p = NULL;
    json_t *periods;
    size_t n = 0;
    int rc = proj_analytics_active_periods(state, txn, job->granularity, job->from, job->to, &p, &n,
                                           &vj->eb);

    if (rc != 0)
        return rc;
    periods = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(periods,
                              json_pack("{s:o, s:o, s:I}", "start", date_json(p[i].start), "end",
                                        date_json(p[i].end), "active", (json_int_t)p[i].active));
    free(p);
    *out = json_pack("{s:s, s:o, s:o, s:o}", "granularity", names[job->granularity], "from",
                     date_json(job->from), "to", date_json(job->to), "periods", periods);
    return 0;
}

static json_t *cohort_json(const struct proj_analytics_cohort *c)
{
    json_t *weeks = json_array();

    for (size_t k = 0; k < c->n_weeks; k++)
        json_array_append_new(
            weeks,
            json_pack("{s:I, s:I, s:f}", "week", (json_int_t)k, "active", (json_int_t)c->active[k],
                      "share", c->size > 0 ? (double)c->active[k] / (double)c->size : 0.0));
    return json_pack("{s:o, s:I, s:o}", "week", date_json(c->week), "size", (json_int_t)c->size,
                     "weeks", weeks);
}

/* view_job_run_fn of /analytics/retention. */
static int run_retention(struct view_job *vj, void *state, MDB_txn *txn, json_t **out)
{
    struct an_job *job = (struct an_job *)vj;
    struct proj_analytics_cohort *c = NULL;
    json_t *cohorts;
    size_t n = 0;
    int rc = proj_analytics_retention(state, txn, job->from, job->to, &c, &n, &vj->eb);

    if (rc != 0)
        return rc;
    cohorts = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(cohorts, cohort_json(&c[i]));
    proj_analytics_cohorts_free(c, n);
    *out = range_json(job);
    json_object_set_new(*out, "cohorts", cohorts);
    return 0;
}

static const struct {
    const char *path;
    const char *endpoint;       /* metric label */
    const char *const known[4]; /* the parameters the route takes */
    view_job_run_fn run;
} an_defs[AN_KIND_COUNT] = {
    [AN_SUMMARY] = {"/analytics/summary", "summary", {"from", "to", NULL}, run_summary},
    [AN_POPULAR] = {"/analytics/recipes/popular",
                    "popular",
                    {"window", "limit", "at", NULL},
                    run_popular},
    [AN_ACTIVE] = {"/analytics/users/active",
                   "active",
                   {"granularity", "from", "to", NULL},
                   run_active},
    [AN_RETENTION] = {"/analytics/retention", "retention", {"from", "to", NULL}, run_retention},
};

/* ------------------------------------------------------------------ requests */

/* from and to (days): defaults, order and the range cap. @return 0 or SP_EINVAL. */
static int parse_range(struct an_job *job, struct sp_http_req *req, struct sp_errbuf *eb)
{
    const char *from = sp_http_req_query(req, "from"), *to = sp_http_req_query(req, "to");

    job->to = proj_analytics_day_of(sp_time_now_us());
    if (to != NULL && proj_analytics_date_parse(to, &job->to) != 0)
        return sp_err_set(eb, SP_EINVAL, "to", "to must be a date YYYY-MM-DD (1970-9999)");
    job->from = job->to - (AN_RANGE_DEFAULT_DAYS - 1);
    if (from != NULL && proj_analytics_date_parse(from, &job->from) != 0)
        return sp_err_set(eb, SP_EINVAL, "from", "from must be a date YYYY-MM-DD (1970-9999)");
    if (job->from > job->to)
        return sp_err_set(eb, SP_EINVAL, "from", "from must not be after to");
    if (job->to - job->from >= PROJ_ANALYTICS_MAX_RANGE_DAYS)
        return sp_err_set(eb, SP_EINVAL, "from",
                          "from must be at most %d days before to (a range spans at most %d "
                          "days; this one %d)",
                          PROJ_ANALYTICS_MAX_RANGE_DAYS - 1, PROJ_ANALYTICS_MAX_RANGE_DAYS,
                          job->to - job->from + 1);
    return 0;
}

/* at: an RFC 3339 instant, or a date = the last microsecond of that day; default now. */
static int parse_at(const char *at, int64_t *at_us, struct sp_errbuf *eb)
{
    int32_t day;

    *at_us = sp_time_now_us();
    if (at == NULL)
        return 0;
    if (strlen(at) == AN_DATE_LEN && proj_analytics_date_parse(at, &day) == 0) {
        *at_us = ((int64_t)day + 1) * PROJ_ANALYTICS_DAY_US - 1;
        return 0;
    }
    if (sp_time_parse_rfc3339(at, at_us) != 0 || *at_us < 0)
        return sp_err_set(eb, SP_EINVAL, "at",
                          "at must be an RFC 3339 instant such as 2026-11-03T10:15:00Z, or a "
                          "date YYYY-MM-DD (the end of that day), not before 1970");
    return 0;
}

/* window, limit and at of /analytics/recipes/popular. @return 0 or SP_EINVAL. */
static int parse_popular(struct an_job *job, struct sp_http_req *req, struct sp_errbuf *eb)
{
    const char *window = sp_http_req_query(req, "window");
    const char *limit = sp_http_req_query(req, "limit");

    job->window = PROJ_AN_WINDOW_7D;
    if (window != NULL && proj_analytics_window_parse(window, &job->window) != 0)
        return sp_err_set(eb, SP_EINVAL, "window", "window must be one of 24h, 7d, 30d, all");
    job->limit = AN_LIMIT_DEFAULT;
    if (limit != NULL &&
        qry_params_uint(limit, "limit", 1, PROJ_ANALYTICS_MAX_LIMIT, &job->limit, eb) != 0)
        return SP_EINVAL;
    return parse_at(sp_http_req_query(req, "at"), &job->at_us, eb);
}

/* The route's parameters into @p job. @return 0 or SP_EINVAL naming the parameter. */
static int an_parse(struct an_job *job, struct sp_http_req *req, struct sp_errbuf *eb)
{
    const char *granularity = sp_http_req_query(req, "granularity");

    if (qry_params_known(req, an_defs[job->kind].known, an_once, eb) != 0)
        return SP_EINVAL;
    if (job->kind == AN_POPULAR)
        return parse_popular(job, req, eb);
    job->granularity = PROJ_AN_DAY;
    if (job->kind == AN_ACTIVE && granularity != NULL &&
        proj_analytics_granularity_parse(granularity, &job->granularity) != 0)
        return sp_err_set(eb, SP_EINVAL, "granularity",
                          "granularity must be one of day, week, month");
    return parse_range(job, req, eb);
}

static void count(struct qry_analytics *an, const struct an_job *job, int status)
{
    view_pool_count(an->pool, an_defs[job->kind].endpoint, status, &job->vj);
}

static void an_job_free(struct view_job *vj)
{
    view_job_release(vj);
    free(vj);
}

/* A finished query, on the loop thread: reply. */
static void an_done(struct view_job *vj, void *ud)
{
    struct qry_analytics *an = ud;

    count(an, (struct an_job *)vj, view_pool_reply(an->pool, vj->ud, vj));
    an_job_free(vj);
}

/* view_pool_ops.state_open: the view's database handles. */
static int an_state_open(MDB_txn *txn, void **state, struct sp_errbuf *eb)
{
    struct proj_analytics_dbs *dbs = sp_xcalloc(1, sizeof(*dbs));
    int rc = proj_analytics_dbs_open(txn, dbs, eb);

    if (rc != 0) {
        free(dbs);
        dbs = NULL;
    }
    *state = dbs;
    return rc;
}

static const struct view_pool_ops an_pool_ops = {
    .name = "analytics",
    .m_queries = M_QUERIES,
    .m_seconds = M_SECONDS,
    .state_open = an_state_open,
    .state_free = free,
    .done = an_done,
    .job_free = an_job_free,
};

/* The session of the operator's token has been checked: run the query. */
static void an_on_session(void *ud, int err)
{
    struct an_job *job = ud;
    struct sp_http_req *req = job->vj.ud;
    struct sp_errbuf eb = {{0}, {0}};

    if (err == 0) {
        view_pool_submit(job->an->pool, &job->vj);
        return;
    }
    if (err == SP_EAUTH) {
        count(job->an, job, 401);
        qry_auth_reply_401(req, "the session of the access token is revoked or expired");
    } else {
        sp_err_set(&eb, err, NULL,
                   "could not check the session of the access token in the read model database");
        count(job->an, job, sp_http_status_for(err));
        sp_http_reply_error(req, err, &eb);
    }
    an_job_free(&job->vj);
}

/* Past the Stockpot-After gate: check the session, as every authenticated route does. */
static void an_serve(struct sp_http_req *req, void *ud)
{
    struct an_job *job = ud;

    if (req == NULL) { /* the gate replied (bad token, timeout) or the server stops */
        an_job_free(&job->vj);
        return;
    }
    job->vj.ud = req;
    qry_auth_session(job->an->auth, &job->claims, an_on_session, job);
}

/* Token (401), operator role (403), parameters (400), then the gate. */
static void an_on_request(struct sp_http_req *req, void *ud)
{
    struct an_route *route = ud;
    struct an_job *job = sp_xcalloc(1, sizeof(*job));
    struct sp_errbuf eb = {{0}, {0}};

    job->an = route->an;
    job->kind = route->kind;
    job->vj.run = an_defs[route->kind].run;
    if (qry_auth_token(route->an->auth, req, &job->claims, &eb) != 0) {
        count(route->an, job, 401);
        qry_auth_reply_401(req, eb.msg);
    } else if ((job->claims.roles & SP_JWT_ROLE_OPERATOR) == 0) {
        count(route->an, job, 403);
        sp_http_reply_problem(req, 403, "forbidden",
                              "the analytics routes are for operators: the access token has no "
                              "role \"operator\"",
                              NULL);
    } else if (an_parse(job, req, &eb) != 0) {
        count(route->an, job, 400);
        sp_http_reply_error(req, SP_EINVAL, &eb);
    } else {
        qry_after_gate(route->an->after, req, an_serve, job);
        return;
    }
    an_job_free(&job->vj);
}

static void an_describe(struct sp_metrics *m)
{
    sp_metrics_describe(m, M_QUERIES, SP_METRIC_COUNTER,
                        "Analytics requests by endpoint and status");
    sp_metrics_describe(m, M_SECONDS, SP_METRIC_HISTOGRAM,
                        "Time the analytics view took per answered query, seconds");
}

struct qry_analytics *qry_analytics_new(struct event_base *base,
                                        struct sp_http_server *http,
                                        const struct sp_config *cfg,
                                        struct sp_metrics *metrics,
                                        struct qry_auth *auth,
                                        int32_t partitions)
{
    struct qry_analytics *an = sp_xcalloc(1, sizeof(*an));
    char dir[4096];
    struct proj_view_opts opts = {dir, PROJ_ANALYTICS_FORMAT, PROJ_ANALYTICS_MAX_DBS,
                                  (size_t)sp_config_int(cfg, "views.map_size_mb") << 20};

    an->auth = auth;
    snprintf(dir, sizeof(dir), "%s/analytics", sp_config_str(cfg, "views.dir"));
    an_describe(metrics);
    an->pool = view_pool_new(base, (unsigned)sp_config_int(cfg, "analytics.threads"), &opts,
                             &an_pool_ops, metrics, an);
    an->after = qry_after_new_source(base, NULL, view_pool_checkpoints, an->pool, metrics,
                                     sp_config_int(cfg, "query.after_timeout_ms"), partitions);
    for (int k = 0; k < AN_KIND_COUNT; k++) {
        an->routes[k].an = an;
        an->routes[k].kind = (enum an_kind)k;
        sp_http_route(http, SP_HTTP_GET, an_defs[k].path, an_on_request, &an->routes[k]);
    }
    return an;
}

/* The gate first (its waiters still hold jobs), then the pool (jobs in flight finish and
 * are dropped: the HTTP server frees their requests afterwards). */
void qry_analytics_free(struct qry_analytics *an)
{
    if (an == NULL)
        return;
    qry_after_free(an->after);
    view_pool_free(an->pool);
    free(an);
}
