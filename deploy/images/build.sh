#!/usr/bin/env bash
# Builds the images from release binaries, with buildah (no daemon; this
# machine) or docker (elsewhere), from the same Containerfiles:
#
#   build.sh state-proxy   asya-state-proxy:TAG, and asya-state-proxy-<connector>:TAG
#                          for each of the six Asya connectors
#   build.sh mesh          asya-mesh:TAG
#   build.sh all           both
#
# Environment:
#   IMAGE_TAG        tag of every image (default dev)
#   BUILDER          buildah or docker (default: buildah when installed)
#   STATE_PROXY_BIN  default target/release/state-proxy
#                    (cargo build --release --locked -p state-proxy)
#   MESH_BIN         default target/release/asya-mesh
#                    (cargo build --release --locked -p asya-mesh)
# buildah uses the storage its usual configuration names; the E2E level
# points CONTAINERS_STORAGE_CONF at a store of its own run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
tag=${IMAGE_TAG:-dev}
state_proxy_bin=${STATE_PROXY_BIN:-$repo/target/release/state-proxy}
mesh_bin=${MESH_BIN:-$repo/target/release/asya-mesh}
if [ -z "${BUILDER:-}" ]; then
  if command -v buildah >/dev/null 2>&1; then BUILDER=buildah; else BUILDER=docker; fi
fi
CONNECTORS=(s3-buffered-lww s3-buffered-cas s3-passthrough gcs-buffered-lww gcs-buffered-cas redis-buffered-cas)

# build IMAGE CONTAINERFILE CONTEXT [--build-arg K=V]...
build() {
  local image=$1 containerfile=$2 context=$3
  shift 3
  case "$BUILDER" in
    # chroot isolation: no user namespaces or mounts needed. Docker image
    # format: the OCI format has no HEALTHCHECK. No --layers: buildah 1.28's
    # layer cache ignores build arguments (every connector image came out
    # with the first one's default).
    buildah) buildah bud --quiet --isolation chroot --format docker \
      -t "$image" -f "$containerfile" "$@" "$context" >/dev/null ;;
    docker) docker build --quiet -t "$image" -f "$containerfile" "$@" "$context" >/dev/null ;;
    *) echo "build.sh: BUILDER must be buildah or docker, not $BUILDER" >&2; return 2 ;;
  esac
  echo "build.sh: $image, $(image_size "$image")"
}

image_size() {
  case "$BUILDER" in
    buildah) buildah images --format '{{.Size}}' "$1" ;;
    docker) docker image ls --format '{{.Size}}' "$1" ;;
  esac
}

# image_from_binary NAME BINARY CONTAINERFILE: the rootfs context, then the image.
image_from_binary() {
  local name=$1 binary=$2 containerfile=$3
  local context
  context=$(mktemp -d)
  "$here/rootfs.sh" "$context" "$binary" >/dev/null
  local status=0
  build "$name:$tag" "$containerfile" "$context" || status=$?
  rm -rf "$context"
  return "$status"
}

state_proxy() {
  image_from_binary asya-state-proxy "$state_proxy_bin" "$here/state-proxy/Containerfile"
  local empty
  empty=$(mktemp -d)
  for connector in "${CONNECTORS[@]}"; do
    build "asya-state-proxy-$connector:$tag" "$here/state-proxy/Containerfile.connector" "$empty" \
      --build-arg "BASE=asya-state-proxy:$tag" --build-arg "CONNECTOR=$connector" || {
      rm -rf "$empty"
      return 1
    }
  done
  rm -rf "$empty"
}

mesh() {
  image_from_binary asya-mesh "$mesh_bin" "$here/mesh/Containerfile"
}

case "${1:-}" in
  state-proxy) state_proxy ;;
  mesh) mesh ;;
  all) state_proxy && mesh ;;
  *)
    echo "usage: build.sh state-proxy|mesh|all" >&2
    exit 2
    ;;
esac
