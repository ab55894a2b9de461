/*
 * Lua binding of the client object (metatable "wsbeat.client") and the
 * module entry point luaopen_wsbeat_core.
 *
 * The Lua layer (lua/wsbeat/init.lua) validates options and owns the
 * callbacks; this file reads the validated table and exposes the methods
 * that must be in C.  User values: 1 = URL string, 2 = the Lua layer's
 * per-client table (callbacks, options).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"


struct ud {
	struct wsb_client *c;
};

/* A client or a server's connection: both are a struct wsb_client. */
static struct ud *check_ud(lua_State *L, int idx)
{
	struct ud *u = luaL_testudata(L, idx, WSB_CONN_MT);

	return u ? u : luaL_checkudata(L, idx, WSB_CLIENT_MT);
}

static struct wsb_client *check(lua_State *L, int idx)
{
	struct ud *u = check_ud(L, idx);

	if (!u->c)
		luaL_error(L, "wsbeat: client used after its engine was destroyed");
	return u->c;
}

/* --------------------------------------------------- reading options */

/*
 * A number the Lua layer always fills (wsbeat.options: the defaults are
 * written there, once).  Missing means wsbeat.defaults lost a field.
 */
static double num_field(lua_State *L, int t, const char *k)
{
	double v;

	if (lua_getfield(L, t, k) != LUA_TNUMBER)
		luaL_error(L, "wsbeat: option '%s' has no value (was a field of "
			   "wsbeat.defaults removed?)", k);
	v = lua_tonumber(L, -1);
	lua_pop(L, 1);
	return v;
}

static int bool_field(lua_State *L, int t, const char *k, int def)
{
	int v = def;

	if (lua_getfield(L, t, k) != LUA_TNIL)
		v = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return v;
}

static char *str_field(lua_State *L, int t, const char *k, size_t *len)
{
	char *v = NULL;
	size_t n = 0;

	if (lua_getfield(L, t, k) == LUA_TSTRING) {
		const char *s = lua_tolstring(L, -1, &n);

		v = malloc(n + 1);
		if (v) {
			memcpy(v, s, n);
			v[n] = '\0';
		}
	}
	lua_pop(L, 1);
	if (len)
		*len = n;
	return v;
}

/* The options as wsbeat.options.validate() left them: every field set. */
void wsb_read_opts(lua_State *L, int t, struct wsb_opts *o)
{
	o->connect_timeout = num_field(L, t, "connect_timeout");
	o->close_timeout = num_field(L, t, "close_timeout");
	o->max_message_size = (size_t)num_field(L, t, "max_message_size");
	o->max_queue = (size_t)num_field(L, t, "max_queue");
	o->send_buffer = (size_t)num_field(L, t, "send_buffer");
	o->compression = bool_field(L, t, "compression", 0);
	o->protocols = str_field(L, t, "protocols", NULL);
	o->origin = str_field(L, t, "origin", NULL);

	o->verify = 1; /* (no tls table: core.new called by hand) */
	if (lua_getfield(L, t, "tls") == LUA_TTABLE) {
		int s = lua_gettop(L);

		o->verify = bool_field(L, s, "verify", 1);
		o->ca_file = str_field(L, s, "ca_file", NULL);
		o->ca_path = str_field(L, s, "ca_path", NULL);
		o->cert_file = str_field(L, s, "cert_file", NULL);
		o->key_file = str_field(L, s, "key_file", NULL);
		o->server_name = str_field(L, s, "server_name", NULL);
	}
	lua_pop(L, 1);

	o->reconnect = 0;
	o->rc_max_attempts = HUGE_VAL;
	if (lua_getfield(L, t, "reconnect") == LUA_TTABLE) {
		int s = lua_gettop(L);

		o->reconnect = 1;
		o->rc_delay = num_field(L, s, "delay");
		o->rc_max_delay = num_field(L, s, "max_delay");
		o->rc_factor = num_field(L, s, "factor");
		o->rc_jitter = num_field(L, s, "jitter");
		o->rc_min_uptime = num_field(L, s, "min_uptime");
		o->rc_max_attempts = num_field(L, s, "max_attempts");
		lua_getfield(L, s, "retry");
		o->rc_has_retry = lua_isfunction(L, -1);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);

	o->heartbeat = 0;
	if (lua_getfield(L, t, "heartbeat") == LUA_TTABLE) {
		int s = lua_gettop(L);
		char *mode;

		o->heartbeat = 1;
		o->hb_interval = num_field(L, s, "interval");
		o->hb_timeout = num_field(L, s, "timeout");
		mode = str_field(L, s, "mode", NULL);
		o->hb_message_mode = mode && !strcmp(mode, "message");
		free(mode);
		o->hb_message = str_field(L, s, "message", &o->hb_message_len);
	}
	lua_pop(L, 1);
}

