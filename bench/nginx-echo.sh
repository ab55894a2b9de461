#!/bin/sh
# nginx + lua-resty-websocket (Debian: lua-nginx-websocket) echo server for
# the benchmarks: one worker, ws and wss on free loopback ports, limits
# raised for 10,000+ connections.
#
#   sh bench/nginx-echo.sh DIR        # start; prints "PORT <ws> <wss>" and "PID <pid>"
#   kill $(cat DIR/nginx.pid)         # stop
#   WS_PORT=n WSS_PORT=m sh bench/nginx-echo.sh DIR   # fixed ports (a restart)
#
# DIR is created and holds the config, the generated certificates (ca.pem is
# what clients trust), the pid file and the error log. /echo echoes text and
# binary messages (reassembling fragments), answers pings and close frames.
set -eu
DIR=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
NGINX=${NGINX:-/usr/sbin/nginx}
MODS=${NGINX_MODULES:-/usr/lib/nginx/modules}
[ -x "$NGINX" ] || { echo "nginx-echo.sh: $NGINX not found (apt-get install nginx libnginx-mod-http-lua lua-nginx-websocket)" >&2; exit 1; }
[ -f "$MODS/ngx_http_lua_module.so" ] || { echo "nginx-echo.sh: libnginx-mod-http-lua missing" >&2; exit 1; }
[ -f /usr/share/lua/5.1/nginx/websocket/server.lua ] || { echo "nginx-echo.sh: lua-nginx-websocket missing" >&2; exit 1; }
mkdir -p "$DIR"
# the hard limit here is 20,000 open files per process: take what we may
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=100000
DIR=$(cd "$DIR" && pwd)
[ -f "$DIR/server.pem" ] || sh "$ROOT/spec/fixtures/gencerts.sh" "$DIR" >/dev/null

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# Two probes could return the same port only if the first was reused at once;
# retry until they differ.
PORT=${WS_PORT:-$(free_port)}
TPORT=${WSS_PORT:-$(free_port)}
while [ "$PORT" = "$TPORT" ]; do TPORT=$(free_port); done

cat >"$DIR/nginx.conf" <<CONF
load_module $MODS/ndk_http_module.so;
load_module $MODS/ngx_http_lua_module.so;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $DIR/nginx.pid;
error_log $DIR/error.log warn;
events { worker_connections $NOFILE; multi_accept on; }
http {
	access_log off;
	lua_socket_log_errors off;
	lua_package_path "/usr/share/lua/5.1/?.lua;;";
	client_body_temp_path $DIR/tmp;
	proxy_temp_path $DIR/tmp;
	fastcgi_temp_path $DIR/tmp;
	uwsgi_temp_path $DIR/tmp;
	scgi_temp_path $DIR/tmp;
	tcp_nodelay on;
	server {
		listen 127.0.0.1:$PORT backlog=65535;
		listen 127.0.0.1:$TPORT ssl backlog=65535;
		ssl_certificate $DIR/server.pem;
		ssl_certificate_key $DIR/server.key;
		location /echo {
			content_by_lua_block {
				local server = require "nginx.websocket.server"
				local wb, err = server:new { timeout = 3600000, max_payload_len = 64 * 1024 * 1024 }
				if not wb then ngx.log(ngx.ERR, "upgrade: ", err) return ngx.exit(444) end
				local parts, ptyp = nil, nil
				while true do
					local data, typ, err = wb:recv_frame()
					if not data then
						if not (err and err:find("timeout", 1, true)) then break end
					elseif typ == "close" then
						wb:send_close(1000, "")
						break
					elseif typ == "ping" then
						wb:send_pong(data)
					elseif typ == "pong" then
						-- unsolicited or answered: nothing to do
					else
						if typ ~= "continuation" then ptyp = typ end
						if err == "again" then
							parts = parts or {}
							parts[#parts + 1] = data
						else
							if parts then
								parts[#parts + 1] = data
								data = table.concat(parts)
								parts = nil
							end
							local ok
							if ptyp == "binary" then ok = wb:send_binary(data) else ok = wb:send_text(data) end
							if not ok then break end
						end
					end
				end
			}
		}
	}
}
CONF
mkdir -p "$DIR/tmp"
ulimit -n "$NOFILE" 2>/dev/null || true
"$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/error.log"
for _ in $(seq 50); do
	[ -s "$DIR/nginx.pid" ] && break
	sleep 0.1
done
[ -s "$DIR/nginx.pid" ] || { cat "$DIR/error.log" >&2; exit 1; }
echo "PORT $PORT $TPORT"
echo "PID $(cat "$DIR/nginx.pid")"
