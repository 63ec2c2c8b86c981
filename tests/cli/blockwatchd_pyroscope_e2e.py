#!/usr/bin/env python3
"""End to end: `blockwatchd --pyroscope-url URL` POSTs pprof profiles to URL/ingest.

A tiny http.server subclass on an ephemeral loopback port stands in for Grafana
Pyroscope and captures every request. The real blockwatchd runs with
--pyroscope-url pointing at it, a custom --pyroscope-name and a short
--pyroscope-interval; the test waits for a POST and checks its path, query,
multipart body and that the "profile" part is a gzipped pprof profile that
`go tool pprof -top` reads as a delay profile. Also checks that a bad URL is a
usage error (exit 2)
and that --help documents the flags.

usage: blockwatchd_pyroscope_e2e.py BLOCKWATCHD [GO]
"""
import gzip
import http.server
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.parse

APP_NAME = "blockwatch.block{env=ci}"


class FakePyroscope(http.server.BaseHTTPRequestHandler):
    captured = queue.Queue()

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.captured.put((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def profile_part(content_type, body):
    assert content_type.startswith("multipart/form-data; boundary="), content_type
    boundary = content_type.split("boundary=", 1)[1].encode()
    for part in body.split(b"--" + boundary):
        headers, _, content = part.partition(b"\r\n\r\n")
        if b'name="profile"' in headers:
            assert content.endswith(b"\r\n"), content[-8:]
            return content[:-2]
    raise AssertionError("no part named profile in " + repr(body[:300]))


def check_push(path, content_type, body, go):
    url = urllib.parse.urlsplit(path)
    assert url.path == "/prefix/ingest", path
    query = urllib.parse.parse_qs(url.query)
    assert query["name"] == [APP_NAME], query
    assert query["format"] == ["pprof"], query
    assert int(query["until"][0]) > int(query["from"][0]) > 1_600_000_000, query
    profile = profile_part(content_type, body)
    assert profile[:2] == b"\x1f\x8b", profile[:8]  # gzip, as pprof files are
    raw = gzip.decompress(profile)
    assert b"contentions" in raw and b"delay" in raw, raw[:200]
    if go:
        with tempfile.TemporaryDirectory() as home:
            file = os.path.join(home, "pushed.pb.gz")
            with open(file, "wb") as f:
                f.write(profile)
            env = dict(os.environ, HOME=home, PPROF_TMPDIR=home)
            pprof = subprocess.run([go, "tool", "pprof", "-top", file], env=env,
                                   capture_output=True, text=True, timeout=60)
            assert pprof.returncode == 0, pprof.stdout + pprof.stderr
            assert "Type: delay" in pprof.stdout, pprof.stdout


def check_help_documents_the_flags(blockwatchd):
    result = subprocess.run([blockwatchd, "--help"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result
    for flag in ("--pyroscope-url", "--pyroscope-name", "--pyroscope-interval"):
        assert flag in result.stdout, (flag, result.stdout)


def check_bad_url_is_usage_error(blockwatchd, tmp):
    result = subprocess.run([blockwatchd, "--listen", f"unix:{tmp}/bad/c.sock",
                             "--pyroscope-url", "https://nope:4040"],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "--pyroscope-url" in result.stderr, result.stderr


def main():
    blockwatchd = sys.argv[1]
    go = sys.argv[2] if len(sys.argv) > 2 else None
    server = http.server.HTTPServer(("127.0.0.1", 0), FakePyroscope)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        check_help_documents_the_flags(blockwatchd)
        check_bad_url_is_usage_error(blockwatchd, tmp)
        daemon = subprocess.Popen(
            [blockwatchd, "--listen", f"unix:{tmp}/sock/collector.sock",
             "--pyroscope-url", f"http://127.0.0.1:{port}/prefix/",
             "--pyroscope-name", APP_NAME, "--pyroscope-interval", "200ms"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            try:
                path, content_type, body = FakePyroscope.captured.get(timeout=30)
            except queue.Empty:
                daemon.kill()
                raise SystemExit("no push arrived:\n" + daemon.communicate()[1])
            check_push(path, content_type, body, go)
            # The next interval is pushed too (the timer re-arms after a 2xx).
            FakePyroscope.captured.get(timeout=30)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                raise
        assert daemon.returncode == 0, daemon.returncode
    server.shutdown()
    print("blockwatchd --pyroscope-url: pushes ok")


if __name__ == "__main__":
    main()
