#!/usr/bin/env bash
# Stockpot on one machine: install what is missing, build (Release), start a project-local
# PostgreSQL cluster, migrate, start command-api, projector and query-api on the embedded
# LMDB log (or on an external Kafka: --kafka BROKERS or log.backend = kafka), import the
# sample recipes on the first run, then wait. Ctrl-C stops everything.
#
# Everything it creates lives under var/ (git-ignored): var/pg (PostgreSQL cluster),
# var/eventlog and var/writemodel (LMDB), var/logs/*.log, var/run/*.pid, var/imported,
# var/log-identity (which event log the state in var/ was folded from).
# `deploy/local/run.sh --help` lists the options.
set -euo pipefail

CALLER_PWD=$PWD
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

usage() {
  cat <<'EOF'
usage: deploy/local/run.sh [options]

  --config FILE        daemon config (key = value), default deploy/local/stockpot.conf
  --pg-port N          port of the project-local PostgreSQL on 127.0.0.1 (default: the
                       port of the earlier run, else 5433 or the next free one)
  --command-port N     command-api port (default: config command.port, 8080)
  --query-port N       query-api port (default: config query.port, 8081)
  --projector-port N   projector port (default: config projector.port, 8082)
  --data FILE          JSONL file to import (default deploy/data/sample.jsonl)
  --no-import          do not import recipes
  --social N           after the import, load a generated social graph of N users
                       (deploy/local/gen-social.py --seed 1: the data file's recipes spread
                       over them, follows, likes, comments) once; var/social records it
  --no-build           skip install-deps and the build (use the existing build-release/)
  --var DIR            state directory (default var/)
  --kafka BROKERS      use the Kafka cluster at BROKERS (host:port[,host:port...]) as the
                       event log instead of the embedded LMDB log; same as log.backend =
                       kafka and kafka.brokers = BROKERS (topic: kafka.topic, created with
                       kafka.partitions / kafka.replication_factor if absent)
  --kafka mock         try it without a broker: start stockpot-kafka-mock (librdkafka's
                       in-memory mock cluster, 3 brokers) and keep ALL state, PostgreSQL
                       included, in a temporary directory deleted on exit
  -h, --help           this text

Precedence for daemon settings: STOCKPOT_<KEY> environment > config file > built-in
default (README.md lists every key). If pg.conninfo is set, that server is used and no
local cluster is started.
STOCKPOT_IMPORT_PASSWORD: password of the importer user (dev-only default otherwise).
STOCKPOT_LOCAL_PG_PASSWORD: password of PostgreSQL role "stockpot" for TCP logins, set
when the cluster is created (dev-only default "stockpot-dev").
STOCKPOT_LOCAL_BUILD: build directory (default build-release/).
A data file is imported once: var/imported records the sha256 of every imported file.
The write model and the read models in var/ are folded from one event log: a run on
another log (other backend, brokers or topic) refuses to start; use another --var.
EOF
}

abspath() { # relative to the caller's directory; the file need not exist
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$CALLER_PWD/$1" ;;
  esac
}
need_arg() {
  if (($# < 2)) || [[ -z "$2" ]]; then
    echo "run.sh: $1 needs a value" >&2
    exit 2
  fi
}
die() {
  echo "run.sh: $*" >&2
  exit 1
}
say() { echo "run.sh: $*"; }

CONF="$ROOT/deploy/local/stockpot.conf"
PG_PORT="${STOCKPOT_LOCAL_PG_PORT:-}" # empty: var/pg/port from an earlier run, else 5433
DATA="$ROOT/deploy/data/sample.jsonl"
DO_IMPORT=1
SOCIAL_USERS=0
DO_BUILD=1
VAR="$ROOT/var"
VAR_SET=0
KAFKA=""
BUILD="${STOCKPOT_LOCAL_BUILD:-$ROOT/build-release}" # build tree (the build goes there)
READY_TIMEOUT_S="${STOCKPOT_LOCAL_READY_TIMEOUT_S:-120}"

while (($#)); do
  case "$1" in
    --config) need_arg "$@"; CONF=$(abspath "$2"); shift 2 ;;
    --pg-port) need_arg "$@"; PG_PORT=$2; shift 2 ;;
    --command-port) need_arg "$@"; export STOCKPOT_COMMAND_PORT=$2; shift 2 ;;
    --query-port) need_arg "$@"; export STOCKPOT_QUERY_PORT=$2; shift 2 ;;
    --projector-port) need_arg "$@"; export STOCKPOT_PROJECTOR_PORT=$2; shift 2 ;;
    --data) need_arg "$@"; DATA=$(abspath "$2"); shift 2 ;;
    --no-import) DO_IMPORT=0; shift ;;
    --social) need_arg "$@"; SOCIAL_USERS=$2; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --var) need_arg "$@"; VAR=$(abspath "$2"); VAR_SET=1; shift 2 ;;
    --kafka) need_arg "$@"; KAFKA=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -z "$PG_PORT" || "$PG_PORT" =~ ^[0-9]+$ ]] || die "--pg-port must be a number"
