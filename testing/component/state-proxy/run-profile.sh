#!/usr/bin/env bash
# Runs one component profile: starts the emulator it names (if any), runs
# `state-proxy selftest` with the profile's environment (the backend must
# enforce what the connector relies on), then the real state-proxy binary
# under the conformance runner, and stops the emulator again, also on
# failure.
set -euo pipefail

profile=${1:?usage: run-profile.sh PROFILE}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
profile_file="$here/profiles/$profile.env"
[ -f "$profile_file" ] || { echo "no profile $profile_file" >&2; exit 2; }

run_dir="$here/run/$profile"
rm -rf "$run_dir"
mkdir -p "$run_dir"

emulator=$(sed -n 's/^EMULATOR=//p' "$profile_file" | tail -n 1)
env_args=()
if [ -n "$emulator" ] && [ "$emulator" != none ]; then
  script="$root/testing/shared/emulators/$emulator.sh"
  [ -x "$script" ] || { echo "profile $profile names emulator '$emulator' but $script does not exist" >&2; exit 2; }
  trap '"$script" stop "$run_dir/emulator"' EXIT
  "$script" start "$run_dir/emulator"
  env_args=(--env-file "$run_dir/emulator/env")
fi

echo "== selftest $profile"
"$root/target/release/conformance" env \
  --profile "$profile_file" \
  "${env_args[@]}" \
  --run-dir "$run_dir" >"$run_dir/proxy.env"
mapfile -t proxy_env <"$run_dir/proxy.env"
env -i PATH="$PATH" "${proxy_env[@]}" "$root/target/release/state-proxy" selftest

echo "== component profile $profile"
"$root/target/release/conformance" component \
  --profile "$profile_file" \
  --proxy "$root/target/release/state-proxy" \
  "${env_args[@]}" \
  --run-dir "$run_dir" \
  --results "$run_dir/results.json"
