#!/usr/bin/env bash
# CPU cost of a request as instructions, which stay the same whatever else
# the machine runs (unlike time): the proxy serves the memory connector
# under `valgrind --tool=callgrind` while `state-proxy bench` sends a
# fixed number of 1 KiB requests (16 in flight); a run of N1 and one of
# N2 requests are subtracted, which cancels start-up, set-up and shutdown.
# Prints one Markdown row per binary and operation: instructions per
# request.
#
#   testing/bench/instructions.sh BINARY [BINARY...]
#   OPS="get put" N1=2000 N2=12000 testing/bench/instructions.sh ...
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: instructions.sh BINARY [BINARY...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is needed (Debian package valgrind)" >&2; exit 2; }
n1=${N1:-2000}
n2=${N2:-12000}
client=$1
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# instructions BINARY OP N: callgrind's total for the whole run.
instructions() {
  local bin=$1 op=$2 n=$3 run="$work/run-$RANDOM"
  mkdir -p "$run"
  valgrind --tool=callgrind --callgrind-out-file="$run/out" "$bin" serve --connector memory \
    --socket "$run/proxy.sock" >"$run/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    [ -S "$run/proxy.sock" ] && break
    sleep 0.05
  done
  [ -S "$run/proxy.sock" ] || { echo "no socket at $run/proxy.sock" >&2; cat "$run/log" >&2; exit 1; }
  "$client" bench --socket "$run/proxy.sock" --op "$op" --size 1KiB --concurrency 16 \
    --requests "$n" --duration 600 --warmup 0 >/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
  awk '/^(summary|totals):/ {print $2; exit}' "$run/out"
}

echo "| binary | op | instructions/request |"
echo "|---|---|---|"
for bin in "$@"; do
  for op in ${OPS:-get put head}; do
    small=$(instructions "$bin" "$op" "$n1")
    large=$(instructions "$bin" "$op" "$n2")
    echo "| $bin | ${op^^} | $(( (large - small) / (n2 - n1) )) |"
  done
done
