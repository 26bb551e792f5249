#!/usr/bin/env bash
# Start-up time and memory of the real binary, for docs/performance.md:
# milliseconds from spawn until the socket answers /healthz, RSS when idle
# after start, and RSS after a bounded burst of 1 KiB writes and reads.
# Median of RUNS starts per store.
#
#   testing/bench/footprint.sh [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-10}
cd "$root"
cargo build --release --locked -p state-proxy --bin state-proxy >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$root/target/release/state-proxy" "$work" "$runs" <<'PY'
import os, socket, statistics, subprocess, sys, time

binary, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])

def ask(path, request):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return answer

def rss_kib(pid, field="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

print("| store | ready after spawn, ms (median of %d) | idle RSS, MB | RSS after 2000 requests, MB |" % runs)
print("|---|---|---|---|")
for store in ("memory", "fs"):
    ready, idle, busy = [], [], []
    for run in range(runs):
        sock = os.path.join(work, f"{store}-{run}.sock")
        began = time.perf_counter()
        proxy = subprocess.Popen([binary, "serve", "--connector", store, "--socket", sock,
                                  "--state-dir", os.path.join(work, f"data-{run}")],
                                 stderr=subprocess.DEVNULL)
        while True:
            try:
                if ask(sock, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200"):
                    break
            except OSError:
                pass
            if time.perf_counter() - began > 5:
                sys.exit(f"{store}: no answer within 5 s")
        ready.append((time.perf_counter() - began) * 1000)
        idle.append(rss_kib(proxy.pid) / 1024)
        body = b"x" * 1024
        for i in range(1000):
            key = f"/keys/bench/{i % 50}".encode()
            ask(sock, b"PUT " + key + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 1024\r\n\r\n" + body)
            ask(sock, b"GET " + key + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        busy.append(rss_kib(proxy.pid) / 1024)
        proxy.terminate()
        proxy.wait(timeout=10)
    print("| %s | %.1f | %.1f | %.1f |" % (store, statistics.median(ready), statistics.median(idle), statistics.median(busy)))
PY
