#!/usr/bin/env bash
# The test command: installs what is missing, builds twice (release with gcc; ASan+UBSan
# with clang, which also builds the fuzzers) with warnings as errors, and runs every test
# of both builds. Exits non-zero on any failure.
#   TERN_TEST_LABELS=unit scripts/test.sh   runs only the tests with that ctest label
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
status=0
labels=${TERN_TEST_LABELS:-}
for flavour in release asan; do
	scripts/build.sh "$flavour"
	echo "test: $flavour"
	args=(--test-dir "build/$flavour" --output-on-failure --timeout 900)
	[ -n "$labels" ] && args+=(-L "$labels")
	# Sanitizer settings for every process the tests start (servers included).
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=66"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
	if ! ctest "${args[@]}"; then
		echo "test: FAILED in the $flavour build" >&2
		status=1
	fi
done
if [ "$status" -eq 0 ]; then
	echo "test: all passed (release and asan)"
fi
exit "$status"
