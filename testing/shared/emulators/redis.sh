#!/usr/bin/env bash
# A private redis-server for component tests, on a free port on 127.0.0.1,
# keeping nothing on disk.
#
#   redis.sh start DIR     install if missing, start, wait until it answers PING, write DIR/env
#   redis.sh stop DIR      stop it (data is gone)
#   redis.sh restart DIR   start it again on the same port (after stop)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

command=${1:?usage: redis.sh start|stop|restart DIR}
dir=${2:?usage: redis.sh start|stop|restart DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

ensure_redis() {
  ensure_debian_package redis-server redis-server
  ensure_debian_package redis-cli redis-tools
}

launch() {
  local port=$1
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --daemonize no --dir "$dir" --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/redis.pid"
  wait_ready 20 "$dir/redis.log" redis-cli -h 127.0.0.1 -p "$port" ping
}

case "$command" in
  start)
    ensure_redis
    port=$(free_port)
    echo "$port" >"$dir/port"
    launch "$port"
    cat >"$dir/env" <<ENV
REDIS_URL=redis://127.0.0.1:$port/0
REDIS_PORT=$port
EMULATOR_CONTROL=$(cd "$(dirname "$0")" && pwd)/redis.sh
EMULATOR_DIR=$dir
ENV
    echo "redis-server ready on 127.0.0.1:$port"
    ;;
  restart)
    launch "$(cat "$dir/port")"
    ;;
  stop)
    stop_pidfile "$dir/redis.pid"
    ;;
  *)
    echo "usage: redis.sh start|stop|restart DIR" >&2
    exit 2
    ;;
esac
