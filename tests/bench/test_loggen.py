#!/usr/bin/env python3
"""ctest test of stockpot-loggen (tests/bench/loggen.c): generates a log of about 20,000
events from deploy/data/sample.jsonl on the embedded LMDB log and checks that

  - `stockpot-replay verify` passes (checksums, catalogue, contiguous versions, unique ids);
  - the events keep the command side's rules: nobody acts before registering or without a
    live session, no follow of oneself, no duplicate follow or like, unfollow / unlike only
    of what stands, no like, comment or comment deletion on a deleted recipe, only authors
    change their recipes, times non-decreasing, actor = the acting user;
  - the summary it prints matches the log;
  - the same seed gives a byte-identical `stockpot-replay dump`, another seed a different one;
  - (if stockpot-kafka-mock was built) the same run on librdkafka's mock cluster appends the
    same events, and `stockpot-replay verify` passes there too.

Environment: SP_BIN_DIR (the build's bin/), SP_SOURCE_DIR (the repository).
"""
import collections
import datetime
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("SP_BIN_DIR", "")
SRC = os.environ.get("SP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
RECIPES = os.path.join(SRC, "deploy", "data", "sample.jsonl")
EVENTS = 20000
JWT_TTL_S = 900  # config jwt.ttl_s, default


def seconds(rfc3339):
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def tool(name):
    return os.path.join(BIN, name)


def lmdb_env(log_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKPOT_")}
    env.update({"STOCKPOT_LOG_BACKEND": "lmdb", "STOCKPOT_LOG_DIR": log_dir,
                "STOCKPOT_LOG_MAP_SIZE_MB": "256"})
    return env


def run(args, env, check=True):
    p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=600)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (args, p.returncode,
                                                     p.stderr.decode(errors="replace")[-2000:]))
    return p


def loggen(env, seed, events=EVENTS, extra=()):
    p = run([tool("stockpot-loggen"), "--events", str(events), "--recipes", RECIPES,
             "--seed", str(seed)] + list(extra), env)
    return json.loads(p.stdout)


def dump(env):
    return run([tool("stockpot-replay"), "dump"], env).stdout