/* ------------------------------------------------------- constructor */

/*
 * core.new(url, opts) -> ws | nil, message
 * opts is already validated by the Lua layer.  Does not start connecting:
 * the Lua side calls core.attempt(ws, headers) next.
 */
static int l_new(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);
	size_t len;
	const char *url = luaL_checklstring(L, 1, &len);
	struct wsb_client *c;
	struct ud *u;
	char err[256];
	int r;

	luaL_checktype(L, 2, LUA_TTABLE);
	c = calloc(1, sizeof(*c));
	if (!c)
		return luaL_error(L, "wsbeat: out of memory");
	STAILQ_INIT(&c->tx.q);
	STAILQ_INIT(&c->rx.q);
	if (wsb_url_parse(url, len, &c->url, err, sizeof(err))) {
		free(c);
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}

	/* userdata first, so an error below leaves a harmless object */
	u = lua_newuserdatauv(L, sizeof(*u), 2);
	u->c = NULL;
	luaL_setmetatable(L, WSB_CLIENT_MT);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 1);
	lua_pushvalue(L, 2);
	lua_setiuservalue(L, -2, 2);

	r = uv_timer_init(&e->loop, &c->timer);
	if (r) {
		free(c);
		return luaL_error(L, "wsbeat: %s", uv_strerror(r));
	}
	c->timer.data = c;
	c->magic = WSB_CLIENT_MAGIC;
	c->e = e;
	c->udp = (void **)&u->c;
	u->c = c;
	LIST_INSERT_HEAD(&e->clients, c, link);
	c->hb.rtt = -1;
	c->at.retry_after = -1;
	c->st = c->pub_state = WSB_CONNECTING;
	e->live++;

	wsb_read_opts(L, 2, &c->o);
	c->has_on_message = bool_field(L, 2, "has_on_message", 0);
	{
		const char *h = c->o.server_name && !wsb_is_ip_literal(c->o.server_name) ?
					c->o.server_name : c->url.host;
		int def = c->url.port == (c->url.tls ? 443 : 80);

		if (c->url.ipv6 && h == c->url.host)
			snprintf(c->host_hdr, sizeof(c->host_hdr), def ? "[%s]" : "[%s]:%d",
				 h, c->url.port);
		else
			snprintf(c->host_hdr, sizeof(c->host_hdr), def ? "%s" : "%s:%d",
				 h, c->url.port);
	}
	/* a live client must not be collected: anchored until "closed" */
	wsb_anchor(L, c, -1);
	return 1;
}

/* A copy of t[k] (a string) or NULL. */
static char *dup_field(lua_State *L, int t, const char *k)
{
	return str_field(L, t, k, NULL);
}

/*
 * The proxy argument of core.attempt: nil (direct), a string (why no proxy
 * could be chosen: the attempt fails with cause "proxy"), or the table
 * wsbeat.proxy made: { scheme=, host=, port=, user=, password= }.
 */
