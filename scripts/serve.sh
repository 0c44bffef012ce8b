#!/usr/bin/env bash
# Builds Faceplate and starts the server on the embedded default: SQLite files under ./data, no other service.
# Arguments go to `faceplate serve` (e.g. --listen 0.0.0.0:8080). FACEPLATE_CONFIG names a config file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release --locked -p faceplate-api --bin faceplate -- serve "$@"
