#!/usr/bin/env python3
"""Check that wgf-eval rejects bad input cleanly.

Every case builds one bad input (starting from a valid params file and points file) and checks
that wgf-eval
  * exits with a non-zero status,
  * reports the error in the short form: in the combined stdout + stderr of all ranks exactly
    one line 'wgf-eval: error: <message>', no PETSc traceback, no configure line, no MPI_ABORT
    banner (wgf_runner.error_report); with the developer option -wgf_traceback, PETSc's
    traceback instead,
  * says in that message which file is at fault and, where it applies, which dataset, attribute
    or option (case-insensitive),
  * does not create the output file, or, when an output file already existed (some cases create
    one with a dummy dataset first), leaves it byte-identical.
The non-finite point is in the third of four rows: on 2 and 3 ranks only rank 1 finds it.

Usage: check_eval_errors.py WGF_EVAL_PATH [--mpiexec "mpiexec -n 2 --oversubscribe"] [--seed N]
Prints one line per case; exit status 1 if any case misbehaves, 0 otherwise.
"""

import os
import re
import sys
import tempfile

import h5py
import numpy as np

import icnn_ref as ref
import make_case
import wgf_runner as wr
from eval_runner import parse_args, run_eval

D, WIDTHS, RANK, S, N = 2, [5, 3], 2, 1e-6, 4
P = ref.param_count(D, WIDTHS, RANK)

NON_FINITE = re.compile(r"non-?finite|not finite|\bnan\b", re.IGNORECASE)
MAP_7 = re.compile(r"map\D{0,12}0*7\b", re.IGNORECASE)  # "-map 7", "/maps/0007", "map number 7", ...


class Case:
    """One bad input. 'build' edits the valid files in place; 'options' maps the default options
    to the ones used; 'expect' lists what the message must mention, each item a string
    (case-insensitive substring; 'PARAMS', 'POINTS', 'OUTPUT' stand for the base names of those
    files) or a compiled regular expression; traceback: PETSc's traceback is expected instead of
    the short form."""

    def __init__(self, name, build=None, expect=(), options=None, output_exists=False, traceback=False):
        self.name = name
        self.build = build
        self.expect = expect
        self.options = options
        self.output_exists = output_exists
        self.traceback = traceback


def drop(path, obj):
    """Delete the dataset or group obj from an HDF5 file."""
    with h5py.File(path, "a") as f:
        del f[obj]


def replace(path, name, data):
    """Replace (or create) the float64 dataset name."""
    with h5py.File(path, "a") as f:
        if name in f:
            del f[name]
        f.create_dataset(name, data=np.asarray(data, dtype=np.float64))


def set_attr(path, obj, attr, value):
    with h5py.File(path, "a") as f:
        f[obj].attrs[attr] = value


def drop_attr(path, obj, attr):
    with h5py.File(path, "a") as f:
        del f[obj].attrs[attr]


