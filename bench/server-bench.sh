#!/usr/bin/env bash
# Side-by-side echo benchmark of WebSocket SERVERS (make bench-server):
# wsbeat, the C ceiling (a plain libwebsockets server, bench/lws-server.c),
# node ws and python websockets, all driven by ONE load client, so that only
# the server differs: by default bench/epoll-client.c (C on epoll and
# OpenSSL, batched reads and writes), which is not the bound, so each
# server's own ceiling shows.
#
#   bench/server-bench.sh                   # 5 rounds, ws and wss, 32 B / 4 KiB / 1 MiB
#   ROUNDS=3 bench/server-bench.sh
#   QUICK=1 bench/server-bench.sh           # 1 round, small counts: a smoke run
#   SERVERS="lws node python" SCHEMES=ws SIZES="32 4096" bench/server-bench.sh
#   PIN=0 bench/server-bench.sh             # unpinned (default: servers on CPU 0,
#                                           # the client on CPU 1)
#   OUT=/tmp/s bench/server-bench.sh        # where the report goes (docs/benchmarks/server)
#   LOAD=lws bench/server-bench.sh          # the load client: epoll (default,
#                                           # bench/epoll-client.c), lws (the C
#                                           # client on libwebsockets: one read,
#                                           # write and poll per message, the bound
#                                           # at 4 KiB and over wss), wsbeat or node
#                                           # (their bench clients)
#
# Servers (each on a free 127.0.0.1 port; wss with a throwaway certificate
# from spec/fixtures/gencerts.sh; each prints "listening PORT" when ready):
#   lws      build/bench/lws-server PORT [CERT KEY]
#   wsbeat   lua5.4 scripts/echo-server.lua --port PORT [--cert C --key K]
#   node     node bench/echo-server.js PORT [CERT KEY]
#   python   /usr/bin/python3 scripts/py-echo-server.py --port PORT [--cert C --key K]
#
# Every round, for each scheme and size, every server in turn (in an order
# that rotates each round) is started, measured with one run of the load
# client (latency: N round trips, one in flight; throughput: K messages, at
# most W in flight) and stopped, so all servers see the same machine state.
# bench/server-summary.lua takes the medians over the rounds, the ratios to
# lws, and writes OUT/summary.md (also printed); OUT/results.txt holds the
# raw lines.
#
# A server that does not start (say, a missing script, or make all failing
# for wsbeat) is reported on stderr and skipped for the rest of the run in
# that scheme; its cells say "not run" and the report lists it. Exit status: non-zero when a server did
# not start or a client run failed (the report is written all the same).
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LUA=${LUA:-lua5.4}
PY=${PYTHON:-/usr/bin/python3}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then ROUNDS=${ROUNDS:-1}; else ROUNDS=${ROUNDS:-5}; fi
SCHEMES=${SCHEMES:-"ws wss"}
SIZES=${SIZES:-"32 4096 1048576"}
SERVERS=${SERVERS:-"wsbeat lws node python"}
# Pinned by default: unpinned, a 32 B round trip was either ~8 or ~60 us
# depending on where the scheduler put the two processes, run by run, for
# every server alike, so the medians said more about placement than servers.
PIN=${PIN:-1}
OUT=${OUT:-$ROOT/docs/benchmarks/server}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-120}
START_TIMEOUT=${START_TIMEOUT:-10}
# the load client: the epoll C client (default), the lws C client, wsbeat's
# own or node ws's (bench/clients/): the same command line (wss: the CA file
# last), one RESULT line
LOAD=${LOAD:-epoll}
export LOAD # (server-summary.lua names it)
case "$LOAD" in
lws) CLIENT=("$ROOT/build/bench/lws-client") ;;
epoll) CLIENT=("$ROOT/build/bench/epoll-client") ;;
wsbeat) CLIENT=("$LUA" "$HERE/clients/lua-client.lua" wsbeat) ;;
node) CLIENT=(node "$HERE/clients/node-client.js") ;;
*) echo "server-bench.sh: LOAD must be lws, epoll, wsbeat or node" >&2; exit 2 ;;
esac

# SIZE -> "N K W": round trips, pipelined messages, window
counts() {
	if [ "$QUICK" = 1 ]; then
		if [ "$1" -le 1024 ]; then echo "500 5000 256"
		elif [ "$1" -le 65536 ]; then echo "500 2000 64"
		else echo "5 10 4"; fi
	else
		if [ "$1" -le 1024 ]; then echo "5000 50000 256"
		elif [ "$1" -le 65536 ]; then echo "3000 10000 64"
		else echo "20 30 4"; fi
	fi
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsbeat-sbench.XXXXXX")
SPID=""
stop_server() {
	[ -n "$SPID" ] || return 0
	kill "$SPID" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
	kill -9 "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
	SPID=""
}
cleanup() {
	stop_server
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "server-bench.sh: $*" >&2; exit 1; }

START=$(date +%s)
make -s -C "$ROOT" bench-bin >&2 || die "make bench-bin failed"
build_err=""
case " $SERVERS " in
*" wsbeat "*) make -s -C "$ROOT" all >&2 || build_err="make all failed (the wsbeat module)" ;;
esac
sh "$ROOT/spec/fixtures/gencerts.sh" "$TMP/certs" >/dev/null || die "gencerts failed"
CERT=$TMP/certs/server.pem KEY=$TMP/certs/server.key CA=$TMP/certs/ca.pem