[[ -r "$CONF" ]] || die "config file not readable: $CONF"
[[ "$SOCIAL_USERS" =~ ^[0-9]+$ ]] || die "--social must be a number of users"
cd "$ROOT"
MOCK_TMP=""
if [[ "$KAFKA" == mock ]]; then
  ((VAR_SET == 0)) || die "--kafka mock keeps its state in a temporary directory; drop --var"
  MOCK_TMP=$(mktemp -d /tmp/stockpot-kafka-mock.XXXXXX)
  trap 'rm -rf "$MOCK_TMP"' EXIT # until stop_all takes over below
  VAR="$MOCK_TMP/var"
fi
if [[ -n "$KAFKA" ]]; then
  export STOCKPOT_LOG_BACKEND=kafka
  [[ "$KAFKA" == mock ]] || export STOCKPOT_KAFKA_BROKERS="$KAFKA"
fi

# ---------------------------------------------------------------- configuration
# conf KEY DEFAULT: STOCKPOT_<KEY> env > config file > default (as the daemons do).
conf() {
  local key=$1 def=$2 env val
  env="STOCKPOT_$(printf '%s' "$key" | tr 'a-z.' 'A-Z_')"
  if [[ -n "${!env+set}" ]]; then
    printf '%s\n' "${!env}"
    return
  fi
  val=$(awk -v k="$key" '
    /^[ \t]*(#|$)/ { next }
    { i = index($0, "="); if (!i) next
      kk = substr($0, 1, i - 1); v = substr($0, i + 1)
      gsub(/^[ \t]+|[ \t]+$/, "", kk); gsub(/^[ \t]+|[ \t\r]+$/, "", v)
      if (kk == k) { if (v ~ /^".*"$/) v = substr(v, 2, length(v) - 2); found = v; hit = 1 } }
    END { if (hit) print found; else print "\001" }' "$CONF")
  if [[ "$val" == $'\001' ]]; then
    printf '%s\n' "$def"
  else
    printf '%s\n' "$val"
  fi
}
# Directories: resolve relative values against the repo root and hand the daemons
# absolute paths (env wins over the file, so this keeps the configured value).
dir_conf() {
  local key=$1 def=$2 v
  v=$(conf "$key" "$def")
  [[ "$v" == /* ]] || v="$ROOT/$v"
  printf '%s\n' "$v"
}
url_host() {
  case "$1" in
    "" | 0.0.0.0) echo 127.0.0.1 ;;
    :: | "[::]") echo "[::1]" ;;
    *:*) echo "[$1]" ;;
    *) echo "$1" ;;
  esac
}

if [[ "$VAR" != "$ROOT/var" ]]; then
  # --var moves the LMDB directories too (unless STOCKPOT_LOG_DIR/_WRITEMODEL_DIR are set)
  : "${STOCKPOT_LOG_DIR:=$VAR/eventlog}" "${STOCKPOT_WRITEMODEL_DIR:=$VAR/writemodel}"
  : "${STOCKPOT_VIEWS_DIR:=$VAR/views}"
fi
export STOCKPOT_LOG_DIR STOCKPOT_WRITEMODEL_DIR STOCKPOT_VIEWS_DIR
STOCKPOT_LOG_DIR=$(dir_conf log.dir var/eventlog)
STOCKPOT_WRITEMODEL_DIR=$(dir_conf writemodel.dir var/writemodel)
STOCKPOT_VIEWS_DIR=$(dir_conf views.dir var/views)
CMD_PORT=$(conf command.port 8080)
QRY_PORT=$(conf query.port 8081)
PRJ_PORT=$(conf projector.port 8082)
CMD_URL="http://$(url_host "$(conf command.host 127.0.0.1)"):$CMD_PORT"
QRY_URL="http://$(url_host "$(conf query.host 127.0.0.1)"):$QRY_PORT"
PRJ_URL="http://$(url_host "$(conf projector.host 127.0.0.1)"):$PRJ_PORT"
PG_CONNINFO=$(conf pg.conninfo "")
LOG_BACKEND=$(conf log.backend lmdb)
case "$LOG_BACKEND" in
  lmdb | kafka) ;;
  *) die "log.backend must be lmdb or kafka, not \"$LOG_BACKEND\"" ;;
esac
KAFKA_TOPIC=$(conf kafka.topic stockpot.events)
KAFKA_PARTITIONS=$(conf kafka.partitions 6)

LOGS="$VAR/logs"
RUN="$VAR/run"
mkdir -p "$LOGS" "$RUN" "$STOCKPOT_WRITEMODEL_DIR"
[[ "$LOG_BACKEND" != lmdb ]] || mkdir -p "$STOCKPOT_LOG_DIR"

# ---------------------------------------------------------------- build
if ((DO_BUILD)); then
  bash "$ROOT/deploy/install-deps.sh"
  say "building Release into ${BUILD#"$ROOT"/}/ (log: $LOGS/build.log)"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$LOGS/build.log" 2>&1 ||
    { tail -n 40 "$LOGS/build.log" >&2; die "cmake configure failed (full log: $LOGS/build.log)"; }
  cmake --build "$BUILD" -j2 >>"$LOGS/build.log" 2>&1 ||
    { tail -n 40 "$LOGS/build.log" >&2; die "build failed (full log: $LOGS/build.log)"; }
fi
BIN="$BUILD/bin"
for b in stockpot-command-api stockpot-projector stockpot-query-api stockpot-replay; do
  [[ -x "$BIN/$b" ]] || die "missing $BIN/$b (build first, without --no-build)"
done
[[ -z "$MOCK_TMP" || -x "$BIN/stockpot-kafka-mock" ]] ||
  die "missing $BIN/stockpot-kafka-mock (build first, without --no-build)"

# ---------------------------------------------------------------- shutdown
PIDS=()
NAMES=()
PG_STARTED=0
PG_DATA="$VAR/pg/data"
PG_BIN=""
AS_PG=()
STOPPING=0
MOCK_PID=""

stop_all() {
  ((STOPPING)) && return
  STOPPING=1
  local i pid deadline
  if ((${#PIDS[@]})); then
    say "stopping daemons"
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
      kill -TERM "${PIDS[i]}" 2>/dev/null || true
    done
    deadline=$((SECONDS + 20))
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
      pid=${PIDS[i]}
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        echo "run.sh: ${NAMES[i]} did not stop in time; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
      wait "$pid" 2>/dev/null || true
      rm -f "$RUN/${NAMES[i]}.pid"
    done
  fi
  if ((PG_STARTED)); then
    say "stopping PostgreSQL"
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null || true
  fi
  if [[ -n "$MOCK_PID" ]]; then
    say "stopping the Kafka mock cluster (its events are gone)"
    kill -TERM "$MOCK_PID" 2>/dev/null || true
    wait "$MOCK_PID" 2>/dev/null || true
  fi
  if [[ -n "$MOCK_TMP" ]]; then
    rm -rf "$MOCK_TMP"
  fi
}
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

stop_stale() { # a daemon left running by an earlier run that was killed with -9
  local name=$1 pid
  pid=$(cat "$RUN/$name.pid" 2>/dev/null) || return 0
  if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
    grep -qF -- "$BIN/stockpot-$name"; then
    say "stopping $name left over from an earlier run (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

# ---------------------------------------------------------------- PostgreSQL
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_setup_owner() {
  # initdb and pg_ctl refuse to run as root: run them as the postgres user.
  if [[ "$(id -u)" == 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the postgres user (apt-get install postgresql)"
    AS_PG=(runuser -u postgres --)
    chown postgres:postgres "$VAR/pg" "$VAR/pg/run" "$LOGS/postgres.log"
    # the postgres user must be able to traverse every directory above var/pg
    if ! "${AS_PG[@]}" test -x "$VAR/pg"; then
      local d="" part
      local -a parts
      IFS=/ read -ra parts <<<"${VAR#/}"
      for part in "${parts[@]}"; do
        d="$d/$part"
        if ! "${AS_PG[@]}" test -x "$d"; then
          say "note: chmod o+x $d so that the postgres user can reach var/pg"
          chmod o+x "$d"
        fi
      done
    fi
  fi
}

pg_pick_bin() {
  local ver
  if [[ -f "$PG_DATA/PG_VERSION" ]]; then
    ver=$(cat "$PG_DATA/PG_VERSION")
    PG_BIN="/usr/lib/postgresql/$ver/bin"
    [[ -x "$PG_BIN/pg_ctl" ]] || die "cluster in $PG_DATA is PostgreSQL $ver but $PG_BIN is missing"
  else
    PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [[ -n "$PG_BIN" && -x "$PG_BIN/initdb" ]] || die "PostgreSQL server not found (run deploy/install-deps.sh)"
  fi
}

pg_start() {
  mkdir -p "$VAR/pg/run"
  touch "$LOGS/postgres.log"
  local sock="$VAR/pg/run"
  if ((${#sock} + 20 > 107)); then # sun_path limit: <dir>/.s.PGSQL.<port>
    sock="/tmp/stockpot-pg-$(id -u)-$(printf '%s' "$VAR" | cksum | cut -d' ' -f1)"
    mkdir -p "$sock"
    say "note: $VAR/pg/run is too long for a unix socket path; using $sock"
  fi
  pg_setup_owner
  [[ "$sock" == "$VAR/pg/run" ]] || { [[ -z "${AS_PG[*]}" ]] || chown postgres:postgres "$sock"; }
  chmod 700 "$sock"
  pg_pick_bin

  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    say "creating PostgreSQL cluster in $PG_DATA"
    local pw="$VAR/pg/pwfile"
    (umask 077 && printf '%s\n' "${STOCKPOT_LOCAL_PG_PASSWORD:-stockpot-dev}" >"$pw")
    [[ -z "${AS_PG[*]}" ]] || chown postgres:postgres "$pw"
    "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DATA" --username=stockpot --pwfile="$pw" \
      --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --no-locale \
      >>"$LOGS/postgres.log" 2>&1 || { rm -f "$pw"; die "initdb failed (see $LOGS/postgres.log)"; }
    rm -f "$pw"
  fi

  if "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    PG_PORT=$(sed -n 4p "$PG_DATA/postmaster.pid")
    say "PostgreSQL already running from an earlier run on port $PG_PORT; reusing it"
  else
    if [[ -z "$PG_PORT" ]]; then # not chosen: keep the earlier port, else the first free from 5433
      PG_PORT=$(cat "$VAR/pg/port" 2>/dev/null || echo 5433)
      local first=$PG_PORT
      while port_busy "$PG_PORT" && ((PG_PORT < first + 50)); do PG_PORT=$((PG_PORT + 1)); done
      [[ "$PG_PORT" == "$first" ]] || say "note: port $first is in use; using $PG_PORT (set one with --pg-port)"
    fi
    port_busy "$PG_PORT" && die "port $PG_PORT is in use; choose another with --pg-port"
    echo "$PG_PORT" >"$VAR/pg/port"
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT (socket in $sock)"
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOGS/postgres.log" -w -t 60 \
      -o "-p $PG_PORT -k '$sock' -c listen_addresses=127.0.0.1" start >/dev/null ||
      { tail -n 20 "$LOGS/postgres.log" >&2; die "PostgreSQL did not start (see $LOGS/postgres.log)"; }
  fi
  PG_STARTED=1
  local q="SELECT 1 FROM pg_database WHERE datname = 'stockpot'"
  if [[ "$("$PG_BIN/psql" -h "$sock" -p "$PG_PORT" -U stockpot -d postgres -XtAc "$q")" != 1 ]]; then
    say "creating database stockpot"
    "$PG_BIN/createdb" -h "$sock" -p "$PG_PORT" -U stockpot stockpot
  fi
  PG_CONNINFO="host=$sock port=$PG_PORT dbname=stockpot user=stockpot"
}

# ---------------------------------------------------------------- event log
# kafka_reachable BROKERS: whether a TCP connection to one of the brokers succeeds.
kafka_reachable() {
  local b host port
  local -a list
  IFS=, read -ra list <<<"$1"
  for b in "${list[@]}"; do
    b=${b// /}
    b=${b#*://} # PLAINTEXT://host:port
    host=${b%:*}
    port=${b##*:}
    host=${host#[}
    host=${host%]}
    [[ "$port" =~ ^[0-9]+$ ]] || continue
    if timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null; then
      return 0
    fi
  done
  return 1
}

start_kafka_mock() {
  local out="$RUN/kafka-mock.out" i
  say "starting stockpot-kafka-mock (3 brokers, topic $KAFKA_TOPIC, $KAFKA_PARTITIONS partitions; in memory)"
  # own session, as the daemons: Ctrl-C must not stop it before the daemons are stopped
  setsid "$BIN/stockpot-kafka-mock" --brokers 3 --topic "$KAFKA_TOPIC" --partitions "$KAFKA_PARTITIONS" \
    --replication-factor 3 >"$out" 2>>"$LOGS/kafka-mock.log" &
  MOCK_PID=$!
  for ((i = 0; i < 100; i++)); do
    [[ -s "$out" ]] && break
    kill -0 "$MOCK_PID" 2>/dev/null || die "stockpot-kafka-mock exited (see $LOGS/kafka-mock.log)"
    sleep 0.1
  done
  export STOCKPOT_KAFKA_BROKERS
  STOCKPOT_KAFKA_BROKERS=$(head -n 1 "$out")
  [[ -n "$STOCKPOT_KAFKA_BROKERS" ]] || die "stockpot-kafka-mock printed no bootstrap servers"
  # the mock keeps no offsets across runs, and neither does anything else here
  export STOCKPOT_KAFKA_REPLICATION_FACTOR=3
}

# The write model and the read models are folded from one log: refuse to mix logs.
check_log_identity() {
  local id_file="$VAR/log-identity" have
  if [[ "$LOG_BACKEND" == lmdb ]]; then
    LOG_IDENTITY="lmdb $STOCKPOT_LOG_DIR"
  else
    LOG_IDENTITY="kafka $(conf kafka.brokers localhost:9092) $KAFKA_TOPIC"
  fi
  [[ -z "$MOCK_TMP" ]] || return 0
  if [[ -f "$id_file" ]]; then
    have=$(cat "$id_file")
    [[ "$have" == "$LOG_IDENTITY" ]] ||
      die "$VAR holds state folded from another event log (\"$have\"), not \"$LOG_IDENTITY\";
run.sh: use another --var for this log (or delete $id_file if it is the same log under another name)"
  elif [[ -n "$(ls -A "$STOCKPOT_WRITEMODEL_DIR" 2>/dev/null)" && "$LOG_BACKEND" == kafka ]]; then
    die "$STOCKPOT_WRITEMODEL_DIR already holds a write model (from the embedded log of an earlier run);
run.sh: use another --var for Kafka (e.g. --var var/kafka)"
  fi
  printf '%s\n' "$LOG_IDENTITY" >"$id_file"
}

if [[ "$LOG_BACKEND" == kafka ]]; then
  if [[ -n "$MOCK_TMP" ]]; then
    start_kafka_mock
  else
    kafka_reachable "$(conf kafka.brokers localhost:9092)" ||
      die "no Kafka broker reachable at \"$(conf kafka.brokers localhost:9092)\" (kafka.brokers / --kafka)"
  fi
  say "event log: Kafka at $(conf kafka.brokers localhost:9092), topic $KAFKA_TOPIC"
else
  say "event log: embedded LMDB in $STOCKPOT_LOG_DIR"
fi
check_log_identity

for name in query-api projector command-api; do stop_stale "$name"; done

if [[ -n "$PG_CONNINFO" ]]; then
  say "using the configured PostgreSQL (pg.conninfo); no local cluster"
else
  pg_start
fi
export STOCKPOT_PG_CONNINFO="$PG_CONNINFO"

say "applying migrations"
"$BIN/stockpot-replay" --config "$CONF" migrate >>"$LOGS/replay.log" 2>&1 ||
  { tail -n 20 "$LOGS/replay.log" >&2; die "migrations failed (see $LOGS/replay.log)"; }

# ---------------------------------------------------------------- daemons
# start NAME URL: start stockpot-NAME in its own session (so Ctrl-C reaches only this
# script, which then stops the daemons in order) and wait for its /readyz.
start_daemon() {
  local name=$1 url=$2 port=${2##*:} pid deadline
  stop_stale "$name"
  port_busy "$port" && die "port $port is in use (another Stockpot running?); choose another with --${name%-api}-port"
  echo "---- $(date -u +%FT%TZ) run.sh starting $name" >>"$LOGS/$name.log"
  setsid "$BIN/stockpot-$name" --config "$CONF" >>"$LOGS/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  NAMES+=("$name")
  echo "$pid" >"$RUN/$name.pid"
  deadline=$((SECONDS + READY_TIMEOUT_S))
  until curl -fsS -o /dev/null --max-time 2 "$url/readyz" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$LOGS/$name.log" >&2
      die "$name exited during start-up (see $LOGS/$name.log)"
    fi
    ((SECONDS < deadline)) || die "$name not ready after ${READY_TIMEOUT_S}s (see $LOGS/$name.log)"
    sleep 0.2
  done
  say "$name ready at $url (pid $pid, log $LOGS/$name.log)"
}

start_daemon command-api "$CMD_URL"
start_daemon projector "$PRJ_URL"
start_daemon query-api "$QRY_URL"

# ---------------------------------------------------------------- first-run import
if ((DO_IMPORT)); then
  [[ -r "$DATA" ]] || die "data file not readable: $DATA"
  sum=$(sha256sum "$DATA" | cut -d' ' -f1)
  if [[ -f "$VAR/imported" ]] && grep -q "^$sum " "$VAR/imported"; then
    say "$(basename "$DATA") already imported (listed in $VAR/imported); skipping"
  else
    python3 "$ROOT/deploy/local/import-recipes.py" --url "$CMD_URL" --query-url "$QRY_URL" \
      --data "$DATA" || die "import failed; rerun to resume (idempotency keys prevent duplicates)"
    echo "$sum $DATA $(date -u +%FT%TZ)" >>"$VAR/imported"
  fi
fi

if ((SOCIAL_USERS > 0)); then
  if [[ -f "$VAR/social" ]] && grep -q "^users=$SOCIAL_USERS seed=1 " "$VAR/social"; then
    say "social graph of $SOCIAL_USERS users already loaded (listed in $VAR/social); skipping"
  else
    python3 "$ROOT/deploy/local/gen-social.py" --command "$CMD_URL" --query "$QRY_URL" \
      --data "$DATA" --users "$SOCIAL_USERS" --seed 1 || die "social graph load failed"
    echo "users=$SOCIAL_USERS seed=1 $(date -u +%FT%TZ)" >>"$VAR/social"
  fi
fi

cat <<EOF

Stockpot is running.
  command-api  $CMD_URL   (POST /auth/register, /auth/login, /recipes ...)
  query-api    $QRY_URL   (GET /recipes?limit=5, /recipes/{id}, /users/{id})
  projector    $PRJ_URL   (/healthz, /readyz, /metrics)
  PostgreSQL   ${STOCKPOT_PG_CONNINFO}
  event log    ${LOG_IDENTITY}${MOCK_TMP:+ (librdkafka mock cluster, in memory: gone on exit)}
  logs         $LOGS/
Try: curl -s '$QRY_URL/recipes?limit=2'
Press Ctrl-C to stop.
EOF

# ---------------------------------------------------------------- wait
set +e
wait -n "${PIDS[@]}"
rc=$?
for i in "${!PIDS[@]}"; do
  if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
    echo "run.sh: ${NAMES[i]} exited unexpectedly (status $rc); see $LOGS/${NAMES[i]}.log" >&2
  fi
done
stop_all
exit 1
