#!/usr/bin/env python3
"""Collect the /history of wgf runs into one CSV: one row per (run, step).

    collect_history.py STUDY_DIR [-o history.csv]
    collect_history.py RUN_DIR... [-o FILE] [--params jko_h,icnn_widths]

A path is a run folder (an -out_dir: it holds ckpt_* files or a study.json) or a folder of run
folders (a study, as jobs/study/param_study.py makes). From each run the newest complete
checkpoint is read (the same rule as wgf -restart: jobs/study/wgf_status.py), and every row of its
/history becomes a CSV row.

Columns: run (the folder's name), then the parameters, then the history columns in the order of
the /history attribute "columns" (step, t, loss, ..., seconds). The parameters are those of each
run's study.json (written by param_study.py: the grid options and their values); --params NAME,...
adds (or takes instead) options read from the checkpoint's /config "options" attribute, i.e. the
options in effect. A run without a complete checkpoint is reported on stderr and gives no rows;
a run that is not finished gives the rows it has (and is reported). Values: floats in full
precision (repr), nan where the history has none (e.g. metrics skipped by -eval_every); step as an
integer. Output: -o FILE, or stdout.
"""

import argparse
import csv
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wgf_status  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

STUDY_FILE = "study.json"


def is_run(path):
    return os.path.isfile(os.path.join(path, STUDY_FILE)) or bool(wgf_status.checkpoint_names(path))


def run_folders(paths):
    """The run folders named by paths (runs themselves, or folders of runs), in order."""
    runs = []
    for p in paths:
        if not os.path.isdir(p):
            raise SystemExit("collect_history.py: %s is not a folder" % p)
        if is_run(p):
            runs.append(p)
        else:
            runs += [os.path.join(p, d) for d in sorted(os.listdir(p)) if os.path.isdir(os.path.join(p, d)) and is_run(os.path.join(p, d))]
    return runs


def option_value(options, name):
    """The value of -name in a PETSc options string ('' for a flag, None if absent); the last
    occurrence wins, as in PETSc."""
    words, value = options.split(), None
    for i, w in enumerate(words):
        if w == "-" + name:
            nxt = words[i + 1] if i + 1 < len(words) else None
            is_opt = nxt is not None and nxt.startswith("-") and len(nxt) > 1 and not (nxt[1].isdigit() or nxt[1] == ".")
            value = "" if nxt is None or is_opt else nxt
    return value


def read_run(path, extra_params):
    """(params dict, history array, column names, status dict) of one run folder; history None
    when it has no complete checkpoint."""
    params = {}
    sj = os.path.join(path, STUDY_FILE)
    if os.path.isfile(sj):
        with open(sj) as f:
            params.update(json.load(f).get("params", {}))
    st = wgf_status.status(path)
    if st["ckpt"] is None:
        return params, None, None, st
    with h5py.File(st["ckpt"], "r") as f:
        hist = np.asarray(f["history"][()], dtype=np.float64)
        cols = wgf_status._text(f["history"].attrs["columns"]).split(",")
        options = wgf_status._text(f["config"].attrs["options"]) if extra_params else ""
    for name in extra_params:
        v = option_value(options, name.lstrip("-"))
        params[name.lstrip("-")] = "" if v is None else v
    return params, hist, cols, st


def fmt(col, x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if col == "step" and x.is_integer():
        return str(int(x))
    return repr(x)


def collect(paths, out, extra_params=(), log=sys.stderr):
    """Writes the CSV to the file object out; returns (number of rows, runs without rows)."""
    runs = run_folders(paths)
    data, pnames, hcols, missing = [], [], [], []
    names = [os.path.basename(os.path.normpath(r)) for r in runs]
    if len(set(names)) < len(names):
        names = [os.path.normpath(r) for r in runs]
    for name, r in zip(names, runs):
        params, hist, cols, st = read_run(r, extra_params)
        for p in params:
            if p not in pnames:
                pnames.append(p)
        if hist is None:
            print("collect_history.py: %s: no complete checkpoint, no rows" % r, file=log)
            missing.append(r)
            continue
        if st["state"] != "finished":
            print("collect_history.py: %s: not finished (%s): its %d history rows so far" % (r, wgf_status.describe(st), len(hist)), file=log)
        for c in cols:
            if c not in hcols:
                hcols.append(c)
        data.append((name, params, hist, cols))
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["run"] + pnames + hcols)
    nrows = 0
    for name, params, hist, cols in data:
        idx = {c: i for i, c in enumerate(cols)}
        for row in hist:
            w.writerow([name] + [params.get(p, "") for p in pnames] + [fmt(c, row[idx[c]]) if c in idx else "" for c in hcols])
            nrows += 1
    return nrows, missing


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="study folders or run folders")
    p.add_argument("-o", "--output", help="the CSV file (default: stdout)")
    p.add_argument("--params", default="", help="comma-separated option names to read from each checkpoint's /config options")
    a = p.parse_args()
    extra = [s for s in a.params.split(",") if s]
    if a.output:
        tmp = a.output + ".tmp"
        with open(tmp, "w", newline="") as f:
            n, _ = collect(a.paths, f, extra)
        os.replace(tmp, a.output)
        print("collect_history.py: %d rows in %s" % (n, a.output), file=sys.stderr)
    else:
        collect(a.paths, sys.stdout, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
