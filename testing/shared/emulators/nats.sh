#!/usr/bin/env bash
# A private NATS server with JetStream for integration tests, on a free
# port of 127.0.0.1, its store in DIR (never the machine's defaults).
#
#   nats.sh start DIR     install if missing, start, wait until it serves, write DIR/env
#   nats.sh stop DIR      stop it (idempotent; the store stays in DIR)
#   nats.sh restart DIR   stop it and start it again on the same port and
#                         store: streams, consumers and unacked messages survive
#
# max_payload is 8 MiB (the default is 1 MiB), so the large-payload test
# can send what a deployment configured so would take.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

command=${1:?usage: nats.sh start|stop|restart DIR}
dir=${2:?usage: nats.sh start|stop|restart DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
MAX_PAYLOAD=8388608

# Answers once the server serves: its monitoring endpoint says so.
healthy() {
  python3 - "$1" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz?js-enabled-only=true", timeout=2) as a:
    sys.exit(0 if a.status == 200 else 1)
PY
}

launch() {
  local port monitor
  port=$(cat "$dir/port")
  monitor=$(cat "$dir/monitor-port")
  cat >"$dir/nats.conf" <<CONF
listen: 127.0.0.1:$port
http: 127.0.0.1:$monitor
max_payload: $MAX_PAYLOAD
jetstream {
  store_dir: "$dir/store"
}
CONF
  nats-server -c "$dir/nats.conf" >>"$dir/nats.log" 2>&1 </dev/null &
  echo $! >"$dir/nats.pid"
  wait_ready 20 "$dir/nats.log" healthy "$monitor"
}

case "$command" in
  start)
    ensure_debian_package nats-server nats-server
    free_port >"$dir/port"
    free_port >"$dir/monitor-port"
    launch
    cat >"$dir/env" <<ENV
NATS_URL=nats://127.0.0.1:$(cat "$dir/port")
NATS_MAX_PAYLOAD=$MAX_PAYLOAD
NATS_CONTROL=$(cd "$(dirname "$0")" && pwd)/nats.sh
NATS_DIR=$dir
ENV
    echo "nats-server (JetStream) ready on 127.0.0.1:$(cat "$dir/port")"
    ;;
  restart)
    stop_pidfile "$dir/nats.pid"
    launch
    ;;
  stop)
    stop_pidfile "$dir/nats.pid"
    ;;
  *)
    echo "usage: nats.sh start|stop|restart DIR" >&2
    exit 2
    ;;
esac
