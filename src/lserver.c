/*
 * Lua binding of the server object (metatable "wsbeat.server"): listen,
 * the upgrade hook that runs on_upgrade, broadcast, close, stats.  User
 * values: 1 = nil, 2 = the Lua layer's server table (callbacks, options).
 * A listening server is anchored in the registry; it is let go when it
 * has stopped listening and Lua has seen every connection of it closed.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"

struct sud {
	struct wsb_server *s;
};

static struct wsb_server *check_server(lua_State *L, int idx)
{
	struct sud *u = luaL_checkudata(L, idx, WSB_SERVER_MT);

	if (!u->s)
		luaL_error(L, "wsbeat: server used after its engine was destroyed");
	return u->s;
}

/* ------------------------------------------------------------ request */

static void push_protocol_list(lua_State *L, const char *offered)
{
	int i = 0;
	const char *p = offered;

	lua_newtable(L);
	while (p && *p) {
		const char *start, *end;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		start = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		end = p;
		if (end > start) {
			lua_pushlstring(L, start, (size_t)(end - start));
			lua_rawseti(L, -2, ++i);
		}
	}
}

void wsb_push_request(lua_State *L, const struct wsb_request *r)
{
	const char *h = r->headers;

	lua_createtable(L, 0, 6);
	lua_pushstring(L, r->path);
	lua_setfield(L, -2, "path");
	if (r->query) {
		lua_pushstring(L, r->query);
		lua_setfield(L, -2, "query");
	}
	lua_pushstring(L, r->remote);
	lua_setfield(L, -2, "remote");
	lua_pushinteger(L, r->remote_port);
	lua_setfield(L, -2, "remote_port");
	push_protocol_list(L, r->protocols);
	lua_setfield(L, -2, "protocols");
	lua_newtable(L);
	while (h && h < r->headers + r->headers_len) {
		const char *v = h + strlen(h) + 1;

		lua_pushstring(L, v);
		lua_setfield(L, -2, h);
		h = v + strlen(v) + 1;
	}
	lua_setfield(L, -2, "headers");
}

/*
 * The upgrade hook: the server table's _upgrade(request) (init.lua wraps
 * on_upgrade: it catches errors and checks the answer) runs in the Lua
 * state that is servicing the engine, inside lws's callback; it returns
 * true, protocol | false, status, reason.
 */
static void upgrade_hook(struct wsb_server *s, struct wsb_request *r,
			 struct wsb_verdict *v)
{
	lua_State *L = s->e->lua;
	int top;

	if (!L || !lua_checkstack(L, 10))
		return;
	top = lua_gettop(L);
	if (wsb_push_anchored(L, s) != LUA_TUSERDATA) {
		lua_settop(L, top);
		return;
	}
	lua_getiuservalue(L, -1, 2);
	lua_getfield(L, -1, "_upgrade");
	wsb_push_request(L, r);
	lua_pushstring(L, v->protocol);
	if (lua_pcall(L, 2, 3, 0) != LUA_OK) {
		v->accept = 0;
		v->status = 500;
		snprintf(v->reason, sizeof(v->reason), "internal error");
	} else if (lua_toboolean(L, -3)) {
		const char *p = lua_tostring(L, -2);

		v->accept = 1;
		snprintf(v->protocol, sizeof(v->protocol), "%s", p ? p : "");
	} else {
		const char *why = lua_tostring(L, -1);

		v->accept = 0;
		v->status = (int)lua_tointeger(L, -2);
		if (v->status < 100 || v->status > 599)
			v->status = 403;
		snprintf(v->reason, sizeof(v->reason), "%s", why ? why : "");
	}
	lua_settop(L, top);
}

/* ------------------------------------------------------------ listen */

static double opt_num(lua_State *L, int t, const char *k)
{
	double v;

	if (lua_getfield(L, t, k) != LUA_TNUMBER)
		luaL_error(L, "wsbeat: server option '%s' has no value", k);
	v = lua_tonumber(L, -1);
	lua_pop(L, 1);
	return v;
}

static char *opt_str(lua_State *L, int t, const char *k)
{
	char *v = NULL;

	if (lua_getfield(L, t, k) == LUA_TSTRING)
		v = strdup(lua_tostring(L, -1));
	lua_pop(L, 1);
	return v;
}

