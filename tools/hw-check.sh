#!/usr/bin/env bash
# tools/hw-check.sh — one command that answers "does amxq work, and how fast, on this machine?"
#
# On any x86-64 Linux machine: builds a release tree of its own (build-hw by default), prints
# amxq-info, then for every kernel family this CPU runs (scalar, avx512, amx) runs checkasm, the
# test suite with AMXQ_ISA set to it and the golden files through it, then a short benchmark (every
# type, M = 1, 32, 128, 512, N = K = 4096, one thread and all threads, amx beside avx512, scalar at
# one M), and writes a Markdown summary: the machine, each step's result and counts, and the key
# ratios. Where AMX is absent (CPU, OS or permission) it says so and runs the rest. The emulated
# families are left out: they test kernel logic, not this machine (docs/design.md §7).
#
# Usage: tools/hw-check.sh [--quick] [--build-dir DIR] [--summary FILE] [-j N] [-- MESON-ARGS...]
#   --quick       for CI: checkasm and golden for every family, the suite for the best family
#                 only, a tiny benchmark (about a minute after the build on 2 cores)
#   --build-dir   build tree (default build-hw, relative to the repository root); reused if there
#   --summary     Markdown summary (default BUILD-DIR/hw-summary.md); its path is printed last
#   -j N          build and test jobs (default: every CPU)
#   MESON-ARGS    extra `meson setup` options, e.g. -Dnuma=disabled
# Exits 0 when every step that ran passed (skips allowed), 1 on any failure, 2 on bad usage.
# Needs meson, ninja, a C/C++ compiler, Google Benchmark (libbenchmark-dev) and python3 (which
# meson needs anyway); tools/deps.sh installs them on Debian/Ubuntu.
set -euo pipefail

quick=0
build_dir=build-hw
summary=""
jobs=$(nproc 2>/dev/null || echo 2)
meson_extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1 ;;
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift ;;
    --build-dir=*) build_dir=${1#*=} ;;
    --summary) summary=${2:?--summary needs a file}; shift ;;
    --summary=*) summary=${1#*=} ;;
    -j) jobs=${2:?-j needs a number}; shift ;;
    -j*) jobs=${1#-j} ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; meson_extra+=("$@"); break ;;
    *) echo "hw-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
case "$build_dir" in /*) ;; *) build_dir=$top/$build_dir ;; esac
[ -n "$summary" ] || summary=$build_dir/hw-summary.md
case "$summary" in /*) ;; *) summary=$PWD/$summary ;; esac
logs=$build_dir/hw-logs
mkdir -p "$logs"
steps=$logs/steps.tsv
: >"$steps"
rm -f "$logs"/bench*.json "$logs"/suite-*.json
start=$SECONDS
failures=0
ncpu=$(nproc 2>/dev/null || echo 1)

say() { printf '[hw-check] %s\n' "$*"; }
# record STEP RESULT DETAIL: one row of the summary's step table (RESULT: pass, fail or skip).
record() {
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$steps"
    [ "$2" != fail ] || failures=$((failures + 1))
    say "$1: $2${3:+ ($3)}"
}

# ---- machine ---------------------------------------------------------------------------------
cpu_brand=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1 || true)
sockets=$(lscpu 2>/dev/null | sed -n 's/^Socket(s):[[:space:]]*//p' | head -n1 || true)
cores_per=$(lscpu 2>/dev/null | sed -n 's/^Core(s) per socket:[[:space:]]*//p' | head -n1 || true)
cores="?"
[ -n "$sockets" ] && [ -n "$cores_per" ] && cores=$((sockets * cores_per))
mem_gib=$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
{
    echo "mode=$([ $quick = 1 ] && echo quick || echo full)"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "host=$(uname -n)"
    echo "cpu=${cpu_brand:-unknown}"
    echo "cores=$cores"
    echo "threads=$ncpu"
    echo "mem_gib=$mem_gib"
    echo "kernel=$(uname -sr)"
    echo "commit=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)"
    echo "meson=$(meson --version 2>/dev/null || echo missing)"
} >"$logs/machine.env"
say "$(sed -n 's/^cpu=//p' "$logs/machine.env"), $cores cores / $ncpu threads, $(uname -r)"

# ---- build -----------------------------------------------------------------------------------
# A release tree with the benchmark. The emulated families only slow the suite down here (they
# are checked by tools/test-all.sh), so they are turned off where the option allows it.
setup_args=(-Dbuildtype=release -Dbench=enabled)
if grep -Eq "option\('emulators', *type: *'feature'" meson_options.txt 2>/dev/null; then
    setup_args+=(-Demulators=disabled)
