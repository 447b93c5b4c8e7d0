#!/usr/bin/env python3
"""Check wgf's restarts: after a crash, after a stop signal, on another rank count, from a
checkpoint taken inside a step; -ckpt_keep; the options a restart must (not) accept.

Two protocols, both the tiny one (input/ou_tiny.opts) with 4 steps:
  LONG  -jko_iters 1000: a step lasts long enough (~0.3 s) to kill or signal a run inside it;
  SHORT -jko_iters 60:   for the cross-rank comparisons. On another rank count the sums of the
        minibatch are added in another order, and over many Adam iterations that roundoff grows
        (measured 2026-11-27: 1 vs 2 ranks, LONG: maps 1..4 differ by 7e-14, 1e-7, 2e-3, 5e-2),
        so a 1e-10 comparison across rank counts is only meaningful for short steps
        (SHORT: 4e-16 for the maps, 2e-14 for the metrics).
"Bitwise" means: same shape and dtype, every float64 with the same bits, NaN == NaN. Compared:
every /maps/<kkkk>/params (the same set of maps), /particles/x, /particles/logrho,
/particles/x0, /state/theta and every column of /history but the last, 'seconds' (wall clock).

  a. references: LONG and SHORT (-ckpt_every_iters 20) uninterrupted on 2 ranks; controls that
     the comparison can fail: a SHORT run with another -seed differs bitwise and beyond 1e-10,
     and a one-ulp change of one entry is caught by the bitwise comparison;
  b. SIGKILL: LONG with -jko_steps 6 -ckpt_every_iters 20 on 2 ranks; as soon as ckpt_0002.h5
     exists, SIGKILL the wgf ranks and the launcher; every ckpt_*.h5 file left under its final
     name must be a complete (complete = 1), readable checkpoint, every other file a *.partial
     leftover or Open MPI's lock probe beside one (DEBRIS_NAME) or a ParaView file
     (ckpt_<kkkk>.xmf, flow.xmf, or the *.partial of one); -restart DIR -jko_steps 4 on
     2 ranks must pick the newest complete checkpoint and end with a ckpt_0004.h5 bitwise equal
     to the LONG reference's;
  b2. the same, but the kill comes when a ckpt_*.h5.partial file is seen (a checkpoint being written)
     after ckpt_0002.h5 exists, so that a leftover *.partial is (usually) part of the test;
  c. another rank count: SHORT's ckpt_0002.h5 restarted on 1 and on 3 ranks, and its mid-step
     ckpt_0001_000020.h5 on 3 ranks, into new -out_dir folders: the final checkpoint agrees
     with the SHORT reference to a relative 1e-10 (maps read from the checkpoint and x0: bitwise);
     the step lines of these restarts end with 'elapsed H:MM:SS since restart  left ~H:MM:SS',
     the last one's left ~0:00:00, and there is no pretraining line (wgf_runner.clock_problems);
  d. stop signals: LONG on 2 ranks; once ckpt_0001.h5 exists, SIGTERM to the wgf ranks (not the
     launcher), and in a second run SIGUSR1 to the launcher (Open MPI forwards it): the launcher
     must exit with status 0, wgf must say that it stopped and which checkpoint it wrote, which
     must be a complete mid-step ckpt_0001_<iiiiii>.h5 (and no ckpt_0002.h5); -restart DIR on
     2 ranks continues from it and ends bitwise equal to the LONG reference;
  e. a mid-step checkpoint of (b) (ckpt_0001_000500.h5, inside step 2), -restart FILE into a new
     folder on 2 ranks: bitwise equal to the LONG reference, the file left as it was; control:
     the same file with Adam's moments zeroed must NOT give the reference (so (d) and (e) would
     catch a restart that dropped the optimizer state);
  f. -ckpt_keep 2 leaves exactly the 2 newest complete checkpoints: with -ckpt_every_iters 20
     {ckpt_0003_000040.h5, ckpt_0004.h5}, without {ckpt_0003.h5, ckpt_0004.h5}; and on a restart
     into a folder that also holds a foreign file named ckpt_0009.h5 and notes.txt, both are
     left as they were while the checkpoints 0001, 0002 go;
  g. a restart (-restart DIR, on 1 rank, some also on 2) with a mismatched -icnn_widths (a
     width, the layer count), -icnn_rank, -icnn_strong_convexity, -jko_h, -jko_beta, -ou_dim,
     -seed, -particles, a different problem (-ou_problem_file) or problem type (-problem) stops
     (with --opts of a mixture protocol: -mixture_dim, -mixture_problem_file, -mixture_std,
     -mixture_centers instead of the -ou_* options; with a blr protocol: another training file,
     -blr_prior_rate, -blr_data_batch, a -blr_problem_file with another prior; with a filtering
     protocol: -filter_dim, a -filtering_problem_file with other observations, -filter_pool,
     -filter_t_final, -filter_obs_every) with a non-zero status
     and a message naming the option, and leaves the folder byte-identical; a changed
     -jko_lr, -jko_steps (3 and 5) or -eval_samples is accepted, shows in /config, and acts
     (lr: maps 3, 4 differ from the reference; jko_steps 3: ckpt_0003.h5 bitwise the
     reference's, no ckpt_0004.h5; jko_steps 5: maps 1..4 bitwise the reference's;
     eval_samples: maps and particles bitwise the reference's, the metrics of steps 3, 4 not; for
     filtering, whose metrics are on the Chang-Cooper grid, everything bitwise).

With a filtering protocol (input/filtering_tiny.opts: observations at steps 2 and 4) the
restarts cross observation steps: (e) and (d, unless skipped) restart bit for bit from inside step 2 (before the
first observation, ckpt_0001_<iiiiii>.h5 and ckpt_0001_000500.h5) and continue across steps 2
and 4; (b) from the newest checkpoint after the kill (inside step 3 or later: after step 2's
observation, before step 4's); (c) from ckpt_0002.h5 (written at the first observation step) and
ckpt_0001_000020.h5 (inside step 2) on other rank counts. The compared arrays include
/normalizer (log_z, log_z_se, ess), the weights of the observations.

The wgf ranks are found as the descendants of this script's launcher process whose executable
is WGF_PATH (other runs of the same binary on the machine are never touched).

--skip b2,d,f leaves out parts that test the driver's machinery rather than the problem (a kill
during a write, the stop signals, -ckpt_keep), which the OU variants test: the filtering variant
skips them to keep the suite short.

Usage: check_wgf_restart.py WGF_PATH [--mpiexec "mpiexec --oversubscribe -n"] [--opts FILE] [--seed N] [--skip PARTS]
Prints one line per check; exit status 1 on any failure, 0 otherwise.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

import wgf_runner as wr

LONG = ["-jko_steps", "4", "-jko_iters", "1000"]
SHORT = ["-jko_steps", "4", "-jko_iters", "60"]
REL_TOL = 1e-10


def rel_tol(args):
    """The bound of the comparisons across rank counts: REL_TOL, or --rel-tol (single precision)."""
    return args.rel_tol if args.rel_tol is not None else REL_TOL
CKPT_NAME = re.compile(r"^ckpt_(\d{4})(?:_(\d{6}))?\.h5$")
# What a kill may leave of a checkpoint being written: its *.partial file and, if the kill came
# inside MPI_File_open, the lock probe that Open MPI's OMPIO (sharedfp/lockedfile) creates beside
# it and removes a moment later, <name>.partial.locktest.<rank>. Neither is a checkpoint to wgf.
DEBRIS_NAME = re.compile(r"^ckpt_\d{4}(?:_\d{6})?\.h5\.partial(?:\.locktest\.\d+)?$")
# The ParaView files beside the checkpoints (and, after a kill, the temporary file of one).
PARAVIEW_NAME = re.compile(r"^(?:ckpt_\d{4}\.xmf|flow\.xmf)(?:\.partial)?$")
# The prefix of a problem type's options where it is not the type's name (-filter_dim, ...).
OPTION_PREFIX = {"filtering": "filter"}
# Problem types whose metrics are computed on a grid, without samples (-eval_samples acts on none).
GRID_METRICS = ("filtering",)




def with_opts(base, **changes):
    """base (a list of -name value pairs) with the values of changes replaced or appended."""
    out, seen = list(base), set()
    for i in range(0, len(out) - 1, 2):
        name = out[i][1:]
        if name in changes:
            out[i + 1] = str(changes[name])
            seen.add(name)
    for name, value in changes.items():
        if name not in seen:
            out += ["-" + name, str(value)]
    return out


# ---------------------------------------------------------------------------- processes

def start(args, nranks, options, log_path):
    """Starts [launcher nranks] WGF options in its own session, output to log_path."""
    cmd = wr.launcher(args, nranks) + [args.wgf] + [str(o) for o in options]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=wr.environment(), start_new_session=True)
    proc.log_file, proc.log_path, proc.t0 = log, log_path, time.time()
    return proc


def finish(proc, timeout=wr.TIMEOUT_SECONDS):
    """Waits for proc (killing its process group after timeout); returns (exit code or None, log)."""
    try:
        code = proc.wait(timeout=max(1.0, timeout - (time.time() - proc.t0)))
    except subprocess.TimeoutExpired:
        wr.stop_group(proc)
        code = None
    proc.log_file.close()
    with open(proc.log_path, "rb") as f:
        return code, f.read().decode(errors="replace")


def proc_table():
    """pid -> (ppid, state) of every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            table[int(name)] = (int(fields[1]), fields[0])
        except (OSError, IndexError, ValueError):
            pass
    return table


