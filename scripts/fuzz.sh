#!/usr/bin/env bash
# Runs the UAPI libFuzzer target (asan preset: Clang 19, ASan+UBSan) from the seed corpus.
#   scripts/fuzz.sh [SECONDS]      short run (CI: 120 s); exits non-zero on a crash
#   scripts/fuzz.sh long [RUNS]    the documented long run (docs/reliability.md), default 10 M execs
# New corpus entries go to build/asan/fuzz-work/corpus, never into fuzz/corpus (merge by hand:
# build/asan/uapi_fuzzer -merge=1 fuzz/corpus/uapi build/asan/fuzz-work/corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/asan/uapi_fuzzer
if [ ! -x "$bin" ]; then
  bash scripts/setup.sh asan >/dev/null
fi
work=build/asan/fuzz-work
mkdir -p "$work/corpus"
common=(-rss_limit_mb=2048 -max_len=512 -print_final_stats=1 -artifact_prefix="$work/")
if [ "${1:-}" = long ]; then
  exec nice -n 19 "$bin" -runs="${2:-10000000}" "${common[@]}" "$work/corpus" fuzz/corpus/uapi
fi
exec "$bin" -max_total_time="${1:-120}" "${common[@]}" "$work/corpus" fuzz/corpus/uapi
