#!/usr/bin/env python3
"""Stockpot social-graph generator (issue 4): deterministic from --seed, Python 3 stdlib.

Through the HTTP write API only (command-api), over several keep-alive connections:
  1. registers --users users (Idempotency-Key per user) and logs each in;
  2. spreads the sample recipes (--data, JSONL) over authors with a Zipf distribution
     and creates them (POST /recipes, Idempotency-Key per recipe);
  3. builds a power-law follow graph: out-degrees from a Pareto distribution (mean
     --follows), followees drawn by Zipf popularity; then unfollows --unfollow-frac;
  4. likes (Zipf over recipes, likers uniform) and unlikes --unlike-frac of them;
  5. comments (Zipf over recipes) and deletes --delete-frac of them;
then prints the counts and waits until the query API (--query) has applied the last
position of each partition (GET with Stockpot-After on each partition's furthest token).

Simulated days (--start DATE --days D; off by default, then every event carries the time
it was appended): every request carries Stockpot-Dev-Time (command-api honours it in
mode = dev only, README "HTTP API"), so the run's events span [DATE, DATE + D days).
Registrations are spread over the whole period with exponential user growth (signups per
day grow e^GROWTH-fold from the first day to the last, so signup cohorts span the weeks
of a long period), the busiest and most followed users signing up first. Each user logs
in within LOGIN_DELAY_S of registering; every later action comes an exponentially
distributed delay (mean ACTIVITY of the period, cut at its end) after its latest cause:
the user's login, and the followee's registration for a follow, the recipe's creation for
a like or comment, the follow, like or comment an unfollow, unlike or deletion undoes. So
each user's events come after their registration and engagement fades after signup.
The requests still go phase by phase (all registrations, then logins, ...), so the log is
not in time order; analytics must read the envelope time, not the log order.

The set of operations, and with --start their times, is a function of the seed and the
options alone; only the order in which the connections interleave varies. Cheap argon2
for large loads is the daemons' configuration (STOCKPOT_ARGON2_*), not the generator's
business.

usage: gen-social.py [--command URL] [--query URL] [--users N] [--seed S]
                     [--start DATE --days D] ...  (--help)
Exit status: 0 all requests answered as expected, 1 otherwise, 2 bad arguments.
"""

import argparse
import datetime
import http.client
import json
import math
import queue
import random
import sys
import threading
import time
import urllib.parse

PASSWORD = "gen-social password"
DEV_TIME = "Stockpot-Dev-Time"  # command-api request header (mode = dev)
GROWTH = 1.0  # --start: signups per day grow e^GROWTH-fold (about 2.7x) over the period
ACTIVITY = 0.1  # --start: mean delay of an action after its cause, as a fraction of the period
LOGIN_DELAY_S = 300  # --start: a user logs in at most this long after registering
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Generate a social graph through the Stockpot write API.")
    ap.add_argument("--command", default="http://127.0.0.1:8080", help="command-api base URL")
    ap.add_argument("--query", default="http://127.0.0.1:8081", help="query-api base URL (for the final wait)")
    ap.add_argument("--data", default=None, help="recipes JSONL (default deploy/data/sample.jsonl)")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--recipes", type=int, default=0, help="use only the first N recipes (0: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prefix", default=None, help="username prefix (default g<seed>_)")
    ap.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent s (weight 1/rank^s)")
    ap.add_argument("--follows", type=float, default=10.0, help="mean follows per user")
    ap.add_argument("--likes", type=float, default=5.0, help="likes per user (before dedup)")
    ap.add_argument("--comments", type=float, default=1.0, help="comments per user")
    ap.add_argument("--unfollow-frac", type=float, default=0.05)
    ap.add_argument("--unlike-frac", type=float, default=0.05)
    ap.add_argument("--delete-frac", type=float, default=0.05)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--wait-s", type=float, default=300.0, help="longest final wait for the query API")
    ap.add_argument("--json", action="store_true", help="print the counts as one JSON line on stdout")
    ap.add_argument("--start", metavar="DATE", default=None,
                    help="with --days: stamp every request (Stockpot-Dev-Time; command-api in mode = dev) so "
                    "the run's events span [DATE, DATE + D days); DATE is YYYY-MM-DD (midnight UTC) or an "
                    "RFC 3339 time such as 2026-11-03T10:15:00Z")
    ap.add_argument("--days", metavar="D", type=float, default=None,
                    help="length of the simulated period in days (with --start)")
    a = ap.parse_args(argv)
    if a.users < 2 or a.connections < 1 or a.zipf <= 0:
        ap.error("need --users >= 2, --connections >= 1, --zipf > 0")
    if (a.start is None) != (a.days is None):
        ap.error("--start and --days go together")
    a.start_us = None
    if a.start is not None:
        if not a.days > 0:
            ap.error("--days must be > 0")
        try:
            a.start_us = parse_time(a.start)
        except ValueError as e:
            ap.error("--start %r: %s" % (a.start, e))
    if a.prefix is None:
        a.prefix = "g%d_" % a.seed
    if a.data is None:
        import os
        a.data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "sample.jsonl")
    return a


