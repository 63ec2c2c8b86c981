#!/usr/bin/env python3
"""Bad options, config files and report paths stop blockwatch before any work.

`blockwatch run`: each bad setting (a report path with an unknown format,
/dev/null, a missing or unwritable directory, a path under a regular file, a
report path from the config file; bad durations from a flag or the
environment; a flag missing its value; bad --fail-on, --baseline, --config;
config files with a syntax error, a bad duration, a bad regex; a bad
--workers selector from a flag, the environment or the config; an unknown
option) gives exit 2 and one line on stderr, and CMD (`touch MARKER`) never
runs. A report that can no longer be written when CMD ends (CMD removed its
directory) turns CMD's success into exit 2. `blockwatchd`: bad report paths,
--save, --http and --listen values and config errors give exit 2 and one line,
before it listens (its socket is never created). A good run and a good
blockwatchd start are the controls.

usage: checks_before_start.py BLOCKWATCH LIBBLOCKWATCH BLOCKWATCHD
"""
import os
import signal
import subprocess
import sys
import tempfile


def lines_of(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


def unwritable_directory(tmp):
    """A directory this process cannot create files in (root ignores modes: then
    sysfs, which refuses file creation even to root)."""
    if os.geteuid() != 0:
        path = os.path.join(tmp, "read-only")
        os.mkdir(path, 0o500)
        return path
    assert os.path.ismount("/sys"), "no sysfs: no directory root cannot write"
    return "/sys"


def config_file(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def directory_named(tmp, name):
    path = os.path.join(tmp, name)
    os.mkdir(path)
    return path


def bad_run_settings(tmp):
    """(name, extra environment, flags, text the one stderr line must contain)."""
    regular_file = config_file(tmp, "regular.txt", "")
    return [
        ("unknown format", {}, ["--report", os.path.join(tmp, "out.jsn")], "unknown report format"),
        ("/dev/null", {}, ["--report", "/dev/null"], "unknown report format"),
        ("missing directory", {}, ["--report", os.path.join(tmp, "no/such/dir/r.json")],
         "does not exist"),
        ("unwritable directory", {},
         ["--report", os.path.join(unwritable_directory(tmp), "blockwatch-test.json")],
         "cannot create"),
        ("under a regular file", {}, ["--report", regular_file + "/r.json"], "cannot create"),
        ("a directory", {}, ["--report", directory_named(tmp, "dir.json")], "not a regular file"),
        ("report from config", {},
         ["--config", config_file(tmp, "report.conf", 'report: "out.jsn"\n')],
         "unknown report format"),
        ("bad threshold", {}, ["--threshold", "abc"], 'bad threshold "abc"'),
        ("threshold missing its value", {}, ["--threshold"], "--threshold needs a value"),
        ("bad stall threshold", {}, ["--stall-threshold", "1h"], "bad stall threshold"),
        ("bad environment threshold", {"BLOCKWATCH_THRESHOLD": "soon"}, [], "bad threshold"),
        ("bad fail-on", {}, ["--fail-on", "sometimes"], "--fail-on sometimes"),
        ("bad fail-on duration", {}, ["--fail-on", "blocking>=x"], "bad duration"),
        ("missing baseline", {}, ["--baseline", os.path.join(tmp, "none.json")], "--baseline"),
        ("missing config", {}, ["--config", os.path.join(tmp, "none.conf")],
         "cannot open config file"),
        ("config syntax", {}, ["--config", config_file(tmp, "syntax.conf", "threshold: {\n")],
         "syntax.conf:"),
        ("config unknown field", {}, ["--config", config_file(tmp, "field.conf", "color: 1\n")],
         'no field named "color"'),
        ("config duration", {},
         ["--config", config_file(tmp, "duration.conf", 'threshold: "abc"\n')], "bad duration"),
        ("config regex", {},
         ["--config", config_file(tmp, "regex.conf", 'idle { frame: "[" }\n')], "bad regex"),
        ("unknown option", {}, ["--colour"], "unknown option --colour"),
        ("misspelt worker rule", {}, ["--workers", "mian"], "'mian'"),
        ("bad worker regex", {}, ["--workers", "main,name:pool-[0-9"], "bad regular expression"),
        ("empty exe selector", {}, ["--workers", "main,exe:"], "names no executable"),
        ("bad environment workers", {"BLOCKWATCH_WORKERS": "name:("}, [],
         "bad regular expression"),
        ("config workers", {},
         ["--config", config_file(tmp, "workers.conf", 'workers: "thread:x"\n')], "'thread:x'"),
    ]


def check_run(blockwatch, env, tmp):
    marker = os.path.join(tmp, "cmd-ran")
    for name, extra_env, flags, expected in bad_run_settings(tmp):
        result = subprocess.run([blockwatch, "run", *flags, "--", "touch", marker],
                                env=dict(env, **extra_env), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=60)
        lines = lines_of(result.stderr)
        assert result.returncode == 2, (name, result.returncode, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("blockwatch run: "), (name, result.stderr)
        assert expected in lines[0], (name, expected, result.stderr)
        assert not os.path.exists(marker), (name, "CMD ran")

    good = os.path.join(tmp, "good.json")
    result = subprocess.run([blockwatch, "run", "--report", good, "--", "touch", marker], env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and os.path.exists(marker), result.stderr
    assert os.path.exists(good), result.stderr

    # Checked before CMD, gone after it: the report is lost, and the exit says so.
    doomed = os.path.join(tmp, "doomed")
    os.mkdir(doomed)
    result = subprocess.run([blockwatch, "run", "--report", doomed + "/r.json", "--",
                             "rm", "-r", doomed], env=env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "r.json" in result.stderr, (result.returncode,
                                                                  result.stderr)


def check_daemon(blockwatchd, tmp):
    socket_path = os.path.join(tmp, "daemon", "c.sock")
    listen = ["--listen", "unix:" + socket_path]
    regular_file = config_file(tmp, "daemon-regular.txt", "")
    cases = [
        ("unknown format", listen + ["--report", os.path.join(tmp, "d.jsn")],
         "unknown report format"),
        ("missing directory", listen + ["--report", os.path.join(tmp, "no/d.json")],
         "does not exist"),
        ("raw stream report", listen + ["--report", os.path.join(tmp, "d.bwrec")], "--save"),
        ("save is a file", listen + ["--save", regular_file], "not a directory"),
        ("bad http address", listen + ["--http", "nowhere"], "--http nowhere"),
        ("bad listen", ["--listen", "udp:1"], "--listen udp:1"),
        ("bad interval", listen + ["--pyroscope-interval", "0"], "--pyroscope-interval"),
        ("config syntax", listen + ["--config", config_file(tmp, "d.conf", "threshold {\n")],
         "d.conf:"),
    ]
    for name, flags, expected in cases:
        result = subprocess.run([blockwatchd, *flags], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=60)
        lines = lines_of(result.stderr)
        assert result.returncode == 2, (name, result.returncode, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("blockwatchd: "), (name, result.stderr)
        assert expected in lines[0], (name, expected, result.stderr)
        assert not os.path.exists(socket_path), (name, "it listened")

    # Control: good settings start; the report is written when it stops.
    report = os.path.join(tmp, "daemon.json")
    daemon = subprocess.Popen([blockwatchd, *listen, "--report", report],
                              stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = daemon.stderr.readline()  # printed once every listener is up
    assert "listening on unix:" in first, first
    daemon.send_signal(signal.SIGTERM)
    rest = daemon.communicate(timeout=60)[1]
    assert daemon.returncode == 0 and os.path.exists(report), (daemon.returncode, first, rest)


def main():
    blockwatch, library, blockwatchd = sys.argv[1:4]
    env = dict(os.environ, BLOCKWATCH_LIBRARY=library)
    for name in ["BLOCKWATCH_THRESHOLD", "BLOCKWATCH_STALL_THRESHOLD", "BLOCKWATCH_WORKERS",
                 "BLOCKWATCH_FAIL_ON", "BLOCKWATCH_BASELINE"]:
        env.pop(name, None)
    with tempfile.TemporaryDirectory() as tmp:
        check_run(blockwatch, env, tmp)
        check_daemon(blockwatchd, tmp)
    print("bad settings: exit 2 and one line before CMD runs or blockwatchd listens")


if __name__ == "__main__":
    main()