fi
setup_args+=("${meson_extra[@]}")
t0=$SECONDS
build_ok=1
if [ -f "$build_dir/build.ninja" ]; then
    meson setup --reconfigure "$build_dir" "${setup_args[@]}" >"$logs/build.log" 2>&1 || build_ok=0
else
    meson setup "$build_dir" "${setup_args[@]}" >"$logs/build.log" 2>&1 || build_ok=0
fi
if [ $build_ok = 1 ]; then
    meson compile -C "$build_dir" -j "$jobs" >>"$logs/build.log" 2>&1 || build_ok=0
fi
compiler=$(sed -n 's/^C compiler for the host machine: //p' "$build_dir/meson-logs/meson-log.txt" \
    2>/dev/null | tail -n1 || true)
echo "compiler=${compiler:-$(cc --version 2>/dev/null | head -n1)}" >>"$logs/machine.env"
if [ $build_ok = 1 ]; then
    record build pass "meson setup ${setup_args[*]}; $((SECONDS - t0)) s"
else
    tail -n 30 "$logs/build.log" >&2
    record build fail "see $logs/build.log"
fi

# ---- amxq-info and the runnable families -----------------------------------------------------
families=()
amx_line="AMX: not checked (no build)"
if [ $build_ok = 1 ]; then
    echo
    "$build_dir/tools/amxq-info" | tee "$logs/amxq-info.txt" || true
    echo
    # "Kernel families (amxq_isa_check)" lists one "  NAME  runs" line for each family that runs.
    for f in scalar avx512 amx; do
        if grep -Eq "^ +$f +runs$" "$logs/amxq-info.txt"; then families+=("$f"); fi
    done
    amx_line=$(grep -m1 '^AMX:' "$logs/amxq-info.txt" || echo "AMX: (amxq-info printed no AMX line)")
    if [ ${#families[@]} -gt 0 ]; then
        record amxq-info pass "families that run: ${families[*]}; $amx_line"
    else
        record amxq-info fail "no kernel family reported as running"
        families=(scalar)
    fi
fi
echo "amx=$amx_line" >>"$logs/machine.env"
echo "families=${families[*]:-}" >>"$logs/machine.env"
has() { local f; for f in "${families[@]}"; do [ "$f" = "$1" ] && return 0; done; return 1; }
for f in avx512 amx; do
    has "$f" || [ $build_ok = 0 ] || record "family $f" skip "not runnable here: see amxq-info"
done

# ---- checkasm, per family ------------------------------------------------------------------
if [ $build_ok = 1 ]; then
    for f in "${families[@]}"; do
        rc=0
        "$build_dir/tests/checkasm/checkasm" --isa "$f" >"$logs/checkasm-$f.log" 2>&1 || rc=$?
        counts=$(grep -E "^ +$f +[0-9]+ checks" "$logs/checkasm-$f.log" | sed -E 's/^ +//; s/ +/ /g' |
            cut -d' ' -f2-5 | tr -d ',' | head -n1 || true)
        case $rc in
        0) record "checkasm --isa $f" pass "${counts:-all passed}" ;;
        77) record "checkasm --isa $f" skip "$(tail -n1 "$logs/checkasm-$f.log" | sed 's/^checkasm: //')" ;;
        *) record "checkasm --isa $f" fail "exit $rc; ${counts:+$counts; }see $logs/checkasm-$f.log" ;;
        esac
    done
fi

# ---- the suite, per family (quick: the best family only) -------------------------------------
# The bench suite is left out: the benchmark below runs the harness for real.
suite_families=("${families[@]}")
if [ $quick = 1 ]; then suite_families=("${families[${#families[@]} - 1]}"); fi
if [ $build_ok = 1 ]; then
    for f in "${suite_families[@]}"; do
        rc=0
        AMXQ_ISA=$f meson test -C "$build_dir" --no-rebuild --no-suite bench \
            --num-processes "$jobs" --print-errorlogs >"$logs/suite-$f.log" 2>&1 || rc=$?
        cp "$build_dir/meson-logs/testlog.json" "$logs/suite-$f.json" 2>/dev/null || true
        counts=$(python3 - "$logs/suite-$f.json" <<'EOF'
import json, sys, collections
c = collections.Counter()
try:
    for line in open(sys.argv[1]):
        if line.strip():
            c[json.loads(line)["result"]] += 1
except OSError:
    pass
ok = c["OK"] + c["EXPECTEDFAIL"]
bad = c["FAIL"] + c["TIMEOUT"] + c["UNEXPECTEDPASS"] + c["ERROR"]
print(f"{ok} passed, {bad} failed, {c['SKIP']} skipped")
EOF
        )
        if [ $rc = 0 ]; then
            record "suite AMXQ_ISA=$f" pass "$counts"
        else
            record "suite AMXQ_ISA=$f" fail "$counts; see $logs/suite-$f.log"
        fi
    done
    if [ $quick = 1 ]; then
        for f in "${families[@]}"; do
            [ "$f" = "${suite_families[0]}" ] || record "suite AMXQ_ISA=$f" skip "--quick: suite for ${suite_families[0]} only"
        done
    fi
