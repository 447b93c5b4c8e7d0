#!/usr/bin/env python3
"""Check wgf-sample: samples of rho_K of a checkpoint and their log densities.

Runs the tiny protocol (--opts, default input/ou_tiny.opts; input/blr_tiny.opts with its data in
--extra) on 2 ranks with -seed 3, then wgf-sample on its final checkpoint (map 3):
  a. -n 1000 on 1, 2 and 3 ranks: exit 0, and the three files are the same bytes (1000 is not a
     multiple of the ranks' shares, on purpose); -n 2 on 3 ranks (ranks without rows) gives the
     first 2 rows of the 1000 bitwise (sample i is keyed by its global index);
  b. the layout: /samples (1000 x D) and /logrho (1000) float64 and finite, root attributes
     params (the checkpoint's path), map 3, seed 3 (the run's, the default) and samples 1000;
  c. /logrho equals wgf-eval -logdensity at /samples (inversion of the maps by Newton to the
     tight NEWTON tolerances, a second algorithm) to LOGRHO_TOL, every point converged; wgf-eval
     reads points in the problem's coordinates, so for blr this also checks that the samples are
     in theta and not in the flow's own coordinates;
  d. -seed 4 gives other samples (no row in common), with attribute seed 4;
  e. -map 1 on the final checkpoint gives rho_1: its datasets equal bitwise those of the default
     map of ckpt_0001.h5, its /logrho equals wgf-eval -map 1 -logdensity at its samples, and
     differs from wgf-eval -map 3 there (so -map is not ignored);
  f. (OU) -map 0 gives rho_0 = N(mu0, S0) of /problem: /logrho equals the Gaussian log density
     computed here (1e-12 relative), and over N_MOMENTS samples the mean and covariance agree with
     mu0 and S0 within 5 standard errors;
  g. (OU) bad input stops with a non-zero status, a message naming the option and its value (or
     the file), no hang on 3 ranks, no OUT.partial left, and an existing OUT byte-identical
     afterwards (no OUT created where none was): no -params, an unreadable -params, a -params that
     is not HDF5 or not a checkpoint, no -n, -n 0, -n -5, no -output, an -output in a missing
     folder, -map -1, -map 4 (the last is 3), -seed -1, and -output naming the -params file.

Usage: check_wgf_sample.py WGF WGF_EVAL WGF_SAMPLE [--mpiexec "mpiexec --oversubscribe -n"] [--opts FILE] [--extra=...]
Prints one line per check; exit status 1 on any failure, 0 otherwise.
"""

import os
import sys
import tempfile

import h5py
import numpy as np

import make_case
import wgf_runner as wr

N = 1000
N_MOMENTS = 20000
LAST = 3          # the tiny protocols' -jko_steps
# wgf-eval inverts the maps with Newton to NEWTON (relative, absolute): wgf-sample's log densities,
# computed along the chain, then agree to about 1e-12 on log densities of order 1 to 10 (measured
# 2026-12-02: 1.2e-12 blr, OU below; with wgf-eval's default tolerance 1e-10 the gap is 8e-9)
NEWTON = ["-flow_newton_rtol", "1e-14", "-flow_newton_atol", "1e-15"]
LOGRHO_TOL = 1e-10


def sample(args, nranks, out, *options):
    return wr.run(args, args.wgf_sample, nranks, ["-output", out] + [str(o) for o in options])


def read(path):
    with h5py.File(path, "r") as f:
        return {"samples": f["samples"][()], "logrho": f["logrho"][()],
                "attrs": {k: (wr.attr_str(v) if k == "params" else int(v)) for k, v in f.attrs.items()}}


