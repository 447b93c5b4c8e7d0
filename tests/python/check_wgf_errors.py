#!/usr/bin/env python3
"""Check that wgf rejects bad input cleanly.

Every case adds bad options (or a bad -ou_problem_file) to the tiny protocol
(input/ou_tiny.opts, which sets -ou_dim 2 and -strict_options) and checks that wgf
  * exits with a non-zero status within 120 s (a hang counts as a failure),
  * says in its combined stdout + stderr what is at fault: the option, or the file and the
    dataset (case-insensitive; PETSc's traceback, its echo of the option table and its list of
    unused options do not count, since they name every option given whatever the error),
  * writes nothing: an -out_dir that did not exist is not created; one that existed (with an
    unrelated file, or with the checkpoint of an earlier run) is byte-identical afterwards, with
    no file added or removed; a regular file in the way of -out_dir is left as it was; the
    -ou_problem_file is left as it was.
A positive control first: the tiny protocol with 1 step, and with a valid -ou_problem_file,
must run (exit 0, ckpt_0001.h5 written), so that the bad cases fail for the reason built in.
Each case runs on 1 rank; the cases marked below also on 2 ranks (errors found on rank 0 only,
or by every rank, must stop all ranks).

Problem files: HDF5, float64 datasets /problem/A (D x D), /problem/m (D), /problem/mu0 (D),
/problem/S0 (D x D).

Usage: check_wgf_errors.py WGF_PATH [--mpiexec "mpiexec --oversubscribe -n"] [--opts FILE] [--seed N]
Prints one line per case and rank count; exit status 1 if any case misbehaves, 0 otherwise.
"""

import os
import re
import shutil
import sys
import tempfile

import h5py
import numpy as np

import wgf_runner as wr

D = 2
GOOD = {"A": np.array([[1.5, 0.3], [0.3, 0.8]]), "m": np.array([0.4, -0.2]),
        "mu0": np.array([0.1, 0.0]), "S0": np.array([[1.0, 0.2], [0.2, 0.7]])}


def write_problem(path, **changes):
    """A problem file: GOOD with the given datasets replaced (value None: left out)."""
    data = dict(GOOD, **changes)
    with h5py.File(path, "w") as f:
        for name, value in data.items():
            if value is not None:
                f.create_dataset("problem/" + name, data=np.asarray(value, dtype=np.float64))


class Case:
    """One bad input. options(tmp) gives the extra options (after the protocol's); prepare(tmp)
    builds the files they need; expect lists what the message must mention: strings
    (case-insensitive substrings; 'FILE' stands for the base name of the problem file,
    'OUT_DIR' for the -out_dir path) or compiled regular expressions. out_dir is 'absent'
    (must not be created), 'files' (exists with an unrelated file), 'ckpt' (holds
    ckpt_0001.h5 of an earlier run) or 'blocked' (a path below a regular file)."""

    def __init__(self, name, extra=(), problem=None, expect=(), out_dir="absent", ranks=(1,)):
        self.name, self.extra, self.problem, self.expect = name, list(extra), problem, expect
        self.out_dir, self.ranks = out_dir, ranks


CASES = [
    Case("jko_h_zero", ["-jko_h", "0"], expect=["-jko_h"], ranks=(1, 2)),
    Case("jko_h_negative", ["-jko_h", "-0.1"], expect=["-jko_h"], out_dir="files"),
    Case("icnn_width_zero", ["-icnn_widths", "8,0"], expect=["-icnn_widths"]),
    Case("jko_batch_zero", ["-jko_batch", "0"], expect=["-jko_batch"], out_dir="files"),
    Case("problem_unknown", ["-problem", "foo"], expect=["-problem", "foo"]),
    Case("problem_file_3x3_vs_ou_dim_2", problem=dict(A=np.eye(3), m=np.zeros(3), mu0=np.zeros(3), S0=np.eye(3)),
         expect=["FILE", "-ou_dim"], out_dir="files"),
    Case("A_not_symmetric", problem=dict(A=[[2.0, 1.0], [0.0, 2.0]]), expect=["FILE", "/problem/A", "symmetric"]),
    Case("A_not_positive_definite", problem=dict(A=[[1.0, 2.0], [2.0, 1.0]]),
         expect=["FILE", "/problem/A", "positive definite"], out_dir="files", ranks=(1, 2)),
    Case("S0_not_positive_definite", problem=dict(S0=[[1.0, 0.0], [0.0, -0.5]]),
         expect=["FILE", "/problem/S0", "positive definite"]),
    Case("problem_m_missing", problem=dict(m=None), expect=["FILE", "/problem/m"], out_dir="files"),
    Case("problem_file_missing", problem="missing", expect=["FILE"], ranks=(1, 2)),
    Case("out_dir_below_regular_file", expect=["OUT_DIR"], out_dir="blocked", ranks=(1, 2)),
    Case("out_dir_holds_checkpoint", expect=["OUT_DIR", "ckpt_0001.h5"], out_dir="ckpt", ranks=(1, 2)),
    Case("misspelt_option", ["-jko_iter", "5"], expect=[re.compile(r"jko_iter\b", re.IGNORECASE)], out_dir="files"),
]


