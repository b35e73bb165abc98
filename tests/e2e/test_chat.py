#!/usr/bin/env python3
"""End-to-end tests of chat (issue 12) on the real daemons, PostgreSQL and the event log
SP_E2E_BACKEND selects: rooms made and messages sent through the command API, read back
through GET /chat/rooms, /chat/rooms/{id} and /chat/rooms/{id}/messages (order by activity,
unread counts, 403 for a member who left), and GET /chat/stream over many rooms — on Kafka
their streams spread over the topic's partitions — live and resumed with Last-Event-ID
(every event once), and across `stockpot-replay rebuild pg`, which must give the same
checksum and send nothing twice."""

import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import social_checks as sc  # noqa: E402


class Chat(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = h.Cluster("chat")
        cls.c.start_all()
        cls.cp, cls.qp = cls.c.command_port, cls.c.query_port
        cls.u = {n: h.register_and_login(cls.cp, n) for n in ("alice", "bob", "carol", "dave")}
        cls.txn = 0

    @classmethod
    def tearDownClass(cls):
        cls.c.stop_all()

    def tok(self, n):
        return self.u[n]["access_token"]

    def uid(self, n):
        return self.u[n]["user_id"]

    # -- helpers
    def cmd(self, method, path, who, body=None, want=200):
        r = h.request(self.cp, method, path, body, token=self.tok(who))
        self.assertEqual(r.status, want, "%s %s: %r" % (method, path, r))
        return r.json()

    def room(self, who, others, title=None):
        body = {"is_group": title is not None, "member_ids": [self.uid(o) for o in others]}
        if title:
            body["title"] = title
        return self.cmd("POST", "/chat/rooms", who, body, want=201)

    def send(self, who, room, text):
        Chat.txn += 1
        return self.cmd("POST", "/chat/rooms/%s/messages" % room, who,
                        {"content": text, "txn_id": "e2e-%d" % Chat.txn}, want=201)

    def q(self, path, who, positions=(), want=200):
        """GET as who once the query API applied every position (each partition's furthest)."""
        self.assertEqual(h.wait_positions(self.qp, list(positions), deadline_s=60), [])
        r = h.request(self.qp, "GET", path, token=self.tok(who))
        self.assertEqual(r.status, want, "GET %s: %r" % (path, r))
        return r

    def sse_open(self, who, last=None):
        s = socket.create_connection(("127.0.0.1", self.qp), timeout=10)
        head = "GET /chat/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
        head += "Authorization: Bearer %s\r\n" % self.tok(who)
        if last:
            head += "Last-Event-ID: %s\r\n" % last
        s.sendall((head + "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            self.assertTrue(chunk, "stream closed before its headers: %r" % buf)
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        self.assertRegex(head.split(b"\r\n", 1)[0], rb"^HTTP/1\.1 200")
        # chunked transfer: the event blocks are read from the raw bytes, chunk sizes skipped
        return s, [rest]

    def sse_events(self, s, buf, n, timeout):
        """Read until n events (dicts: id, event, data) or timeout."""
        events = []
        deadline = time.monotonic() + timeout
        while len(events) < n:
            text = buf[0].replace(b"\r\n", b"\n")
            while b"\n\n" in text and len(events) < n:
                block, text = text.split(b"\n\n", 1)
                ev = {}
                for line in block.decode().split("\n"):
                    if line.startswith(("id: ", "event: ", "data: ")):
                        k, v = line.split(": ", 1)
                        ev[k] = v
                if "data" in ev:
                    ev["data"] = json.loads(ev["data"])
                    events.append(ev)
            buf[0] = text
            if len(events) >= n or time.monotonic() >= deadline:
                break
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf[0] += chunk
        return events

    # -- tests
    def test_01_rooms_and_messages(self):
        g = self.room("alice", ["bob", "carol"], "Soup club")
        d = self.room("alice", ["dave"])
        pos = [g["position"], d["position"]]
        for i in range(5):
            pos.append(self.send("bob" if i % 2 else "carol", g["room_id"], "group %d" % i)["position"])
        last = self.send("dave", d["room_id"], "direct ✓")
        pos.append(last["position"])
        rooms = self.q("/chat/rooms", "alice", pos).json()["items"]
        self.assertEqual([r["id"] for r in rooms], [d["room_id"], g["room_id"]])  # by activity
        self.assertEqual(rooms[0]["last_message"]["id"], last["message_id"])
        self.assertEqual(rooms[0]["unread_count"], 1)
        self.assertEqual(rooms[1]["unread_count"], 5)
        self.assertEqual(sorted(m["username"] for m in rooms[1]["members"]), ["alice", "bob", "carol"])
        r = self.q("/chat/rooms/%s" % g["room_id"], "alice")
        self.assertEqual(r.header("etag"), '"%d"' % (g["version"] + 5))
        msgs = self.q("/chat/rooms/%s/messages?limit=3" % g["room_id"], "bob").json()
        self.assertEqual([m["content"] for m in msgs["items"]], ["group 4", "group 3", "group 2"])
        self.assertIn('rel="next"', self.q("/chat/rooms/%s/messages?limit=3" % g["room_id"], "bob")
                      .header("link"))
        # read markers
        rd = self.cmd("POST", "/chat/rooms/%s/read" % g["room_id"], "alice", {"up_to_id": msgs["items"][0]["id"]})
        room = self.q("/chat/rooms/%s" % g["room_id"], "alice", [rd["position"]]).json()
        self.assertEqual(room["unread_count"], 0)
        # a member who left is a non-member from then on; dave never was one
        lv = self.cmd("DELETE", "/chat/rooms/%s/members/%s" % (g["room_id"], self.uid("carol")), "carol")
        self.q("/chat/rooms/%s" % g["room_id"], "carol", [lv["position"]], want=403)
        self.q("/chat/rooms/%s/messages" % g["room_id"], "dave", want=403)
        self.q("/chat/rooms/1234", "dave", want=404)

    def test_02_stream_many_rooms_and_rebuild(self):
        s, buf = self.sse_open("bob")
        self.assertEqual(self.sse_events(s, buf, 1, 0.5), [])  # nothing old
        want = []  # the positions bob must get, in each room's order
        rooms = []
        for i in range(8):
            r = self.room("alice", ["bob"], "room %d" % i)
            rooms.append(r["room_id"])
            want.append(r["position"])
        for k in range(4):
            for rid in rooms:
                want.append(self.send("alice", rid, "m%d" % k)["position"])
        got = self.sse_events(s, buf, len(want), 60)
        s.close()
        self.assertEqual(sorted(e["id"] for e in got), sorted(want), "live: every event once")
        if self.c.backend == "kafka":  # the rooms' streams are on several partitions
            self.assertGreater(len({e["id"].split(":")[0] for e in got}), 1)
        # per room, in the room's order
        for rid in rooms:
            seq = [int(e["id"].split(":")[1]) for e in got if e["data"]["conversation_id"] == rid]
            self.assertEqual(seq, sorted(seq))
        # resumed from the middle: exactly the rest
        half = len(got) // 2
        s, buf = self.sse_open("bob", last=got[half - 1]["id"])
        rest = self.sse_events(s, buf, len(want), 3)
        s.close()
        self.assertEqual([e["id"] for e in rest], [e["id"] for e in got[half:]])
        # a rebuild gives the same tables and keeps the stream's order: nothing again
        s, buf = self.sse_open("bob")
        sc.assert_rebuild_identical(self, self.c)
        m = self.send("alice", rooms[0], "after the rebuild")
        self.q("/chat/rooms", "bob", [m["position"]])  # the restarted projector has it
        after = self.sse_events(s, buf, 2, 5)
        s.close()
        self.assertEqual([e["id"] for e in after], [m["position"]])

    def test_99_clean_shutdown(self):
        h.assert_clean_shutdown(self, self.c)


if __name__ == "__main__":
    h.main()
