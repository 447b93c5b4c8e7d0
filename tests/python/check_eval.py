#!/usr/bin/env python3
"""Check wgf-eval against the independent numpy reference icnn_ref (MATH.md sec. 2-4).

For many random convex networks (D = 1, 2, 3, 7; 1 to 4 layers; rank 1 and 5; strong convexity
1e-6 and 0.3; 1 to 17 points) it writes a params file and a points file, runs
    WGF_EVAL_PATH -params P -points X -output O [-map k]
and compares every output dataset with the reference:
    /psi (N), /grad (N, D), /hessian (N, D, D), /logdet (N), and, when the points file holds the
    seeds /psibar /ybar /hbar, /theta_grad (P) = the reverse sweep summed over the N points.
Relative error = max|a - b| / max(max|b|, 1e-300) must be <= 1e-9 for every dataset.
It also checks that with two maps in the params file the default is the highest map (0002)
and that -map 1 selects map 0001.

Usage: check_eval.py WGF_EVAL_PATH [--mpiexec "mpiexec -n 2 --oversubscribe"] [--seed N]
Prints one line per case; exit status 1 on any failure, 0 otherwise.
"""

import os
import sys
import tempfile

import h5py
import numpy as np

import icnn_ref as ref
import make_case
from eval_runner import parse_args, run_eval

TOL = 1e-9

# (D, widths, rank, strong convexity, N points, seeds given, string type of the activation attribute)
CASES = [
    (1, [5], 1, 1e-6, 1, True, "vlen"),
    (2, [5], 5, 0.3, 17, True, "fixed"),
    (3, [7, 3], 1, 1e-6, 4, True, "vlen"),
    (7, [7, 3], 5, 0.3, 9, True, "fixed"),
    (1, [6, 9, 4], 5, 0.3, 13, True, "vlen"),
    (2, [6, 9, 4], 1, 1e-6, 2, False, "fixed"),
    (3, [3, 5, 2, 8], 5, 1e-6, 17, True, "vlen"),
    (7, [3, 5, 2, 8], 1, 0.3, 6, True, "fixed"),
    (7, [6, 9, 4], 5, 1e-6, 11, True, "vlen"),
    (1, [3, 5, 2, 8], 1, 1e-6, 7, False, "fixed"),
    (2, [7, 3], 5, 1e-6, 3, True, "vlen"),
    (3, [5], 1, 0.3, 1, True, "fixed"),
    (7, [5], 5, 1e-6, 16, False, "vlen"),
    (2, [3, 5, 2, 8], 5, 0.3, 10, True, "fixed"),
    (3, [6, 9, 4], 5, 0.3, 8, True, "vlen"),
    (1, [7, 3], 1, 0.3, 5, True, "fixed"),
]


def reference(theta, D, widths, r, s, x, seeds):
    """Reference outputs for all points; theta_grad summed over the points when seeds are given."""
    out = {"psi": [], "grad": [], "hessian": [], "logdet": []}
    for xi in x:
        psi, grad, H, logdet = ref.evaluate(theta, D, widths, r, s, xi)
        for name, value in zip(("psi", "grad", "hessian", "logdet"), (psi, grad, H, logdet)):
            out[name].append(value)
    out = {name: np.array(values).reshape((len(x),) + np.shape(values[0])) for name, values in out.items()}
    if seeds is not None:
        psibar, ybar, hbar = seeds
        out["theta_grad"] = sum(ref.theta_grad(theta, D, widths, r, s, x[i], psibar[i], ybar[i], hbar[i])
                                for i in range(len(x)))
    return out


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def block_errors(G, G_ref, D, widths, r):
    """Per-block relative errors of a parameter gradient, to locate a mismatch (e.g. 'U_3 1e-3')."""
    layers, w = ref.unpack(G, D, widths, r)
    layers_ref, w_ref = ref.unpack(G_ref, D, widths, r)
    parts = ["%s_%d %.1e" % (name, l + 1, rel_err(lay[name], layers_ref[l][name]))
             for l, lay in enumerate(layers) for name in ("A", "W", "b", "U") if name in lay]
    parts.append("w %.1e" % rel_err(w, w_ref))
    return " ".join(parts)


