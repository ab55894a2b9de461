#!/usr/bin/env bash
# Server scale benchmark (make bench-server-scale; not part of the tests):
# a wsbeat server holding 10,000 idle connections, next to baselines run
# side by side in the same command, interleaved per round (the order of the
# servers rotates each round):
#
#   1. memory: the server's RSS with N connections minus its RSS with none,
#      divided by N; wsbeat (heartbeat 5 s / 5 s) against a plain
#      libwebsockets server (bench/lws-server.c) and node ws
#      (bench/server-scale-node.js), plus wsbeat without heartbeat
#   2. heartbeat CPU: the wsbeat server's utime+stime (/proc/PID/stat) over
#      WINDOW seconds while it holds the N idle connections with heartbeat
#      interval 5 s, as % of one core; baseline: the same server with
#      heartbeat = false over the same window
#   3. detection: DN clients vanish at once (their process SIGSTOPs itself:
#      the kernel still ACKs, nobody answers a PING); the time from the stop
#      until the wsbeat server (heartbeat 1 s / 1 s) has closed all of them,
#      against the bound interval + timeout
#   4. broadcast: one 64-byte text to N connections, the time from just
#      before server:broadcast() until the last client has it; against node
#      ws's wss.clients.forEach(c => c.send(msg)); BCASTS per server and round
#
#   bench/server-scale.sh                  # N=10000, 3 rounds, 30 s windows: ~5 min
#   ROUNDS=1 N=2000 WINDOW=10 bench/server-scale.sh     # a smoke run
#   SERVERS="wsbeat lws" DTRIALS=0 bench/server-scale.sh
#
# Knobs: N, ROUNDS, WINDOW (s of the CPU window), INTERVAL (heartbeat of the
# held connections), BCASTS (per server and round), DN, DTRIALS (detection
# trials per round), DINTERVAL (heartbeat interval = timeout of the
# detection server), SERVERS (wsbeat wsbeat-nohb lws node), SETTLE (s
# between "all open" and the RSS reading), OUT (docs/benchmarks/server-scale).
#
# The load side is one process, build/bench/server-scale-hold (compiled
# here from bench/server-scale-hold.c): plain libwebsockets on a libuv
# (epoll) loop; it answers the server's PINGs and sends none. Clocks: the servers
# print CLOCK_MONOTONIC microseconds (wsbeat.core.now, process.hrtime), the
# load side too. The open-file limit is raised to the hard limit.
#
# Every process the script starts is killed on exit, failure or interrupt.
# Raw lines: OUT/results.txt; report: OUT/summary.md (also printed), by
# bench/server-scale-summary.lua. Exit status non-zero when a run failed
# (the report is written all the same, failures listed).
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LUA=${LUA:-lua5.4}
NODE=${NODE:-node}
N=${N:-10000}
ROUNDS=${ROUNDS:-3}
WINDOW=${WINDOW:-30}
INTERVAL=${INTERVAL:-5}
BCASTS=${BCASTS:-5}
DN=${DN:-1000}
DTRIALS=${DTRIALS:-3}
DINTERVAL=${DINTERVAL:-1}
SERVERS=${SERVERS:-"wsbeat wsbeat-nohb lws node"}
SETTLE=${SETTLE:-2}
OUT=${OUT:-$ROOT/docs/benchmarks/server-scale}
HOLD=$ROOT/build/bench/server-scale-hold
LWS_SERVER=$ROOT/build/bench/lws-server

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsbeat-sscale.XXXXXX")
PIDS=""     # every process started and not yet reaped
FAILED=0

kill_proc() { # PID: continue it (a stopped holder), TERM, then KILL; reap
	local p=$1
	kill -CONT "$p" 2>/dev/null
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$p" | tr '\n' ' ')
}
cleanup() {
	local p
	for p in $PIDS $SLEEPER; do
		kill -CONT "$p" 2>/dev/null
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "server-scale.sh: $*" >&2; exit 1; }
say() { echo "server-scale.sh: $*" >&2; }

# pause SECONDS: a sleep that a signal interrupts (bash runs a trap only
# once a foreground command has finished, but interrupts "wait" at once)
SLEEPER=""
pause() {
	sleep "$1" &
	SLEEPER=$!
	wait "$SLEEPER"
	SLEEPER=""
}

