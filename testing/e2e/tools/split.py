"""Splits rendered manifests into one file per pod, for podman kube play.

    python split.py OUT_DIR MANIFEST...

Writes OUT_DIR/<name>.yaml for every Deployment and Pod, holding that
document and the ConfigMaps its pod mounts or reads (kube play needs them
in the same file), and prints the names, one a line, in the order the
manifests hold them. One file per pod lets the run play the queue setup
before everything else and remove one pod (x-sink) and play it again
while the others keep running. Other kinds (Service, Secret) are left
out: kube play ignores Services, and the local run passes credentials as
plain values (docs/e2e.md).
"""

import sys
from pathlib import Path

import yaml

POD_KINDS = ("Deployment", "Pod")


def pod_spec(doc):
    return doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc["spec"]


def config_maps_used(spec):
    """Names of the ConfigMaps a pod spec mounts or reads environment from."""
    names = {v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v}
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        names |= {e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e}
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                names.add(ref["name"])
    return names


def main():
    out, manifests = Path(sys.argv[1]), sys.argv[2:]
    docs = [d for m in manifests for d in yaml.safe_load_all(Path(m).read_text()) if d]
    config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    out.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        if doc["kind"] not in POD_KINDS:
            continue
        name = doc["metadata"]["name"]
        used = sorted(config_maps_used(pod_spec(doc)))
        missing = [n for n in used if n not in config_maps]
        if missing:
            sys.exit(f"split.py: {name} uses ConfigMaps that no manifest holds: {missing}")
        with open(out / f"{name}.yaml", "w") as f:
            yaml.safe_dump_all([config_maps[n] for n in used] + [doc], f, sort_keys=False)
        print(name)


if __name__ == "__main__":
    main()
