#!/usr/bin/env bash
# Benchmarks the social read side (issue 4) on a generated graph (deploy/local/gen-social.py):
#  1. loads the graph through the write API (users, Zipf recipes, power-law follows, likes,
#     comments) and reports how long it took;
#  2. requests/s and p50/p99 latency of GET /feed (bearer of a generated user) and
#     GET /users/{id} under concurrent keep-alive load (tests/bench/bench-get.py);
#  3. end-to-end freshness: from a command's answer (like / unlike, comment) to the query
#     API showing it, polling WITHOUT Stockpot-After, p50/p99;
# then prints the machine. Loopback only; the load clients share the cores with the daemons.
#
#  2b. the feed query alone in PostgreSQL (EXPLAIN ANALYZE execution time) for the same
#     users: the fan-out read model (feed_entries) against the pull query it replaced
#     (recipes of followees via follows), p50/p99;
#
# usage: tests/bench/bench-social.sh [--users N] [--connections N] [--duration-s S]
#                                    [--samples N] [--data FILE] [--build DIR]
# --data: recipes JSONL for the generator (default deploy/data/sample.jsonl); e.g.
# ../shared/data/recipes.jsonl (16,749 recipes) for a denser feed, read in place.
# PostgreSQL comes from pg_virtualenv (a throwaway cluster); the daemons from build-release/
# (SP_BENCH_BUILD or --build), built (Release) if missing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USERS=2000
CONNECTIONS=16
DURATION=10
SAMPLES=200
while [ $# -gt 0 ]; do
    case "$1" in
    --users) USERS=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --duration-s) DURATION=$2; shift 2 ;;
    --samples) SAMPLES=$2; shift 2 ;;
    --data) DATA=$(realpath "$2"); shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench-social.sh: unknown argument \"$1\"" >&2; exit 2 ;;
    esac
done
export SP_BENCH_BUILD=$BUILD

if [ -z "${SP_BENCH_IN_PG:-}" ]; then
    bench_build_missing stockpot-command-api stockpot-projector stockpot-query-api stockpot-replay
    bench_reexec_in_pg --users "$USERS" --connections "$CONNECTIONS" --duration-s "$DURATION" \
        --samples "$SAMPLES" --data "$DATA" --build "$BUILD"
fi

bench_stack_init bench-social
# a big load registers and logs in thousands of users: cheap argon2 is the daemon's config
export STOCKPOT_ARGON2_T_COST=1 STOCKPOT_ARGON2_M_COST_KIB=1024
# ... and logs them in from one address
export STOCKPOT_AUTH_RATE_LIMIT_PER_MINUTE=0

bench_print_machine

"$BIN/stockpot-replay" migrate >/dev/null 2>>"$TMP/replay.log"
start command
start projector
start query

echo
echo "== 1. generated graph: $USERS users, recipes of $(basename "$DATA") (deploy/local/gen-social.py --seed 1)"
t0=$(date +%s.%N)
python3 "$ROOT/deploy/local/gen-social.py" --command "http://127.0.0.1:$STOCKPOT_COMMAND_PORT" \
    --query "http://127.0.0.1:$STOCKPOT_QUERY_PORT" --users "$USERS" --seed 1 --connections 8 --data "$DATA" --json \
    >"$TMP/gen.json" 2>"$TMP/gen.log" || { cat "$TMP/gen.log"; exit 1; }
t1=$(date +%s.%N)
cat "$TMP/gen.log"
python3 -c "import sys; print('loaded and applied in %.1f s' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$t1"
psql -X -At -d "$DB" -c "SELECT 'rows: users ' || (SELECT count(*) FROM stockpot.users) || ', recipes ' ||
  (SELECT count(*) FROM stockpot.recipes) || ', follows ' || (SELECT count(*) FROM stockpot.follows) ||
  ', likes ' || (SELECT count(*) FROM stockpot.likes) || ', comments ' || (SELECT count(*) FROM stockpot.comments) ||
  ', notifications ' || (SELECT count(*) FROM stockpot.notifications) ||
  ', feed_entries ' || (SELECT count(*) FROM stockpot.feed_entries) ||
  '; max followers ' || (SELECT max(follower_count) FROM stockpot.users)"