def is_wgf(pid, wgf):
    """Whether process pid runs the wgf executable (its exe, or argv[0] as given)."""
    try:
        if os.path.realpath("/proc/%d/exe" % pid) == os.path.realpath(wgf):
            return True
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv0 = f.read().split(b"\0")[0].decode(errors="replace")
        return argv0 == wgf
    except OSError:
        return False


def wgf_ranks(launcher_pid, wgf):
    """The live wgf processes below launcher_pid."""
    table = proc_table()
    children = {}
    for pid, (ppid, state) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [launcher_pid]
    while todo:
        for c in children.get(todo.pop(), []):
            todo.append(c)
            if table[c][1] != "Z" and is_wgf(c, wgf):
                found.append(c)
    return sorted(found)


def alive(pids):
    table = proc_table()
    return [p for p in pids if p in table and table[p][1] != "Z"]


def wait_for_file(path, proc, timeout=wr.TIMEOUT_SECONDS):
    """Polls (every 5 ms) until path exists; False if proc ended first or after timeout."""
    t_end = time.time() + timeout
    while time.time() < t_end:
        if os.path.exists(path):
            return True
        if proc.poll() is not None:
            return os.path.exists(path)
        time.sleep(0.005)
    return False


# ---------------------------------------------------------------------------- files

