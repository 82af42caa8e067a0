#!/usr/bin/env bash
# Builds Handrail for ARM devices on this x86_64 build host, in one command:
#
#   scripts/cross.sh aarch64-unknown-linux-gnu        # 64-bit ARM (ARMv8-A)
#   scripts/cross.sh armv7-unknown-linux-gnueabihf    # 32-bit ARM (ARMv7-A, hard float)
#   scripts/cross.sh aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf   # both
#   scripts/cross.sh x86_64-unknown-linux-gnu         # the lean build for this host too
#
# It installs what it needs, idempotently (through setup.sh: the Rust targets, Debian's
# cross linkers and C libraries), then writes into target/cross/<triple>/:
#   handrail                 the lean build (no compiler: runs precompiled handlers only)
#   handrail-native-worker   the worker native handlers run in, beside it
#   handlers/                the built-in handlers precompiled for the target, each with
#                            its registration: copy them into <state-dir>/handlers/
# Release builds are stripped. Several targets build in one cargo run, which keeps both
# cores busy. Options:
#   --debug            build the debug profile (faster to build, what the tests use)
#   --out DIR          write into DIR/<triple>/ instead of target/cross/<triple>/
#   --handrail PATH    precompile with this full build of the same version rather than
#                      building one for this machine
#   --handrail-ready F with --handrail: the build of PATH is still under way; wait for
#                      the file F to appear (at most an hour) before precompiling
#   --cpu-features L   CPU features every aarch64 device has beyond the architecture's
#                      baseline (Cranelift's names, e.g. lse,fp16)
# 64-bit ARM handlers run as machine code; 32-bit ARM has no code generator in
# wasmtime, so its handlers are precompiled to wasmtime's Pulley interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,24p' "$0" >&2; exit 2; }
triples=()
profile=release
out=target/cross
host_handrail=""
host_ready=""
features=""
while [ $# -gt 0 ]; do
    case $1 in
        --debug) profile=debug ;;
        --out) out=$2; shift ;;
        --handrail) host_handrail=$2; shift ;;
        --handrail-ready) host_ready=$2; shift ;;
        --cpu-features) features=$2; shift ;;
        -*) usage ;;
        *) triples+=("$1") ;;
    esac
    shift
done
[ "${#triples[@]}" -ge 1 ] || usage

# Debian's prefix of each target's cross tools.
gnu_of() {
    case $1 in
        aarch64-unknown-linux-gnu) echo aarch64-linux-gnu ;;
        armv7-unknown-linux-gnueabihf) echo arm-linux-gnueabihf ;;
        x86_64-unknown-linux-gnu) echo x86_64-linux-gnu ;;
        *) echo "cross.sh: $1 is not a target this script builds (aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf, x86_64-unknown-linux-gnu)" >&2; exit 2 ;;
    esac
}
target_args=()
for triple in "${triples[@]}"; do
    gnu=$(gnu_of "$triple")
    # The cross linker and C compiler, for rustc and for the `cc` crate.
    upper=$(tr 'a-z-' 'A-Z_' <<<"$triple")
    export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
    export "CC_${triple//-/_}=$gnu-gcc" "AR_${triple//-/_}=$gnu-ar"
    target_args+=(--target "$triple")
done

# setup.sh installs every ARM target's toolchain and C library.
source scripts/setup.sh

profile_args=()
[ "$profile" = release ] && profile_args=(--release)
target_dir=${CARGO_TARGET_DIR:-target}
cargo build --locked "${profile_args[@]}" "${target_args[@]}" \
    -p handrail-cli --no-default-features --bin handrail \
    -p handrail-native-host --bin handrail-native-worker
if [ -n "$host_ready" ]; then
    # The host build runs beside this one (the test script's own build).
    for _ in $(seq 3600); do
        [ -e "$host_ready" ] && break
        sleep 1
    done
    [ -e "$host_ready" ] || { echo "cross.sh: $host_ready never appeared" >&2; exit 1; }
fi
if [ -z "$host_handrail" ]; then
    cargo build --locked "${profile_args[@]}" -p handrail-cli --bin handrail
    host_handrail="$target_dir/$profile/handrail"
fi

for triple in "${triples[@]}"; do
    gnu=$(gnu_of "$triple")
    dest="$out/$triple"
    mkdir -p "$dest/handlers"
    built="$target_dir/$triple/$profile"
    for bin in handrail handrail-native-worker; do
        cp "$built/$bin" "$dest/$bin.tmp"
        [ "$profile" = release ] && "$gnu-strip" "$dest/$bin.tmp"
        mv "$dest/$bin.tmp" "$dest/$bin"
    done
    feature_args=()
    [ -n "$features" ] && [ "${triple%%-*}" = aarch64 ] && feature_args=(--cpu-features "$features")
    "$host_handrail" precompile --builtins "$dest/handlers" --target "$triple" "${feature_args[@]}"
    ls -l "$dest" "$dest/handlers"
done
