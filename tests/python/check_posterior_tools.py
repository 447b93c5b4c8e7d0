#!/usr/bin/env python3
"""Check the tools of jobs/posterior against independent computations.

  a. split.py: the train and test files partition the rows (80/20, disjoint, every row once, the
     labels with their rows), the same seed gives the same split and another seed another;
  b. reference_sampler.py on a d = 1 posterior (theta = (w, log alpha), 40 synthetic rows): the
     means of w and log alpha and the variance of w of its draws against a 2-D quadrature of the
     unnormalised posterior written here (a 700 x 900 grid), within 5 standard errors (from the
     sampler's own effective sample size); R-hat below 1.01;
  c. compare.py's Gaussian KL against the closed form for two known Gaussians, and 0 for a sample
     against itself.
Exit status 1 on any failure.
"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
JOBS = os.path.normpath(os.path.join(HERE, "..", "..", "jobs", "posterior"))
sys.path.insert(0, JOBS)
import compare  # noqa: E402

failures = []


def check(ok, what, detail=""):
    print("%s %s%s" % ("ok  " if ok else "FAIL", what, (": " + detail) if detail else ""))
    if not ok:
        failures.append(what)


def run(*args):
    p = subprocess.run([sys.executable] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    if p.returncode != 0:
        print(p.stdout.decode(errors="replace"))
    return p.returncode


def main():
    with tempfile.TemporaryDirectory(prefix="wgf_check_posterior_") as tmp:
        # a. split.py
        rng = np.random.default_rng(3)
        X = np.arange(57 * 3, dtype=float).reshape(57, 3)
        y = np.where(rng.random(57) < 0.5, 1, -1).astype(np.int8)
        src = os.path.join(tmp, "toy.h5")
        with h5py.File(src, "w") as f:
            f["X"], f["y"] = X, y
        parts = {}
        for seed, out in ((4, "a"), (4, "b"), (5, "c")):
            code = run(os.path.join(JOBS, "split.py"), src, str(seed), os.path.join(tmp, out))
            tr = h5py.File(os.path.join(tmp, out, "toy_s%d_train.h5" % seed), "r")
            te = h5py.File(os.path.join(tmp, out, "toy_s%d_test.h5" % seed), "r")
            parts[out] = (code, tr["X"][()], tr["y"][()], te["X"][()], te["y"][()])
        code, xtr, ytr, xte, yte = parts["a"]
        rows_tr, rows_te = (xtr[:, 0] / 3).astype(int), (xte[:, 0] / 3).astype(int)
        check(code == 0 and len(rows_tr) == 46 and len(rows_te) == 11 and sorted(np.r_[rows_tr, rows_te]) == list(range(57))
              and (ytr == y[rows_tr]).all() and (yte == y[rows_te]).all(), "a. split.py partitions the rows 46/11 with their labels")
        check(all((p == q).all() for p, q in zip(parts["a"][1:], parts["b"][1:])) and not np.array_equal(parts["a"][1], parts["c"][1]),
              "a. the same seed gives the same split, another seed another")

        # b. the HMC sampler on d = 1 against quadrature
        n, b = 40, 100.0
        u = np.random.default_rng(11).standard_normal(n)
        t = np.where(np.random.default_rng(12).random(n) < 1 / (1 + np.exp(-1.5 * u)), 1.0, -1.0)
        train = os.path.join(tmp, "d1.h5")
        with h5py.File(train, "w") as f:
            f["X"], f["y"] = u[:, None], t.astype(np.int8)
        ref = os.path.join(tmp, "d1_ref.h5")
        code = run(os.path.join(JOBS, "reference_sampler.py"), train, ref, "--samples", "3000", "--seed", "2")
        if code == 0:
            with h5py.File(ref, "r") as f:
                s, ess, rhat = f["samples"][()], f["ess"][()], f["rhat"][()]
            w = np.linspace(-3, 8, 700)
            a = np.linspace(-20, 4, 900)
            W, A = np.meshgrid(w, a, indexing="ij")
            ea = np.exp(A)
            z = W[..., None] * (t * u)[None, None, :]
            logp = np.log(b) + A - b * ea + 0.5 * A - 0.5 * ea * W * W - np.logaddexp(0, -z).sum(axis=2)
            p = np.exp(logp - logp.max())
            p /= p.sum()
            mw, ma = (p * W).sum(), (p * A).sum()
            vw, va = (p * (W - mw) ** 2).sum(), (p * (A - ma) ** 2).sum()
            # the grid must hold the mass: the edges carry almost none
            edge = p[0, :].sum() + p[-1, :].sum() + p[:, 0].sum() + p[:, -1].sum()
            sw, sa = s[:, 0], s[:, 1]
            se_mw, se_ma = np.sqrt(vw / ess[0]), np.sqrt(va / ess[1])
            se_vw = vw * np.sqrt(2 / ess[0]) * 1.5  # the variance's error, with a margin for its kurtosis
            check(edge < 1e-6, "b. the quadrature grid holds the posterior", "mass on its edges %.1e" % edge)
            check(abs(sw.mean() - mw) < 5 * se_mw, "b. HMC mean of w against quadrature", "%.5f vs %.5f (se %.4f)" % (sw.mean(), mw, se_mw))
            check(abs(sa.mean() - ma) < 5 * se_ma, "b. HMC mean of log alpha against quadrature", "%.4f vs %.4f (se %.4f)" % (sa.mean(), ma, se_ma))
            check(abs(sw.var() - vw) < 5 * se_vw, "b. HMC variance of w against quadrature", "%.5f vs %.5f (se %.4f)" % (sw.var(), vw, se_vw))
            check(rhat.max() < 1.01, "b. R-hat below 1.01", "max %.4f, min ESS %.0f" % (rhat.max(), ess.min()))
        else:
            check(False, "b. reference_sampler.py ran")

        # c. compare.py's KL
        m0, m1 = np.array([0.0, 1.0]), np.array([0.5, -1.0])
        S0, S1 = np.array([[2.0, 0.3], [0.3, 1.0]]), np.array([[1.0, -0.2], [-0.2, 0.5]])
        S1i = np.linalg.inv(S1)
        want = 0.5 * (np.trace(S1i @ S0) + (m1 - m0) @ S1i @ (m1 - m0) - 2 + np.log(np.linalg.det(S1) / np.linalg.det(S0)))
        got = compare.gauss_kl(m0, S0, m1, S1)
        smp = np.random.default_rng(0).standard_normal((500, 3))
        self_kl = compare.stats(smp, smp)
        check(abs(got - want) < 1e-12 and abs(self_kl["kl_theta"]) < 1e-10 and self_kl["mean_w_relerr"] == 0,
              "c. compare.py's Gaussian KL", "%.15f vs %.15f; a sample against itself %.1e" % (got, want, self_kl["kl_theta"]))
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
