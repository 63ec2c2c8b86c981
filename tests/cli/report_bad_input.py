#!/usr/bin/env python3
"""`blockwatch report` never turns bad input into success.

A stream recorded by a real `blockwatch run` (strict mode, so its `sleep` is an
event whatever the machine's speed) is the good input. Then:
- input with no valid stream (a text file, an empty file, a header cut short,
  random bytes, a missing file, a directory without .bwrec files) is an error:
  exit 2, one line on stderr naming the file, no "verdict", no report file;
- a valid stream followed by garbage, or cut inside its last frame, keeps what
  came before (the JSON report has the good stream's events), names the damage
  on stderr, ends with a line saying the report is incomplete, and exits 4; with
  a broken --fail-on rule it exits 3; a directory holding one good and one
  foreign file is damaged input too (4);
- a --report path with an unknown format, or .bwrec (no raw stream to write
  here), is refused before reading (exit 2).
The good input itself exits 0, so each check can fail.

usage: report_bad_input.py BLOCKWATCH LIBBLOCKWATCH
"""
import json
import os
import random
import subprocess
import sys
import tempfile

INPUT_DAMAGED = 4


def run(args, env):
    result = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=60)
    return result.returncode, result.stderr


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


def record_good_stream(blockwatch, env, tmp):
    good = os.path.join(tmp, "good.bwrec")
    code, stderr = run([blockwatch, "run", "--workers", "main", "--threshold", "0",
                        "--report", good, "--", "sleep", "0.01"], env)
    assert code == 0 and os.path.getsize(good) > 0, (code, stderr)
    return good


def report_json(blockwatch, env, source, out, *flags):
    if os.path.exists(out):
        os.unlink(out)
    code, stderr = run([blockwatch, "report", source, "--report", out, *flags], env)
    report = None
    if os.path.exists(out):
        with open(out) as f:
            report = json.load(f)
    return code, stderr, report


def check_no_stream(blockwatch, env, tmp, name, path):
    out = os.path.join(tmp, "none.json")
    code, stderr, report = report_json(blockwatch, env, path, out)
    lines = error_lines(stderr)
    assert code == 2, (name, code, stderr)
    assert len(lines) == 1 and lines[0].startswith("blockwatch report: " + path), (name, stderr)
    assert "verdict" not in stderr and report is None, (name, stderr)


def main():
    blockwatch, library = sys.argv[1], sys.argv[2]
    env = dict(os.environ, BLOCKWATCH_LIBRARY=library)
    with tempfile.TemporaryDirectory() as tmp:
        good = record_good_stream(blockwatch, env, tmp)
        with open(good, "rb") as f:
            good_bytes = f.read()
        out = os.path.join(tmp, "out.json")

        code, stderr, good_report = report_json(blockwatch, env, good, out)
        assert code == 0, (code, stderr)
        good_events = good_report["summary"]["blocking_events"]
        assert good_events >= 1, good_report  # strict mode: the sleep
        assert "damaged" not in stderr, stderr

        def write(name, data):
            path = os.path.join(tmp, name)
            with open(path, "wb") as f:
                f.write(data)
            return path

        not_streams = {
            "text": write("passwd", b"root:x:0:0:root:/root:/bin/bash\n" * 4),
            "empty": write("empty.bwrec", b""),
            "cut header": write("cut-header.bwrec", good_bytes[:3]),
            "random": write("random.bwrec", random.Random(1).randbytes(5000)),
            "missing": os.path.join(tmp, "missing.bwrec"),
            "empty directory": os.path.join(tmp, "empty-dir"),
        }
        os.mkdir(not_streams["empty directory"])
        for name, path in not_streams.items():
            check_no_stream(blockwatch, env, tmp, name, path)

        garbage = random.Random(2).randbytes(300)
        for name, data in [("garbage after", good_bytes + garbage),
                           ("cut last frame", good_bytes[:-3])]:
            path = write(name.replace(" ", "-") + ".bwrec", data)
            code, stderr, report = report_json(blockwatch, env, path, out)
            lines = error_lines(stderr)
            assert code == INPUT_DAMAGED, (name, code, stderr)
            assert any(path in line and "stream damaged" in line for line in lines), stderr
            assert "report covers only what came before" in lines[-1], stderr
            assert report is not None and report["processes"], (name, stderr)
            if name == "garbage after":  # every frame of the good stream was kept
                assert report["summary"]["blocking_events"] == good_events, report

            code, stderr, _ = report_json(blockwatch, env, path, out, "--fail-on", "any")
            assert code == 3, (name, "--fail-on any", code, stderr)

        directory = os.path.join(tmp, "saved")
        os.mkdir(directory)
        write("saved/stream-1-pid1.bwrec", good_bytes)
        write("saved/stream-2-pid2.bwrec", b"not a stream at all\n")
        code, stderr, report = report_json(blockwatch, env, directory, out)
        assert code == INPUT_DAMAGED and "stream-2-pid2.bwrec" in stderr, (code, stderr)
        assert report["summary"]["blocking_events"] == good_events, report

        for bad_output in ["out.jsn", "out.bwrec"]:
            target = os.path.join(tmp, bad_output)
            code, stderr = run([blockwatch, "report", good, "--report", target], env)
            lines = error_lines(stderr)
            assert code == 2 and len(lines) == 1 and target in lines[0], (bad_output, stderr)
            assert not os.path.exists(target)
    print("blockwatch report: bad input is an error, damaged input says so (exit 4)")


if __name__ == "__main__":
    main()
