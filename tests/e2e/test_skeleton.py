#!/usr/bin/env python3
"""End-to-end walking skeleton (issue 2 acceptance; both backends, issue 3): the real
daemons, PostgreSQL and the event log SP_E2E_BACKEND selects (harness.py: the embedded
LMDB log, or Kafka on librdkafka's mock cluster). register -> login -> create -> read
back -> stale If-Match -> update -> delete -> 404; refresh rotation and reuse detection;
bad requests get problem+json and change nothing in the log; health, readiness, metrics;
--help; replay verify."""

import os
import select
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

MAX_BODY_BYTES = 1048576

RECIPE = {
    "title": "红烧肉 and crème brûlée",
    "description": "外婆的红烧肉。\n\nThen a crème brûlée — caramélisée ☕\tenjoy",
    "ingredients": ["五花肉 500 克", "冰糖 30 克", "crème fraîche 200 ml", "sucre roux"],
    "steps": ["五花肉切块，焯水。", "Caramelise the sugar until it is brûlée.\nServe cold."],
    "tags": ["中餐", "dessert", "crème"],
}


def problem(tc, r, status, field=None):
    """Assert r is an RFC 9457 problem with this status, naming field if given."""
    if isinstance(status, int):
        status = (status,)
    tc.assertIn(r.status, status, r)
    tc.assertEqual(r.content_type, "application/problem+json", r)
    p = r.json()
    tc.assertIn(p.get("status"), status, p)
    tc.assertTrue(p.get("title"), p)
    if field is not None:
        fields = [e.get("field", "") for e in p.get("errors", [])]
        tc.assertTrue(
            any(f == field or f.startswith(field + "[") or f.startswith(field + ".")
                or f.startswith(field + "/") for f in fields),
            "problem does not name field %r: %r" % (field, p),
        )
    return p


def raw_post(port, path, body_bytes, token=None, timeout=30):
    """POST a body on a raw socket, stop sending as soon as the server answers; returns
    h.Response. Used for bodies the server may refuse before reading them whole."""
    head = "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" % path
    if token:
        head += "Authorization: Bearer %s\r\n" % token
    head += "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body_bytes)
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head.encode())
        off = 0
        while off < len(body_bytes):
            rd, _, _ = select.select([s], [], [], 0)
            if rd:
                break
            try:
                off += s.send(body_bytes[off:off + 65536])
            except (BrokenPipeError, ConnectionResetError):
                break
        resp = h.http.client.HTTPResponse(s)
        resp.begin()
        payload = resp.read()
        return h.Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
    finally:
        s.close()


