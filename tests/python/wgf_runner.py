#!/usr/bin/env python3
"""Command line, process handling and checkpoint reading shared by the check_wgf_*.py scripts.

Conventions (as in eval_runner.py): the first argument is the path of the wgf executable (some
scripts take wgf-eval second); --mpiexec is the launcher prefix that takes the rank count as
its next word, e.g. "mpiexec --oversubscribe -n" (the default); --opts is the tiny protocol
(default: input/ou_tiny.opts of this repository). Every run has a timeout; a run that does not
finish counts as a failure, and its whole process group is killed.
"""

import argparse
import glob
import os
import re
import shlex
import signal
import subprocess
import time

import h5py
import numpy as np

TIMEOUT_SECONDS = 120
HERE = os.path.dirname(os.path.abspath(__file__))
TINY_OPTS = os.path.normpath(os.path.join(HERE, "..", "..", "input", "ou_tiny.opts"))


def parse_args(doc, with_eval=False, seed=0, tools=(), parts=()):
    """WGF_PATH [WGF_EVAL_PATH] [TOOL_PATH ...] [--mpiexec PREFIX] [--opts FILE] [--seed N] [--extra=OPTIONS]
    [--skip PARTS]; tools names further executables (e.g. "wgf_sample"), each an attribute of the
    result; parts names the script's parts that --skip (comma-separated) may leave out."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wgf", help="path of the wgf executable")
    if with_eval:
        parser.add_argument("wgf_eval", help="path of the wgf-eval executable")
    for t in tools:
        parser.add_argument(t, help="path of the %s executable" % t.replace("_", "-"))
    parser.add_argument("--mpiexec", default="mpiexec --oversubscribe -n",
                        help='launcher prefix followed by the rank count (default: "%(default)s")')
    parser.add_argument("--opts", default=TINY_OPTS, help="options file of the tiny protocol (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=seed, help="-seed of the runs (default: %(default)s)")
    parser.add_argument("--extra", default="", help="options added to every run of the protocol, e.g. --extra=-jko_resident")
    parser.add_argument("--rel-tol", type=float, default=None,
                        help="relative tolerance of the comparisons across rank counts (default: the script's own; "
                             "1e-5 for -icnn_precision single, whose float sums round differently per rank count)")
    if parts:
        parser.add_argument("--skip", default="", help="parts to leave out, comma-separated, of: %s" % ", ".join(parts))
    args = parser.parse_args()
    if parts:
        args.skip = set(filter(None, args.skip.split(",")))
        if args.skip - set(parts):
            parser.error("--skip: unknown parts %s (known: %s)" % (sorted(args.skip - set(parts)), ", ".join(parts)))
    return args


def environment():
    """The environment of the runs: one BLAS thread per rank, and (as root) Open MPI's consent."""
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def launcher(args, nranks):
    """The command prefix that starts nranks ranks."""
    prefix = shlex.split(args.mpiexec)
    if not prefix:
        if nranks != 1:
            raise SystemExit("--mpiexec is empty: cannot start %d ranks" % nranks)
        return []
    return prefix + [str(nranks)]


class Checks:
    """Collects failures; every check prints one line."""

    def __init__(self):
        self.failures = 0

    def __call__(self, ok, what, detail=""):
        if not ok:
            self.failures += 1
        print("%s %s%s" % ("ok  " if ok else "FAIL", what, (": " + detail) if detail else ""), flush=True)
        return ok


