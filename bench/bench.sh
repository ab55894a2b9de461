#!/usr/bin/env bash
# Side-by-side echo benchmark (make bench): wsbeat (on Lua 5.4 and, as
# wsbeat-jit, the same client on LuaJIT), the C ceiling (a plain
# libwebsockets client, bench/lws-client.c), lua-http, node ws and python
# websockets against ONE local echo server, in one run.
#
#   bench/bench.sh                     # 5 rounds, ws and wss, 32 B / 4 KiB / 1 MiB
#   ROUNDS=3 bench/bench.sh
#   QUICK=1 bench/bench.sh             # 1 round, small counts: a smoke run
#   CLIENTS="lws-c wsbeat lua-http" SCHEMES=ws bench/bench.sh
#   SERVER=node bench/bench.sh         # node ws server instead of nginx
#   SERVER=lws bench/bench.sh          # the C server (bench/lws-server.c, one
#                                      # process per scheme): each client's
#                                      # own ceiling, with a server that is
#                                      # not the bound
#   PIN=1 bench/bench.sh               # server on CPU 0, clients on CPU 1
#   OUT=/tmp/b bench/bench.sh          # where the report goes (docs/benchmarks)
#   BEFORE=<git rev> bench/bench.sh    # adds client wsbeat-before: wsbeat as of
#                                      # that revision, built in a temp worktree
#   LUAJIT=/path/to/luajit bench/bench.sh  # the interpreter of wsbeat-jit
#                                      # (luajit); its core: build-jit/
#   CLIENTS="... lua-http-jit"         # lua-http on LuaJIT too (not by
#                                      # default; cqueues for 5.1 needed)
#
# Every client implements the same command line (URL SIZE N K W [CAFILE]) and
# prints one RESULT line; see bench/clients/lua-client.lua. The clients run
# one at a time, never concurrently, in an order that rotates every round.
# Latency: N round trips of one message (32 B and 4 KiB); throughput: K
# messages with at most W in flight (32 B, 4 KiB, 1 MiB). bench/summary.lua
# takes the medians over the rounds and writes OUT/results.md, the .dat files
# and OUT/benchmarks.png.
#
# Exit status: non-zero when something broke (server did not start, a client
# failed or produced no result). Missing a target is reported, not an error.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LUA=${LUA:-lua5.4}
LUAJIT=${LUAJIT:-luajit}
PY=${PYTHON:-/usr/bin/python3}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then ROUNDS=${ROUNDS:-1}; else ROUNDS=${ROUNDS:-5}; fi
SCHEMES=${SCHEMES:-"ws wss"}
CLIENTS=${CLIENTS:-"lws-c wsbeat wsbeat-jit lua-http node-ws python-websockets"}
SERVER=${SERVER:-nginx}
PIN=${PIN:-0}
OUT=${OUT:-$ROOT/docs/benchmarks}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-120}

# SIZE N K W per case
if [ "$QUICK" = 1 ]; then
	CASES=${CASES:-"32 500 5000 256;4096 500 2000 64;1048576 0 10 4"}
else
	CASES=${CASES:-"32 5000 50000 256;4096 3000 10000 64;1048576 0 30 4"}
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsbeat-bench.XXXXXX")
SPID="" SPID2=""
cleanup() {
	local p
	for p in $SPID $SPID2; do
		if kill -0 "$p" 2>/dev/null; then
			kill "$p" 2>/dev/null
			for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		fi
	done
	[ -d "$TMP/before" ] && git -C "$ROOT" worktree remove --force "$TMP/before" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "bench.sh: $*" >&2; exit 1; }

make -s -C "$ROOT" all bench-bin >&2 || die "make failed"
# wsbeat-jit: the wsbeat client under LuaJIT, with the core built for it
case " $CLIENTS " in
*" wsbeat-jit "*)
	command -v "$LUAJIT" >/dev/null || die "wsbeat-jit: $LUAJIT not found (scripts/install-deps.sh installs luajit2; or leave wsbeat-jit out of CLIENTS)"
	make -s -C "$ROOT" all LUA_VERSION=jit >&2 || die "make all LUA_VERSION=jit failed"
	;;
