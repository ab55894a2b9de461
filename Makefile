# wsbeat: Lua WebSocket client and server with heartbeat and reconnect.
# LUA_VERSION: 5.4 (the reference), 5.3, 5.2, 5.1 or jit (LuaJIT 2.1); a
# version other than 5.4 builds into build-$(LUA_VERSION)/ (BUILD).
LUA_VERSION ?= 5.4
ifeq ($(LUA_VERSION),jit)
LUA ?= luajit
LUA_ABI = 5.1
LUA_INCDIR ?= $(shell pkg-config --variable=includedir luajit 2>/dev/null)
else
LUA ?= lua$(LUA_VERSION)
LUA_ABI = $(LUA_VERSION)
LUA_INCDIR ?= $(shell pkg-config --variable=includedir lua$(LUA_VERSION) 2>/dev/null)/lua$(LUA_VERSION)
endif
ifeq ($(LUA_VERSION),5.4)
BUILD ?= build
else
BUILD ?= build-$(LUA_VERSION)
endif
PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_ABI)
LUADIR ?= $(PREFIX)/share/lua/$(LUA_ABI)
BINDIR ?= $(PREFIX)/bin
BUSTED ?= $(shell command -v busted 2>/dev/null || echo busted)

PKGS = libwebsockets libuv openssl zlib
DEPS_CFLAGS ?= $(shell pkg-config --cflags $(PKGS))
DEPS_LIBS ?= $(shell pkg-config --libs $(PKGS))

CFLAGS ?= -O2 -g
WARN = -std=c99 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wpointer-arith \
       -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ALL_CFLAGS = $(WARN) -fPIC -I$(LUA_INCDIR) $(DEPS_CFLAGS) $(CFLAGS)
LIBFLAG ?= -shared

SRCS = src/compat.c src/url.c src/utf8.c src/tls.c src/log.c src/frame.c src/engine.c src/lengine.c src/conn.c src/attempt.c src/retry.c src/heartbeat.c src/send.c src/cork.c src/recv.c src/callback.c src/proxy.c src/relay.c src/server.c src/upgrade.c src/request.c src/broadcast.c src/handshake.c src/hsclient.c src/wsrx.c src/opening.c src/tlsio.c src/wsread.c src/pmd.c src/lclient.c src/lserver.c src/lcli.c src/waker.c
OBJS = $(SRCS:src/%.c=$(BUILD)/%.o)
CORE = $(BUILD)/wsbeat/core.so

.PHONY: all ctest test test-fast lint install clean check-memory demo asan fuzz bench bench-bin bench-scale bench-proxy dist
all: $(CORE)

$(BUILD)/%.o: src/%.c src/compat.h src/wsbeat.h src/conn.h src/tunnel.h src/wsread.h src/pmd.h src/handshake.h src/hsparse.h
	@mkdir -p $(BUILD)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(CORE): $(OBJS)
	@mkdir -p $(BUILD)/wsbeat
	$(CC) $(LIBFLAG) $(LDFLAGS) -o $@ $(OBJS) $(DEPS_LIBS)

# The core built with AddressSanitizer and UBSan (load with LD_PRELOAD of
# libasan: the lua5.4 binary itself is not instrumented).
ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
asan: $(SRCS) src/wsbeat.h
	@mkdir -p build-asan/wsbeat
	$(CC) $(WARN) -fPIC -I$(LUA_INCDIR) $(DEPS_CFLAGS) $(ASAN_FLAGS) $(LIBFLAG) \
		-o build-asan/wsbeat/core.so $(SRCS) $(DEPS_LIBS)

# The C unit tests of the server's pure parts (the frame reader, the
# handshake, permessage-deflate): plain programs that print TAP lines.
CTESTS = build/ctest/wsread_test build/ctest/handshake_test build/ctest/pmd_test
ctest: $(CTESTS)
	@for t in $(CTESTS); do $$t || exit 1; done
