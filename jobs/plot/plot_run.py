#!/usr/bin/env python3
"""Turn a wgf run folder into PNG figures (matplotlib, Agg backend: no display needed).

    plot_run.py RUN_DIR [--out DIR] [--wgf-eval PATH] [--mpiexec PREFIX] [--steps K1,K2,...]
                [--grid N] [--reference FILE] [--reference-dataset NAME] [--coords N]
                [--ref-samples N] [--seed S]

RUN_DIR is the -out_dir of a wgf run. Its newest complete checkpoint (the rule of wgf -restart:
jobs/study/wgf_status.py) gives the history, the maps and the particles. Written to --out
(default RUN_DIR/plots):

  history.png              every column of /history (its attribute "columns") against t, one
                           panel per column; log scale where the values are all positive and span
                           more than two decades, linear otherwise (KL and energy-distance
                           estimates can be negative); steps without a value (e.g. metrics
                           skipped by -eval_every) are left out.
  density_step_KKKK.png    D <= 2, at the steps --steps (default: the first, middle and last):
                           the model's density rho_k, from `wgf-eval -params CKPT -map k
                           -logdensity` on a grid, and the reference's: the exact law at t_k for
                           -problem ou, the stationary mixture for -problem mixture (MATH.md
                           sec. 8; formulas below), on a grid of the box where either is above
                           1e-3 of its peak (found on a coarse grid first). D = 2: filled
                           contours on one colour scale, levels spaced in log over three decades
                           below the higher peak; D = 1: the two curves. Grid points where
                           wgf-eval's inversion did not converge (/converged = 0) are counted in
                           the title and marked (D = 2: red crosses). For a problem with
                           no closed-form reference (blr) the model alone; --reference samples,
                           if given, are drawn over it (D = 2: red dots; D = 1: a histogram).
  marginals_1d.png         D >= 3: histograms of the first --coords coordinates (default 6) of
                           the particles of the newest checkpoint (/particles/x), against samples
                           of the reference law at its t (ou: the exact law; mixture: the
                           stationary mixture; drawn here with --seed, as many as there are
                           particles unless --ref-samples), or against the samples of
                           --reference FILE (dataset /samples, as jobs/posterior/reference_sampler.py
                           writes); blr without --reference: the particles alone.
  marginals_2d.png         D >= 3: the same as scatter plots of every pair of the first
                           min(4, --coords) coordinates (at least the first two).

The reference laws are computed here from the checkpoint's /problem group, because no wgf tool
evaluates or samples them (wgf itself computes them for its metrics, src/problems/ou.c and
mixture.c):
  ou (MATH.md sec. 8): rho_t = N(mean(t), cov(t)), mean(t) = m + e^{-At} (mu0 - m),
      cov(t) = e^{-At} S0 e^{-At} + (1/beta) A^{-1} (I - e^{-2At}), with A, m, mu0, S0 of
      /problem and beta = /config jko_beta; t_k from /history (column t at step k).
  mixture (MATH.md sec. 8): rho_inf(x) = sum_i w_i N(x; centers_i, std^2 I), w = weights / sum.

Exit status: 0 figures written; 1 error (a missing folder, no complete checkpoint, wgf-eval not
found or failing, matplotlib missing), with a message; 2 bad usage.
"""

import argparse
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "jobs", "study"))
import wgf_status  # noqa: E402

PROG = "plot_run.py"


class PlotError(Exception):
    """An error to report in one sentence, with exit status 1."""


def text(v):
    return wgf_status._text(v)


# ---------------------------------------------------------------------------------------------
# The run: checkpoints, history, problem
# ---------------------------------------------------------------------------------------------

