#!/usr/bin/env python3
"""Tabulate the convergence-to-a-mixture study of jobs/accuracy/mixture_runs.sh.

    mixture_table.py OUT [--t 4]

For every wgf run folder OUT/wgf_d<D>_s<SEED><TAG> or OUT/wgf_d<D>_r<RUN><TAG> (the paper's own
mixture of its run RUN; TAG e.g. _w64: a narrower network) with a
checkpoint at time t, the SymKL to the stationary mixture at t (the /history row of that step),
the wall time of the run (the 'wall' lines of its .log, summed over continuations) and the mean
training iterations per second (the 'done:' lines); beside it the Euler-Maruyama baseline
OUT/em_d<D>_s<SEED>.h5 (or _r<RUN>) on the same mixture (checked: the same /problem/centers), its SymKL and
wall time. Per D and TAG: the mean and standard error over the seeds, and the paper's figures
(../shared/reference/paper_results.md: ICNN JKO and EM 50000 at t = 4).

With --paper REF/results (the reference repository's results folder), the runs on the paper's
own mixtures (_r<RUN>) are paired with the paper's runs of the same number: its ICNN and EM 50000
SymKL (kl_train + kl_target) per run, the mean paired difference and its standard error, and on
how many mixtures wgf is lower.
"""

import argparse
import glob
import json
import math
import os
import re

import h5py
import numpy as np

PAPER = {2: (0.062, 0.077), 4: (0.176, 0.440), 6: (0.301, 1.505), 8: (0.396, 3.445), 10: (0.329, 5.584), 12: (0.509, 10.240)}
RUN = re.compile(r"wgf_d(\d+)_([sr])(\d+)(.*)$")


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


def paper_run(results, D, method, run):
    """kl_train + kl_target of the reference's run (method ICNN_jko or EM_sim_50000), or nan."""
    path = os.path.join(results or "", "conv_comp_dim_%d" % D, "conv_comp_dim_%d-%s-dim=%d-n_exp=%d.json" % (D, method, D, run))
    if not results or not os.path.exists(path):
        return float("nan")
    d = json.load(open(path))
    return d["kl_train"] + d["kl_target"]


def mean_se(v):
    v = [x for x in v if not math.isnan(x)]
    if not v:
        return float("nan"), float("nan")
    return float(np.mean(v)), (float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan"))


def label(tag):
    """'r_w64' -> "the paper's, width 64"; 's' -> 'from -seed, paper width'."""
    kind, rest = tag[0], tag[1:]
    return ("the paper's" if kind == "r" else "from -seed") + ", " + ("width " + rest.lstrip("_w") if rest.startswith("_w") else rest.lstrip("_") or "paper width")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--t", type=float, default=4.0)
    p.add_argument("--paper", help="the reference's results/ folder, to pair the _r<RUN> runs with its runs")
    a = p.parse_args()
    groups = {}
    for d in sorted(glob.glob(os.path.join(a.out, "wgf_d*"))):
        m = RUN.match(os.path.basename(d))
        if not m or not os.path.isdir(d):
            continue
        D, kind, seed, tag = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
        ck = sorted(glob.glob(os.path.join(d, "ckpt_[0-9][0-9][0-9][0-9].h5")))
        if not ck:
            continue
        sym, centers = symkl_at(ck[-1], a.t)
        wall, rate = log_figures(d + ".log")
        em = os.path.join(a.out, "em_d%d_%s%d.h5" % (D, kind, seed))
        esym, ewall, same = float("nan"), float("nan"), ""
        if os.path.exists(em):
            esym, ecenters = symkl_at(em, a.t)
            ewall = log_figures(em[:-3] + ".log")[0]
            same = "" if np.array_equal(ecenters, centers) else " (EM ON ANOTHER MIXTURE)"
        pw = paper_run(a.paper, D, "ICNN_jko", seed) if kind == "r" else float("nan")
        pe = paper_run(a.paper, D, "EM_sim_50000", seed) if kind == "r" else float("nan")
        groups.setdefault((D, kind + tag), []).append((seed, sym, wall, rate, esym, ewall, same, os.path.basename(ck[-1]), pw, pe))
    print("| D | mixtures, network | run | wgf SymKL at t = %g | paper ICNN, same run | wall s | it/s | EM 50000 SymKL | paper EM, same run | EM wall s |" % a.t)
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (D, tag), rows in sorted(groups.items()):
        for seed, sym, wall, rate, esym, ewall, same, last, pw, pe in rows:
            print("| %d | %s | %d | %.4f%s | %.4f | %.0f | %.1f | %.4f%s | %.4f | %.0f |" % (D, label(tag), seed, sym, "" if not math.isnan(sym) else " (" + last + ")", pw, wall, rate, esym, same, pe, ewall))
    print()
    print("| D | mixtures, network | runs | wgf mean ± se | paper ICNN (same runs) | wgf - paper, paired | wgf lower on | EM 50000 mean ± se | paper EM (same runs) | paper ICNN, all 5 | wgf wall s (mean) | it/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (D, tag), rows in sorted(groups.items()):
        ok = [r for r in rows if not math.isnan(r[1])]
        m, se = mean_se([r[1] for r in ok])
        em, ese = mean_se([r[4] for r in ok])
        pm, _ = mean_se([r[8] for r in ok])
        pem, _ = mean_se([r[9] for r in ok])
        dm, dse = mean_se([r[1] - r[8] for r in ok])
        lower = "%d of %d" % (sum(r[1] < r[8] for r in ok), len(ok)) if not math.isnan(pm) else ""
        print("| %d | %s | %d | %.3f ± %.3f | %.3f | %+.3f ± %.3f | %s | %.3f ± %.3f | %.3f | %.3f | %.0f | %.1f |" % (
            D, label(tag), len(ok), m, se, pm, dm, dse, lower, em, ese, pem, PAPER.get(D, (float("nan"),))[0],
            np.mean([r[2] for r in ok]) if ok else float("nan"), np.nanmean([r[3] for r in ok]) if ok else float("nan")))


if __name__ == "__main__":
    main()
