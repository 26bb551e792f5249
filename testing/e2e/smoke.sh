#!/usr/bin/env bash
# Container smoke of the state proxy image, as the crew chart runs it:
#
#   1. builds the state proxy images (deploy/images/build.sh) into a
#      container store of this run's own;
#   2. starts moto (S3) on a free port of the host;
#   3. renders the crew chart with the sqs-s3 profile (plain container form,
#      host network), keeps x-sink's state proxy container only (the mesh
#      containers need the mesh image), and plays it with podman kube play;
#      the proxy reaches moto as http://localhost:PORT, so the image must
#      resolve a host name;
#   4. waits until the container passes its own readiness probe (which asks
#      the backend);
#   5. from the host, writes and reads a key through the socket in the pod's
#      emptyDir and finds the object in moto through moto's own S3 API;
#   6. checks the container runs as 65532 with a read-only root filesystem;
# and brings everything down, also on failure.
set -euo pipefail
. "$(dirname "$0")/tools/lib.sh"

state_proxy=$REPO_ROOT/target/release/state-proxy
[ -x "$state_proxy" ] || {
  echo "smoke.sh: $state_proxy missing: cargo build --release --locked -p state-proxy" >&2
  exit 1
}
mkdir -p "$E2E_DIR/run"
run_dir=$(mktemp -d "$E2E_DIR/run/smoke.XXXXXX")
manifest=$run_dir/state-proxy.yaml
containers_env "$run_dir"
cleanup() {
  local status=$?
  containers_teardown "$run_dir" "$manifest"
  "$REPO_ROOT/testing/shared/emulators/moto.sh" stop "$run_dir/moto" || true
  if ((status == 0)); then rm -rf "$run_dir"; else echo "smoke.sh: FAILED; logs in $run_dir" >&2; fi
}
trap cleanup EXIT

step() { echo "smoke.sh: $*"; }

step "building the images"
"$REPO_ROOT/deploy/images/build.sh" state-proxy

"$REPO_ROOT/testing/shared/emulators/moto.sh" start "$run_dir/moto"
# shellcheck disable=SC1091
. "$run_dir/moto/env"
moto_port=${AWS_ENDPOINT_URL##*:}

step "rendering x-sink's state proxy from the crew chart"
build_chart_dependencies
"$E2E_DIR/local-values.sh" sqs-s3 plain 8080 "http://127.0.0.1:$moto_port" "http://localhost:$moto_port" >"$run_dir/local.yaml"
"$(helm_bin)" template asya-crew "$REPO_ROOT/deploy/helm/asya-crew" --namespace "$E2E_NAMESPACE" \
  -f "$E2E_DIR/profiles/sqs-s3.yaml" -f "$run_dir/local.yaml" \
  --set x-sump.enabled=false --set "persistence.config.bucket=$STATE_BUCKET" \
  --set "persistence.config.accessKey=$AWS_ACCESS_KEY_ID" --set "persistence.config.secretKey=$AWS_SECRET_ACCESS_KEY" \
  >"$run_dir/crew.yaml"
"$(e2e_python)" - "$run_dir/crew.yaml" "$manifest" <<'PY'
import sys, yaml
deployment = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Deployment")
spec = deployment["spec"]["template"]["spec"]
spec["containers"] = [c for c in spec["containers"] if c["name"] == "state-proxy"]
spec["volumes"] = [v for v in spec["volumes"] if v["name"].endswith("-state-sockets")]
assert spec["containers"], "the crew chart rendered no state-proxy container"
yaml.safe_dump(deployment, open(sys.argv[2], "w"), sort_keys=False)
PY

step "podman kube play"
# kube play takes a path named like an image for a build context: run it
# from the run directory, which holds none.
(cd "$run_dir" && podman kube play "$manifest" >/dev/null)
"$(e2e_python)" "$E2E_DIR/tools/readiness.py" 60 "$manifest"

container=x-sink-pod-0-state-proxy
step "checking the container"
user=$(podman inspect "$container" --format '{{.Config.User}}')
read_only=$(podman inspect "$container" --format '{{.HostConfig.ReadonlyRootfs}}')
[ "$user" = "65532:65532" ] || { echo "smoke.sh: runs as $user, not 65532:65532" >&2; exit 1; }
[ "$read_only" = "true" ] || { echo "smoke.sh: root filesystem is not read-only" >&2; exit 1; }
connector=$(podman exec "$container" /usr/local/bin/state-proxy healthcheck --ready >/dev/null && podman inspect "$container" --format '{{range .Config.Env}}{{println .}}{{end}}' | sed -n 's/^ASYA_CONNECTOR=//p')
[ "$connector" = "s3-buffered-lww" ] || { echo "smoke.sh: connector $connector" >&2; exit 1; }

step "a key through the socket, from the host"
socket="$(podman volume inspect x-sink-state-sockets --format '{{.Mountpoint}}')/checkpoints.sock"
key="smoke/$(basename "$run_dir").json"
body="{\"smoke\": \"$(date -u +%FT%TZ)\"}"
printf '%s' "$body" | "$state_proxy" put --socket "$socket" "$key" >/dev/null
read_back=$("$state_proxy" get --socket "$socket" "$key")
[ "$read_back" = "$body" ] || { echo "smoke.sh: read back '$read_back', wrote '$body'" >&2; exit 1; }
"$EMULATORS_VENV/bin/python" - "$AWS_ENDPOINT_URL/$STATE_BUCKET/$key" "$body" <<'PY'
import sys, urllib.request
# moto wants a signature to be present, not to be right (as moto.sh does).
headers = {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
           "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
with urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers=headers), timeout=5) as answer:
    stored = answer.read().decode()
if stored != sys.argv[2]:
    sys.exit(f"smoke.sh: moto holds {stored!r}, not {sys.argv[2]!r}")
PY
step "passed: image serves as 65532 on a read-only root, resolves localhost, stores $key in moto bucket $STATE_BUCKET"
