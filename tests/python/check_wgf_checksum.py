#!/usr/bin/env python3
"""Check that a flipped bit in the stored numbers of a checkpoint is detected (the datasets carry
HDF5's Fletcher32 checksum), reported with the file and the dataset, and that a restart falls back
to the previous checkpoint.

One good run of the tiny protocol (input/ou_tiny.opts) with -jko_steps 2 on 2 ranks gives
ckpt_0001.h5 and ckpt_0002.h5. Then
  1. every dataset of ckpt_0002.h5 that has elements and is not a scalar is chunked with the
     Fletcher32 filter (read with h5py);
  2. one byte in the middle of the stored data of /maps/0002/params of ckpt_0002.h5 is flipped
     (found with h5py's get_chunk_info); h5py itself must now fail to read that dataset and
     still read every other one (the damage is confined to the numbers of one dataset);
  3. wgf-eval -params DAMAGED on 1 and 3 ranks must exit non-zero, with a message line naming
     the file, /maps/0002/params and the checksum, and write no output;
  4. -restart DIR on 2 ranks, DIR holding the good ckpt_0001.h5 and the damaged ckpt_0002.h5
     (-out_dir defaults to DIR): exit 0, a warning naming ckpt_0002.h5, /maps/0002/params and
     the checksum, "restarting from DIR/ckpt_0001.h5"; DIR/ckpt_0002.h5 is then the
     continuation's, bitwise the good run's (maps, particles, state/theta, history but
     'seconds'), and the damaged file is kept byte for byte as DIR/ckpt_0002.h5.damaged;
  5. the same -restart DIR -out_dir OTHER on 1 and 3 ranks: exit 0 from ckpt_0001.h5 with the
     warning, DIR byte-identical afterwards, OTHER/ckpt_0002.h5 within 1e-10 of the good run's;
  6. wgf-eval -points FILE on 2 and 3 ranks, FILE written by h5py with chunks of 2 rows and
     Fletcher32, one byte flipped in the chunk that only the last rank reads: every rank stops
     (a PETSc error code within the timeout, no hang, no rank killed), and one message, in the
     short form of the README's "Errors", names the file, /points and the checksum.

Usage: check_wgf_checksum.py WGF_PATH WGF_EVAL_PATH [--mpiexec "mpiexec --oversubscribe -n"] [--opts FILE] [--seed N]
Prints one line per check; exit status 1 on any failure, 0 otherwise.
"""

import os
import re
import shutil
import sys
import tempfile

import h5py
import numpy as np

import wgf_runner as wr

