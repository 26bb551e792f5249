#!/usr/bin/env bash
# The E2E run: the charts rendered for a profile, played as real containers
# with podman kube play on the host network, the integration level's tests
# through the gateway, checked in storage through the emulator's own API,
# plus two disruptions of E2E's own (docs/e2e.md):
#
#   run.sh PROFILE...   those profiles
#   run.sh all          every profile
#
# Once per run: the images, from the release binaries, into a container
# store of this run's own. Per profile:
#   1. its transport and storage emulators on the host, on free ports;
#   2. the charts rendered with the profile and local-values.sh (plain
#      state proxy container: podman 4.3 cannot run native sidecars), split
#      into one manifest per pod;
#   3. the queue setup Pod played and waited for (exit 0), then the gateway,
#      the test actors and the crew, until every container passes its
#      readiness probe; every container must run as 65532 on a read-only root;
#   4. gateway-actors check: the integration tests, then the storage emulator
#      stopped and started again (keeping its data or not, as the profile's
#      e2e.storage.restartKeepsData says), and x-sink's pod removed and
#      played again, each with tasks in flight (disrupt.sh);
#   5. every pod stopped (SIGTERM): each container must exit 0 and none may
#      have been restarted; the containers' and emulators' logs kept in
#      run/logs/<profile>/, the pods brought down, the emulators stopped;
#      nothing may be left in the store.
# E2E_FILTER=NAME runs only the tests whose name contains NAME.
# At the end, also on failure or interruption: everything of the run
# removed (pods, volumes, images, the store, the run directory, emulators).
set -euo pipefail
. "$(dirname "$0")/tools/lib.sh"

