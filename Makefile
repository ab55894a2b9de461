# wsbeat: Lua 5.4 WebSocket client with heartbeat and reconnect.
LUA_VERSION ?= 5.4
LUA ?= lua$(LUA_VERSION)
PREFIX ?= /usr/local
DESTDIR ?=
LUA_INCDIR ?= $(shell pkg-config --variable=includedir lua$(LUA_VERSION) 2>/dev/null)/lua$(LUA_VERSION)
LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUADIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
BINDIR ?= $(PREFIX)/bin
BUSTED ?= $(shell command -v busted 2>/dev/null || echo busted)

PKGS = libwebsockets libuv openssl
DEPS_CFLAGS ?= $(shell pkg-config --cflags $(PKGS))
DEPS_LIBS ?= $(shell pkg-config --libs $(PKGS))

CFLAGS ?= -O2 -g
WARN = -std=c99 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wpointer-arith \
       -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ALL_CFLAGS = $(WARN) -fPIC -I$(LUA_INCDIR) $(DEPS_CFLAGS) $(CFLAGS)
LIBFLAG ?= -shared

SRCS = src/url.c src/tls.c src/log.c src/engine.c src/client.c src/lclient.c
OBJS = $(SRCS:src/%.c=build/%.o)
CORE = build/wsbeat/core.so

.PHONY: all test lint install clean check-memory demo
all: $(CORE)

build/%.o: src/%.c src/wsbeat.h
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(CORE): $(OBJS)
	@mkdir -p build/wsbeat
	$(CC) $(LIBFLAG) $(LDFLAGS) -o $@ $(OBJS) $(DEPS_LIBS)

test: all
	$(LUA) $(BUSTED) $(BUSTED_ARGS)

lint:
	luacheck --std lua54 lua bench scripts examples bin/wsbeat spec/helper.lua spec/fixtures
	luacheck --std lua54+busted --no-unused-args --no-max-line-length spec

check-memory: all
	sh scripts/check-memory.sh $(BUSTED_ARGS)

install: all
	install -d $(DESTDIR)$(LIBDIR)/wsbeat $(DESTDIR)$(LUADIR)/wsbeat
	install -m 0755 $(CORE) $(DESTDIR)$(LIBDIR)/wsbeat/core.so
	install -m 0644 lua/wsbeat/*.lua $(DESTDIR)$(LUADIR)/wsbeat/
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 bin/wsbeat $(DESTDIR)$(BINDIR)/wsbeat

clean:
	rm -rf build

demo: all
	LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;" $(LUA) scripts/demo.lua .
