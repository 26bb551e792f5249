#!/usr/bin/env bash
# `make images`: builds the images into the store run/images/ (its own
# storage, like every run) and lists them with their sizes:
#
#   images.sh          the state proxy images and the mesh image, from
#                      target/release (make images builds the binaries first)
#   images.sh clean    remove that store
#
# Inspect the images afterwards with the store's configuration:
#   CONTAINERS_STORAGE_CONF=testing/e2e/run/images/containers/storage.conf podman images
set -euo pipefail
. "$(dirname "$0")/tools/lib.sh"

store="$E2E_DIR/run/images"
if [ "${1:-}" = clean ]; then
  [ -d "$store" ] || exit 0
  containers_env "$store"
  containers_teardown "$store"
  rm -rf "$store"
  exit 0
fi

containers_env "$store"
"$REPO_ROOT/deploy/images/build.sh" all
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}'
