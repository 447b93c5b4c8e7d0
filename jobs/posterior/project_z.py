#!/usr/bin/env python3
"""Samples of a blr run projected on the exact posterior's principal axes in the whitened z.

    python3 jobs/posterior/project_z.py REF.h5 SAMPLES.h5... [--rate b]

REF.h5 is reference_sampler.py's output (/samples, theta = (w, log alpha)); each SAMPLES.h5 is a
wgf-sample output (/samples in theta), e.g. `wgf-sample -params CKPT -map K -n 4000`. w is mapped
to z by the inverse of the whitened coordinates' radial map (MATH.md sec. 9: P(|w| <= r) =
(r^2 / (r^2 + 2 b))^{d/2} = P(d/2, rho^2 / 2)); the eigenvectors of the exact covariance of z are
the axes. Needs scipy (python3-scipy) beside numpy and h5py. Prints, per file, the sd along each axis and the offset of the mean from the exact one in
units of the exact sd (jobs/accuracy/README.md, "Why image fails")."""
import argparse

import h5py
import numpy as np
from scipy.special import gammaincinv


def to_z(theta, b):
    d = theta.shape[1] - 1
    w = theta[:, :d]
    r2 = (w * w).sum(1)
    rho2 = 2 * gammaincinv(d / 2, (r2 / (r2 + 2 * b)) ** (d / 2))
    return w * np.sqrt(rho2 / r2)[:, None]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref")
    ap.add_argument("samples", nargs="+")
    ap.add_argument("--rate", type=float, default=100.0, help="-blr_prior_rate of the run (default 100)")
    ap.add_argument("--coupling", type=int, default=0, metavar="K",
                    help="also print, for each of the K narrowest exact axes, the share of its variance in the exact "
                         "sample explained by a quadratic in the remaining (wider) axes: how curved the posterior is in z")
    a = ap.parse_args()
    with h5py.File(a.ref, "r") as f:
        z = to_z(f["/samples"][...], a.rate)
    m = z.mean(0)
    ev, U = np.linalg.eigh(np.cov(z.T))
    sd = np.sqrt(ev)
    np.set_printoptions(precision=3, suppress=True, linewidth=120)
    print("exact sd  ", sd)
    if a.coupling:
        q = (z - m) @ U
        rest = q[:, a.coupling:]
        F = np.column_stack([np.ones(len(q)), rest, rest ** 2])
        r2 = []
        for j in range(a.coupling):
            c = np.linalg.lstsq(F, q[:, j], rcond=None)[0]
            r2.append(1 - np.var(q[:, j] - F @ c) / np.var(q[:, j]))
        print("explained ", np.array(r2))
    for fn in a.samples:
        with h5py.File(fn, "r") as f:
            p = (to_z(f["/samples"][...], a.rate) - m) @ U
        print(fn)
        print("  sd      ", p.std(0))
        print("  offset  ", p.mean(0) / sd)


if __name__ == "__main__":
    main()
