#!/usr/bin/env python3
"""End-to-end search (issue 9) on the backend SP_E2E_BACKEND selects (harness.py): recipes
and profiles created, updated and deleted through the write API show in /search/* with
Stockpot-After (read-your-writes on the search view's own checkpoint); bad input is 400
problem+json naming the parameter; `stockpot-replay rebuild search` while the query API
serves answers every request and ends with the checksum the view had."""

import os
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def search(port, path, after=None):
    """GET a search path (with Stockpot-After when given); the JSON body of a 200."""
    r = h.get_after(port, path, after) if after else h.request(port, "GET", path)
    if r.status != 200:
        raise AssertionError("GET %s: %r" % (path, r))
    return r


def ids(r):
    return [x["id"] for x in r.json()["hits"]]


class Search(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = h.Cluster("search")
        cls.c.start_all()
        cls.cmd, cls.qry = cls.c.command_port, cls.c.query_port
        cls.ana = h.register_and_login(cls.cmd, "ana_cook", "ana password 1")
        cls.bo = h.register_and_login(cls.cmd, "bo_baker", "bo password 1")

    @classmethod
    def tearDownClass(cls):
        cls.c.stop_all()

    def create(self, user, body):
        r = h.request(self.cmd, "POST", "/recipes", body, token=user["access_token"])
        self.assertEqual(r.status, 201, r)
        return r.json()

    def test_writes_show_in_search(self):
        cara = h.register_and_login(self.cmd, "cara_chef", "cara password 1")
        tok = cara["access_token"]
        brulee = self.create(cara, {
            "title": "Crème brûlée", "description": "A custard with a burnt sugar crust.",
            "ingredients": ["4 egg yolks", "500 ml cream", "80 g sugar"],
            "steps": ["Whisk the yolks with the sugar.", "Bake in a water bath at 150 °C."],
            "tags": ["Dessert", "French"]})
        salad = self.create(self.bo, {
            "title": "Kartoffelsalat", "language": "de",
            "ingredients": ["1 kg Kartoffeln", "1 Zwiebel", "Essig"],
            "steps": ["Die Kartoffeln kochen und in Scheiben schneiden."], "tags": ["Beilage"]})
        soup = self.create(cara, {
            "title": "Tomato soup", "ingredients": ["6 tomatoes", "1 onion"],
            "steps": ["Simmer the tomatoes with the onion."], "tags": ["Soup", "Vegan"]})

        # a token covers its own partition only (Kafka has several): wait for each one's
        self.assertEqual(h.wait_positions(self.qry, [brulee["position"], salad["position"],
                                                     soup["position"]],
                                          path="/search/recipes?q=the&limit=1"), [])
        # accents folded, typo tolerated (one typo in a 5+ letter word), highlight offsets
        r = search(self.qry, "/search/recipes?q=creme%20brulee")
        self.assertEqual(ids(r)[0], brulee["recipe_id"])
        hit = r.json()["hits"][0]
        self.assertEqual(hit["author"]["username"], "cara_chef")
        title = hit["title"].encode("utf-8")
        self.assertEqual([title[s:s + n].decode("utf-8") for s, n in hit["highlight"]["title"]],
                         ["Crème", "brûlée"])
        self.assertEqual(ids(search(self.qry, "/search/recipes?q=custrad"))[0], brulee["recipe_id"])
        # German stemming: "Kartoffel" finds "Kartoffeln"; the language filter
        self.assertIn(salad["recipe_id"], ids(search(self.qry, "/search/recipes?q=kartoffel")))
        self.assertEqual(ids(search(self.qry, "/search/recipes?q=kartoffel&language=en")), [])
        # filters and facets
        r = search(self.qry, "/search/recipes?q=the&tag=Vegan")
        self.assertEqual(ids(r), [soup["recipe_id"]])
        r = search(self.qry, "/search/recipes?q=the&author_id=" + cara["user_id"])
        self.assertEqual(sorted(ids(r)), sorted([brulee["recipe_id"], soup["recipe_id"]]))
        self.assertIn({"tag": "vegan", "count": 1}, r.json()["facets"]["tags"])
        r = search(self.qry, "/search/tags?q=de")
        self.assertEqual(r.json()["tags"], [{"tag": "dessert", "count": 1}])

        # an update changes what matches; a deletion removes it from every result
        r = h.request(self.cmd, "PUT", "/recipes/" + soup["recipe_id"],
                      {"title": "Gazpacho", "tags": ["Soup"]}, token=tok)
        self.assertEqual(r.status, 200, r)
        upd = r.json()
        self.assertEqual(ids(search(self.qry, "/search/recipes?q=gazpacho", upd["position"])),
                         [soup["recipe_id"]])
        self.assertEqual(ids(search(self.qry, "/search/recipes?q=the&tag=Vegan")), [])
        r = h.request(self.cmd, "DELETE", "/recipes/" + brulee["recipe_id"], token=tok)
        self.assertEqual(r.status, 200, r)
        gone = r.json()["position"]
        for q in ("creme", "custard", "sugar", "the"):
            self.assertNotIn(brulee["recipe_id"],
                             ids(search(self.qry, "/search/recipes?q=" + q, gone)), q)
        self.assertEqual(search(self.qry, "/search/tags?q=dessert").json()["tags"], [])

        # profiles: prefix and typos on username and full name
        r = h.request(self.cmd, "PUT", "/users/" + self.bo["user_id"],
                      {"full_name": "Bartholomew Oakley"}, token=self.bo["access_token"])
        self.assertEqual(r.status, 200, r)
        r = search(self.qry, "/search/users?q=barthol", r.json()["position"])
        self.assertEqual([u["id"] for u in r.json()["hits"]], [self.bo["user_id"]])
        self.assertEqual(r.json()["hits"][0]["full_name"], "Bartholomew Oakley")
        r = search(self.qry, "/search/users?q=ana_c")
        self.assertEqual([u["username"] for u in r.json()["hits"]], ["ana_cook"])
        r = search(self.qry, "/search/users?q=oakly")  # one typo
        self.assertEqual([u["id"] for u in r.json()["hits"]], [self.bo["user_id"]])

    def test_paging_and_link(self):
        made = [self.create(self.bo, {"title": "Pancake variation %d" % i,
                                      "ingredients": ["flour", "milk"], "steps": ["Fry."]})
                for i in range(5)]
        self.assertEqual(h.wait_positions(self.qry, [m["position"] for m in made],
                                          path="/search/recipes?q=pancake&limit=1"), [])
        first = search(self.qry, "/search/recipes?q=pancake&limit=2")
        self.assertEqual(first.json()["total_hits"], 5)
        link = first.header("Link")
        self.assertIsNotNone(link)
        self.assertIn('rel="next"', link)
        nxt = link[link.index("<") + 1:link.index(">")]
        second = search(self.qry, nxt)
        self.assertEqual(len(ids(second)), 2)
        self.assertEqual(set(ids(first)) & set(ids(second)), set())
        last = search(self.qry, "/search/recipes?q=pancake&limit=2&page=3")
        self.assertEqual(len(ids(last)), 1)
        self.assertIsNone(last.header("Link"))
        self.assertEqual(set(ids(first)) | set(ids(second)) | set(ids(last)),
                         {m["recipe_id"] for m in made})

    def test_bad_input(self):
        cases = [
            ("/search/recipes", "q"),
            ("/search/recipes?q=", "q"),
            ("/search/recipes?q=%20%20", "q"),
            ("/search/recipes?q=" + "a" * 300, "q"),
            ("/search/recipes?q=" + "+".join(["w%d" % i for i in range(40)]), "q"),
            ("/search/recipes?q=%FF%FE", "q"),
            ("/search/recipes?q=soup&limit=0", "limit"),
            ("/search/recipes?q=soup&limit=101", "limit"),
            ("/search/recipes?q=soup&page=0", "page"),
            ("/search/recipes?q=soup&page=x", "page"),
            ("/search/recipes?q=soup&author_id=abc", "author_id"),
            ("/search/recipes?q=soup&language=english!", "language"),
            ("/search/recipes?q=soup&color=red", "color"),
            ("/search/users?q=ana&tag=x", "tag"),
            ("/search/users", "q"),
            ("/search/tags?q=x&limit=1000", "limit"),
        ]
        for path, field in cases:
            r = h.request(self.qry, "GET", path)
            self.assertEqual(r.status, 400, (path, r))
            self.assertEqual(r.content_type, "application/problem+json", path)
            self.assertIn(field, [e["field"] for e in r.json().get("errors", [])], (path, r))
        r = h.request(self.qry, "GET", "/search/recipes?q=soup", headers={"Stockpot-After": "x"})
        self.assertEqual(r.status, 400, r)

    def test_rebuild_while_serving(self):
        made = self.create(self.ana, {"title": "Rebuild risotto", "ingredients": ["rice"],
                                      "steps": ["Stir."]})
        search(self.qry, "/search/recipes?q=risotto", made["position"])
        before = self.c.replay("checksum", "search").stdout.strip()
        stop = threading.Event()
        results = {"ok": 0, "bad": []}

        def reader():
            cli = h.KeepAliveClient(self.qry, timeout=30)
            try:
                while not stop.is_set():
                    r = cli.request("GET", "/search/recipes?q=risotto")
                    if r.status == 200 and made["recipe_id"] in ids(r):
                        results["ok"] += 1
                    else:
                        results["bad"].append(r)
            finally:
                cli.close()

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            out = self.c.replay("rebuild", "search", timeout=300)
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        sys.stderr.write("rebuild while serving: %s; %d answers\n" % (out.stdout.strip(), results["ok"]))
        self.assertEqual(results["bad"], [])
        self.assertGreater(results["ok"], 0)
        self.assertEqual(self.c.replay("checksum", "search").stdout.strip(), before)
        # the projector follows the new generation
        later = self.create(self.ana, {"title": "Risotto after the rebuild",
                                       "ingredients": ["rice"], "steps": ["Stir."]})
        r = search(self.qry, "/search/recipes?q=risotto", later["position"])
        self.assertIn(later["recipe_id"], ids(r))


class SearchOnlyProjector(unittest.TestCase):
    """projector.projections = search: a projector process that runs the search projection
    alone, without PostgreSQL (here an unreachable one), keeps the view current while the
    PostgreSQL read model is left to another process (none here)."""

    @classmethod
    def setUpClass(cls):
        cls.c = h.Cluster("searchonly")
        cls.c.migrate()
        cls.c["command"].start()
        cls.c["query"].start()
        cls.c.env = dict(cls.c.env, STOCKPOT_PROJECTOR_PROJECTIONS="search",
                         STOCKPOT_PG_CONNINFO="host=/nonexistent-socket-dir dbname=none")
        cls.c["projector"].start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop_all()

    def test_search_without_postgresql(self):
        user = h.register_and_login(self.c.command_port, "solo_cook", "solo password 1")
        r = h.request(self.c.command_port, "POST", "/recipes",
                      {"title": "Solo shakshuka", "ingredients": ["eggs"], "steps": ["Poach."]},
                      token=user["access_token"])
        self.assertEqual(r.status, 201, r)
        made = r.json()
        r = search(self.c.query_port, "/search/recipes?q=shakshuka", made["position"])
        self.assertEqual(ids(r), [made["recipe_id"]])
        self.assertEqual(self.c.sql("SELECT count(*) FROM stockpot.recipes"), "0")


if __name__ == "__main__":
    h.main()
