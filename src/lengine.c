/*
 * The engine's Lua side: its userdata (one per Lua state, in the
 * registry), the registry anchors that keep live clients from being
 * collected, and the core functions the Lua layer drives the engine with
 * (service, wait, fd, timeout, next_event, cork...).
 */
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"

static const char engine_key = 'e'; /* registry key of the engine userdata */
static const char anchor_key = 'a'; /* registry key: lightuserdata c -> ud */

static int engine_gc(lua_State *L)
{
	wsb_engine_close(luaL_checkudata(L, 1, WSB_ENGINE_MT));
	return 0;
}

struct wsb_engine *wsb_engine_get(lua_State *L)
{
	struct wsb_engine *e;
	char err[256];

	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &engine_key) == LUA_TUSERDATA) {
		e = lua_touserdata(L, -1);
		lua_pop(L, 1);
		return e;
	}
	lua_pop(L, 1);

	e = lua_newuserdatauv(L, sizeof(*e), 0);
	memset(e, 0, sizeof(*e));
	e->destroyed = 1; /* until fully made: __gc then does nothing */
	luaL_setmetatable(L, WSB_ENGINE_MT);
	if (wsb_engine_open(e, err, sizeof(err)))
		luaL_error(L, "wsbeat: %s", err);

	lua_rawsetp(L, LUA_REGISTRYINDEX, &engine_key);
	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &anchor_key);
	return e;
}

/* Keep the userdata at idx alive, keyed by its C object. */
void wsb_anchor(lua_State *L, void *key, int idx)
{
	idx = lua_absindex(L, idx);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &anchor_key);
	lua_pushvalue(L, idx);
	lua_rawsetp(L, -2, key);
	lua_pop(L, 1);
}

void wsb_unanchor(lua_State *L, void *key)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &anchor_key);
	lua_pushnil(L);
	lua_rawsetp(L, -2, key);
	lua_pop(L, 1);
}

/* Push the anchored userdata of key (or nil); returns its type. */
int wsb_push_anchored(lua_State *L, void *key)
{
	int t;

	lua_rawgetp(L, LUA_REGISTRYINDEX, &anchor_key);
	t = lua_rawgetp(L, -1, key);
	lua_remove(L, -2);
	return t;
}

static void push_anchored(lua_State *L, struct wsb_client *c, int drop)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &anchor_key);
	lua_rawgetp(L, -1, c);
	if (drop) {
		lua_pushnil(L);
		lua_rawsetp(L, -3, c);
	}
	lua_remove(L, -2);
}

static int l_fd(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);

	lua_pushinteger(L, uv_backend_fd(&e->loop));
	return 1;
}

static int l_timeout(lua_State *L)
{
	double t = wsb_engine_timeout(wsb_engine_get(L));

	if (t < 0)
		lua_pushnil(L);
	else
		lua_pushnumber(L, t);
	return 1;
}

/* core.service(): one non-blocking turn of the loop.  (e->lua: the
 * state on_upgrade runs in, from inside lws, while this runs.) */
static int l_service(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);
	int r;

	if (e->in_service)
		return luaL_error(L, "wsbeat: step() called from inside the engine");
	e->lua = L;
	r = wsb_engine_service(e);
	e->lua = NULL;
	if (r)
		luaL_error(L, "wsbeat: step() called from inside the engine");
	return 0;
}

/* core.wait(timeout): wait for I/O or the engine's next deadline, at most
 * timeout seconds (nil = no limit), and service what came. */
static int l_wait(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);
	double limit = luaL_optnumber(L, 1, -1);
	int r;

	if (e->in_service)
		return luaL_error(L, "wsbeat: step() called from inside the engine");
	e->lua = L;
	r = wsb_engine_wait(e, limit);
	e->lua = NULL;
	if (r)
		luaL_error(L, "wsbeat: step() called from inside the engine");
	return 0;
}

static int l_now(lua_State *L)
{
	lua_pushnumber(L, wsb_now(NULL));
	return 1;
}

