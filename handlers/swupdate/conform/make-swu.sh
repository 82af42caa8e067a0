#!/usr/bin/env bash
# Rebuilds the conformance step's payload (../conform.toml): conformance-2.0.swu, a
# signed .swu whose two selections (stable,copy1 and stable,copy2) write a small image to
# /dev/null, and signer.pem, the certificate it is signed for. The kit checks the
# handler's contract on a scratch device, not where swupdate writes — the handler's own
# tests (../tests/real_swupdate.rs) check that — so the image goes nowhere and the .swu
# names no folder of the machine running the kit.
#
# Each run signs with a new key pair and throws the private key away; commit both files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 36500 \
    -subj "/O=Handrail/CN=Handrail swupdate conformance signer" \
    -addext extendedKeyUsage=emailProtection -addext keyUsage=digitalSignature \
    -keyout "$build/key.pem" -out "$build/signer.pem" 2>/dev/null
printf 'HANDRAIL-CONFORMANCE-IMAGE version=2.0\n' > "$build/image.img"
sha=$(sha256sum "$build/image.img" | cut -d' ' -f1)
copy='{ images: ( { filename = "image.img"; type = "raw"; device = "/dev/null"; sha256 = "'$sha'"; } ); }'
cat > "$build/sw-description" <<DESCRIPTION
software =
{
  version = "2.0";
  description = "Handrail conformance image";
  hardware-compatibility = [ "1.0" ];
  stable = {
    copy1 = $copy;
    copy2 = $copy;
  };
}
DESCRIPTION
openssl cms -sign -binary -noattr -nosmimecap -outform DER \
    -in "$build/sw-description" -out "$build/sw-description.sig" \
    -signer "$build/signer.pem" -inkey "$build/key.pem"
chmod 0644 "$build"/*
touch -d @0 "$build"/*
(cd "$build" && printf '%s\n' sw-description sw-description.sig image.img |
    cpio --quiet -o -H crc --reproducible --owner=0:0) > "$here/conformance-2.0.swu"
cp "$build/signer.pem" "$here/signer.pem"
