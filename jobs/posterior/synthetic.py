#!/usr/bin/env python3
"""A synthetic data set for -problem blr (MATH.md sec. 8): rows u ~ N(0, I_d), a random w ~ N(0,
I_d / d) scaled to |w| = --norm, labels t = +1 with probability sigmoid(w.u), else -1.

    synthetic.py OUT.h5 --n N --d D [--seed S] [--norm R] [--chunk ROWS] [--test TEST.h5 --test-n M]

Writes /X (n x d, float64) and /y (n, int8) in the layout -blr_data reads, plus /w_true, in
blocks of --chunk rows so that a covtype-sized set (581012 x 54, 251 MB) needs little memory;
with --test, M more rows of the same model into TEST.h5 (a held-out file for -blr_test).
Default: covtype's size.
"""
import argparse
import os

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=581012)
    ap.add_argument("--d", type=int, default=54)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--norm", type=float, default=2.0, help="|w| of the true parameter (default 2)")
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--test", help="also write TEST.h5 with --test-n rows of the same model")
    ap.add_argument("--test-n", type=int, default=1000)
    a = ap.parse_args()
    if a.n < 1 or a.d < 1:
        raise SystemExit("synthetic.py: --n and --d must be >= 1")
    rng = np.random.default_rng(a.seed)
    w = rng.standard_normal(a.d)
    w *= a.norm / np.linalg.norm(w)
    for out, n in ((a.out, a.n),) + (((a.test, a.test_n),) if a.test else ()):
        tmp = out + ".tmp"
        with h5py.File(tmp, "w") as f:
            X = f.create_dataset("X", (n, a.d), dtype=np.float64, chunks=(min(a.chunk, n), a.d))
            y = f.create_dataset("y", (n,), dtype=np.int8)
            for r0 in range(0, n, a.chunk):
                r1 = min(n, r0 + a.chunk)
                u = rng.standard_normal((r1 - r0, a.d))
                p = 1 / (1 + np.exp(-u @ w))
                X[r0:r1] = u
                y[r0:r1] = np.where(rng.random(r1 - r0) < p, 1, -1).astype(np.int8)
            f["w_true"] = w
            f.attrs.update(generator="jobs/posterior/synthetic.py", seed=a.seed, norm=a.norm)
        os.replace(tmp, out)
        print("%s: %d x %d" % (out, n, a.d))


if __name__ == "__main__":
    main()
