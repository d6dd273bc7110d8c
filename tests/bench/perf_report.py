#!/usr/bin/env python3
"""berth's performance report: runs the benchmarks, keeps their JSON, draws the chart.

    cmake --build build --target performance_report        # the one command (builds the benchmarks first)
    python3 tests/bench/perf_report.py [--build-dir build] [--min-time 0.5] [--bench bench_orchestrator ...]
    python3 tests/bench/perf_report.py --from-json build/perf   # redraw from an earlier run's JSON

Each bench_* executable runs with Google Benchmark's JSON output (--benchmark_out); the `ratio` and
`info` lines berth's benchmarks print last (tests/bench/bench_support.hpp) are added to the same
JSON file under "berth_ratios", so one file per benchmark holds everything the report shows.
Then, from those files only:

- the chart (SVG, matplotlib): left, every ratio against its target (the floor measured in the same
  run is 1); right, berth's absolute time per operation beside its floor and upstream's figure;
- two Markdown tables on stdout, the ones docs/performance.md quotes.

Needs python3 and python3-matplotlib (Debian packages); nothing else.
"""

import argparse
import json
import os
import re
import subprocess
import sys

# berth's row, its floor (measured in the same run), and upstream's figure for the same operation:
# a number of milliseconds (measured on this machine kind, quoted in the doc named), or the name
# of a benchmark of the same run that does what upstream does. None: upstream has no equivalent.
ABSOLUTE_ROWS = [
    ("lease pair, SQLite (NORMAL)", "bench_sqlite_store", "berth_lease_pair/normal", "raw_pair/normal",
     2.1, "upstream on PostgreSQL ≈2.1 ms (docs/stores.md)"),
    ("orchestrator pair, SQLite (NORMAL)", "bench_sqlite_store", "orchestrator_pair/normal", "raw_pair/normal",
     9.25, "upstream 8.5–10 ms (docs/stores.md)"),
    ("orchestrator pair, memory store", "bench_orchestrator", "orchestrator_pair", "store_pair",
     9.25, "upstream 8.5–10 ms, with its database"),
    ("local execute of /bin/true", "bench_local_execute", "local_execute_true", "raw_posix_spawn_true",
     None, "not measured upstream"),
    ("service cold start + readiness", "bench_services", "berth_cold_start", "raw_spawn_floor",
     25.0, "upstream ≈25 ms (docs/services.md)"),
    ("service reuse hit", "bench_services", "reuse_hit", None, None, ""),
    ("worktree create", "bench_worktree", "berth_create", "raw_add", 336.0, "upstream ≈336 ms (docs/workspaces.md)"),
    ("worktree reuse", "bench_worktree", "berth_reuse", "raw_add", 268.0, "upstream ≈268 ms (docs/workspaces.md)"),
    ("SSH execute, warm session", "bench_ssh_execute", "berth_ssh_execute_true", "raw_libssh_exec_true",
     "openssh_fresh_ssh_true", "upstream runs a fresh ssh per command: measured in the same run"),
]

RATIO_LINE = re.compile(r"^(ratio|info) (\S+) = (n/a|[-0-9.eE+]+)(?: \(target <= ([-0-9.eE+]+)\))?")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def run_benchmarks(build_dir, out_dir, names, min_time):
    bench_dir = os.path.join(build_dir, "tests", "bench")
    if not names:
        names = sorted(n for n in os.listdir(bench_dir)
                       if n.startswith("bench_") and os.access(os.path.join(bench_dir, n), os.X_OK)
                       and not os.path.isdir(os.path.join(bench_dir, n)))
    if not names:
        sys.exit(f"perf_report: no bench_* executable in {bench_dir}: build them first "
                 "(cmake --build build --target performance_report does)")
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        out = os.path.join(out_dir, name + ".json")
        cmd = [os.path.join(bench_dir, name), f"--benchmark_out={out}", "--benchmark_out_format=json",
               f"--benchmark_min_time={min_time}", "--benchmark_color=false"]
        print(f"perf_report: {' '.join(cmd)}", file=sys.stderr, flush=True)
        run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=sys.stderr, text=True, stdin=subprocess.DEVNULL)
        sys.stderr.write(run.stdout)
        if not os.path.exists(out):
            print(f"perf_report: {name} wrote no JSON (exit {run.returncode}); left out", file=sys.stderr)
            continue
        with open(out) as f:
            doc = json.load(f)
        doc["berth_ratios"] = parse_ratio_lines(run.stdout)
        doc["berth_exit_code"] = run.returncode
        with open(out, "w") as f:
            json.dump(doc, f, indent=1)


def parse_ratio_lines(text):
    ratios = []
    for line in text.splitlines():
        m = RATIO_LINE.match(ANSI.sub("", line).strip())
        if m:
            kind, metric, value, target = m.groups()
            ratios.append({"kind": kind, "metric": metric,
                           "value": None if value == "n/a" else float(value),
                           "target": None if target is None else float(target)})
    return ratios


def load(out_dir):
    docs = {}
    for entry in sorted(os.listdir(out_dir)):
        if entry.startswith("bench_") and entry.endswith(".json"):
            with open(os.path.join(out_dir, entry)) as f:
                docs[entry[:-5]] = json.load(f)
    if not docs:
        sys.exit(f"perf_report: no bench_*.json in {out_dir}")
    return docs


