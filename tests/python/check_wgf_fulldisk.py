#!/usr/bin/env python3
"""A full disk while checkpointing: wgf must stop with a clear error, leave no partial file and
keep the previous checkpoint as the newest, complete one.

The disk is a 300 KiB tmpfs mounted for the test (needs root, as CI runs); where mounting is not
allowed the test says so and counts as skipped.

Usage: check_wgf_fulldisk.py WGF [--mpiexec "mpiexec --oversubscribe -n"]
"""
import glob
import os
import subprocess
import sys
import tempfile

import h5py

from wgf_runner import parse_args, run_wgf


def main():
    args = parse_args(__doc__)
    top = tempfile.mkdtemp(prefix="wgf_fulldisk_")
    mnt = os.path.join(top, "small")
    os.mkdir(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", mnt],
                      capture_output=True).returncode != 0:
        print("skipped: cannot mount a small tmpfs here (not root?)")
        os.rmdir(mnt), os.rmdir(top)
        return 0
    failures = 0
    try:
        out = os.path.join(mnt, "run")
        code, text, _ = run_wgf(args, 2, out, extra=["-jko_steps", "8", "-particles", "2000"])
        files = sorted(os.listdir(out))
        complete = []
        for f in glob.glob(os.path.join(out, "ckpt_*.h5")):
            with h5py.File(f, "r") as h:
                complete.append(int(h.attrs["complete"]) == 1)
        checks = [
            ("non-zero exit, no hang", code not in (0, None)),
            ("message names the folder and the lack of space", "not enough space in " + out in text),
            ("at least one checkpoint written before the disk was full", len(complete) >= 1),
            ("every checkpoint under a final name is complete", all(complete)),
            ("no partial file left behind", not any(f.endswith(".partial") for f in files)),
        ]
        for what, ok in checks:
            print(("ok   " if ok else "FAIL ") + what)
            failures += not ok
        print("files left:", files)
    finally:
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)
        os.rmdir(top)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