fi

# ---- golden files, per family ----------------------------------------------------------------
# test_golden checks every runnable family on each file; with AMXQ_ISA=f its "default" column
# (amxq_matmul, the process-wide choice) runs f too.
if [ $build_ok = 1 ]; then
    for f in "${families[@]}"; do
        rc=0
        AMXQ_ISA=$f AMXQ_TEST_DATA=$top/tests/data "$build_dir/tests/test_golden" \
            >"$logs/golden-$f.log" 2>&1 || rc=$?
        n_ok=$(grep -Ec "^ +($f|default) +L2-rel .* ok" "$logs/golden-$f.log" || true)
        n_bad=$(grep -Ec "^ +($f|default) +L2-rel .*FAIL" "$logs/golden-$f.log" || true)
        files=$(grep -Eo '^[0-9]+ golden files' "$logs/golden-$f.log" | head -n1 || true)
        worst=$(grep -E "^ +$f +L2-rel" "$logs/golden-$f.log" | awk '{print $3}' | sort -g | tail -n1 || true)
        detail="${files:-? golden files}: $n_ok products ok, $n_bad failed (own and default column), worst L2-rel ${worst:-?}"
        case $rc in
        0) record "golden AMXQ_ISA=$f" pass "$detail" ;;
        77) record "golden AMXQ_ISA=$f" skip "$(tail -n1 "$logs/golden-$f.log")" ;;
        *) record "golden AMXQ_ISA=$f" fail "exit $rc; $detail; see $logs/golden-$f.log" ;;
        esac
    done
fi

# ---- benchmark -------------------------------------------------------------------------------
# Google Benchmark 1.7 reads --benchmark_min_time as plain seconds (1.8 too). The M = 1 cases are
# cold (weights rotated beyond the LLC, bench/README.md); threads: 1 and every CPU.
bench=$build_dir/bench/amxq_bench
# --quick also takes the LLC as 32 MiB: the cold rotation and the memory probe then stay small
# (four times a big LLC is gigabytes to copy and read), at the price of M = 1 figures that a big
# cache may flatter. Quick numbers show that the harness runs; the full run gives the figures.
bench_extra=()
if [ $quick = 1 ]; then
    bench_m=1,32 min_time=0.01
    bench_extra=(--amxq_llc_mib=32)
else
    bench_m=1,32,128,512 min_time=0.1
fi
threads=1
[ "$ncpu" -gt 1 ] && threads=1,$ncpu
bench_isas=()
for f in amx avx512; do has "$f" && bench_isas+=("$f"); done
if [ $build_ok = 1 ] && [ ! -x "$bench" ]; then
    record bench fail "$bench was not built (Google Benchmark missing?)"
