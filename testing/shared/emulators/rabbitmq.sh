#!/usr/bin/env bash
# RabbitMQ for integration tests: a virtual host of its own on the
# machine's broker (127.0.0.1:5672, guest/guest), so runs never see each
# other's queues.
#
#   rabbitmq.sh start DIR   install the broker if missing, start it if it
#                           does not answer, create a fresh vhost, write DIR/env
#   rabbitmq.sh stop DIR    delete that vhost with everything in it (idempotent)
#
# The broker is the machine's service (this kind of machine starts it; the
# script starts it only when it is down, and leaves it running for the
# other users of the machine). Only the vhost belongs to the run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

command=${1:?usage: rabbitmq.sh start|stop DIR}
dir=${2:?usage: rabbitmq.sh start|stop DIR}
port=${RABBITMQ_PORT:-5672}

ensure_running() {
  rabbitmq-diagnostics -q ping >/dev/null 2>&1 && return 0
  echo "the RabbitMQ broker does not answer; starting it (rabbitmq-server -detached)" >&2
  rabbitmq-server -detached
  wait_ready 90 /var/log/rabbitmq/rabbit@"$(hostname -s)".log rabbitmq-diagnostics -q ping
}

case "$command" in
  start)
    mkdir -p "$dir"
    ensure_debian_package rabbitmqctl rabbitmq-server
    ensure_running
    vhost="asya-it-$$-$(date +%s%N)"
    rabbitmqctl -q add_vhost "$vhost" >/dev/null
    echo "$vhost" >"$dir/vhost"
    rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
    cat >"$dir/env" <<ENV
RABBITMQ_URL=amqp://guest:guest@127.0.0.1:$port/$vhost
RABBITMQ_VHOST=$vhost
ENV
    echo "RabbitMQ ready on 127.0.0.1:$port, vhost $vhost"
    ;;
  stop)
    [ -f "$dir/vhost" ] || exit 0
    rabbitmqctl -q delete_vhost "$(cat "$dir/vhost")" >/dev/null
    rm -f "$dir/vhost"
    ;;
  *)
    echo "usage: rabbitmq.sh start|stop DIR" >&2
    exit 2
    ;;
esac
