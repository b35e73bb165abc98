#!/usr/bin/env bash
# Benchmarks the whole stack on this machine (loopback only, bounded in count and time):
#  1. commands/s and p50/p99 latency of POST /recipes (bench_http, keep-alive connections),
#     first with the projector stopped, then with every daemon running;
#  2. events/s of the PostgreSQL projection: the projector daemon catching up on the log,
#     and `stockpot-replay rebuild pg`;
# then prints the machine and the peak RSS (VmHWM) of each daemon.
#
# usage: tests/bench/run-bench.sh [--data FILE] [--connections N] [--requests N] [--build DIR]
#   --data ../shared/data/recipes.jsonl   the big set (read in place, never copied)
# PostgreSQL comes from pg_virtualenv (a throwaway cluster); the daemons from build-release/,
# built (Release) if missing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNECTIONS=16
REQUESTS=20000
while [ $# -gt 0 ]; do
    case "$1" in
    --data) DATA=$(realpath "$2"); shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run-bench.sh: unknown argument \"$1\"" >&2; exit 2 ;;
    esac
done
export SP_BENCH_BUILD=$BUILD

if [ -z "${SP_BENCH_IN_PG:-}" ]; then
    bench_build_missing --all stockpot-command-api stockpot-projector stockpot-query-api stockpot-replay bench_http
    bench_reexec_in_pg --data "$DATA" --connections "$CONNECTIONS" --requests "$REQUESTS" --build "$BUILD"
fi

bench_stack_init bench

stop() { # name
    kill -TERM "${PIDS[$1]}"
    wait "${PIDS[$1]}" || true
    unset "PIDS[$1]"
}
hwm() { # pid -> peak RSS
    awk '/VmHWM/ {print $2 " " $3}' "/proc/$1/status" 2>/dev/null || echo "?"
}
declare -A RSS=()

api() { # method path json-body token -> response JSON on stdout
    python3 - "$STOCKPOT_COMMAND_PORT" "$@" <<'EOF'
import http.client, json, sys
port, method, path, body, token = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
hd = {"Content-Type": "application/json"}
if token:
    hd["Authorization"] = "Bearer " + token
c.request(method, path, body=body.encode(), headers=hd)
r = c.getresponse()
data = r.read().decode()
if r.status >= 300:
    sys.exit("%s %s -> %d %s" % (method, path, r.status, data))
print(data)
EOF
}
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

wait_applied() { # position: until the query API has applied it
    python3 - "$STOCKPOT_QUERY_PORT" "$1" <<'EOF'
import http.client, sys, time
port, pos = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 900
while time.monotonic() < deadline:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("GET", "/recipes?limit=1", headers={"Stockpot-After": pos})
    r = c.getresponse(); r.read()
    if r.status == 200:
        sys.exit(0)
    time.sleep(0.05)
sys.exit("projection did not reach " + pos)
EOF
}
now_s() { date +%s.%N; }

bench_print_machine
echo "data:   $DATA ($(wc -l <"$DATA") recipes)"

"$BIN/stockpot-replay" migrate >/dev/null 2>>"$TMP/replay.log"
start command
start query

api POST /auth/register '{"username":"bencher","email":"bench@example.com","password":"bench password 1"}' "" >/dev/null
TOKEN=$(api POST /auth/login '{"username":"bencher","password":"bench password 1"}' "" | json_field access_token)

echo
echo "== 1. POST /recipes, projector stopped ($CONNECTIONS connections, $REQUESTS requests)"
"$BIN/bench_http" --port "$STOCKPOT_COMMAND_PORT" --token "$TOKEN" --data "$DATA" \
    --connections "$CONNECTIONS" --requests "$REQUESTS" --duration-s 300 || true

LAST=$(api POST /recipes '{"title":"bench marker","ingredients":["x"],"steps":["y"]}' "$TOKEN" | json_field position)
EVENTS=$("$BIN/stockpot-replay" dump 2>/dev/null | wc -l)

echo
echo "== 2. PostgreSQL projection: projector daemon catching up on $EVENTS events"
t0=$(now_s)
start projector
wait_applied "$LAST"
t1=$(now_s)
python3 -c "import sys; d=float(sys.argv[2])-float(sys.argv[1]); print('caught up in %.2f s: %.0f events/s' % (d, int(sys.argv[3])/d))" "$t0" "$t1" "$EVENTS"

echo
echo "== 3. POST /recipes, every daemon running ($CONNECTIONS connections, $REQUESTS requests)"
"$BIN/bench_http" --port "$STOCKPOT_COMMAND_PORT" --token "$TOKEN" --data "$DATA" \
    --connections "$CONNECTIONS" --requests "$REQUESTS" --duration-s 300 || true
LAST=$(api POST /recipes '{"title":"bench marker 2","ingredients":["x"],"steps":["y"]}' "$TOKEN" | json_field position)
t0=$(now_s)
wait_applied "$LAST"
t1=$(now_s)
python3 -c "import sys; print('projector lag after the run: %.2f s' % (float(sys.argv[2])-float(sys.argv[1])))" "$t0" "$t1"

for n in command query projector; do RSS[$n]=$(hwm "${PIDS[$n]}"); done
stop projector
EVENTS=$("$BIN/stockpot-replay" dump 2>/dev/null | wc -l)

echo
echo "== 4. stockpot-replay rebuild pg ($EVENTS events)"
t0=$(now_s)
"$BIN/stockpot-replay" rebuild pg 2>>"$TMP/replay.log"
t1=$(now_s)
python3 -c "import sys; d=float(sys.argv[2])-float(sys.argv[1]); print('rebuild took %.2f s: %.0f events/s (wall clock, incl. start-up)' % (d, int(sys.argv[3])/d))" "$t0" "$t1" "$EVENTS"
echo "recipes in PostgreSQL: $(psql -X -At -d "$DB" -c 'SELECT count(*) FROM stockpot.recipes')"

echo
echo "== peak RSS (VmHWM)"
for n in command query projector; do echo "stockpot-${EXE[$n]#stockpot-}: ${RSS[$n]}"; done
