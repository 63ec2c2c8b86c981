#!/usr/bin/env python3
"""End to end: the real `blockwatchd --http 127.0.0.1:0` serves every route.

Starts blockwatchd on a private Unix socket with the HTTP server on an ephemeral
loopback port (read back from its stderr), fetches each route with urllib, parses
/metrics and /api/report, runs `go tool pprof -top` on the profile URL, sends a
malformed request, then stops the daemon with SIGTERM.

usage: blockwatchd_http_e2e.py BLOCKWATCHD GO
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def fetch(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def wait_for_http_port(daemon):
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        line = daemon.stderr.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"http on 127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match.group(1))
    raise SystemExit("blockwatchd did not report its HTTP port:\n" + "".join(seen))


def check_routes(port, go):
    status, content_type, body = fetch(port, "/")
    assert status == 200 and content_type.startswith("text/html"), (status, content_type)
    assert b"<html" in body.lower() or b"<!doctype" in body.lower(), body[:200]

    status, content_type, body = fetch(port, "/api/report")
    assert status == 200 and content_type == "application/json", (status, content_type)
    report = json.loads(body)
    assert report["version"] == 1, report

    status, content_type, body = fetch(port, "/metrics")
    assert status == 200 and "version=0.0.4" in content_type, (status, content_type)
    series = {}
    for line in body.decode().splitlines():
        if line.startswith("#"):
            assert re.match(r"# (HELP|TYPE) \w+ .+", line), line
            continue
        name, value = line.rsplit(" ", 1)
        series[name] = float(value)
    assert series['blockwatch_processes{state="connected"}'] == 0, series
    assert series["blockwatch_collector_resident_memory_bytes"] > 1 << 20, series

    status, _, body = fetch(port, "/nope")
    assert status == 404, status

    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = raw.recv(64)
        assert answer.startswith(b"HTTP/1.1 400"), answer

    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, HOME=home, PPROF_TMPDIR=home)
        pprof = subprocess.run([go, "tool", "pprof", "-top", f"http://127.0.0.1:{port}/debug/pprof/block"],
                               env=env, capture_output=True, text=True, timeout=60)
        assert pprof.returncode == 0, pprof.stdout + pprof.stderr
        assert "Type: delay" in pprof.stdout, pprof.stdout


def main():
    blockwatchd, go = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        daemon = subprocess.Popen(
            [blockwatchd, "--listen", f"unix:{tmp}/sock/collector.sock", "--http", "127.0.0.1:0"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            port = wait_for_http_port(daemon)
            check_routes(port, go)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                raise
    print("blockwatchd http: all routes ok")


if __name__ == "__main__":
    main()
