#!/usr/bin/env bash
# Runs one integration profile: starts the emulators it names
# (EMULATORS=..., scripts in testing/shared/emulators/), then
# `gateway-actors run` (or `bench`), which starts the crew's state proxies,
# the runtimes, the sidecars and the gateway, runs the tests and stops
# them; the emulators are stopped afterwards, also on failure.
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

run_dir="$here/run/$profile"
rm -rf "$run_dir"
mkdir -p "$run_dir"

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
  "$@"