esac
if [ -n "${BEFORE:-}" ]; then
	git -C "$ROOT" worktree add -q --detach "$TMP/before" "$BEFORE" >&2 || die "cannot check out $BEFORE"
	make -s -C "$TMP/before" all >&2 || die "make of $BEFORE failed"
	CLIENTS="$CLIENTS wsbeat-before"
fi

pin_server=() pin_client=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin_server=(taskset -c 0) pin_client=(taskset -c 1)
fi

# ------------------------------------------------------------ the server
case "$SERVER" in
nginx)
	"${pin_server[@]}" sh "$HERE/nginx-echo.sh" "$TMP/nginx" >"$TMP/server.out" || die "nginx did not start"
	SPID=$(awk '/^PID /{print $2}' "$TMP/server.out")
	PORT=$(awk '/^PORT /{print $2}' "$TMP/server.out")
	TPORT=$(awk '/^PORT /{print $3}' "$TMP/server.out")
	CA=$TMP/nginx/ca.pem
	SERVER_DESC="$(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //') + lua-resty-websocket (Debian lua-nginx-websocket $(dpkg-query -W -f='${Version}' lua-nginx-websocket 2>/dev/null)), one worker (bench/nginx-echo.sh)"
	;;
node)
	sh "$ROOT/spec/fixtures/gencerts.sh" "$TMP/certs" >/dev/null || die "gencerts failed"
	CA=$TMP/certs/ca.pem
	"${pin_server[@]}" node "$HERE/echo-server.js" --port 0 --tls-port 0 \
		--cert "$TMP/certs/server.pem" --key "$TMP/certs/server.key" >"$TMP/server.out" 2>"$TMP/server.err" &
	SPID=$!
	for _ in $(seq 100); do
		grep -q '^PORT ' "$TMP/server.out" 2>/dev/null && break
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.1
	done
	PORT=$(awk '/^PORT /{print $2}' "$TMP/server.out")
	TPORT=$(awk '/^PORT /{print $3}' "$TMP/server.out")
	SERVER_DESC="node $(node --version) + ws (bench/echo-server.js)"
	;;
lws)
	# one process per scheme (lws-server serves ws or wss)
	sh "$ROOT/spec/fixtures/gencerts.sh" "$TMP/certs" >/dev/null || die "gencerts failed"
	CA=$TMP/certs/ca.pem
	"${pin_server[@]}" "$ROOT/build/bench/lws-server" 0 >"$TMP/server.out" 2>"$TMP/server.err" &
	SPID=$!
	"${pin_server[@]}" "$ROOT/build/bench/lws-server" 0 "$TMP/certs/server.pem" "$TMP/certs/server.key" \
		>"$TMP/server2.out" 2>>"$TMP/server.err" &
	SPID2=$!
	for _ in $(seq 100); do
		grep -q '^listening ' "$TMP/server.out" 2>/dev/null && grep -q '^listening ' "$TMP/server2.out" 2>/dev/null && break
		kill -0 "$SPID" 2>/dev/null && kill -0 "$SPID2" 2>/dev/null || break
		sleep 0.1
	done
	PORT=$(awk '/^listening /{print $2}' "$TMP/server.out")
	TPORT=$(awk '/^listening /{print $2}' "$TMP/server2.out")
	SERVER_DESC="bench/lws-server.c (libwebsockets $(pkg-config --modversion libwebsockets), its default poll loop), one process per scheme"
	;;
*) die "unknown SERVER=$SERVER (nginx, node or lws)" ;;
esac
[ -n "${PORT:-}" ] && [ -n "${TPORT:-}" ] || { cat "$TMP/server.err" 2>/dev/null >&2; die "the echo server did not start"; }

