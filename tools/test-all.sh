#!/usr/bin/env bash
# Builds amxq and runs the whole test suite: a release build with -Werror (gcc), an ASan+UBSan
# build (clang), a ThreadSanitizer build of the threading tests (clang), the real AMX machine code
# under amxtrap (CPUs with AVX-512), then installs into a temporary prefix and builds a consumer
# with pkg-config. The emulated kernel families are forced on, so they cannot silently vanish.
# Ends with "N passed, N failed, N skipped" and exits non-zero on any failure; a test that cannot
# run on this machine (Meson's exit code 77) is counted as skipped, never as passed.
# Usage: bash tools/test-all.sh   (from anywhere)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. tools/deps.sh
amxq_install_deps || { echo "could not install dependencies"; echo "0 passed, 1 failed"; exit 1; }

out=${AMXQ_TEST_DIR:-$top/build-test}
rm -rf "$out"
mkdir -p "$out"
passed=0
failed=0
skipped=0
failures=()
skips=()

# Add the counts of one `meson test` run (its testlog.json) to the totals.
count_meson() {
    local log="$1/meson-logs/testlog.json" name="$2"
    if [ ! -f "$log" ]; then
        failed=$((failed + 1)); failures+=("$name: no test log"); return
    fi
    local ok bad skip
    ok=$(grep -c '"result": "\(OK\|EXPECTEDFAIL\)"' "$log")
    bad=$(grep -c '"result": "\(FAIL\|TIMEOUT\|UNEXPECTEDPASS\|ERROR\)"' "$log")
    skip=$(grep -c '"result": "SKIP"' "$log")
    passed=$((passed + ok))
    failed=$((failed + bad))
    skipped=$((skipped + skip))
    [ "$bad" -gt 0 ] && failures+=("$name: $bad test(s) failed")
    [ "$skip" -gt 0 ] && skips+=("$name: $skip test(s) skipped")
    return 0
}

# skip_step NAME WHY: a counted step that cannot run on this machine.
skip_step() {
    echo "== $1: skipped ($2)"
    skipped=$((skipped + 1))
    skips+=("$1: $2")
}

# step NAME COMMAND...: one counted step that is not a meson test.
step() {
    local name="$1"; shift
    echo "== $name"
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

run_suite() { # NAME BUILDDIR MESON-SETUP-ARGS... -- MESON-TEST-ARGS...
    local name="$1" dir="$2"; shift 2
    local setup=() test=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do setup+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    test=("$@")
    echo "== $name: meson setup ${setup[*]}"
    if ! meson setup "$dir" "${setup[@]}" >"$dir.setup.log" 2>&1; then
        cat "$dir.setup.log"; failed=$((failed + 1)); failures+=("$name: setup"); return
    fi
    if ! meson compile -C "$dir" >"$dir.compile.log" 2>&1; then
        tail -50 "$dir.compile.log"; failed=$((failed + 1)); failures+=("$name: compile"); return
    fi
    meson test -C "$dir" --print-errorlogs --num-processes "$(nproc)" "${test[@]}" |
        grep -v '^ *[0-9]*/[0-9]* .* OK ' || true
    count_meson "$dir" "$name"
}

# Whether this CPU runs the AVX-512 half of the AMX kernels (the amxtrap runs need it).
cpu_has_avx512() {
    local f
    for f in avx512f avx512bw avx512vl avx512dq avx512_vnni avx2 fma f16c; do
        grep -qw "$f" /proc/cpuinfo 2>/dev/null || return 1
    done
}
# ggml sources for the ggml integration tests (integrations/ggml); none: those tests are skipped.
ggml_src=$(bash tools/ggml-src.sh "$out/ggml-src") ||
    { failed=$((failed + 1)); failures+=("unpacking the ggml sources"); ggml_src=; }
ggml_opt=()
[ -n "$ggml_src" ] && ggml_opt=(-Dggml_src="$ggml_src")

amxtrap_src="$top/../shared/tools/amxtrap/amxtrap.c"
amxtrap_opt=()
[ -f "$amxtrap_src" ] && amxtrap_opt=("-Damxtrap=$amxtrap_src")

start=$(date +%s)
run_suite "release (gcc, -Werror)" "$out/release" \
    --werror -Dbuildtype=release -Dbench=enabled -Demulators=enabled "${amxtrap_opt[@]}" \
    "${ggml_opt[@]}" -Dprefix="$out/prefix" --

# The whole suite again with AMXQ_ISA=amx on the real AMX machine code, every tile instruction
# trapped by amxtrap (the `amxtrap` suite above asserts that they ran).
if [ ${#amxtrap_opt[@]} -eq 0 ]; then
    skip_step "suite on real AMX code (amxtrap)" "no $amxtrap_src"
elif ! cpu_has_avx512; then
    skip_step "suite on real AMX code (amxtrap)" "this CPU lacks AVX-512 for the AMX kernels"
else
    echo "== suite on real AMX code (amxtrap): meson test --setup amxtrap"
    rm -f "$out/release/meson-logs/testlog-amxtrap.json"
    meson test -C "$out/release" --setup amxtrap --print-errorlogs --num-processes "$(nproc)" |
        grep -v '^ *[0-9]*/[0-9]* .* OK ' || true
    mv "$out/release/meson-logs/testlog-amxtrap.json" "$out/release/meson-logs/testlog.json" \
        2>/dev/null
    count_meson "$out/release" "suite on real AMX code (amxtrap)"
fi

CC=clang CXX=clang++ run_suite "asan+ubsan (clang)" "$out/asan" \
    --werror -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbench=disabled -Demulators=enabled -- --timeout-multiplier 3
if [ -f tests/test_threads.c ]; then
    CC=clang CXX=clang++ run_suite "tsan (clang)" "$out/tsan" \
        --werror -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false \
        -Dbench=disabled -Dexamples=false -- --suite tsan --timeout-multiplier 3
fi

# The one-command hardware check (tools/hw-check.sh) in its CI mode: on a machine without AMX it
# must report AMX absent and still check and measure the rest.
hw_check() {
    bash tools/hw-check.sh --quick --build-dir "$out/hw" >"$out/hw-check.log" 2>&1
    local rc=$?
    grep '^\[hw-check\]' "$out/hw-check.log" | tail -40
    [ $rc -eq 0 ] || tail -30 "$out/hw-check.log"
    return $rc
}
step "tools/hw-check.sh --quick" hw_check

consumer() {
    meson install -C "$out/release" >"$out/install.log" 2>&1 || { cat "$out/install.log"; return 1; }
    local pc
    pc=$(dirname "$(find "$out/prefix" -name amxq.pc | head -1)")
    [ -n "$pc" ] || { echo "amxq.pc not installed"; return 1; }
    local libdir
    libdir=$(PKG_CONFIG_PATH="$pc" pkg-config --variable=libdir amxq)
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Werror tests/consumer/consumer.c -o "$out/consumer" \
        $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs amxq) &&
        LD_LIBRARY_PATH="$libdir" "$out/consumer"
}
step "install + pkg-config consumer" consumer

format_check() {
    # tools/deps.sh installs clang-format; missing here is a failure, not a pass.
    command -v clang-format >/dev/null || { echo "clang-format not installed"; return 1; }
    git ls-files '*.c' '*.h' '*.cpp' | xargs clang-format --dry-run -Werror
}
step "clang-format" format_check

echo "== done in $(( $(date +%s) - start )) s"
for f in "${skips[@]}"; do echo "SKIPPED: $f"; done
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
