#!/usr/bin/env python3
"""Cost model of one data-parallel training iteration of wgf on P ranks (README.md, "Past one node").

One SGD iteration of a JKO step (src/jko.c) on P ranks is

    T(P) = T_c(b) + T_rep + T_ar(P),

  T_c(b)  the training pass (forward, Hessian, log det, reverse sweep) over this rank's b points,
          b = ceil(B / P) for strong scaling at the global batch B, b fixed for weak scaling;
          T_c(b) = b / rate(b), rate(b) = the samples/s of one rank at a per-rank batch of b,
          measured with wgf-bench -batch b. Between measured batches the rate is interpolated
          linearly in log2(b); outside them the nearest measured rate is used and the row is
          flagged '*'. Given only one rate (or t1 = the seconds of one iteration at the global
          batch on one rank), the per-point cost is assumed independent of b: optimistic at
          small b, where the kernel's dgemms get thin (at 2 points per rank the measured rate
          is 0.24 to 0.37 of the rate at 512, README "Past one node").
  T_rep   the work every rank repeats on the whole parameter vector: Adam and the convexity
          clamp, T_rep = adam_ns * |theta| (measured here with -log_view, event Adam: about
          9-10 ns per parameter, memory-bound). It does not shrink with P.
  T_ar(P) one MPI_Allreduce of n = 8 (|theta| + 5) bytes (the gradient, three loss terms, the
          error and stop flags), in the alpha-beta-gamma model of Thakur, Rabenseifner and
          Gropp, "Optimization of collective communication operations in MPICH", IJHPCA 19
          (2005):
            ring                 2 (P-1) alpha + 2 (P-1)/P n beta + (P-1)/P n gamma
            recursive doubling   ceil(log2 P) (alpha + n beta + n gamma)
            Rabenseifner         2 ceil(log2 P) alpha + 2 (P-1)/P n beta + (P-1)/P n gamma
                                 (reduce-scatter by recursive halving, allgather by recursive
                                 doubling)
          with beta = 1 / bandwidth and gamma the local cost of summing one byte.
          MPI libraries choose per message size: MPICH and MVAPICH use recursive doubling up to
          2 KiB (MPIR_CVAR_ALLREDUCE_SHORT_MSG_SIZE) and Rabenseifner above; Open MPI's
          coll/tuned uses recursive doubling for small messages and ring or segmented ring for
          large ones. Every |theta| here is 100 KB or more, so the bandwidth-optimal algorithms
          apply. 'best' is the cheapest of the three, a proxy for a well-tuned library; 'ring'
          is reported beside it because its latency term grows linearly in P.

Efficiency:
    strong  E(P) = T(1) / (P T(P)),    T(1) = T_c(B) + T_rep  (no allreduce on one rank)
    weak    E(P) = T(1) / T(P)  = (T_c(b) + T_rep) / (T_c(b) + T_rep + T_ar(P)),
            which is T_c / (T_c + T_ar) when T_rep is neglected. Weak scaling keeps b per rank,
            so the global batch is P b: a different optimisation (larger batches), which this
            hardware efficiency does not judge.

Interconnect, default: an InfiniBand HDR cluster, one rank per NIC port, flat (every message
crosses the network):
    alpha = 2 us per message: the MPI small-message latency on HDR is about 1-1.5 us
            point to point (OSU micro-benchmarks, osu_latency, on ConnectX-6), plus software
            overhead per step of a collective;
    bandwidth = 12.5 GB/s per direction: 100 Gb/s, the line rate of an HDR100 port (the usual
            node attachment of HDR fabrics with split switch ports), or about half of a full
            200 Gb/s HDR port; a conservative effective rate for large messages;
    gamma = 0.04 ns per byte: numpy a += b on 1.2 M doubles on the development machine
            (25 GB/s of output); cluster cores are of the same order.
These are assumptions, not measurements: override them (--alpha, --bandwidth, --gamma). A node
with many ranks shares its NIC; a node-aware (hierarchical) allreduce, intra-node shared memory
then the network between nodes, is not modelled, so the flat model is pessimistic inside a node
and optimistic when many ranks of a node send at once.

Input: --config FILE (JSON, format below), or --shape NAME PARAMS BATCH RATES (repeatable),
where RATES is 'b1=r1,b2=r2,...' (samples/s of one rank at per-rank batch b) or 't1=SECONDS'
(one iteration at the global batch on one rank). Without either, the shapes measured on the
development machine (embedded below, README "Past one node") are used.

    {"alpha": 2e-6, "bandwidth": 12.5e9, "gamma": 0.04e-9, "adam_ns": 9.5,
     "shapes": [{"name": "ou", "params": 13504, "global_batch": 1024,
                 "rates": {"1024": 25037, "64": 26158}}]}

(a shape may give "t1" instead of "rates", and "dim", "widths", "rank" instead of "params").

Usage: /usr/bin/python3 jobs/bench/scaling_model.py [--P 1,2,16,64,256] [--weak-batch B]
       [--alpha S] [--bandwidth BYTES_PER_S] [--gamma S_PER_BYTE] [--adam-ns NS]
       [--compute-speedup S]   (training-pass rates x S: faster cores, or a quiet machine)
Python 3 with numpy only.
"""
import argparse
import json
import math
import sys

