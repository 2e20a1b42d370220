#!/usr/bin/env bash
# The run command: installs what is missing, builds, and starts the development cluster
# of config/servers.json (registry, chat servers, connectors, gate with the web page) on
# this machine until Ctrl-C, which stops every server cleanly.
#   scripts/run.sh [--env development|production] [--config path]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
exec /usr/bin/python3 scripts/cluster.py --bin build/release/bin "$@"
