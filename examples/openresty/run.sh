#!/bin/sh
# Run nginx in the foreground with a wsbeat client in worker 0
# (examples/openresty/README.md):
#
#   sh examples/openresty/run.sh DIR URL [HTTP_PORT] [WAKE] [HEARTBEAT]
#
# DIR gets the generated nginx.conf and nginx's temp files; URL is the
# WebSocket feed (ws:// or wss://); HTTP_PORT (default: a free one) serves
# /feed; WAKE is "socket" (default) or "poll"; HEARTBEAT is seconds
# (default 5).  Prints "HTTP <port>", then nginx's log (stderr).  Needs
# make all LUA_VERSION=jit (nginx's Lua module is LuaJIT).
set -eu
DIR=$1 URL=$2
PORT=${3:-}
WAKE=${4:-socket}
HEARTBEAT=${5:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
[ -f "$ROOT/build-jit/wsbeat/core.so" ] || { echo "run.sh: build the LuaJIT core first: make all LUA_VERSION=jit" >&2; exit 1; }
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || { echo "run.sh: apt-get install nginx libnginx-mod-http-lua" >&2; exit 1; }
mkdir -p "$DIR/tmp"
DIR=$(cd "$DIR" && pwd)
if [ -z "$PORT" ]; then
	PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
# as root, nginx's workers would be "nobody", who may not read the checkout
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
sed -e "s|@DIR@|$DIR|g" -e "s|@ROOT@|$ROOT|g" -e "s|@URL@|$URL|g" -e "s|@PORT@|$PORT|g" \
	-e "s|@WAKE@|$WAKE|g" -e "s|@HEARTBEAT@|$HEARTBEAT|g" -e "s|@USER@|$USER_LINE|" \
	"$HERE/nginx.conf" >"$DIR/nginx.conf"
echo "HTTP $PORT"
exec "$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -e stderr
