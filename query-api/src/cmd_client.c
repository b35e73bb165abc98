/* The query API's client of the command API: see cmd_client.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "sp/alloc.h"
#include "sp/err.h"
#include "sp/log.h"
#include "cmd_client.h"

#include "sp/banned.h"

struct cmd_call {
    TAILQ_ENTRY(cmd_call) link;
    struct qry_cmd_client *cl;
    qry_cmd_fn fn;
    void *ud;
};

TAILQ_HEAD(cmd_calls, cmd_call);

struct qry_cmd_client {
    struct event_base *base;                               /* borrowed */
    struct evhttp_connection *conns[QRY_CMD_CLIENT_CONNS]; /* owned */
    size_t next;                                           /* round robin */
    struct cmd_calls calls;                                /* in flight, owned */
    char host[256];
};

static void cmd_on_done(struct evhttp_request *req, void *arg)
{
    struct cmd_call *call = arg;
    int status = req != NULL ? evhttp_request_get_response_code(req) : 0;
    const char *body = NULL;
    size_t len = 0;

    TAILQ_REMOVE(&call->cl->calls, call, link);
    if (status > 0) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        len = evbuffer_get_length(in);
        body = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    }
    call->fn(call->ud, status, body, len);
    free(call);
}

/* A request libevent refused at once: its completion, from the loop. */
static void cmd_on_refused(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cmd_on_done(NULL, arg);
}

struct qry_cmd_client *
qry__cmd_client_new(struct event_base *base, const char *host, int port, int timeout_s)
{
    struct qry_cmd_client *cl = sp_xcalloc(1, sizeof(*cl));

    TAILQ_INIT(&cl->calls);
    cl->base = base;
    snprintf(cl->host, sizeof(cl->host), "%s:%d", host, port);
    for (size_t i = 0; i < QRY_CMD_CLIENT_CONNS; i++) {
        cl->conns[i] = evhttp_connection_base_new(base, NULL, host, (unsigned short)port);
        SP_ASSERT(cl->conns[i] != NULL);
        evhttp_connection_set_timeout(cl->conns[i], timeout_s);
        evhttp_connection_set_retries(cl->conns[i], 0); /* a POST is never sent twice */
    }
    return cl;
}

void qry__cmd_client_free(struct qry_cmd_client *cl)
{
    struct cmd_call *call;

    if (cl == NULL)
        return;
    for (size_t i = 0; i < QRY_CMD_CLIENT_CONNS; i++)
        evhttp_connection_free(cl->conns[i]); /* drops its requests without callbacks */
    while ((call = TAILQ_FIRST(&cl->calls)) != NULL) {
        TAILQ_REMOVE(&cl->calls, call, link);
        free(call);
    }
    free(cl);
}

void qry__cmd_post(struct qry_cmd_client *cl,
                   const char *path,
                   const char *bearer,
                   const char *request_id,
                   const char *body,
                   size_t len,
                   qry_cmd_fn fn,
                   void *ud)
{
    struct cmd_call *call = sp_xcalloc(1, sizeof(*call));
    struct evhttp_request *req = evhttp_request_new(cmd_on_done, call);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char auth[2048];

    call->cl = cl;
    call->fn = fn;
    call->ud = ud;
    TAILQ_INSERT_TAIL(&cl->calls, call, link);
    snprintf(auth, sizeof(auth), "Bearer %s", bearer);
    evhttp_add_header(h, "Host", cl->host);
    evhttp_add_header(h, "Authorization", auth);
    evhttp_add_header(h, "Content-Type", "application/json");
    if (request_id != NULL)
        evhttp_add_header(h, "X-Request-Id", request_id);
    evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    struct evhttp_connection *conn = cl->conns[cl->next++ % QRY_CMD_CLIENT_CONNS];
    if (evhttp_make_request(conn, req, EVHTTP_REQ_POST, path) != 0) {
        /* libevent freed req; answer from the loop, never from within this call */
        const struct timeval now = {0, 0};
        sp_log(SP_LOG_ERROR, "could not send a request to the command API at %s", cl->host);
        SP_ASSERT(event_base_once(cl->base, -1, EV_TIMEOUT, cmd_on_refused, call, &now) == 0);
    }
}
