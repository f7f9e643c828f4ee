#!/usr/bin/env bash
# Runs the UAPI libFuzzer target (asan preset: Clang 19, ASan+UBSan) from the seed corpus.
#   scripts/fuzz.sh [SECONDS]      short run (CI: 120 s); exits non-zero on a crash
#   scripts/fuzz.sh long [RUNS [WORKERS]]
#                                  the documented long run (docs/reliability.md): RUNS execs in all
#                                  (default 10 M) split over WORKERS processes (default 1), each
#                                  with its own seed, corpus and log in build/asan/fuzz-work/long-N;
#                                  exits non-zero if any worker found a crash
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
  runs=${2:-10000000}
  workers=${3:-1}
  per=$(( (runs + workers - 1) / workers ))
  pids=()
  for i in $(seq 1 "$workers"); do
    d="$work/long-$i"
    mkdir -p "$d/corpus"
    nice -n 19 "$bin" -runs="$per" -seed=$((7000 + i)) -rss_limit_mb=2048 -max_len=512 -print_final_stats=1 \
      -artifact_prefix="$d/" "$d/corpus" fuzz/corpus/uapi >"$d/log" 2>&1 &
    pids+=($!)
  done
  rc=0
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then rc=1; fi
    d="$work/long-$((i + 1))"
    echo "worker $((i + 1)): $(grep -E '^(Done|stat::number_of_executed_units)' "$d/log" | tr '\n' ' ')"
    grep -E '^==[0-9]+==|^FATAL|Test unit written' "$d/log" || true
  done
  exit $rc
fi
exec "$bin" -max_total_time="${1:-120}" "${common[@]}" "$work/corpus" fuzz/corpus/uapi
