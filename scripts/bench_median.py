#!/usr/bin/python3
"""Runs `convkit bench ... --csv` several times and prints, per problem and direction, the medians over the runs.

This machine's timings drift by 10-20% between runs of the same binary (docs/performance.md), more than within the
ten repetitions one `convkit bench` run takes its median of; a row's median over whole runs, each with its own
oneDNN timing in the same process, is what docs/performance.md reports.

Usage: scripts/bench_median.py [--runs N] [--bin PATH] -- BENCH ARGUMENTS (without --csv)
Example:
  scripts/bench_median.py --runs 3 -- --shapes bench/shapes/suite.txt --mb 1 --dir all --vs onednn

Prints a table like convkit bench's: the median ms, GFLOP/s and %peak of convkit, the median oneDNN ms, the median
ratio (oneDNN time / convkit time) and its range over the runs, then per direction the totals weighted by each
layer's *N count (the median over the runs of each run's totals, and each run's convkit total). Exit status:
non-zero, with convkit's message, if any run fails (e.g. a result outside oneDNN's tolerance).
"""
import argparse
import csv
import io
import re
import statistics
import subprocess
import sys


def counts_of(shapes_file):
    """Layer name -> its *N count in a benchdnn descriptor file (1 where none is given)."""
    counts = {}
    with open(shapes_file, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0]
            m = re.search(r'n"([^"]*)"', line)
            if not m:
                continue
            name, _, n = m.group(1).partition("*")
            counts[name] = int(n) if n else 1
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="whole benchmark runs (default 3)")
    ap.add_argument("--bin", default="build/release/convkit", help="the convkit executable")
    ap.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then convkit bench's arguments")
    a = ap.parse_args()
    args = a.bench_args[1:] if a.bench_args[:1] == ["--"] else a.bench_args
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    if "--shapes" not in args:
        ap.error("the bench arguments need --shapes FILE")
    counts = counts_of(args[args.index("--shapes") + 1])

    rows = {}  # (name, dir) -> list of csv dicts, one per run
    totals = []  # per run: dir -> [convkit ms, oneDNN ms]
    for run in range(a.runs):
        p = subprocess.run([a.bin, "bench", *args, "--csv"], capture_output=True, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stderr)
            sys.exit(f"bench_median: run {run + 1} failed with exit status {p.returncode}")
        t = {}
        for r in csv.DictReader(io.StringIO(p.stdout)):
            rows.setdefault((r["name"], r["dir"]), []).append(r)
            n = counts.get(r["name"], 1)
            acc = t.setdefault(r["dir"], [0.0, 0.0])
            acc[0] += n * float(r["ms"])
            acc[1] += n * float(r["onednn_ms"] or "nan")
        totals.append(t)

    med = statistics.median
    onednn = any(r[0]["onednn_ms"] for r in rows.values())
    print(f"{a.runs} runs of: convkit bench {' '.join(args)}; per row the median over the runs")
    head = f"{'name':36s}{'dir':>6s}{'mb':>5s}  {'algorithm':14s}{'ms':>10s}{'GFLOP/s':>10s}{'%peak':>8s}"
    if onednn:
        head += f"{'oneDNN ms':>11s}{'ratio':>8s}  range"
    print(head)
    for (name, d), rs in rows.items():
        ms = med(float(r["ms"]) for r in rs)
        gflops = float(rs[0]["gflops"]) * float(rs[0]["ms"]) / ms
        line = (f"{name:36s}{d:>6s}{rs[0]['mb']:>5s}  {rs[0]['algorithm']:14s}{ms:10.4f}{gflops:10.1f}"
                f"{med(float(r['pct_peak']) for r in rs):8.1f}")
        if onednn:
            ratios = [float(r["ratio"]) for r in rs]
            line += (f"{med(float(r['onednn_ms']) for r in rs):11.4f}{med(ratios):8.2f}  "
                     f"{min(ratios):.2f}-{max(ratios):.2f}")
        print(line)
    print("\ntotal, each layer weighted by its *N count (median over the runs):")
    for d in totals[0]:
        ck = med(t[d][0] for t in totals)
        line = f"  {d:6s} {ck:10.4f} ms"
        if onednn:
            dn = med(t[d][1] for t in totals)
            ratio = med(t[d][1] / t[d][0] for t in totals)
            line += f"   oneDNN {dn:.4f} ms, ratio {ratio:.2f}"
        line += "   (runs: " + ", ".join(f"{t[d][0]:.4f}" for t in totals) + " ms)"
        print(line)


if __name__ == "__main__":
    main()