class Run:
    """What the figures need from the newest complete checkpoint of a run folder."""

    def __init__(self, run_dir):
        if not os.path.exists(run_dir):
            raise PlotError("%s does not exist" % run_dir)
        if not os.path.isdir(run_dir):
            raise PlotError("%s is not a folder" % run_dir)
        st = wgf_status.status(run_dir)
        if st["ckpt"] is None:
            skipped = "".join("\n  skipped %s: %s" % s for s in st["skipped"])
            raise PlotError("%s holds no complete wgf checkpoint (ckpt_<kkkk>.h5)%s" % (run_dir, skipped))
        self.dir = run_dir
        self.ckpt = st["ckpt"]
        with h5py.File(self.ckpt, "r") as f:
            try:
                self.hist = np.asarray(f["history"][()], dtype=np.float64)
                self.cols = text(f["history"].attrs["columns"]).split(",")
                self.D = int(f["icnn"].attrs["dim"])
                self.type = text(f["problem"].attrs["type"])
                self.problem = {k: np.asarray(f["problem"][k][()], dtype=np.float64)
                                for k in f["problem"] if isinstance(f["problem"][k], h5py.Dataset)
                                and f["problem"][k].dtype.kind in "fiu"}
                cfg = f["config"].attrs
                self.beta = float(text(cfg["jko_beta"])) if "jko_beta" in cfg else 1.0
                self.h = float(text(cfg["jko_h"])) if "jko_h" in cfg else float("nan")
                self.maps = sorted(int(k) for k in f["maps"])
                self.particles = np.asarray(f["particles"]["x"][()], dtype=np.float64)
                self.x0 = np.asarray(f["particles"]["x0"][()], dtype=np.float64) if "x0" in f["particles"] else None
                self.step = int(f.attrs["step"])
                self.time = float(f.attrs["time"])
            except KeyError as e:
                raise PlotError("%s: missing object or attribute (%s)" % (self.ckpt, e))
        if self.hist.ndim != 2 or self.hist.shape[1] != len(self.cols):
            raise PlotError("%s: /history has %s columns but its attribute names %d" % (self.ckpt, self.hist.shape, len(self.cols)))
        if self.particles.ndim != 2 or self.particles.shape[1] != self.D:
            raise PlotError("%s: /particles/x has shape %s, not (N, %d)" % (self.ckpt, self.particles.shape, self.D))
        self.name = os.path.basename(os.path.normpath(run_dir))

    def t_of_step(self, k):
        """t at step k: the history's, else k h."""
        if "step" in self.cols and "t" in self.cols:
            rows = self.hist[self.hist[:, self.cols.index("step")] == k]
            if len(rows) and np.isfinite(rows[-1, self.cols.index("t")]):
                return float(rows[-1, self.cols.index("t")])
        return k * self.h

    def need(self, *names):
        missing = [n for n in names if n not in self.problem]
        if missing:
            raise PlotError("%s: /problem of type %s lacks %s" % (self.ckpt, self.type, ", ".join("/problem/" + n for n in missing)))


# ---------------------------------------------------------------------------------------------
# Reference laws (MATH.md sec. 8), from /problem
# ---------------------------------------------------------------------------------------------

def ou_law(A, m, mu0, S0, beta, t):
    """(mean, cov) of the exact OU law at t (MATH.md sec. 8), e^{-At} by the eigendecomposition of
    the symmetric A: mean = m + e^{-At}(mu0 - m), cov = e^{-At} S0 e^{-At} + A^{-1}(I - e^{-2At}) / beta."""
    A = 0.5 * (A + A.T)
    lam, Q = np.linalg.eigh(A)
    E = (Q * np.exp(-lam * t)) @ Q.T
    mean = m + E @ (mu0 - m)
    cov = E @ S0 @ E + (Q * (-np.expm1(-2.0 * lam * t) / lam)) @ Q.T / beta
    return mean, 0.5 * (cov + cov.T)


def gauss_logpdf(x, mean, cov):
    """log N(x; mean, cov) for the rows of x."""
    L = np.linalg.cholesky(cov)
    z = np.linalg.solve(L, (x - mean).T)
    return -0.5 * np.sum(z * z, axis=0) - np.log(np.diag(L)).sum() - 0.5 * len(mean) * math.log(2 * math.pi)


def mixture_parts(problem):
    c = np.atleast_2d(problem["centers"])
    w = np.ravel(problem["weights"])
    return c, w / w.sum(), float(np.ravel(problem["std"])[0])


def mixture_logpdf(x, centers, w, s):
    """log sum_i w_i N(x; centers_i, s^2 I) (MATH.md sec. 8), with the log-sum-exp shift."""
    D = centers.shape[1]
    d2 = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    a = np.log(w)[None, :] - d2 / (2 * s * s)
    amax = a.max(axis=1, keepdims=True)
    return (amax[:, 0] + np.log(np.exp(a - amax).sum(axis=1))) - D * math.log(s) - 0.5 * D * math.log(2 * math.pi)


class Reference:
    """The closed-form reference law of a run at time t, or None (reference_at) when there is none."""

    def __init__(self, kind, label, logpdf, sample, box):
        self.kind, self.label, self.logpdf, self.sample, self.box = kind, label, logpdf, sample, box