def compare(output_path, expected, D, widths, r):
    """Compare every expected dataset with the output file. Returns (worst error, list of problems)."""
    problems = []
    worst = 0.0
    with h5py.File(output_path, "r") as f:
        for name, b in expected.items():
            if name not in f:
                problems.append("dataset /%s missing from the output" % name)
                continue
            a = f[name][()]
            if a.shape != b.shape:
                problems.append("/%s has shape %s, expected %s" % (name, a.shape, b.shape))
                continue
            err = rel_err(a, b)
            worst = max(worst, err)
            if not err <= TOL:  # also catches NaN
                detail = " (%s)" % block_errors(a, b, D, widths, r) if name == "theta_grad" else ""
                problems.append("/%s relative error %.2e > %g%s" % (name, err, TOL, detail))
    return worst, problems


def run_case(args, tmp, label, D, widths, r, s, maps, x, seeds, string_type, map_option, map_used):
    """Write the files, run wgf-eval, compare with the reference for maps[map_used]. Returns True if ok."""
    params = os.path.join(tmp, label + "_params.h5")
    points = os.path.join(tmp, label + "_points.h5")
    output = os.path.join(tmp, label + "_out.h5")
    make_case.write_params(params, D, widths, r, s, maps, string_type=string_type)
    make_case.write_points(points, x, *(seeds if seeds is not None else (None, None, None)))
    options = ["-params", params, "-points", points, "-output", output]
    if map_option is not None:
        options += ["-map", map_option]
    desc = "%s D=%d widths=%s r=%d s=%g N=%d seeds=%s %s" % (
        label, D, widths, r, s, len(x), "yes" if seeds is not None else "no", string_type)
    if map_option is not None:
        desc += " -map %d" % map_option

    code, log = run_eval(args, options)
    if code != 0:
        print("FAIL %s: wgf-eval exited with %s\n%s" % (desc, code, log))
        return False
    if not os.path.exists(output):
        print("FAIL %s: no output file %s\n%s" % (desc, output, log))
        return False
    expected = reference(maps[map_used], D, widths, r, s, x, seeds)
    worst, problems = compare(output, expected, D, widths, r)
    if problems:
        print("FAIL %s: %s" % (desc, "; ".join(problems)))
        return False
    print("ok   %s  worst rel err %.2e" % (desc, worst))
    return True


def main():
    args = parse_args(__doc__)
    rng = np.random.default_rng(args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="wgf_check_eval_") as tmp:
        for i, (D, widths, r, s, N, with_seeds, string_type) in enumerate(CASES):
            theta = ref.random_theta(rng, D, widths, r)
            x = rng.standard_normal((N, D))
            seeds = make_case.random_seeds(rng, N, D) if with_seeds else None
            results.append(run_case(args, tmp, "case%02d" % i, D, widths, r, s, {1: theta}, x, seeds,
                                    string_type, None, 1))

        # Map selection: two maps in one file; default = highest map, -map k = map k.
        D, widths, r, s, N = 3, [5, 4], 2, 1e-6, 6
        maps = {k: ref.random_theta(rng, D, widths, r) for k in (1, 2)}
        x = rng.standard_normal((N, D))
        seeds = make_case.random_seeds(rng, N, D)
        for map_option, map_used in ((None, 2), (1, 1), (2, 2)):
            label = "maps_" + ("default" if map_option is None else str(map_option))
            results.append(run_case(args, tmp, label, D, widths, r, s, maps, x, seeds, "vlen",
                                    map_option, map_used))

    failed = results.count(False)
    print("%d of %d cases failed (tolerance %g)" % (failed, len(results), TOL))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
