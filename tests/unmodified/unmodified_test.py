#!/usr/bin/env python3
"""Unmodified programs under `blockwatch run --workers name:...` (issue 4).

Runs one program (asio_unmodified or condvar_pool) under the real CLI with only
a thread-name worker rule and the built-in idle rules, and asserts its JSON
report: exactly the planted blocking hotspots (by top function), exactly one
stall with its sampled stack inside the planted CPU loop, no stall without a
stack or inside the executor's idle wait, nothing from non-worker threads.

Task boundaries from the task-entry probe (issue 9), asio_tasks with one
worker and `--fail-on stall>=30ms`:
  asio_burst   200 handlers of 0.5 ms at once: no stall, the run passes
  asio_busy    a busy queue with one 120 ms handler: exactly one stall, scope
               "task", its stack in planted_long_handler; the run fails
  asio_burst_no_probes  BLOCKWATCH_PROBES=off: the burst is one loop turn, so
               exactly one stall of scope "turn"; `stall>=` does not fail on
               it, `turn-stall>=` does
  custom_entry  a loop of the program's own that never waits, with a config
               `task_entry: "custom_run_one"`: exactly one task stall, in the
               long job (custom_no_entry: the same without the rule, no stall)

Per-task statistics (issue 9 item 3), asio_tasks `mix` (2000 empty and 50 3 ms
handlers): task_stats_sampled (1 in 4 timed) and task_stats_all (every task
timed) assert the exact task count, a plausible p50/max, an over-1 ms count,
and that sampled numbers are reported as estimates.

demo_plain: the demo service without blockwatch code (examples/), all its
requests posted at once (a busy queue, no idle wait between handlers) under
examples/demo.bwconfig and `--workers name:pool-.*`: its long-prompt Tokenize
calls are reported as task stalls with model::Tokenize in the stack.

usage: unmodified_test.py BLOCKWATCH_CLI PROGRAM SCENARIO [CONFIG]
"""
import json
import os
import re
import subprocess
import sys
import tempfile

SCENARIOS = {
    "asio": {
        "workers": "name:svc-worker-.*",
        "thread_re": r"svc-worker-\d",
        "blocking": {("mutex", "planted_mutex_handler"), ("sleep", "planted_sleep_handler")},
        "stall_function": "planted_cpu_loop_handler",
    },
    "pool": {
        "workers": "name:pool-worker-.*",
        "thread_re": r"pool-worker-\d",
        "blocking": {("sleep", "planted_pool_sleep_job")},
        "stall_function": "planted_pool_cpu_job",
    },
}
# Frames a user does not write: where the top function is not.
SYSTEM_MODULES = ("libc.so", "libc-", "libpthread", "ld-linux", "libblockwatch", "libstdc++",
                  "libgcc_s", "linux-vdso")
IDLE_WAIT_FUNCTIONS = ("scheduler::do_run_one", "scheduler::run", "posix_event::wait",
                       "worker_loop")
# The executor's own queue lock: on a loaded 2-core CI machine a worker preempted
# while holding it makes another wait for it, for real. Not what is tested here,
# so such mutex hotspots are tolerated (and printed), never required.
EXECUTOR_LOCK_FUNCTIONS = ("scheduler::do_run_one()", "scheduler::run()",
                           "Pool::worker_loop()")


# ... nor libstdc++/libc functions inlined into the user's code (a lock_guard's
# __gthread_mutex_lock shows as an inlined frame of the program itself).
SYSTEM_FUNCTION_PREFIXES = ("__", "std::", "pthread_")


def top_function(stack):
    for frame in stack:
        if os.path.basename(frame.get("module", "")).startswith(SYSTEM_MODULES):
            continue
        if frame["function"].startswith(SYSTEM_FUNCTION_PREFIXES):
            continue
        return frame["function"]
    return ""


