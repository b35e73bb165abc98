#!/usr/bin/env bash
# Throughput benchmark (issue 11): every figure next to a peer measured in the same run on
# this machine (loopback only, bounded in count and time).
#  1. stockpot-loggen appends --events events (default 1,000,000) to a fresh embedded log;
#  2. peer: PostgreSQL's own COPY of those events as rows (`stockpot-replay export events
#     --format csv`: partition, offset, stream, version, type, time, actor, id and the
#     payload as jsonb), rows/s;
#  3. the projector (projection pg only) catching up on the log from an empty read model,
#     events/s, until its /metrics show no lag; then `stockpot-replay rebuild pg`, events/s;
#     each as a ratio to COPY's rows/s;
#  4. ingest: POST /recipes (a ~350-byte recipe) with wrk at 16, 64 and 256 keep-alive
#     connections, commands/s and p50/p99, next to nginx serving a static JSON file of the
#     same size with the same wrk settings: ratio of requests/s;
#  5. peak RSS (VmHWM) of each daemon.
#
# usage: tests/bench/run-throughput-bench.sh [--events N] [--data FILE] [--duration S]
#            [--build DIR] [--skip-ingest | --ingest-only]
#   --events N     log size for steps 1-3 (default 1000000)
#   --duration S   seconds of each wrk run (default 10)
#   --repeat N     ingest: N rounds of (POST /recipes, nginx) per connection count,
#                  alternating, each figure the median of its N runs (default 3): the
#                  machines are shared and one 10 s run moves by a third
#   --data FILE    recipes for the log (default ../shared/data/recipes.jsonl, read in place)
#   --skip-ingest  steps 1-3 and the projector's RSS only
#   --ingest-only  steps 4-5 only (the command API's figures)
# Needs wrk and nginx (deploy/install-deps.sh). PostgreSQL comes from pg_virtualenv.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA=$(realpath -m "$ROOT/../shared/data/recipes.jsonl")
EVENTS=1000000
DURATION=10
REPEAT=3
SKIP_INGEST=
INGEST_ONLY=
while [ $# -gt 0 ]; do
    case "$1" in
    --events) EVENTS=$2; shift 2 ;;
    --data) DATA=$(realpath "$2"); shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --skip-ingest) SKIP_INGEST=1; shift ;;
    --ingest-only) INGEST_ONLY=1; shift ;;
    -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "run-throughput-bench.sh: unknown argument \"$1\"" >&2; exit 2 ;;
    esac
done
export SP_BENCH_BUILD=$BUILD

if [ -z "${SP_BENCH_IN_PG:-}" ]; then
    for tool in wrk nginx; do
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
            { echo "run-throughput-bench.sh: $tool missing: run deploy/install-deps.sh" >&2; exit 1; }
    done
    [ -r "$DATA" ] || { echo "run-throughput-bench.sh: cannot read --data \"$DATA\"" >&2; exit 2; }
    bench_build_missing --all stockpot-command-api stockpot-projector stockpot-replay stockpot-loggen
    bench_reexec_in_pg --events "$EVENTS" --data "$DATA" --duration "$DURATION" --repeat "$REPEAT" --build "$BUILD" \
        ${SKIP_INGEST:+--skip-ingest} ${INGEST_ONLY:+--ingest-only}
fi

