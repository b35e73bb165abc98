/* Analysis of one recipe into what the search view indexes: terms, words, tags, forward. */
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"
#include "sp/banned.h"

void search__docterms_release(struct search_docterms *dt)
{
    proj__strmap_release(&dt->terms);
    proj__strmap_release(&dt->words);
    proj__strmap_release(&dt->tags);
    proj__bytes_release(&dt->fwd);
    free(dt->tf);
    free(dt->word_term);
    memset(dt, 0, sizeof(*dt));
}

static void docterms_reset(struct search_docterms *dt, enum proj_lang lang)
{
    proj__strmap_reset(&dt->terms);
    proj__strmap_reset(&dt->words);
    proj__strmap_reset(&dt->tags);
    dt->fwd.len = 0;
    memset(dt->len, 0, sizeof(dt->len));
    dt->lang = lang;
}

static void fwd_put(struct search_docterms *dt, uint32_t v)
{
    proj__be32(proj__bytes_reserve(&dt->fwd, 4), v);
    dt->fwd.len += 4;
}

/* Index of the term (language byte + stem) of @p tok, added with zero frequencies. */
static uint32_t term_of(struct search_docterms *dt, const struct proj_token *tok)
{
    uint8_t key[SEARCH_KEY_MAX];
    size_t n = tok->stem_len < SEARCH_KEY_MAX - 1 ? tok->stem_len : SEARCH_KEY_MAX - 1;
    bool added;
    uint32_t t;

    key[0] = (uint8_t)dt->lang;
    memcpy(key + 1, tok->stem, n);
    t = proj__strmap_put(&dt->terms, key, n + 1, &added);
    if (added) {
        PROJ_GROW(dt->tf, dt->tf_cap, (size_t)t + 1);
        memset(dt->tf[t], 0, sizeof(dt->tf[t]));
    }
    return t;
}

static int on_token(const struct proj_token *tok, void *ud)
{
    struct search_docterms *dt = ud;
    uint32_t t = term_of(dt, tok), w;
    bool added;

    for (; dt->item_pos < tok->pos; dt->item_pos++)
        fwd_put(dt, SEARCH_FWD_GAP);
    dt->item_pos = tok->pos + 1;
    fwd_put(dt, search__stem_hash(tok->stem, tok->stem_len));
    dt->tf[t][dt->field]++;
    dt->len[dt->field]++;
    w = proj__strmap_put(&dt->words, tok->word, tok->word_len, &added);
    if (added) {
        PROJ_GROW(dt->word_term, dt->word_term_cap, (size_t)w + 1);
        dt->word_term[w] = t;
    }
    return 0;
}

static void analyze_tags(const struct search_doc *d, struct search_docterms *dt)
{
    bool added;

    for (uint32_t i = 0; i < d->n[PROJ_SEARCH_TAGS]; i++)
        if (d->tags_folded[i].len > 0)
            (void)proj__strmap_put(&dt->tags, d->tags_folded[i].s, d->tags_folded[i].len, &added);
}

int search__analyze(struct proj_text *a,
                    const struct search_doc *d,
                    struct search_docterms *dt,
                    struct sp_errbuf *eb)
{
    docterms_reset(dt, search__lang_of(d->lang));
    for (int f = 0; f < PROJ_SEARCH_FIELDS; f++) {
        proj__be16(proj__bytes_reserve(&dt->fwd, 2), (uint16_t)d->n[f]);
        dt->fwd.len += 2;
    }
    for (int f = 0; f < PROJ_SEARCH_FIELDS; f++) {
        dt->field = f;
        for (uint32_t i = 0; i < d->n[f]; i++) {
            const struct search_str *s = &d->items[f][i];
            dt->item_pos = 0;
            int rc = proj_text_analyze(a, dt->lang, s->s, s->len, on_token, dt);
            if (rc != 0)
                return sp_err_set(eb, rc, proj_search_field_name(f),
                                  "could not analyse recipe text: %s", sp_strerror(rc));
            fwd_put(dt, SEARCH_FWD_END);
        }
    }
    analyze_tags(d, dt);
    return 0;
}