def attr_int(obj, name):
    v = obj.attrs[name]
    return int(np.asarray(v).reshape(-1)[0])


def verify_checkpoint(path):
    """None if path is a complete, readable wgf checkpoint (root attributes; every dataset
    read), else what is wrong."""
    try:
        with h5py.File(path, "r") as f:
            if wr.attr_str(f.attrs.get("format", b"")) != "wgf-checkpoint":
                return "root attribute format is %r" % f.attrs.get("format")
            if "complete" not in f.attrs or attr_int(f, "complete") != 1:
                return "no root attribute complete = 1"
            if attr_int(f, "format_version") != 1:
                return "format_version %r" % f.attrs["format_version"]
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            for n in names:
                f[n][()]
            for n in ("state/theta", "particles/x", "particles/logrho", "history"):
                if n not in f:
                    return "no /%s" % n
    except Exception as e:  # noqa: BLE001 -- any failure to read is the finding
        return "unreadable: %s" % e
    return None


def load_state(path):
    """The compared arrays of a checkpoint, name -> array; and the name of the last column."""
    data = {}
    with h5py.File(path, "r") as f:
        for k in sorted(f["maps"].keys()):
            data["maps/%s" % k] = f["maps"][k]["params"][()]
        for n in ("x", "logrho", "x0"):
            data["particles/" + n] = f["particles"][n][()]
        data["state/theta"] = f["state/theta"][()]
        data.update(wr.optional_state(f))
        hist = f["history"][()]
        cols = wr.attr_str(f["history"].attrs["columns"]).split(",")
    for j, c in enumerate(cols[:-1]):
        data["history:" + c] = hist[:, j]
    return data, cols[-1]


def bitwise_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f":
        return np.array_equal(a, b)
    bits = a.view(np.uint64 if a.dtype.itemsize == 8 else np.uint32) == b.view(np.uint64 if b.dtype.itemsize == 8 else np.uint32)
    return bool(np.all(bits | (np.isnan(a) & np.isnan(b))))


def compare(got, ref, tol=None, only=None):
    """Problems of got vs ref (dicts of load_state): bitwise (tol None) or to a relative tol;
    only: the names to compare (default: all, and the two must hold the same names).
    Returns (list of problems, worst relative difference, names compared)."""
    problems, worst = [], 0.0
    names = sorted(ref) if only is None else sorted(only)
    if only is None and set(got) != set(ref):
        problems.append("arrays differ: only in result %s, only in reference %s" % (sorted(set(got) - set(ref)), sorted(set(ref) - set(got))))
    for n in names:
        if n not in got or n not in ref:
            problems.append("%s missing" % n)
            continue
        d = wr.rel_diff(got[n], ref[n])
        worst = max(worst, d)
        if tol is None:
            if not bitwise_equal(got[n], ref[n]):
                problems.append("%s not bitwise equal (rel diff %.3g)" % (n, d))
        elif not d <= tol:
            problems.append("%s rel diff %.3g > %.0e" % (n, d, tol))
    return problems, worst, names


def summary(names):
    maps = [n for n in names if n.startswith("maps/")]
    hist = [n for n in names if n.startswith("history:")]
    rest = [n for n in names if n not in maps and n not in hist]
    return "%d maps, %s, %d history columns" % (len(maps), ", ".join(rest), len(hist))


def check_same(check, label, path, ref, tol=None, only=None):
    """check() that the checkpoint at path equals ref (bitwise or to tol)."""
    if path is None or not os.path.exists(path):
        return check(False, label, "no final checkpoint %s" % path)
    got, last = load_state(path)
    problems, worst, names = compare(got, ref, tol, only)
    if last != "seconds":
        problems.append("the last /history column is %r, expected 'seconds'" % last)
    how = "bitwise" if tol is None else "within rel %.0e (worst %.2e)" % (tol, worst)
    return check(not problems, label, ("; ".join(problems[:6]) + (" ..." if len(problems) > 6 else "")) if problems
                 else "%s equal to the reference: %s" % (how, summary(names)))


