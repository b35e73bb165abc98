#!/usr/bin/env python3
"""Acceptance of issue 4 on a large generated load, end to end on the real daemons,
PostgreSQL and the embedded log: deploy/local/gen-social.py builds the 2,000-user graph of
the main job and the benchmark (seed 1: Zipf recipes over authors, power-law follows,
likes, comments, with unfollows, unlikes and comment deletions) through the write API;
then the most-fanned-out recipes are deleted and the heaviest follower unfollows some
people. After that every counter must equal a count over its rows, the feed read model
must equal its definition and be what GET /feed pages through, and `stockpot-replay
rebuild pg` must give identical tables (checksum). Then a short load of its own users
with simulated days (gen-social.py --start/--days, Stockpot-Dev-Time on every request)
must have stamped each of its events inside the period and after its actor's signup,
with signups over several weeks.

SP_SOCIAL_LOAD_USERS overrides the number of users (default 2000)."""

import datetime
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import social_checks as sc  # noqa: E402

USERS = int(os.environ.get("SP_SOCIAL_LOAD_USERS", "2000"))
PASSWORD = "gen-social password"  # gen-social.py's


class SocialLoad(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = h.Cluster("social_load")
        cls.c.start_all()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop_all()

    def login(self, user_id):
        name = self.c.sql("SELECT username FROM stockpot.users WHERE id = %s" % user_id)
        r = h.request(self.c.command_port, "POST", "/auth/login", {"username": name, "password": PASSWORD})
        self.assertEqual(r.status, 200, r)
        return r.json()["access_token"]

    def cmd(self, method, path, token):
        r = h.request(self.c.command_port, method, path, token=token)
        self.assertEqual(r.status, 200, "%s %s: %r" % (method, path, r))
        return r.json()["position"]

    def feed_via_api(self, token):
        """Every id GET /feed pages through (limit 100, max_id cursor), newest first."""
        ids, path = [], "/feed?limit=100"
        while True:
            r = h.request(self.c.query_port, "GET", path, token=token)
            self.assertEqual(r.status, 200, r)
            js = r.json()
            ids += [x["id"] for x in js["items"]]
            if not js.get("next_max_id"):
                return ids
            path = "/feed?limit=100&max_id=%s" % js["next_max_id"]

    def test_10_large_load(self):
        t0 = time.monotonic()
        counts = sc.generate(self, self.c, "--users", str(USERS), "--seed", "1", "--connections", "4")
        sys.stderr.write("load of %d users applied in %.1f s\n" % (USERS, time.monotonic() - t0))
        self.assertTrue(counts["applied"])
        self.assertGreater(counts["follows"], USERS * 5)

        # recipes on the most feeds leave them; the heaviest follower unfollows five people
        pos = []
        top = self.c.sql("SELECT e.recipe_id || ' ' || r.author_id FROM stockpot.feed_entries e "
                         "JOIN stockpot.recipes r ON r.id = e.recipe_id GROUP BY 1 "
                         "ORDER BY count(*) DESC, 1 LIMIT 5").splitlines()
        self.assertEqual(len(top), 5)
        for line in top:
            rid, author = line.split()
            pos.append(self.cmd("DELETE", "/recipes/%s" % rid, self.login(author)))
        heavy = self.c.sql("SELECT id FROM stockpot.users ORDER BY following_count DESC, id LIMIT 1")
        heavy_tok = self.login(heavy)
        gone = self.c.sql("SELECT followee_id FROM stockpot.follows WHERE follower_id = %s "
                          "ORDER BY followee_id LIMIT 5" % heavy).splitlines()
        for f in gone:
            pos.append(self.cmd("POST", "/users/%s/unfollow" % f, heavy_tok))
        self.assertEqual(h.wait_positions(self.c.query_port, pos, deadline_s=300), [])
        counts["follows"] -= len(gone)
        deleted = ",".join(l.split()[0] for l in top)
        self.assertEqual(self.c.sql("SELECT count(*) FROM stockpot.feed_entries WHERE recipe_id IN (%s)"
                                    % deleted), "0")

        sc.assert_invariants(self, self.c)
        sc.assert_generated_rows(self, self.c, counts)
        sys.stderr.write("rows: %s\n" % self.c.sql(
            "SELECT string_agg(t || ' ' || n, ', ') FROM (VALUES "
            "('users', (SELECT count(*) FROM stockpot.users)), ('recipes', (SELECT count(*) FROM stockpot.recipes)), "
            "('follows', (SELECT count(*) FROM stockpot.follows)), ('likes', (SELECT count(*) FROM stockpot.likes)), "
            "('comments', (SELECT count(*) FROM stockpot.comments)), "
            "('notifications', (SELECT count(*) FROM stockpot.notifications)), "
            "('feed_entries', (SELECT count(*) FROM stockpot.feed_entries))) AS x(t, n)"))

        # GET /feed pages through exactly the read model's definition, newest first
        for uid in (heavy, self.c.sql("SELECT author_id FROM stockpot.recipes GROUP BY 1 "
                                      "ORDER BY count(*) DESC, 1 LIMIT 1")):
            want = self.c.sql("SELECT id FROM stockpot.recipes WHERE author_id = %s UNION SELECT r.id "
                              "FROM stockpot.follows f JOIN stockpot.recipes r ON r.author_id = f.followee_id "
                              "WHERE f.follower_id = %s ORDER BY 1 DESC" % (uid, uid)).splitlines()
            self.assertGreater(len(want), 0)
            self.assertEqual(self.feed_via_api(self.login(uid)), want, "feed of %s" % uid)

        t1 = time.monotonic()
        out = sc.assert_rebuild_identical(self, self.c)
        sys.stderr.write("rebuild and compare in %.1f s: %s\n" % (time.monotonic() - t1, out.strip()[-300:]))

    def test_20_load_over_simulated_days(self):
        """gen-social.py --start 2026-01-05 --days 28 with 40 users of its own (seed 3): every
        event they caused was stamped (Stockpot-Dev-Time) inside the four weeks, none before
        its actor registered; signups grow over the weeks and the events cover most days."""
        start, days, users = "2026-01-05", 28, 40
        counts = sc.generate(self, self.c, "--users", str(users), "--recipes", "60", "--seed", "3",
                             "--connections", "4", "--start", start, "--days", str(days), timeout=600)
        self.assertTrue(counts["applied"])
        lo, hi = counts["start"], counts["end"]
        self.assertEqual((lo, hi), ("2026-01-05T00:00:00.000000Z", "2026-02-02T00:00:00.000000Z"))
        evs = [json.loads(l) for l in self.c.replay("dump").stdout.splitlines() if l.strip()]
        signup = {e["data"]["user_id"]: e["time"] for e in evs
                  if e["type"] == "UserRegistered" and e["data"]["username"].startswith(counts["prefix"])}
        self.assertEqual(len(signup), users)
        mine = [e for e in evs if e.get("actor") in signup]
        # one event per request of the run: every request's events carry the header's time
        # (envelope times are fixed-width RFC 3339 UTC, so strings compare as times)
        self.assertEqual(len(mine), 2 * users + sum(counts[k] for k in (
            "recipes", "follow_requests", "unfollows", "like_requests", "unlikes", "comment_requests",
            "comment_deletes")))
        for e in mine:
            self.assertTrue(lo <= e["time"] < hi, e)
            self.assertGreaterEqual(e["time"], signup[e["actor"]], e)
        self.assertEqual({e["type"] for e in mine} - {"UserRegistered", "SessionStarted"},
                         {"RecipeCreated", "UserFollowed", "UserUnfollowed", "RecipeLiked", "RecipeUnliked",
                          "RecipeCommented", "CommentDeleted"})

        def day(t):
            at = datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ")
            return (at - datetime.datetime(2026, 1, 5)).days

        weeks = [day(t) // 7 for t in signup.values()]
        self.assertEqual(sorted(set(weeks)), [0, 1, 2, 3], "signup cohorts span the four weeks")
        self.assertGreater(sum(w >= 2 for w in weeks), sum(w < 2 for w in weeks), "user growth")
        self.assertGreaterEqual(len({day(e["time"]) for e in mine}), days * 2 // 3, "events cover most days")
        # the read model keeps the simulated signup times
        self.assertEqual(self.c.sql("SELECT count(*) FROM stockpot.users WHERE username LIKE '%s%%' AND "
                                    "created_at >= '%s' AND created_at < '%s'"
                                    % (counts["prefix"].replace("_", "\\_"), lo, hi)), str(users))
        sc.assert_invariants(self, self.c)
        sc.assert_generated_rows(self, self.c, counts)

    def test_99_clean_shutdown(self):
        h.assert_clean_shutdown(self, self.c)


if __name__ == "__main__":
    h.main()