# start_bg CMD... (redirections on the call): sets BGPID
start_bg() {
	"$@" &
	BGPID=$!
	PIDS="$PIDS $BGPID"
}

# wait_for FILE ERE SECONDS PID...: until a line of FILE matches, false when
# the time is up or one of the processes is gone
wait_for() {
	local file=$1 re=$2 secs=$3 p end
	shift 3
	end=$(( $(date +%s%N) + secs * 1000000000 ))
	while ! grep -qE "$re" "$file" 2>/dev/null; do
		for p in "$@"; do kill -0 "$p" 2>/dev/null || return 1; done
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null; }
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }
CLK_TCK=$(getconf CLK_TCK)

result() { echo "RESULT $*" >>"$OUT/results.txt"; echo "  $*" >&2; }

# --- preparation
[ -f "$ROOT/build/wsbeat/core.so" ] || die "build/wsbeat/core.so is missing (make all)"
make -s -C "$ROOT" build/bench/lws-server >&2 || say "lws-server did not build: lws is not run"
if [ ! -x "$HOLD" ] || [ "$HERE/server-scale-hold.c" -nt "$HOLD" ]; then
	mkdir -p "$(dirname "$HOLD")"
	# shellcheck disable=SC2046 # (pkg-config's flags are words)
	cc -std=c99 -D_GNU_SOURCE -Wall -Wextra -O2 -g -o "$HOLD" "$HERE/server-scale-hold.c" \
		$(pkg-config --cflags --libs libwebsockets libuv) || die "cannot build $HOLD"
fi
ulimit -n "$(ulimit -Hn)" || die "cannot raise the open-file limit"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $((N + 200)) ] ||
	die "N=$N does not fit under the open-file limit $(ulimit -n)"
mkdir -p "$OUT"
: >"$OUT/results.txt"
T_START=$(date +%s)
{
	echo "META date=$(date -u +%Y-%m-%dT%H:%MZ)"
	echo "META commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src lua 2>/dev/null || echo +dirty)"
	echo "META kernel=$(uname -r) cpus=$(nproc)"
	echo "META lws=$(pkg-config --modversion libwebsockets) node=$($NODE --version 2>/dev/null) ws=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$ROOT/spec/fixtures/node_modules/ws/package.json" 2>/dev/null | head -1) lua=$($LUA -v 2>&1 | awk '{print $2}')"
	echo "META load_start=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
	echo "META N=$N ROUNDS=$ROUNDS WINDOW=$WINDOW INTERVAL=$INTERVAL BCASTS=$BCASTS DN=$DN DTRIALS=$DTRIALS DINTERVAL=$DINTERVAL SETTLE=$SETTLE SERVERS=${SERVERS// /,}"
} >>"$OUT/results.txt"

# start_server NAME [ARGS for wsbeat]: sets SPID, SPORT; false if it did not start
start_server() {
	local name=$1
	shift
	: >"$TMP/server.out"
	case $name in
	wsbeat) start_bg "$LUA" "$HERE/server-scale.lua" --heartbeat "$INTERVAL" "$INTERVAL" --max $((N + 10)) "$@" \
		>"$TMP/server.out" 2>"$TMP/server.err" ;;
	wsbeat-nohb) start_bg "$LUA" "$HERE/server-scale.lua" --no-heartbeat --max $((N + 10)) \
		>"$TMP/server.out" 2>"$TMP/server.err" ;;
	wsbeat-detect) start_bg "$LUA" "$HERE/server-scale.lua" --heartbeat "$DINTERVAL" "$DINTERVAL" --max $((DN + 10)) \
		>"$TMP/server.out" 2>"$TMP/server.err" ;;
	lws) [ -x "$LWS_SERVER" ] || return 1
		start_bg "$LWS_SERVER" 0 >"$TMP/server.out" 2>"$TMP/server.err" ;;
	node) start_bg "$NODE" --expose-gc "$HERE/server-scale-node.js" >"$TMP/server.out" 2>"$TMP/server.err" ;;
	*) die "unknown server $name" ;;
	esac
	SPID=$BGPID
	if ! wait_for "$TMP/server.out" '^listening [0-9]+' 15 "$SPID"; then
		say "$name did not start: $(head -c 300 "$TMP/server.err")"
		kill_proc "$SPID"
		return 1
	fi
	SPORT=$(awk '/^listening/{print $2; exit}' "$TMP/server.out")
}

