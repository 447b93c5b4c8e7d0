#!/usr/bin/env python3
"""Check the ParaView (XDMF) files beside the checkpoints: ckpt_<kkkk>.xmf for every step
checkpoint and the temporal collection flow.xmf.

For every folder below, every *.xmf file must parse as XML (xml.etree); every HDF DataItem
'NAME.h5:/path' must name a file of the same folder (a relative name) and a dataset in it whose
shape is the DataItem's Dimensions and whose type is its NumberType and Precision (Float 8:
float64, Int 8: int64); the geometry (/particles/xyz) must be the first min(D, 3) columns of
/particles/x, zero-padded, and the Polyvertex connectivity (/particles/id) 0..N-1; the Time of
ckpt_<kkkk>.xmf must be the root attribute time of ckpt_<kkkk>.h5 (to the last bit) and its Grid
must reference that file only; flow.xmf must be a temporal collection with one Grid per step
checkpoint of the folder (ckpt_<kkkk>.h5), in order, with increasing times, each Grid the same as
that of ckpt_<kkkk>.xmf; no *.partial file is left.
  1. the tiny protocol (input/ou_tiny.opts) on 3 ranks (its 257 particles split 86, 86, 85);
  2. -ckpt_keep 2 with -ckpt_every_iters 20 on 2 ranks: the pruned checkpoints lose their .xmf,
     and flow.xmf lists only the step checkpoints that are left (ckpt_0003.h5; the mid-step
     ckpt_0002_000020.h5 gets no .xmf);
  3. the fall-back on 1 rank: a copy of run 1 whose ckpt_0002.h5 and ckpt_0003.h5 have a flipped
     bit in /particles/x; -restart DIR -jko_steps 2 continues from ckpt_0001.h5, writes ckpt_0002.h5
     (the damaged one moved to ckpt_0002.h5.damaged): flow.xmf lists steps 1 and 2 only (not the
     damaged ckpt_0003.h5, which the run did not reach; its ckpt_0003.xmf stays beside it, as the
     file itself does), and no .xmf references a *.damaged file;
  4. if ParaView's pvpython is installed (else reported as skipped): flow.xmf of run 1 opened
     with the "XDMF Reader" and with "Xdmf3 Reader S" gives the time steps of the checkpoints,
     and at the last one N points in N cells, the z coordinates 0 (D = 2), the attributes
     logrho, x, x0 and id.

Usage: check_wgf_paraview.py WGF_PATH [--mpiexec "mpiexec --oversubscribe -n"] [--opts FILE] [--seed N]
Prints one line per check; exit status 1 on any failure, 0 otherwise.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import h5py
import numpy as np

import wgf_runner as wr

STEP_NAME = re.compile(r"^ckpt_(\d{4})\.h5$")
XMF_NAME = re.compile(r"^ckpt_(\d{4})\.xmf$")
TYPES = {("Float", "8"): np.dtype("<f8"), ("Int", "8"): np.dtype("<i8")}


def step_checkpoints(d):
    return sorted(int(STEP_NAME.match(n).group(1)) for n in os.listdir(d) if STEP_NAME.match(n))


def check_dataitems(root, folder):
    """Problems of the HDF DataItems under root; also returns the set of files referenced."""
    bad, files = [], set()
    for item in root.iter("DataItem"):
        if item.get("Format") != "HDF":
            bad.append("a DataItem of format %s" % item.get("Format"))
            continue
        ref = (item.text or "").strip()
        fname, _, path = ref.partition(":")
        files.add(fname)
        if os.path.isabs(fname) or "/" in fname:
            bad.append("%s is not a name in the same folder" % fname)
            continue
        full = os.path.join(folder, fname)
        if not os.path.exists(full):
            bad.append("%s: no such file" % fname)
            continue
        dims = tuple(int(v) for v in item.get("Dimensions", "").split())
        want = TYPES.get((item.get("NumberType"), item.get("Precision")))
        with h5py.File(full, "r") as f:
            if path not in f or not isinstance(f[path], h5py.Dataset):
                bad.append("%s has no dataset %s" % (fname, path))
                continue
            ds = f[path]
            if ds.shape != dims:
                bad.append("%s:%s has shape %s, the DataItem says %s" % (fname, path, ds.shape, dims))
            if want is None or ds.dtype != want:
                bad.append("%s:%s is %s, the DataItem says %s %s" % (fname, path, ds.dtype, item.get("NumberType"), item.get("Precision")))
    return bad, files


def check_grid_data(grid, folder):
    """Geometry against /particles/x, connectivity against 0..N-1."""
    bad = []
    geo = grid.find("Geometry/DataItem").text.strip().split(":")
    top = grid.find("Topology/DataItem").text.strip().split(":")
    n = int(grid.find("Topology").get("NumberOfElements"))
    with h5py.File(os.path.join(folder, geo[0]), "r") as f:
        x, xyz = f["particles/x"][()], f[geo[1]][()]
        want = np.zeros((x.shape[0], 3))
        want[:, :min(3, x.shape[1])] = x[:, :3]
        if geo[1] != "/particles/xyz" or not np.array_equal(xyz, want):
            bad.append("the geometry %s is not the first coordinates of /particles/x, zero-padded" % ":".join(geo))
        ids = f[top[1]][()]
        if n != x.shape[0] or not np.array_equal(ids, np.arange(n)):
            bad.append("the connectivity %s is not 0..%d" % (":".join(top), n - 1))
    return bad


def grid_text(grid):
    """The Grid as text, without what follows it (the whitespace before the next element)."""
    tail, grid.tail = grid.tail, None
    text = ET.tostring(grid)
    grid.tail = tail
    return text


def check_folder(check, label, folder, want_steps=None, listed=None):
    """Every check of the docstring for one folder; flow.xmf must list the steps listed (default:
    every step checkpoint of the folder). Returns the parsed flow.xmf root or None."""
    names = sorted(os.listdir(folder))
    steps = step_checkpoints(folder)
    listed = steps if listed is None else listed
    if want_steps is not None:
        check(steps == want_steps, "%s: step checkpoints %s" % (label, want_steps), "the folder holds %s" % names)
    left = [n for n in names if n.endswith(".partial")]
    check(not left, "%s: no *.partial file left" % label, "left: %s" % left)
    xmfs = sorted(int(XMF_NAME.match(n).group(1)) for n in names if XMF_NAME.match(n))
    check(xmfs == steps, "%s: one ckpt_<kkkk>.xmf per step checkpoint, and no other" % label, "xmf for steps %s, checkpoints %s" % (xmfs, steps))
    grids = {}
    for k in xmfs:
        name = "ckpt_%04d.xmf" % k
        bad = []
        try:
            root = ET.parse(os.path.join(folder, name)).getroot()
        except ET.ParseError as e:
            check(False, "%s: %s parses as XML" % (label, name), str(e))
            continue
        found = root.findall("Domain/Grid")
        if len(found) != 1:
            bad.append("%d Grids" % len(found))
        elif k not in steps:
            bad.append("ckpt_%04d.h5 is gone" % k)
        else:
            g = found[0]
            grids[k] = g
            t = float(g.find("Time").get("Value"))
            with h5py.File(os.path.join(folder, "ckpt_%04d.h5" % k), "r") as f:
                tk = float(f.attrs["time"])
            if t != tk:
                bad.append("Time %r, the checkpoint's time %r" % (t, tk))
            if g.find("Topology").get("TopologyType") != "Polyvertex" or g.find("Geometry").get("GeometryType") != "XYZ":
                bad.append("not a Polyvertex topology with an XYZ geometry")
            names_attr = [a.get("Name") for a in g.findall("Attribute")]
            if not {"logrho", "x", "x0", "id"} <= set(names_attr):
                bad.append("attributes %s" % names_attr)
            b, files = check_dataitems(root, folder)
            bad += b
            if files != {"ckpt_%04d.h5" % k}:
                bad.append("references %s" % sorted(files))
            if not b and k in listed:  # the others may be damaged files that a restart skipped
                bad += check_grid_data(g, folder)
        check(not bad, "%s: %s parses, its DataItems name existing datasets of ckpt_%04d.h5 with their shapes and types" % (label, name, k), "; ".join(bad[:5]))
    try:
        flow = ET.parse(os.path.join(folder, "flow.xmf")).getroot()
    except (ET.ParseError, OSError) as e:
        check(False, "%s: flow.xmf parses as XML" % label, str(e))
        return None
    bad = []
    coll = flow.findall("Domain/Grid")
    if len(coll) != 1 or coll[0].get("GridType") != "Collection" or coll[0].get("CollectionType") != "Temporal":
        bad.append("not one temporal collection")
    else:
        members = coll[0].findall("Grid")
        got = [int(m.get("Name").split()[-1]) for m in members]
        times = [float(m.find("Time").get("Value")) for m in members]
        if got != listed:
            bad.append("lists steps %s, expected %s (the folder's step checkpoints: %s)" % (got, listed, steps))
        if any(b <= a for a, b in zip(times, times[1:])):
            bad.append("times %s are not increasing" % times)
        for k, m in zip(got, members):
            if k not in grids or grid_text(m) != grid_text(grids[k]):
                bad.append("the Grid of step %d is not that of ckpt_%04d.xmf" % (k, k))
        b, files = check_dataitems(flow, folder)
        bad += b
        if files != {"ckpt_%04d.h5" % k for k in listed}:
            bad.append("references %s" % sorted(files))
    check(not bad, "%s: flow.xmf is a temporal collection of the step checkpoints %s, times increasing" % (label, listed), "; ".join(bad[:5]))
    return flow


def flip_in(path, dataset):
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + 5)
        b = f.read(1)
        f.seek(info.byte_offset + 5)
        f.write(bytes([b[0] ^ 0x01]))


PVPYTHON_SCRIPT = r"""
import sys
from paraview.simple import XDMFReader, Xdmf3ReaderS
from paraview import servermanager as sm
fn = sys.argv[1]
for name, make in (("XDMF Reader", lambda: XDMFReader(FileNames=[fn])), ("Xdmf3 Reader S", lambda: Xdmf3ReaderS(FileName=[fn]))):
    r = make()
    times = list(r.TimestepValues)
    r.UpdatePipeline(times[-1])
    d = sm.Fetch(r)
    pd = d.GetPointData()
    arrays = sorted(pd.GetArrayName(i) for i in range(pd.GetNumberOfArrays()))
    b = d.GetBounds()
    print("READER|%s|%s|%d|%d|%g|%g|%s" % (name, ",".join(repr(t) for t in times), d.GetNumberOfPoints(), d.GetNumberOfCells(), b[4], b[5], ",".join(arrays)))
