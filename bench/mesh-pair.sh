#!/usr/bin/env bash
# The proxy benchmark: direct, an HAProxy mTLS pair and the ztmesh pair,
# measured side by side in one run, in network namespaces (root needed).
# Builds the release proxy, then runs the shared reference harness with it;
# its arguments pass through (--quick, --modes, --reps). Run by hand, not in CI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
harness="$repo/../shared/bench/netns/mesh-pair.sh"
[[ -x $harness || -f $harness ]] || { echo "bench: the reference harness is expected at $harness (shared/ beside the repository)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "bench: needs root (network namespaces, iptables)" >&2; exit 2; }
echo "bench: building the release proxy" >&2
cargo build --release --locked -p ztmesh-proxy --manifest-path "$repo/Cargo.toml" >&2
mkdir -p "$here/results"
ZTMESH_PROXY_BIN="$repo/target/release/ztmesh-proxy" RESULTS_DIR="${RESULTS_DIR:-$here/results}" \
  exec bash "$harness" --modes "${MODES:-direct,haproxy,ztmesh}" "$@"