def nan_point(path):
    with h5py.File(path, "a") as f:
        x = f["points"][()]
        x[N // 2, D - 1] = np.nan
        f["points"][...] = x


def without(options, flag):
    """Options with the option flag and its value removed."""
    i = options.index(flag)
    return options[:i] + options[i + 2:]


def with_value(options, flag, value):
    """Options with the value of flag replaced (or the option appended)."""
    if flag in options:
        i = options.index(flag)
        return options[:i + 1] + [value] + options[i + 2:]
    return options + [flag, value]


def cases(rng, tmp):
    return [
        Case("params_missing", build=lambda p, x: os.remove(p), expect=["PARAMS"]),
        Case("points_missing", build=lambda p, x: os.remove(x), expect=["POINTS"]),
        Case("points_dataset_missing", build=lambda p, x: drop(x, "points"), expect=["POINTS", "points"]),
        Case("points_wrong_dim", build=lambda p, x: replace(x, "points", rng.standard_normal((N, D + 1))),
             expect=["POINTS", "points"]),
        Case("ybar_wrong_shape", build=lambda p, x: replace(x, "ybar", rng.standard_normal((N, D + 1))),
             expect=["POINTS", "ybar"], output_exists=True),
        Case("hbar_wrong_shape", build=lambda p, x: replace(x, "hbar", rng.standard_normal((N, D, D + 1))),
             expect=["POINTS", "hbar"]),
        Case("psibar_wrong_length", build=lambda p, x: replace(x, "psibar", rng.standard_normal(N + 1)),
             expect=["POINTS", "psibar"]),
        Case("params_wrong_length", build=lambda p, x: replace(p, "maps/0001/params", rng.standard_normal(P + 1)),
             expect=["PARAMS", "params"], output_exists=True),
        Case("icnn_group_missing", build=lambda p, x: drop(p, "icnn"), expect=["PARAMS", "icnn"]),
        Case("widths_missing", build=lambda p, x: drop_attr(p, "icnn", "widths"), expect=["PARAMS", "widths"]),
        Case("activation_not_softplus", build=lambda p, x: set_attr(p, "icnn", "activation", "relu"),
             expect=["PARAMS", "activation"]),
        Case("map_7_absent", options=lambda o: with_value(o, "-map", "7"), expect=["PARAMS", MAP_7],
             output_exists=True),
        Case("nan_value", build=lambda p, x: nan_point(x), expect=["POINTS", NON_FINITE, "point"],
             output_exists=True),
        Case("params_option_absent", options=lambda o: without(o, "-params"), expect=["-params"]),
        Case("map_not_a_number", options=lambda o: with_value(o, "-map", "x"), expect=["-map", "x"]),
        Case("params_option_absent_traceback", options=lambda o: without(o, "-params") + ["-wgf_traceback"],
             expect=["-params"], traceback=True),
        Case("output_dir_missing", expect=["OUTPUT"],
             options=lambda o: with_value(o, "-output", os.path.join(tmp, "no_such_dir", "res.h5"))),
    ]


def run_case(args, tmp, rng, index, case):
    """Build and run one case; returns True if wgf-eval behaved. The files are called
    net_<index>.h5 (params), pts_<index>.h5 (points) and res_<index>.h5 (output), names that
    contain no dataset, attribute or option name, so a match in the message means something."""
    params = os.path.join(tmp, "net_%02d.h5" % index)
    points = os.path.join(tmp, "pts_%02d.h5" % index)
    output = os.path.join(tmp, "res_%02d.h5" % index)
    theta = ref.random_theta(rng, D, WIDTHS, RANK)
    make_case.write_params(params, D, WIDTHS, RANK, S, {1: theta})
    make_case.write_points(points, rng.standard_normal((N, D)), *make_case.random_seeds(rng, N, D))
    if case.build is not None:
        case.build(params, points)
    options = ["-params", params, "-points", points, "-output", output]
    if case.options is not None:
        options = case.options(options)
    output = options[options.index("-output") + 1]
    before = None
    if case.output_exists:
        with h5py.File(output, "w") as f:
            f.create_dataset("dummy", data=np.arange(3.0))
        with open(output, "rb") as f:
            before = f.read()

    code, log = run_eval(args, options)
    message, problems = wr.error_report(code, log, "wgf-eval", traceback=case.traceback)
    names = {"PARAMS": os.path.basename(params), "POINTS": os.path.basename(points),
             "OUTPUT": os.path.basename(output)}
    patterns = [item if isinstance(item, re.Pattern) else re.compile(re.escape(names.get(item, item)), re.IGNORECASE)
                for item in case.expect]
    for pattern in patterns:
        if not pattern.search(message):
            problems.append("message does not match %r" % pattern.pattern)
    if before is None:
        if os.path.exists(output):
            problems.append("output file %s was created" % output)
    else:
        with open(output, "rb") as f:
            if f.read() != before:
                problems.append("pre-existing output file was modified")

    if problems:
        print("FAIL %s: %s\n---- wgf-eval output ----\n%s\n-------------------------" % (
            case.name, "; ".join(problems), log.rstrip()))
        return False
    # show the line of the message that names the culprit
    line = next((l.strip() for l in message.splitlines() if patterns[0].search(l)), "")
    print("ok   %s (exit %d): %s" % (case.name, code, line[:160]))
    return True


def main():
    args = parse_args(__doc__)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="wgf_check_eval_errors_") as tmp:
        results = [run_case(args, tmp, rng, i, case) for i, case in enumerate(cases(rng, tmp))]
    failed = results.count(False)
    print("%d of %d error cases misbehaved" % (failed, len(results)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