bench_stack_init throughput
export STOCKPOT_PROJECTOR_PROJECTIONS=pg STOCKPOT_AUTH_RATE_LIMIT_PER_MINUTE=0
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
now_s() { date +%s.%N; }
rate() { python3 -c 'import sys; print("%.0f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
pct() { python3 -c 'import sys; print("%.1f%%" % (100 * float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
# hwm PID: peak resident set (VmHWM: heap and the pages of the mapped LMDB log it read)
# and, now, the anonymous (heap) and file-backed parts of the resident set
hwm() {
    awk '/VmHWM/ {h = $2} /RssAnon/ {a = $2} /RssFile/ {f = $2}
         END {printf "VmHWM %.0f MB (now: heap %.0f MB, mapped files %.0f MB)\n", h / 1024, a / 1024, f / 1024}' \
        "/proc/$1/status" 2>/dev/null || echo "?"
}
declare -A RSS=()

bench_print_machine
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min); wrk $(wrk --version 2>&1 | head -1 | cut -d' ' -f2); $("$NGINX" -v 2>&1)"

bulk_steps() {
echo "== 1. log: stockpot-loggen --events $EVENTS"
t0=$(now_s)
"$BIN/stockpot-loggen" --events "$EVENTS" --recipes "$DATA" --days 60 >"$TMP/loggen.json"
GEN_S=$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$(now_s)")
echo "generated $EVENTS events in $GEN_S s: $(rate "$EVENTS" "$GEN_S") events/s"

echo "== 2. peer: PostgreSQL COPY of the same events as rows"
"$BIN/stockpot-replay" export events --format csv --out "$TMP/events.csv" >/dev/null
psql -X -q -d "$DB" -c "CREATE UNLOGGED TABLE copy_peer (partition int, \"offset\" bigint,
    stream text, stream_version bigint, type text, time timestamptz, actor bigint, id uuid,
    data jsonb)"
t0=$(now_s)
psql -X -q -d "$DB" -c "\\copy copy_peer FROM '$TMP/events.csv' CSV HEADER"
COPY_S=$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$(now_s)")
COPY_RATE=$(rate "$EVENTS" "$COPY_S")
echo "COPY $EVENTS rows ($(du -sh "$TMP/events.csv" | cut -f1) of CSV) in $COPY_S s: $COPY_RATE rows/s"
psql -X -q -d "$DB" -c "DROP TABLE copy_peer"

echo "== 3. PostgreSQL projection on $EVENTS events"
"$BIN/stockpot-replay" migrate >/dev/null
t0=$(now_s)
start projector
# waits for no lag; samples the projector's heap (RssAnon) by tenths of the log applied
python3 - "$STOCKPOT_PROJECTOR_PORT" "${PIDS[projector]}" "$EVENTS" >"$TMP/heap.txt" <<'EOF'
import http.client, re, sys, time
port, pid, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
deadline, streak, tenth, samples = time.monotonic() + 7200, 0, 0, []
LAG = re.compile(r'^stockpot_projection_lag_events\{[^}]*projection="pg"[^}]*\} (\S+)$', re.M)
def heap_mb():
    for line in open("/proc/%s/status" % pid):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0
while time.monotonic() < deadline:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    lags = [float(x) for x in LAG.findall(c.getresponse().read().decode())]
    if lags and min(lags) >= 0 and (total - max(lags)) * 10 >= (tenth + 1) * total:
        tenth = int((total - max(lags)) * 10 // total)
        samples.append("%d%% %.0f" % (tenth * 10, heap_mb()))
    streak = streak + 1 if lags and max(lags) == 0 else 0
    if streak == 2:
        print(" ".join(samples))
        sys.exit(0)
    time.sleep(0.2)
sys.exit("the projector did not catch up in 2 hours")
EOF
LIVE_S=$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1]) - 0.2))' "$t0" "$(now_s)")
LIVE_RATE=$(rate "$EVENTS" "$LIVE_S")
RSS[projector]=$(hwm "${PIDS[projector]}")
kill -TERM "${PIDS[projector]}"
wait "${PIDS[projector]}" || true
unset "PIDS[projector]"
echo "live catch-up: $LIVE_S s, $LIVE_RATE events/s = $(pct "$LIVE_RATE" "$COPY_RATE") of COPY (target >= 10%)"
echo "projector heap (RssAnon, MB) by share of the log applied: $(cat "$TMP/heap.txt")"
t0=$(now_s)
"$BIN/stockpot-replay" rebuild pg >"$TMP/rebuild.out" 2>&1
REBUILD_S=$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$(now_s)")
REBUILD_RATE=$(rate "$EVENTS" "$REBUILD_S")
echo "rebuild pg: $REBUILD_S s, $REBUILD_RATE events/s = $(pct "$REBUILD_RATE" "$COPY_RATE") of COPY (target >= 15%)"

}
if [ -z "$INGEST_ONLY" ]; then
    bulk_steps
fi
if [ -n "$SKIP_INGEST" ]; then
    echo "== 5. peak RSS (VmHWM)"
    echo "stockpot-projector (catch-up of $EVENTS events): ${RSS[projector]}"
    exit 0
fi

