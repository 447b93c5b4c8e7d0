#!/usr/bin/env python3
"""Check that wgf -problem mixture reads a good -mixture_problem_file and rejects bad ones cleanly.

Every run is the tiny mixture protocol (input/mixture_tiny.opts, which sets -problem mixture,
-mixture_dim 2, -mixture_centers 3 and -strict_options) with -jko_steps 1 and
-mixture_problem_file FILE. The sizes D and K of the good file are those of the protocol's
-mixture_dim and -mixture_centers (which it must set); its std is 1 and its rho_0 N(0, 16 I),
wgf's defaults, so that it agrees with -mixture_std and -mixture_init_var if they are given.
Positive controls first, so that the bad cases fail for the reason built in:
  good_file               the good file runs: exit 0, ckpt_0001.h5 written, holding the file's
                          /problem datasets, and the file byte-identical afterwards;
  checkpoint_as_file      that run's ckpt_0001.h5 as FILE of a fresh run (a checkpoint of a
                          mixture run works as F): exit 0, ckpt_0001.h5 written with the same
                          /problem, and the checkpoint byte-identical afterwards.
Every bad case must
  * exit with a non-zero status within 60 s (a hang counts as a failure),
  * print a message line (PETSc's traceback, its echo of the option table and its list of unused
    options do not count) that names the base name of FILE, the object at fault (the dataset,
    e.g. /problem/weights, or the option, e.g. -mixture_dim) and what is wrong (case-insensitive),
  * write nothing: the -out_dir given (which did not exist) is not created, and FILE is
    byte-identical afterwards (or still absent).
Bad cases (a dataset left out, or replaced, in the good file):
  missing datasets        each of /problem/centers, weights, std, mu0, S0 left out;
  sizes that disagree     weights of length K + 1; mu0 of length D + 1; S0 (D + 1) x (D + 1);
                          std a 1-D array of length 1 (it must be a scalar); centers 1-D;
  non-positive values     std 0 and -1; one weight 0, one weight -2;
  non-finite values       NaN in centers, inf in weights, NaN std, NaN in mu0, inf in S0;
  S0                      not symmetric (either triangle alone makes a positive definite matrix,
                          so that a Cholesky factorisation, which reads one, would not notice);
                          symmetric but not positive definite;
  disagreement with the   a consistent file with D + 1 (the message names -mixture_dim); one with
  protocol's options      K + 1 centres (the message names -mixture_centers);
  not a problem file      a path that does not exist; a text file.
Each case runs on 1 rank; missing weights, NaN in centers and the path that does not exist also
on 2 ranks (an error found by every rank, or by rank 0 alone, must stop all ranks).

Problem files: HDF5, float64 datasets /problem/centers (K x D), /problem/weights (K, > 0),
/problem/std (scalar, > 0), /problem/mu0 (D), /problem/S0 (D x D, symmetric positive definite),
every entry finite.

Usage: check_wgf_mixture_files.py WGF_PATH [--mpiexec "mpiexec --oversubscribe -n"]
                                  [--opts FILE (default: input/mixture_tiny.opts)] [--seed N]
Prints one line per check; exit status 1 if any check fails, 0 otherwise.
"""

import os
import sys
import tempfile

import h5py
import numpy as np

import wgf_runner as wr

MIXTURE_OPTS = os.path.normpath(os.path.join(wr.HERE, "..", "..", "input", "mixture_tiny.opts"))
BAD_TIMEOUT = 60
NAMES = ("centers", "weights", "std", "mu0", "S0")


def good_problem(D, K):
    """The good problem: K distinct centres in D dimensions, unequal (unnormalised) weights,
    std 1, mu0 = 0, S0 = 16 I (wgf's defaults of -mixture_std and -mixture_init_var)."""
    centers = np.array([[(-1.0) ** (i + j) * (0.5 + 0.75 * i) + 0.25 * j for j in range(D)] for i in range(K)])
    return {"centers": centers, "weights": 1.0 + np.arange(K, dtype=np.float64), "std": np.float64(1.0),
            "mu0": np.zeros(D), "S0": 16.0 * np.eye(D)}


def write_problem(path, data):
    """A problem file with the datasets of data (value None: left out), all float64."""
    with h5py.File(path, "w") as f:
        for name, value in data.items():
            if value is not None:
                f.create_dataset("problem/" + name, data=np.asarray(value, dtype=np.float64))


