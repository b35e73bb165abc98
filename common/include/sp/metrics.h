/*
 * Metrics registry rendered in the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/).
 * Series are identified by metric name plus a label string such as
 * `route="/recipes",status="201"` (already escaped by the caller; "" for none).
 * All functions are thread-safe (@locks an internal mutex).
 */
#ifndef SP_METRICS_H
#define SP_METRICS_H

#include <stdint.h>

#include "sp/buf.h"
#include "sp/err.h"

enum sp_metric_type { SP_METRIC_COUNTER, SP_METRIC_GAUGE, SP_METRIC_HISTOGRAM };

struct sp_metrics;

/** New empty registry. @return owned; free with sp_metrics_free(). Never NULL. */
struct sp_metrics *sp_metrics_new(void);
/** Free a registry; NULL is a no-op. */
void sp_metrics_free(struct sp_metrics *m);

/**
 * Declare a metric family with its type and HELP text (both copied). Histograms use the
 * default latency buckets in seconds: .0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
 * Declaring the same name twice with the same type is a no-op.
 */
void sp_metrics_describe(struct sp_metrics *m,
                         const char *name,
                         enum sp_metric_type type,
                         const char *help);

/** Add @p delta to a counter series (created at 0 on first use; name must be described). */
void sp_metrics_counter_add(struct sp_metrics *m,
                            const char *name,
                            const char *labels,
                            double delta);
/** Set a gauge series. */
void sp_metrics_gauge_set(struct sp_metrics *m, const char *name, const char *labels, double value);
/** Record one observation (seconds, for latency) into a histogram series. */
void sp_metrics_observe(struct sp_metrics *m, const char *name, const char *labels, double value);

/**
 * Current value of a counter or gauge series (0 if absent); for a histogram series, its
 * observation count. For tests.
 */
double sp_metrics_value(struct sp_metrics *m, const char *name, const char *labels);

/**
 * Append the whole registry in text format to @p out (# HELP, # TYPE, series; histograms
 * as _bucket{le=..}, _sum, _count). @return 0 or SP_ETOOBIG from the buffer.
 */
SP_MUST_CHECK int sp_metrics_render(struct sp_metrics *m, struct sp_buf *out);

/**
 * Append @p value escaped for use inside a label value's double quotes (backslash,
 * double quote and newline, as the exposition format requires).
 * @return 0 or SP_ETOOBIG from the buffer.
 */
SP_MUST_CHECK int sp_metrics_label_escape(struct sp_buf *out, const char *value);

#endif
