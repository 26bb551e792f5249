#!/usr/bin/env bash
# Runs one integration profile: starts the emulators it names
# (EMULATORS=..., scripts in testing/shared/emulators/), then
# `gateway-actors run` (or `bench`), which starts the crew's state proxies,
# the runtimes, the sidecars and the gateway, runs the tests and stops
# them; the emulators are stopped afterwards, also on failure or when
# this script gets SIGINT/SIGTERM (passed on to the runner by its pid,
# which then kills what it started).
#
# Each run has a directory of its own, run/<profile>-<UTC time>-<pid>
# (logs, emulator state), so that runs side by side do not collide;
# run/<profile>-latest points at the newest.
#
#   run-profile.sh PROFILE               the tests
#   run-profile.sh PROFILE bench ARGS... the pipeline benchmark
set -euo pipefail

profile=${1:?usage: run-profile.sh PROFILE [test|bench ARGS...]}
mode=${2:-test}
shift $(($# >= 2 ? 2 : 1))
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
profile_file="$here/profiles/$profile.env"
[ -f "$profile_file" ] || { echo "no profile $profile_file" >&2; exit 2; }

run_dir="$here/run/$profile-$(date -u +%Y%m%dT%H%M%SZ)-$$"
mkdir -p "$run_dir"
ln -sfn "$(basename "$run_dir")" "$here/run/$profile-latest"
echo "run directory: $run_dir"

read -r -a emulators <<<"$(sed -n 's/^EMULATORS=//p' "$profile_file" | tail -n 1)"
started=()
stop_emulators() {
  local status=$?
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    "$root/testing/shared/emulators/${started[i]}.sh" stop "$run_dir/${started[i]}" || status=1
  done
  exit "$status"
}
trap stop_emulators EXIT
# bash runs a trap only once its foreground command is done, so the
# runner runs in the background and a signal is passed on to it.
runner=
pass_on() {
  if [ -n "$runner" ]; then
    kill -s "$1" "$runner" 2>/dev/null || true
    wait "$runner" 2>/dev/null || true
  fi
  exit 130
}
trap 'pass_on INT' INT
trap 'pass_on TERM' TERM

env_args=()
for emulator in "${emulators[@]}"; do
  script="$root/testing/shared/emulators/$emulator.sh"
  [ -x "$script" ] || { echo "profile $profile names emulator '$emulator' but $script does not exist" >&2; exit 2; }
  started+=("$emulator")
  "$script" start "$run_dir/$emulator"
  env_args+=(--env-file "$run_dir/$emulator/env")
done

case "$mode" in
  test) command=run ;;
  bench) command=bench ;;
  *) echo "unknown mode $mode (test, bench)" >&2; exit 2 ;;
esac
"$root/target/release/gateway-actors" "$command" \
  --profile "$profile_file" \
  "${env_args[@]}" \
  --flows "$here/flows.json" \
  --run-dir "$run_dir" \
  "$@" &
runner=$!
wait "$runner"
