#!/usr/bin/env bash
# The whole test suite, as CI runs it, on Debian 12 as root:
#   1. install the packages (build tools and every real peer the tests start)
#   2. build, run the unit and integration tests (CTest), while the
#      sanitizer and fuzzer builds compile alongside at low priority
#   3. run the unit tests and the integration tests of the daemons built
#      with AddressSanitizer + UBSan
#   4. run each libFuzzer target (built with clang) for a bounded time
# Environment: MAILGRID_FUZZ_SECONDS (default 20) per fuzz target,
# MAILGRID_SKIP_ASAN=1 / MAILGRID_SKIP_FUZZ=1 to leave a stage out.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
started=$SECONDS
stage() { printf '\n=== %s (%ds)\n' "$*" $((SECONDS - started)); }

stage "packages"
./deploy/install-deps.sh all

stage "build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAILGRID_TESTS=ON -DMAILGRID_SANITIZE=OFF >/dev/null
cmake --build build

# The sanitizer and fuzzer builds compile while the tests run (the tests
# mostly wait on their peers), at the lowest priority so the tests' timing
# is theirs. Their output goes to a log, shown if they fail.
asan=$([ "${MAILGRID_SKIP_ASAN:-0}" != 1 ] && echo 1 || echo 0)
fuzz=$([ "${MAILGRID_SKIP_FUZZ:-0}" != 1 ] && echo 1 || echo 0)
background_log=$repo/build-background.log
(
    set -e
    if [ "$asan" = 1 ]; then
        cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMAILGRID_SANITIZE=ON -DMAILGRID_TESTS=ON
        nice -n 19 cmake --build build-asan
    fi
    if [ "$fuzz" = 1 ]; then
        nice -n 19 tests/fuzz/run.sh build-fuzz 0
    fi
) >"$background_log" 2>&1 &
background=$!
trap 'kill $background 2>/dev/null || true' EXIT

stage "unit and integration tests (sanitizer and fuzzer builds alongside)"
ctest --test-dir build --output-on-failure --timeout 1500

stage "waiting for the sanitizer and fuzzer builds"
if ! wait $background; then
    tail -n 60 "$background_log"
    echo "the sanitizer or fuzzer build failed: see $background_log" >&2
    exit 1
fi
trap - EXIT

if [ "$asan" = 1 ]; then
    # The farm and the package test run once, on the release build: under
    # the sanitizers they would repeat the daemons' own integration tests.
    stage "tests under the sanitizers (ASan + UBSan)"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure --timeout 1500 -E '^integration\.(farm|package)$'
fi

if [ "$fuzz" = 1 ]; then
    stage "fuzzing"
    tests/fuzz/run.sh build-fuzz "${MAILGRID_FUZZ_SECONDS:-20}"
fi

stage "all tests passed"
