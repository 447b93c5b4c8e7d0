#!/usr/bin/env python3
"""Check the filtering problem end to end: the normalised density, its consistency across ways
and rank counts, the baselines, and the weights of the observations.

One run of the tiny filtering protocol (input/filtering_tiny.opts: D = 1, 5 steps of h = 0.1,
observations simulated from -seed at t = 0.2 and 0.4, i.e. steps 2 and 4, pool of 1001 draws of
rho_0) on 2 ranks, in double precision (wgf_runner.protocol), then:

  a. normalisation: wgf-eval -logdensity on GRID_POINTS points of [-GRID_L, GRID_L] for maps
     1, 2, 3 and 5 of the last checkpoint; every point converged, and the trapezoid integral of
     exp(logrho) is 1 within 4 /normalizer/log_z_se[k] + 1e-3 (the pool's estimate of log Z_k
     has that standard error; the grid's own error is far below 1e-3). Positive control: with
     log Z_k left out (log_z[k] added back) the integral, exp(log_z[k]), must miss 1 by more than
     that bound at every map whose log_z[k] is not 0, so the check can fail;
  b. consistency: /particles/logrho of the last checkpoint (carried along the chain, plus
     log W - log Z of the pool point each particle was resampled from) against wgf-eval
     -logdensity at /particles/x (inversion by Newton, plus log W at the inverted positions):
     max abs difference below LOGRHO_TOL, every point converged;
  c. wgf-eval of the last map on the grid on 1 and 3 ranks: the same /logrho to 1e-10 relative;
  d. wgf-baseline -method changcooper with the same options file and -seed: every row of
     /grid/density integrates to 1 (sum density dx) within 1e-9, /grid/t is the observation times
     then t_final (0.2, 0.4, 0.6); -method pf with PF_PARTICLES particles on 1 and 2 ranks: exit 0,
     the /history symkl finite and below PF_SYMKL_BOUND, the same on both rank counts to 1e-10;
  e. the weights: /normalizer/log_z (one entry per step 0..5) is exactly 0 before the first
     observed step 2 and strictly negative from it on, changes only at the observed steps 2
     and 4; /normalizer/ess equals the pool size 1001 before step 2 and is less from it on; the
     /normalizer of every earlier checkpoint is the prefix of the last one's.

Usage: check_wgf_filtering.py WGF_PATH WGF_EVAL_PATH WGF_BASELINE_PATH [--mpiexec "mpiexec --oversubscribe -n"]
                              [--opts FILE (default: input/filtering_tiny.opts)] [--seed N]
Prints one line per check; exit status 1 on any failure, 0 otherwise.
"""

import math
import os
import sys
import tempfile

import h5py
import numpy as np

import wgf_runner as wr

FILTERING_OPTS = os.path.normpath(os.path.join(wr.HERE, "..", "..", "input", "filtering_tiny.opts"))
NRANKS = 2
GRID_L, GRID_POINTS = 8.0, 4001
GRID_MAPS = (1, 2, 3, 5)
NORM_SE_FACTOR, NORM_ABS = 4.0, 1e-3
# Measured on the tiny protocol, seed 0, 2 ranks: |1 - integral| 6e-13 (map 1, log Z = 0), 3.4e-2
# (maps 2 and 3: 1.3 standard errors of log_z, 0.026), 6.6e-2 (map 5: 1.7 of 0.038); without log Z
# the integrals are 0.16 (maps 2, 3) and 0.044 (map 5). /particles/logrho vs the inversion: 3.8e-10
# (Newton's tolerance on the inverted points; both add the same log W and log Z). wgf-eval 3 vs 1
# rank: 0. changcooper masses: 1 within 2e-14. pf (3000 particles): symkl 0.0129 on 1 and 2 ranks
# (rel diff 0), log evidence -3.090 (the flow's log_z at step 4: -3.190).
LOGRHO_TOL = 1e-8
RANK_REL_TOL = 1e-10
CC_NORM_TOL = 1e-9
PF_PARTICLES = 3000
PF_SYMKL_BOUND = 0.1
OBSERVED = (2, 4)


def write_points(path, x):
    with h5py.File(path, "w") as f:
        f.create_dataset("points", data=np.asarray(x, dtype=np.float64).reshape(len(x), -1))


def eval_logdensity(args, check, tmp, ckpt, points, k, nranks, label):
    """wgf-eval -logdensity of map k (0: the last) at points; (logrho, converged) or None."""
    out = os.path.join(tmp, "eval_%s_map%d_np%d.h5" % (label, k, nranks))
    opts = ["-params", ckpt, "-points", points, "-output", out, "-logdensity"] + (["-map", str(k)] if k else [])
    code, log, secs = wr.run(args, args.wgf_eval, nranks, opts)
    if not check(code == 0 and os.path.exists(out), "wgf-eval -logdensity %s, map %s, on %d rank(s)" % (label, k or "last", nranks),
                 "%.1f s" % secs if code == 0 else "exit %s\n%s" % (code, wr.tail(log))):
        return None
    with h5py.File(out, "r") as f:
        return f["logrho"][()].reshape(-1), f["converged"][()].reshape(-1)