import numpy as np

DEFAULTS = {
    "alpha": 2e-6,
    "bandwidth": 12.5e9,
    "gamma": 0.04e-9,
    # Adam + convexify per parameter and iteration: wgf -log_view, event Adam, on one rank:
    # 0.137 ms for 13504 parameters (OU, 200 iterations), 10.8 ms for 1199104 (mixture D = 12,
    # 10 iterations): 10.1 and 9.0 ns. The machine was loaded.
    "adam_ns": 9.5,
    # Measured with build/bin/wgf-bench DIMS_WIDTHS -batch b -precisions P -seconds 1 on one rank of
    # the 2-core development machine, the other core idle (README "Past one node"): samples/s of
    # the training pass per per-rank batch b; "rates" in double precision (the default),
    # "rates_single" with -icnn_precision single.
    "shapes": [
        {"name": "ou", "dim": 12, "widths": [64, 64], "rank": 5, "global_batch": 1024,
         "rates": {"1024": 40292.8, "64": 39008.9, "16": 33194.0, "4": 22205.8},
         "rates_single": {"1024": 54601.3, "64": 52220.0, "16": 41815.0, "4": 25301.5}},
        {"name": "mixture", "dim": 12, "widths": [1024, 1024], "rank": 5, "global_batch": 512,
         "rates": {"512": 435.0, "32": 416.6, "8": 338.1, "2": 159.3},
         "rates_single": {"512": 839.2, "32": 772.7, "8": 572.2, "2": 283.1}},
        {"name": "posterior", "dim": 61, "widths": [512, 512], "rank": 5, "global_batch": 512,
         "rates": {"512": 281.3, "32": 250.0, "8": 171.3, "2": 66.6},
         "rates_single": {"512": 528.9, "32": 462.2, "8": 281.7, "2": 107.2}},
    ],
}


def icnn_params(dim, widths, rank):
    """|theta| of the DenseICNN (src/icnn.c, the canonical order): per hidden layer l of width
    n_l: A (D r n_l), W (n_l D), b (n_l), U (n_l n_{l-1}, l >= 2); then the output w (n_L)."""
    total = 0
    for l, n in enumerate(widths):
        total += dim * rank * n + n * dim + n + (n * widths[l - 1] if l else 0)
    return total + widths[-1]


class Shape:
    def __init__(self, spec, precision="double"):
        self.name = spec["name"]
        self.B = int(spec["global_batch"])
        if "params" in spec:
            self.params = int(spec["params"])
        else:
            self.params = icnn_params(int(spec["dim"]), [int(w) for w in spec["widths"]], int(spec.get("rank", 5)))
        key = "rates_single" if precision == "single" else "rates"
        if key in spec:
            pts = sorted((int(b), float(r)) for b, r in spec[key].items())
        elif "t1" in spec:
            pts = [(self.B, self.B / float(spec["t1"]))]
        else:
            raise SystemExit(f"shape {self.name}: give '{key}' (samples/s per per-rank batch) or 't1' (seconds per iteration on one rank)")
        if any(b < 1 or r <= 0 for b, r in pts):
            raise SystemExit(f"shape {self.name}: batches must be >= 1 and rates > 0, got {pts}")
        self.batches = np.array([b for b, _ in pts], dtype=float)
        self.rates = np.array([r for _, r in pts])
        self.assumed_constant = len(pts) == 1
        self.bytes = 8.0 * (self.params + 5)

    def rate(self, b):
        """samples/s of one rank at a per-rank batch of b, and whether it was extrapolated."""
        if self.assumed_constant:
            return self.rates[0], b != self.batches[0]
        x = math.log2(b)
        lx = np.log2(self.batches)
        out = b < self.batches[0] or b > self.batches[-1]
        return float(np.interp(x, lx, self.rates)), out

    def t_compute(self, b):
        r, flag = self.rate(b)
        return b / r, flag


def allreduce(P, n, alpha, beta, gamma):
    """{algorithm: (seconds, latency part, bandwidth + reduction part)} for P ranks, n bytes."""
    if P == 1:
        return {k: (0.0, 0.0, 0.0) for k in ("ring", "rd", "rab")}
    lg = math.ceil(math.log2(P))
    f = (P - 1) / P
    ring = (2 * (P - 1) * alpha, 2 * f * n * beta + f * n * gamma)
    rd = (lg * alpha, lg * n * (beta + gamma))
    rab = (2 * lg * alpha, 2 * f * n * beta + f * n * gamma)
    return {k: (a + b, a, b) for k, (a, b) in (("ring", ring), ("rd", rd), ("rab", rab))}


