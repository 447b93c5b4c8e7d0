#!/usr/bin/env python3
"""Check jobs/plot/plot_run.py: the figures of a run folder, its reference laws, its errors.

  1. The reference laws it computes from /problem (MATH.md sec. 8), against independent ways:
     the OU mean and covariance at t against a Runge-Kutta integration of their ODEs
     (dm/dt = -A (m - m_inf), dS/dt = -A S - S A + (2/beta) I); the Gaussian log density
     against scipy-free direct evaluation (inverse and determinant); the mixture's log density
     against a direct sum of Gaussians; the samplers' means and covariances against the laws'
     (5 standard errors).
  2. Tiny runs (1 rank; input/ou_tiny.opts at D = 2 and D = 1, input/mixture_tiny.opts at
     D = 3), then plot_run.py on each: exit status 0, and every expected PNG exists and is
     not blank:
       history.png                   C0-blue line pixels (the plotted columns);
       density_step_000{1,2,3}.png   D = 2, default steps: coloured (contour) pixels in the left
                                     half (the model's panel), and three coloured blocks side
                                     by side (the model's panel, the exact law's, the colour
                                     bar: the tiny OU densities are one blob each);
       density_step_0003.png         D = 1 with --steps 3: the model's C0-blue curve and the
                                     exact law's C1-orange curve;
       marginals_{1d,2d}.png         D = 3: C0 (particles) and C1 (reference draws) pixels;
     and every image has a pixel standard deviation above 0.05 and more than 20 colours.
  3. Errors: a missing folder, an empty one, one with a damaged checkpoint, a step that is not
     in the run (--steps), a --wgf-eval that does not exist: exit status 1, a message that
     says what is wrong, no Python traceback, and no figure written.

Needs matplotlib (python3-matplotlib, installed by jobs/local/setup.sh): without it the check
fails and says so; nothing is skipped.

Usage: check_plot_run.py WGF_PATH WGF_EVAL_PATH [--mpiexec "mpiexec --oversubscribe -n"] [--keep DIR]
(--keep DIR: make the runs and figures in DIR and keep them). Exit status 1 on any failure.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

import wgf_runner as wr

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SCRIPT = os.path.join(ROOT, "jobs", "plot", "plot_run.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
import plot_run  # noqa: E402

# Hues of matplotlib's first two default colours, C0 (#1f77b4, 205 degrees) and C1 (#ff7f0e,
# 28 degrees): a pixel counts as C0 or C1 (drawn in it, possibly with transparency over white)
# when its saturation exceeds 0.2 and its hue is within 12 degrees.
HUE_C0, HUE_C1 = 205.0, 28.0


def check_references(ok):
    """Part 1: the reference laws of plot_run.py against independent computations."""
    rng = np.random.default_rng(3)
    D, beta, t = 3, 0.7, 0.37
    B = rng.standard_normal((D, D))
    A = B @ B.T + 0.5 * np.eye(D)
    m, mu0 = rng.standard_normal(D), rng.standard_normal(D)
    C = rng.standard_normal((D, D))
    S0 = C @ C.T + 0.3 * np.eye(D)
    mean, cov = plot_run.ou_law(A, m, mu0, S0, beta, t)
    # RK4 on the moment ODEs of dX = -A (X - m) dt + sqrt(2/beta) dW
    y, n = np.concatenate([mu0, S0.ravel()]), 4000
    dt = t / n

    def f(y):
        mm, S = y[:D], y[D:].reshape(D, D)
        return np.concatenate([-A @ (mm - m), (-A @ S - S @ A.T + 2.0 / beta * np.eye(D)).ravel()])
    for _ in range(n):
        k1 = f(y)
        k2 = f(y + 0.5 * dt * k1)
        k3 = f(y + 0.5 * dt * k2)
        k4 = f(y + dt * k3)
        y = y + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    em = np.abs(mean - y[:D]).max()
    ec = np.abs(cov - y[D:].reshape(D, D)).max() / np.abs(cov).max()
    ok(em < 1e-10 and ec < 1e-10, "OU law at t against RK4 of its moment ODEs", "mean %.1e, cov %.1e relative" % (em, ec))

    x = rng.standard_normal((7, D)) * 2
    Ci = np.linalg.inv(cov)
    direct = np.array([-0.5 * (r - mean) @ Ci @ (r - mean) for r in x]) - 0.5 * np.log(np.linalg.det(2 * np.pi * cov))
    e = np.abs(plot_run.gauss_logpdf(x, mean, cov) - direct).max()
    ok(e < 1e-12, "Gaussian log density against inverse and determinant", "%.1e" % e)

    K, s = 4, 0.8
    centers = rng.uniform(-3, 3, (K, D))
    w = rng.uniform(0.5, 2, K)
    w = w / w.sum()
    x = np.vstack([rng.standard_normal((6, D)) * 2, centers[0] + 40.0])  # and a far point (log-sum-exp)
    direct = np.log(sum(w[i] * np.exp(-((x[:-1] - centers[i]) ** 2).sum(axis=1) / (2 * s * s)) / (2 * np.pi * s * s) ** (D / 2)
                        for i in range(K)))
    got = plot_run.mixture_logpdf(x, centers, w, s)
    e = np.abs(got[:-1] - direct).max()
    ok(e < 1e-12 and np.isfinite(got[-1]), "mixture log density against a direct sum", "%.1e; far point %.4g" % (e, got[-1]))

    # samplers: the Reference objects of a fake OU and mixture run
    class FakeRun:
        pass
    n = 40000
    for kind in ("ou", "mixture"):
        r = FakeRun()
        r.type, r.D, r.beta, r.ckpt = kind, D, beta, "fake"
        r.need = lambda *names: None
        if kind == "ou":
            r.problem = {"A": A, "m": m, "mu0": mu0, "S0": S0}
            mu, Sig = mean, cov
        else:
            r.problem = {"centers": centers, "weights": w * 3.0, "std": np.array(s)}
            mu = w @ centers
            Sig = s * s * np.eye(D) + (centers - mu).T @ (w[:, None] * (centers - mu))
        law = plot_run.reference_at(r, t)
        if not ok(law is not None, "%s: a reference law" % kind):
            continue
        xs = law.sample(np.random.default_rng(5), n)
        zm = np.abs(xs.mean(axis=0) - mu) / np.sqrt(np.diag(Sig) / n)
        zc = np.abs(np.cov(xs, rowvar=False) - Sig).max() / (np.sqrt(2.0 / n) * np.abs(Sig).max())
        ok(zm.max() < 5 and zc < 5, "%s sampler: mean and covariance" % kind, "max |z| of the mean %.2f, covariance %.2f" % (zm.max(), zc))


def image_checks(path):
    """Measures of a PNG: pixel std, distinct colours, coloured fraction of the left half, coloured
    blocks, fractions of C0 and C1 pixels."""
    import matplotlib.image as mimage
    from matplotlib.colors import rgb_to_hsv
    a = mimage.imread(path)[..., :3].astype(np.float64)
    coloured = (a.max(axis=2) - a.min(axis=2)) > 0.25
    W = a.shape[1]
    hsv = rgb_to_hsv(a)
    hue, sat = hsv[..., 0] * 360.0, hsv[..., 1]
    near = lambda h: ((sat > 0.2) & (np.abs(hue - h) < 12.0)).mean()
    ncol = len(np.unique((a * 255).astype(np.int64).reshape(-1, 3), axis=0))
    # coloured blocks from left to right: runs of at least 5 pixel columns that are more than 2 %
    # coloured (a density panel, the colour bar), separated by columns that are not
    cols = np.concatenate([[False], coloured.mean(axis=0) > 0.02, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(cols))
    blocks = int(np.sum(edges[1::2] - edges[0::2] >= 5))
    return {"std": float(a.std()), "colours": ncol, "left": float(coloured[:, :W // 2].mean()), "blocks": blocks, "c0": float(near(HUE_C0)), "c1": float(near(HUE_C1))}


def run_plot(args_list, env=None):
    proc = subprocess.run([sys.executable, SCRIPT] + args_list, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=600, env=env)
    return proc.returncode, proc.stdout.decode(errors="replace")


def check_pngs(ok, outdir, expect):
    """expect: {name: [(what, key, low) ...]}: each PNG exists and each measure exceeds low."""
    for name, rules in expect.items():
        path = os.path.join(outdir, name)
        if not ok(os.path.isfile(path), "%s written" % name, path):
            continue
        m = image_checks(path)
        rules = [("pixel standard deviation", "std", 0.05), ("distinct colours", "colours", 20)] + rules
        for what, key, low in rules:
            ok(m[key] > low, "%s: %s" % (name, what), "%.4g (must be > %g)" % (m[key], low))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wgf")
    p.add_argument("wgf_eval")
    p.add_argument("--mpiexec", default="mpiexec --oversubscribe -n", help="launcher prefix followed by the rank count")
    p.add_argument("--keep", help="make the runs and figures in this folder and keep them")
    args = p.parse_args()
    args.extra, args.seed, args.opts = "", 0, wr.TINY_OPTS
    ok = wr.Checks()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("FAIL matplotlib is missing for %s: run jobs/local/setup.sh (it installs python3-matplotlib)" % sys.executable)
        return 1

    check_references(ok)

    tmpobj = None
    if args.keep:
        tmp = args.keep
        os.makedirs(tmp, exist_ok=True)
    else:
        tmpobj = tempfile.TemporaryDirectory(prefix="wgf_check_plot_")
        tmp = tmpobj.name
    mix_opts = os.path.join(ROOT, "input", "mixture_tiny.opts")
    runs = {"ou_d2": (wr.TINY_OPTS, []), "ou_d1": (wr.TINY_OPTS, ["-ou_dim", "1"]),
            "mixture_d3": (mix_opts, ["-mixture_dim", "3"])}
    for name, (opts, extra) in runs.items():
        out = os.path.join(tmp, name)
        code, log, secs = wr.run(args, args.wgf, 1, ["-options_file", opts, "-out_dir", out, "-seed", "0"] + extra)
        ok(code == 0 and wr.last_checkpoint(out), "tiny run %s (%.1f s)" % (name, secs), "" if code == 0 else wr.tail(log))

    ev = ["--wgf-eval", args.wgf_eval]
    density_halves = [("coloured fraction of the left half (the model's panel)", "left", 0.05),
                      ("coloured blocks (model, exact law, colour bar)", "blocks", 2)]
    hist = [("C0 line pixels", "c0", 0.001)]
    cases = [
        ("ou_d2", ev, {"history.png": hist, "density_step_0001.png": density_halves,
                       "density_step_0002.png": density_halves, "density_step_0003.png": density_halves}),
        ("ou_d1", ev + ["--steps", "3"], {"history.png": hist,
                                          "density_step_0003.png": [("model curve (C0)", "c0", 0.001),
                                                                    ("exact law's curve (C1)", "c1", 0.001)]}),
        ("mixture_d3", [], {"history.png": hist,
                            "marginals_1d.png": [("particles (C0)", "c0", 0.005), ("reference draws (C1)", "c1", 0.002)],
                            "marginals_2d.png": [("particles (C0)", "c0", 0.001), ("reference draws (C1)", "c1", 0.001)]}),
    ]
    for name, extra, expect in cases:
        outdir = os.path.join(tmp, name + "_png")
        code, log = run_plot([os.path.join(tmp, name), "--out", outdir] + extra)
        if not ok(code == 0, "plot_run.py %s %s" % (name, " ".join(extra)), "exit %s\n%s" % (code, log)):
            continue
        check_pngs(ok, outdir, expect)
        pngs = sorted(f for f in os.listdir(outdir) if f.endswith(".png"))
        ok(pngs == sorted(expect), "%s: exactly the expected figures" % name, ", ".join(pngs))

    # errors
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty, exist_ok=True)
    damaged = os.path.join(tmp, "damaged")
    os.makedirs(damaged, exist_ok=True)
    with open(os.path.join(damaged, "ckpt_0001.h5"), "wb") as f:
        f.write(b"not an HDF5 file\n" * 10)
    errors = [
        ("a missing folder", [os.path.join(tmp, "no_such_run")], "does not exist"),
        ("a folder without checkpoints", [empty], "no complete wgf checkpoint"),
        ("a damaged checkpoint only", [damaged], "not a readable HDF5 file"),
        ("a step not in the run", [os.path.join(tmp, "ou_d2"), "--steps", "7"] + ev, "--steps 7"),
        ("a missing wgf-eval", [os.path.join(tmp, "ou_d2"), "--wgf-eval", os.path.join(tmp, "no_wgf_eval")], "--wgf-eval"),
    ]
    for what, argv, words in errors:
        outdir = os.path.join(tmp, "err_png")
        code, log = run_plot(argv + ["--out", outdir])
        ok(code == 1 and words in log and "Traceback" not in log, "error: %s: exit 1 and a message" % what,
           "exit %s: %s" % (code, log.strip()))
        pngs = [f for f in os.listdir(outdir) if f.endswith(".png")] if os.path.isdir(outdir) else []
        ok(not pngs, "error: %s: no figure written" % what, ", ".join(pngs))
    if tmpobj:
        tmpobj.cleanup()
    print("%d failure(s)" % ok.failures)
    return 1 if ok.failures else 0


if __name__ == "__main__":
    sys.exit(main())