usage="usage: run.sh PROFILE...|all"
(($# > 0)) || { echo "$usage" >&2; exit 2; }

bin=$REPO_ROOT/target/release
for binary in state-proxy asya-mesh gateway-actors; do
  [ -x "$bin/$binary" ] || {
    echo "run.sh: $bin/$binary missing: cargo build --release --locked --workspace --all-targets" >&2
    exit 1
  }
done
python=$(e2e_python)

profiles=()
if [ "$1" = all ]; then
  mapfile -t profiles < <(e2e_profiles)
else
  for profile in "$@"; do
    [ -f "$E2E_DIR/profiles/$profile.yaml" ] || { echo "run.sh: no profile $profile ($(e2e_profiles | tr '\n' ' '))" >&2; exit 2; }
    profiles+=("$profile")
  done
fi
mkdir -p "$E2E_DIR/run"
run_dir=$(mktemp -d "$E2E_DIR/run/e2e.XXXXXX")
containers_env "$run_dir"
# The emulators running, one "script dir" a line, stopped in reverse order
# (a file, so that a profile's subshell can add to it).
emulators=$run_dir/emulators
: >"$emulators"

stop_emulators() {
  local script dir status=0
  while read -r script dir; do
    "$EMULATORS_DIR/$script.sh" stop "$dir" || status=1
  done < <(tac "$emulators")
  : >"$emulators"
  return "$status"
}

cleanup() {
  local status=$?
  stop_emulators || true
  containers_teardown "$run_dir"
  rm -rf "$run_dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { echo "e2e: [$((SECONDS - started))s] $*"; }
started=$SECONDS

# start_emulator ROLE SCRIPT DIR: the script's start, remembered for stopping.
start_emulator() {
  local role=$1 script=$2 dir=$3
  [ -x "$EMULATORS_DIR/$script.sh" ] || { echo "run.sh: no emulator script $script.sh for the $role" >&2; return 1; }
  echo "$script $dir" >>"$emulators"
  mkdir -p "$dir"
  "$EMULATORS_DIR/$script.sh" start "$dir" >"$dir/start.log" 2>&1 || { cat "$dir/start.log" >&2; return 1; }
}

# play MANIFEST...: podman kube play each (from the manifests' directory:
# kube play takes a path named like an image for a build context).
play() {
  local manifest
  for manifest in "$@"; do
    (cd "$(dirname "$manifest")" && podman kube play "$manifest" >>"$log_dir/kube-play.log" 2>&1) || {
      tail -n 20 "$log_dir/kube-play.log" >&2
      return 1
    }
  done
}

# keep_logs: every container's log, and the emulators' as
# <transport|storage>-<file>, into $log_dir.
keep_logs() {
  local name role file
  for name in $(containers); do
    podman logs "$name" >"$log_dir/$name.log" 2>&1 || true
  done
  for role in transport storage; do
    for file in "$profile_dir/$role"/*.log; do
      [ -f "$file" ] && cp "$file" "$log_dir/$role-$(basename "$file")"
    done
  done
  return 0
}

# every_container WHAT FORMAT EXPECTED: `podman inspect --format FORMAT`
# of every container (infra containers left out) is EXPECTED.
every_container() {
  local what=$1 format=$2 expected=$3 name found status=0
  for name in $(containers); do
    found=$(podman inspect --format "$format" "$name")
    [ "$found" = "$expected" ] || { echo "run.sh: $name: $what = $found, not $expected" >&2; status=1; }
  done
  return "$status"
}

# containers: the names of the run's containers, infra containers left out.
containers() {
  podman ps --all --format '{{if not .IsInfra}}{{.Names}}{{end}}'
}

# run_profile PROFILE: steps 1 to 4 (the caller brings it down).
run_profile() {
  local profile=$1 yaml=$E2E_DIR/profiles/$1.yaml
  local transport storage backend gateway_port transport_url storage_url storage_restart
  transport=$("$python" "$E2E_DIR/tools/profile.py" "$yaml" get e2e.transport.emulator)
  storage=$("$python" "$E2E_DIR/tools/profile.py" "$yaml" get e2e.storage.emulator)
  backend=$("$python" "$E2E_DIR/tools/profile.py" "$yaml" get persistence.backend)
  # A restart that keeps storage lets the test check the tasks stored
  # before it too; one that loses it, only those submitted during it.
  case "$("$python" "$E2E_DIR/tools/profile.py" "$yaml" get e2e.storage.restartKeepsData)" in
    True) storage_restart=--disruption ;;
    False) storage_restart=--disruption-losing-storage ;;
    *) echo "run.sh: e2e.storage.restartKeepsData of $profile must be true or false" >&2; return 1 ;;
  esac

  step "$profile: starting $transport (transport) and $storage (storage)"
  start_emulator transport "$transport" "$profile_dir/transport"
  start_emulator storage "$storage" "$profile_dir/storage"
  transport_url=$("$python" "$E2E_DIR/tools/profile.py" "$yaml" get e2e.transport.url "$profile_dir/transport/env")
  storage_url=$("$python" "$E2E_DIR/tools/profile.py" "$yaml" get e2e.storage.url "$profile_dir/storage/env")
  gateway_port=$(free_port)

  step "$profile: rendering the charts (plain state proxy container)"
  "$E2E_DIR/local-values.sh" "$profile" plain "$gateway_port" "$transport_url" "$storage_url" >"$profile_dir/local.yaml"
  render_profile "$profile" "$profile_dir/local.yaml" "$profile_dir/rendered"
  local pods=$profile_dir/pods
  local split
  split=$("$python" "$E2E_DIR/tools/split.py" "$pods" "$profile_dir/rendered"/*.yaml)
  mapfile -t names <<<"$split"

  # The gateway chart's queue setup (a Pod that runs once) before anything
  # that consumes.
  local setup=asya-gateway-queue-setup
  step "$profile: queue setup"
  play "$pods/$setup.yaml"
  local exit_code
  exit_code=$(podman wait "$setup-setup")
  ((exit_code == 0)) || { podman logs "$setup-setup" >&2; echo "run.sh: queue setup exited $exit_code" >&2; return 1; }

  local deployments=()
  for name in "${names[@]}"; do
    [ "$name" = "$setup" ] || deployments+=("$pods/$name.yaml")
  done
  step "$profile: playing ${#deployments[@]} pods"
  play "${deployments[@]}"
  "$python" "$E2E_DIR/tools/readiness.py" 90 "${deployments[@]}"
  every_container "user, read-only root" '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}' "65532:65532 true"

  step "$profile: the tests through the gateway"
  { "$python" "$E2E_DIR/tools/profile.py" "$yaml" check-env && cat "$E2E_DIR/storage/$backend.env"; } >"$profile_dir/$profile.env"
  E2E_PODS_DIR=$pods E2E_STORAGE_EMULATOR=$storage E2E_STORAGE_DIR=$profile_dir/storage E2E_LOG_DIR=$log_dir \
    "$bin/gateway-actors" check ${E2E_FILTER:+--filter "$E2E_FILTER"} --gateway "http://127.0.0.1:$gateway_port" \
    --profile "$profile_dir/$profile.env" --env-file "$profile_dir/storage/env" \
    "$storage_restart" "storage-restart=$E2E_DIR/disrupt.sh storage-restart" \
    --disruption "x-sink-restart=$E2E_DIR/disrupt.sh x-sink-restart"
}

# bring_down PROFILE: step 5; fails when a container was restarted or did
# not stop cleanly, or something is left behind.
bring_down() {
  local status=0 left
  step "$1: stopping every pod"
  podman pod stop --all >/dev/null 2>>"$log_dir/kube-play.log" || status=1
  keep_logs
  # None was started again after exiting on its own (restartPolicy:
  # Always), and each exited 0 on SIGTERM.
  every_container "restarts, exit code" '{{.RestartCount}} {{.State.ExitCode}}' "0 0" || status=1
  containers_clear "$profile_dir"/pods/*.yaml
  stop_emulators || status=1
  left=$(containers_left)
  [ -z "$left" ] || { echo "run.sh: left in the store after $1: $(tr '\n' ' ' <<<"$left")" >&2; status=1; }
  return "$status"
}

step "building the images"
"$REPO_ROOT/deploy/images/build.sh" all
build_chart_dependencies

passed=() failed=()
for profile in "${profiles[@]}"; do
  profile_dir=$run_dir/$profile
  log_dir=$E2E_DIR/run/logs/$profile
  rm -rf "$log_dir"
  mkdir -p "$profile_dir" "$log_dir"
  outcome=passed
  # In a subshell of its own, so that its first failing step ends that
  # profile (set -e) and not the run; `run_profile || ...` would switch
  # set -e off inside it.
  set +e
  (
    set -e
    run_profile "$profile"
  )
  (($? == 0)) || outcome=failed
  set -e
  bring_down "$profile" || outcome=failed
  if [ "$outcome" = passed ]; then passed+=("$profile"); else failed+=("$profile"); fi
  step "$profile: $outcome (logs in ${log_dir#"$REPO_ROOT"/})"
done

step "passed: ${passed[*]:-none}; failed: ${failed[*]:-none}"
((${#failed[@]} == 0 && ${#passed[@]} > 0))
