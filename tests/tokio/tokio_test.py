#!/usr/bin/env python3
"""An unmodified tokio program under `blockwatch run --workers`: real blocking and
stalls on the runtime's workers are reported, and nothing else.

tokio_target (src/main.rs) runs a default multi-thread runtime whose workers and
blocking-pool threads are all named `tokio-runtime-worker`, so the `--workers`
name rule selects both; the built-in idle and not_worker rules must sort them out
by stack. The report must show:
  (a) the futex wait of a contended std::sync::Mutex, planted_mutex_contention
      in its stack;
  (b) the 20 ms std::thread::sleep, planted_sleep_on_worker in its stack;
  (c) exactly one stall whose stack is inside planted_cpu_loop_on_worker;
  (d) nothing from the spawn_blocking jobs or the block_in_place section
      (blocking_pool_* functions), and no fsync at all: only the pool fsyncs;
and no stall in tokio's own park/driver wait (the workers sit idle for 100 ms
between phases, longer than the 20 ms stall threshold) or without a stack (the
watchdog samples none while a worker sits in a syscall a signal would disturb:
allowed only when it overlaps a planted blocking call on the same thread). Rust
symbols must come out demangled (`tokio_target::...`, `tokio::runtime::...`).

The workers are chosen by their full name, `tokio-runtime-worker`, although
Linux keeps only its first 15 bytes (`tokio-runtime-w`): the rule must still
select them.

usage: tokio_test.py BLOCKWATCH LIBBLOCKWATCH TOKIO_TARGET
"""
import json
import os
import re
import subprocess
import sys
import tempfile

WORKERS = "name:tokio-runtime-worker"
PLANTED = ("planted_mutex_contention", "planted_sleep_on_worker", "planted_cpu_loop_on_worker")
# tokio's own idle wait: a stall sampled in one of these is a parked worker. A
# method is `Type::method` in Rust's legacy mangling, `<Type>::method` in v0.
TOKIO_IDLE = re.compile(r"tokio::runtime::(park::|scheduler::multi_thread::park::|"
                        r"scheduler::multi_thread::worker::Context>?::park|time::Driver>?::park|"
                        r"io::driver::Driver>?::turn)|mio::poll::Poll>?::poll")

MANGLED = re.compile(r"_ZN|_R[A-Z]")  # C++ and legacy Rust mangling; Rust v0

failures = []


def check(condition, message, evidence=None):
    if condition:
        return
    text = message if evidence is None else message + "\n    evidence: " + json.dumps(evidence)[:3000]
    failures.append(text)


def functions(hotspot):
    return [frame["function"] for frame in hotspot["stack"]]


def has_function(hotspot, name):
    return any(name in function for function in functions(hotspot))


def waited_for_a_cpu(hotspot):
    """A stall that spent at least half its time runnable but not running: the
    machine's load stretched a turn, not the program (stall_test's rule too)."""
    return hotspot["kind"] == "stall" and 2 * hotspot.get("runqueue_ns", 0) >= hotspot["total_ns"]


def overlaps_one_of(occurrence, others):
    """Same thread, overlapping in time."""
    start = occurrence["start_unix_ns"]
    end = start + occurrence["duration_ns"]
    return any(o["tid"] == occurrence["tid"] and o["start_unix_ns"] < end
               and start < o["start_unix_ns"] + o["duration_ns"] for o in others)


def brief(hotspot):
    """The part of a hotspot worth printing when an assertion fails."""
    return {key: hotspot.get(key) for key in ("kind", "count", "max_ns", "threads", "functions")} | {
        "stack": functions(hotspot)[:24]}


