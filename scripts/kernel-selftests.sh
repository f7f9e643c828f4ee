#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the Linux kernel's own VFIO selftests (tools/testing/selftests/vfio of Debian's
# linux-source-7.3, trixie-backports) unmodified under `vfiobox run`, against devices of the
# default machine, and checks them against tests/kernel-selftests/expected.txt (the test cases
# that must PASS). docs/kernel-selftests.md explains each test and what vfiobox still lacks.
#
#   scripts/kernel-selftests.sh [--trace] [--no-fork] [--hugepages] [--write-expected]
#                               [--no-vfiobox-build]
#     --trace             run each binary under `vfiobox run --trace` (logs grow large)
#     --no-fork           then run every case again alone in one process, the harness's fork()s
#                         made no-ops (tests/kernel-selftests/shim.c): what vfiobox does past its
#                         fork-child limits. Reported apart, as nofork:CASE; expected.txt's
#                         nofork: lines are checked only in this mode
#     --hugepages         reserve one more 2 MiB and one more 1 GiB hugetlb page for the run
#                         (restored at exit), so the anonymous_hugetlb_* variants run, not skip
#     --write-expected    rewrite expected.txt with the cases that passed in this run
#     --no-vfiobox-build  use build/default/vfiobox as it is (else scripts/setup.sh default runs)
#   env: VB_KST_DIR (default build/kselftests), VB_KST_TIMEOUT (seconds per binary, default 600;
#        per case in --no-fork mode: VB_KST_CASE_TIMEOUT, default 120),
#        VB_KST_VFIOBOX (default build/default/vfiobox)
#
# Steps, each skipped when already done (stamps under $VB_KST_DIR):
#   1. the Debian packages it needs to build (gcc, make, uuid-dev, xz-utils), only if missing;
#   2. `apt-get download` of linux-source-7.3 and the linux-libc-dev of the same version from
#      trixie-backports, through a private apt configuration under $VB_KST_DIR/apt (its own
#      sources list, lists and cache): the system's apt sources are left alone, so no apt-get
#      install on this Debian 12 machine is ever offered a trixie package. Nothing is installed;
#   3. extraction of only tools/testing/selftests/vfio and what it includes (tools/include,
#      tools/arch/x86/include, the kselftest headers, lib.mk, scripts/subarch.include,
#      include/linux/pci_ids.h and the ioat/idxd/igb register headers that lib/drivers links to);
#      UAPI headers come from the 7.3 linux-libc-dev (never the host's 6.1 /usr/include/linux);
#   4. the selftests' own Makefile (make OUTPUT=... KHDR_INCLUDES=...), with
#      tests/kernel-selftests/shim.c added to the link (-Wl,--wrap=fork,--wrap=_exit; see that
#      file: inert unless VFIOBOX_KST_DEFAULT_IOMMU_MODE or VFIOBOX_KST_NO_FORK is set);
#   5. the runs, a per-test summary, and the expectations check (exit 1 when a case listed in
#      expected.txt did not pass).
# The kernel's sources and the binaries stay under build/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

trace=0 nofork=0 hugepages=0 write_expected=0 build_vfiobox=1
for a in "$@"; do
  case $a in
    --trace) trace=1 ;;
    --no-fork) nofork=1 ;;
    --hugepages) hugepages=1 ;;
    --write-expected) write_expected=1 ;;
    --no-vfiobox-build) build_vfiobox=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "kernel-selftests: unknown argument $a" >&2; exit 2 ;;
  esac
done

series=7.3
suite=trixie-backports
kst=${VB_KST_DIR:-$root/build/kselftests}
timeout_s=${VB_KST_TIMEOUT:-600}
case_timeout_s=${VB_KST_CASE_TIMEOUT:-120}
expected_file=$root/tests/kernel-selftests/expected.txt
shim=$root/tests/kernel-selftests/shim.c
vfiobox=${VB_KST_VFIOBOX:-$root/build/default/vfiobox}
mkdir -p "$kst"
kst=$(cd "$kst" && pwd)
t_start=$SECONDS
stamp() { echo "kernel-selftests: $*"; }

# ------------------------------------------------------------------ 1. packages
pkgs=(gcc make libc6-dev uuid-dev xz-utils)
bash scripts/install-missing.sh --tag kernel-selftests "${pkgs[@]}"
if ((build_vfiobox)); then
  bash scripts/setup.sh default >/dev/null