def check(report, scenario):
    failures = []
    hotspots = report["hotspots"]
    thread_re = re.compile(scenario["thread_re"])
    for hotspot in hotspots:
        if not hotspot["threads"]:
            failures.append(f"a {hotspot['kind']} hotspot names no thread: cannot tell whose")
        for thread in hotspot["threads"]:
            if not thread_re.fullmatch(thread):
                failures.append(f"hotspot on a non-worker thread {thread}: {hotspot['kind']}")
    blocking = []
    for h in hotspots:
        if h["kind"] == "stall":
            continue
        if h["kind"] == "mutex" and top_function(h["stack"]).endswith(EXECUTOR_LOCK_FUNCTIONS):
            print(f"note: the executor's own lock blocked {h['count']}x, max {h['max_ns']} ns")
            continue
        blocking.append(h)
    found = {(h["kind"], top_function(h["stack"])) for h in blocking}
    if found != scenario["blocking"]:
        failures.append(f"blocking hotspots {sorted(found)}, want {sorted(scenario['blocking'])}")
    for hotspot in blocking:
        if hotspot["count"] != 1:
            failures.append(f"{hotspot['kind']} hotspot seen {hotspot['count']}x, want once")
    stalls = [h for h in hotspots if h["kind"] == "stall"]
    # A planted blocking call that a loaded machine stretched past the stall
    # threshold (its lock holder overslept) makes its turn a stall too, shown with
    # the call's stack: true, and not what the count below is about.
    planted_calls = {function for _, function in scenario["blocking"]}
    stalls = [h for h in stalls if not (h.get("stack_source") == "blocking_call"
                                        and top_function(h["stack"]) in planted_calls)]
    # So does a loaded machine: a turn that spent at least half its time runnable
    # but not running is the machine's stall (stall_test's rule too), not judged.
    for h in [h for h in stalls if 2 * h.get("runqueue_ns", 0) >= h["total_ns"]
              and scenario["stall_function"] not in [f["function"] for f in h["stack"]]]:
        print(f"note: a stall that mostly waited for a CPU ({h['runqueue_ns']} of "
              f"{h['total_ns']} ns), left out")
        stalls.remove(h)
    for stall in stalls:
        if not stall["stack"]:
            failures.append(f"a stall without a stack ({stall['count']}x, max {stall['max_ns']} ns)")
        elif top_function(stall["stack"]).endswith(IDLE_WAIT_FUNCTIONS):
            failures.append(f"a stall in the idle wait: {top_function(stall['stack'])}")
    # Idle parks are decided once, in the library, and never shipped: what the
    # process sent is what the report shows (a stall ships at most 4 records:
    # samples at 1x, 2x, 4x the threshold and its end). A park that returned
    # before the watchdog classified its call site may still be sent: allow 2.
    sent = sum(p["events"] for p in report["processes"])
    shown = sum(h["count"] for h in hotspots if h["kind"] != "stall")
    unexplained = sent - shown - 4 * sum(s["count"] for s in stalls)
    if unexplained > 2:
        failures.append(f"{sent} events sent, {shown} blocking shown: {unexplained} were shipped "
                        "only to be dropped by the collector (idle waits?)")
    if sum(s["count"] for s in stalls) != 1:
        failures.append(f"{sum(s['count'] for s in stalls)} stalls, want exactly 1")
    elif scenario["stall_function"] not in [f["function"] for f in stalls[0]["stack"]]:
        failures.append(f"the stall's stack misses {scenario['stall_function']}")
    return failures


TASK_SCENARIOS = {
    "asio_burst": {"args": ["burst"], "probes": True, "stalls": 0, "exit": 0},
    "asio_busy": {"args": ["busy"], "probes": True, "stalls": 1, "scope": "task",
                  "stall_function": "planted_long_handler", "task_function": "planted_long_handler",
                  "exit": 3},
    "asio_burst_no_probes": {"args": ["burst"], "probes": False, "stalls": 1, "scope": "turn",
                             "exit": 0},
    # A loop of the program's own, given task boundaries by a config task_entry
    # rule (passed to the library as BLOCKWATCH_TASK_ENTRY by blockwatch run).
    "custom_entry": {"args": ["custom"], "probes": True, "entry": "custom_run_one",
                     "config": 'task_entry: "custom_run_one"\n', "stalls": 1, "scope": "task",
                     "stall_function": "planted_long_handler", "exit": 3},
    # The same loop without the rule: it never waits and has no task boundary,
    # so nothing is ever busy and no stall can be reported.
    "custom_no_entry": {"args": ["custom"], "probes": True, "entry": None, "stalls": 0,
                        "exit": 0},
}
TASK_ENTRY = "boost::asio::detail::scheduler::do_run_one"
# More CPU than one short handler can use, less than the burst (50 ms of CPU).
SHORT_TASK_MAX_CPU_NS = 5_000_000


def kept_off_cpu(stall):
    """A stall of a short task that the machine's run queue made long: little CPU
    per stall, and most of the time off CPU spent waiting for one."""
    count = max(stall["count"], 1)
    off_cpu = stall["total_ns"] - stall["cpu_ns"]
    return stall["cpu_ns"] / count <= SHORT_TASK_MAX_CPU_NS and stall["runqueue_ns"] >= off_cpu / 2


