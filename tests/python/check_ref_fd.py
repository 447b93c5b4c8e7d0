#!/usr/bin/env python3
"""Self-check of icnn_ref against central finite differences (MATH.md sec. 4, verification recipe).

For several random convex networks and points it compares
  * grad psi            with central differences of psi,
  * Hess psi            with central differences of grad psi,
  * log det Hess psi    with numpy.linalg.slogdet,
  * the reverse sweep   with central differences of L(theta) = psibar psi + ybar . y + <Hbar, H>
                        over every parameter,
  * the JKO seeds       (MATH.md sec. 4: psibar = 0, ybar = (y - x) + h grad V(y),
                        Hbar = -(h/beta) H^{-1}) with central differences of the JKO loss of
                        sec. 1, 1/2 |y - x|^2 + h V(y) - (h/beta) log det H, for a quadratic V
                        (best of the steps 1e-5, 1e-6, 1e-7, see check_shape),
with step 1e-5 in float64. Relative error = max|a - b| / max|b|. Exit status 1 if any error
exceeds 1e-6.

Usage: check_ref_fd.py [--seed N]
"""

import argparse
import sys

import numpy as np

import icnn_ref as ref

STEP = 1e-5
TOL = 1e-6
H_STEP, BETA = 0.1, 1.0  # JKO step and inverse temperature of the JKO-loss check

# (D, widths, rank, strong convexity): D = 1, 2, 5; L = 1, 2, 3; r = 1, 3; odd widths
SHAPES = [
    (1, [3], 1, 1e-6),
    (2, [7], 3, 0.3),
    (5, [5], 1, 1e-6),
    (1, [3, 7], 3, 0.3),
    (2, [7, 5], 1, 1e-6),
    (5, [3, 5], 3, 1e-6),
    (1, [5, 3, 7], 1, 0.3),
    (2, [3, 7, 5], 3, 1e-6),
    (5, [7, 3, 5], 3, 0.3),
    (5, [5, 7, 3], 1, 1e-6),
]


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def central_diff(f, v, step=STEP):
    """Central differences of f (scalar or array valued) with respect to every entry of v.
    Returns an array of shape v.shape + f(v).shape."""
    out = []
    for i in range(v.size):
        vp = v.copy()
        vm = v.copy()
        vp[i] += step
        vm[i] -= step
        out.append((np.asarray(f(vp)) - np.asarray(f(vm))) / (2.0 * step))
    return np.array(out)


def check_shape(rng, D, widths, r, s):
    theta = ref.random_theta(rng, D, widths, r)
    x = rng.standard_normal(D)
    psibar = rng.standard_normal()
    ybar = rng.standard_normal(D)
    Hbar = rng.standard_normal((D, D))
    Hbar = 0.5 * (Hbar + Hbar.T)

    _, grad, H, logdet = ref.evaluate(theta, D, widths, r, s, x)

    errs = {}
    errs["grad"] = rel_err(grad, central_diff(lambda v: ref.evaluate(theta, D, widths, r, s, v)[0], x))
    # row i of the FD Jacobian is d grad / d x_i = H[i, :] (H symmetric)
    errs["hessian"] = rel_err(H, central_diff(lambda v: ref.evaluate(theta, D, widths, r, s, v)[1], x))
    sign, slogdet = np.linalg.slogdet(H)
    errs["logdet"] = abs(logdet - slogdet) / max(abs(slogdet), 1e-300) if sign > 0 else np.inf
    G = ref.theta_grad(theta, D, widths, r, s, x, psibar, ybar, Hbar)
    G_fd = central_diff(lambda t: ref.loss(t, D, widths, r, s, x, psibar, ybar, Hbar), theta)
    errs["theta_grad"] = rel_err(G, G_fd)

    # JKO loss (sec. 1) with V(y) = 1/2 y^T Q y, Q symmetric positive definite
    Q = rng.standard_normal((D, D))
    Q = Q @ Q.T + np.eye(D)

    def jko_loss(t):
        _, y, _, ld = ref.evaluate(t, D, widths, r, s, x)
        return 0.5 * np.sum((y - x) ** 2) + H_STEP * 0.5 * (y @ Q @ y) - (H_STEP / BETA) * ld

    G = ref.theta_grad(theta, D, widths, r, s, x, 0.0, (grad - x) + H_STEP * (Q @ grad),
                       -(H_STEP / BETA) * np.linalg.inv(H))
    # log det H varies on the scale of the smallest eigenvalue of H, which can be close to s when
    # the rank-r terms do not span R^D; then step 1e-5 is too coarse. Take the best of three
    # steps: a wrong gradient is wrong at every step, a right one matches at the right step.
    errs["jko_grad"] = min(rel_err(G, central_diff(jko_loss, theta, step)) for step in (STEP, 1e-6, 1e-7))
    return errs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    failed = 0
    for D, widths, r, s in SHAPES:
        errs = check_shape(rng, D, widths, r, s)
        worst = max(errs.values())
        ok = worst <= TOL
        failed += not ok
        print("%s D=%d widths=%s r=%d s=%g P=%d  %s" % (
            "ok  " if ok else "FAIL", D, widths, r, s, ref.param_count(D, widths, r),
            "  ".join("%s %.2e" % kv for kv in errs.items())))
    print("%d of %d shapes failed (tolerance %g)" % (failed, len(SHAPES), TOL))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
