#!/usr/bin/env bash
# Static checks of the charts, run before anything is built or started:
#   1. helm lint --strict of every chart with every profile, in both forms
#      of the state proxy (native sidecar, plain container);
#   2. helm template of the same, every rendered document validated with
#      kubernetes-validate --strict against Kubernetes 1.29 (the first with
#      native sidecars on by default) and the newest version it bundles;
#   3. chart_tests.py: what the rendered pods must contain.
# Endpoints are example ones (what a local run would pass).
set -euo pipefail
. "$(dirname "$0")/tools/lib.sh"

helm=$(helm_bin)
validate=$(kubernetes_validate_bin)
out="$E2E_DIR/run/lint"
rm -rf "$out"
mkdir -p "$out"

# example_values PROFILE FORM: the values local-values.sh gives a run, with
# fixed example ports.
example_values() {
  local transport_url storage_url
  case "${1%%-*}" in
    sqs) transport_url=http://127.0.0.1:4566 ;;
    rabbitmq) transport_url=amqp://guest:guest@127.0.0.1:5672/asya-e2e ;;
    pubsub) transport_url=127.0.0.1:8085 ;;
    nats) transport_url=nats://127.0.0.1:4222 ;;
  esac
  case "${1#*-}" in
    s3) storage_url=http://127.0.0.1:4566 ;;
    gcs) storage_url=http://127.0.0.1:4443 ;;
    redis) storage_url=redis://127.0.0.1:6379/0 ;;
  esac
  "$E2E_DIR/local-values.sh" "$1" "$2" 8080 "$transport_url" "$storage_url"
}

# The newest Kubernetes version whose schemas kubernetes-validate bundles.
newest=$("$(dirname "$validate")/python" -c '
import importlib.resources, re
names = [p.name for p in importlib.resources.files("kubernetes_validate").joinpath("kubernetes-json-schema").iterdir()]
versions = {tuple(map(int, m.groups())) for m in (re.match(r"v(\d+)\.(\d+)\.(\d+)-local-strict$", n) for n in names) if m}
print(".".join(map(str, max(versions))))')

build_chart_dependencies
failed=0
for profile in $(e2e_profiles); do
  for form in native plain; do
    values="$out/$profile-$form.values.yaml"
    example_values "$profile" "$form" >"$values"
    for release in "${E2E_RELEASES[@]}"; do
      "$helm" lint --strict --quiet "${release#*:}" -f "$E2E_DIR/profiles/$profile.yaml" -f "$values" >"$out/lint.log" 2>&1 || {
        echo "helm lint failed: ${release%%:*} with $profile ($form)"
        cat "$out/lint.log"
        failed=1
      }
    done
    render_profile "$profile" "$values" "$out/$profile-$form"
    for version in 1.29.0 "$newest"; do
      "$validate" --strict --quiet -k "$version" "$out/$profile-$form"/*.yaml || {
        echo "kubernetes-validate --strict -k $version failed: $profile ($form)"
        failed=1
      }
    done
    echo "lint: $profile ($form): helm lint, template, kubernetes-validate --strict 1.29.0 and $newest"
  done
done
((failed == 0)) || exit 1
"$(dirname "$validate")/python" "$E2E_DIR/chart_tests.py" "$helm" "$out"
