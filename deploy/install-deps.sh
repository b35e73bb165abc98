#!/usr/bin/env bash
# Installs every build, run and test dependency of Stockpot with apt-get (Debian 12).
# Idempotent: asks dpkg-query first and touches apt only when something is missing,
# so a second run takes well under a second. Uses sudo when not root.
#
#   deploy/install-deps.sh          install what is missing
#   deploy/install-deps.sh --check  only report; exit 1 if something is missing
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config
  librdkafka-dev libpq-dev liblmdb-dev libjansson-dev libevent-dev libjwt-dev
  libargon2-dev libxxhash-dev libssl-dev libutf8proc-dev libstemmer-dev libroaring-dev
  libsimdjson-dev libwslay-dev libvips-dev libwebp-dev
  # tests: cmocka, sanitizers and fuzzing (clang), formatting, the WebSocket test's client
  libcmocka-dev clang libclang-rt-14-dev clang-format python3-jsonschema
  python3-websockets
  # run: PostgreSQL server + pg_virtualenv, LMDB tools, importer, health checks
  postgresql postgresql-common lmdb-utils python3 curl procps
  # benchmarks: the search benchmark's peers (tests/bench/search/peer_*.py)
  python3-xapian python3-psycopg2
  # benchmarks: the throughput benchmark's load generator and its static-file peer
  wrk nginx-light
)

check_only=0
if [[ "${1:-}" == "--check" ]]; then
  check_only=1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if ((check_only)); then
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: apt-get not found; this script targets Debian 12 (bookworm)." >&2
  echo "install-deps: install these packages by hand: ${missing[*]}" >&2
  exit 1
fi

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-deps: not root and sudo is not available." >&2
    echo "install-deps: as root, run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
  ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  echo "install-deps: apt-get failed to install: ${missing[*]}" >&2
  echo "install-deps: check network access and apt sources, then rerun." >&2
  exit 1
fi
echo "install-deps: installed ${missing[*]}"
