#!/bin/sh
# Runs the shared conformance cases listed in spec/conformance.list against
# the CLI given as $1.  The cases live in ../shared/conformance (beside the
# repository); a missing folder is a failure, not a silent pass.
#   LUAIO_CONFORMANCE_DIR=DIR  use the conformance folder DIR (holding run.sh)
#   LUAIO_CONFORMANCE=skip     skip the cases, saying so
set -u
cli=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ "${LUAIO_CONFORMANCE:-}" = skip ]; then
  echo "conformance: skipped (LUAIO_CONFORMANCE=skip)"
  exit 0
fi
dir=${LUAIO_CONFORMANCE_DIR:-$(cd "$here/../.." && pwd)/shared/conformance}
runner="$dir/run.sh"
if [ ! -x "$runner" ]; then
  echo "conformance: $runner not found (or not executable);" \
    "set LUAIO_CONFORMANCE_DIR to the conformance folder," \
    "or LUAIO_CONFORMANCE=skip to skip the cases" >&2
  exit 1
fi
cases=$(grep -v '^#' "$here/conformance.list" | tr '\n' ' ')
# shellcheck disable=SC2086
exec "$runner" "$cli" $cases
