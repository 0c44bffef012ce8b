#!/usr/bin/env bash
# Crash and reconcile (issue: metering must lose and double nothing). Under load, `faceplate serve` is killed
# with SIGKILL twice and the Stripe fake is stopped and restarted; then the usage events and Stripe's meter
# events are reconciled with the billable answers the load client saw. Prints lost=0 duplicated=0 on success
# (exit 0). SQLite by default; TEST_BACKEND=postgres TEST_POSTGRES_URL=... for PostgreSQL.
# Options go to the program: --seconds 20 --clients 8.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/compat-venv.sh # the Stripe fake's localstripe
cache="${XDG_CACHE_HOME:-$HOME/.cache}/faceplate"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
cargo build --locked -q -p faceplate-api --bin faceplate -p faceplate-bench --bin faceplate-crash-reconcile
exec "$CARGO_TARGET_DIR/debug/faceplate-crash-reconcile" "$@"
