/*
 * The engine: one per Lua state, shared by every client (its Lua side is
 * src/lengine.c).
 *
 * libwebsockets runs on a libuv loop that the engine owns (lws "foreign
 * loop"), so the whole engine is one epoll fd (uv_backend_fd) plus one
 * timeout (uv_backend_timeout), and step() is uv_run(UV_RUN_NOWAIT).  The
 * same loop resolves names (uv_getaddrinfo on libuv's thread pool) and runs
 * our timers.  See docs/DESIGN.md for why this route was chosen.
 */
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsbeat.h"

/*
 * What lws reads from a socket at a time (its per-thread buffer, one for
 * the engine, not one per connection).  lws's default, 4 KiB less its
 * headroom, took two reads and two loop turns for every 4 KiB message.
 */
#define RX_READ_SIZE 65536

struct wsb_tlsconf {
	struct wsb_tlsconf *next;
	int tls;
	char *ca_file, *ca_path, *cert_file, *key_file;
	void *ssl_ctx;
	struct lws_vhost *vh;
	char name[32];
};


static const struct lws_protocols protocols[] = {
	/* (tx_packet_size: a fragment's frame in TLS records, all in one
	 * send: 5 records' overhead) */
	{ "wsbeat", wsb_lws_callback, 0, 0, 0, NULL, WSB_TX_CHUNK + 1024 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};


double wsb_now(struct wsb_engine *e)
{
	(void)e;
	return (double)uv_hrtime() / 1e9;
}

/*
 * libuv's clock is whole milliseconds, truncated, so a timer armed for
 * ceil(d) ms can expire up to 1 ms before its time by the real clock: one
 * more millisecond, so that no connect_timeout, backoff or handshake
 * deadline ends early.
 */
void wsb_timer_start_at(struct wsb_engine *e, uv_timer_t *t, uv_timer_cb cb,
			double deadline)
{
	double now = wsb_now(e);

	uv_update_time(&e->loop);
	uv_timer_start(t, cb, deadline <= now ? 0 :
		       (uint64_t)ceil((deadline - now) * 1000.0) + 1, 0);
}

void wsb_push_event(struct wsb_engine *e, struct wsb_event *ev)
{
	STAILQ_INSERT_TAIL(&e->events, ev, link);
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
		LIST_INSERT_HEAD(&c->e->deferred, c, def_link);
	}
	c->deferred |= what;
}

void wsb_engine_run_deferred(struct wsb_engine *e)
{
	while (!LIST_EMPTY(&e->deferred)) {
		struct wsb_client *c = LIST_FIRST(&e->deferred);
		unsigned what = c->deferred;

		LIST_REMOVE(c, def_link);
		c->deferred = 0;
		wsb_client_do_deferred(c, what);
	}
}

void wsb_event_free(struct wsb_event *ev)
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
		if (t->tls == tls &&
		    (!tls || (same(t->ca_file, o->ca_file) &&
			      same(t->ca_path, o->ca_path) &&
			      same(t->cert_file, o->cert_file) &&
			      same(t->key_file, o->key_file)))) {
			c->at.ssl_ctx = t->ssl_ctx;
			return t->vh;
		}

	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->tls = tls;
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
	/* (lws uses no client TLS of its own, tlsio.c does: given ours, lws
	 * makes no SSL_CTX for the vhost) */
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
	c->at.ssl_ctx = t->ssl_ctx;
	return t->vh;
}

static void find_lws_idle(uv_handle_t *h, void *arg);

/*
 * Does libuv hold epoll changes asked for during the last iteration?  It
 * applies them only in the next one.  The watcher queue is a private
 * field; in every libuv 1.x layout its first member is the "next" pointer
 * of a circular list, empty when it points to itself.  This is the only
 * place that reads it, and only after wsb_engine_open()'s self-test found
 * it behaving so on this libuv (peek_ok); otherwise "a loop timeout of 0"
 * (work is due) stands in for it: more iterations, never fewer.
 */
static int peek_watchers(uv_loop_t *l)
{
	void **q = (void **)&l->watcher_queue;

	return q[0] != (void *)q;
}

static int changes_pending(struct wsb_engine *e)
{
	if (e->peek_ok)
		return peek_watchers(&e->loop);
	return uv_backend_timeout(&e->loop) == 0;
}

