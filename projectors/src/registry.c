/* The projection registry: every projection this build knows, by name. */
#include <string.h>

#include "proj/projection.h"

#include "sp/banned.h"

typedef const struct proj_projection *(*registry_entry_fn)(void);

static const registry_entry_fn registry[] = {proj_pg_projection};

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

bool proj_projection_handles(const struct proj_projection *proj, enum es_type type)
{
    return type > ES_TYPE_UNKNOWN && type < ES_TYPE__COUNT && proj->folds[type] != NULL;
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
