#!/usr/bin/env python3
"""Check that wgf -problem filtering reads a good -filter_observations file and rejects bad ones
cleanly, that a checkpoint works as -filtering_problem_file, and that a restart refuses other
observations.

Every run is the tiny filtering protocol (input/filtering_tiny.opts: -problem filtering, D = 1,
-jko_h 0.1, -filter_t_final 0.6, pool 1001, -strict_options) without its options that simulate
observations (-filter_obs_every, -filter_noise_std, which a file excludes), with
-filter_observations FILE. Observation files: HDF5 with /observations/t (m, float64, increasing,
each a multiple of -jko_h, in [0, -filter_t_final]), /observations/y (m x D float64) and
/observations/noise_std (scalar float64 > 0).

Positive controls first, so that the bad cases fail for the reason built in:
  good_file            the good file (t = 0.2, 0.4: steps 2 and 4) with -jko_steps 2 on 1 rank:
                       exit 0, ckpt_0002.h5 holds the file's observations under
                       /problem/observations and a log_z[2] < 0 (the observation at step 2 was
                       used), and the file is byte-identical afterwards;
  checkpoint_as_file   that run's ckpt_0002.h5 as -filtering_problem_file of a fresh run (same
                       options, no -filter_observations): exit 0, the same observations and maps
                       and particles bitwise equal to the good_file run's; the checkpoint
                       byte-identical afterwards.
Every bad case must
  * exit with a non-zero status within 60 s (a hang counts as a failure),
  * print a message line (PETSc's traceback, its echo of the option table and its list of unused
    options do not count) that names the base name of FILE, the object at fault (e.g.
    /observations/t) and what is wrong (case-insensitive),
  * write nothing: the -out_dir given (which did not exist) is not created, and FILE is
    byte-identical afterwards (or still absent).
Bad cases (the good file with a dataset changed or left out): times not increasing, negative, off
the step grid (0.25 with h = 0.1), beyond -filter_t_final; y with a row count that disagrees with
t, y 1-D; noise_std 0, -1, a 1-D array; NaN in t, inf in y, NaN noise_std; each of the three
datasets missing; a path that does not exist. Each on 1 rank; t missing, NaN in t and the path that
does not exist also on 2 ranks (an error must stop every rank, no hang).

Restart: -restart DIR (the finished good_file run, in a copy) -jko_steps 3 with
-filter_observations pointing at a DIFFERENT file (y changed) is refused with a message naming
-filter_observations, and the folder is byte-identical afterwards; control: the same with the
SAME file is accepted and continues to ckpt_0003.h5.

Usage: check_wgf_filtering_files.py WGF_PATH [--mpiexec "mpiexec --oversubscribe -n"]
                                    [--opts FILE (default: input/filtering_tiny.opts)] [--seed N]
Prints one line per check; exit status 1 if any check fails, 0 otherwise.
"""

import os
import shutil
import sys
import tempfile

import h5py
import numpy as np

import wgf_runner as wr

FILTERING_OPTS = os.path.normpath(os.path.join(wr.HERE, "..", "..", "input", "filtering_tiny.opts"))
BAD_TIMEOUT = 60
SIMULATING = ("filter_obs_every", "filter_noise_std", "filter_dim")
NAMES = ("t", "y", "noise_std")
GOOD = {"t": np.array([0.2, 0.4]), "y": np.array([[-1.5], [-1.25]]), "noise_std": np.float64(1.0)}

SHAPE, POSITIVE, NONFINITE, MISSING, NO_FILE = wr.SHAPE, wr.POSITIVE, wr.NONFINITE, wr.MISSING, wr.NO_FILE


def write_observations(path, data):
    """An observation file with the datasets of data (value None: left out), all float64."""
    with h5py.File(path, "w") as f:
        for name, value in data.items():
            if value is not None:
                f.create_dataset("observations/" + name, data=np.asarray(value, dtype=np.float64))


def changed(**changes):
    return dict(GOOD, **changes)


class Case:
    def __init__(self, name, data, expect, ranks=(1,)):
        self.name, self.data, self.expect, self.ranks = name, data, expect, ranks


