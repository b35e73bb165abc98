/* GET /notifications/stream: the caller's new notifications as Server-Sent Events, a
 * stream kind of sse.h over the notifications table. */
#include <stdlib.h>

#include "sp/alloc.h"
#include "sp/pg_channels.h"
#include "qry/notify.h"
#include "sse.h"

#include "sp/banned.h"

/* the cursor is (notification id, 0, 0) */
static const struct qry_sse_def notify_def = {
    .what = "notification",
    .gauge = "stockpot_query_sse_streams",
    .gauge_help = "open Server-Sent Events streams of GET /notifications/stream",
    .polls = "stockpot_query_sse_polls_total",
    .polls_help = "queries of new notifications for the open streams, answered",
    .channel = SP_PG_CHANNEL_NOTIFICATIONS,
    .start = QRY_STMT_STREAM_START,
    .poll = QRY_STMT_STREAM_POLL,
};

struct qry_notify {
    struct qry_sse *sse; /* owned */
};

struct qry_notify *qry_notify_new(struct event_base *base,
                                  struct qry_db *db,
                                  struct qry_auth *auth,
                                  const struct qry_notify_opts *opts)
{
    struct qry_notify *nt = sp_xcalloc(1, sizeof(*nt));

    nt->sse = qry__sse_new(base, db, auth, &notify_def, opts);
    return nt;
}

void qry_notify_free(struct qry_notify *nt)
{
    if (nt == NULL)
        return;
    qry__sse_free(nt->sse);
    free(nt);
}

void qry_notify_handle(struct qry_notify *nt, struct sp_http_req *req)
{
    qry__sse_handle(nt->sse, req);
}

size_t qry_notify_streams(const struct qry_notify *nt)
{
    return qry__sse_streams(nt->sse);
}