static void on_probe_poll(uv_poll_t *p, int status, int events)
{
	(void)p, (void)status, (void)events;
}

/*
 * A watcher started outside uv_run is a change held; a loop iteration
 * applies it (none held); a new interest on it (lws wanting POLLOUT) is a
 * change held again.  1 when the private read says exactly that.
 */
static int peek_selftest(uv_loop_t *l)
{
	uv_poll_t p;
	int fds[2], ok;

	if (pipe(fds))
		return 0;
	ok = !uv_poll_init(l, &p, fds[0]);
	if (ok) {
		ok = !uv_poll_start(&p, UV_READABLE, on_probe_poll) &&
		     peek_watchers(l);
		uv_run(l, UV_RUN_NOWAIT); /* (the pipe is quiet: no wait) */
		ok = ok && !peek_watchers(l);
		ok = ok && !uv_poll_start(&p, UV_READABLE | UV_WRITABLE,
					  on_probe_poll) && peek_watchers(l);
		uv_close((uv_handle_t *)&p, NULL);
		uv_run(l, UV_RUN_NOWAIT); /* (finishes the close) */
	}
	close(fds[0]);
	close(fds[1]);
	return ok;
}

/* ------------------------------------------------------- create, destroy */

/*
 * Make the engine in e (zeroed memory): its libuv loop, and the lws context
 * on it as a foreign loop.  0, or -1 with a message in err (nothing to
 * close then).
 */
int wsb_engine_open(struct wsb_engine *e, char *err, size_t errlen)
{
	struct lws_context_creation_info info;
	void *foreign[1];
	const char *dbg;
	int r;

	STAILQ_INIT(&e->events);
	STAILQ_INIT(&e->log_lines);
	LIST_INIT(&e->clients);
	LIST_INIT(&e->servers);
	LIST_INIT(&e->deferred);
	LIST_INIT(&e->corked);
	LIST_INIT(&e->failing);
	TAILQ_INIT(&e->admit_q);
	r = uv_loop_init(&e->loop);
	if (r) {
		snprintf(err, errlen, "cannot create an event loop: %s",
			 uv_strerror(r));
		return -1;
	}
	/* (first, while no handle of ours is in the loop) */
	e->peek_ok = peek_selftest(&e->loop);
	uv_async_init(&e->loop, &e->kick, on_kick);
	uv_timer_init(&e->loop, &e->wait_timer);
	e->wait_timer.data = e;
	uv_timer_init(&e->loop, &e->hot_timer);
	uv_unref((uv_handle_t *)&e->hot_timer); /* (it keeps no loop alive) */

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
	info.pt_serv_buf_size = RX_READ_SIZE;
	e->ctx = lws_create_context(&info);
	if (!e->ctx) {
		uv_close((uv_handle_t *)&e->kick, NULL);
		uv_close((uv_handle_t *)&e->wait_timer, NULL);
		uv_close((uv_handle_t *)&e->hot_timer, NULL);
		uv_run(&e->loop, UV_RUN_NOWAIT);
		uv_loop_close(&e->loop);
		snprintf(err, errlen, "cannot create the libwebsockets context");
		return -1;
	}
	e->destroyed = 0;
	e->started_ns = uv_hrtime();
	uv_walk(&e->loop, find_lws_idle, e);
	return 0;
}

