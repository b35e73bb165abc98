/* Tests of the metrics registry and its Prometheus text rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sp/metrics.h"
#include "sp/banned.h"

static void test_render(void **state)
{
    (void)state;
    struct sp_metrics *m = sp_metrics_new();
    struct sp_buf out;
    sp_buf_init(&out, 0);
    sp_metrics_describe(m, "stockpot_events_appended_total", SP_METRIC_COUNTER, "Events appended");
    sp_metrics_describe(m, "stockpot_events_appended_total", SP_METRIC_COUNTER, "dup is no-op");
    sp_metrics_describe(m, "stockpot_lag", SP_METRIC_GAUGE, "Lag\\in events");
    sp_metrics_describe(m, "stockpot_lat_seconds", SP_METRIC_HISTOGRAM, "Latency");
    sp_metrics_counter_add(m, "stockpot_events_appended_total", "", 2);
    sp_metrics_counter_add(m, "stockpot_events_appended_total", "", 3);
    sp_metrics_gauge_set(m, "stockpot_lag", "projection=\"pg\"", 7);
    sp_metrics_gauge_set(m, "stockpot_lag", "projection=\"pg\"", 4.5);
    sp_metrics_observe(m, "stockpot_lat_seconds", "route=\"/x\"", 0.003);
    sp_metrics_observe(m, "stockpot_lat_seconds", "route=\"/x\"", 0.2);
    sp_metrics_observe(m, "stockpot_lat_seconds", "route=\"/x\"", 60);
    assert_int_equal(sp_metrics_render(m, &out), 0);
    const char *expect = "# HELP stockpot_events_appended_total Events appended\n"
                         "# TYPE stockpot_events_appended_total counter\n"
                         "stockpot_events_appended_total 5\n"
                         "# HELP stockpot_lag Lag\\\\in events\n"
                         "# TYPE stockpot_lag gauge\n"
                         "stockpot_lag{projection=\"pg\"} 4.5\n"
                         "# HELP stockpot_lat_seconds Latency\n"
                         "# TYPE stockpot_lat_seconds histogram\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"0.0005\"} 0\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"0.001\"} 0\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"0.0025\"} 0\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"0.005\"} 1\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"0.01\"} 1\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"0.025\"} 1\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"0.05\"} 1\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"0.25\"} 2\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"0.5\"} 2\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"2.5\"} 2\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"5\"} 2\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"10\"} 2\n"
                         "stockpot_lat_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"
                         "stockpot_lat_seconds_sum 60.203\n";
    /* the _sum line carries the labels too; compare up to the sum */
    assert_memory_equal(out.data, expect,
                        strlen(expect) - strlen("stockpot_lat_seconds_sum 60.203\n"));
    assert_non_null(strstr(out.data, "stockpot_lat_seconds_sum{route=\"/x\"} 60.203\n"));
    assert_non_null(strstr(out.data, "stockpot_lat_seconds_count{route=\"/x\"} 3\n"));
    assert_true(sp_metrics_value(m, "stockpot_events_appended_total", "") == 5);
    assert_true(sp_metrics_value(m, "stockpot_lag", "projection=\"pg\"") == 4.5);
    assert_true(sp_metrics_value(m, "stockpot_lat_seconds", "route=\"/x\"") == 3);
    assert_true(sp_metrics_value(m, "stockpot_missing", "") == 0);
    sp_buf_release(&out);
    sp_metrics_free(m);
}

static void test_label_escape(void **state)
{
    (void)state;
    struct sp_buf out;
    sp_buf_init(&out, 0);
    assert_int_equal(sp_metrics_label_escape(&out, "a\"b\\c\nd"), 0);
    assert_string_equal(out.data, "a\\\"b\\\\c\\nd");
    sp_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_label_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
