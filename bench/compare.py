#!/usr/bin/env python3
"""compare.py - ratios between two Google Benchmark JSON files of amxq_bench (standard library only).

    bench/compare.py OLD.json NEW.json [--filter REGEX] [--counters TOPS,GBps] [--sort time]

For every case present in both files it prints the old and new time and NEW/OLD for the time and
for each counter (TOPS, GBps, pct_*, ...). Time ratios below 1 and counter ratios above 1 mean
NEW is faster. A case repeated in one file (--benchmark_repetitions without aggregates) is
represented by its median-time repetition; aggregate rows (_mean, _median, _stddev, _cv) are compared as separate cases. At the end
it prints the geometric mean of each ratio over the common cases and lists cases only one file has.
Exit status: 0, or 2 for unreadable input.
"""

import argparse
import json
import math
import re
import sys

TIME_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# Fields of a Google Benchmark row that are not user counters.
NOT_COUNTERS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit", "label",
    "aggregate_name", "aggregate_unit", "error_occurred", "error_message",
}


def load(path):
    """{case name: {"time_ns": float, counter: float, ...}}, names in file order.

    A name repeated in one file (--benchmark_repetitions without aggregates) is represented by its
    median-time row (the lower middle for an even count), whole: averaging times and rates
    separately would let a noisy run make them disagree."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"compare.py: cannot read {path}: {e}", file=sys.stderr)
        sys.exit(2)
    rows, order = {}, []
    for row in doc.get("benchmarks", []):
        if row.get("error_occurred"):
            continue
        name = row["name"]
        vals = {}
        if row.get("aggregate_unit", "time") == "time" and "real_time" in row:
            vals["time_ns"] = row["real_time"] * TIME_NS.get(row.get("time_unit", "ns"), 1.0)
        for key, v in row.items():
            if key not in NOT_COUNTERS and isinstance(v, (int, float)):
                vals[key] = float(v)
        if name not in rows:
            rows[name] = []
            order.append(name)
        rows[name].append(vals)
    cases = {}
    for name in order:
        runs = sorted(rows[name], key=lambda v: v.get("time_ns", 0.0))
        cases[name] = runs[(len(runs) - 1) // 2]
    return cases, order


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.1f} ns"


def ratio(new, old):
    if old is None or new is None or old == 0:
        return None
    return new / old


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="baseline JSON (--benchmark_out of amxq_bench)")
    ap.add_argument("new", help="JSON to compare against the baseline")
    ap.add_argument("--filter", default="", help="only cases whose name matches this regex")
    ap.add_argument("--counters", default="",
                    help="comma-separated counters to show (default: every counter found)")
    ap.add_argument("--sort", choices=["name", "time"], default="name",
                    help="order: as in OLD (name) or by time ratio, worst first (time)")
    args = ap.parse_args()

    old, old_order = load(args.old)
    new, _ = load(args.new)
    pat = re.compile(args.filter) if args.filter else None
    common = [n for n in old_order if n in new and (pat is None or pat.search(n))]

    if args.counters:
        counters = [c for c in args.counters.split(",") if c]
    else:
        seen = []
        for n in common:
            for k in list(old[n]) + list(new[n]):
                if k != "time_ns" and k not in seen:
                    seen.append(k)
        counters = seen

    rows = []
    for n in common:
        o, w = old[n], new[n]
        r = [ratio(w.get("time_ns"), o.get("time_ns"))]
        r += [ratio(w.get(c), o.get(c)) for c in counters]
        rows.append((n, o.get("time_ns"), w.get("time_ns"), r))
    if args.sort == "time":
        rows.sort(key=lambda x: -(x[3][0] or 0.0))

    name_w = max([len("case")] + [len(r[0]) for r in rows])
    heads = ["old time", "new time", "time"] + counters
    widths = [max(11, len(h)) for h in heads]
    print("NEW/OLD ratios: time < 1 is faster; counters > 1 are better.")
    print(f"{'case':<{name_w}}  " + "  ".join(f"{h:>{w}}" for h, w in zip(heads, widths)))
    for n, ot, nt, r in rows:
        cells = [fmt_time(ot) if ot is not None else "-", fmt_time(nt) if nt is not None else "-"]
        cells += [f"{x:.3f}" if x is not None else "-" for x in r]
        print(f"{n:<{name_w}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))

    # Geometric means over the cases where both sides have the value.
    gm = []
    for i in range(1 + len(counters)):
        vals = [r[3][i] for r in rows if r[3][i] is not None and r[3][i] > 0]
        gm.append(math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else None)
    cells = ["", ""] + [f"{x:.3f}" if x is not None else "-" for x in gm]
    print(f"{'geometric mean (' + str(len(rows)) + ' cases)':<{name_w}}  "
          + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))

    only_old = [n for n in old_order if n not in new and (pat is None or pat.search(n))]
    only_new = [n for n in new if n not in old and (pat is None or pat.search(n))]
    for label, names in (("only in OLD", only_old), ("only in NEW", only_new)):
        if names:
            print(f"{label} ({len(names)}): " + ", ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