# run_server ROUND NAME: memory, CPU (wsbeat), broadcasts (not lws)
run_server() {
	local r=$1 s=$2 rss0 rss1 hpid c0 c1 h0 h1 w0 w1 opened line
	say "round $r: $s"
	if ! start_server "$s"; then
		result "test=fail round=$r server=$s what=start"; FAILED=1; return
	fi
	pause 1
	rss0=$(rss_kb "$SPID")
	: >"$TMP/hold.out"
	start_bg "$HOLD" "$SPORT" "$N" --ctl --bcast "$BCASTS" >"$TMP/hold.out" 2>"$TMP/hold.err"
	hpid=$BGPID
	if ! wait_for "$TMP/hold.out" '^ready' 150 "$hpid" "$SPID"; then
		say "$s: the $N connections did not open: $(head -c 300 "$TMP/hold.err") $(head -c 300 "$TMP/server.err")"
		result "test=fail round=$r server=$s what=open"; FAILED=1
		kill_proc "$hpid"; kill_proc "$SPID"; return
	fi
	opened=$(awk '/^open/{print $3; exit}' "$TMP/hold.out")
	pause "$SETTLE"
	rss1=$(rss_kb "$SPID")
	result "test=mem round=$r server=$s n=$N rss0_kb=$rss0 rss1_kb=$rss1 open_s=$opened" \
		"kib_per_conn=$(awk -v a="$rss0" -v b="$rss1" -v n="$N" 'BEGIN{printf "%.2f", (b - a) / n}')"

	if [ "$s" = wsbeat ] || [ "$s" = wsbeat-nohb ]; then
		c0=$(cpu_ticks "$SPID"); w0=$(date +%s%N)
		pause "$WINDOW"
		c1=$(cpu_ticks "$SPID"); w1=$(date +%s%N)
		kill -USR2 "$hpid"
		wait_for "$TMP/server.out" '^stats' 10 "$SPID"
		line=$(grep -m1 '^stats' "$TMP/server.out")
		result "test=cpu round=$r server=$s n=$N window_s=$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.2f", (b - a) / 1e9}')" \
			"cpu_s=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN{printf "%.2f", (b - a) / t}')" \
			"pct=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" -v x="$w0" -v y="$w1" 'BEGIN{printf "%.3f", (b - a) / t / ((y - x) / 1e9) * 100}')" \
			"rtt_known=$(echo "$line" | sed -n 's/.*rtt_known=\([0-9]*\).*/\1/p')"
	fi

	if [ "$s" != lws ] && [ "$BCASTS" -gt 0 ]; then
		c0=$(cpu_ticks "$SPID"); h0=$(cpu_ticks "$hpid")
		kill -USR1 "$hpid"
		if wait_for "$TMP/hold.out" '^bdone' $((BCASTS * 12 + 10)) "$hpid" "$SPID"; then
			c1=$(cpu_ticks "$SPID"); h1=$(cpu_ticks "$hpid")
			# CPU over the broadcasts (and the 0.3 s gaps between them):
			# is the one load process keeping up with the server?
			result "test=bcastcpu round=$r server=$s n=$N" \
				"server_cpu_s=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN{printf "%.2f", (b - a) / t}')" \
				"load_cpu_s=$(awk -v a="$h0" -v b="$h1" -v t="$CLK_TCK" 'BEGIN{printf "%.2f", (b - a) / t}')"
			# join "bcast SEQ T0 T1 COUNT" (server) with "recv SEQ FIRST LAST GOT" (load side)
			awk -v r="$r" -v s="$s" -v n="$N" '
				FNR == NR { if ($1 == "bcast") { t0[$2] = $3; t1[$2] = $4; cnt[$2] = $5 } next }
				$1 == "recv" && ($2 in t0) {
					printf "test=bcast round=%s server=%s n=%s seq=%s count=%s got=%s call_us=%d first_us=%d last_us=%d\n",
						r, s, n, $2, cnt[$2], $5, t1[$2] - t0[$2], $3 - t0[$2], $4 - t0[$2]
				}' "$TMP/server.out" "$TMP/hold.out" | while read -r line; do result "$line"; done
		else
			say "$s: the broadcasts did not finish"
			result "test=fail round=$r server=$s what=bcast"; FAILED=1
		fi
	fi

	kill -USR2 "$hpid"
	wait_for "$TMP/hold.out" '^check' 5 "$hpid"
	line=$(grep -m1 '^check' "$TMP/hold.out")
	result "test=check round=$r server=$s ${line#check }"
	kill_proc "$SPID"
	kill_proc "$hpid"
}