build/ctest/wsread_test: test/c/wsread_test.c src/wsread.c src/utf8.c src/wsread.h src/wsbeat.h
	@mkdir -p build/ctest
	$(CC) $(WARN) -I src -I$(LUA_INCDIR) $(DEPS_CFLAGS) $(CFLAGS) -o $@ test/c/wsread_test.c src/wsread.c src/utf8.c
build/ctest/handshake_test: test/c/handshake_test.c src/handshake.c src/hsclient.c src/handshake.h src/hsparse.h
	@mkdir -p build/ctest
	$(CC) $(WARN) -I src $(CFLAGS) -o $@ test/c/handshake_test.c src/handshake.c src/hsclient.c -lcrypto
build/ctest/pmd_test: test/c/pmd_test.c src/pmd.c src/pmd.h
	@mkdir -p build/ctest
	$(CC) $(WARN) -I src $(CFLAGS) -o $@ test/c/pmd_test.c src/pmd.c -lz

# libFuzzer on the URL parser, the UTF-8 validator, the frame writer and the
# server's frame reader, handshake and permessage-deflate:
# make fuzz FUZZ_ARGS="-max_total_time=60"
FUZZ_ARGS ?= -runs=200000
FUZZ_CC = clang -g -O1 -fsanitize=fuzzer,address,undefined -I src -I$(LUA_INCDIR) $(DEPS_CFLAGS)
fuzz: fuzz/url_fuzz.c fuzz/utf8_fuzz.c fuzz/frame_fuzz.c fuzz/wsread_fuzz.c fuzz/handshake_fuzz.c fuzz/pmd_fuzz.c \
		src/url.c src/utf8.c src/frame.c src/wsread.c src/handshake.c src/hsclient.c src/pmd.c src/wsbeat.h
	@mkdir -p build-fuzz
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I$(LUA_INCDIR) $(DEPS_CFLAGS) \
		-o build-fuzz/url_fuzz fuzz/url_fuzz.c src/url.c
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I$(LUA_INCDIR) $(DEPS_CFLAGS) \
		-o build-fuzz/utf8_fuzz fuzz/utf8_fuzz.c src/utf8.c
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I$(LUA_INCDIR) $(DEPS_CFLAGS) \
		-o build-fuzz/frame_fuzz fuzz/frame_fuzz.c src/frame.c
	mkdir -p build-fuzz/corpus build-fuzz/utf8-corpus build-fuzz/frame-corpus && cp fuzz/corpus/* build-fuzz/corpus/
	build-fuzz/url_fuzz $(FUZZ_ARGS) build-fuzz/corpus
	build-fuzz/utf8_fuzz $(FUZZ_ARGS) build-fuzz/utf8-corpus
	build-fuzz/frame_fuzz $(FUZZ_ARGS) build-fuzz/frame-corpus
	$(FUZZ_CC) -o build-fuzz/wsread_fuzz fuzz/wsread_fuzz.c src/wsread.c src/utf8.c
	$(FUZZ_CC) -o build-fuzz/handshake_fuzz fuzz/handshake_fuzz.c src/handshake.c src/hsclient.c -lcrypto
	$(FUZZ_CC) -o build-fuzz/pmd_fuzz fuzz/pmd_fuzz.c src/pmd.c -lz
	mkdir -p build-fuzz/wsread-corpus build-fuzz/handshake-corpus build-fuzz/pmd-corpus
	build-fuzz/wsread_fuzz $(FUZZ_ARGS) build-fuzz/wsread-corpus
	build-fuzz/handshake_fuzz $(FUZZ_ARGS) build-fuzz/handshake-corpus
	build-fuzz/pmd_fuzz $(FUZZ_ARGS) build-fuzz/pmd-corpus

# The environment the specs run in.  They start their own proxies: a proxy
# set in the caller's environment would otherwise carry every loopback
# connection of the suite.  And the makes they run must not inherit this
# one's settings (make test LUA_VERSION=jit: their builds are for 5.4).
SPEC_ENV = env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u LUA_VERSION -u BUILD -u LUA -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY \
	-u all_proxy -u ALL_PROXY -u ws_proxy -u WS_PROXY -u wss_proxy -u WSS_PROXY \
	-u no_proxy -u NO_PROXY

# LUA_VERSION=jit (or 5.1-5.3): the suite runs under that Lua with its
# core (build-<version>/); the programs the specs start as commands
# (bin/wsbeat, the examples, fixtures) stay on 5.4, so build/ is made too.
ifeq ($(LUA_VERSION),5.4)
SUITE_CORE =
SUITE_CPATH =
else
SUITE_CORE = core-5.4
SUITE_CPATH = --cpath='./$(BUILD)/?.so'
endif
.PHONY: core-5.4
core-5.4:
	$(MAKE) all LUA_VERSION=5.4

test: all $(SUITE_CORE) ctest
	$(SPEC_ENV) $(LUA) $(BUSTED) $(SUITE_CPATH) $(BUSTED_ARGS)

# The quick part of make test, for development: every test but those tagged
# #root, #netns, #sanitizer, #soak or #slow (.busted says what each means).
test-fast: all $(SUITE_CORE)
	$(SPEC_ENV) $(LUA) $(BUSTED) $(SUITE_CPATH) --exclude-tags=root,netns,sanitizer,soak,slow $(BUSTED_ARGS)

# luacheck, and cppcheck on the C core: errors and its warning, portability
# and performance checks (not style), as C99 on Linux, knowing the POSIX,
# GNU, Lua and OpenSSL functions; any finding fails. System headers are not
# parsed, except sys/queue.h, whose list macros wsbeat.h uses.
lint:
	luacheck --std lua54 lua bench scripts examples bin/wsbeat spec/helper.lua spec/fixtures
	luacheck --std lua54+busted --no-unused-args --no-max-line-length spec
	cppcheck --quiet --error-exitcode=1 --std=c99 --platform=unix64 --language=c -D_GNU_SOURCE -D__linux__ \
		--library=posix,gnu,lua,openssl --include=/usr/include/$$($(CC) -print-multiarch)/sys/queue.h \
		--enable=warning,portability,performance -I src src/*.c

check-memory: all
	$(SPEC_ENV) sh scripts/check-memory.sh $(BUSTED_ARGS)

# Benchmarks (not part of the tests): docs/BENCHMARKS.md says what they show.
BENCH_BIN = build/bench/lws-client build/bench/epoll-client build/bench/lws-server
bench-bin: $(BENCH_BIN)
build/bench/lws-client: bench/lws-client.c
	@mkdir -p build/bench
	$(CC) -std=c99 -D_GNU_SOURCE -Wall -Wextra $(CFLAGS) -o $@ bench/lws-client.c \
		$(shell pkg-config --cflags --libs libwebsockets)

# the load client that is not the bound (server-bench.sh LOAD=epoll): epoll
# and OpenSSL, no libwebsockets
build/bench/epoll-client: bench/epoll-client.c
	@mkdir -p build/bench
	$(CC) -std=c99 -D_GNU_SOURCE -Wall -Wextra $(CFLAGS) -o $@ bench/epoll-client.c \
		-lssl -lcrypto

build/bench/lws-server: bench/lws-server.c
	@mkdir -p build/bench
	$(CC) -std=c99 -D_GNU_SOURCE -Wall -Wextra $(CFLAGS) -o $@ bench/lws-server.c \
		$(shell pkg-config --cflags --libs libwebsockets)

build/bench/lws-hold: bench/lws-hold.c
	@mkdir -p build/bench
	$(CC) -std=c99 -D_GNU_SOURCE -Wall -Wextra $(CFLAGS) -o $@ bench/lws-hold.c \
		$(shell pkg-config --cflags --libs libwebsockets)

# wsbeat-jit, one of its default clients, is the same client on LuaJIT: it
# needs the core built for LuaJIT too (build-jit/), unless CLIENTS leaves it out
bench: all bench-bin
	$(if $(filter wsbeat-jit,$(or $(CLIENTS),wsbeat-jit)),$(MAKE) all LUA_VERSION=jit)
	bash bench/bench.sh

# the server echo benchmark: wsbeat, the C ceiling, node ws, python websockets
# (the script runs make all itself; if that fails, wsbeat is reported as not run)
.PHONY: bench-server
bench-server: bench-bin
	bash bench/server-bench.sh

bench-scale: all
	bash bench/scale.sh

# the server at scale: 10,000 idle connections (memory, heartbeat CPU), dead
# clients' detection and a broadcast, against lws-server and node ws; the
# script builds its load tool (bench/server-scale-hold.c) itself
.PHONY: bench-server-scale
bench-server-scale: all build/bench/lws-server
	bash bench/server-scale.sh

# wsbeat direct and through tinyproxy, microsocks and dante, side by side
bench-proxy: all bench-bin
	$(SPEC_ENV) $(LUA) bench/proxy.lua $(ROUNDS)

install: all
	install -d "$(DESTDIR)$(LIBDIR)/wsbeat" "$(DESTDIR)$(LUADIR)/wsbeat"
	install -m 0755 $(CORE) "$(DESTDIR)$(LIBDIR)/wsbeat/core.so"
	install -m 0644 lua/wsbeat/*.lua "$(DESTDIR)$(LUADIR)/wsbeat/"
	install -d "$(DESTDIR)$(BINDIR)"
	install -m 0755 bin/wsbeat "$(DESTDIR)$(BINDIR)/wsbeat"

clean:
	rm -rf build build-5.1 build-5.2 build-5.3 build-jit build-asan build-fuzz

# A source archive and a source rock, made offline from the working tree
# (the files git tracks or would track, as they are now):
#   luarocks --lua-version 5.4 install dist/wsbeat-VERSION-1.src.rock
# The rock's rockspec is rockspec/wsbeat-scm-1.rockspec with the version
# of lua/wsbeat/init.lua and, as its source, the archive by a file:// URL
# (luarocks pack fetches it from there; installing the rock does not).
DISTDIR ?= dist
DIST_VERSION = $(shell sed -n '/_VERSION = "wsbeat [0-9]/{s/.*_VERSION = "wsbeat \([^"]*\)".*/\1/p;q;}' lua/wsbeat/init.lua)
DIST_NAME = wsbeat-$(DIST_VERSION)
dist:
	@test -n "$(DIST_VERSION)" || { echo "make dist: no version found in lua/wsbeat/init.lua" >&2; exit 1; }
	@git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "make dist: needs a git checkout (for its list of files)" >&2; exit 1; }
	@mkdir -p $(DISTDIR)
	rm -f $(DISTDIR)/$(DIST_NAME).tar.gz $(DISTDIR)/$(DIST_NAME)-1.rockspec $(DISTDIR)/$(DIST_NAME)-1.src.rock
	git ls-files -z --cached --others --exclude-standard | tr '\0' '\n' | LC_ALL=C sort -u | \
		while IFS= read -r f; do if [ -f "$$f" ]; then printf '%s\n' "$$f"; fi; done | \
		tar --create --files-from=- --verbatim-files-from --sort=name \
			--owner=0 --group=0 --numeric-owner --transform='s,^,$(DIST_NAME)/,S' | \
		gzip -n -9 >$(DISTDIR)/$(DIST_NAME).tar.gz
	$(LUA) -e 'local s = io.read("a"):gsub("\nversion = [^\n]*", "\nversion = \"$(DIST_VERSION)-1\"", 1); io.write((s:gsub("\nsource = %b{}", "\nsource = {\n\turl = \"file://$(abspath $(DISTDIR))/$(DIST_NAME).tar.gz\",\n\tdir = \"$(DIST_NAME)\",\n}", 1)))' \
		<rockspec/wsbeat-scm-1.rockspec >$(DISTDIR)/$(DIST_NAME)-1.rockspec
	cd $(DISTDIR) && luarocks --lua-version $(LUA_VERSION) pack $(DIST_NAME)-1.rockspec

demo: all
	LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;" $(LUA) scripts/demo.lua .