client_cmd() { # client -> command words
	case "$1" in
	lws-c) echo "$ROOT/build/bench/lws-client" ;;
	wsbeat | wsbeat-recv | lua-http) echo "$LUA $HERE/clients/lua-client.lua $1" ;;
	wsbeat-before) echo "env WSBEAT_ROOT=$TMP/before $LUA $HERE/clients/lua-client.lua wsbeat" ;;
	# the same client under LuaJIT: it loads build-jit/ and reports wsbeat-jit
	wsbeat-jit) echo "$LUAJIT $HERE/clients/lua-client.lua wsbeat" ;;
	lua-http-jit) echo "$LUAJIT $HERE/clients/lua-client.lua lua-http" ;;
	node-ws) echo "node $HERE/clients/node-client.js" ;;
	python-websockets) echo "$PY $HERE/clients/python-client.py" ;;
	*) return 1 ;;
	esac
}
for c in $CLIENTS; do client_cmd "$c" >/dev/null || die "unknown client $c"; done

{
	echo "# wsbeat benchmarks"
	echo
	echo "Produced by \`make bench\` (bench/bench.sh; ROUNDS=$ROUNDS, SERVER=$SERVER, PIN=$PIN) on $(date -u +%Y-%m-%d)."
	echo
	echo "- machine: $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), $(uname -sr)"
	echo "- server: $SERVER_DESC"
	echo "- clients: $("$LUA" "$HERE/clients/lua-client.lua" versions 2>/dev/null); libwebsockets $(pkg-config --modversion libwebsockets); node $(node --version) + ws $(node -p "require('$ROOT/spec/fixtures/node_modules/ws/package.json').version" 2>/dev/null); python websockets $("$PY" -c 'import websockets; print(websockets.__version__)' 2>/dev/null)"
	echo "- cases (SIZE N K W): $CASES"
	jits=$(for c in $CLIENTS; do case $c in *-jit) printf ' %s' "$c" ;; esac; done)
	[ -n "$jits" ] && echo "- on LuaJIT (${jits# }): the same client script, $("$LUAJIT" "$HERE/clients/lua-client.lua" versions 2>/dev/null); $(command -v "$LUAJIT")$(dpkg-query -W -f=' (Debian luajit2 ${Version})' luajit2 2>/dev/null); wsbeat's core from build-jit/"
	[ -n "${BEFORE:-}" ] && echo "- wsbeat-before: wsbeat at $(git -C "$ROOT" rev-parse --short "$BEFORE"), wsbeat: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src lua || echo ' + uncommitted changes')"
	echo
} >"$TMP/header.md"
cat "$TMP/header.md" >&2

RES=$TMP/results.txt
: >"$RES"
failures=0
read -r -a clients <<<"$CLIENTS"
IFS=';' read -r -a cases <<<"$CASES"
for round in $(seq "$ROUNDS"); do
	# rotate the order so that no client always runs first or last
	n=${#clients[@]}
	order=()
	for i in $(seq 0 $((n - 1))); do order+=("${clients[$(((i + round - 1) % n))]}"); done
	for scheme in $SCHEMES; do
		if [ "$scheme" = wss ]; then url="wss://localhost:$TPORT/echo"; ca=$CA; else url="ws://127.0.0.1:$PORT/echo"; ca=""; fi
		for case in "${cases[@]}"; do
			read -r size N K W <<<"$case"
			for c in "${order[@]}"; do
				# shellcheck disable=SC2046
				line=$(timeout "$CLIENT_TIMEOUT" "${pin_client[@]}" $(client_cmd "$c") "$url" "$size" "$N" "$K" "$W" $ca 2>"$TMP/err" | grep '^RESULT ')
				if [ -n "$line" ]; then
					echo "RESULT scheme=$scheme round=$round ${line#RESULT }" | tee -a "$RES" >&2
				else
					failures=$((failures + 1))
					echo "FAILED round=$round scheme=$scheme size=$size client=$c: $(tail -c 300 "$TMP/err")" >&2
				fi
			done
		done
	done
done

mkdir -p "$OUT"
cp "$RES" "$OUT/results.txt"
"$LUA" "$HERE/summary.lua" "$RES" "$OUT" "$TMP/header.md" || failures=$((failures + 1))
echo "report: $OUT/results.md, $OUT/benchmarks.png" >&2
[ "$failures" = 0 ] || die "$failures client run(s) failed"
