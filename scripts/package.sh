#!/usr/bin/env bash
# Builds Handrail's Debian package into target/deb/handrail_<version>_<arch>.deb:
#
#   /usr/bin/handrail                    the full build (the compiler, the built-in handlers)
#   /usr/bin/handrail-native-worker      the worker native handlers run in, beside it
#   /lib/systemd/system/handrail-ddi.service   `handrail ddi` as a service (installed disabled)
#   /etc/handrail/config.toml            a sample configuration (a conffile: kept on upgrade)
#   /usr/share/man/man1/handrail*.1.gz   man pages, and bash, zsh and fish completions,
#                                        generated from the command line's definitions
#
# Options:
#   --from DIR   package the binaries already built in DIR (handrail, handrail-native-worker,
#                handrail-docs; e.g. target/debug) instead of building release ones
#   --out DIR    write the package into DIR
#   --compression xz|gzip|zstd|none   how dpkg-deb compresses it (default xz)
set -euo pipefail
cd "$(dirname "$0")/.."
from=""
out=${CARGO_TARGET_DIR:-target}/deb
compression=xz
while [ $# -gt 0 ]; do
    case $1 in
        --from) from=$2; shift ;;
        --out) out=$2; shift ;;
        --compression) compression=$2; shift ;;
        *) sed -n '2,16p' "$0" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$from" ]; then
    source scripts/setup.sh
    cargo build --release --locked -p handrail-cli --bin handrail --bin handrail-docs \
        -p handrail-native-host --bin handrail-native-worker
    from=${CARGO_TARGET_DIR:-target}/release
fi
for bin in handrail handrail-native-worker handrail-docs; do
    [ -x "$from/$bin" ] || { echo "package.sh: no $from/$bin" >&2; exit 2; }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -D -m 0755 "$from/handrail" "$root/usr/bin/handrail"
install -D -m 0755 "$from/handrail-native-worker" "$root/usr/bin/handrail-native-worker"
"$from/handrail-docs" "$stage/docs"
mkdir -p "$root/usr/share/man/man1"
for page in "$stage"/docs/man/*.1; do
    gzip -9n <"$page" >"$root/usr/share/man/man1/$(basename "$page").gz"
done
install -D -m 0644 "$stage/docs/completions/handrail.bash" \
    "$root/usr/share/bash-completion/completions/handrail"
install -D -m 0644 "$stage/docs/completions/_handrail" \
    "$root/usr/share/zsh/vendor-completions/_handrail"
install -D -m 0644 "$stage/docs/completions/handrail.fish" \
    "$root/usr/share/fish/vendor_completions.d/handrail.fish"
install -D -m 0644 packaging/handrail-ddi.service "$root/lib/systemd/system/handrail-ddi.service"
install -D -m 0644 packaging/config.toml "$root/etc/handrail/config.toml"
install -D -m 0644 README.md "$root/usr/share/doc/handrail/README.md"
mkdir -p "$root/DEBIAN"
echo /etc/handrail/config.toml >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/control" <<CONTROL
Package: handrail
Version: $version
Architecture: $arch
Maintainer: Handrail <handrail@localhost>
Section: admin
Priority: optional
Depends: libc6
Recommends: swupdate
Installed-Size: $(du -sk "$root/usr" "$root/lib" "$root/etc" | awk '{s += $1} END {print s}')
Description: runtime for over-the-air update step handlers
 Handrail runs an update manifest's steps (Azure Device Update manifests,
 scripts and result codes unchanged) through sandboxed handlers:
 WebAssembly components and confined native libraries. It resumes after a
 reboot, a crash or a power cut, rolls back failed steps, and takes updates
 from a hawkBit DDI server (handrail ddi, the handrail-ddi service).
CONTROL
mkdir -p "$out"
deb="$out/handrail_${version}_${arch}.deb"
dpkg-deb --root-owner-group "-Z$compression" --build "$root" "$deb" >/dev/null
echo "$deb"