/* Free everything the engine holds; idempotent (the Lua __gc calls it). */
void wsb_engine_close(struct wsb_engine *e)
{
	struct wsb_tlsconf *t;
	struct wsb_event *ev;

	if (e->destroyed)
		return;
	e->destroyed = 1;
	wsb_waker_stop(e); /* (it polls the loop's fd: before the loop goes) */

	/* Detach every server and client first: lws callbacks during destroy
	 * must not reach their memory, and userdata still alive must not
	 * reach us. */
	while (!LIST_EMPTY(&e->servers)) {
		struct wsb_server *s = LIST_FIRST(&e->servers);

		if (s->udp)
			*s->udp = NULL;
		s->udp = NULL;
		wsb_server_free(s);
	}
	while (!LIST_EMPTY(&e->clients)) {
		struct wsb_client *c = LIST_FIRST(&e->clients);

		if (c->udp)
			*c->udp = NULL;
		c->udp = NULL;
		wsb_client_free(c);
	}
	while ((ev = STAILQ_FIRST(&e->events))) {
		STAILQ_REMOVE_HEAD(&e->events, link);
		wsb_event_free(ev);
	}

	/* Let lws and our timers finish closing their handles (and any
	 * resolver still running on the thread pool) before closing the loop.
	 * On a foreign libuv loop lws 4.1 stops after its first stage and
	 * needs a second lws_context_destroy() once the loop has run; it
	 * clears e->ctx (info.pcontext) when the context is really gone. */
	uv_close((uv_handle_t *)&e->kick, NULL);
	uv_close((uv_handle_t *)&e->wait_timer, NULL);
	uv_close((uv_handle_t *)&e->hot_timer, NULL);
	for (int i = 0; e->ctx && i < 3; i++) {
		lws_context_destroy(e->ctx);
		uv_run(&e->loop, UV_RUN_DEFAULT);
	}
	uv_loop_close(&e->loop);

	wsb_log_release(e);
	wsb_srvhosts_free(e);
	free(e->tls_out);
	e->tls_out = NULL;
	while ((t = e->vhosts)) {
		e->vhosts = t->next;
		if (t->ssl_ctx)
			wsb_tls_free_ctx(t->ssl_ctx);
		free_tlsconf(t);
	}
}

/* ----------------------------------------------------------- service */

/* seconds until step() is due; 0 when events wait; nil when idle */
double wsb_engine_timeout(struct wsb_engine *e)
{
	int ms;

	if (!STAILQ_EMPTY(&e->events) || !LIST_EMPTY(&e->deferred) ||
	    e->kicked)
		return 0;
	if (!uv_loop_alive(&e->loop))
		return -1;
	/* libuv measures from its cached clock (set by the last uv_run):
	 * refresh it, or a host asking between steps gets a stale answer */
	uv_update_time(&e->loop);
	ms = uv_backend_timeout(&e->loop);
	return ms < 0 ? -1 : ms / 1000.0;
}


/* Must lws serve something without waiting for the network (records
 * OpenSSL has decrypted, received data held back by flow control, a
 * message permessage-deflate inflates past one buffer)? */
static int lws_forced(struct wsb_engine *e)
{
	return lws_service_adjust_timeout(e->ctx, 1, 0) == 0;
}

/*
 * lws 4.1's libuv glue does its forced service from an idle handle that
 * stops itself after one pass and is started again only by socket I/O.
 * A server inflating a compressed 16 KiB message (1 KiB per pass) served
 * the first two passes and then stalled until the next packet arrived (a
 * heartbeat probe, many seconds later).  The engine starts that handle
 * again while lws still reports forced work.  It is the only idle handle
 * on the loop (the engine has none of its own); the callback it was
 * started with is read from it once, just after lws_create_context()
 * started it.
 */
static void find_lws_idle(uv_handle_t *h, void *arg)
{
	struct wsb_engine *e = arg;

	if (h->type == UV_IDLE && !e->lws_idle && uv_is_active(h)) {
		e->lws_idle = (uv_idle_t *)h;
		e->lws_idle_cb = e->lws_idle->idle_cb;
	}
}

static void rearm_forced(struct wsb_engine *e)
{
	if (e->lws_idle && e->lws_idle_cb &&
	    !uv_is_active((uv_handle_t *)e->lws_idle) && lws_forced(e))
		uv_idle_start(e->lws_idle, e->lws_idle_cb);
}

/*
 * Ctrl-C.  libuv restarts epoll_wait when a signal interrupts it, and the
 * Lua interpreter's SIGINT handler only sets a hook, which runs when
 * control comes back to Lua: blocked in libuv's wait (UV_RUN_ONCE), an
 * idle wsbeat.run() stopped at its next event, a heartbeat interval later.
 * So a blocking turn waits in poll() on the engine's fd, which comes back
 * on EINTR, and then services what is there without waiting.
 *
 * That is one system call more per wait (poll, then libuv's epoll_wait
 * with no timeout): about 1 us of every round trip of a busy connection.
 * A turn right after one that delivered something ("hot": a reply is
 * likely in flight) keeps libuv's own wait instead, capped at HOT_WAIT_MS:
 * if nothing comes by then, core.wait returns to Lua once (a signal that
 * came meanwhile is acted on there) and the next turn waits in poll().
 * A Ctrl-C is acted on within HOT_WAIT_MS at worst.
 */
