# Shared by the install tests (sourced): checks on an installed tree.
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_files ROOT PATH...: each PATH (relative to ROOT, may be a glob) exists.
expect_files() {
  local root=$1 p; shift
  for p in "$@"; do
    compgen -G "$root/$p" >/dev/null || fail "missing from the install: $p"
  done
}

# expect_no_build_paths ROOT DIR...: no file under ROOT (binaries included) names a DIR.
expect_no_build_paths() {
  local root=$1 d leaks; shift
  local pats=()
  for d in "$@"; do pats+=(-e "$d" -e "$(realpath "$d")"); done
  leaks=$(grep -rlF "${pats[@]}" "$root" || true)
  # Compressed files too (the man page).
  leaks+=$(find "$root" -name '*.gz' -exec zgrep -lF "${pats[@]}" {} + || true)
  if [[ -n $leaks ]]; then
    for f in $leaks; do echo "--- $f:" >&2; zgrep -aoF "${pats[@]}" "$f" | sort | uniq -c | head -5 >&2; done
    fail "installed files name the build or source tree: $leaks"
  fi
}

# expect_vfiobox_works PREFIX VERSION EDU_DMA LIBDIR: the installed command runs edu-dma with the
# installed preload library, found relative to itself.
expect_vfiobox_works() {
  local prefix=$1 version=$2 edu_dma=$3 libdir=$4 out
  local preload="$prefix/$libdir/vfiobox/libvfiobox-preload.so"
  unset VFIOBOX_PRELOAD LD_PRELOAD
  out=$("$prefix/bin/vfiobox" --version) || fail "vfiobox --version: exit $?"
  [[ $out == "vfiobox $version" ]] || fail "vfiobox --version says '$out', not 'vfiobox $version'"
  "$prefix/bin/vfiobox" groups >/dev/null || fail "vfiobox groups"
  out=$("$prefix/bin/vfiobox" run -- /bin/sh -c 'echo "$LD_PRELOAD"') || fail "vfiobox run -- sh"
  [[ $out == "$(realpath "$preload")" ]] || fail "vfiobox run preloads '$out', not the installed $preload"
  out=$("$prefix/bin/vfiobox" run -- "$edu_dma" 2>&1) || fail "vfiobox run -- edu-dma: exit $?: $out"
  grep -q "edu-dma: all steps passed" <<<"$out" || fail "edu-dma did not pass: $out"
  echo "ok: $prefix/bin/vfiobox run -- edu-dma: all steps passed"
  out=$(zcat "$prefix/share/man/man1/vfiobox.1.gz") || fail "man page"
  grep -q '^\.TH VFIOBOX "1"' <<<"$out" && grep -q 'vfiobox run' <<<"$out" && grep -q 'VFIOBOX_PRELOAD' <<<"$out" ||
    fail "the man page lacks its title, the run command or ENVIRONMENT"
}
