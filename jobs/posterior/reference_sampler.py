#!/usr/bin/env python3
"""The exact posterior of -problem blr by Hamiltonian Monte Carlo, outside the solver: the reference
wgf's posterior is compared with (MATH.md sec. 8; issue "Posterior sampling", item 7).

    reference_sampler.py TRAIN.h5 OUT.h5 [--chains 4] [--samples 2500] [--warmup 1500]
                         [--mass dense|diag] [--prior-rate 100] [--seed 0] [--test TEST.h5]

The target is the whole-data posterior of wgf's V (src/problems/blr.c): theta = (w, a = log alpha),
log p(theta | data) = log p0(theta) + sum_i log sigmoid(y_i w.x_i) + const, with p0 the unclipped
Gamma(1, rate b) prior on alpha and w | alpha ~ N(0, I / alpha). Each chain starts from its own
draw near the MAP, then HMC with a mass matrix M = Sigma^-1 (Sigma: the posterior covariance
estimated in three warm-up windows, regularised towards 1e-3 I as Stan does; --mass diag keeps its
diagonal only) and a step size tuned in the warm-up to an acceptance of about 0.8; the number of
leapfrog steps is drawn uniformly in [L/2, L] per transition (so that no trajectory length
resonates). The dense mass matters where features are nearly collinear (image: X has condition
number 6e7, and with a diagonal mass the chains do not mix, R-hat 1.5 to 2).

Reported (stdout and attributes of OUT): split R-hat and the bulk effective sample size (Geyer's
initial monotone sequence over the chains) of every coordinate, their worst values, the
acceptance rate and the wall time. OUT holds /samples (chains * samples x D, the chains one after
the other) and, with --test, the posterior predictive's accuracy and mean log likelihood on it.
"""
import argparse
import os
import time

import h5py
import numpy as np


def load(path):
    with h5py.File(path, "r") as f:
        X = np.asarray(f["X"][()], dtype=np.float64)
        y = np.asarray(f["y"][()], dtype=np.float64).reshape(-1)
    return X, y


class Posterior:
    """log p(theta | data) and its gradient, theta = (w, a)."""

    def __init__(self, X, y, b):
        self.Z = X * y[:, None]  # rows y_i x_i
        self.d = X.shape[1]
        self.b = b

    def logp_grad(self, th):
        w, a = th[:-1], th[-1]
        ea = np.exp(a)
        m = self.Z @ w
        ll = -np.logaddexp(0.0, -m).sum()  # sum log sigmoid(m)
        s = 0.5 * (1 - np.tanh(0.5 * m))  # sigmoid(-m), stable
        w2 = w @ w
        lp = np.log(self.b) + a - self.b * ea + 0.5 * self.d * a - 0.5 * ea * w2 - 0.5 * self.d * np.log(2 * np.pi)
        g = np.empty_like(th)
        g[:-1] = self.Z.T @ s - ea * w
        g[-1] = 1 + 0.5 * self.d - self.b * ea - 0.5 * ea * w2
        return lp + ll, g


def find_map(post, D):
    """Newton-free MAP: gradient ascent with backtracking from w = 0, a = log(d / (2 b))."""
    th = np.zeros(D)
    th[-1] = np.log(max(post.d, 1) / (2 * post.b) + 1e-3)
    lp, g = post.logp_grad(th)
    step = 1e-3
    for _ in range(20000):
        while True:
            cand = th + step * g
            lc, gc = post.logp_grad(cand)
            if np.isfinite(lc) and lc >= lp:
                break
            step *= 0.5
            if step < 1e-14:
                return th
        th, lp, g = cand, lc, gc
        step *= 1.5
        if np.linalg.norm(g) < 1e-8 * max(1.0, abs(lp)):
            break
    return th


def metric(samples, dense):
    """The Cholesky factor C of the estimated covariance Sigma = C C^T of warm-up samples [n][D]
    (Stan's regularisation: n/(n+5) Sigma + 1e-3 5/(n+5) I); the mass matrix is Sigma^-1."""
    n, D = samples.shape
    S = np.cov(samples, rowvar=False).reshape(D, D)
    if not dense:
        S = np.diag(np.diag(S))
    S = n / (n + 5.0) * S + 1e-3 * 5.0 / (n + 5.0) * np.eye(D)
    return np.linalg.cholesky(S)


