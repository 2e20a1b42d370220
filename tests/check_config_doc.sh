#!/usr/bin/env bash
# Fails when docs/configuration.md's option table differs from what the code prints.
set -euo pipefail
bin=$1
doc=$2
want=$("$bin" --help-config)
have=$(sed -n '/<!-- BEGIN OPTIONS/,/<!-- END OPTIONS/p' "$doc" | sed '1d;$d')
if [ "$want" != "$have" ]; then
	echo "docs/configuration.md is out of date; regenerate the table with: $bin --help-config" >&2
	diff <(echo "$want") <(echo "$have") >&2 || true
	exit 1
fi
echo "configuration reference is up to date"
