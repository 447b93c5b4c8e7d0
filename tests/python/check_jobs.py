#!/usr/bin/env python3
"""Checks of the job scripts on this machine, without a scheduler: jobs/slurm/wgf.sbatch and
jobs/pbs/wgf.pbs run with plain bash and mpirun, and jobs/study/param_study.py, all on the tiny
protocol (input/ou_tiny.opts).

  1. status helper: jobs/study/wgf_status.py skips a newer incomplete file, gives the same answer
     with h5dump as with h5py, and --stash moves leftovers aside;
  2. Slurm script: a run that finishes (checkpoints, exit 0); a run on 2 ranks stopped by SIGUSR1
     to the batch shell after its first checkpoint (a checkpoint is left, the script says it would
     requeue, exit 3, no process left); the same command again continues it with -restart and
     finishes, with the history rows from before the stop unchanged; once more on the finished run;
  3. PBS script: a run that finishes; a run stopped by SIGTERM to the batch shell (would resubmit),
     continued from the settings file it leaves (WGF_JOB_ENV only) to the end; a run stopped by
     its own walltime timer (WGF_WALLTIME);
  4. study: a 2 x 2 grid, interrupted by SIGUSR1 during the first run (exit 3), run again (the
     first run continues with -restart, the others start): 4 folders, a CSV with 4 x (steps + 1)
     rows and the columns run + grid options + history columns, every value equal to the HDF5
     histories and the grid values those of the checkpoints' /config; run again: all skipped, the
     same CSV; a grid with a failing value: the failure is reported, the other run finishes, exit 1;
  5. collect_history.py on its own on run folders, with --params read from /config.

    /usr/bin/python3 tests/python/check_jobs.py [WGF] [--np-max 2] [--keep]

WGF is the solver (default: $WGF_EXE, else build/bin/wgf); the checks run a private copy of it, so
that a rebuild meanwhile does not disturb them. The scripts start it with `mpirun` (Open MPI).
Takes about 35 s on 2 busy cores. Exit status 0 when every check passes. Needs numpy and h5py.
"""

import argparse
import csv
import glob
import io
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TINY = os.path.join(ROOT, "input", "ou_tiny.opts")
SBATCH = os.path.join(ROOT, "jobs", "slurm", "wgf.sbatch")
PBS = os.path.join(ROOT, "jobs", "pbs", "wgf.pbs")
STUDY = os.path.join(ROOT, "jobs", "study", "param_study.py")
COLLECT = os.path.join(ROOT, "jobs", "study", "collect_history.py")
STATUS = os.path.join(ROOT, "jobs", "study", "wgf_status.py")
TIMEOUT = 60

failures = []
TMP = None


def check(ok, what, detail=""):
    print("%s %s%s" % ("ok  " if ok else "FAIL", what, "" if ok or not detail else "\n     " + detail.replace("\n", "\n     ")), flush=True)
    if not ok:
        failures.append(what)
    return ok


