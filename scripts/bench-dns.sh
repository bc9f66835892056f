#!/usr/bin/env bash
# SERVER_CMD for /work/shared/bench/dns-peers.sh (and any rig with the same
# BENCH_* variables): write a labnet config, import the bench zone with the
# release labnetctl, then exec the release labnet-dnsd (or $LABNET_DNSD) in the
# foreground.
#   SERVER_NAME=labnet SERVER_CMD="$PWD/scripts/bench-dns.sh" /work/shared/bench/dns-peers.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
d="${BENCH_STATE_DIR:?}"
cat > "$d/labnet.toml" <<TOML
[store]
url = "sqlite://$d/labnet.db"
[dns]
listen = ["${BENCH_ADDR:?}:${BENCH_PORT:?}"]
TOML
"$root/target/release/labnetctl" --config "$d/labnet.toml" zones import "${BENCH_ZONE_FILE:?}" --origin "${BENCH_ZONE:?}" >&2
RUST_LOG=${RUST_LOG:-warn,labnet_dnsd=info} exec "${LABNET_DNSD:-$root/target/release/labnet-dnsd}" --config "$d/labnet.toml"
