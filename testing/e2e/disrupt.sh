#!/usr/bin/env bash
# The disruptions an E2E run puts the running pipeline through, as
# `gateway-actors check --disruption NAME=COMMAND` calls them (see
# testing/integration/gateway-actors/src/disruption.rs):
#
#   disrupt.sh storage-restart begin     stop the storage emulator (by pid)
#   disrupt.sh storage-restart felt ID…  exit 0 once each task failed at least
#                                        two checkpoints (the crew runtimes' logs)
#   disrupt.sh storage-restart end       start it again on the same port (the
#                                        pods have that address), buckets created
#                                        (moto, fake-gcs) or its dump loaded (redis)
#   disrupt.sh x-sink-restart begin      stop x-sink's pod (SIGTERM), podman kube down it
#   disrupt.sh x-sink-restart felt ID…   exit 0 once the pod is gone
#   disrupt.sh x-sink-restart end        podman kube play it again, wait until
#                                        every container passes its readiness probe
#
# run.sh exports what they act on: E2E_PODS_DIR (one manifest per pod),
# E2E_STORAGE_EMULATOR and E2E_STORAGE_DIR (the storage emulator's script
# name and directory), E2E_LOG_DIR (where each step is logged with its
# time, and the logs of x-sink's pod are kept before it is removed), and
# the container configuration of the run.
set -euo pipefail
. "$(dirname "$0")/tools/lib.sh"

usage="usage: disrupt.sh storage-restart|x-sink-restart begin|felt ID...|end"
disruption=${1:?$usage}
step=${2:?$usage}
shift 2
: "${E2E_PODS_DIR:?set by run.sh}" "${E2E_STORAGE_EMULATOR:?set by run.sh}" "${E2E_STORAGE_DIR:?set by run.sh}" "${E2E_LOG_DIR:?set by run.sh}"
[ "$step" = felt ] || echo "$(date -u +%T.%N | cut -c1-12) $disruption $step" >>"$E2E_LOG_DIR/disrupt.log"

# The crew's pods, as the crew chart names them (kube play: <deployment>-pod-0).
SINK_POD=x-sink-pod-0
CREW_RUNTIMES=(x-sink-pod-0-runtime x-sump-pod-0-runtime)

# Each storage emulator a profile may name: how to stop it and start it
# again where it was (the pods have that address). Whether what it held
# survives is the profile's e2e.storage.restartKeepsData, which run.sh
# turns into the kind of test:
#   moto, fake-gcs  keep everything in memory: objects stored before the
#                   stop are gone after it (the test checks the tasks
#                   submitted during the outage only); the buckets are
#                   created again on start.
#   redis           SHUTDOWN SAVE writes its dump into its directory and
#                   the same redis-server started there loads it: a Redis
#                   with persistence restarted, everything kept (the test
#                   checks the tasks on their way before the stop too).
moto_stop() {
  stop_pidfile "$1/moto.pid"
}

moto_start_again() {
  local dir=$1 base
  base=$(sed -n 's/^AWS_ENDPOINT_URL=//p' "$dir/env")
  "$EMULATORS_VENV/bin/moto_server" -H 127.0.0.1 -p "${base##*:}" >>"$dir/moto.log" 2>&1 </dev/null &
  echo $! >"$dir/moto.pid"
  # reset creates the buckets; it fails until moto answers.
  wait_ready 30 "$dir/moto.log" "$EMULATORS_DIR/moto.sh" reset "$dir"
}

fake_gcs_stop() {
  "$EMULATORS_DIR/fake-gcs.sh" stop "$1"
}

fake_gcs_start_again() {
  "$EMULATORS_DIR/fake-gcs.sh" restart "$1"
}

redis_stop() {
  local dir=$1
  redis-cli -h 127.0.0.1 -p "$(cat "$dir/port")" shutdown save >/dev/null
  # Gone once the pid is (SIGTERM, had it not exited yet: the dump is written).
  stop_pidfile "$dir/redis.pid"
  [ -s "$dir/dump.rdb" ] || { echo "disrupt.sh: redis-server left no dump in $dir" >&2; return 1; }
}

redis_start_again() {
  "$EMULATORS_DIR/redis.sh" restart "$1"
}

storage() {
  local action=$1
  case "$E2E_STORAGE_EMULATOR" in
    moto | fake-gcs | redis) "${E2E_STORAGE_EMULATOR//-/_}_$action" "$E2E_STORAGE_DIR" ;;
    *)
      echo "disrupt.sh: no way to restart storage emulator $E2E_STORAGE_EMULATOR" >&2
      return 2
      ;;
  esac
}

# checkpoints_failed ID...: each task failed at least two checkpoints.
checkpoints_failed() {
  local logs id count
  logs=$(podman logs "${CREW_RUNTIMES[@]}" 2>&1)
  for id in "$@"; do
    count=$(grep -c "checkpoint failed id=$id" <<<"$logs" || true)
    ((count >= 2)) || { echo "task $id: $count failed checkpoints so far"; return 1; }
  done
}

sink_manifest=$E2E_PODS_DIR/x-sink.yaml

case "$disruption $step" in
  "storage-restart begin") storage stop ;;
  "storage-restart felt") checkpoints_failed "$@" ;;
  "storage-restart end") storage start_again ;;
  "x-sink-restart begin")
    # Stopped first (SIGTERM to every container, as kube down does), so
    # that their logs, which kube down removes, can be kept whole.
    podman pod stop "$SINK_POD" >/dev/null
    for container in runtime sidecar state-proxy; do
      podman logs "$SINK_POD-$container" >"$E2E_LOG_DIR/$SINK_POD-$container.before-restart.log" 2>&1 || true
    done
    podman kube down "$sink_manifest" >/dev/null
    ;;
  "x-sink-restart felt")
    if podman pod exists "$SINK_POD"; then
      echo "pod $SINK_POD still exists"
      exit 1
    fi
    ;;
  "x-sink-restart end")
    # kube play takes a path named like an image for a build context: play
    # from the manifests' directory, which holds none.
    (cd "$E2E_PODS_DIR" && podman kube play "$sink_manifest" >/dev/null)
    "$(e2e_python)" "$E2E_DIR/tools/readiness.py" 90 "$sink_manifest" >/dev/null
    ;;
  *)
    echo "$usage" >&2
    exit 2
    ;;
esac