def base_env(**kw):
    """The environment of a script: no WGF_* of the caller, one BLAS thread, Open MPI as root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WGF_", "SLURM_", "PBS_"))}
    env["OPENBLAS_NUM_THREADS"] = "1"
    if os.geteuid() == 0:
        env["OMPI_ALLOW_RUN_AS_ROOT"] = env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    env["WGF_PYTHON"] = sys.executable
    if os.environ.get("WGF_EXE"):
        env["WGF_EXE"] = os.environ["WGF_EXE"]
    env.update({k: str(v) for k, v in kw.items()})
    return env


def our_processes():
    """pids of processes whose command line names our temporary folder (stragglers of our runs)."""
    pids = []
    for d in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(d, "rb") as f:
                if TMP.encode() in f.read():
                    pids.append(int(d.split("/")[2]))
        except OSError:
            pass
    return [p for p in pids if p != os.getpid()]


def kill_stragglers():
    for p in our_processes():
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start(cmd, env):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)


def finish(proc, timeout=TIMEOUT):
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_stragglers()
        out, _ = proc.communicate()
        return None, out.decode(errors="replace") + "\n[timed out after %d s]" % timeout


def run(cmd, env, timeout=TIMEOUT):
    return finish(start(cmd, env), timeout)


def run_and_signal(cmd, env, sig, wait_for, timeout=TIMEOUT):
    """Start cmd, wait until the file wait_for exists, send sig to cmd's process (the batch shell
    or the study), wait for the end. Returns (exit status, output, whether the signal was sent)."""
    proc = start(cmd, env)
    t0, sent = time.time(), False
    while time.time() - t0 < timeout and proc.poll() is None:
        if os.path.exists(wait_for):
            proc.send_signal(sig)
            sent = True
            break
        time.sleep(0.05)
    rc, out = finish(proc, timeout)
    return rc, out, sent


def status(folder, *extra, env=None):
    r = subprocess.run([sys.executable, STATUS, folder] + list(extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    return r.returncode, r.stdout.decode().strip()


def history(path):
    with h5py.File(path, "r") as f:
        return np.asarray(f["history"][()]), f["history"].attrs["columns"].decode().split(",")


def newest(folder):
    code, line = status(folder)
    for w in line.split():
        if w.startswith("ckpt="):
            return w[5:]
    return None


def no_stragglers(what):
    time.sleep(0.2)
    left = our_processes()
    check(not left, what + ": no process left behind", "still running: %s" % left)
    kill_stragglers()


def show(out, n=25):
    return "\n".join(out.splitlines()[-n:])


def test_status():
    print("-- jobs/study/wgf_status.py", flush=True)
    d = os.path.join(TMP, "status")
    rc, out = run(["mpirun", "-n", "1", WGF, "-options_file", TINY, "-jko_steps", "2", "-out_dir", d], base_env())
    if not check(rc == 0, "a tiny run for the status checks", show(out)):
        return
    code, line = status(d)
    check(code == 0 and line.startswith("finished step=2 iter=0 steps=2"), "finished run: status 0, 'finished step=2'", line)
    code, line = status(d, "--steps", "3")
    check(code == 3 and line.startswith("partial step=2"), "--steps 3: partial (status 3)", line)
    # a newer file that is not complete: copied, and its complete attribute removed
    shutil.copy(os.path.join(d, "ckpt_0002.h5"), os.path.join(d, "ckpt_0002_000005.h5"))
    with h5py.File(os.path.join(d, "ckpt_0002_000005.h5"), "r+") as f:
        del f.attrs["complete"]
    with open(os.path.join(d, "ckpt_0003.h5"), "wb") as f:
        f.write(b"truncated")
    code, line = status(d)
    check(code == 0 and line.endswith("ckpt_0002.h5"), "newer incomplete and unreadable files are skipped", line)
    code2, line2 = status(d, env=dict(os.environ, WGF_STATUS_NO_H5PY="1"))
    check((code2, line2) == (code, line), "the h5dump fallback gives the same answer", "%s / %s" % (line, line2))
    e = os.path.join(TMP, "status_empty")
    os.makedirs(e)
    shutil.copy(os.path.join(d, "ckpt_0002_000005.h5"), os.path.join(e, "ckpt_0001.h5"))
    code, line = status(e)
    check(code == 4 and line == "empty", "only an incomplete file: empty (status 4)", line)
    code, line = status(e, "--stash")
    moved = glob.glob(os.path.join(e, "incomplete_*", "ckpt_0001.h5"))
    check(code == 0 and moved and not os.path.exists(os.path.join(e, "ckpt_0001.h5")), "--stash moves the leftover aside", line)
    code, line = status(os.path.join(TMP, "does_not_exist"))
    check(code == 4 and line == "empty", "missing folder: empty", line)


def test_batch(script, kind, np_max):
    name = os.path.basename(script)
    would = "would requeue" if kind == "slurm" else "would resubmit"
    print("-- %s (plain bash, no scheduler)" % name, flush=True)
    # 1. a run that finishes
    out_dir = os.path.join(TMP, kind + "_plain")
    rc, out = run(["bash", script], base_env(WGF_OUT=out_dir, WGF_NP=1, WGF_OPTS="-options_file %s -jko_steps 2" % TINY))
    ok = rc == 0 and "the run is finished" in out
    check(ok, "%s: a 2-step run finishes (exit 0)" % name, "exit %s\n%s" % (rc, show(out)))
    code, line = status(out_dir)
    check(code == 0 and os.path.isfile(os.path.join(out_dir, "ckpt_0001.h5")) and os.path.isfile(os.path.join(out_dir, "ckpt_0002.h5")),
          "%s: ckpt_0001.h5 and ckpt_0002.h5, finished" % name, line)
    no_stragglers(name + " plain run")

    # 2. stopped by a signal to the batch shell after the first checkpoint
    sig = signal.SIGUSR1 if kind == "slurm" else signal.SIGTERM
    nranks = min(2, np_max) if kind == "slurm" else 1
    out_dir = os.path.join(TMP, kind + "_stop")
    env = base_env(WGF_OUT=out_dir, WGF_NP=nranks, WGF_OPTS="-options_file %s -jko_steps 3 -jko_iters 6000" % TINY)
    rc, out, sent = run_and_signal(["bash", script], env, sig, os.path.join(out_dir, "ckpt_0001.h5"))
    check(sent, "%s: the first checkpoint appeared and %s was sent to the batch shell" % (name, sig.name), show(out))
    check(rc == 3 and ("received %s" % sig.name) in out and would in out,
          "%s (%d ranks): %s -> checkpoint and stop, '%s', exit 3" % (name, nranks, sig.name, would), "exit %s\n%s" % (rc, show(out)))
    code, line = status(out_dir)
    check(code == 3, "%s: the run is left partial (a checkpoint before the end)" % name, line)
    no_stragglers(name + " stopped run")
    before = newest(out_dir)
    hist_before = history(before)[0] if before else None

    # 3. run again: continues from the checkpoint and finishes
    if kind == "pbs":
        env_file = os.path.join(out_dir, "wgf_job.env")
        check(os.path.isfile(env_file), "wgf.pbs: it leaves the successor's settings in WGF_OUT/wgf_job.env")
        env = base_env(WGF_JOB_ENV=env_file)  # what the resubmitted job gets: nothing else
        again = "the successor (WGF_JOB_ENV only)"
    else:
        again = "the same command again"
    rc, out = run(["bash", script], env)
    ok = rc == 0 and "-restart %s" % out_dir in out and ("restarting from %s" % before) in out and "the run is finished" in out
    check(ok, "%s: %s continues with -restart from %s and finishes" % (name, again, os.path.basename(before or "?")), "exit %s\n%s" % (rc, show(out)))
    code, line = status(out_dir)
    check(code == 0 and line.startswith("finished step=3"), "%s: finished after 3 steps" % name, line)
    if before and code == 0:
        h, _ = history(os.path.join(out_dir, "ckpt_0003.h5"))
        k = hist_before.shape[0]
        check(h.shape[0] == 4 and np.array_equal(h[:k], hist_before, equal_nan=True),
              "%s: the final /history has 4 rows and keeps the %d row(s) from before the stop" % (name, k))
    if kind == "pbs":
        check("resubmission 1" in out, "wgf.pbs: the successor counts itself as resubmission 1", show(out, 8))
    no_stragglers(name + " continued run")

    if kind == "slurm":  # once more: nothing to do, still finished
        rc, out = run(["bash", script], env)
        check(rc == 0 and "the run is finished" in out, "%s: on a finished run: exit 0, still finished" % name, show(out))
    else:  # the walltime timer
        out_dir = os.path.join(TMP, kind + "_timer")
        env = base_env(WGF_OUT=out_dir, WGF_NP=1, WGF_WALLTIME="0:08", WGF_STOP_BEFORE=3,
                       WGF_OPTS="-options_file %s -jko_steps 3 -jko_iters 60000" % TINY)
        rc, out = run(["bash", script], env)
        code, line = status(out_dir)
        check(rc == 3 and "received SIGUSR1" in out and would in out and code == 3,
              "%s: WGF_WALLTIME=0:08 WGF_STOP_BEFORE=3: the timer stops the run with a checkpoint, '%s'" % (name, would),
              "exit %s, %s\n%s" % (rc, line, show(out)))
        no_stragglers(name + " timer run")


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_study():
    print("-- jobs/study/param_study.py", flush=True)
    sdir = os.path.join(TMP, "study")
    grid = ["-g", "-jko_h 0.05 0.1", "-g", "-icnn_widths 9,7 5"]
    common = ["--", "-options_file", TINY, "-jko_steps", "2", "-jko_iters", "3000"]
    cmd = [sys.executable, STUDY, "-o", sdir] + grid + common
    first = os.path.join(sdir, "jko_h=0.05__icnn_widths=9,7")
    rc, out, sent = run_and_signal(cmd, base_env(WGF_NP=1), signal.SIGUSR1, os.path.join(first, "ckpt_0001.h5"))
    check(sent and rc == 3 and "interrupted" in out, "study: SIGUSR1 during the first run: it stops, exit 3", "exit %s\n%s" % (rc, show(out)))
    no_stragglers("interrupted study")
    code, line = status(first)
    partial = code == 3
    print("     first run after the stop: %s" % line)
    rc, out = run(cmd, base_env(WGF_NP=1))
    check(rc == 0 and "4 finished or skipped, 0 failed" in out, "study run again: exit 0, every run finished", "exit %s\n%s" % (rc, show(out)))
    if partial:
        log = open(os.path.join(first, "wgf.log")).read()
        check("continuing from" in out and "restarting from" in log, "study: the interrupted run continues with -restart", show(out))
    runs = sorted(d for d in os.listdir(sdir) if os.path.isdir(os.path.join(sdir, d)))
    expect = sorted("jko_h=%s__icnn_widths=%s" % (h, w) for h in ("0.05", "0.1") for w in ("9,7", "5"))
    check(runs == expect, "study: 4 run folders named after the grid points", str(runs))
    csv_path = os.path.join(sdir, "history.csv")
    if not check(os.path.isfile(csv_path), "study: history.csv written"):
        return
    header, rows = read_csv(csv_path)
    _, cols = history(os.path.join(sdir, expect[0], "ckpt_0002.h5"))
    check(header == ["run", "jko_h", "icnn_widths"] + cols, "CSV columns: run, jko_h, icnn_widths + the /history columns", str(header))
    check(len(rows) == 12, "CSV: 12 rows (4 runs x 3 history rows)", "%d rows" % len(rows))
    bad = []
    for run_name in expect:
        ck = os.path.join(sdir, run_name, "ckpt_0002.h5")
        h, hc = history(ck)
        with h5py.File(ck, "r") as f:
            h_cfg = float(f["config"].attrs["jko_h"])
            widths = [int(x) for x in f["icnn"].attrs["widths"]]
        mine = [r for r in rows if r[0] == run_name]
        if len(mine) != h.shape[0]:
            bad.append("%s: %d rows, history %d" % (run_name, len(mine), h.shape[0]))
            continue
        for r, hr in zip(mine, h):
            if float(r[1]) != h_cfg or [int(x) for x in r[2].split(",")] != widths:
                bad.append("%s: grid values %s,%s vs /config jko_h %r, /icnn widths %s" % (run_name, r[1], r[2], h_cfg, widths))
            for j, c in enumerate(hc):
                if not same(float(r[3 + j]), float(hr[j])):
                    bad.append("%s step %s column %s: CSV %s, HDF5 %r" % (run_name, r[3], c, r[3 + j], hr[j]))
    check(not bad, "CSV values equal the HDF5 histories (bit for bit) and the grid values the checkpoints' settings", "\n".join(bad[:10]))
    with open(csv_path) as f:
        csv_before = f.read()
    rc, out = run(cmd, base_env(WGF_NP=1))
    with open(csv_path) as f:
        csv_after = f.read()
    check(rc == 0 and out.count("), skipped") == 4 and csv_after == csv_before, "study run a third time: 4 runs skipped, the same CSV", show(out))
    # standalone collection, one run folder
    r = subprocess.run([sys.executable, COLLECT, first], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = r.stdout.decode().splitlines()
    check(r.returncode == 0 and len(lines) == 4 and lines[0].startswith("run,jko_h,icnn_widths,step,"), "collect_history.py on one run folder: header + 3 rows", r.stdout.decode() + r.stderr.decode())

    # a failing grid value
    fdir = os.path.join(TMP, "study_fail")
    rc, out = run([sys.executable, STUDY, "-o", fdir, "-g", "-jko_h -1 0.05", "--", "-options_file", TINY, "-jko_steps", "1"], base_env())
    header, rows = read_csv(os.path.join(fdir, "history.csv")) if os.path.isfile(os.path.join(fdir, "history.csv")) else ([], [])
    check(rc == 1 and "jko_h=-1: FAILED" in out and "jko_h=0.05: finished" in out and len(rows) == 2 and all(r[0] == "jko_h=0.05" for r in rows),
          "study with -jko_h -1: that run reported FAILED, the other finishes, the CSV holds its 2 rows, exit 1", "exit %s\n%s" % (rc, show(out)))


def test_collect():
    print("-- jobs/study/collect_history.py on its own", flush=True)
    dirs = [os.path.join(TMP, "slurm_plain"), os.path.join(TMP, "pbs_plain")]
    r = subprocess.run([sys.executable, COLLECT] + dirs + ["--params", "jko_steps,icnn_widths,ou_dim"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    header, rows = read_csv_text(r.stdout.decode())
    ok = r.returncode == 0 and header[:4] == ["run", "jko_steps", "icnn_widths", "ou_dim"] and len(rows) == 6
    ok = ok and all(row[1:4] == ["2", "9,7", "2"] for row in rows) and [row[0] for row in rows] == ["slurm_plain"] * 3 + ["pbs_plain"] * 3
    check(ok, "collect_history.py RUN RUN --params: 6 rows, option values from /config", r.stdout.decode()[:600] + r.stderr.decode())


def read_csv_text(text):
    rows = list(csv.reader(io.StringIO(text)))
    return (rows[0], rows[1:]) if rows else ([], [])


def main():
    global TMP, WGF
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wgf", nargs="?", help="the wgf executable (default: $WGF_EXE, else build/bin/wgf)")
    p.add_argument("--np-max", type=int, default=2, help="most ranks of a run (default 2)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = p.parse_args()
    src = a.wgf or os.environ.get("WGF_EXE", os.path.join(ROOT, "build", "bin", "wgf"))
    TMP = tempfile.mkdtemp(prefix="wgf_check_jobs_")
    # A private copy of the solver, so that a rebuild during the checks does not pull it away
    # (the scripts take it through WGF_EXE); copied again if the first copy does not start.
    WGF = os.path.join(TMP, "wgf")
    for attempt in range(3):
        ok = False
        if os.access(src, os.X_OK):
            shutil.copy2(src, WGF)
            r = subprocess.run([WGF, "-help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=base_env(), timeout=TIMEOUT)
            ok = r.returncode == 0
        if ok:
            break
        time.sleep(5)
    if not ok:
        print("FAIL no working solver at %s: build first (cmake --build build)" % src)
        shutil.rmtree(TMP, ignore_errors=True)
        return 1
    os.environ["WGF_EXE"] = WGF  # base_env passes it on to every script
    t0 = time.time()
    try:
        test_status()
        test_batch(SBATCH, "slurm", a.np_max)
        test_batch(PBS, "pbs", a.np_max)
        test_study()
        test_collect()
    finally:
        kill_stragglers()
        if a.keep or failures:
            print("files kept in %s" % TMP)
        else:
            shutil.rmtree(TMP, ignore_errors=True)
    print("%s: %d failure(s) in %.0f s" % ("FAILED" if failures else "PASSED", len(failures), time.time() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
