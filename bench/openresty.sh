#!/bin/sh
# wsbeat inside an nginx worker (nginx + its Lua module, LuaJIT), against
# lua-resty-websocket's client in the same kind of worker, side by side:
#
#   sh bench/openresty.sh                  # 3 rounds; writes docs/benchmarks/openresty/
#   ROUNDS=1 N=300 K=5000 IDLE=2 OUT=/tmp/orb sh bench/openresty.sh   # a smoke run
#
# Configurations, run one at a time, in an order that rotates every round:
#   wsbeat-socket     wsbeat.openresty.start{wake="socket"} (the baseline)
#   wsbeat-poll-10ms  wsbeat.openresty.start{wake="poll", interval=0.01}
#   wsbeat-poll-1ms   wsbeat.openresty.start{wake="poll", interval=0.001}
#   resty             lua-resty-websocket's client in a timer (Debian's
#                     lua-nginx-websocket: nginx.websocket.client)
# Each one gets a fresh client nginx (worker_processes 1; its nginx.conf is
# generated here; the code is bench/openresty/orbench.lua) that measures:
#   latency     N round trips of SIZE bytes of text, one in flight, after
#               min(200, N) warm-ups: p50, p99 (µs, nearest rank);
#   throughput  K messages, at most W unanswered: msg/s (wsbeat: a sliding
#               window refilled from on_message; resty: W sent then W
#               received, repeated, the natural way with one cosocket);
#   idle        then, connected and idle (wsbeat's default heartbeat of
#               20 s; resty in recv_frame with a 20 s timeout), after SETTLE
#               seconds, over IDLE seconds, read from outside the worker:
#               CPU time (utime+stime of /proc/PID/stat, 10 ms ticks, and
#               the ns sum of /proc/PID/task/*/schedstat), the loop's
#               wake-ups (wsbeat.openresty.stats().wakeups; resty: returns
#               of recv_frame) and the threads' wake-ups (voluntary context
#               switches of every thread of the worker: the waker's too).
# The worker writes its RESULT line to a file (and to its error log at
# NOTICE, marker ORBENCH); the script waits for it with a deadline.
#
# The echo server, one for every configuration: bench/nginx-echo.sh (nginx
# + lua-resty-websocket's server, one worker), the server of bench/bench.sh:
# at 32 B it echoes faster than any client here (380,000 msg/s to wsbeat
# on Lua 5.4, docs/benchmarks/results.md, more than bench/lws-server's
# 314,000), it needs no build, and it answers pings.
#
# Knobs: ROUNDS (3), OUT (docs/benchmarks/openresty), N (2000), K (100000),
# W (256), SIZE (32), IDLE (10), SETTLE (1), PIN (1: echo server on CPU 0,
# client nginx on CPU 1; 0: unpinned), CONFIGS (all four, by name),
# RUN_TIMEOUT (seconds for one configuration's latency and throughput, 180),
# NGINX, NGINX_MODULES, LUA (lua5.4, for the summary).
#
# Writes OUT/results.txt (the RESULT lines), OUT/summary.md (medians,
# ratios to wsbeat-socket), OUT/log.txt (what the client nginx logged
# above NOTICE: warnings, errors). Exit status non-zero when a run failed or
# something is missing. Every nginx it started is stopped, also on failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$ROOT/docs/benchmarks/openresty}
N=${N:-2000}
K=${K:-100000}
W=${W:-256}
SIZE=${SIZE:-32}
IDLE=${IDLE:-10}
SETTLE=${SETTLE:-1}
PIN=${PIN:-1}
CONFIGS=${CONFIGS:-"wsbeat-socket wsbeat-poll-10ms wsbeat-poll-1ms resty"}
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
NGINX=${NGINX:-/usr/sbin/nginx}
MODS=${NGINX_MODULES:-/usr/lib/nginx/modules}
LUA=${LUA:-lua5.4}

die() { echo "openresty.sh: $*" >&2; exit 1; }

# ------------------------------------------------------------ what it needs
[ -x "$NGINX" ] || die "$NGINX not found: apt-get install nginx libnginx-mod-http-lua lua-nginx-websocket (or NGINX=...)"
if [ ! -f "$MODS/ngx_http_lua_module.so" ] || [ ! -f "$MODS/ndk_http_module.so" ]; then
	die "nginx's Lua module missing in $MODS: apt-get install libnginx-mod-http-lua"
