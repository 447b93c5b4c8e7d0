#!/usr/bin/env python3
"""Write HDF5 input files for wgf-eval (layout of ARCHITECTURE.md "Files").

Params file:
    /icnn                  attrs: dim (int32), widths (int32 [L]), rank (int32),
                                  activation (string "softplus"), strong_convexity (float64)
    /maps/<kkkk>/params    float64 [P], canonical order of MATH.md sec. 2
Points file:
    /points (float64 [N][D]) and optionally the adjoint seeds of MATH.md sec. 4:
    /psibar [N], /ybar [N][D], /hbar [N][D][D] (symmetric)

Used as a module by check_eval.py and check_eval_errors.py; as a script it writes one random case:
    make_case.py PARAMS.h5 POINTS.h5 --dim 2 --widths 7 3 --rank 1 --npoints 5 [--seeds] [--seed N]
"""

import argparse

import h5py
import numpy as np

import icnn_ref as ref


def write_params(path, D, widths, r, s, maps, activation="softplus", string_type="vlen"):
    """Write a params file. maps: dict {map number k >= 1: theta}, stored at /maps/<kkkk>/params.
    string_type "vlen" stores the activation as h5py does by default (variable-length UTF-8),
    "fixed" as a fixed-length ASCII string (as a C writer usually does)."""
    with h5py.File(path, "w") as f:
        icnn = f.create_group("icnn")
        icnn.attrs.create("dim", np.int32(D))
        icnn.attrs.create("widths", np.asarray(widths, dtype=np.int32))
        icnn.attrs.create("rank", np.int32(r))
        if string_type == "fixed":
            icnn.attrs.create("activation", np.bytes_(activation))
        else:
            icnn.attrs["activation"] = activation
        icnn.attrs.create("strong_convexity", np.float64(s))
        for k, theta in maps.items():
            f.create_dataset("maps/%04d/params" % k, data=np.asarray(theta, dtype=np.float64))


def write_points(path, x, psibar=None, ybar=None, hbar=None):
    """Write a points file: /points (N x D) and the seeds that are not None."""
    with h5py.File(path, "w") as f:
        f.create_dataset("points", data=np.asarray(x, dtype=np.float64))
        for name, data in (("psibar", psibar), ("ybar", ybar), ("hbar", hbar)):
            if data is not None:
                f.create_dataset(name, data=np.asarray(data, dtype=np.float64))


def random_seeds(rng, N, D):
    """Random adjoint seeds: psibar (N), ybar (N, D), symmetric hbar (N, D, D)."""
    psibar = rng.standard_normal(N)
    ybar = rng.standard_normal((N, D))
    hbar = rng.standard_normal((N, D, D))
    hbar = 0.5 * (hbar + hbar.transpose(0, 2, 1))
    return psibar, ybar, hbar


def main():
    parser = argparse.ArgumentParser(description="Write one random wgf-eval case.")
    parser.add_argument("params")
    parser.add_argument("points")
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--widths", type=int, nargs="+", default=[7, 3])
    parser.add_argument("--rank", type=int, default=1)
    parser.add_argument("--strong-convexity", type=float, default=1e-6)
    parser.add_argument("--npoints", type=int, default=5)
    parser.add_argument("--seeds", action="store_true", help="also write /psibar, /ybar, /hbar")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    D = args.dim
    theta = ref.random_theta(rng, D, args.widths, args.rank)
    write_params(args.params, D, args.widths, args.rank, args.strong_convexity, {1: theta})
    x = rng.standard_normal((args.npoints, D))
    seeds = random_seeds(rng, args.npoints, D) if args.seeds else (None, None, None)
    write_points(args.points, x, *seeds)


if __name__ == "__main__":
    main()
