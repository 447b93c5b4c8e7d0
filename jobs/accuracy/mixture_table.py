#!/usr/bin/env python3
"""Tabulate the convergence-to-a-mixture study of jobs/accuracy/mixture_runs.sh.

    mixture_table.py OUT [--t 4]

For every wgf run folder OUT/wgf_d<D>_s<SEED><TAG> (TAG e.g. _w64: a narrower network) with a
checkpoint at time t, the SymKL to the stationary mixture at t (the /history row of that step),
the wall time of the run (the 'wall' lines of its .log, summed over continuations) and the mean
training iterations per second (the 'done:' lines); beside it the Euler-Maruyama baseline
OUT/em_d<D>_s<SEED>.h5 on the same mixture (checked: the same /problem/centers), its SymKL and
wall time. Per D and TAG: the mean and standard error over the seeds, and the paper's figures
(../shared/reference/paper_results.md: ICNN JKO and EM 50000 at t = 4).
"""

import argparse
import glob
import math
import os
import re

import h5py
import numpy as np

PAPER = {2: (0.062, 0.077), 4: (0.176, 0.440), 6: (0.301, 1.505), 8: (0.396, 3.445), 10: (0.329, 5.584), 12: (0.509, 10.240)}
RUN = re.compile(r"wgf_d(\d+)_s(\d+)(.*)$")


def attr_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def symkl_at(path, t):
    with h5py.File(path, "r") as f:
        h = f["history"][()]
        cols = attr_str(f["history"].attrs["columns"]).split(",")
        centers = f["problem/centers"][()]
    rows = np.where(np.isclose(h[:, cols.index("t")], t))[0]
    return (float(h[rows[0], cols.index("symkl")]) if len(rows) else float("nan")), centers


def log_figures(path):
    """(wall seconds summed over the 'wall N s' lines, mean it/s of the 'done:' lines)."""
    wall, rates = 0.0, []
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            m = re.match(r"wall (\d+) s", line) or re.match(r"([0-9.]+) s wall", line)  # or /usr/bin/time -f "%e s wall"
            if m:
                wall += float(m.group(1))
            m = re.search(r"done: (\d+) steps.* ([0-9.]+) training iterations per second", line)
            if m:
                rates += [float(m.group(2))] * int(m.group(1))
    return wall, (sum(rates) / len(rates) if rates else float("nan"))


def mean_se(v):
    v = [x for x in v if not math.isnan(x)]
    if not v:
        return float("nan"), float("nan")
    return float(np.mean(v)), (float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--t", type=float, default=4.0)
    a = p.parse_args()
    groups = {}
    for d in sorted(glob.glob(os.path.join(a.out, "wgf_d*_s*"))):
        m = RUN.match(os.path.basename(d))
        if not m or not os.path.isdir(d):
            continue
        D, seed, tag = int(m.group(1)), int(m.group(2)), m.group(3)
        ck = sorted(glob.glob(os.path.join(d, "ckpt_[0-9][0-9][0-9][0-9].h5")))
        if not ck:
            continue
        sym, centers = symkl_at(ck[-1], a.t)
        wall, rate = log_figures(d + ".log")
        em = os.path.join(a.out, "em_d%d_s%d.h5" % (D, seed))
        esym, ewall, same = float("nan"), float("nan"), ""
        if os.path.exists(em):
            esym, ecenters = symkl_at(em, a.t)
            ewall = log_figures(em[:-3] + ".log")[0]
            same = "" if np.array_equal(ecenters, centers) else " (EM ON ANOTHER MIXTURE)"
        groups.setdefault((D, tag), []).append((seed, sym, wall, rate, esym, ewall, same, os.path.basename(ck[-1])))
    print("| D | network | seed | wgf SymKL at t = %g | wall s (ranks: see log) | it/s | EM 50000 SymKL | EM wall s |" % a.t)
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (D, tag), rows in sorted(groups.items()):
        for seed, sym, wall, rate, esym, ewall, same, last in rows:
            print("| %d | %s | %d | %.4f%s | %.0f | %.1f | %.4f%s | %.0f |" % (D, tag or "paper", seed, sym, "" if not math.isnan(sym) else " (" + last + ")", wall, rate, esym, same, ewall))
    print()
    print("| D | network | runs | wgf mean ± se | paper ICNN | EM 50000 mean ± se | paper EM 50000 | wgf wall s (mean) | it/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (D, tag), rows in sorted(groups.items()):
        m, se = mean_se([r[1] for r in rows])
        em, ese = mean_se([r[4] for r in rows])
        pw, pe = PAPER.get(D, (float("nan"), float("nan")))
        print("| %d | %s | %d | %.3f ± %.3f | %.3f | %.3f ± %.3f | %.3f | %.0f | %.1f |" % (
            D, tag or "paper", sum(not math.isnan(r[1]) for r in rows), m, se, pw, em, ese, pe,
            np.mean([r[2] for r in rows]), np.nanmean([r[3] for r in rows])))


if __name__ == "__main__":
    main()
