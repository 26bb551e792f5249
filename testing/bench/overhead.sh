#!/usr/bin/env bash
# Cost of a change on the request path, measured as the proxy's own CPU
# time per request (user and system, from /proc/PID/stat) rather than
# throughput, which on a shared machine moves with whatever else runs.
# Both binaries serve the same connector in turn, twice, alternating;
# the same bench client loads each with N requests of 1 KiB per op.
#
#   testing/bench/overhead.sh BEFORE_BINARY AFTER_BINARY [CONNECTOR]
#   N=800000 OPS="get put" testing/bench/overhead.sh ...
set -euo pipefail
before=${1:?usage: overhead.sh BEFORE_BINARY AFTER_BINARY [CONNECTOR]}
after=${2:?usage: overhead.sh BEFORE_BINARY AFTER_BINARY [CONNECTOR]}
connector=${3:-memory}
n=${N:-800000}
client=$after
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
tick=$(getconf CLK_TCK)

wait_socket() {
  for _ in $(seq 1 500); do
    [ -S "$1" ] && return 0
    sleep 0.01
  done
  echo "no socket at $1" >&2
  return 1
}

echo "| binary | op | user µs/request | system µs/request |"
echo "|---|---|---|---|"
for round in 1 2; do
  for name in before after; do
    bin=${!name}
    socket="$work/$name.sock"
    "$bin" serve --connector "$connector" --state-dir "$work/data-$name" --socket "$socket" 2>/dev/null &
    pid=$!
    wait_socket "$socket"
    for op in ${OPS:-get put head}; do
      "$client" bench --socket "$socket" --op "$op" --size 1KiB --concurrency 16 --duration 0.5 --warmup 0.2 >/dev/null
      read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
      "$client" bench --socket "$socket" --op "$op" --size 1KiB --concurrency 16 --requests "$n" --warmup 0 >/dev/null
      read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
      python3 -c 'import sys
u, s, n, t = (int(x) for x in sys.argv[3:7])
print("| %s | %s | %.2f | %.2f |" % (sys.argv[1], sys.argv[2].upper(), u * 1e6 / t / n, s * 1e6 / t / n))' \
        "$name" "$op" $((u1 - u0)) $((s1 - s0)) "$n" "$tick"
    done
    kill "$pid"
    wait "$pid" || true
  done
done
