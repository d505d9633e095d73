#!/usr/bin/env bash
# The whole test suite, as CI runs it, on Debian 12 as root:
#   1. install the packages (build tools and every real peer the tests start)
#   2. build, run the unit and integration tests (CTest)
#   3. build with AddressSanitizer + UBSan, run the unit tests and the
#      integration tests of the daemons under it
#   4. build the libFuzzer targets with clang, run each for a bounded time
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

stage "unit and integration tests"
ctest --test-dir build --output-on-failure --timeout 1500

if [ "${MAILGRID_SKIP_ASAN:-0}" != 1 ]; then
    stage "sanitizer build (ASan + UBSan)"
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMAILGRID_SANITIZE=ON -DMAILGRID_TESTS=ON >/dev/null
    cmake --build build-asan
    stage "tests under the sanitizers"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure --timeout 1500
fi

if [ "${MAILGRID_SKIP_FUZZ:-0}" != 1 ]; then
    stage "fuzzing"
    tests/fuzz/run.sh build-fuzz "${MAILGRID_FUZZ_SECONDS:-20}"
fi

stage "all tests passed"
