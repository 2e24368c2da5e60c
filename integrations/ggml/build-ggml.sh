#!/usr/bin/env bash
# Builds ggml's static ggml-base and ggml-cpu with amxq's registration hook, for the ggml tests.
# Usage: build-ggml.sh GGML_SRC PATCH WORK_DIR OUT_BASE_A OUT_CPU_A
#   GGML_SRC  an upstream ggml source tree (left untouched: it is copied into WORK_DIR first)
#   PATCH     integrations/ggml/ggml-amxq.patch
#   WORK_DIR  where the patched copy and its CMake build live; kept between runs, so a rerun
#             only re-links (a changed patch or source path starts it afresh)
#   OUT_*_A   where to copy libggml-base.a and libggml-cpu.a (Meson's custom_target outputs)
set -euo pipefail
src=$1 patch=$2 work=$3 out_base=$4 out_cpu=$5
[ -f "$src/CMakeLists.txt" ] && [ -f "$src/src/ggml-cpu/ggml-cpu.cpp" ] ||
    { echo "build-ggml.sh: $src is not a ggml source tree" >&2; exit 1; }
src=$(cd "$src" && pwd)

# The copy is redone only when the source path or the patch changes: copying anew would touch
# every file and make CMake rebuild all of ggml (minutes).
key="$src $(sha256sum <"$patch" | cut -d' ' -f1)"
if [ ! -f "$work/stamp" ] || [ "$(cat "$work/stamp")" != "$key" ]; then
    rm -rf "$work/ggml" "$work/build" "$work/stamp"
    mkdir -p "$work"
    cp -a "$src" "$work/ggml"
    patch -d "$work/ggml" -p1 --forward --quiet <"$patch"
    echo "$key" >"$work/stamp"
fi

# AVX-512 only when the build machine has it: the tests run where they are built, and a ggml built
# for AVX-512 would die of SIGILL elsewhere.
avx512=OFF
if grep -qw avx512f /proc/cpuinfo 2>/dev/null && grep -qw avx512_vnni /proc/cpuinfo &&
    grep -qw avx512vbmi /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo; then
    avx512=ON
fi
if [ ! -f "$work/build/CMakeCache.txt" ]; then
    cmake -S "$work/ggml" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF \
        -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DGGML_CPU_AMXQ=ON -DGGML_CPU_REPACK=ON \
        -DGGML_AVX512=$avx512 -DGGML_AVX512_VNNI=$avx512 -DGGML_AVX512_VBMI=$avx512 \
        -DCMAKE_POSITION_INDEPENDENT_CODE=ON >"$work/cmake.log" 2>&1 ||
        { cat "$work/cmake.log" >&2; exit 1; }
fi
ninja -C "$work/build" -j "${AMXQ_GGML_JOBS:-$(nproc)}" ggml-base ggml-cpu >"$work/ninja.log" 2>&1 ||
    { tail -40 "$work/ninja.log" >&2; exit 1; }
base=$(find "$work/build" -name libggml-base.a | head -1)
cpu=$(find "$work/build" -name libggml-cpu.a | head -1)
[ -n "$base" ] && [ -n "$cpu" ] || { echo "build-ggml.sh: libraries not found" >&2; exit 1; }
cp "$base" "$out_base"
cp "$cpu" "$out_cpu"