# request lists: /feed as 200 generated users (their own tokens), /users/{id} over every user
python3 - "$STOCKPOT_COMMAND_PORT" "$USERS" "$TMP/feed.txt" "$TMP/feed-users.txt" <<'EOF'
import http.client, json, sys
port, users, out, ids = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
with open(out, "w") as f, open(ids, "w") as g:
    for i in range(0, users, max(1, users // 200)):
        c.request("POST", "/auth/login", body=json.dumps({"username": "g1_%d" % i, "password": "gen-social password"}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse(); js = json.loads(r.read())
        f.write("/feed\t%s\n" % js["access_token"])
        g.write("%s\n" % js["user_id"])
EOF
psql -X -At -d "$DB" -c "SELECT '/users/' || id FROM stockpot.users ORDER BY random()" >"$TMP/users.txt"

echo
echo "== 2. GET load ($CONNECTIONS keep-alive connections, ${DURATION} s each)"
python3 "$ROOT/tests/bench/bench-get.py" --port "$STOCKPOT_QUERY_PORT" --paths "$TMP/feed.txt" \
    --connections "$CONNECTIONS" --duration-s "$DURATION" --label "GET /feed" || true
python3 "$ROOT/tests/bench/bench-get.py" --port "$STOCKPOT_QUERY_PORT" --paths "$TMP/users.txt" \
    --connections "$CONNECTIONS" --duration-s "$DURATION" --label "GET /users/{id}" || true

echo
echo "== 2b. first feed page (20) in PostgreSQL alone, EXPLAIN ANALYZE execution time, same users"
python3 - "$DB" "$TMP/feed-users.txt" <<'EOF'
import re, subprocess, sys
db, ids = sys.argv[1], [l.strip() for l in open(sys.argv[2]) if l.strip()]
queries = {
    "fan-out (feed_entries)": "SELECT r.id, r.title FROM stockpot.feed_entries e JOIN stockpot.recipes r "
                              "ON r.id = e.recipe_id WHERE e.user_id = %s ORDER BY e.recipe_id DESC LIMIT 20",
    "pull (follows x recipes)": "SELECT r.id, r.title FROM stockpot.recipes r WHERE (r.author_id = %s OR "
                                "r.author_id IN (SELECT f.followee_id FROM stockpot.follows f WHERE "
                                "f.follower_id = %s)) ORDER BY r.id DESC LIMIT 20",
}
for name, q in queries.items():
    sql = "SET jit = off;\n" + "".join("EXPLAIN (ANALYZE, TIMING OFF) " + q.replace("%s", u) + ";\n" for u in ids for _ in range(2))
    out = subprocess.run(["psql", "-X", "-At", "-d", db], input=sql, capture_output=True, text=True, check=True).stdout
    xs = sorted(float(m) for m in re.findall(r"Execution Time: ([0-9.]+) ms", out)[1::2])  # each one's second run
    p = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))]
    print("%-26s n=%d  p50 %.3f ms  p99 %.3f ms  max %.3f ms" % (name, len(xs), p(0.5), p(0.99), xs[-1]))
EOF

echo
echo "== 3. freshness: command answered -> visible on the query API (polling, no Stockpot-After),"
echo "   and -> the recipe author's notification on an open GET /notifications/stream (SSE)"
python3 - "$STOCKPOT_COMMAND_PORT" "$STOCKPOT_QUERY_PORT" "$SAMPLES" "$DB" <<'EOF'
import http.client, json, queue, socket, subprocess, sys, threading, time
cport, qport, samples, db = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cc = http.client.HTTPConnection("127.0.0.1", cport, timeout=60)
qc = http.client.HTTPConnection("127.0.0.1", qport, timeout=60)
def call(conn, method, path, body=None, tok=None):
    h = {"Content-Type": "application/json"}
    if tok:
        h["Authorization"] = "Bearer " + tok
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=h)
    r = conn.getresponse(); data = r.read()
    return r.status, (json.loads(data) if data else None)
st, js = call(cc, "POST", "/auth/login", {"username": "g1_1", "password": "gen-social password"})
tok, me = js["access_token"], js["user_id"]
rid, author = subprocess.run(["psql", "-X", "-At", "-F", " ", "-d", db, "-c",
                              "SELECT r.id, u.username FROM stockpot.recipes r JOIN stockpot.users u "
                              "ON u.id = r.author_id WHERE r.author_id <> %s ORDER BY r.id LIMIT 1" % me],
                             capture_output=True, text=True, check=True).stdout.split()
st, js = call(cc, "POST", "/auth/login", {"username": author, "password": "gen-social password"})
events = queue.Queue()  # (arrival time, notification) of the author's stream
def sse_reader(token):
    s = socket.create_connection(("127.0.0.1", qport))
    s.sendall(("GET /notifications/stream HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n" % token).encode())
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    events.put((time.perf_counter(), json.loads(line[6:])))
threading.Thread(target=sse_reader, args=(js["access_token"],), daemon=True).start()
time.sleep(0.5)  # the stream is open
def poll(path, ok, deadline_s=30):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        st, js = call(qc, "GET", path, tok=tok)
        if st == 200 and ok(js):
            return time.perf_counter()
    raise SystemExit("not visible within %d s: %s" % (deadline_s, path))
def pcts(name, xs):
    xs.sort()
    p = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1e3
    print("%-26s n=%d  p50 %.2f ms  p99 %.2f ms  max %.2f ms" % (name, len(xs), p(0.5), p(0.99), xs[-1] * 1e3))
def sse_event(t0, ok, deadline_s=30):
    while True:
        t, n = events.get(timeout=deadline_s)
        if ok(n):
            return t - t0
call(cc, "DELETE", "/recipes/%s/like" % rid, tok=tok)
likes, comments, sse = [], [], []
for i in range(samples):
    want = i % 2 == 0
    st, js = call(cc, "POST" if want else "DELETE", "/recipes/%s/like" % rid, tok=tok)
    t0 = time.perf_counter()
    assert st == 200, (st, js)
    likes.append(poll("/recipes/%s" % rid, lambda r: r.get("liked_by_me") is want) - t0)
    if want:  # each new like notifies the author
        sse.append(sse_event(t0, lambda n: n["kind"] == "like" and n["actor_id"] == me))
for i in range(max(1, samples // 2)):
    st, js = call(cc, "POST", "/recipes/%s/comments" % rid, {"content": "fresh %d" % i}, tok=tok)
    t0 = time.perf_counter()
    assert st == 201, (st, js)
    cid = js["comment_id"]
    comments.append(poll("/recipes/%s/comments?limit=1" % rid,
                         lambda r: r["items"] and r["items"][0]["id"] == cid) - t0)
    sse.append(sse_event(t0, lambda n: n["kind"] == "comment" and n.get("comment_id") == cid))
pcts("like/unlike -> GET recipe", likes)
pcts("comment -> GET comments", comments)
pcts("like, comment -> SSE event", sse)
EOF