pin_server=() pin_client=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin_server=(taskset -c 0) pin_client=(taskset -c 1)
fi

# server scheme port -> its command line, one word per line
server_cmd() {
	local tls=()
	case "$1" in
	lws | node) [ "$2" = wss ] && tls=("$CERT" "$KEY") ;;
	wsbeat | python) [ "$2" = wss ] && tls=(--cert "$CERT" --key "$KEY") ;;
	esac
	case "$1" in
	lws) printf '%s\n' "$ROOT/build/bench/lws-server" "$3" "${tls[@]}" ;;
	node) printf '%s\n' node "$HERE/echo-server.js" "$3" "${tls[@]}" ;;
	python) printf '%s\n' "$PY" "$ROOT/scripts/py-echo-server.py" --port "$3" "${tls[@]}" ;;
	wsbeat) printf '%s\n' env "LUA_PATH=$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" \
		"LUA_CPATH=$ROOT/build/?.so;;" "$LUA" "$ROOT/scripts/echo-server.lua" --port "$3" "${tls[@]}" ;;
	*) return 1 ;;
	esac
}
for s in $SERVERS; do server_cmd "$s" ws 1 >/dev/null || die "unknown server $s (wsbeat lws node python)"; done

# utime + stime of a process, in clock ticks (HZ a second)
HZ=$(getconf CLK_TCK)
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server NAME SCHEME: sets SPID and SPORT, or returns 1 with the
# reason in START_ERR. Ready when it prints "listening PORT" or, failing
# that, when its port accepts a connection. A port taken between the probe
# and the bind is retried with another.
start_server() {
	local name=$1 scheme=$2 port cmd i
	START_ERR=""
	for _ in 1 2 3; do
		port=$(free_port) || { START_ERR="no free port"; return 1; }
		mapfile -t cmd < <(server_cmd "$name" "$scheme" "$port")
		"${pin_server[@]}" "${cmd[@]}" </dev/null >"$TMP/server.out" 2>"$TMP/server.err" &
		SPID=$!
		SPORT=""
		for i in $(seq $((START_TIMEOUT * 20))); do
			SPORT=$(awk '/^listening [0-9]+/{print $2; exit}' "$TMP/server.out")
			[ -n "$SPORT" ] && return 0
			kill -0 "$SPID" 2>/dev/null || break
			# no line after 1 s (a buffered stdout?): try the port itself
			if [ "$i" -gt 20 ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
				SPORT=$port
				return 0
			fi
			sleep 0.05
		done
		if kill -0 "$SPID" 2>/dev/null; then
			START_ERR="not listening after ${START_TIMEOUT} s"
		else
			wait "$SPID"
			START_ERR="exited with status $?"
		fi
		stop_server
		START_ERR="$START_ERR: $(tail -c 400 "$TMP/server.err" | tr '\n' ' ' | sed 's/ *$//')"
		# only "address in use" is worth another port
		grep -qi 'in use' "$TMP/server.err" || break
	done
	return 1
}

versions() { # one line per server, for the header
	local s
	for s in $SERVERS; do
		case "$s" in
		lws) echo "- lws: bench/lws-server.c, libwebsockets $(pkg-config --modversion libwebsockets), default poll loop (the C ceiling)" ;;
		wsbeat) echo "- wsbeat: scripts/echo-server.lua, $(LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$ROOT/build/?.so;;" \
			"$LUA" -e 'local ok, w = pcall(require, "wsbeat") print(ok and w._VERSION or "wsbeat (not loadable)")' 2>/dev/null) ($($LUA -v 2>&1 | awk '{print $1, $2}'))" ;;
		node) echo "- node: bench/echo-server.js, node $(node --version) + ws $(node -p "require('$ROOT/spec/fixtures/node_modules/ws/package.json').version" 2>/dev/null)" ;;
		python) echo "- python: scripts/py-echo-server.py, $("$PY" --version 2>&1) + websockets $("$PY" -c 'import websockets; print(websockets.__version__)' 2>/dev/null)" ;;
		esac
	done
}

