#!/usr/bin/env python3
"""Write the paper's own Gaussian mixtures (convergence experiment) as -mixture_problem_file inputs.

The paper's figure for each D is a mean over 5 runs, each with its own random mixture, and the
spread between mixtures is large (SymKL 0.04 to 0.16 at D = 4 for the same method): running wgf
on those same mixtures makes the comparison a paired one.

The reference (PetrMokrov/Large-Scale-Wasserstein-Gradient-Flows, configs/
convergence_comparison_dim_<D>.yml, src/experiments/_convergence.py and manual_random.py) seeds
torch for run N in dimension D with zlib.crc32 of "<key>@D@Npytorch" (random_key per D: venus,
earth, ...), and its first torch draw is the centres: TD.Uniform(-a, a).sample((K, D)) in
float32, i.e. torch.rand: mt19937 seeded with that 32-bit value (the same generator and seeding
as numpy's legacy RandomState), each float the low 24 bits of one 32-bit output times 2^-24, then
low + rand * (high - low) in float32. This script repeats that with numpy's MT19937 alone.
Weights are equal, std = target_std, rho_0 = N(0, init_variance I). Checked by pairing: the
Euler-Maruyama baseline on these mixtures against the paper's EM runs (README, "Convergence to a
Gaussian mixture").

Usage: mixture_reference_problems.py OUTDIR --configs REF/configs [--dims 2,4] [--runs 0-4]
writes OUTDIR/mx_d<D>_r<N>.h5 with /problem/centers, weights, std, mu0, S0, for
  mpiexec -n 1 build/bin/wgf -options_file input/mixture_paper_d<D>.opts \\
      -mixture_problem_file OUTDIR/mx_d<D>_r<N>.h5 -out_dir DIR
"""

import argparse
import os
import re
import zlib

import h5py
import numpy as np

from ou_reference_problems import index_list


def config(configs, dim):
    """random_key, n_centers, target_span, target_std, init_variance of the reference's config."""
    text = open(os.path.join(configs, "convergence_comparison_dim_%d.yml" % dim)).read()
    get = lambda k: re.search(r"^%s\s*:\s*'?([^'#\n]+?)'?\s*(#.*)?$" % k, text, re.M).group(1)
    return get("random_key"), int(get("n_centers")), float(get("target_span")), float(get("target_std")), float(get("init_variance"))


def torch_rand(seed, n):
    """The first n floats of torch.rand after torch.manual_seed(seed), as float32."""
    bg = np.random.MT19937()
    bg._legacy_seeding(seed)
    raw = bg.random_raw(n).astype(np.uint64)
    return ((raw & np.uint64(0xFFFFFF)).astype(np.float64) * 2.0 ** -24).astype(np.float32)


def reference_centers(key, dim, run, K, span):
    seed = zlib.crc32(("%s@%d@%dpytorch" % (key, dim, run)).encode())
    r = torch_rand(seed, K * dim).reshape(K, dim)
    low, high = np.float32(-span), np.float32(span)
    return (low + r * (high - low)).astype(np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir")
    p.add_argument("--configs", required=True, help="the reference's configs/ folder")
    p.add_argument("--dims", default="2,4,6,8,10,12")
    p.add_argument("--runs", default="0-4")
    a = p.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    for dim in index_list(a.dims):
        key, K, span, std, var = config(a.configs, dim)
        for run in index_list(a.runs):
            c = reference_centers(key, dim, run, K, span).astype(np.float64)
            path = os.path.join(a.outdir, "mx_d%d_r%d.h5" % (dim, run))
            with h5py.File(path, "w") as f:
                g = f.create_group("problem")
                g.attrs["type"] = "mixture"
                g.attrs["source"] = "the reference's run %d in D = %d (random_key %s)" % (run, dim, key)
                g["centers"] = c
                g["weights"] = np.ones(K)
                g["std"] = np.float64(std)
                g["mu0"] = np.zeros(dim)
                g["S0"] = var * np.eye(dim)
            print(path)


if __name__ == "__main__":
    main()
