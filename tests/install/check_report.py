#!/usr/bin/env python3
"""Checks a blockwatch JSON report for a planted blocking call: a sleep of at
least 40 ms, not allowed, with FUNCTION on its stack (and TASK among its
occurrences' tasks, when given). Exits 0 when found, else says what was there.
Usage: check_report.py REPORT.json FUNCTION [TASK]"""
import json
import sys


def main() -> None:
    report, function = sys.argv[1], sys.argv[2]
    task = sys.argv[3] if len(sys.argv) > 3 else None
    with open(report, encoding="utf-8") as f:
        hotspots = json.load(f)["hotspots"]
    for h in hotspots:
        frames = [frame["function"] for frame in h["stack"]]
        if h["kind"] != "sleep" or not any(function in frame for frame in frames):
            continue
        if h["allowed"] or h["max_ns"] < 40_000_000:
            sys.exit(f"{function}: allowed={h['allowed']} max_ns={h['max_ns']}")
        tasks = [o["task"] for o in h["occurrences"]]
        if task is not None and task not in tasks:
            sys.exit(f"{function}: task {task} not among {tasks}")
        return
    found = "; ".join(f"{h['kind']} {[fr['function'] for fr in h['stack']][:3]}" for h in hotspots)
    sys.exit(f"no sleep at {function} in {report}; found: {found or 'nothing'}")


if __name__ == "__main__":
    main()
