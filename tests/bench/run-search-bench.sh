#!/usr/bin/env bash
# Search benchmark (issue 9): Stockpot's search view over HTTP against Xapian and PostgreSQL
# full-text search, in one run on this machine (loopback only, bounded in count and time).
# For each engine: index build time and size, queries/s and p50/p99 latency, and the mean
# overlap of its top 10 with Stockpot's (tests/bench/search/compare.py says how).
#  1. imports --data through the write API (deploy/local/import-recipes.py --id-map) with
#     every daemon running, waits until the search projection has caught up;
#  2. GET /search/recipes for every query of tests/bench/search/queries.txt: bench_http
#     --get-paths over --connections keep-alive connections, then once more one query at a
#     time on one connection (Stockpot's top 10s and its sequential latency);
#  3. times `stockpot-replay rebuild search` and measures the view's disk usage (du);
#  4. runs the peers (search/peer_xapian.py, search/peer_pg.py) on the recipes the write API
#     accepted (the lines of the id map) and prints compare.py's table (the machine first).
# Without the search endpoint (query API answers 404) the Stockpot steps are skipped and
# the peers are compared with each other.
#
# usage: tests/bench/run-search-bench.sh [--data FILE] [--connections N] [--requests N]
#            [--repeat K] [--build DIR] [--out DIR]
#   --data FILE   default ../shared/data/recipes.jsonl (read in place, never copied)
#   --repeat K    timed passes over the queries of the sequential runs (default 10)
#   --out DIR     keep the id map, top-10 files, stats and tool outputs in DIR
# PostgreSQL comes from pg_virtualenv (a throwaway cluster); the daemons from build-release/,
# built (Release) if missing; the peers need Debian's python3-xapian and python3-psycopg2
# (deploy/install-deps.sh), run with /usr/bin/python3 (SP_BENCH_PYTHON overrides it).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA=$(realpath -m "$ROOT/../shared/data/recipes.jsonl")
CONNECTIONS=16
REQUESTS=20000
REPEAT=10
OUT=
PY=${SP_BENCH_PYTHON:-/usr/bin/python3}
SEARCH=$ROOT/tests/bench/search
QUERIES=$SEARCH/queries.txt
while [ $# -gt 0 ]; do
    case "$1" in
    --data) DATA=$(realpath "$2"); shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "run-search-bench.sh: unknown argument \"$1\"" >&2; exit 2 ;;
    esac
done
export SP_BENCH_BUILD=$BUILD

if [ -z "${SP_BENCH_IN_PG:-}" ]; then
    if ! "$PY" -c 'import xapian, psycopg2' 2>/dev/null; then
        echo "run-search-bench.sh: $PY lacks xapian or psycopg2: run deploy/install-deps.sh" >&2
        exit 1
    fi
    bench_build_missing --all stockpot-command-api stockpot-projector stockpot-query-api stockpot-replay bench_http
    bench_reexec_in_pg --data "$DATA" --connections "$CONNECTIONS" --requests "$REQUESTS" \
        --repeat "$REPEAT" --build "$BUILD" ${OUT:+--out "$OUT"}
fi

bench_stack_init search
export STOCKPOT_AUTH_RATE_LIMIT_PER_MINUTE=0
# where the LMDB views live (config key views.dir); the search view is views.dir/search
export STOCKPOT_VIEWS_DIR=$TMP/views
SEARCH_VIEW=$STOCKPOT_VIEWS_DIR/search
RES=${OUT:-$TMP/results}
mkdir -p "$RES"

stop() { # name
    kill -TERM "${PIDS[$1]}"
    wait "${PIDS[$1]}" || true
    unset "PIDS[$1]"
}
now_s() { date +%s.%N; }
secs() { python3 -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }
du_bytes() { du -s --block-size=1 "$1" | cut -f1; } # allocated bytes, as du counts them

# search_status: HTTP status of one search on the query API (000: no answer)
search_status() {
    python3 - "$STOCKPOT_QUERY_PORT" <<'EOF'
import http.client, sys
try:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
    c.request("GET", "/search/recipes?q=bread&limit=1")
    print(c.getresponse().status)
except OSError:
    print("000")
EOF
}

