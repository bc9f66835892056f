#!/usr/bin/env bash
# SERVER_CMD for /work/shared/bench/resolver-peers.sh: labnet-dnsd as a
# recursive resolver iterating the rig's fake Internet from its root hints.
#   SERVER_NAME=labnet SERVER_CMD="$PWD/scripts/bench-resolver.sh" /work/shared/bench/resolver-peers.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
d="${BENCH_STATE_DIR:?}"
cat > "$d/labnet.toml" <<TOML
[store]
url = "sqlite://$d/labnet.db"
[dns]
listen = ["${BENCH_ADDR:?}:${BENCH_PORT:?}"]
recursion_allowed = ["127.0.0.0/8"]
root_hints = "${BENCH_ROOT_HINTS:?}"
cache_size = "${BENCH_CACHE_MB:-256}M"
TOML
"$root/target/release/labnetctl" --config "$d/labnet.toml" zones list >/dev/null
RUST_LOG=${RUST_LOG:-warn} exec "$root/target/release/labnet-dnsd" --config "$d/labnet.toml"
