/* Metrics registry rendered in the Prometheus text exposition format 0.0.4. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp/alloc.h"
#include "sp/metrics.h"
#include "sp/banned.h"

static const double sp__buckets[] = {.0005, .001, .0025, .005, .01, .025, .05,
                                     .1,    .25,  .5,    1,    2.5, 5,    10};
#define SP__NBUCKETS (sizeof(sp__buckets) / sizeof(sp__buckets[0]))

struct sp__series {
    char *labels; /* owned, already escaped, "" for none */
    double value; /* counter/gauge value, or histogram sum */
    uint64_t count;
    uint64_t buckets[SP__NBUCKETS]; /* non-cumulative counts per bucket */
};

struct sp__family {
    char *name;
    char *help;
    enum sp_metric_type type;
    struct sp__series *series; /* owned array */
    size_t nseries, capseries;
};

struct sp_metrics {
    pthread_mutex_t mu;
    struct sp__family *fams; /* owned array, in declaration order */
    size_t nfams, capfams;
};

struct sp_metrics *sp_metrics_new(void)
{
    struct sp_metrics *m = sp_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void sp_metrics_free(struct sp_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nfams; i++) {
        for (size_t j = 0; j < m->fams[i].nseries; j++)
            free(m->fams[i].series[j].labels);
        free(m->fams[i].series);
        free(m->fams[i].name);
        free(m->fams[i].help);
    }
    free(m->fams);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static struct sp__family *sp__fam_find(struct sp_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->nfams; i++)
        if (strcmp(m->fams[i].name, name) == 0)
            return &m->fams[i];
    return NULL;
}

void sp_metrics_describe(struct sp_metrics *m,
                         const char *name,
                         enum sp_metric_type type,
                         const char *help)
{
    pthread_mutex_lock(&m->mu);
    struct sp__family *f = sp__fam_find(m, name);
    if (f) {
        SP_ASSERT(f->type == type);
        pthread_mutex_unlock(&m->mu);
        return;
    }
    if (m->nfams == m->capfams) {
        m->capfams = m->capfams ? m->capfams * 2 : 16;
        m->fams = sp_xrealloc(m->fams, m->capfams * sizeof(*m->fams));
    }
    f = &m->fams[m->nfams++];
    memset(f, 0, sizeof(*f));
    f->name = sp_xstrdup(name);
    f->help = sp_xstrdup(help);
    f->type = type;
    pthread_mutex_unlock(&m->mu);
}

/* Find or create a series; caller holds the lock. The family must be described. */
static struct sp__series *
sp__series_get(struct sp_metrics *m, const char *name, const char *labels, enum sp_metric_type type)
{
    struct sp__family *f = sp__fam_find(m, name);
    SP_ASSERT(f != NULL);
    SP_ASSERT(f->type == type || (type == SP_METRIC_COUNTER && f->type == SP_METRIC_GAUGE));
    if (!labels)
        labels = "";
    for (size_t i = 0; i < f->nseries; i++)
        if (strcmp(f->series[i].labels, labels) == 0)
            return &f->series[i];
    if (f->nseries == f->capseries) {
        f->capseries = f->capseries ? f->capseries * 2 : 8;
        f->series = sp_xrealloc(f->series, f->capseries * sizeof(*f->series));
    }
    struct sp__series *s = &f->series[f->nseries++];
    memset(s, 0, sizeof(*s));
    s->labels = sp_xstrdup(labels);
    return s;
}

void sp_metrics_counter_add(struct sp_metrics *m,
                            const char *name,
                            const char *labels,
                            double delta)
{
    pthread_mutex_lock(&m->mu);
    sp__series_get(m, name, labels, SP_METRIC_COUNTER)->value += delta;
    pthread_mutex_unlock(&m->mu);
}

void sp_metrics_gauge_set(struct sp_metrics *m, const char *name, const char *labels, double value)
{
    pthread_mutex_lock(&m->mu);
    sp__series_get(m, name, labels, SP_METRIC_GAUGE)->value = value;
    pthread_mutex_unlock(&m->mu);
}

