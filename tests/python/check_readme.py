#!/usr/bin/env python3
"""Run every command of the README (issue 14: none of them may rot).

Every ```sh block of README.md is run, in the order of the file, as one bash script (set -e) in a
scratch folder that looks like the repository root: build/ (the build tree under test), input/,
jobs/ and tests/ link to the sources, runs/ starts empty and HOME is the scratch folder. The
commands are run as written, with these changes only:
  - wgf runs (and parameter studies) get options that make them small (SHRINK: 20 iterations per
    step, 64 particles, widths 16,16) after their own, which PETSc lets override the protocol's;
    wgf-baseline gets -em_particles 500 -pf_particles 500;
  - ../shared/data/NAME.h5 (the paper's data sets, beside the repository) is linked when it
    exists, else replaced by a synthetic data set of the same name (jobs/posterior/synthetic.py);
  - python3 is the interpreter given (--python; one with numpy, h5py and matplotlib).
The block of the two set-up commands (bash jobs/local/run.sh and test.sh) is not run here: CI runs
both (.ci/run), which this script checks. A block fails on the first command with a non-zero
status; the test fails if any block does, or if the README has no blocks.

Usage: check_readme.py README BUILD_DIR [--python PY] [--timeout S]
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

# map 0 still needs a real identity pretraining: a poor one makes a posterior run diverge at once
SHRINK = "-jko_iters 20 -jko_pretrain_iters 1000 -jko_batch 64 -particles 64 -eval_samples 64 -icnn_widths 16,16"
CI_COMMANDS = ("bash jobs/local/run.sh", "bash jobs/local/test.sh")


def blocks(text):
    """The ```sh blocks: lists of commands, backslash continuations joined, comments dropped."""
    out = []
    for body in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        cmds, cur = [], ""
        for line in body.splitlines():
            cur += line.rstrip()
            if cur.endswith("\\"):
                cur = cur[:-1] + " "
                continue
            cmd = re.sub(r"\s+#\s.*$", "", cur).strip()  # a trailing comment
            if cmd and not cmd.startswith("#"):
                cmds.append(cmd)
            cur = ""
        out.append(cmds)
    return out


def adapt(cmd):
    """The command as run here (module docstring)."""
    words = shlex.split(cmd)
    if any(w == "build/bin/wgf" or w.endswith("param_study.py") for w in words):  # the study's options after -- go to wgf
        cmd += " " + SHRINK
    if any(w == "build/bin/wgf-baseline" for w in words):
        cmd += " -em_particles 500 -pf_particles 500"
    return cmd


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("readme")
    p.add_argument("build_dir")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args()
    root = os.path.dirname(os.path.abspath(args.readme))
    text = open(args.readme).read()
    failures = []

    def check(ok, what, detail=""):
        print("%s %s%s" % ("ok  " if ok else "FAIL", what, (": " + detail) if detail else ""))
        if not ok:
            failures.append(what)
        return ok

    bl = blocks(text)
    check(len(bl) > 0, "the README has ```sh blocks", "%d blocks" % len(bl))
    ci = open(os.path.join(root, ".ci", "run")).read()
    with tempfile.TemporaryDirectory(prefix="wgf_readme_") as tmp:
        work = os.path.join(tmp, "wgf")
        os.makedirs(os.path.join(work, "runs"))
        os.symlink(os.path.abspath(args.build_dir), os.path.join(work, "build"))
        for d in ("input", "jobs", "tests"):
            os.symlink(os.path.join(root, d), os.path.join(work, d))
        os.makedirs(os.path.join(tmp, "shared", "data"))
        for name in sorted(set(re.findall(r"\.\./shared/data/(\w+)\.h5", text))):
            real, dst = os.path.join(root, "..", "shared", "data", name + ".h5"), os.path.join(tmp, "shared", "data", name + ".h5")
            if os.path.exists(real):
                os.symlink(os.path.abspath(real), dst)
            else:
                subprocess.run([args.python, os.path.join(root, "jobs", "posterior", "synthetic.py"), dst, "--n", "300", "--d", "5", "--seed", "1"],
                               check=True, stdout=subprocess.DEVNULL)
        env = dict(os.environ, HOME=tmp, OPENBLAS_NUM_THREADS="1", OMPI_MCA_rmaps_base_oversubscribe="1",
                   PATH=os.path.dirname(os.path.abspath(args.python)) + os.pathsep + os.environ.get("PATH", ""))
        if os.geteuid() == 0:
            env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        for i, cmds in enumerate(bl):
            if cmds and all(c in CI_COMMANDS for c in cmds):
                for c in cmds:
                    check(c in ci, "block %d: `%s` is run by CI (.ci/run)" % (i + 1, c))
                continue
            script = "set -euo pipefail\n" + "\n".join(adapt(c) for c in cmds) + "\n"
            try:
                r = subprocess.run(["bash", "-c", script], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=args.timeout, text=True)
                code, log = r.returncode, r.stdout
            except subprocess.TimeoutExpired as e:
                code, log = None, (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            check(code == 0, "block %d (%d command(s), first: %s)" % (i + 1, len(cmds), cmds[0][:70] if cmds else ""),
                  "exit %s" % code + ("" if code == 0 else "\n" + "\n".join(log.splitlines()[-30:])))
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
