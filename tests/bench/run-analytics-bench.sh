#!/usr/bin/env bash
# Analytics benchmark (issue 10), on a generated log of --events events (default 1,000,000;
# stockpot-loggen over --days simulated days from the recipes of --data), no HTTP writes:
#  1. `stockpot-replay verify` over the log: reading, checksumming, decoding and checking
#     every event against the catalogue, with no view (the floor any rebuild stands on);
#     and bench_json_parse on its first 100,000 events: the log's JSON parser (simdjson)
#     against jansson's json_loadb, which it replaced, same run;
#  2. `stockpot-replay rebuild analytics`, --repeat times: events/s (and peak RSS), and
#     its ratio to verify's events/s of the same run; the view's disk size;
#  3. the query API over that view: GET /analytics/summary over 90 days (--requests, over
#     --connections keep-alive connections, windows ending on different days), then
#     popular (7d) and retention (12 weeks): requests/s, p50/p99 (bench_http);
#  4. `stockpot-replay export analytics` of a year of days, and `export events` of the
#     whole log as NDJSON and CSV: seconds and events/s.
# The operator's token is minted here (HS256 with the run's jwt.secret, the "roles" claim
# of common/include/sp/jwt.h): no command API runs. PostgreSQL comes from pg_virtualenv (the
# query API checks sessions there).
#
# usage: tests/bench/run-analytics-bench.sh [--events N] [--days D] [--data FILE]
#            [--connections N] [--requests N] [--repeat K] [--build DIR]
#   --data FILE   default ../shared/data/recipes.jsonl (read in place, never copied)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA=$(realpath -m "$ROOT/../shared/data/recipes.jsonl")
EVENTS=1000000
DAYS=120
CONNECTIONS=16
REQUESTS=20000
REPEAT=2
while [ $# -gt 0 ]; do
    case "$1" in
    --events) EVENTS=$2; shift 2 ;;
    --days) DAYS=$2; shift 2 ;;
    --data) DATA=$(realpath "$2"); shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "run-analytics-bench.sh: unknown argument \"$1\"" >&2; exit 2 ;;
    esac
done
export SP_BENCH_BUILD=$BUILD

if [ -z "${SP_BENCH_IN_PG:-}" ]; then
    [ -r "$DATA" ] || { echo "run-analytics-bench.sh: cannot read --data \"$DATA\"" >&2; exit 2; }
    bench_build_missing stockpot-query-api stockpot-replay stockpot-loggen bench_http bench_json_parse
    bench_reexec_in_pg --events "$EVENTS" --days "$DAYS" --data "$DATA" --connections "$CONNECTIONS" \
        --requests "$REQUESTS" --repeat "$REPEAT" --build "$BUILD"
fi

