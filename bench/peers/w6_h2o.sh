#!/bin/sh
# W6 (h2o, C): the ceiling -- one thread serving a 13-byte file.  w6_h2o.sh PORT
set -u
port=$1
dir=$(mktemp -d)
chmod 755 "$dir"  # h2o serves as nobody when started as root
trap 'rm -rf "$dir"' EXIT
printf 'Hello, World!' > "$dir/index.txt"
cat > "$dir/h2o.conf" <<CONF
listen:
  host: 127.0.0.1
  port: $port
num-threads: 1
access-log: /dev/null
error-log: $dir/error.log
hosts:
  default:
    paths:
      /:
        file.file: $dir/index.txt
CONF
h2o -c "$dir/h2o.conf" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
i=0
while ! curl -s -o /dev/null "http://127.0.0.1:$port/"; do
  i=$((i + 1)); [ $i -gt 100 ] && exit 1
  sleep 0.05
done
echo ready
wait $pid
