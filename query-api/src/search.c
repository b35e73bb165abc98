/* The query API's search routes over the LMDB search view (qry/search.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "proj/search.h"
#include "proj/view.h"
#include "qry/after.h"
#include "qry/params.h"
#include "qry/search.h"
#include "sp/alloc.h"
#include "sp/buf.h"
#include "sp/log.h"
#include "sp/time.h"
#include "view_pool.h"

#include "sp/banned.h"

#define SEARCH_LIMIT_DEFAULT 20
#define STATS_EVERY_MS       1000

#define M_QUERIES "stockpot_search_queries_total"
#define M_SECONDS "stockpot_search_seconds"
#define M_BYTES   "stockpot_search_view_bytes"
#define M_DOCS    "stockpot_search_view_documents"
#define M_CHECK   "stockpot_search_checkpoint"

enum search_kind { SEARCH_RECIPES, SEARCH_USERS, SEARCH_TAGS, SEARCH_KIND_COUNT };

struct qry_search;

/* One search: the view pool's job, then its inputs (owned copies). */
struct search_job {
    struct view_job vj; /* first: the pool hands it back */
    struct qry_search *s;
    enum search_kind kind;
    char *q;                          /* owned */
    char *tags[PROJ_SEARCH_MAX_TAGS]; /* owned, n_tags of them */
    size_t n_tags;
    int64_t author_id;
    char *language; /* owned, or NULL */
    unsigned limit, page;
    bool has_more; /* outcome, recipes: a next page exists */
};

struct search_route {
    struct qry_search *s;
    enum search_kind kind;
};

struct qry_search {
    struct sp_metrics *metrics; /* borrowed */
    struct qry_after *after;    /* owned: gated on the view's checkpoints */
    struct view_pool *pool;     /* owned: the engines, on worker threads */
    struct event *stats_timer;  /* owned */
    struct proj_bm25f_params params;
    struct search_route routes[SEARCH_KIND_COUNT];
};

static const struct {
    const char *path;
    const char *endpoint;       /* metric label */
    const char *const known[8]; /* the parameters the route takes */
} search_defs[SEARCH_KIND_COUNT] = {
    [SEARCH_RECIPES] = {"/search/recipes",
                        "recipes",
                        {"q", "tag", "author_id", "language", "limit", "page", NULL}},
    [SEARCH_USERS] = {"/search/users", "users", {"q", "limit", NULL}},
    [SEARCH_TAGS] = {"/search/tags", "tags", {"q", "limit", NULL}},
};

static void reply_invalid(struct sp_http_req *req, const char *field, const char *detail)
{
    sp_http_reply_problem(req, 400, "validation", detail,
                          json_pack("[{s:s, s:s}]", "field", field, "detail", detail));
}

/* The tag filters (repeatable). @return false after replying 400. */
static bool parse_tags(struct search_job *c, struct sp_http_req *req)
{
    for (size_t i = 0; i < sp_http_req_query_count(req); i++) {
        const char *name, *value;

        sp_http_req_query_at(req, i, &name, &value);
        if (strcmp(name, "tag") != 0)
            continue;
        if (c->n_tags == PROJ_SEARCH_MAX_TAGS) {
            reply_invalid(req, "tag", "at most 8 tag filters");
            return false;
        }
        c->tags[c->n_tags++] = sp_xstrdup(value);
    }
    return true;
}

/* Validate the request into @p c (copies of its parameters). @return false after replying
 * 400. */