def reference_at(run, t):
    if run.type == "ou":
        run.need("A", "m", "mu0", "S0")
        D = run.D
        A = run.problem["A"].reshape(D, D)
        S0 = run.problem["S0"].reshape(D, D)
        mean, cov = ou_law(A, run.problem["m"].ravel(), run.problem["mu0"].ravel(), S0, run.beta, t)
        sd = np.sqrt(np.diag(cov))
        return Reference("exact", "exact law, t = %.4g" % t, lambda x: gauss_logpdf(x, mean, cov),
                         lambda rng, n: rng.multivariate_normal(mean, cov, size=n, method="cholesky"),
                         (mean - 3.5 * sd, mean + 3.5 * sd))
    if run.type == "mixture":
        run.need("centers", "weights", "std")
        c, w, s = mixture_parts(run.problem)

        def sample(rng, n):
            idx = rng.choice(len(w), size=n, p=w)
            return c[idx] + s * rng.standard_normal((n, c.shape[1]))
        return Reference("stationary", "stationary mixture", lambda x: mixture_logpdf(x, c, w, s), sample,
                         (c.min(axis=0) - 3.5 * s, c.max(axis=0) + 3.5 * s))
    return None


def read_reference_file(path, dataset, D):
    try:
        with h5py.File(path, "r") as f:
            s = np.asarray(f[dataset][()], dtype=np.float64)
    except (OSError, KeyError) as e:
        raise PlotError("--reference %s: cannot read dataset /%s (%s)" % (path, dataset, e))
    s = s.reshape(-1, 1) if s.ndim == 1 and D == 1 else s
    if s.ndim != 2 or s.shape[1] != D:
        raise PlotError("--reference %s: /%s has shape %s, not (N, %d)" % (path, dataset, s.shape, D))
    return s


# ---------------------------------------------------------------------------------------------
# Model density on a grid: wgf-eval -logdensity
# ---------------------------------------------------------------------------------------------

def find_wgf_eval(given):
    if given:
        if not (os.path.isfile(given) and os.access(given, os.X_OK)):
            raise PlotError("--wgf-eval %s is not an executable file" % given)
        return given
    build = os.environ.get("WGF_BUILD_DIR", os.path.join(ROOT, "build"))
    for path in (os.path.join(build, "bin", "wgf-eval"), shutil.which("wgf-eval")):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise PlotError("wgf-eval not found in %s/bin nor on PATH: build it (bash jobs/local/build.sh) or give --wgf-eval PATH" % build)


def model_logdensity(wgf_eval, mpiexec, ckpt, k, x, tmp):
    """(log rho_k, converged) at the rows of x, from wgf-eval -logdensity."""
    pts, out = os.path.join(tmp, "points.h5"), os.path.join(tmp, "out_%04d.h5" % k)
    with h5py.File(pts, "w") as f:
        f.create_dataset("points", data=x)
    cmd = shlex.split(mpiexec) + [wgf_eval, "-params", ckpt, "-map", str(k), "-points", pts, "-output", out, "-logdensity"]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PlotError("%s failed: %s" % (" ".join(cmd), e))
    if proc.returncode != 0:
        log = "\n".join(proc.stdout.decode(errors="replace").splitlines()[-20:])
        raise PlotError("%s exited with status %d:\n%s" % (" ".join(cmd), proc.returncode, log))
    with h5py.File(out, "r") as f:
        return np.asarray(f["logrho"][()], dtype=np.float64), np.asarray(f["converged"][()]) != 0


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

def use_log_scale(y):
    """Log scale when every finite value is positive and they span more than two decades."""
    y = y[np.isfinite(y)]
    return len(y) > 1 and bool(np.all(y > 0)) and y.max() / y.min() > 100.0


