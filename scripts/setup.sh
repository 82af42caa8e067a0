#!/usr/bin/env bash
# Installs what building and testing Handrail needs, idempotently: the pinned toolchain's
# wasm32-wasip2 target (built-in handlers are WebAssembly components built from source),
# the Debian packages the tests drive for real, and what the ARM builds take. Sourced by
# test.sh, demo.sh and cross.sh.
set -euo pipefail

toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../rust-toolchain.toml")

if ! rustup toolchain list | grep -q "^${toolchain}"; then
    rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy
fi

# Installs the Debian packages named that are not installed yet.
install_debs() {
    local missing=() deb
    for deb in "$@"; do
        dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing+=("$deb")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    local sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    # Servers the tests start themselves (nginx, tinyproxy) must not be started by
    # their packages: a policy-rc.d that refuses every start, for the install only.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
        $sudo_cmd chmod 755 "$policy"
        made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
    [ -z "$made_policy" ] || $sudo_cmd rm -f "$policy"
}

# Installs the pinned toolchain's Rust targets named that are not installed yet.
install_targets() {
    local triple
    for triple in "$@"; do
        rustup target list --installed --toolchain "$toolchain" | grep -qx "$triple" ||
            rustup target add --toolchain "$toolchain" "$triple"
    done
}

# What the tests drive for real, and for the ARM builds `scripts/cross.sh` makes and
# tests/e2e/cross.rs runs under qemu-user: the Rust targets, Debian's cross compilers and
# C libraries.
arm_targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
arm_debs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
# nginx and tinyproxy: the real HTTP(S) server and proxy the download tests fetch from.
# systemd-analyze and man check the Debian package's unit and man pages
# (scripts/package.sh, tests/e2e/package.rs).
install_debs swupdate openssl cpio qemu-user nginx-light tinyproxy systemd man-db "${arm_debs[@]}"
install_targets wasm32-wasip2 "${arm_targets[@]}"

# goosebit, the real hawkBit DDI server the DDI client's tests talk to: a Python server
# from PyPI, so in a virtual environment of its own, kept in the target folder (a build
# product, outside the system's Python) and found by the tests through
# HANDRAIL_GOOSEBIT_VENV. Absolute, since tests run from their crate's folder; a relative
# CARGO_TARGET_DIR is the repository's, where the scripts run cargo. The stamp names the
# version and is written last: a venv of another version, or one whose install broke off,
# is made again from scratch. aerich, which makes goosebit's database schema, comes with
# it as a dependency.
goosebit_version=0.2.12
goosebit_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
goosebit_target=${CARGO_TARGET_DIR:-target}
[[ $goosebit_target = /* ]] || goosebit_target="$goosebit_repo/$goosebit_target"
export HANDRAIL_GOOSEBIT_VENV="$goosebit_target/goosebit-venv"
if [ ! -x "$HANDRAIL_GOOSEBIT_VENV/bin/uvicorn" ] ||
    [ ! -e "$HANDRAIL_GOOSEBIT_VENV/goosebit-$goosebit_version.stamp" ]; then
    # Debian's python3 makes a venv only with python3-venv (ensurepip) installed.
    python3 -c 'import ensurepip, venv' 2>/dev/null || install_debs python3-venv
    rm -rf "$HANDRAIL_GOOSEBIT_VENV"
    mkdir -p "$goosebit_target"
    python3 -m venv "$HANDRAIL_GOOSEBIT_VENV"
    "$HANDRAIL_GOOSEBIT_VENV/bin/pip" install --disable-pip-version-check -q "goosebit==$goosebit_version"
    touch "$HANDRAIL_GOOSEBIT_VENV/goosebit-$goosebit_version.stamp"
fi
