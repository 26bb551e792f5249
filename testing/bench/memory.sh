#!/usr/bin/env bash
# Memory benchmark of docs/performance.md (resource bounds): the proxy's
# peak RSS (VmHWM from /proc/PID/status) while
#   1. PUTS clients each PUT SIZE MiB at once to fs-buffered-lww (bodies
#      held whole, so the memory budget decides how many are in memory;
#      a client answered 503 waits Retry-After and sends again, until all
#      are stored or 180 s have passed), and
#   2. GETS clients each GET one of those objects and read nothing for
#      HOLD seconds (reads stream, so each holds one buffer, not the object).
# Each phase runs on a fresh proxy (its own socket and directory, stopped
# by pid). Prints one Markdown table row per phase.
#
#   testing/bench/memory.sh [PUTS] [GETS] [SIZE_MIB] [HOLD_SECONDS]
#   STATE_MAX_BUFFERED_BYTES=... testing/bench/memory.sh   # another budget
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
puts=${1:-80}
gets=${2:-40}
size_mib=${3:-60}
hold=${4:-3}
budget=${STATE_MAX_BUFFERED_BYTES:-268435456}
cd "$root"
cargo build --release --locked -p state-proxy --bin state-proxy >/dev/null
bin="$root/target/release/state-proxy"
work=$(mktemp -d)
. "$root/testing/bench/lib.sh"
trap 'stop; rm -rf "$work"' EXIT

start_proxy() { # name
  "$bin" serve --connector fs-buffered-lww --socket "$work/$1.sock" --state-dir "$work/data" \
    --max-buffered-bytes "$budget" 2>"$work/$1.log" &
  pid=$!
  for _ in $(seq 1 200); do
    "$bin" healthcheck --socket "$work/$1.sock" --timeout 1 >/dev/null 2>&1 && return 0
    sleep 0.02
  done
  echo "the proxy did not start, see $work/$1.log" >&2
  return 1
}

kib_of() { # field of /proc/PID/status, in KiB
  sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$pid/status"
}

# The client: stdlib Python, one thread per connection, the body sent from
# one 1 MiB buffer so that the client's memory stays small too.
client() { # socket put|stall count
  python3 - "$@" "$((size_mib << 20))" "$hold" <<'EOF'
import json, socket, sys, threading, time

path, what, count, size, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
chunk = memoryview(b"x" * (1 << 20))
lock = threading.Lock()
statuses = {}

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s

def answer(s):
    """Status and headers of one answer; its body is read and dropped."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = s.recv(65536)
        if not more:
            return None, {}
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in (l.split(":", 1) for l in lines[1:]))
    left = int(headers.get("content-length", "0")) - len(body)
    while left > 0:
        more = s.recv(min(left, 1 << 20))
        if not more:
            break
        left -= len(more)
    return int(lines[0].split()[1]), headers

def put(key, deadline):
    while time.time() < deadline:
        s = connect()
        try:
            s.sendall(f"PUT /keys/{key} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
            left = size
            while left:
                n = min(left, len(chunk))
                s.sendall(chunk[:n])
                left -= n
        except OSError:
            pass  # refused before the body was read: the answer is waiting
        try:
            status, headers = answer(s)
        except OSError:
            status, headers = None, {}
        s.close()
        with lock:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status != 503:
            return
        time.sleep(float(headers.get("retry-after", "1")))

started = time.time()
if what == "put":
    threads = [threading.Thread(target=put, args=(f"put/{i}", started + 180)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
else:
    stalled = []
    for _ in range(count):
        s = connect()
        s.sendall(b"GET /keys/put/0 HTTP/1.1\r\nHost: x\r\n\r\n")
        stalled.append(s)
    time.sleep(hold)  # the readers read nothing for this long
    for s in stalled:
        status = s.recv(12).decode("latin-1")[9:12]  # "HTTP/1.1 200"
        statuses[status] = statuses.get(status, 0) + 1
        s.close()
print(json.dumps({"statuses": statuses, "seconds": round(time.time() - started, 1)}))
EOF
}

row() { # phase requests client-json
  local hwm rss
  hwm=$(kib_of VmHWM)
  rss=$(kib_of VmRSS)
  python3 -c 'import json, sys
phase, requests, budget, hwm, rss = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = json.loads(sys.argv[6])
answers = ", ".join("%s x%d" % (k, v) for k, v in sorted(r["statuses"].items()))
limit = budget + 32e6
cells = [phase, requests, answers, "%.0f" % r["seconds"], "%.1f" % (budget / 2**20),
         "%.1f" % (hwm * 1024 / 1e6), "%.1f" % (limit / 1e6), "yes" if hwm * 1024 < limit else "NO",
         "%.1f" % (rss * 1024 / 1e6)]
print("| " + " | ".join(cells) + " |")' "$1" "$2" "$budget" "$hwm" "$rss" "$3"
}

echo "| phase | requests | answers | seconds | budget MiB | peak RSS MB (VmHWM) | budget + 32 MB | under | RSS after, MB |"
echo "|---|---|---|---|---|---|---|---|---|"

start_proxy puts
result=$(client "$work/puts.sock" put "$puts")
row "concurrent PUTs, fs-buffered-lww" "$puts x $size_mib MiB" "$result"
stop

start_proxy gets
result=$(client "$work/gets.sock" stall "$gets")
row "stalled GETs, fs (${hold} s unread)" "$gets x $size_mib MiB" "$result"
stop