void sp_metrics_observe(struct sp_metrics *m, const char *name, const char *labels, double value)
{
    pthread_mutex_lock(&m->mu);
    struct sp__series *s = sp__series_get(m, name, labels, SP_METRIC_HISTOGRAM);
    s->value += value;
    s->count++;
    for (size_t i = 0; i < SP__NBUCKETS; i++) {
        if (value <= sp__buckets[i]) {
            s->buckets[i]++;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

double sp_metrics_value(struct sp_metrics *m, const char *name, const char *labels)
{
    double v = 0;
    pthread_mutex_lock(&m->mu);
    struct sp__family *f = sp__fam_find(m, name);
    for (size_t i = 0; f && i < f->nseries; i++) {
        if (strcmp(f->series[i].labels, labels ? labels : "") == 0) {
            v = f->type == SP_METRIC_HISTOGRAM ? (double)f->series[i].count : f->series[i].value;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return v;
}

/*
 * A sample value in the shortest of %.15g and %.17g that reads back as the same double,
 * so 0.006003 prints as such rather than as 0.0060029999999999997.
 */
static int sp__render_value(struct sp_buf *out, double value)
{
    char text[40];
    snprintf(text, sizeof(text), "%.15g", value);
    if (strtod(text, NULL) != value)
        snprintf(text, sizeof(text), "%.17g", value);
    return sp_buf_addf(out, " %s\n", text);
}

/* One sample line: name{labels[,extra]} value */
static int sp__render_sample(struct sp_buf *out,
                             const char *name,
                             const char *suffix,
                             const char *labels,
                             const char *extra,
                             double value)
{
    int rc = sp_buf_addf(out, "%s%s", name, suffix);
    bool has_l = labels[0] != '\0', has_e = extra && extra[0] != '\0';
    if (!rc && (has_l || has_e))
        rc = sp_buf_addf(out, "{%s%s%s}", labels, has_l && has_e ? "," : "", has_e ? extra : "");
    return rc ? rc : sp__render_value(out, value);
}

static int
sp__render_histogram(struct sp_buf *out, const struct sp__family *f, const struct sp__series *s)
{
    uint64_t cum = 0;
    int rc = 0;
    char le[48];
    for (size_t i = 0; i < SP__NBUCKETS && !rc; i++) {
        cum += s->buckets[i];
        snprintf(le, sizeof(le), "le=\"%g\"", sp__buckets[i]);
        rc = sp__render_sample(out, f->name, "_bucket", s->labels, le, (double)cum);
    }
    rc =
        rc ? rc
           : sp__render_sample(out, f->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
    rc = rc ? rc : sp__render_sample(out, f->name, "_sum", s->labels, NULL, s->value);
    return rc ? rc : sp__render_sample(out, f->name, "_count", s->labels, NULL, (double)s->count);
}

static int sp__render_help(struct sp_buf *out, const struct sp__family *f)
{
    static const char *const tnames[] = {"counter", "gauge", "histogram"};
    int rc = sp_buf_addf(out, "# HELP %s ", f->name);
    for (const char *p = f->help; *p && !rc; p++) {
        if (*p == '\\')
            rc = sp_buf_adds(out, "\\\\");
        else if (*p == '\n')
            rc = sp_buf_adds(out, "\\n");
        else
            rc = sp_buf_add(out, p, 1);
    }
    return rc ? rc : sp_buf_addf(out, "\n# TYPE %s %s\n", f->name, tnames[f->type]);
}

int sp_metrics_render(struct sp_metrics *m, struct sp_buf *out)
{
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->nfams && !rc; i++) {
        const struct sp__family *f = &m->fams[i];
        rc = sp__render_help(out, f);
        for (size_t j = 0; j < f->nseries && !rc; j++) {
            if (f->type == SP_METRIC_HISTOGRAM)
                rc = sp__render_histogram(out, f, &f->series[j]);
            else
                rc = sp__render_sample(out, f->name, "", f->series[j].labels, NULL,
                                       f->series[j].value);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int sp_metrics_label_escape(struct sp_buf *out, const char *value)
{
    int rc = 0;
    for (const char *p = value; *p && !rc; p++) {
        if (*p == '\\')
            rc = sp_buf_adds(out, "\\\\");
        else if (*p == '"')
            rc = sp_buf_adds(out, "\\\"");
        else if (*p == '\n')
            rc = sp_buf_adds(out, "\\n");
        else
            rc = sp_buf_add(out, p, 1);
    }
    return rc;
}
