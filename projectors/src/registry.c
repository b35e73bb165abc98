/* The projection registry: every projection this build knows, by name. */
#include <stdio.h>
#include <string.h>

#include "proj/projection.h"

#include "sp/banned.h"

typedef const struct proj_projection *(*registry_entry_fn)(void);

static const registry_entry_fn registry[] = {proj_pg_projection, proj_search_projection,
                                             proj_analytics_projection};

#define REGISTRY_N (sizeof(registry) / sizeof(registry[0]))

size_t proj_registry_count(void)
{
    return REGISTRY_N;
}

const struct proj_projection *proj_registry_at(size_t i)
{
    SP_ASSERT(i < REGISTRY_N);
    return registry[i]();
}

const struct proj_projection *proj_registry_find(const char *name)
{
    for (size_t i = 0; i < REGISTRY_N; i++) {
        if (strcmp(registry[i]()->name, name) == 0)
            return registry[i]();
    }
    return NULL;
}

int proj_registry_select(const char *list,
                         const struct proj_projection **out,
                         size_t cap,
                         size_t *n,
                         struct sp_errbuf *eb)
{
    const char *p = list != NULL ? list : "";

    *n = 0;
    while (*p != '\0') {
        char name[64];
        size_t len;
        const struct proj_projection *proj;

        p += strspn(p, " ,");
        len = strcspn(p, " ,");
        if (len == 0)
            break;
        snprintf(name, sizeof(name), "%.*s", (int)len, p);
        p += len;
        if ((proj = proj_registry_find(name)) == NULL)
            return sp_err_set(eb, SP_EINVAL, "projector.projections",
                              "unknown projection \"%s\" in projector.projections", name);
        for (size_t i = 0; i < *n; i++)
            if (out[i] == proj)
                proj = NULL;
        if (proj != NULL && *n >= cap)
            return sp_err_set(eb, SP_EINVAL, "projector.projections", "too many projections");
        if (proj != NULL)
            out[(*n)++] = proj;
    }
    if (*n == 0)
        return sp_err_set(eb, SP_EINVAL, "projector.projections", "no projection to run");
    return 0;
}

bool proj_projection_handles(const struct proj_projection *proj, enum es_type type)
{
    if (type <= ES_TYPE_UNKNOWN || type >= ES_TYPE__COUNT)
        return false;
    return proj->store == PROJ_STORE_LMDB ? proj->view->handles[type] : proj->folds[type] != NULL;
}

int proj_poison_policy_parse(const char *s, enum proj_poison_policy *out)
{
    if (strcmp(s, "dead-letter") == 0)
        *out = PROJ_POISON_DEAD_LETTER;
    else if (strcmp(s, "halt") == 0)
        *out = PROJ_POISON_HALT;
    else
        return SP_EINVAL;
    return 0;
}
