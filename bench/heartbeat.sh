#!/bin/sh
# Heartbeat figures: detection latency over SIGSTOP trials, recovery time,
# and the CPU cost of heartbeats on idle connections.  About 2 minutes.
set -e
cd "$(dirname "$0")/.."
[ -f build/wsbeat/core.so ] || make -s
ulimit -n 8192 2>/dev/null || true
lua5.4 bench/heartbeat.lua detect "${TRIALS:-50}" 2>/dev/null
lua5.4 bench/heartbeat.lua idle "${CONNS:-1000}" "${SECS:-20}"
