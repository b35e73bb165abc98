/*
 * WebSocket (RFC 6455) connections on the HTTP server of sp/http.h: the opening handshake
 * is checked and answered here, then the connection is taken over from evhttp and its
 * frames are read and written by wslay (RFC 6455 §5). Text messages only.
 *
 * Behaviour worth knowing:
 * - A route handler calls sp_ws_check(), may pick a subprotocol with sp_ws_protocols(),
 *   authenticates as it likes (the route's request accessors still work), then calls
 *   sp_ws_accept() instead of one of the sp_http_reply* calls.
 * - The upgrade request is logged and counted like any request, with status 101 and its
 *   duration up to the handshake, when it is accepted. The end of the WebSocket is
 *   logged once (msg "websocket closed", fields code, duration_ms, request_id, peer).
 *   Header values of the handshake are never logged: Sec-WebSocket-Protocol may carry a
 *   bearer token.
 * - sp_http_opts.timeout_s no longer applies once accepted: the connection is kept alive
 *   and checked with pings (sp_ws_opts.ping_interval_ms, pong_timeout_ms).
 * - Incoming messages above max_message bytes close with 1009, binary messages with
 *   1003, text that is not UTF-8 with 1007, frames that break RFC 6455 framing (unmasked,
 *   reserved bits or opcodes, bad control frames) with 1002 (RFC 6455 §7.4.1).
 * - sp_http_server_free() with WebSockets open sends each a best-effort Close 1001
 *   (going away), drops its connection and calls its on_close with 1001.
 *
 * @locality everything here runs on the thread of the server's event_base; a struct
 *           sp_ws is used on that thread only.
 */
#ifndef SP_WS_H
#define SP_WS_H

#include <stddef.h>

#include "sp/err.h"
#include "sp/http.h"

/** One accepted WebSocket connection; loop thread only. */
struct sp_ws;

/** Limits of one connection; a field left 0 takes the default named. */
struct sp_ws_opts {
    size_t max_message;   /* bytes of one incoming message; above it close 1009; 0 = 64 KiB */
    int ping_interval_ms; /* a ping goes out after this much silence from the peer; 0 = 30000 */
    int pong_timeout_ms;  /* no frame at all this long after a ping: close 1011; also the time
                             a closing handshake may take; 0 = 10000 */
    size_t max_pending;   /* bytes queued for a slow peer; beyond them close 1008; 0 = 1 MiB */
};

/** What the owner of a connection hears; @p ud is the one given to sp_ws_accept(). */
struct sp_ws_cbs {
    /**
     * One whole text message (all its fragments joined), checked to be UTF-8 (RFC 3629).
     * @p data is not NUL-terminated and is borrowed for the call. May call
     * sp_ws_send_text() and sp_ws_close() on @p ws; must not free the HTTP server.
     * Messages that arrive once the closing handshake has begun are dropped, as are all
     * when this is NULL.
     */
    void (*on_text)(struct sp_ws *ws, const char *data, size_t len, void *ud);
    /**
     * The connection is gone, called exactly once: closing handshake done, the peer
     * vanished, an I/O or protocol error, a ping timeout, or the server being freed.
     * @p code is the status code of the Close frame that began the closing handshake (ours
     * or the peer's; 1005 if the peer's carried none), or 1006 if the connection ended
     * without one (RFC 6455 §7.1.5). @p ws is freed when this returns: drop every pointer
     * to it and call nothing on it. NULL = not told.
     */
    void (*on_close)(struct sp_ws *ws, int code, void *ud);
};

/**
 * Check that @p req is a WebSocket opening handshake (RFC 6455 §4.2.1): method GET,
 * HTTP/1.1 or later, a Host, Upgrade naming "websocket", Connection with the token
 * "Upgrade", exactly one Sec-WebSocket-Version of 13 and exactly one Sec-WebSocket-Key
 * that is the base64 of 16 bytes. Header names are case-insensitive; token lists are
 * comma-separated. Origin is not checked (the caller may, with sp_http_req_header).
 *
 * When it is not, @p req is answered here (and consumed): 405 problem+json with Allow: GET
 * for another method; 426 Upgrade Required with Sec-WebSocket-Version: 13 for another
 * version (RFC 6455 §4.4); otherwise 400 problem+json whose errors[0].field names the bad
 * header ("Host", "Upgrade", "Connection", "Sec-WebSocket-Version", "Sec-WebSocket-Key";
 * "HTTP-Version" for HTTP/1.0). Header values are never echoed.
 *
 * @return 0 (@p req untouched: accept it or reply to it); SP_EINVAL when @p req was answered.
 * @locality loop thread
 */
