#!/bin/sh
# Install the Debian 12 packages wsbeat needs to build, test and run its demo.
# (LuaJIT is OpenResty's branch, luajit2: the one nginx's lua module links;
# Debian's luajit/libluajit-5.1-dev would remove that module. LÖVE, "love",
# for examples/love and spec 39, takes either LuaJIT: installed in the same
# apt-get run as luajit2, or after it, it uses luajit2's library; installed
# alone on a machine without it, apt would pick Debian's.)
# Run as root.  Installs only what is missing, so it is cheap to repeat.
set -e
PKGS="build-essential pkg-config lua5.4 liblua5.4-dev luarocks lua-busted lua-check
libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libssl-dev openssl zlib1g-dev
python3 python3-websockets nodejs npm lua-cqueues lua-http valgrind
iproute2 nftables socat procps lua-luv lua-socket lua-dkjson clang libclang-rt-14-dev
nginx libnginx-mod-http-lua lua-nginx-websocket gnuplot-nox strace
curl tinyproxy-bin microsocks dante-server cppcheck chromium
lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev
luajit2 libluajit2-5.1-dev love"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# nodejs may come from another source with its own npm: accept any working pair
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	missing=$(echo "$missing" | tr ' ' '\n' | grep -vx 'nodejs' | grep -vx 'npm' | tr '\n' ' ')
fi
if [ -n "$(echo "$missing" | tr -d ' ')" ]; then
	echo "installing:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
# Proxy fixtures (spec/proxies.lua) run their own instances on free loopback
# ports with configs in a temp dir; no system instance is wanted.
#  - tinyproxy-bin is the bare binary: the "tinyproxy" package would add a
#    service on 127.0.0.1:8888, so it is not installed.
#  - microsocks has no service.
#  - dante-server ships a danted service whose stock /etc/danted.conf has no
#    internal/external lines, so it never starts (its postinst only prints a
#    hint); under systemd it stays disabled so a boot never tries it.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl disable --now danted.service >/dev/null 2>&1 || true
fi
# dante's "username" method checks a system account's password (shadow).
# This one exists only for that: no home, no login shell, fixed test password.
if ! getent passwd wsbeat-socks >/dev/null 2>&1; then
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin wsbeat-socks
fi
# (re)set it each run: cheap, and repairs a changed password
echo 'wsbeat-socks:wsbeat-socks-pw' | chpasswd

# node's ws for the second peer implementation (lock file pins the version)
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$here/spec/fixtures/node_modules/ws" ]; then
	(cd "$here/spec/fixtures" && npm ci --silent --no-audit --no-fund >/dev/null)
fi
