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
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import chat_base as cb  # noqa: E402
import social_checks as sc  # noqa: E402


class Chat(cb.ChatCase):
    CLUSTER = "chat"
    USERS = ("alice", "bob", "carol", "dave")

    # -- helpers
    def room(self, who, others, title=None):
        body = {"is_group": title is not None, "member_ids": [self.uid(o) for o in others]}
        if title:
            body["title"] = title
        return self.cmd("POST", "/chat/rooms", who, body, want=201)

    def send(self, who, room, text):
        type(self).txn += 1
        return self.cmd("POST", "/chat/rooms/%s/messages" % room, who,
                        {"content": text, "txn_id": "e2e-%d" % type(self).txn}, want=201)

    def q(self, path, who, positions=(), want=200):
        """GET as who once the query API applied every position (each partition's furthest)."""
        self.assertEqual(h.wait_positions(self.qp, list(positions), deadline_s=60), [])
        r = h.request(self.qp, "GET", path, token=self.tok(who))
        self.assertEqual(r.status, want, "GET %s: %r" % (path, r))
        return r

    def sse_open(self, who, last=None):
        return h.sse_open(self.qp, "/chat/stream", self.tok(who), last)

    def sse_events(self, s, buf, n, timeout):
        """Read until n events (dicts: id, event, data decoded) or timeout."""
        events = h.sse_events(s, buf, n, timeout)
        for ev in events:
            ev["data"] = json.loads(ev["data"])
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

    def test_03_direct_room_unique(self):
        """A 1:1 room is one per pair: in either order, and under concurrent creates."""
        import threading
        a = self.room("alice", ["carol"])
        b = self.cmd("POST", "/chat/rooms", "carol",
                     {"is_group": False, "member_ids": [self.uid("alice")]}, want=200)
        self.assertEqual(b["room_id"], a["room_id"])
        # bob and dave create their room at the same time, each from his side, many times
        out = []

        def create(who, other):
            r = h.request(self.cp, "POST", "/chat/rooms",
                          {"is_group": False, "member_ids": [self.uid(other)]}, token=self.tok(who))
            out.append((r.status, r.json().get("room_id")))

        ts = [threading.Thread(target=create, args=(("bob", "dave") if i % 2 else ("dave", "bob")))
              for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(sorted(st for st, _ in out), [200] * 7 + [201], out)
        self.assertEqual(len({rid for _, rid in out}), 1, out)
        dumped = [json.loads(l) for l in self.c.replay("dump").stdout.splitlines() if l.strip()]
        pairs = [frozenset(e["data"]["member_ids"]) for e in dumped
                 if e["type"] == "ConversationCreated" and not e["data"]["is_group"]]
        self.assertEqual(len(pairs), len(set(pairs)), "two direct rooms of one pair in the log")

    def test_04_removed_member_refused_everywhere(self):
        """A removed member (and a non-member) is refused on every room route, command and
        query side, and sees nothing more of the room on the stream."""
        g = self.room("alice", ["bob", "carol"], "Leavers")
        rid = g["room_id"]
        self.q("/chat/rooms", "carol", [g["position"]])  # the stream starts after the room
        s, buf = self.sse_open("carol")
        rm = self.cmd("DELETE", "/chat/rooms/%s/members/%s" % (rid, self.uid("carol")), "alice")
        after = self.send("bob", rid, "carol cannot see this")
        got = self.sse_events(s, buf, 5, 5)
        s.close()
        self.assertEqual([e["event"] for e in got], ["member_removed"], got)
        self.assertEqual(got[0]["id"], rm["position"])
        self.q("/chat/rooms", "carol", [after["position"]])
        for who in ("carol", "dave"):  # removed; never a member
            for method, path, body in (
                    ("POST", "/chat/rooms/%s/messages" % rid, {"content": "x", "txn_id": "no"}),
                    ("POST", "/chat/rooms/%s/read" % rid, {"up_to_id": after["message_id"]}),
                    ("POST", "/chat/rooms/%s/members" % rid, {"user_id": self.uid("dave")}),
                    ("PUT", "/chat/rooms/%s" % rid, {"title": "mine"}),
                    ("DELETE", "/chat/rooms/%s/members/%s" % (rid, self.uid("bob")), None)):
                r = h.request(self.cp, method, path, body, token=self.tok(who))
                self.assertEqual(r.status, 403, "%s %s as %s: %r" % (method, path, who, r))
                self.assertEqual(r.content_type, "application/problem+json")
            for path in ("/chat/rooms/%s" % rid, "/chat/rooms/%s/messages" % rid):
                self.q(path, who, want=403)
        rooms = self.q("/chat/rooms", "carol").json()["items"]
        self.assertNotIn(rid, [r["id"] for r in rooms])

    def test_05_txn_retry_and_paging(self):
        """A retried txn_id is one message; walking the pages while messages arrive gives
        every message once, in order."""
        g = self.room("alice", ["bob"], "Pages")
        rid = g["room_id"]
        first = self.cmd("POST", "/chat/rooms/%s/messages" % rid, "bob",
                         {"content": "once", "txn_id": "retry-me"}, want=201)
        again = self.cmd("POST", "/chat/rooms/%s/messages" % rid, "bob",
                         {"content": "once", "txn_id": "retry-me"}, want=201)
        self.assertEqual(again["message_id"], first["message_id"])
        sent = [first] + [self.send("alice", rid, "p%d" % i) for i in range(22)]
        path = "/chat/rooms/%s/messages?limit=7" % rid
        seen = []
        r = self.q(path, "bob", [sent[-1]["position"]])
        while True:
            page = r.json()
            seen += [m["id"] for m in page["items"]]
            if len(seen) == 7:  # messages sent while paging come above the first page
                self.send("alice", rid, "late")
            if "next_max_id" not in page:
                break
            self.assertIn('rel="next"', r.header("link"))
            r = self.q("%s&max_id=%s" % (path, page["next_max_id"]), "bob")
        self.assertEqual(seen, sorted([m["message_id"] for m in sent], key=int, reverse=True))

    def test_99_clean_shutdown(self):
        h.assert_clean_shutdown(self, self.c)


@h.lmdb_only("on Kafka (6 partitions) the rebuild's checksum of a loggen --chat load once "
             "differed from the live one (CI, 2026-12-08) while the rows social_checks "
             "compares were equal: some fold of this load depends on how partitions "
             "interleave; open until found (issue 12 note)")
class ChatLoad(unittest.TestCase):
    """A generated chat load (stockpot-loggen --chat: rooms, messages, read markers, joins,
    leaves among ~20,000 social events; 6,000 on Kafka) folded live: every room's version, members and
    unread counts equal a fold of the log itself, and a rebuild gives the same checksum."""

    @classmethod
    def setUpClass(cls):
        cls.c = h.Cluster("chatload")
        cls.c.migrate()
        # librdkafka's mock cluster keeps only the newest few megabytes of a partition: a
        # smaller load there, so that the command API can fold its log from offset 0
        events = "6000" if cls.c.backend == "kafka" else "20000"
        p = __import__("subprocess").run(
            [h.binary("stockpot-loggen"), "--events", events, "--recipes", h.sample_path(),
             "--chat", "300", "--seed", "5"], env=cls.c.env, capture_output=True, timeout=600)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        # "end" is each partition's next offset: wait for the last event of each
        cls.last = ["%s:%d" % (e.split(":")[0], int(e.split(":")[1]) - 1)
                    for e in json.loads(p.stdout)["end"] if int(e.split(":")[1]) > 0]
        cls.c.start_all()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop_all()

    def test_01_counters_and_rebuild(self):
        self.assertEqual(h.wait_positions(self.c.query_port, self.last, deadline_s=300), [])
        rooms = {}  # id -> {"version", "members": set, "msgs": [(id, sender)], "read": {}}
        names = {}
        for line in self.c.replay("dump").stdout.splitlines():
            e = json.loads(line)
            d = e["data"]
            if e["type"] == "UserRegistered":
                names[d["user_id"]] = d["username"]
            if not e["stream"].startswith("conversation-"):
                continue
            r = rooms.setdefault(d["conversation_id"], {"members": set(), "msgs": [], "read": {}})
            r["version"] = e["streamversion"]
            if e["type"] == "ConversationCreated":
                r["members"] |= set(d["member_ids"])
            elif e["type"] == "MemberAdded":  # history before one joined is not unread
                r["members"].add(d["user_id"])
                r["read"][d["user_id"]] = max([int(m) for m, _ in r["msgs"]] or [0])
            elif e["type"] == "MemberRemoved":
                r["members"].discard(d["user_id"])
            elif e["type"] == "MessageSent":
                r["msgs"].append((d["message_id"], d["sender_id"]))
            elif e["type"] == "MessagesRead":
                r["read"][d["user_id"]] = max(r["read"].get(d["user_id"], 0), int(d["up_to_id"]))
        self.assertGreater(len(rooms), 10)
        self.assertGreater(sum(len(r["msgs"]) for r in rooms.values()), 500)
        text = self.c.sql("SELECT c.id, c.version, coalesce((SELECT string_agg(m.user_id::text, ','"
                          " ORDER BY m.user_id) FROM stockpot.conversation_members m WHERE"
                          " m.conversation_id = c.id AND m.left_offset IS NULL), ''), (SELECT"
                          " count(*) FROM stockpot.messages x WHERE x.conversation_id = c.id)"
                          " FROM stockpot.conversations c")
        got = {row[0]: row for row in (line.split("|") for line in text.splitlines())}
        self.assertEqual(set(got), set(rooms))
        for rid, r in rooms.items():
            self.assertEqual(int(got[rid][1]), r["version"], "version of room %s" % rid)
            self.assertEqual(got[rid][2], ",".join(sorted(r["members"], key=int)), "members of %s" % rid)
            self.assertEqual(int(got[rid][3]), len(r["msgs"]), "messages of %s" % rid)
        # unread counts as GET /chat/rooms answers them, for members of the busiest rooms
        busiest = sorted(rooms, key=lambda k: -len(rooms[k]["msgs"]))[:4]
        checked = 0
        for uid in sorted({u for k in busiest for u in rooms[k]["members"]})[:6]:
            tok = h.request(self.c.command_port, "POST", "/auth/login",
                            {"username": names[uid], "password": "stockpot-loggen"}).json()["access_token"]
            mine = {}
            path = "/chat/rooms?limit=100"
            while path:
                page = h.request(self.c.query_port, "GET", path, token=tok).json()
                mine.update({x["id"]: x["unread_count"] for x in page["items"]})
                path = ("/chat/rooms?limit=100&max_id=%s" % page["next_max_id"]
                        if "next_max_id" in page else None)
            want = {k: sum(1 for m, snd in r["msgs"] if snd != uid and int(m) > r["read"].get(uid, 0))
                    for k, r in rooms.items() if uid in r["members"]}
            self.assertEqual(mine, want, "unread counts of user %s" % uid)
            checked += len(want)
        self.assertGreater(checked, 4)
        sc.assert_rebuild_identical(self, self.c)

    def test_99_clean_shutdown(self):
        h.assert_clean_shutdown(self, self.c)


if __name__ == "__main__":
    h.main()
