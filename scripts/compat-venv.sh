#!/usr/bin/env bash
# Installs the Python tools the tests drive (tests/compat/requirements.txt: a third-party Face++ client and the
# Stripe fake's localstripe) into a venv beside the models, when the pinned list changed. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/faceplate"
models="${FACEPLATE_MODELS_DIR:-$cache/models}"
compat="$models/../compat-venv"
if ! cmp -s tests/compat/requirements.txt "$compat/requirements.txt" 2>/dev/null; then
    rm -rf "$compat"
    python3 -m venv "$compat"
    "$compat/bin/pip" install -q --disable-pip-version-check --no-deps -r tests/compat/requirements.txt
    cp tests/compat/requirements.txt "$compat/requirements.txt"
fi
