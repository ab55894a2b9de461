#!/usr/bin/env bash
# Two-end profile of the echo benchmark's pipelined cells: for each client
# (wsbeat, node ws) and cell, the client's system calls per message and the
# nginx worker's, counted by strace in one run, and each end's CPU per
# message without strace in another.
#
#   bench/profile.sh                       # ws and wss, 32 B and 4 KiB
#   CELLS="wss:32 ws:4096" K=50000 bench/profile.sh
#
# Prints one Markdown table.  strace slows both ends, so its run gives the
# shape of the traffic (reads, writes, waits per message), not speed; the
# CPU column comes from the run without it (utime + stime from /proc).
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LUA=${LUA:-lua5.4}
CELLS=${CELLS:-"ws:32 wss:32 ws:4096 wss:4096"}
K=${K:-40000}
W=${W:-64}
CLIENTS=${CLIENTS:-"wsbeat node-ws"}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsbeat-profile.XXXXXX")
NPID=""
cleanup() { [ -n "$NPID" ] && kill "$NPID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
die() { echo "profile.sh: $*" >&2; exit 1; }
command -v strace >/dev/null || die "strace is needed (apt-get install strace)"

make -s -C "$ROOT" all >&2 || die "make failed"
sh "$HERE/nginx-echo.sh" "$TMP/nginx" >"$TMP/server.out" || die "nginx did not start"
NPID=$(awk '/^PID /{print $2}' "$TMP/server.out")
PORT=$(awk '/^PORT /{print $2}' "$TMP/server.out")
TPORT=$(awk '/^PORT /{print $3}' "$TMP/server.out")
WORKER=$(pgrep -P "$NPID" | head -1)
[ -n "$WORKER" ] || die "no nginx worker"

client_cmd() {
	case "$1" in
	wsbeat) echo "$LUA $HERE/clients/lua-client.lua wsbeat" ;;
	node-ws) echo "node $HERE/clients/node-client.js" ;;
	*) die "unknown client $1" ;;
	esac
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# reads (read, recvfrom, readv), writes (write, sendto, writev, sendmsg)
# and waits (epoll_wait, epoll_pwait) per message, from strace -c's summary
per_msg() { # file
	awk -v k="$K" '
		$NF ~ /^(read|recvfrom|readv|recvmsg)$/ { r += $4 }
		$NF ~ /^(write|sendto|writev|sendmsg)$/ { w += $4 }
		$NF ~ /^epoll_p?wait$/ { e += $4 }
		END { printf "%.2f / %.2f / %.2f", r / k, w / k, e / k }' "$1"
}

HZ=$(getconf CLK_TCK)
echo "| cell | client | msg/s (no strace) | client CPU µs/msg | server CPU µs/msg | client reads / writes / waits per msg | server reads / writes / waits per msg |"
echo "|---|---|---:|---:|---:|---|---|"
for cell in $CELLS; do
	scheme=${cell%%:*} size=${cell##*:}
	if [ "$scheme" = wss ]; then url="wss://localhost:$TPORT/echo"; ca=$TMP/nginx/ca.pem
	else url="ws://127.0.0.1:$PORT/echo"; ca=""; fi
	for c in $CLIENTS; do
		# speed and CPU, no tracing
		s0=$(cpu_ticks "$WORKER")
		/usr/bin/time -f "%U %S" -o "$TMP/time" $(client_cmd "$c") "$url" "$size" 0 "$K" "$W" $ca >"$TMP/out" 2>"$TMP/err" ||
			die "$c failed: $(cat "$TMP/err")"
		s1=$(cpu_ticks "$WORKER")
		rate=$(sed -n 's/.*msg_s=\([0-9]*\).*/\1/p' "$TMP/out")
		ccpu=$(awk -v k="$K" '{ printf "%.2f", ($1 + $2) * 1e6 / k }' "$TMP/time")
		scpu=$(awk -v a="$s0" -v b="$s1" -v hz="$HZ" -v k="$K" 'BEGIN { printf "%.2f", (b - a) / hz * 1e6 / k }')
		# the shape of the traffic, both ends traced
		strace -c -f -o "$TMP/server.strace" -p "$WORKER" 2>/dev/null &
		spid=$!
		sleep 0.5
		strace -c -f -o "$TMP/client.strace" $(client_cmd "$c") "$url" "$size" 0 "$K" "$W" $ca >/dev/null 2>&1 ||
			die "$c failed under strace"
		kill -INT "$spid"; wait "$spid" 2>/dev/null
		cs=$(per_msg "$TMP/client.strace")
		ss=$(per_msg "$TMP/server.strace")
		echo "| $scheme $size B | $c | $rate | $ccpu | $scpu | $cs | $ss |"
	done
done
