#!/usr/bin/env bash
# SERVER_CMD for /work/shared/bench/gslb-peers.sh: write a labnet config,
# import the bench's zone, ISP lists, regions, region lists, pool and
# members with the release labnetctl (the files its header documents), then
# exec the release labnet-dnsd in the foreground.
#   SERVER_NAME=labnet SERVER_CMD="$PWD/scripts/bench-gslb.sh" /work/shared/bench/gslb-peers.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
d="${BENCH_STATE_DIR:?}"
g="${BENCH_GSLB_DIR:?}"
ctl() { "$root/target/release/labnetctl" --config "$d/labnet.toml" "$@" >&2; }
cat > "$d/labnet.toml" <<TOML
[store]
url = "sqlite://$d/labnet.db"
[dns]
listen = ["${BENCH_ADDR:?}:${BENCH_PORT:?}"]
# dnsperf from one address is the whole point here: no response rate limiting.
rate_limit = 0
TOML
ctl zones import "${BENCH_ZONE_FILE:?}" --origin "${BENCH_ZONE:?}"
for f in "$g"/isp-*.txt; do
  isp=$(basename "$f" .txt); ctl gslb isp import "${isp#isp-}" "$f"
done
tail -n +2 "$g/regions.csv" | while IFS=, read -r region lat lon; do
  ctl gslb region add "$region" --lat "$lat" --lon "$lon"
done
for f in "$g"/region-*.txt; do
  region=$(basename "$f" .txt); ctl gslb region import "${region#region-}" "$f"
done
tail -n +2 "$g/pools.csv" | while IFS=, read -r name answers ttl; do
  ctl gslb pool add "$name" --answers "$answers" --ttl "$ttl"
done
tail -n +2 "$g/members.csv" | while IFS=, read -r pool ip isp region; do
  ctl gslb member add "$pool" "$ip" --isp "$isp" --region "$region"
done
RUST_LOG=${RUST_LOG:-warn,labnet_dnsd=info} exec "$root/target/release/labnet-dnsd" --config "$d/labnet.toml"
