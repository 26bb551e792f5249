# Helpers shared by the emulator scripts. Source it; do not run it.

EMULATORS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EMULATORS_VENV="$EMULATORS_DIR/.venv"

# A TCP port on 127.0.0.1 that is free right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready SECONDS LOG COMMAND...: runs COMMAND until it succeeds; after
# SECONDS, fails and prints the emulator's LOG.
wait_ready() {
  local seconds=$1 log=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "emulator not ready after ${seconds}s: $*" >&2
      [ -f "$log" ] && tail -n 40 "$log" >&2
      return 1
    fi
    sleep 0.05
  done
}

# ensure_venv PACKAGE...: the project-local virtual environment with these
# exact requirements installed (once; a stamp remembers what is in it).
ensure_venv() {
  local wanted="$*"
  local stamp="$EMULATORS_VENV/.installed"
  if [ -f "$stamp" ] && grep -qxF "$wanted" "$stamp"; then
    return 0
  fi
  [ -x "$EMULATORS_VENV/bin/python" ] || python3 -m venv "$EMULATORS_VENV"
  "$EMULATORS_VENV/bin/pip" install --quiet --disable-pip-version-check "$@"
  echo "$wanted" >>"$stamp"
}

# stop_pidfile FILE: stops the process whose pid FILE holds, politely first.
stop_pidfile() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# bucket_names BACKEND: the bucket names listed in configs/BACKEND-buckets.txt.
bucket_names() {
  grep -v '^[[:space:]]*\(#\|$\)' "$EMULATORS_DIR/configs/$1-buckets.txt"
}

# ensure_debian_package COMMAND PACKAGE: installs PACKAGE with apt-get
# unless COMMAND is already on the PATH.
ensure_debian_package() {
  command -v "$1" >/dev/null && return 0
  echo "installing $2 (Debian package)" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}
