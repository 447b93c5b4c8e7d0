#!/usr/bin/env python3
"""The installed library, end to end: `cmake --install` of a build tree into a new temporary prefix,
then, against that prefix only:

- the tools of the build's bin/ are all there, and they and libwgf carry no run path into the
  build tree (the installed tools find libwgf through $ORIGIN);
- every installed header compiles with the flags of `pkg-config --cflags wgf`;
- the installed wgf makes a tiny run (the installed share/wgf/input/ou_tiny.opts);
- the README's example (tests/install/example.c) is built twice, with `pkg-config --cflags --libs
  wgf` and with find_package(wgf) (tests/install/CMakeLists.txt), and run on the run's last
  checkpoint (on 1 and 2 ranks);
- its log densities equal those of the installed `wgf-eval -logdensity` at the points it printed.

    check_install.py --build BUILD --example-dir tests/install [--cmake cmake] [--cc cc]
        [--pkg-config pkg-config] [--libdir lib] [--generator G] [--version V] [--mpiexec PREFIX] [--keep]

The temporary prefix is removed after a success and kept (its path printed) after a failure.
Exit status 0 if every check passed.
"""

import argparse
import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

import wgf_runner as wr

TIMEOUT = 180
REL_TOL = 1e-12


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", required=True, help="the build tree to install")
    p.add_argument("--example-dir", required=True, help="tests/install: example.c and its CMakeLists.txt")
    p.add_argument("--cmake", default="cmake")
    p.add_argument("--cc", default="cc")
    p.add_argument("--pkg-config", default="pkg-config")
    p.add_argument("--libdir", default="lib", help="CMAKE_INSTALL_LIBDIR of the build (default: %(default)s)")
    p.add_argument("--generator", default=None, help="CMake generator of the example's build")
    p.add_argument("--version", default=None, help="the version wgf.pc must give")
    p.add_argument("--mpiexec", default="mpiexec --oversubscribe -n",
                   help='launcher prefix followed by the rank count (default: "%(default)s")')
    p.add_argument("--keep", action="store_true", help="keep the temporary prefix")
    args = p.parse_args()

    check = wr.Checks()
    tmp = tempfile.mkdtemp(prefix="wgf-install-")
    try:
        run_checks(args, check, tmp)
    finally:
        if check.failures or args.keep:
            print("the temporary tree is kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s)" % check.failures)
    return 1 if check.failures else 0


def sh(cmd, env=None, cwd=None):
    """Run cmd (no MPI); (exit code or None on timeout, stdout + stderr)."""
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                           timeout=TIMEOUT)
        return r.returncode, r.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return None, "[timed out after %d s: %s]" % (TIMEOUT, " ".join(cmd))
    except OSError as e:
        return None, str(e)


def ran(check, what, code, out):
    return check(code == 0, what, "" if code == 0 else "exit %s\n%s" % (code, wr.tail(out)))


def runpath(path):
    """The DT_RUNPATH/DT_RPATH entries of an ELF file (readelf -d), or None without readelf."""
    if not shutil.which("readelf"):
        return None
    code, out = sh(["readelf", "-d", path])
    entries = []
    for line in out.splitlines():
        if "(RUNPATH)" in line or "(RPATH)" in line:
            entries += line.split("[", 1)[1].rsplit("]", 1)[0].split(":")
    return [e for e in entries if e]


def parse_example(out):
    """The example's lines 'x_1 ... x_D logrho' as (points [N][D], logrho [N]); None if malformed."""
    rows = []
    for line in out.splitlines():
        words = line.split()
        try:
            rows.append([float(w) for w in words])
        except ValueError:
            continue
    if len(rows) != 5 or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        return None
    a = np.array(rows)
    return a[:, :-1], a[:, -1]


