#!/usr/bin/env bash
# ctest install.staged: `cmake --install --strip` of this build tree (no rebuild) into a DESTDIR
# stage with prefix /usr, then: every expected file is there and none names the build or source
# tree; the installed vfiobox runs edu-dma with the installed preload library; the public headers
# compile on their own; examples/embed (its own CMake project) finds the installed package with
# find_package, builds, and drives an edu DMA through the C++ API; the same program builds with
# `pkg-config vfiobox` alone.
set -euo pipefail
src=$1 build=$2 cmake=$3 cxx=$4 generator=$5 make_program=$6 edu_dma=$7 version=$8 libdir=$9
source "$src/tests/install/common.sh"
t0=$SECONDS
stage=$build/install-test
rm -rf "$stage"
mkdir -p "$stage"
root=$stage/root

DESTDIR=$root "$cmake" --install "$build" --prefix /usr --strip >"$stage/install.log" || {
  cat "$stage/install.log"; fail "cmake --install"; }
layers=(base faults hw iommu vfio devices topology uapi)
expect_files "$root/usr" bin/vfiobox "$libdir/vfiobox/libvfiobox-preload.so" \
  "$libdir/cmake/vfiobox/vfioboxConfig.cmake" "$libdir/cmake/vfiobox/vfioboxConfigVersion.cmake" \
  "$libdir/cmake/vfiobox/vfioboxTargets.cmake" "$libdir/cmake/vfiobox/vfioboxTargets-*.cmake" \
  "$libdir/pkgconfig/vfiobox.pc" share/man/man1/vfiobox.1.gz share/doc/vfiobox/LICENSE \
  include/vfiobox/topology/system.h include/vfiobox/vfio/vfio.h include/vfiobox/devices/edu.h \
  include/vfiobox/iommu/fault_log.h include/vfiobox/base/result.h
for f in "${layers[@]}"; do [[ -f "$root/usr/$libdir/vfiobox/libvb_$f.a" ]] || fail "missing libvb_$f.a"; done
if grep -rlE '#include <(gtest|gmock)/' "$root/usr/include"; then fail "test-only headers installed"; fi
expect_no_build_paths "$root" "$src" "$build"
echo "ok: files present, no build paths ($((SECONDS - t0)) s)"

expect_vfiobox_works "$root/usr" "$version" "$edu_dma" "$libdir"

# Every public header compiles (so none includes a header that is not installed).
(cd "$root/usr/include/vfiobox" && find . -name '*.h' | sed 's|^\./\(.*\)|#include "\1"|') >"$stage/all_headers.cc"
"$cxx" -std=c++23 -fsyntax-only -I"$root/usr/include/vfiobox" "$stage/all_headers.cc" ||
  fail "the installed headers do not compile on their own"
echo "ok: $(wc -l <"$stage/all_headers.cc") public headers compile ($((SECONDS - t0)) s)"

# The embedding example, against the installed CMake package.
"$cmake" -S "$src/examples/embed" -B "$stage/embed" -G "$generator" -DCMAKE_MAKE_PROGRAM="$make_program" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$root/usr" >"$stage/embed-configure.log" 2>&1 || {
  cat "$stage/embed-configure.log"; fail "examples/embed: configure"; }
found=$(sed -n 's/^vfiobox_DIR:PATH=//p' "$stage/embed/CMakeCache.txt")
[[ $found == "$root/usr/$libdir/cmake/vfiobox" ]] || fail "examples/embed found vfiobox in '$found', not the stage"
"$cmake" --build "$stage/embed" >"$stage/embed-build.log" 2>&1 || { cat "$stage/embed-build.log"; fail "examples/embed: build"; }
out=$("$stage/embed/embed_edu_dma" "$src/examples/embed/machine.json" 2>&1) || fail "embed_edu_dma: $out"
echo "$out"
grep -q "embed: all steps passed" <<<"$out" || fail "embed_edu_dma did not pass"
echo "ok: examples/embed via find_package ($((SECONDS - t0)) s)"

# The same program with pkg-config (the stage as a sysroot: the .pc says prefix=/usr).
flags=$(PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$root/usr/$libdir/pkgconfig pkg-config --cflags --libs vfiobox) ||
  fail "pkg-config vfiobox"
echo "pkg-config --cflags --libs vfiobox: $flags"
# shellcheck disable=SC2086  # flags are words
"$cxx" -std=c++23 -o "$stage/embed_pc" "$src/examples/embed/main.cc" $flags || fail "build with pkg-config flags"
out=$("$stage/embed_pc" "$src/examples/embed/machine.json" 2>&1) || fail "embed (pkg-config build): $out"
grep -q "embed: all steps passed" <<<"$out" || fail "embed (pkg-config build) did not pass"
echo "ok: examples/embed via pkg-config ($((SECONDS - t0)) s)"
