# shellcheck shell=bash
# Shared by the benchmark scripts (run-bench.sh, bench-social.sh, run-append-bench.sh):
# sourced, it sets ROOT, BUILD and DATA defaults and defines functions; nothing else runs.
# The stack functions (bench_stack_init, free_port, wait_ready, start) start the daemons
# of one throwaway stack on loopback ports inside pg_virtualenv (bench_reexec_in_pg).
#
# Globals a sourcing script reads or sets: ROOT (checkout), BUILD (build tree, from
# SP_BENCH_BUILD or build-release/; --build overrides it), DATA (recipes JSONL); after
# bench_stack_init: BIN, TMP, DB, PIDS, PORT, EXE and the STOCKPOT_* environment.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${SP_BENCH_BUILD:-$ROOT/build-release}
# shellcheck disable=SC2034 # read by the sourcing scripts
DATA=$ROOT/deploy/data/sample.jsonl

# bench_build_missing [--all] BINARY...: unless $BUILD/bin holds every BINARY, configures
# $BUILD (Release) and builds those targets, or the whole tree with --all.
bench_build_missing() {
    local all=0 need=0 b
    if [ "$1" = --all ]; then all=1; shift; fi
    for b in "$@"; do
        [ -x "$BUILD/bin/$b" ] || need=1
    done
    [ $need = 1 ] || return 0
    echo "== building Release in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    if [ $all = 1 ]; then
        cmake --build "$BUILD" -j"$(nproc)" >/dev/null
    else
        cmake --build "$BUILD" -j"$(nproc)" --target "$@" >/dev/null
    fi
}

# bench_reexec_in_pg ARG...: runs the calling script again with ARG... inside pg_virtualenv
# -t (a throwaway PostgreSQL cluster; SP_BENCH_IN_PG marks the inner run). Does not return.
bench_reexec_in_pg() {
    export SP_BENCH_IN_PG=1
    exec pg_virtualenv -t -- "$0" "$@"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_stack_init NAME: the throwaway environment of one run: TMP (/tmp/sp-NAME.XXXXXX,
# removed on exit), database DB (NAME with - as _, plus the pid), free loopback ports,
# a random JWT secret and the STOCKPOT_* variables of the three daemons; an EXIT trap
# stops every daemon started with `start` and removes TMP.
bench_stack_init() {
    BIN=$BUILD/bin
    TMP=$(mktemp -d "/tmp/sp-$1.XXXXXX")
    declare -gA PIDS=()
    trap bench_cleanup EXIT

    DB=${1//-/_}_$$
    psql -X -q -c "CREATE DATABASE $DB"
    export STOCKPOT_LOG_DIR=$TMP/log STOCKPOT_WRITEMODEL_DIR=$TMP/writemodel
    export STOCKPOT_PG_CONNINFO="dbname=$DB"
    export STOCKPOT_COMMAND_HOST=127.0.0.1 STOCKPOT_QUERY_HOST=127.0.0.1 STOCKPOT_PROJECTOR_HOST=127.0.0.1
    STOCKPOT_COMMAND_PORT=$(free_port)
    STOCKPOT_QUERY_PORT=$(free_port)
    STOCKPOT_PROJECTOR_PORT=$(free_port)
    STOCKPOT_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    export STOCKPOT_COMMAND_PORT STOCKPOT_QUERY_PORT STOCKPOT_PROJECTOR_PORT STOCKPOT_JWT_SECRET
    mkdir -p "$STOCKPOT_LOG_DIR" "$STOCKPOT_WRITEMODEL_DIR"

    declare -gA PORT=([command]=$STOCKPOT_COMMAND_PORT [query]=$STOCKPOT_QUERY_PORT [projector]=$STOCKPOT_PROJECTOR_PORT)
    declare -gA EXE=([command]=stockpot-command-api [query]=stockpot-query-api [projector]=stockpot-projector)
}

bench_cleanup() {
    local n
    for n in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$n]}" 2>/dev/null || true
    done
    for n in "${!PIDS[@]}"; do
        wait "${PIDS[$n]}" 2>/dev/null || true
    done
    rm -rf "$TMP"
}

wait_ready() { # name: until its GET /readyz answers 200; exits if it dies or after 60 s
    for _ in $(seq 1 600); do
        if python3 - "${PORT[$1]}" <<'EOF' 2>/dev/null; then return 0; fi
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
c.request("GET", "/readyz")
sys.exit(0 if c.getresponse().status == 200 else 1)
EOF
        kill -0 "${PIDS[$1]}" 2>/dev/null || { echo "$1 died:"; tail -20 "$TMP/$1.log"; exit 1; }
        sleep 0.1
    done
    echo "$1 not ready" >&2
    exit 1
}
start() { # name (command, query, projector): starts the daemon, stderr to $TMP/name.log
    "$BIN/${EXE[$1]}" 2>>"$TMP/$1.log" &
    PIDS[$1]=$!
    wait_ready "$1"
}

# Facts for the "== machine" block; each script lays them out itself.
bench_cpus() { echo "$(nproc) x $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"; }
bench_memory() { awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo; }
bench_build_type() { grep -m1 CMAKE_BUILD_TYPE "$BUILD/CMakeCache.txt" | cut -d= -f2; }

# bench_print_machine: the "== machine" block of the scripts that run the stack.
bench_print_machine() {
    echo "== machine"
    echo "cpus:   $(bench_cpus)"
    echo "memory: $(bench_memory)"
    echo "kernel: $(uname -r); PostgreSQL: $(psql -X -At -c 'SHOW server_version')"
    echo "build:  $BUILD ($(bench_build_type))"
}
