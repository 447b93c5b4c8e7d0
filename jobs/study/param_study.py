#!/usr/bin/env python3
"""Run one wgf protocol over a grid of options, one output folder per grid point, and collect
the histories into one CSV.

    param_study.py -o STUDY_DIR -g "-jko_h 0.05 0.1" -g "-icnn_widths 16,16 32,32" -g "-ou_dim 1 2" \\
                   [--dry-run] -- <wgf options common to all runs>

  -o DIR          the study folder; run folders DIR/<name>, the CSV DIR/history.csv
  -g "OPT V1 V2"  a grid axis: the option (leading dash optional) and its values, separated by
                  blanks (values may hold commas, as -icnn_widths 16,16, but no blanks; a flag
                  takes true/false); repeat -g for more axes: the grid is their product
  --dry-run       print the runs and their commands, run nothing
  -- ...          options for every run (e.g. -options_file input/ou_paper.opts -jko_steps 10);
                  the grid's options come after them, so they win over the same options here

Each grid point is one run, in the folder DIR/<opt>=<value>__<opt>=<value>... (e.g.
jko_h=0.05__icnn_widths=16,16__ou_dim=1; characters other than letters, digits and ._,+=- become
_), which holds the checkpoints, the log wgf.log (appended) and study.json (the grid values, read
by collect_history.py; the CSV lists the runs in grid order, a later collect_history.py STUDY_DIR
in folder-name order). Runs go one after the other with `mpirun -n $WGF_NP` (default 1; launcher
$WGF_MPIRUN, default mpirun, plus $WGF_MPIRUN_ARGS; solver $WGF_EXE, default build/bin/wgf of
this repository). A run that fails is reported (its last log lines) and the study goes on.
Running the same command again skips the finished runs, continues the interrupted ones with
-restart, and retries the failed ones (jobs/study/wgf_status.py decides). A run counts as
finished when its newest checkpoint is after -jko_steps steps.

SIGUSR1 or SIGTERM to this script (e.g. sbatch --signal=B:USR1@300 when it is the job) is
forwarded to the running mpirun as SIGUSR1: wgf checkpoints and stops, no further run starts, the
CSV is written with what exists, and the exit status is 3; run the command again to continue.

Exit status: 0 every run finished; 1 some run failed; 3 interrupted; 2 bad usage.
"""

import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import wgf_status  # noqa: E402
import collect_history  # noqa: E402

_stop = {"signal": None, "proc": None}


def _on_signal(sig, frame):
    name = signal.Signals(sig).name
    _stop["signal"] = _stop["signal"] or name
    proc = _stop["proc"]
    print("param_study: received %s: %s" % (name, "forwarding SIGUSR1 to mpirun (pid %d); no further run will start" % proc.pid
                                             if proc else "no further run will start"), flush=True)
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGUSR1)


def usage(msg):
    print("param_study: " + msg + "\n\n" + __doc__, file=sys.stderr)
    sys.exit(2)


def parse(argv):
    study, axes, dry, common = None, [], False, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            common = argv[i + 1:]
            break
        if a in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        if a == "--dry-run":
            dry = True
            i += 1
            continue
        if a in ("-o", "-g"):
            if i + 1 >= len(argv):
                usage("%s needs a value" % a)
            v = argv[i + 1]
            if a == "-o":
                study = v
            else:
                words = v.split()
                if len(words) < 2:
                    usage('-g "%s": give the option and at least one value, e.g. -g "-jko_h 0.05 0.1"' % v)
                name = words[0].lstrip("-")
                if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                    usage('-g "%s": %s is not an option name' % (v, words[0]))
                if name in (n for n, _ in axes) or name in ("out_dir", "restart"):
                    usage("-g: option -%s given twice, or not one the study may vary" % name)
                axes.append((name, words[1:]))
            i += 2
            continue
        usage("unknown argument %s (the common wgf options go after --)" % a)
    if not study:
        usage("-o STUDY_DIR is required")
    if any(w in ("-out_dir", "-restart") for w in common):
        usage("-out_dir and -restart are the study's to set; leave them out of the common options")
    return os.path.abspath(study), axes, dry, common


