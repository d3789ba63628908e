#!/bin/sh
# W7: an HTTP client's GETs over a pool against h2o.  w7.sh PORT client-command...
# Starts h2o serving a 13-byte file (pinned to CPU 0), runs the client
# (pinned to CPU 1) with: URL N CONNECTIONS; it prints "RESULT requests/s".
set -u
port=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
start_server sh "$here/peers/w6_h2o.sh" "$port" || exit 1
$pin1 "$@" "http://127.0.0.1:$port/" "${W7_N:-20000}" "${W7_C:-50}" | grep '^RESULT'
stop_server
