#!/usr/bin/env python3
"""wgf's posterior against the exact one (MATH.md sec. 8; issue "Posterior sampling", item 7).

    compare.py CKPT REF.h5 TEST.h5 [--json OUT.json] [--wall SECONDS --ranks N]

CKPT is the final checkpoint of a -problem blr run: its /particles/x are samples of the model
(rho_0 draws pushed through every map). REF.h5 is written by reference_sampler.py on the same
training file. Printed (and written as JSON):
  - mean_w_relerr: |mean_wgf(w) - mean_ref(w)| / |mean_ref(w)| (Euclidean norms);
  - kl_w, kl_theta: KL(N_ref || N_wgf) between the Gaussian fits (mean and covariance) of the two
    sample sets, over w and over theta = (w, log alpha); kl_w_rev: KL(N_wgf || N_ref) over w;
  - the same KL and relative error for an exact sample of the size of wgf's (every k-th reference
    draw, k = floor(n_ref / n_wgf)) against all the reference draws: what sampling noise alone scores;
  - the held-out accuracy and mean log likelihood of the posterior predictive of both.
"""
import argparse
import json

import h5py
import numpy as np

from reference_sampler import predictive


def gauss_kl(m0, S0, m1, S1):
    """KL(N(m0, S0) || N(m1, S1))."""
    k = m0.size
    L1 = np.linalg.cholesky(S1)
    A = np.linalg.solve(L1, S0)
    tr = np.trace(np.linalg.solve(L1.T, A))
    dm = np.linalg.solve(L1, m1 - m0)
    logdet = 2 * np.log(np.diag(L1)).sum() - np.linalg.slogdet(S0)[1]
    return 0.5 * (tr + dm @ dm - k + logdet)


def fit(s):
    return s.mean(axis=0), np.cov(s, rowvar=False)


def stats(s, ref):
    mr, Sr = fit(ref)
    ms, Ss = fit(s)
    return {
        "mean_w_relerr": float(np.linalg.norm(ms[:-1] - mr[:-1]) / np.linalg.norm(mr[:-1])),
        "kl_w": float(gauss_kl(mr[:-1], Sr[:-1, :-1], ms[:-1], Ss[:-1, :-1])),
        "kl_w_rev": float(gauss_kl(ms[:-1], Ss[:-1, :-1], mr[:-1], Sr[:-1, :-1])),
        "kl_theta": float(gauss_kl(mr, Sr, ms, Ss)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt")
    ap.add_argument("ref")
    ap.add_argument("test")
    ap.add_argument("--json")
    ap.add_argument("--wall", type=float, default=float("nan"), help="wgf's wall time, recorded as it is")
    ap.add_argument("--ranks", type=int, default=0, help="wgf's rank count, recorded as it is")
    a = ap.parse_args()
    with h5py.File(a.ckpt, "r") as f:
        s = f["particles"]["x"][()]
        hist = f["history"][()]
        cols = f["history"].attrs["columns"]
        cols = (cols.decode() if isinstance(cols, bytes) else str(cols)).split(",")
    with h5py.File(a.ref, "r") as f:
        ref = f["samples"][()]
        ref_secs = float(f.attrs["seconds"])
    with h5py.File(a.test, "r") as f:
        Xt = np.asarray(f["X"][()], dtype=np.float64)
        yt = np.asarray(f["y"][()], dtype=np.float64).reshape(-1)
    out = {"ckpt": a.ckpt, "n_wgf": int(s.shape[0]), "n_ref": int(ref.shape[0]), "D": int(s.shape[1])}
    out.update(stats(s, ref))
    k = max(1, ref.shape[0] // s.shape[0])
    exact = ref[::k][: s.shape[0]]
    out.update({"exact_" + key: v for key, v in stats(exact, ref).items()})
    # log alpha, the slow direction of the flow: its marginal's mean and standard deviation
    out["a_mean_wgf"], out["a_sd_wgf"] = float(s[:, -1].mean()), float(s[:, -1].std())
    out["a_mean_ref"], out["a_sd_ref"] = float(ref[:, -1].mean()), float(ref[:, -1].std())
    out["acc_wgf"], out["ll_wgf"] = predictive(s, Xt, yt)
    out["acc_ref"], out["ll_ref"] = predictive(ref, Xt, yt)
    out["wgf_seconds"] = float(np.nansum(hist[:, cols.index("seconds")])) if "seconds" in cols else float("nan")
    out["ref_seconds"] = ref_secs
    out["wall_seconds"], out["ranks"] = a.wall, a.ranks
    print("%s (D = %d, %d samples; reference %d):" % (a.ckpt, out["D"], out["n_wgf"], out["n_ref"]))
    print("  mean of w: relative error %.4f (an exact sample of this size: %.4f)" % (out["mean_w_relerr"], out["exact_mean_w_relerr"]))
    print("  KL(N_ref || N_wgf): w %.4f, theta %.4f; KL(N_wgf || N_ref) over w %.4f (exact sample: w %.4f, theta %.4f)"
          % (out["kl_w"], out["kl_theta"], out["kl_w_rev"], out["exact_kl_w"], out["exact_kl_theta"]))
    print("  log alpha: wgf mean %.3f sd %.3f; exact mean %.3f sd %.3f" % (out["a_mean_wgf"], out["a_sd_wgf"], out["a_mean_ref"], out["a_sd_ref"]))
    print("  held out: wgf accuracy %.4f log lik %.4f; exact accuracy %.4f log lik %.4f"
          % (out["acc_wgf"], out["ll_wgf"], out["acc_ref"], out["ll_ref"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