def run_name(point):
    if not point:
        return "base"
    return "__".join("%s=%s" % (n, re.sub(r"[^A-Za-z0-9._,+=-]", "_", v)) for n, v in point)


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def environment():
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Open MPI refuses root without consent
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def main(argv):
    study, axes, dry, common = parse(argv)
    np_ = os.environ.get("WGF_NP", "1")
    build = os.environ.get("WGF_BUILD_DIR", os.path.join(ROOT, "build"))
    exe = os.environ.get("WGF_EXE", os.path.join(build, "bin", "wgf"))
    launcher = shlex.split(os.environ.get("WGF_MPIRUN", "mpirun")) + ["-n", np_] + shlex.split(os.environ.get("WGF_MPIRUN_ARGS", ""))
    points = [list(zip([n for n, _ in axes], vals)) for vals in itertools.product(*[v for _, v in axes])]
    names = [run_name(p) for p in points]
    if len(set(names)) != len(names):
        usage("two grid points give the same folder name (values that differ only in characters replaced by _)")
    if not dry and not os.access(exe, os.X_OK):
        usage("no solver at %s (build it, or set WGF_EXE)" % exe)
    if not dry:
        os.makedirs(study, exist_ok=True)
    signal.signal(signal.SIGUSR1, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    env = environment()
    print("param_study: %d run(s) in %s, %s rank(s) each; common options: %s" % (len(points), study, np_, " ".join(common) or "(none)"), flush=True)
    results = []
    for k, (point, name) in enumerate(zip(points, names), 1):
        rundir = os.path.join(study, name)
        grid_opts = [w for n, v in point for w in ("-" + n, v)]
        st = wgf_status.status(rundir)
        tag = "[%d/%d] %s" % (k, len(points), name)
        if st["state"] == "finished":
            print("param_study: %s: finished already (%s), skipped" % (tag, wgf_status.describe(st)), flush=True)
            results.append((name, "skipped (finished)"))
            continue
        if _stop["signal"]:
            results.append((name, "not started (interrupted)"))
            continue
        restart = ["-restart", rundir] if st["state"] == "partial" else []
        cmd = launcher + [exe] + common + grid_opts + ["-out_dir", rundir] + restart
        print("param_study: %s: %s\n  %s" % (tag, "continuing from %s" % st["ckpt"] if restart else "starting", " ".join(shlex.quote(c) for c in cmd)), flush=True)
        if dry:
            results.append((name, "dry run"))
            continue
        os.makedirs(rundir, exist_ok=True)
        meta = {"params": {n: v for n, v in point}, "common": common, "grid_options": grid_opts}
        sj = os.path.join(rundir, collect_history.STUDY_FILE)
        if os.path.isfile(sj):
            with open(sj) as f:
                old = json.load(f)
            if old.get("common") != common:
                print("param_study: %s: WARNING: the common options differ from those of its first start (%s)" % (tag, " ".join(old.get("common", []))), flush=True)
        with open(sj, "w") as f:
            json.dump(meta, f, indent=1)
        if not restart:
            moved = wgf_status.stash_leftovers(rundir)
            if moved:
                print("param_study: %s: moved leftover incomplete checkpoint files to %s" % (tag, moved), flush=True)
        log = os.path.join(rundir, "wgf.log")
        t0 = time.time()
        with open(log, "a") as f:
            f.write("\n==== param_study %s: %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), " ".join(shlex.quote(c) for c in cmd)))
            f.flush()
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
            _stop["proc"] = proc
            if _stop["signal"]:  # arrived while starting
                proc.send_signal(signal.SIGUSR1)
            rc = proc.wait()
            _stop["proc"] = None
        st = wgf_status.status(rundir)
        took = "%.1f s" % (time.time() - t0)
        if st["state"] == "finished":
            verdict = "finished"
        elif _stop["signal"]:
            verdict = "interrupted (%s); run the study again to continue" % wgf_status.describe(st)
        else:
            verdict = "FAILED (exit status %s; %s)" % (rc, wgf_status.describe(st))
        print("param_study: %s: %s in %s (log %s)" % (tag, verdict, took, log), flush=True)
        if verdict.startswith("FAILED"):
            print("  last lines of the log:\n" + "".join("  | " + ln + "\n" for ln in tail(log).splitlines()), flush=True)
        results.append((name, verdict))
    if dry:
        return 0
    csv_path = os.path.join(study, "history.csv")
    tmp = csv_path + ".tmp"
    with open(tmp, "w", newline="") as f:
        nrows, missing = collect_history.collect([os.path.join(study, n) for n in names if os.path.isdir(os.path.join(study, n))], f)
    os.replace(tmp, csv_path)
    print("param_study: %d history rows of %d run(s) in %s" % (nrows, len(names) - len(missing), csv_path))
    failed = [n for n, v in results if v.startswith("FAILED")]
    print("param_study: summary: %d run(s): %d finished or skipped, %d failed%s" % (
        len(results), sum(1 for _, v in results if v in ("finished", "skipped (finished)")), len(failed),
        ", interrupted by " + _stop["signal"] if _stop["signal"] else ""))
    for n in failed:
        print("  failed: %s" % n)
    if _stop["signal"]:
        return 3
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