fi
RESTY_CLIENT=""
for f in /usr/share/lua/5.1/resty/websocket/client.lua /usr/share/lua/5.1/nginx/websocket/client.lua \
	/usr/local/share/lua/5.1/resty/websocket/client.lua; do
	[ -f "$f" ] && { RESTY_CLIENT=$f; break; }
done
case " $CONFIGS " in *" resty "*)
	[ -n "$RESTY_CLIENT" ] || die "lua-resty-websocket's client missing: apt-get install lua-nginx-websocket" ;;
esac
[ -f /usr/share/lua/5.1/nginx/websocket/server.lua ] || die "lua-nginx-websocket missing (the echo server): apt-get install lua-nginx-websocket"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"
command -v "$LUA" >/dev/null || die "$LUA not found (apt-get install lua5.4): it writes the summary"
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 not found (it picks free ports)"
for c in $CONFIGS; do
	case $c in wsbeat-socket | wsbeat-poll-10ms | wsbeat-poll-1ms | resty) ;;
	*) die "unknown configuration $c (wsbeat-socket wsbeat-poll-10ms wsbeat-poll-1ms resty)" ;;
	esac
done
PIN_SERVER="" PIN_CLIENT=""
if [ "$PIN" = 1 ]; then
	command -v taskset >/dev/null || die "PIN=1 needs taskset (util-linux); PIN=0 runs unpinned"
	[ "$(nproc)" -ge 2 ] || die "PIN=1 needs 2 CPUs; PIN=0 runs unpinned"
	PIN_SERVER="taskset -c 0" PIN_CLIENT="taskset -c 1"
fi
[ -r "/proc/self/schedstat" ] && HAVE_SCHEDSTAT=1 || HAVE_SCHEDSTAT=0

# nginx's Lua module is LuaJIT: the core built for it
make -s -C "$ROOT" all LUA_VERSION=jit >&2 || die "make all LUA_VERSION=jit failed"
[ -f "$ROOT/build-jit/wsbeat/core.so" ] || die "build-jit/wsbeat/core.so missing after make all LUA_VERSION=jit"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsbeat-orbench.XXXXXX")
chmod 755 "$TMP" # the workers may run as another user (they only write below)
ECHO_PID="" CLIENT_PID=""

# Stop one nginx: its master (by pid) and the workers it had, TERM and
# then KILL after 5 s. Workers outlive a killed master: they are stopped
# by their own pids.
stop_nginx() {
	m=$1
	[ -n "$m" ] || return 0
	kids=$(ps -o pid= --ppid "$m" 2>/dev/null)
	kill -TERM "$m" 2>/dev/null
	i=0
	while [ $i -lt 50 ]; do
		alive=""
		for p in $m $kids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
		[ -z "$alive" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	for p in $m $kids; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
	wait "$m" 2>/dev/null
	return 0
}
cleanup() {
	stop_nginx "$CLIENT_PID"
	stop_nginx "$ECHO_PID"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# seconds since the epoch, ns resolution
now() { date +%s.%N; }

# ------------------------------------------------------------ the echo server
# (nginx-echo.sh daemonizes nginx: the master and its worker inherit the pinning)
# shellcheck disable=SC2086
$PIN_SERVER sh "$HERE/nginx-echo.sh" "$TMP/echo" >"$TMP/echo.out" || die "the echo server did not start"
ECHO_PID=$(awk '/^PID /{print $2}' "$TMP/echo.out")
PORT=$(awk '/^PORT /{print $2}' "$TMP/echo.out")
if [ -z "$PORT" ] || [ -z "$ECHO_PID" ]; then die "the echo server did not start"; fi
URL="ws://127.0.0.1:$PORT/echo"

USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;" # (nobody may not read the checkout)

# CPU (ticks, utime+stime), CPU (ns, schedstat of every thread) and
# voluntary context switches (every thread) of process $1.
sample() {
	ticks=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat")
	ns=-
	[ "$HAVE_SCHEDSTAT" = 1 ] && ns=$(cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f", s }')
	csw=$(cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s }')
	echo "$ticks $ns $csw"
}

# What the client nginx logged above NOTICE (also while stopping), kept
# for OUT/log.txt: an oddity of wsbeat inside nginx shows there.
keep_log() {
	grep -E '\[(warn|error|crit|alert|emerg)\]' "$3" 2>/dev/null | sed "s|^|$1 round $2: |" >>"$TMP/log.txt"
}

# run_one CONFIG ROUND: one client nginx, one RESULT line on stdout, or a
# FAILED line (and status 1).
run_one() {
	cfg=$1 round=$2
	D=$TMP/$round-$cfg
	mkdir -p "$D/tmp"
	: >"$D/out"
	chmod 666 "$D/out"
	hport=$(free_port)
	case $cfg in
	wsbeat-socket) extra='wake = "socket",' ;;
	wsbeat-poll-10ms) extra='wake = "poll", interval = 0.01,' ;;
	wsbeat-poll-1ms) extra='wake = "poll", interval = 0.001,' ;;
	resty) extra='' ;;
	esac
	cat >"$D/nginx.conf" <<CONF
