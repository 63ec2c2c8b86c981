#!/usr/bin/env bash
# `cpack -G DEB` from the build, then checks the package without installing it
# into the system: its control fields (Depends found by dpkg-shlibdeps: each an
# installed Debian package here, and together covering every library the packaged
# binaries need), its file list, and — unpacked into a throwaway
# root with dpkg-deb -x — that its own blockwatch CLI finds its own library and
# reports a planted blocking call in a C program built with its pkg-config file.
# Usage: deb_package_test.sh BUILD_DIR CONSUMER_SOURCE_DIR CC
set -euo pipefail
build_dir=$1 consumer_dir=$2 cc=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "deb test: $*" >&2; exit 1; }

cpack --config "$build_dir/CPackConfig.cmake" -G DEB -B "$work/out" >/dev/null
debs=("$work"/out/blockwatch_*.deb)
if [ ${#debs[@]} -ne 1 ] || [ ! -f "${debs[0]}" ]; then fail "expected one blockwatch_*.deb, got ${debs[*]}"; fi
deb=${debs[0]}

[ "$(dpkg-deb -f "$deb" Package)" = blockwatch ] || fail "Package: $(dpkg-deb -f "$deb" Package)"
[ "$(dpkg-deb -f "$deb" Architecture)" = "$(dpkg --print-architecture)" ] ||
  fail "Architecture: $(dpkg-deb -f "$deb" Architecture)"
depends=$(dpkg-deb -f "$deb" Depends)
# The package names in Depends, one a line ("libc6 (>= 2.34), libunwind8" -> two).
names=$(tr ',' '\n' <<<"$depends" | awk '{print $1}')
# Every Depends names a package of this Debian release (installed here, since
# the build linked against it).
for name in $names; do
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed' ||
    fail "Depends names $name, which is not an installed Debian package"
done

dpkg-deb -x "$deb" "$work/root"
usr=$work/root/usr
# ... and every library the packaged binaries need (their DT_NEEDED) comes from a
# package in Depends. The list is read from the binaries, so it follows the build.
# With merged /usr, dpkg knows a library under /lib or /usr/lib: ask for both.
owner_of() {  # soname -> package
  local path
  path=$(ldconfig -p | awk -v s="$1" '$1 == s && /x86-64/ {print $NF; exit}')
  [ -n "$path" ] || return 1
  { dpkg -S "$path" 2>/dev/null || dpkg -S "/usr${path#/usr}" 2>/dev/null ||
    dpkg -S "${path#/usr}" 2>/dev/null; } | head -1 | cut -d: -f1
}
for elf in "$usr/bin/blockwatch" "$usr/bin/blockwatchd" "$usr/lib/blockwatch/libblockwatch.so"; do
  for soname in $(objdump -p "$elf" | awk '$1 == "NEEDED" {print $2}'); do
    package=$(owner_of "$soname")
    [ -n "$package" ] || fail "$soname (needed by $elf) comes from no installed package"
    grep -qxF "$package" <<<"$names" ||
      fail "$(basename "$elf") needs $soname from $package, which Depends lacks: $depends"
  done
done

contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for file in ./usr/bin/blockwatch ./usr/bin/blockwatchd ./usr/lib/blockwatch/libblockwatch.so \
    ./usr/include/blockwatch/blockwatch.h ./usr/lib/cmake/blockwatch/blockwatchConfig.cmake \
    ./usr/share/pkgconfig/blockwatch-hooks.pc; do
  grep -qx "$file" <<<"$contents" || fail "the package lacks $file"
done

pc_flags=$(PKG_CONFIG_PATH="$usr/share/pkgconfig" pkg-config --cflags --libs blockwatch-hooks)
# shellcheck disable=SC2086  # pc_flags is a list of flags
"$cc" -std=c99 -g -O1 "$consumer_dir/planted_c.c" $pc_flags -o "$work/planted_c"
out=$(env -u BLOCKWATCH_LIBRARY -u LD_PRELOAD -u BLOCKWATCH_WORKERS "$usr/bin/blockwatch" run \
  --report "$work/planted_c.json" -- "$work/planted_c" 2>&1) || fail "blockwatch run failed: $out"
grep -q "planted_c: preloaded" <<<"$out" || fail "the packaged library was not preloaded: $out"
python3 "$(dirname "$0")/check_report.py" "$work/planted_c.json" planted_c_blocking_call ||
  fail "planted_c"
echo "deb test: $(basename "$deb"), Depends: $depends"