def run_target(blockwatch, library, target, tmp, workers):
    """Runs tokio_target under `blockwatch run`; returns the JSON report, the same
    run re-rendered without the built-in rules (what the library recorded), and
    blockwatch's stderr."""
    report, raw_stream = os.path.join(tmp, "run.json"), os.path.join(tmp, "run.bwrec")
    env = dict(os.environ, BLOCKWATCH_LIBRARY=library)
    done = subprocess.run([blockwatch, "run", "--workers", workers, "--stall-threshold", "20ms",
                           "--report", report, "--report", raw_stream, "--", target, tmp],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=40)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert b"tokio_target: all phases done" in done.stdout, done.stdout
    no_rules, raw_report = os.path.join(tmp, "no_rules.conf"), os.path.join(tmp, "raw.json")
    with open(no_rules, "w") as f:
        f.write("no_builtin_rules: true\n")
    rendered = subprocess.run([blockwatch, "report", raw_stream, "--config", no_rules,
                               "--report", raw_report], capture_output=True, timeout=30)
    assert rendered.returncode == 0, (rendered.returncode, rendered.stderr)
    with open(report) as f, open(raw_report) as g:
        return json.load(f), json.load(g), done.stderr.decode(errors="replace")


def check_recorded(raw):
    """What the library recorded, before any collector rule: the planted calls,
    with demangled Rust names. (Whether it records the blocking pool's calls is
    its own business: it may demote a pool thread at its first idle wait.)"""
    hotspots = raw["hotspots"]
    all_functions = [f for h in hotspots for f in functions(h)]
    check(any(f.startswith("tokio_target::") and f.endswith("::planted_mutex_contention")
              for f in all_functions),
          "recorded: planted functions demangled (tokio_target::planted_*)", all_functions[:40])
    check(any(f.startswith("tokio::runtime::scheduler::multi_thread::worker::") for f in
              all_functions), "recorded: tokio frames demangled (tokio::runtime::...)",
          all_functions[:40])
    # Mangled names must be demangled: legacy (_ZN..E, Debian's rustc's default)
    # and v0 (_R..., tokio_target_v0, and a newer toolchain's std).
    check(not any(MANGLED.match(f) for f in all_functions),
          "recorded: no mangled Rust names",
          [f for f in all_functions if MANGLED.match(f)])
    futex = [h for h in hotspots
             if h["kind"] == "futex" and has_function(h, "planted_mutex_contention")]
    check(futex, "recorded: (a) the std::sync::Mutex futex wait (std calls syscall(SYS_futex))",
          [brief(h) for h in hotspots])
    check(any(h["kind"] == "sleep" and has_function(h, "planted_sleep_on_worker")
              for h in hotspots), "recorded: (b) the sleep on a worker",
          [brief(h) for h in hotspots])
    stalls = [h for h in hotspots if h["kind"] == "stall"]
    check(sum(h["count"] for h in stalls if has_function(h, "planted_cpu_loop_on_worker")) == 1,
          "recorded: (c) exactly one stall inside planted_cpu_loop_on_worker",
          [brief(h) for h in stalls])


