#!/usr/bin/env bash
# moto server 5.2.5 (S3) for component tests.
#
#   moto.sh start DIR     install (once), start on a free port, wait until
#                         ready, create the buckets of configs/s3-buckets.txt,
#                         write DIR/env
#   moto.sh stop DIR      stop it (idempotent)
#   moto.sh reset DIR     clear every object and bucket, then create the
#                         buckets again (POST /moto-api/reset)
#
# moto keeps everything in memory. It accepts any access key, but requests
# must be signed (unsigned overwrites answer 403), so DIR/env carries
# test/test credentials; the proxy never looks further for credentials.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PACKAGE='moto[server]==5.2.5'

# s3_call METHOD URL: a signed-enough request for moto (any credentials),
# succeeding on a 2xx answer.
s3_call() {
  python3 - "$@" <<'PY'
import sys, urllib.request
method, url = sys.argv[1], sys.argv[2]
# moto checks that a signature is present, not that it is right.
headers = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, "
                     "SignedHeaders=host, Signature=0",
    "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
}
req = urllib.request.Request(url, method=method, headers=headers, data=b"" if method != "GET" else None)
with urllib.request.urlopen(req, timeout=5) as answer:
    sys.exit(0 if 200 <= answer.status < 300 else 1)
PY
}

create_buckets() {
  local base=$1 log=$2
  while read -r bucket; do
    s3_call PUT "$base/$bucket" || {
      echo "moto.sh: cannot create bucket $bucket" >&2
      tail -n 20 "$log" >&2
      exit 1
    }
  done < <(bucket_names s3)
}

start() {
  local dir=$1
  mkdir -p "$dir"
  ensure_venv "$PACKAGE"
  local port
  port=$(free_port)
  local log="$dir/moto.log"
  "$EMULATORS_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  echo $! >"$dir/moto.pid"
  local base="http://127.0.0.1:$port"
  wait_ready 30 "$log" s3_call GET "$base/moto-api/"
  create_buckets "$base" "$log"
  cat >"$dir/env" <<ENV
AWS_ENDPOINT_URL=$base
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
STATE_BUCKET=$(bucket_names s3 | head -n 1)
EMULATOR_CONTROL=$(cd "$(dirname "$0")" && pwd)/moto.sh
EMULATOR_DIR=$dir
ENV
  echo "moto ready at $base (buckets: $(bucket_names s3 | tr '\n' ' '))"
}

reset() {
  local dir=$1
  local base
  base=$(sed -n 's/^AWS_ENDPOINT_URL=//p' "$dir/env")
  s3_call POST "$base/moto-api/reset"
  create_buckets "$base" "$dir/moto.log"
}

stop() {
  stop_pidfile "$1/moto.pid"
}

case "${1:-}" in
  start) start "${2:?usage: moto.sh start DIR}" ;;
  stop) stop "${2:?usage: moto.sh stop DIR}" ;;
  reset) reset "${2:?usage: moto.sh reset DIR}" ;;
  *)
    echo "usage: moto.sh start|stop|reset DIR" >&2
    exit 2
    ;;
esac
