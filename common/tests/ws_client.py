#!/usr/bin/env python3
"""WebSocket client scenarios for common/tests/test_ws.c, on a client that is not ours:
Debian's python3-websockets 10.4 (its asyncio client for well-formed traffic, its sans-I/O
ClientConnection to watch single frames, raw bytes on a socket for malformed frames).

Usage: ws_client.py PORT SCENARIO. Exit status 0 when every check of the scenario held;
otherwise the first failed check is printed on stderr and the status is 1. The server is
test_ws.c's /ws route: it echoes text messages and obeys commands ("close:<code>",
"flood:<n>", "peer", "bad-utf8"); query parameters set its limits.
"""
import asyncio
import os
import socket
import struct
import sys
import time

import websockets
from websockets.client import ClientConnection
from websockets.frames import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Close
from websockets.http11 import Response
from websockets.uri import parse_uri

PORT = int(sys.argv[1])
TIMEOUT = 5.0  # seconds for any single wait


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def url(path):
    return f"ws://127.0.0.1:{PORT}{path}"


# ---------------------------------------------------------------- raw and sans-I/O helpers


def client_frame(opcode, payload, fin=True, masked=True):
    """One client frame (RFC 6455 §5.2), built by hand so that it can break the rules."""
    head = bytes([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Raw:
    """A socket with websockets' sans-I/O client parsing what the server sends."""

    def __init__(self, path, early=b"", rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", PORT))
        self.conn = ClientConnection(parse_uri(url(path)))
        self.conn.send_request(self.conn.connect())
        self.sock.sendall(b"".join(self.conn.data_to_send()) + early)
        self.events = []
        self.eof = False
        while not self.events:
            self.feed()
        resp = self.events.pop(0)
        check(isinstance(resp, Response), f"expected the handshake response, got {resp!r}")
        check(resp.status_code == 101, f"handshake answered {resp.status_code}")
        check(self.conn.handshake_exc is None, f"handshake refused: {self.conn.handshake_exc}")
        self.response = resp

    def feed(self, answer=True):
        """Read once; parse; send what the client owes (pongs, close echo) if answer."""
        data = self.sock.recv(65536)
        if data:
            self.conn.receive_data(data)
        else:
            self.eof = True
            self.conn.receive_eof()
        self.events += self.conn.events_received()
        out = self.conn.data_to_send()
        if answer:
            for chunk in out:
                if chunk:
                    self.sock.sendall(chunk)

    def next_frame(self, answer=True):
        """The next frame from the server (None at EOF)."""
        while not self.events and not self.eof:
            self.feed(answer)
        return self.events.pop(0) if self.events else None

    def send(self, data):
        self.sock.sendall(data)

    def expect_text(self, want):
        frame = self.next_frame()
        check(frame is not None and frame.opcode == OP_TEXT, f"expected a text frame, got {frame}")
        check(frame.data == want, f"echo {frame.data!r} != {want!r}")

    def expect_close(self, code):
        """The server's Close carries @code, then the server closes TCP first."""
        frame = self.next_frame(answer=False)
        while frame is not None and frame.opcode == OP_PING:
            frame = self.next_frame(answer=False)
        check(frame is not None and frame.opcode == OP_CLOSE, f"expected a Close, got {frame}")
        got = Close.parse(frame.data).code
        check(got == code, f"close code {got} != {code}")
        deadline = time.monotonic() + TIMEOUT
        while not self.eof:
            check(time.monotonic() < deadline, "the server did not close TCP")
            self.feed(answer=False)

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------- scenarios


async def echo():
    # default compression: the client offers permessage-deflate, which the server ignores
    async with websockets.connect(url("/ws"), ping_interval=None) as ws:
        check(ws.extensions == [], f"extensions negotiated: {ws.extensions}")
        for msg in ["hello", "", "héllo wörld ✓ 🍲 ünïcödé", "x" * 60000, "ü" * 30000]:
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            check(got == msg, f"echo of {len(msg)} chars differs")
        await ws.send("peer")
        check(await ws.recv() == "127.0.0.1", "peer address")
        await ws.send("bad-utf8")
        check(await ws.recv() == "einval", "sp_ws_send_text took invalid UTF-8")
    check(ws.close_code == 1000, f"close code {ws.close_code}")


async def fragments():
    async with websockets.connect(url("/ws"), ping_interval=None, compression=None) as ws:
        parts = ["frag", "mented ", "mess", "age ", "é", "✓" * 100, "🍲"] + ["." * 7] * 50
        await ws.send(parts)  # an iterable is sent as one message, one frame per item
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
        check(got == "".join(parts), "fragmented echo differs")
    # a code point split over two fragments, a ping between them (RFC 6455 §5.4, §5.5)
    raw = Raw("/ws")
    raw.send(client_frame(OP_TEXT, "caf".encode() + b"\xc3", fin=False))
    raw.send(client_frame(OP_PING, b"between"))
    raw.send(client_frame(0x0, b"\xa9 ok", fin=False))
    raw.send(client_frame(0x0, b"", fin=True))
    frame = raw.next_frame()
    check(frame.opcode == OP_PONG and frame.data == b"between", f"{frame}")
    raw.expect_text("café ok".encode())
    raw.close()


def ping():
    raw = Raw("/ws?ping_ms=150&pong_ms=1000")
    start = time.monotonic()
    for _ in range(3):  # sans-I/O answers each ping with a pong
        frame = raw.next_frame()
        check(frame is not None and frame.opcode == OP_PING, f"expected a ping, got {frame}")
    elapsed = time.monotonic() - start
    check(0.3 < elapsed < 2.0, f"3 pings took {elapsed:.2f} s at a 150 ms interval")
    raw.send(client_frame(OP_TEXT, b"still here"))
    raw.expect_text(b"still here")
    raw.close()


async def pong_keeps_alive():
    # the asyncio client answers pings; silence for 1.2 s is 4 pong timeouts
    async with websockets.connect(url("/ws?ping_ms=100&pong_ms=300"), ping_interval=None) as ws:
        await asyncio.sleep(1.2)
        await ws.send("alive")
        check(await asyncio.wait_for(ws.recv(), TIMEOUT) == "alive", "no echo after pings")
    check(ws.close_code == 1000, f"close code {ws.close_code}")


def no_pong():
    raw = Raw("/ws?ping_ms=100&pong_ms=300")
    start = time.monotonic()
    frame = raw.next_frame(answer=False)
    check(frame is not None and frame.opcode == OP_PING, f"expected a ping, got {frame}")
    raw.expect_close(1011)
    elapsed = time.monotonic() - start
    check(0.25 < elapsed < 2.0, f"closed {elapsed:.2f} s after the ping, pong timeout 0.3 s")
    raw.close()


async def subprotocol():
    offers = ["secret.token-XYZ", "chat.v1"]
    async with websockets.connect(url("/ws?proto=chat.v1"), subprotocols=offers) as ws:
        check(ws.subprotocol == "chat.v1", f"subprotocol {ws.subprotocol}")
        await ws.send("hi")
        check(await ws.recv() == "hi", "echo")
    async with websockets.connect(url("/ws?proto=chat.v1"), subprotocols=["other"]) as ws:
        check(ws.subprotocol is None, f"subprotocol {ws.subprotocol} not offered")


async def close_code():
    async with websockets.connect(url("/ws"), ping_interval=None) as ws:
        await ws.close(code=4000, reason="bye")
    check(ws.close_code == 4000, f"echoed close code {ws.close_code}")


def close_empty():
    # a Close without a code (RFC 6455 §7.1.5: 1005) is echoed without one
    raw = Raw("/ws")
    raw.send(client_frame(OP_CLOSE, b""))
    raw.expect_close(1005)
    raw.close()


async def server_close():
    async with websockets.connect(url("/ws"), ping_interval=None) as ws:
        await ws.send("close:4001")
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            check(False, "message after the server's close")
        except websockets.ConnectionClosed:
            pass
    check(ws.close_code == 4001 and ws.close_reason == "bye", f"close {ws.close_code}")


async def oversize():
    async with websockets.connect(url("/ws?max=1024"), ping_interval=None) as ws:
        await ws.send("a" * 1024)
        check(await ws.recv() == "a" * 1024, "echo at the limit")
        await ws.send("b" * 1025)
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            check(False, "echo above the limit")
        except websockets.ConnectionClosedError:
            pass
    check(ws.close_code == 1009, f"close code {ws.close_code}")


async def binary():
    async with websockets.connect(url("/ws"), ping_interval=None) as ws:
        await ws.send(b"\x00\x01binary")
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            check(False, "echo of a binary message")
        except websockets.ConnectionClosedError:
            pass
    check(ws.close_code == 1003, f"close code {ws.close_code}")


def unmasked():
    raw = Raw("/ws")
    raw.send(client_frame(OP_TEXT, b"not masked", masked=False))
    raw.expect_close(1002)
    raw.close()


def invalid_utf8():
    raw = Raw("/ws")
    raw.send(client_frame(OP_TEXT, b"ok \xff\xfe"))
    raw.expect_close(1007)
    raw.close()
    raw = Raw("/ws")  # a surrogate (U+D800) and an overlong '/' are not UTF-8 either
    raw.send(client_frame(OP_TEXT, b"\xed\xa0\x80", fin=False))
    raw.send(client_frame(0x0, b"\xc0\xaf"))
    raw.expect_close(1007)
    raw.close()


def early():
    # a frame in the same segment as the handshake: evhttp has buffered it before the 101
    raw = Raw("/ws", early=client_frame(OP_TEXT, b"early bird"))
    raw.expect_text(b"early bird")
    raw.close()
    # accepted 200 ms after the handshake; the frame comes while the request waits
    sock = socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT)
    conn = ClientConnection(parse_uri(url("/ws?delay_ms=200")))
    conn.send_request(conn.connect())
    sock.sendall(b"".join(conn.data_to_send()))
    time.sleep(0.05)
    sock.sendall(client_frame(OP_TEXT, b"while waiting"))
    events = []
    while len(events) < 2:
        data = sock.recv(65536)
        check(data, "EOF before the echo")
        conn.receive_data(data)
        events += conn.events_received()
    check(events[0].status_code == 101, f"handshake {events[0]}")
    check(events[1].opcode == OP_TEXT and events[1].data == b"while waiting", f"{events[1]}")
    sock.close()


def vanish():
    raw = Raw("/ws")
    raw.send(client_frame(OP_TEXT, b"bye"))
    raw.expect_text(b"bye")
    raw.close()  # no Close frame: the server sees EOF


def reset():
    raw = Raw("/ws")
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # RST


def slow():
    # the server floods until max_pending (64 KiB) refuses; this client reads nothing for a
    # second, so the server's Close 1008, queued behind the flood, goes unanswered and the
    # closing deadline (pong_ms) drops the connection; what was sent still arrives in order
    raw = Raw("/ws?pending=65536&pong_ms=300", rcvbuf=4096)
    raw.send(client_frame(OP_TEXT, b"flood:100000"))
    time.sleep(1.0)
    texts = 0
    frame = raw.next_frame(answer=False)
    while frame is not None and frame.opcode == OP_TEXT:
        check(frame.data == b"f" * 1000, "flood message")
        texts += 1
        frame = raw.next_frame(answer=False)
    check(60 <= texts <= 66, f"{texts} flood messages for a 64 KiB cap")
    check(frame is not None and frame.opcode == OP_CLOSE, f"expected a Close, got {frame}")
    check(Close.parse(frame.data).code == 1008, f"{frame}")
    check(raw.next_frame(answer=False) is None and raw.eof, "no EOF after the Close")
    raw.close()


async def hold():
    # held open until the server is freed: each connection must get Close 1001
    wss = [await websockets.connect(url("/ws"), ping_interval=None) for _ in range(2)]
    for ws in wss:
        await ws.send("ready")
        check(await ws.recv() == "ready", "echo")
    for ws in wss:
        try:
            await asyncio.wait_for(ws.recv(), 15)
            check(False, "message instead of close")
        except websockets.ConnectionClosed:
            pass
        check(ws.close_code == 1001, f"close code {ws.close_code} at server shutdown")


SCENARIOS = {
    "echo": echo,
    "fragments": fragments,
    "ping": ping,
    "pong-keeps-alive": pong_keeps_alive,
    "no-pong": no_pong,
    "subprotocol": subprotocol,
    "close-code": close_code,
    "close-empty": close_empty,
    "server-close": server_close,
    "oversize": oversize,
    "binary": binary,
    "unmasked": unmasked,
    "invalid-utf8": invalid_utf8,
    "early": early,
    "vanish": vanish,
    "reset": reset,
    "slow": slow,
    "hold": hold,
}


def main():
    fn = SCENARIOS[sys.argv[2]]
    try:
        if asyncio.iscoroutinefunction(fn):
            asyncio.run(asyncio.wait_for(fn(), 20))
        else:
            fn()
    except Exception as exc:  # noqa: BLE001 - report any failure as the test's
        print(f"ws_client.py {sys.argv[2]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
