#!/usr/bin/env bash
# Installs what building and testing Handrail needs, idempotently: the pinned toolchain's
# wasm32-wasip2 target (built-in handlers are WebAssembly components built from source)
# and the Debian packages the tests drive for real. Sourced by test.sh and demo.sh.
set -euo pipefail

toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../rust-toolchain.toml")

if ! rustup toolchain list | grep -q "^${toolchain}"; then
    rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy
fi
if ! rustup target list --installed --toolchain "$toolchain" | grep -qx wasm32-wasip2; then
    rustup target add --toolchain "$toolchain" wasm32-wasip2
fi

# Debian packages: program -> package.
declare -A debs=([swupdate]=swupdate [openssl]=openssl [cpio]=cpio)
missing=()
for prog in "${!debs[@]}"; do
    command -v "$prog" >/dev/null 2>&1 || missing+=("${debs[$prog]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
