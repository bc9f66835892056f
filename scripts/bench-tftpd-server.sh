#!/usr/bin/env bash
# SERVER_CMD for tftp-peers.sh: labnet-tftpd serving BENCH_ROOT on BENCH_ADDR:BENCH_PORT.
cat > "$BENCH_STATE_DIR/labnet.toml" <<CFG
[store]
url = "sqlite://$BENCH_STATE_DIR/labnet.db"
[tftp]
listen = ["$BENCH_ADDR:$BENCH_PORT"]
root = "$BENCH_ROOT"
CFG
exec "${LABNET_TFTPD:-$(dirname "$(readlink -f "$0")")/../target/release/labnet-tftpd}" --config "$BENCH_STATE_DIR/labnet.toml"
