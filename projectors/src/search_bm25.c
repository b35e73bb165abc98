/*
 * BM25F scoring (Robertson & Zaragoza 2009, section 4.1; see proj/search.h), with the
 * per-field constants of a query folded once so that scoring an entry is a few multiplies.
 */
#include <math.h>

#include "search_reader_impl.h"
#include "sp/banned.h"

void proj_bm25f_params_default(struct proj_bm25f_params *p)
{
    static const double weight[PROJ_SEARCH_FIELDS] = {
        [PROJ_SEARCH_TITLE] = 4.0,       [PROJ_SEARCH_TAGS] = 3.0,  [PROJ_SEARCH_INGREDIENTS] = 2.0,
        [PROJ_SEARCH_DESCRIPTION] = 1.0, [PROJ_SEARCH_STEPS] = 1.0,
    };

    for (int f = 0; f < PROJ_SEARCH_FIELDS; f++) {
        p->weight[f] = weight[f];
        p->b[f] = 0.75;
    }
    p->k1 = 1.2;
}

double proj_bm25f_idf(uint64_t n_docs, uint64_t df)
{
    if (n_docs == 0)
        return 0.0;
    if (df > n_docs)
        df = n_docs;
    return log(1.0 + ((double)(n_docs - df) + 0.5) / ((double)df + 0.5));
}

void search__bm25_prepare(struct search_bm25 *s,
                          const struct proj_bm25f_params *p,
                          const double avg_len[PROJ_SEARCH_FIELDS])
{
    for (int f = 0; f < PROJ_SEARCH_FIELDS; f++) {
        s->w[f] = p->weight[f];
        s->one_minus_b[f] = 1.0 - p->b[f];
        s->b_over_avg[f] = avg_len[f] > 0.0 ? p->b[f] / avg_len[f] : 0.0;
        /* a field no recipe has text in is not normalised: its factor is 1 */
        if (avg_len[f] <= 0.0)
            s->one_minus_b[f] = 1.0;
    }
    s->k1 = p->k1;
}

double search__bm25_tf(const struct search_bm25 *s,
                       const uint32_t tf[PROJ_SEARCH_FIELDS],
                       const uint32_t len[PROJ_SEARCH_FIELDS])
{
    double sum = 0.0;

    for (int f = 0; f < PROJ_SEARCH_FIELDS; f++)
        if (tf[f] != 0)
            sum += search__bm25_field(s, f, tf[f], len[f]);
    return sum;
}

double proj_bm25f_term(const struct proj_bm25f_params *p,
                       double idf,
                       const uint32_t tf[PROJ_SEARCH_FIELDS],
                       const uint32_t len[PROJ_SEARCH_FIELDS],
                       const double avg_len[PROJ_SEARCH_FIELDS])
{
    struct search_bm25 s;
    double t;

    search__bm25_prepare(&s, p, avg_len);
    t = search__bm25_tf(&s, tf, len);
    return idf * t / (s.k1 + t);
}