static void read_proxy(lua_State *L, int idx, struct wsb_client *c)
{
	struct wsb_proxy p;
	const char *scheme, *host;

	if (lua_isnoneornil(L, idx)) {
		wsb_client_set_proxy(c, NULL);
		return;
	}
	if (lua_type(L, idx) == LUA_TSTRING) {
		wsb_client_set_proxy_error(c, lua_tostring(L, idx));
		return;
	}
	luaL_checktype(L, idx, LUA_TTABLE);
	memset(&p, 0, sizeof(p));
	lua_getfield(L, idx, "scheme");
	scheme = luaL_optstring(L, -1, "");
	p.kind = !strcmp(scheme, "http") ? WSB_PROXY_HTTP :
		 !strcmp(scheme, "socks5") ? WSB_PROXY_SOCKS5 :
		 !strcmp(scheme, "socks5h") ? WSB_PROXY_SOCKS5H : WSB_PROXY_NONE;
	lua_pop(L, 1);
	lua_getfield(L, idx, "host");
	host = luaL_optstring(L, -1, "");
	snprintf(p.host, sizeof(p.host), "%s", host);
	lua_pop(L, 1);
	lua_getfield(L, idx, "port");
	p.port = (int)luaL_optinteger(L, -1, 0);
	lua_pop(L, 1);
	if (p.kind == WSB_PROXY_NONE || !p.host[0] || p.port < 1 ||
	    p.port > 65535) {
		wsb_client_set_proxy_error(c, "unsupported proxy");
		return;
	}
	snprintf(p.display, sizeof(p.display), strchr(p.host, ':') ?
		 "%s://[%s]:%d" : "%s://%s:%d", scheme, p.host, p.port);
	p.user = dup_field(L, idx, "user");
	p.pass = dup_field(L, idx, "password");
	wsb_client_set_proxy(c, &p);
}

/*
 * core.attempt(ws, headers [, proxy]) where headers is nil or a list
 * {name1, value1, name2, value2, ...} already validated by Lua, and proxy
 * is read_proxy()'s.
 */
static int l_attempt(lua_State *L)
{
	struct wsb_client *c = check(L, 1);
	luaL_Buffer b;
	size_t n;

	if (c->st != WSB_CONNECTING && c->st != WSB_RECONNECTING)
		return 0;
	if (c->wsi || c->at.dns || c->at.tunnel)
		return 0; /* never two attempts at once */
	read_proxy(L, 3, c);
	free(c->headers);
	c->headers = NULL;
	c->headers_len = 0;
	if (lua_istable(L, 2)) {
		lua_Integer i, len = luaL_len(L, 2);

		luaL_buffinit(L, &b);
		for (i = 1; i <= len; i++) {
			const char *s;

			lua_rawgeti(L, 2, i);
			s = lua_tolstring(L, -1, &n);
			if (s) {
				luaL_addlstring(&b, s, n);
				luaL_addchar(&b, '\0');
			}
			lua_pop(L, 1);
		}
		luaL_pushresult(&b);
		{
			const char *s = lua_tolstring(L, -1, &n);

			c->headers = malloc(n ? n : 1);
			if (c->headers) {
				memcpy(c->headers, s, n);
				c->headers_len = n;
			}
		}
		lua_pop(L, 1);
	}
	wsb_client_start(c);
	return 0;
}

/* ------------------------------------------------------------ methods */

static int m_send(lua_State *L)
{
	static const char *const kinds[] = { "text", "binary", NULL };
	struct wsb_client *c = check(L, 1);
	size_t len;
	const char *data = luaL_checklstring(L, 2, &len);
	int binary = luaL_checkoption(L, 3, "text", kinds);
	enum wsb_send r;

	if (!binary && !wsb_utf8_valid((const unsigned char *)data, len)) {
		luaL_pushfail(L);
		lua_pushliteral(L, "invalid UTF-8");
		return 2;
	}
	r = wsb_client_send(c, data, len, binary);
	if (r == WSB_SENT) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (r == WSB_SEND_FULL && wsb_slow_consumer(c)) {
		luaL_pushfail(L);
		lua_pushliteral(L, "slow consumer: connection closed");
		return 2;
	}
	luaL_pushfail(L);
	lua_pushstring(L, r == WSB_SEND_FULL ? "send buffer full" :
			  r == WSB_SEND_CLOSED ? "closed" : "out of memory");
	return 2;
}

