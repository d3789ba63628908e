#!/bin/sh
# Runs the shared conformance cases listed in spec/conformance.list against
# the CLI given as $1.  Skipped (with a note) when ../shared is absent.
set -u
cli=$1
here=$(cd "$(dirname "$0")" && pwd)
runner="$here/../../shared/conformance/run.sh"
if [ ! -x "$runner" ]; then
  echo "conformance: $runner not found; skipped"
  exit 0
fi
cases=$(grep -v '^#' "$here/conformance.list" | tr '\n' ' ')
# shellcheck disable=SC2086
exec "$runner" "$cli" $cases
