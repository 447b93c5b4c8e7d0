#!/usr/bin/env python3
"""Check the posterior problem end to end: the data files wgf reads and refuses, the record of
the files in /problem, and wgf-predict against a direct computation.

The protocol is --opts (input/blr_tiny.opts) with --extra (-blr_data TRAIN -blr_test TEST).
  a. a good run on 2 ranks exits 0; its /problem records the SHA-256 of both files (compared with
     hashlib's), n, d and the settings;
  b. wgf-predict -params <its final checkpoint> -data TEST -save_samples on 1, 2 and 3 ranks:
     /prob is the same on every rank count (1e-12), equals the mean over /samples of
     sigmoid(w.x) computed here with numpy (1e-12), the accuracy and loglik attributes equal the
     direct figures, and with the run's seed and -samples = -eval_samples they equal the run's
     last /history test_accuracy and test_loglik (1e-10); 2 rows on 3 ranks (one rank has none)
     give the 1-rank figures; -data with another d stops with one short message
     (wgf_runner.error_report) naming the option;
  b2. the run's flow is in whitened coordinates (the default): /particles/flow, u = (z, v), mapped
     here by the defining relations of the map (w parallel to z, (r^2 / (r^2 + 2b))^{d/2} =
     P(d/2, |z|^2 / 2) with r = |w|, P(1 + d/2, (b + r^2/2) e^a) = Phi(v), P from closed forms) and
     log rho - log N(u) + log p0(theta) are /particles (theta);
     densities by inversion with rho_0 = the truncated prior: wgf-eval -logdensity (beside
     wgf-predict) at the final checkpoint's /particles/x gives its /particles/logrho (computed along
     the chain from the prior's log density) to 1e-7 relative, every point converged;
  c. bad data files: labels 2 and 0, NaN and inf in /X, /y one shorter than /X, no rows, /X
     missing, /y missing, /X 1-D, and a -blr_test with another d: each stops with a non-zero status
     and one short message (wgf_runner.error_report) naming the file's base name and the object
     (/X, /y or -blr_test), creates no -out_dir and leaves the file as it was; -problem blr without
     -blr_data names -blr_data. Cases run on 1 rank; the bad label (found by every rank) and the
     missing /X also on 2 and 3.

Usage: check_wgf_blr.py WGF_PATH WGF_PREDICT_PATH --opts FILE --extra="-blr_data TRAIN -blr_test TEST" [--mpiexec ...]
"""
import hashlib
import math
import os
import shlex
import sys
import tempfile

import h5py
import numpy as np

import wgf_runner as wr


def gamma_q(s, x):
    """Q(s, x) for s a positive multiple of 1/2: Q(1, x) = e^-x, Q(1/2, x) = erfc(sqrt x), and
    Q(t + 1, x) = Q(t, x) + x^t e^-x / Gamma(t + 1) (closed forms, independent of wgf's series)."""
    t = 1.0 if s % 1 == 0 else 0.5
    q = np.exp(-x) if t == 1 else np.array([math.erfc(math.sqrt(v)) for v in x])
    while t < s - 0.25:
        q = q + np.exp(t * np.log(x) - x - math.lgamma(t + 1))
        t += 1
    return q


def check_whitened(check, fx, flr, px, plr, b):
    """b2: /particles (theta) against /particles/flow (u = (z, v)) through the whitened map's
    defining relations, in the tail of each CDF that keeps its digits."""
    d = fx.shape[1] - 1
    z, v, w, a = fx[:, :d], fx[:, d], px[:, :d], px[:, d]
    rho2, r2 = np.sum(z * z, axis=1), np.sum(w * w, axis=1)
    q = w / z
    check(np.all(q > 0) and np.allclose(q, q[:, :1], rtol=1e-13), "b2. w is a positive multiple of z", "spread %.2e" % np.max(np.abs(q - q[:, :1]) / q[:, :1]))
    lhs, rhs = 1 - (r2 / (r2 + 2 * b)) ** (d / 2), gamma_q(d / 2, rho2 / 2)
    check(np.allclose(lhs, rhs, rtol=1e-9, atol=0), "b2. the radial map: P(|w| > r) of the prior's marginal = Q(d/2, |z|^2/2)", "max rel. diff %.2e" % np.max(np.abs(lhs / rhs - 1)))
    phi_up = np.array([0.5 * math.erfc(x / math.sqrt(2)) for x in v])  # 1 - Phi(v)
    qa = gamma_q(1 + d / 2, (b + r2 / 2) * np.exp(a))
    check(np.allclose(qa, phi_up, rtol=1e-9, atol=0), "b2. log alpha: Q(1 + d/2, (b + r^2/2) e^a) = 1 - Phi(v)", "max rel. diff %.2e" % np.max(np.abs(qa / phi_up - 1)))
    lognu = -0.5 * np.sum(fx * fx, axis=1) - 0.5 * (d + 1) * math.log(2 * math.pi)
    logp0 = math.log(b) + a - b * np.exp(a) + 0.5 * d * a - 0.5 * np.exp(a) * r2 - 0.5 * d * math.log(2 * math.pi)
    tlr = flr - lognu + logp0
    check(np.allclose(tlr, plr, rtol=1e-11, atol=1e-11), "b2. log rho(theta) = log rho(u) - log N(u) + log p0(theta)", "max |diff| %.2e" % np.max(np.abs(tlr - plr)))


