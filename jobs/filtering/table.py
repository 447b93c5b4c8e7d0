#!/usr/bin/env python3
"""Tabulate the filtering study of jobs/filtering/run_sequences.sh (README "Nonlinear filtering").

For every sequence (seed) found in OUT: the SymKL to the Chang-Cooper density at the last time
(the last row of /history) of wgf (the newest step checkpoint of wgf_s<SEED><TAG>/, left out
until it reaches the problem's t_final) and of each
particle filter file pf<N>_s<SEED>.h5, with wall times (wgf: the 'wall' line of its log; a
particle filter and Chang-Cooper (cc_s<SEED>.h5): their 'seconds' attribute). Prints one row per sequence, then the median, mean
and standard error of the mean per method, beside the paper's figures, as a Markdown table.

Usage: table.py OUT [--tag TAG] [--json FILE]
"""

import argparse
import glob
import json
import os
import re
import sys

import h5py
import numpy as np

PAPER = {"wgf": (0.0170, 0.0579, 13627), "pf50000": (0.0043, 0.0058, 16), "pf10000": (0.0128, 0.0136, 3)}


def last_symkl(path):
    """(t, symkl) of the last row of /history."""
    with h5py.File(path, "r") as f:
        cols = f["history"].attrs["columns"]
        cols = (cols.decode() if isinstance(cols, bytes) else str(cols)).split(",")
        h = f["history"][()]
    return float(h[-1, cols.index("t")]), float(h[-1, cols.index("symkl")])


def wgf_result(out, seed, tag):
    d = os.path.join(out, "wgf_s%d%s" % (seed, tag))
    ck = sorted(glob.glob(os.path.join(d, "ckpt_[0-9][0-9][0-9][0-9].h5")))
    if not ck:
        return None
    t, s = last_symkl(ck[-1])
    with h5py.File(ck[-1], "r") as f:
        t_final = float(f["problem"].attrs["t_final"])
    if not np.isfinite(s) or abs(t - t_final) > 1e-9 * t_final:  # a run still going
        return None
    wall = None
    if os.path.exists(d + ".log"):
        walls = re.findall(r"^wall (\d+) s", open(d + ".log").read(), re.M)
        wall = sum(int(w) for w in walls) if walls else None
    return {"t": t, "symkl": s, "seconds": wall}


def pf_result(path):
    t, s = last_symkl(path)
    with h5py.File(path, "r") as f:
        return {"t": t, "symkl": s, "seconds": float(f.attrs["seconds"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--tag", default="")
    ap.add_argument("--json")
    a = ap.parse_args()
    seeds = sorted({int(m.group(1)) for p in glob.glob(os.path.join(a.out, "cc_s*.h5")) for m in [re.search(r"cc_s(\d+)\.h5$", p)] if m})
    pfs = sorted({int(m.group(1)) for p in glob.glob(os.path.join(a.out, "pf*_s*.h5")) for m in [re.search(r"pf(\d+)_s\d+\.h5$", p)] if m})
    methods = ["wgf"] + ["pf%d" % n for n in pfs]
    rows = {}
    for s in seeds:
        r = {"wgf": wgf_result(a.out, s, a.tag)}
        for n in pfs:
            p = os.path.join(a.out, "pf%d_s%d.h5" % (n, s))
            r["pf%d" % n] = pf_result(p) if os.path.exists(p) else None
        rows[s] = r
    cc_seconds = {}
    for s in seeds:
        with h5py.File(os.path.join(a.out, "cc_s%d.h5" % s), "r") as f:
            cc_seconds[s] = float(f.attrs["seconds"])
    print("| sequence | " + " | ".join("%s SymKL | %s s" % (m, m) for m in methods) + " | Chang-Cooper s |")
    print("| --- " * (2 + 2 * len(methods)) + "|")
    for s in seeds:
        cells = []
        for m in methods:
            v = rows[s][m]
            cells += ["%.4f" % v["symkl"], "%.0f" % v["seconds"] if v and v["seconds"] is not None else "-"] if v else ["-", "-"]
        print("| %d | %s | %.2f |" % (s, " | ".join(cells), cc_seconds[s]))
    print()
    print("| method | runs | median SymKL | mean SymKL (s.e.) | mean s | paper median | paper mean | paper s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    summary = {}
    for m in methods:
        v = [rows[s][m] for s in seeds if rows[s][m] and rows[s][m]["t"] > 0]
        if not v:
            continue
        k = np.array([x["symkl"] for x in v])
        secs = [x["seconds"] for x in v if x["seconds"] is not None]
        se = k.std(ddof=1) / np.sqrt(len(k)) if len(k) > 1 else float("nan")
        p = PAPER.get(m, (float("nan"),) * 3)
        summary[m] = {"runs": len(k), "median": float(np.median(k)), "mean": float(k.mean()), "se": float(se), "seconds": float(np.mean(secs)) if secs else None}
        print("| %s | %d | %.4f | %.4f (%.4f) | %s | %.4f | %.4f | %d |" % (m, len(k), np.median(k), k.mean(), se, "%.0f" % np.mean(secs) if secs else "-", p[0], p[1], p[2]))
    print("\nChang-Cooper (the ground truth): %.2f s on average per sequence (1 rank)." % np.mean(list(cc_seconds.values())) if seeds else "")
    if a.json:
        json.dump({"rows": {str(s): rows[s] for s in seeds}, "summary": summary}, open(a.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