# wait_search_caught_up: until the projector's /metrics show the search projection at the
# end of the log: on every partition stockpot_projection_lag_events is 0 and
# stockpot_projection_checkpoint is at least the pg projection's (which the importer's
# --query-url wait saw apply the last recipe), twice in a row 0.2 s apart. Assumes the
# search projection is registered as "search" in the same projector daemon as "pg".
# Exits after 900 s.
wait_search_caught_up() {
    python3 - "$STOCKPOT_PROJECTOR_PORT" <<'EOF'
import http.client, re, sys, time
port = int(sys.argv[1])
SAMPLE = re.compile(r'^(stockpot_projection_(?:lag_events|checkpoint))\{([^}]*)\} (\S+)$')

def gauges():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    out = {}
    for row in c.getresponse().read().decode().splitlines():
        m = SAMPLE.match(row)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            key = (m.group(1), labels.get("projection"), labels.get("partition"))
            out[key] = float(m.group(3))
    return out

def caught_up(g):
    parts = [p for (name, proj, p) in g if name == "stockpot_projection_checkpoint" and proj == "pg"]
    if not parts:
        return False
    for p in parts:
        lag = g.get(("stockpot_projection_lag_events", "search", p))
        cp = g.get(("stockpot_projection_checkpoint", "search", p))
        if lag is None or cp is None or lag != 0 or cp < g[("stockpot_projection_checkpoint", "pg", p)]:
            return False
    return True

deadline = time.monotonic() + 900
streak = 0
while time.monotonic() < deadline:
    streak = streak + 1 if caught_up(gauges()) else 0
    if streak == 2:
        sys.exit(0)
    time.sleep(0.2)
sys.exit('search projection did not catch up in 900 s (is it registered as "search"?)')
EOF
}

# get_paths QUERIES OUT: one percent-encoded GET /search/recipes path per query
get_paths() {
    python3 - "$1" >"$2" <<'EOF'
import sys, urllib.parse
for q in open(sys.argv[1], encoding="utf-8"):
    if q.strip():
        print("/search/recipes?q=%s&limit=10" % urllib.parse.quote(q.strip(), safe=""))
EOF
}