def check_task_scenario(report, scenario):
    failures = []
    process = report["processes"][0]
    installed = [p for p in process.get("task_probes", []) if p["installed"]]
    if scenario["probes"]:
        want = [TASK_ENTRY] + ([scenario["entry"]] if scenario.get("entry") else [])
        if [p["rule"] for p in installed] != want:
            failures.append(f"task probes {process.get('task_probes')}, want {want} installed")
    elif installed or "BLOCKWATCH_PROBES=off" not in process.get("task_probes_note", ""):
        failures.append(f"probes off, yet {installed} / note {process.get('task_probes_note')!r}")
    hotspots = report["hotspots"]
    others = [h for h in hotspots if h["kind"] != "stall"]
    if others:
        failures.append(f"unexpected hotspots {[(h['kind'], top_function(h['stack'])) for h in others]}")
    stalls = [h for h in hotspots if h["kind"] == "stall"]
    if scenario["probes"]:
        # A 0.5 ms handler that this shared machine's run queue kept off the CPU
        # for 30 ms is one task running too long, truly: tolerated (and printed)
        # when its CPU time is small. The burst taken for one task would have
        # the burst's CPU time.
        loaded = [h for h in stalls if kept_off_cpu(h)
                  and "planted_long_handler" not in [f["function"] for f in h["stack"]]]
        for h in loaded:
            print(f"note: {h['count']} stall(s) of {h['max_ns'] / 1e6:.1f} ms, "
                  f"{h['runqueue_ns'] / 1e6:.1f} ms in the run queue: the machine's load "
                  f"({top_function(h['stack']) or 'no stack'})")
        stalls = [h for h in stalls if h not in loaded]
    count = sum(h["count"] for h in stalls)
    if count != scenario["stalls"]:
        failures.append(f"{count} stalls, want {scenario['stalls']}: "
                        f"{[(h['scope'], h['max_ns'], top_function(h['stack'])) for h in stalls]}")
    for stall in stalls:
        if stall.get("scope") != scenario["scope"]:
            failures.append(f"stall scope {stall.get('scope')!r}, want {scenario['scope']!r}")
        function = scenario.get("stall_function")
        if function and function not in [f["function"] for f in stall["stack"]]:
            failures.append(f"the stall's stack misses {function}: {stall['stack']}")
        # The task's own code, named from the stack above the probed entry (not
        # for custom_entry: custom_run_one tail-calls the job, so the entry is
        # not in the stack and no task function can be named).
        if scenario.get("task_function") and stall.get("task_function") != scenario["task_function"]:
            failures.append(f"task_function {stall.get('task_function')!r}, "
                            f"want {scenario['task_function']!r}")
    return failures


def verdict(name, failures, stderr):
    """Prints the run's stderr and each failure (exit 1), or "ok: NAME" (exit 0)."""
    if failures:
        print(stderr)
        for failure in failures:
            print("FAIL:", failure)
        return 1
    print(f"ok: {name}")
    return 0


def run_task_scenario(cli, program, name):
    scenario = TASK_SCENARIOS[name]
    env = dict(os.environ)
    if not scenario["probes"]:
        env["BLOCKWATCH_PROBES"] = "off"
    with tempfile.TemporaryDirectory() as directory:
        report_path = os.path.join(directory, "report.json")
        config = []
        if "config" in scenario:
            config_path = os.path.join(directory, "entry.bwconfig")
            with open(config_path, "w") as f:
                f.write(scenario["config"])
            config = ["--config", config_path]
        command = [cli, "run", *config, "--workers", "name:pool-.*", "--stall-threshold", "30ms",
                   "--fail-on", "stall>=30ms", "--report", report_path, "--", program,
                   *scenario["args"]]
        run = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        with open(report_path) as f:
            report = json.load(f)
        failures = check_task_scenario(report, scenario)
        if run.returncode != scenario["exit"]:
            failures.append(f"blockwatch run exited {run.returncode}, want {scenario['exit']}")
        if scenario.get("scope") == "turn":
            # The same report judged by a rule that asks for turn stalls fails.
            rerun = subprocess.run([cli, "report", report_path, "--fail-on", "turn-stall>=30ms"],
                                   capture_output=True, text=True, timeout=60)
            if rerun.returncode != 3:
                failures.append(f"turn-stall>=30ms: exit {rerun.returncode}, want 3")
            if "may span several tasks" not in run.stderr:
                failures.append("the text report does not say a turn stall may span several tasks")
    return verdict(name, failures, run.stderr)


# Per-task statistics (issue 9 item 3) of asio_tasks `mix`: 2000 empty handlers
# and 50 of 3 ms CPU. do_run_one runs once per handler plus once more (the call
# waiting for work when the program stops): 2051 task entries, counted exactly.
# The timing is sampled: 1 in 4 here, so missing all 50 long handlers has odds
# of (3/4)^50 (~6e-7); "all" times every task.
MIX_TASKS = 2051
TASK_STATS_SCENARIOS = {"task_stats_sampled": "4", "task_stats_all": "1"}


