#!/usr/bin/env python3
"""`blockwatch run` shows a live status line on a terminal's stderr, and only there.

On a real pty (util-linux `script -qc`, which gives the command a terminal) the
run's output must contain the status line ("blockwatch: N process(es), E events,
S stalls, D dropped"), refreshed with \\r, and the erase sequence (\\r ESC[K)
before the report; on a 40-column terminal it is cut to fit. With stderr a pipe,
neither may appear. CMD is a shell that
sleeps ~1.2 s, long enough for several refreshes.

usage: run_status_line.py BLOCKWATCH LIBBLOCKWATCH
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile

STATUS = re.compile(rb"\rblockwatch: \d+ process(es)?, \d+ events, \d+ stalls, \d+ dropped")
ERASE = b"\r\x1b[K"


def run_args(blockwatch, report):
    return [blockwatch, "run", "--report", report, "--", "sh", "-c", "sleep 1.2; exit 0"]


def main():
    blockwatch, library = sys.argv[1], sys.argv[2]
    env = dict(os.environ, BLOCKWATCH_LIBRARY=library, TERM="xterm")
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "run.json")
        command = shlex.join(run_args(blockwatch, report))
        on_tty = subprocess.run(["script", "-qec", command, "/dev/null"], env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        output = on_tty.stdout
        assert on_tty.returncode == 0, (on_tty.returncode, output, on_tty.stderr)
        refreshes = STATUS.findall(output)
        assert len(refreshes) >= 2, output  # ~4 per second over 1.2 s
        last_status = max(m.end() for m in STATUS.finditer(output))
        assert output.find(ERASE, last_status) >= 0, output  # erased after the last one
        assert os.path.exists(report)

        # On a 40-column terminal each refresh fits in 39 columns (no wrapping).
        narrow = subprocess.run(["script", "-qec", "stty cols 40; " + command, "/dev/null"],
                                env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=60)
        assert narrow.returncode == 0, (narrow.returncode, narrow.stdout)
        shown = re.findall(rb"\r(blockwatch: [^\r\x1b]*)\x1b\[K", narrow.stdout)
        assert len(shown) >= 2 and all(len(text) <= 39 for text in shown), narrow.stdout

        piped = subprocess.run(run_args(blockwatch, report), env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=60)
        assert piped.returncode == 0, (piped.returncode, piped.stderr)
        assert not STATUS.search(piped.stderr) and ERASE not in piped.stderr, piped.stderr
        assert b"\r" not in piped.stderr, piped.stderr
    print("blockwatch run: status line on a tty only")


if __name__ == "__main__":
    main()