# stockpot_top IDMAP TOPOUT STATSOUT: every query once on one keep-alive connection (warm-up
# pass, whose hits make the top-10 file, ids mapped to lines by the id map), then REPEAT
# timed passes one query at a time; writes a compare.py stats line.
stockpot_top() {
    python3 - "$STOCKPOT_QUERY_PORT" "$QUERIES" "$1" "$2" "$REPEAT" >"$3" <<'EOF'
import http.client, json, sys, time, urllib.parse
port, queries, idmap, top_out, repeat = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
line_of = {}
for row in open(idmap, encoding="utf-8"):
    f = row.split()
    if len(f) == 2:
        line_of[f[1]] = int(f[0])
qs = [q.strip() for q in open(queries, encoding="utf-8") if q.strip()]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

def get(q):
    c.request("GET", "/search/recipes?q=%s&limit=10" % urllib.parse.quote(q, safe=""))
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit("GET /search/recipes?q=%s -> %d %s" % (q, r.status, body[:300]))
    return body

top, unknown = {}, 0
for q in qs:
    hits = json.loads(get(q))["hits"]
    lines = []
    for h in hits[:10]:
        if str(h["id"]) in line_of:
            lines.append(line_of[str(h["id"])])
        else:  # not an imported recipe: counts in the list, matches no peer's line
            unknown += 1
            lines.append(-unknown)
    top[q] = lines
json.dump(top, open(top_out, "w", encoding="utf-8"), indent=0)
lat = []
t0 = time.perf_counter()
for _ in range(repeat):
    for q in qs:
        s = time.perf_counter()
        get(q)
        lat.append(time.perf_counter() - s)
wall = time.perf_counter() - t0
lat.sort()
pct = lambda p: lat[min(max((p * len(lat) + 99) // 100, 1), len(lat)) - 1] * 1000.0
print(json.dumps({"engine": "stockpot",
                  "conditions": "HTTP loopback, 1 keep-alive connection, one query at a time (Python client)",
                  "queries": len(qs), "repeat": repeat, "qps": round(len(lat) / wall, 1),
                  "p50_ms": round(pct(50), 4), "p99_ms": round(pct(99), 4),
                  "max_ms": round(lat[-1] * 1000.0, 4), "unknown_ids": unknown,
                  "no_hits": [q for q in qs if not top[q]], "top": top_out}))
EOF
}

# stockpot_http_stats BENCH_HTTP_OUTPUT TOP: bench_http's figures as a compare.py stats line
stockpot_http_stats() {
    python3 - "$1" "$2" "${3:-$CONNECTIONS}" "$(nproc)" <<'EOF'
import json, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
qps = re.search(r"^requests/s:\s+(\S+)", text, re.M)
lat = re.search(r"^latency ms:\s+p50 (\S+)\s+p90 (\S+)\s+p99 (\S+)\s+max (\S+)", text, re.M)
req = re.search(r"^requests:.*", text, re.M)
print(json.dumps({"engine": "stockpot",
                  "conditions": "HTTP loopback, bench_http, %s keep-alive connections, load "
                                "generator on the same %s cores" % (sys.argv[3], sys.argv[4]),
                  "qps": float(qps.group(1)) if qps else None,
                  "p50_ms": float(lat.group(1)) if lat else None,
                  "p99_ms": float(lat.group(3)) if lat else None,
                  "max_ms": float(lat.group(4)) if lat else None,
                  "requests": req.group(0) if req else None, "top": sys.argv[2]}))
EOF
}

# with_build STATS BUILD_S INDEX_BYTES: STATS (one JSON line) with the build figures set
with_build() {
    python3 -c 'import json, sys
d = json.loads(sys.argv[1])
d["build_s"] = float(sys.argv[2]) if sys.argv[2] != "-" else None
d["index_bytes"] = int(sys.argv[3]) if sys.argv[3] != "-" else None
print(json.dumps(d))' "$@"
}

bench_print_machine
echo "data:   $DATA ($(wc -l <"$DATA") recipes); $(wc -l <"$QUERIES") queries from $QUERIES"
echo "results: $RES${OUT:+ (kept)}"

"$BIN/stockpot-replay" migrate >/dev/null 2>>"$TMP/replay.log"
start command
start query
start projector

echo
echo "== 1. import through the write API (every daemon running)"
t0=$(now_s)
"$PY" "$ROOT/deploy/local/import-recipes.py" --data "$DATA" --username search_bench \
    --url "http://127.0.0.1:$STOCKPOT_COMMAND_PORT" --query-url "http://127.0.0.1:$STOCKPOT_QUERY_PORT" \
    --id-map "$RES/ids.tsv" >"$RES/import.log" 2>&1 || { tail -5 "$RES/import.log"; exit 1; }
t1=$(now_s)
grep -E '^import: (done|projected)' "$RES/import.log" || true
echo "imported $(wc -l <"$RES/ids.tsv") recipes in $(secs "$t0" "$t1") s (until the pg projection showed the last one)"

STATUS=$(search_status)
HAVE_SEARCH=0
if [ "$STATUS" = 200 ]; then
    HAVE_SEARCH=1
    wait_search_caught_up
    t2=$(now_s)
    echo "search projection caught up $(secs "$t1" "$t2") s after that"
    LIVE_BYTES=$(du_bytes "$SEARCH_VIEW" 2>/dev/null || echo "-")
    echo "search view built live: ${LIVE_BYTES} bytes (du of $SEARCH_VIEW)"
else
    echo "GET /search/recipes answers $STATUS: no Stockpot search yet; its steps are skipped"
fi

STATS=()
if [ $HAVE_SEARCH = 1 ]; then
    get_paths "$QUERIES" "$RES/paths.txt"
    echo
    echo "== 2. GET /search/recipes: bench_http, $CONNECTIONS connections, $REQUESTS requests"
    "$BIN/bench_http" --port "$STOCKPOT_QUERY_PORT" --get-paths "$RES/paths.txt" \
        --connections "$CONNECTIONS" --requests "$REQUESTS" --duration-s 300 | tee "$RES/bench_http.txt" || true
    echo "then one query at a time on one connection: 1 warm-up pass (the top 10s) + $REPEAT timed"
    stockpot_top "$RES/ids.tsv" "$RES/stockpot-top.json" "$RES/stockpot-serial.json"
    stockpot_http_stats "$RES/bench_http.txt" "$RES/stockpot-top.json" >"$RES/stockpot-http.json"
    echo "and bench_http on 1 connection (latency without queueing), $((REQUESTS / 4)) requests"
    "$BIN/bench_http" --port "$STOCKPOT_QUERY_PORT" --get-paths "$RES/paths.txt" \
        --connections 1 --requests $((REQUESTS / 4)) --duration-s 300 | tee "$RES/bench_http1.txt" || true
    stockpot_http_stats "$RES/bench_http1.txt" "$RES/stockpot-top.json" 1 >"$RES/stockpot-http1.json"

    stop projector
    stop query
    EVENTS=$("$BIN/stockpot-replay" dump 2>/dev/null | wc -l)
    echo
    echo "== 3. stockpot-replay rebuild search ($EVENTS events; projector and query API stopped)"
    BUILD_S=- INDEX_BYTES=-
    t0=$(now_s)
    if "$BIN/stockpot-replay" rebuild search 2>>"$TMP/replay.log"; then
        t1=$(now_s)
        BUILD_S=$(secs "$t0" "$t1")
        INDEX_BYTES=$(du_bytes "$SEARCH_VIEW" 2>/dev/null || echo "-")
        echo "rebuild took $BUILD_S s (wall clock, incl. start-up); view: $INDEX_BYTES bytes (du of $SEARCH_VIEW)"
        [ "$INDEX_BYTES" != - ] || echo "warning: no view at $SEARCH_VIEW (views.dir not honoured?)"
    else
        echo "rebuild search failed:"
        tail -5 "$TMP/replay.log"
    fi
    with_build "$(cat "$RES/stockpot-http.json")" "$BUILD_S" "$INDEX_BYTES" >"$RES/stockpot-http.json.new"
    mv "$RES/stockpot-http.json.new" "$RES/stockpot-http.json"
    for f in stockpot-http1 stockpot-serial; do
        with_build "$(cat "$RES/$f.json")" "$BUILD_S" "$INDEX_BYTES" >"$RES/$f.json.new"
        mv "$RES/$f.json.new" "$RES/$f.json"
    done
    STATS+=("$RES/stockpot-http.json" "$RES/stockpot-http1.json" "$RES/stockpot-serial.json")
fi
for n in "${!PIDS[@]}"; do stop "$n"; done # the peers get the machine to themselves

echo
echo "== 4. peers on the $(wc -l <"$RES/ids.tsv") recipes the write API accepted ($REPEAT timed passes)"
"$PY" "$SEARCH/peer_xapian.py" --data "$DATA" --lines "$RES/ids.tsv" --queries "$QUERIES" \
    --top "$RES/xapian-top.json" --repeat "$REPEAT" --dir "$TMP" >"$RES/xapian.json"
echo "xapian: $(cat "$RES/xapian.json")"
PEER_DB=search_peer_$$
psql -X -q -c "CREATE DATABASE $PEER_DB"
PGDATABASE=$PEER_DB "$PY" "$SEARCH/peer_pg.py" --data "$DATA" --lines "$RES/ids.tsv" \
    --queries "$QUERIES" --top "$RES/pg-top.json" --repeat "$REPEAT" >"$RES/pg.json"
echo "postgresql: $(cat "$RES/pg.json")"
psql -X -q -c "DROP DATABASE $PEER_DB"
STATS+=("$RES/xapian.json" "$RES/pg.json")

echo
echo "== results"
python3 "$SEARCH/compare.py" "${STATS[@]}"
