#!/usr/bin/env python3
"""Checks of the accuracy study's tools (jobs/accuracy/): the exact Gaussian JKO scheme of
compare_reference.py, whose SymKL to the exact law is the floor that belongs to the time step, and
the reference's targets of ou_reference_problems.py.

  * D = 1: the JKO step against the root of the scalar quadratic (s - 1) sig/h + a s sig = 1/s and
    the mean against (mu + h a m) / (1 + h a);
  * diagonal A and S0 (D = 3): every coordinate is the scalar problem;
  * a general A and S0 (D = 4): the free energy of the JKO step, evaluated directly, is larger
    at random symmetric perturbations of the solution's S and mean;
  * the floor is O(h^2) (halving h divides it by about 4) and 0 at h -> 0 only;
  * the targets: cov symmetric positive definite with the spectrum of 1 1^T + diag(u) (the
    all-ones matrix that scikit-learn adds), m of length D, distinct targets for distinct runs;
  * the paper's mixtures of mixture_reference_problems.py: its mt19937 gives the standard's
    known answer (10000th output 4123659995 from the default seed 5489, C++ [rand.predef]), a
    float is the low 24 bits times 2^-24 (exactly representable in float32, in [0, 1)), the
    centres lie in [-a, a] and are float32 values, distinct runs and keys give distinct mixtures.
Exit status 1 on any failure.
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "jobs", "accuracy"))
import compare_reference as cr  # noqa: E402
import mixture_reference_problems as mrp  # noqa: E402
import ou_reference_problems as orp  # noqa: E402

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def scalar_step(a, m, mu, sig, h):
    c2, c1 = sig / h + a * sig, -sig / h
    s = (-c1 + np.sqrt(c1 * c1 + 4.0 * c2)) / (2.0 * c2)
    return (mu + h * a * m) / (1.0 + h * a), s * sig * s


def free_energy(mu1, s, mu, sig, a, m, h):
    """JKO objective of the affine map x -> mu1 + s (x - mu) on N(mu, sig), up to constants."""
    eye = np.eye(len(mu))
    w2 = (mu1 - mu) @ (mu1 - mu) + np.trace((s - eye) @ sig @ (s - eye))
    pot = 0.5 * ((mu1 - m) @ a @ (mu1 - m) + np.trace(a @ s @ sig @ s))
    ent = -0.5 * np.linalg.slogdet(s @ sig @ s)[1]
    return w2 / (2.0 * h) + pot + ent


rng = np.random.default_rng(7)

a, m, mu, sig, h = 2.0, 0.7, -0.3, 1.3, 0.05
mu1, sig1 = cr.jko_gauss_step(np.array([mu]), np.array([[sig]]), np.array([[a]]), np.array([m]), h)
ms, ss = scalar_step(a, m, mu, sig, h)
check(abs(mu1[0] - ms) < 1e-14 and abs(sig1[0, 0] - ss) < 1e-12 * ss, f"D = 1 step: {sig1[0, 0]!r} vs {ss!r}")

ad, sd, md, mud = rng.uniform(0.2, 20.0, 3), rng.uniform(0.5, 2.0, 3), rng.normal(size=3), rng.normal(size=3)
mu1, sig1 = cr.jko_gauss_step(mud, np.diag(sd), np.diag(ad), md, h)
ref = [scalar_step(ad[i], md[i], mud[i], sd[i], h) for i in range(3)]
err = max(max(abs(mu1[i] - ref[i][0]), abs(sig1[i, i] - ref[i][1])) for i in range(3))
check(err < 1e-11 and np.max(np.abs(sig1 - np.diag(np.diag(sig1)))) < 1e-12, f"diagonal D = 3: max error {err:.1e}")

x = rng.normal(size=(4, 4))
a4 = x @ x.T + 0.3 * np.eye(4)
y = rng.normal(size=(4, 4))
sig4 = y @ y.T + 0.5 * np.eye(4)
mu4, m4 = rng.normal(size=4), rng.normal(size=4)
mu1, sig1 = cr.jko_gauss_step(mu4, sig4, a4, m4, h)
# recover S from sig1 = S sig S with S symmetric positive definite: S = sig^{-1/2} (sig^{1/2} sig1 sig^{1/2})^{1/2} sig^{-1/2}
w, q = np.linalg.eigh(sig4)
r = q @ np.diag(np.sqrt(w)) @ q.T
ri = q @ np.diag(1.0 / np.sqrt(w)) @ q.T
w2, q2 = np.linalg.eigh(r @ sig1 @ r)
s = ri @ q2 @ np.diag(np.sqrt(w2)) @ q2.T @ ri
f0 = free_energy(mu1, s, mu4, sig4, a4, m4, h)
worse = []
for _ in range(20):
    e = rng.normal(size=(4, 4))
    e = 1e-5 * (e + e.T)
    worse.append(free_energy(mu1 + 1e-5 * rng.normal(size=4), s + e, mu4, sig4, a4, m4, h) - f0)
check(min(worse) > 0.0, f"D = 4: the free energy grows at 20 perturbations (smallest growth {min(worse):.2e})")

f1 = cr.jko_floor(a4, m4, np.zeros(4), np.eye(4), 0.05, 18)
f2 = cr.jko_floor(a4, m4, np.zeros(4), np.eye(4), 0.025, 36)
check(f1 > 0.0 and 3.0 < f1 / f2 < 5.0, f"floor O(h^2): {f1:.3e} at h = 0.05, {f2:.3e} at h = 0.025 (ratio {f1 / f2:.2f})")

covs = []
for run in (0, 1):
    cov, mean = orp.reference_target(5, run)
    covs.append(cov)
    u = orp.reference_draws(5, run)[1]
    want = np.linalg.eigvalsh(np.ones((5, 5)) + np.diag(u))
    got = np.linalg.eigvalsh(cov)
    check(np.allclose(cov, cov.T) and got[0] > 0 and np.max(np.abs(got - want)) < 1e-6 * want[-1] and mean.shape == (5,),
          f"target D = 5 run {run}: spectrum {np.round(got, 4)} is that of 1 1^T + diag(u)")
check(np.max(np.abs(covs[0] - covs[1])) > 1e-3, "targets of runs 0 and 1 differ")

bg = np.random.MT19937()
bg._legacy_seeding(5489)
raw = bg.random_raw(10000)
check(int(raw[-1]) == 4123659995, f"mt19937 seeded 5489: output 10000 is {int(raw[-1])} (the standard's 4123659995)")
r = mrp.torch_rand(5489, 10000)
check(r.dtype == np.float32 and np.array_equal(r.astype(np.float64), (raw & 0xFFFFFF) * 2.0 ** -24) and 0 <= r.min() and r.max() < 1,
      "torch_rand: the low 24 bits times 2^-24, in [0, 1), float32")
c0 = mrp.reference_centers("earth", 4, 0, 6, 5.0)
c1 = mrp.reference_centers("earth", 4, 1, 6, 5.0)
c2 = mrp.reference_centers("venus", 4, 0, 6, 5.0)
check(c0.shape == (6, 4) and c0.dtype == np.float32 and np.abs(c0).max() <= 5.0 and
      np.abs(c0 - c1).max() > 0.1 and np.abs(c0 - c2).max() > 0.1, f"mixture centres: shape {c0.shape}, in [-5, 5], runs and keys differ")

sys.exit(1 if failures else 0)