static bool search_parse(struct search_job *c, struct sp_http_req *req)
{
    const char *q = sp_http_req_query(req, "q"), *language = sp_http_req_query(req, "language");
    const char *limit = sp_http_req_query(req, "limit"), *page = sp_http_req_query(req, "page");
    const char *author = sp_http_req_query(req, "author_id");
    struct sp_errbuf eb = {{0}, {0}};

    c->limit = SEARCH_LIMIT_DEFAULT;
    c->page = 1;
    if (qry_params_known(req, search_defs[c->kind].known, NULL, &eb) != 0 ||
        (limit != NULL &&
         qry_params_uint(limit, "limit", 1, PROJ_SEARCH_MAX_LIMIT, &c->limit, &eb) != 0) ||
        (page != NULL && qry_params_uint(page, "page", 1, PROJ_SEARCH_MAX_PAGE, &c->page, &eb)) ||
        (author != NULL && qry_params_id(author, "author_id", &c->author_id, &eb) != 0)) {
        reply_invalid(req, eb.field, eb.msg);
        return false;
    }
    if (!parse_tags(c, req))
        return false;
    if (q == NULL && c->kind == SEARCH_TAGS)
        q = "";
    if (q == NULL) {
        reply_invalid(req, "q", "the query q is required");
        return false;
    }
    if (strlen(q) > PROJ_SEARCH_MAX_QUERY_BYTES) {
        reply_invalid(req, "q", "the query is longer than 256 bytes");
        return false;
    }
    c->q = sp_xstrdup(q);
    c->language = language != NULL ? sp_xstrdup(language) : NULL;
    return true;
}

/* Append "&name=<value, percent-encoded>" to @p b. */
static int add_param(struct sp_buf *b, const char *name, const char *value)
{
    char *enc = evhttp_uriencode(value, -1, 0);
    int rc = enc != NULL ? sp_buf_addf(b, "&%s=%s", name, enc) : -ENOMEM;

    free(enc);
    return rc;
}

/* Link: rel="next" to the next page of a recipe search. */
static void add_next_link(struct sp_http_req *req, const struct search_job *c)
{
    struct sp_buf b;
    int rc;

    sp_buf_init(&b, 4096);
    rc = sp_buf_adds(&b, "</search/recipes?page=");
    if (rc == 0)
        rc = sp_buf_addf(&b, "%u&limit=%u", c->page + 1, c->limit);
    if (rc == 0)
        rc = add_param(&b, "q", c->q);
    for (size_t i = 0; rc == 0 && i < c->n_tags; i++)
        rc = add_param(&b, "tag", c->tags[i]);
    if (rc == 0 && c->author_id > 0)
        rc = sp_buf_addf(&b, "&author_id=%" PRId64, c->author_id);
    if (rc == 0 && c->language != NULL)
        rc = add_param(&b, "language", c->language);
    if (rc == 0)
        rc = sp_buf_adds(&b, ">; rel=\"next\"");
    if (rc == 0)
        sp_http_add_header(req, "Link", b.data);
    sp_buf_release(&b);
}

static void count(struct qry_search *s, const struct search_job *c, int status)
{
    view_pool_count(s->pool, search_defs[c->kind].endpoint, status, &c->vj);
}

static void search_job_free(struct view_job *vj)
{
    struct search_job *job = (struct search_job *)vj;

    if (job == NULL)
        return;
    view_job_release(&job->vj);
    free(job->q);
    for (size_t i = 0; i < job->n_tags; i++)
        free(job->tags[i]);
    free(job->language);
    free(job);
}

/* view_pool_ops.state_open: a query engine on the generation. */
static int search_state_open(MDB_txn *txn, void **state, struct sp_errbuf *eb)
{
    struct proj_search_reader *reader = NULL;
    int rc = proj_search_reader_open(txn, &reader, eb);

    *state = reader;
    return rc;
}

static void search_state_free(void *state)
{
    proj_search_reader_free(state);
}