load_module $MODS/ndk_http_module.so;
load_module $MODS/ngx_http_lua_module.so;
$USER_LINE
worker_processes 1;
daemon off;
pid $D/nginx.pid;
error_log $D/error.log notice;
worker_shutdown_timeout 1s;
events { worker_connections 256; }
http {
	access_log off;
	keepalive_timeout 0;
	lua_socket_log_errors off;
	client_body_temp_path $D/tmp;
	proxy_temp_path $D/tmp;
	fastcgi_temp_path $D/tmp;
	uwsgi_temp_path $D/tmp;
	scgi_temp_path $D/tmp;
	# wsbeat from this checkout: its Lua layer and its core built for LuaJIT
	lua_package_path "$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$HERE/openresty/?.lua;/usr/share/lua/5.1/?.lua;;";
	lua_package_cpath "$ROOT/build-jit/?.so;;";
	init_worker_by_lua_block {
		require("orbench").init {
			config = "$cfg", url = "$URL", $extra
			size = $SIZE, n = $N, k = $K, w = $W, out = "$D/out",
		}
	}
	server {
		listen 127.0.0.1:$hport;
		location = /stats { content_by_lua_block { require("orbench").stats() } }
	}
}
CONF
	# shellcheck disable=SC2086
	$PIN_CLIENT "$NGINX" -p "$D" -c "$D/nginx.conf" -e "$D/error.log" </dev/null >/dev/null 2>&1 &
	CLIENT_PID=$!
	# the result, or an error, or the deadline
	deadline=$(($(date +%s) + RUN_TIMEOUT))
	why=""
	while :; do
		grep -q '^ERROR ' "$D/out" && { why=$(grep -m1 '^ERROR ' "$D/out" | cut -c7-); break; }
		grep -q '^IDLE' "$D/out" && break
		kill -0 "$CLIENT_PID" 2>/dev/null || { why="nginx exited: $(tail -n 3 "$D/error.log" | tr '\n' ' ')"; break; }
		[ "$(date +%s)" -ge "$deadline" ] && { why="no result within $RUN_TIMEOUT s"; break; }
		sleep 0.1
	done
	wpid=$(awk '/^PID /{print $2; exit}' "$D/out")
	if [ -z "$why" ] && [ -z "$wpid" ]; then why="no worker pid"; fi
	if [ -z "$why" ]; then
		res=$(grep -m1 '^RESULT ' "$D/out")
		sleep "$SETTLE"
		s0=$(curl -s -m 5 "http://127.0.0.1:$hport/stats")
		a0=$(sample "$wpid")
		t0=$(now)
		sleep "$IDLE"
		a1=$(sample "$wpid")
		t1=$(now)
		s1=$(curl -s -m 5 "http://127.0.0.1:$hport/stats")
		grep -q '^ERROR ' "$D/out" && why="while idle: $(grep -m1 '^ERROR ' "$D/out" | cut -c7-)"
		case "$s0$s1" in *wakeups=*wakeups=*) ;; *) [ -n "$why" ] || why="GET /stats failed: '$s0' '$s1'" ;; esac
	fi
	if [ -z "$why" ]; then
		w0=$(echo "$s0" | sed -n 's/.*wakeups=\([0-9]*\).*/\1/p')
		w1=$(echo "$s1" | sed -n 's/.*wakeups=\([0-9]*\).*/\1/p')
		wake=$(echo "$s1" | sed -n 's/.*wake=\([^ ]*\).*/\1/p')
		errs=$(echo "$s1" | sed -n 's/.*errors=\([0-9]*\).*/\1/p')
		idle=$(echo "$a0 $a1 $t0 $t1 $w0 $w1" | awk -v hz="$(getconf CLK_TCK)" '{
			secs = $8 - $7
			ns = ($2 == "-" || $5 == "-") ? "-" : sprintf("%.3f", ($5 - $2) / 1e6 / secs)
			printf "idle_s=%.2f cpu_ms_s=%.3f sched_ms_s=%s wakeups_s=%.2f csw_s=%.2f",
				secs, ($4 - $1) * 1000 / hz / secs, ns, ($10 - $9) / secs, ($6 - $3) / secs }')
		line="RESULT round=$round ${res#RESULT } $idle wake=$wake errors=$errs"
		stop_nginx "$CLIENT_PID"
		CLIENT_PID=""
		keep_log "$cfg" "$round" "$D/error.log"
		echo "$line"
		return 0
	fi
	echo "FAILED round=$round config=$cfg reason=$(echo "$why" | tr ' ' '_' | cut -c1-300)"
	{
		echo "openresty.sh: $cfg, round $round: $why"
		echo "--- its error log (last lines):"
		grep -v ' \[notice\] ' "$D/error.log" | tail -n 10
	} >&2
	stop_nginx "$CLIENT_PID"
	CLIENT_PID=""
	keep_log "$cfg" "$round" "$D/error.log"
	return 1
}

