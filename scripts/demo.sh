#!/bin/sh
# One command for a fresh Debian 12 machine (as root): install what is
# missing, build, start a local WebSocket server and run the wsbeat demo.
set -e
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
make -s
LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;" lua5.4 scripts/demo.lua .
