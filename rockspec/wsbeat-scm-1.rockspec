rockspec_format = "3.0"
package = "wsbeat"
version = "scm-1"
source = {
	url = "git+https://example.invalid/wsbeat.git",
}
description = {
	summary = "A WebSocket client that stays connected: heartbeat, dead-peer detection, reconnect",
	detailed = [[
wsbeat is a WebSocket client and server for Lua 5.1-5.4 and LuaJIT 2.1,
written in C on libwebsockets and OpenSSL.  It watches the link with a heartbeat, drops dead peers even when
TCP has not noticed, and reconnects with backoff and jitter, behind
on_message/on_state callbacks and one pollable file descriptor that fits any
event loop.
]],
	license = "MIT",
	labels = { "websocket", "network" },
}
dependencies = {
	"lua >= 5.1, < 5.5",
}
external_dependencies = {
	LIBWEBSOCKETS = { header = "libwebsockets.h", library = "websockets" },
	LIBUV = { header = "uv.h", library = "uv" },
	OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
	ZLIB = { header = "zlib.h", library = "z" },
}
build = {
	type = "builtin",
	copy_directories = { "docs", "types" },
	install = {
		-- the command-line client; it needs nothing but wsbeat itself
		bin = { wsbeat = "bin/wsbeat" },
	},
	modules = {
		["wsbeat"] = "lua/wsbeat/init.lua",
		["wsbeat.proxy"] = "lua/wsbeat/proxy.lua",
		["wsbeat.options"] = "lua/wsbeat/options.lua",
		["wsbeat.scheduler"] = "lua/wsbeat/scheduler.lua",
		["wsbeat.core"] = {
			sources = { "src/compat.c", "src/url.c", "src/utf8.c", "src/tls.c", "src/log.c", "src/frame.c", "src/engine.c", "src/lengine.c", "src/conn.c", "src/attempt.c", "src/retry.c", "src/heartbeat.c", "src/send.c", "src/cork.c", "src/recv.c", "src/callback.c", "src/proxy.c", "src/relay.c", "src/server.c", "src/upgrade.c", "src/request.c", "src/broadcast.c", "src/handshake.c", "src/hsclient.c", "src/wsrx.c", "src/opening.c", "src/tlsio.c", "src/wsread.c", "src/pmd.c", "src/lclient.c", "src/lserver.c", "src/lcli.c", "src/waker.c" },
			defines = { "_GNU_SOURCE" },
			libraries = { "websockets", "uv", "ssl", "crypto", "z" },
			incdirs = { "$(LIBWEBSOCKETS_INCDIR)", "$(LIBUV_INCDIR)", "$(OPENSSL_INCDIR)", "$(ZLIB_INCDIR)" },
			libdirs = { "$(LIBWEBSOCKETS_LIBDIR)", "$(LIBUV_LIBDIR)", "$(OPENSSL_LIBDIR)", "$(ZLIB_LIBDIR)" },
		},
	},
}
test = {
	type = "busted",
}
