#!/usr/bin/env python3
"""Paired comparison of wgf runs with the paper's runs on the same Ornstein-Uhlenbeck targets.

    compare_reference.py RUN_DIR... --paper RESULTS_DIR [--t 0.9] [--against RUN_DIR...]

Each RUN_DIR is a wgf -out_dir whose problem came from a file written by ou_reference_problems.py
(its name, ou_d<D>_r<N>.h5, is kept in the checkpoint's /problem "source" attribute and says
which reference run the target is). RESULTS_DIR is the folder results/ou_vary_dim of the
reference repository (PetrMokrov/Large-Scale-Wasserstein-Gradient-Flows), whose files
ou_vary_dim_freq-ICNN_jko-dim_min=1-dim_max=12-n_exp=<N>.json hold, per D, kl_train and
kl_target as [t, value] pairs; the paper's SymKL is their sum (as in its tables).

Prints one row per run (ours, the paper's, the difference, and the floor: the SymKL of the exact
JKO scheme with the same h and steps, no network and no sampling, which is the part of the
error that belongs to the time step) and per D: the means and medians of
both over the same runs, the mean paired difference with its standard error, how many runs
wgf has lower, and the paper's mean over all of its runs (the figure of paper_results.md).

--against pairs the runs with a second set of wgf runs on the same targets (another precision,
minibatch mode or network): per D, the means of both over the targets that both have, the mean
paired difference (first set minus --against) with its standard error, and on how many targets
the first set is lower.
"""

import argparse
import glob
import json
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "study"))
import collect_history  # noqa: E402
import wgf_status  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

SOURCE = re.compile(r"ou_d(\d+)_r(\d+)\.h5")
PAPER_FILE = re.compile(r"ICNN_jko-dim_min=\d+-dim_max=\d+-n_exp=(\d+)\.json$")


def jko_gauss_step(mu, sig, a, m, h):
    """One exact JKO step (beta = 1, V = 1/2 (x - m)^T a (x - m)) from N(mu, sig): N(mu1, S sig S).
    The minimiser over all measures is Gaussian with an affine map mu1 + S (x - mu), S symmetric
    positive definite; the free energy is strictly convex in S and stationary where
    sym((S - I) sig / h + a S sig) = S^{-1}, solved by damped Newton over the upper triangle."""
    dim = len(mu)
    eye = np.eye(dim)
    mu1 = np.linalg.solve(eye + h * a, mu + h * a @ m)
    iu = np.triu_indices(dim)

    def unpack(v):
        s = np.zeros((dim, dim))
        s[iu] = v
        return s + np.triu(s, 1).T

    def resid(v):
        s = unpack(v)
        x = (s - eye) @ sig / h + a @ s @ sig
        return (0.5 * (x + x.T) - np.linalg.inv(s))[iu]

    v = eye[iu].copy()
    for _ in range(100):
        g = resid(v)
        if np.max(np.abs(g)) < 1e-12 * (1.0 + np.max(np.abs(v))) / h:
            break
        jac = np.empty((len(v), len(v)))
        for j in range(len(v)):
            e = np.zeros(len(v))
            e[j] = 1e-7
            jac[:, j] = (resid(v + e) - resid(v - e)) / 2e-7
        dv = np.linalg.solve(jac, -g)
        step = 1.0
        while np.linalg.eigvalsh(unpack(v + step * dv))[0] <= 0.0:
            step *= 0.5
        v = v + step * dv
    else:
        sys.exit("the Gaussian JKO step did not converge")
    s = unpack(v)
    return mu1, s @ sig @ s


def gauss_kl(m1, s1, m2, s2):
    """KL(N(m1, s1) || N(m2, s2))."""
    s2i = np.linalg.inv(s2)
    d = m2 - m1
    return 0.5 * (np.trace(s2i @ s1) + d @ s2i @ d - len(m1) + np.linalg.slogdet(s2)[1] - np.linalg.slogdet(s1)[1])


def jko_floor(a, m, mu0, s0, h, steps):
    """SymKL between the exact JKO scheme after `steps` steps of h and the exact law (MATH.md sec. 8)."""
    mu, sig = mu0.copy(), s0.copy()
    for _ in range(steps):
        mu, sig = jko_gauss_step(mu, sig, a, m, h)
    w, q = np.linalg.eigh(a)
    t = steps * h
    e = q @ np.diag(np.exp(-w * t)) @ q.T
    me = m + e @ (mu0 - m)
    se = e @ s0 @ e + q @ np.diag(1.0 / w) @ q.T @ (np.eye(len(m)) - e @ e)
    return gauss_kl(mu, sig, me, se) + gauss_kl(me, se, mu, sig)