def check_task_stats(report, text, every):
    failures = []
    lines = [t for t in report.get("tasks", []) if t["source"] == "probe"]
    if [t["rule"] for t in lines] != [TASK_ENTRY]:
        return [f"task lines {[(t['source'], t['rule']) for t in report.get('tasks', [])]}"]
    t = lines[0]
    if t["tasks_total"] != MIX_TASKS:
        failures.append(f"tasks_total {t['tasks_total']}, want {MIX_TASKS}")
    if every == "1":
        # Every task is timed except the one still running (waiting) at exit.
        if t["tasks_timed"] != MIX_TASKS - 1:
            failures.append(f"tasks_timed {t['tasks_timed']}, want {MIX_TASKS - 1}")
        if t["timed_over_1ms"] < 50:
            failures.append(f"timed_over_1ms {t['timed_over_1ms']}, want >= 50")
    elif not 0 < t["tasks_timed"] < t["tasks_total"]:
        failures.append(f"tasks_timed {t['tasks_timed']} of {t['tasks_total']}: not a sample")
    if t["max_ns"] < 2_000_000:
        failures.append(f"max {t['max_ns']} ns, want >= 2 ms (a 3 ms handler)")
    if t["p50_ns"] >= 1_000_000:
        failures.append(f"p50 {t['p50_ns']} ns, want < 1 ms (most handlers are empty)")
    if t["over_1ms"] <= 0 or t["timed_over_1ms"] <= 0:
        failures.append(f"over_1ms {t['over_1ms']} (timed {t['timed_over_1ms']}), want > 0")
    if t["over_1ms_exact"]:
        failures.append("over_1ms claims to be exact, though not every task was timed")
    if sum(t["buckets"]) != t["tasks_timed"]:
        failures.append(f"buckets hold {sum(t['buckets'])} tasks, timed {t['tasks_timed']}")
    if "over 1ms: ~" not in text or "(estimated:" not in text or " timed)" not in text:
        failures.append("the text report does not say the task numbers are sampled estimates")
    return failures


def run_task_stats(cli, program, name):
    every = TASK_STATS_SCENARIOS[name]
    env = dict(os.environ, BLOCKWATCH_TASK_TIMING_EVERY=every)
    with tempfile.TemporaryDirectory() as directory:
        report_path = os.path.join(directory, "report.json")
        command = [cli, "run", "--workers", "name:pool-.*", "--report", report_path, "--",
                   program, "mix"]
        run = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        with open(report_path) as f:
            report = json.load(f)
    failures = check_task_stats(report, run.stderr, every)
    if run.returncode != 0:
        failures.append(f"blockwatch run exited {run.returncode}, want 0")
    return verdict(name, failures, run.stderr)


def run_demo_plain(cli, program, config):
    with tempfile.TemporaryDirectory() as directory:
        report_path = os.path.join(directory, "report.json")
        command = [cli, "run", "--config", config, "--workers", "name:pool-.*",
                   "--report", report_path, "--", program]
        run = subprocess.run(command, capture_output=True, text=True, timeout=60)
        with open(report_path) as f:
            report = json.load(f)
    stalls = [h for h in report["hotspots"] if h["kind"] == "stall"]
    tokenize = [h for h in stalls
                if any(f["function"].startswith("model::Tokenize(") for f in h["stack"])]
    failures = []
    if not tokenize:
        failures.append(f"no stall in model::Tokenize: {[(h['scope'], h['stack'][:3]) for h in stalls]}")
    if any(h["scope"] != "task" for h in tokenize):
        failures.append("a Tokenize stall not of scope task")
    if failures:
        print(run.stderr)
        for failure in failures:
            print("FAIL:", failure)
        return 1
    print(f"ok: demo_plain: {sum(h['count'] for h in tokenize)} Tokenize task stall(s)")
    return 0


def main():
    cli, program, name = sys.argv[1], sys.argv[2], sys.argv[3]
    if name == "demo_plain":
        return run_demo_plain(cli, program, sys.argv[4])
    if name in TASK_SCENARIOS:
        return run_task_scenario(cli, program, name)
    if name in TASK_STATS_SCENARIOS:
        return run_task_stats(cli, program, name)
    scenario = SCENARIOS[name]
    with tempfile.TemporaryDirectory() as directory:
        report_path = os.path.join(directory, "report.json")
        # --threshold 10ms: a worker preempted while holding the pool's own lock
        # on this shared 2-core machine may make another wait a few ms for it.
        command = [cli, "run", "--workers", scenario["workers"], "--threshold", "10ms",
                   "--stall-threshold", "40ms", "--report", report_path, "--", program]
        run = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if run.returncode != 0:
            print(run.stdout, run.stderr, sep="\n")
            print(f"FAIL: blockwatch run exited {run.returncode}")
            return 1
        with open(report_path) as f:
            report = json.load(f)
    failures = check(report, scenario)
    if failures:
        print(run.stderr)
        for failure in failures:
            print("FAIL:", failure)
        return 1
    print(f"ok: {name}: planted blocking and one stall, nothing else")
    return 0


if __name__ == "__main__":
    sys.exit(main())
