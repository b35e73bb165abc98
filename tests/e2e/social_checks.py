"""Acceptance checks of the social read model (issue 4), shared by test_social.py (a small
generated load) and test_social_load.py (the 2,000-user one): every counter equals a count
over its rows, the feed read model equals its definition over follows and recipes, the
generator's operations are all in the tables, and `stockpot-replay rebuild pg` gives the
same tables (checksum, and the rows named when they differ)."""

import json
import subprocess
import sys

import harness as h

GEN = h.os.path.join(h.REPO_ROOT, "deploy", "local", "gen-social.py")

# name -> SQL counting violations (each must be "0")
INVARIANTS = {
    "follower_count": "SELECT count(*) FROM stockpot.users u WHERE follower_count <> "
    "(SELECT count(*) FROM stockpot.follows f WHERE f.followee_id = u.id)",
    "following_count": "SELECT count(*) FROM stockpot.users u WHERE following_count <> "
    "(SELECT count(*) FROM stockpot.follows f WHERE f.follower_id = u.id)",
    "recipe_count": "SELECT count(*) FROM stockpot.users u WHERE recipe_count <> "
    "(SELECT count(*) FROM stockpot.recipes r WHERE r.author_id = u.id)",
    "like_count": "SELECT count(*) FROM stockpot.recipes r WHERE like_count <> "
    "(SELECT count(*) FROM stockpot.likes l WHERE l.recipe_id = r.id)",
    "comment_count": "SELECT count(*) FROM stockpot.recipes r WHERE comment_count <> "
    "(SELECT count(*) FROM stockpot.comments c WHERE c.recipe_id = r.id)",
    "self follows": "SELECT count(*) FROM stockpot.follows WHERE follower_id = followee_id",
    "self notifications": "SELECT count(*) FROM stockpot.notifications WHERE user_id = actor_id",
    # both directions of the set difference between feed_entries and its definition
    "feed entries": "WITH want AS (SELECT author_id AS u, id AS r FROM stockpot.recipes UNION "
    "SELECT f.follower_id, r.id FROM stockpot.follows f JOIN stockpot.recipes r "
    "ON r.author_id = f.followee_id), got AS (SELECT user_id, recipe_id FROM stockpot.feed_entries) "
    "SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT SELECT * FROM got) a) + "
    "(SELECT count(*) FROM (SELECT * FROM got EXCEPT SELECT * FROM want) b)",
}

# the tables of the "pg" projection, for naming the rows a rebuild changed
TABLES = ("users", "recipes", "recipe_tags", "follows", "likes", "comments", "notifications",
          "notification_reads", "sessions", "feed_entries")


def generate(tc, cluster, *args, timeout=1800):
    """Run gen-social.py against the cluster with @args; returns its counts (asserted ok)."""
    p = subprocess.run([sys.executable, GEN, "--command", "http://127.0.0.1:%d" % cluster.command_port,
                        "--query", "http://127.0.0.1:%d" % cluster.query_port, "--json"] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(p.stderr)
    tc.assertEqual(p.returncode, 0, p.stdout[-2000:] + p.stderr[-4000:])
    counts = json.loads(p.stdout.strip().splitlines()[-1])
    tc.assertEqual(counts["failures"], 0)
    return counts


def assert_invariants(tc, cluster, when=""):
    for name, sql in INVARIANTS.items():
        tc.assertEqual(cluster.sql(sql), "0", name + when)


def assert_generated_rows(tc, cluster, counts):
    """The rows of the generated users equal the generator's counts of what it left."""
    pfx = counts["prefix"].replace("_", "\\_")
    tc.assertEqual(int(cluster.sql("SELECT count(*) FROM stockpot.users WHERE username LIKE '%s%%'" % pfx)),
                   counts["users"], "users")
    by_user = {
        "follows": "SELECT count(*) FROM stockpot.follows f JOIN stockpot.users u ON u.id = f.follower_id "
        "WHERE u.username LIKE '%s%%'",
        "likes": "SELECT count(*) FROM stockpot.likes l JOIN stockpot.users u ON u.id = l.user_id "
        "WHERE u.username LIKE '%s%%'",
        "comments": "SELECT count(*) FROM stockpot.comments c JOIN stockpot.users u ON u.id = c.user_id "
        "WHERE u.username LIKE '%s%%'",
    }
    for name, sql in by_user.items():
        tc.assertEqual(int(cluster.sql(sql % pfx)), counts[name], name)


def snapshot(cluster):
    """{table: [row text]} of the projection's tables."""
    return {t: cluster.sql("SELECT t::text FROM stockpot.%s t ORDER BY 1" % t).splitlines() for t in TABLES}


def assert_rebuild_identical(tc, cluster, timeout=1800):
    """Checksum the live read model, rebuild it from the log with the projector stopped,
    and require the same checksum and rows; the invariants hold again after. Returns the
    rebuild's stdout (its figures)."""
    a = cluster.replay("checksum", "pg").stdout.strip()
    tc.assertTrue(a)
    before = snapshot(cluster)
    cluster["projector"].stop()
    try:
        out = cluster.replay("rebuild", "pg", timeout=timeout).stdout
        b = cluster.replay("checksum", "pg").stdout.strip()
        after = snapshot(cluster)
    finally:
        cluster["projector"].start()
    diff = []
    for t in before:
        x, y = set(before[t]), set(after[t])
        if x != y:
            diff.append("%s: live only %s; rebuilt only %s" % (t, sorted(x - y)[:5], sorted(y - x)[:5]))
    tc.assertEqual(diff, [], "rebuilt rows differ from the live projection")
    tc.assertEqual(a, b, "rebuilt tables differ from the live projection (checksum)")
    assert_invariants(tc, cluster, " after rebuild")
    return out
