#!/bin/sh
# The shared library exports only the public API: every dynamic symbol it defines starts with
# amxq_. Anything else (a kernel, a helper) leaking out would become ABI by accident.
set -eu
lib="$1"
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | grep -v '^amxq_' || true)
if [ -n "$bad" ]; then
    echo "symbols exported without the amxq_ prefix:"
    echo "$bad"
    exit 1
fi
count=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/' | wc -l)
echo "exports: $count symbols, all amxq_*"