class Rules:
    """Replays a dump and checks the command side's rules on every event."""

    def __init__(self, test):
        self.t = test
        self.users = set()
        self.sessions = {}  # session id -> Session
        self.live = {}  # user id -> set of ids of sessions not revoked
        self.follows = set()
        self.likes = set()
        self.recipes = {}  # recipe id -> [author, deleted]
        self.comments = {}  # comment id -> [recipe id, author, deleted]
        self.read_up_to = {}
        self.rooms = {}  # room id -> {"group", "admin", "members": set, "txns": set, "read": {}}
        self.direct = set()  # frozenset of the two users of each direct room
        self.last_time = ""
        self.counts = collections.Counter()

    def check(self, ev):
        t, d, actor = ev["type"], ev["data"], ev["actor"]
        self.counts[t] += 1
        self.t.assertGreaterEqual(ev["time"], self.last_time, "times go backwards")
        self.last_time = ev["time"]
        self.t.assertEqual(ev["source"], "/stockpot/command-api")
        self.t.assertRegex(ev["correlationid"], r"^[0-9a-f]{16}$")
        if t == "UserRegistered":
            self.t.assertNotIn(actor, self.users)
            self.t.assertEqual(actor, d["user_id"])
            self.users.add(actor)
            self.live[actor] = set()
            return
        self.t.assertIn(actor, self.users, "%s by an unregistered user" % t)
        getattr(self, "on_" + t)(ev, d, actor)

    def session(self, ev, actor):
        """The actor holds a session not revoked nor expired, with an access token (issued
        at its last start or refresh) not expired either."""
        now = seconds(ev["time"])
        ok = any(self.sessions[sid]["expires"] > now and self.sessions[sid]["token_until"] > now
                 for sid in self.live[actor])
        self.t.assertTrue(ok, "%s without a live session and access token" % ev["type"])

    def token(self, ev, d, actor):
        self.sessions[d["session_id"]].update(expires=seconds(d["expires_at"]),
                                              token_until=seconds(ev["time"]) + JWT_TTL_S)

    def on_SessionStarted(self, ev, d, actor):
        self.t.assertEqual(d["user_id"], actor)
        self.t.assertEqual(ev["streamversion"], 1)
        self.sessions[d["session_id"]] = {"user": actor}
        self.live[actor].add(d["session_id"])
        self.token(ev, d, actor)

    def on_SessionRefreshed(self, ev, d, actor):
        s = self.sessions[d["session_id"]]
        self.t.assertEqual(s["user"], actor)
        self.t.assertIn(d["session_id"], self.live[actor], "refresh of a revoked session")
        self.t.assertGreater(s["expires"], seconds(ev["time"]), "refresh of an expired session")
        self.token(ev, d, actor)

    def on_SessionRevoked(self, ev, d, actor):
        self.t.assertEqual(self.sessions[d["session_id"]]["user"], actor)
        self.t.assertIn(d["session_id"], self.live[actor], "revoked twice")
        if d["reason"] == "logout":
            self.session(ev, actor)
        self.live[actor].discard(d["session_id"])

    def on_ProfileUpdated(self, ev, d, actor):
        self.session(ev, actor)
        self.t.assertEqual(ev["stream"], "user-" + actor)

    def on_UserFollowed(self, ev, d, actor):
        self.session(ev, actor)
        key = (d["user_id"], d["followee_id"])
        self.t.assertEqual(d["user_id"], actor)
        self.t.assertNotEqual(d["followee_id"], actor, "follow of self")
        self.t.assertIn(d["followee_id"], self.users)
        self.t.assertNotIn(key, self.follows, "duplicate follow")
        self.follows.add(key)

    def on_UserUnfollowed(self, ev, d, actor):
        self.session(ev, actor)
        key = (d["user_id"], d["followee_id"])
        self.t.assertEqual(d["user_id"], actor)
        self.t.assertIn(key, self.follows, "unfollow of no follow")
        self.follows.remove(key)

    def on_RecipeCreated(self, ev, d, actor):
        self.session(ev, actor)
        self.t.assertEqual(d["author_id"], actor)
        self.t.assertNotIn(d["recipe_id"], self.recipes)
        self.recipes[d["recipe_id"]] = [actor, False]

    def own_recipe(self, ev, actor):
        self.session(ev, actor)
        r = self.recipes[ev["stream"][len("recipe-"):]]
        self.t.assertEqual(r[0], actor, "recipe changed by another user")
        self.t.assertFalse(r[1], "change of a deleted recipe")
        return r

    def on_RecipeUpdated(self, ev, d, actor):
        self.own_recipe(ev, actor)

    def on_RecipeDeleted(self, ev, d, actor):
        self.own_recipe(ev, actor)[1] = True

    def live_recipe(self, ev, d, actor):
        self.session(ev, actor)
        r = self.recipes[d["recipe_id"]]
        self.t.assertFalse(r[1], "%s of a deleted recipe" % ev["type"])
        self.t.assertEqual(d["recipe_author_id"], r[0])

    def on_RecipeLiked(self, ev, d, actor):
        self.live_recipe(ev, d, actor)
        self.t.assertEqual(d["user_id"], actor)
        self.t.assertNotIn((actor, d["recipe_id"]), self.likes, "duplicate like")
        self.likes.add((actor, d["recipe_id"]))

    def on_RecipeUnliked(self, ev, d, actor):
        self.live_recipe(ev, d, actor)
        self.t.assertIn((actor, d["recipe_id"]), self.likes, "unlike of no like")
        self.likes.remove((actor, d["recipe_id"]))

    def on_RecipeCommented(self, ev, d, actor):
        self.live_recipe(ev, d, actor)
        self.t.assertEqual(d["user_id"], actor)
        self.t.assertEqual(ev["streamversion"], 1)
        self.comments[d["comment_id"]] = [d["recipe_id"], actor, False]

    def on_CommentDeleted(self, ev, d, actor):
        self.live_recipe(ev, d, actor)
        c = self.comments[d["comment_id"]]
        self.t.assertEqual(c[:2], [d["recipe_id"], actor])
        self.t.assertFalse(c[2], "comment deleted twice")
        self.t.assertEqual(ev["streamversion"], 2)
        c[2] = True

    def on_NotificationsRead(self, ev, d, actor):
        self.session(ev, actor)
        up = int(d["up_to_id"])
        self.t.assertGreater(up, self.read_up_to.get(actor, 0), "up_to_id does not grow")
        self.read_up_to[actor] = up


    # -- chat (--chat): the command side's rules of decide_chat.c
    def room(self, ev, d, actor, member=True):
        self.session(ev, actor)
        self.t.assertEqual(ev["stream"], "conversation-" + d["conversation_id"])
        r = self.rooms[d["conversation_id"]]
        if member:
            self.t.assertIn(actor, r["members"], "%s by a non-member" % ev["type"])
        return r

    def on_ConversationCreated(self, ev, d, actor):
        self.session(ev, actor)
        self.t.assertEqual(ev["streamversion"], 1)
        self.t.assertEqual(d["creator_id"], actor)
        ids = d["member_ids"]
        self.t.assertEqual(len(ids), len(set(ids)), "repeated member")
        self.t.assertIn(actor, ids)
        for u in ids:
            self.t.assertIn(u, self.users)
        if not d["is_group"]:
            self.t.assertEqual(len(ids), 2)
            self.t.assertNotIn("title", d)
            self.t.assertNotIn(frozenset(ids), self.direct, "a second direct room of a pair")
            self.direct.add(frozenset(ids))
        else:
            self.t.assertTrue(d["title"])
        self.rooms[d["conversation_id"]] = {"group": d["is_group"], "admin": actor,
                                            "members": set(ids), "txns": set(), "read": {}}

    def on_MemberAdded(self, ev, d, actor):
        r = self.room(ev, d, actor)
        self.t.assertTrue(r["group"] and r["admin"] == actor == d["added_by"])
        self.t.assertNotIn(d["user_id"], r["members"])
        r["members"].add(d["user_id"])

    def on_MemberRemoved(self, ev, d, actor):
        r = self.room(ev, d, actor)
        self.t.assertTrue(r["group"])
        self.t.assertEqual(d["removed_by"], actor)
        self.t.assertTrue(d["user_id"] == actor or r["admin"] == actor)
        self.t.assertNotEqual(d["user_id"], r["admin"], "the admin left")
        r["members"].remove(d["user_id"])

    def on_MessageSent(self, ev, d, actor):
        r = self.room(ev, d, actor)
        self.t.assertEqual(d["sender_id"], actor)
        self.t.assertNotIn((actor, d["txn_id"]), r["txns"], "a txn_id sent twice")
        r["txns"].add((actor, d["txn_id"]))

    def on_MessagesRead(self, ev, d, actor):
        r = self.room(ev, d, actor)
        self.t.assertEqual(d["user_id"], actor)
        up = int(d["up_to_id"])
        self.t.assertGreater(up, r["read"].get(actor, 0), "read marker does not grow")
        r["read"][actor] = up


