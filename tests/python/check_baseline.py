#!/usr/bin/env python3
"""Check wgf-baseline -method em (Euler-Maruyama particles + Gaussian KDE, MATH.md sec. 10).

  a. OU in D = 2 (the random target of -seed 0) to t = 0.5 (-jko_h 0.25 -jko_steps 2), measured
     against the exact law with 6000 samples: the SymKL of the KDE must shrink as the particles
     grow (300, 3000, 30000 on 2 ranks: each at most 0.6 times the previous), and with 30000 it
     must be below 0.02 (the paper's 50000 particles give 0.0066 at t = 0.9);
  b. the run does not depend on the rank count: 3000 particles on 1 and 3 ranks give the same
     /history (metrics to a relative 1e-10) and the same final particles (1e-12);
  b2. -em_model_samples particles (the reference's OU estimator: the particles themselves as
     samples of the KDE, whose own kernels raise its density there) gives a larger
     KL(EM || exact) than draws of the KDE, and the same KL(exact || EM);
  c. the output file: /problem of type ou, /history with the columns step, t, the OU metrics and
     seconds, rows at t = 0, 0.25, 0.5 (the middle one NaN: not evaluated), /particles/x (N x 2);
  d. the mixture problem (input/mixture_tiny.opts) runs and reports against the stationary
     mixture (kl_model_stationary, ...);
  e. bad input stops with a message naming the option and leaves an existing -output as it was:
     -method foo, -jko_h not a multiple of -em_dt, -em_particles 1, no -output.

Usage: check_baseline.py WGF_BASELINE_PATH [--mpiexec "mpiexec --oversubscribe -n"]
Prints one line per check; exit status 1 on any failure, 0 otherwise.
"""

import argparse
import os
import sys
import tempfile

import h5py
import numpy as np

import wgf_runner as wr

ROOT = os.path.normpath(os.path.join(wr.HERE, "..", ".."))
MIXTURE_TINY = os.path.join(ROOT, "input", "mixture_tiny.opts")
OU = ["-problem", "ou", "-ou_dim", "2", "-seed", "0", "-jko_h", "0.25", "-jko_steps", "2", "-eval_every", "2",
      "-eval_samples", "6000"]