CASES = [
    Case("t_not_increasing", changed(t=np.array([0.4, 0.2])), ["/observations/t", "increasing"]),
    Case("t_negative", changed(t=np.array([-0.1, 0.2])), ["/observations/t", "negative"]),
    Case("t_off_step_grid", changed(t=np.array([0.2, 0.25])), ["/observations/t", "0.25", "multiple of -jko_h"]),
    Case("t_beyond_t_final", changed(t=np.array([0.2, 0.8])), ["/observations/t", "beyond -filter_t_final"]),
    Case("y_rows_disagree", changed(y=np.array([[-1.5], [-1.25], [0.0]])), ["/observations/y", "rows", "/observations/t"]),
    Case("y_1d", changed(y=np.array([-1.5, -1.25])), ["/observations/y", SHAPE]),
    Case("noise_std_zero", changed(noise_std=np.float64(0.0)), ["/observations/noise_std", POSITIVE]),
    Case("noise_std_negative", changed(noise_std=np.float64(-1.0)), ["/observations/noise_std", POSITIVE]),
    Case("noise_std_1d", changed(noise_std=np.array([1.0])), ["/observations/noise_std", SHAPE]),
    Case("t_nan", changed(t=np.array([0.2, np.nan])), ["/observations/t", NONFINITE], ranks=(1, 2)),
    Case("y_inf", changed(y=np.array([[-1.5], [np.inf]])), ["/observations/y", NONFINITE]),
    Case("noise_std_nan", changed(noise_std=np.float64(np.nan)), ["/observations/noise_std", NONFINITE]),
] + [Case("%s_missing" % n, changed(**{n: None}), ["/observations/" + n, MISSING], ranks=(1, 2) if n == "t" else (1,)) for n in NAMES] + [
    Case("file_does_not_exist", "absent", [NO_FILE],
         ranks=(1, 2)),
]


def problem_state(path):
    """/problem/observations and the compared arrays of a checkpoint."""
    with h5py.File(path, "r") as f:
        obs = {n: f["problem/observations/" + n][()] for n in NAMES}
        source = wr.attr_str(f["problem"].attrs.get("observations", b""))
        lz = f["normalizer/log_z"][()]
    return obs, source, lz


def same_obs(a, b):
    return all(np.asarray(a[n]).shape == np.asarray(b[n]).shape and np.array_equal(a[n], b[n]) for n in NAMES)


def controls(args, check, tmp, good):
    """good_file and checkpoint_as_file; returns the good run's folder (None if it failed)."""
    out = os.path.join(tmp, "ctl_good")
    before = wr.snapshot(good)
    code, log, secs = wr.run_wgf(args, 1, out, extra=["-jko_steps", "2", "-filter_observations", good])
    ck = os.path.join(out, "ckpt_0002.h5")
    problems = []
    if code != 0 or not os.path.exists(ck):
        problems.append("exit %s, ckpt_0002.h5 %s" % (code, "written" if os.path.exists(ck) else "missing"))
    else:
        obs, source, lz = problem_state(ck)
        if not same_obs(obs, GOOD):
            problems.append("/problem/observations %s differ from the file's" % {k: np.asarray(v).tolist() for k, v in obs.items()})
        if source != good:
            problems.append("/problem attribute observations = %r, not the file" % source)
        if not (len(lz) == 3 and lz[0] == 0 and lz[1] == 0 and lz[2] < 0):
            problems.append("/normalizer/log_z %s: the observation at step 2 was not used" % lz)
    if wr.snapshot(good) != before:
        problems.append("the observation file was changed")
    if not check(not problems, "good_file", "; ".join(problems) + " (the bad cases below cannot be trusted)\n" + wr.tail(log) if problems
                 else "exit 0 in %.1f s, ckpt_0002.h5 holds the file's observations, log_z[2] = %.5f, file unchanged" % (secs, lz[2])):
        return None
    ref = wr.checkpoint_state(ck)
    out2 = os.path.join(tmp, "ctl_ckpt")
    before = wr.snapshot(ck)
    code, log, secs = wr.run_wgf(args, 1, out2, extra=["-jko_steps", "2", "-filtering_problem_file", ck])
    ck2 = os.path.join(out2, "ckpt_0002.h5")
    problems = []
    if code != 0 or not os.path.exists(ck2):
        problems.append("exit %s, ckpt_0002.h5 %s\n%s" % (code, "written" if os.path.exists(ck2) else "missing", wr.tail(log)))
    else:
        obs, _, _ = problem_state(ck2)
        if not same_obs(obs, GOOD):
            problems.append("/problem/observations differ from the file's")
        problems += wr.compare_state(ck2, ref)
    if wr.snapshot(ck) != before:
        problems.append("the checkpoint read was changed")
    check(not problems, "checkpoint_as_file", "; ".join(problems) if problems else
          "exit 0 in %.1f s: the same observations, maps, particles, normalizer and history bitwise as the good_file run; checkpoint unchanged" % secs)
    return out


