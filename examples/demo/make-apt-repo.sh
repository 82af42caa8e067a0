#!/usr/bin/env bash
# Builds the demo's local apt repository in DIR (default /var/tmp/handrail-demo/apt):
# one small package, handrail-demo-hello 1.0, which installs
# /usr/share/handrail-demo/hello.txt. The demo's config.toml points microsoft/apt:1 at
# it (its own sources list, lists and cache folders), so the demo installs a real
# package with the real apt without touching the system's sources.
set -euo pipefail
dir=${1:-/var/tmp/handrail-demo/apt}
repo="$dir/repo"
build="$dir/build/handrail-demo-hello_1.0"
mkdir -p "$repo" "$build/DEBIAN" "$build/usr/share/handrail-demo" \
    "$dir/sources.list.d" "$dir/lists/partial" "$dir/cache/archives/partial"
cat > "$build/DEBIAN/control" <<CONTROL
Package: handrail-demo-hello
Version: 1.0
Architecture: all
Maintainer: Handrail demo <demo@handrail.invalid>
Description: Handrail demo package
 Installed by the Handrail demo deployment through microsoft/apt:1.
CONTROL
echo "hello from the handrail demo" > "$build/usr/share/handrail-demo/hello.txt"
dpkg-deb --root-owner-group --build "$build" "$repo/handrail-demo-hello_1.0_all.deb" >/dev/null
{
    for deb in "$repo"/*.deb; do
        dpkg-deb -f "$deb"
        echo "Filename: ./$(basename "$deb")"
        echo "Size: $(stat -c %s "$deb")"
        echo "SHA256: $(sha256sum "$deb" | cut -d' ' -f1)"
        echo
    done
} > "$repo/Packages"
echo "deb [trusted=yes] file:$repo ./" > "$dir/sources.list"
