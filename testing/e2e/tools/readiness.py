"""Waits until every container of played manifests passes its readiness probe.

    python readiness.py SECONDS MANIFEST...

podman 4.3's `kube play` ignores readinessProbe (and turns an exec
livenessProbe into a healthcheck run through /bin/sh, which images built
from scratch do not have), so its own health state cannot tell when a pod
is ready. This runs each container's rendered readiness probe the way the
kubelet does: the probe's exec command inside the container, with `podman
exec`, polled at a fifth of the shortest probe period, until all pass or
SECONDS run out. On time-out it prints what each failing probe said and
the container's last log lines, and exits 1.

Container names follow kube play: <deployment>-pod-0-<container> for a
Deployment, <pod>-<container> for a Pod. The container configuration
(CONTAINERS_CONF, ...) comes from the environment.
"""

import subprocess
import sys
import time

import yaml


def probed_containers(manifest):
    """(podman container name, probe) for every container with a readiness probe."""
    found = []
    with open(manifest) as f:
        for doc in yaml.safe_load_all(f):
            if not doc or doc.get("kind") not in ("Deployment", "Pod"):
                continue
            name = doc["metadata"]["name"]
            if doc["kind"] == "Deployment":
                spec, prefix = doc["spec"]["template"]["spec"], f"{name}-pod-0"
            else:
                spec, prefix = doc["spec"], name
            for container in spec.get("initContainers", []) + spec.get("containers", []):
                probe = container.get("readinessProbe")
                if probe and "exec" in probe:
                    found.append((f"{prefix}-{container['name']}", probe))
    return found


def run_probe(container, probe):
    """(passed, what it said) of one exec probe."""
    timeout = probe.get("timeoutSeconds", 1)
    try:
        result = subprocess.run(
            ["podman", "exec", container, *probe["exec"]["command"]],
            capture_output=True, text=True, timeout=timeout + 5,
        )
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout}s"
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def main():
    seconds, manifests = float(sys.argv[1]), sys.argv[2:]
    pending = {name: probe for manifest in manifests for name, probe in probed_containers(manifest)}
    if not pending:
        print(f"readiness.py: {' '.join(manifests)}: no readiness probe to wait for", file=sys.stderr)
        sys.exit(1)
    count = len(pending)
    said = {}
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline:
        for name, probe in list(pending.items()):
            passed, said[name] = run_probe(name, probe)
            if passed:
                del pending[name]
        if pending:
            time.sleep(min(p.get("periodSeconds", 10) for p in pending.values()) / 5)
    if not pending:
        print(f"readiness.py: {count} containers ready")
        return
    for name in pending:
        print(f"not ready after {seconds:.0f}s: {name}: {said.get(name) or '(no output)'}", file=sys.stderr)
        logs = subprocess.run(["podman", "logs", "--tail", "20", name], capture_output=True, text=True)
        print(logs.stdout + logs.stderr, file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
