#!/usr/bin/env bash
# Runs the whole test suite: every test on SQLite, then every test again on PostgreSQL when TEST_POSTGRES_URL
# is set (an admin connection, e.g. postgres://postgres@127.0.0.1:5432/postgres; each test creates and drops
# databases of its own), then validates the committed OpenAPI document with an independent validator. The
# limiter tests use a real Redis (TEST_REDIS_URL, the local one, or one started here).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

cache="${XDG_CACHE_HOME:-$HOME/.cache}/faceplate"
mkdir -p "$cache"

# A third-party Face++ client (tests/e2e/facepp_client.rs) and the Stripe fake (tests/e2e/billing.rs).
scripts/compat-venv.sh

# The limiter tests share counts through a real Redis: TEST_REDIS_URL, else the one on the standard port, else
# a private one started here (without persistence) and stopped at the end.
if [ -z "${TEST_REDIS_URL:-}" ]; then
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        export TEST_REDIS_URL="redis://127.0.0.1:6379"
    else
        port=6391
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
            --pidfile "$cache/test-redis.pid" --logfile "$cache/test-redis.log"
        trap 'kill "$(cat "$cache/test-redis.pid")" 2>/dev/null || true' EXIT
        for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
        export TEST_REDIS_URL="redis://127.0.0.1:$port"
    fi
fi

if cargo nextest --version >/dev/null 2>&1; then
    run_tests() { cargo nextest run --locked --workspace --no-fail-fast; }
else
    echo "cargo-nextest not found; using cargo test (install it with: cargo install cargo-nextest --locked)" >&2
    run_tests() { cargo test --locked --workspace --no-fail-fast; }
fi

echo "== tests on SQLite" >&2
TEST_BACKEND=sqlite run_tests

if [ -n "${TEST_POSTGRES_URL:-}" ]; then
    echo "== tests on PostgreSQL ($TEST_POSTGRES_URL)" >&2
    TEST_BACKEND=postgres run_tests
else
    echo "== PostgreSQL pass skipped: set TEST_POSTGRES_URL to run every test on PostgreSQL too" >&2
fi

echo "== OpenAPI document: independent validation (openapi-spec-validator)" >&2
venv="$cache/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "openapi-spec-validator==0.9.0"
"$venv/bin/openapi-spec-validator" openapi/openapi.json
