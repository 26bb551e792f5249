# Helpers shared by the E2E scripts: where the tools live, and a container
# engine configuration of its own for every run. Source it; do not run it.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)
# Project-local, git-ignored: the helm binary when none is on PATH, and the
# virtual environment of kubernetes-validate.
E2E_TOOLS_DIR="$E2E_DIR/.tools"

# The emulator helpers (free_port, wait_ready, stop_pidfile) are shared
# with the component level.
. "$REPO_ROOT/testing/shared/emulators/lib.sh"

# helm on PATH wins; otherwise the one install.sh unpacked.
helm_bin() {
  if command -v helm >/dev/null 2>&1; then
    command -v helm
  elif [ -x "$E2E_TOOLS_DIR/helm/helm" ]; then
    echo "$E2E_TOOLS_DIR/helm/helm"
  else
    echo "helm is not installed: run testing/e2e/tools/install.sh helm" >&2
    return 1
  fi
}

kubernetes_validate_bin() {
  local bin="$E2E_TOOLS_DIR/venv/bin/kubernetes-validate"
  if [ -x "$bin" ]; then
    echo "$bin"
  else
    echo "kubernetes-validate is not installed: run testing/e2e/tools/install.sh validate" >&2
    return 1
  fi
}

# The Python of that environment: it has PyYAML, which the run's helpers
# (readiness.py, split.py, profile.py) read manifests and profiles with.
e2e_python() {
  local validate
  validate=$(kubernetes_validate_bin) && echo "$(dirname "$validate")/python"
}

# containers_env RUN_DIR: a configuration of the container tools that
# belongs to this run alone (storage root, run root, temporary files,
# events log), so that parallel runs on one machine never share an image
# store or a container. Exports the variables podman and buildah read.
#
# runc, not crun: crun fails on this kind of machine (hybrid cgroups, no
# CAP_SYS_RESOURCE). The explicit ulimits avoid raising limits the
# sandbox does not allow. vfs works everywhere (no overlay mounts).
containers_env() {
  local run_dir
  run_dir=$(mkdir -p "$1" && cd "$1" && pwd)
  local conf="$run_dir/containers"
  mkdir -p "$conf" "$run_dir/storage" "$run_dir/runroot" "$run_dir/tmp"
  cat >"$conf/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$run_dir/storage"
runroot = "$run_dir/runroot"
CONF
  cat >"$conf/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$run_dir/tmp/events.log"
tmp_dir = "$run_dir/tmp"
CONF
  # Images are built here or not at all: no registry is ever asked.
  cat >"$conf/registries.conf" <<CONF
unqualified-search-registries = []
short-name-mode = "permissive"
CONF
  export CONTAINERS_STORAGE_CONF="$conf/storage.conf"
  export CONTAINERS_CONF="$conf/containers.conf"
  export CONTAINERS_REGISTRIES_CONF="$conf/registries.conf"
  export TMPDIR="$run_dir/tmp"
}

# The charts of a run, each released under its own name: the queue setup
# and gateway first, then the test actors, then the crew.
E2E_RELEASES=(
  "asya-gateway:$E2E_DIR/charts/asya-gateway"
  "asya-test-actors:$E2E_DIR/charts/asya-test-actors"
  "asya-crew:$REPO_ROOT/deploy/helm/asya-crew"
)
E2E_NAMESPACE=asya-e2e

# build_chart_dependencies: the shared library chart packaged into each
# chart's charts/ (offline: a file:// dependency).
build_chart_dependencies() {
  local helm release
  helm=$(helm_bin)
  for release in "${E2E_RELEASES[@]}"; do
    "$helm" dependency build "${release#*:}" >/dev/null
  done
}

# render_profile PROFILE LOCAL_VALUES OUT_DIR: OUT_DIR/<release>.yaml for
# every chart, from the profile and the values of this run.
render_profile() {
  local profile=$1 local_values=$2 out=$3
  local helm release
  helm=$(helm_bin)
  mkdir -p "$out"
  for release in "${E2E_RELEASES[@]}"; do
    "$helm" template "${release%%:*}" "${release#*:}" --namespace "$E2E_NAMESPACE" \
      -f "$E2E_DIR/profiles/$profile.yaml" -f "$local_values" >"$out/${release%%:*}.yaml"
  done
}

# e2e_profiles: the profile names, one a line.
e2e_profiles() {
  local file
  for file in "$E2E_DIR"/profiles/*.yaml; do
    basename "$file" .yaml
  done
}

# containers_clear [MANIFEST...]: the played manifests brought down, and
# any pod, container, volume and secret left in this run's store removed;
# the images stay. Never fails.
containers_clear() {
  local manifest
  for manifest in "$@"; do
    [ -f "$manifest" ] && podman kube down "$manifest" >/dev/null 2>&1
  done
  podman pod rm --all --force >/dev/null 2>&1
  podman rm --all --force >/dev/null 2>&1
  podman volume rm --all --force >/dev/null 2>&1
  podman secret rm --all >/dev/null 2>&1
  return 0
}

# containers_left: what is still in this run's store besides images
# (pods, containers, volumes), one a line; nothing after containers_clear.
containers_left() {
  podman pod ps --format 'pod {{.Name}}'
  podman ps --all --format 'container {{.Names}}'
  podman volume ls --format 'volume {{.Name}}'
}

# containers_teardown RUN_DIR [MANIFEST...]: what a run started with the
# container tools, gone: containers_clear, the images and build containers
# removed, and the store deleted. For the trap of a run: it never fails.
containers_teardown() {
  local run_dir=$1
  shift
  if [ -d "$run_dir/storage" ]; then
    containers_clear "$@"
    podman rmi --all --force >/dev/null 2>&1
    buildah rm --all >/dev/null 2>&1
  fi
  rm -rf "$run_dir/storage" "$run_dir/runroot" "$run_dir/tmp" "$run_dir/containers"
  return 0
}
