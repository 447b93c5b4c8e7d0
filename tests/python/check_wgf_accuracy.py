#!/usr/bin/env python3
"""Check that a short OU run of wgf is accurate.

Runs, on 2 ranks,
    -problem ou -ou_dim 2 -jko_steps 4 -jko_h 0.05 -jko_iters 200 -jko_batch 512
    -icnn_widths 32,32 -icnn_rank 3 -jko_pretrain_iters 800 -eval_samples 4096 -eval_every 2
    -particles 512 -strict_options
(about 5 s on the 2-core dev box) and reads /history of the last checkpoint (step 4, t = 0.2):
the SymKL to the exact OU law must be below SYMKL_BOUND and every exact sample must have been
mapped back (not_converged = 0).

So that the test can fail, the same run with an untrained chain (-jko_iters 1
-jko_pretrain_iters 1) must score above the bound. For scale, the script also prints the SymKL
between the exact laws at t and at t/2 and 3t/4 (what a chain a factor 2 or 4/3 off in time
would score, up to the sampling noise), computed from /problem with numpy.

Usage: check_wgf_accuracy.py WGF_PATH [--mpiexec "mpiexec --oversubscribe -n"] [--seed N]
Prints one line per check; exit status 1 on any failure, 0 otherwise.
"""

import math
import os
import sys
import tempfile

import h5py
import numpy as np

import wgf_runner as wr

NRANKS = 2
PROTOCOL = ["-problem", "ou", "-ou_dim", "2", "-jko_steps", "4", "-jko_h", "0.05", "-jko_iters", "200",
            "-jko_batch", "512", "-icnn_widths", "32,32", "-icnn_rank", "3", "-jko_pretrain_iters", "800",
            "-eval_samples", "4096", "-eval_every", "2", "-particles", "512", "-strict_options"]
UNTRAINED = ["-jko_iters", "1", "-jko_pretrain_iters", "1"]

# SymKL at step 4 (t = 0.2) of PROTOCOL on 2 ranks, measured on 2026-11-27 for seeds 0..13:
#   0.0065 (seed 0, the default), 0.0017, 0.0057, 0.0016, 0.0055, 0.0025, 0.0006, -0.0003
#   (sampling noise), 0.0020, 0.0015, 0.0149 (seed 10, a problem that moves far: SymKL between
#   rho_0 and the exact law 2.3), 0.0021, 0.0015, 0.0023; worst 0.0149.
# The run is deterministic for a seed (and the same on any rank count), so the margin that
# matters is the default seed's: the bound 0.02 is 3x its 0.0065, and it also passes every
# seed measured (1.3x the worst). 3x the worst (0.045) would be too loose: for seed 0 a chain
# a factor 2 off in time scores about 0.038 (printed "for scale" below) and would pass; with
# 0.02 it fails, and so does a chain that does not move (0.195) or an untrained one (2.1 to
# 3.1 for seeds 0, 1, 2). A chain 4/3 off in time (0.008) would pass: this catches a broken
# solver, not a small bias.
SYMKL_BOUND = 0.02


def ou_law(A, m, mu0, S0, t, beta=1.0):
    """The exact OU law at t (MATH.md sec. 8): mean m + e^{-At}(mu0 - m),
    covariance e^{-At} S0 e^{-At} + (A^{-1} - e^{-At} A^{-1} e^{-At}) / beta (A symmetric)."""
    w, V = np.linalg.eigh(A)
    E = V @ np.diag(np.exp(-w * t)) @ V.T
    Ainv = V @ np.diag(1.0 / w) @ V.T
    return m + E @ (mu0 - m), E @ S0 @ E + (Ainv - E @ Ainv @ E) / beta


def kl(a, b):
    (m0, S0), (m1, S1) = a, b
    S1i = np.linalg.inv(S1)
    d = m1 - m0
    return 0.5 * (np.trace(S1i @ S0) + d @ S1i @ d - len(m0) + np.log(np.linalg.det(S1) / np.linalg.det(S0)))


def symkl(a, b):
    return kl(a, b) + kl(b, a)


def run(args, tmp, label, extra, failures):
    """One run; returns (final history row as dict, final checkpoint) or (None, None)."""
    out = os.path.join(tmp, label)
    code, log, secs = wr.run_wgf(args, NRANKS, out, extra=PROTOCOL + extra, opts=False)
    final = wr.last_checkpoint(out)
    if code != 0 or final is None or not final.endswith("ckpt_0004.h5"):
        failures.append(label)
        print("FAIL %s run on %d ranks: exit %s, last checkpoint %s\n---- wgf output ----\n%s\n--------------------"
              % (label, NRANKS, code, final, wr.tail(log)))
        return None, None
    hist, cols = wr.history(final)
    rows = {int(r[cols.index("step")]): dict(zip(cols, r)) for r in hist}
    evaluated = ", ".join("step %d: %.5f" % (k, r["symkl"]) for k, r in sorted(rows.items()) if not math.isnan(r["symkl"]))
    print("     %s run (seed %d, %d ranks, %.1f s): SymKL %s" % (label, args.seed, NRANKS, secs, evaluated))
    return rows[max(rows)], final


def main():
    args = wr.parse_args(__doc__)
    failures = []
    with tempfile.TemporaryDirectory(prefix="wgf_check_accuracy_") as tmp:
        last, final = run(args, tmp, "trained", [], failures)
        if last is not None:
            s, nc = last["symkl"], last["not_converged"]
            ok = math.isfinite(s) and s < SYMKL_BOUND
            if not ok:
                failures.append("accuracy")
            print("%s SymKL at step 4 (t = %.2f): %.5f (KL model|exact %.5f, exact|model %.5f), bound %.3f; energy distance %.2e"
                  % ("ok  " if ok else "FAIL", last["t"], s, last["kl_model_exact"], last["kl_exact_model"], SYMKL_BOUND, last["energy_distance"]))
            if nc != 0:
                failures.append("not converged")
            print("%s exact samples not mapped back at step 4: %d" % ("ok  " if nc == 0 else "FAIL", nc))
            with h5py.File(final, "r") as f:
                A, m, mu0, S0 = (f["problem"][n][()] for n in ("A", "m", "mu0", "S0"))
                t = float(f.attrs["time"])
            exact = ou_law(A, m, mu0, S0, t)
            print("     for scale, exact law at t = %.2f vs at 0: %.4f, vs at t/2: %.4f, vs at 3t/4: %.4f"
                  % (t, symkl(ou_law(A, m, mu0, S0, 0.0), exact), symkl(ou_law(A, m, mu0, S0, t / 2), exact),
                     symkl(ou_law(A, m, mu0, S0, 0.75 * t), exact)))

        # the test must be able to fail: an untrained chain is far off
        last, _ = run(args, tmp, "untrained", UNTRAINED, failures)
        if last is not None:
            s = last["symkl"]
            ok = not (s < SYMKL_BOUND)  # NaN or inf count as failing the bound
            if not ok:
                failures.append("untrained chain passes")
            print("%s untrained chain (%s) fails the bound, as it should: SymKL %.5g vs bound %.3f"
                  % ("ok  " if ok else "FAIL", " ".join(UNTRAINED), s, SYMKL_BOUND))
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
