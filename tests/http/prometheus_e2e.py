#!/usr/bin/env python3
"""Fleet metrics through a real Prometheus (Debian's `prometheus` 2.42).

Starts `blockwatchd` with a path rule and its HTTP server on loopback, runs
blocking_program under the preload against it (its main thread, the worker,
waits on a contended mutex in contend_on_mutex()), starts Prometheus on
loopback scraping blockwatchd's /metrics every second, and asserts through
Prometheus' query API that blocked time is there per path and per hotspot
(named by the function that blocked), and that the README's PromQL example
answers. Nothing leaves 127.0.0.1; every wait is bounded.

usage: prometheus_e2e.py BLOCKWATCHD LIBRARY BLOCKING_PROGRAM
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from blockwatchd_http_e2e import wait_for_http_port  # the daemon prints its HTTP port

DEADLINE_S = 90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(prom_port, promql):
    url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def query_until(prom_port, promql, deadline):
    while True:
        try:
            result = query(prom_port, promql)
            if result:
                return result
        except OSError:
            pass  # Prometheus still starting
        if time.monotonic() > deadline:
            raise SystemExit(f"Prometheus never answered {promql!r}")
        time.sleep(0.5)


def main():
    blockwatchd, library, program = sys.argv[1:4]
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise SystemExit("prometheus is not installed (scripts/setup.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "rules.bwconfig")
        with open(config, "w") as f:
            f.write('path { name: "contention" frame: "contend_on_mutex" }\n')
        socket_path = os.path.join(tmp, "sock", "collector.sock")
        daemon = subprocess.Popen(
            [blockwatchd, "--listen", f"unix:{socket_path}", "--http", "127.0.0.1:0",
             "--config", config],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        prom = None
        try:
            metrics_port = wait_for_http_port(daemon)
            env = dict(os.environ, LD_PRELOAD=library, BLOCKWATCH_COLLECTOR=f"unix:{socket_path}",
                       BLOCKWATCH_WORKERS="main", BLOCKWATCH_THRESHOLD="5ms")
            run = subprocess.run([program, "0"], env=env, capture_output=True, text=True,
                                 timeout=60)
            assert run.returncode == 0, run.stderr

            prom_port = free_port()
            prom_config = os.path.join(tmp, "prometheus.yml")
            with open(prom_config, "w") as f:
                f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        "scrape_configs:\n  - job_name: blockwatch\n    static_configs:\n"
                        f"      - targets: ['127.0.0.1:{metrics_port}']\n")
            prom = subprocess.Popen(
                [prometheus, f"--config.file={prom_config}",
                 f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + DEADLINE_S

            per_path = query_until(
                prom_port, 'blockwatch_blocked_seconds_total{job="blockwatch",path="contention"}',
                deadline)
            assert per_path[0]["metric"]["kind"] == "mutex", per_path
            assert float(per_path[0]["value"][1]) >= 0.005, per_path

            per_hotspot = query_until(
                prom_port, 'blockwatch_hotspot_seconds_total{kind="mutex",function=~".*contend_on_mutex.*"}',
                deadline)
            labels = per_hotspot[0]["metric"]
            assert labels["kind"] == "mutex" and labels["path"] == "contention", labels
            assert labels["location"].startswith("blocking_program.cc:"), labels
            assert float(per_hotspot[0]["value"][1]) >= 0.005, per_hotspot

            # The README's PromQL example: blocked time per path over 5 minutes.
            example = query_until(
                prom_port, "sum by (path) (increase(blockwatch_blocked_seconds_total[5m]))",
                deadline)
            assert any(r["metric"].get("path") == "contention" for r in example), example
        finally:
            if prom is not None:
                prom.send_signal(signal.SIGTERM)
                try:
                    prom.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    prom.kill()
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
    print("prometheus: blocked time per path and per hotspot scraped and queried")


if __name__ == "__main__":
    main()
