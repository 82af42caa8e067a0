#!/usr/bin/env bash
# Builds Handrail for an ARM device on this x86_64 build host, in one command:
#
#   scripts/cross.sh aarch64-unknown-linux-gnu        # 64-bit ARM (ARMv8-A)
#   scripts/cross.sh armv7-unknown-linux-gnueabihf    # 32-bit ARM (ARMv7-A, hard float)
#
# It installs what it needs, idempotently (through setup.sh: the Rust targets, Debian's
# cross linkers and C libraries), then writes into target/cross/<triple>/:
#   handrail                 the lean build (no compiler: runs precompiled handlers only)
#   handrail-native-worker   the worker native handlers run in, beside it
#   handlers/                the built-in handlers precompiled for the target, each with
#                            its registration: copy them into <state-dir>/handlers/
# Release builds are stripped. Options:
#   --debug            build the debug profile (faster to build, what the tests use)
#   --out DIR          write there instead of target/cross/<triple>
#   --handrail PATH    precompile with this full build of the same version rather than
#                      building one for this machine
#   --cpu-features L   CPU features every target device has beyond the architecture's
#                      baseline (aarch64 only; Cranelift's names, e.g. lse,fp16)
# 64-bit ARM handlers run as machine code; 32-bit ARM has no code generator in
# wasmtime, so its handlers are precompiled to wasmtime's Pulley interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,22p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
triple=$1
shift
profile=release
out=""
host_handrail=""
features=""
while [ $# -gt 0 ]; do
    case $1 in
        --debug) profile=debug ;;
        --out) out=$2; shift ;;
        --handrail) host_handrail=$2; shift ;;
        --cpu-features) features=$2; shift ;;
        *) usage ;;
    esac
    shift
done

case $triple in
    aarch64-unknown-linux-gnu) gnu=aarch64-linux-gnu ;;
    armv7-unknown-linux-gnueabihf) gnu=arm-linux-gnueabihf ;;
    *) echo "cross.sh: $triple is not a target this script builds (aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf)" >&2; exit 2 ;;
esac

# setup.sh installs every ARM target's toolchain and C library.
source scripts/setup.sh

# The cross linker and C compiler, for rustc and for the `cc` crate.
upper=$(tr 'a-z-' 'A-Z_' <<<"$triple")
export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
export "CC_${triple//-/_}=$gnu-gcc" "AR_${triple//-/_}=$gnu-ar"

profile_args=()
[ "$profile" = release ] && profile_args=(--release)
target_dir=${CARGO_TARGET_DIR:-target}
cargo build --locked "${profile_args[@]}" --target "$triple" \
    -p handrail-cli --no-default-features --bin handrail \
    -p handrail-native-host --bin handrail-native-worker
if [ -z "$host_handrail" ]; then
    cargo build --locked "${profile_args[@]}" -p handrail-cli --bin handrail
    host_handrail="$target_dir/$profile/handrail"
fi

out=${out:-target/cross/$triple}
mkdir -p "$out/handlers"
built="$target_dir/$triple/$profile"
for bin in handrail handrail-native-worker; do
    cp "$built/$bin" "$out/$bin.tmp"
    [ "$profile" = release ] && "$gnu-strip" "$out/$bin.tmp"
    mv "$out/$bin.tmp" "$out/$bin"
done
feature_args=()
[ -n "$features" ] && feature_args=(--cpu-features "$features")
"$host_handrail" precompile --builtins "$out/handlers" --target "$triple" "${feature_args[@]}"
ls -l "$out" "$out/handlers"
