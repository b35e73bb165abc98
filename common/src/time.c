/* Wall and monotonic clocks, and RFC 3339 (§5.6) timestamps. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sp/err.h"
#include "sp/time.h"
#include "sp/banned.h"

int64_t sp_time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sp_time_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Write @p v (0 <= v < 10^n) as exactly @p n decimal digits at @p o. @return o + n. */
static char *sp__put_digits(char *o, int v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        o[i] = (char)('0' + v % 10);
    return o + n;
}

char *sp_time_format_rfc3339(int64_t ts_us, char *out, size_t out_size)
{
    int64_t secs = ts_us / 1000000;
    int64_t frac = ts_us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, out_size, "1970-01-01T00:00:00.000000Z");
        return out;
    }
    int year = tm.tm_year + 1900;
    if (out_size < sizeof("YYYY-MM-DDTHH:MM:SS.uuuuuuZ") || year < 0 || year > 9999) {
        snprintf(out, out_size, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", year, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
        return out;
    }
    /* the same digits without printf's parsing: this runs for every event and log line */
    char *o = out;
    o = sp__put_digits(o, year, 4);
    *o++ = '-';
    o = sp__put_digits(o, tm.tm_mon + 1, 2);
    *o++ = '-';
    o = sp__put_digits(o, tm.tm_mday, 2);
    *o++ = 'T';
    o = sp__put_digits(o, tm.tm_hour, 2);
    *o++ = ':';
    o = sp__put_digits(o, tm.tm_min, 2);
    *o++ = ':';
    o = sp__put_digits(o, tm.tm_sec, 2);
    *o++ = '.';
    o = sp__put_digits(o, (int)frac, 6);
    *o++ = 'Z';
    *o = '\0';
    return out;
}

/* Read exactly @p n digits at *s; advance. @return false if any is not a digit. */
static bool sp__digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *s += n;
    *out = v;
    return true;
}

static bool sp__expect(const char **s, char c)
{
    if (**s != c)
        return false;
    (*s)++;
    return true;
}

static int sp__days_in_month(int year, int mon)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return mon == 2 && leap ? 29 : days[mon - 1];
}

/* Parse "[.frac](Z|+hh:mm|-hh:mm)" into microseconds and an offset in seconds. */
static int sp__parse_tail(const char *s, int *frac_us, int *offset_s)
{
    *frac_us = 0;
    if (*s == '.') {
        s++;
        int n = 0, scale = 100000;
        while (*s >= '0' && *s <= '9') {
            if (n < 6)
                *frac_us += (*s - '0') * scale;
            scale /= 10;
            s++;
            n++;
        }
        if (n == 0)
            return SP_EINVAL;
    }
    if ((*s == 'Z' || *s == 'z') && s[1] == '\0') {
        *offset_s = 0;
        return 0;
    }
    if (*s != '+' && *s != '-')
        return SP_EINVAL;
    int sign = *s == '-' ? -1 : 1, oh, om;
    s++;
    if (!sp__digits(&s, 2, &oh) || !sp__expect(&s, ':') || !sp__digits(&s, 2, &om) || *s)
        return SP_EINVAL;
    if (oh > 23 || om > 59)
        return SP_EINVAL;
    *offset_s = sign * (oh * 3600 + om * 60);
    return 0;
}

int sp_time_parse_rfc3339(const char *s, int64_t *ts_us)
{
    int y, mo, d, h, mi, se, frac_us, offset_s;
    if (!s)
        return SP_EINVAL;
    if (!sp__digits(&s, 4, &y) || !sp__expect(&s, '-') || !sp__digits(&s, 2, &mo) ||
        !sp__expect(&s, '-') || !sp__digits(&s, 2, &d))
        return SP_EINVAL;
    if (*s != 'T' && *s != 't' && *s != ' ')
        return SP_EINVAL;
    s++;
    if (!sp__digits(&s, 2, &h) || !sp__expect(&s, ':') || !sp__digits(&s, 2, &mi) ||
        !sp__expect(&s, ':') || !sp__digits(&s, 2, &se))
        return SP_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > sp__days_in_month(y, mo) || h > 23 || mi > 59 || se > 60)
        return SP_EINVAL;
    if (sp__parse_tail(s, &frac_us, &offset_s))
        return SP_EINVAL;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    *ts_us = ((int64_t)t - offset_s) * 1000000 + frac_us;
    return 0;
}
