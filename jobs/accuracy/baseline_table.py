#!/usr/bin/env python3
"""Tabulate wgf-baseline outputs: SymKL at time t per problem type, dimension and particle count.

    baseline_table.py FILE.h5... [--t 0.9]

Each FILE is a -output of wgf-baseline (its .log beside it gives the wall time, from a line
'wall N s', as jobs/accuracy/mixture_runs.sh writes it). Rows: type, D, particles, runs, mean
SymKL at t with its standard error, the mean wall time, and the paper's figure for that method
(../shared/reference/paper_results.md: Euler-Maruyama + KDE at t = 0.9 for OU, t = 4 for the
mixture).
"""

import argparse
import math
import os
import re

import h5py
import numpy as np

PAPER = {("ou", 50000): [0.0005, 0.0066, 0.032, 0.105, 0.254, 0.504, 0.859, 1.318, 1.862, 2.480, 3.141, 3.830],
         ("ou", 10000): [0.0019, 0.0169, 0.067, 0.184, 0.397, 0.719, 1.156, 1.689, 2.292, 2.943, 3.632, 4.340],
         ("mixture", 50000): {2: 0.077, 4: 0.440, 6: 1.505, 8: 3.445, 10: 5.584, 12: 10.240}}


def attr_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def paper(kind, D, n):
    p = PAPER.get((kind, n))
    if isinstance(p, list):
        return p[D - 1] if 1 <= D <= len(p) else float("nan")
    return p.get(D, float("nan")) if p else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--t", type=float, default=0.9)
    a = p.parse_args()
    groups = {}
    for path in a.files:
        with h5py.File(path, "r") as f:
            kind = attr_str(f["problem"].attrs["type"])
            n = int(f.attrs["particles"])
            D = f["particles/x"].shape[1]
            h = f["history"][()]
            cols = attr_str(f["history"].attrs["columns"]).split(",")
        rows = np.where(np.isclose(h[:, cols.index("t")], a.t))[0]
        if not len(rows):
            continue
        wall = float("nan")
        log = path[:-3] + ".log"
        if os.path.exists(log):
            w = [float(m.group(1)) for m in (re.match(r"wall (\d+) s", l) for l in open(log)) if m]
            wall = sum(w) if w else wall
        groups.setdefault((kind, D, n), []).append((h[rows[0], cols.index("symkl")], wall))
    print("| problem | D | particles | runs | SymKL at t = %g, mean ± se | paper | wall s per run |" % a.t)
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (kind, D, n), v in sorted(groups.items()):
        s = np.array([x[0] for x in v])
        se = s.std(ddof=1) / math.sqrt(len(s)) if len(s) > 1 else float("nan")
        print("| %s | %d | %d | %d | %.4f ± %.4f | %.4f | %.0f |" % (kind, D, n, len(s), s.mean(), se, paper(kind, D, n), np.nanmean([x[1] for x in v])))


if __name__ == "__main__":
    main()
