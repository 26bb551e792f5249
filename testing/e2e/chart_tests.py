"""Chart tests: what the rendered manifests must contain.

Run by lint.sh with the Python of the kubernetes-validate environment (it
has PyYAML):

    python chart_tests.py HELM LINT_DIR

LINT_DIR holds what lint.sh rendered for every profile in both forms of the
state proxy (<profile>-<form>/<release>.yaml); the value cases below render
the crew chart themselves with HELM. Prints one line per failed check and
closes with "N passed, N failed".
"""

import json
import subprocess
import sys
from pathlib import Path

import yaml

E2E_DIR = Path(__file__).resolve().parent
CREW_CHART = E2E_DIR.parent.parent / "deploy" / "helm" / "asya-crew"
# The integration level's tools; the gateway chart's default flows must be
# the same, so that both levels run the same tests.
INTEGRATION_FLOWS = E2E_DIR.parent / "integration" / "gateway-actors" / "flows.json"

# Connectors per profile, as the integration level runs them.
CONNECTORS = {
    "sqs-s3": ("s3-buffered-lww", "s3-buffered-lww"),
    "rabbitmq-s3": ("s3-buffered-cas", "s3-passthrough"),
    "pubsub-gcs": ("gcs-buffered-lww", "gcs-buffered-cas"),
    "nats-redis": ("redis-buffered-cas", "redis-buffered-cas"),
}
BUCKETS = {"x-sink": "asya-results", "x-sump": "asya-errors"}
MOUNTS = {"x-sink": "/state/checkpoints/results", "x-sump": "/state/checkpoints/errors"}
# Redis: the key prefix tells the actors apart, each checkpoints at its
# mount's root (the profile's override).
PROFILE_MOUNTS = {"nats-redis": {"x-sink": "/state/checkpoints", "x-sump": "/state/checkpoints"}}
# What every container that talks to the transport gets, per profile, with
# lint.sh's example endpoints.
TRANSPORT_ENV = {
    "sqs-s3": {"ASYA_SQS_ENDPOINT": "http://127.0.0.1:4566", "ASYA_SQS_VISIBILITY_TIMEOUT": "30"},
    "rabbitmq-s3": {"ASYA_RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/asya-e2e", "ASYA_RABBITMQ_EXCHANGE": "asya"},
    "pubsub-gcs": {
        "ASYA_PUBSUB_ENDPOINT": "127.0.0.1:8085",
        "ASYA_PUBSUB_PROJECT_ID": "test-project",
        "ASYA_PUBSUB_ACK_DEADLINE": "10",
    },
    "nats-redis": {"ASYA_NATS_URL": "nats://127.0.0.1:4222", "ASYA_NATS_ACK_WAIT": "10s"},
}
# What the state proxies get for their backend, and what they must not.
BACKEND_ENV = {
    "s3": ({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_REGION": "us-east-1"}, ("REDIS_URL", "STORAGE_EMULATOR_HOST")),
    "gcs": (
        {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:4443", "GCS_PROJECT": "test-project"},
        ("AWS_ENDPOINT_URL", "REDIS_URL", "GOOGLE_APPLICATION_CREDENTIALS"),
    ),
    "redis": ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, ("STATE_BUCKET", "AWS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST")),
}
SOCKET = "/var/run/asya/state/checkpoints.sock"


class Checks:
    def __init__(self):
        self.passed = 0
        self.failures = []

    def check(self, name, condition, detail=""):
        if condition:
            self.passed += 1
        else:
            self.failures.append(f"{name}: {detail}" if detail else name)


def documents(text):
    return [d for d in yaml.safe_load_all(text) if d]


def pod_spec(doc):
    if doc["kind"] == "Pod":
        return doc["spec"]
    if doc["kind"] in ("Deployment", "Job"):
        return doc["spec"]["template"]["spec"]
    return None


def env(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def containers(spec):
    return spec.get("initContainers", []) + spec.get("containers", [])


def by_name(items):
    return {item["name"]: item for item in items}


def render_crew(helm, *sets):
    """(exit code, documents or stderr) of the crew chart with --set values."""
    args = [helm, "template", "crew", str(CREW_CHART)]
    for value in sets:
        args += ["--set", value]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        return result.returncode, result.stderr
    return 0, documents(result.stdout)


def crew_pods(docs):
    return {d["metadata"]["name"]: pod_spec(d) for d in docs if d["kind"] == "Deployment"}


def state_proxy(spec):
    return by_name(containers(spec)).get("state-proxy")


def check_rendered_profile(checks, profile, form, directory):
    """Every rendered document of one profile in one sidecar form."""
    where = f"{profile} ({form})"
    docs = [d for f in sorted(directory.glob("*.yaml")) for d in documents(f.read_text())]
    specs = [(d["metadata"]["name"], d["kind"], pod_spec(d)) for d in docs if pod_spec(d)]

    # Every long-running container is probed with an exec of an absolute
    # binary (the images have no shell) and runs locked down.
    volume_names = []
    for name, kind, spec in specs:
        checks.check(f"{where} {name}: host network", spec.get("hostNetwork") is True)
        checks.check(f"{where} {name}: runAsNonRoot", spec["securityContext"].get("runAsNonRoot") is True)
        volume_names += [v["name"] for v in spec.get("volumes", []) if "emptyDir" in v]
        for container in containers(spec):
            label = f"{where} {name}/{container['name']}"
            security = container.get("securityContext", {})
            checks.check(f"{label}: read-only root", security.get("readOnlyRootFilesystem") is True)
            checks.check(f"{label}: no privilege escalation", security.get("allowPrivilegeEscalation") is False)
            checks.check(f"{label}: resources", "limits" in container.get("resources", {}))
            if kind == "Pod":
                continue  # the queue setup runs once
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                command = container.get(probe, {}).get("exec", {}).get("command", [])
                checks.check(f"{label}: {probe} execs a binary", command[:1] and command[0].startswith("/"), command)
    # podman turns an emptyDir into a volume of that name: two pods with
    # one name would share a directory.
    duplicates = {n for n in volume_names if volume_names.count(n) > 1}
    checks.check(f"{where}: emptyDir names unique across pods", not duplicates, duplicates)

    pods = {name: spec for name, kind, spec in specs}
    sink_connector, sump_connector = CONNECTORS[profile]
    for actor, connector in (("x-sink", sink_connector), ("x-sump", sump_connector)):
        spec = pods.get(actor)
        checks.check(f"{where}: {actor} rendered", spec is not None)
        if spec is None:
            continue
        proxy = state_proxy(spec)
        in_init = proxy in spec.get("initContainers", [])
        if form == "native":
            checks.check(f"{where} {actor}: proxy is a native sidecar", in_init and proxy.get("restartPolicy") == "Always")
        else:
            checks.check(f"{where} {actor}: proxy is a plain container", not in_init and "restartPolicy" not in proxy)
        proxy_env = env(proxy)
        checks.check(f"{where} {actor}: connector", proxy_env.get("ASYA_CONNECTOR") == connector, proxy_env.get("ASYA_CONNECTOR"))
        checks.check(f"{where} {actor}: per-connector image", proxy["image"] == f"asya-state-proxy-{connector}:dev", proxy["image"])
        checks.check(f"{where} {actor}: socket", proxy_env.get("CONNECTOR_SOCKET") == SOCKET)
        bucket_var = "STATE_PREFIX" if profile.endswith("redis") else "STATE_BUCKET"
        checks.check(f"{where} {actor}: bucket", proxy_env.get(bucket_var) == BUCKETS[actor], proxy_env.get(bucket_var))
        ready = proxy["readinessProbe"]["exec"]["command"]
        checks.check(f"{where} {actor}: proxy readiness asks the backend", "--ready" in ready and SOCKET in ready)
        parts = by_name(spec["containers"])
        runtime_env = env(parts["runtime"])
        checks.check(f"{where} {actor}: handler", runtime_env.get("ASYA_HANDLER") == actor)
        mount = PROFILE_MOUNTS.get(profile, MOUNTS)[actor]
        checks.check(f"{where} {actor}: mount", runtime_env.get("ASYA_PERSISTENCE_MOUNT") == mount, runtime_env.get("ASYA_PERSISTENCE_MOUNT"))
        wanted, unwanted = BACKEND_ENV[profile.split("-")[1]]
        for name, value in wanted.items():
            checks.check(f"{where} {actor}: proxy {name}", proxy_env.get(name) == value, proxy_env.get(name))
        for name in unwanted:
            checks.check(f"{where} {actor}: proxy has no {name}", name not in proxy_env)
        write = "passthrough" if connector.endswith("-passthrough") else "buffered"
        checks.check(
            f"{where} {actor}: state mount",
            runtime_env.get("ASYA_STATE_PROXY_MOUNTS") == f"checkpoints:/state/checkpoints:write={write}",
            runtime_env.get("ASYA_STATE_PROXY_MOUNTS"),
        )
        runtime_ready = parts["runtime"]["readinessProbe"]["exec"]["command"]
        checks.check(f"{where} {actor}: runtime readiness gate", runtime_ready[-1] == "/var/run/asya/runtime-ready")
        shared = {m["name"] for m in proxy["volumeMounts"] if m["mountPath"] == "/var/run/asya/state"}
        runtime_state = {m["name"] for m in parts["runtime"]["volumeMounts"] if m["mountPath"] == "/var/run/asya/state"}
        checks.check(f"{where} {actor}: proxy and runtime share the socket dir", shared and shared == runtime_state)
        sidecar_env = env(parts["sidecar"])
        checks.check(f"{where} {actor}: end actor", sidecar_env.get("ASYA_IS_END_ACTOR") == "true")
        checks.check(f"{where} {actor}: reports to the gateway", sidecar_env.get("ASYA_GATEWAY_URL") == "http://127.0.0.1:8080")
        checks.check(f"{where} {actor}: transport", sidecar_env.get("ASYA_TRANSPORT") == profile.split("-")[0])

    # The gateway, the queue setup and every sidecar get the transport's
    # settings, and only those of their transport.
    transport = profile.split("-")[0]
    talking = [(name, c) for name, kind, spec in specs for c in containers(spec) if "ASYA_TRANSPORT" in env(c)]
    checks.check(f"{where}: the gateway, the setup and 7 sidecars talk to the transport", len(talking) == 1 + 1 + 5 + 2, len(talking))
    for name, container in talking:
        label = f"{where} {name}/{container['name']}"
        container_env = env(container)
        checks.check(f"{label}: ASYA_TRANSPORT", container_env["ASYA_TRANSPORT"] == transport, container_env["ASYA_TRANSPORT"])
        for key, value in TRANSPORT_ENV[profile].items():
            checks.check(f"{label}: {key}", container_env.get(key) == value, container_env.get(key))
        others = {k for k in container_env for t in TRANSPORT_ENV if t != profile for o in TRANSPORT_ENV[t] if k == o}
        checks.check(f"{label}: no other transport's settings", not others, others)

    # The queue setup creates a queue for every actor that is deployed.
    setup = next((spec for name, kind, spec in specs if kind == "Pod"), None)
    checks.check(f"{where}: queue setup is a Pod that runs once", setup and setup.get("restartPolicy") == "Never")
    if setup:
        args = setup["containers"][0]["args"]
        queued = set(args[args.index("--actors") + 1].split(","))
        deployed = {name for name, kind, spec in specs if kind == "Deployment" and name != "asya-gateway"}
        checks.check(f"{where}: every actor has a queue", deployed <= queued, deployed - queued)
        flows = json.loads(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["flows.json"])
        entrypoints = {f["entrypoint"] for f in flows["flows"]}
        checks.check(f"{where}: every flow's entrypoint is deployed", entrypoints <= deployed, entrypoints - deployed)
        integration = json.loads(INTEGRATION_FLOWS.read_text())
        checks.check(f"{where}: the gateway's flows are the integration level's", flows == integration, flows)


BASE = ["transport.type=sqs", "persistence.enabled=true", "persistence.backend=s3", "persistence.config.bucket=results"]


def check_values(checks, helm):
    """Value cases of the crew chart, beyond the profiles."""
    code, docs = render_crew(helm, *BASE)
    pods = crew_pods(docs)
    checks.check("errorsBucket defaults to bucket", env(state_proxy(pods["x-sump"]))["STATE_BUCKET"] == "results")
    checks.check("default connector of s3", env(state_proxy(pods["x-sink"]))["ASYA_CONNECTOR"] == "s3-buffered-lww")
    checks.check(
        "default image is the per-connector one",
        state_proxy(pods["x-sink"])["image"] == "asya-state-proxy-s3-buffered-lww:0.1.0",
        state_proxy(pods["x-sink"])["image"],
    )
    checks.check("native sidecar by default", state_proxy(pods["x-sink"]) in pods["x-sink"]["initContainers"])

    code, docs = render_crew(helm, *BASE, "persistence.connector.image=registry.example/proxy:1", "x-sump.persistence.connector.image=other:2")
    pods = crew_pods(docs)
    checks.check("connector.image is used as given", state_proxy(pods["x-sink"])["image"] == "registry.example/proxy:1")
    checks.check("an actor's image wins", state_proxy(pods["x-sump"])["image"] == "other:2")

    code, docs = render_crew(helm, *BASE, "persistence.credentials.existingSecret=s3-creds", "persistence.config.accessKey=plain")
    proxy_env = env(state_proxy(crew_pods(docs)["x-sink"]))
    checks.check(
        "S3 credentials from the Secret, not plain values",
        proxy_env.get("AWS_ACCESS_KEY_ID") == {"secretKeyRef": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}},
        proxy_env.get("AWS_ACCESS_KEY_ID"),
    )

    code, docs = render_crew(
        helm, "transport.type=pubsub", "transport.pubsub.projectId=p", "persistence.enabled=true",
        "persistence.backend=gcs", "persistence.config.bucket=b", "persistence.credentials.existingSecret=gcs-sa",
    )
    spec = crew_pods(docs)["x-sink"]
    proxy = state_proxy(spec)
    checks.check(
        "GCS service account file from the Secret",
        env(proxy).get("GOOGLE_APPLICATION_CREDENTIALS") == "/var/run/secrets/asya/gcs/credentials.json"
        and any(v.get("secret", {}).get("secretName") == "gcs-sa" for v in spec["volumes"])
        and any(m["mountPath"] == "/var/run/secrets/asya/gcs" for m in proxy["volumeMounts"]),
    )

    code, docs = render_crew(
        helm, "transport.type=nats", "persistence.enabled=true", "persistence.backend=redis",
        "persistence.config.bucket=b", "persistence.credentials.existingSecret=redis",
    )
    proxy_env = env(state_proxy(crew_pods(docs)["x-sink"]))
    checks.check("Redis URL from the Secret", proxy_env.get("REDIS_URL") == {"secretKeyRef": {"name": "redis", "key": "REDIS_URL"}})

    code, docs = render_crew(
        helm, "transport.type=pubsub", "transport.pubsub.projectId=p", "transport.pubsub.endpoint=http://emu:8085",
        "transport.pubsub.ackDeadline=60", "transport.pubsub.wait=2s", "persistence.enabled=true", "persistence.backend=gcs",
        "persistence.config.bucket=b", "persistence.config.project=p", "persistence.config.emulatorHost=http://gcs:4443",
    )
    spec = crew_pods(docs)["x-sink"]
    sidecar_env = env(by_name(spec["containers"])["sidecar"])
    checks.check(
        "pubsub settings",
        [sidecar_env.get(k) for k in ("ASYA_PUBSUB_PROJECT_ID", "ASYA_PUBSUB_ENDPOINT", "ASYA_PUBSUB_ACK_DEADLINE", "ASYA_PUBSUB_WAIT")]
        == ["p", "http://emu:8085", "60", "2s"],
        sidecar_env,
    )
    proxy_env = env(state_proxy(spec))
    checks.check(
        "GCS emulator (the original's project, emulatorHost), no credentials file",
        proxy_env.get("GCS_PROJECT") == "p" and proxy_env.get("STORAGE_EMULATOR_HOST") == "http://gcs:4443"
        and "GOOGLE_APPLICATION_CREDENTIALS" not in proxy_env and proxy_env.get("ASYA_CONNECTOR") == "gcs-buffered-lww",
        proxy_env,
    )

    code, docs = render_crew(
        helm, "transport.type=nats", "transport.nats.url=nats://n:4222", "transport.nats.ackWait=45s",
        "transport.nats.wait=500ms", "persistence.enabled=true", "persistence.backend=redis",
        "persistence.config.bucket=b", "persistence.config.errorsBucket=e", "persistence.config.endpoint=redis://r:6379/0",
    )
    pods = crew_pods(docs)
    sidecar_env = env(by_name(pods["x-sink"]["containers"])["sidecar"])
    checks.check(
        "nats settings",
        [sidecar_env.get(k) for k in ("ASYA_NATS_URL", "ASYA_NATS_ACK_WAIT", "ASYA_NATS_WAIT")] == ["nats://n:4222", "45s", "500ms"],
        sidecar_env,
    )
    sink, sump = env(state_proxy(pods["x-sink"])), env(state_proxy(pods["x-sump"]))
    checks.check(
        "Redis: plain URL (emulators), buckets as key prefixes, default connector",
        sink.get("REDIS_URL") == "redis://r:6379/0" and sink.get("STATE_PREFIX") == "b" and sump.get("STATE_PREFIX") == "e"
        and sink.get("ASYA_CONNECTOR") == "redis-buffered-cas" and "STATE_BUCKET" not in sink,
        (sink, sump),
    )

    code, docs = render_crew(
        helm, "transport.type=nats", "persistence.enabled=true", "persistence.backend=redis", "persistence.config.bucket=b",
        "persistence.config.endpoint=redis://plain:6379/0", "persistence.credentials.existingSecret=redis",
    )
    proxy_env = env(state_proxy(crew_pods(docs)["x-sink"]))
    checks.check("Redis: the Secret wins over a plain URL", proxy_env.get("REDIS_URL") == {"secretKeyRef": {"name": "redis", "key": "REDIS_URL"}})

    code, docs = render_crew(helm, *BASE, "persistence.config.query.maxKeys=50")
    checks.check("query bounds (the original's keys)", env(state_proxy(crew_pods(docs)["x-sink"])).get("QUERY_MAX_KEYS") == "50")

    code, docs = render_crew(helm, "transport.type=sqs")
    spec = crew_pods(docs)["x-sink"]
    checks.check(
        "without persistence: no proxy, no checkpoint mount",
        state_proxy(spec) is None and "ASYA_PERSISTENCE_MOUNT" not in env(by_name(spec["containers"])["runtime"]),
    )

    code, docs = render_crew(helm, "transport.type=sqs", "transport.existingSecret=aws", "x-sink.enabled=false")
    pods = crew_pods(docs)
    checks.check("x-sink can be left out", list(pods) == ["x-sump"], list(pods))
    sidecar = by_name(pods["x-sump"]["containers"])["sidecar"]
    checks.check("transport credentials from a Secret", sidecar.get("envFrom") == [{"secretRef": {"name": "aws"}}])

    refused = [
        (["persistence.enabled=true", "persistence.backend=s3", "persistence.config.bucket=b"], "transport.type must be"),
        (["transport.type=sqs", "persistence.enabled=true", "persistence.backend=s3"], "persistence.config.bucket is required"),
        ([*BASE, "persistence.connector.name=gcs-buffered-lww"], "does not use persistence.backend"),
        (["transport.type=sqs", "persistence.enabled=true", "persistence.backend=minio", "persistence.config.bucket=b"], "persistence.backend"),
        (["transport.type=nats", "persistence.enabled=true", "persistence.backend=redis", "persistence.config.bucket=b"], "redis:// URL"),
        (["transport.type=pubsub"], "transport.pubsub.projectId is required"),
    ]
    for sets, message in refused:
        code, stderr = render_crew(helm, *sets)
        checks.check(f"refused: {' '.join(sets)}", code != 0 and message in stderr, stderr if code else "rendered")


def main():
    helm, lint_dir = sys.argv[1], Path(sys.argv[2])
    checks = Checks()
    for profile in CONNECTORS:
        for form in ("native", "plain"):
            directory = lint_dir / f"{profile}-{form}"
            checks.check(f"{profile} ({form}) rendered", directory.is_dir())
            if directory.is_dir():
                check_rendered_profile(checks, profile, form, directory)
    check_values(checks, helm)
    for failure in checks.failures:
        print(f"FAILED {failure}")
    print(f"chart tests: {checks.passed} passed, {len(checks.failures)} failed")
    sys.exit(1 if checks.failures else 0)


if __name__ == "__main__":
    main()