elif [ $build_ok = 1 ]; then
    t0=$SECONDS
    rc=0
    if [ ${#bench_isas[@]} -gt 0 ]; then
        isa_list=$(IFS=,; echo "${bench_isas[*]}")
        "$bench" --benchmark_filter='^matmul/' --amxq_shapes=4096x4096 --amxq_m="$bench_m" \
            --amxq_isa="$isa_list" --amxq_threads="$threads" --benchmark_min_time="$min_time" \
            "${bench_extra[@]}" \
            --benchmark_out="$logs/bench.json" --benchmark_out_format=json \
            >"$logs/bench.log" 2>&1 || rc=$?
    fi
    # The portable reference at one M, for the AVX-512 / scalar ratio (one iteration is enough:
    # about a second a product at M = 32).
    if [ $rc = 0 ]; then
        "$bench" --benchmark_filter='^matmul/' --amxq_shapes=4096x4096 --amxq_m=32 \
            --amxq_isa=scalar --amxq_threads=1 --amxq_probes=0 --benchmark_min_time=0.01 \
            --benchmark_out="$logs/bench-scalar.json" --benchmark_out_format=json \
            >"$logs/bench-scalar.log" 2>&1 || rc=$?
    fi
    ncases=$(cat "$logs"/bench*.json 2>/dev/null | grep -c '"run_type": "iteration"' || true)
    if [ $rc = 0 ]; then
        record bench pass "$ncases cases (${bench_isas[*]:-} scalar), M=$bench_m, T=$threads, min_time $min_time s; $((SECONDS - t0)) s"
    else
        record bench fail "exit $rc; see $logs/bench.log"
    fi
fi

# ---- summary ---------------------------------------------------------------------------------
echo "elapsed_s=$((SECONDS - start))" >>"$logs/machine.env"
python3 - "$logs" "$summary" <<'EOF'
import json, os, sys

logs, out = sys.argv[1], sys.argv[2]
env = {}
for line in open(os.path.join(logs, "machine.env")):
    k, _, v = line.rstrip("\n").partition("=")
    env[k] = v
steps = [l.rstrip("\n").split("\t") for l in open(os.path.join(logs, "steps.tsv")) if l.strip()]

def load(name):
    try:
        with open(os.path.join(logs, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

runs, ctx = {}, {}
for name in ("bench.json", "bench-scalar.json"):
    d = load(name)
    if not d:
        continue
    if name == "bench.json":
        ctx = d.get("context", {})
    for b in d.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration" or "error_message" in b:
            continue
        # matmul/<TYPE>/<isa>/M:<m>/N:<n>/K:<k>/T:<t>/<hot|cold>/real_time
        p = b["name"].split("/")
        if len(p) < 8 or p[0] != "matmul":
            continue
        key = (p[1], p[2], int(p[3][2:]), int(p[6][2:]))
        runs[key] = b

# Every type the harness ran, in its usual order first (the harness may gain types).
order = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"]
types = [t for t in order if any(k[0] == t for k in runs)]
types += sorted({k[0] for k in runs} - set(order))
ms = sorted({k[2] for k in runs if k[1] != "scalar"})
ts = sorted({k[3] for k in runs if k[1] != "scalar"})

def noprefix(s, p):
    return s[len(p):] if s.startswith(p) else s

def num(v, d=2):
    return "–" if v is None else f"{v:.{d}f}"

def get(t, isa, m, th, c):
    b = runs.get((t, isa, m, th))
    return None if b is None else b.get(c)

def ratio(a, b):
    return None if a is None or not b else a / b

L = []
L.append("# amxq hardware check")
L.append("")
L.append(f"`tools/hw-check.sh` ({env.get('mode')} mode), {env.get('date')}, commit "
         f"`{env.get('commit')}`, {env.get('elapsed_s')} s in all.")
L.append("")
L.append("## Machine")
L.append("")
L.append("| | |")
L.append("| --- | --- |")
L.append(f"| CPU | {env.get('cpu')} |")
L.append(f"| cores / hardware threads | {env.get('cores')} / {env.get('threads')} |")
L.append(f"| memory | {env.get('mem_gib')} GiB |")
L.append(f"| kernel | {env.get('kernel')} |")
L.append(f"| compiler | {env.get('compiler')} |")
L.append(f"| meson | {env.get('meson')} |")
L.append(f"| kernel families that run | {env.get('families') or '–'} |")
L.append(f"| AMX | {noprefix(env.get('amx', '?'), 'AMX: ')} |")
L.append("")
L.append("## Steps")
L.append("")
L.append("| step | result | detail |")
L.append("| --- | --- | --- |")
for s in steps:
    s += [""] * (3 - len(s))
    L.append(f"| {s[0]} | **{s[1]}** | {s[2].replace('|', '/')} |")
npass = sum(s[1] == "pass" for s in steps)
nfail = sum(s[1] == "fail" for s in steps)
nskip = sum(s[1] == "skip" for s in steps)
L.append("")
L.append(f"{npass} passed, {nfail} failed, {nskip} skipped.")
L.append("")

if runs:
    L.append("## Benchmark")
    L.append("")
    L.append("N = K = 4096, wall-clock; M = 1 with cold weights (rotated beyond the LLC). "
             "Probes (bench/README.md):")
    L.append("")
    for k, label in [("amxq_peak_vnni_TOPS_1core", "AVX-512 VNNI probe, TOPS a core"),
                     ("amxq_peak_amx_TOPS_1core", "AMX probe, K = 32 tiles, TOPS a core"),
                     ("amxq_peak_amx_K64_TOPS_1core", "AMX probe, K = 64 tiles, TOPS a core"),
                     ("amxq_llc_MiB", "last-level cache, MiB")]:
        if k in ctx:
            L.append(f"- {label}: {ctx[k]}")
    mem = {}
    for k, v in ctx.items():
        if k.startswith("amxq_peak_mem_GBps_"):
            n = int("".join(ch for ch in k[len("amxq_peak_mem_GBps_"):] if ch.isdigit()))
            try:
                mem[n] = float(v)
            except ValueError:
                pass
            L.append(f"- streaming read, {n} thread(s): {v} GB/s")
    L.append("")

    if any(k[1] == "amx" for k in runs):
        L.append("### AMX / AVX-512 (time ratio: > 1 means AMX is faster)")
        L.append("")
        L.append("| type | T | " + " | ".join(f"M={m}" for m in ms) + " |")
        L.append("| --- | --- | " + " | ".join("---" for _ in ms) + " |")
        for t in types:
            for th in ts:
                cells = [num(ratio(get(t, "avx512", m, th, "real_time"),
                                   get(t, "amx", m, th, "real_time"))) for m in ms]
                L.append(f"| {t} | {th} | " + " | ".join(cells) + " |")
        L.append("")
    else:
        L.append(f"### AMX / AVX-512: not measured, AMX does not run here "
                 f"({noprefix(env.get('amx', '?'), 'AMX: ')})")
        L.append("")

    base = "avx512" if any(k[1] == "avx512" for k in runs) else None
    if base and any(k[1] == "scalar" for k in runs):
        L.append("### AVX-512 / scalar at M = 32, one thread (time ratio)")
        L.append("")
        L.append("| type | scalar ms | avx512 ms | avx512 / scalar |")
        L.append("| --- | --- | --- | --- |")
        for t in types:
            s, v = get(t, "scalar", 32, 1, "real_time"), get(t, "avx512", 32, 1, "real_time")
            L.append(f"| {t} | {num(s, 1)} | {num(v, 3)} | {num(ratio(s, v), 0)}× |")
        L.append("")

    if 1 in ms:
        L.append("### M = 1: weight GB/s against the streaming-read probe")
        L.append("")
        L.append("| type | ISA | T | GB/s | probe GB/s | % of probe |")
        L.append("| --- | --- | --- | --- | --- | --- |")
        for t in types:
            for isa in ("amx", "avx512"):
                for th in ts:
                    g = get(t, isa, 1, th, "GBps")
                    if g is None:
                        continue
                    p = mem.get(th)
                    L.append(f"| {t} | {isa} | {th} | {num(g)} | {num(p)} | "
                             f"{num(None if not p else 100 * g / p, 0)} |")
        L.append("")

    L.append("### Every case")
    L.append("")
    # CPU time (of the calling thread: Google Benchmark's) beside wall-clock: on a shared machine
    # the gap at T = 1 shows how much the wall-clock rates are diluted.
    L.append("| type | ISA | M | T | ms | caller CPU ms | TOPS | GB/s | % roof | kernel |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for k in sorted(runs, key=lambda k: (types.index(k[0]), k[1], k[2], k[3])):
        b = runs[k]
        L.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {num(b.get('real_time'), 3)} | "
                 f"{num(b.get('cpu_time'), 3)} | "
                 f"{num(b.get('TOPS'), 3)} | {num(b.get('GBps'))} | {num(b.get('pct_roof'), 0)} | "
                 f"{b.get('label', '').split(' ')[0]} |")
    L.append("")
    if env.get("mode") == "quick":
        L.append("Quick mode: tiny runs and a 32 MiB cache assumed for the cold rotation; these "
                 "figures show that the harness runs, not how fast this machine is.")
    else:
        L.append("One short run: on a shared or throttled machine repeat it before trusting a "
                 "ratio.")
    L.append("")

info = os.path.join(logs, "amxq-info.txt")
if os.path.exists(info):
    L.append("<details><summary>amxq-info</summary>")
    L.append("")
    L.append("```")
    L.extend(l.rstrip("\n") for l in open(info))
    L.append("```")
    L.append("")
    L.append("</details>")
    L.append("")
L.append(f"Logs: `{logs}`.")
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
with open(out, "w") as f:
    f.write("\n".join(L) + "\n")
EOF

say "$(cut -f2 "$steps" | grep -c '^pass$' || true) passed, $failures failed," \
    "$(cut -f2 "$steps" | grep -c '^skip$' || true) skipped; $((SECONDS - start)) s"
say "summary: $summary"
[ $failures = 0 ]