def main():
    args = wr.parse_args(__doc__, with_eval=True)
    predict_exe = args.wgf_eval
    extra = shlex.split(args.extra)
    train, test = extra[extra.index("-blr_data") + 1], extra[extra.index("-blr_test") + 1]
    failures = []

    def check(ok, what, detail=""):
        print("%s %s%s" % ("ok  " if ok else "FAIL", what, (": " + detail) if detail else ""))
        if not ok:
            failures.append(what)
        return ok

    def sha(path):
        return hashlib.sha256(open(path, "rb").read()).hexdigest()

    with tempfile.TemporaryDirectory(prefix="wgf_check_blr_") as tmp:
        # a. a good run
        out = os.path.join(tmp, "good")
        code, log, secs = wr.run_wgf(args, 2, out)
        last = wr.last_checkpoint(out)
        if not check(code == 0 and last is not None, "a. the tiny posterior run on 2 ranks", "exit %s in %.1f s\n%s" % (code, secs, "" if code == 0 else wr.tail(log))):
            print("%d failure(s)" % len(failures))
            return 1
        with h5py.File(last, "r") as f:
            at = dict(f["problem"].attrs)
            hist, cols = f["history"][()], wr.attr_str(f["history"].attrs["columns"]).split(",")
        with h5py.File(train, "r") as f:
            n, d = f["X"].shape
        rec = {k: (wr.attr_str(v) if isinstance(v, (bytes, str, np.bytes_)) else v) for k, v in at.items()}
        check(rec["data_sha256"] == sha(train) and rec["test_sha256"] == sha(test) and rec["n"] == n and rec["d"] == d
              and rec["type"] == "blr", "a. /problem records the files by SHA-256, n and d",
              "data_sha256 %s, test_sha256 %s, n %s, d %s" % (rec["data_sha256"][:12], rec["test_sha256"][:12], rec["n"], rec["d"]))

        # b. wgf-predict
        probs = {}
        ns = int(wr.read_options_file(args.opts)["eval_samples"])
        for nr in (1, 2, 3):
            po = os.path.join(tmp, "pred%d.h5" % nr)
            code, log, secs = wr.run(args, predict_exe, nr, ["-params", last, "-data", test, "-output", po, "-samples", str(ns), "-save_samples"])
            if not check(code == 0 and os.path.exists(po), "b. wgf-predict on %d rank(s)" % nr, "exit %s\n%s" % (code, "" if code == 0 else wr.tail(log))):
                continue
            with h5py.File(po, "r") as f:
                probs[nr] = (f["prob"][()], f["samples"][()], float(f.attrs["accuracy"]), float(f.attrs["loglik"]))
        if 1 in probs:
            p1, S, acc, ll = probs[1]
            for nr in (2, 3):
                if nr in probs:
                    check(np.max(np.abs(probs[nr][0] - p1)) <= 1e-12, "b. /prob on %d ranks equals 1 rank's" % nr, "max diff %.2e" % np.max(np.abs(probs[nr][0] - p1)))
            with h5py.File(test, "r") as f:
                X, y = f["X"][()], f["y"][()].astype(float)
            direct = (1 / (1 + np.exp(-(X @ S[:, :-1].T)))).mean(axis=1)
            pt = np.where(y > 0, direct, 1 - direct)
            dacc, dll = np.mean(pt > 0.5), np.mean(np.log(pt))
            check(np.max(np.abs(direct - p1)) <= 1e-12 and abs(acc - dacc) <= 1e-12 and abs(ll - dll) <= 1e-10,
                  "b. /prob, accuracy and loglik equal the direct computation from /samples",
                  "max |prob diff| %.2e, accuracy %.4f vs %.4f, loglik %.6f vs %.6f" % (np.max(np.abs(direct - p1)), acc, dacc, ll, dll))
            ha, hl = hist[-1, cols.index("test_accuracy")], hist[-1, cols.index("test_loglik")]
            check(abs(acc - ha) <= 1e-10 and abs(ll - hl) <= 1e-10, "b. with the run's seed and -eval_samples, the run's held-out figures",
                  "wgf-predict %.4f %.8f, /history %.4f %.8f" % (acc, ll, ha, hl))
            # -seed given explicitly: the run's seed reproduces the default, another seed draws other samples
            with h5py.File(last, "r") as f:
                seed = int(wr.attr_str(f["config"].attrs["seed"]))
            for sd, same in ((seed, True), (seed + 1, False)):
                po = os.path.join(tmp, "pred_seed%d.h5" % sd)
                code, log, _ = wr.run(args, predict_exe, 1, ["-params", last, "-data", test, "-output", po, "-samples", str(ns), "-seed", str(sd)])
                ok = code == 0 and os.path.exists(po)
                if ok:
                    with h5py.File(po, "r") as f:
                        ok = np.array_equal(f["prob"][()], p1) == same
                check(ok, "b. wgf-predict -seed %d %s the run's seed's /prob" % (sd, "gives" if same else "differs from"), "exit %s\n%s" % (code, "" if code == 0 else wr.tail(log)))
        with h5py.File(test, "r") as f:
            X2, y2 = f["X"][:2], f["y"][:2]
        two = os.path.join(tmp, "two.h5")
        with h5py.File(two, "w") as f:
            f["X"], f["y"] = X2, y2
        got = {}
        for nr in (1, 3):
            po = os.path.join(tmp, "two_pred%d.h5" % nr)
            code, log, secs = wr.run(args, predict_exe, nr, ["-params", last, "-data", two, "-output", po, "-samples", str(ns)])
            if code == 0:
                with h5py.File(po, "r") as f:
                    got[nr] = (float(f.attrs["accuracy"]), float(f.attrs["loglik"]))
        check(len(got) == 2 and np.isfinite(got[3]).all() and np.allclose(got[1], got[3], rtol=1e-12, atol=1e-14),
              "b. 2 rows on 3 ranks (a rank without rows) give the 1-rank figures", "%s" % got)
        bad_d = os.path.join(tmp, "bad_d.h5")
        with h5py.File(bad_d, "w") as f:
            f["X"] = np.zeros((5, d + 1))
        code, log, _ = wr.run(args, predict_exe, 1, ["-params", last, "-data", bad_d, "-output", os.path.join(tmp, "x.h5")])
        msg, problems = wr.error_report(code, log, "wgf-predict")
        if not ("-data" in msg and "features" in msg):
            problems.append("the message does not name -data and its features")
        check(not problems and not os.path.exists(os.path.join(tmp, "x.h5")), "b. wgf-predict -data with another d is refused",
              msg[:140] if not problems else "; ".join(problems) + "\n" + wr.tail(log))

        # b2. the density by inversion (rho_0 = the prior) against the chain's
        with h5py.File(last, "r") as f:
            px, plr = f["particles"]["x"][()], f["particles"]["logrho"][()]
            coords = f["problem"].attrs["coordinates"].decode()
            fx, flr = (f["particles"]["flow"]["x"][()], f["particles"]["flow"]["logrho"][()]) if "flow" in f["particles"] else (None, None)
        if check(coords == "whitened" and fx is not None, "b2. the flow ran in whitened coordinates (the default), its particles are in /particles/flow", "coordinates %s" % coords):
            check_whitened(check, fx, flr, px, plr, float(at["prior_rate"]))
        pts = os.path.join(tmp, "points.h5")
        with h5py.File(pts, "w") as f:
            f["points"] = px
        ev = os.path.join(os.path.dirname(predict_exe), "wgf-eval")
        eo = os.path.join(tmp, "eval.h5")
        code, log, secs = wr.run(args, ev, 2, ["-params", last, "-points", pts, "-output", eo, "-logdensity"])
        if check(code == 0, "b2. wgf-eval -logdensity on the particles", "exit %s\n%s" % (code, "" if code == 0 else wr.tail(log))):
            with h5py.File(eo, "r") as f:
                lr, conv = f["logrho"][()], f["converged"][()]
            rel = np.max(np.abs(lr - plr)) / np.max(np.abs(plr))
            check(conv.all() and rel < 1e-7, "b2. log densities by inversion equal the chain's", "rel diff %.2e, %d of %d converged" % (rel, conv.sum(), conv.size))

        # c. bad data files
        with h5py.File(train, "r") as f:
            X, y = f["X"][()], f["y"][()]

        def write(name, **dsets):
            path = os.path.join(tmp, name + ".h5")
            with h5py.File(path, "w") as f:
                for k, v in dsets.items():
                    f[k] = v
            return path

        def y_with(v):
            yy = y.astype(np.float64).copy()
            yy[7] = v
            return yy

        Xn, Xi = X.copy(), X.copy()
        Xn[3, 1] = np.nan
        Xi[5, 0] = np.inf
        cases = [
            ("label2", dict(X=X, y=y_with(2)), "/y", "label", (1, 2, 3)),
            ("label0", dict(X=X, y=y_with(0).astype(np.int32)), "/y", "label", (1,)),
            ("nan", dict(X=Xn, y=y), "/X", "not finite", (1,)),
            ("inf", dict(X=Xi, y=y), "/X", "not finite", (1,)),
            ("short_y", dict(X=X, y=y[:-1]), "/y", "one label per row", (1,)),
            ("empty", dict(X=np.zeros((0, d)), y=np.zeros(0, np.int8)), "/X", "n, d >= 1", (1,)),
            ("no_X", dict(y=y), "/X", "no dataset", (1, 2, 3)),
            ("no_y", dict(X=X), "/y", "no dataset", (1,)),
            ("X_1d", dict(X=X[:, 0].copy(), y=y), "/X", "n x d", (1,)),
        ]
        for name, dsets, obj, what, ranks in cases:
            path = write(name, **dsets)
            for nr in ranks:
                before = wr.snapshot(path)
                od = os.path.join(tmp, "out_%s_%d" % (name, nr))
                code, log, secs = wr.run_wgf(args, nr, od, extra=["-blr_data", path])
                msg, problems = wr.error_report(code, log, "wgf")
                if not (os.path.basename(path) in msg and obj in msg and what.lower() in msg.lower()):
                    problems.append("the message does not name %s, %s and %r" % (os.path.basename(path), obj, what))
                ok = not problems and not os.path.exists(od) and wr.snapshot(path) == before
                check(ok, "c. -blr_data %s on %d rank(s) is refused" % (name, nr), "exit %s in %.1f s, out_dir %s: %s" % (
                    code, secs, "absent" if not os.path.exists(od) else "CREATED", msg[:160] if not problems else "; ".join(problems) + "\n" + wr.tail(log)))
        path = write("test_d", X=np.zeros((4, d + 2)), y=np.ones(4, np.int8))
        od = os.path.join(tmp, "out_test_d")
        code, log, secs = wr.run_wgf(args, 1, od, extra=["-blr_test", path])
        msg, problems = wr.error_report(code, log, "wgf")
        if not ("-blr_test" in msg and os.path.basename(path) in msg):
            problems.append("the message does not name -blr_test and the file")
        check(not problems and not os.path.exists(od), "c. a -blr_test with another d is refused", msg[:160] if not problems else "; ".join(problems) + "\n" + wr.tail(log))
        od = os.path.join(tmp, "out_nodata")
        code, log, secs = wr.run(args, args.wgf, 1, ["-problem", "blr", "-out_dir", od])
        msg, problems = wr.error_report(code, log, "wgf")
        if "-blr_data" not in msg:
            problems.append("the message does not name -blr_data")
        check(not problems and not os.path.exists(od), "c. -problem blr without -blr_data is refused", msg[:160] if not problems else "; ".join(problems) + "\n" + wr.tail(log))
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
