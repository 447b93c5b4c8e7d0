#!/usr/bin/env python3
"""Check that wgf -restart refuses bad checkpoint files cleanly, and skips bad newer files of a
folder.

One good run of the tiny protocol (input/ou_tiny.opts) with -jko_steps 2 on 2 ranks gives
ckpt_0001.h5 and ckpt_0002.h5. Each bad case below lives in its own folder; wgf is started with
-restart PATH (nothing else: a restart takes its options from the checkpoint, and -out_dir
defaults to the checkpoint's folder), on 1 and on 2 ranks, and must
  * exit with a non-zero status within 120 s (a hang counts as a failure),
  * report it in the short form (wgf_runner.error_report: one 'wgf: error:' line in the output of
    all ranks, no PETSc traceback, configure line or MPI_ABORT banner), and that message names
    the file (or folder) and says what is wrong (the case's pattern below),
  * modify nothing: the case's folder (and the good run's folder) byte-identical afterwards,
    no file added or removed; a non-existent path is not created.
Cases:
  truncated           the first half of the bytes of ckpt_0002.h5
  header_corrupted    ckpt_0002.h5 with bytes 0..63 (the superblock) overwritten by random bytes
  foreign_hdf5        a valid HDF5 file without the root attribute format
  format_version_99   ckpt_0002.h5 with format_version = 99
  complete_missing    ckpt_0002.h5 without the root attribute complete
  complete_0          ckpt_0002.h5 with complete = 0
  missing_path        a path that does not exist
  empty_folder        a folder with no file
  only_bad_files      a folder whose ckpt_0001.h5 is header_corrupted and ckpt_0002.h5 truncated:
                      a warning naming each, then the error
  middle_corrupted    256 random bytes overwritten at the middle of ckpt_0002.h5. HDF5 may still
                      open it, so the damage is first located with h5py (every group, dataset,
                      attribute and value compared with the good file): if it hit metadata or
                      the numbers of a dataset (which fail their checksum) the restart must fail
                      as above; if it hit unused bytes, a restart that succeeds is accepted
  raw_data_corrupted  /particles/x's first 64 stored bytes overwritten (its first chunk, found
                      with h5py): the metadata is intact, but the chunk fails its Fletcher32
                      checksum, so the restart must fail with a message naming the file, the
                      dataset /particles/x and the checksum
Folder cases (must succeed):
  newer_header_corrupted  a folder with the good ckpt_0001.h5 and a header_corrupted
      ckpt_0002.h5: -restart DIR -out_dir OTHER (2 ranks) must continue from ckpt_0001.h5 with
      a warning naming ckpt_0002.h5, leave DIR byte-identical (the bad file is not deleted), and
      write OTHER/ckpt_0002.h5 bitwise equal to the good run's (maps, particles, state/theta,
      history but 'seconds'); -restart DIR (1 rank, -out_dir defaults to DIR) likewise
      continues from ckpt_0001.h5 with the warning; the script reports what became of the bad
      ckpt_0002.h5 there (the continuation writes its own ckpt_0002.h5 over it by rename);
  newer_middle_corrupted  the same with the middle_corrupted ckpt_0002.h5 (when the damage is
      in metadata): the folder's newest readable checkpoint is ckpt_0001.h5, so the restart
      must continue from it, with a warning naming ckpt_0002.h5.
Controls: a copy of the good ckpt_0001.h5 in a case folder restarts (exit 0), and the snapshot
comparison sees the ckpt_0002.h5 that run adds, so the checks above can fail.

Usage: check_wgf_badfiles.py WGF_PATH [--mpiexec "mpiexec --oversubscribe -n"] [--opts FILE] [--seed N]
Prints one line per case and rank count; exit status 1 if any case misbehaves, 0 otherwise.
"""

import os
import re
import shutil
import sys
import tempfile
import time

import h5py
import numpy as np

import wgf_runner as wr

RANKS = (1, 2)