def hmc_chain(post, th0, eps, C, L, n, rng, adapt=False):
    """n transitions from th0 with the mass matrix (C C^T)^-1: momentum p = C^-T z, kinetic energy
    |C^T p|^2 / 2, velocity C C^T p. Returns the samples, the acceptance rate and (adapt) a tuned
    eps."""
    D = th0.size
    out = np.empty((n, D))
    th = th0.copy()
    lp, g = post.logp_grad(th)
    acc = 0.0
    log_eps = np.log(eps)
    hbar, mu, t0, gamma, kappa, target = 0.0, np.log(10 * eps), 10.0, 0.05, 0.75, 0.8
    log_eps_bar = 0.0
    for i in range(n):
        p = np.linalg.solve(C.T, rng.standard_normal(D))
        h0 = -lp + 0.5 * np.sum((C.T @ p) ** 2)
        x, gx, lx = th.copy(), g.copy(), lp
        steps = rng.integers(max(1, L // 2), L + 1)
        p = p + 0.5 * eps * gx
        for s in range(steps):
            x = x + eps * (C @ (C.T @ p))
            lx, gx = post.logp_grad(x)
            if not np.isfinite(lx):
                break
            if s + 1 < steps:
                p = p + eps * gx
        p = p + 0.5 * eps * gx
        h1 = -lx + 0.5 * np.sum((C.T @ p) ** 2) if np.isfinite(lx) else np.inf
        a = min(1.0, np.exp(h0 - h1)) if np.isfinite(h1) else 0.0
        if rng.random() < a:
            th, lp, g = x, lx, gx
        acc += a
        if adapt:  # dual averaging (Hoffman and Gelman 2014)
            k = i + 1
            hbar = (1 - 1 / (k + t0)) * hbar + (target - a) / (k + t0)
            log_eps = mu - np.sqrt(k) / gamma * hbar
            w = k ** (-kappa)
            log_eps_bar = w * log_eps + (1 - w) * log_eps_bar
            eps = np.exp(log_eps)
        out[i] = th
    return out, acc / n, (np.exp(log_eps_bar) if adapt else eps)


def split_rhat_ess(chains):
    """chains [m][n][D] -> split R-hat [D], bulk ESS [D] (Gelman et al., BDA3 ch. 11)."""
    m, n, D = chains.shape
    h = n // 2
    s = np.concatenate([chains[:, :h], chains[:, h:2 * h]], axis=0)  # 2m chains of h
    M = s.shape[0]
    means = s.mean(axis=1)
    W = s.var(axis=1, ddof=1).mean(axis=0)
    B = h * means.var(axis=0, ddof=1)
    var = (h - 1) / h * W + B / h
    rhat = np.sqrt(var / W)
    # autocorrelation over all split chains, Geyer's initial monotone sequence
    ess = np.empty(D)
    for j in range(D):
        x = s[:, :, j] - means[:, j:j + 1]
        f = np.fft.rfft(x, n=2 * h, axis=1)
        ac = np.fft.irfft(f * np.conj(f), axis=1)[:, :h] / h
        rho_t = 1 - (W[j] - ac.mean(axis=0)) / var[j]
        rho_t[0] = 1.0
        tau, prev = -1.0, np.inf
        for t in range(0, h - 1, 2):
            pair = rho_t[t] + rho_t[t + 1]
            if pair < 0:
                break
            pair = min(pair, prev)
            prev = pair
            tau += 2 * pair
        ess[j] = M * h / max(tau, 1e-12)
    return rhat, ess


def predictive(samples, Xt, yt):
    m = Xt @ samples[:, :-1].T
    pplus = (0.5 * (1 + np.tanh(0.5 * m))).mean(axis=1)
    pminus = (0.5 * (1 - np.tanh(0.5 * m))).mean(axis=1)
    pt = np.where(yt > 0, pplus, pminus)
    return float(np.mean(pt > 0.5)), float(np.mean(np.log(pt)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train")
    ap.add_argument("out")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--samples", type=int, default=2500, help="kept transitions per chain")
    ap.add_argument("--warmup", type=int, default=1500)
    ap.add_argument("--leapfrog", type=int, default=32, help="at most this many leapfrog steps per transition")
    ap.add_argument("--mass", choices=("dense", "diag"), default="dense", help="the mass matrix: the inverse of the warm-up covariance, or of its diagonal")
    ap.add_argument("--prior-rate", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test")
    a = ap.parse_args()
    t0 = time.time()
    X, y = load(a.train)
    post = Posterior(X, y, a.prior_rate)
    D = X.shape[1] + 1
    rng = np.random.default_rng(a.seed)
    th_map = find_map(post, D)
    # warm-up on one chain: the step size with a unit mass, then twice: the covariance of the second
    # half of the window -> the mass, the step size again
    dense = a.mass == "dense"
    C = np.eye(D)
    w2, _, eps = hmc_chain(post, th_map, 1e-3, C, a.leapfrog, a.warmup, rng, adapt=True)
    for _ in range(2):
        C = metric(w2[a.warmup // 2:], dense)
        w2, _, eps = hmc_chain(post, w2[-1], eps, C, a.leapfrog, a.warmup, rng, adapt=True)
    C = metric(w2[a.warmup // 2:], dense)
    chains, accs = [], []
    for c in range(a.chains):
        start = w2[rng.integers(a.warmup // 2, a.warmup)]
        burn, _, eps_c = hmc_chain(post, start, eps, C, a.leapfrog, a.warmup // 3, rng, adapt=True)
        s, acc, _ = hmc_chain(post, burn[-1], eps_c, C, a.leapfrog, a.samples, rng)
        chains.append(s)
        accs.append(acc)
    chains = np.array(chains)
    rhat, ess = split_rhat_ess(chains)
    secs = time.time() - t0
    samples = chains.reshape(-1, D)
    print("%s: D = %d, %d chains x %d, acceptance %.2f, step %.3g, max R-hat %.4f, min bulk ESS %.0f, %.1f s"
          % (a.train, D, a.chains, a.samples, np.mean(accs), eps, rhat.max(), ess.min(), secs))
    with h5py.File(a.out + ".tmp", "w") as f:
        f["samples"] = samples
        f["rhat"] = rhat
        f["ess"] = ess
        f.attrs.update(train=a.train, chains=a.chains, samples_per_chain=a.samples, warmup=a.warmup,
                       acceptance=float(np.mean(accs)), step=eps, mass=a.mass, max_rhat=float(rhat.max()),
                       min_ess=float(ess.min()), seconds=secs, prior_rate=a.prior_rate, seed=a.seed)
        if a.test:
            Xt, yt = load(a.test)
            acc, ll = predictive(samples, Xt, yt)
            f.attrs.update(test=a.test, test_accuracy=acc, test_loglik=ll)
            print("  held out (%s): accuracy %.4f, log likelihood %.4f" % (a.test, acc, ll))
    os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
