#!/usr/bin/env bash
# The pipeline benchmark of docs/performance.md ("Actor pipeline"): for
# each integration profile, tasks per second end to end for test_echo
# (gateway submit until the object is in the bucket) beside the raw rate
# of the same transport client with no actors, and the median cost of
# each stage. Bounded in count. Prints one Markdown table row per
# profile; the JSON stays in testing/integration/gateway-actors/run/.
#
#   testing/bench/pipeline.sh [TASKS] [PROFILE...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tasks=${1:-400}
shift $(($# > 0 ? 1 : 0))
cd "$root"
build_log=$(mktemp)
cargo build --release --locked --workspace --all-targets >"$build_log" 2>&1 || { cat "$build_log" >&2; exit 1; }
rm -f "$build_log"
integration="$root/testing/integration/gateway-actors"
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || read -r -a profiles <<<"$(make -s -C "$integration" list)"

echo "| profile | tasks | pipeline tasks/s | transport msgs/s | ratio | round trips per hop | task latency ms | transport round trip ms | invoke ms | checkpoint ms | checkpoints/s at 16 | gateway report ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
# Each profile as it is, then with both crew proxies on `memory`: the
# same pipeline without the cost of storage.
for profile in "${profiles[@]}"; do
  for crew in "" memory; do
    results=$(mktemp)
    "$integration/run-profile.sh" "$profile" bench --tasks "$tasks" --results "$results" \
      ${crew:+--crew-connector "$crew"} |
      grep -E '^(\| |CPU)' || { echo "benchmark of $profile failed" >&2; exit 1; }
    mv "$results" "$integration/run/$profile-latest/bench${crew:+-$crew}.json"
  done
done