static int m_ping(lua_State *L)
{
	struct wsb_client *c = check(L, 1);
	size_t len = 0;
	const char *p = luaL_optlstring(L, 2, "", &len);

	luaL_argcheck(L, len <= 125, 2, "ping payload longer than 125 bytes");
	/* (a libwebsockets 4.1 server checks PONG payloads as UTF-8: heartbeat.c) */
	luaL_argcheck(L, !c->server_role ||
		      wsb_utf8_valid((const unsigned char *)p, len), 2,
		      "a server connection's ping payload must be valid UTF-8");
	if (c->st >= WSB_CLOSING) {
		luaL_pushfail(L);
		lua_pushliteral(L, "closed");
		return 2;
	}
	if (wsb_client_ping(c, p, len)) {
		luaL_pushfail(L);
		lua_pushliteral(L, "not open");
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int valid_close_code(lua_Integer code)
{
	return code == 1000 || code == 1001 || (code >= 3000 && code <= 4999);
}

static int m_close(lua_State *L)
{
	struct wsb_client *c = check(L, 1);
	lua_Integer code = luaL_optinteger(L, 2, 1000);
	size_t len = 0;
	const char *reason = luaL_optlstring(L, 3, "", &len);

	luaL_argcheck(L, valid_close_code(code), 2,
		      "close code must be 1000, 1001 or 3000-4999");
	luaL_argcheck(L, len <= 123, 3, "close reason longer than 123 bytes");
	wsb_client_close(c, (int)code, reason, len);
	return 0;
}

/* __close: the same graceful close, whatever error is passed */
static int m_closemm(lua_State *L)
{
	struct ud *u = check_ud(L, 1);

	if (u->c)
		wsb_client_close(u->c, 1000, "", 0);
	return 0;
}

static int m_state(lua_State *L)
{
	struct wsb_client *c = check(L, 1);

	lua_pushstring(L, wsb_state_names[c->pub_state]);
	return 1;
}

static int m_url(lua_State *L)
{
	luaL_checkudata(L, 1, WSB_CLIENT_MT);
	lua_getiuservalue(L, 1, 1);
	return 1;
}

static int m_protocol(lua_State *L)
{
	struct wsb_client *c = check(L, 1);

	if (c->protocol[0] && c->st == WSB_OPEN)
		lua_pushstring(L, c->protocol);
	else
		lua_pushnil(L);
	return 1;
}

static void set_int(lua_State *L, const char *k, uint64_t v)
{
	lua_pushinteger(L, (lua_Integer)v);
	lua_setfield(L, -2, k);
}

static int m_stats(lua_State *L)
{
	struct wsb_client *c = check(L, 1);

	lua_createtable(L, 0, 10);
	if (c->hb.rtt >= 0) {
		lua_pushnumber(L, c->hb.rtt);
		lua_setfield(L, -2, "rtt");
	}
	set_int(L, "messages_sent", c->msgs_sent);
	set_int(L, "messages_received", c->msgs_recv);
	set_int(L, "bytes_sent", c->bytes_sent);
	set_int(L, "bytes_received", c->bytes_recv);
	set_int(L, "reconnects", c->reconnects);
	set_int(L, "buffered", c->tx.bytes + c->cork.bytes);
	set_int(L, "queued", c->rx.q_count);
	if (c->connected_at > 0) {
		lua_pushnumber(L, c->connected_at);
		lua_setfield(L, -2, "connected_at");
	}
	if (c->at.proxy.kind != WSB_PROXY_NONE) {
		lua_pushstring(L, c->at.proxy.display);
		lua_setfield(L, -2, "proxy");
	}
	return 1;
}

static int m_tostring(lua_State *L)
{
	struct ud *u = luaL_checkudata(L, 1, WSB_CLIENT_MT);

	lua_getiuservalue(L, 1, 1);
	lua_pushfstring(L, "wsbeat.client: %s (%s)", lua_tostring(L, -1),
			u->c ? wsb_state_names[u->c->pub_state] : "closed");
	return 1;
}

static int m_gc(lua_State *L)
{
	struct ud *u = check_ud(L, 1);

	if (u->c) {
		wsb_client_free(u->c);
		u->c = NULL;
	}
	return 0;
}

/* ws:_pop() -> data, kind | nil   (the receive queue) */
static int m_pop(lua_State *L)
{
	struct wsb_client *c = check(L, 1);
	struct wsb_msg *m = STAILQ_FIRST(&c->rx.q);

	if (!m)
		return 0;
	STAILQ_REMOVE_HEAD(&c->rx.q, link);
	c->rx.q_count--;
	lua_pushlstring(L, (const char *)m->buf, m->len);
	lua_pushstring(L, m->binary ? "binary" : "text");
	free(m);
	wsb_client_rx_taken(c);
	return 2;
}

/* ws:_decide(retry): the answer of reconnect.retry */
static int m_decide(lua_State *L)
{
	wsb_client_decide(check(L, 1), lua_toboolean(L, 2));
	return 0;
}

static int m_opened(lua_State *L)
{
	wsb_client_opened(check(L, 1));
	return 0;
}

/* ws:_target() -> "ws"|"wss", host, port: what a proxy is chosen for */
static int m_target(lua_State *L)
{
	struct wsb_client *c = check(L, 1);

	lua_pushstring(L, c->url.tls ? "wss" : "ws");
	lua_pushstring(L, c->url.host);
	lua_pushinteger(L, c->url.port);
	return 3;
}

/* ws:_info() -> the Lua layer's per-client table */
static int m_info(lua_State *L)
{
	check_ud(L, 1);
	lua_getiuservalue(L, 1, 2);
	return 1;
}

static int m_live(lua_State *L)
{
	struct ud *u = check_ud(L, 1);

	lua_pushboolean(L, u->c && u->c->st != WSB_CLOSED);
	return 1;
}

/* ------------------------------------------------ server connections */

/*
 * The userdata of a server connection, made when its first event reaches
 * Lua (the connection is born inside lws, where no Lua runs).  User
 * values: 1 = its server's userdata (kept alive by its connections),
 * 2 = the server's Lua table (callbacks, options).  Anchored until
 * "closed", like a client.
 */
void wsb_push_new_conn(lua_State *L, struct wsb_client *c)
{
	struct ud *u = lua_newuserdatauv(L, sizeof(*u), 2);

	u->c = c;
	c->udp = (void **)&u->c;
	luaL_setmetatable(L, WSB_CONN_MT);
	if (c->srv && wsb_push_anchored(L, c->srv) == LUA_TUSERDATA) {
		lua_getiuservalue(L, -1, 2);
		lua_setiuservalue(L, -3, 2);
		lua_setiuservalue(L, -2, 1);
	} else {
		lua_pop(L, 1);
	}
	wsb_anchor(L, c, -1);
}

/* The connection at idx, or NULL (not a connection, or gone). */
struct wsb_client *wsb_test_conn(lua_State *L, int idx)
{
	struct ud *u = luaL_testudata(L, idx, WSB_CONN_MT);

	return u ? u->c : NULL;
}

static int c_tostring(lua_State *L)
{
	struct ud *u = luaL_checkudata(L, 1, WSB_CONN_MT);

	if (!u->c)
		lua_pushliteral(L, "wsbeat.conn (closed)");
	else
		lua_pushfstring(L, u->c->url.ipv6 ? "wsbeat.conn: [%s]:%d %s (%s)" :
				"wsbeat.conn: %s:%d %s (%s)", u->c->url.host,
				u->c->url.port, u->c->url.path,
				wsb_state_names[u->c->pub_state]);
	return 1;
}

/* conn:remote() -> address, port */
static int c_remote(lua_State *L)
{
	struct wsb_client *c = check(L, 1);

	lua_pushstring(L, c->url.host);
	lua_pushinteger(L, c->url.port);
	return 2;
}

/* conn:request() -> the upgrade request, as on_upgrade saw it */
static int c_request(lua_State *L)
{
	struct wsb_client *c = check(L, 1);

	if (!c->req)
		return 0;
	wsb_push_request(L, c->req);
	return 1;
}

/* ------------------------------------------- the retry policy, for specs */

/* core._retry(cause, code, status) -> the default policy's verdict */
static int l_retry(lua_State *L)
{
	lua_pushboolean(L, wsb_default_retry(luaL_checkstring(L, 1),
					     (int)luaL_optinteger(L, 2, 0),
					     (int)luaL_optinteger(L, 3, 0)));
	return 1;
}

/* core._backoff(delay, factor, max_delay, jitter, n, r [, retry_after]) */
static int l_backoff(lua_State *L)
{
	struct wsb_opts o;

	memset(&o, 0, sizeof(o));
	o.rc_delay = luaL_checknumber(L, 1);
	o.rc_factor = luaL_checknumber(L, 2);
	o.rc_max_delay = luaL_checknumber(L, 3);
	o.rc_jitter = luaL_checknumber(L, 4);
	lua_pushnumber(L, wsb_backoff(&o, (int)luaL_checkinteger(L, 5),
				      luaL_checknumber(L, 6),
				      luaL_optnumber(L, 7, -1)));
	return 1;
}

/* core._close_code_name(code) */
static int l_close_code_name(lua_State *L)
{
	lua_pushstring(L, wsb_close_code_name((int)luaL_checkinteger(L, 1)));
	return 1;
}

int luaopen_wsbeat_core(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "send", m_send },
		{ "ping", m_ping },
		{ "close", m_close },
		{ "state", m_state },
		{ "url", m_url },
		{ "protocol", m_protocol },
		{ "stats", m_stats },
		{ "_pop", m_pop },
		{ "_opened", m_opened },
		{ "_decide", m_decide },
		{ "_info", m_info },
		{ "_target", m_target },
		{ "_live", m_live },
		{ NULL, NULL }
	};
	static const luaL_Reg conn_methods[] = {
		{ "send", m_send },
		{ "ping", m_ping },
		{ "close", m_close },
		{ "state", m_state },
		{ "protocol", m_protocol },
		{ "stats", m_stats },
		{ "remote", c_remote },
		{ "request", c_request },
		{ "_pop", m_pop },
		{ "_opened", m_opened },
		{ "_info", m_info },
		{ "_live", m_live },
		{ NULL, NULL }
	};
	static const luaL_Reg funcs[] = {
		{ "new", l_new },
		{ "attempt", l_attempt },
		{ "_retry", l_retry },
		{ "_backoff", l_backoff },
		{ "_close_code_name", l_close_code_name },
		{ NULL, NULL }
	};

	luaL_newlib(L, funcs);
	wsb_open_engine(L);
	wsb_open_cli(L);
	if (luaL_newmetatable(L, WSB_CLIENT_MT)) {
		luaL_newlib(L, methods);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, m_tostring);
		lua_setfield(L, -2, "__tostring");
		lua_pushcfunction(L, m_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, m_closemm);
		lua_setfield(L, -2, "__close");
	}
	lua_getfield(L, -1, "__index");
	lua_setfield(L, -3, "methods");
	lua_pop(L, 1);
	if (luaL_newmetatable(L, WSB_CONN_MT)) {
		luaL_newlib(L, conn_methods);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, c_tostring);
		lua_setfield(L, -2, "__tostring");
		lua_pushcfunction(L, m_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, m_closemm);
		lua_setfield(L, -2, "__close");
	}
	lua_getfield(L, -1, "__index");
	lua_setfield(L, -3, "conn_methods");
	lua_pop(L, 1);
	/* what a connection holds in C until its userdata is collected: the
	 * Lua layer tells the collector (init.lua, drain) */
	lua_pushinteger(L, (lua_Integer)sizeof(struct wsb_client));
	lua_setfield(L, -2, "conn_bytes");
	wsb_open_server(L);
	return 1;
}