DAMAGED = "maps/0002/params"


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def flip_byte(path, dataset):
    """Flips one bit of the byte in the middle of the stored data of dataset (its first chunk,
    the checksum at its end excluded); returns the file offset."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    off = info.byte_offset + (info.size - 4) // 2
    data = bytearray(read_bytes(path))
    data[off] ^= 0x10
    with open(path, "wb") as f:
        f.write(bytes(data))
    return off


def unreadable(path):
    """The datasets of path that h5py cannot read."""
    bad = []
    with h5py.File(path, "r") as f:
        def visit(name, o):
            if isinstance(o, h5py.Dataset):
                try:
                    o[()]
                except OSError:
                    bad.append(name)
        f.visititems(visit)
    return bad


def named_lines(log, *patterns):
    """The message lines of log that match every pattern (case-insensitive)."""
    return [l.strip() for l in wr.message_lines(log) if all(re.search(p, l, re.IGNORECASE) for p in patterns)]


def main():
    args = wr.parse_args(__doc__, with_eval=True)
    check = wr.Checks()
    with tempfile.TemporaryDirectory(prefix="wgf_check_checksum_") as tmp:
        good = os.path.join(tmp, "good")
        code, log, secs = wr.run_wgf(args, 2, good, extra=["-jko_steps", "2"])
        g1, g2 = os.path.join(good, "ckpt_0001.h5"), os.path.join(good, "ckpt_0002.h5")
        if not check(code == 0 and os.path.exists(g2), "good run: tiny protocol, 2 steps, 2 ranks",
                     "exit %s in %.1f s" % (code, secs) + ("" if code == 0 else "\n" + wr.tail(log))):
            print("1 failure(s): nothing to test without the good run")
            return 1
        ref2 = wr.checkpoint_state(g2)

        # 1. the layout: chunked, with Fletcher32
        plain = []
        with h5py.File(g2, "r") as f:
            def visit(name, o):
                if isinstance(o, h5py.Dataset) and o.shape and o.size and not (o.chunks and o.fletcher32):
                    plain.append(name)
            f.visititems(visit)
        check(not plain, "1. every non-scalar dataset of ckpt_0002.h5 is chunked with Fletcher32",
              "without: %s" % plain if plain else "")

        # 2. the damaged file
        damaged = os.path.join(tmp, "damaged_ckpt_0002.h5")
        shutil.copy2(g2, damaged)
        off = flip_byte(damaged, DAMAGED)
        bad = unreadable(damaged)
        check(bad == [DAMAGED] and not unreadable(g2), "2. a bit flipped at byte %d (inside /%s): h5py cannot read that dataset, and only it" % (off, DAMAGED),
              "unreadable with h5py: %s" % bad)
        damaged_bytes = read_bytes(damaged)

        # 3. wgf-eval on the damaged file
        pts = os.path.join(tmp, "points.h5")
        with h5py.File(pts, "w") as f:
            f["points"] = np.random.default_rng(0).standard_normal((7, 2))
        for nranks in (1, 3):
            out = os.path.join(tmp, "eval_np%d.h5" % nranks)
            code, log, secs = wr.run(args, args.wgf_eval, nranks, ["-params", damaged, "-points", pts, "-output", out])
            hit = named_lines(log, re.escape(os.path.basename(damaged)), "/" + DAMAGED, "checksum")
            check(code not in (0, None) and hit and not os.path.exists(out), "3. wgf-eval -params DAMAGED on %d rank(s) fails naming the file, the dataset and the checksum" % nranks,
                  "exit %s in %.1f s, output %s: %s" % (code, secs, "written" if os.path.exists(out) else "not written", hit[0][:200] if hit else "NO such message\n" + wr.tail(log, 15)))

        # 4. -restart DIR in the damaged folder itself
        run = os.path.join(tmp, "run")
        os.makedirs(run)
        shutil.copy2(g1, run)
        shutil.copy2(damaged, os.path.join(run, "ckpt_0002.h5"))
        code, log, secs = wr.run(args, args.wgf, 2, ["-restart", run])
        warn = named_lines(log, "WARNING", r"ckpt_0002\.h5", "/" + DAMAGED, "checksum")
        src = re.search(r"restarting from (\S+)", log)
        src = src.group(1) if src else None
        check(code == 0 and warn and src == os.path.join(run, "ckpt_0001.h5"), "4. -restart DIR on 2 ranks warns, falls back to ckpt_0001.h5 and finishes",
              "exit %s in %.1f s, restarted from %s; %s" % (code, secs, src, warn[0][:200] if warn else "NO warning naming the file, the dataset and the checksum\n" + wr.tail(log, 15)))
        if code == 0:
            bad = wr.compare_state(os.path.join(run, "ckpt_0002.h5"), ref2)
            check(not bad, "4. ... its ckpt_0002.h5 is bitwise the good run's", "; ".join(bad[:4]))
            aside = os.path.join(run, "ckpt_0002.h5.damaged")
            check(os.path.exists(aside) and read_bytes(aside) == damaged_bytes, "4. ... the damaged file is kept, byte for byte, as ckpt_0002.h5.damaged",
                  "folder holds %s" % sorted(os.listdir(run)))

        # 5. -restart DIR -out_dir OTHER on 1 and 3 ranks: DIR untouched
        for nranks in (1, 3):
            d = os.path.join(tmp, "dir_np%d" % nranks)
            os.makedirs(d)
            shutil.copy2(g1, d)
            shutil.copy2(damaged, os.path.join(d, "ckpt_0002.h5"))
            before = wr.snapshot(d)
            other = os.path.join(tmp, "other_np%d" % nranks)
            code, log, secs = wr.run(args, args.wgf, nranks, ["-restart", d, "-out_dir", other])
            warn = named_lines(log, "WARNING", r"ckpt_0002\.h5", "/" + DAMAGED, "checksum")
            src = re.search(r"restarting from (\S+)", log)
            problems = []
            if code != 0:
                problems.append("exit %s\n%s" % (code, wr.tail(log, 15)))
            if not warn:
                problems.append("no warning naming the file, the dataset and the checksum")
            if not src or src.group(1) != os.path.join(d, "ckpt_0001.h5"):
                problems.append("restarted from %s" % (src.group(1) if src else None))
            if wr.snapshot(d) != before:
                problems.append("DIR changed")
            if code == 0:
                problems += wr.compare_state(os.path.join(other, "ckpt_0002.h5"), ref2, 1e-10)[:4]
            check(not problems, "5. -restart DIR -out_dir OTHER on %d rank(s): the fallback, DIR untouched, OTHER/ckpt_0002.h5 within 1e-10" % nranks,
                  "; ".join(problems) if problems else "exit 0 in %.1f s" % secs)

        # 6. a damaged chunk that only the last rank reads
        for nranks in (2, 3):
            pfile = os.path.join(tmp, "points_np%d.h5" % nranks)
            rows = 2 * nranks
            with h5py.File(pfile, "w") as f:
                f.create_dataset("points", data=np.random.default_rng(1).standard_normal((rows, 2)), chunks=(2, 2), fletcher32=True)
            with h5py.File(pfile, "r") as f:
                info = f["points"].id.get_chunk_info(nranks - 1)  # rows 2(n-1), 2(n-1)+1: the last rank's
            data = bytearray(read_bytes(pfile))
            data[info.byte_offset + 3] ^= 0x01
            with open(pfile, "wb") as f:
                f.write(bytes(data))
            out = os.path.join(tmp, "eval_points_np%d.h5" % nranks)
            code, log, secs = wr.run(args, args.wgf_eval, nranks, ["-params", g2, "-points", pfile, "-output", out], timeout=60)
            # every rank stops (no hang), and the error is told once, by the rank that found it (README "Errors")
            message, problems = wr.error_report(code, log, "wgf-eval")
            if not all(w in message for w in (os.path.basename(pfile), "/points", "checksum")):
                problems.append("the message does not name the file, /points and the checksum")
            if os.path.exists(out):
                problems.append("an output was written")
            check(not problems,
                  "6. wgf-eval on %d ranks, /points damaged in the last rank's rows only: every rank stops, one message names the file, /points and the checksum" % nranks,
                  "exit %s in %.1f s: %s%s" % (code, secs, message[:160], "" if not problems else " (%s)\n%s" % ("; ".join(problems), wr.tail(log, 15))))
    print("%d failure(s)" % check.failures)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
