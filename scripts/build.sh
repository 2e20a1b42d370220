#!/usr/bin/env bash
# Builds one flavour into build/<flavour>:
#   release  gcc, optimised, warnings as errors
#   asan     clang, AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer harnesses
# Usage: scripts/build.sh [release|asan]
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
jobs=$(nproc 2>/dev/null || echo 2)
case "$flavour" in
release)
	cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_WERROR=ON \
		-DCMAKE_C_COMPILER=gcc >/dev/null
	;;
asan)
	cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTERN_WERROR=ON \
		-DTERN_SANITIZE=ON -DTERN_FUZZ=ON -DCMAKE_C_COMPILER=clang >/dev/null
	;;
*)
	echo "usage: $0 [release|asan]" >&2
	exit 2
	;;
esac
echo "build: $flavour"
cmake --build "build/$flavour" -j "$jobs"
