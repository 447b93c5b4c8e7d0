#!/usr/bin/env python3
"""Check that wgf rejects bad input cleanly.

Every case adds bad options (or a bad -ou_problem_file) to the tiny protocol
(input/ou_tiny.opts, which sets -ou_dim 2 and -strict_options) and checks that wgf
  * exits with a non-zero status within 120 s (a hang counts as a failure),
  * reports the error in the short form (WGFInitialize in src/util.c): in the combined stdout +
    stderr of all ranks exactly one line 'wgf: error: <message>', and no PETSc traceback, no
    configure line, no MPI_ABORT banner (wgf_runner.error_report),
  * says in that message what is at fault: the option, or the file and the dataset
    (case-insensitive),
  * writes nothing: an -out_dir that did not exist is not created; one that existed (with an
    unrelated file, or with the checkpoint of an earlier run) is byte-identical afterwards, with
    no file added or removed; a regular file in the way of -out_dir is left as it was; the
    -ou_problem_file is left as it was.
Two cases want PETSc's traceback instead: a bad option with the developer option -wgf_traceback,
and a bug (an overflow: -jko_pretrain_lr 1e300 makes the network non-finite, PETSC_ERR_FP).
Positive controls first: the tiny protocol with 1 step, with a valid -ou_problem_file, and into
a folder with the debris of a killed write, must run (exit 0, ckpt_0001.h5 written), so that the
bad cases fail for the reason built in; and on 3 ranks without -strict_options a misspelt option
is one warning line, not an error.
Each case runs on the rank counts given below: errors that every rank finds, that only rank 0
finds (the folder, the checkpoints) and PETSc's own option errors on 1, 2 and 3 ranks, the
others on 1.

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
    ckpt_0001.h5 of an earlier run) or 'blocked' (a path below a regular file). traceback: PETSc's
    traceback is expected instead of the short form."""

    def __init__(self, name, extra=(), problem=None, expect=(), out_dir="absent", ranks=(1,), traceback=False):
        self.name, self.extra, self.problem, self.expect = name, list(extra), problem, expect
        self.out_dir, self.ranks, self.traceback = out_dir, ranks, traceback


ALL = (1, 2, 3)
CASES = [
    Case("jko_h_zero", ["-jko_h", "0"], expect=["-jko_h"], ranks=ALL),
    Case("jko_h_negative", ["-jko_h", "-0.1"], expect=["-jko_h"], out_dir="files"),
    Case("icnn_width_zero", ["-icnn_widths", "8,0"], expect=["-icnn_widths"]),
    Case("jko_batch_zero", ["-jko_batch", "0"], expect=["-jko_batch"], out_dir="files"),
    Case("problem_unknown", ["-problem", "foo"], expect=["-problem", "foo"]),
    Case("problem_file_3x3_vs_ou_dim_2", problem=dict(A=np.eye(3), m=np.zeros(3), mu0=np.zeros(3), S0=np.eye(3)),
         expect=["FILE", "-ou_dim"], out_dir="files"),
    Case("A_not_symmetric", problem=dict(A=[[2.0, 1.0], [0.0, 2.0]]), expect=["FILE", "/problem/A", "symmetric"]),
    Case("A_not_positive_definite", problem=dict(A=[[1.0, 2.0], [2.0, 1.0]]),
         expect=["FILE", "/problem/A", "positive definite"], out_dir="files", ranks=ALL),
    Case("S0_not_positive_definite", problem=dict(S0=[[1.0, 0.0], [0.0, -0.5]]),
         expect=["FILE", "/problem/S0", "positive definite"]),
    Case("problem_m_missing", problem=dict(m=None), expect=["FILE", "/problem/m"], out_dir="files", ranks=ALL),
    Case("problem_file_missing", problem="missing", expect=["FILE"], ranks=ALL),
    Case("out_dir_below_regular_file", expect=["OUT_DIR"], out_dir="blocked", ranks=ALL),
    Case("out_dir_holds_checkpoint", expect=["OUT_DIR", "ckpt_0001.h5"], out_dir="ckpt", ranks=ALL),
    Case("misspelt_option", ["-jko_iter", "5"], expect=[re.compile(r"jko_iter\b", re.IGNORECASE)], out_dir="files", ranks=ALL),
    # PETSc's option parser: the value, and the option it was given to
    Case("jko_h_not_a_number", ["-jko_h", "abc"], expect=["-jko_h", "abc"], ranks=ALL),
    Case("strict_options_not_a_bool", ["-strict_options", "maybe"], expect=["-strict_options", "maybe"]),
    Case("icnn_precision_unknown", ["-icnn_precision", "quad"], expect=["-icnn_precision", "quad"]),
    # the developer option, and a bug: PETSc's traceback
    Case("traceback_option", ["-jko_h", "0", "-wgf_traceback"], expect=["-jko_h"], ranks=(1, 2), traceback=True),
    Case("bug_overflow", ["-jko_pretrain_lr", "1e300"], expect=["not finite"], out_dir="files", ranks=(1, 2), traceback=True),
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
    # without -strict_options a misspelt option is a warning, printed once on 3 ranks
    out = os.path.join(tmp, "ctl_warning")
    code, log, secs = wr.run_wgf(args, 3, out, extra=["-jko_steps", "1", "-strict_options", "false", "-jko_iter", "5"])
    warnings = [l for l in log.splitlines() if re.search(r"WARNING: option -jko_iter\b.*not used", l)]
    if code != 0 or len(warnings) != 1:
        ok = False
        print("FAIL control_misspelt_option_warns_once_on_3_ranks: exit %s, %d warning lines\n---- wgf output ----\n%s\n--------------------"
              % (code, len(warnings), wr.tail(log)))
    else:
        print("ok   control_misspelt_option_warns_once_on_3_ranks: exit 0 in %.1f s: %s" % (secs, warnings[0].strip()))
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
    message, problems = wr.error_report(code, log, "wgf", traceback=case.traceback)
    patterns = [item if isinstance(item, re.Pattern) else re.compile(re.escape(names.get(item, item)), re.IGNORECASE)
                for item in case.expect]
    for item, pattern in zip(case.expect, patterns):
        if not pattern.search(message):
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
    line = next((l.strip() for l in message.splitlines() if patterns[-1].search(l)), "")
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
