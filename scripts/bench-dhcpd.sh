#!/usr/bin/env bash
# SERVER_CMD for ../shared/bench/dhcp-peers.sh: writes a labnet config from the
# BENCH_* variables the script provides and runs the release labnet-dhcpd.
#   SERVER_NAME=labnet SERVER_CMD="$PWD/scripts/bench-dhcpd.sh" /work/shared/bench/dhcp-peers.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cfg=$BENCH_STATE_DIR/labnet.toml
cat > "$cfg" <<TOML
[store]
url = "sqlite://$BENCH_STATE_DIR/labnet.db"
[dhcp]
interfaces = ["$BENCH_IFACE"]
ping_check = false            # the peers run without ping checks too
max_packets_per_client = 1000
[[dhcp.subnets]]
cidr = "$BENCH_SUBNET"
pools = ["$BENCH_POOL_START-$BENCH_POOL_END"]
lease_time = "${BENCH_LEASE_TIME}s"
TOML
export RUST_LOG=${RUST_LOG:-warn}
exec "$here/target/release/labnet-dhcpd" --config "$cfg"
