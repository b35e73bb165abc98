/* Allocation wrappers that abort with a log line on out-of-memory (Redis, Git). */
#ifndef SP_ALLOC_H
#define SP_ALLOC_H

#include <stddef.h>

/** malloc that never returns NULL: aborts the process with a log line on OOM. Owned: free(). */
void *sp_xmalloc(size_t size_bytes);
/** calloc that never returns NULL (aborts on OOM or overflow). Owned: free(). */
void *sp_xcalloc(size_t n, size_t size_bytes);
/** realloc that never returns NULL (aborts on OOM). Owned: free(). */
void *sp_xrealloc(void *p, size_t size_bytes);
/** strdup that never returns NULL (aborts on OOM). @p s must not be NULL. Owned: free(). */
char *sp_xstrdup(const char *s);
/** strndup that never returns NULL (aborts on OOM). Owned: free(). */
char *sp_xstrndup(const char *s, size_t n);

#endif
