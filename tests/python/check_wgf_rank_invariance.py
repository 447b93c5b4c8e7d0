#!/usr/bin/env python3
"""Check that wgf computes the same chain on 1, 2 and 3 ranks.

Runs the tiny protocol (input/ou_tiny.opts: batch 101, 257 particles, 300 evaluation samples,
none of which divides evenly by 2 or 3, on purpose) with the same -seed on 1, 2 and 3 ranks, each
into its own temporary folder, and compares the final checkpoint of the 2- and 3-rank runs with
the 1-rank one: every /maps/<kkkk>/params, /particles/x, /particles/logrho (and /particles/x0)
and the columns of /history must agree to a relative difference max|a - b| / max|b| below 1e-8,
with NaN in the same places (--rel-tol changes the bound: 1e-5 for -icnn_precision single). The compared history columns are the loss terms (loss, w2_term,
potential_term, entropy_term), which the brief requires, and also step, t and the metrics
(KL both ways, symkl, energy_distance, not_converged), whose samples are drawn by global index
as well; only 'seconds' (wall-clock time) is left out. A run with observations (-problem
filtering) also has /normalizer/log_z, log_z_se and ess, compared in the same way
(wgf_runner.optional_state).

So that the test can fail at all, a run with another seed must give maps that differ from the
first run's by a relative difference above 1e-3.

Every run's monitor lines (the pretraining's and each step's) must end with the run's clock,
'elapsed H:MM:SS  left ~H:MM:SS' ('left ~?' on the pretraining line), the last step's saying
'left ~0:00:00' (wgf_runner.clock_problems).

Usage: check_wgf_rank_invariance.py WGF_PATH [--mpiexec "mpiexec --oversubscribe -n"] [--opts FILE] [--seed N]
Prints one line per comparison; exit status 1 on any failure, 0 otherwise.
"""

import os
import sys
import tempfile

import h5py

import wgf_runner as wr

TOL = 1e-8
DIFFERENT_SEED_MIN = 1e-3
NOT_COMPARED = {"seconds"}


def load(path):
    """The compared datasets of a checkpoint, name -> array."""
    data = {}
    with h5py.File(path, "r") as f:
        for k in sorted(f["maps"].keys()):
            data["maps/%s/params" % k] = f["maps"][k]["params"][()]
        for name in ("x0", "x", "logrho"):
            data["particles/" + name] = f["particles"][name][()]
        data.update(wr.optional_state(f))
        hist = f["history"][()]
        cols = wr.attr_str(f["history"].attrs["columns"]).split(",")
    for j, c in enumerate(cols):
        if c not in NOT_COMPARED:
            data["history:" + c] = hist[:, j]
    return data


def run_ok(args, tmp, nranks, seed, failures):
    """One run of the tiny protocol; returns its final checkpoint or None."""
    out = os.path.join(tmp, "np%d_seed%d" % (nranks, seed))
    code, log, secs = wr.run_wgf(args, nranks, out, seed=seed)
    last = wr.last_checkpoint(out)
    if code != 0 or last is None:
        failures.append("run on %d ranks, seed %d" % (nranks, seed))
        print("FAIL run on %d rank(s), seed %d: exit %s, last checkpoint %s\n---- wgf output ----\n%s\n--------------------"
              % (nranks, seed, code, last, wr.tail(log)))
        return None
    print("ok   run on %d rank(s), seed %d: %.1f s, %s" % (nranks, seed, secs, os.path.basename(last)))
    bad = wr.clock_problems(log, int(os.path.basename(last)[5:9]))
    if bad:
        failures.append("monitor clock on %d ranks, seed %d" % (nranks, seed))
        print("FAIL monitor lines on %d rank(s), seed %d: %s" % (nranks, seed, "; ".join(bad)))
    else:
        print("ok   monitor lines on %d rank(s), seed %d end with 'elapsed ...  left ~...', the last step's left ~0:00:00" % (nranks, seed))
    return last


def main():
    args = wr.parse_args(__doc__)
    tol = args.rel_tol if args.rel_tol is not None else TOL
    failures = []
    with tempfile.TemporaryDirectory(prefix="wgf_check_rank_invariance_") as tmp:
        ref_path = run_ok(args, tmp, 1, args.seed, failures)
        if ref_path is None:
            print("cannot compare without the 1-rank run")
            return 1
        ref = load(ref_path)
        for nranks in (2, 3):
            path = run_ok(args, tmp, nranks, args.seed, failures)
            if path is None:
                continue
            if os.path.basename(path) != os.path.basename(ref_path):
                failures.append("final step on %d ranks" % nranks)
                print("FAIL %d ranks: final checkpoint %s, 1 rank: %s" % (nranks, os.path.basename(path), os.path.basename(ref_path)))
                continue
            got = load(path)
            if set(got) != set(ref):
                failures.append("contents on %d ranks" % nranks)
                print("FAIL %d ranks: datasets/columns %s differ from 1 rank's %s" % (nranks, sorted(got), sorted(ref)))
                continue
            worst = (0.0, "")
            for name in sorted(ref):
                d = wr.rel_diff(got[name], ref[name])
                worst = max(worst, (d, name))
                if not d < tol:
                    failures.append("%s on %d ranks" % (name, nranks))
                    print("FAIL %d vs 1 rank(s): %-28s rel diff %.3e (tolerance %.0e)" % (nranks, name, d, tol))
                else:
                    print("ok   %d vs 1 rank(s): %-28s rel diff %.3e" % (nranks, name, d))
            print("     %d vs 1 rank(s): worst %.3e (%s) over %d compared arrays" % (nranks, worst[0], worst[1], len(ref)))

        # the test must be able to fail: another seed gives another chain
        other = run_ok(args, tmp, 1, args.seed + 1, failures)
        if other is not None:
            got = load(other)
            maps = [n for n in ref if n.startswith("maps/") and n in got]
            d = max(wr.rel_diff(got[n], ref[n]) for n in maps) if maps else 0.0
            if not maps or not d > DIFFERENT_SEED_MIN:
                failures.append("seed sensitivity")
                print("FAIL seed %d vs seed %d: maps rel diff %.3e, expected > %.0e (is -seed used?)"
                      % (args.seed + 1, args.seed, d, DIFFERENT_SEED_MIN))
            else:
                print("ok   seed %d vs seed %d (1 rank): maps rel diff %.3e > %.0e, as it should"
                      % (args.seed + 1, args.seed, d, DIFFERENT_SEED_MIN))
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
