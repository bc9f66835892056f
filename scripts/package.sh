#!/usr/bin/env bash
# Build labnet's Debian package with cargo-deb: the four binaries, the
# systemd units, the example config in /etc/labnet, man pages and shell
# completions (generated from the clap definitions by labnet-xtask), and the
# maintainer scripts in dist/debian/ (the labnet user, /var/lib/labnet).
# Prints the path of the .deb. Usage: scripts/package.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-target/debian}"
command -v cargo-deb >/dev/null || {
    echo "package: cargo-deb is missing (scripts/deps.sh installs it)" >&2
    exit 1
}
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --bins --locked >&2
rm -rf "$target/release/dist"
"$target/release/labnet-xtask" dist-assets "$target/release/dist"
mkdir -p "$out"
# Stripped (the release profile keeps line tables for backtraces in
# development); --fast: gzip-level compression, seconds instead of minutes.
cargo deb -p labnetctl --no-build --locked --strip --fast --output "$out" >&2
ls -t "$out"/labnet_*.deb | head -n 1
