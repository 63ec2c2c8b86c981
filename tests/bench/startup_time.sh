#!/bin/sh
# Start-up cost of the preload: mean wall time per run of CMD, in µs (README,
# "Overhead"). Not run by ctest: timing depends on the machine.
# usage: startup_time.sh LIB N CMD...  (LIB "none": without the preload)
lib=$1; n=$2; shift 2
start=$(date +%s%N)
i=0
while [ $i -lt $n ]; do
  if [ "$lib" = none ]; then "$@" >/dev/null 2>&1
  else LD_PRELOAD=$lib BLOCKWATCH_WORKERS=main BLOCKWATCH_OUTPUT=/dev/null "$@" >/dev/null 2>&1; fi
  i=$((i+1))
done
end=$(date +%s%N)
echo "$(( (end-start)/n/1000 ))"