fi

# ------------------------------------------------------------------ 2. download
debs=$kst/debs
apt_dir=$kst/apt
t0=$SECONDS
if ! compgen -G "$debs/linux-source-${series}_*.deb" >/dev/null || ! compgen -G "$debs/linux-libc-dev_*.deb" >/dev/null; then
  mkdir -p "$debs" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
    > "$apt_dir/sources.list"
  aptopts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
           -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
           -o "APT::Sandbox::User=root" -qq)
  stamp "apt-get update ($suite, private lists in $apt_dir)"
  apt-get "${aptopts[@]}" update
  rm -f "$debs"/*.deb
  (cd "$debs" && apt-get "${aptopts[@]}" download "linux-source-$series/$suite")
  version=$(dpkg-deb -f "$debs"/linux-source-"${series}"_*.deb Version)
  (cd "$debs" && apt-get "${aptopts[@]}" download "linux-libc-dev=$version")
  stamp "downloaded linux-source-$series and linux-libc-dev $version in $((SECONDS - t0)) s"
fi
src_deb=$(ls "$debs"/linux-source-"${series}"_*.deb)
hdr_deb=$(ls "$debs"/linux-libc-dev_*.deb)
version=$(dpkg-deb -f "$src_deb" Version)

# ------------------------------------------------------------------ 3. extract
src=$kst/src/linux-source-$series
sel=$src/tools/testing/selftests/vfio
uapi=$kst/uapi
t0=$SECONDS
if [[ ! -e $kst/src/.extracted-$version ]]; then
  rm -rf "$kst/src"
  mkdir -p "$kst/src"
  members=(
    tools/testing/selftests/vfio
    tools/testing/selftests/kselftest.h
    tools/testing/selftests/kselftest_harness.h
    tools/testing/selftests/lib.mk
    tools/include
    tools/arch/x86/include
    scripts/subarch.include
    include/linux/pci_ids.h
    drivers/dma/ioat/hw.h
    drivers/dma/ioat/registers.h
    drivers/dma/idxd/registers.h
    drivers/net/ethernet/intel/igb/e1000_82575.h
    drivers/net/ethernet/intel/igb/e1000_defines.h
    drivers/net/ethernet/intel/igb/e1000_regs.h
  )
  stamp "extracting tools/testing/selftests/vfio and its includes from linux-source-$series $version"
  dpkg-deb --fsys-tarfile "$src_deb" | tar -xO "./usr/src/linux-source-$series.tar.xz" |
    tar -xJ -C "$kst/src" "${members[@]/#/linux-source-$series/}"
  broken=$(find -L "$sel" -type l)
  [[ -z $broken ]] || { echo "kernel-selftests: dangling links (a header not extracted): $broken" >&2; exit 1; }
  touch "$kst/src/.extracted-$version"
  stamp "extracted in $((SECONDS - t0)) s ($(du -sh "$kst/src" | cut -f1))"
fi
if [[ ! -e $uapi/.extracted-$version ]]; then
  rm -rf "$uapi"
  mkdir -p "$uapi"
  dpkg-deb -x "$hdr_deb" "$uapi"
  touch "$uapi/.extracted-$version"
fi

# ------------------------------------------------------------------ 4. build
bin=$kst/bin
mkdir -p "$bin"
t0=$SECONDS
# The shim is linked as an object on LDLIBS; a new shim forces a relink.
if [[ ! -e $bin/shim.o || $shim -nt $bin/shim.o ]]; then
  gcc -O2 -Wall -Werror -c "$shim" -o "$bin/shim.o"
  rm -f "$bin"/vfio_*_test
fi
make -s -C "$sel" -j2 OUTPUT="$bin" \
  KHDR_INCLUDES="-isystem $uapi/usr/include -isystem $uapi/usr/include/x86_64-linux-gnu" \
  LDLIBS="$bin/shim.o -luuid -Wl,--wrap=fork,--wrap=_exit"
build_s=$((SECONDS - t0))

# ------------------------------------------------------------------ 5. run
# Devices of the default machine (src/topology/default_machine.json):
#   0000:01:00.0  edu 1234:11e8 (dmar0; BAR0 1 MiB registers, MSI)
#   0000:07:00.0  test endpoint 1234:7e57 (smmu0; BAR0 64 KiB mappable memory, BAR2 registers,
#                 MSI-X 8 vectors, FLR; its group also holds a vfio-platform device)
#   0000:09:00.0  ioat 8086:2021 (dmar0; CBDMA 3.3, BAR0 16 KiB registers, MSI-X 1 vector): the
#                 device vfio_pci_driver_test's ioat driver drives (src/devices/ioat.h)
[[ -x $vfiobox ]] || { echo "kernel-selftests: no $vfiobox (build vfiobox first)" >&2; exit 1; }
edu=0000:01:00.0
tep=0000:07:00.0
ioat=0000:09:00.0
if ((hugepages)); then
  hp2m=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
  hp1g=/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages
  old2m=$(cat "$hp2m") old1g=$(cat "$hp1g")
  trap 'echo "$old2m" > "$hp2m"; echo "$old1g" > "$hp1g"' EXIT
  echo $((old2m + 1)) > "$hp2m" || true
  echo $((old1g + 1)) > "$hp1g" || true
  stamp "hugetlb pages reserved: 2M $(cat "$hp2m") (was $old2m), 1G $(cat "$hp1g") (was $old1g)"
fi
logs=$kst/logs
rm -rf "$logs"
mkdir -p "$logs"
results=$kst/results.txt
nofork_results=$kst/results-nofork.txt
: > "$results"
: > "$nofork_results"
: > "$kst/runs.txt"
t_run=$SECONDS

# Every variant whose name starts with "iommufd" (iommufd, iommufd_compat_type1{,v2}: vfiobox
# implements only the legacy container modes) is excluded with the harness's -V option. The
# names come from the binary's own -l listing (the harness prints it on stderr), run with the
# BDF the run uses: vfio_pci_driver_test's main() probes that device before it lists anything.
iommufd_excludes() {  # BINARY BDF ENV... -> prints "-V name" pairs
  local b=$1 bdf=$2; shift 2
  env "$@" "$vfiobox" run -- "$bin/$b" -l "$bdf" 2>&1 |
    awk '{for (i = 1; i <= NF; i++) if ($i ~ /^iommufd/) print $i}' | sort -u |
    while read -r v; do printf -- '-V\n%s\n' "$v"; done
}

# The environment of a MODE: "stock" (the machine's default 6.1 personality, the binary's own
# default IOMMU mode), "6.12" (the machine answers as Linux 6.12: /dev/iommu and the VFIO cdevs
# exist, so every variant runs), or an IOMMU mode for the default_iommu_mode shim.
mode_env() {
  case $1 in
    stock) ;;
    6.12) echo VFIOBOX_KERNEL=6.12 ;;
    *) echo VFIOBOX_KST_DEFAULT_IOMMU_MODE="$1" ;;
  esac
}

# run LABEL MODE BINARY BDF...   MODE: see mode_env
run() {
  local label=$1 mode=$2 b=$3; shift 3
  local log=$logs/$label.log envs=() hargs=() rc
  mapfile -t envs < <(mode_env "$mode")
  # Under 6.12 the iommufd variants are vfiobox's to pass; under 6.1 they cannot exist.
  [[ $mode == 6.12 ]] || mapfile -t hargs < <(iommufd_excludes "$b" "$1" "${envs[@]}")
  local traceflag=()
  ((trace)) && traceflag=(--trace)
  echo "+ ${envs[*]} vfiobox run ${traceflag[*]} -- $b ${hargs[*]} $*" > "$log"
  echo "$label $mode $b $*" >> "$kst/runs.txt"
  local t0=$SECONDS
  set +e
  timeout --kill-after=10 "$timeout_s" env "${envs[@]}" "$vfiobox" run "${traceflag[@]}" -- \
    "$bin/$b" "${hargs[@]}" "$@" >> "$log" 2>&1
  rc=$?
  set -e
  echo "+ exit $rc after $((SECONDS - t0)) s" >> "$log"
  # KTAP result lines: "ok N name", "ok N name # SKIP reason", "not ok N name".
  local n
  n=$(grep -cE '^(not )?ok [0-9]+ ' "$log" || true)
  { grep -E '^(not )?ok [0-9]+ ' "$log" || true; } | while read -r line; do
    local status name
    if [[ $line == "not ok "* ]]; then status=FAIL; line=${line#not ok }; else status=PASS; line=${line#ok }; fi
    line=${line#* }
    name=${line%% # *}
    if [[ $line == *" # SKIP"* ]]; then status=SKIP
    elif [[ $line == *" # XFAIL"* ]]; then status=XFAIL
    elif [[ $line == *" # TIMEOUT"* ]]; then status=FAIL; fi
    echo "$status $label/$name" >> "$results"
  done
  if ((n == 0)); then  # the program stopped before the harness (main's device set-up, a skip)
    local status=FAIL
    ((rc == 4)) && status=SKIP
    ((rc == 0)) && status=PASS
    echo "$status $label/(main, exit $rc)" >> "$results"
  fi
  printf '  %-58s exit %3d  %3d s\n' "$label" "$rc" "$((SECONDS - t0))"
}

stamp "running under $vfiobox run (logs in $logs)"
for dev in "$edu" "$tep" "$ioat"; do
  run "vfio_dma_mapping_test@$dev"             stock vfio_dma_mapping_test "$dev"
  run "vfio_dma_mapping_mmio_test@$dev"        stock vfio_dma_mapping_mmio_test "$dev"
  run "vfio_pci_device_test@$dev"              stock vfio_pci_device_test "$dev"
  run "vfio_pci_device_test@$dev+type1v2"      vfio_type1v2_iommu vfio_pci_device_test "$dev"
  run "vfio_pci_driver_test@$dev"              stock vfio_pci_driver_test "$dev"
  run "vfio_pci_driver_test@$dev+type1v2"      vfio_type1v2_iommu vfio_pci_driver_test "$dev"
done
run "vfio_iommufd_setup_test@$edu"             stock vfio_iommufd_setup_test "$edu"
run "vfio_pci_device_init_perf_test@$edu,$tep" stock vfio_pci_device_init_perf_test "$edu" "$tep"
run "vfio_pci_sriov_uapi_test@$edu"            stock vfio_pci_sriov_uapi_test "$edu"
# The same binaries on a machine that answers as Linux 6.12 (vfiobox run --kernel 6.12): every
# variant, iommufd and iommufd_compat_type1{,v2} included, in the binaries' own default modes.
for dev in "$edu" "$tep" "$ioat"; do
  run "vfio_dma_mapping_test@$dev+6.12"        6.12 vfio_dma_mapping_test "$dev"
  run "vfio_dma_mapping_mmio_test@$dev+6.12"   6.12 vfio_dma_mapping_mmio_test "$dev"
  run "vfio_pci_device_test@$dev+6.12"         6.12 vfio_pci_device_test "$dev"
  run "vfio_pci_driver_test@$dev+6.12"         6.12 vfio_pci_driver_test "$dev"
done
run "vfio_iommufd_setup_test@$edu+6.12"        6.12 vfio_iommufd_setup_test "$edu"
run "vfio_pci_device_init_perf_test@$edu,$tep+6.12" 6.12 vfio_pci_device_init_perf_test "$edu" "$tep"
run_s=$((SECONDS - t_run))

# --no-fork: each case the harness reported, alone in one process (see tests/kernel-selftests/shim.c).
# Verdict from the output: a non-zero exit (VFIO_ASSERT's exit(1), ASSERT's abort(), timeout),
# an ":Expected" line (a failed EXPECT) or no "RUN" line for the case is FAIL, "#      SKIP" is
# SKIP, anything else PASS.
t_nofork=$SECONDS
if ((nofork)); then
  stamp "--no-fork: every case again, alone in one process (logs in $logs/nofork)"
  mkdir -p "$logs/nofork"
  while read -r label mode b bdfs; do
    envs=(VFIOBOX_KST_NO_FORK=1)
    mapfile -t -O 1 envs < <(mode_env "$mode")
    traceflag=()
    ((trace)) && traceflag=(--trace)
    while read -r name; do
      log=$logs/nofork/$label.$name.log
      set +e
      # shellcheck disable=SC2086  # bdfs: one or more words
      timeout --kill-after=10 "$case_timeout_s" env "${envs[@]}" "$vfiobox" run "${traceflag[@]}" -- \
        "$bin/$b" -r "$name" $bdfs > "$log" 2>&1
      rc=$?
      set -e
      echo "+ exit $rc" >> "$log"
      if ((rc != 0)) || grep -q ':Expected ' "$log" || ! grep -qF "#  RUN           $name ..." "$log"; then
        status=FAIL
      elif grep -q '^#      SKIP' "$log"; then status=SKIP
      else status=PASS; fi
      echo "$status nofork:$label/$name" >> "$nofork_results"
    done < <(sed -n "s|^[A-Z]* $label/||p" "$results" | grep -v '^(main')
  done < "$kst/runs.txt"
fi
nofork_s=$((SECONDS - t_nofork))

# ------------------------------------------------------------------ summary and expectations
echo
echo "== kernel VFIO selftests (linux-source-$series $version) under vfiobox: per test"
sort -k2 "$results" | awk '{printf "  %-5s %s\n", $1, substr($0, index($0, $2))}'
pass=$(grep -c '^PASS ' "$results" || true)
fail=$(grep -c '^FAIL ' "$results" || true)
skip=$(grep -cE '^(SKIP|XFAIL) ' "$results" || true)

regressions=() unchecked=0
if [[ -f $expected_file ]]; then
  while IFS= read -r want; do
    [[ -z $want || $want == \#* ]] && continue
    if [[ $want == nofork:* ]] && ((!nofork)); then unchecked=$((unchecked + 1)); continue; fi
    grep -qxF "PASS $want" "$results" "$nofork_results" || regressions+=("$want")
  done < "$expected_file"
fi
newpass=()
while IFS= read -r got; do
  [[ -f $expected_file ]] && grep -qxF "$got" "$expected_file" && continue
  newpass+=("$got")
done < <(cat "$results" "$nofork_results" | sed -n 's/^PASS //p')

if ((nofork)); then
  echo
  echo "== --no-fork (each case alone, the harness's fork()s made no-ops; gated by expected.txt's nofork: lines)"
  sort -k2 "$nofork_results" | awk '{printf "  %-5s %s\n", $1, substr($0, index($0, $2))}'
  echo "  no-fork: $(grep -c '^PASS ' "$nofork_results" || true) passed, $(grep -c '^FAIL ' "$nofork_results" || true) failed, $(grep -c '^SKIP ' "$nofork_results" || true) skipped"
fi

if ((write_expected)); then
  {
    echo "# Kernel VFIO selftest cases that must PASS under vfiobox: BINARY@BDF[,BDF][+MODE]/CASE"
    echo "# (+type1v2: default_iommu_mode set to vfio_type1v2_iommu by tests/kernel-selftests/shim.c;"
    echo "# +6.12: the machine answers as Linux 6.12, vfiobox run --kernel 6.12)."
    echo "# A nofork: line is checked only by --no-fork runs (the case alone in one process, the"
    echo "# harness's fork()s made no-ops). scripts/kernel-selftests.sh fails when a listed case does"
    echo "# not pass; grow the list as features land (--write-expected rewrites it from a run; keep"
    echo "# the hugetlb cases only if CI reserves hugepages with --hugepages)."
    {
      cat "$results" "$nofork_results" | sed -n 's/^PASS //p'
      # Without --no-fork this run says nothing about the nofork: lines: keep them.
      if ((!nofork)) && [[ -f $expected_file ]]; then grep '^nofork:' "$expected_file" || true; fi
    } | sort -u
  } > "$expected_file.new"
  mv "$expected_file.new" "$expected_file"
  echo "kernel-selftests: wrote $(grep -vc '^#' "$expected_file") cases to $expected_file"
fi
echo
if ((${#newpass[@]})) && ((!write_expected)); then
  echo "== passing but not in expected.txt (add them):"
  printf '  %s\n' "${newpass[@]}"
fi
if ((${#regressions[@]})); then
  echo "== expected to pass but did not:"
  printf '  %s\n' "${regressions[@]}"
fi
echo "kernel-selftests: download+extract+build $((t_run - t_start)) s (selftests build ${build_s} s), runs ${run_s} s, --no-fork runs ${nofork_s} s"
echo "kernel-selftests: $pass passed, $fail failed, $skip skipped; ${#regressions[@]} expected passes missing"
((unchecked)) && echo "kernel-selftests: $unchecked nofork: expectations not checked (run with --no-fork)"
((${#regressions[@]} == 0))
