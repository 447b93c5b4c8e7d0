#!/usr/bin/env python3
"""Checks of the scaling model jobs/bench/scaling_model.py (README "Past one node").

    check_scaling_model.py WGF_BENCH

  * its parameter count of the DenseICNN agrees with wgf's own (wgf-bench prints it) for the
    three shapes of the model;
  * the allreduce costs at P = 2 and P = 8 against the alpha-beta-gamma formulas written out by
    hand (ring: 2 (P-1) alpha + 2 (P-1)/P n beta + (P-1)/P n gamma, ...), and one rank costs 0;
  * with a free network, no Adam and a rate independent of the batch, strong and weak
    efficiencies are exactly 1; with a costly network they fall as P grows;
  * the rates are interpolated between measured batches and flagged outside them.
Exit status 1 on any failure.
"""

import math
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "jobs", "bench"))
import scaling_model as sm  # noqa: E402

fails = 0


def expect(cond, msg):
    global fails
    if not cond:
        fails += 1
        print("FAIL:", msg)


def main():
    bench = sys.argv[1]
    for spec in sm.DEFAULTS["shapes"]:
        widths = ",".join(str(w) for w in spec["widths"])
        out = subprocess.run([bench, "-dim", str(spec["dim"]), "-widths", widths, "-rank", str(spec["rank"]), "-batch", "1",
                              "-precisions", "double", "-seconds", "0.001", "-gemm_n", "4"],
                             capture_output=True, text=True, check=True).stdout
        wgf = int(re.search(r"(\d+) parameters", out).group(1))
        mine = sm.icnn_params(spec["dim"], spec["widths"], spec["rank"])
        expect(wgf == mine, f"{spec['name']}: the model counts {mine} parameters, wgf {wgf}")

    a, b, g, n = 3e-6, 1 / 10e9, 0.05e-9, 4e6
    expect(all(v == (0.0, 0.0, 0.0) for v in sm.allreduce(1, n, a, b, g).values()), "one rank must cost nothing")
    for P in (2, 8):
        ar = sm.allreduce(P, n, a, b, g)
        lg, f = math.log2(P), (P - 1) / P
        ring = 2 * (P - 1) * a + 2 * f * n * b + f * n * g
        rd = lg * (a + n * b + n * g)
        rab = 2 * lg * a + 2 * f * n * b + f * n * g
        for k, want in (("ring", ring), ("rd", rd), ("rab", rab)):
            expect(abs(ar[k][0] - want) <= 1e-15 + 1e-12 * want, f"P = {P}, {k}: {ar[k][0]} s, by hand {want} s")
            expect(abs(ar[k][1] + ar[k][2] - ar[k][0]) <= 1e-12 * want, f"P = {P}, {k}: latency and bandwidth parts do not add up")

    # A free network and no Adam: every rank count is perfectly efficient, for a constant rate.
    sh = sm.Shape({"name": "t", "params": 1000, "global_batch": 256, "t1": 0.5})
    for P in (1, 4, 64, 256):
        tc, _ = sh.t_compute(math.ceil(256 / P))
        expect(abs(sh.t_compute(256)[0] / (P * tc) - 1) < 1e-12, f"P = {P}: constant rate, free network, E != 1")
    # With a costly network the strong efficiency falls with P.
    T1 = sh.t_compute(256)[0]
    es = [T1 / (P * (sh.t_compute(256 // P)[0] + sm.allreduce(P, sh.bytes, 1e-5, 1e-9, 0)["ring"][0])) for P in (2, 16, 128)]
    expect(es[0] > es[1] > es[2], f"strong efficiency should fall with P, got {es}")

    sh = sm.Shape({"name": "t", "params": 10, "global_batch": 64, "rates": {"4": 100, "64": 500}})
    r, out = sh.rate(16)  # log2 16 is halfway between log2 4 and log2 64
    expect(abs(r - 300) < 1e-9 and not out, f"rate at 16: {r}, flagged {out}; expected 300, not flagged")
    r, out = sh.rate(1)
    expect(r == 100 and out, f"rate at 1: {r}, flagged {out}; expected the nearest (100), flagged")

    print("check_scaling_model:", "all checks passed" if not fails else f"{fails} failure(s)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
