/* Internals of the catalogue checks (catalogue.c), for their tests. */
#ifndef ES_CATALOGUE_IMPL_H
#define ES_CATALOGUE_IMPL_H

#include <stdbool.h>

/**
 * Whether @p s matches @p pattern, one of the catalogue's POSIX EREs (asserted), with the
 * simple matcher when the pattern is in its subset, else (or with @p force_regex) regexec.
 */
bool es__pattern_match(const char *pattern, const char *s, bool force_regex);

/** Whether @p pattern (one of the catalogue's) runs on the simple matcher. */
bool es__pattern_simple(const char *pattern);

#endif