class Skeleton(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = h.Cluster("skeleton", {"STOCKPOT_HTTP_MAX_BODY_BYTES": str(MAX_BODY_BYTES)})
        cls.c.start_all()
        cls.cp = cls.c.command_port
        cls.qp = cls.c.query_port
        cls.alice = h.register_and_login(cls.cp, "alice_e2e", "alice password 1")
        cls.bob = h.register_and_login(cls.cp, "bob.e2e", "bob password 12")

    @classmethod
    def tearDownClass(cls):
        cls.c.stop_all()

    # -- helpers ---------------------------------------------------------------

    def post_recipe(self, body, token=None, **kw):
        return h.request(self.cp, "POST", "/recipes", body, token=token or self.alice["access_token"], **kw)

    def assert_log_unchanged(self, before):
        self.assertEqual(self.c.log_count(), before, "a refused request changed the log")

    # -- tests -----------------------------------------------------------------

    def test_00_backend_in_use(self):
        # guard against a variant that silently runs on the other backend: the positions
        # of a few streams show the partitions, and only LMDB writes to log.dir
        tok = self.alice["access_token"]
        parts = set()
        for i in range(12):
            r = self.post_recipe({"title": "backend probe %d" % i, "ingredients": ["x"], "steps": ["y"]}, token=tok)
            self.assertEqual(r.status, 201, r)
            parts.add(h.parse_position(r.json()["position"])[0])
        log_files = os.listdir(os.path.join(self.c.tmp, "log"))
        if self.c.backend == "kafka":
            self.assertGreater(len(parts), 1, "12 streams all in one partition: not on Kafka?")
            self.assertTrue(parts <= set(range(h.KAFKA_PARTITIONS)), parts)
            self.assertEqual(log_files, [], "a daemon wrote the embedded log although log.backend=kafka")
        else:
            self.assertEqual(parts, {0})
            self.assertIn("data.mdb", log_files)

    def test_01_register_login_shapes(self):
        a = self.alice
        self.assertEqual(a["token_type"], "Bearer")
        self.assertIsInstance(a["user_id"], str)
        self.assertTrue(a["user_id"].isdigit())
        self.assertEqual(a["user_id"], a["register"]["user_id"])
        self.assertEqual(a["register"]["username"], "alice_e2e")
        self.assertGreater(a["expires_in"], 0)
        self.assertTrue(a["refresh_token"])
        self.assertTrue(a["register"]["position"])
        r = h.request(self.cp, "GET", "/auth/validate", token=a["access_token"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["user_id"], a["user_id"])
        # login by email too
        r = h.request(self.cp, "POST", "/auth/login", {"email": "alice_e2e@example.com", "password": "alice password 1"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["user_id"], a["user_id"])
        # the public user view carries no secrets (the registration's token covers the
        # user's stream; the login's may be another partition's on Kafka)
        self.assertEqual(h.wait_positions(self.qp, [a["register"]["position"], r.json()["position"]]), [])
        r = h.get_after(self.qp, "/users/" + a["user_id"], a["register"]["position"])
        self.assertEqual(r.status, 200, r)
        u = r.json()
        self.assertEqual(u["username"], "alice_e2e")
        self.assertEqual(u["id"], a["user_id"])
        for secret in ("email", "password_hash", "password"):
            self.assertNotIn(secret, u)
        self.assertNotIn(b"example.com", r.body)
        self.assertNotIn(b"argon2", r.body)

    def test_02_recipe_lifecycle(self):
        tok = self.alice["access_token"]
        r = self.post_recipe(RECIPE)
        self.assertEqual(r.status, 201, r)
        created = r.json()
        rid = created["recipe_id"]
        self.assertTrue(rid.isdigit(), created)
        self.assertEqual(created["version"], 1)
        self.assertEqual(r.header("Stockpot-Position"), created["position"])
        self.assertEqual(r.header("ETag"), '"1"')
        self.assertEqual(r.header("Location"), "/recipes/" + rid)

        # read back with the consistency token: no sleep, no retry
        r = h.request(self.qp, "GET", "/recipes/" + rid, headers={"Stockpot-After": created["position"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("ETag"), '"1"')
        got = r.json()
        self.assertEqual(got["id"], rid)
        self.assertEqual(got["author_id"], self.alice["user_id"])
        for k in ("title", "description", "ingredients", "steps", "tags"):
            self.assertEqual(got[k], RECIPE[k], k)
        self.assertEqual(got["image_media_ids"], [])
        self.assertEqual(got["version"], 1)
        self.assertTrue(got["created_at"] and got["updated_at"])

        # lists: by author and by tag (non-ASCII tag in the query string)
        r = h.request(self.qp, "GET", "/users/%s/recipes" % self.alice["user_id"])
        self.assertEqual(r.status, 200, r)
        self.assertIn(rid, [x["id"] for x in r.json()["items"]])
        r = h.request(self.qp, "GET", "/recipes?tag=" + urllib.parse.quote("中餐"))
        self.assertEqual(r.status, 200, r)
        self.assertIn(rid, [x["id"] for x in r.json()["items"]])

        n0 = self.c.log_count()
        # If-Match that is not the current version -> 412, nothing appended
        r = h.request(self.cp, "PUT", "/recipes/" + rid, {"title": "never"}, token=tok, headers={"If-Match": '"2"'})
        problem(self, r, 412)
        # not the author -> 403
        r = h.request(self.cp, "PUT", "/recipes/" + rid, {"title": "bob's"}, token=self.bob["access_token"])
        problem(self, r, 403)
        r = h.request(self.cp, "DELETE", "/recipes/" + rid, token=self.bob["access_token"])
        problem(self, r, 403)
        self.assert_log_unchanged(n0)

        # correct update
        r = h.request(self.cp, "PUT", "/recipes/" + rid, {"title": "红烧肉 v2 — brûlée"}, token=tok,
                      headers={"If-Match": '"1"'})
        self.assertEqual(r.status, 200, r)
        upd = r.json()
        self.assertEqual(upd["version"], 2)
        self.assertEqual(upd["recipe_id"], rid)
        self.assertEqual(r.header("Stockpot-Position"), upd["position"])
        self.assertNotEqual(upd["position"], created["position"])
        # the classic lost update: a second writer still holding version 1
        r = h.request(self.cp, "PUT", "/recipes/" + rid, {"title": "lost"}, token=tok, headers={"If-Match": '"1"'})
        problem(self, r, 412)

        r = h.request(self.qp, "GET", "/recipes/" + rid, headers={"Stockpot-After": upd["position"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("ETag"), '"2"')
        got = r.json()
        self.assertEqual(got["title"], "红烧肉 v2 — brûlée")
        self.assertEqual(got["version"], 2)
        for k in ("description", "ingredients", "steps", "tags"):
            self.assertEqual(got[k], RECIPE[k], k)

        # delete (stale If-Match first)
        r = h.request(self.cp, "DELETE", "/recipes/" + rid, token=tok, headers={"If-Match": '"1"'})
        problem(self, r, 412)
        r = h.request(self.cp, "DELETE", "/recipes/" + rid, token=tok, headers={"If-Match": '"2"'})
        self.assertEqual(r.status, 200, r)
        dele = r.json()
        self.assertEqual(dele["version"], 3)
        r = h.request(self.qp, "GET", "/recipes/" + rid, headers={"Stockpot-After": dele["position"]})
        problem(self, r, 404)
        r = h.request(self.cp, "PUT", "/recipes/" + rid, {"title": "zombie"}, token=tok)
        problem(self, r, 404)
        r = h.request(self.cp, "DELETE", "/recipes/" + rid, token=tok)
        problem(self, r, 404)
        r = h.request(self.cp, "PUT", "/recipes/12345", {"title": "nobody"}, token=tok)
        problem(self, r, 404)

    def test_03_refresh_rotation_and_reuse(self):
        s = h.request(self.cp, "POST", "/auth/login", {"username": "alice_e2e", "password": "alice password 1"})
        self.assertEqual(s.status, 200, s)
        s = s.json()
        rt1, at1 = s["refresh_token"], s["access_token"]
        r = h.request(self.cp, "POST", "/auth/refresh", {"refresh_token": rt1})
        self.assertEqual(r.status, 200, r)
        s2 = r.json()
        rt2, at2 = s2["refresh_token"], s2["access_token"]
        self.assertNotEqual(rt2, rt1)
        self.assertEqual(s2["token_type"], "Bearer")
        self.assertEqual(s2["user_id"], self.alice["user_id"])
        v = h.request(self.cp, "GET", "/auth/validate", token=at2)
        self.assertEqual(v.status, 200, v)
        sid = v.json()["session_id"]
        r = self.post_recipe({"title": "after refresh", "ingredients": ["x"], "steps": ["y"]}, token=at2)
        self.assertEqual(r.status, 201, r)

        # reuse of the rotated token: 401, and the whole session is revoked
        r = h.request(self.cp, "POST", "/auth/refresh", {"refresh_token": rt1})
        problem(self, r, 401)
        r = h.request(self.cp, "POST", "/auth/refresh", {"refresh_token": rt2})
        problem(self, r, 401)
        for at in (at1, at2):
            problem(self, h.request(self.cp, "GET", "/auth/validate", token=at), 401)
            problem(self, self.post_recipe({"title": "t", "ingredients": ["x"], "steps": ["y"]}, token=at), 401)
        # other sessions of the same user are untouched
        v = h.request(self.cp, "GET", "/auth/validate", token=self.alice["access_token"])
        self.assertEqual(v.status, 200, v)
        self.assertNotEqual(v.json()["session_id"], sid)
        # unknown refresh token
        problem(self, h.request(self.cp, "POST", "/auth/refresh", {"refresh_token": "nope" * 10}), 401)

    def test_04_logout(self):
        for method in ("POST", "GET"):
            s = h.request(self.cp, "POST", "/auth/login", {"username": "bob.e2e", "password": "bob password 12"}).json()
            r = h.request(self.cp, method, "/auth/logout", token=s["access_token"])
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.json()["position"])
            problem(self, h.request(self.cp, "GET", "/auth/validate", token=s["access_token"]), 401)
            problem(self, h.request(self.cp, "POST", "/auth/refresh", {"refresh_token": s["refresh_token"]}), 401)
        v = h.request(self.cp, "GET", "/auth/validate", token=self.bob["access_token"])
        self.assertEqual(v.status, 200, v)

    def test_05_bad_requests_change_nothing(self):
        tok = self.alice["access_token"]
        ok = {"title": "t", "ingredients": ["x"], "steps": ["y"]}
        n0 = self.c.log_count()
        cases = [
            # (what, port, method, path, body or raw bytes, expected status, field)
            ("bad json", "POST", "/recipes", b'{"title": "x",', 400, None),
            ("not an object", "POST", "/recipes", b"[1,2,3]", (400, 422), None),
            ("empty body", "POST", "/recipes", b"", (400, 422), None),
            ("invalid utf-8", "POST", "/recipes", b'{"title":"\xff\xfe","ingredients":["x"],"steps":["y"]}', (400, 422), None),
            ("missing title", "POST", "/recipes", {"ingredients": ["x"], "steps": ["y"]}, (400, 422), "title"),
            ("missing ingredients", "POST", "/recipes", {"title": "t", "steps": ["y"]}, (400, 422), "ingredients"),
            ("missing steps", "POST", "/recipes", {"title": "t", "ingredients": ["x"]}, (400, 422), "steps"),
            ("title wrong type", "POST", "/recipes", dict(ok, title=42), (400, 422), "title"),
            ("empty title", "POST", "/recipes", dict(ok, title=""), (400, 422), "title"),
            ("long title", "POST", "/recipes", dict(ok, title="é" * 201), (400, 422), "title"),
            ("control char", "POST", "/recipes", dict(ok, title="a\x01b"), (400, 422), "title"),
            ("long description", "POST", "/recipes", dict(ok, description="d" * 10001), (400, 422), "description"),
            ("empty ingredients", "POST", "/recipes", dict(ok, ingredients=[]), (400, 422), "ingredients"),
            ("empty ingredient", "POST", "/recipes", dict(ok, ingredients=["a", ""]), (400, 422), "ingredients"),
            ("too many ingredients", "POST", "/recipes", dict(ok, ingredients=["i"] * 201), (400, 422), "ingredients"),
            ("long step", "POST", "/recipes", dict(ok, steps=["s" * 10001]), (400, 422), "steps"),
            ("long tag", "POST", "/recipes", dict(ok, tags=["t" * 65]), (400, 422), "tags"),
            ("too many tags", "POST", "/recipes", dict(ok, tags=["t%d" % i for i in range(31)]), (400, 422), "tags"),
            ("bad media id", "POST", "/recipes", dict(ok, image_media_ids=["abc"]), (400, 422), "image_media_ids"),
            ("deep json", "POST", "/recipes", b"[" * 5000 + b"]" * 5000, (400, 413, 422), None),
            ("empty update", "PUT", "/recipes/1", {}, (400, 422, 404), None),
            ("short username", "POST", "/auth/register", {"username": "ab", "email": "ab@example.com", "password": "password123"}, (400, 422), "username"),
            ("bad username chars", "POST", "/auth/register", {"username": "a b!", "email": "ab@example.com", "password": "password123"}, (400, 422), "username"),
            ("bad email", "POST", "/auth/register", {"username": "carol", "email": "carol.example.com", "password": "password123"}, (400, 422), "email"),
            ("short password", "POST", "/auth/register", {"username": "carol", "email": "carol@example.com", "password": "short"}, (400, 422), "password"),
            ("long password", "POST", "/auth/register", {"username": "carol", "email": "carol@example.com", "password": "p" * 129}, (400, 422), "password"),
            ("missing password", "POST", "/auth/register", {"username": "carol", "email": "carol@example.com"}, (400, 422), "password"),
            ("taken username", "POST", "/auth/register", {"username": "alice_e2e", "email": "other@example.com", "password": "password123"}, 409, None),
            ("taken email", "POST", "/auth/register", {"username": "alice2", "email": "alice_e2e@example.com", "password": "password123"}, 409, None),
            ("wrong password", "POST", "/auth/login", {"username": "alice_e2e", "password": "wrong password"}, 401, None),
            ("unknown user", "POST", "/auth/login", {"username": "nobody_here", "password": "whatever1"}, 401, None),
            ("refresh missing field", "POST", "/auth/refresh", {}, (400, 422), "refresh_token"),
        ]
        for what, method, path, body, status, field in cases:
            with self.subTest(what):
                if isinstance(body, bytes):
                    r = h.request(self.cp, method, path, raw=body, token=tok)
                else:
                    r = h.request(self.cp, method, path, body, token=tok)
                problem(self, r, status, field)

        # oversized body (> http.max_body_bytes)
        with self.subTest("oversized body"):
            big = ('{"title":"t","ingredients":["x"],"steps":["y"],"description":"%s"}'
                   % ("x" * (MAX_BODY_BYTES + 1024))).encode()
            r = raw_post(self.cp, "/recipes", big, token=tok)
            problem(self, r, 413)

        self.assert_log_unchanged(n0)

    def test_06_bad_tokens(self):
        good = self.alice["access_token"]
        hdr, payload = h.jwt_parts(good)
        self.assertEqual(hdr.get("alg"), "HS256", hdr)
        for claim in ("sub", "sid", "iat", "exp", "jti"):
            self.assertIn(claim, payload)
        now = int(time.time())
        # our own signature with the configured key is accepted (so the forgeries below
        # are rejected for the claim we changed, not for a different key encoding)
        resigned = h.jwt_sign(hdr, payload, h.JWT_SECRET)
        key_ok = h.request(self.cp, "GET", "/auth/validate", token=resigned).status == 200
        expired = h.jwt_sign(hdr, dict(payload, iat=now - 7200, exp=now - 3600), h.JWT_SECRET)
        tokens = {
            "garbage": "garbage",
            "truncated": good[:-5],
            "wrong key": h.jwt_sign(hdr, payload, "not the secret"),
            "alg none": h.jwt_none(payload),
            "expired (right key)": expired,
            "other session id": h.jwt_sign(hdr, dict(payload, sid="999999"), h.JWT_SECRET),
            "HS512 alg": h.jwt_sign(dict(hdr, alg="HS512"), payload, h.JWT_SECRET),
        }
        n0 = self.c.log_count()
        body = {"title": "t", "ingredients": ["x"], "steps": ["y"]}
        for what, t in tokens.items():
            with self.subTest(what):
                problem(self, h.request(self.cp, "GET", "/auth/validate", token=t), 401)
                problem(self, self.post_recipe(body, token=t), 401)
                problem(self, h.request(self.cp, "POST", "/auth/logout", token=t), 401)
        with self.subTest("no token"):
            problem(self, h.request(self.cp, "POST", "/recipes", body), 401)
            problem(self, h.request(self.cp, "GET", "/auth/validate"), 401)
        with self.subTest("basic auth"):
            problem(self, h.request(self.cp, "POST", "/recipes", body, headers={"Authorization": "Basic YTpi"}), 401)
        self.assert_log_unchanged(n0)
        self.assertTrue(key_ok, "re-signed token with STOCKPOT_JWT_SECRET not accepted: "
                        "jwt.secret is not used as the raw HS256 key, expired-token check was weaker")

    def test_07_idempotency_key(self):
        body = {"title": "idempotent soup", "ingredients": ["water"], "steps": ["boil"]}
        hdr = {"Idempotency-Key": "e2e-key-1"}
        n0 = self.c.log_count()
        r1 = self.post_recipe(body, headers=hdr)
        self.assertEqual(r1.status, 201, r1)
        r2 = self.post_recipe(body, headers=hdr)
        self.assertEqual(r2.status, 201, r2)
        self.assertEqual(r2.json()["recipe_id"], r1.json()["recipe_id"])
        self.assertEqual(self.c.log_count(), n0 + 1)
        r3 = self.post_recipe(dict(body, title="different soup"), headers=hdr)
        problem(self, r3, 422)
        self.assertEqual(self.c.log_count(), n0 + 1)

    def test_08_lengths_count_code_points(self):
        tags = ["标" * 63 + chr(0x4E00 + i) for i in range(30)]  # 30 distinct tags of 64 code points
        body = {"title": "é" * 200, "ingredients": ["中" * 1000], "steps": ["步" * 10000], "tags": tags}
        r = self.post_recipe(body)
        self.assertEqual(r.status, 201, r)
        g = h.request(self.qp, "GET", "/recipes/" + r.json()["recipe_id"], headers={"Stockpot-After": r.json()["position"]})
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json()["title"], "é" * 200)
        self.assertEqual(g.json()["tags"], tags)

    def test_09_query_errors(self):
        problem(self, h.request(self.qp, "GET", "/recipes/999999999"), 404)
        problem(self, h.request(self.qp, "GET", "/users/999999999"), 404)
        problem(self, h.request(self.qp, "GET", "/recipes/abc"), (400, 404))
        problem(self, h.request(self.qp, "GET", "/recipes?limit=0"), (400, 422))
        problem(self, h.request(self.qp, "GET", "/recipes?limit=101"), (400, 422))
        problem(self, h.request(self.qp, "GET", "/recipes", headers={"Stockpot-After": "garbage"}), (400, 422))
        # a position far in the future: bounded wait, then 503 with Retry-After
        r = h.request(self.qp, "GET", "/recipes", headers={"Stockpot-After": "0:999999999"})
        problem(self, r, 503)
        self.assertTrue(r.header("Retry-After"), r)

    def test_10_pagination(self):
        ids, positions = [], []
        for i in range(5):
            r = self.post_recipe({"title": "page %d" % i, "ingredients": ["x"], "steps": ["y"], "tags": ["pagetest"]})
            self.assertEqual(r.status, 201, r)
            ids.append(r.json()["recipe_id"])
            positions.append(r.json()["position"])
        # the five recipes are five streams: on Kafka, possibly five partitions, and a
        # token covers its own partition only, so wait for the furthest one of each
        self.assertEqual(h.wait_positions(self.qp, positions[:-1]), [])
        r = h.request(self.qp, "GET", "/recipes?tag=pagetest&limit=2", headers={"Stockpot-After": positions[-1]})
        self.assertEqual(r.status, 200, r)
        page1 = [x["id"] for x in r.json()["items"]]
        self.assertEqual(page1, ids[::-1][:2])
        link = r.header("Link")
        self.assertTrue(link and 'rel="next"' in link, r)
        self.assertIn("max_id=" + page1[-1], link)
        r = h.request(self.qp, "GET", "/recipes?tag=pagetest&limit=2&max_id=" + page1[-1])
        self.assertEqual([x["id"] for x in r.json()["items"]], ids[::-1][2:4])
        r = h.request(self.qp, "GET", "/recipes?tag=pagetest&limit=10&since_id=" + ids[2])
        self.assertEqual([x["id"] for x in r.json()["items"]], ids[::-1][:2])
        r = h.request(self.qp, "GET", "/recipes?tag=pagetest&limit=10")
        self.assertEqual([x["id"] for x in r.json()["items"]], ids[::-1])
        self.assertFalse(r.header("Link") and 'rel="next"' in r.header("Link"), r)

    def test_11_health_ready_metrics(self):
        for name, d in self.c.daemons.items():
            with self.subTest(name):
                for path in ("/healthz", "/readyz"):
                    r = h.request(d.port, "GET", path)
                    self.assertEqual(r.status, 200, (path, r))
                r = h.request(d.port, "GET", "/metrics")
                self.assertEqual(r.status, 200, r)
                self.assertIn(r.content_type, ("text/plain", "application/openmetrics-text"), r)
                text = r.body.decode()
                self.assertIn("# TYPE ", text)
                self.assertIn("_bucket{", text, "no latency histogram")
        m = h.request(self.cp, "GET", "/metrics").body.decode()
        self.assertRegex(m, r'status="201"', "command-api metrics lack requests by status")
        self.assertRegex(m, r'status="4\d\d"')
        pm = h.request(self.c.ports["projector"], "GET", "/metrics").body.decode()
        self.assertIn("dead", pm, "projector metrics lack dead letters")

    def test_12_help(self):
        for b in ("stockpot-command-api", "stockpot-projector", "stockpot-query-api", "stockpot-replay"):
            with self.subTest(b):
                p = subprocess.run([h.binary(b), "--help"], capture_output=True, timeout=30, env=self.c.env)
                self.assertEqual(p.returncode, 0, p)
                self.assertTrue(p.stdout.strip() or p.stderr.strip(), b)

    def audit_lines(self):
        """Every JSON audit line the command-api wrote so far, in order."""
        out = []
        for line in self.c["command"].log_text().splitlines():
            try:
                rec = h.json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("audit") is True:
                out.append(rec)
        return out

    def test_13_audit_lines(self):
        # one flow of a fresh user: each step must write exactly one audit line of its event
        n0 = len(self.audit_lines())
        pw = "auditor password 7"
        a = h.register_and_login(self.cp, "auditor", pw)
        uid = a["user_id"]
        problem(self, h.request(self.cp, "POST", "/auth/login", {"username": "auditor", "password": "not it at all"}), 401)
        r = h.request(self.cp, "POST", "/auth/refresh", {"refresh_token": a["refresh_token"]})
        self.assertEqual(r.status, 200, r)
        rotated = r.json()
        problem(self, h.request(self.cp, "POST", "/auth/refresh", {"refresh_token": a["refresh_token"]}), 401)
        s = h.request(self.cp, "POST", "/auth/login", {"username": "auditor", "password": pw}).json()
        self.assertEqual(h.request(self.cp, "POST", "/auth/logout", token=s["access_token"]).status, 200)

        lines = self.audit_lines()
        mine = [x for x in lines[n0:] if x.get("user_id") == uid]
        events = ("register", "login_ok", "login_failed", "refresh", "refresh_token_reuse", "logout")
        for ev in events:
            with self.subTest(ev):
                got = [x for x in mine if x.get("event") == ev]
                # login_ok twice: the first login and the one before logout
                self.assertEqual(len(got), 2 if ev == "login_ok" else 1, (ev, mine))
        self.assertEqual(sorted({x["event"] for x in mine}), sorted(events), mine)
        for x in lines:
            self.assertIsInstance(x.get("user_id"), str, x)
            self.assertTrue(x["user_id"].isdigit(), x)
            self.assertEqual(x.get("msg"), "audit", x)
            self.assertEqual(x.get("level"), "info", x)
            for key in x:
                self.assertNotIn("password", key, x)
                self.assertNotIn("token", key, x)
        # no secret anywhere in the command-api log (not only the audit lines)
        log = self.c["command"].log_text()
        secrets = [pw, "not it at all", "alice password 1", "bob password 12", "racer password",
                   a["access_token"], a["refresh_token"], rotated["access_token"], rotated["refresh_token"],
                   s["access_token"], s["refresh_token"], self.alice["access_token"],
                   self.alice["refresh_token"], self.bob["access_token"], self.bob["refresh_token"]]
        for secret in secrets:
            self.assertNotIn(secret, log, "a password or token is in the command-api log")
        self.assertNotIn("$argon2", log, "a password hash is in the command-api log")
        self.assertNotIn("eyJ", log, "something like a JWT is in the command-api log")

    def concurrently(self, fn, n):
        """Run fn(i) for i in range(n) in n threads released together; list of results."""
        barrier = threading.Barrier(n)
        out = [None] * n

        def run(i):
            barrier.wait()
            out[i] = fn(i)

        ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        return out

    def test_14_concurrent_decisions_in_one_batch(self):
        tok = self.alice["access_token"]
        r = self.post_recipe({"title": "contended", "ingredients": ["x"], "steps": ["y"]})
        self.assertEqual(r.status, 201, r)
        rid = r.json()["recipe_id"]
        n0 = self.c.log_count()
        # 8 writers holding version 1: exactly one wins
        res = self.concurrently(lambda i: h.request(
            self.cp, "PUT", "/recipes/" + rid, {"title": "writer %d" % i}, token=tok,
            headers={"If-Match": '"1"'}), 8)
        self.assertEqual(sorted(x.status for x in res), [200] + [412] * 7, res)
        self.assertEqual(self.c.log_count(), n0 + 1)
        # 6 registrations of one username: exactly one 201
        res = self.concurrently(lambda i: h.request(
            self.cp, "POST", "/auth/register",
            {"username": "racer", "email": "racer%d@example.com" % i, "password": "racer password"}), 6)
        self.assertEqual(sorted(x.status for x in res), [201] + [409] * 5, res)
        # 6 registrations of one email under different names: exactly one 201
        res = self.concurrently(lambda i: h.request(
            self.cp, "POST", "/auth/register",
            {"username": "mailer%d" % i, "email": "same@example.com", "password": "racer password"}), 6)
        self.assertEqual(sorted(x.status for x in res), [201] + [409] * 5, res)
        # 6 POSTs with one Idempotency-Key: one recipe
        n1 = self.c.log_count()
        body = {"title": "idem race", "ingredients": ["x"], "steps": ["y"]}
        res = self.concurrently(lambda i: self.post_recipe(body, headers={"Idempotency-Key": "race-1"}), 6)
        self.assertEqual([x.status for x in res], [201] * 6, res)
        self.assertEqual(len({x.json()["recipe_id"] for x in res}), 1, res)
        self.assertEqual(self.c.log_count(), n1 + 1)

    def test_15_header_cap_and_unknown_routes(self):
        r = h.request(self.cp, "GET", "/auth/validate", token=self.alice["access_token"],
                      headers={"X-Padding": "p" * 20000})
        self.assertIn(r.status, (400, 413, 431), r)
        problem(self, h.request(self.cp, "GET", "/nope"), 404)
        problem(self, h.request(self.qp, "GET", "/nope"), 404)
        problem(self, h.request(self.cp, "PATCH", "/recipes/1", {"title": "x"}, token=self.alice["access_token"]),
                (404, 405))
        # keep-alive: several requests on one connection
        cli = h.KeepAliveClient(self.qp)
        try:
            for _ in range(5):
                self.assertEqual(cli.request("GET", "/healthz").status, 200)
        finally:
            cli.close()

    def test_98_verify_and_dump(self):
        p = self.c.replay("verify")
        self.assertEqual(p.returncode, 0, p)
        out = self.c.replay("dump", "--type", "RecipeCreated").stdout
        lines = [l for l in out.splitlines() if l.strip()]
        self.assertGreater(len(lines), 5)
        evs = [h.json.loads(l) for l in lines]
        self.assertTrue(all(e["type"] == "RecipeCreated" for e in evs))
        e = [e for e in evs if e["data"]["title"] == RECIPE["title"]][0]
        self.assertEqual(e["specversion"], "1.0")
        self.assertEqual(e["data"]["ingredients"], RECIPE["ingredients"])
        self.assertTrue(e["stream"].startswith("recipe-"))
        full = self.c.replay("dump").stdout
        self.assertNotIn("alice password 1", full)
        self.assertNotIn(self.alice["refresh_token"], full, "plain refresh token in the log")

    def test_99_clean_shutdown_and_restart(self):
        codes = self.c.stop_all()
        self.assertEqual(codes, {"query": 0, "projector": 0, "command": 0})
        self.c.start_all()
        # state survives a restart: login works, the username is still taken
        r = h.request(self.cp, "POST", "/auth/login", {"username": "alice_e2e", "password": "alice password 1"})
        self.assertEqual(r.status, 200, r)
        r = h.request(self.cp, "POST", "/auth/register",
                      {"username": "alice_e2e", "email": "x@example.com", "password": "password123"})
        problem(self, r, 409)
        self.assertEqual(self.c.replay("verify").returncode, 0)


class ShortTokenLifetime(unittest.TestCase):
    """Access tokens really expire (jwt.ttl_s = 1) and refresh still works; SIGINT stops
    every daemon cleanly."""

    @classmethod
    def setUpClass(cls):
        cls.c = h.Cluster("shortttl", {"STOCKPOT_JWT_TTL_S": "1"})
        cls.c.start_all()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop_all()

    def test_expiry_then_refresh_then_sigint(self):
        cp = self.c.command_port
        s = h.register_and_login(cp, "shortlived", "short password")
        self.assertLessEqual(s["expires_in"], 1)
        self.assertEqual(h.request(cp, "GET", "/auth/validate", token=s["access_token"]).status, 200)
        time.sleep(2.2)
        n0 = self.c.log_count()
        problem(self, h.request(cp, "GET", "/auth/validate", token=s["access_token"]), 401)
        problem(self, h.request(cp, "POST", "/recipes", {"title": "t", "ingredients": ["x"], "steps": ["y"]},
                                token=s["access_token"]), 401)
        self.assertEqual(self.c.log_count(), n0)
        r = h.request(cp, "POST", "/auth/refresh", {"refresh_token": s["refresh_token"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(h.request(cp, "GET", "/auth/validate", token=r.json()["access_token"]).status, 200)
        for name in ("query", "projector", "command"):
            d = self.c[name]
            d.proc.send_signal(h.signal.SIGINT)
            self.assertEqual(d.proc.wait(30), 0, name)


@h.kafka_only("stops the Kafka cluster under the daemons")
class KafkaDown(unittest.TestCase):
    """Every broker gone: a command is refused with 503 (never a false 201, and nothing
    of it is read back later), and SIGTERM still stops every daemon promptly."""

    @classmethod
    def setUpClass(cls):
        cls.c = h.Cluster("kafkadown", {"STOCKPOT_KAFKA_TIMEOUT_MS": "3000"})
        cls.c.start_all()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop_all()

    def test_brokers_down_then_sigterm(self):
        cp = self.c.command_port
        s = h.register_and_login(cp, "kafkadown", "kafkadown password")
        r = h.request(cp, "POST", "/recipes", {"title": "before", "ingredients": ["x"], "steps": ["y"]},
                      token=s["access_token"])
        self.assertEqual(r.status, 201, r)
        g = h.get_after(self.c.query_port, "/recipes/" + r.json()["recipe_id"], r.json()["position"])
        self.assertEqual(g.status, 200, g)
        self.c.kafka.stop()
        t0 = time.monotonic()
        r = h.request(cp, "POST", "/recipes", {"title": "while down", "ingredients": ["x"], "steps": ["y"]},
                      token=s["access_token"], timeout=60)
        took = time.monotonic() - t0
        problem(self, r, 503)
        self.assertLess(took, 30, "a command waited %.1fs with kafka.timeout_ms = 3000" % took)
        for name in ("query", "projector", "command"):
            with self.subTest(name):
                t0 = time.monotonic()
                try:
                    code = self.c[name].stop(timeout=15)
                except AssertionError as e:  # stop() kills it after the timeout
                    code = str(e)
                self.assertEqual(code, 0, "%s on SIGTERM with every broker down (%.1fs)"
                                 % (name, time.monotonic() - t0))


if __name__ == "__main__":
    h.main()
