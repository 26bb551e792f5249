#!/usr/bin/env bash
# Benchmark of POST /query (docs/query.md, "Performance"): for each
# connector, start the release proxy on a temporary socket, write DOCS JSON
# documents of SIZE bytes under one prefix, then time QUERIES queries that
# read them all, and, for comparison, reading the same documents one by one
# with the CLI (`state-proxy ls -r` then one `state-proxy get` per key).
# Prints one Markdown table row per connector and query shape.
#
#   testing/bench/query.sh [QUERIES]                 memory and fs, 50 queries
#   CONNECTORS="fs-buffered-cas" testing/bench/query.sh 20
#   CONNECTORS=s3-buffered-lww AWS_ENDPOINT_URL=http://127.0.0.1:5000 \
#     STATE_BUCKET=state testing/bench/query.sh     any store: the proxy
#                                                   inherits the environment
#
# Bounded: DOCS (default 1000) writes, QUERIES queries per shape, DOCS + 1
# CLI processes for the one-by-one comparison (ONE_BY_ONE=0 skips it). The
# documents are deleted afterwards, so a shared bucket is left as found.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
queries=${1:-50}
connectors=${CONNECTORS:-memory fs}
docs=${DOCS:-1000}
size=${SIZE:-1024}
one_by_one=${ONE_BY_ONE:-1}
cd "$root"
cargo build --release --locked --quiet -p state-proxy --bin state-proxy
bin="$root/target/release/state-proxy"
work=$(mktemp -d)
proxy_pid=""
cleanup() {
  if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "| connector | query | documents | rows answered | median ms | p99 ms | one by one with the CLI, ms | speed-up |"
echo "|---|---|---|---|---|---|---|---|"
for connector in $connectors; do
  socket="$work/$connector.sock"
  "$bin" serve --connector "$connector" --socket "$socket" --state-dir "$work/$connector-data" \
    2>"$work/$connector.log" &
  proxy_pid=$!
  python3 - "$bin" "$socket" "$connector" "$docs" "$size" "$queries" "$one_by_one" <<'PY'
import http.client, json, socket, statistics, subprocess, sys, time

binary, path, connector = sys.argv[1:4]
docs, size, queries, one_by_one = (int(a) for a in sys.argv[4:8])
prefix = f"bench-query-{int(time.time() * 1000):x}/"

class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=120)
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)

def call(conn, method, url, body=None):
    conn.request(method, url, body=body)
    response = conn.getresponse()
    data = response.read()
    if response.status >= 300:
        sys.exit(f"{method} {url}: {response.status} {data[:300]!r}")
    return data

# Readiness: /healthz answers (the process may still be binding).
deadline = time.monotonic() + 20
while True:
    try:
        call(UnixConnection(path), "GET", "/healthz")
        break
    except (OSError, http.client.HTTPException):
        if time.monotonic() > deadline:
            sys.exit(f"{connector}: the proxy did not answer on {path}")
        time.sleep(0.01)

conn = UnixConnection(path)
statuses = ["done", "failed", "running", "queued"]
keys = []
for i in range(docs):
    document = {"i": i, "status": statuses[i % 4], "attempts": i % 7,
                "updated_at": f"2026-11-{1 + i % 28:02}T{i % 24:02}:{i % 60:02}:00Z", "pad": ""}
    document["pad"] = "x" * max(0, size - len(json.dumps(document, separators=(",", ":"))))
    key = f"{prefix}task-{i:05}"
    call(conn, "PUT", f"/keys/{key}", json.dumps(document, separators=(",", ":")).encode())
    keys.append(key)

shapes = [
    ("filter + sort, limit 20",
     {"prefix": prefix, "filter": {"status": "failed", "attempts": {"$gte": 2}},
      "sort": ["-updated_at"], "limit": 20}),
    ("every document", {"prefix": prefix}),
]
cli_ms = None
if one_by_one:
    started = time.perf_counter()
    listed = subprocess.run([binary, "ls", "--socket", path, "-r", prefix],
                            check=True, capture_output=True, text=True).stdout.split()
    for key in listed:
        subprocess.run([binary, "get", "--socket", path, key], check=True,
                       stdout=subprocess.DEVNULL)
    cli_ms = (time.perf_counter() - started) * 1e3
    if len(listed) != docs:
        sys.exit(f"the CLI listed {len(listed)} keys, expected {docs}")

for name, request in shapes:
    body = json.dumps(request).encode()
    answer = json.loads(call(conn, "POST", "/query", body))  # warm-up, and a check
    if answer["truncated"] or answer.get("skipped"):
        sys.exit(f"{name}: unexpected answer {str(answer)[:200]}")
    if name == "every document" and answer["total"] != docs:
        sys.exit(f"{name}: total {answer['total']}, expected {docs}")
    times = []
    for _ in range(queries):
        started = time.perf_counter()
        call(conn, "POST", "/query", body)
        times.append((time.perf_counter() - started) * 1e3)
    times.sort()
    median = statistics.median(times)
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    cells = [connector, name, str(docs), str(len(answer["rows"])), f"{median:.1f}", f"{p99:.1f}"]
    if cli_ms is None:
        cells += ["-", "-"]
    else:
        cells += [f"{cli_ms:,.0f}", f"{cli_ms / median:,.0f}×"]
    print("| " + " | ".join(cells) + " |", flush=True)

for key in keys:
    call(conn, "DELETE", f"/keys/{key}")
PY
  kill "$proxy_pid"
  wait "$proxy_pid" 2>/dev/null || true
  proxy_pid=""
done
