#!/usr/bin/env bash
# Benchmarks of docs/s3.md ("Performance"): GET and PUT of 1 KiB at
# concurrency 16 against moto, straight with an object_store client
# (examples/s3_direct_bench.rs) and through the proxy (`state-proxy
# bench`, s3-buffered-lww and s3-buffered-cas), each bounded in time.
# Prints one Markdown table row per run.
#
#   testing/bench/s3.sh [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-5}
cd "$root"
cargo build --release --locked -p state-proxy --bin state-proxy --example s3_direct_bench >/dev/null
bin="$root/target/release/state-proxy"
direct="$root/target/release/examples/s3_direct_bench"
work=$(mktemp -d)
moto="$root/testing/shared/emulators/moto.sh"
trap 'kill $(jobs -p) 2>/dev/null || true; "$moto" stop "$work/moto"; rm -rf "$work"' EXIT
"$moto" start "$work/moto" >/dev/null
set -a
. "$work/moto/env"
set +a

wait_socket() {
  for _ in $(seq 1 200); do
    [ -S "$1" ] && return 0
    sleep 0.01
  done
  echo "no socket at $1" >&2
  return 1
}

table_row() { # target (JSON on stdin)
  python3 -c 'import json, sys
r = json.load(sys.stdin)
l = r["latency_ms"]
cells = [sys.argv[1], r["op"].upper(), "{:,.0f}".format(r["requests_per_second"]),
         "%.2f" % l["p50"], "%.2f" % l["p90"], "%.2f" % l["p99"], str(r["errors"])]
print("| " + " | ".join(cells) + " |")' "$1"
}

echo "| target | op | requests/s | p50 ms | p90 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|---|"
for op in get put; do
  "$direct" "$AWS_ENDPOINT_URL" "$STATE_BUCKET" "$op" 16 "$seconds" | table_row "object_store, direct"
done
for connector in s3-buffered-lww s3-buffered-cas; do
  "$bin" serve --connector "$connector" --socket "$work/$connector.sock" --prefix bench 2>/dev/null &
  wait_socket "$work/$connector.sock"
  for op in get put; do
    "$bin" bench --socket "$work/$connector.sock" --op "$op" --size 1KiB --concurrency 16 \
      --duration "$seconds" | table_row "proxy, $connector"
  done
  kill %1
  wait %1 2>/dev/null || true
done
