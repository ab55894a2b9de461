#!/usr/bin/env bash
# Echo benchmark driver: wsbeat vs lua-http against ONE local echo server.
#
#   bench/run.sh                 # 5 rounds, default sizes
#   ROUNDS=7 N=10000 K=50000 W=512 bench/run.sh
#   CLIENTS="wsbeat lua-http" bench/run.sh     # skip the receive() variant
#   SERVER=python bench/run.sh   # use spec/fixtures/server.py instead of node
#   PIN=1 bench/run.sh           # pin server to CPU 0, clients to CPU 1 (taskset)
#
# Each client runs as its own lua5.4 process (bench/echo.lua), one after the
# other (never concurrently), the order rotating every round; the table shows
# medians over the rounds. Exit status is non-zero only when something broke
# (server did not start, a client failed); missing a target ratio is not an error.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LUA=${LUA:-lua5.4}
ROUNDS=${ROUNDS:-5}
N=${N:-10000}        # round trips per latency measurement
K=${K:-50000}        # messages per pipelined measurement
W=${W:-512}           # max messages in flight while pipelining
CLIENTS=${CLIENTS:-"wsbeat wsbeat-recv lua-http"}
SERVER=${SERVER:-node}
PIN=${PIN:-0}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-60}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsbeat-bench.XXXXXX")
SPID=""
cleanup() {
	if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
		kill "$SPID" 2>/dev/null
		wait "$SPID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "run.sh: $*" >&2; exit 1; }

command -v "$LUA" >/dev/null || die "$LUA not found"
if [ ! -f "$ROOT/build/wsbeat/core.so" ]; then
	echo "build/wsbeat/core.so missing: running make" >&2
	make -C "$ROOT" >&2 || die "make failed"
fi

pin_server=() pin_client=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin_server=(taskset -c 0) pin_client=(taskset -c 1)
fi

# ------------------------------------------------------------ echo server
case "$SERVER" in
node)
	command -v node >/dev/null || die "node not found (try SERVER=python)"
	"${pin_server[@]}" node "$HERE/echo-server.js" --port 0 >"$TMP/server.out" 2>"$TMP/server.err" &
	SPID=$!
	SERVER_DESC="node $(node --version) + ws $(node -p "require('$ROOT/spec/fixtures/node_modules/ws/package.json').version" 2>/dev/null || echo '?') (bench/echo-server.js, perMessageDeflate off, TCP_NODELAY)"
	;;
python)
	"${pin_server[@]}" /usr/bin/python3 "$ROOT/spec/fixtures/server.py" --port 0 >"$TMP/server.out" 2>"$TMP/server.err" &
	SPID=$!
	SERVER_DESC="python3 $(/usr/bin/python3 -c 'import sys, websockets; print("%d.%d.%d" % sys.version_info[:3], "+ websockets", websockets.__version__)' 2>/dev/null) (spec/fixtures/server.py, logs every message)"
	;;
*) die "unknown SERVER=$SERVER (node or python)" ;;
esac

PORT=""
for _ in $(seq 100); do
	PORT=$(awk '/^PORT /{print $2; exit}' "$TMP/server.out" 2>/dev/null)
	[ -n "$PORT" ] && break
	kill -0 "$SPID" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$PORT" ]; then
	cat "$TMP/server.err" >&2
	die "echo server did not start"
fi
URL="ws://127.0.0.1:$PORT/echo"

# ------------------------------------------------------------ versions
echo "== wsbeat vs lua-http echo benchmark"
echo "server : $SERVER_DESC on $URL"
echo "libs   : $("$LUA" "$HERE/echo.lua" versions 2>&1)"
echo "pkgs   : $(dpkg-query -W -f='${Package} ${Version}; ' libwebsockets17 libuv1 lua-http lua-cqueues lua5.4 2>/dev/null)"
echo "host   : $(nproc) CPU(s), $(uname -sr)$([ ${#pin_client[@]} -gt 0 ] && echo ', server pinned to CPU 0, clients to CPU 1')"
echo "params : rounds=$ROUNDS latency N=$N round trips, pipelined K=$K msgs with <= W=$W in flight, 32-byte text"
echo "clients: wsbeat = on_message + core.wait()/wsbeat.step(); wsbeat-recv = ws:receive() on the main thread;"
echo "         lua-http = http.websocket in a cqueues controller (send/receive; sender+receiver coroutines when pipelining)"
echo

# ------------------------------------------------------------ rounds
read -r -a list <<<"$CLIENTS"
status=0
: >"$TMP/results"
for ((r = 1; r <= ROUNDS; r++)); do
	# rotate the order so that no client always runs first / after the same one
	n=${#list[@]}
	for ((i = 0; i < n; i++)); do
		c=${list[$(((i + r - 1) % n))]}
		if out=$(timeout "$CLIENT_TIMEOUT" "${pin_client[@]}" "$LUA" "$HERE/echo.lua" "$c" "$URL" "$N" "$K" "$W" 2>"$TMP/err"); then
			line=$(grep '^RESULT ' <<<"$out")
			if [ -n "$line" ]; then
				echo "$line" >>"$TMP/results"
				printf 'round %d  %s\n' "$r" "${line#RESULT }"
				continue
			fi
		fi
		echo "round $r  $c FAILED:" >&2
		cat "$TMP/err" >&2
		status=1
	done
	kill -0 "$SPID" 2>/dev/null || die "echo server died: $(cat "$TMP/server.err")"
done
echo

"$LUA" "$HERE/echo.lua" summary "$TMP/results" || status=1
exit $status