def check_report(report):
    processes = report["processes"]
    check(len(processes) == 1 and processes[0]["said_goodbye"], "one process, flushed",
          processes)
    check(processes[0]["events"] > 0, "the workers were recognised by name (events > 0)",
          processes)
    check(processes[0]["dropped"] == 0, "nothing dropped", processes)
    hotspots = [h for h in report["hotspots"] if h["kind"] != "hang"]
    # Unplanted stalls of a loaded machine: noted, not judged.
    load = [h for h in hotspots if waited_for_a_cpu(h)
            and not any(has_function(h, p) for p in PLANTED)]
    for h in load:
        print(f"note: a stall that mostly waited for a CPU ({h['runqueue_ns']} of "
              f"{h['total_ns']} ns), left out", file=sys.stderr)
    hotspots = [h for h in hotspots if h not in load]
    stalls = [h for h in hotspots if h["kind"] == "stall"]
    blocking = [h for h in hotspots if h["kind"] != "stall"]

    # (a) the contended std::sync::Mutex: a futex wait in planted_mutex_contention.
    contention = [h for h in blocking
                  if h["kind"] == "futex" and has_function(h, "planted_mutex_contention")]
    check(contention, "(a) futex wait with planted_mutex_contention in its stack",
          [brief(h) for h in blocking])
    check(any(h["max_ns"] >= 5_000_000 for h in contention),
          "(a) the futex wait lasted a good part of the 30 ms hold",
          [brief(h) for h in contention])

    # (b) std::thread::sleep(20 ms) on a worker.
    sleeps = [h for h in blocking
              if h["kind"] == "sleep" and has_function(h, "planted_sleep_on_worker")]
    check(sleeps and max(h["max_ns"] for h in sleeps) >= 19_000_000,
          "(b) a >= 19 ms sleep with planted_sleep_on_worker in its stack",
          [brief(h) for h in blocking])

    # (c) the 60 ms CPU loop: exactly one stall (later samples of the same stall
    # are merged), sampled inside the loop.
    cpu_stalls = [h for h in stalls if has_function(h, "planted_cpu_loop_on_worker")]
    check(sum(h["count"] for h in cpu_stalls) == 1,
          "(c) exactly one stall inside planted_cpu_loop_on_worker",
          [brief(h) for h in stalls])

    # (d) the blocking pool's jobs are legitimate: nothing from them at all.
    from_pool = [h for h in hotspots if has_function(h, "blocking_pool_")]
    check(not from_pool, "(d) nothing from the spawn_blocking jobs or block_in_place",
          [brief(h) for h in from_pool])
    fsyncs = [h for h in hotspots if h["kind"] == "fsync"]
    check(not fsyncs, "(d) no fsync (only the blocking pool fsyncs)", [brief(h) for h in fsyncs])

    # (e) a thread a task started inherits the worker's name: not a worker.
    helper = [h for h in hotspots if has_function(h, "helper_thread_inherited_name")]
    check(not helper, "(e) nothing from a helper thread that only inherited a worker's name",
          [brief(h) for h in helper])

    # No stall without a stack, none in tokio's own idle wait.
    # A stall is sampled without a stack only while its worker sits in a syscall
    # that a signal would disturb (the watchdog then names the call instead): it
    # must be one of the planted blocking calls, seen from the watchdog's side.
    planted_calls = [o for h in blocking if any(has_function(h, p) for p in PLANTED)
                     for o in h["occurrences"]]
    stackless = [h for h in stalls if not h["stack"]
                 and not all(overlaps_one_of(o, planted_calls) for o in h["occurrences"])]
    check(not stackless, "no stall without a stack, except during a planted blocking call",
          [brief(h) | {"occurrences": h["occurrences"]} for h in stackless]
          + [{"planted_calls": planted_calls}])
    parked = [h for h in stalls if any(TOKIO_IDLE.search(f) for f in functions(h))
              and not any(has_function(h, p) for p in PLANTED)]
    check(not parked, "no stall in tokio's park/driver idle wait", [brief(h) for h in parked])

    # And nothing else: every reported hotspot comes from a planted function.
    unexplained = [h for h in hotspots if not h.get("allowed")
                   and not any(has_function(h, p) for p in PLANTED)]
    check(not unexplained, "every reported hotspot comes from a planted function",
          [brief(h) for h in unexplained])


def main():
    blockwatch, library, target = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        report, raw, stderr = run_target(blockwatch, library, target, tmp, WORKERS)
        check(report["processes"][0]["events"] > 0,
              f"--workers {WORKERS} selects tokio's workers (events > 0)", report["processes"])
        if os.environ.get("TOKIO_TEST_KEEP_REPORT"):
            with open(os.environ["TOKIO_TEST_KEEP_REPORT"], "w") as f:
                json.dump(report, f, indent=1)
    check_recorded(raw)
    check_report(report)
    if failures:
        print(stderr, file=sys.stderr)
        for message in failures:
            print("FAILED: " + message, file=sys.stderr)
        sys.exit(1)
    print("tokio: all checks passed; blocking pool and idle parks not reported")


if __name__ == "__main__":
    main()
