/*
 * Parsing of a search query into words, phrases and exclusions (the query language of
 * proj_search_recipes): "quoted phrases", -word, -"phrase", the open last word.
 */
#include <string.h>

#include "search_reader_impl.h"
#include "sp/banned.h"

/* Tokens of one segment of the query, copied out of the analyzer's callback. */
struct seg_tokens {
    struct search_term t[PROJ_SEARCH_MAX_TERMS + 1];
    uint32_t pos[PROJ_SEARCH_MAX_TERMS + 1];
    size_t n;
};

static bool is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int on_query_token(const struct proj_token *tok, void *ud)
{
    struct seg_tokens *st = ud;

    if (st->n == PROJ_SEARCH_MAX_TERMS + 1)
        return SP_ETOOBIG;
    struct search_term *t = &st->t[st->n];
    memset(t, 0, sizeof(*t));
    memcpy(t->word, tok->word, tok->word_len + 1);
    t->word_len = tok->word_len;
    t->cjk = tok->cjk;
    t->phrase = -1;
    st->pos[st->n++] = tok->pos;
    return 0;
}

static int too_many(struct sp_errbuf *eb)
{
    return sp_err_set(eb, SP_EINVAL, "q", "must have at most %d words", PROJ_SEARCH_MAX_TERMS);
}

/*
 * Add the words of one segment: a quoted phrase (@p quoted), or a run of non-space bytes
 * (a word, or several words such as "stir-fry": ANDed, or a phrase when excluded).
 */
static int add_segment(struct proj_search_reader *r,
                       const char *s,
                       size_t len,
                       bool neg,
                       bool quoted,
                       struct sp_errbuf *eb)
{
    struct search_plan *p = &r->plan;
    struct seg_tokens st;
    int rc;

    st.n = 0;
    rc = proj_text_analyze(r->text, PROJ_LANG_NONE, s, len, on_query_token, &st);
    if (rc == SP_ETOOBIG || p->n_terms + st.n > PROJ_SEARCH_MAX_TERMS)
        return too_many(eb);
    if (rc == SP_EINVAL)
        return sp_err_set(eb, SP_EINVAL, "q", "must be valid UTF-8");
    if (rc != 0)
        return sp_err_set(eb, rc, "q", "could not analyse the query: %s", sp_strerror(rc));
    bool phrase = st.n >= 2 && (quoted || neg);
    for (size_t i = 0; i < st.n; i++) {
        struct search_term *t = &p->terms[p->n_terms++];
        *t = st.t[i];
        t->exact = quoted;
        t->role = neg ? (phrase ? SEARCH_NEG_PHRASE : SEARCH_EXCLUDED) : SEARCH_REQUIRED;
        if (phrase) {
            t->phrase = (int)p->n_phrases;
            t->offset = st.pos[i] - st.pos[0];
        }
    }
    if (phrase)
        p->phrases[p->n_phrases++] = (struct search_phrase){p->n_terms - st.n, st.n, neg};
    return (int)st.n;
}

/* Parse segments; *open_last = the last segment was a plain word run (no quote, no -). */
static int parse_segments(
    struct proj_search_reader *r, const char *s, size_t len, bool *open_last, struct sp_errbuf *eb)
{
    size_t i = 0, j;
    int rc = 0;

    while (i < len && rc >= 0) {
        bool neg = false, quoted;
        if (is_space(s[i])) {
            i++;
            continue;
        }
        if (s[i] == '-' && i + 1 < len && !is_space(s[i + 1])) {
            neg = true;
            i++;
        }
        quoted = s[i] == '"';
        j = quoted ? i + 1 : i;
        while (j < len && s[j] != '"' && (quoted || !is_space(s[j])))
            j++;
        rc = quoted ? add_segment(r, s + i + 1, j - i - 1, neg, true, eb)
                    : add_segment(r, s + i, j - i, neg, false, eb);
        if (rc > 0)
            *open_last = !quoted && !neg;
        i = quoted && j < len ? j + 1 : j;
    }
    return rc < 0 ? rc : 0;
}

/* Flag stop words and make those outside phrases optional, unless all words are. */
static void mark_stop_words(struct search_plan *p)
{
    bool all_stop = true;

    for (size_t i = 0; i < p->n_terms; i++) {
        struct search_term *t = &p->terms[i];
        if (t->role == SEARCH_EXCLUDED || t->role == SEARCH_NEG_PHRASE)
            continue;
        if (p->lang_filter)
            t->stop = !t->cjk && proj_text_is_stopword(p->lang, t->word, t->word_len);
        else
            t->stop = !t->cjk && (proj_text_is_stopword(PROJ_LANG_EN, t->word, t->word_len) ||
                                  proj_text_is_stopword(PROJ_LANG_DE, t->word, t->word_len));
        all_stop = all_stop && t->stop;
    }
    for (size_t i = 0; i < p->n_terms && !all_stop; i++) {
        struct search_term *t = &p->terms[i];
        if (t->stop && t->role == SEARCH_REQUIRED && t->phrase < 0 && !t->exact) {
            t->role = SEARCH_OPTIONAL;
            t->prefix = false;
        }
    }
}

int search__qparse(struct proj_search_reader *r, const char *text, size_t len, struct sp_errbuf *eb)
{
    struct search_plan *p = &r->plan;
    bool open_last = false, blank = true;
    int rc;

    p->n_terms = p->n_phrases = 0;
    p->nv = 0;
    for (size_t i = 0; text != NULL && i < len && blank; i++)
        blank = is_space(text[i]);
    if (blank)
        return sp_err_set(eb, SP_EINVAL, "q", "must not be empty");
    if (len > PROJ_SEARCH_MAX_QUERY_BYTES)
        return sp_err_set(eb, SP_EINVAL, "q", "must be at most %d bytes long",
                          PROJ_SEARCH_MAX_QUERY_BYTES);
    rc = parse_segments(r, text, len, &open_last, eb);
    if (rc != 0)
        return rc;
    if (open_last && p->n_terms > 0 && !is_space(text[len - 1]) && text[len - 1] != '"')
        p->terms[p->n_terms - 1].prefix = true;
    mark_stop_words(p);
    return 0;
}
