#!/usr/bin/env python3
"""Tabulate the posterior study (run_dataset.sh): one row per data set and tag, means and standard
errors over the splits, beside the paper's figures (../shared/reference/paper_results.md).

    table.py OUT [--markdown]

Columns: splits; held-out accuracy and mean log likelihood of wgf and of the exact posterior
(HMC on the same split); wgf - exact, paired by split; the relative error of wgf's mean of w;
KL(N_exact || N_wgf) of the Gaussian fits over w and over theta, and what an exact sample of the
same size scores over w; log alpha's marginal: wgf's mean less the exact one, and the ratio of
their standard deviations; wgf's wall time and ranks; the reference sampler's time.
"""
import argparse
import glob
import json
import os
import re
from collections import defaultdict

import numpy as np

PAPER = {"covtype": (0.756, -0.516), "german": (0.670, -0.599), "diabetis": (0.773, -0.451), "twonorm": (0.982, -0.058),
         "ringnorm": (0.740, -0.499), "banana": (0.561, -0.691), "splice": (0.835, -0.366), "waveform": (0.781, -0.487),
         "image": (0.818, -0.444)}


def ms(v, fmt="%.3f"):
    v = np.asarray(v, dtype=float)
    if v.size < 2:
        return fmt % v.mean()
    return (fmt + " ± " + fmt) % (v.mean(), v.std(ddof=1) / np.sqrt(v.size))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    a = ap.parse_args()
    groups = defaultdict(list)
    for path in sorted(glob.glob(os.path.join(a.out, "cmp_*.json"))):
        m = re.match(r"cmp_(.+)_s(\d+)(.*)\.json$", os.path.basename(path))
        if m:
            groups[(m.group(1), m.group(3))].append(json.load(open(path)))
    print("| data set | tag | splits | wgf accuracy | exact accuracy | wgf log lik | exact log lik | log lik wgf - exact | paper acc / log lik "
          "| mean w rel. err | KL w | KL theta | KL w, exact sample | log alpha: wgf - exact mean, sd ratio | wgf wall s (ranks) | HMC s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (name, tag), rows in sorted(groups.items()):
        g = lambda k: [r.get(k, float("nan")) for r in rows]
        paper = PAPER.get(name)
        print("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s, %s | %s (%s) | %s |" % (
            name, tag or "-", len(rows), ms(g("acc_wgf")), ms(g("acc_ref")), ms(g("ll_wgf")), ms(g("ll_ref")),
            ms(np.subtract(g("ll_wgf"), g("ll_ref")), "%.4f"), "%.3f / %.3f" % paper if paper else "-",
            ms(g("mean_w_relerr"), "%.4f"), ms(g("kl_w")), ms(g("kl_theta")), ms(g("exact_kl_w")),
            ms(np.subtract(g("a_mean_wgf"), g("a_mean_ref")), "%.2f"), ms(np.divide(g("a_sd_wgf"), g("a_sd_ref")), "%.2f"),
            ms(g("wall_seconds"), "%.0f"), ",".join(sorted({str(r.get("ranks")) for r in rows})), ms(g("ref_seconds"), "%.0f")))


if __name__ == "__main__":
    main()
