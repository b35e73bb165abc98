#!/usr/bin/env bash
# Event log append benchmark on both backends (bench_append): appends RecipeCreated events
# through es_log_append in batches of 1, 16 and 256 events and prints appends/s,
# events/s and p50/p99/max batch latency, with the batch size, acks mode and durability,
# then the machine.
#  - lmdb:  a fresh embedded log in a directory on the build tree's disk; every batch is
#           one synced LMDB commit.
#  - kafka: a fresh stockpot-kafka-mock (librdkafka's mock cluster: 3 brokers, topic of
#           6 partitions, replication factor 3) per run, or --kafka BROKERS for a real
#           cluster; acks=all, one transaction per batch. Figures against the mock are NOT
#           a real broker's (in memory, no disk, in-process).
#
# usage: tests/bench/run-append-bench.sh [--build DIR] [--data FILE] [--batches "1 16 256"]
#                                        [--kafka BROKERS] [--backends "lmdb kafka"]
# Binaries come from build-release/ (or SP_BENCH_BUILD / --build), built (Release) if missing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BATCHES="1 16 256"
BACKENDS="lmdb kafka"
KAFKA=""
while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --data) DATA=$(realpath "$2"); shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    --backends) BACKENDS=$2; shift 2 ;;
    --kafka) KAFKA=$2; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "run-append-bench.sh: unknown argument \"$1\"" >&2; exit 2 ;;
    esac
done
BIN=$BUILD/bin

if [ ! -x "$BIN/bench_append" ] || [ ! -x "$BIN/stockpot-kafka-mock" ]; then
    echo "== building bench_append and stockpot-kafka-mock (Release) in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" --target bench_append stockpot-kafka-mock -j"$(nproc)" >/dev/null
fi

TMP=$(mktemp -d "$BUILD/bench-append.XXXXXX") # on the build tree's disk, not a tmpfs
MOCK_PID=""
stop_mock() {
    if [ -n "$MOCK_PID" ]; then
        kill -TERM "$MOCK_PID" 2>/dev/null || true
        wait "$MOCK_PID" 2>/dev/null || true
        MOCK_PID=""
    fi
}
cleanup() {
    stop_mock
    rm -rf "$TMP"
}
trap cleanup EXIT

start_mock() { # topic -> sets BROKERS
    "$BIN/stockpot-kafka-mock" --brokers 3 --topic "$1" --partitions 6 --replication-factor 3 \
        >"$TMP/mock.out" 2>>"$TMP/mock.err" &
    MOCK_PID=$!
    for _ in $(seq 1 100); do
        [ -s "$TMP/mock.out" ] && break
        kill -0 "$MOCK_PID" 2>/dev/null || { cat "$TMP/mock.err" >&2; exit 1; }
        sleep 0.1
    done
    BROKERS=$(head -n 1 "$TMP/mock.out")
}

batches_for() { # batch size -> number of timed batches (same work on both backends)
    case "$1" in
    1) echo 1000 ;;
    16) echo 400 ;;
    *) echo 100 ;;
    esac
}

echo "== machine"
echo "cpus:       $(bench_cpus)"
echo "memory:     $(bench_memory)"
echo "kernel:     $(uname -r)"
echo "disk:       $(df -T "$TMP" | awk 'NR == 2 {print $2 " on " $1}') (the LMDB log directory)"
echo "libraries:  librdkafka $(pkg-config --modversion rdkafka 2>/dev/null || echo ?)," \
    "LMDB $(pkg-config --modversion lmdb 2>/dev/null || echo ?)"
echo "build:      $BUILD ($(bench_build_type))"
echo "data:       $DATA ($(wc -l <"$DATA") recipes, cycled)"

run=0
for backend in $BACKENDS; do
    for b in $BATCHES; do
        run=$((run + 1))
        n=$(($(batches_for "$b") * b))
        echo
        echo "== $backend, batch size $b ($(batches_for "$b") timed batches)"
        if [ "$backend" = lmdb ]; then
            "$BIN/bench_append" --backend lmdb --dir "$TMP/log$run" --data "$DATA" \
                --batch "$b" --events "$n" --duration-s 120 || true
            rm -rf "$TMP/log$run"
        elif [ -n "$KAFKA" ]; then
            "$BIN/bench_append" --backend kafka --brokers "$KAFKA" --topic "stockpot.bench" \
                --data "$DATA" --batch "$b" --events "$n" --duration-s 120 || true
        else
            start_mock "stockpot.bench.$run"
            "$BIN/bench_append" --backend kafka --brokers "$BROKERS" --mock \
                --topic "stockpot.bench.$run" --partitions 6 --replication-factor 3 \
                --data "$DATA" --batch "$b" --events "$n" --duration-s 120 || true
            stop_mock
        fi
    done
done
