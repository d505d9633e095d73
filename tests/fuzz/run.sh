#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each one for a while.
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS_PER_TARGET [TARGET...]
#
# Configures BUILD_DIR with -DMAILGRID_FUZZ=ON, builds, then runs every
# target (or the ones named) on a copy of its seed corpus under
# BUILD_DIR/fuzz-run/<target>/ (the tree is never written to), as many at
# once as there are cores. Crash inputs land in
# BUILD_DIR/fuzz-run/<target>/artifacts/, logs next to them. Prints one
# summary line per target; exits non-zero if any target failed.
# SECONDS_PER_TARGET 0 only builds.
set -euo pipefail

if [[ $# -lt 2 || ! $2 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 BUILD_DIR SECONDS_PER_TARGET [TARGET...]" >&2
  exit 2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$1"
build=$(cd "$1" && pwd)
seconds=$2
shift 2

gen=()
if [[ ! -f $build/CMakeCache.txt ]] && command -v ninja >/dev/null 2>&1; then
  gen=(-G Ninja)
fi
cmake -S "$repo" -B "$build" "${gen[@]}" \
  -DMAILGRID_FUZZ=ON \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --parallel "$(nproc 2>/dev/null || echo 2)"

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < "$build/tests/fuzz/targets.txt"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

[[ $seconds -gt 0 ]] || exit 0

# One target: fuzz it, then write its summary line and status next to it.
fuzz_one() {
  local t=$1 exe=$build/tests/fuzz/$1 seeds=$repo/tests/fuzz/corpus/$1 work=$build/fuzz-run/$1
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  if [[ -d $seeds ]]; then cp -R "$seeds/." "$work/corpus/"; fi
  if [[ ! -x $exe ]]; then
    printf '%-18s runs=%-10s status=FAIL (no such target)\n' "$t" 0 >"$work/summary"
    return 1
  fi
  echo "== $t: ${seconds}s" >&2
  local rc=0
  (cd "$work" && "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$work/artifacts/" corpus) >"$work/log" 2>&1 || rc=$?

  local runs artifacts status corpus_size
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
  [[ -n $runs ]] || runs=$(grep -o 'Done [0-9]* runs' "$work/log" | tail -n 1 | grep -o '[0-9]*' || true)
  [[ -n $runs ]] || runs='?'
  artifacts=$(find "$work/artifacts" -type f | sort)
  if [[ $rc -eq 0 && -z $artifacts ]]; then
    status=ok
  else
    status="FAIL (exit $rc)"
    for a in $artifacts; do status+=" $a"; done
    { echo "---- $t: last lines of $work/log"; tail -n 40 "$work/log"; } >&2
  fi
  corpus_size=$(find "$work/corpus" -type f | wc -l)
  printf '%-18s runs=%-10s corpus=%-5s status=%s\n' "$t" "$runs" "$corpus_size" "$status" >"$work/summary"
  [[ $status == ok ]]
}

jobs_at_once=$(nproc 2>/dev/null || echo 2)
running=0
failed=0
for t in "${targets[@]}"; do
  [[ -n $t ]] || continue
  if [[ $running -ge $jobs_at_once ]]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
while [[ $running -gt 0 ]]; do
  wait -n || failed=1
  running=$((running - 1))
done

echo
echo "fuzz summary (${seconds}s per target):"
for t in "${targets[@]}"; do
  [[ -n $t ]] && cat "$build/fuzz-run/$t/summary"
done
exit "$failed"
