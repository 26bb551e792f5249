#!/usr/bin/env bash
# Benchmarks of docs/performance.md for the core: the minimal hyper
# baseline, the proxy on the memory store and on the fs store, GET/PUT/HEAD
# of 1 KiB at concurrency 16 with keep-alive, and GET with a new
# connection per request; fs PUT without syncing. Prints one Markdown
# table row per run.
#
#   testing/bench/core.sh [SECONDS]
#   STATE_PROXY_BIN=/other/state-proxy testing/bench/core.sh   # another build's proxy
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-5}
cd "$root"
cargo build --release --locked -p state-proxy --bin state-proxy --example baseline_server >/dev/null
bin=${STATE_PROXY_BIN:-"$root/target/release/state-proxy"}
work=$(mktemp -d)
. "$root/testing/bench/lib.sh"
trap 'stop; rm -rf "$work"' EXIT

wait_socket() {
  for _ in $(seq 1 200); do
    [ -S "$1" ] && return 0
    sleep 0.01
  done
  echo "no socket at $1" >&2
  return 1
}

row() { # target socket op [extra bench flags...]
  local target=$1 socket=$2 op=$3
  shift 3
  "$bin" bench --socket "$socket" --op "$op" --size 1KiB --concurrency 16 --duration "$seconds" "$@" |
    python3 -c 'import json, sys
r = json.load(sys.stdin)
l = r["latency_ms"]
cells = [sys.argv[1], r["op"].upper(), r["connection"], "{:,.0f}".format(r["requests_per_second"]),
         "%.2f" % l["p50"], "%.2f" % l["p90"], "%.2f" % l["p99"], str(r["errors"])]
print("| " + " | ".join(cells) + " |")' "$target"
}

echo "| target | op | connection | requests/s | p50 ms | p90 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|---|---|"

"$root/target/release/examples/baseline_server" "$work/baseline.sock" 2>/dev/null &
pid=$!
wait_socket "$work/baseline.sock"
for op in get put head; do row "hyper baseline" "$work/baseline.sock" "$op"; done
row "hyper baseline" "$work/baseline.sock" get --new-connection
stop

"$bin" serve --connector memory --socket "$work/memory.sock" 2>/dev/null &
pid=$!
wait_socket "$work/memory.sock"
for op in get put head; do row "proxy, memory" "$work/memory.sock" "$op"; done
row "proxy, memory" "$work/memory.sock" get --new-connection
stop

"$bin" serve --connector fs --socket "$work/fs.sock" --state-dir "$work/fs-data" 2>/dev/null &
pid=$!
wait_socket "$work/fs.sock"
for op in get put head; do row "proxy, fs" "$work/fs.sock" "$op"; done
row "proxy, fs" "$work/fs.sock" get --new-connection
stop

"$bin" serve --connector fs --socket "$work/fs-nosync.sock" --state-dir "$work/fs-nosync-data" \
  --fs-sync false 2>/dev/null &
pid=$!
wait_socket "$work/fs-nosync.sock"
row "proxy, fs, --fs-sync false" "$work/fs-nosync.sock" put
stop
