#!/usr/bin/env bash
# Scale benchmark (make bench-scale; not part of the tests): N heartbeating
# wsbeat connections in one process against the nginx echo server, then a
# server restart (a reconnect storm). See bench/scale.lua for the phases.
#
#   bench/scale.sh                   # N=10000, heartbeat interval 5 s
#   N=2000 CPU_SECONDS=10 bench/scale.sh
#   DOWN=3 bench/scale.sh            # seconds the server stays down
#
# It also runs bench/lws-hold (a plain libwebsockets client that only holds
# N idle connections) to tell what libwebsockets itself needs per connection.
# The open-file limit is raised to the hard limit for both processes; N must
# fit under it (this machine: 20,000).
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LUA=${LUA:-lua5.4}
N=${N:-10000}
INTERVAL=${INTERVAL:-5}
CPU_SECONDS=${CPU_SECONDS:-30}
DOWN=${DOWN:-3}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsbeat-scale.XXXXXX")
cleanup() {
	[ -s "$TMP/nginx/nginx.pid" ] && kill "$(cat "$TMP/nginx/nginx.pid")" 2>/dev/null
	sleep 0.5
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "scale.sh: $*" >&2; exit 1; }

make -s -C "$ROOT" all build/bench/lws-hold >&2 || die "make failed"
ulimit -n "$(ulimit -Hn)" || die "cannot raise the open-file limit"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $((N + 100)) ] || die "N=$N does not fit under the open-file limit $(ulimit -n)"

sh "$HERE/nginx-echo.sh" "$TMP/nginx" >"$TMP/server.out" || die "nginx did not start"
PORT=$(awk '/^PORT /{print $2}' "$TMP/server.out")
TPORT=$(awk '/^PORT /{print $3}' "$TMP/server.out")
URL="ws://127.0.0.1:$PORT/echo"
echo "server: nginx one worker (bench/nginx-echo.sh) on $URL; N=$N interval=$INTERVAL s" >&2

echo "--- libwebsockets alone (bench/lws-hold)" >&2
"$ROOT/build/bench/lws-hold" "$URL" "$N" || die "lws-hold failed"

echo "--- wsbeat (bench/scale.lua)" >&2
# stop nginx (its connections drop at once), stay down, start it on the same ports
RESTART="P=\$(cat $TMP/nginx/nginx.pid); kill \$P; while kill -0 \$P 2>/dev/null; do sleep 0.05; done; sleep $DOWN; WS_PORT=$PORT WSS_PORT=$TPORT sh $HERE/nginx-echo.sh $TMP/nginx >/dev/null && touch $TMP/up"
"$LUA" "$HERE/scale.lua" "$URL" "$N" "$INTERVAL" "$CPU_SECONDS" "$RESTART" "$TMP/up"
