/* Stop word lists of the search view: Snowball's English and German lists, folded. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "proj/text.h"
#include "sp/banned.h"

/*
 * Snowball English stop list (snowballstem.org/algorithms/english/stop.txt), without its
 * contractions ("don't", "i'm"): the tokeniser splits at apostrophes, so no token holds
 * one. Sorted by memcmp for bsearch.
 */
static const char *const text_stop_en[] = {
    "a",      "about",  "above",    "after",      "again",      "against", "all",    "am",
    "an",     "and",    "any",      "are",        "as",         "at",      "be",     "because",
    "been",   "before", "being",    "below",      "between",    "both",    "but",    "by",
    "cannot", "could",  "did",      "do",         "does",       "doing",   "down",   "during",
    "each",   "few",    "for",      "from",       "further",    "had",     "has",    "have",
    "having", "he",     "her",      "here",       "hers",       "herself", "him",    "himself",
    "his",    "how",    "i",        "if",         "in",         "into",    "is",     "it",
    "its",    "itself", "me",       "more",       "most",       "my",      "myself", "no",
    "nor",    "not",    "of",       "off",        "on",         "once",    "only",   "or",
    "other",  "ought",  "our",      "ours",       "ourselves",  "out",     "over",   "own",
    "same",   "she",    "should",   "so",         "some",       "such",    "than",   "that",
    "the",    "their",  "theirs",   "them",       "themselves", "then",    "there",  "these",
    "they",   "this",   "those",    "through",    "to",         "too",     "under",  "until",
    "up",     "very",   "was",      "we",         "were",       "what",    "when",   "where",
    "which",  "while",  "who",      "whom",       "why",        "with",    "would",  "you",
    "your",   "yours",  "yourself", "yourselves",
};

/*
 * Snowball German stop list (snowballstem.org/algorithms/german/stop.txt), folded as the
 * analyzer folds tokens ("daß" -> "dass", "für" -> "fur", "können" -> "konnen") and
 * sorted by memcmp for bsearch.
 */
static const char *const text_stop_de[] = {
    "aber",     "alle",      "allem",     "allen",   "aller",    "alles",    "als",
    "also",     "am",        "an",        "ander",   "andere",   "anderem",  "anderen",
    "anderer",  "anderes",   "anderm",    "andern",  "anderr",   "anders",   "auch",
    "auf",      "aus",       "bei",       "bin",     "bis",      "bist",     "da",
    "damit",    "dann",      "das",       "dass",    "dasselbe", "dazu",     "dein",
    "deine",    "deinem",    "deinen",    "deiner",  "deines",   "dem",      "demselben",
    "den",      "denn",      "denselben", "der",     "derer",    "derselbe", "derselben",
    "des",      "desselben", "dessen",    "dich",    "die",      "dies",     "diese",
    "dieselbe", "dieselben", "diesem",    "diesen",  "dieser",   "dieses",   "dir",
    "doch",     "dort",      "du",        "durch",   "ein",      "eine",     "einem",
    "einen",    "einer",     "eines",     "einig",   "einige",   "einigem",  "einigen",
    "einiger",  "einiges",   "einmal",    "er",      "es",       "etwas",    "euch",
    "euer",     "eure",      "eurem",     "euren",   "eurer",    "eures",    "fur",
    "gegen",    "gewesen",   "hab",       "habe",    "haben",    "hat",      "hatte",
    "hatten",   "hier",      "hin",       "hinter",  "ich",      "ihm",      "ihn",
    "ihnen",    "ihr",       "ihre",      "ihrem",   "ihren",    "ihrer",    "ihres",
    "im",       "in",        "indem",     "ins",     "ist",      "jede",     "jedem",
    "jeden",    "jeder",     "jedes",     "jene",    "jenem",    "jenen",    "jener",
    "jenes",    "jetzt",     "kann",      "kein",    "keine",    "keinem",   "keinen",
    "keiner",   "keines",    "konnen",    "konnte",  "machen",   "man",      "manche",
    "manchem",  "manchen",   "mancher",   "manches", "mein",     "meine",    "meinem",
    "meinen",   "meiner",    "meines",    "mich",    "mir",      "mit",      "muss",
    "musste",   "nach",      "nicht",     "nichts",  "noch",     "nun",      "nur",
    "ob",       "oder",      "ohne",      "sehr",    "sein",     "seine",    "seinem",
    "seinen",   "seiner",    "seines",    "selbst",  "sich",     "sie",      "sind",
    "so",       "solche",    "solchem",   "solchen", "solcher",  "solches",  "soll",
    "sollte",   "sondern",   "sonst",     "uber",    "um",       "und",      "uns",
    "unse",     "unsem",     "unsen",     "unser",   "unses",    "unter",    "viel",
    "vom",      "von",       "vor",       "wahrend", "war",      "waren",    "warst",
    "was",      "weg",       "weil",      "weiter",  "welche",   "welchem",  "welchen",
    "welcher",  "welches",   "wenn",      "werde",   "werden",   "wie",      "wieder",
    "will",     "wir",       "wird",      "wirst",   "wo",       "wollen",   "wollte",
    "wurde",    "wurden",    "zu",        "zum",     "zur",      "zwar",     "zwischen",
};

/* bsearch key: a word that is not NUL-terminated. */
struct text_stop_key {
    const char *word;
    size_t len;
};

static int text_stop_cmp(const void *key, const void *elem)
{
    const struct text_stop_key *k = key;
    const char *w = *(const char *const *)elem;
    size_t wlen = strlen(w);
    int c = memcmp(k->word, w, k->len < wlen ? k->len : wlen);
    if (c)
        return c;
    return (k->len > wlen) - (k->len < wlen);
}

const char *const *proj_text_stopwords(enum proj_lang lang, size_t *n)
{
    switch (lang) {
    case PROJ_LANG_EN:
        *n = sizeof(text_stop_en) / sizeof(text_stop_en[0]);
        return text_stop_en;
    case PROJ_LANG_DE:
        *n = sizeof(text_stop_de) / sizeof(text_stop_de[0]);
        return text_stop_de;
    case PROJ_LANG_NONE:
    default:
        *n = 0;
        return NULL;
    }
}

bool proj_text_is_stopword(enum proj_lang lang, const char *word, size_t len)
{
    size_t n;
    const char *const *list = proj_text_stopwords(lang, &n);
    if (!n || !word)
        return false;
    struct text_stop_key key = {word, len};
    return bsearch(&key, list, n, sizeof(list[0]), text_stop_cmp) != NULL;
}
