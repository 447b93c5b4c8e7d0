#!/usr/bin/env python3
"""Is a wgf run finished? The one place where the job scripts (jobs/slurm/wgf.sbatch,
jobs/pbs/wgf.pbs) and the parameter study (jobs/study/param_study.py) decide it.

    wgf_status.py DIR [--steps N]      prints one line, e.g.
        finished step=20 iter=0 steps=20 ckpt=DIR/ckpt_0020.h5
        partial step=7 iter=130 steps=20 ckpt=DIR/ckpt_0007_000130.h5
        empty
    exit status: 0 finished, 3 partial (continue with -restart DIR), 4 empty (no complete
    checkpoint: start afresh), 1 error, 2 usage.
    wgf_status.py DIR --stash          when DIR holds no complete checkpoint, moves its leftover
                                       ckpt_* files (writes that never completed) into
                                       DIR/incomplete_<date>/, so that a fresh wgf accepts DIR.

The rules are those of wgf's own -restart (src/checkpoint.c): the checkpoints of DIR are the
files named ckpt_<kkkk>.h5 (after step k) and ckpt_<kkkk>_<iiiiii>.h5 (i iterations into step
k + 1), newest first by (k, i); a file counts only if it is HDF5 with the root attributes
format = "wgf-checkpoint", format_version = 1 and complete = 1 (written last). The run is
finished when the newest complete checkpoint is after a whole step (iter = 0) and its step is at
least the steps asked for: --steps, or else -jko_steps of that checkpoint's run (/config
jko_steps).

Reads the attributes with h5py, or with the h5dump tool when h5py is missing.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

FORMAT = "wgf-checkpoint"
FORMAT_VERSION = 1
NAME = re.compile(r"^ckpt_(\d{4})(?:_(\d{6}))?\.h5$")
EXIT = {"finished": 0, "partial": 3, "empty": 4}

try:
    import h5py
except ImportError:  # pragma: no cover - the fallback is exercised by check_jobs.py
    h5py = None
if os.environ.get("WGF_STATUS_NO_H5PY"):  # to test the h5dump path
    h5py = None


def _text(v):
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if hasattr(v, "dtype") and v.dtype.kind == "S":
        return v.tobytes().decode(errors="replace")
    return str(v)


def _attrs_h5py(path):
    """{name: str} of the root attributes we need plus /config jko_steps; None if unreadable."""
    try:
        with h5py.File(path, "r") as f:
            a = {k: _text(f.attrs[k]) for k in ("format", "format_version", "complete", "step", "iter") if k in f.attrs}
            if "config" in f and "jko_steps" in f["config"].attrs:
                a["jko_steps"] = _text(f["config"].attrs["jko_steps"])
            return a
    except (OSError, KeyError, ValueError):
        return None


def _attrs_h5dump(path):
    """The same through `h5dump -a`: one call per attribute, as h5dump stops at a missing one."""
    a = {}
    for name, obj in (("format", "/format"), ("format_version", "/format_version"), ("complete", "/complete"),
                      ("step", "/step"), ("iter", "/iter"), ("jko_steps", "/config/jko_steps")):
        try:
            out = subprocess.run(["h5dump", "-a", obj, path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 timeout=60).stdout.decode(errors="replace")
        except (OSError, subprocess.TimeoutExpired):
            return None
        m = re.search(r"\(0\):\s*(\"([^\"]*)\"|\S+)", out)
        if m:
            a[name] = m.group(2) if m.group(2) is not None else m.group(1)
    return a


def check(path):
    """(ok, why, attrs) for one file, as wgf's checkpoint_check."""
    attrs = (_attrs_h5py if h5py is not None else _attrs_h5dump)(path)
    if attrs is None:
        return False, "not a readable HDF5 file (truncated or corrupted?)", {}
    if attrs.get("format") != FORMAT:
        return False, "not a wgf checkpoint (root attribute format is %r)" % attrs.get("format", ""), attrs
    if attrs.get("format_version") != str(FORMAT_VERSION):
        return False, "format_version %s is not %d" % (attrs.get("format_version"), FORMAT_VERSION), attrs
    if attrs.get("complete") != "1":
        return False, "incomplete (no root attribute complete = 1)", attrs
    try:
        if int(attrs["step"]) < 0 or int(attrs.get("iter", "0")) < 0:
            raise ValueError
    except (KeyError, ValueError):
        return False, "root attributes step/iter are not valid", attrs
    return True, "", attrs


def checkpoint_names(folder):
    """[(step, iter, name)] of the checkpoint file names in folder, newest first."""
    out = []
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return out
    for name in names:
        m = NAME.match(name)
        if m:
            out.append((int(m.group(1)), int(m.group(2) or 0), name))
    return sorted(out, reverse=True)


def status(folder, steps=None):
    """The state of the run in folder: a dict with state ('finished', 'partial' or 'empty'),
    step, iter, steps (asked for), ckpt (the newest complete checkpoint, or None) and skipped
    ([(path, why)]: newer files that are not complete checkpoints)."""
    st = {"state": "empty", "step": None, "iter": None, "steps": steps, "ckpt": None, "skipped": []}
    for k, i, name in checkpoint_names(folder):
        path = os.path.join(folder, name)
        ok, why, attrs = check(path)
        if not ok:
            st["skipped"].append((path, why))
            continue
        asked = steps
        if asked is None:
            try:
                asked = int(attrs["jko_steps"])
            except (KeyError, ValueError):
                asked = None
        st.update(step=int(attrs["step"]), iter=int(attrs.get("iter", "0")), steps=asked, ckpt=path)
        done = st["iter"] == 0 and asked is not None and st["step"] >= asked
        st["state"] = "finished" if done else "partial"
        break
    return st


def describe(st):
    if st["state"] == "empty":
        return "empty"
    return "%s step=%d iter=%d steps=%s ckpt=%s" % (st["state"], st["step"], st["iter"], st["steps"], st["ckpt"])


def stash_leftovers(folder):
    """When folder holds no complete checkpoint, move its ckpt_* files aside (never delete them);
    returns the new folder, or None when there was nothing to move."""
    if status(folder)["state"] != "empty" or not os.path.isdir(folder):
        return None
    left = sorted(n for n in os.listdir(folder) if n.startswith("ckpt_") and os.path.isfile(os.path.join(folder, n)))
    if not left:
        return None
    dest = os.path.join(folder, "incomplete_" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(dest, exist_ok=True)
    for n in left:
        shutil.move(os.path.join(folder, n), os.path.join(dest, n))
    return dest


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", help="the output folder of a wgf run (-out_dir)")
    p.add_argument("--steps", type=int, help="steps asked for (default: -jko_steps of the newest checkpoint's run)")
    p.add_argument("--stash", action="store_true", help="move leftover ckpt_* files aside when there is no complete checkpoint")
    p.add_argument("-v", "--verbose", action="store_true", help="also list the files that were skipped")
    a = p.parse_args()
    if a.stash:
        dest = stash_leftovers(a.dir)
        if dest:
            print("moved the leftover ckpt_* files of %s (no complete checkpoint among them) to %s" % (a.dir, dest))
        return 0
    st = status(a.dir, a.steps)
    print(describe(st))
    if a.verbose:
        for path, why in st["skipped"]:
            print("skipped %s: %s" % (path, why), file=sys.stderr)
    return EXIT[st["state"]]


if __name__ == "__main__":
    sys.exit(main())
