# Sourced by the benchmark scripts: the one server under test at a time,
# started in the background with its pid in `pid` and stopped by that pid
# (job numbers like %2 are reused once bash has reaped a job).
pid=""
stop() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  fi
}
