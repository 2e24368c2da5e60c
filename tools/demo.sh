#!/usr/bin/env bash
# Builds amxq (release) and runs the demo: what this CPU offers (amxq-info), then the example
# engine shim (placement table, error figures, ISA used, a short matmul timing).
# Usage: bash tools/demo.sh   (from anywhere)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. tools/deps.sh
amxq_install_deps
dir=${AMXQ_DEMO_DIR:-$top/build-demo}
[ -f "$dir/build.ninja" ] || meson setup "$dir" -Dbuildtype=release -Dtests=false -Dbench=disabled >/dev/null
meson compile -C "$dir" >/dev/null
"$dir/tools/amxq-info"
echo
"$dir/examples/engine_shim" "$@"