/* core.listen(opts) -> server | nil, message   (opts validated in Lua) */
static int l_listen(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);
	struct wsb_server *s;
	struct sud *u;
	char err[256], *host;

	luaL_checktype(L, 1, LUA_TTABLE);
	s = calloc(1, sizeof(*s));
	if (!s)
		return luaL_error(L, "wsbeat: out of memory");
	u = lua_newuserdatauv(L, sizeof(*u), 2);
	u->s = NULL;
	luaL_setmetatable(L, WSB_SERVER_MT);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 2);

	s->e = e;
	s->fd = -1;
	wsb_read_opts(L, 1, &s->o);
	/* (a server's connections have no client-side TLS settings) */
	free(s->o.ca_file);
	free(s->o.ca_path);
	free(s->o.cert_file);
	free(s->o.key_file);
	free(s->o.server_name);
	free(s->o.origin);
	s->o.ca_file = s->o.ca_path = s->o.cert_file = s->o.key_file = NULL;
	s->o.server_name = s->o.origin = NULL;
	host = opt_str(L, 1, "host");
	snprintf(s->host, sizeof(s->host), "%s", host ? host : "127.0.0.1");
	free(host);
	s->port = (int)opt_num(L, 1, "port");
	s->handshake_timeout = opt_num(L, 1, "handshake_timeout");
	s->max_connections = (size_t)opt_num(L, 1, "max_connections");
	lua_getfield(L, 1, "on_full");
	s->on_full_close = lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1),
							   "close");
	lua_pop(L, 1);
	lua_getfield(L, 1, "has_on_message");
	s->has_on_message = lua_toboolean(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, 1, "_upgrade");
	if (lua_isfunction(L, -1))
		s->upgrade = upgrade_hook;
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "tls") == LUA_TTABLE) {
		int t = lua_gettop(L);

		s->tls = 1;
		s->cert_file = opt_str(L, t, "cert_file");
		s->key_file = opt_str(L, t, "key_file");
		s->ca_file = opt_str(L, t, "ca_file");
		lua_getfield(L, t, "verify_client");
		s->verify_client = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);

	if (wsb_server_listen(s, err, sizeof(err))) {
		wsb_server_free(s);
		luaL_pushfail(L);
		lua_pushstring(L, err);
		return 2;
	}
	u->s = s;
	s->udp = (void **)&u->s;
	wsb_anchor(L, s, -1);
	s->anchored = 1;
	return 1;
}

/*
 * Let the server's userdata go once it no longer listens and Lua has seen
 * every one of its connections closed (each connection's userdata keeps
 * it alive as long as it lives itself).
 */
void wsb_release_server(lua_State *L, struct wsb_server *s)
{
	struct wsb_client *c;

	if (!s->anchored || s->fd >= 0)
		return;
	LIST_FOREACH(c, &s->conns, srv_link)
		if (c->pub_state != WSB_CLOSED)
			return;
	s->anchored = 0;
	wsb_unanchor(L, s);
}

/* ------------------------------------------------------------ methods */

static int s_port(lua_State *L)
{
	lua_pushinteger(L, check_server(L, 1)->port);
	return 1;
}

/* server:_close(code, reason): start the shutdown (init.lua waits) */
static int s_close(lua_State *L)
{
	struct wsb_server *s = check_server(L, 1);
	lua_Integer code = luaL_optinteger(L, 2, 1001);
	size_t len = 0;
	const char *reason = luaL_optlstring(L, 3, "", &len);

	luaL_argcheck(L, code == 1000 || code == 1001 ||
		      (code >= 3000 && code <= 4999), 2,
		      "close code must be 1000, 1001 or 3000-4999");
	luaL_argcheck(L, len <= 123, 3, "close reason longer than 123 bytes");
	wsb_server_close(s, (int)code, reason, len);
	wsb_release_server(L, s);
	return 0;
}

/* server:_live() -> connections not yet closed as Lua saw them */
static int s_live(lua_State *L)
{
	struct wsb_server *s = check_server(L, 1);
	struct wsb_client *c;
	lua_Integer n = 0;

	LIST_FOREACH(c, &s->conns, srv_link)
		n += c->pub_state != WSB_CLOSED || c->st != WSB_CLOSED;
	lua_pushinteger(L, n);
	return 1;
}

/* server:_conns() -> list of open connections (as Lua saw them open) */
static int s_conns(lua_State *L)
{
	struct wsb_server *s = check_server(L, 1);
	struct wsb_client *c;
	int i = 0;

	lua_createtable(L, (int)s->live, 0);
	LIST_FOREACH(c, &s->conns, srv_link) {
		if (c->pub_state != WSB_OPEN || c->st != WSB_OPEN || !c->udp)
			continue;
		if (wsb_push_anchored(L, c) != LUA_TUSERDATA) {
			lua_pop(L, 1);
			continue;
		}
		lua_rawseti(L, -2, ++i);
	}
	return 1;
}

