/*
 * The engine: one per Lua state, shared by every client.
 *
 * libwebsockets runs on a libuv loop that the engine owns (lws "foreign
 * loop"), so the whole engine is one epoll fd (uv_backend_fd) plus one
 * timeout (uv_backend_timeout), and step() is uv_run(UV_RUN_NOWAIT).  The
 * same loop resolves names (uv_getaddrinfo on libuv's thread pool) and runs
 * our timers.  See docs/DESIGN.md for why this route was chosen.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"

static const char engine_key = 'e'; /* registry key of the engine userdata */
static const char anchor_key = 'a'; /* registry key: lightuserdata c -> ud */

struct wsb_tlsconf {
	struct wsb_tlsconf *next;
	int tls, compression;
	char *ca_file, *ca_path, *cert_file, *key_file;
	void *ssl_ctx;
	struct lws_vhost *vh;
	char name[32];
};

static const struct lws_protocols protocols[] = {
	{ "wsbeat", wsb_lws_callback, 0, 0, 0, NULL, WSB_TX_CHUNK + 16 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static const struct lws_extension extensions[] = {
	{ "permessage-deflate", lws_extension_callback_pm_deflate,
	  "permessage-deflate; client_max_window_bits" },
	{ NULL, NULL, NULL }
};

double wsb_now(struct wsb_engine *e)
{
	(void)e;
	return (double)uv_hrtime() / 1e9;
}

void wsb_push_event(struct wsb_engine *e, struct wsb_event *ev)
{
	ev->next = NULL;
	if (e->ev_tail)
		e->ev_tail->next = ev;
	else
		e->ev_head = ev;
	e->ev_tail = ev;
	e->news++;
}

/*
 * Called after anything that changed lws or timer state from outside
 * uv_run (a send, a close, a new connection...).  libuv applies epoll
 * changes only inside uv_run, so without this the engine fd would not turn
 * readable and a host that waits on it would sleep through the work.  An
 * async handle's eventfd is already in the epoll set: one write wakes it.
 */
void wsb_engine_kick(struct wsb_engine *e)
{
	if (!e->in_service && !e->kicked && !e->destroyed) {
		e->kicked = 1;
		uv_async_send(&e->kick);
	}
}

static void on_kick(uv_async_t *a)
{
	(void)a; /* the wake-up was the point */
}

static void on_wait_timer(uv_timer_t *t)
{
	/* ending core.wait()'s uv_run was the point */
	((struct wsb_engine *)t->data)->wait_over = 1;
}

void wsb_defer(struct wsb_client *c, unsigned what)
{
	if (!c->deferred) {
		c->def_next = c->e->deferred;
		c->e->deferred = c;
	}
	c->deferred |= what;
}

void wsb_engine_run_deferred(struct wsb_engine *e)
{
	while (e->deferred) {
		struct wsb_client *c = e->deferred;
		unsigned what = c->deferred;

		e->deferred = c->def_next;
		c->def_next = NULL;
		c->deferred = 0;
		wsb_client_do_deferred(c, what);
	}
}

static void free_event(struct wsb_event *ev)
{
	if (ev->msg)
		free(ev->msg);
	free(ev->info.reason);
	free(ev);
}

/* ------------------------------------------------------------- vhosts */

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void free_tlsconf(struct wsb_tlsconf *t)
{
	free(t->ca_file);
	free(t->ca_path);
	free(t->cert_file);
	free(t->key_file);
	free(t);
}

struct lws_vhost *wsb_vhost_for(struct wsb_engine *e, struct wsb_client *c,
				char *err, size_t errlen)
{
	const struct wsb_opts *o = &c->o;
	struct lws_context_creation_info info;
	struct wsb_tlsconf *t;
	int tls = c->url.tls;
	static int serial;

	for (t = e->vhosts; t; t = t->next)
		if (t->tls == tls && t->compression == o->compression &&
		    (!tls || (same(t->ca_file, o->ca_file) &&
			      same(t->ca_path, o->ca_path) &&
			      same(t->cert_file, o->cert_file) &&
			      same(t->key_file, o->key_file))))
			return t->vh;

	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->tls = tls;
	t->compression = o->compression;
	if (tls) {
		t->ca_file = dup_or_null(o->ca_file);
		t->ca_path = dup_or_null(o->ca_path);
		t->cert_file = dup_or_null(o->cert_file);
		t->key_file = dup_or_null(o->key_file);
		t->ssl_ctx = wsb_tls_new_ctx(o, err, errlen);
		if (!t->ssl_ctx) {
			free_tlsconf(t);
			return NULL;
		}
	}
	snprintf(t->name, sizeof(t->name), "wsbeat-%d", ++serial);

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.vhost_name = t->name;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	/*
	 * Without a proxy address lws reads getenv("http_proxy") here and sends
	 * every connection of the vhost through it, even to 127.0.0.1, with no
	 * regard for no_proxy.  ":0" is parsed as an empty host and port 0,
	 * which lws takes as "no proxy": nothing in the environment may change
	 * where wsbeat connects.
	 */
	info.http_proxy_address = ":0";
	if (o->compression)
		info.extensions = extensions;
	if (tls)
		info.provided_client_ssl_ctx = t->ssl_ctx;
	t->vh = lws_create_vhost(e->ctx, &info);
	if (!t->vh) {
		snprintf(err, errlen, "cannot create a libwebsockets vhost");
		if (t->ssl_ctx)
			wsb_tls_free_ctx(t->ssl_ctx);
		free_tlsconf(t);
		return NULL;
	}
	t->next = e->vhosts;
	e->vhosts = t;
	return t->vh;
}

/* ------------------------------------------------------- create, destroy */

static int engine_gc(lua_State *L)
{
	struct wsb_engine *e = luaL_checkudata(L, 1, WSB_ENGINE_MT);
	struct wsb_tlsconf *t;
	struct wsb_event *ev;

	if (e->destroyed)
		return 0;
	e->destroyed = 1;

	/* Detach every client first: lws callbacks during destroy must not
	 * reach client memory, and userdata still alive must not reach us. */
	while (e->clients) {
		struct wsb_client *c = e->clients;

		if (c->udp)
			*c->udp = NULL;
		c->udp = NULL;
		wsb_client_free(c);
	}
	while ((ev = e->ev_head)) {
		e->ev_head = ev->next;
		free_event(ev);
	}
	e->ev_tail = NULL;

	/* Let lws and our timers finish closing their handles (and any
	 * resolver still running on the thread pool) before closing the loop.
	 * On a foreign libuv loop lws 4.1 stops after its first stage and
	 * needs a second lws_context_destroy() once the loop has run; it
	 * clears e->ctx (info.pcontext) when the context is really gone. */
	uv_close((uv_handle_t *)&e->kick, NULL);
	uv_close((uv_handle_t *)&e->wait_timer, NULL);
	for (int i = 0; e->ctx && i < 3; i++) {
		lws_context_destroy(e->ctx);
		uv_run(&e->loop, UV_RUN_DEFAULT);
	}
	uv_loop_close(&e->loop);

	wsb_log_release(e);
	while ((t = e->vhosts)) {
		e->vhosts = t->next;
		if (t->ssl_ctx)
			wsb_tls_free_ctx(t->ssl_ctx);
		free_tlsconf(t);
	}
	return 0;
}

struct wsb_engine *wsb_engine_get(lua_State *L)
{
	struct lws_context_creation_info info;
	struct wsb_engine *e;
	void *foreign[1];
	const char *dbg;
	int r;

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

	r = uv_loop_init(&e->loop);
	if (r)
		luaL_error(L, "wsbeat: cannot create an event loop: %s",
			   uv_strerror(r));
	uv_async_init(&e->loop, &e->kick, on_kick);
	uv_timer_init(&e->loop, &e->wait_timer);
	e->wait_timer.data = e;

	/* lws's own log lines go nowhere unless asked for (wsbeat.log) */
	e->log_level = -1;
	dbg = getenv("WSBEAT_LOG"); /* debugging aid: "error".."debug" */
	if (dbg) {
		static const char *const names[] = { "error", "warn", "info",
						     "debug" };

		for (int i = 0; i < 4; i++)
			if (!strcmp(dbg, names[i]))
				wsb_log_configure(e, i, 1);
	}
	if (e->log_level < 0)
		lws_set_log_level(0, NULL);

	foreign[0] = &e->loop;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.foreign_loops = foreign;
	info.pcontext = &e->ctx;
	info.options = LWS_SERVER_OPTION_LIBUV |
		       LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
		       LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
		       LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN;
	/* our own connect_timeout governs; keep lws's out of the way */
	info.timeout_secs = 3600;
	e->ctx = lws_create_context(&info);
	if (!e->ctx) {
		uv_close((uv_handle_t *)&e->kick, NULL);
		uv_close((uv_handle_t *)&e->wait_timer, NULL);
		uv_run(&e->loop, UV_RUN_NOWAIT);
		uv_loop_close(&e->loop);
		luaL_error(L, "wsbeat: cannot create the libwebsockets context");
	}
	e->destroyed = 0;
	e->started_ns = uv_hrtime();

	lua_rawsetp(L, LUA_REGISTRYINDEX, &engine_key);
	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &anchor_key);
	return e;
}

/* ------------------------------------------------------------ Lua side */

void wsb_anchor(lua_State *L, struct wsb_client *c, int idx)
{
	idx = lua_absindex(L, idx);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &anchor_key);
	lua_pushvalue(L, idx);
	lua_rawsetp(L, -2, c);
	lua_pop(L, 1);
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

/* seconds until step() is due; 0 when events wait; nil when idle */
static double engine_timeout(struct wsb_engine *e)
{
	int ms;

	if (e->ev_head || e->deferred || e->kicked)
		return 0;
	if (!uv_loop_alive(&e->loop))
		return -1;
	/* libuv measures from its cached clock (set by the last uv_run):
	 * refresh it, or a host asking between steps gets a stale answer */
	uv_update_time(&e->loop);
	ms = uv_backend_timeout(&e->loop);
	return ms < 0 ? -1 : ms / 1000.0;
}

static int l_timeout(lua_State *L)
{
	double t = engine_timeout(wsb_engine_get(L));

	if (t < 0)
		lua_pushnil(L);
	else
		lua_pushnumber(L, t);
	return 1;
}

/*
 * Does libuv hold epoll changes asked for during the last iteration?  It
 * applies them only in the next one.  The watcher queue is a private
 * field, but in every libuv 1.x layout its first member is the "next"
 * pointer of a circular list: empty when it points to itself.
 */
static int changes_pending(uv_loop_t *l)
{
	void **q = (void **)&l->watcher_queue;

	return q[0] != (void *)q;
}

/* Must lws serve something without waiting for the network (records
 * OpenSSL has decrypted, received data held back by flow control)? */
static int lws_forced(struct wsb_engine *e)
{
	return lws_service_adjust_timeout(e->ctx, 1, 0) == 0;
}

/*
 * One loop iteration, then more while there is work for them: epoll changes
 * queued by the last one (lws asking for POLLOUT to send the pong to a PING:
 * the pong must leave before the callbacks run, or a reply written straight
 * from on_message overtakes it, Autobahn 5.19/5.20), or records that lws
 * serves by "forced service" (an idle handle under libuv, one record per
 * iteration: a burst is served in one step).
 *
 * lws also starts that idle handle after every I/O callback only to re-arm
 * its own timer; that one is left for the next turn, so what arrived is
 * delivered, and a reply sent, one loop iteration (an epoll_wait) sooner.
 * A blocking turn (core.wait) first lets such an idle handle run and then
 * blocks only if it brought nothing to deliver.
 */
static void run_loop(struct wsb_engine *e, int block)
{
	wsb_engine_uncork(e); /* (the Lua layer normally has) */
	e->in_service = 1;
	e->kicked = 0;
	if (block && uv_backend_timeout(&e->loop) == 0) {
		unsigned news = e->news;

		uv_run(&e->loop, UV_RUN_NOWAIT);
		if (e->news != news || e->deferred || e->wait_over ||
		    changes_pending(&e->loop) || lws_forced(e))
			block = 0;
	}
	for (int i = 0; i < 16; i++) {
		uv_run(&e->loop, i == 0 && block ? UV_RUN_ONCE : UV_RUN_NOWAIT);
		/* forced service runs in lws's idle handle: only worth another
		 * iteration while that is active (a timeout of 0) */
		if (!changes_pending(&e->loop) &&
		    !(uv_backend_timeout(&e->loop) == 0 && lws_forced(e)))
			break;
	}
	e->in_service = 0;
}

static void service(lua_State *L, struct wsb_engine *e)
{
	if (e->in_service)
		luaL_error(L, "wsbeat: step() called from inside the engine");
	run_loop(e, 0);
	wsb_engine_run_deferred(e);
}

/* core.service(): one non-blocking turn of the loop. */
static int l_service(lua_State *L)
{
	service(L, wsb_engine_get(L));
	return 0;
}

/*
 * core.wait(timeout): wait for I/O or the engine's next deadline, at most
 * timeout seconds (nil = no limit), and service what came.  libuv blocks
 * in epoll_wait() itself (UV_RUN_ONCE, a timer for the limit), which saves
 * the poll() on the epoll fd that a host loop needs.
 */
static int l_wait(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);
	double limit = luaL_optnumber(L, 1, -1);

	if (e->in_service)
		luaL_error(L, "wsbeat: step() called from inside the engine");
	if (limit == 0 || e->ev_head || e->deferred || e->kicked) {
		service(L, e);
		return 0;
	}
	e->wait_over = 0;
	if (limit > 0) {
		/* from now, not from the loop's cached time of the last turn */
		uv_update_time(&e->loop);
		uv_timer_start(&e->wait_timer, on_wait_timer,
			       (uint64_t)ceil(limit * 1000.0), 0);
	}
	run_loop(e, 1);
	uv_timer_stop(&e->wait_timer);
	wsb_engine_run_deferred(e);
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

/* The client's userdata and the Lua layer's table for it (its uservalue). */
static void push_client(lua_State *L, struct wsb_client *c, int drop)
{
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
static int l_next_event(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);
	struct wsb_event *ev;
	struct wsb_client *c;

	while ((ev = e->ev_head)) {
		e->ev_head = ev->next;
		if (!e->ev_head)
			e->ev_tail = NULL;
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
			free_event(ev);
			return 5;
		case WSB_EV_ATTEMPT:
			push_client(L, c, 0);
			lua_pushliteral(L, "attempt");
			free_event(ev);
			return 3;
		case WSB_EV_DECIDE:
			push_client(L, c, 0);
			lua_pushliteral(L, "decide");
			push_info(L, ev);
			lua_pushboolean(L, ev->info.retry);
			lua_setfield(L, -2, "retry");
			free_event(ev);
			return 4;
		case WSB_EV_STATE:
			c->pub_state = ev->state;
			push_client(L, c, ev->state == WSB_CLOSED);
			lua_pushliteral(L, "state");
			lua_pushstring(L, wsb_state_names[ev->state]);
			push_info(L, ev);
			free_event(ev);
			return 5;
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

	lua_pushboolean(L, e->live > 0 || e->ev_head != NULL);
	return 1;
}

static int l_pending(lua_State *L)
{
	struct wsb_engine *e = wsb_engine_get(L);

	lua_pushboolean(L, e->ev_head != NULL);
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

	for (c = e->clients; c; c = c->next) {
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