def stop_group(proc):
    """Ends the process group of proc (started with start_new_session): SIGTERM, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            pass


def run(args, exe, nranks, options, timeout=TIMEOUT_SECONDS, cwd=None):
    """Run [mpiexec ... nranks] exe OPTIONS. Returns (exit code, stdout + stderr, seconds); a run
    that does not finish within timeout seconds is killed (its whole process group) and counts
    as exit code None."""
    cmd = launcher(args, nranks) + [exe] + [str(o) for o in options]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment(),
                            cwd=cwd, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        stop_group(proc)
        out, _ = proc.communicate()
        out = (out or b"") + ("\n[timed out after %d s: %s]" % (timeout, " ".join(cmd))).encode()
        code = None
    return code, out.decode(errors="replace"), time.time() - t0


def protocol(args):
    """The tiny protocol's options: double precision first (the file or --extra may override it),
    the options file, then --extra."""
    return ["-icnn_precision", "double", "-options_file", args.opts] + shlex.split(args.extra)


def run_wgf(args, nranks, out_dir, extra=(), seed=None, opts=True, timeout=TIMEOUT_SECONDS):
    """wgf with the tiny protocol (unless opts is False), -out_dir out_dir, -seed (args.seed
    unless given) and extra options, which come last and so override the protocol's. The protocol
    (protocol()) runs in double precision unless --extra says otherwise: the comparisons of these
    tests are to rounding."""
    options = (protocol(args) if opts else []) + ["-out_dir", out_dir]
    options += ["-seed", str(args.seed if seed is None else seed)] + list(extra)
    return run(args, args.wgf, nranks, options, timeout=timeout)


def read_options_file(path):
    """The options of a PETSc options file as a dict name -> value string ('' for flags)."""
    opts = {}
    with open(path) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            i = 0
            while i < len(words):
                if words[i].startswith("-") and not re.match(r"^-?[0-9.]", words[i][1:]):
                    name = words[i][1:]
                    if i + 1 < len(words) and not (words[i + 1].startswith("-") and
                                                   not re.match(r"^-[0-9.]", words[i + 1])):
                        opts[name] = words[i + 1]
                        i += 2
                        continue
                    opts[name] = ""
                i += 1
    return opts


def write_options_file(path, opts):
    """A PETSc options file at path with the options of the dict opts (name -> value string, ''
    for flags, as read_options_file gives them), one a line."""
    with open(path, "w") as f:
        for name, value in opts.items():
            f.write("-%s%s\n" % (name, (" " + value) if value != "" else ""))
    return path


def checkpoints(out_dir):
    """The ckpt_<kkkk>.h5 files in out_dir, sorted by step."""
    return sorted(glob.glob(os.path.join(out_dir, "ckpt_[0-9][0-9][0-9][0-9].h5")))


def last_checkpoint(out_dir):
    files = checkpoints(out_dir)
    return files[-1] if files else None


def attr_str(value):
    """An HDF5 string attribute as str (h5py gives bytes or str depending on how it was written)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        return value.tobytes().decode()
    return str(value)


def history(path):
    """(/history as an array, list of column names)."""
    with h5py.File(path, "r") as f:
        return f["history"][()], attr_str(f["history"].attrs["columns"]).split(",")


def param_count(D, widths, r):
    """Parameters of a DenseICNN (MATH.md sec. 2): per layer l, A_l (D r n_l), W_l (n_l D),
    b_l (n_l) and U_l (n_l n_{l-1}, l >= 2); then w (n_L)."""
    P, prev = 0, None
    for n in widths:
        P += D * r * n + n * D + n + (n * prev if prev is not None else 0)
        prev = n
    return P + widths[-1]


