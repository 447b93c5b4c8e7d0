#!/usr/bin/env python3
"""Random train/test split of a posterior data file (MATH.md sec. 8; ../shared/data/README.md).

    split.py DATA.h5 SEED OUTDIR [--train-frac 0.8] [--raw]

writes OUTDIR/<name>_s<SEED>_train.h5 and OUTDIR/<name>_s<SEED>_test.h5 with /X (float64) and /y
(int8, +1/-1), the layout -blr_data and -blr_test read. The rows are permuted by numpy's
default_rng(SEED); the first round(frac * n) go to the training file. Unless --raw, the rows the
paper used are taken first (its preprocessing, ../shared/data/README.md): image and splice keep
their distinct patterns only (/unique_idx), and diabetis is min-max scaled per column to [-1, 1]
over all rows, as LIBSVM's diabetes_scale is. The attributes record the source, its SHA-256, the
seed and the preprocessing.
"""
import argparse
import hashlib
import os
import sys

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("seed", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--train-frac", type=float, default=0.8)
    ap.add_argument("--raw", action="store_true", help="no preprocessing: all rows as they are")
    a = ap.parse_args()
    if not 0 < a.train_frac < 1:
        sys.exit("split.py: --train-frac %g must be in (0, 1)" % a.train_frac)
    name = os.path.splitext(os.path.basename(a.data))[0]
    with h5py.File(a.data, "r") as f:
        X = np.asarray(f["X"][()], dtype=np.float64)
        y = np.asarray(f["y"][()]).reshape(-1)
        uniq = f["unique_idx"][()].reshape(-1) if "unique_idx" in f else None
    prep = "none"
    if not a.raw:
        if uniq is not None:
            X, y, prep = X[uniq], y[uniq], "distinct patterns only (/unique_idx)"
        if name == "diabetis":
            lo, hi = X.min(axis=0), X.max(axis=0)
            X = -1 + 2 * (X - lo) / np.where(hi > lo, hi - lo, 1)
            prep = "min-max scaled per column to [-1, 1] (LIBSVM diabetes_scale)"
    n = X.shape[0]
    perm = np.random.default_rng(a.seed).permutation(n)
    ntr = int(round(a.train_frac * n))
    sha = hashlib.sha256(open(a.data, "rb").read()).hexdigest()
    os.makedirs(a.outdir, exist_ok=True)
    for part, rows in (("train", perm[:ntr]), ("test", perm[ntr:])):
        path = os.path.join(a.outdir, "%s_s%d_%s.h5" % (name, a.seed, part))
        with h5py.File(path + ".tmp", "w") as g:
            g["X"] = X[rows]
            g["y"] = y[rows].astype(np.int8)
            g.attrs.update(source=os.path.abspath(a.data), source_sha256=sha, seed=a.seed,
                           part=part, train_frac=a.train_frac, preprocessing=prep)
        os.replace(path + ".tmp", path)
        print("%s: %d x %d" % (path, len(rows), X.shape[1]))


if __name__ == "__main__":
    main()
