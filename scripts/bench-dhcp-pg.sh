#!/usr/bin/env bash
# DHCP on PostgreSQL, labnet beside Kea (issue 9's benchmark): one
# PostgreSQL server (Debian's, default durability: fsync and synchronous
# commit on, as both projects' users run it) started here in a temporary
# directory, then ../shared/bench/dhcp-peers.sh twice on the same rig and the
# same database server: Kea with `lease-database { type = "postgresql" }`
# (its schema from `kea-admin db-init pgsql`), and labnet-dhcpd with
# `[store] url = "postgres://…"`. Each server start (dhcp-peers restarts the
# server for every step) begins from an empty lease table, as the rig's
# memfile/SQLite runs do.
#
#   scripts/bench-dhcp-pg.sh        # prints both BENCH_SUMMARY lines
#   WHO=kea KEA_MT=false scripts/bench-dhcp-pg.sh   # one server, Kea single-threaded
#
# Needs root, postgresql, kea-dhcp4-server, kea-admin (perfdhcp).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS_DIR:-$here/../shared/bench}
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
port=5499
dir=$(mktemp -d /tmp/labnet-pgbench.XXXXXX)
chown postgres:postgres "$dir"
chmod 755 "$dir"
as_pg() { runuser -u postgres -- "$@"; }
as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w start \
    -o "-c listen_addresses='' -k $dir -p $port -c max_connections=100" >/dev/null
cleanup() { as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
psql_() { psql -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 -q "$@"; }
psql_ -c "CREATE DATABASE kea" -c "CREATE DATABASE labnet_template"
kea-admin db-init pgsql -h "$dir" -P "$port" -u postgres -p "" -n kea >/dev/null

# Kea: the rig's own settings, lease database on PostgreSQL, and
# multi-threading on (KEA_MT=false for Kea 2.2's default off): what Kea's
# manual advises for a database backend, and the default from Kea 2.4.
kea_mt=${KEA_MT:-true}
cat > "$dir/kea.sh" <<SH
#!/usr/bin/env bash
set -e
psql -h $dir -p $port -U postgres -q -c "TRUNCATE lease4" kea
cat > "\$BENCH_STATE_DIR/kea.json" <<JSON
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "\$BENCH_IFACE" ] },
  "lease-database": { "type": "postgresql", "name": "kea", "user": "postgres",
                      "host": "$dir", "port": $port },
  "valid-lifetime": 3600, "renew-timer": 900, "rebind-timer": 1800,
  "multi-threading": { "enable-multi-threading": $kea_mt, "thread-pool-size": 4,
                       "packet-queue-size": 64 },
  "subnet4": [ { "id": 1, "subnet": "\$BENCH_SUBNET",
                 "pools": [ { "pool": "\$BENCH_POOL_START - \$BENCH_POOL_END" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "WARN",
                 "output_options": [ { "output": "\$BENCH_STATE_DIR/kea.log" } ] } ]
} }
JSON
export KEA_PIDFILE_DIR="\$BENCH_STATE_DIR" KEA_LOCKFILE_DIR="\$BENCH_STATE_DIR"
exec kea-dhcp4 -c "\$BENCH_STATE_DIR/kea.json"
SH

# labnet: a fresh database per start, created and migrated by labnetctl init.
cat > "$dir/labnet.sh" <<SH
#!/usr/bin/env bash
set -e
psql -h $dir -p $port -U postgres -q -c "DROP DATABASE IF EXISTS labnet" -c "CREATE DATABASE labnet"
cfg=\$BENCH_STATE_DIR/labnet.toml
cat > "\$cfg" <<TOML
[store]
url = "postgres://postgres@localhost/labnet?host=$dir&port=$port"
[dhcp]
interfaces = ["\$BENCH_IFACE"]
ping_check = false
max_packets_per_client = 1000
[[dhcp.subnets]]
cidr = "\$BENCH_SUBNET"
pools = ["\$BENCH_POOL_START-\$BENCH_POOL_END"]
lease_time = "\${BENCH_LEASE_TIME}s"
TOML
"$here/target/release/labnetctl" --config "\$cfg" init >/dev/null
export RUST_LOG=\${RUST_LOG:-warn}
exec "$here/target/release/labnet-dhcpd" --config "\$cfg"
SH
chmod 755 "$dir/kea.sh" "$dir/labnet.sh"

for who in ${WHO:-kea labnet}; do
    echo "== $who on PostgreSQL" >&2
    SERVERS="" SERVER_NAME="$who-pg" SERVER_CMD="$dir/$who.sh" MAX_RATE="${MAX_RATE:-48000}" \
        "$peers/dhcp-peers.sh" 2> >(grep -v '^\[' >&2) | grep BENCH_SUMMARY
done