def bitwise(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def eval_logrho(args, tmp, ckpt, x, k, tag):
    """wgf-eval -logdensity -map k at the points x (2 ranks): (logrho, converged) or None."""
    pts, out = os.path.join(tmp, "pts_%s.h5" % tag), os.path.join(tmp, "eval_%s.h5" % tag)
    make_case.write_points(pts, x)
    code, log, _ = wr.run(args, args.wgf_eval, 2, ["-params", ckpt, "-points", pts, "-output", out, "-map", k, "-logdensity"] + NEWTON)
    if code != 0:
        print(wr.tail(log))
        return None
    with h5py.File(out, "r") as f:
        return f["logrho"][()], f["converged"][()]


def check_data(check, args, tmp, ckpt, ou):
    files = {}
    for nr in (1, 2, 3):
        out = os.path.join(tmp, "s%d.h5" % nr)
        code, log, secs = sample(args, nr, out, "-params", ckpt, "-n", N)
        if check(code == 0 and os.path.exists(out), "a. -n %d on %d rank(s)" % (N, nr), "exit %s in %.1f s" % (code, secs) + ("" if code == 0 else "\n" + wr.tail(log))):
            files[nr] = open(out, "rb").read()
    if 1 not in files:
        return
    for nr in (2, 3):
        if nr in files:
            check(files[nr] == files[1], "a. the file of %d ranks is the same bytes as 1 rank's" % nr, "%d and %d bytes" % (len(files[nr]), len(files[1])))
    ref = read(os.path.join(tmp, "s1.h5"))
    two = os.path.join(tmp, "two.h5")
    code, log, _ = sample(args, 3, two, "-params", ckpt, "-n", 2)
    if check(code == 0, "a. -n 2 on 3 ranks (a rank without rows)", "" if code == 0 else wr.tail(log)):
        t = read(two)
        check(bitwise(t["samples"], ref["samples"][:2]) and bitwise(t["logrho"], ref["logrho"][:2]), "a. ... gives the first 2 of the %d samples bitwise" % N)

    # b. layout
    x, lr, at = ref["samples"], ref["logrho"], ref["attrs"]
    with h5py.File(ckpt, "r") as f:
        D = int(f["icnn"].attrs["dim"])
    want = {"params": ckpt, "map": LAST, "seed": args.seed, "samples": N}
    check(x.shape == (N, D) and x.dtype == np.float64 and lr.shape == (N,) and lr.dtype == np.float64
          and np.isfinite(x).all() and np.isfinite(lr).all() and at == want,
          "b. /samples %s, /logrho %s, float64, finite; attributes params, map %s, seed %s, samples %s" % (x.shape, lr.shape, at.get("map"), at.get("seed"), at.get("samples")),
          "" if at == want else "attributes %s, expected %s" % (at, want))

    # c. against the inversion
    ev = eval_logrho(args, tmp, ckpt, x, LAST, "c")
    if check(ev is not None, "c. wgf-eval -logdensity at the samples"):
        d = np.max(np.abs(ev[0] - lr))
        check(ev[1].all() and d <= LOGRHO_TOL, "c. /logrho equals wgf-eval -logdensity (inversion) at /samples",
              "max |diff| %.2e (tolerance %.0e), %d of %d converged, log rho in [%.2f, %.2f]" % (d, LOGRHO_TOL, ev[1].sum(), N, lr.min(), lr.max()))

    # d. another seed
    s4 = os.path.join(tmp, "seed4.h5")
    code, log, _ = sample(args, 2, s4, "-params", ckpt, "-n", N, "-seed", args.seed + 1)
    if check(code == 0, "d. -seed %d" % (args.seed + 1), "" if code == 0 else wr.tail(log)):
        o = read(s4)
        common = np.sum(np.all(o["samples"] == x, axis=1))
        check(common == 0 and o["attrs"]["seed"] == args.seed + 1, "d. -seed %d gives other samples" % (args.seed + 1),
              "%d rows in common, attribute seed %d" % (common, o["attrs"]["seed"]))

    # e. -map 1
    m1, c1 = os.path.join(tmp, "map1.h5"), os.path.join(tmp, "ckpt1.h5")
    code1, log1, _ = sample(args, 3, m1, "-params", ckpt, "-n", N, "-map", 1)
    code2, log2, _ = sample(args, 2, c1, "-params", os.path.join(os.path.dirname(ckpt), "ckpt_0001.h5"), "-n", N)
    if check(code1 == 0 and code2 == 0, "e. -map 1 of the last checkpoint, and the default map of ckpt_0001.h5",
             "" if code1 == code2 == 0 else wr.tail(log1 + log2)):
        a, b = read(m1), read(c1)
        check(bitwise(a["samples"], b["samples"]) and bitwise(a["logrho"], b["logrho"]) and a["attrs"]["map"] == b["attrs"]["map"] == 1,
              "e. ... the same samples and densities bitwise, attribute map 1")
        e1, e3 = eval_logrho(args, tmp, ckpt, a["samples"], 1, "e1"), eval_logrho(args, tmp, ckpt, a["samples"], LAST, "e3")
        if check(e1 is not None and e3 is not None, "e. wgf-eval -logdensity -map 1 and -map %d at those samples" % LAST):
            d1, d3 = np.max(np.abs(e1[0] - a["logrho"])), np.max(np.abs(e3[0] - a["logrho"]))
            check(e1[1].all() and d1 <= LOGRHO_TOL and d3 > 100 * LOGRHO_TOL,
                  "e. /logrho of -map 1 is log rho_1 (wgf-eval -map 1), not log rho_%d" % LAST,
                  "max |diff| %.2e to rho_1, %.2e to rho_%d" % (d1, d3, LAST))

    # f. rho_0 = N(mu0, S0)
    if not ou:
        return
    m0 = os.path.join(tmp, "map0.h5")
    code, log, _ = sample(args, 3, m0, "-params", ckpt, "-n", N_MOMENTS, "-map", 0)
    if not check(code == 0, "f. -map 0 -n %d on 3 ranks" % N_MOMENTS, "" if code == 0 else wr.tail(log)):
        return
    z = read(m0)
    with h5py.File(ckpt, "r") as f:
        mu0, S0 = f["problem"]["mu0"][()], f["problem"]["S0"][()]
    y, L = z["samples"], np.linalg.cholesky(S0)
    r = np.linalg.solve(L, (y - mu0).T)
    exact = -0.5 * np.sum(r * r, axis=0) - np.sum(np.log(np.diag(L))) - 0.5 * D * np.log(2 * np.pi)
    rel = np.max(np.abs(exact - z["logrho"])) / np.max(np.abs(exact))
    check(rel <= 1e-12 and z["attrs"]["map"] == 0, "f. /logrho of -map 0 is the N(mu0, S0) log density", "rel diff %.2e" % rel)
    n = len(y)
    mz = np.abs(y.mean(axis=0) - mu0) / np.sqrt(np.diag(S0) / n)
    C = np.cov(y.T, bias=True)
    sd = np.sqrt((np.outer(np.diag(S0), np.diag(S0)) + S0 ** 2) / n)  # sd of a sample covariance entry (Gaussian)
    cz = np.abs(C - S0) / sd
    check(mz.max() < 5 and cz.max() < 5, "f. the mean and covariance of %d samples of rho_0 are mu0 and S0" % n,
          "largest deviations %.2f and %.2f standard errors" % (mz.max(), cz.max()))


def check_errors(check, args, tmp, ckpt):
    good = ["-params", ckpt, "-n", "10"]
    notes = os.path.join(tmp, "notes.txt")
    with open(notes, "w") as f:
        f.write("not a checkpoint\n")
    net = os.path.join(tmp, "net.h5")  # an HDF5 file with a network but no /problem: wgf-eval's input
    with h5py.File(ckpt, "r") as f:
        at, theta = dict(f["icnn"].attrs), f["maps"]["0001"]["params"][()]
    make_case.write_params(net, int(at["dim"]), list(at["widths"]), int(at["rank"]), float(at["strong_convexity"]), {1: theta})
    copy = os.path.join(tmp, "copy.h5")
    with open(ckpt, "rb") as f, open(copy, "wb") as g:
        g.write(f.read())
    nodir = os.path.join(tmp, "no_such_dir", "o.h5")
    missing = os.path.join(tmp, "missing.h5")
    # (name, options without -output, -output (None: the sentinel file), strings the message must hold, ranks)
    cases = [
        ("no -params", ["-n", "10"], None, ["-params", "required"], (1,)),
        ("unreadable -params", ["-params", missing, "-n", "10"], None, ["-params", missing], (1, 3)),
        ("-params not HDF5", ["-params", notes, "-n", "10"], None, ["notes.txt"], (1,)),
        ("-params without /problem", ["-params", net, "-n", "10"], None, ["net.h5", "/problem"], (1,)),
        ("no -n", ["-params", ckpt], None, ["-n N", "required"], (1,)),
        ("-n 0", ["-params", ckpt, "-n", "0"], None, ["-n 0"], (1,)),
        ("-n -5", ["-params", ckpt, "-n", "-5"], None, ["-n -5"], (1,)),
        ("no -output", good, "", ["-output", "required"], (1,)),
        ("-output in a missing folder", good, nodir, ["-output", nodir], (1,)),
        ("-map -1", good + ["-map", "-1"], None, ["-map -1"], (1,)),
        ("-map 4", good + ["-map", "4"], None, ["-map 4", "0 .. 3"], (1, 3)),
        ("-seed -1", good + ["-seed", "-1"], None, ["-seed -1"], (1,)),
        ("-output = -params", ["-params", copy, "-n", "10"], copy, ["-output", "-params", "copy.h5"], (1,)),
    ]
    sentinel = os.path.join(tmp, "old_out.h5")
    for name, options, output, expect, ranks in cases:
        for nr in ranks:
            with open(sentinel, "wb") as f:
                f.write(b"an earlier result\n")
            out = sentinel if output is None else output
            watched = [p for p in (out, copy) if p]
            before = {p: wr.snapshot(p) for p in watched}
            code, log, secs = wr.run(args, args.wgf_sample, nr, options + (["-output", out] if out else []))
            message, problems = wr.error_report(code, log, "wgf-sample")
            if not all(e in message for e in expect):
                problems.append("the message does not hold %s" % expect)
            after = {p: wr.snapshot(p) for p in watched}
            partial = [p for p in os.listdir(tmp) if p.endswith(".partial")] + (os.listdir(os.path.dirname(nodir)) if os.path.isdir(os.path.dirname(nodir)) else [])
            ok = not problems and after == before and not partial
            check(ok, "g. %s on %d rank(s) is refused, once, in the short form" % (name, nr), "exit %s in %.1f s%s%s: %s%s" % (
                code, secs, "" if after == before else ", A FILE CHANGED", ", left %s" % partial if partial else "",
                message[:150], "" if not problems else " (%s)\n%s" % ("; ".join(problems), wr.tail(log))))


def main():
    args = wr.parse_args(__doc__, with_eval=True, seed=3, tools=("wgf_sample",))
    failures = []

    def check(ok, what, detail=""):
        print("%s %s%s" % ("ok  " if ok else "FAIL", what, (": " + detail) if detail else ""), flush=True)
        if not ok:
            failures.append(what)
        return ok

    with tempfile.TemporaryDirectory(prefix="wgf_check_sample_") as tmp:
        run_dir = os.path.join(tmp, "run")
        code, log, secs = wr.run_wgf(args, 2, run_dir)
        ckpt = wr.last_checkpoint(run_dir)
        if not check(code == 0 and ckpt is not None and ckpt.endswith("ckpt_%04d.h5" % LAST), "the tiny run on 2 ranks",
                     "exit %s in %.1f s, %s" % (code, secs, ckpt) + ("" if code == 0 else "\n" + wr.tail(log))):
            print("%d failure(s)" % len(failures))
            return 1
        with h5py.File(ckpt, "r") as f:
            problem = wr.attr_str(f["problem"].attrs["type"])
        print("     problem %s, checkpoint %s" % (problem, os.path.basename(ckpt)))
        check_data(check, args, tmp, ckpt, problem == "ou")
        if problem == "ou":
            check_errors(check, args, tmp, ckpt)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