/* server:_broadcast(data, binary [, list]) -> queued for how many */
static int s_broadcast(lua_State *L)
{
	struct wsb_server *s = check_server(L, 1);
	size_t len, n = 0;
	const char *data = luaL_checklstring(L, 2, &len);
	int binary = lua_toboolean(L, 3);
	struct wsb_client **only = NULL;

	if (lua_istable(L, 4)) {
		size_t max = lua_rawlen(L, 4);

		only = lua_newuserdatauv(L, (max ? max : 1) * sizeof(*only), 0);
		for (size_t i = 1; i <= max; i++) {
			struct wsb_client *c;

			lua_rawgeti(L, 4, (lua_Integer)i);
			c = wsb_test_conn(L, -1);
			lua_pop(L, 1);
			if (c && c->srv == s)
				only[n++] = c;
		}
		if (!n) {
			lua_pushinteger(L, 0);
			return 1;
		}
	}
	lua_pushinteger(L, (lua_Integer)wsb_server_broadcast(s, data, len, binary,
							      only, n));
	return 1;
}

static void set_int(lua_State *L, const char *k, uint64_t v)
{
	lua_pushinteger(L, (lua_Integer)v);
	lua_setfield(L, -2, k);
}

static int s_stats(lua_State *L)
{
	struct wsb_server *s = check_server(L, 1);
	uint64_t ms = s->gone_msgs_sent, mr = s->gone_msgs_recv,
		 bs = s->gone_bytes_sent, br = s->gone_bytes_recv;
	struct wsb_client *c;

	LIST_FOREACH(c, &s->conns, srv_link) {
		ms += c->msgs_sent;
		mr += c->msgs_recv;
		bs += c->bytes_sent;
		br += c->bytes_recv;
	}
	lua_createtable(L, 0, 12);
	set_int(L, "connections", s->live);
	set_int(L, "handshaking", s->npending);
	set_int(L, "accepted", s->accepted);
	set_int(L, "upgraded", s->upgraded);
	set_int(L, "refused", s->refused);
	set_int(L, "rejected_full", s->full);
	set_int(L, "handshake_timeouts", s->hs_timeouts);
	set_int(L, "tls_failures", s->tls_failures);
	set_int(L, "slow_consumers", s->slow);
	set_int(L, "messages_sent", ms);
	set_int(L, "messages_received", mr);
	set_int(L, "bytes_sent", bs);
	set_int(L, "bytes_received", br);
	lua_pushboolean(L, s->fd >= 0);
	lua_setfield(L, -2, "listening");
	return 1;
}

static int s_tostring(lua_State *L)
{
	struct sud *u = luaL_checkudata(L, 1, WSB_SERVER_MT);

	if (!u->s)
		lua_pushliteral(L, "wsbeat.server (closed)");
	else
		lua_pushfstring(L, strchr(u->s->host, ':') ?
				"wsbeat.server: %s://[%s]:%d (%s, %d connections)" :
				"wsbeat.server: %s://%s:%d (%s, %d connections)",
				u->s->tls ? "wss" : "ws", u->s->host, u->s->port,
				u->s->fd >= 0 ? "listening" : "closed",
				(int)u->s->live);
	return 1;
}

static int s_gc(lua_State *L)
{
	struct sud *u = luaL_checkudata(L, 1, WSB_SERVER_MT);

	if (u->s) {
		wsb_server_free(u->s);
		u->s = NULL;
	}
	return 0;
}

/* server:_info() -> the Lua layer's server table */
static int s_info(lua_State *L)
{
	luaL_checkudata(L, 1, WSB_SERVER_MT);
	lua_getiuservalue(L, 1, 2);
	return 1;
}

int wsb_open_server(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "port", s_port },
		{ "stats", s_stats },
		{ "_close", s_close },
		{ "_live", s_live },
		{ "_conns", s_conns },
		{ "_broadcast", s_broadcast },
		{ "_info", s_info },
		{ NULL, NULL }
	};

	lua_pushcfunction(L, l_listen);
	lua_setfield(L, -2, "listen");
	if (luaL_newmetatable(L, WSB_SERVER_MT)) {
		luaL_newlib(L, methods);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, s_tostring);
		lua_setfield(L, -2, "__tostring");
		lua_pushcfunction(L, s_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_getfield(L, -1, "__index");
	lua_setfield(L, -3, "server_methods");
	lua_pop(L, 1);
	return 0;
}
