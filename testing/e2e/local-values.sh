#!/usr/bin/env bash
# Prints the values a local run adds to a profile (helm -f PROFILE -f this):
# pods on the host network, images built here (never pulled), the queue
# setup as a Pod (podman kube play has no Jobs), the state proxy in the
# chosen form, and the endpoints of the emulators this run started on
# free ports of 127.0.0.1.
#
#   local-values.sh PROFILE SIDECAR GATEWAY_PORT TRANSPORT_URL STORAGE_URL
#
#   SIDECAR        native (init container with restartPolicy: Always) or
#                  plain (a container; podman 4.3 cannot run the native form)
#   TRANSPORT_URL  sqs: http://127.0.0.1:P   rabbitmq: amqp://u:p@127.0.0.1:P/vhost
#                  pubsub: 127.0.0.1:P       nats: nats://127.0.0.1:P
#   STORAGE_URL    s3: http://127.0.0.1:P    gcs: http://127.0.0.1:P
#                  redis: redis://127.0.0.1:P/0
set -euo pipefail

usage="usage: local-values.sh PROFILE native|plain GATEWAY_PORT TRANSPORT_URL STORAGE_URL"
(($# == 5)) || { echo "$usage" >&2; exit 2; }
profile=$1 sidecar=$2 gateway_port=$3 transport_url=$4 storage_url=$5
transport=${profile%%-*}
storage=${profile#*-}
case "$sidecar" in
  native) native=true ;;
  plain) native=false ;;
  *) echo "$usage" >&2; exit 2 ;;
esac

case "$transport" in
  sqs) transport_values="sqs: {endpoint: \"$transport_url\"}" ;;
  rabbitmq) transport_values="rabbitmq: {url: \"$transport_url\"}" ;;
  pubsub) transport_values="pubsub: {endpoint: \"$transport_url\"}" ;;
  nats) transport_values="nats: {url: \"$transport_url\"}" ;;
  *) echo "local-values.sh: unknown transport in profile $profile" >&2; exit 2 ;;
esac
case "$storage" in
  s3 | redis) storage_values="endpoint: \"$storage_url\"" ;;
  gcs) storage_values="emulatorHost: \"$storage_url\"" ;;
  *) echo "local-values.sh: unknown storage in profile $profile" >&2; exit 2 ;;
esac

cat <<YAML
# Added by testing/e2e/local-values.sh for a local run of $profile.
hostNetwork: true
image:
  pullPolicy: Never
gatewayUrl: "http://127.0.0.1:$gateway_port"
gateway:
  address: 127.0.0.1
  port: $gateway_port
setup:
  kind: Pod
transport:
  $transport_values
persistence:
  connector:
    pullPolicy: Never
    nativeSidecar: $native
  config:
    $storage_values
YAML
