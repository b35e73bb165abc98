#!/usr/bin/python3
"""Chat benchmark driver (tests/bench/run-chat-bench.sh runs it against a throwaway stack).

Phases, each printing its figures:
  setup    registers --users users through the command API, logs them in and pairs them
           into direct rooms (user 2k with user 2k+1); writes the wrk script of the HTTP
           phase (--wrk-lua) with a token and the rooms of one sender per connection.
  ws-send  messages/s sent over WebSockets: --ws-senders connections, each keeping
           --window sends in flight ({"type":"send"} frames, acknowledged by the query API
           once the command API answered), for --duration-s seconds.
  latency  with --users WebSockets open (one per user, on its room) and --sse users also on
           GET /chat/stream: messages sent over HTTP at --rate per second for --duration-s;
           for each, the time from its 201 answer to the frame at the other member's
           WebSocket and to the event on their event stream: p50/p99/max. Also the query
           API's RSS with every WebSocket open (--query-pid).
The client is one asyncio process sharing the machine's cores with the daemons, so its
own scheduling delays are part of every latency figure.

Runs under Debian's /usr/bin/python3 (python3-websockets)."""

import argparse
import asyncio
import json
import os
import random
import sys
import time

import websockets

PROTOCOL = "stockpot.chat.v1"


class Http:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams (Content-Length bodies)."""

    def __init__(self, port):
        self.port = port
        self.r = self.w = None

    async def call(self, method, path, body=None, token=None, after=None):
        if self.w is None:
            self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
        data = json.dumps(body).encode() if body is not None else b""
        head = "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % (method, path)
        if token:
            head += "Authorization: Bearer %s\r\n" % token
        if after:
            head += "Stockpot-After: %s\r\n" % after
        head += "Content-Length: %d\r\n\r\n" % len(data)
        self.w.write(head.encode() + data)
        status = int((await self.r.readline()).split()[1])
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v)
        payload = await self.r.readexactly(length) if length else b""
        return status, (json.loads(payload) if payload else None)


def pct(xs, f):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(f * len(xs)))] if xs else float("nan")


def metric(port, name):
    """The value of metric @name (no labels) in the query API's /metrics, or -1."""
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1.0


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def setup(a):
    conns = [Http(a.command_port) for _ in range(8)]
    users = [None] * a.users

    async def worker(k):
        for i in range(k, a.users, len(conns)):
            name = "chat%d" % i
            st, js = await conns[k].call("POST", "/auth/register", {
                "username": name, "email": name + "@example.org", "password": "chat bench pw"})
            assert st == 201, (st, js)
            st, js = await conns[k].call("POST", "/auth/login", {"username": name, "password": "chat bench pw"})
            assert st == 200, (st, js)
            users[i] = {"id": js["user_id"], "token": js["access_token"]}

    t0 = time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(len(conns))))
    t1 = time.monotonic()
    rooms = [None] * (a.users // 2)

    async def pair(k):
        for p in range(k, len(rooms), len(conns)):
            st, js = await conns[k].call("POST", "/chat/rooms", {
                "is_group": False, "member_ids": [users[2 * p + 1]["id"]]}, users[2 * p]["token"])
            assert st == 201, (st, js)
            rooms[p] = js

    await asyncio.gather(*(pair(k) for k in range(len(conns))))
    for c in conns:
        c.w.close()
    print("setup: %d users registered and logged in in %.1f s, %d direct rooms in %.1f s"
          % (a.users, t1 - t0, len(rooms), time.monotonic() - t1))
    # the wrk script: connection i sends as user 2i to room i (its own room)
    if a.wrk_lua:
        senders = ",\n  ".join('{token="%s", room="%s"}' % (users[2 * p]["token"], rooms[p]["room_id"])
                                for p in range(min(256, len(rooms))))
        with open(a.wrk_lua, "w") as f:
            f.write(WRK_LUA.replace("@SENDERS@", "{\n  " + senders + "\n}"))
    return users, rooms


WRK_LUA = r"""-- generated by bench-chat.py: requests go round the senders (each its own direct
-- room), each with a fresh txn_id (a repeated one would be a cheap no-op)
local senders = @SENDERS@
local counter = 0
tid = 0 -- global: setup() gives each thread its own
function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
end
function request()
  counter = counter + 1
  local s = senders[(counter % #senders) + 1]
  local body = '{"content":"wrk message ' .. counter .. '","txn_id":"wrk-' .. tid .. '-' .. counter .. '"}'
  return wrk.format("POST", "/chat/rooms/" .. s.room .. "/messages",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. s.token}, body)
end
"""


def connect(a, user, room):
    return websockets.connect("ws://127.0.0.1:%d/ws/chat/%s" % (a.query_port, room),
                              subprotocols=[PROTOCOL, user["token"]], open_timeout=60,
                              ping_interval=None, max_queue=None)


async def ws_send(a, users, rooms):
    done = 0
    errors = 0
    stop = time.monotonic() + a.duration_s

    async def sender(p):
        nonlocal done, errors
        u, room = users[2 * p], rooms[p]["room_id"]
        async with connect(a, u, room) as ws:
            inflight = 0
            seq = 0
            while time.monotonic() < stop or inflight > 0:
                while inflight < a.window and time.monotonic() < stop:
                    seq += 1
                    await ws.send(json.dumps({"type": "send", "content": "ws message %d" % seq,
                                              "txn_id": "ws-%d-%d" % (p, seq)}))
                    inflight += 1
                f = json.loads(await ws.recv())
                if f["type"] == "ack":
                    inflight -= 1
                    done += 1
                elif f["type"] == "error":
                    inflight -= 1
                    errors += 1

    t0 = time.monotonic()
    await asyncio.gather(*(sender(p) for p in range(min(a.ws_senders, len(rooms)))))
    secs = time.monotonic() - t0
    print("ws-send: %d messages acknowledged in %.1f s over %d WebSockets (window %d): %.0f messages/s, "
          "%d errors" % (done, secs, min(a.ws_senders, len(rooms)), a.window, done / secs, errors))


class SseReader:
    """GET /chat/stream of one user: calls on_event(position) for each event."""

    def __init__(self, a, user, on_event):
        self.a, self.user, self.on_event = a, user, on_event

    async def run(self, ready):
        r, w = await asyncio.open_connection("127.0.0.1", self.a.query_port, limit=1 << 20)
        w.write(("GET /chat/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                 "Authorization: Bearer %s\r\n\r\n" % self.user["token"]).encode())
        while (await r.readline()) not in (b"\r\n", b""):
            pass
        ready.set()
        while True:
            line = await r.readline()
            if not line:
                return
            if line.startswith(b"id: "):
                self.on_event(line[4:].strip().decode(), time.monotonic())


async def latency(a, users, rooms, pid):
    arrived_ws, arrived_sse = {}, {}
    opened = 0
    socks = []

    async def holder(i):
        nonlocal opened
        p = i // 2
        ws = await connect(a, users[i], rooms[p]["room_id"])
        socks.append(ws)
        opened += 1
        async for msg in ws:
            f = json.loads(msg)
            if f["type"] == "message" and f["data"]["sender_id"] != users[i]["id"]:
                arrived_ws.setdefault(f["position"], time.monotonic())

    t0 = time.monotonic()
    tasks = []
    for i in range(len(rooms) * 2):
        tasks.append(asyncio.ensure_future(holder(i)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    while opened < len(tasks):
        await asyncio.sleep(0.1)
        if time.monotonic() - t0 > 120:
            raise SystemExit("latency: only %d of %d WebSockets opened in 120 s" % (opened, len(tasks)))
    print("latency: %d WebSockets open in %.1f s; query-api RSS %.1f MiB" % (
        opened, time.monotonic() - t0, rss_kib(pid) / 1024.0 if pid else float("nan")))
    # event streams of the receivers of the first --sse rooms
    sse_users = [users[2 * p + 1] for p in range(min(a.sse, len(rooms)))]
    for u in sse_users:
        ev = asyncio.Event()
        rd = SseReader(a, u, lambda pos, t: arrived_sse.setdefault(pos, t))
        tasks.append(asyncio.ensure_future(rd.run(ev)))
        await asyncio.wait_for(ev.wait(), 30)
    await asyncio.sleep(0.5)
    # sends over HTTP at --rate, from the first member of a random room (rooms with an SSE
    # reader get every tenth send, so both figures have samples)
    http = [Http(a.command_port) for _ in range(16)]
    reads = [Http(a.query_port) for _ in range(8)]
    visible = []  # ms from a 201 to GET .../messages with Stockpot-After answering
    acked = {}  # position -> (ack time, room index)
    sent = 0
    stop = time.monotonic() + a.duration_s
    interval = 1.0 / a.rate

    async def one(k, p, seq):
        st, js = await http[k].call("POST", "/chat/rooms/%s/messages" % rooms[p]["room_id"],
                                    {"content": "latency %d" % seq, "txn_id": "lat-%d" % seq},
                                    users[2 * p]["token"])
        if st == 201:
            t = time.monotonic()
            acked[js["position"]] = (t, p)
            if seq % 10 == 5:  # the read model's own freshness, for comparison
                st, _ = await reads[(seq // 10) % len(reads)].call(
                    "GET", "/chat/rooms/%s/messages?limit=1" % rooms[p]["room_id"],
                    token=users[2 * p]["token"], after=js["position"])
                if st == 200:
                    visible.append((time.monotonic() - t) * 1000)

    busy = [None] * len(http)
    polls0, t_polls = metric(a.query_port, "stockpot_query_chat_polls_total"), time.monotonic()
    nxt = time.monotonic()
    while time.monotonic() < stop:
        k = sent % len(http)
        if busy[k] is not None and not busy[k].done():
            await busy[k]
        p = random.randrange(min(a.sse, len(rooms))) if sent % 10 == 0 else random.randrange(len(rooms))
        busy[k] = asyncio.ensure_future(one(k, p, sent))
        sent += 1
        nxt += interval
        await asyncio.sleep(max(0, nxt - time.monotonic()))
    await asyncio.gather(*(b for b in busy if b is not None))
    polls = (metric(a.query_port, "stockpot_query_chat_polls_total") - polls0) / (time.monotonic() - t_polls)
    await asyncio.sleep(2.0)
    rss = rss_kib(pid) if pid else -1
    lat_ws = [(arrived_ws[pos] - t) * 1000 for pos, (t, p) in acked.items() if pos in arrived_ws]
    lat_sse = [(arrived_sse[pos] - t) * 1000 for pos, (t, p) in acked.items()
               if pos in arrived_sse and p < a.sse]
    want_sse = sum(1 for _, p in acked.values() if p < a.sse)
    print("latency: %d messages over HTTP at %d/s for %d s; the chat streams' poll queries: %.0f/s"
          % (len(acked), a.rate, a.duration_s, polls))
    for name, xs, want in (("WebSocket", lat_ws, len(acked)), ("event stream", lat_sse, want_sse)):
        print("  ack -> %-12s frame: n=%d of %d, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
              % (name, len(xs), want, pct(xs, 0.5), pct(xs, 0.99), max(xs) if xs else float("nan")))
    print("  ack -> visible in GET .../messages with Stockpot-After: n=%d, p50 %.1f ms, p99 %.1f ms"
          % (len(visible), pct(visible, 0.5), pct(visible, 0.99)))
    print("  query-api RSS with %d WebSockets and %d event streams open: %.1f MiB"
          % (opened, len(sse_users), rss / 1024.0))
    for ws in socks:
        await ws.close()
    for t in tasks:
        t.cancel()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--command-port", type=int, required=True)
    ap.add_argument("--query-port", type=int, required=True)
    ap.add_argument("--query-pid", type=int, default=0)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--phase", choices=["setup", "all"], default="all")
    ap.add_argument("--state", help="JSON file of users and rooms (written by setup, read by the rest)")
    ap.add_argument("--wrk-lua")
    ap.add_argument("--ws-senders", type=int, default=32)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--sse", type=int, default=50)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--duration-s", type=int, default=10)
    a = ap.parse_args()
    if a.phase == "setup":
        users, rooms = await setup(a)
        with open(a.state, "w") as f:
            json.dump({"users": users, "rooms": rooms}, f)
        return
    with open(a.state) as f:
        st = json.load(f)
    await ws_send(a, st["users"], st["rooms"])
    await latency(a, st["users"], st["rooms"], a.query_pid)


if __name__ == "__main__":
    asyncio.run(main())
