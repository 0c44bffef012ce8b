#!/usr/bin/env bash
# Set-up on Debian/Ubuntu with Rust installed: the system packages the build needs, then the models, the
# ONNX Runtime library and the test images (scripts/fetch-models.sh). Idempotent and quiet when everything is
# present; called by scripts/serve.sh and scripts/test.sh.
set -euo pipefail

# pq-sys (bundled libpq) builds with a C compiler and links OpenSSL; libsqlite3 is bundled too. The model
# fetch needs python3 with venv (PyPI packages) and npm (npm packages). The OCR tests render their images with
# real fonts: DejaVu (Latin, digits), WenQuanYi Zen Hei (Chinese) and OCR-B (machine-readable zones).
# The limiter tests need a Redis (scripts/test.sh starts one when none runs).
packages=(build-essential pkg-config libssl-dev perl python3 python3-venv fonts-dejavu-core fonts-wqy-zenhei fonts-ocr-b
    redis-server)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null || missing+=(npm)
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
if ((${#missing[@]})); then
    echo "installing system packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "Rust is required: https://rustup.rs" >&2; exit 1; }

# fetch-models.sh downloads one Debian package (opencv-doc, for real scene-text photos): apt needs its lists.
if ! apt-cache show opencv-doc >/dev/null 2>&1; then
    $sudo apt-get update -qq
fi

"$(dirname "$0")/fetch-models.sh" >/dev/null
