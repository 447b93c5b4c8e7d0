#!/usr/bin/env python3
"""Command line and process handling shared by check_eval.py and check_eval_errors.py."""

import argparse
import shlex
import subprocess

TIMEOUT_SECONDS = 120


def parse_args(doc):
    """Arguments common to the wgf-eval checks: WGF_EVAL_PATH [--mpiexec CMD] [--seed N]."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wgf_eval", help="path of the wgf-eval executable")
    parser.add_argument("--mpiexec", default="",
                        help='launcher prefix, e.g. "mpiexec -n 2 --oversubscribe" (default: run directly)')
    parser.add_argument("--seed", type=int, default=0, help="seed of the random networks and points")
    return parser.parse_args()


def run_eval(args, options):
    """Run [mpiexec ...] wgf-eval OPTIONS. Returns (exit code, stdout + stderr);
    a run that does not finish within TIMEOUT_SECONDS counts as exit code None."""
    cmd = shlex.split(args.mpiexec) + [args.wgf_eval] + [str(o) for o in options]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as e:
        out = e.output.decode(errors="replace") if e.output else ""
        return None, out + "\n[timed out after %d s: %s]" % (TIMEOUT_SECONDS, " ".join(cmd))
    return proc.returncode, proc.stdout.decode(errors="replace")
