#!/usr/bin/env python3
"""End-to-end tests of the chat WebSocket (issue 12), /ws/chat/{room_id} on the query API,
with a client that is not ours: Debian's python3-websockets (run by /usr/bin/python3).
On the real daemons, PostgreSQL and the log SP_E2E_BACKEND selects: a member receives the
room's events as frames with their positions; sends over the WebSocket go through the
command API and are acknowledged, and a retried txn_id is one message; a connection resumes
after a position without loss or repeats; the token works in Sec-WebSocket-Protocol; a
non-member, a missing token and a bad resume position are refused before the upgrade; a
removed member gets the frame of their removal and then close code 4003; an oversized
message gets 1009, an unmasked frame 1002, and a bad frame an error frame."""

import asyncio
import base64
import json
import os
import socket
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import chat_base as cb  # noqa: E402

import websockets  # noqa: E402  (Debian: python3-websockets)

PROTOCOL = "stockpot.chat.v1"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


class ChatWebSocket(cb.ChatCase):
    CLUSTER = "chatws"
    USERS = ("ann", "ben", "cat", "dan")

    def group(self, who, others, title="ws room"):
        body = {"is_group": True, "title": title, "member_ids": [self.uid(o) for o in others]}
        room = self.cmd("POST", "/chat/rooms", who, body, want=201)
        # the query API must know the room (and its members) before a WebSocket opens on it
        self.assertEqual(h.wait_positions(self.qp, [room["position"]], deadline_s=60), [])
        return room

    def send_http(self, who, room, text):
        type(self).txn += 1
        return self.cmd("POST", "/chat/rooms/%s/messages" % room, who,
                        {"content": text, "txn_id": "http-%d" % type(self).txn}, want=201)

    def uri(self, room, after=None):
        u = "ws://127.0.0.1:%d/ws/chat/%s" % (self.qp, room)
        return u + ("?after=%s" % after if after else "")

    def connect(self, who, room, after=None, **kw):
        return websockets.connect(self.uri(room, after), subprotocols=[PROTOCOL, self.tok(who)],
                                  open_timeout=20, **kw)

    async def frames(self, ws, n, timeout=20):
        """Up to n frames (decoded), until timeout passes with nothing more or it closes."""
        out = []
        try:
            while len(out) < n:
                out.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
        except (asyncio.TimeoutError, websockets.exceptions.ConnectionClosed):
            pass
        return out

    # -- tests
    def test_01_receive_send_retry(self):
        room = self.group("ann", ["ben"])["room_id"]

        async def go():
            async with self.connect("ann", room) as ws:
                self.assertEqual(ws.subprotocol, PROTOCOL)
                sent = self.send_http("ben", room, "hello over http")
                got = await self.frames(ws, 1)
                self.assertEqual(len(got), 1, got)
                self.assertEqual(got[0]["type"], "message")
                self.assertEqual(got[0]["position"], sent["position"])
                self.assertEqual(got[0]["data"]["content"], "hello over http")
                self.assertEqual(got[0]["data"]["id"], sent["message_id"])
                # a send, then the same txn_id again: one message, the same answer
                await ws.send(json.dumps({"type": "send", "content": "hi ✓", "txn_id": "ws-1"}))
                acks = []
                echoes = []
                while len(acks) < 1 or len(echoes) < 1:
                    f = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    (acks if f["type"] == "ack" else echoes).append(f)
                self.assertEqual(acks[0]["txn_id"], "ws-1")
                self.assertEqual(acks[0]["status"], 201)
                mid = acks[0]["message"]["message_id"]
                self.assertEqual(echoes[0]["type"], "message")
                self.assertEqual(echoes[0]["data"]["id"], mid)
                self.assertEqual(echoes[0]["data"]["content"], "hi ✓")
                await ws.send(json.dumps({"type": "send", "content": "hi ✓", "txn_id": "ws-1"}))
                again = json.loads(await asyncio.wait_for(ws.recv(), 20))
                self.assertEqual(again["type"], "ack", again)
                self.assertEqual(again["message"]["message_id"], mid)
                self.assertEqual(await self.frames(ws, 1, 1.0), [], "a retry sends nothing new")
                # frames the command refuses come back as error frames; the connection stays
                await ws.send(json.dumps({"type": "send", "content": "", "txn_id": "ws-2"}))
                err = json.loads(await asyncio.wait_for(ws.recv(), 20))
                self.assertEqual((err["type"], err["status"], err["txn_id"]), ("error", 400, "ws-2"))
                self.assertIn("content", [e["field"] for e in err["problem"]["errors"]])
                await ws.send("not json")
                err = json.loads(await asyncio.wait_for(ws.recv(), 20))
                self.assertEqual((err["type"], err["status"]), ("error", 400))
                await ws.send(json.dumps({"type": "typing"}))
                err = json.loads(await asyncio.wait_for(ws.recv(), 20))
                self.assertEqual((err["type"], err["status"]), ("error", 400))
                await ws.send(json.dumps({"type": "send", "content": "still here", "txn_id": "ws-3"}))
                f = json.loads(await asyncio.wait_for(ws.recv(), 20))
                self.assertIn(f["type"], ("ack", "message"))
            return mid

        mid = run(go())
        page = h.request(self.qp, "GET", "/chat/rooms/%s/messages" % room, token=self.tok("ben"))
        ids = [m["id"] for m in page.json()["items"]]
        self.assertEqual(ids.count(mid), 1)

    def test_02_resume_after_position(self):
        room = self.group("ann", ["cat"])["room_id"]
        sent = [self.send_http("cat", room, "m%d" % i) for i in range(6)]
        self.assertEqual(h.wait_positions(self.qp, [sent[-1]["position"]], deadline_s=60), [])

        async def go():
            async with self.connect("ann", room, after=sent[2]["position"]) as ws:
                got = await self.frames(ws, 10, 2.0)
            self.assertEqual([f["position"] for f in got], [s["position"] for s in sent[3:]])
            # Last-Event-ID works too, and the token in the Authorization header
            async with websockets.connect(
                    self.uri(room), open_timeout=20,
                    extra_headers={"Authorization": "Bearer " + self.tok("ann"),
                                   "Last-Event-ID": sent[4]["position"]}) as ws:
                self.assertIsNone(ws.subprotocol)
                got = await self.frames(ws, 10, 2.0)
            self.assertEqual([f["position"] for f in got], [sent[5]["position"]])
            # the token alone as the subprotocol (as Mastodon's streaming API): echoed
            async with websockets.connect(self.uri(room), subprotocols=[self.tok("ann")],
                                          open_timeout=20) as ws:
                self.assertEqual(ws.subprotocol, self.tok("ann"))

        run(go())

    def test_03_refused_before_upgrade(self):
        room = self.group("ann", ["ben"])["room_id"]

        async def status_of(coro):
            try:
                async with coro:
                    return 101
            except websockets.exceptions.InvalidStatusCode as e:
                return e.status_code

        async def go():
            self.assertEqual(await status_of(self.connect("dan", room)), 403)
            self.assertEqual(await status_of(self.connect("dan", "1234567")), 404)
            self.assertEqual(await status_of(websockets.connect(self.uri(room), open_timeout=20)), 401)
            self.assertEqual(await status_of(websockets.connect(
                self.uri(room), subprotocols=[PROTOCOL, "a.b.c"], open_timeout=20)), 401)
            self.assertEqual(await status_of(self.connect("ann", room, after="x")), 400)

        run(go())

    def test_04_removed_member_closed(self):
        room = self.group("ann", ["ben", "cat"])["room_id"]

        async def go():
            async with self.connect("cat", room) as ws:
                self.cmd("DELETE", "/chat/rooms/%s/members/%s" % (room, self.uid("cat")), "ann")
                got = await self.frames(ws, 5, 5.0)
                self.assertEqual(got[-1]["type"], "member_removed", got)
                self.assertEqual(got[-1]["data"]["user_id"], self.uid("cat"))
                await asyncio.wait_for(ws.wait_closed(), 20)
                self.assertEqual(ws.close_code, 4003)
            self.send_http("ann", room, "after cat left")
            try:
                async with self.connect("cat", room):
                    self.fail("a removed member opened the room")
            except websockets.exceptions.InvalidStatusCode as e:
                self.assertEqual(e.status_code, 403)

        run(go())

    def test_05_framing_refused(self):
        room = self.group("ann", ["ben"])["room_id"]

        async def oversized():
            async with self.connect("ann", room, max_size=None) as ws:
                await ws.send("x" * (70 * 1024))
                await asyncio.wait_for(ws.wait_closed(), 20)
                return ws.close_code

        self.assertEqual(run(oversized()), 1009)
        # an unmasked client frame, on a raw socket: 1002 (RFC 6455 §5.1)
        s = socket.create_connection(("127.0.0.1", self.qp), timeout=20)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /ws/chat/%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % (room, key, self.tok("ann"))).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        self.assertTrue(buf.startswith(b"HTTP/1.1 101"), buf)
        rest = buf.split(b"\r\n\r\n", 1)[1]
        s.sendall(b"\x81\x05hello")
        while len(rest) < 4:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        s.close()
        self.assertEqual(rest[0], 0x88, rest)  # a Close frame
        self.assertEqual(struct.unpack("!H", rest[2:4])[0], 1002)

    def test_99_clean_shutdown(self):
        h.assert_clean_shutdown(self, self.c)


if __name__ == "__main__":
    h.main()
