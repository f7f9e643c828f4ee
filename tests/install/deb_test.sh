#!/usr/bin/env bash
# ctest install.deb: CPack makes the Debian packages from this build tree (nothing is rebuilt);
# their metadata and Depends are checked with dpkg-deb -I, their contents with dpkg-deb -c; then
# both are unpacked with dpkg-deb -x into a scratch directory (not installed with dpkg: the test
# leaves the machine's package database alone, needs no clean-up, and proves the install
# relocatable) and the unpacked vfiobox runs edu-dma with the unpacked preload library. As in
# install.staged, no unpacked file may name the build or source tree.
set -euo pipefail
src=$1 build=$2 cpack=$3 version=$4 edu_dma=$5 libdir=$6
source "$src/tests/install/common.sh"
t0=$SECONDS
work=$build/deb-test
rm -rf "$work"
mkdir -p "$work"

"$cpack" -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1 || {
  cat "$work/cpack.log"; fail "cpack"; }
arch=$(dpkg --print-architecture)
deb=$work/out/vfiobox_${version}_${arch}.deb
dev=$work/out/libvfiobox-dev_${version}_${arch}.deb
[[ -f $deb && -f $dev ]] || { ls -l "$work/out"; fail "cpack made no vfiobox_${version}_${arch}.deb and libvfiobox-dev_${version}_${arch}.deb"; }
echo "ok: cpack ($((SECONDS - t0)) s): $(cd "$work/out" && ls ./*.deb | tr '\n' ' ')"

field() { dpkg-deb -f "$1" "$2"; }
[[ $(field "$deb" Package) == vfiobox && $(field "$deb" Version) == "$version" && $(field "$deb" Architecture) == "$arch" ]] ||
  fail "vfiobox .deb metadata: $(dpkg-deb -I "$deb")"
depends=$(field "$deb" Depends)
echo "vfiobox Depends: $depends"
IFS=',' read -ra entries <<<"$depends"
for p in libc6 libstdc++6 libgcc-s1 libfmt; do
  found=
  for e in "${entries[@]}"; do [[ ${e# } == "$p"*" (>= "* ]] && found=1; done
  [[ -n $found ]] || fail "vfiobox Depends lacks a versioned $p: $depends"
done
depends=$(field "$dev" Depends)
echo "libvfiobox-dev Depends: $depends"
for p in "vfiobox (= $version)" libfmt-dev nlohmann-json3-dev; do
  grep -qF "$p" <<<"$depends" || fail "libvfiobox-dev Depends lacks $p: $depends"
done

# Where each file goes: the command and preload library in vfiobox, the rest in libvfiobox-dev.
dpkg-deb -c "$deb" >"$work/vfiobox.contents"
dpkg-deb -c "$dev" >"$work/dev.contents"
for f in ./usr/bin/vfiobox "./usr/$libdir/vfiobox/libvfiobox-preload.so" ./usr/share/man/man1/vfiobox.1.gz; do
  grep -q " $f\$" "$work/vfiobox.contents" || fail "vfiobox.deb lacks $f"
done
for f in "./usr/$libdir/vfiobox/libvb_topology.a" "./usr/$libdir/cmake/vfiobox/vfioboxConfig.cmake" \
         "./usr/$libdir/pkgconfig/vfiobox.pc" ./usr/include/vfiobox/topology/system.h; do
  grep -q " $f\$" "$work/dev.contents" || fail "libvfiobox-dev.deb lacks $f"
done

dpkg-deb -x "$deb" "$work/root"
dpkg-deb -x "$dev" "$work/root"
grep -qx "prefix=/usr" "$work/root/usr/$libdir/pkgconfig/vfiobox.pc" || fail "vfiobox.pc's prefix is not /usr"
expect_no_build_paths "$work/root" "$src" "$build"
expect_vfiobox_works "$work/root/usr" "$version" "$edu_dma" "$libdir"
echo "ok: unpacked .deb works relocated ($((SECONDS - t0)) s)"
