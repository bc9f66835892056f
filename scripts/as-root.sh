# Sourced by lab.sh and test.sh, from the repository root: make sure the
# script runs as root (namespaces, tap devices, ports 53/67/69).
#
# As root it runs as it is, whether or not sudo is installed (a fresh Debian
# has none). Anyone else goes through sudo when there is one, keeping their
# PATH and Rust toolchain: sudo's secure_path and HOME would lose cargo.
if [ "$(id -u)" != 0 ]; then
  self=$(basename "$0")
  command -v sudo >/dev/null || {
    echo "$self: run as root (namespaces, ports 53/67/69); sudo is not installed" >&2
    exit 1
  }
  keep=("PATH=$PATH")
  for v in CARGO_HOME RUSTUP_HOME KEEP TEST_THREADS RUST_LOG; do
    [ -n "${!v:-}" ] && keep+=("$v=${!v}")
  done
  [ -z "${CARGO_HOME:-}" ] && [ -d "$HOME/.cargo" ] && keep+=("CARGO_HOME=$HOME/.cargo")
  [ -z "${RUSTUP_HOME:-}" ] && [ -d "$HOME/.rustup" ] && keep+=("RUSTUP_HOME=$HOME/.rustup")
  echo "$self: not root; re-running through sudo" >&2
  exec sudo env "${keep[@]}" "$PWD/scripts/$self" "$@"
fi