def run_case(args, check, tmp, index, case, nranks):
    tag = "%02d_np%d" % (index, nranks)
    path = os.path.join(tmp, "obs_%s.h5" % tag)
    if isinstance(case.data, dict):
        write_observations(path, case.data)
    out_dir = os.path.join(tmp, "out_%s" % tag)
    file_before = wr.snapshot(path)
    code, log, secs = wr.run_wgf(args, nranks, out_dir, extra=["-jko_steps", "1", "-filter_observations", path], timeout=BAD_TIMEOUT)
    problems, line = wr.bad_run_problems(code, log, BAD_TIMEOUT, path, file_before, out_dir, case.expect, "observation file")
    label = "%s on %d rank(s)" % (case.name, nranks)
    if problems:
        check(False, label, "%s\n---- wgf output ----\n%s\n--------------------" % ("; ".join(problems), wr.tail(log)))
    else:
        check(True, label, "exit %d, %.1f s: %s" % (code, secs, line[:170]))


def part_restart(args, check, tmp, good, good_dir):
    """-restart with other observations is refused; with the same file accepted."""
    other = os.path.join(tmp, "other_obs.h5")
    write_observations(other, changed(y=GOOD["y"] + 0.5))
    for label, obs in (("a DIFFERENT", other), ("the SAME", good)):
        d = os.path.join(tmp, "restart_%s" % ("other" if obs == other else "same"))
        shutil.copytree(good_dir, d)
        before = wr.snapshot(d)
        code, log, secs = wr.run(args, args.wgf, 1, ["-restart", d, "-jko_steps", "3", "-filter_observations", obs])
        if obs == other:
            msg = [l.strip() for l in wr.message_lines(log) if "-filter_observations" in l and os.path.basename(obs) in l]
            same = wr.snapshot(d) == before
            check(code not in (0, None) and msg and same, "-restart of a finished run with -filter_observations %s file is refused" % label,
                  "exit %s in %.1f s, folder %s: %s" % (code, secs, "unchanged" if same else "CHANGED",
                                                       msg[0][:170] if msg else "no message names -filter_observations and the file\n" + wr.tail(log)))
        else:
            ok = code == 0 and os.path.exists(os.path.join(d, "ckpt_0003.h5"))
            check(ok, "control: -restart with -filter_observations %s file is accepted" % label,
                  "exit %s in %.1f s, ckpt_0003.h5 %s" % (code, secs, "written" if ok else "missing\n" + wr.tail(log)))


def main():
    args = wr.parse_args(__doc__)
    if not any(a == "--opts" or a.startswith("--opts=") for a in sys.argv[1:]):
        args.opts = FILTERING_OPTS
    opts = wr.read_options_file(args.opts)
    if opts.get("problem") != "filtering":
        raise SystemExit("%s must set -problem filtering" % args.opts)
    check = wr.Checks()
    with tempfile.TemporaryDirectory(prefix="wgf_check_filtering_files_") as tmp:
        args.opts = wr.write_options_file(os.path.join(tmp, "protocol.opts"), {k: v for k, v in opts.items() if k not in SIMULATING})
        good = os.path.join(tmp, "good.h5")
        write_observations(good, GOOD)
        good_dir = controls(args, check, tmp, good)
        for i, case in enumerate(CASES):
            for nranks in case.ranks:
                run_case(args, check, tmp, i, case, nranks)
        if good_dir is not None:
            part_restart(args, check, tmp, good, good_dir)
    print("%d failure(s)" % check.failures)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
