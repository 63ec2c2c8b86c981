# Workload for the sender-CPU figure in README ("Overhead"): run under
# `blockwatch run --workers main --threshold 0`. Not run by ctest.
# Many reads from many distinct interpreter stacks, then report the sender
# thread's CPU (schedstat: ns on CPU) after it drained.
import glob, os, sys, time
files = sorted(glob.glob('/usr/lib/python3.11/**/*.py', recursive=True))[:3000]
for f in files:
    with open(f, 'rb') as fh:
        fh.read()
time.sleep(1.0)
for tid in os.listdir('/proc/self/task'):
    try:
        comm = open(f'/proc/self/task/{tid}/comm').read().strip()
        if comm == 'blockwatch':
            ns = int(open(f'/proc/self/task/{tid}/schedstat').read().split()[0])
            print(f'sender_cpu_ms {ns/1e6:.1f}')
    except OSError:
        pass
