#!/usr/bin/env bash
# Builds every fuzz target and runs each for a few seconds over its committed seeds.
#
#   fuzz/smoke.sh [seconds-per-target]     (default 20)
#
# Exits non-zero if a build fails or any target crashes (the input is left in
# fuzz/artifacts/<target>/). Runs one fuzz process at a time. Uses a throwaway corpus
# directory so CI runs do not grow fuzz/corpus/. Needs cargo-fuzz
# (`cargo install cargo-fuzz --locked`); RUSTC_BOOTSTRAP=1 lets the stable toolchain take
# the nightly-only sanitizer flags cargo-fuzz passes. Set FUZZ_SANITIZER=none if ASan does
# not link on the machine.
set -euo pipefail

secs="${1:-20}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export RUSTC_BOOTSTRAP=1
san=(-s "${FUZZ_SANITIZER:-address}")
targets=(client_frame server_frame tree_txn tree_snapshot log_recover peer_message)

cargo fuzz build "${san[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    echo "== $t: ${secs}s over seeds/$t"
    set +e
    cargo fuzz run "${san[@]}" "$t" "$work/$t" "seeds/$t" -- \
        -max_total_time="$secs" -max_len=8192 -malloc_limit_mb=256 -timeout=10 \
        -print_final_stats=1 2>&1 |
        grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|==[0-9]+==|thread .* panicked|SUMMARY|Test unit written)'
    status=("${PIPESTATUS[@]}")
    set -e
    if [ "${status[0]}" -ne 0 ]; then
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "all ${#targets[@]} targets ran ${secs}s without a finding"