static void push_info(lua_State *L, struct wsb_event *ev)
{
	const struct wsb_info *in = &ev->info;

	lua_createtable(L, 0, 8);
	lua_pushstring(L, in->cause);
	lua_setfield(L, -2, "cause");
	lua_pushstring(L, in->reason ? in->reason : "");
	lua_setfield(L, -2, "reason");
	if (in->code) {
		lua_pushinteger(L, in->code);
		lua_setfield(L, -2, "code");
	}
	if (in->status) {
		lua_pushinteger(L, in->status);
		lua_setfield(L, -2, "status");
	}
	lua_pushinteger(L, in->attempt);
	lua_setfield(L, -2, "attempt");
	if (in->delay >= 0) {
		lua_pushnumber(L, in->delay);
		lua_setfield(L, -2, "delay");
	}
	lua_pushstring(L, wsb_state_names[ev->previous]);
	lua_setfield(L, -2, "previous");
	if (in->unsent >= 0) {
		lua_pushinteger(L, in->unsent);
		lua_setfield(L, -2, "unsent");
	}
}

/* The client's userdata and the Lua layer's table for it (its uservalue).
 * A server's connection gets its userdata with its first event. */
static void push_client(lua_State *L, struct wsb_client *c, int drop)
{
	if (c->server_role && !c->udp)
		wsb_push_new_conn(L, c), lua_pop(L, 1);
	push_anchored(L, c, drop);
	if (lua_type(L, -1) == LUA_TUSERDATA)
		lua_getiuservalue(L, -1, 2);
	else
		lua_pushnil(L);
}

/*
 * core.next_event() -> ws, info, "message", data, kind
 *                    | ws, info, "state", state, details
 *                    | ws, info, "attempt"
 *                    | ws, info, "decide", details
 *                    | nil
 * info is what ws:_info() returns, handed over to spare the Lua layer a
 * method call per message.
 */
#define POLL_MORE 4
/*
 * Reading on (wsb_engine_poll_more) joins input that came while Lua ran to
 * the batch before its replies are written.  A batch of one event (one
 * message in flight: a request, its reply) skips it: nothing more is
 * coming, and the poll would cost that round trip a system call.
 */
static int read_on(struct wsb_engine *e, lua_State *L)
{
	if (LIST_EMPTY(&e->corked) || e->polled >= POLL_MORE ||
	    e->batched < 2)
		return 0;
	e->polled++;
	return wsb_engine_poll_more(e, L);
}

static int l_next_event(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);
	struct wsb_event *ev;
	struct wsb_client *c;

	while ((ev = STAILQ_FIRST(&e->events)) ||
	       (read_on(e, L) && (ev = STAILQ_FIRST(&e->events)))) {
		STAILQ_REMOVE_HEAD(&e->events, link);
		e->batched++;
		c = ev->c;
		e->corking = 1; /* sends from the callbacks wait for the batch */
		switch (ev->kind) {
		case WSB_EV_MESSAGE:
			push_client(L, c, 0);
			lua_pushliteral(L, "message");
			lua_pushlstring(L, (const char *)ev->msg->buf, ev->msg->len);
			if (ev->msg->binary)
				lua_pushliteral(L, "binary");
			else
				lua_pushliteral(L, "text");
			wsb_event_free(ev);
			return 5;
		case WSB_EV_ATTEMPT:
			push_client(L, c, 0);
			lua_pushliteral(L, "attempt");
			wsb_event_free(ev);
			return 3;
		case WSB_EV_DECIDE:
			push_client(L, c, 0);
			lua_pushliteral(L, "decide");
			push_info(L, ev);
			lua_pushboolean(L, ev->info.retry);
			lua_setfield(L, -2, "retry");
			wsb_event_free(ev);
			return 4;
		case WSB_EV_STATE: {
			int closed = ev->state == WSB_CLOSED;

			c->pub_state = ev->state;
			push_client(L, c, closed);
			lua_pushliteral(L, "state");
			lua_pushstring(L, wsb_state_names[ev->state]);
			push_info(L, ev);
			wsb_event_free(ev);
			if (closed && c->srv)
				wsb_release_server(L, c->srv);
			return 5;
		}
		}
	}
	wsb_engine_uncork(e);
	return 0;
}

