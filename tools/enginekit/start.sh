#!/usr/bin/env bash
# Start the engine kit (../shared/engine) with what this project's engine run needs beyond the kit's defaults:
#  - registry.k8s.io mirrored to the kit's loopback registry, where k8s-images.sh pushes stand-ins for the
#    official kube-apiserver, kube-controller-manager and etcd images the sandbox runs;
#  - a garbage-collection budget that fits a machine with less than 20% of its disk free (the engine's default
#    then prunes its whole cache continuously, so every run turns cold).
# The kit's start.sh writes engine.json on every start; this runs a copy of it that writes ours.
#   tools/enginekit/start.sh            (stops a running kit engine first)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KIT=${KIT:-$here/../../../shared/engine}
TOP=${TOP:-/opt/dagger-local}
REG=${REG:-127.0.0.1:5001}
GC_MAX_USED=${GC_MAX_USED:-60GB}
GC_MIN_FREE=${GC_MIN_FREE:-5GB}
config='{"registries": {"docker.io": {"mirrors": ["$REG"]}, "registry.k8s.io": {"mirrors": ["$REG"]}}, "gc": {"maxUsedSpace": "'$GC_MAX_USED'", "minFreeSpace": "'$GC_MIN_FREE'", "reservedSpace": "10GB"}}'
grep -q '{"registries": {"docker.io": {"mirrors": \["$REG"\]}}}' "$KIT/start.sh" ||
  { echo "$KIT/start.sh does not write the engine.json this script knows how to change; update tools/enginekit/start.sh" >&2; exit 1; }
mkdir -p "$TOP"
sed "s|{\"registries\": {\"docker.io\": {\"mirrors\": \[\"\$REG\"\]}}}|$config|" "$KIT/start.sh" > "$TOP/start-project.sh"
chmod +x "$TOP/start-project.sh"
TOP=$TOP "$KIT/stop.sh" >/dev/null 2>&1 || true
TOP=$TOP REG=$REG "$TOP/start-project.sh"
cat "$TOP/rootfs/engine/etc/dagger/engine.json"
