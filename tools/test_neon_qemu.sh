#!/usr/bin/env bash
# The C++ tests of the NEON kernels on an x86-64 host: cross-compile fl_tests for AArch64 and
# run it under qemu-user, once per ISA level (scalar, neon), as ctest does on an ARM machine.
# Needs Debian's g++-aarch64-linux-gnu and qemu-user:
#   apt-get install -y g++-aarch64-linux-gnu qemu-user
# Usage (from the repository root): bash tools/test_neon_qemu.sh [build-dir]
# About 5 minutes per ISA level on 2 cores (emulated). fork_child_can_run_regions is skipped:
# qemu-user cannot run a forked child of a multi-threaded process (its own assertion fails).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-neon-qemu}"
sysroot=/usr/aarch64-linux-gnu
toolchain="$build/aarch64.cmake"
mkdir -p "$build"
rm -f "$build/CMakeCache.txt"  # a cache of a host build would keep its compiler
cat > "$toolchain" <<TOOLCHAIN
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH $sysroot)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
TOOLCHAIN
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DCMAKE_BUILD_TYPE=Release \
      -DFASTLAYERS_BUILD_PYTHON=OFF -DFASTLAYERS_BUILD_TESTS=ON
cmake --build "$build" -j "$(nproc)" --target fl_tests
for isa in scalar neon; do
  echo "--- FASTLAYERS_ISA=$isa under qemu-aarch64"
  rc=0
  FASTLAYERS_ISA=$isa QEMU_LD_PREFIX=$sysroot qemu-aarch64 "$build/fl_tests" \
    --expect-isa "$isa" --skip fork_child_can_run_regions || rc=$?
  if [ "$rc" -eq 77 ]; then
    echo "skipped: the emulated CPU does not support $isa"
  elif [ "$rc" -ne 0 ]; then
    exit "$rc"
  fi
done