SP_MUST_CHECK int sp_ws_check(struct sp_http_req *req);

/**
 * The subprotocols the client offers (RFC 6455 §4.1 and §11.3.4: Sec-WebSocket-Protocol,
 * comma-separated tokens, possibly over several header lines), in the client's order of
 * preference, for the caller to choose one from and pass to sp_ws_accept().
 *
 * Each offer that is an RFC 9110 §5.6.2 token is copied, NUL-terminated, into @p scratch
 * and pointed to from @p out; other elements (empty, or with characters outside tokens)
 * are skipped. Offers beyond @p max entries or @p scratch_len bytes are dropped.
 *
 * @param[out] out      pointers into @p scratch, valid while @p scratch is
 * @param max           entries of @p out
 * @param scratch       caller's buffer for the copied tokens
 * @param scratch_len   bytes of @p scratch
 * @return the number of entries filled in @p out (0 when the header is absent)
 * @locality loop thread
 */
size_t sp_ws_protocols(
    struct sp_http_req *req, const char **out, size_t max, char *scratch, size_t scratch_len);

/**
 * Complete the opening handshake of @p req, which passed sp_ws_check(): answer 101
 * Switching Protocols with Upgrade, Connection and Sec-WebSocket-Accept
 * (base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), RFC 6455 §4.2.2), plus
 * Sec-WebSocket-Protocol: @p protocol when it is not NULL, plus the headers added with
 * sp_http_add_header and X-Request-Id; then take the connection over from evhttp. No
 * extension is accepted (Sec-WebSocket-Extensions offers are ignored). Bytes the client
 * sent after its handshake are kept and read as frames.
 *
 * @param protocol  one of the offers of sp_ws_protocols() (copied), or NULL for none; it
 *                  must be a token the client offered (RFC 6455 §4.2.2 item 5.4)
 * @param opts      limits (copied); NULL = all defaults
 * @param cbs       callbacks (copied)
 * @param ud        passed to the callbacks
 * @return the connection, owned by the event loop until on_close (end it early with
 *         sp_ws_close()); NULL if it could not be made: @p req was answered 500 (or dropped
 *         when its client had already gone) and on_close is never called. Either way
 *         @p req is consumed.
 * @locality loop thread
 */
struct sp_ws *sp_ws_accept(struct sp_http_req *req,
                           const char *protocol,
                           const struct sp_ws_opts *opts,
                           const struct sp_ws_cbs *cbs,
                           void *ud);

/**
 * Queue one text message of @p len bytes (copied; valid UTF-8, RFC 3629) for the peer,
 * as a single frame.
 *
 * @return 0; SP_ESTATE once the closing handshake has begun (nothing is sent);
 *         SP_EINVAL if @p data is not UTF-8 (nothing is sent); SP_ETOOBIG if
 *         sp_ws_pending_bytes() + @p len would exceed opts.max_pending: nothing is sent
 *         and the connection is closed with 1008 (the peer is too slow; on_close
 *         follows); -ENOMEM if wslay could not allocate.
 * @locality loop thread (also from within on_text)
 */
SP_MUST_CHECK int sp_ws_send_text(struct sp_ws *ws, const char *data, size_t len);

/** Bytes queued for the peer and not yet taken by its socket, frame headers included. */
size_t sp_ws_pending_bytes(const struct sp_ws *ws);

/**
 * Begin the closing handshake (RFC 6455 §7.1.2): send a Close frame with @p code and
 * @p reason, refuse further sends, and wait up to opts.pong_timeout_ms for the peer's
 * Close before dropping the connection; on_close(@p code) follows either way. A no-op once
 * the closing handshake has begun.
 *
 * @param code    1000..1003, 1007..1009, 1011 or 3000..4999 (RFC 6455 §7.4); our own
 *                constant, so any other value is a bug (SP_ASSERT)
 * @param reason  UTF-8 text, or NULL; cut to 123 bytes at a character boundary (§5.5)
 * @locality loop thread (also from within on_text)
 */
void sp_ws_close(struct sp_ws *ws, int code, const char *reason);

/**
 * Replace the callbacks and their user data (@p cbs copied; NULL = none): an owner that
 * goes away before the connection does detaches itself so, then closes it (sp_ws_close);
 * the connection ends on its own later, calling nothing of the old owner.
 * @locality loop thread, not from within on_close
 */
void sp_ws_set_callbacks(struct sp_ws *ws, const struct sp_ws_cbs *cbs, void *ud);

/** The peer's address as text, for logs; borrowed until on_close returns. */
const char *sp_ws_peer(const struct sp_ws *ws);

#endif