def best(ar):
    k = min(ar, key=lambda k: ar[k][0])
    return k, ar[k]


def fmt_ms(s):
    return f"{1e3 * s:9.3f}"


def one_rank(sh, weak_b, adam_ns):
    """T_rep, and the one-rank times of an iteration at the global batch and at the weak batch."""
    t_rep = adam_ns * 1e-9 * sh.params
    return t_rep, sh.t_compute(sh.B)[0] + t_rep, sh.t_compute(weak_b)[0] + t_rep


def shape_table(sh, Ps, weak_b, net, adam_ns, out):
    alpha, beta, gamma = net
    t_rep, T1, Tw1 = one_rank(sh, weak_b, adam_ns)
    tc1 = T1 - t_rep
    wflag = sh.t_compute(weak_b)[1]
    print(f"\n### {sh.name}: |theta| = {sh.params}, allreduce of {sh.params + 5} doubles = {sh.bytes / 1e6:.3f} MB, "
          f"global batch B = {sh.B}, weak scaling at b = {weak_b} per rank", file=out)
    print(f"T(1) = {1e3 * T1:.3f} ms per iteration (training pass {1e3 * tc1:.3f} ms at {sh.B / tc1:.0f} samples/s, "
          f"Adam {1e3 * t_rep:.3f} ms)" + (" -- one rate given: per-point cost assumed independent of the batch" if sh.assumed_constant else ""), file=out)
    print("", file=out)
    hdr = ("|     P | b/rank | T_c ms    | T_ar ring | T_ar RD   | T_ar Rab  | E strong ring | E strong best  "
           "| E weak ring | E weak best    |")
    print(hdr, file=out)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|", file=out)
    for P in Ps:
        b = math.ceil(sh.B / P)
        tc, flag = sh.t_compute(b)
        ar = allreduce(P, sh.bytes, alpha, beta, gamma)
        kb, (tb, _, _) = best(ar)
        es_ring = T1 / (P * (tc + t_rep + ar["ring"][0]))
        es_best = T1 / (P * (tc + t_rep + tb))
        ew_ring = Tw1 / (Tw1 + ar["ring"][0])
        ew_best = Tw1 / (Tw1 + tb)
        lab = {"ring": "ring", "rd": "RD", "rab": "Rab"}[kb] if P > 1 else "-"
        print(f"| {P:5d} | {b:5d}{'*' if flag else ' '} |{fmt_ms(tc)}  |{fmt_ms(ar['ring'][0])}  |{fmt_ms(ar['rd'][0])}  |"
              f"{fmt_ms(ar['rab'][0])}  | {es_ring:13.3f} | {es_best:6.3f} ({lab:>4}) | {ew_ring:11.3f} | {ew_best:6.3f} ({lab:>4}) |", file=out)
    if wflag:
        print(f"(weak: b = {weak_b} is outside the measured batches, nearest rate used)", file=out)
    return T1, Tw1, t_rep


def why(sh, P, b, tc, t_rep, ar_parts, T1, strong):
    """The largest overhead at P, in words."""
    tot, lat, bw = ar_parts
    terms = {"the allreduce's latency term (alpha, per message)": lat,
             "the allreduce's bandwidth term (n beta + n gamma)": bw,
             "Adam on the whole |theta|, repeated on every rank": t_rep}
    if strong:
        ideal = (T1 - t_rep) / P
        terms[f"the training pass at {b} points per rank, slower per point than at B"] = max(0.0, tc - ideal)
    k = max(terms, key=terms.get)
    T = tc + t_rep + tot
    regime = "latency-bound" if lat > bw else "bandwidth-bound"
    parts = (f"T({P}) = {1e3 * T:.3f} ms: training pass {1e3 * tc:.3f}, Adam {1e3 * t_rep:.3f}, "
             f"allreduce {1e3 * tot:.3f}, {regime} (latency {1e3 * lat:.3f}, bandwidth {1e3 * bw:.3f})")
    return k, parts