def history(path):
    with h5py.File(path, "r") as f:
        return f["history"][()], wr.attr_str(f["history"].attrs["columns"]).split(",")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", help="path of the wgf-baseline executable")
    p.add_argument("--mpiexec", default="mpiexec --oversubscribe -n")
    args = p.parse_args()
    check = wr.Checks()
    with tempfile.TemporaryDirectory(prefix="wgf_check_baseline_") as tmp:
        def em(nranks, extra, out):
            return wr.run(args, args.baseline, nranks, extra + ["-output", out])

        # a. convergence in the number of particles
        sym = {}
        for n in (300, 3000, 30000):
            out = os.path.join(tmp, "ou_%d.h5" % n)
            code, log, secs = em(2, OU + ["-em_particles", str(n)], out)
            if not check(code == 0 and os.path.exists(out), "a. OU, %d particles on 2 ranks" % n,
                         "exit %s in %.1f s" % (code, secs) + ("" if code == 0 else "\n" + wr.tail(log))):
                continue
            h, cols = history(out)
            sym[n] = h[2, cols.index("symkl")]
            print("     SymKL at t = 0.5 with %d particles: %.5f (%.1f s)" % (n, sym[n], secs))
        if len(sym) == 3:
            check(sym[3000] <= 0.6 * sym[300] and sym[30000] <= 0.6 * sym[3000],
                  "a. the SymKL shrinks as the particles grow", "%.5f, %.5f, %.5f" % (sym[300], sym[3000], sym[30000]))
            check(0 < sym[30000] < 0.02, "a. 30000 particles: SymKL below 0.02", "%.5f" % sym[30000])

        # b. rank invariance
        outs = {}
        for nr in (1, 3):
            outs[nr] = os.path.join(tmp, "ou_3000_np%d.h5" % nr)
            code, log, _ = em(nr, OU + ["-em_particles", "3000"], outs[nr])
            check(code == 0, "b. 3000 particles on %d rank(s)" % nr, "" if code == 0 else wr.tail(log))
        if all(os.path.exists(o) for o in outs.values()):
            h1, cols = history(outs[1])
            h3, _ = history(outs[3])
            d = wr.rel_diff(h3[:, :-1], h1[:, :-1])
            with h5py.File(outs[1], "r") as f1, h5py.File(outs[3], "r") as f3:
                dx = wr.rel_diff(f3["particles/x"][()], f1["particles/x"][()])
            check(d < 1e-10 and dx < 1e-12, "b. 1 vs 3 ranks: the same metrics and particles", "history rel diff %.2e, particles %.2e" % (d, dx))

            # b2. the reference's estimator, against KDE draws with the same number of samples
            got = {}
            for mode in ("kde", "particles"):
                out = os.path.join(tmp, "ou_3000_%s.h5" % mode)
                code, log, _ = em(2, OU + ["-em_particles", "3000", "-eval_samples", "3000", "-em_model_samples", mode], out)
                if check(code == 0, "b2. -em_model_samples %s runs" % mode, "" if code == 0 else wr.tail(log)):
                    got[mode] = history(out)[0]
            if len(got) == 2:
                i, j = cols.index("kl_model_exact"), cols.index("kl_exact_model")
                ho, hk = got["particles"], got["kde"]
                check(ho[2, i] > hk[2, i] + 0.01 and ho[2, j] == hk[2, j],
                      "b2. the particles as samples raise KL(EM || exact), KL(exact || EM) unchanged",
                      "KL(EM || exact) %.4f against %.4f with KDE draws; KL(exact || EM) %.4f, %.4f" % (ho[2, i], hk[2, i], ho[2, j], hk[2, j]))

            # c. the file
            with h5py.File(outs[1], "r") as f:
                ok = (wr.attr_str(f["problem"].attrs["type"]) == "ou" and f["particles/x"].shape == (3000, 2)
                      and cols == ["step", "t", "kl_model_exact", "kl_exact_model", "symkl", "energy_distance", "not_converged", "seconds"]
                      and np.allclose(h1[:, 1], [0, 0.25, 0.5]) and np.isnan(h1[1, 2]) and np.isfinite(h1[2, 2:]).all())
                check(ok, "c. output layout", "columns %s, t %s, particles %s" % (cols, h1[:, 1], f["particles/x"].shape))

        # d. the mixture
        out = os.path.join(tmp, "mixture.h5")
        code, log, _ = em(2, ["-options_file", MIXTURE_TINY, "-em_particles", "2000"], out)
        if check(code == 0 and os.path.exists(out), "d. mixture_tiny.opts, 2000 particles", "" if code == 0 else wr.tail(log)):
            h, cols = history(out)
            check(cols[2:4] == ["kl_model_stationary", "kl_stationary_model"] and np.isfinite(h[-1, 2:]).all(),
                  "d. mixture metrics against the stationary mixture", "columns %s, last row %s" % (cols, h[-1]))

        # e. bad input
        keep = os.path.join(tmp, "keep.h5")
        with open(keep, "wb") as f:
            f.write(b"an earlier result")
        for extra, expect in ((["-method", "foo"], "-method"), (["-jko_h", "0.0105"], "-jko_h"),
                              (["-em_particles", "1"], "-em_particles"), (["-em_model_samples", "foo"], "-em_model_samples"),
                              (["-em_model_samples", "particles", "-em_particles", "100"], "-eval_samples")):
            code, log, _ = em(2, OU + extra, keep)
            msg = [l for l in wr.message_lines(log) if expect in l]
            with open(keep, "rb") as f:
                same = f.read() == b"an earlier result"
            check(code not in (0, None) and msg and same, "e. %s is refused" % " ".join(extra),
                  "exit %s, -output %s: %s" % (code, "unchanged" if same else "CHANGED", msg[0].strip()[:140] if msg else wr.tail(log)))
        code, log, _ = wr.run(args, args.baseline, 1, OU)
        msg = [l for l in wr.message_lines(log) if "-output" in l]
        check(code not in (0, None) and msg, "e. no -output is refused", msg[0].strip()[:140] if msg else wr.tail(log))
    print("%d failure(s)" % check.failures)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
