#!/bin/sh
# What the installed libraries contain.
#  1. The shared library exports only the public API: every dynamic symbol it defines starts with
#     amxq_. Anything else (a kernel, a helper) leaking out would become ABI by accident.
#  2. Neither the shared nor the static library contains test machinery: no emulated kernel family
#     (*_emu, the tile emulator amxq_temu_*, SIMDe) and no test hook (amxq_test_*). Those live in
#     the test-only library (docs/design.md §3). Nor the AMX kernels' vector-side proxy
#     (*_amx_proxy, option amx_proxy), which only the benchmark links. Checked on the full symbol
#     tables, local symbols included, so hidden code counts too.
# Usage: check_exports.sh LIBAMXQ.so [LIBAMXQ.a]
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

for f in "$@"; do
    syms=$(nm --defined-only "$f" 2>/dev/null | awk 'NF >= 3 { print $3 }')
    if [ -z "$syms" ]; then
        echo "$f: no symbol table to check"
        exit 1
    fi
    test_code=$(echo "$syms" | grep -E '_emu($|_)|_amx_proxy|amxq_temu|simde|amxq_test_' || true)
    if [ -n "$test_code" ]; then
        echo "$f contains test-only code:"
        echo "$test_code" | head -20
        exit 1
    fi
    echo "$f: $(echo "$syms" | wc -l) symbols, no emulator or test hook"
done