# ------------------------------------------------------------ the rounds
HEADER=$TMP/header.md
{
	echo "# wsbeat inside nginx"
	echo
	echo "Produced by \`sh bench/openresty.sh\` (ROUNDS=$ROUNDS, PIN=$PIN, N=$N, K=$K, W=$W, SIZE=$SIZE, IDLE=$IDLE) on $(date -u +%Y-%m-%d)."
	echo
	echo "- machine: $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), $(uname -sr)"
	echo "- client: $("$NGINX" -v 2>&1 | sed 's/.*: //') with libnginx-mod-http-lua $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null) (LuaJIT $(dpkg-query -W -f='${Version}' libluajit2-5.1-2 2>/dev/null)), one worker$([ "$PIN" = 1 ] && echo ' on CPU 1'); wsbeat $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) (core from build-jit/); lua-resty-websocket's client $(basename "$(dirname "$(dirname "$RESTY_CLIENT")")").websocket.client (Debian lua-nginx-websocket $(dpkg-query -W -f='${Version}' lua-nginx-websocket 2>/dev/null))"
	echo "- echo server: bench/nginx-echo.sh (nginx + lua-resty-websocket's server, one worker$([ "$PIN" = 1 ] && echo ', CPU 0')), the same for every configuration"
	echo
} >"$HEADER"
cat "$HEADER" >&2

RES=$TMP/results.txt
: >"$RES"
failures=0
# shellcheck disable=SC2086
set -- $CONFIGS
n=$#
for round in $(seq "$ROUNDS"); do
	# rotate the order so that no configuration always runs first
	order="" j=0
	for c in $CONFIGS; do
		order="$order $(echo "$CONFIGS" | awk -v i=$(((j + round - 1) % n + 1)) '{ print $i }')"
		j=$((j + 1))
	done
	for c in $order; do
		# (not in a $(...) subshell: the trap must know the client's pid)
		run_one "$c" "$round" >"$TMP/line" || failures=$((failures + 1))
		tee -a "$RES" <"$TMP/line" >&2
	done
done

mkdir -p "$OUT"
cp "$RES" "$OUT/results.txt"
: >>"$TMP/log.txt"
cp "$TMP/log.txt" "$OUT/log.txt"
[ -s "$TMP/log.txt" ] && echo "openresty.sh: the client nginx logged $(wc -l <"$TMP/log.txt") line(s) above NOTICE: $OUT/log.txt" >&2
"$LUA" "$HERE/openresty/summary.lua" "$RES" "$OUT" "$HEADER" || failures=$((failures + 1))
echo "report: $OUT/summary.md, raw lines: $OUT/results.txt" >&2
[ "$failures" = 0 ] || die "$failures run(s) failed"
