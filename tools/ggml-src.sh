#!/usr/bin/env bash
# Unpacks the ggml sources the ggml tests build against (../shared/third_party/ggml-d99724f.tar.xz,
# beside the repository) into DIR and prints the source tree's path, for -Dggml_src=. Prints
# nothing and exits 0 when the archive is absent: the ggml tests then report skipped.
# Usage: bash tools/ggml-src.sh DIR
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
archive="$top/../shared/third_party/ggml-d99724f.tar.xz"
dir=${1:?usage: ggml-src.sh DIR}
[ -f "$archive" ] || exit 0
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# Unpacked afresh only when missing: reusing the tree keeps the build's copy of it up to date.
if [ ! -f "$dir/ggml/src/ggml-cpu/traits.h" ]; then
    rm -rf "$dir/ggml"
    tar -xJf "$archive" -C "$dir"
fi
echo "$dir/ggml"