"""


def check_pvpython(check, folder):
    pv = shutil.which("pvpython")
    if not pv:
        print("     4. skipped: ParaView's pvpython is not installed")
        return
    steps = step_checkpoints(folder)
    times = []
    for k in steps:
        with h5py.File(os.path.join(folder, "ckpt_%04d.h5" % k), "r") as f:
            times.append(float(f.attrs["time"]))
            n = f["particles/x"].shape[0]
    script = os.path.join(folder, "..", "probe_paraview.py")
    with open(script, "w") as f:
        f.write(PVPYTHON_SCRIPT)
    try:
        out = subprocess.run([pv, "--force-offscreen-rendering", script, os.path.join(folder, "flow.xmf")],
                             capture_output=True, text=True, timeout=300).stdout
    except subprocess.TimeoutExpired:
        out = ""
    lines = [l.split("|") for l in out.splitlines() if l.startswith("READER|")]
    check(len(lines) == 2, "4. pvpython opens flow.xmf with both readers", "%d of 2 answered" % len(lines))
    for _, name, ts, npts, ncells, z0, z1, arrays in lines:
        got = [float(t) for t in ts.split(",")] if ts else []
        ok = (np.allclose(got, times, rtol=1e-12, atol=0) and int(npts) == n and int(ncells) == n
              and float(z0) == 0 and float(z1) == 0 and {"logrho", "x", "x0", "id"} <= set(arrays.split(",")))
        check(ok, "4. ParaView's %s: %d time steps, %d points in as many cells, z = 0, attributes logrho, x, x0, id" % (name, len(times), n),
              "times %s, %s points, %s cells, z in [%s, %s], arrays %s" % (got, npts, ncells, z0, z1, arrays))


def main():
    args = wr.parse_args(__doc__)
    check = wr.Checks()
    with tempfile.TemporaryDirectory(prefix="wgf_check_paraview_") as tmp:
        # 1.
        run = os.path.join(tmp, "run")
        code, log, secs = wr.run_wgf(args, 3, run)
        if not check(code == 0, "1. tiny protocol on 3 ranks", "exit %s in %.1f s" % (code, secs) + ("" if code == 0 else "\n" + wr.tail(log))):
            return 1
        check_folder(check, "1", run, [1, 2, 3])

        # 2.
        keep = os.path.join(tmp, "keep")
        code, log, secs = wr.run_wgf(args, 2, keep, extra=["-ckpt_keep", "2", "-ckpt_every_iters", "20"])
        if check(code == 0, "2. -ckpt_keep 2 -ckpt_every_iters 20 on 2 ranks", "exit %s in %.1f s; folder %s" % (code, secs, sorted(os.listdir(keep)) if os.path.isdir(keep) else None)
                 + ("" if code == 0 else "\n" + wr.tail(log))):
            check(sorted(os.listdir(keep)) == ["ckpt_0002_000020.h5", "ckpt_0003.h5", "ckpt_0003.xmf", "flow.xmf"],
                  "2. the folder holds the two newest checkpoints, the .xmf of the step one, flow.xmf", "%s" % sorted(os.listdir(keep)))
            check_folder(check, "2", keep, [3])

        # 3.
        fb = os.path.join(tmp, "fallback")
        shutil.copytree(run, fb)
        for k in (2, 3):
            flip_in(os.path.join(fb, "ckpt_%04d.h5" % k), "particles/x")
        code, log, secs = wr.run(args, args.wgf, 1, ["-restart", fb, "-jko_steps", "2"])
        src = re.search(r"restarting from (\S+)", log)
        if check(code == 0 and src and src.group(1) == os.path.join(fb, "ckpt_0001.h5"),
                 "3. -restart DIR -jko_steps 2 on 1 rank, ckpt_0002.h5 and ckpt_0003.h5 damaged: continues from ckpt_0001.h5",
                 "exit %s in %.1f s, from %s" % (code, secs, src.group(1) if src else None) + ("" if code == 0 else "\n" + wr.tail(log))):
            names = sorted(os.listdir(fb))
            check("ckpt_0002.h5.damaged" in names and "ckpt_0003.h5" in names, "3. the damaged ckpt_0002.h5 is kept as ckpt_0002.h5.damaged, ckpt_0003.h5 left as it is",
                  "folder %s" % names)
            check_folder(check, "3 (flow.xmf lists steps 1 and 2 only, not the damaged ckpt_0003.h5 past the run's end)", fb, [1, 2, 3], [1, 2])
            refs = [n for n in names if n.endswith(".xmf") and "damaged" in open(os.path.join(fb, n)).read()]
            check(not refs, "3. no .xmf references a *.damaged file", "%s do" % refs)

        # 4.
        check_pvpython(check, run)
    print("%d failure(s)" % check.failures)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