#define HOT_WAIT_MS 50

static void on_hot_timer(uv_timer_t *t)
{
	(void)t; /* ending a hot wait was the point */
}

/* Block (not hot) until the engine's fd is readable, its next deadline,
 * or a signal.  The epoll set must be current: held changes applied. */
static void wait_ready(struct wsb_engine *e)
{
	struct pollfd p = { .fd = uv_backend_fd(&e->loop), .events = POLLIN };
	int ms;

	/* libuv counts from its cached clock: refresh it, as uv_run would */
	uv_update_time(&e->loop);
	ms = uv_backend_timeout(&e->loop);
	if (ms != 0)
		(void)poll(&p, 1, ms); /* ready, due, or a signal: all go on */
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
 * A blocking turn (core.wait) first lets such an idle handle run, and
 * applies epoll changes held since the last turn (poll() would wait on the
 * old set), and then blocks only if that brought nothing to deliver.
 */
static void run_loop(struct wsb_engine *e, int block)
{
	unsigned news = e->news;
	int capped = 0, served = 0;

	wsb_engine_uncork(e); /* (the Lua layer normally has) */
	e->in_service = 1;
	e->kicked = 0;
	if (block && (uv_backend_timeout(&e->loop) == 0 ||
		      (!e->hot && changes_pending(e)))) {
		uv_run(&e->loop, UV_RUN_NOWAIT);
		if (e->news != news || !LIST_EMPTY(&e->deferred) ||
		    e->wait_over ||
		    changes_pending(e) || lws_forced(e))
			block = 0, served = 1;
	}
	/* without the private read, held changes cannot be seen: libuv's own
	 * wait applies them first (and a signal waits for the next event) */
	if (block && e->peek_ok) {
		if (e->hot) {
			uv_timer_start(&e->hot_timer, on_hot_timer,
				       HOT_WAIT_MS, 0);
			capped = 1;
		} else {
			wait_ready(e);
			block = 0;
		}
	}
	/* forced service runs in lws's idle handle: only worth another
	 * iteration while that is active (a timeout of 0); an iteration that
	 * served the turn above counts as the first */
	for (int i = 0; i < 16; i++) {
		if (i > 0 || !served)
			uv_run(&e->loop, i == 0 && block ? UV_RUN_ONCE :
			       UV_RUN_NOWAIT);
		if (!changes_pending(e) &&
		    !(uv_backend_timeout(&e->loop) == 0 && lws_forced(e)))
			break;
	}
	if (capped)
		uv_timer_stop(&e->hot_timer);
	e->hot = e->news != news;
	/* once a turn, not per iteration: lws_forced() walks lws's lists */
	rearm_forced(e);
	e->in_service = 0;
}

/* Input that came while Lua ran the last batch: read it before the
 * batch's replies are written.  1 when it brought events. */
int wsb_engine_poll_more(struct wsb_engine *e, void *L)
{
	unsigned news = e->news;

	if (e->in_service)
		return 0;
	e->in_service = 1;
	e->lua = L; /* (on_upgrade runs in it) */
	uv_run(&e->loop, UV_RUN_NOWAIT);
	e->lua = NULL;
	e->in_service = 0;
	wsb_engine_run_deferred(e);
	return e->news != news && !STAILQ_EMPTY(&e->events);
}

/* One non-blocking turn; -1 when called from inside the engine. */
int wsb_engine_service(struct wsb_engine *e)
{
	if (e->in_service)
		return -1;
	run_loop(e, 0);
	wsb_engine_run_deferred(e);
	return 0;
}

/*
 * Wait for I/O or the engine's next deadline, at most
 * limit seconds (< 0: no limit), and service what came.  libuv blocks
 * in epoll_wait() itself (UV_RUN_ONCE, a timer for the limit), which saves
 * the poll() on the epoll fd that a host loop needs.
 */
int wsb_engine_wait(struct wsb_engine *e, double limit)
{
	if (e->in_service)
		return -1;
	if (limit == 0 || !STAILQ_EMPTY(&e->events) ||
	    !LIST_EMPTY(&e->deferred) || e->kicked)
		return wsb_engine_service(e);
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