bench_stack_init analytics
export STOCKPOT_VIEWS_DIR=$TMP/views STOCKPOT_VIEWS_MAP_SIZE_MB=16384
START=2026-01-01
rate() { python3 -c 'import sys; print("%.0f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
# timed CMD...: runs CMD with /usr/bin/time; sets SECS (wall) and RSS_MB (peak), output in $TMP/out
timed() {
    /usr/bin/time -f '%e %M' -o "$TMP/time" "$@" >"$TMP/out" 2>"$TMP/err" || {
        cat "$TMP/err" >&2
        exit 1
    }
    read -r SECS RSS_KB <"$TMP/time"
    RSS_MB=$((RSS_KB / 1024))
}

bench_print_machine
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"

echo "== log: stockpot-loggen --events $EVENTS --days $DAYS from $START, recipes of $(basename "$DATA")"
timed "$BIN/stockpot-loggen" --events "$EVENTS" --days "$DAYS" --start "$START" --recipes "$DATA"
echo "generated in $SECS s ($(rate "$EVENTS" "$SECS") events/s); log $(du -sh "$STOCKPOT_LOG_DIR" | cut -f1)"

echo "== verify (read, checksum, decode, catalogue check; no view)"
timed "$BIN/stockpot-replay" verify
VERIFY=$(rate "$EVENTS" "$SECS")
echo "verify:  $SECS s, $VERIFY events/s, peak RSS $RSS_MB MB"
"$BIN/stockpot-replay" dump --limit 100000 >"$TMP/dump.ndjson"
"$BIN/bench_json_parse" "$TMP/dump.ndjson" --repeat 3

echo "== rebuild analytics (x$REPEAT)"
best=0
for i in $(seq 1 "$REPEAT"); do
    timed "$BIN/stockpot-replay" rebuild analytics
    r=$(rate "$EVENTS" "$SECS")
    echo "rebuild $i: $SECS s, $r events/s, peak RSS $RSS_MB MB (mostly the log's pages)"
    [ "$r" -gt "$best" ] && best=$r
done
echo "rebuild best: $best events/s = $(ratio "$best" "$VERIFY") x verify's rate (target >= 200000 events/s)"
echo "view: $(du -sh --apparent-size "$STOCKPOT_VIEWS_DIR/analytics/current/" | cut -f1) apparent," \
    "checksum $("$BIN/stockpot-replay" checksum analytics)"

echo "== query API (summary over 90 days, popular 7d, retention 12 weeks)"
"$BIN/stockpot-replay" migrate >/dev/null
start query
TOKEN=$(python3 - "$STOCKPOT_JWT_SECRET" <<'EOF'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "1", "sid": "1", "iat": now, "exp": now + 3600, "jti": "bench",
                       "roles": ["operator"]}).encode())
sig = b64(hmac.new(sys.argv[1].encode(), head + b"." + body, hashlib.sha256).digest())
print((head + b"." + body + b"." + sig).decode())
EOF
)
paths() { # kind -> one path per line
    python3 - "$1" "$START" "$DAYS" <<'EOF'
import datetime, sys
kind, start, days = sys.argv[1], datetime.date.fromisoformat(sys.argv[2]), int(sys.argv[3])
for k in range(90, max(days, 91)):
    to = start + datetime.timedelta(days=k)
    if kind == "summary":
        print("/analytics/summary?from=%s&to=%s" % (to - datetime.timedelta(days=89), to))
    elif kind == "popular":
        print("/analytics/recipes/popular?window=7d&limit=10&at=%s" % to)
    else:
        print("/analytics/retention?from=%s&to=%s" % (to - datetime.timedelta(days=83), to))
EOF
}
for kind in summary popular retention; do
    paths "$kind" >"$TMP/$kind.paths"
    n=$REQUESTS
    [ "$kind" = summary ] || n=$((REQUESTS / 4))
    echo "-- $kind ($(wc -l <"$TMP/$kind.paths") distinct paths, $n requests)"
    "$BIN/bench_http" --port "$STOCKPOT_QUERY_PORT" --get-paths "$TMP/$kind.paths" --token "$TOKEN" \
        --connections "$CONNECTIONS" --requests "$n" | grep -E 'requests|latency'
done
for c in 4 1; do
    echo "-- summary, $c connection(s)"
    "$BIN/bench_http" --port "$STOCKPOT_QUERY_PORT" --get-paths "$TMP/summary.paths" --token "$TOKEN" \
        --connections "$c" --requests $((REQUESTS / 4)) | grep -E 'requests|latency'
done

echo "== export"
END=$(python3 -c 'import datetime, sys; print(datetime.date.fromisoformat(sys.argv[1]) + datetime.timedelta(days=364))' "$START")
timed "$BIN/stockpot-replay" export analytics --from "$START" --to "$END" --format csv --out "$TMP/export-a"
echo "analytics, a year of days (CSV): $SECS s; $(wc -l <"$TMP/export-a/days.csv") day lines"
for fmt in ndjson csv; do
    timed "$BIN/stockpot-replay" export events --format "$fmt" --out "$TMP/events.$fmt"
    echo "events ($fmt): $SECS s, $(rate "$EVENTS" "$SECS") events/s, $(du -sh "$TMP/events.$fmt" | cut -f1)"
done