def restart(args, nranks, where, extra=()):
    return wr.run(args, args.wgf, nranks, ["-restart", where] + list(extra))


def excerpt(log, n=12):
    """The last n message lines of a log (no traceback, option table or MPI_ABORT banner)."""
    lines = [l for l in wr.message_lines(log) if l.strip() and "Configure options" not in l and not l.startswith("-----")]
    return "\n".join(lines[-n:])


def restarted_from(log):
    m = re.search(r"restarting from (\S+)", log)
    return m.group(1) if m else None


def diff_snapshots(before, after):
    if before == after:
        return None
    if before is None or after is None:
        return "existed before: %s, after: %s" % (before is not None, after is not None)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in before if k in after and after[k] != before[k])
    return "added %s, removed %s, modified %s" % (added, removed, changed)


# ---------------------------------------------------------------------------- making bad files

def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def overwrite(data, offset, n, seed):
    b = bytearray(data)
    b[offset:offset + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(b)


def describe(path):
    """Everything h5py sees in a file: name -> (kind, shape/dtype, attributes, value bytes);
    raises if the file cannot be read completely."""
    out = {}
    with h5py.File(path, "r") as f:
        def attrs(o):
            return tuple(sorted((k, np.asarray(o.attrs[k]).tobytes()) for k in o.attrs.keys()))
        out["/"] = ("group", None, attrs(f), None)

        def visit(name, o):
            if isinstance(o, h5py.Dataset):
                out[name] = ("dataset", (o.shape, str(o.dtype)), attrs(o), np.asarray(o[()]).tobytes())
            else:
                out[name] = ("group", None, attrs(o), None)
        f.visititems(visit)
    return out


def locate_damage(good, bad):
    """('none' | 'raw' | 'metadata', detail): what h5py sees damaged in bad compared with good."""
    ref = describe(good)
    try:
        got = describe(bad)
    except Exception as e:  # noqa: BLE001 -- an unreadable object: metadata, or numbers that fail their checksum
        return "metadata", "h5py cannot read it all: %s" % str(e).splitlines()[0][:120]
    if set(got) != set(ref):
        return "metadata", "objects differ: %s" % sorted(set(got) ^ set(ref))
    meta = [n for n in ref if ref[n][:3] != got[n][:3]]
    if meta:
        return "metadata", "shape, type or attributes differ in %s" % meta
    raw = [n for n in ref if ref[n][3] != got[n][3]]
    if raw:
        return "raw", "only the values of %s differ; every object, shape, type and attribute is intact" % raw
    return "none", "nothing h5py reads differs"


class Case:
    """make(folder) builds the case in folder and returns the -restart path; expect: regular
    expression the message must match on a line that also names the file (name: the base name
    to look for; default that of the -restart path)."""

    def __init__(self, name, make, expect, name_in_message=None):
        self.name, self.make, self.expect, self.name_in_message = name, make, re.compile(expect, re.IGNORECASE), name_in_message


def modified_copy(src, dst, fn):
    shutil.copy2(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


def make_cases(good):
    g2 = os.path.join(good, "ckpt_0002.h5")
    data = read_bytes(g2)

    def truncated(d):
        p = os.path.join(d, "truncated.h5")
        write_bytes(p, data[:len(data) // 2])
        return p

    def header(d):
        p = os.path.join(d, "header_corrupted.h5")
        write_bytes(p, overwrite(data, 0, 64, 1))
        return p

    def foreign(d):
        p = os.path.join(d, "foreign.h5")
        with h5py.File(p, "w") as f:
            f.create_dataset("x", data=np.arange(10.0))
            f.attrs["note"] = "an HDF5 file of someone else"
        return p

    def version99(d):
        return modified_copy(g2, os.path.join(d, "version99.h5"), lambda f: f.attrs.modify("format_version", 99))

    def complete_missing(d):
        return modified_copy(g2, os.path.join(d, "no_complete.h5"), lambda f: f.attrs.__delitem__("complete"))

    def complete0(d):
        return modified_copy(g2, os.path.join(d, "complete0.h5"), lambda f: f.attrs.modify("complete", 0))

    def missing(d):
        return os.path.join(d, "does_not_exist", "ckpt_0002.h5")

    def empty(d):
        p = os.path.join(d, "empty")
        os.makedirs(p)
        return p

    def only_bad(d):
        p = os.path.join(d, "only_bad")
        os.makedirs(p)
        write_bytes(os.path.join(p, "ckpt_0001.h5"), overwrite(read_bytes(os.path.join(good, "ckpt_0001.h5")), 0, 64, 2))
        write_bytes(os.path.join(p, "ckpt_0002.h5"), data[:len(data) // 2])
        return p

    return [
        Case("truncated", truncated, r"truncated|corrupt"),
        Case("header_corrupted", header, r"not a readable HDF5|corrupt"),
        Case("foreign_hdf5", foreign, r"not a wgf checkpoint"),
        Case("format_version_99", version99, r"format_version 99"),
        Case("complete_missing", complete_missing, r"incomplete|complete"),
        Case("complete_0", complete0, r"incomplete|complete"),
        Case("missing_path", missing, r"no such file|does not exist"),
        Case("empty_folder", empty, r"no complete.*checkpoint|no checkpoint"),
        Case("only_bad_files", only_bad, r"no complete.*checkpoint|no checkpoint"),
    ]


# ---------------------------------------------------------------------------- running

def run_bad(check, args, tmp, good, label, path, watched, expect, name, nranks, also=()):
    """Runs -restart path; checks the failure, the message, that watched and good are unchanged,
    and that every line of also (regular expressions) appears in the messages."""
    before, gbefore = wr.snapshot(watched), wr.snapshot(good)
    code, log, secs = restart(args, nranks, path)
    message, problems = wr.error_report(code, log, "wgf")
    if not (name in message and expect.search(message)):
        problems.append("the error message does not name %s and match /%s/" % (name, expect.pattern))
    for pat in also:
        if not any(re.search(pat, l, re.IGNORECASE) for l in log.splitlines()):
            problems.append("no line matches /%s/" % pat)
    d = diff_snapshots(before, wr.snapshot(watched))
    if d:
        problems.append("%s changed: %s" % (watched, d))
    d = diff_snapshots(gbefore, wr.snapshot(good))
    if d:
        problems.append("the good run's folder changed: %s" % d)
    what = "%s on %d rank(s)" % (label, nranks)
    if problems:
        return check(False, what, "; ".join(problems) + "\n---- wgf messages ----\n%s\n----------------------" % excerpt(log))
    return check(True, what, "exit %d in %.1f s, nothing modified: %s" % (code, secs, message[:170]))


def main():
    args = wr.parse_args(__doc__)
    check = wr.Checks()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="wgf_check_badfiles_") as tmp:
        good = os.path.join(tmp, "good")
        code, log, secs = wr.run_wgf(args, 2, good, extra=["-jko_steps", "2"])
        files = [os.path.basename(p) for p in wr.checkpoints(good)] if os.path.isdir(good) else []
        if not check(code == 0 and files == ["ckpt_0001.h5", "ckpt_0002.h5"], "good run: tiny protocol, 2 steps, 2 ranks",
                     "exit %s in %.1f s, folder %s" % (code, secs, files) + ("" if code == 0 else "\n" + wr.tail(log))):
            print("1 failure(s): nothing to test without the good run")
            return 1
        g1, g2 = os.path.join(good, "ckpt_0001.h5"), os.path.join(good, "ckpt_0002.h5")
        ref2 = wr.checkpoint_state(g2)

        # controls: a good copy restarts, and the snapshot comparison sees what that run writes
        c = os.path.join(tmp, "control")
        os.makedirs(c)
        shutil.copy2(g1, c)
        before = wr.snapshot(c)
        code, log, secs = restart(args, 2, os.path.join(c, "ckpt_0001.h5"))
        d = diff_snapshots(before, wr.snapshot(c))
        check(code == 0 and d is not None and "ckpt_0002.h5" in d, "control: a copy of the good ckpt_0001.h5 restarts on 2 ranks",
              "exit %s in %.1f s; the snapshot comparison sees: %s" % (code, secs, d) + ("" if code == 0 else "\n" + wr.tail(log)))
        if code == 0:
            bad = wr.compare_state(os.path.join(c, "ckpt_0002.h5"), ref2)
            check(not bad, "control: ... and its ckpt_0002.h5 is bitwise the good run's", "; ".join(bad[:4]) or "maps, particles, state/theta, history")

        for i, case in enumerate(make_cases(good)):
            for nranks in RANKS:
                folder = os.path.join(tmp, "case%02d_np%d" % (i, nranks))
                os.makedirs(folder)
                path = case.make(folder)
                watched = os.path.dirname(path) if case.name == "missing_path" else folder
                also = [r"skipping .*ckpt_0001\.h5", r"skipping .*ckpt_0002\.h5"] if case.name == "only_bad_files" else ()
                run_bad(check, args, tmp, good, case.name, path, watched, case.expect, os.path.basename(path), nranks, also)

        # the middle of the file: find out what was hit, then expect accordingly
        data = read_bytes(g2)
        mid_bytes = overwrite(data, len(data) // 2, 256, 3)
        probe = os.path.join(tmp, "probe_middle.h5")
        write_bytes(probe, mid_bytes)
        kind, detail = mid_kind, _ = locate_damage(g2, probe)
        print("     middle_corrupted: bytes %d..%d of %d overwritten; damage: %s (%s)" % (len(data) // 2, len(data) // 2 + 255, len(data), kind, detail))
        for nranks in RANKS:
            folder = os.path.join(tmp, "middle_np%d" % nranks)
            os.makedirs(folder)
            path = os.path.join(folder, "middle_corrupted.h5")
            write_bytes(path, mid_bytes)
            if kind == "metadata":
                run_bad(check, args, tmp, good, "middle_corrupted (metadata hit)", path, folder, re.compile(r"\S"), "middle_corrupted.h5", nranks)
            else:
                before = wr.snapshot(folder)
                code, log, secs = restart(args, nranks, path, ["-out_dir", os.path.join(tmp, "middle_out_np%d" % nranks)])
                d = diff_snapshots(before, wr.snapshot(folder))
                named = [l for l in wr.message_lines(log) if "middle_corrupted.h5" in l and "restarting from" not in l]
                check(code is not None and d is None and (code == 0 or named), "middle_corrupted (%s) on %d rank(s)" % (kind, nranks),
                      "exit %s in %.1f s, folder %s; accepted because the damage is %s" % (code, secs, d or "unchanged", detail))

        # raw data of /particles/x: the metadata is intact (h5py opens the dataset and reads its
        # shape), the stored numbers fail their Fletcher32 checksum, and wgf must refuse the file
        with h5py.File(g2, "r") as f:
            off = f["particles/x"].id.get_chunk_info(0).byte_offset
        raw_bytes = overwrite(data, off, 64, 4)
        write_bytes(probe, raw_bytes)
        with h5py.File(probe, "r") as f:
            shape = f["particles/x"].shape
            try:
                f["particles/x"][()]
                h5py_says = "h5py reads it without error"
            except OSError as e:
                h5py_says = "h5py: %s" % str(e).splitlines()[0]
        print("     raw_data_corrupted: bytes %d..%d (the first chunk of /particles/x, shape %s) overwritten; %s" % (off, off + 63, shape, h5py_says))
        for nranks in RANKS:
            folder = os.path.join(tmp, "raw_np%d" % nranks)
            os.makedirs(folder)
            path = os.path.join(folder, "raw_data_corrupted.h5")
            write_bytes(path, raw_bytes)
            run_bad(check, args, tmp, good, "raw_data_corrupted (/particles/x)", path, folder,
                    re.compile(r"/particles/x.*checksum"), "raw_data_corrupted.h5", nranks)

        # folder cases: a bad newer file is skipped, not deleted
        for tag, bad_bytes, kind in (("newer_header_corrupted", overwrite(data, 0, 64, 1), "metadata"),
                                     ("newer_middle_corrupted", mid_bytes, mid_kind)):
            if kind != "metadata":
                print("     %s: skipped, the middle damage is %s, not metadata" % (tag, kind))
                continue
            variants = ((2, True), (1, False)) if tag == "newer_header_corrupted" else ((1, True), (2, True))
            for nranks, other_out in variants:
                f = os.path.join(tmp, "%s_np%d%s" % (tag, nranks, "_other" if other_out else "_same"))
                os.makedirs(f)
                shutil.copy2(g1, f)
                write_bytes(os.path.join(f, "ckpt_0002.h5"), bad_bytes)
                before = wr.snapshot(f)
                out = os.path.join(tmp, os.path.basename(f) + "_out")
                code, log, secs = restart(args, nranks, f, ["-out_dir", out] if other_out else [])
                warn = [l.strip() for l in log.splitlines() if "WARNING" in l and "ckpt_0002.h5" in l]
                src = restarted_from(log)
                label = "%s: -restart DIR%s on %d rank(s)" % (tag, " -out_dir OTHER" if other_out else "", nranks)
                problems = []
                if code != 0:
                    problems.append("exit %s" % code)
                if not warn:
                    problems.append("no warning naming ckpt_0002.h5")
                if src != os.path.join(f, "ckpt_0001.h5"):
                    problems.append("restarted from %s, not ckpt_0001.h5" % src)
                note = ""
                if other_out:
                    d = diff_snapshots(before, wr.snapshot(f))
                    if d:
                        problems.append("DIR changed: %s" % d)
                    if code == 0:
                        bad = wr.compare_state(os.path.join(out, "ckpt_0002.h5"), ref2, None if nranks == 2 else 1e-10)
                        if bad:
                            problems.append("OTHER/ckpt_0002.h5 differs from the good run's: %s" % "; ".join(bad[:4]))
                        note = "; DIR byte-identical, OTHER/ckpt_0002.h5 %s the good run's" % ("bitwise" if nranks == 2 else "within 1e-10 of")
                else:
                    now = os.path.join(f, "ckpt_0002.h5")
                    replaced = os.path.exists(now) and read_bytes(now) != bad_bytes
                    if code == 0:
                        bad = wr.compare_state(now, ref2, 1e-10) if replaced else ["still the corrupted file"]
                        note = ("; NOTE: the continuation wrote its own ckpt_0002.h5 over the corrupted one (rename), within 1e-10 of the good run's"
                                if replaced and not bad else "; the corrupted ckpt_0002.h5 is %s" % ("kept as it was" if not replaced else "replaced: %s" % bad))
                        if replaced and bad:
                            problems.append("DIR/ckpt_0002.h5 is neither the corrupted file nor a good checkpoint: %s" % "; ".join(bad[:3]))
                    d = diff_snapshots({k: v for k, v in before.items() if k != "ckpt_0002.h5"},
                                       {k: v for k, v in (wr.snapshot(f) or {}).items() if k in before and k != "ckpt_0002.h5"})
                    if d:
                        problems.append("DIR changed: %s" % d)
                check(not problems, label, ("; ".join(problems) + "\n---- wgf messages ----\n%s\n----------------------" % excerpt(log)) if problems
                      else "exit 0 in %.1f s from ckpt_0001.h5; %s%s" % (secs, warn[0][:150], note))
    print("%d failure(s) in %.0f s" % (check.failures, time.time() - t0))
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