echo "== 4. ingest: POST /recipes against nginx serving a static file of the same size (wrk, $DURATION s each, median of $REPEAT alternating runs)"
export STOCKPOT_LOG_DIR=$TMP/ingest-log STOCKPOT_WRITEMODEL_DIR=$TMP/ingest-wm
mkdir -p "$STOCKPOT_LOG_DIR" "$STOCKPOT_WRITEMODEL_DIR"
start command
api() { # method path body [token] -> response body
    python3 - "$STOCKPOT_COMMAND_PORT" "$@" <<'EOF'
import http.client, sys
port, method, path, body = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
hd = {"Content-Type": "application/json"}
if len(sys.argv) > 5:
    hd["Authorization"] = "Bearer " + sys.argv[5]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
c.request(method, path, body=body.encode(), headers=hd)
r = c.getresponse()
data = r.read().decode()
if r.status >= 300:
    sys.exit("%s %s -> %d %s" % (method, path, r.status, data))
print(data)
EOF
}
api POST /auth/register '{"username":"bencher","email":"bench@example.com","password":"bench password 1"}' >/dev/null
TOKEN=$(api POST /auth/login '{"username":"bencher","password":"bench password 1"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
BODY='{"title":"Weeknight tomato soup","description":"A quick soup from the pantry.","ingredients":["1 onion","2 cloves garlic","800 g tinned tomatoes","500 ml stock","salt"],"steps":["Soften the onion and garlic.","Add the tomatoes and stock, simmer 15 minutes.","Blend and season."],"tags":["soup","quick"]}'
mkdir -p "$TMP/www"
printf '%s' "$BODY" >"$TMP/www/recipe.json"
echo "body: ${#BODY} bytes (the static file has the same bytes)"
NGINX_PORT=$(free_port)
cat >"$TMP/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx-body;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { root $TMP/www; }
    }
}
EOF
"$NGINX" -c "$TMP/nginx.conf" -p "$TMP" &
PIDS[nginx]=$!
sleep 0.5
cat >"$TMP/post.lua" <<EOF
wrk.method = "POST"
wrk.body = [[$BODY]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
EOF
# wrk_run URL CONNECTIONS [SCRIPT] -> "requests/s p50_ms p99_ms non2xx"
wrk_run() {
    local out
    out=$(wrk -t2 -c"$2" -d"${DURATION}s" --latency ${3:+-s "$3"} "$1")
    python3 - "$out" <<'EOF'
import re, sys
out = sys.argv[1]
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
pct = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print("%.0f %.2f %.2f %s" % (rps, pct["50"], pct["99"], bad.group(1) if bad else "0"))
EOF
}
printf '%-12s %14s %12s %12s %12s %14s %12s %8s\n' connections "POST /recipes" p50_ms p99_ms non2xx "nginx static" p99_ms ratio
# median COLUMN < lines -> the median of that column (1-based)
median() { python3 -c 'import statistics, sys; c = int(sys.argv[1]) - 1
m = statistics.median(float(l.split()[c]) for l in sys.stdin if l.strip())
print(("%.2f" % m).rstrip("0").rstrip("."))' "$1"; }
for c in 16 64 256; do
    : >"$TMP/runs-s" && : >"$TMP/runs-n"
    for _ in $(seq "$REPEAT"); do
        wrk_run "http://127.0.0.1:$STOCKPOT_COMMAND_PORT/recipes" "$c" "$TMP/post.lua" >>"$TMP/runs-s"
        wrk_run "http://127.0.0.1:$NGINX_PORT/recipe.json" "$c" >>"$TMP/runs-n"
    done
    s_rps=$(median 1 <"$TMP/runs-s"); s_p50=$(median 2 <"$TMP/runs-s"); s_p99=$(median 3 <"$TMP/runs-s")
    s_bad=$(awk '{n += $4} END {print n}' "$TMP/runs-s")
    n_rps=$(median 1 <"$TMP/runs-n"); n_p99=$(median 3 <"$TMP/runs-n")
    printf '%-12s %14s %12s %12s %12s %14s %12s %8s\n' "$c" "$s_rps/s" "$s_p50" "$s_p99" "$s_bad" \
        "$n_rps/s" "$n_p99" "$(pct "$s_rps" "$n_rps")"
done
RSS[command]=$(hwm "${PIDS[command]}")

echo "== 5. peak RSS (VmHWM)"
[ -n "$INGEST_ONLY" ] || echo "stockpot-projector (catch-up of $EVENTS events): ${RSS[projector]}"
echo "stockpot-command-api (ingest runs): ${RSS[command]}"
echo "targets: rebuild pg >= 15% and live catch-up >= 10% of COPY rows/s;" \
    "POST /recipes >= 50% of nginx at 256 connections (p99 <= 20 ms) and >= 25% at 16"
