#!/usr/bin/env bash
# Run every labnet test: unit, property, in-process, and end-to-end against
# real clients in network namespaces and QEMU. Needs root. Installs what it
# needs first (scripts/deps.sh). Run it as root, or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/as-root.sh
scripts/deps.sh
cargo build --release --bins --locked
cargo test --release --workspace --locked -- --test-threads="${TEST_THREADS:-4}"
# Coverage-guided fuzzing, a fixed time per target; fails on any crash.
scripts/fuzz.sh