def folder_listing(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def ckpt_key(name):
    m = CKPT_NAME.match(name)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


def restarted_from(log):
    m = re.search(r"restarting from (\S+)", log)
    return m.group(1) if m else None


def run_restart(args, nranks, where, extra=()):
    return wr.run(args, args.wgf, nranks, ["-restart", where] + [str(e) for e in extra])


def attr_config(path, name):
    with h5py.File(path, "r") as f:
        return wr.attr_str(f["config"].attrs[name]) if name in f["config"].attrs else None


# ---------------------------------------------------------------------------- the parts

def references(check, args, tmp):
    """(a): the two references and the controls; returns (long dict, short dict) or Nones."""
    refs = {}
    for label, opts in (("LONG", LONG), ("SHORT", SHORT + ["-ckpt_every_iters", "20"])):
        out = os.path.join(tmp, "ref_" + label.lower())
        code, log, secs = wr.run_wgf(args, 2, out, extra=opts)
        final = os.path.join(out, "ckpt_0004.h5")
        if check(code == 0 and os.path.exists(final), "a. reference %s on 2 ranks (%s)" % (label, " ".join(opts)),
                 "exit %s in %.1f s, %s" % (code, secs, "ckpt_0004.h5 written" if os.path.exists(final) else "no ckpt_0004.h5\n" + wr.tail(log))):
            refs[label] = (out, load_state(final)[0])
        else:
            refs[label] = (out, None)
    short = refs["SHORT"][1]
    if short is not None:
        out = os.path.join(tmp, "other_seed")
        code, log, secs = wr.run_wgf(args, 2, out, extra=SHORT, seed=args.seed + 1)
        final = os.path.join(out, "ckpt_0004.h5")
        if check(code == 0 and os.path.exists(final), "a. control run SHORT with -seed %d" % (args.seed + 1), "exit %s in %.1f s" % (code, secs)):
            other = load_state(final)[0]
            pb, _, _ = compare(other, short)
            pt, worst, _ = compare(other, short, rel_tol(args))
            check(len(pb) > 0 and len(pt) > 0, "a. control: the comparison fails for another seed",
                  "bitwise: %d of %d arrays differ; rel %.0e: %d differ (worst %.2e)" % (len(pb), len(short), rel_tol(args), len(pt), worst))
        bumped = {k: v.copy() for k, v in short.items()}
        x = bumped["maps/0003"]
        x[5] = np.nextafter(x[5], np.inf)
        pb, _, _ = compare(bumped, short)
        check(pb == ["maps/0003 not bitwise equal (rel diff %.3g)" % wr.rel_diff(x, short["maps/0003"])],
              "a. control: one ulp in one map entry fails the bitwise comparison", "; ".join(pb))
    return refs["LONG"][1], refs["SHORT"]


def wait_for_partial(d, proc, timeout=20):
    """Polls (as fast as it can) until d holds a *.partial file, i.e. a checkpoint is being
    written; False if proc ended first or after timeout."""
    t_end = time.time() + timeout
    while time.time() < t_end and proc.poll() is None:
        try:
            if any(DEBRIS_NAME.match(n) for n in os.listdir(d)):
                return True
        except OSError:
            pass
    return False


def part_kill(check, args, tmp, ref_long, during_write=False):
    """(b) and, unless during_write, (e). during_write: the kill comes as soon as a *.partial
    file is seen after ckpt_0002.h5 exists (a checkpoint being written), not right away."""
    tag = "b2" if during_write else "b"
    kdir = os.path.join(tmp, "kill_during_write" if during_write else "kill")
    opts = wr.protocol(args) + ["-out_dir", kdir, "-seed", str(args.seed)] + with_opts(LONG, jko_steps=6) + ["-ckpt_every_iters", "20"]
    proc = start(args, 2, opts, kdir + ".log")
    appeared = wait_for_file(os.path.join(kdir, "ckpt_0002.h5"), proc)
    if appeared and during_write:
        appeared = wait_for_partial(kdir, proc)
    ranks = wgf_ranks(proc.pid, args.wgf) if appeared and proc.poll() is None else []
    t_kill = time.time() - proc.t0
    for pid in ranks:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    code, log = finish(proc, timeout=30)
    t_end = time.time() + 5
    while alive(ranks) and time.time() < t_end:
        time.sleep(0.05)
    left = alive(ranks)
    what = "while a *.partial checkpoint is being written (after ckpt_0002.h5)" if during_write else "once ckpt_0002.h5 exists"
    if not check(appeared and len(ranks) == 2 and not left and not os.path.exists(os.path.join(kdir, "ckpt_0006.h5")),
                 "%s. SIGKILL of the 2 wgf ranks and the launcher %s" % (tag, what),
                 "killed pids %s after %.2f s (launcher status %s); ranks still alive: %s" % (ranks, t_kill, code, left)
                 if appeared else "no %s seen (launcher status %s)\n%s" % ("*.partial" if during_write else "ckpt_0002.h5", code, wr.tail(log))):
        return
    names = folder_listing(kdir)
    complete, partial, other = [], [], []
    for n in names:
        if CKPT_NAME.match(n):
            why = verify_checkpoint(os.path.join(kdir, n))
            (complete if why is None else other).append(n if why is None else "%s (%s)" % (n, why))
        elif DEBRIS_NAME.match(n):
            partial.append(n)
        elif not PARAVIEW_NAME.match(n):
            other.append(n)
    newest = max(complete, key=ckpt_key) if complete else None
    check(not other and complete, "%s. after the kill every" % tag + " ckpt_*.h5 file is complete and readable, the rest *.partial or ParaView files",
          "%d complete checkpoints (newest %s), leftovers %s%s" % (len(complete), newest, partial or "none",
                                                                   ("; NOT complete or unexpected: %s" % other) if other else ""))
    killed_files = set(complete)
    if newest is None:
        return

    # (e) before (b)'s restart writes on in the folder
    mid = os.path.join(kdir, "ckpt_0001_000500.h5")
    if not during_write and check(os.path.basename(mid) in killed_files, "e. the killed run left the mid-step checkpoint ckpt_0001_000500.h5 (inside step 2)"):
        before = wr.snapshot(mid)
        out = os.path.join(tmp, "mid_restart")
        code, log, secs = run_restart(args, 2, mid, ["-out_dir", out, "-jko_steps", "4", "-ckpt_every_iters", "0"])
        check(code == 0 and restarted_from(log) == mid, "e. -restart %s -out_dir NEW on 2 ranks" % os.path.basename(mid),
              "exit %s in %.1f s, restarted from %s" % (code, secs, restarted_from(log)) + ("" if code == 0 else "\n" + wr.tail(log)))
        check_same(check, "e. mid-step restart vs the LONG reference", os.path.join(out, "ckpt_0004.h5"), ref_long)
        check(wr.snapshot(mid) == before, "e. the checkpoint restarted from is byte-identical afterwards")
        # control: the same file without Adam's state must not reproduce the reference
        cdir = os.path.join(tmp, "ctl_adam")
        os.makedirs(cdir)
        ctl = os.path.join(cdir, os.path.basename(mid))
        shutil.copy2(mid, ctl)
        with h5py.File(ctl, "r+") as f:
            f["state/adam_m"][...] = 0.0
            f["state/adam_v"][...] = 0.0
        code, log, secs = run_restart(args, 2, ctl, ["-out_dir", os.path.join(cdir, "out"), "-jko_steps", "4", "-ckpt_every_iters", "0"])
        final = os.path.join(cdir, "out", "ckpt_0004.h5")
        if check(code == 0 and os.path.exists(final), "e. control: restart of the same file with /state/adam_m, adam_v zeroed", "exit %s in %.1f s" % (code, secs)):
            pb, worst, _ = compare(load_state(final)[0], ref_long)
            check(len(pb) > 0, "e. control: ... differs from the reference, so a lost Adam state would be caught",
                  "%d arrays differ, e.g. %s" % (len(pb), pb[0] if pb else "-"))

    # (b) the restart from the folder
    code, log, secs = run_restart(args, 2, kdir, ["-jko_steps", "4"])
    got_from = restarted_from(log)
    check(code == 0 and got_from == os.path.join(kdir, newest), tag + ". -restart DIR -jko_steps 4 on 2 ranks continues from the newest complete checkpoint",
          "exit %s in %.1f s, restarted from %s (newest complete: %s)" % (code, secs, got_from and os.path.basename(got_from), newest)
          + ("" if code == 0 else "\n" + wr.tail(log)))
    check_same(check, tag + ". restart after SIGKILL vs the LONG reference", os.path.join(kdir, "ckpt_0004.h5"), ref_long)
    after = folder_listing(kdir)
    check(not any(n in after for n in ("ckpt_0005.h5", "ckpt_0006.h5")), tag + ". the continuation stopped at -jko_steps 4",
          "the kill's leftovers %s; still present after the continuation: %s" % (partial or "none", [n for n in partial if n in after] or "none"))


def part_other_ranks(check, args, tmp, short):
    """(c)."""
    sdir, ref = short
    for nranks, name in ((1, "ckpt_0002.h5"), (3, "ckpt_0002.h5"), (3, "ckpt_0001_000020.h5")):
        src = os.path.join(sdir, name)
        out = os.path.join(tmp, "np%d_%s" % (nranks, name[:-3]))
        code, log, secs = run_restart(args, nranks, src, ["-out_dir", out])
        if not check(code == 0 and restarted_from(log) == src, "c. -restart %s (written on 2 ranks) on %d rank(s)" % (name, nranks),
                     "exit %s in %.1f s" % (code, secs) + ("" if code == 0 else "\n" + wr.tail(log))):
            continue
        bad = wr.clock_problems(log, 4, restarted=True)
        check(not bad, "c. %s on %d rank(s): the monitor lines' clock counts since the restart, the last step left ~0:00:00" % (name, nranks), "; ".join(bad))
        final = os.path.join(out, "ckpt_0004.h5")
        check_same(check, "c. %s on %d rank(s) vs the 2-rank reference" % (name, nranks), final, ref, tol=rel_tol(args))
        k = ckpt_key(name)[0]
        exact = ["maps/%04d" % j for j in range(1, k + 1)] + ["particles/x0"]
        if os.path.exists(final):
            pb, _, _ = compare(load_state(final)[0], ref, only=exact)
            check(not pb, "c. %s on %d rank(s): maps read from the checkpoint and x0 bitwise" % (name, nranks), "; ".join(pb) or ", ".join(exact))


def part_signals(check, args, tmp, ref_long):
    """(d)."""
    for sig, target in ((signal.SIGTERM, "ranks"), (signal.SIGUSR1, "launcher")):
        sname = signal.Signals(sig).name
        d = os.path.join(tmp, "sig_" + sname.lower())
        opts = wr.protocol(args) + ["-out_dir", d, "-seed", str(args.seed)] + LONG
        proc = start(args, 2, opts, os.path.join(tmp, sname + ".log"))
        appeared = wait_for_file(os.path.join(d, "ckpt_0001.h5"), proc)
        sent = []
        if appeared and proc.poll() is None:
            pids = wgf_ranks(proc.pid, args.wgf) if target == "ranks" else [proc.pid]
            for pid in pids:
                try:
                    os.kill(pid, sig)
                    sent.append(pid)
                except ProcessLookupError:
                    pass
        t_sig = time.time() - proc.t0
        code, log = finish(proc)
        label = "d. %s to the %s once ckpt_0001.h5 exists" % (sname, "wgf ranks" if target == "ranks" else "launcher (mpiexec)")
        if not check(appeared and sent and code == 0, label, "sent to %s after %.2f s; launcher exit %s" % (sent, t_sig, code)
                     + ("" if code == 0 else "\n" + wr.tail(log))):
            continue
        m = re.search(r"stopped by a signal inside step (\d+): checkpoint (\S+) written", log)
        ck = m.group(2) if m else None
        names = folder_listing(d)
        mids = [n for n in names if re.match(r"^ckpt_0001_\d{6}\.h5$", n)]
        why = verify_checkpoint(ck) if ck and os.path.exists(ck) else "missing"
        check(m is not None and ck is not None and os.path.basename(ck) in mids and why is None
              and "ckpt_0002.h5" not in names and not any(n.endswith(".partial") for n in names),
              "d. %s: wgf says it stopped and wrote a complete mid-step checkpoint" % sname,
              "message %r; folder %s; %s" % (m.group(0) if m else None, names, why or "complete"))
        if ck is None:
            continue
        code, log, secs = run_restart(args, 2, d)
        check(code == 0 and restarted_from(log) == ck, "d. %s: -restart DIR on 2 ranks continues from %s" % (sname, os.path.basename(ck)),
              "exit %s in %.1f s, from %s" % (code, secs, restarted_from(log)) + ("" if code == 0 else "\n" + wr.tail(log)))
        check_same(check, "d. %s: stopped and restarted vs the LONG reference" % sname, os.path.join(d, "ckpt_0004.h5"), ref_long)


def part_keep(check, args, tmp, short):
    """(f)."""
    sdir, ref = short
    # the ParaView files follow: a removed checkpoint's ckpt_<kkkk>.xmf goes too
    for extra, want in ((["-ckpt_every_iters", "20"], ["ckpt_0003_000040.h5", "ckpt_0004.h5", "ckpt_0004.xmf", "flow.xmf"]),
                        ([], ["ckpt_0003.h5", "ckpt_0003.xmf", "ckpt_0004.h5", "ckpt_0004.xmf", "flow.xmf"])):
        out = os.path.join(tmp, "keep%d" % len(extra))
        code, log, secs = wr.run_wgf(args, 2, out, extra=SHORT + extra + ["-ckpt_keep", "2"])
        names = folder_listing(out)
        bad = [n for n in names if CKPT_NAME.match(n) and verify_checkpoint(os.path.join(out, n))]
        check(code == 0 and names == want and not bad, "f. -ckpt_keep 2 %s" % " ".join(extra),
              "exit %s in %.1f s; folder holds %s (expected %s)%s" % (code, secs, names, want, ("; not complete: %s" % bad) if bad else ""))
        if code == 0 and "ckpt_0004.h5" in names and ref is not None:
            check_same(check, "f. -ckpt_keep 2 %s: final checkpoint vs the SHORT reference" % " ".join(extra), os.path.join(out, "ckpt_0004.h5"), ref)
    # a restart with -ckpt_keep into a folder holding files that are not wgf's checkpoints
    k = os.path.join(tmp, "keep_restart")
    os.makedirs(k)
    for n in ("ckpt_0001.h5", "ckpt_0002.h5"):
        shutil.copy2(os.path.join(sdir, n), k)
    with open(os.path.join(k, "ckpt_0009.h5"), "wb") as f:
        f.write(b"not an HDF5 file, and not wgf's to delete\n" * 10)
    with open(os.path.join(k, "notes.txt"), "w") as f:
        f.write("someone's notes\n")
    foreign = {n: wr.snapshot(os.path.join(k, n)) for n in ("ckpt_0009.h5", "notes.txt")}
    code, log, secs = run_restart(args, 2, os.path.join(k, "ckpt_0002.h5"), ["-ckpt_keep", "2", "-ckpt_every_iters", "0"])
    names = folder_listing(k)
    want = ["ckpt_0003.h5", "ckpt_0003.xmf", "ckpt_0004.h5", "ckpt_0004.xmf", "ckpt_0009.h5", "flow.xmf", "notes.txt"]
    kept = all(wr.snapshot(os.path.join(k, n)) == s for n, s in foreign.items())
    check(code == 0 and names == want and kept, "f. restart with -ckpt_keep 2 into a folder with a foreign ckpt_0009.h5 and notes.txt",
          "exit %s in %.1f s; folder holds %s (expected %s); foreign files %s" % (code, secs, names, want, "untouched" if kept else "CHANGED")
          + ("" if code == 0 else "\n" + wr.tail(log)))


def part_options(check, args, tmp, short):
    """(g)."""
    sdir, ref = short
    g = os.path.join(tmp, "mismatch")
    os.makedirs(g)
    for n in ("ckpt_0001.h5", "ckpt_0002.h5"):
        shutil.copy2(os.path.join(sdir, n), g)
    # another problem of the same type: the checkpoint's /problem with its first matrix (OU: A,
    # mixture: the centres) scaled by 1.25, or (blr) its prior rate halved, or (filtering) the
    # whole /problem group (its attributes too) with the observations y scaled by 1.25
    ptype = wr.read_options_file(args.opts).get("problem", "ou")
    oprefix = OPTION_PREFIX.get(ptype, ptype)
    prob = os.path.join(tmp, "other_problem.h5")
    with h5py.File(os.path.join(g, "ckpt_0002.h5"), "r") as f, h5py.File(prob, "w") as p:
        if ptype == "filtering":
            f.copy("problem", p)
            p["problem/observations/y"][...] = f["problem/observations/y"][()] * 1.25
        elif ptype == "blr":
            q = p.create_group("problem")
            for k, v in f["problem"].attrs.items():
                q.attrs[k] = v
            q.attrs["prior_rate"] = f["problem"].attrs["prior_rate"] / 2
            train = wr.attr_str(f["problem"].attrs["data"])
        else:
            scaled = {"ou": "A", "mixture": "centers"}[ptype]
            for n in f["problem"]:
                p.create_dataset("problem/" + n, data=f["problem"][n][()] * (1.25 if n == scaled else 1.0))
    dim_case = [(["-%s_dim" % oprefix, "3"], "-%s_dim" % oprefix, (1, 2))]
    if ptype == "blr":  # no dimension option: the data give it; another data file (one label flipped) instead
        other = os.path.join(tmp, "other_train.h5")
        with h5py.File(train, "r") as f, h5py.File(other, "w") as o:
            y = f["y"][()]
            y[0] = -y[0]
            o["X"], o["y"] = f["X"][()], y
        dim_case = [(["-blr_data", other], "-blr_data", (1, 2)), (["-blr_prior_rate", "50"], "-blr_prior_rate", (1,)),
                    (["-blr_data_batch", "7"], "-blr_data_batch", (1,))]
    cases = [
        (["-icnn_widths", "9,8"], "-icnn_widths", (1, 2)),
        (["-icnn_widths", "9,7,5"], "-icnn_widths", (1,)),
        (["-icnn_rank", "3"], "-icnn_rank", (1,)),
        (["-icnn_strong_convexity", "1e-3"], "-icnn_strong_convexity", (1,)),
        (["-jko_h", "0.04"], "-jko_h", (1, 2)),
        (["-jko_h_start", "0.01,0.02"], "-jko_h_start", (1,)),
        (["-jko_beta", "2"], "-jko_beta", (1,)),
        (["-seed", str(args.seed + 1)], "-seed", (1, 2)),
        (["-particles", "100"], "-particles", (1,)),
        (["-%s_problem_file" % ptype, prob], "problem differs", (1,)),
        (["-problem", "mixture" if ptype == "ou" else "ou"], "-problem", (1,)),
    ]
    cases += dim_case
    if ptype == "mixture":
        cases += [(["-mixture_std", "2"], "-mixture_std", (1,)), (["-mixture_centers", "4"], "-mixture_centers", (1,))]
    if ptype == "filtering":
        cases += [(["-filter_pool", "999"], "-filter_pool", (1,)), (["-filter_t_final", "0.8"], "-filter_t_final", (1,)),
                  (["-filter_obs_every", "0.1"], "-filter_obs_every", (1,))]
    for extra, expect, ranks in cases:
        for nranks in ranks:
            before, pbefore = wr.snapshot(g), wr.snapshot(prob)
            code, log, secs = run_restart(args, nranks, g, extra)
            msg = [l for l in wr.message_lines(log) if expect.lower() in l.lower()]
            same = wr.snapshot(g) == before and wr.snapshot(prob) == pbefore
            check(code not in (0, None) and msg and same, "g. -restart DIR %s on %d rank(s) is refused" % (" ".join(extra), nranks),
                  "exit %s in %.1f s, folder %s: %s" % (code, secs, "unchanged" if same else "CHANGED", msg[0].strip()[:150] if msg else
                                                       "no message mentions %r\n%s" % (expect, wr.tail(log))))
    # accepted changes, each in its own copy of the folder (-out_dir defaults to it)
    for extra in (["-jko_lr", "0.002"], ["-jko_steps", "3"], ["-jko_steps", "5"], ["-eval_samples", "200"]):
        d = os.path.join(tmp, "accept_%s_%s" % (extra[0][1:], extra[1]))
        shutil.copytree(g, d)
        code, log, secs = run_restart(args, 2, d, extra)
        last = max((n for n in folder_listing(d) if CKPT_NAME.match(n) and ckpt_key(n)[1] == 0), key=ckpt_key)
        cfg = attr_config(os.path.join(d, last), extra[0][1:])
        ok = code == 0 and cfg is not None and float(cfg) == float(extra[1])
        detail = "exit %s in %.1f s, last checkpoint %s, /config %s = %s" % (code, secs, last, extra[0][1:], cfg)
        if ok and ref is not None:
            got = load_state(os.path.join(d, last))[0]
            if extra[0] == "-jko_lr":
                pb, _, _ = compare(got, ref, only=["maps/0003", "maps/0004"])
                p12, _, _ = compare(got, ref, only=["maps/0001", "maps/0002"])
                ok = last == "ckpt_0004.h5" and len(pb) == 2 and not p12
                detail += "; maps 1, 2 %s, maps 3, 4 %s the reference's" % ("bitwise" if not p12 else "NOT", "differ from" if len(pb) == 2 else "EQUAL to")
            elif extra[1] == "3":
                ref3 = load_state(os.path.join(sdir, "ckpt_0003.h5"))[0]
                pb, _, _ = compare(got, ref3)
                ok = last == "ckpt_0003.h5" and not os.path.exists(os.path.join(d, "ckpt_0004.h5")) and not pb
                detail += "; vs the reference's ckpt_0003.h5: %s" % ("; ".join(pb[:3]) or "bitwise")
            elif extra[1] == "5":
                pb, _, _ = compare(got, ref, only=["maps/%04d" % j for j in range(1, 5)])
                ok = last == "ckpt_0005.h5" and not pb
                detail += "; maps 1..4 %s" % ("; ".join(pb[:3]) or "bitwise the reference's")
            elif ptype in GRID_METRICS:  # metrics on a grid, not sampled: -eval_samples changes nothing
                pb, _, _ = compare(got, ref)
                ok = last == "ckpt_0004.h5" and not pb
                detail += "; everything %s (the %s metrics are on a grid)" % ("; ".join(pb[:3]) or "bitwise the reference's", ptype)
            else:
                keep = [n for n in ref if not n.startswith("history:")] + ["history:loss", "history:w2_term"]
                pb, _, _ = compare(got, ref, only=keep)
                metric = "history:symkl" if "history:symkl" in ref else "history:test_loglik"
                pm, _, _ = compare(got, ref, only=[metric])
                ok = last == "ckpt_0004.h5" and not pb and pm
                detail += "; maps, particles, theta, loss %s; %s %s" % ("; ".join(pb[:3]) or "bitwise the reference's", metric, "differs" if pm else "UNCHANGED")
        check(ok, "g. -restart DIR %s on 2 ranks is accepted" % " ".join(extra), detail + ("" if code == 0 else "\n" + wr.tail(log)))


def main():
    args = wr.parse_args(__doc__, parts=("b2", "d", "f"))
    check = wr.Checks()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="wgf_check_restart_") as tmp:
        ref_long, short = references(check, args, tmp)
        if ref_long is not None:
            part_kill(check, args, tmp, ref_long)
            if "b2" not in args.skip:
                part_kill(check, args, tmp, ref_long, during_write=True)
            if "d" not in args.skip:
                part_signals(check, args, tmp, ref_long)
        else:
            check(False, "b, d, e skipped: no LONG reference")
        if short[1] is not None:
            part_other_ranks(check, args, tmp, short)
            if "f" not in args.skip:
                part_keep(check, args, tmp, short)
            part_options(check, args, tmp, short)
        else:
            check(False, "c, f, g skipped: no SHORT reference")
    print("%d failure(s) in %.0f s" % (check.failures, time.time() - t0))
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