def normalizer(path):
    with h5py.File(path, "r") as f:
        return {n: f["normalizer/" + n][()] for n in ("log_z", "log_z_se", "ess")}


def part_normalisation(args, check, tmp, last, norm):
    """(a) and (c)."""
    x = np.linspace(-GRID_L, GRID_L, GRID_POINTS)
    grid = os.path.join(tmp, "grid.h5")
    write_points(grid, x)
    nsteps = len(norm["log_z"]) - 1
    lastrho = None
    for k in GRID_MAPS:
        if k > nsteps:
            check(False, "a. map %d" % k, "the run has %d steps" % nsteps)
            continue
        got = eval_logdensity(args, check, tmp, last, grid, k, 1, "grid")
        if got is None:
            continue
        logrho, conv = got
        if k == nsteps:
            lastrho = logrho
        ok_conv = logrho.shape == x.shape and bool(np.all(conv == 1)) and bool(np.all(np.isfinite(logrho)))
        integral = float(np.trapz(np.exp(logrho), x)) if ok_conv else float("nan")
        lz, se = float(norm["log_z"][k]), float(norm["log_z_se"][k])
        bound = NORM_SE_FACTOR * se + NORM_ABS
        check(ok_conv and abs(integral - 1) <= bound, "a. map %d: trapezoid integral of exp(logrho) on [-%g, %g], %d points" % (k, GRID_L, GRID_L, GRID_POINTS),
              "%.6f, |1 - integral| = %.2e, bound 4 x log_z_se %.4f + 1e-3 = %.2e; %d of %d converged; edges exp(logrho) %.1e, %.1e"
              % (integral, abs(integral - 1), se, bound, int(np.sum(conv == 1)), len(x), math.exp(logrho[0]) if ok_conv else float("nan"),
                 math.exp(logrho[-1]) if ok_conv else float("nan")))
        if lz != 0 and ok_conv:
            unnorm = float(np.trapz(np.exp(logrho + lz), x))
            check(abs(unnorm - 1) > bound, "a. control, map %d: without log Z (log_z %.5f added back) the integral misses 1" % (k, lz),
                  "%.6f, |1 - integral| = %.2e > %.2e" % (unnorm, abs(unnorm - 1), bound))
    if lastrho is None:
        check(False, "c. no 1-rank evaluation of the last map to compare with")
        return
    got = eval_logdensity(args, check, tmp, last, grid, nsteps, 3, "grid")
    if got is not None:
        d = wr.rel_diff(got[0], lastrho)
        check(d <= RANK_REL_TOL, "c. wgf-eval of map %d on the grid: 3 ranks vs 1 rank" % nsteps, "rel diff %.3e (bound %.0e)" % (d, RANK_REL_TOL))


def part_consistency(args, check, tmp, last):
    """(b)."""
    with h5py.File(last, "r") as f:
        px, plr = f["particles/x"][()], f["particles/logrho"][()]
    pts = os.path.join(tmp, "particles.h5")
    write_points(pts, px)
    got = eval_logdensity(args, check, tmp, last, pts, 0, NRANKS, "particles")
    if got is None:
        return
    logrho, conv = got
    ok = logrho.shape == plr.shape and bool(np.all(conv == 1))
    err = float(np.max(np.abs(logrho - plr))) if ok else float("inf")
    check(ok and err < LOGRHO_TOL, "b. /particles/logrho vs wgf-eval -logdensity at /particles/x (%d particles)" % len(plr),
          "max abs diff %.3e (bound %.0e), %d of %d converged" % (err, LOGRHO_TOL, int(np.sum(conv == 1)), len(conv)))


def part_weights(check, files, norm):
    """(e)."""
    lz, ess = norm["log_z"], norm["ess"]
    nsteps = len(lz) - 1
    pool = int(wr.read_options_file(check.opts).get("filter_pool", 0))
    first = OBSERVED[0]
    before, after = range(0, first), range(first, nsteps + 1)
    check(len(lz) == len(ess) == len(norm["log_z_se"]) == nsteps + 1 and nsteps >= OBSERVED[-1],
          "e. /normalizer has one entry per step 0..%d" % nsteps, "log_z %s" % np.array2string(lz, precision=5))
    check(all(lz[k] == 0 for k in before) and all(lz[k] < 0 for k in after),
          "e. log_z is 0 before step %d and < 0 from it on" % first, np.array2string(lz, precision=5))
    changes = [k for k in range(1, nsteps + 1) if lz[k] != lz[k - 1]]
    check(changes == [k for k in OBSERVED if k <= nsteps], "e. log_z changes exactly at the observed steps %s" % (OBSERVED,), "changes at %s" % changes)
    check(pool > 0 and all(ess[k] == pool for k in before) and all(ess[k] < pool for k in after),
          "e. ess is the pool size %d before step %d and less from it on" % (pool, first), np.array2string(ess, precision=2))
    bad = []
    for path in files[:-1]:
        n = normalizer(path)
        m = len(n["log_z"])
        if any(not np.array_equal(n[key], norm[key][:m]) for key in n):
            bad.append(os.path.basename(path))
    check(not bad, "e. the /normalizer of every earlier checkpoint is the prefix of the last one's", "differ: %s" % bad if bad else "%d checkpoints" % (len(files) - 1))


