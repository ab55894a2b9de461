#!/bin/sh
# Install the Debian 12 packages wsbeat needs to build, test and run its demo.
# Run as root.  Installs only what is missing, so it is cheap to repeat.
set -e
PKGS="build-essential pkg-config lua5.4 liblua5.4-dev luarocks lua-busted lua-check
libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libssl-dev openssl
python3 python3-websockets nodejs npm lua-cqueues lua-http valgrind
iproute2 nftables socat procps lua-luv lua-socket lua-dkjson clang libclang-rt-14-dev
nginx libnginx-mod-http-lua lua-nginx-websocket gnuplot-nox strace"
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
# node's ws for the second peer implementation (lock file pins the version)
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$here/spec/fixtures/node_modules/ws" ]; then
	(cd "$here/spec/fixtures" && npm ci --silent --no-audit --no-fund >/dev/null)
fi
