#!/usr/bin/env bash
# Google's Pub/Sub emulator for integration tests, on a free port of
# 127.0.0.1, project asya-test.
#
#   pubsub.sh start DIR     check the emulator is installed, start it, wait until it serves, write DIR/env
#   pubsub.sh stop DIR      stop it (idempotent)
#   pubsub.sh restart DIR   stop it and start it again on the same port. The
#                           emulator keeps nothing: topics, subscriptions and
#                           messages are gone, so the queue setup must run again.
#
# The emulator comes with the Debian package google-cloud-cli-pubsub-emulator
# (Java 17). It is not installed from here: its apt source is Google's, which
# a machine may not reach; the script says how to install it when it is
# missing. Its launcher is started directly (not through `gcloud beta
# emulators`, which leaves its java child running when stopped).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

command=${1:?usage: pubsub.sh start|stop|restart DIR}
dir=${2:?usage: pubsub.sh start|stop|restart DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
PROJECT=asya-test
SDK=${CLOUDSDK_ROOT:-/usr/lib/google-cloud-sdk}
LAUNCHER="$SDK/platform/pubsub-emulator/bin/cloud-pubsub-emulator"

check_installed() {
  if [ ! -x "$LAUNCHER" ]; then
    cat >&2 <<MSG
pubsub.sh: the Pub/Sub emulator is not installed ($LAUNCHER is missing).
Install it with Google's Cloud SDK apt source
(https://cloud.google.com/sdk/docs/install#deb), then:
  apt-get install google-cloud-cli-pubsub-emulator
MSG
    exit 1
  fi
  command -v java >/dev/null || {
    echo "pubsub.sh: the emulator needs Java 17 (apt-get install openjdk-17-jre-headless)" >&2
    exit 1
  }
}

healthy() {
  python3 - "$1" "$PROJECT" <<'PY'
import sys, urllib.request, urllib.error
url = f"http://127.0.0.1:{sys.argv[1]}/v1/projects/{sys.argv[2]}/topics"
with urllib.request.urlopen(url, timeout=2) as a:
    sys.exit(0 if a.status == 200 else 1)
PY
}

launch() {
  local port
  port=$(cat "$dir/port")
  # setsid: the launcher is a shell script starting java; its own process
  # group lets stop end both by the group of the pid it wrote.
  setsid "$LAUNCHER" --host=127.0.0.1 --port="$port" >>"$dir/pubsub.log" 2>&1 </dev/null &
  echo $! >"$dir/pubsub.pid"
  wait_ready 60 "$dir/pubsub.log" healthy "$port"
}

stop() {
  local file="$dir/pubsub.pid"
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  # The launcher's process group (java is its child in it).
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$file"
}

case "$command" in
  start)
    check_installed
    free_port >"$dir/port"
    launch
    cat >"$dir/env" <<ENV
PUBSUB_EMULATOR_HOST=127.0.0.1:$(cat "$dir/port")
PUBSUB_ENDPOINT=http://127.0.0.1:$(cat "$dir/port")
PUBSUB_PROJECT_ID=$PROJECT
PUBSUB_CONTROL=$(cd "$(dirname "$0")" && pwd)/pubsub.sh
PUBSUB_DIR=$dir
ENV
    echo "Pub/Sub emulator ready on 127.0.0.1:$(cat "$dir/port") (project $PROJECT)"
    ;;
  restart)
    stop
    launch
    ;;
  stop)
    stop
    ;;
  *)
    echo "usage: pubsub.sh start|stop|restart DIR" >&2
    exit 2
    ;;
esac
