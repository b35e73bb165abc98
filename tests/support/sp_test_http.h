/*
 * Blocking HTTP/1.1 client for tests: one request per TCP connection to 127.0.0.1
 * (Connection: close), response bodies framed by Content-Length, chunked encoding
 * (RFC 9112 §7.1) or connection close. Not for production use: no TLS, no redirects.
 */
#ifndef SP_TEST_HTTP_H
#define SP_TEST_HTTP_H

#include <stddef.h>

struct sp_test_header {
    char *name;  /* owned, as received */
    char *value; /* owned, leading/trailing whitespace trimmed */
};

struct sp_test_resp {
    int status;                     /* e.g. 200; 0 before a response was parsed */
    struct sp_test_header *headers; /* owned array of nheaders */
    size_t nheaders;
    char *body;      /* owned, NUL-terminated (may contain NULs before) */
    size_t body_len; /* bytes, excluding the terminating NUL */
};

/**
 * Send one request to 127.0.0.1:@p port and read the whole response (10 s socket timeout).
 *
 * @param method   "GET", "POST", ...
 * @param path     request target, e.g. "/recipes?limit=5" (sent as is)
 * @param headers  NULL-terminated array of "Name: value" strings, or NULL. Host,
 *                 Connection: close and (with a body) Content-Length are added; a
 *                 Content-Type: application/json is added for a body unless given.
 * @param body     NUL-terminated request body, or NULL for none
 * @param[out] resp filled on success; release with sp_test_resp_release() (also safe
 *                 to release after a failure)
 * @return the HTTP status (> 0), or a negative -errno / -1 on a connection or parse error
 */
int sp_test_http(int port,
                 const char *method,
                 const char *path,
                 const char *const *headers,
                 const char *body,
                 struct sp_test_resp *resp);

/**
 * Like sp_test_http with an explicit body length (for bodies with NULs or large bodies
 * built in memory). @p body may be NULL when @p body_len is 0.
 */
int sp_test_http_n(int port,
                   const char *method,
                   const char *path,
                   const char *const *headers,
                   const void *body,
                   size_t body_len,
                   struct sp_test_resp *resp);

/**
 * A blocking TCP connection to 127.0.0.1:@p port with 10 s send and receive timeouts
 * (SO_SNDTIMEO, SO_RCVTIMEO), for tests that speak raw HTTP.
 * @return the socket (the caller closes it), or -errno
 */
int sp_test_connect(int port);

/** Response header by case-insensitive name (first occurrence), or NULL. Borrowed. */
const char *sp_test_resp_header(const struct sp_test_resp *resp, const char *name);

/** Free everything in @p resp and zero it. */
void sp_test_resp_release(struct sp_test_resp *resp);

#endif
