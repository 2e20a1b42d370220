#!/usr/bin/env bash
# Installs every Debian package that the build, the run command and the tests use.
# Idempotent: when everything is present it changes nothing and says so.
# Usage: scripts/install-deps.sh            (as root, or with sudo available)
set -euo pipefail

PACKAGES=(
	# build
	build-essential cmake pkg-config ninja-build
	libnng-dev nng-utils libmsgpack-dev libwebsockets-dev libjson-c-dev
	zlib1g-dev libxxhash-dev
	# sanitizers, fuzzing, memory checks
	clang libclang-rt-14-dev valgrind
	# test harness and tools the tests drive
	python3 python3-pytest python3-websockets python3-msgpack
	curl procps iproute2 tmux
	gnuplot-nox # benchmark plots (bench/run.py)
	# browser tests
	chromium chromium-driver python3-selenium
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PACKAGES[@]} packages present, nothing to do"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
		echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
		exit 1
	fi
fi

echo "install-deps: installing ${#missing[@]} missing package(s): ${missing[*]}"
echo "install-deps: apt-get update"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
