/* Error codes shared by every module, and the buffer that carries human detail. */
#ifndef SP_ERR_H
#define SP_ERR_H

#include <stddef.h>

#define SP_MUST_CHECK __attribute__((warn_unused_result))

/*
 * Stockpot error codes: negative, in a block from -1000 down (LMDB style), so they never
 * collide with -errno values, which functions also return for system failures.
 */
enum sp_err {
    SP_OK = 0,
    SP_EINVAL = -1000,     /* bad input: a field has the wrong type, length or characters */
    SP_ENOTFOUND = -1001,  /* the thing named does not exist */
    SP_ECONFLICT = -1002,  /* expected version or uniqueness rule violated */
    SP_ETOOBIG = -1003,    /* a size cap was exceeded */
    SP_ECORRUPT = -1004,   /* stored or received data failed its checksum or framing */
    SP_ETIMEDOUT = -1005,  /* a bounded wait ran out */
    SP_EUNAVAIL = -1006,   /* a dependency (log, database) is unavailable; retry later */
    SP_EAUTH = -1007,      /* missing, bad or expired credentials */
    SP_EFORBIDDEN = -1008, /* valid credentials without the right */
    SP_EDB = -1009,        /* a database (PostgreSQL, LMDB) reported an error */
    SP_ESCHEMA = -1010,    /* an event does not match its schema or has an unknown type */
    SP_EFENCED = -1011,    /* another writer took over the log; this one must stop */
    SP_ESTATE = -1012,     /* the object is not in a state that allows the call */
};

/** Fixed-size human detail for an error, plus the offending field (no allocation). */
struct sp_errbuf {
    char msg[256];  /* lower case, no final period; "" when unset */
    char field[64]; /* JSON pointer-ish field name ("title", "ingredients/3"), or "" */
};

/**
 * Name an error code: a short description of an SP_E* code or of a -errno value.
 * @return a static string (borrowed, valid forever)
 */
const char *sp_strerror(int err);

/**
 * Symbolic name of an error code: "SP_ECONFLICT", "ENOENT", ...
 * @return a static string (borrowed, valid forever)
 */
const char *sp_errname(int err);

/**
 * Fill @p eb (if not NULL) with a printf-formatted message and a field name, and return
 * @p err unchanged, so callers can write `return sp_err_set(eb, SP_EINVAL, "title", "...")`.
 * @param field  offending field or NULL
 * @return @p err
 */
int sp_err_set(struct sp_errbuf *eb, int err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Reset @p eb (NULL is a no-op) to no message and no field. */
void sp_err_clear(struct sp_errbuf *eb);

/** Always-on invariant check for our own code; aborts with a log line. Never for input. */
#define SP_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            sp__assert_fail(#cond, __FILE__, __LINE__);                                            \
    } while (0)

/** Log "assertion failed: <expr>" with file and line as an error line, then abort(). For SP_ASSERT.
 */
void sp__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
