#!/usr/bin/env python3
"""`blockwatchd --listen tcp:PORT` and `--http PORT` without a host bind loopback.

Runs the real blockwatchd with `--listen tcp:0 --http 0`, reads the bound ports
from its stderr, and checks in /proc/net/tcp (the kernel's view, not the
daemon's word) that both listening sockets are bound to 127.0.0.1 and not to
0.0.0.0; then that a client can connect to each. An explicit host
(`tcp:0.0.0.0:0`) is honoured. Also: `--listen tcp:` without a port is a usage
error.

usage: blockwatchd_loopback_default.py BLOCKWATCHD
"""
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

TCP_LISTEN = "0A"


def listening_addresses(port):
    """Local IPv4 addresses (dotted) of sockets listening on `port`."""
    found = []
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            address_hex, port_hex = fields[1].split(":")
            if int(port_hex, 16) == port and fields[3] == TCP_LISTEN:
                raw = bytes.fromhex(address_hex)[::-1]  # little-endian on x86/arm
                found.append(".".join(str(b) for b in raw))
    return found


def start(blockwatchd, tmp, *flags):
    daemon = subprocess.Popen([blockwatchd, "--listen", f"unix:{tmp}/sock/c.sock", *flags],
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    return daemon


def read_ports(daemon, want_http):
    tcp_port = http_port = None
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (tcp_port is None or (want_http and http_port is None)):
        line = daemon.stderr.readline()
        if not line:
            break
        seen.append(line)
        if match := re.search(r"listening on tcp:([\d.]+):(\d+)", line):
            tcp_port = (match.group(1), int(match.group(2)))
        if match := re.search(r"http on ([\d.]+):(\d+)", line):
            http_port = (match.group(1), int(match.group(2)))
    assert tcp_port and (http_port or not want_http), "".join(seen)
    return tcp_port, http_port


def stop(daemon):
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=20)
    except subprocess.TimeoutExpired:
        daemon.kill()
        raise


def check_default_is_loopback(blockwatchd, tmp):
    daemon = start(blockwatchd, tmp, "--listen", "tcp:0", "--http", "0")
    try:
        (tcp_host, tcp_port), (http_host, http_port) = read_ports(daemon, want_http=True)
        assert tcp_host == "127.0.0.1" and http_host == "127.0.0.1", (tcp_host, http_host)
        for port in (tcp_port, http_port):
            assert listening_addresses(port) == ["127.0.0.1"], (port, listening_addresses(port))
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
    finally:
        stop(daemon)


def check_explicit_host_is_honoured(blockwatchd, tmp):
    daemon = start(blockwatchd, tmp, "--listen", "tcp:0.0.0.0:0")
    try:
        (host, port), _ = read_ports(daemon, want_http=False)
        assert host == "0.0.0.0", host
        assert listening_addresses(port) == ["0.0.0.0"], listening_addresses(port)
    finally:
        stop(daemon)


def check_missing_port_is_usage_error(blockwatchd, tmp):
    for bad in ("tcp:", "tcp:abc", "tcp:70000"):
        result = subprocess.run([blockwatchd, "--listen", bad], capture_output=True,
                                text=True, timeout=20)
        assert result.returncode == 2 and "--listen" in result.stderr, (bad, result)


def main():
    blockwatchd = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        check_default_is_loopback(blockwatchd, tmp)
        check_explicit_host_is_honoured(blockwatchd, tmp)
        check_missing_port_is_usage_error(blockwatchd, tmp)
    print("blockwatchd: tcp and http listeners default to loopback")


if __name__ == "__main__":
    main()