def read_problem(path):
    """The /problem datasets of a file (or checkpoint) as name -> array; missing ones left out."""
    with h5py.File(path, "r") as f:
        return {name: np.asarray(f["problem/" + name][()]) for name in NAMES if "problem/" + name in f}


def same_problem(a, b):
    """Whether two problems have the same datasets, shapes and values (bitwise)."""
    return set(a) == set(b) and all(a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)


def with_entry(value, index, entry):
    """A copy of value with value[index] = entry."""
    value = np.array(value, dtype=np.float64)
    value[index] = entry
    return value


class Case:
    """One bad file. problem(good, D, K) gives the file's datasets (a dict name -> value, None:
    left out), or 'absent' (no file at that path) or 'text' (a text file). expect lists what one
    message line must mention besides the base name of the file: case-insensitive substrings, or
    compiled regular expressions."""

    def __init__(self, name, problem, expect, ranks=(1,)):
        self.name, self.problem, self.expect, self.ranks = name, problem, expect, ranks


def changed(**changes):
    """The good problem with the given datasets replaced (value None: left out)."""
    return lambda good, D, K: dict(good, **changes)


def computed(fn):
    """The good problem with datasets computed from (good, D, K) replaced."""
    return lambda good, D, K: dict(good, **fn(good, D, K))


SHAPE, POSITIVE, NONFINITE, MISSING, NO_FILE = wr.SHAPE, wr.POSITIVE, wr.NONFINITE, wr.MISSING, wr.NO_FILE

CASES = [Case("%s_missing" % name, changed(**{name: None}), ["/problem/" + name, MISSING],
              ranks=(1, 2) if name == "weights" else (1,)) for name in NAMES] + [
    Case("weights_K_plus_1", computed(lambda g, D, K: {"weights": np.ones(K + 1)}), ["/problem/weights", SHAPE]),
    Case("mu0_D_plus_1", computed(lambda g, D, K: {"mu0": np.zeros(D + 1)}), ["/problem/mu0", SHAPE]),
    Case("S0_D_plus_1_square", computed(lambda g, D, K: {"S0": 16.0 * np.eye(D + 1)}), ["/problem/S0", SHAPE]),
    Case("std_1d_length_1", changed(std=np.array([1.0])), ["/problem/std", "scalar"]),
    Case("centers_1d", computed(lambda g, D, K: {"centers": g["centers"][:, 0].copy()}), ["/problem/centers", SHAPE]),
    Case("std_zero", changed(std=np.float64(0.0)), ["/problem/std", POSITIVE]),
    Case("std_negative", changed(std=np.float64(-1.0)), ["/problem/std", POSITIVE]),
    Case("weight_zero", computed(lambda g, D, K: {"weights": with_entry(g["weights"], K - 1, 0.0)}),
         ["/problem/weights", POSITIVE]),
    Case("weight_negative", computed(lambda g, D, K: {"weights": with_entry(g["weights"], 0, -2.0)}),
         ["/problem/weights", POSITIVE]),
    Case("centers_nan", computed(lambda g, D, K: {"centers": with_entry(g["centers"], (K - 1, D - 1), np.nan)}),
         ["/problem/centers", NONFINITE], ranks=(1, 2)),
    Case("weights_inf", computed(lambda g, D, K: {"weights": with_entry(g["weights"], 0, np.inf)}),
         ["/problem/weights", NONFINITE]),
    Case("std_nan", changed(std=np.float64(np.nan)), ["/problem/std", NONFINITE]),
    Case("mu0_nan", computed(lambda g, D, K: {"mu0": with_entry(g["mu0"], D - 1, np.nan)}), ["/problem/mu0", NONFINITE]),
    Case("S0_inf", computed(lambda g, D, K: {"S0": with_entry(g["S0"], (0, 0), np.inf)}), ["/problem/S0", NONFINITE]),
    Case("S0_not_symmetric", computed(lambda g, D, K: {"S0": with_entry(g["S0"], (0, D - 1), 1.0)}),
         ["/problem/S0", "symmetric"]),
    Case("S0_not_positive_definite", computed(lambda g, D, K: {"S0": with_entry(with_entry(g["S0"], (0, 1), 32.0), (1, 0), 32.0)}),
         ["/problem/S0", "positive definite"]),
    Case("file_D_plus_1_vs_mixture_dim", lambda g, D, K: good_problem(D + 1, K), ["-mixture_dim", "disagree"]),
    Case("file_K_plus_1_vs_mixture_centers", lambda g, D, K: good_problem(D, K + 1), ["-mixture_centers", "disagree"]),
    Case("file_does_not_exist", lambda g, D, K: "absent",
         [NO_FILE], ranks=(1, 2)),
    Case("file_is_text", lambda g, D, K: "text", ["HDF5"]),
]