def crossings(sh, weak_b, net, adam_ns, out, Pmax):
    alpha, beta, gamma = net
    t_rep, T1, Tw1 = one_rank(sh, weak_b, adam_ns)
    for mode in ("strong", "weak"):
        for alg in ("ring", "best"):
            hit = None
            P = 2
            top = min(Pmax, sh.B) if mode == "strong" else Pmax
            while P <= top:
                b = math.ceil(sh.B / P) if mode == "strong" else weak_b
                tc = sh.t_compute(b)[0]
                ar = allreduce(P, sh.bytes, alpha, beta, gamma)
                k, parts = (alg, ar["ring"]) if alg == "ring" else best(ar)
                E = T1 / (P * (tc + t_rep + parts[0])) if mode == "strong" else Tw1 / (tc + t_rep + parts[0])
                if E < 0.5:
                    hit = (P, b, tc, k, parts, E)
                    break
                P *= 2
            if hit is None:
                lim = f"P = {top}" + (" (= B, one point per rank)" if mode == "strong" and top == sh.B else "")
                print(f"- {mode}, {alg}: E >= 0.5 up to {lim}", file=out)
                continue
            P, b, tc, k, parts, E = hit
            reason, detail = why(sh, P, b, tc, t_rep, parts, T1, mode == "strong")
            print(f"- {mode}, {alg}{'' if alg == 'ring' else ' (' + k + ')'}: E < 0.5 first at P = {P} (E = {E:.3f}, {b} points per rank); "
                  f"largest overhead: {reason}. {detail} ms", file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring for the model and its sources.")
    ap.add_argument("--config", help="JSON file: alpha, bandwidth, gamma, adam_ns, shapes (see the docstring)")
    ap.add_argument("--shape", nargs=4, action="append", metavar=("NAME", "PARAMS", "BATCH", "RATES"),
                    help="a shape on the command line; RATES = 'b1=r1,b2=r2' samples/s or 't1=SECONDS'")
    ap.add_argument("--P", default="1,2,16,64,256", help="rank counts of the tables (default 1,2,16,64,256)")
    ap.add_argument("--Pmax", type=int, default=65536, help="search limit for E < 0.5 (default 65536)")
    ap.add_argument("--weak-batch", type=int, help="per-rank batch of the weak-scaling columns (default: each shape's global batch)")
    ap.add_argument("--alpha", type=float, help="latency per message in s (default 2e-6)")
    ap.add_argument("--bandwidth", type=float, help="bytes/s per direction (default 12.5e9)")
    ap.add_argument("--gamma", type=float, help="s per byte summed (default 0.04e-9)")
    ap.add_argument("--adam-ns", type=float, help="ns per parameter of the replicated Adam update (default 9.5)")
    ap.add_argument("--precision", choices=("double", "single"), default="double",
                    help="which measured training-pass rates to use: -icnn_precision double (default) or single")
    ap.add_argument("--compute-speedup", type=float, default=1.0,
                    help="divide every training-pass time by this (faster cores than the measurement's; default 1)")
    a = ap.parse_args(argv)

    cfg = dict(DEFAULTS)
    if a.config:
        with open(a.config) as f:
            cfg.update(json.load(f))
    if a.shape:
        cfg["shapes"] = []
        for name, params, batch, rates in a.shape:
            spec = {"name": name, "params": int(params), "global_batch": int(batch)}
            if rates.startswith("t1="):
                spec["t1"] = float(rates[3:])
            else:
                spec["rates"] = dict(kv.split("=") for kv in rates.split(","))
            cfg["shapes"].append(spec)
    for k in ("alpha", "bandwidth", "gamma"):
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    if a.adam_ns is not None:
        cfg["adam_ns"] = a.adam_ns
    alpha, bw, gamma, adam_ns = float(cfg["alpha"]), float(cfg["bandwidth"]), float(cfg["gamma"]), float(cfg["adam_ns"])
    if alpha < 0 or bw <= 0 or gamma < 0 or adam_ns < 0 or a.compute_speedup <= 0:
        raise SystemExit("--alpha, --gamma and --adam-ns must be >= 0, --bandwidth and --compute-speedup > 0")
    Ps = [int(p) for p in a.P.split(",")]
    if any(p < 1 for p in Ps):
        raise SystemExit("--P: rank counts must be >= 1")
    net = (alpha, 1.0 / bw, gamma)
    out = sys.stdout

    print(f"Interconnect: alpha = {alpha * 1e6:g} us, bandwidth = {bw / 1e9:g} GB/s, gamma = {gamma * 1e9:g} ns/byte; "
          f"Adam {adam_ns:g} ns per parameter; training pass in {a.precision} precision, rates x {a.compute_speedup:g}. Times per iteration in ms; '*' = per-rank batch outside the measured ones "
          f"(nearest rate used). RD = recursive doubling, Rab = Rabenseifner; 'best' = the cheapest of ring, RD, Rab.", file=out)
    for spec in cfg["shapes"]:
        sh = Shape(spec, a.precision)
        sh.rates = sh.rates * a.compute_speedup
        wb = a.weak_batch if a.weak_batch else sh.B
        shape_table(sh, Ps, wb, net, adam_ns, out)
        print("", file=out)
        crossings(sh, wb, net, adam_ns, out, a.Pmax)
    return 0


if __name__ == "__main__":
    sys.exit(main())