/* core.cork(): sends from here on wait for core.uncork() (the Lua layer
 * resuming spawned coroutines: a batch like the callbacks') */
static int l_cork(lua_State *L)
{
	wsb_engine_get(L)->corking = 1;
	return 0;
}

/* core.uncork(): the batch is over (the scheduler's resumptions ran, or a
 * callback raised): write what it sent */
static int l_uncork(lua_State *L)
{
	wsb_engine_uncork(wsb_engine_get(L));
	return 0;
}

/* core.kicked() -> true when API calls since the last service left work */
static int l_kicked(lua_State *L)
{
	lua_pushboolean(L, wsb_engine_get(L)->kicked);
	return 1;
}

/* core.busy() -> true while a client is not closed or events wait */
static int l_busy(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);

	lua_pushboolean(L, e->live > 0 || !STAILQ_EMPTY(&e->events));
	return 1;
}

static int l_pending(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);

	lua_pushboolean(L, !STAILQ_EMPTY(&e->events));
	return 1;
}

/* wsbeat.stats(): clients by state and totals over the engine's life */
static int l_engine_stats(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);
	int n[WSB_CLOSED + 1] = { 0 };
	uint64_t ms = e->gone_msgs_sent, mr = e->gone_msgs_recv,
		 bs = e->gone_bytes_sent, br = e->gone_bytes_recv,
		 rc = e->gone_reconnects;
	struct wsb_client *c;

	LIST_FOREACH(c, &e->clients, link) {
		n[c->st]++;
		ms += c->msgs_sent;
		mr += c->msgs_recv;
		bs += c->bytes_sent;
		br += c->bytes_recv;
		rc += c->reconnects;
	}
	lua_createtable(L, 0, 12);
	for (int i = 0; i <= WSB_CLOSED; i++) {
		lua_pushinteger(L, n[i]);
		lua_setfield(L, -2, wsb_state_names[i]);
	}
	lua_pushinteger(L, (lua_Integer)ms);
	lua_setfield(L, -2, "messages_sent");
	lua_pushinteger(L, (lua_Integer)mr);
	lua_setfield(L, -2, "messages_received");
	lua_pushinteger(L, (lua_Integer)bs);
	lua_setfield(L, -2, "bytes_sent");
	lua_pushinteger(L, (lua_Integer)br);
	lua_setfield(L, -2, "bytes_received");
	lua_pushinteger(L, (lua_Integer)rc);
	lua_setfield(L, -2, "reconnects");
	lua_pushinteger(L, (lua_Integer)e->log_dropped);
	lua_setfield(L, -2, "log_dropped");
	return 1;
}

/* core._selftest() -> true when libuv's watcher queue reads as expected
 * (engine.c, changes_pending); a spec pins it, so a libuv upgrade that
 * breaks the private read shows up in make test */
static int l_selftest(lua_State *L)
{
	lua_pushboolean(L, wsb_engine_get(L)->peek_ok);
	return 1;
}

/* core.utf8_valid(s) -> boolean: the Lua layer's check where utf8.len
 * is missing (5.1, 5.2, LuaJIT) */
static int l_utf8_valid(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);

	lua_pushboolean(L, wsb_utf8_valid((const unsigned char *)s, n));
	return 1;
}

int wsb_open_engine(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{ "fd", l_fd },
		{ "timeout", l_timeout },
		{ "service", l_service },
		{ "wait", l_wait },
		{ "now", l_now },
		{ "next_event", l_next_event },
		{ "cork", l_cork },
		{ "uncork", l_uncork },
		{ "pending", l_pending },
		{ "kicked", l_kicked },
		{ "busy", l_busy },
		{ "engine_stats", l_engine_stats },
		{ "_selftest", l_selftest },
		{ "utf8_valid", l_utf8_valid },
		{ "waker_listen", wsb_l_waker_listen },
		{ "next_log", wsb_l_next_log },
		{ "set_log", wsb_l_set_log },
		{ NULL, NULL }
	};

	if (luaL_newmetatable(L, WSB_ENGINE_MT)) {
		lua_pushcfunction(L, engine_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
	luaL_setfuncs(L, funcs, 0);
	return 0;
}
