#!/usr/bin/env bash
# The benchmark command: builds the release flavour (build/release, gcc, RelWithDebInfo)
# and runs bench/run.py against it. Results go to bench/results/<date>/ (CSV, machine.txt,
# PNG plots drawn by gnuplot), unless --out says otherwise.
#   bench/run.sh            the full run (5-8 minutes on a 2-core machine, 10 at most)
#   bench/run.sh --quick    under 2 minutes
#   bench/run.sh --no-build [run.py options]   use build/release as it is
# Other options are run.py's (bench/run.py --help).
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
args=()
for a in "$@"; do
	if [ "$a" = "--no-build" ]; then build=0; else args+=("$a"); fi
done
if [ "$build" -eq 1 ]; then
	scripts/build.sh release
fi
exec /usr/bin/python3 bench/run.py --bin build/release/bin "${args[@]}"
