#!/usr/bin/env python3
"""Check -jko_h_start (the time steps of the first JKO steps, then -jko_h) on the tiny OU protocol
(input/ou_tiny.opts, 3 steps of -jko_h 0.05), every run on 2 ranks in double precision:
  a. -jko_h_start 0.01,0.02: /history's t column and each checkpoint's root attribute time are
     the cumulative sums 0, 0.01, 0.03, 0.08 (computed here), and /config records the list;
  b. step 1 trains with the first start step: map 1 of that run equals bitwise map 1 of a run of
     -jko_h 0.01 -jko_steps 1, and (control) differs from map 1 of the plain protocol (h 0.05);
     without the option the checkpoints are those of the plain protocol (bitwise);
  c. a restart continues bit for bit: the run stopped after step 2 (-jko_steps 2), continued with
     -restart DIR -jko_steps 3 and the same list, ends with a checkpoint bitwise equal to the
     uninterrupted run's, and so does -restart DIR -jko_steps 3 alone (a restart takes the checkpoint's options
     it is not given); a restart with another list is refused with a message naming -jko_h_start
     and leaves the folder as it was;
  d. bad lists (a step <= 0, a non-finite one) stop with a message naming -jko_h_start, nothing
     written; the filtering problem, whose observations are at multiples of -jko_h, refuses it.

Usage: check_wgf_h_start.py WGF [--mpiexec "mpiexec --oversubscribe -n"]
Prints one line per check; exit status 1 on any failure, 0 otherwise.
"""

import os
import shutil
import sys
import tempfile

import h5py
import numpy as np

import wgf_runner as wr

START = [0.01, 0.02]
H = 0.05
FILTERING_OPTS = os.path.join(os.path.dirname(wr.TINY_OPTS), "filtering_tiny.opts")


def main():
    args = wr.parse_args(__doc__)
    fails = []

    def check(ok, what, detail=""):
        print("%s  %s%s" % ("ok  " if ok else "FAIL", what, ("  (" + detail + ")") if detail else ""))
        if not ok:
            fails.append(what)

    start = ["-jko_h_start", ",".join(str(h) for h in START)]
    with tempfile.TemporaryDirectory(prefix="wgf_h_start_") as tmp:
        def run(name, extra, nranks=2):
            d = os.path.join(tmp, name)
            code, log, _ = wr.run_wgf(args, nranks, d, extra)
            if code != 0:
                print(wr.tail(log))
            return d, code, log

        def copy_before_step_3(src, name):
            """A copy of the folder src with the checkpoints of steps 1 and 2 only."""
            d = os.path.join(tmp, name)
            shutil.copytree(src, d)
            os.remove(os.path.join(d, "ckpt_0003.h5"))
            return d

        def check_refused(code, log, clean, what):
            """A failed run (not a timeout) whose message names -jko_h_start, and clean (nothing written)."""
            msg = [l for l in wr.message_lines(log) if "-jko_h_start" in l]
            check(code not in (0, None) and msg and clean, what,
                  "exit %s: %s" % (code, msg[0].strip()[:160] if msg else wr.tail(log)))

        # a. the times
        sched, code, _ = run("sched", start)
        check(code == 0, "a. the run with -jko_h_start %s exits 0" % start[1], "exit %s" % code)
        expect = np.cumsum([0.0] + START + [H])
        hist, cols = wr.history(os.path.join(sched, "ckpt_0003.h5"))
        t = hist[:, cols.index("t")]
        check(np.allclose(t, expect, rtol=0, atol=1e-15), "a. /history t = %s" % expect.tolist(), "got %s" % t.tolist())
        times = []
        for k in (1, 2, 3):
            with h5py.File(os.path.join(sched, "ckpt_%04d.h5" % k), "r") as f:
                times.append(float(f.attrs["time"]))
        check(np.allclose(times, expect[1:], rtol=0, atol=1e-15), "a. the checkpoints' time attributes", "got %s" % times)
        cfg = wr.attr_str(h5py.File(os.path.join(sched, "ckpt_0003.h5"), "r")["config"].attrs["jko_h_start"])
        check([float(x) for x in cfg.split(",")] == START, "a. /config jko_h_start records the list", "got %r" % cfg)

        # b. the step sizes used in training
        one, code1, _ = run("h001", ["-jko_h", "0.01", "-jko_steps", "1"])
        plain, code2, _ = run("plain", [])
        ref = {}
        for name, d in (("sched", sched), ("one", one), ("plain", plain)):
            with h5py.File(os.path.join(d, "ckpt_0001.h5"), "r") as f:
                ref[name] = f["maps/0001/params"][()]
        check(code1 == 0 and code2 == 0 and np.array_equal(ref["sched"].view(np.uint64), ref["one"].view(np.uint64)),
              "b. map 1 with -jko_h_start equals bitwise map 1 of -jko_h 0.01")
        check(not np.array_equal(ref["sched"], ref["plain"]), "b. control: it differs from map 1 of -jko_h 0.05",
              "max difference %.3g" % float(np.max(np.abs(ref["sched"] - ref["plain"]))))
        hist_p, cols_p = wr.history(os.path.join(plain, "ckpt_0003.h5"))
        check(np.array_equal(hist_p[:, cols_p.index("t")], np.arange(4) * H), "b. without the option t = k h, computed as that product")

        # c. restart
        part, code, _ = run("part", start + ["-jko_steps", "2"])
        check(code == 0, "c. the run of 2 steps exits 0", "exit %s" % code)
        full = wr.checkpoint_state(os.path.join(sched, "ckpt_0003.h5"))
        code, log, _ = wr.run_wgf(args, 2, part, start + ["-restart", part])
        bad = wr.compare_state(os.path.join(part, "ckpt_0003.h5"), full)
        check(code == 0 and not bad, "c. -restart after step 2 with the same list ends bitwise equal to the uninterrupted run",
              "exit %s; %s" % (code, "; ".join(bad[:3]) if bad else "equal"))
        d = copy_before_step_3(part, "inherit")
        code, log, _ = wr.run(args, args.wgf, 2, ["-restart", d, "-jko_steps", "3"])
        bad = wr.compare_state(os.path.join(d, "ckpt_0003.h5"), full)
        check(code == 0 and not bad, "c. -restart DIR -jko_steps 3 alone takes the checkpoint's list (and options) and ends bitwise equal",
              "exit %s; %s" % (code, "; ".join(bad[:3]) if bad else "equal"))
        d = copy_before_step_3(part, "refuse")
        before = wr.snapshot(d)
        code, log, _ = wr.run_wgf(args, 2, d, ["-jko_h_start", "0.01,0.03", "-restart", d])
        check_refused(code, log, wr.snapshot(d) == before, "c. a restart with another list is refused, the folder unchanged")

        # d. bad input
        for value in ("0.01,-0.02", "0.01,0", "0.01,inf"):
            d = os.path.join(tmp, "bad")
            code, log, _ = wr.run_wgf(args, 2, d, ["-jko_h_start", value])
            check_refused(code, log, not os.path.exists(d), "d. -jko_h_start %s is refused, nothing written" % value)
        d = os.path.join(tmp, "filtering")
        code, log, _ = wr.run(args, args.wgf, 2, ["-icnn_precision", "double", "-options_file", FILTERING_OPTS, "-out_dir", d,
                                                 "-jko_h_start", "0.01"])
        check_refused(code, log, not os.path.exists(d), "d. the filtering problem refuses -jko_h_start")

    print("%d failure(s)" % len(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