/* view_job_run_fn: the search, with the worker's engine. */
static int search_run(struct view_job *vj, void *state, MDB_txn *txn, json_t **out)
{
    struct search_job *job = (struct search_job *)vj;
    struct proj_search_query q = {0};
    const char *tags[PROJ_SEARCH_MAX_TAGS];
    int rc;

    switch (job->kind) {
    case SEARCH_RECIPES:
        for (size_t i = 0; i < job->n_tags; i++)
            tags[i] = job->tags[i];
        q.text = job->q;
        q.text_len = strlen(job->q);
        q.tags = tags;
        q.n_tags = job->n_tags;
        q.author_id = job->author_id;
        q.language = job->language;
        q.limit = job->limit;
        q.page = job->page;
        q.params = &job->s->params;
        rc = proj_search_recipes(state, txn, &q, out, &vj->eb);
        break;
    case SEARCH_USERS:
        rc = proj_search_users(state, txn, job->q, strlen(job->q), job->limit, out, &vj->eb);
        break;
    case SEARCH_TAGS:
    default:
        rc = proj_search_tags(state, txn, job->q, strlen(job->q), job->limit, out, &vj->eb);
        break;
    }
    if (rc == SP_EINVAL && vj->eb.field[0] == '\0') /* the engine's refusals are about q */
        snprintf(vj->eb.field, sizeof(vj->eb.field), "q");
    if (rc == 0)
        job->has_more = json_is_true(json_object_get(*out, "has_more"));
    return rc;
}

/* A finished search, on the loop thread: reply. */
static void search_done(struct view_job *vj, void *ud)
{
    struct qry_search *s = ud;
    struct search_job *job = (struct search_job *)vj;

    if (vj->rc == 0 && job->kind == SEARCH_RECIPES && job->has_more)
        add_next_link(vj->ud, job);
    count(s, job, view_pool_reply(s->pool, vj->ud, vj));
    search_job_free(vj);
}

static const struct view_pool_ops search_pool_ops = {
    .name = "search",
    .m_queries = M_QUERIES,
    .m_seconds = M_SECONDS,
    .state_open = search_state_open,
    .state_free = search_state_free,
    .done = search_done,
    .job_free = search_job_free,
};

/* Past the Stockpot-After gate: hand the search to the pool. */
static void search_serve(struct sp_http_req *req, void *ud)
{
    struct search_job *job = ud;

    if (req == NULL) { /* the gate replied (bad token, timeout) or the server stops */
        search_job_free(&job->vj);
        return;
    }
    job->vj.ud = req;
    view_pool_submit(job->s->pool, &job->vj);
}

static void search_on_request(struct sp_http_req *req, void *ud)
{
    struct search_route *route = ud;
    struct search_job *job = sp_xcalloc(1, sizeof(*job));

    job->kind = route->kind;
    job->s = route->s;
    job->vj.run = search_run;
    if (!search_parse(job, req)) {
        count(route->s, job, 400);
        search_job_free(&job->vj);
        return;
    }
    qry_after_gate(route->s->after, req, search_serve, job);
}

/* view_pool_local: the view's document counts. */
static int search_stats_read(void *state, MDB_txn *txn, void *ud)
{
    return proj_search_stats(state, txn, ud, NULL);
}

/* Timer: the view's size, documents and checkpoints as gauges. */
static void search_stats(evutil_socket_t fd, short what, void *arg)
{
    struct qry_search *s = arg;
    struct timeval tv = {STATS_EVERY_MS / 1000, 0};
    struct sp_errbuf eb = {{0}, {0}};
    struct proj_search_stats st;
    struct proj_view *view;
    int32_t parts[64];
    int64_t offsets[64];
    uint64_t bytes;
    MDB_txn *txn;
    char labels[48];
    int n;

    (void)fd;
    (void)what;
    evtimer_add(s->stats_timer, &tv);
    if (view_pool_local(s->pool, search_stats_read, &st, &eb) != 0 ||
        view_pool_view(s->pool, &view, &eb) != 0)
        return;
    sp_metrics_gauge_set(s->metrics, M_DOCS, "kind=\"recipes\"", (double)st.recipes);
    sp_metrics_gauge_set(s->metrics, M_DOCS, "kind=\"users\"", (double)st.users);
    if (mdb_txn_begin(proj_view_env(view), NULL, MDB_RDONLY, &txn) == 0) {
        n = proj_view_checkpoints(view, txn, parts, offsets, 64, &eb);
        for (int i = 0; i < n && i < 64; i++) {
            snprintf(labels, sizeof(labels), "partition=\"%d\"", (int)parts[i]);
            sp_metrics_gauge_set(s->metrics, M_CHECK, labels, (double)offsets[i]);
        }
        mdb_txn_abort(txn);
    }
    if (proj_view_disk_bytes(view, &bytes) == 0)
        sp_metrics_gauge_set(s->metrics, M_BYTES, "", (double)bytes);
}