def protocol_sizes(opts):
    """D and K of the protocol (-mixture_dim, -mixture_centers), which the bad cases build on."""
    o = wr.read_options_file(opts)
    if o.get("problem") != "mixture" or "mixture_dim" not in o or "mixture_centers" not in o:
        raise SystemExit("%s must set -problem mixture, -mixture_dim and -mixture_centers" % opts)
    return int(o["mixture_dim"]), int(o["mixture_centers"])


def control(args, check, tmp, good):
    """The positive controls; returns the checkpoint of the good run (None if it failed)."""
    want = read_problem(good)
    ckpt = None
    runs = (("good_file", good, os.path.join(tmp, "ctl_good")),
            ("checkpoint_as_file", None, os.path.join(tmp, "ctl_ckpt")))
    for label, path, out in runs:
        if path is None:
            if ckpt is None:
                check(False, label, "no checkpoint of the good_file run to read")
                continue
            path = ckpt
        before = wr.snapshot(path)
        code, log, secs = wr.run_wgf(args, 1, out, extra=["-jko_steps", "1", "-mixture_problem_file", path])
        written = os.path.join(out, "ckpt_0001.h5")
        problems = []
        if code != 0:
            problems.append("exit %s" % code)
        if not os.path.exists(written):
            problems.append("ckpt_0001.h5 missing")
        else:
            got = read_problem(written)
            if not same_problem(got, want):
                problems.append("the checkpoint's /problem %s differs from the file's %s"
                                % ({k: v.tolist() for k, v in got.items()}, {k: v.tolist() for k, v in want.items()}))
        if wr.snapshot(path) != before:
            problems.append("the problem file %s was changed" % path)
        if problems:
            check(False, label, "%s (the bad cases below cannot be trusted)\n---- wgf output ----\n%s\n--------------------"
                  % ("; ".join(problems), wr.tail(log)))
        else:
            check(True, label, "exit 0 in %.1f s, ckpt_0001.h5 written with the file's /problem, file unchanged" % secs)
            if label == "good_file":
                ckpt = written


def run_case(args, check, tmp, good, D, K, index, case, nranks):
    """Builds and runs one bad case. File names (prob_<i>_np<n>.h5, out_<i>_np<n>) contain no
    option or dataset name, so a match in the message means something."""
    tag = "%02d_np%d" % (index, nranks)
    path = os.path.join(tmp, "prob_%s.h5" % tag)
    problem = case.problem(good, D, K)
    if isinstance(problem, dict):
        write_problem(path, problem)
    elif problem == "text":
        with open(path, "w") as f:
            f.write("centers 1 0\nweights 1\nstd 1\n")
    out_dir = os.path.join(tmp, "out_%s" % tag)
    file_before = wr.snapshot(path)

    code, log, secs = wr.run_wgf(args, nranks, out_dir, extra=["-jko_steps", "1", "-mixture_problem_file", path],
                                 timeout=BAD_TIMEOUT)
    problems, line = wr.bad_run_problems(code, log, BAD_TIMEOUT, path, file_before, out_dir, case.expect, "problem file")

    label = "%s on %d rank(s)" % (case.name, nranks)
    if problems:
        check(False, label, "%s\n---- wgf output ----\n%s\n--------------------" % ("; ".join(problems), wr.tail(log)))
    else:
        check(True, label, "exit %d, %.1f s: %s" % (code, secs, line[:170]))


def main():
    args = wr.parse_args(__doc__)
    if not any(a == "--opts" or a.startswith("--opts=") for a in sys.argv[1:]):
        args.opts = MIXTURE_OPTS
    D, K = protocol_sizes(args.opts)
    check = wr.Checks()
    runs = 0
    with tempfile.TemporaryDirectory(prefix="wgf_check_mixture_files_") as tmp:
        good = os.path.join(tmp, "good.h5")
        write_problem(good, good_problem(D, K))
        control(args, check, tmp, good)
        runs += 2
        gp = good_problem(D, K)
        for i, case in enumerate(CASES):
            for nranks in case.ranks:
                run_case(args, check, tmp, gp, D, K, i, case, nranks)
                runs += 1
    print("%d of %d checks failed" % (check.failures, runs))
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