def time_ms(doc, name):
    """The median real time per iteration of the benchmark `name` (or `name/...`), in ms."""
    if doc is None or name is None:
        return None
    times = [b["real_time"] * TO_MS[b.get("time_unit", "ns")] for b in doc.get("benchmarks", [])
             if b.get("run_type", "iteration") == "iteration" and not b.get("error_occurred")
             and (b["name"] == name or b["name"].startswith(name + "/"))]
    if not times:
        return None
    times.sort()
    n = len(times)
    return times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2


def absolute_rows(docs):
    rows = []
    for label, bench, berth, floor, upstream, note in ABSOLUTE_ROWS:
        doc = docs.get(bench)
        b = time_ms(doc, berth)
        if b is None:
            continue
        up = time_ms(doc, upstream) if isinstance(upstream, str) else upstream
        rows.append({"label": label, "bench": bench, "berth": b, "floor": time_ms(doc, floor), "upstream": up,
                     "note": note})
    return rows


def ratio_rows(docs):
    return [dict(r, bench=bench) for bench, doc in docs.items() for r in doc.get("berth_ratios", [])
            if r["kind"] == "ratio" and r["value"] is not None and r["target"] is not None]


def fmt_ms(v):
    if v is None:
        return "—"
    if v < 0.1:
        return f"{v * 1000:.1f} µs"
    if v < 100:
        return f"{v:.2f} ms"
    return f"{v:.0f} ms"


def print_tables(docs):
    print("| benchmark | ratio | value | target | |")
    print("|---|---|---|---|---|")
    for r in ratio_rows(docs):
        ok = "met" if r["value"] <= r["target"] else "**over**"
        print(f"| {r['bench']} | `{r['metric']}` | {r['value']:.3f} | ≤ {r['target']:g} | {ok} |")
    print()
    print("| operation | berth | floor | upstream | |")
    print("|---|---|---|---|---|")
    for r in absolute_rows(docs):
        print(f"| {r['label']} | {fmt_ms(r['berth'])} | {fmt_ms(r['floor'])} | {fmt_ms(r['upstream'])} | {r['note']} |")


def draw(docs, chart):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = ratio_rows(docs)
    absolute = absolute_rows(docs)
    height = max(4.0, 0.32 * max(len(ratios), 3 * len(absolute)) + 1.5)
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, height), gridspec_kw={"width_ratios": [1, 1.1]})

    # A metric with a unit suffix compares an absolute time with an absolute target, not a ratio.
    labels = [r["metric"] + (" (absolute)" if re.search(r"_(us|ms|s)$", r["metric"]) else "") for r in ratios]
    ys = range(len(ratios))
    colors = ["#3a7d44" if r["value"] <= r["target"] else "#d9822b" for r in ratios]
    left.barh(list(ys), [r["value"] for r in ratios], color=colors)
    left.scatter([r["target"] for r in ratios], list(ys), marker="|", s=300, color="black", label="target", zorder=3)
    left.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
    left.set_yticks(list(ys))
    left.set_yticklabels(labels, fontsize=8)
    left.invert_yaxis()
    left.set_xscale("log")
    left.set_xlabel("berth / floor measured in the same run (log; green: within target)")
    left.set_title("ratio lines")
    left.legend(loc="lower right", fontsize=8)

    width = 0.27
    ys = range(len(absolute))
    for i, (key, color, name) in enumerate([("berth", "#2d6cdf", "berth"), ("floor", "#9aa5b1", "floor"),
                                            ("upstream", "#c0392b", "upstream")]):
        vals = [r[key] if r[key] is not None else 0 for r in absolute]
        right.barh([y + (i - 1) * width for y in ys], vals, height=width, color=color, label=name)
    right.set_yticks(list(ys))
    right.set_yticklabels([r["label"] for r in absolute], fontsize=8)
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlabel("milliseconds per operation (log)")
    right.set_title("berth, its floor and upstream")
    right.legend(loc="lower right", fontsize=8)

    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(chart)), exist_ok=True)
    fig.savefig(chart, format="svg" if chart.endswith(".svg") else None)
    print(f"perf_report: wrote {chart}", file=sys.stderr)


def ensure_matplotlib():
    """Debian's python3-matplotlib is for Debian's python3: another python3 first on PATH (pyenv,
    a venv) does not see it, so re-run under /usr/bin/python3 when that one has it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        debian = "/usr/bin/python3"
        if os.path.realpath(sys.executable) != os.path.realpath(debian) and os.path.exists(debian):
            os.execv(debian, [debian] + sys.argv)
        sys.exit("perf_report: matplotlib is missing: apt-get install python3-matplotlib")


def main():
    ensure_matplotlib()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default="build")
    p.add_argument("--out-dir", help="where the JSON files go (default: BUILD_DIR/perf)")
    p.add_argument("--min-time", default="0.5", help="--benchmark_min_time of each run (seconds)")
    p.add_argument("--bench", action="append", default=[], help="run only this bench_* executable (repeatable)")
    p.add_argument("--from-json", metavar="DIR", help="do not run anything: report on DIR's bench_*.json")
    p.add_argument("--chart", default="docs/performance.svg")
    a = p.parse_args()
    out_dir = a.from_json or a.out_dir or os.path.join(a.build_dir, "perf")
    if not a.from_json:
        run_benchmarks(a.build_dir, out_dir, a.bench, a.min_time)
    docs = load(out_dir)
    print_tables(docs)
    draw(docs, a.chart)


if __name__ == "__main__":
    main()
