#!/usr/bin/env bash
# Benchmarks of docs/performance.md for the redis store, on a private
# redis-server: the redis-benchmark ceiling, the proxy (redis-buffered-cas)
# with keep-alive and with a new connection per request at concurrency 16,
# and the proxy against a direct `redis` crate client at concurrency 1
# (added latency). GETs of 1 KiB. Prints Markdown table rows.
#
#   testing/bench/redis.sh [SECONDS]
#   STATE_PROXY_BIN=/other/state-proxy testing/bench/redis.sh   # another build's proxy
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-5}
cd "$root"
cargo build --release --locked -p state-proxy --bin state-proxy --example redis_direct_bench >/dev/null
bin=${STATE_PROXY_BIN:-"$root/target/release/state-proxy"}
work=$(mktemp -d)
emulators="$root/testing/shared/emulators"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  "$emulators/redis.sh" stop "$work/redis" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$emulators/redis.sh" start "$work/redis" >/dev/null
port=$(cat "$work/redis/port")
url="redis://127.0.0.1:$port/0"

table_row() { # target connection concurrency requests/s p50 p99
  echo "| $1 | $2 | $3 | $4 | $5 | $6 |"
}

from_json() { # label connection concurrency < JSON of bench or redis_direct_bench
  python3 -c 'import json, sys
r = json.load(sys.stdin)
l = r["latency_ms"]
print("| %s | %s | %s | %s | %.3f | %.3f |" % (sys.argv[1], sys.argv[2], sys.argv[3],
      "{:,.0f}".format(r["requests_per_second"]), l["p50"], l["p99"]))' "$@"
}

echo "| target | connection | concurrency | GET/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|"

requests=$((seconds * 100000))
redis-benchmark -h 127.0.0.1 -p "$port" -t get -d 1024 -c 16 -n "$requests" --csv 2>/dev/null |
  python3 -c 'import csv, sys
rows = list(csv.reader(sys.stdin))
head, row = rows[0], rows[1]
r = dict(zip(head, row))
print("| redis-benchmark -d 1024 | keep-alive | 16 | {:,.0f} | {} | {} |".format(
      float(r["rps"]), r["p50_latency_ms"], r["p99_latency_ms"]))'

"$root/target/release/examples/redis_direct_bench" "$url" 1 "$seconds" |
  from_json "redis crate, direct" keep-alive 1

REDIS_URL="$url" STATE_PREFIX=bench "$bin" serve --connector redis-buffered-cas \
  --socket "$work/proxy.sock" 2>"$work/proxy.log" &
for _ in $(seq 1 200); do [ -S "$work/proxy.sock" ] && break; sleep 0.01; done
[ -S "$work/proxy.sock" ] || { cat "$work/proxy.log" >&2; exit 1; }

bench() { "$bin" bench --socket "$work/proxy.sock" --op get --size 1KiB --duration "$seconds" "$@"; }
bench --concurrency 1 | from_json "proxy, redis-buffered-cas" keep-alive 1
bench --concurrency 16 | from_json "proxy, redis-buffered-cas" keep-alive 16
bench --concurrency 16 --threads 2 | from_json "proxy, redis-buffered-cas (2 client threads)" keep-alive 16
bench --concurrency 16 --new-connection | from_json "proxy, redis-buffered-cas" "new per request" 16