class KafkaMock:
    """stockpot-kafka-mock with one topic; env() points the tools at it."""

    def __init__(self, topic):
        self.topic = topic
        self.proc = subprocess.Popen(
            [tool("stockpot-kafka-mock"), "--brokers", "3", "--topic", topic, "--partitions",
             "6", "--replication-factor", "3"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line:
            self.stop()
            raise AssertionError("stockpot-kafka-mock printed no bootstrap servers")
        self.bootstrap = line

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKPOT_")}
        env.update({"STOCKPOT_LOG_BACKEND": "kafka", "STOCKPOT_KAFKA_BROKERS": self.bootstrap,
                    "STOCKPOT_KAFKA_TOPIC": self.topic, "STOCKPOT_KAFKA_PARTITIONS": "6",
                    "STOCKPOT_KAFKA_REPLICATION_FACTOR": "3"})
        return env

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


class LoggenTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sp-loggen-")
        cls.env = lmdb_env(os.path.join(cls.tmp, "a"))
        cls.summary = loggen(cls.env, seed=7)
        cls.dump = dump(cls.env)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_verify(self):
        p = run([tool("stockpot-replay"), "verify"], self.env)
        self.assertIn(b"0 faults", p.stdout)

    def test_rules(self):
        rules = Rules(self)
        for line in self.dump.splitlines():
            rules.check(json.loads(line))
        self.assertEqual(sum(rules.counts.values()), EVENTS)
        self.assertEqual(self.summary["events"], EVENTS)
        self.assertEqual(self.summary["end"], ["0:%d" % EVENTS])
        by_type = {k: v for k, v in self.summary["by_type"].items() if v}
        self.assertEqual(by_type, dict(rules.counts))
        for t in ("UserRegistered", "SessionStarted", "SessionRefreshed", "SessionRevoked",
                  "ProfileUpdated", "UserFollowed", "UserUnfollowed", "RecipeCreated",
                  "RecipeUpdated", "RecipeDeleted", "RecipeLiked", "RecipeUnliked",
                  "RecipeCommented", "CommentDeleted", "NotificationsRead"):
            self.assertGreater(rules.counts[t], 0, "no %s generated" % t)
        self.assertEqual(rules.counts["UserRegistered"], EVENTS // 50)

    def test_chat(self):
        """--chat 300: rooms, messages, read markers, joins and leaves, by the same rules
        as the command side; verify passes; the same seed gives the same log."""
        env = lmdb_env(os.path.join(self.tmp, "chat"))
        summary = loggen(env, seed=7, extra=["--chat", "300"])
        self.assertIn(b"0 faults", run([tool("stockpot-replay"), "verify"], env).stdout)
        rules = Rules(self)
        text = dump(env)
        for line in text.splitlines():
            rules.check(json.loads(line))
        self.assertEqual(sum(rules.counts.values()), EVENTS)
        for t in ("ConversationCreated", "MemberAdded", "MemberRemoved", "MessageSent",
                  "MessagesRead"):
            self.assertGreater(rules.counts[t], 0, "no %s generated" % t)
        self.assertGreater(rules.counts["MessageSent"], EVENTS // 20)
        self.assertTrue(any(r["group"] for r in rules.rooms.values()))
        self.assertTrue(any(not r["group"] for r in rules.rooms.values()))
        by_type = {k: v for k, v in summary["by_type"].items() if v}
        self.assertEqual(by_type, dict(rules.counts))
        env2 = lmdb_env(os.path.join(self.tmp, "chat2"))
        loggen(env2, seed=7, extra=["--chat", "300"])
        self.assertEqual(dump(env2), text, "same seed and --chat, different log")

    def test_deterministic(self):
        env = lmdb_env(os.path.join(self.tmp, "b"))
        again = loggen(env, seed=7)
        self.assertEqual(again["by_type"], self.summary["by_type"])
        self.assertEqual(dump(env), self.dump, "same seed, different log")
        env = lmdb_env(os.path.join(self.tmp, "b7"))
        loggen(env, seed=7, extra=["--batch", "7"])
        self.assertEqual(dump(env), self.dump, "the batch size changed the log")
        env = lmdb_env(os.path.join(self.tmp, "c"))
        loggen(env, seed=8)
        self.assertNotEqual(dump(env), self.dump, "another seed, same log")

    def test_refuses_a_log_with_events(self):
        env = lmdb_env(os.path.join(self.tmp, "d"))
        loggen(env, seed=1, events=100)
        p = run([tool("stockpot-loggen"), "--events", "100", "--recipes", RECIPES], env,
                check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"not empty", p.stderr)
        self.assertEqual(len(dump(env).splitlines()), 100)

    def test_bad_options(self):
        for args in (["--events", "0", "--recipes", RECIPES], ["--recipes", RECIPES],
                     ["--events", "10"], ["--events", "10", "--recipes", RECIPES, "--start",
                                          "2026-13-01"],
                     ["--events", "10", "--recipes", RECIPES, "--bogus"],
                     ["--events", "10", "--recipes", RECIPES, "--users", "11"],
                     ["--events", "10", "--recipes", os.path.join(self.tmp, "missing.jsonl")]):
            p = run([tool("stockpot-loggen")] + args, lmdb_env(os.path.join(self.tmp, "x")),
                    check=False)
            self.assertEqual(p.returncode, 2, args)
            self.assertTrue(p.stderr.startswith(b"stockpot-loggen: "), p.stderr)
            self.assertEqual(p.stdout, b"")

    @unittest.skipUnless(os.path.exists(tool("stockpot-kafka-mock")),
                         "stockpot-kafka-mock not built")
    def test_kafka_mock(self):
        events = 5000
        mock = KafkaMock("stockpot.loggen.%d" % os.getpid())
        try:
            summary = loggen(mock.env(), seed=7, events=events)
            self.assertEqual(summary["events"], events)
            self.assertEqual(len(summary["end"]), 6)
            p = run([tool("stockpot-replay"), "verify"], mock.env())
            self.assertIn(b"verified %d records" % events, p.stdout)
            self.assertIn(b"0 faults", p.stdout)
            kafka = sorted(dump(mock.env()).splitlines())
        finally:
            mock.stop()
        env = lmdb_env(os.path.join(self.tmp, "k"))
        loggen(env, seed=7, events=events)
        self.assertEqual(kafka, sorted(dump(env).splitlines()), "backends got other events")


if __name__ == "__main__":
    unittest.main(verbosity=2)
