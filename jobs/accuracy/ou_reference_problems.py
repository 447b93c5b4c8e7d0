#!/usr/bin/env python3
"""Write the paper's own Ornstein-Uhlenbeck targets as -ou_problem_file inputs.

The paper's figure for each D (../shared/reference/paper_results.md) is a mean over 15 runs, and
every run has its own random target. Running wgf on those same 15 targets turns the comparison
into a paired one: the spread between targets (a factor of 5 at D = 9) then cancels, and only
the difference of the two solvers remains.

The reference (repository PetrMokrov/Large-Scale-Wasserstein-Gradient-Flows, configs/
ornstein_uhlenbeck_vary_dim.yml and src/experiments/) seeds numpy's global generator for run N
in dimension D with zlib.crc32 of "abacaba@D@Nnumpy" (random_key 'abacaba'), then draws the
target covariance with scikit-learn's make_spd_matrix(D) and the mean with randn(D); rho_0 =
N(0, I), beta = 1, and its ICNN experiment keeps the target in float32. This script repeats
those draws with numpy alone (make_spd_matrix is X uniform (D x D), U S V^T = svd(X^T X),
cov = U (1 + diag(u)) V^T with u uniform (D), where "1 +" adds the all-ones matrix, not the
identity that MATH.md sec. 8 writes). One caveat: the signs of the singular vectors come from this machine's LAPACK
(dgesdd, as scipy's default); a library with other sign conventions would rotate the
eigenvectors of cov relative to the mean, though never change its spectrum.

Usage: ou_reference_problems.py OUTDIR [--dims 9] [--runs 0-14]
writes OUTDIR/ou_d<D>_r<N>.h5 with /problem/A = cov^{-1}, /problem/m, /problem/mu0 = 0,
/problem/S0 = I (the layout -ou_problem_file reads), for
  mpiexec -n 1 build/bin/wgf -options_file input/ou_paper.opts -ou_dim D \
      -ou_problem_file OUTDIR/ou_d<D>_r<N>.h5 -jko_steps 18 -eval_every 18 -out_dir DIR
"""

import argparse
import os
import zlib

import h5py
import numpy as np


def index_list(text):
    """'9' or '1,3,5' or '0-14' -> list of ints."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def reference_draws(dim, run, key="abacaba"):
    """The reference's random draws of run `run` in dimension `dim`, in its order: X, u, mean."""
    np.random.seed(zlib.crc32(f"{key}@{dim}@{run}numpy".encode()))
    x = np.random.uniform(size=(dim, dim))
    u = np.random.uniform(size=dim)
    return x, u, np.random.randn(dim)


def reference_target(dim, run):
    """The target covariance and mean of the reference's run `run` in dimension `dim`."""
    x, diag, mean = reference_draws(dim, run)
    u, _, vt = np.linalg.svd(x.T @ x)
    cov = u @ (1.0 + np.diag(diag)) @ vt
    # the reference holds both in float32 (torch tensors of its ICNN experiment)
    cov = 0.5 * (cov + cov.T)
    return cov.astype(np.float32).astype(np.float64), mean.astype(np.float32).astype(np.float64)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir")
    parser.add_argument("--dims", default="9", help="dimensions, e.g. 9 or 1-12 (default 9)")
    parser.add_argument("--runs", default="0-14", help="the reference's run numbers (default 0-14)")
    args = parser.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    for dim in index_list(args.dims):
        for run in index_list(args.runs):
            cov, mean = reference_target(dim, run)
            a = np.linalg.inv(cov)
            a = 0.5 * (a + a.T)
            path = os.path.join(args.outdir, f"ou_d{dim}_r{run}.h5")
            with h5py.File(path, "w") as f:
                g = f.create_group("problem")
                g["A"] = a
                g["m"] = mean
                g["mu0"] = np.zeros(dim)
                g["S0"] = np.eye(dim)
                g.attrs["source"] = f"reference target: random_key abacaba, D = {dim}, run {run}"
            eig = np.linalg.eigvalsh(a)
            print(f"{path}: eigenvalues of A in [{eig[0]:.4g}, {eig[-1]:.4g}], |m| = {np.linalg.norm(mean):.3f}")


if __name__ == "__main__":
    main()