def paper_symkl(results_dir, t):
    """{(D, N): SymKL at time t} of the reference's ICNN JKO runs."""
    out = {}
    for path in glob.glob(os.path.join(results_dir, "*ICNN_jko*.json")):
        m = PAPER_FILE.search(path)
        if not m:
            continue
        with open(path) as f:
            runs = json.load(f)
        for dim, res in runs.items():
            val = [v for tt, v in res["kl_train"] if abs(tt - t) < 1e-6]
            val += [v for tt, v in res["kl_target"] if abs(tt - t) < 1e-6]
            if len(val) == 2:
                out[(int(dim), int(m.group(1)))] = val[0] + val[1]
    if not out:
        sys.exit(f"--paper {results_dir}: no ICNN_jko result files with t = {t}")
    return out


def our_symkl(run_dir, t):
    """((D, N), SymKL at time t, floor) of one wgf run, or None (reported) when it has no such value."""
    _, hist, cols, st = collect_history.read_run(run_dir, ())
    if hist is None:
        print(f"{run_dir}: no complete checkpoint, skipped", file=sys.stderr)
        return None
    with h5py.File(st["ckpt"], "r") as f:
        source = wgf_status._text(f["problem"].attrs.get("source", ""))
        prob = {k: np.asarray(f["problem"][k][()], dtype=np.float64) for k in ("A", "m", "mu0", "S0")}
    m = SOURCE.search(source)
    if not m:
        print(f"{run_dir}: its problem ({source!r}) is not a reference target file, skipped", file=sys.stderr)
        return None
    rows = hist[np.abs(hist[:, cols.index("t")] - t) < 1e-9]
    val = rows[0, cols.index("symkl")] if len(rows) else math.nan
    if math.isnan(val):
        print(f"{run_dir}: no SymKL at t = {t} (-eval_every?), skipped", file=sys.stderr)
        return None
    h = float(hist[1, cols.index("t")] - hist[0, cols.index("t")])
    floor = jko_floor(prob["A"], prob["m"], prob["mu0"], prob["S0"], h, int(round(t / h)))
    return (int(m.group(1)), int(m.group(2))), float(val), floor


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--paper", required=True, help="the reference's results/ou_vary_dim folder")
    parser.add_argument("--t", type=float, default=0.9)
    parser.add_argument("--against", nargs="+", default=[], help="a second set of wgf runs to pair with the first")
    args = parser.parse_args()
    paper = paper_symkl(args.paper, args.t)
    ours, floor = {}, {}
    for run in args.runs:
        r = our_symkl(run, args.t)
        if r:
            ours[r[0]], floor[r[0]] = r[1], r[2]
    print(f"SymKL at t = {args.t}: wgf and the paper on the same targets")
    print(f"{'D':>3} {'run':>4} {'wgf':>8} {'paper':>8} {'wgf-paper':>10} {'floor':>8}")
    for key in sorted(ours):
        p = paper.get(key, math.nan)
        print(f"{key[0]:3d} {key[1]:4d} {ours[key]:8.4f} {p:8.4f} {ours[key] - p:+10.4f} {floor[key]:8.4f}")
    for dim in sorted({k[0] for k in ours}):
        keys = [k for k in sorted(ours) if k[0] == dim and k in paper]
        a = np.array([ours[k] for k in keys])
        b = np.array([paper[k] for k in keys])
        d = a - b
        sem = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan
        allp = np.array([v for k, v in paper.items() if k[0] == dim])
        print(f"D = {dim}: {len(keys)} runs; wgf mean {a.mean():.4f} (median {np.median(a):.4f}), "
              f"paper mean {b.mean():.4f} (median {np.median(b):.4f}); wgf - paper {d.mean():+.4f} +- {sem:.4f} (s.e.); "
              f"wgf lower on {int((d < 0).sum())} of {len(d)}; floor mean {np.mean([floor[k] for k in keys]):.4f}; "
              f"paper over its {len(allp)} runs: {allp.mean():.4f}")
    if args.against:
        compare_sets(ours, args.against, args.t)


def compare_sets(ours, against, t):
    """The paired table of two sets of wgf runs (README: precision and minibatch mode)."""
    other = {}
    for run in against:
        r = our_symkl(run, t)
        if r:
            other[r[0]] = r[1]
    print(f"\nSymKL at t = {t}: the runs against --against, paired by target")
    print(f"{'D':>3} {'pairs':>5} {'runs mean':>10} {'against mean':>13} {'difference':>11} {'s.e.':>8} {'runs lower':>11}")
    for dim in sorted({k[0] for k in ours}):
        keys = [k for k in sorted(ours) if k[0] == dim and k in other]
        if not keys:
            continue
        d = np.array([ours[k] - other[k] for k in keys])
        sem = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan
        print(f"{dim:3d} {len(keys):5d} {np.mean([ours[k] for k in keys]):10.4f} {np.mean([other[k] for k in keys]):13.4f} "
              f"{d.mean():+11.4f} {sem:8.4f} {int((d < 0).sum()):>5d} of {len(d)}")


if __name__ == "__main__":
    main()
