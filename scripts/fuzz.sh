#!/usr/bin/env bash
# Fuzzes everything Handrail reads from outside (and the signature check), one target after another, each for a
# bounded time: scripts/fuzz.sh [seconds-per-target] [target…]
# Needs the nightly toolchain (cargo-fuzz builds with sanitizers); installs cargo-fuzz
# when it is missing. Crashes land in fuzz/artifacts/<target>/; the corpus grows in
# fuzz/corpus/<target>/ (seeded from the example manifests and fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(manifest result_file registration config signature)
fi
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +stable install cargo-fuzz --locked
fi

# Seeds: real manifests, envelopes, result files, registrations and configurations.
seed() {
    local target="$1"; shift
    mkdir -p "fuzz/corpus/$target"
    for f in "$@"; do
        [ -f "$f" ] && cp -n "$f" "fuzz/corpus/$target/" 2>/dev/null || true
    done
}
seed manifest runtime/core/tests/manifests/*/*.json examples/demo/update.json
seed registration $(find runtime handlers examples -name '*.toml' -path '*handlers*' 2>/dev/null)
seed config examples/demo/config.toml
mkdir -p fuzz/corpus/result_file
printf '{"resultCode": 600, "extendedResultCode": 0, "resultDetails": "ok"}' > fuzz/corpus/result_file/success.json
printf '{"resultCode": 0, "extendedResultCode": 0}' > fuzz/corpus/result_file/anonymous.json
# The ADU shape with a root-signed signing key, whose signatures the fuzzer has to break.
mkdir -p fuzz/corpus/signature
printf '{}\n%s' 'eyJhbGciOiAiRWREU0EiLCAic2p3ayI6ICJleUpoYkdjaU9pQWlVbE15TlRZaUxDQWlhMmxrSWpvZ0luSnZiM1F1TVNKOS5leUpyZEhraU9pQWlUMHRRSWl3Z0ltTnlkaUk2SUNKRlpESTFOVEU1SWl3Z0luZ2lPaUFpTVRGeFdVRlpTM2hEY21aV1UxODNWSGxYVVVoUFp6ZG9ZM1pRWVhCcFRXeHlkMGxoWVZCalNGVlNieUlzSUNKcmFXUWlPaUFpYzJsbmJtbHVaeTR3SW4wLkFBQUEifQ.eyJzaGEyNTYiOiAiNDdERVFwajhIQlNhKy9USW1XKzVKQ2V1UWVSa201Tk1wSldaRzNoU3VGVT0ifQ.AAAA' \
    > fuzz/corpus/signature/adu-shape.txt

status=0
for target in "${targets[@]}"; do
    echo "== fuzz target $target for ${seconds}s"
    log="fuzz/$target.log"
    if ! (cd fuzz && cargo +nightly fuzz run "$target" -- \
            -max_total_time="$seconds" -max_len=1048576 -rss_limit_mb=2048 -timeout=10 \
            -print_final_stats=1) 2>"$log"; then
        echo "   $target FOUND A CRASH: see $log and fuzz/artifacts/$target/"
        status=1
    fi
    grep -E '^(stat::number_of_executed_units|#[0-9]+ +DONE)' "$log" || tail -n 3 "$log"
done
exit "$status"
