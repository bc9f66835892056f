#!/usr/bin/env bash
# Run every labnet test: unit, property, in-process, and end-to-end against
# real clients in network namespaces and QEMU. Needs root. Installs what it
# needs first (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (namespaces, ports 53/67/69)" >&2; exit 1; }
scripts/deps.sh
cargo build --release --bins --locked
cargo test --release --workspace --locked -- --test-threads="${TEST_THREADS:-4}"
# Coverage-guided fuzzing, a fixed time per target; fails on any crash.
scripts/fuzz.sh