def control(args, tmp, earlier):
    """Positive controls: 1 step of the tiny protocol, plain, with a valid problem file, and
    into an -out_dir that holds only what a killed write leaves (a *.partial file and Open MPI's
    *.partial.locktest.<rank> lock probe: no checkpoint, so no earlier results to protect). The
    plain run's ckpt_0001.h5 is kept in 'earlier' for the out_dir_holds_checkpoint case."""
    ok = True
    good = os.path.join(tmp, "prob_good.h5")
    write_problem(good)
    debris = os.path.join(tmp, "ctl_debris")
    os.makedirs(debris)
    for name in ("ckpt_0001.h5.partial", "ckpt_0001.h5.partial.locktest.1"):
        open(os.path.join(debris, name), "wb").close()
    for label, extra, out in (("control_tiny_1_step", [], earlier),
                              ("control_valid_problem_file", ["-ou_problem_file", good], os.path.join(tmp, "ctl2")),
                              ("control_out_dir_with_debris_of_a_killed_write", [], debris)):
        code, log, secs = wr.run_wgf(args, 1, out, extra=["-jko_steps", "1"] + extra)
        if code != 0 or not os.path.exists(os.path.join(out, "ckpt_0001.h5")):
            ok = False
            print("FAIL %s: exit %s, ckpt_0001.h5 %s (the bad cases below cannot be trusted)\n---- wgf output ----\n%s\n--------------------"
                  % (label, code, "written" if os.path.exists(os.path.join(out, "ckpt_0001.h5")) else "missing", wr.tail(log)))
        else:
            print("ok   %s: exit 0 in %.1f s, ckpt_0001.h5 written" % (label, secs))
    return ok


def run_case(args, tmp, earlier, index, case, nranks):
    """Builds and runs one case; returns True if wgf behaved. File names (prob_<i>.h5,
    out_<i>_np<n>) contain no option or dataset name, so a match in the message means something."""
    tag = "%02d_np%d" % (index, nranks)
    extra = list(case.extra)
    names = {}
    if case.problem is not None:
        path = os.path.join(tmp, "prob_%s.h5" % tag)
        if case.problem != "missing":
            write_problem(path, **case.problem)
        extra += ["-ou_problem_file", path]
        names["FILE"] = os.path.basename(path)

    watched = out_dir = os.path.join(tmp, "out_%s" % tag)
    if case.out_dir == "files":
        os.makedirs(out_dir)
        with open(os.path.join(out_dir, "notes.txt"), "w") as f:
            f.write("results of someone else\n")
    elif case.out_dir == "ckpt":
        os.makedirs(out_dir)
        shutil.copy2(os.path.join(earlier, "ckpt_0001.h5"), out_dir)
    elif case.out_dir == "blocked":
        watched = os.path.join(tmp, "regular_%s" % tag)
        with open(watched, "w") as f:
            f.write("a regular file, not a folder\n")
        out_dir = os.path.join(watched, "sub")
    names["OUT_DIR"] = out_dir
    before = wr.snapshot(watched)
    problem_before = wr.snapshot(path) if case.problem is not None else None

    code, log, secs = wr.run_wgf(args, nranks, out_dir, extra=extra)
    problems = []
    if code is None:
        problems.append("did not finish within %d s" % wr.TIMEOUT_SECONDS)
    elif code == 0:
        problems.append("exit status 0")
    patterns = [item if isinstance(item, re.Pattern) else re.compile(re.escape(names.get(item, item)), re.IGNORECASE)
                for item in case.expect]
    message = wr.message_lines(log)
    for item, pattern in zip(case.expect, patterns):
        if not any(pattern.search(line) for line in message):
            problems.append("message does not mention %r" % (pattern.pattern if isinstance(item, re.Pattern) else names.get(item, item)))
    after = wr.snapshot(watched)
    if before is None and after is not None:
        problems.append("-out_dir %s was created (holding %s)" % (watched, sorted(after)))
    elif before is not None and after != before:
        added = sorted(set(after or {}) - set(before))
        removed = sorted(set(before) - set(after or {}))
        changed = sorted(k for k in before if after and k in after and after[k] != before[k])
        problems.append("%s changed: added %s, removed %s, modified %s" % (watched, added, removed, changed))

    if case.problem is not None and wr.snapshot(path) != problem_before:
        problems.append("the problem file %s was changed" % path)

    label = "%s on %d rank(s)" % (case.name, nranks)
    if problems:
        print("FAIL %s: %s\n---- wgf output ----\n%s\n--------------------" % (label, "; ".join(problems), wr.tail(log)))
        return False
    line = next((l.strip() for l in message if patterns[-1].search(l)), "")
    print("ok   %s (exit %d, %.1f s): %s" % (label, code, secs, line[:170]))
    return True


def main():
    args = wr.parse_args(__doc__)
    results = []
    with tempfile.TemporaryDirectory(prefix="wgf_check_errors_") as tmp:
        earlier = os.path.join(tmp, "earlier_run")
        results.append(control(args, tmp, earlier))
        have_ckpt = os.path.exists(os.path.join(earlier, "ckpt_0001.h5"))
        for i, case in enumerate(CASES):
            for nranks in case.ranks:
                if case.out_dir == "ckpt" and not have_ckpt:
                    print("FAIL %s on %d rank(s): no checkpoint of an earlier run to put in -out_dir" % (case.name, nranks))
                    results.append(False)
                    continue
                results.append(run_case(args, tmp, earlier, i, case, nranks))
    failed = results.count(False)
    print("%d of %d runs misbehaved" % (failed, len(results)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
