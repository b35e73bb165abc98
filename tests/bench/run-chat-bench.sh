#!/usr/bin/env bash
# Benchmarks chat (issue 12) on a throwaway stack (embedded log, pg_virtualenv):
#  1. messages/s sent over HTTP: wrk (Debian's), --connections keep-alive connections
#     posting to --users/2 direct rooms with fresh txn_ids, p50/p99 latency;
#  2. messages/s sent over WebSockets ({"type":"send"} frames, acknowledged once the command
#     API answered), from tests/bench/bench-chat.py;
#  3. delivery latency: with one WebSocket per user open (--users, 1,000 by default) and
#     50 users on GET /chat/stream, messages sent over HTTP at --rate/s; p50/p99 from each
#     send's 201 to the frame at the other member's WebSocket and to the event on their
#     stream (target p99 <= 20 ms on the embedded log); the query API's RSS meanwhile.
# The clients share the machine's cores with the daemons.
#
# usage: tests/bench/run-chat-bench.sh [--users N] [--connections N] [--duration-s S]
#                                      [--rate R] [--build DIR]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USERS=1000
CONNECTIONS=64
DURATION=10
RATE=200
while [ $# -gt 0 ]; do
    case "$1" in
    --users) USERS=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --duration-s) DURATION=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run-chat-bench.sh: unknown argument \"$1\"" >&2; exit 2 ;;
    esac
done
export SP_BENCH_BUILD=$BUILD
for tool in wrk /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "run-chat-bench.sh: $tool is missing: run deploy/install-deps.sh" >&2; exit 2; }
done
/usr/bin/python3 -c 'import websockets' 2>/dev/null ||
    { echo "run-chat-bench.sh: python3-websockets is missing: run deploy/install-deps.sh" >&2; exit 2; }

if [ -z "${SP_BENCH_IN_PG:-}" ]; then
    bench_build_missing stockpot-command-api stockpot-projector stockpot-query-api stockpot-replay
    bench_reexec_in_pg --users "$USERS" --connections "$CONNECTIONS" --duration-s "$DURATION" \
        --rate "$RATE" --build "$BUILD"
fi

bench_stack_init bench-chat
export STOCKPOT_ARGON2_T_COST=1 STOCKPOT_ARGON2_M_COST_KIB=1024 STOCKPOT_AUTH_RATE_LIMIT_PER_MINUTE=0
bench_print_machine

"$BIN/stockpot-replay" migrate >/dev/null 2>>"$TMP/replay.log"
start command
start projector
start query

echo
echo "== setup"
/usr/bin/python3 "$ROOT/tests/bench/bench-chat.py" --command-port "$STOCKPOT_COMMAND_PORT" \
    --query-port "$STOCKPOT_QUERY_PORT" --users "$USERS" --phase setup --state "$TMP/state.json" \
    --wrk-lua "$TMP/send.lua"

echo
echo "== 1. messages over HTTP: wrk, $CONNECTIONS connections, ${DURATION} s"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$TMP/send.lua" \
    "http://127.0.0.1:$STOCKPOT_COMMAND_PORT" >"$TMP/wrk.txt"
awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} /Non-2xx/ {bad=$NF}
     END {printf "POST /chat/rooms/{id}/messages: %s messages/s, p50 %s, p99 %s, non-2xx %s\n", rps, p50, p99, bad ? bad : 0}' "$TMP/wrk.txt"

echo
echo "== 2, 3. messages over WebSockets; delivery latency with $USERS WebSockets open"
/usr/bin/python3 "$ROOT/tests/bench/bench-chat.py" --command-port "$STOCKPOT_COMMAND_PORT" \
    --query-port "$STOCKPOT_QUERY_PORT" --query-pid "${PIDS[query]}" --users "$USERS" \
    --state "$TMP/state.json" --rate "$RATE" --duration-s "$DURATION"
echo
echo "query-api peak RSS (VmHWM): $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/${PIDS[query]}/status")"