def run_checks(args, check, tmp):
    prefix = os.path.join(tmp, "prefix")
    build = os.path.realpath(args.build)
    libdir = os.path.join(prefix, args.libdir)

    # 1. cmake --install into the new prefix
    code, out = sh([args.cmake, "--install", build, "--prefix", prefix])
    if not ran(check, "cmake --install %s --prefix %s" % (build, prefix), code, out):
        return

    # 2. what it installed
    tools = sorted(os.path.basename(t) for t in glob.glob(os.path.join(build, "bin", "*")))
    missing = [t for t in tools if not os.access(os.path.join(prefix, "bin", t), os.X_OK)]
    check(bool(tools) and not missing, "every tool of %s/bin installed (%s)" % (build, " ".join(tools)),
          "missing: %s" % " ".join(missing) if missing else "")
    libs = glob.glob(os.path.join(libdir, "libwgf.so*")) + glob.glob(os.path.join(libdir, "libwgf.a"))
    check(bool(libs), "libwgf in %s" % libdir, "" if libs else "none there")
    for f in ("pkgconfig/wgf.pc", "cmake/wgf/wgfConfig.cmake", "cmake/wgf/wgfConfigVersion.cmake",
              "cmake/wgf/wgfTargets.cmake"):
        check(os.path.isfile(os.path.join(libdir, f)), "%s installed" % f)
    opts = os.path.join(prefix, "share", "wgf", "input", "ou_tiny.opts")
    check(os.path.isfile(opts), "share/wgf/input/ou_tiny.opts installed")
    for f in [os.path.join(prefix, "bin", "wgf")] + [l for l in libs if ".so" in l and not os.path.islink(l)]:
        rp = runpath(f)
        if rp is None:
            print("(no readelf: run paths of %s not checked)" % f)
            continue
        into_build = [e for e in rp if os.path.isabs(e) and (os.path.realpath(e) + os.sep).startswith(build + os.sep)]
        ok = not into_build and (not f.endswith("/wgf") or any(e.startswith("$ORIGIN") for e in rp))
        check(ok, "run path of %s: %s" % (os.path.relpath(f, prefix), ":".join(rp)),
              "" if ok else "into the build tree: %s" % into_build if into_build else "no $ORIGIN")

    # 3. pkg-config, and every installed header with its flags
    env = dict(wr.environment())
    env["PKG_CONFIG_PATH"] = os.pathsep.join([os.path.join(libdir, "pkgconfig")] +
                                             ([env["PKG_CONFIG_PATH"]] if env.get("PKG_CONFIG_PATH") else []))
    code, version = sh([args.pkg_config, "--modversion", "wgf"], env=env)
    ran(check, "pkg-config --modversion wgf: %s" % version.strip(), code, version)
    if args.version:
        check(version.strip() == args.version, "wgf.pc's version is the project's (%s)" % args.version)
    code, flags = sh([args.pkg_config, "--cflags", "--libs", "wgf"], env=env)
    if not ran(check, "pkg-config --cflags --libs wgf: %s" % flags.strip(), code, flags):
        return
    code, cflags = sh([args.pkg_config, "--cflags", "wgf"], env=env)
    headers = sorted(glob.glob(os.path.join(prefix, "include", "wgf", "*.h")))
    allh = os.path.join(tmp, "all_headers.c")
    with open(allh, "w") as f:
        f.writelines("#include <wgf/%s>\n" % os.path.basename(h) for h in headers)
    code, out = sh([args.cc, "-fsyntax-only", "-Wall", "-Werror", allh] + shlex.split(cflags), env=env)
    ran(check, "the %d installed headers compile with pkg-config --cflags wgf" % len(headers), code, out)

    # 4. a tiny run of the installed wgf, for a checkpoint
    runargs = argparse.Namespace(mpiexec=args.mpiexec)
    rundir = os.path.join(tmp, "run")
    code, out, _ = wr.run(runargs, os.path.join(prefix, "bin", "wgf"), 1,
                          ["-options_file", opts, "-icnn_precision", "double", "-seed", "0", "-out_dir", rundir])
    ckpt = wr.last_checkpoint(rundir)
    ok = code == 0 and ckpt is not None
    if not check(ok, "the installed wgf: a run of ou_tiny.opts (%s)" % ckpt, "" if ok else wr.tail(out)):
        return

    # 5. the example, with pkg-config and with find_package(wgf)
    example = os.path.join(args.example_dir, "example.c")
    ex_pc = os.path.join(tmp, "example_pc")
    code, out = sh([args.cc, "-O2", "-Wall", "-Wextra", example] + shlex.split(flags) +
                   ["-Wl,-rpath," + libdir, "-o", ex_pc], env=env)
    ran(check, "the example built with pkg-config", code, out)
    cmbuild = os.path.join(tmp, "example_cmake")
    gen = ["-G", args.generator] if args.generator else []
    code, out = sh([args.cmake, "-S", args.example_dir, "-B", cmbuild, "-DCMAKE_PREFIX_PATH=" + prefix,
                    "-DCMAKE_C_COMPILER=" + args.cc, "-DCMAKE_BUILD_TYPE=Release"] + gen, env=env)
    if ran(check, "the example configured with find_package(wgf)", code, out):
        code, out = sh([args.cmake, "--build", cmbuild], env=env)
        ran(check, "the example built with find_package(wgf)", code, out)
    results = {}
    for name, exe, nranks in (("pkg-config", ex_pc, 1), ("find_package", os.path.join(cmbuild, "example"), 2)):
        if not os.access(exe, os.X_OK):
            continue
        code, out, _ = wr.run(runargs, exe, nranks, [ckpt])
        parsed = parse_example(out) if code == 0 else None
        if check(parsed is not None, "the example (%s) on %d rank(s) prints 5 points and their log density" % (name, nranks),
                 "" if parsed is not None else wr.tail(out)):
            results[name] = parsed
    if not results:
        return

    # 6. against the installed wgf-eval -logdensity at the same points
    x = next(iter(results.values()))[0]
    pts, evout = os.path.join(tmp, "points.h5"), os.path.join(tmp, "eval.h5")
    with h5py.File(pts, "w") as f:
        f.create_dataset("points", data=x)
    code, out, _ = wr.run(runargs, os.path.join(prefix, "bin", "wgf-eval"), 1,
                          ["-params", ckpt, "-points", pts, "-output", evout, "-logdensity"])
    if not ran(check, "the installed wgf-eval -logdensity at the example's points", code, out):
        return
    with h5py.File(evout, "r") as f:
        ref, conv = f["logrho"][()], f["converged"][()]
    ok = bool(np.all(conv == 1) and np.all(np.isfinite(ref)))
    check(ok, "wgf-eval: every inversion converged", "" if ok else "converged %s, logrho %s" % (conv, ref))
    for name, (xs, logrho) in results.items():
        check(np.array_equal(xs, x), "the example (%s) printed the same points" % name)
        d = wr.rel_diff(logrho, ref)
        check(d <= REL_TOL, "the example (%s): log rho = wgf-eval's to %.1e relative (<= %.0e)" % (name, d, REL_TOL),
              "" if d <= REL_TOL else "example %s, wgf-eval %s" % (logrho, ref))


if __name__ == "__main__":
    sys.exit(main())
