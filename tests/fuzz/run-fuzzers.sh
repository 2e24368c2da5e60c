#!/bin/sh
# Build amxq's fuzz targets with libFuzzer + ASan + UBSan (clang) and run each for a given time.
#
#   tests/fuzz/run-fuzzers.sh SECONDS [--merge] [TARGET...]
#
# SECONDS  wall time per target (libFuzzer -max_total_time).
# --merge  afterwards, merge the inputs that added coverage into tests/fuzz/corpus/<target>/
#          (libFuzzer -merge=1: only inputs that add coverage, under hash names). Without it the
#          checked-in corpus is only read.
# TARGET   packed, roundtrip, shapes, matmul_id (default: all four, one after the other).
#
# Everything is built under $AMXQ_FUZZ_DIR (default /tmp/amxq-fuzz): the test-only library (the
# product plus the emulated families, src/meson.build) as a static archive instrumented with -fsanitize=fuzzer-no-link,address,undefined (its own meson build
# directory, lib/), one binary per target, a working corpus per target (corpus/<target>, seeded
# from the checked-in one), logs (<target>.log, with libFuzzer's final stats) and crash inputs
# (artifacts/). CC (default clang) must support -fsanitize=fuzzer. Exits non-zero if any target
# found a failure; the others still run.
set -eu

if [ $# -lt 1 ]; then
    sed -n '4,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
secs=$1
shift
merge=0
targets=
for a in "$@"; do
    case $a in
    --merge) merge=1 ;;
    packed | roundtrip | shapes | matmul_id) targets="$targets $a" ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
    esac
done
[ -n "$targets" ] || targets="packed roundtrip shapes matmul_id"

src=$(cd "$(dirname "$0")/../.." && pwd)
out=${AMXQ_FUZZ_DIR:-/tmp/amxq-fuzz}
cc=${CC:-clang}
mkdir -p "$out/artifacts"

# The library, instrumented for coverage and sanitizers (asserts kept: debugoptimized).
if [ ! -f "$out/lib/build.ninja" ]; then
    CC=$cc meson setup "$out/lib" "$src" --buildtype=debugoptimized -Db_ndebug=false \
        -Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link \
        -Dtests=false -Dexamples=false -Dbench=disabled >"$out/meson-setup.log" 2>&1 ||
        { cat "$out/meson-setup.log"; exit 1; }
fi
ninja -C "$out/lib" src/libamxq_test.a >"$out/ninja.log" 2>&1 || { cat "$out/ninja.log"; exit 1; }

cfg="$out/lib/src/amxq_config.h"
defs=""
libs="-lpthread -lm -ldl"
grep -q '^#define AMXQ_KERNELS_AMX_EMU 1' "$cfg" && defs="-DFZ_HAVE_TEMU"
grep -q '^#define AMXQ_HAVE_NUMA 1' "$cfg" && libs="$libs -lnuma"

status=0
for t in $targets; do
    # packed: a Q4_K weight of one row is 38016 bytes; -len_control=0 lets mutations keep the
    # whole length of the seeds from the start (else libFuzzer grows the limit slowly from small).
    case $t in
    packed) maxlen=65536 lenctl=0 ;;
    roundtrip) maxlen=4096 lenctl=100 ;;
    shapes) maxlen=64 lenctl=100 ;;
    matmul_id) maxlen=256 lenctl=100 ;;
    esac
    bin="$out/fuzz_$t"
    # shellcheck disable=SC2086
    $cc -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$src/include" -I"$src/src" -I"$out/lib/src" -I"$out/lib" $defs \
        "$src/tests/fuzz/fuzz_$t.c" "$out/lib/src/libamxq_test.a" $libs -o "$bin"
    mkdir -p "$out/corpus/$t"
    echo "== fuzz_$t: ${secs}s (log: $out/$t.log)"
    if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -max_total_time="$secs" -max_len="$maxlen" -len_control="$lenctl" -timeout=60 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$t-" "$out/corpus/$t" "$src/tests/fuzz/corpus/$t" \
        >"$out/$t.log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)|^Done' \
            "$out/$t.log" || true
    else
        echo "fuzz_$t FOUND A FAILURE: see $out/$t.log and $out/artifacts/" >&2
        grep -E 'ERROR|property failed|SUMMARY' "$out/$t.log" | head -5 >&2 || true
        status=1
    fi
    if [ "$merge" = 1 ]; then
        "$bin" -merge=1 -max_len="$maxlen" "$src/tests/fuzz/corpus/$t" "$out/corpus/$t" \
            >"$out/$t.merge.log" 2>&1 || { echo "merge of $t failed" >&2; status=1; }
    fi
done
exit $status