# run_detect ROUND TRIAL: DN clients stop at once; until the server closed all
run_detect() {
	local r=$1 t=$2 hpid after stop zero
	if ! start_server wsbeat-detect; then
		result "test=fail round=$r server=wsbeat what=detect-start"; FAILED=1; return
	fi
	# a stop anywhere in one heartbeat cycle, after two cycles
	after=$(awk -v s="$RANDOM" -v i="$DINTERVAL" 'BEGIN{srand(s); printf "%.3f", 2 * i + rand() * i}')
	: >"$TMP/hold.out"
	start_bg "$HOLD" "$SPORT" "$DN" --stop-after "$after" >"$TMP/hold.out" 2>"$TMP/hold.err"
	hpid=$BGPID
	if wait_for "$TMP/hold.out" '^stop' 60 "$hpid" "$SPID" &&
		wait_for "$TMP/server.out" '^zero' $((DINTERVAL * 10 + 10)) "$SPID"; then
		stop=$(awk '/^stop/{print $2; exit}' "$TMP/hold.out")
		zero=$(grep -m1 '^zero' "$TMP/server.out")
		result "$(echo "$zero" | awk -v r="$r" -v t="$t" -v n="$DN" -v i="$DINTERVAL" -v st="$stop" -v a="$after" '{
			printf "test=detect round=%s trial=%s n=%s interval=%s timeout=%s stop_after=%s closed=%s delay_s=%.3f first_s=%.3f %s",
				r, t, n, i, i, a, $4, ($2 - st) / 1e6, ($3 - st) / 1e6, $5 }')"
	else
		say "detection trial $r.$t: no result: $(head -c 300 "$TMP/hold.err") $(head -c 300 "$TMP/server.err")"
		say "detection trial $r.$t: load side: $(tr '\n' ' ' <"$TMP/hold.out" | head -c 300)"
		# what is still open: ask the server through a control connection
		# of a second load process (it counts itself among the open ones)
		kill -KILL "$hpid" 2>/dev/null
		: >"$TMP/probe.out"
		start_bg "$HOLD" "$SPORT" 1 --ctl >"$TMP/probe.out" 2>/dev/null
		if wait_for "$TMP/probe.out" '^ready' 10 "$BGPID" "$SPID"; then
			kill -USR2 "$BGPID"
			wait_for "$TMP/server.out" '^stats' 5 "$SPID"
		fi
		kill_proc "$BGPID"
		say "detection trial $r.$t: server: $(grep -E '^(zero|stats)' "$TMP/server.out" | tr '\n' ' ')"
		result "test=fail round=$r server=wsbeat what=detect stop=$(grep -c '^stop' "$TMP/hold.out")" \
			"server_$(grep -m1 '^stats' "$TMP/server.out" | cut -d' ' -f2 | tr -d '\n')"
		FAILED=1
	fi
	kill_proc "$hpid"
	kill_proc "$SPID"
}

say "N=$N ROUNDS=$ROUNDS WINDOW=$WINDOW s INTERVAL=$INTERVAL s BCASTS=$BCASTS DN=$DN DTRIALS=$DTRIALS DINTERVAL=$DINTERVAL s; servers: $SERVERS"
read -r -a LIST <<<"$SERVERS"
for r in $(seq "$ROUNDS"); do
	k=${#LIST[@]}
	for i in $(seq 0 $((k - 1))); do
		run_server "$r" "${LIST[$(((i + r - 1) % k))]}"
	done
	for t in $(seq "$DTRIALS"); do
		run_detect "$r" "$t"
	done
done
echo "META elapsed_s=$(( $(date +%s) - T_START )) load_end=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)" >>"$OUT/results.txt"

"$LUA" "$HERE/server-scale-summary.lua" "$OUT/results.txt" >"$OUT/summary.md" || FAILED=1
cat "$OUT/summary.md"
exit "$FAILED"