def rel_diff(a, b):
    """max|a - b| / max|b| over the finite entries; inf if the NaN/inf patterns differ or the
    shapes do."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf")
    m = np.isfinite(b)
    if not m.any():
        return 0.0
    scale = np.max(np.abs(b[m]))
    diff = np.max(np.abs(a[m] - b[m]))
    return float(diff / scale) if scale > 0 else float(diff)


def snapshot(path):
    """Every file below path (or path itself, if it is a file) as relative name -> bytes, and
    every directory as relative name -> None; None if path does not exist."""
    if not os.path.lexists(path):
        return None
    if not os.path.isdir(path):
        with open(path, "rb") as f:
            return {".": f.read()}
    snap = {}
    for root, dirs, files in os.walk(path):
        for d in dirs:
            snap[os.path.relpath(os.path.join(root, d), path)] = None
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                snap[os.path.relpath(full, path)] = f.read()
    return snap


STEP_LINE = re.compile(r"^step +(\d+)  t = \S+  loss .* it/s  (.*)$")
PRETRAIN_LINE = re.compile(r"^pretraining \(map 0 = identity\): .* it/s  (.*)$")
CLOCK = re.compile(r"^elapsed (\d+):([0-5]\d):([0-5]\d)( since restart)?  left ~(\?|(\d+):([0-5]\d):([0-5]\d))$")


def clock_problems(log, last_step, restarted=False):
    """What is wrong with the clock that ends the monitor lines of a run whose last step is
    last_step: the pretraining line (a fresh run only) and every step line must end with
    'elapsed H:MM:SS  left ~H:MM:SS', with ' since restart' after the elapsed time exactly when
    restarted, elapsed never decreasing; the pretraining line says 'left ~?' (no step timed yet),
    the step lines a time, and the line of last_step 'left ~0:00:00'. Returns a list of
    messages, empty when all is right."""
    bad, seen, prev = [], {}, -1
    pre = [PRETRAIN_LINE.match(l) for l in log.splitlines()]
    pre = [m.group(1) for m in pre if m]
    if restarted != (not pre):
        bad.append("%d pretraining line(s) in a %s run" % (len(pre), "restarted" if restarted else "fresh"))
    for line in log.splitlines():
        m = STEP_LINE.match(line) or PRETRAIN_LINE.match(line)
        if not m:
            continue
        step = int(m.group(1)) if m.re is STEP_LINE else 0
        c = CLOCK.match(m.groups()[-1])
        if not c:
            bad.append("step %d: no 'elapsed H:MM:SS  left ~...' at the end: %r" % (step, line[-60:]))
            continue
        elapsed = int(c.group(1)) * 3600 + int(c.group(2)) * 60 + int(c.group(3))
        if elapsed < prev:
            bad.append("step %d: elapsed %d s after %d s" % (step, elapsed, prev))
        prev = elapsed
        if bool(c.group(4)) != restarted:
            bad.append("step %d: %r" % (step, m.groups()[-1]) + (" lacks 'since restart'" if restarted else " says 'since restart' in a fresh run"))
        if (c.group(5) == "?") != (step == 0):
            bad.append("step %d: left ~%s" % (step, c.group(5)))
        if step:
            seen[step] = c.group(5)
    if last_step not in seen:
        bad.append("no monitor line of the last step %d (steps seen: %s)" % (last_step, sorted(seen)))
    elif seen[last_step] != "0:00:00":
        bad.append("the last step %d says left ~%s, not ~0:00:00" % (last_step, seen[last_step]))
    return bad


TRACEBACK_LINE = re.compile(r"#\d+ .* at .*:\d+\s*$")
ERROR_LINE = re.compile(r"^(\S+): error: (.*)$")


def error_report(code, log, tool, traceback=False, aborts=False):
    """(message, problems) of a run that must stop with an error a user caused: within the timeout,
    with the PETSc error code as exit status (55 to 99: not 0, not a crash, whose status is 128 +
    the signal), no rank killed by a signal, and in the combined output of all ranks exactly one line
    '<tool>: error: <message>' (tool: 'wgf', 'wgf-eval', ...), and no line of PETSc's traceback
    ('PETSC ERROR'), of its configure line or of Open MPI's MPI_ABORT banner. With traceback (the
    run had -wgf_traceback, or hit a bug) it is the other way round: PETSc's traceback must be
    there, and message is its lines (message_lines()). aborts: the job may end in MPI_Abort (an
    output file was open when the error came: util.c, error_output_open), so Open MPI's banner is
    allowed. problems is empty when all is as it must be."""
    problems = []
    if code is None:
        problems.append("did not finish within %d s" % TIMEOUT_SECONDS)
    elif not 55 <= code < 100:
        problems.append("exit status %d is not a PETSc error code" % code)
    crashed = [l for l in log.splitlines() if "exited on signal" in l]
    if crashed:
        problems.append("a rank crashed: %s" % crashed[0].strip())
    errors = [m.group(2) for m in map(ERROR_LINE.match, log.splitlines()) if m and m.group(1) == tool]
    petsc = [l for l in log.splitlines() if "PETSC ERROR" in l]
    if traceback:
        if not any(TRACEBACK_LINE.search(l) for l in petsc):
            problems.append("no PETSc traceback")
        if errors:
            problems.append("the short form '%s: error:' too" % tool)
        return "\n".join(l for l in message_lines(log) if "PETSC ERROR" in l), problems
    if len(errors) != 1:
        problems.append("%d lines '%s: error: ...', not 1" % (len(errors), tool))
    for what, bad in (("PETSc's traceback ('PETSC ERROR')", petsc),
                      ("PETSc's configure line", [l for l in log.splitlines() if "Configure options" in l]),
                      ("Open MPI's MPI_ABORT banner", [l for l in log.splitlines() if "MPI_ABORT" in l and not aborts])):
        if bad:
            problems.append("%s in the output (%d lines)" % (what, len(bad)))
    return (errors[0] if errors else ""), problems


def message_lines(log):
    """The lines of a log that count as an error message: without PETSc's traceback lines
    ('#1 Func() at file.c:12'), its echo of the options database (from 'PETSc Option Table
    entries:' to 'End of Error Message') and its list of unused options ('Option left: ...'),
    which name every option given whatever the error."""
    kept, in_table = [], False
    for line in log.splitlines():
        if "PETSc Option Table entries" in line:
            in_table = True
        elif "End of Error Message" in line:
            in_table = False
        elif in_table or TRACEBACK_LINE.search(line) or "Option left:" in line or "option(s) set that were not used" in line:
            continue
        else:
            kept.append(line)
    return kept


def tail(log, n=40):
    """The last n lines of a log, without PETSc's long 'Configure options' line."""
    lines = [l for l in log.splitlines() if "Configure options" not in l]
    return "\n".join(lines[-n:])


# Groups of a checkpoint whose every dataset belongs to the state that a restart or another rank
# count must reproduce, when the run has them: /normalizer (log_z, log_z_se, ess per step) of a
# flow with observations (-problem filtering).
OPTIONAL_STATE_GROUPS = ("normalizer",)


def optional_state(f):
    """The datasets of the OPTIONAL_STATE_GROUPS present in the open checkpoint f, as
    '<group>/<name>' -> array."""
    data = {}
    for g in OPTIONAL_STATE_GROUPS:
        if g in f:
            for n in f[g]:
                if isinstance(f[g][n], h5py.Dataset):
                    data[g + "/" + n] = f[g][n][()]
    return data


def checkpoint_state(path):
    """The arrays of a checkpoint that a bit-for-bit restart must reproduce: the maps, the particles,
    the network being trained, the /history columns but seconds and, if present, the
    OPTIONAL_STATE_GROUPS (/normalizer)."""
    data = {}
    with h5py.File(path, "r") as f:
        for k in f["maps"]:
            data["maps/" + k] = f["maps"][k]["params"][()]
        for n in ("x", "x0", "logrho"):
            data["particles/" + n] = f["particles"][n][()]
        data["state/theta"] = f["state/theta"][()]
        data.update(optional_state(f))
        hist = f["history"][()]
        cols = attr_str(f["history"].attrs["columns"]).split(",")
    for j, c in enumerate(cols):
        if c != "seconds":
            data["history:" + c] = hist[:, j]
    return data


def compare_state(path, ref, tol=None):
    """Problems of the checkpoint at path vs the dict ref: bitwise (NaN == NaN) or to a relative tol."""
    if not os.path.exists(path):
        return ["%s missing" % path]
    got = checkpoint_state(path)
    if set(got) != set(ref):
        return ["arrays differ: %s" % sorted(set(got) ^ set(ref))]
    bad = []
    for n in sorted(ref):
        a, b = got[n], ref[n]
        if tol is None:
            same = a.shape == b.shape and a.dtype == b.dtype and bool(np.all((a.view(np.uint64) == b.view(np.uint64)) | (np.isnan(a) & np.isnan(b))))
        else:
            same = rel_diff(a, b) <= tol
        if not same:
            bad.append("%s (rel diff %.3g)" % (n, rel_diff(a, b)))
    return bad


# What the messages about a bad file say (bad_run_problems' expect items).
SHAPE = re.compile(r"shape|must be", re.IGNORECASE)
POSITIVE = re.compile(r"> ?0|positive", re.IGNORECASE)
NONFINITE = re.compile(r"non-?finite|not finite|\bnan\b|\binf", re.IGNORECASE)
MISSING = re.compile(r"no dataset|missing|not found|does not exist", re.IGNORECASE)
NO_FILE = re.compile(r"no such file|does not exist|cannot (open|read)|unable to open", re.IGNORECASE)


def pattern_of(item):
    """A regular expression as given, or a string to find literally, case-insensitive."""
    return item if isinstance(item, re.Pattern) else re.compile(re.escape(item), re.IGNORECASE)


def text_of(item):
    return item.pattern if isinstance(item, re.Pattern) else item


def bad_run_problems(code, log, timeout, path, file_before, out_dir, expect, what):
    """What is wrong with a run given a bad file `path` (what: "problem file", ...): it must stop
    (code not None) with a non-zero status, print a message line naming the file's base name and
    every item of expect (strings or patterns), create no out_dir and leave the file as it was
    (file_before: its snapshot()). Returns (problems, the message line or None)."""
    problems = []
    if code is None:
        problems.append("did not finish within %d s" % timeout)
    elif code == 0:
        problems.append("exit status 0: the bad file was accepted")
    wanted = [os.path.basename(path)] + list(expect)
    patterns = [pattern_of(item) for item in wanted]
    message = message_lines(log)
    line = next((l.strip() for l in message if all(p.search(l) for p in patterns)), None)
    if line is None:
        missing = [text_of(item) for item, p in zip(wanted, patterns) if not any(p.search(l) for l in message)]
        problems.append("no message line mentions all of %s%s" % ([text_of(i) for i in wanted],
                        " (%s in none)" % missing if missing else " (not all on one line)"))
    after = snapshot(out_dir)
    if after is not None:
        problems.append("-out_dir %s was created (holding %s)" % (out_dir, sorted(after)))
    if snapshot(path) != file_before:
        problems.append("the %s %s was %s" % (what, path, "created" if file_before is None else "changed"))
    return problems, line