{
	echo "# wsbeat server benchmark"
	echo
	echo "Produced by \`make bench-server\` (bench/server-bench.sh; ROUNDS=$ROUNDS, QUICK=$QUICK, PIN=$PIN) on $(date -u +%Y-%m-%d)."
	echo
	echo "- machine: $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), $(uname -sr)"
	case "$LOAD" in
	lws) echo "- load client: bench/lws-client.c (libwebsockets $(pkg-config --modversion libwebsockets)), the same for every server" ;;
	epoll) echo "- load client: bench/epoll-client.c (epoll, OpenSSL $(pkg-config --modversion openssl)), the same for every server" ;;
	*) echo "- load client: $LOAD (bench/clients/), the same for every server" ;;
	esac
	versions
	printf -- '- cases (SIZE: N round trips, K pipelined messages, window W):'
	for size in $SIZES; do read -r N K W <<<"$(counts "$size")"; printf ' %s: %s %s %s;' "$size" "$N" "$K" "$W"; done
	echo
} >"$TMP/header.md"
cat "$TMP/header.md" >&2

RES=$TMP/results.txt
echo "SERVERS $SERVERS" >"$RES"
failures=0
declare -A dead=() # "server/scheme" -> why it did not start
if [ -n "$build_err" ]; then
	for scheme in $SCHEMES; do dead["wsbeat/$scheme"]="did not start: $build_err"; done
	echo "server-bench.sh: SERVER wsbeat SKIPPED: $build_err" >&2
fi
read -r -a servers <<<"$SERVERS"
for round in $(seq "$ROUNDS"); do
	# rotate the order so that no server always runs first or last
	n=${#servers[@]}
	order=()
	for i in $(seq 0 $((n - 1))); do order+=("${servers[$(((i + round - 1) % n))]}"); done
	for scheme in $SCHEMES; do
		for size in $SIZES; do
			read -r N K W <<<"$(counts "$size")"
			for s in "${order[@]}"; do
				tag="scheme=$scheme round=$round server=$s size=$size"
				if [ -n "${dead["$s/$scheme"]:-}" ]; then
					echo "SKIPPED $tag reason=${dead["$s/$scheme"]}" >>"$RES"
					continue
				fi
				if ! start_server "$s" "$scheme"; then
					dead["$s/$scheme"]="did not start: $START_ERR"
					echo "server-bench.sh: SERVER $s ($scheme) DID NOT START, skipped for the rest of the run: $START_ERR" >&2
					echo "SKIPPED $tag reason=${dead["$s/$scheme"]}" >>"$RES"
					continue
				fi
				if [ "$scheme" = wss ]; then url="wss://localhost:$SPORT/echo"; ca=$CA; else url="ws://127.0.0.1:$SPORT/echo"; ca=""; fi
				cpu0=$(cpu_ticks "$SPID")
				# shellcheck disable=SC2086
				line=$(timeout "$CLIENT_TIMEOUT" "${pin_client[@]}" "${CLIENT[@]}" "$url" "$size" "$N" "$K" "$W" $ca 2>"$TMP/err" | grep '^RESULT ')
				cpu1=$(cpu_ticks "$SPID")
				alive=1
				kill -0 "$SPID" 2>/dev/null || alive=0
				stop_server
				if [ -n "$line" ]; then
					line=${line#RESULT }
					# the server's CPU (user + system) over the client's run,
					# per message it echoed (round trips and pipelined)
					cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" -v n=$((N + K)) \
						'BEGIN { printf "%.2f", (b - a) * 1e6 / hz / n }')
					line=${line#client=* }
					echo "RESULT $tag ${line#size="$size" } cpu_us=$cpu" | tee -a "$RES" >&2
				else
					failures=$((failures + 1))
					why="$(tail -c 300 "$TMP/err" | tr '\n' ' ' | sed 's/ *$//')"
					[ "$alive" = 0 ] && why="$why (the server died: $(tail -c 300 "$TMP/server.err" | tr '\n' ' ' | sed 's/ *$//'))"
					echo "FAILED $tag reason=$why" | tee -a "$RES" >&2
				fi
			done
		done
	done
done

secs=$(($(date +%s) - START))
echo "- run time: $((secs / 60)) min $((secs % 60)) s" >>"$TMP/header.md"
mkdir -p "$OUT"
cp "$RES" "$OUT/results.txt"
"$LUA" "$HERE/server-summary.lua" "$RES" "$OUT" "$TMP/header.md" || failures=$((failures + 1))
echo "report: $OUT/summary.md (run time $((secs / 60)) min $((secs % 60)) s)" >&2
status=0
if [ "${#dead[@]}" -gt 0 ]; then
	echo "server-bench.sh: did not start: ${!dead[*]}" >&2
	status=1
fi
[ "$failures" = 0 ] || { echo "server-bench.sh: $failures client run(s) failed" >&2; status=1; }
exit "$status"