def plot_history(plt, run, path):
    x = run.hist[:, run.cols.index("t")] if "t" in run.cols else run.hist[:, run.cols.index("step")]
    xlabel = "t" if "t" in run.cols else "step"
    cols = [c for c in run.cols if c not in ("step", "t")]
    nc = min(3, max(1, len(cols)))
    nr = int(math.ceil(len(cols) / nc))
    fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 2.9 * nr), squeeze=False)
    xf = x[np.isfinite(x)]
    pad = 0.03 * (xf.max() - xf.min()) if len(xf) and xf.max() > xf.min() else 0.5
    for ax, c in zip(axes.ravel(), cols):
        y = run.hist[:, run.cols.index(c)]
        ok = np.isfinite(y) & np.isfinite(x)
        if ok.any():
            ax.plot(x[ok], y[ok], "o-", ms=3, color="C0")
            if use_log_scale(y[ok]):
                ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(c, fontsize=10)
        ax.set_xlabel(xlabel)
        if len(xf):  # the same t axis in every panel (the loss has no value at t = 0)
            ax.set_xlim(xf.min() - pad, xf.max() + pad)
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(cols):]:
        ax.set_visible(False)
    fig.suptitle("%s: /history of %s (%s, D = %d)" % (run.name, os.path.basename(run.ckpt), run.type, run.D))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def default_steps(maps):
    if not maps:
        return []
    first, last = maps[0], maps[-1]
    mid = maps[len(maps) // 2] if len(maps) > 2 else last
    return sorted({first, mid, last})


def density_box(run, refs, ref_samples):
    """Bounds of the search box (D <= 2): the particles (x0 and x, 0.5 % to 99.5 % quantiles)
    and the references' boxes, padded by 10 %."""
    lo, hi = [], []
    for s in (run.particles, run.x0, ref_samples):
        if s is not None and len(s):
            lo.append(np.quantile(s, 0.005, axis=0))
            hi.append(np.quantile(s, 0.995, axis=0))
    for r in refs:
        if r is not None:
            lo.append(r.box[0])
            hi.append(r.box[1])
    lo, hi = np.min(lo, axis=0), np.max(hi, axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-6)
    return lo - pad, hi + pad


def grid(lo, hi, n):
    """(points (N x D), axes): an n x n grid of [lo, hi] (D = 2) or 8 n points (D = 1)."""
    if len(lo) == 1:
        g = np.linspace(lo[0], hi[0], 8 * n)
        return g[:, None], (g,)
    X, Y = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n))
    return np.column_stack([X.ravel(), Y.ravel()]), (X, Y)


def crop_box(pts, dens, lo, hi, n):
    """The box of the grid points where one of the densities dens exceeds 1e-3 of its peak, one
    cell and 5 % wider; [lo, hi] when there is none."""
    keep = np.zeros(len(pts), dtype=bool)
    for d in dens:
        if d is not None and np.isfinite(d).any() and np.nanmax(d) > 0:
            keep |= np.nan_to_num(d, nan=0.0) > 1e-3 * np.nanmax(d)
    if not keep.any():
        return lo, hi
    cell = (hi - lo) / (n - 1)
    a, b = pts[keep].min(axis=0) - cell, pts[keep].max(axis=0) + cell
    pad = 0.05 * (b - a)
    return np.maximum(a - pad, lo), np.minimum(b + pad, hi)