static void search_describe(struct sp_metrics *m)
{
    sp_metrics_describe(m, M_QUERIES, SP_METRIC_COUNTER, "Search requests by endpoint and status");
    sp_metrics_describe(m, M_SECONDS, SP_METRIC_HISTOGRAM,
                        "Time the search engine took per answered query, seconds");
    sp_metrics_describe(m, M_BYTES, SP_METRIC_GAUGE, "Bytes of the search view on disk");
    sp_metrics_describe(m, M_DOCS, SP_METRIC_GAUGE, "Documents in the search view by kind");
    sp_metrics_describe(m, M_CHECK, SP_METRIC_GAUGE,
                        "Next log offset the search view applies, per partition");
}

static void params_from_config(struct proj_bm25f_params *p, const struct sp_config *cfg)
{
    static const char *const keys[PROJ_SEARCH_FIELDS] = {
        "search.weight.title", "search.weight.tags", "search.weight.ingredients",
        "search.weight.description", "search.weight.steps"};

    proj_bm25f_params_default(p);
    p->k1 = sp_config_real(cfg, "search.k1");
    for (int f = 0; f < PROJ_SEARCH_FIELDS; f++) {
        p->weight[f] = sp_config_real(cfg, keys[f]);
        p->b[f] = sp_config_real(cfg, "search.b");
    }
}

struct qry_search *qry_search_new(struct event_base *base,
                                  struct sp_http_server *http,
                                  const struct sp_config *cfg,
                                  struct sp_metrics *metrics,
                                  int32_t partitions)
{
    struct qry_search *s = sp_xcalloc(1, sizeof(*s));
    struct timeval now = {0, 0};
    char dir[4096];
    struct proj_view_opts opts = {dir, PROJ_SEARCH_FORMAT, PROJ_SEARCH_MAX_DBS,
                                  (size_t)sp_config_int(cfg, "views.map_size_mb") << 20};

    s->metrics = metrics;
    snprintf(dir, sizeof(dir), "%s/search", sp_config_str(cfg, "views.dir"));
    params_from_config(&s->params, cfg);
    search_describe(metrics);
    s->pool = view_pool_new(base, (unsigned)sp_config_int(cfg, "search.threads"), &opts,
                            &search_pool_ops, metrics, s);
    s->after = qry_after_new_source(base, NULL, view_pool_checkpoints, s->pool, metrics,
                                    sp_config_int(cfg, "query.after_timeout_ms"), partitions);
    for (int k = 0; k < SEARCH_KIND_COUNT; k++) {
        s->routes[k].s = s;
        s->routes[k].kind = (enum search_kind)k;
        sp_http_route(http, SP_HTTP_GET, search_defs[k].path, search_on_request, &s->routes[k]);
    }
    s->stats_timer = evtimer_new(base, search_stats, s);
    SP_ASSERT(s->stats_timer != NULL);
    evtimer_add(s->stats_timer, &now);
    return s;
}

/* The gate first (its waiters still hold jobs), then the pool (jobs in flight finish and
 * are dropped: the HTTP server frees their requests afterwards). */
void qry_search_free(struct qry_search *s)
{
    if (s == NULL)
        return;
    qry_after_free(s->after);
    view_pool_free(s->pool);
    event_free(s->stats_timer);
    free(s);
}
