#!/usr/bin/env python3
"""perf_table.py - markdown tables for docs/performance.md from amxq_bench JSON (standard library).

    bench/perf_table.py RUN.json [--shape 4096x4096] [--m 1,8,32,128,512] [--title TEXT]
                        [--note TEXT] [--update docs/performance.md --marker NAME]

Reads the matmul rows of one Google Benchmark JSON file written by amxq_bench (--benchmark_out)
and prints, per weight type, a table of wall and CPU time, int8 TOPS, weight GB/s and percent of the compute,
memory and combined rooflines for the chosen shape and M values, one row per (ISA, M), preceded by
the machine facts amxq_bench put in the benchmark context (CPU, date, probes). Hot and cold cases
are both shown when present (the case name says which). The pack and quantize families follow in
one table each.

With --update FILE --marker NAME the output replaces what lies between the lines
    <!-- perf_table:NAME begin -->   and   <!-- perf_table:NAME end -->
in FILE (the markers must already be there), so a table can be regenerated in place.
"""

import argparse
import json
import re
import sys

TYPES = ["Q4_0", "Q4_1", "Q8_0", "Q4_K"]
TIME_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
MATMUL = re.compile(r"^matmul/(?P<type>[^/]+)/(?P<isa>[^/]+)/M:(?P<m>\d+)/N:(?P<n>\d+)/K:(?P<k>\d+)"
                    r"(?:/T:(?P<t>\d+))?/(?P<temp>hot|cold)")
PACK = re.compile(r"^pack/(?P<type>[^/]+)/N:(?P<n>\d+)/K:(?P<k>\d+)")
QUANT = re.compile(r"^quantize/(?P<type>[^/]+)/M:(?P<m>\d+)/K:(?P<k>\d+)")


def num(v, digits=3):
    """A number with `digits` significant digits, without exponent notation for the usual ranges."""
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits:
        return f"{v:.0f}"
    s = f"{v:.{digits}g}"
    if "e" in s:
        s = f"{v:.{digits + 3}f}".rstrip("0").rstrip(".")
    return s


def time_ms(row, key="real_time"):
    """Wall-clock (or CPU, with key="cpu_time") time of one iteration in milliseconds."""
    return row[key] * TIME_MS.get(row.get("time_unit", "ns"), 1.0)


def context_lines(ctx):
    keys = [
        ("CPU", "amxq_cpu"),
        ("kernel families run", "amxq_isas_run"),
        ("families not run", "amxq_isas_skipped"),
        ("kernels", "amxq_kernels"),
        ("last-level cache (MiB)", "amxq_llc_MiB"),
        ("AVX-512 VNNI probe (TOPS, 1 core)", "amxq_peak_vnni_TOPS_1core"),
        ("AMX probe, K = 32 tiles as the kernels (TOPS, 1 core)", "amxq_peak_amx_TOPS_1core"),
        ("AMX probe, K = 64 tiles (TOPS, 1 core)", "amxq_peak_amx_K64_TOPS_1core"),
        ("streaming read, 1 thread (GB/s)", "amxq_peak_mem_GBps_1thread"),
    ]
    out = [f"- run: {ctx.get('date', '?')} on `{ctx.get('host_name', '?')}`, "
           f"{ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz, "
           f"load average {', '.join(num(x, 2) for x in ctx.get('load_avg', []))}"]
    for label, key in keys:
        if key in ctx:
            out.append(f"- {label}: {ctx[key]}")
    for key in sorted(ctx):
        m = re.match(r"amxq_peak_mem_GBps_(\d+)threads$", key)
        if m:
            out.append(f"- streaming read, {m.group(1)} threads (GB/s): {ctx[key]}")
    for key in ("amxq_cold", "amxq_threads"):
        if key in ctx:
            out.append(f"- {key[5:]}: {ctx[key]}")
    return out


def build(doc, shape, ms, title, note):
    n_want, k_want = shape
    rows = [r for r in doc.get("benchmarks", [])
            if r.get("run_type", "iteration") == "iteration" and not r.get("error_occurred")]
    out = []
    if title:
        out += [f"### {title}", ""]
    if note:
        out += [note, ""]
    out += context_lines(doc.get("context", {})) + [""]

    for t in TYPES:
        sel = []
        for r in rows:
            mm = MATMUL.match(r["name"])
            if not mm or mm["type"] != t or int(mm["n"]) != n_want or int(mm["k"]) != k_want:
                continue
            if ms and int(mm["m"]) not in ms:
                continue
            sel.append((mm["isa"], int(mm["t"] or 1), int(mm["m"]), mm["temp"], r))
        if not sel:
            continue
        sel.sort(key=lambda x: (x[0], x[1], x[2], x[3]))
        out += [f"#### {t}, N={n_want}, K={k_want}", "",
                "| ISA | threads | M | weights | time (ms) | CPU time (ms) | TOPS | GB/s | % compute "
                "| % memory | % roofline |",
                "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for isa, thr, m, temp, r in sel:
            out.append(f"| {isa} | {thr} | {m} | {temp} | {num(time_ms(r))} | "
                       f"{num(time_ms(r, 'cpu_time'))} | {num(r.get('TOPS'))} | "
                       f"{num(r.get('GBps'))} | {num(r.get('pct_compute'))} | "
                       f"{num(r.get('pct_mem'))} | {num(r.get('pct_roof'))} |")
        out.append("")

    for label, pat, unit, key in (("Packing", PACK, "GB/s of ggml input", "n"),
                                  ("Activation quantization", QUANT, "GB/s of f32 input", "m")):
        sel = [(pat.match(r["name"]), r) for r in rows if pat.match(r["name"])]
        if not sel:
            continue
        first = "N" if key == "n" else "rows"
        out += [f"#### {label} ({unit})", "",
                f"| type | {first} | K | time (ms) | CPU time (ms) | GB/s |",
                "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for mt, r in sel:
            out.append(f"| {mt['type']} | {mt[key]} | {mt['k']} | {num(time_ms(r))} | "
                       f"{num(time_ms(r, 'cpu_time'))} | {num(r.get('GBps'))} |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def update(path, marker, text):
    begin, end = f"<!-- perf_table:{marker} begin -->", f"<!-- perf_table:{marker} end -->"
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    i, j = doc.find(begin), doc.find(end)
    if i < 0 or j < i:
        print(f"perf_table.py: markers for '{marker}' not found in {path}", file=sys.stderr)
        sys.exit(2)
    doc = doc[:i + len(begin)] + "\n" + text + doc[j:]
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", help="--benchmark_out file of amxq_bench")
    ap.add_argument("--shape", default="4096x4096", help="NxK of the matmul rows to show")
    ap.add_argument("--m", default="1,8,32,128,512", help="M values to show ('' for all)")
    ap.add_argument("--title", default="", help="heading of the section")
    ap.add_argument("--note", default="", help="a paragraph under the heading")
    ap.add_argument("--update", default="", help="file to update in place between markers")
    ap.add_argument("--marker", default="", help="marker name for --update")
    args = ap.parse_args()
    try:
        with open(args.json, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"perf_table.py: cannot read {args.json}: {e}", file=sys.stderr)
        return 2
    n, _, k = args.shape.partition("x")
    ms = [int(x) for x in args.m.split(",") if x]
    text = build(doc, (int(n), int(k)), ms, args.title, args.note)
    if args.update:
        if not args.marker:
            print("perf_table.py: --update needs --marker", file=sys.stderr)
            return 2
        update(args.update, args.marker, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