def part_baselines(args, check, tmp):
    """(d)."""
    base = ["-options_file", args.opts, "-seed", str(args.seed)]
    out = os.path.join(tmp, "cc.h5")
    code, log, secs = wr.run(args, args.wgf_baseline, 1, base + ["-method", "changcooper", "-output", out])
    if check(code == 0 and os.path.exists(out), "d. wgf-baseline -method changcooper", "%.1f s" % secs if code == 0 else "exit %s\n%s" % (code, wr.tail(log))):
        o = wr.read_options_file(args.opts)
        with h5py.File(out, "r") as f:
            gx, gt, gp = f["grid/x"][()], f["grid/t"][()], f["grid/density"][()]
        dx = float(gx[1] - gx[0])
        mass = gp.sum(axis=1) * dx
        check(bool(np.all(np.abs(mass - 1) <= CC_NORM_TOL)), "d. changcooper: every /grid/density row sums to 1 (sum density dx)",
              "%s, max |1 - mass| %.2e" % (np.array2string(mass, precision=12), float(np.max(np.abs(mass - 1)))))
        every, tf = float(o["filter_obs_every"]), float(o["filter_t_final"])
        want = [every * j for j in range(1, 100) if every * j < tf * (1 - 1e-12)] + [tf]
        check(gt.shape == (len(want),) and np.allclose(gt, want, rtol=0, atol=1e-12), "d. changcooper: /grid/t is the observation times and t_final",
              "%s (expected %s)" % (gt.tolist(), want))
    symkl = {}
    for nranks in (1, 2):
        out = os.path.join(tmp, "pf_np%d.h5" % nranks)
        code, log, secs = wr.run(args, args.wgf_baseline, nranks, base + ["-method", "pf", "-pf_particles", str(PF_PARTICLES), "-output", out])
        if not check(code == 0 and os.path.exists(out), "d. wgf-baseline -method pf -pf_particles %d on %d rank(s)" % (PF_PARTICLES, nranks),
                     "%.1f s" % secs if code == 0 else "exit %s\n%s" % (code, wr.tail(log))):
            continue
        hist, cols = wr.history(out)
        s = float(hist[-1, cols.index("symkl")]) if "symkl" in cols else float("nan")
        symkl[nranks] = s
        with h5py.File(out, "r") as f:
            ev = float(f.attrs.get("log_evidence", float("nan")))
        check(math.isfinite(s) and s < PF_SYMKL_BOUND, "d. pf on %d rank(s): /history symkl to Chang-Cooper at t_final" % nranks,
              "%.5f (bound %.2f), log evidence %.5f" % (s, PF_SYMKL_BOUND, ev))
    if len(symkl) == 2:
        d = abs(symkl[2] - symkl[1]) / max(abs(symkl[1]), 1e-300)
        check(d <= RANK_REL_TOL, "d. pf: the same symkl on 1 and 2 ranks", "rel diff %.3e (bound %.0e)" % (d, RANK_REL_TOL))


def main():
    args = wr.parse_args(__doc__, with_eval=True, tools=("wgf_baseline",))
    if not any(a == "--opts" or a.startswith("--opts=") for a in sys.argv[1:]):
        args.opts = FILTERING_OPTS
    check = wr.Checks()
    check.opts = args.opts
    with tempfile.TemporaryDirectory(prefix="wgf_check_filtering_") as tmp:
        out = os.path.join(tmp, "run")
        code, log, secs = wr.run_wgf(args, NRANKS, out)
        files = wr.checkpoints(out)
        if not check(code == 0 and files, "tiny filtering protocol on %d ranks" % NRANKS,
                     "%.1f s, %d checkpoints" % (secs, len(files)) if code == 0 else "exit %s\n%s" % (code, wr.tail(log))):
            print("%d failure(s)" % check.failures)
            return 1
        last = files[-1]
        norm = normalizer(last)
        part_weights(check, files, norm)
        part_normalisation(args, check, tmp, last, norm)
        part_consistency(args, check, tmp, last)
        part_baselines(args, check, tmp)
    print("%d failure(s)" % check.failures)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