def plot_densities(plt, run, args, tmp):
    """density_step_KKKK.png for each step asked (D <= 2); returns the paths. For each step the
    densities are first evaluated on a coarse grid of the search box (density_box), then on the
    --grid grid of the box where they are not negligible (crop_box)."""
    from matplotlib.colors import LogNorm
    steps, ref_samples = args.steps, args.ref_data
    refs = {k: reference_at(run, run.t_of_step(k)) for k in steps}
    slo, shi = density_box(run, refs.values(), ref_samples)
    coarse, _ = grid(slo, shi, 50)
    paths = []
    for k in steps:
        t = run.t_of_step(k)
        ref = refs[k]
        logm, conv = model_logdensity(args.wgf_eval, args.mpiexec, run.ckpt, k, coarse, tmp)
        dens = [np.where(conv, np.exp(logm), np.nan), np.exp(ref.logpdf(coarse)) if ref is not None else None]
        lo, hi = crop_box(coarse, dens, slo, shi, 50 if run.D == 2 else 400)
        pts, axes_ = grid(lo, hi, args.grid)
        logm, conv = model_logdensity(args.wgf_eval, args.mpiexec, run.ckpt, k, pts, tmp)
        ok = conv & np.isfinite(logm)
        nbad = int((~ok).sum())
        model = np.where(ok, np.exp(np.where(ok, logm, 0.0)), np.nan)
        refd = np.exp(ref.logpdf(pts)) if ref is not None else None
        title = "%s: step %d, t = %.4g (%s, D = %d)" % (run.name, k, t, run.type, run.D)
        if nbad:
            title += "\n%d of %d grid points not inverted (wgf-eval /converged = 0): %s" % (
                nbad, len(pts), "red crosses" if run.D == 2 else "gaps in the model's curve")
        path = os.path.join(args.out, "density_step_%04d.png" % k)
        if run.D == 1:
            g = axes_[0]
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            ax.plot(g, model, "-", color="C0", label="model rho_%d (wgf-eval)" % k)
            if refd is not None:
                ax.plot(g, refd, "--", color="C1", label=ref.label)
            if ref_samples is not None:
                ax.hist(ref_samples[:, 0], bins=60, range=(lo[0], hi[0]), density=True, histtype="step",
                        color="C2", label="--reference samples")
            ax.set_xlabel("x")
            ax.set_ylabel("density")
            ax.legend(fontsize=8)
            ax.grid(True, alpha=0.3)
        else:
            X, Y = axes_
            panels = [("model rho_%d (wgf-eval)" % k, model.reshape(X.shape))]
            if refd is not None:
                panels.append((ref.label, refd.reshape(X.shape)))
            # one colour scale for both panels, levels spaced in log over three decades below the
            # higher peak, so that a broad density shows beside a peaked one; below: blank
            top = max(float(np.nanmax(p[1])) if np.isfinite(p[1]).any() else 0.0 for p in panels)
            top = top if top > 0 else 1.0
            levels = top * 10.0 ** np.linspace(-3.0, 0.0, 13)
            fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels) + 1.2, 4.6), squeeze=False,
                                     layout="constrained")
            cs = None
            for ax, (label, Z) in zip(axes[0], panels):
                cs = ax.contourf(X, Y, np.ma.masked_where(~(Z > 0), Z), levels=levels, cmap="viridis",
                                 norm=LogNorm(vmin=levels[0], vmax=levels[-1]))
                ax.set_title(label, fontsize=10)
            if ref_samples is not None:
                axes[0][0].plot(ref_samples[:, 0], ref_samples[:, 1], ".", color="red", ms=1.5, alpha=0.5,
                                label="--reference samples (%d)" % len(ref_samples))
            if nbad:
                bad = ~ok.reshape(X.shape)
                axes[0][0].plot(X[bad], Y[bad], "x", color="red", ms=3, label="not inverted")
            if ref_samples is not None or nbad:
                axes[0][0].legend(fontsize=7, markerscale=3)
            for ax in axes[0]:
                ax.set_xlim(lo[0], hi[0])
                ax.set_ylim(lo[1], hi[1])
                ax.set_xlabel("x1")
                ax.set_ylabel("x2")
                span = (hi - lo) / max(hi - lo)
                if min(span) > 0.5:  # equal scales unless the box is very elongated (blr's w, log alpha)
                    ax.set_aspect("equal", adjustable="box")
            fig.colorbar(cs, ax=list(axes[0][:len(panels)]), label="density (blank: < 1e-3 of the peak)",
                         shrink=0.9, format="%.2g")
        fig.suptitle(title, fontsize=10)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        print("%s: step %d: %d grid points, %d not inverted" % (PROG, k, len(pts), nbad))
        paths.append(path)
    return paths


def plot_marginals(plt, run, args):
    """marginals_1d.png and marginals_2d.png of the newest checkpoint's particles (D >= 3)."""
    x = run.particles
    if args.ref_data is not None:
        ref = args.ref_data
        ref_label = "--reference samples (%d)" % len(ref)
    else:
        law = reference_at(run, run.time)
        if law is None:
            ref, ref_label = None, None
            print("%s: -problem %s has no closed-form reference: the particles alone (give --reference FILE to compare)" % (PROG, run.type))
        else:
            rng = np.random.default_rng(args.seed)
            ref = law.sample(rng, args.ref_samples if args.ref_samples else len(x))
            ref_label = "%s (%d draws)" % (law.label, len(ref))
    p_label = "particles, step %d (%d)" % (run.step, len(x))
    m = min(run.D, args.coords)
    both = np.vstack([x, ref]) if ref is not None else x
    lo, hi = np.quantile(both, 0.001, axis=0), np.quantile(both, 0.999, axis=0)
    title = "%s: step %d, t = %.4g (%s, D = %d)" % (run.name, run.step, run.time, run.type, run.D)

    nc = min(3, m)
    nr = int(math.ceil(m / nc))
    fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 3.2 * nr), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= m:
            ax.set_visible(False)
            continue
        bins = np.linspace(lo[i], hi[i], 41)
        ax.hist(x[:, i], bins=bins, density=True, color="C0", alpha=0.55, label=p_label)
        if ref is not None:
            ax.hist(ref[:, i], bins=bins, density=True, histtype="step", color="C1", lw=1.5, label=ref_label)
        ax.set_xlabel("x%d" % (i + 1))
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title + ": one-dimensional marginals", fontsize=10)
    fig.tight_layout()
    p1 = os.path.join(args.out, "marginals_1d.png")
    fig.savefig(p1, dpi=100)
    plt.close(fig)

    m2 = min(run.D, max(2, min(m, 4)))
    pairs = [(i, j) for i in range(m2) for j in range(i + 1, m2)]
    nc = min(3, len(pairs))
    nr = int(math.ceil(len(pairs) / nc))
    fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 4.0 * nr), squeeze=False)
    ms = 4.0 if len(x) <= 2000 else 1.0
    for ax, (i, j) in zip(axes.ravel(), pairs):
        if ref is not None:
            ax.scatter(ref[:, i], ref[:, j], s=ms, color="C1", alpha=0.35, linewidths=0, label=ref_label)
        ax.scatter(x[:, i], x[:, j], s=ms, color="C0", alpha=0.5, linewidths=0, label=p_label)
        ax.set_xlim(lo[i], hi[i])
        ax.set_ylim(lo[j], hi[j])
        ax.set_xlabel("x%d" % (i + 1))
        ax.set_ylabel("x%d" % (j + 1))
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(pairs):]:
        ax.set_visible(False)
    axes[0][0].legend(fontsize=7, markerscale=3)
    fig.suptitle(title + ": two-dimensional marginals", fontsize=10)
    fig.tight_layout()
    p2 = os.path.join(args.out, "marginals_2d.png")
    fig.savefig(p2, dpi=100)
    plt.close(fig)
    return [p1, p2]


