#!/usr/bin/env bash
# A collector that can only get symbols from a debuginfod server: Debian's real
# `debuginfod` indexes a directory holding the unstripped program; a fully
# stripped copy (same build-id) runs under `blockwatch run`. With DEBUGINFOD_URLS
# the report names the planted fsync's function, file and line; without it, the
# same run cannot (the control that shows the server was the source).
#
# debuginfod 0.188 binds every interface, so the server, the client and the
# collector run in a private network namespace with only loopback (`unshare -n`).
# Exit 77 (ctest: skipped) only when such a namespace is not permitted here.
#
# usage: debuginfod_e2e.sh BLOCKWATCH_CLI LIBBLOCKWATCH PROGRAM PROGRAM_SOURCE
set -euo pipefail

if [ "${1:-}" != --inside ]; then
  if ! unshare -n true 2>/dev/null; then
    echo "skipped: unshare -n (a private network namespace) is not permitted here"
    exit 77
  fi
  exec unshare -n "$0" --inside "$@"
fi
shift
cli=$1 library=$2 program=$3 source=$4

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
ip link set lo up

mkdir -p "$work/server" "$work/run"
cp "$program" "$work/server/program"
strip --strip-all -o "$work/run/program" "$program"

port=8002  # the namespace is ours: no other listener
debuginfod -F -p "$port" -d "$work/index.sqlite" -t 0 -g 0 "$work/server" >"$work/debuginfod.log" 2>&1 &
server_pid=$!

urls=http://127.0.0.1:$port
# Wait (bounded) until the server has indexed the program. Each probe has a cache
# of its own: the client remembers a miss; the collector's cache starts empty.
indexed=no
for attempt in $(seq 1 150); do
  if DEBUGINFOD_URLS=$urls DEBUGINFOD_CACHE_PATH=$work/probe-cache-$attempt \
     debuginfod-find debuginfo "$work/run/program" >/dev/null 2>&1; then
    indexed=yes
    break
  fi
  sleep 0.2
done
if [ "$indexed" != yes ]; then
  echo "FAIL: debuginfod never served the program's debug info"
  cat "$work/debuginfod.log"
  exit 1
fi

run() {  # run REPORT_JSON [ENV...]
  local report=$1
  shift
  env "$@" BLOCKWATCH_LIBRARY="$library" "$cli" run --workers main --threshold 0 \
    --report "$report" -- "$work/run/program" 0 >"$report.log" 2>&1
}
run "$work/with.json" DEBUGINFOD_URLS="$urls" DEBUGINFOD_CACHE_PATH="$work/cache"
run "$work/without.json" DEBUGINFOD_URLS= DEBUGINFOD_CACHE_PATH="$work/cache-unused"

fsync_line=$(grep -n '::fsync(fd);' "$source" | cut -d: -f1)
python3 - "$work/with.json" "$work/without.json" "$fsync_line" <<'EOF'
import json, sys

def planted_frames(path):
    report = json.load(open(path))
    return [f for h in report["hotspots"] if h["kind"] == "fsync"
            for f in h["stack"] if "sync_a_file" in f["function"]]

with_server, without, line = planted_frames(sys.argv[1]), planted_frames(sys.argv[2]), int(sys.argv[3])
assert with_server, "with debuginfod: no frame names sync_a_file"
frame = with_server[0]
assert frame.get("file", "").endswith("blocking_program.cc"), frame
assert frame.get("line") == line, (frame, line)
assert not without, ("without debuginfod the stripped program cannot be named", without)
print("ok: %s %s:%d from debuginfod" % (frame["function"], frame["file"], frame["line"]))
EOF
