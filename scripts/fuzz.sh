#!/usr/bin/env bash
# Build the libFuzzer targets in fuzz/ and run each for a fixed time.
#
#   scripts/fuzz.sh                 # every target, FUZZ_RUNS inputs each
#   scripts/fuzz.sh dns -max_total_time=600   # one target, libFuzzer flags
#
# The run over every target (what CI does) is reproducible: a fixed seed
# (FUZZ_SEED, 1) and a fixed number of inputs (FUZZ_RUNS, 500,000) from
# the committed seeds, so CI fails on a crash that anyone can replay, not on
# what one random search happened to find that day. Searching for new
# crashes is the one-target form with a time and no seed.
#
# No cargo-fuzz needed: cargo builds the targets with the coverage
# instrumentation cargo-fuzz would pass (SanitizerCoverage: 8-bit counters,
# PC table, compare tracing) and libfuzzer-sys links libFuzzer (built from
# C++ source: needs a C++ compiler, installed by scripts/deps.sh). No
# AddressSanitizer: the workspace denies `unsafe`, and without ASan the
# stable toolchain needs no RUSTC_BOOTSTRAP. Overflow checks and debug
# assertions are on, as with cargo-fuzz.
#
# New inputs go to fuzz/target/corpus/<target> (not committed); the seeds in
# fuzz/corpus/<target> are read only. A crash stops the run, leaves the
# input in fuzz/artifacts/<target>/ and fails this script loudly.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TARGETS=(dhcp tftp dns)
RUNS_EACH="${FUZZ_RUNS:-500000}"
SEED="${FUZZ_SEED:-1}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"

export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks --cfg fuzzing"
# --target keeps RUSTFLAGS off build scripts and proc macros.
cargo build --release --locked --target "$TRIPLE" --bins

run() {
    local t="$1"
    shift
    mkdir -p "target/corpus/$t" "artifacts/$t"
    echo "fuzz.sh: $t" >&2
    if ! "target/$TRIPLE/release/$t" "target/corpus/$t" "corpus/$t" \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 "$@"; then
        echo "fuzz.sh: FAILED: target $t crashed; input in fuzz/artifacts/$t/" >&2
        exit 1
    fi
}

if [ $# -gt 0 ]; then
    t="$1"
    shift
    run "$t" "$@"
else
    for t in "${TARGETS[@]}"; do
        run "$t" -seed="$SEED" -runs="$RUNS_EACH"
    done
fi