def import_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotError("matplotlib is missing: install python3-matplotlib (bash jobs/local/setup.sh does)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def parse_steps(s):
    try:
        steps = sorted({int(w) for w in s.split(",") if w.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError("not a comma-separated list of steps: %r" % s)
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError("steps must be >= 1: %r" % s)
    return steps


def positive(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1: %r" % s)
    return v


def main(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="the output folder of a wgf run (-out_dir)")
    p.add_argument("--out", help="folder of the PNGs (created; default RUN_DIR/plots)")
    p.add_argument("--wgf-eval", help="the wgf-eval executable (default: $WGF_BUILD_DIR/bin/wgf-eval, "
                                      "build/bin/wgf-eval of this repository, or wgf-eval on PATH)")
    p.add_argument("--mpiexec", default="", help='launcher prefix for wgf-eval, e.g. "mpiexec -n 2" (default: run it directly)')
    p.add_argument("--steps", type=parse_steps, help="steps of the density figures, e.g. 1,10,20 (default: first, middle, last)")
    p.add_argument("--grid", type=positive, default=100, help="grid points per axis of the density figures (default %(default)s; D = 1: 8x)")
    p.add_argument("--reference", help="HDF5 file of reference samples (N x D), e.g. from jobs/posterior/reference_sampler.py")
    p.add_argument("--reference-dataset", default="samples", help="its dataset (default %(default)s)")
    p.add_argument("--coords", type=positive, default=6, help="coordinates in the marginal figures (default %(default)s)")
    p.add_argument("--ref-samples", type=positive, help="draws of the reference law (default: as many as particles)")
    p.add_argument("--seed", type=int, default=0, help="seed of the reference draws (default %(default)s)")
    args = p.parse_args(argv)
    try:
        run = Run(args.run_dir)
        plt = import_pyplot()
        # everything that can fail on the input, before any figure is written
        args.ref_data = read_reference_file(args.reference, args.reference_dataset, run.D) if args.reference else None
        if run.D <= 2:
            args.wgf_eval = find_wgf_eval(args.wgf_eval)
            args.steps = args.steps or default_steps(run.maps)
            bad = [k for k in args.steps if k not in run.maps]
            if bad:
                raise PlotError("--steps %s: %s has maps %s only" % (",".join(map(str, bad)), run.ckpt,
                                                                   ",".join(map(str, run.maps))))
        args.out = args.out or os.path.join(args.run_dir, "plots")
        os.makedirs(args.out, exist_ok=True)
        written = [os.path.join(args.out, "history.png")]
        plot_history(plt, run, written[0])
        if run.D <= 2:
            with tempfile.TemporaryDirectory(prefix="plot_run_") as tmp:
                written += plot_densities(plt, run, args, tmp)
        else:
            written += plot_marginals(plt, run, args)
    except PlotError as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 1
    print("%s: %s (%s, D = %d, step %d) -> %d figures:" % (PROG, run.ckpt, run.type, run.D, run.step, len(written)))
    for w in written:
        print("  " + w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