def parse_time(text):
    """YYYY-MM-DD (midnight UTC) or an RFC 3339 / ISO 8601 time -> µs since the epoch (UTC)."""
    t = text.strip()
    if t[-1:] in ("Z", "z"):
        t = t[:-1] + "+00:00"
    d = datetime.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    us = (d - EPOCH) // datetime.timedelta(microseconds=1)
    if us < 0:
        raise ValueError("before 1970")
    return us


def rfc3339(us):
    """µs since the epoch -> RFC 3339 UTC with microseconds, as the event envelope writes it."""
    return (EPOCH + datetime.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------- HTTP


class Conn:
    """One keep-alive HTTP/1.1 connection; reconnects once if the server closed it."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.conn = None

    def request(self, method, path, body=None, token=None, headers=None):
        hdrs = {}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        if token:
            hdrs["Authorization"] = "Bearer " + token
        if headers:
            hdrs.update(headers)
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                payload = r.read()
                if r.will_close:
                    self.close()
                try:
                    js = json.loads(payload.decode("utf-8")) if payload else None
                except ValueError:
                    js = None
                return r.status, js, r.getheader("Stockpot-Position")
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Runner:
    """Runs a list of jobs over N connections; records positions and failures."""

    def __init__(self, url, n):
        self.url, self.n = url, n
        self.lock = threading.Lock()
        self.positions = []
        self.failures = []

    def run(self, jobs):
        """jobs: list of fn(conn) -> (ok, detail, position or None, result). Returns results in order."""
        results = [None] * len(jobs)
        q = queue.Queue()
        for i, j in enumerate(jobs):
            q.put((i, j))

        def worker():
            c = Conn(self.url)
            try:
                while True:
                    try:
                        i, j = q.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        ok, detail, pos, res = j(c)
                    except Exception as e:  # noqa: BLE001 - report every failure
                        ok, detail, pos, res = False, repr(e), None, None
                    with self.lock:
                        if pos:
                            self.positions.append(pos)
                        if not ok:
                            self.failures.append(detail)
                    results[i] = res
            finally:
                c.close()

        ts = [threading.Thread(target=worker) for _ in range(min(self.n, max(1, len(jobs))))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return results


def answer(status, js, pos, want, what):
    ok = status in want
    if js and isinstance(js, dict) and not pos:
        pos = js.get("position")
    return ok, "%s -> %d %s" % (what, status, json.dumps(js)[:300]), pos


# ---------------------------------------------------------------------------- plan


def zipf_weights(n, s):
    return [1.0 / (r ** s) for r in range(1, n + 1)]


class Zipf:
    """Draws items of a list with Zipf probability over a seeded random rank order."""

    def __init__(self, rnd, items, s):
        self.items = list(items)
        rnd.shuffle(self.items)
        w = zipf_weights(len(self.items), s)
        self.cum = []
        t = 0.0
        for x in w:
            t += x
            self.cum.append(t)

    def draw(self, rnd):
        import bisect
        return self.items[bisect.bisect_left(self.cum, rnd.random() * self.cum[-1])]


def make_plan(a, recipes):
    rnd = random.Random(a.seed)
    n = a.users
    users = list(range(n))
    authors = Zipf(rnd, users, a.zipf)
    recipe_author = [authors.draw(rnd) for _ in recipes]
    popular = Zipf(rnd, users, a.zipf)
    follows = []
    seen = set()
    for u in users:
        # Pareto out-degree with mean a.follows (alpha 2 -> mean 2 * xm)
        k = min(n - 1, int(rnd.paretovariate(2.0) * a.follows / 2.0))
        tries = 0
        mine = 0
        while mine < k and tries < 4 * k + 10:
            tries += 1
            v = popular.draw(rnd)
            if v == u or (u, v) in seen:
                continue
            seen.add((u, v))
            follows.append((u, v))
            mine += 1
    unfollows = rnd.sample(follows, int(len(follows) * a.unfollow_frac))
    hot = Zipf(rnd, range(len(recipes)), a.zipf)
    likes, lseen = [], set()
    for _ in range(int(n * a.likes)):
        p = (rnd.randrange(n), hot.draw(rnd))
        if p not in lseen:
            lseen.add(p)
            likes.append(p)
    unlikes = rnd.sample(likes, int(len(likes) * a.unlike_frac))
    comments = []
    for i in range(int(n * a.comments)):
        comments.append((rnd.randrange(n), hot.draw(rnd), "Comment %d of seed %d: lovely, 很好吃 ☕" % (i, a.seed)))
    deletes = sorted(rnd.sample(range(len(comments)), int(len(comments) * a.delete_frac)))
    return recipe_author, follows, unfollows, likes, unlikes, comments, deletes


class Timeline:
    """--start/--days: the simulated time (µs since the epoch, in [start, end)) of every
    planned operation, keyed as the plan names it (user index, recipe index, (follower,
    followee), (user, recipe), comment tuple). Drawn from a random stream of its own, so the
    plan is the same with or without it. See the module docstring for the model."""

    def __init__(self, a, plan):
        recipe_author, follows, unfollows, likes, unlikes, comments, deletes = plan
        rnd = random.Random("gen-social-time-%d" % a.seed)
        self.start = a.start_us
        self.end = a.start_us + int(a.days * 86400e6)
        span = self.end - self.start
        self.mean = max(1.0, ACTIVITY * span)
        # signup order: the busiest and most followed users first (early adopters); the many
        # late signups are light users, so their few actions crowd the last days little
        weight = [0] * a.users
        for u, v in follows:
            weight[u] += 1
            weight[v] += 1
        for u in recipe_author:
            weight[u] += 1
        for u, _ in likes:
            weight[u] += 1
        for c in comments:
            weight[c[0]] += 1
        tie = [rnd.random() for _ in range(a.users)]
        order = sorted(range(a.users), key=lambda u: (-weight[u], tie[u]))
        # the k-th signup at quantile (k + jitter) / n of exponential growth over the period
        self.reg = [0] * a.users
        for k, u in enumerate(order):
            q = (k + rnd.random()) / a.users
            self.reg[u] = self.start + int(span * math.log1p(math.expm1(GROWTH) * q) / GROWTH)
        self.login = [t + int(rnd.random() * min(LOGIN_DELAY_S * 1000000, self.end - t)) for t in self.reg]
        self.recipe = [self.after(rnd, self.login[u]) for u in recipe_author]
        self.follow = {(u, v): self.after(rnd, max(self.login[u], self.reg[v])) for u, v in follows}
        self.unfollow = {p: self.after(rnd, self.follow[p]) for p in unfollows}
        self.like = {(u, i): self.after(rnd, max(self.login[u], self.recipe[i])) for u, i in likes}
        self.unlike = {p: self.after(rnd, self.like[p]) for p in unlikes}
        self.comment = {c: self.after(rnd, max(self.login[c[0]], self.recipe[c[1]])) for c in comments}
        self.uncomment = {comments[k]: self.after(rnd, self.comment[comments[k]]) for k in deletes}

    def after(self, rnd, lo):
        """A time in [lo, end): lo plus an exponential delay (mean: ACTIVITY of the period)
        truncated at the end of the period (inverse CDF)."""
        w = self.end - lo
        if w <= 1:
            return lo
        x = -self.mean * math.log(1.0 - rnd.random() * (1.0 - math.exp(-w / self.mean)))
        return lo + min(int(x), w - 1)


def at(tl, table, key):
    """Stockpot-Dev-Time headers for the operation @key of Timeline table @table, or None."""
    return {DEV_TIME: rfc3339(getattr(tl, table)[key])} if tl else None


# ---------------------------------------------------------------------------- phases


def recipe_body(rec):
    body = {"title": rec["title"], "ingredients": rec["ingredients"], "steps": rec["steps"],
            "tags": rec.get("tags") or []}
    if rec.get("description"):
        body["description"] = rec["description"]
    return body


def phase(name, runner, jobs):
    t0 = time.monotonic()
    res = runner.run(jobs)
    dt = time.monotonic() - t0
    sys.stderr.write("gen-social: %-10s %6d requests in %6.1f s (%.0f/s)\n"
                     % (name, len(jobs), dt, len(jobs) / dt if dt > 0 else 0))
    return res


def register_jobs(a, tl):
    def job(i):
        def f(c):
            name = "%s%d" % (a.prefix, i)
            hdrs = {"Idempotency-Key": "gen-social-%d-reg-%d" % (a.seed, i)}
            hdrs.update(at(tl, "reg", i) or {})
            st, js, pos = c.request("POST", "/auth/register",
                                    {"username": name, "email": name + "@gen.example", "password": PASSWORD},
                                    headers=hdrs)
            ok, d, pos = answer(st, js, pos, (201,), "register " + name)
            return ok, d, pos, (js or {}).get("user_id") if ok else None
        return f
    return [job(i) for i in range(a.users)]


def login_jobs(a, tl):
    def job(i):
        def f(c):
            name = "%s%d" % (a.prefix, i)
            st, js, pos = c.request("POST", "/auth/login", {"username": name, "password": PASSWORD},
                                    headers=at(tl, "login", i))
            ok, d, pos = answer(st, js, pos, (200,), "login " + name)
            return ok, d, pos, (js or {}).get("access_token") if ok else None
        return f
    return [job(i) for i in range(a.users)]


def simple_job(method, path, token, body, want, what, key=None, field=None, when=None):
    """One request; @when: Stockpot-Dev-Time headers (at()) or None."""
    def f(c):
        hdrs = dict(when or {})
        if key:
            hdrs["Idempotency-Key"] = key
        st, js, pos = c.request(method, path, body, token=token, headers=hdrs)
        ok, d, pos = answer(st, js, pos, want, what)
        return ok, d, pos, (js or {}).get(field) if (ok and field) else None
    return f


def furthest_positions(positions):
    """The furthest consistency token of each partition among positions, by partition."""
    furthest = {}
    for t in positions:
        p, o = t.split(":", 1)
        if p not in furthest or int(o) > int(furthest[p].split(":", 1)[1]):
            furthest[p] = t
    return furthest


def wait_query(a, positions):
    """Stockpot-After on the furthest token of each partition; True when all applied."""
    furthest = furthest_positions(positions)
    c = Conn(a.query)
    deadline = time.monotonic() + a.wait_s
    try:
        for t in furthest.values():
            while True:
                st, _, _ = c.request("GET", "/recipes?limit=1", headers={"Stockpot-After": t})
                if st == 200:
                    break
                if st != 503 or time.monotonic() > deadline:
                    sys.stderr.write("gen-social: query API did not apply %s (HTTP %d)\n" % (t, st))
                    return False
                time.sleep(0.1)
    finally:
        c.close()
    return True


def main(argv):
    a = parse_args(argv)
    with open(a.data, encoding="utf-8") as f:
        recipes = [json.loads(l) for l in f if l.strip()]
    if a.recipes:
        recipes = recipes[: a.recipes]
    plan = make_plan(a, recipes)
    recipe_author, follows, unfollows, likes, unlikes, comments, deletes = plan
    tl = Timeline(a, plan) if a.start_us is not None else None
    r = Runner(a.command, a.connections)
    t0 = time.monotonic()
    uid = phase("register", r, register_jobs(a, tl))
    tok = phase("login", r, login_jobs(a, tl))
    if r.failures:
        return report(a, r, None, t0)
    # 400: the write API refused the record itself (recipes.jsonl has a few with more than
    # 30 tags or control characters); it is skipped with the likes and comments planned on it
    rid = phase("recipes", r, [
        simple_job("POST", "/recipes", tok[u], recipe_body(recipes[i]), (201, 400), "recipe %d" % i,
                   key="gen-social-%d-recipe-%d" % (a.seed, i), field="recipe_id", when=at(tl, "recipe", i))
        for i, u in enumerate(recipe_author)])
    refused = {i for i, x in enumerate(rid) if x is None}
    if refused:
        sys.stderr.write("gen-social: %d recipes refused by the write API (invalid records), skipped\n"
                         % len(refused))
        likes = [x for x in likes if x[1] not in refused]
        unlikes = [x for x in unlikes if x[1] not in refused]
        kept = [k for k, c in enumerate(comments) if c[1] not in refused]
        renum = {k: n for n, k in enumerate(kept)}
        deletes = [renum[k] for k in deletes if k in renum]
        comments = [comments[k] for k in kept]
    phase("follow", r, [simple_job("POST", "/users/%s/follow" % uid[v], tok[u], None, (200,),
                                   "follow %d->%d" % (u, v), when=at(tl, "follow", (u, v))) for u, v in follows])
    phase("unfollow", r, [simple_job("POST", "/users/%s/unfollow" % uid[v], tok[u], None, (200,),
                                     "unfollow %d->%d" % (u, v), when=at(tl, "unfollow", (u, v)))
                          for u, v in unfollows])
    phase("like", r, [simple_job("POST", "/recipes/%s/like" % rid[i], tok[u], None, (200,),
                                 "like %d->r%d" % (u, i), when=at(tl, "like", (u, i))) for u, i in likes])
    phase("unlike", r, [simple_job("DELETE", "/recipes/%s/like" % rid[i], tok[u], None, (200,),
                                   "unlike %d->r%d" % (u, i), when=at(tl, "unlike", (u, i))) for u, i in unlikes])
    cid = phase("comment", r, [simple_job("POST", "/recipes/%s/comments" % rid[i], tok[u], {"content": text},
                                          (201,), "comment %d->r%d" % (u, i), field="comment_id",
                                          when=at(tl, "comment", (u, i, text)))
                               for u, i, text in comments])
    phase("uncomment", r, [simple_job("DELETE", "/recipes/%s/comments/%s" % (rid[comments[k][1]], cid[k]),
                                      tok[comments[k][0]], None, (200,), "delete comment %s" % cid[k],
                                      when=at(tl, "uncomment", comments[k]))
                           for k in deletes if cid[k]])
    counts = {"users": a.users, "recipes": sum(1 for x in rid if x), "recipes_refused": len(refused),
              "follows": len(follows) - len(unfollows),
              "follow_requests": len(follows), "unfollows": len(unfollows),
              "likes": len(likes) - len(unlikes), "like_requests": len(likes), "unlikes": len(unlikes),
              "comments": len(comments) - len(deletes), "comment_requests": len(comments),
              "comment_deletes": len(deletes)}
    if tl:
        counts.update({"start": rfc3339(tl.start), "end": rfc3339(tl.end)})
    return report(a, r, counts, t0, uid)


def report(a, r, counts, t0, uid=None):
    applied = wait_query(a, r.positions) if r.positions else True
    dt = time.monotonic() - t0
    for d in r.failures[:20]:
        sys.stderr.write("gen-social: FAILED %s\n" % d)
    if counts is None:
        counts = {}
    counts.update({"failures": len(r.failures), "requests_s": round(dt, 1), "applied": applied,
                   "first_user_id": uid[0] if uid else None, "prefix": a.prefix,
                   "positions": sorted(furthest_positions(r.positions).values())})
    if a.json:
        print(json.dumps(counts))
    else:
        for k, v in counts.items():
            print("%-18s %s" % (k, v))
    return 0 if (not r.failures and applied) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
