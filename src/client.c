/*
 * The connection state machine of one client.
 *
 * A client owns at most one attempt at a time: a pending name resolution or
 * one lws wsi.  The wsi's user pointer is the client while the attempt is
 * current; abandoning an attempt sets it to NULL first (detach), so late
 * callbacks of an old connection find no client and can never touch the
 * new one.  Everything the Lua side must hear about becomes an event on the
 * engine's FIFO.
 */
#include <math.h>
#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"

#define TX_CHUNK WSB_TX_CHUNK /* fragment size: a probe never waits longer */
#define DIRECT_MAX 16384 /* largest message written straight from send() */

const char *const wsb_state_names[] = {
	"connecting", "open", "reconnecting", "closing", "closed"
};

struct wsb_dns {
	uv_getaddrinfo_t req;
	struct wsb_client *c; /* NULL once abandoned */
};

static void lost(struct wsb_client *c, const char *cause, int code,
		 int status, const char *fmt, ...);
static void request_writable(struct wsb_client *c);
static int uncork(struct wsb_client *c);
static void cork_requeue(struct wsb_client *c);
static void cork_free(struct wsb_client *c);

/* ------------------------------------------------------------ helpers */

static char *vfmt(const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	return strdup(buf);
}

/* The one place the real state changes: keeps the engine's live count. */
static void wsb_set_st(struct wsb_client *c, enum wsb_state st)
{
	if (c->st != WSB_CLOSED && st == WSB_CLOSED)
		c->e->live--;
	c->st = st;
}

static void set_state(struct wsb_client *c, enum wsb_state st,
		      const char *cause, char *reason, int code, int status,
		      double delay, int unsent)
{
	struct wsb_event *ev = calloc(1, sizeof(*ev));

	if (!ev) {
		free(reason);
		wsb_set_st(c, st);
		return;
	}
	ev->kind = WSB_EV_STATE;
	ev->c = c;
	ev->state = st;
	ev->previous = c->st;
	ev->info.cause = cause;
	ev->info.reason = reason;
	ev->info.code = code;
	ev->info.status = status;
	ev->info.attempt = c->attempt;
	ev->info.delay = delay;
	ev->info.unsent = unsent;
	wsb_log(c->e, st == WSB_RECONNECTING || (st == WSB_CLOSED &&
		    strcmp(cause, "closed_by_user")) ? WSB_LOG_WARN : WSB_LOG_INFO,
		"%s://%s:%d%s: %s -> %s (%s: %s)%s", c->url.tls ? "wss" : "ws",
		c->url.host, c->url.port, c->url.path, wsb_state_names[c->st],
		wsb_state_names[st], cause, reason ? reason : "",
		delay >= 0 ? " retry scheduled" : "");
	wsb_set_st(c, st);
	wsb_push_event(c->e, ev);
}

static void push_simple(struct wsb_client *c, enum wsb_ev_kind kind,
			struct wsb_msg *m)
{
	struct wsb_event *ev = calloc(1, sizeof(*ev));

	if (!ev) {
		free(m);
		return;
	}
	ev->kind = kind;
	ev->c = c;
	ev->msg = m;
	wsb_push_event(c->e, ev);
}

void wsb_msg_free_list(struct wsb_msg *m)
{
	while (m) {
		struct wsb_msg *n = m->next;

		free(m);
		m = n;
	}
}

static const char *close_code_name(int code)
{
	switch (code) {
	case 1000: return "normal closure";
	case 1001: return "going away";
	case 1002: return "protocol error";
	case 1003: return "unsupported data";
	case 1005: return "no status";
	case 1006: return "abnormal closure";
	case 1007: return "invalid payload data";
	case 1008: return "policy violation";
	case 1009: return "message too big";
	case 1010: return "mandatory extension";
	case 1011: return "internal error";
	case 1012: return "service restart";
	case 1013: return "try again later";
	case 1014: return "bad gateway";
	case 1015: return "TLS handshake";
	default: return code >= 4000 ? "application" : "unknown";
	}
}

/* ------------------------------------------------------------- timers */

static void on_timer(uv_timer_t *t);

void wsb_client_timer_arm(struct wsb_client *c)
{
	double next = 0, now;
	double d[] = { c->t_connect, c->t_close, c->t_retry, c->t_probe,
		       c->t_dead };

	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
		if (d[i] > 0 && (next == 0 || d[i] < next))
			next = d[i];
	c->armed_at = next;
	wsb_engine_kick(c->e);
	if (next == 0) {
		uv_timer_stop(&c->timer);
		return;
	}
	now = wsb_now(c->e);
	uv_update_time(&c->e->loop);
	uv_timer_start(&c->timer, on_timer,
		       next <= now ? 0 : (uint64_t)ceil((next - now) * 1000.0), 0);
}

/* -------------------------------------------------------- the attempt */

/* Drop the current wsi without a close handshake. */
static void detach_wsi(struct wsb_client *c)
{
	struct lws *wsi = c->wsi;

	if (!wsi)
		return;
	c->wsi = NULL;
	if (c->tx_hold) {
		/* lws may still be deflating from the held message: hand it to
		 * a tombstone that the wsi frees when lws destroys it */
		struct wsb_tomb *t = malloc(sizeof(*t));

		if (t) {
			t->magic = WSB_TOMB_MAGIC;
			t->hold = c->tx_hold;
			c->tx_hold = NULL;
		}
		lws_set_wsi_user(wsi, t);
	} else {
		lws_set_wsi_user(wsi, NULL);
	}
	/* ASYNC: safe even from inside this wsi's own callback; every reason
	 * but keep-alive marks the socket unusable, so no close frame. */
	lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	wsb_engine_kick(c->e);
}

static void cancel_dns(struct wsb_client *c)
{
	if (c->dns) {
		c->dns->c = NULL;
		uv_cancel((uv_req_t *)&c->dns->req);
		c->dns = NULL;
	}
}

static void reset_rx(struct wsb_client *c)
{
	free(c->rx_buf);
	c->rx_buf = NULL;
	c->rx_len = c->rx_cap = 0;
	c->rx_too_big = 0;
	c->rx_in_msg = 0;
}

/* A message partly handed to lws can't be resent (it might arrive twice or
 * as a torn message), so an attempt that ends mid-message drops it. */
static void drop_partial_tx(struct wsb_client *c)
{
	struct wsb_msg *m = c->tx_head;

	if (!c->tx_started || !m)
		return;
	c->tx_head = m->next;
	if (!c->tx_head)
		c->tx_tail = NULL;
	if (c->tx_prio == m)
		c->tx_prio = NULL;
	c->tx_bytes -= m->len;
	c->tx_count--;
	c->tx_dropped++;
	c->tx_started = 0;
	if (c->o.compression && c->wsi && !c->tx_hold)
		c->tx_hold = m; /* lws may still be deflating from it */
	else
		free(m);
}

static void attempt_over(struct wsb_client *c);

static void end_attempt(struct wsb_client *c)
{
	attempt_over(c);
	drop_partial_tx(c); /* first: detach_wsi() may need to keep it */
	cork_requeue(c); /* (the link went before the batch ended) */
	cork_free(c);
	detach_wsi(c);
	free(c->tx_hold);   /* no wsi any more: nobody reads it */
	c->tx_hold = NULL;
	cancel_dns(c);
	wsb_tunnel_abandon(c);
	reset_rx(c);
	c->t_connect = c->t_close = c->t_probe = c->t_dead = 0;
	c->open_gate = 0;
	c->closing_after_flush = 0;
	c->write_requested = 0;
	c->ping_pending = 0;
	c->rx_paused = 0;
	c->connected_at = 0;
	c->protocol[0] = '\0';
}

static void finish_closed_info(struct wsb_client *c, const char *cause,
			       int code, int status, char *reason)
{
	int unsent;

	end_attempt(c); /* (first: it may put batched messages back) */
	unsent = (int)(c->tx_count + c->tx_dropped);
	c->t_retry = 0;
	wsb_client_timer_arm(c);
	wsb_msg_free_list(c->tx_head);
	c->tx_head = c->tx_tail = c->tx_prio = NULL;
	c->tx_bytes = c->tx_count = 0;
	c->tx_dropped = 0;
	set_state(c, WSB_CLOSED, cause, reason, code, status, -1, unsent);
}

static void finish_closed(struct wsb_client *c, const char *cause, int code,
			  char *reason)
{
	finish_closed_info(c, cause, code, 0, reason);
}

/*
 * No lws "validity" timer: wsbeat runs its own heartbeat.  lws's default
 * policy (ping after 300 s) re-inserts a timer into one sorted list of all
 * connections on every frame received, a walk over every connection: at
 * 10,000 heartbeating connections that alone took half a core.
 */
static const lws_retry_bo_t no_validity = { 0 };

static void connect_lws(struct wsb_client *c, const char *address);

/* Give the slot of c's attempt back, or take c out of the queue. */
static void release_attempt(struct wsb_client *c)
{
	struct wsb_engine *e = c->e;

	if (c->admit_state == 2) {
		e->attempts--;
	} else if (c->admit_state == 1) {
		/* doubly linked: closing thousands of queued clients is linear */
		if (c->admit_prev)
			c->admit_prev->admit_next = c->admit_next;
		else
			e->admit_head = c->admit_next;
		if (c->admit_next)
			c->admit_next->admit_prev = c->admit_prev;
		else
			e->admit_tail = c->admit_prev;
		c->admit_next = c->admit_prev = NULL;
	}
	c->admit_state = 0;
}

/* Start queued attempts while slots are free (not re-entered: a connect
 * that fails at once releases its slot inside this loop). */
static void admit_waiting(struct wsb_engine *e)
{
	if (e->admitting || e->destroyed)
		return;
	e->admitting = 1;
	while (e->admit_head && e->attempts < WSB_MAX_ATTEMPTS) {
		struct wsb_client *c = e->admit_head;

		e->admit_head = c->admit_next;
		if (e->admit_head)
			e->admit_head->admit_prev = NULL;
		else
			e->admit_tail = NULL;
		c->admit_next = NULL;
		c->admit_state = 0;
		/* the wait did not count: connect_timeout starts now */
		c->t_connect = wsb_now(e) + c->o.connect_timeout;
		wsb_client_timer_arm(c);
		connect_lws(c, c->admit_addr);
	}
	e->admitting = 0;
}

static void attempt_over(struct wsb_client *c)
{
	int held = c->admit_state == 2;

	release_attempt(c);
	if (held)
		admit_waiting(c->e);
}

static void connect_lws(struct wsb_client *c, const char *address)
{
	struct lws_client_connect_info ci;
	struct lws_vhost *vh;
	char err[256];

	/* (admit_waiting() itself has made sure a slot is free) */
	if (!c->e->admitting &&
	    (c->e->attempts >= WSB_MAX_ATTEMPTS || c->e->admit_head)) {
		snprintf(c->admit_addr, sizeof(c->admit_addr), "%s", address);
		c->admit_state = 1;
		c->t_connect = 0;
		c->admit_prev = c->e->admit_tail;
		c->admit_next = NULL;
		if (c->e->admit_tail)
			c->e->admit_tail->admit_next = c;
		else
			c->e->admit_head = c;
		c->e->admit_tail = c;
		wsb_client_timer_arm(c);
		return;
	}
	c->admit_state = 2;
	c->e->attempts++;

	vh = wsb_vhost_for(c->e, c, err, sizeof(err));
	if (!vh) {
		lost(c, "tls", 0, 0, "TLS setup failed: %s", err);
		return;
	}
	memset(&ci, 0, sizeof(ci));
	ci.context = c->e->ctx;
	ci.vhost = vh;
	ci.address = address;
	ci.port = c->url.port;
	ci.path = c->url.path;
	ci.host = c->host_hdr;
	ci.origin = c->o.origin;
	ci.protocol = c->o.protocols;
	ci.ietf_version_or_minus_one = -1;
	ci.userdata = c;
	ci.pwsi = &c->wsi;
	ci.local_protocol_name = "wsbeat";
	ci.alpn = "http/1.1";
	ci.retry_and_idle_policy = &no_validity;
	if (c->url.tls) {
		ci.ssl_connection = LCCSCF_USE_SSL |
				    LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
		if (!c->o.verify)
			ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED |
					     LCCSCF_ALLOW_EXPIRED |
					     LCCSCF_ALLOW_INSECURE;
	}
	wsb_engine_kick(c->e);
	if (!lws_client_connect_via_info(&ci) && c->st == WSB_CONNECTING &&
	    !c->attempt_done) {
		/* lws fails some attempts synchronously without a
		 * CONNECTION_ERROR callback (the connect() itself failed) */
		c->wsi = NULL;
		lost(c, "refused", 0, 0, "connection refused (%s port %d)",
		     address, c->url.port);
	}
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
	struct wsb_dns *d = (struct wsb_dns *)req;
	struct wsb_client *c = d->c;
	char addr[INET6_ADDRSTRLEN];

	free(d);
	if (!c) {
		uv_freeaddrinfo(ai);
		return;
	}
	c->dns = NULL;
	if (status || !ai) {
		uv_freeaddrinfo(ai);
		lost(c, "dns", 0, 0, "cannot resolve '%s': %s", c->url.host,
		     status ? uv_strerror(status) : "no address");
		return;
	}
	if (ai->ai_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, addr,
			    sizeof(addr));
	else
		uv_ip4_name((struct sockaddr_in *)ai->ai_addr, addr,
			    sizeof(addr));
	uv_freeaddrinfo(ai);
	connect_lws(c, addr);
}

void wsb_client_start(struct wsb_client *c)
{
	struct addrinfo hints;
	struct wsb_dns *d;
	int r;

	if (c->st == WSB_RECONNECTING)
		set_state(c, WSB_CONNECTING, "reconnect", strdup("reconnecting"),
			  0, 0, -1, -1);
	c->t_retry = 0;
	c->attempt_done = 0;
	c->peer_close_code = 0;
	c->peer_close_reason[0] = '\0';
	c->close_sent = c->peer_closed = 0;
	c->tls_err[0] = '\0';
	c->cert_unanswered = 0;
	c->retry_after = -1;
	c->pending_cause = NULL;
	c->t_connect = wsb_now(c->e) + c->o.connect_timeout;
	wsb_client_timer_arm(c);

	if (c->px_error) {
		lost(c, "proxy", 0, 0, "%s", c->px_error);
		return;
	}
	if (c->px.kind != WSB_PROXY_NONE) {
		/* connect_timeout covers the proxy's part as well */
		wsb_tunnel_start(c);
		return;
	}
	if (wsb_is_ip_literal(c->url.host)) {
		connect_lws(c, c->url.host);
		return;
	}
	/* never block step(): resolve on libuv's thread pool */
	d = calloc(1, sizeof(*d));
	if (!d) {
		lost(c, "dns", 0, 0, "out of memory");
		return;
	}
	d->c = c;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	c->dns = d;
	r = uv_getaddrinfo(&c->e->loop, &d->req, on_resolved, c->url.host, NULL,
			   &hints);
	if (r) {
		c->dns = NULL;
		free(d);
		lost(c, "dns", 0, 0, "cannot resolve '%s': %s", c->url.host,
		     uv_strerror(r));
	}
}

/*
 * The proxy of the next attempt: p (copied; NULL = direct) or, with err,
 * the reason no proxy could be chosen (the attempt then fails with cause
 * "proxy").  Credentials are wiped when replaced.
 */
void wsb_client_set_proxy(struct wsb_client *c, const struct wsb_proxy *p)
{
	if (c->px.pass)
		memset(c->px.pass, 0, strlen(c->px.pass));
	free(c->px.user);
	free(c->px.pass);
	free(c->px_error);
	memset(&c->px, 0, sizeof(c->px));
	c->px_error = NULL;
	if (p)
		c->px = *p;
}

void wsb_client_set_proxy_error(struct wsb_client *c, const char *err)
{
	wsb_client_set_proxy(c, NULL);
	c->px_error = strdup(err);
}

/* ------------------------------------------------------ retry policy */

static int default_retry(const char *cause, int code, int status)
{
	if (!strcmp(cause, "http_status"))
		return status == 408 || status == 429 || status >= 500 ||
		       status < 400;
	if (!strcmp(cause, "closed_by_peer"))
		return code == 1000 || code == 1001 || code == 1005 ||
		       code == 1006 || (code >= 1011 && code <= 1014) ||
		       (code >= 4000 && code <= 4999);
	if (!strcmp(cause, "too_big") || !strcmp(cause, "protocol_error") ||
	    !strcmp(cause, "tls") || !strcmp(cause, "proxy_auth"))
		return 0;
	return 1;
}

static double backoff(struct wsb_client *c)
{
	double d = c->o.rc_delay * pow(c->o.rc_factor, c->attempt - 1);

	if (d > c->o.rc_max_delay || !isfinite(d))
		d = c->o.rc_max_delay;
	if (c->o.rc_jitter > 0) {
		/* OpenSSL's generator, not rand(): unseeded, rand() gave every
		 * process the same delays, which jitter exists to prevent */
		uint32_t r = 0;

		if (!wsb_random((unsigned char *)&r, sizeof(r)))
			r = (uint32_t)rand();
		d -= d * c->o.rc_jitter * ((double)r / UINT32_MAX);
	}
	if (c->retry_after > 0 && d < c->retry_after)
		d = c->retry_after;
	return d;
}

/*
 * The attempt or connection is over for a reason other than a completed
 * user close: decide between "reconnecting" and "closed".
 */
static void lost(struct wsb_client *c, const char *cause, int code,
		 int status, const char *fmt, ...)
{
	char *reason;
	va_list ap;
	double now = wsb_now(c->e);

	if (c->attempt_done || c->st == WSB_CLOSED)
		return;
	c->attempt_done = 1;
	va_start(ap, fmt);
	reason = vfmt(fmt, ap);
	va_end(ap);

	if (c->st == WSB_CLOSING) {
		/* the user asked to close: that is what happened */
		free(reason);
		finish_closed(c, "closed_by_user", c->close_code,
			      strdup("closed by user"));
		return;
	}
	if (c->opened_mono > 0 && now - c->opened_mono >= c->o.rc_min_uptime)
		c->attempt = 0;
	c->opened_mono = 0;
	c->attempt++;
	end_attempt(c);

	c->pend_cause = cause;
	c->pend_code = code;
	c->pend_status = status;
	c->pend_reason = reason;
	if (!c->o.reconnect || !c->o.rc_has_retry) {
		wsb_client_decide(c, default_retry(cause, code, status));
		return;
	}
	/* reconnect.retry(ws, info) decides, in Lua: ask through the FIFO */
	{
		struct wsb_event *ev = calloc(1, sizeof(*ev));

		if (!ev) {
			wsb_client_decide(c, default_retry(cause, code, status));
			return;
		}
		ev->kind = WSB_EV_DECIDE;
		ev->c = c;
		ev->previous = c->st;
		ev->info.cause = cause;
		ev->info.reason = strdup(reason);
		ev->info.code = code;
		ev->info.status = status;
		ev->info.attempt = c->attempt;
		ev->info.delay = -1;
		ev->info.unsent = -1;
		ev->info.retry = default_retry(cause, code, status);
		wsb_push_event(c->e, ev);
	}
}

void wsb_client_lost(struct wsb_client *c, const char *cause, int status,
		     const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	lost(c, cause, 0, status, "%s", msg);
}

/* The tunnel stands: lws connects to its local end. */
void wsb_client_tunnel_ready(struct wsb_client *c, const char *address)
{
	connect_lws(c, address);
}

/*
 * Conclude a loss: reconnect (when `retry` and attempts remain) or close.
 * Called at once with the default policy, or from Lua with the answer of
 * reconnect.retry.
 */
void wsb_client_decide(struct wsb_client *c, int retry)
{
	const char *cause = c->pend_cause;
	char *reason = c->pend_reason;
	int code = c->pend_code, status = c->pend_status;

	if (!cause)
		return; /* nothing pending (closed meanwhile) */
	c->pend_cause = NULL;
	c->pend_reason = NULL;
	if (!c->o.reconnect || !retry) {
		finish_closed_info(c, cause, code, status, reason);
		return;
	}
	if (c->attempt >= c->o.rc_max_attempts) {
		char *r2;

		if (asprintf(&r2, "gave up after %d attempts: %s", c->attempt,
			     reason) < 0)
			r2 = NULL;
		free(reason);
		finish_closed_info(c, "gave_up", code, status, r2);
		return;
	}
	{
		double delay = backoff(c);

		c->t_retry = wsb_now(c->e) + delay;
		wsb_client_timer_arm(c);
		set_state(c, WSB_RECONNECTING, cause, reason, code, status,
			  delay, -1);
	}
}

/* --------------------------------------------------------- heartbeat */

/*
 * Heartbeat deadlines snap to a grid shared by all clients (1/200 of the
 * interval, at most 25 ms late), so many connections probe in the same
 * loop turn and their pongs come back together: fewer wake-ups per probe
 * when thousands of connections heartbeat.  The probe's answer deadline
 * snaps too: with timeout = interval, an answered probe's deadline and the
 * next probe then fall on the same slot, one timer expiry per cycle.
 */
static double hb_snap(const struct wsb_client *c, double t)
{
	double slack = c->o.hb_interval / 200;

	if (slack > 0.025)
		slack = 0.025;
	return slack >= 0.001 ? ceil(t / slack) * slack : t;
}

static void hb_restart(struct wsb_client *c, double now)
{
	if (!c->o.heartbeat || c->st != WSB_OPEN)
		return;
	c->t_probe = hb_snap(c, now + c->o.hb_interval);
	c->t_dead = 0;
}

/*
 * Anything received proves the peer alive.  The deadlines move; the timer is
 * re-armed only when the new probe time comes before the armed deadline
 * (timeout > interval).  Otherwise the armed timer fires at the old one and
 * re-arms itself: one extra wake-up per interval instead of a timer update
 * per message.
 */
static void heard(struct wsb_client *c)
{
	if (c->o.heartbeat && (c->t_dead || c->t_probe)) {
		hb_restart(c, wsb_now(c->e));
		if (!c->armed_at || c->t_probe < c->armed_at)
			wsb_client_timer_arm(c);
	}
}

/*
 * Frame, mask and hand one frame to lws as raw bytes.  The payload goes to
 * p (LWS_PRE bytes of room before it), masked while copied from src (which
 * may be p).  lws's own framing reads every mask key from /dev/urandom: a
 * syscall per frame, a third of the heartbeat's.  The keys come from
 * OpenSSL's DRBG instead (userspace, seeded by the kernel), 64 at a time.
 * LWS_WRITE_RAW keeps lws's order and its buffering of a partial write.
 * Not with permessage-deflate, whose framing is lws's.  -1: link failed.
 */
static const unsigned char *mask_key(struct wsb_engine *e)
{
	if (e->masks_left < 4) {
		if (!wsb_random(e->masks, (int)sizeof(e->masks)))
			return NULL;
		e->masks_left = sizeof(e->masks);
	}
	e->masks_left -= 4;
	return e->masks + e->masks_left;
}

static int write_frame(struct wsb_client *c, struct lws *wsi, unsigned first,
		       unsigned char *p, const unsigned char *src, size_t len)
{
	const unsigned char *key = mask_key(c->e);
	unsigned char hdr[10];
	size_t hl;

	if (!key)
		return -1;
	hl = wsb_frame_header(hdr, first, len);
	wsb_mask(p, src, len, key);
	memcpy(p - 4, key, 4);
	memcpy(p - 4 - hl, hdr, hl);
	return lws_write(wsi, p - 4 - hl, hl + 4 + len, LWS_WRITE_RAW) < 0 ? -1 : 0;
}

/*
 * Write a PING at once rather than through WRITEABLE, whose request and end
 * re-register the socket with epoll (four syscalls per probe: at 10,000
 * connections and a 5 s interval that was most of the heartbeat's cost).
 * A control frame may go between the fragments of a message, so only
 * bytes lws still holds (they must go first) and a deflate drain (which
 * must not be interrupted) send it the slow way.  1 when written.
 */
static int ping_now(struct wsb_client *c, const unsigned char *payload,
		    size_t len)
{
	unsigned char buf[LWS_PRE + 125];

	if (c->st != WSB_OPEN || !c->wsi || c->o.compression ||
	    lws_partial_buffered(c->wsi))
		return 0;
	if (uncork(c) < 0)
		return 0; /* (frames written from callbacks go first) */
	if (write_frame(c, c->wsi, 0x80 | WSB_OP_PING, buf + LWS_PRE, payload,
			len) < 0)
		return 0; /* the link is going: the pending ping dies with it */
	if (lws_partial_buffered(c->wsi))
		wsb_engine_kick(c->e);
	return 1;
}

/* A probe's payload: 'W' and the send time, so its pong gives the RTT. */
static size_t stamp_payload(unsigned char *p)
{
	uint64_t t = uv_hrtime();

	p[0] = 'W';
	memcpy(p + 1, &t, 8);
	return 9;
}

static void send_probe(struct wsb_client *c, double now)
{
	c->t_probe = 0;
	c->t_dead = hb_snap(c, now + c->o.hb_timeout);
	if (!c->wsi)
		return;
	if (c->o.hb_message_mode) {
		/* an application message, sent ahead of anything queued */
		wsb_client_send_front(c, c->o.hb_message, c->o.hb_message_len, 0);
	} else {
		c->ping_len = stamp_payload(c->ping_payload);
		c->ping_is_probe = 1;
		c->ping_pending = !ping_now(c, c->ping_payload, c->ping_len);
	}
	wsb_log(c->e, WSB_LOG_DEBUG, "%s: heartbeat probe sent (%s)",
		c->url.host, c->o.hb_message_mode ? "message" : "ping");
	if (c->o.hb_message_mode || c->ping_pending)
		request_writable(c);
}

/* Is input waiting that the loop has not read yet? (stall immunity) */
static int input_waiting(struct wsb_client *c)
{
	struct pollfd pfd;

	if (!c->wsi)
		return 0;
	if (wsb_tunnel_input_waiting(c))
		return 1;
	pfd.fd = lws_get_socket_fd(c->wsi);
	pfd.events = POLLIN;
	return pfd.fd >= 0 && poll(&pfd, 1, 0) == 1 &&
	       (pfd.revents & (POLLIN | POLLHUP | POLLERR));
}

/*
 * Did bytes arrive in the last `window` seconds?  lws answers a server's
 * PING itself and tells us nothing, so a peer that floods pings (and, busy
 * with them, is slow to answer our probe) would otherwise look dead while
 * it talks.  The kernel knows when data last came (TCP_INFO); through a
 * proxy the relay does.  Bytes of anything count, as the heartbeat says.
 */
static int received_within(struct wsb_client *c, double window)
{
	struct tcp_info ti;
	socklen_t sl = sizeof(ti);
	double last;
	int fd;

	if (!c->wsi)
		return 0;
	if (c->tunnel) {
		last = wsb_tunnel_last_rx(c);
		return last > 0 && wsb_now(c->e) - last < window;
	}
	fd = lws_get_socket_fd(c->wsi);
	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl))
		return 0;
	return ti.tcpi_last_data_recv < window * 1000;
}

static void on_timer(uv_timer_t *t)
{
	struct wsb_client *c = t->data;
	double now = wsb_now(c->e) + 0.0005;

	if (c->t_connect && now >= c->t_connect &&
	    (c->st == WSB_CONNECTING)) {
		c->t_connect = 0;
		lost(c, "connect_timeout", 0, 0,
		     "connect timed out after %gs", c->o.connect_timeout);
	}
	if (c->t_close && now >= c->t_close && c->st == WSB_CLOSING) {
		c->t_close = 0;
		c->attempt_done = 1;
		finish_closed(c, "closed_by_user", c->close_code,
			      strdup("closed by user (no close answer in time)"));
	}
	if (c->t_retry && now >= c->t_retry && c->st == WSB_RECONNECTING) {
		c->t_retry = 0;
		/* the Lua side refreshes headers, then calls attempt() */
		push_simple(c, WSB_EV_ATTEMPT, NULL);
	}
	if (c->rx_paused && (c->t_dead || c->t_probe) &&
	    ((c->t_dead && now >= c->t_dead) ||
	     (c->t_probe && now >= c->t_probe))) {
		/* input held back by flow control counts as received: a full
		 * max_queue never makes a peer look dead */
		hb_restart(c, now);
	}
	if (c->t_dead && now >= c->t_dead && c->st == WSB_OPEN) {
		if (input_waiting(c)) {
			/* read what arrived first; judge again right after */
			c->t_dead = now + 0.002;
		} else if (received_within(c, c->o.hb_timeout)) {
			/* something came after the probe: alive */
			hb_restart(c, now);
		} else {
			c->t_dead = 0;
			lost(c, "heartbeat_timeout", 1006, 0,
			     "heartbeat timeout (nothing received for %gs)",
			     c->o.hb_interval + c->o.hb_timeout);
		}
	}
	/* (no input_waiting() check here: a probe sent while a frame waits
	 * is harmless, and a syscall per probe adds up over many clients) */
	if (c->t_probe && now >= c->t_probe && c->st == WSB_OPEN)
		send_probe(c, now);
	wsb_client_timer_arm(c);
}

/* ------------------------------------------------------------ sending */

static struct wsb_msg *new_out(const char *data, size_t len, int binary)
{
	struct wsb_msg *m = malloc(sizeof(*m) + LWS_PRE + len);

	if (!m)
		return NULL;
	m->next = NULL;
	m->len = len;
	m->off = 0;
	m->binary = binary;
	m->data = m->buf + LWS_PRE;
	if (data && len)
		memcpy(m->data, data, len);
	return m;
}

/* Ask lws for WRITEABLE once: every request costs an epoll_ctl under libuv. */
static void request_writable(struct wsb_client *c)
{
	if (c->wsi && !c->write_requested) {
		c->write_requested = 1;
		lws_callback_on_writable(c->wsi);
		wsb_engine_kick(c->e);
	}
}

static void want_write(struct wsb_client *c)
{
	if (c->st >= WSB_OPEN && !c->open_gate)
		request_writable(c);
}

/* Queue ahead of everything not yet started (heartbeat messages). */
void wsb_client_send_front(struct wsb_client *c, const char *data, size_t len,
			   int binary)
{
	struct wsb_msg *m = new_out(data, len, binary), **pp = &c->tx_head;

	if (!m)
		return;
	if (c->tx_started && *pp)
		pp = &(*pp)->next;
	m->next = *pp;
	*pp = m;
	if (!m->next)
		c->tx_tail = m;
	c->tx_bytes += len;
	c->tx_count++;
}

/* ------------------------------------------------------------ corking */

/*
 * Messages sent from callbacks while the Lua layer delivers a batch of
 * events (the engine is "corking") are framed into a per-client buffer and
 * leave in one lws_write() when the batch is delivered: over TLS one record
 * and one send() for the batch instead of one of each per message, which
 * is what a small echo costs most (docs/BENCHMARKS.md, step 14).  The
 * buffer is flushed before anything else writes on the link (a ping, the
 * close, the send queue), so order on the wire is the order of the calls.
 */
#define CORK_MAX 16384 /* one TLS record's worth of plaintext */
#define CORK_KEEP 4096 /* a buffer kept between batches at most this big */

/*
 * The link failed under corked frames that send() had already accepted:
 * unmask them back into messages at the front of the send queue, where a
 * message that could not be written at once would have gone, so that they
 * leave on the next connection.  Our own frames only: data frames with
 * 2- or 4-byte headers (DIRECT_MAX < 65536; PINGs are never corked).
 */
static void cork_requeue(struct wsb_client *c)
{
	unsigned char *p = c->cork, *end = c->cork + c->cork_len;
	struct wsb_msg *head = NULL, **tail = &head, *last = NULL;

	if (!c->cork_len)
		return;
	while (p < end) {
		unsigned op = p[0] & 0x0f;
		size_t len = p[1] & 0x7f, hl = 2;
		struct wsb_msg *m;

		if (len == 126) {
			len = (size_t)p[2] << 8 | p[3];
			hl = 4;
		}
		m = new_out(NULL, len, op == WSB_OP_BINARY);
		if (m) {
			wsb_mask(m->data, p + hl + 4, len, p + hl);
			*tail = last = m;
			tail = &m->next;
			c->tx_bytes += len;
			c->tx_count++;
		} else {
			c->tx_dropped++; /* out of memory: counted as unsent */
		}
		p += hl + 4 + len;
	}
	if (head) {
		last->next = c->tx_head;
		c->tx_head = head;
		if (!c->tx_tail)
			c->tx_tail = last;
	}
	c->cork_len = c->cork_msgs = c->cork_bytes = 0;
}

static void cork_free(struct wsb_client *c)
{
	free(c->cork);
	c->cork = NULL;
	c->cork_cap = 0;
}

/* Write the corked frames: 0, or -1 when the link is broken (the frames
 * are back in the send queue and lws is told to close the link). */
static int uncork(struct wsb_client *c)
{
	if (!c->cork_len)
		return 0;
	if (!c->wsi ||
	    lws_write(c->wsi, c->cork, c->cork_len, LWS_WRITE_RAW) < 0) {
		wsb_log(c->e, WSB_LOG_INFO, "%s: the link failed under %zu "
			"message(s) sent from callbacks: kept for the next "
			"connection", c->url.host, c->cork_msgs);
		cork_requeue(c);
		if (c->wsi) {
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
					LWS_TO_KILL_ASYNC);
			wsb_engine_kick(c->e);
		}
		return -1;
	}
	c->msgs_sent += c->cork_msgs;
	c->bytes_sent += c->cork_bytes;
	c->cork_len = c->cork_msgs = c->cork_bytes = 0;
	if (c->cork_cap > CORK_KEEP)
		cork_free(c); /* a big batch: give the memory back */
	if (lws_partial_buffered(c->wsi))
		wsb_engine_kick(c->e);
	return 0;
}

/* The batch is delivered: write every client's corked frames. */
void wsb_engine_uncork(struct wsb_engine *e)
{
	e->corking = 0;
	while (e->corked) {
		struct wsb_client *c = e->corked;

		e->corked = c->cork_next;
		c->cork_next = NULL;
		c->cork_listed = 0;
		uncork(c);
	}
}

/* Frame a message into the cork; 1 when taken, 0 when it must be queued. */
static int cork_add(struct wsb_client *c, unsigned first,
		    const unsigned char *src, size_t len)
{
	size_t need = 14 + len;
	const unsigned char *key;

	if (c->cork_len && c->cork_len + need > CORK_MAX &&
	    (uncork(c) < 0 || lws_partial_buffered(c->wsi)))
		return 0;
	if (c->cork_cap < c->cork_len + need) {
		size_t cap = c->cork_cap ? c->cork_cap : 512;
		unsigned char *b;

		while (cap < c->cork_len + need)
			cap *= 2;
		if (cap > CORK_MAX + 14)
			cap = CORK_MAX + 14; /* (the most a batch can hold) */
		b = realloc(c->cork, cap);
		if (!b)
			return 0;
		c->cork = b;
		c->cork_cap = cap;
	}
	key = mask_key(c->e);
	if (!key)
		return 0;
	c->cork_len += wsb_frame_header(c->cork + c->cork_len, first, len);
	memcpy(c->cork + c->cork_len, key, 4);
	wsb_mask(c->cork + c->cork_len + 4, src, len, key);
	c->cork_len += 4 + len;
	c->cork_msgs++;
	c->cork_bytes += len;
	if (!c->cork_listed) {
		c->cork_listed = 1;
		c->cork_next = c->e->corked;
		c->e->corked = c;
	}
	return 1;
}

/*
 * The fast path for a small message on an idle open link: write it at once
 * instead of queueing it and asking for WRITEABLE.  Under libuv every
 * WRITEABLE request and its end re-register the socket (four epoll_ctl
 * calls) and an API call outside step() must wake the loop (an eventfd
 * write and read): that was two thirds of the syscalls of a round trip.
 * Not with permessage-deflate (its drain needs the WRITEABLE discipline),
 * not while lws still holds unsent bytes (they must go first and would
 * grow without the send_buffer bound), not from inside lws's service.
 * Returns 1 when the message is gone to lws.
 */
static int send_now(struct wsb_client *c, const char *data, size_t len,
		    int binary)
{
	unsigned char buf[LWS_PRE + DIRECT_MAX];

	if (c->st != WSB_OPEN || !c->wsi || c->open_gate || c->tx_head ||
	    c->o.compression || len > DIRECT_MAX || c->e->in_service ||
	    lws_partial_buffered(c->wsi))
		return 0;
	if (c->e->corking)
		return cork_add(c, 0x80 | (binary ? WSB_OP_BINARY : WSB_OP_TEXT),
				(const unsigned char *)data, len);
	if (write_frame(c, c->wsi, 0x80 | (binary ? WSB_OP_BINARY : WSB_OP_TEXT),
			buf + LWS_PRE, (const unsigned char *)data, len) < 0) {
		/* nothing went out (lws reports partial writes as complete
		 * and keeps the rest): the link is broken; let lws close it
		 * and keep the message for the next connection */
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
				LWS_TO_KILL_ASYNC);
		wsb_engine_kick(c->e);
		return 0;
	}
	c->msgs_sent++;
	c->bytes_sent += len;
	/* lws keeps what the kernel did not take and asks for POLLOUT,
	 * which libuv applies only inside uv_run: wake the loop */
	if (lws_partial_buffered(c->wsi))
		wsb_engine_kick(c->e);
	return 1;
}

/* 0 ok; -1 buffer full; -2 closed; -3 out of memory */
int wsb_client_send(struct wsb_client *c, const char *data, size_t len,
		    int binary)
{
	struct wsb_msg *m;

	if (c->st >= WSB_CLOSING)
		return -2;
	/* One message larger than send_buffer may go when nothing waits on
	 * an open link, so big sends work with the default limit. */
	if (c->tx_bytes + len > c->o.send_buffer &&
	    !(c->tx_count == 0 && c->st == WSB_OPEN))
		return -1;
	if (send_now(c, data, len, binary))
		return 0;
	m = new_out(data, len, binary);
	if (!m)
		return -3;
	if (c->open_gate) {
		/* inside on_state(ws, "open"): ahead of the buffered ones */
		struct wsb_msg **pp = c->tx_prio ? &c->tx_prio->next : &c->tx_head;

		m->next = *pp;
		*pp = m;
		if (!m->next)
			c->tx_tail = m;
		c->tx_prio = m;
	} else {
		if (c->tx_tail)
			c->tx_tail->next = m;
		else
			c->tx_head = m;
		c->tx_tail = m;
	}
	c->tx_bytes += len;
	c->tx_count++;
	want_write(c);
	return 0;
}

int wsb_client_ping(struct wsb_client *c, const char *data, size_t len)
{
	unsigned char stamp[9];

	if (c->st != WSB_OPEN || !c->wsi)
		return -1;
	if (len == 0) {
		/* no payload of the caller's: time it like a probe */
		len = stamp_payload(stamp);
		data = (const char *)stamp;
	} else {
		/* the caller's payload: its pong is recognised by content */
		memcpy(c->uping, data, len);
		c->uping_len = len;
		c->uping_t = uv_hrtime();
	}
	if (!c->e->in_service && !c->ping_pending &&
	    ping_now(c, (const unsigned char *)data, len))
		return 0;
	memcpy(c->ping_payload, data, len);
	c->ping_len = len;
	c->ping_pending = 1;
	c->ping_is_probe = 0;
	request_writable(c);
	return 0;
}

/* The Lua side has delivered on_state(ws, "open"): release the queue. */
void wsb_client_opened(struct wsb_client *c)
{
	if (!c->open_gate)
		return;
	c->open_gate = 0;
	c->tx_prio = NULL;
	if (c->tx_head || c->ping_pending)
		want_write(c);
}

/*
 * Send our close frame ourselves, as raw bytes, instead of asking lws to
 * close: lws would then wait for the answer in a state in which it drops
 * every data frame, so the messages the server sent before it saw our
 * close (the reply to our last request) would be lost.  lws stays in its
 * open state, keeps delivering, and the server's close frame ends the link
 * (WS_PEER_INITIATED_CLOSE answers -1 once ours is sent).  When the server
 * closed first, lws echoes its close and ours is not sent.
 */
static void start_close(struct wsb_client *c)
{
	unsigned char buf[LWS_PRE + 125], payload[125];
	struct lws *wsi = c->wsi;

	if (!wsi || c->close_sent || c->peer_closed)
		return;
	if (uncork(c) < 0)
		return; /* the link is going: close_timeout ends the wait */
	payload[0] = (unsigned char)(c->close_code >> 8);
	payload[1] = (unsigned char)(c->close_code & 0xff);
	memcpy(payload + 2, c->close_reason, c->close_reason_len);
	c->close_sent = 1;
	if (write_frame(c, wsi, 0x80 | WSB_OP_CLOSE, buf + LWS_PRE, payload,
			2 + c->close_reason_len) < 0)
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	wsb_engine_kick(c->e);
}

void wsb_client_close(struct wsb_client *c, int code, const char *reason,
		      size_t len)
{
	if (c->st == WSB_CLOSED || c->st == WSB_CLOSING)
		return;
	uncork(c); /* what the callbacks sent goes before the close */
	if (len > sizeof(c->close_reason) - 1)
		len = sizeof(c->close_reason) - 1;
	c->close_code = code;
	memcpy(c->close_reason, reason, len);
	c->close_reason[len] = '\0';
	c->close_reason_len = len;
	if (c->pend_cause) {
		free(c->pend_reason);
		c->pend_reason = NULL;
		c->pend_cause = NULL;
		}
	if (c->st != WSB_OPEN || !c->wsi) {
		/* nothing to hand-shake with */
		c->attempt_done = 1;
		finish_closed(c, "closed_by_user", code,
			      strdup("closed by user"));
		return;
	}
	set_state(c, WSB_CLOSING, "closed_by_user", strdup("closed by user"),
		  code, 0, -1, -1);
	c->t_probe = c->t_dead = 0;
	c->t_close = wsb_now(c->e) + c->o.close_timeout;
	wsb_client_timer_arm(c);
	c->open_gate = 0;
	if (c->tx_head || c->tx_hold) {
		/* (after a deflate drain too: the next WRITEABLE) */
		c->closing_after_flush = 1;
		request_writable(c);
	} else if (c->e->in_service) {
		wsb_defer(c, WSB_DEF_CLOSE);
	} else {
		start_close(c);
	}
}

static int on_writeable(struct wsb_client *c, struct lws *wsi)
{
	size_t budget = 4 * TX_CHUNK; /* fairness between connections */
	/*
	 * With permessage-deflate, an lws_write() whose deflated output does
	 * not fit lws's 1 KiB tx buffer returns "all sent" but keeps pointing
	 * into our buffer and drains it on later POLLOUTs, without calling
	 * WRITEABLE meanwhile.  So: one write per callback, and a finished
	 * message is held (tx_hold) until the next WRITEABLE proves the drain
	 * is over.  Freeing it early corrupted frames and writing again during
	 * a drain tripped an assertion in lws (found by Autobahn 12.2.x).
	 */
	int compressed = c->o.compression;

	c->write_requested = 0;
	free(c->tx_hold);
	c->tx_hold = NULL;
	if (uncork(c) < 0)
		return 0; /* (lws is closing the link) */
	if (c->ping_pending) {
		unsigned char buf[LWS_PRE + 125];

		c->ping_pending = 0;
		if (compressed) {
			memcpy(buf + LWS_PRE, c->ping_payload, c->ping_len);
			if (lws_write(wsi, buf + LWS_PRE, c->ping_len,
				      LWS_WRITE_PING) < 0)
				return -1;
		} else if (write_frame(c, wsi, 0x80 | WSB_OP_PING, buf + LWS_PRE,
				       c->ping_payload, c->ping_len) < 0) {
			return -1;
		}
	}
	/* lws_send_pipe_choked() polls the socket: ask once, then rely on
	 * lws_partial_buffered(), which turns on when the kernel took less */
	if (c->tx_head && lws_send_pipe_choked(wsi))
		budget = 0;
	while (c->tx_head && !c->open_gate && budget && !lws_partial_buffered(wsi)) {
		struct wsb_msg *m = c->tx_head;
		size_t n = m->len - m->off;
		int first = m->off == 0, final = 1;
		int flags;

		if (n > TX_CHUNK) {
			n = TX_CHUNK;
			final = 0;
		}
		if (compressed) {
			flags = lws_write_ws_flags(m->binary ? LWS_WRITE_BINARY :
							       LWS_WRITE_TEXT,
						   first, final);
			if (lws_write(wsi, m->data + m->off, n,
				      (enum lws_write_protocol)flags) < (int)n)
				return -1;
		} else {
			unsigned op = !first ? WSB_OP_CONTINUATION :
				      m->binary ? WSB_OP_BINARY : WSB_OP_TEXT;

			/* masked in place: a message cut short is dropped,
			 * never resent (drop_partial_tx) */
			if (write_frame(c, wsi, (final ? 0x80 : 0) | op,
					m->data + m->off, m->data + m->off,
					n) < 0)
				return -1;
		}
		m->off += n;
		budget = budget > n + 64 ? budget - n - 64 : 0;
		if (compressed)
			budget = 0;
		c->tx_started = !final;
		if (!final)
			continue;
		c->tx_head = m->next;
		if (!c->tx_head)
			c->tx_tail = NULL;
		c->tx_bytes -= m->len;
		c->tx_count--;
		c->msgs_sent++;
		c->bytes_sent += m->len;
		if (compressed)
			c->tx_hold = m;
		else
			free(m);
	}
	if (c->tx_head || c->ping_pending || (c->closing_after_flush && c->tx_hold)) {
		/* (a close waits for a deflate drain too: the next WRITEABLE) */
		request_writable(c);
	} else if (c->closing_after_flush) {
		c->closing_after_flush = 0;
		wsb_defer(c, WSB_DEF_CLOSE);
	}
	return 0;
}

/* ---------------------------------------------------------- receiving */

static void on_receive(struct wsb_client *c, struct lws *wsi,
		       const unsigned char *in, size_t len)
{
	struct wsb_msg *m;

	heard(c);
	c->bytes_recv += len;
	if (!c->rx_in_msg) {
		c->rx_in_msg = 1;
		c->rx_binary = lws_frame_is_binary(wsi);
		c->rx_len = 0;
	}
	if (!c->rx_too_big) {
		if (c->rx_len + len > c->o.max_message_size) {
			c->rx_too_big = 1;
			c->close_code = 1009;
			strcpy(c->close_reason, "message too big");
			c->close_reason_len = strlen(c->close_reason);
			c->pending_cause = "too_big";
			wsb_defer(c, WSB_DEF_CLOSE);
		} else {
			if (c->rx_len + len > c->rx_cap) {
				size_t cap = c->rx_cap ? c->rx_cap : 4096;
				unsigned char *nb;

				while (cap < c->rx_len + len)
					cap *= 2;
				if (cap > c->o.max_message_size)
					cap = c->o.max_message_size;
				nb = realloc(c->rx_buf, cap);
				if (!nb) {
					c->rx_too_big = 1;
					return;
				}
				c->rx_buf = nb;
				c->rx_cap = cap;
			}
			if (len) /* an empty frame has no buffer yet */
				memcpy(c->rx_buf + c->rx_len, in, len);
			c->rx_len += len;
		}
	}
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return;
	c->rx_in_msg = 0;
	if (c->rx_too_big)
		return;
	m = malloc(sizeof(*m) + c->rx_len);
	if (!m)
		return;
	m->next = NULL;
	m->len = c->rx_len;
	m->off = 0;
	m->binary = c->rx_binary;
	m->data = m->buf;
	if (c->rx_len)
		memcpy(m->buf, c->rx_buf, c->rx_len);
	c->rx_len = 0;
	if (c->rx_cap > 65536) { /* don't keep a huge buffer per client */
		free(c->rx_buf);
		c->rx_buf = NULL;
		c->rx_cap = 0;
	}
	c->msgs_recv++;
	if (c->has_on_message) {
		push_simple(c, WSB_EV_MESSAGE, m);
		return;
	}
	if (c->rq_tail)
		c->rq_tail->next = m;
	else
		c->rq_head = m;
	c->rq_tail = m;
	c->rq_count++;
	c->e->news++;
	if (c->rq_count >= c->o.max_queue && !c->rx_paused)
		/* never from inside RECEIVE: lws bug over TLS (DESIGN.md) */
		wsb_defer(c, WSB_DEF_RXPAUSE);
}

/* receive() took a message: resume reading when there is room again. */
void wsb_client_rx_taken(struct wsb_client *c)
{
	if (c->rx_paused && c->rq_count < c->o.max_queue && c->wsi) {
		c->rx_paused = 0;
		lws_rx_flow_control(c->wsi, 1);
		wsb_engine_kick(c->e);
		/* what was held back was "received": restart the cycle */
		hb_restart(c, wsb_now(c->e));
		wsb_client_timer_arm(c);
	}
}

void wsb_client_do_deferred(struct wsb_client *c, unsigned what)
{
	if ((what & WSB_DEF_RXPAUSE) && c->wsi && !c->rx_paused &&
	    c->rq_count >= c->o.max_queue) {
		c->rx_paused = 1;
		lws_rx_flow_control(c->wsi, 0);
	}
	if (what & WSB_DEF_CLOSE)
		start_close(c);
}

/* --------------------------------------------------- lws -> state machine */

static void on_established(struct wsb_client *c, struct lws *wsi)
{
	double now = wsb_now(c->e);

	attempt_over(c);
	c->t_connect = 0;
	c->connected_at = (double)time(NULL);
	c->opened_mono = now;
	if (c->opened_once)
		c->reconnects++;
	c->opened_once = 1;
	c->open_gate = 1;
	set_state(c, WSB_OPEN, "connected", strdup("connected"), 0, 0, -1, -1);
	hb_restart(c, now);
	wsb_client_timer_arm(c);
}

/*
 * With TLS 1.3 a server that requires a client certificate finishes the
 * handshake, then sends "certificate required" and resets the link; the
 * reset usually destroys the alert.  That the server asked and we had no
 * certificate is known from the handshake, so say that.
 */
static void lost_no_cert(struct wsb_client *c)
{
	lost(c, "tls", 0, 0, "the server requires a client certificate and "
	     "none is configured (tls.cert_file); it closed the connection");
}

static void on_conn_error(struct wsb_client *c, struct lws *wsi,
			  const char *msg)
{
	int status = lws_http_client_http_response(wsi);
	int fd = lws_get_socket_fd(wsi), soerr = 0;
	const char *alert;
	socklen_t sl = sizeof(soerr);
	char ra[32];

	/* lws does not say why a TCP connect failed; the socket does */
	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
		soerr = 0;

	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	if (!msg)
		msg = "unknown error";
	if (status && status != 101) {
		if (lws_hdr_copy(wsi, ra, sizeof(ra),
				 WSI_TOKEN_HTTP_RETRY_AFTER) > 0)
			c->retry_after = atoi(ra);
		lost(c, "http_status", 0, status,
		     "handshake failed: HTTP %d", status);
	} else if (c->tls_err[0]) {
		lost(c, "tls", 0, 0, "TLS handshake failed: %s", c->tls_err);
	} else if (c->url.tls && (alert = wsb_tls_alert(lws_get_ssl(wsi)))) {
		lost(c, "tls", 0, 0, "TLS alert from the server: %s", alert);
	} else if (c->url.tls && (c->cert_unanswered ||
				  wsb_tls_cert_unanswered(lws_get_ssl(wsi)))) {
		lost_no_cert(c);
	} else if (!strncmp(msg, "connect SSL", 11) ||
		   !strncmp(msg, "tls", 3) || strstr(msg, "cert")) {
		lost(c, "tls", 0, 0, "TLS handshake failed: %s", msg);
	} else if (soerr == ECONNREFUSED || !strcmp(msg, "Unable to connect")) {
		lost(c, "refused", 0, 0, "connection refused");
	} else if (soerr) {
		lost(c, "network", 0, 0, "connection failed: %s", strerror(soerr));
	} else if (!strcmp(msg, "HS: URI missing")) {
		/* (lws's words for a head that ended without a status line) */
		lost(c, "handshake", 0, 0,
		     "handshake failed: no HTTP status line in the response");
	} else if (!strncmp(msg, "HS: ", 4)) {
		lost(c, "handshake", 0, 0, "handshake failed: %s", msg + 4);
	} else if (!strcmp(msg, "problems parsing header")) {
		lost(c, "handshake", 0, 0,
		     "handshake failed: invalid or oversized HTTP response");
	} else {
		lost(c, "network", 0, 0, "connection failed: %s", msg);
	}
}

/* A pong of a probe or of ws:ping() gives the round-trip time. */
static void on_pong(struct wsb_client *c, const unsigned char *in, size_t len)
{
	uint64_t t = 0, now = uv_hrtime();

	if (len == 9 && in[0] == 'W') {
		memcpy(&t, in + 1, 8);
	} else if (c->uping_len && len == c->uping_len &&
		   !memcmp(in, c->uping, len)) {
		t = c->uping_t;
		c->uping_len = 0;
	}
	if (!t || t > now)
		return;
	c->rtt = (double)(now - t) / 1e9;
	wsb_log(c->e, WSB_LOG_DEBUG, "%s: pong, rtt %.3f ms", c->url.host,
		c->rtt * 1000);
}

/*
 * lws 4.1.6 drops the link without a close frame for some violations (RSV
 * bits, reserved opcodes, fragmented or oversized control frames), so the
 * server would see 1006.  The socket is still open during CLIENT_CLOSED:
 * send the 1002 close frame lws did not, masked as a client's must be.
 */
static int send_protocol_close(struct wsb_client *c, struct lws *wsi)
{
	static const unsigned char code[2] = { 0x03, 0xea }; /* 1002 */
	const unsigned char *key = mask_key(c->e);
	unsigned char f[8];
	int fd = lws_get_socket_fd(wsi);

	if (fd < 0 || !key)
		return 0;
	wsb_frame_header(f, 0x88, sizeof(code)); /* FIN | close: 2 bytes */
	memcpy(f + 2, key, 4);
	wsb_mask(f + 6, code, sizeof(code), key);
	if (lws_is_ssl(wsi))
		wsb_tls_write_last(lws_get_ssl(wsi), f, sizeof(f));
	else if (send(fd, f, sizeof(f), MSG_NOSIGNAL | MSG_DONTWAIT) !=
		 (ssize_t)sizeof(f))
		return 0;
	return 1;
}

/*
 * Read and drop what the server sent after the close (its PING, the rest
 * of a message) before lws closes the socket, which it does at once as a
 * client: closing a TCP socket with unread input makes the kernel send RST
 * and discard what it has not sent yet, which can be the end of our last
 * message and our close frame (Autobahn 7.1.6 over wss: the server saw
 * 112 KiB of a 256 KiB echo, then a reset).  Bounded: a peer that keeps
 * sending gets the reset.
 */
static void drain_input(struct lws *wsi)
{
	char buf[16384];
	int fd = lws_get_socket_fd(wsi);

	for (int i = 0; fd >= 0 && i < 64; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break;
}

static void on_closed(struct wsb_client *c, struct lws *wsi)
{
	int code = c->peer_close_code;
	int sent = 0;

	/*
	 * Neither we nor the peer started the close: lws did, because the
	 * server broke the protocol, or the link died.  lws keeps the close
	 * payload it sent in the buffer lws_get_close_payload() reads, but
	 * masked in place by the send; the 4-byte mask key sits right before
	 * it (client frames are always masked).  A socket with no FIN or RST
	 * pending means lws dropped a live peer: a protocol error as well.
	 */
	if (!code && c->st != WSB_CLOSING && !c->pending_cause) {
		if (lws_get_close_length(wsi) >= 2) {
			const unsigned char *p = lws_get_close_payload(wsi);
			int v = (p[0] ^ p[-4]) << 8 | (p[1] ^ p[-3]);

			sent = v >= 1000 && v < 5000 ? v : 1002;
		} else {
			char b;
			int fd = lws_get_socket_fd(wsi);

			if (fd >= 0 && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
			    (errno == EAGAIN || errno == EWOULDBLOCK))
				/* dropped without a close frame: send it */
				sent = send_protocol_close(c, wsi) ? 1002 : -1;
		}
	}
	drain_input(wsi);
	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	free(c->tx_hold); /* the wsi is closing: lws drains nothing more */
	c->tx_hold = NULL;
	if (c->st == WSB_CLOSING) {
		c->attempt_done = 1;
		finish_closed(c, "closed_by_user", c->close_code,
			      strdup("closed by user"));
	} else if (c->pending_cause) {
		lost(c, c->pending_cause, c->close_code, 0, "%s (%d %s)",
		     !strcmp(c->pending_cause, "too_big") ?
			     "incoming message too big" : "protocol error",
		     c->close_code, close_code_name(c->close_code));
	} else if (sent > 0) {
		lost(c, "protocol_error", sent, 0,
		     "protocol error by the server (closed with %d %s)", sent,
		     close_code_name(sent));
	} else if (sent < 0) {
		lost(c, "protocol_error", 0, 0,
		     "protocol error by the server (connection dropped)");
	} else if (code) {
		lost(c, "closed_by_peer", code, 0, "server closed (%d %s%s%s)",
		     code, close_code_name(code),
		     c->peer_close_reason[0] ? ": " : "",
		     c->peer_close_reason);
	} else {
		lost(c, "connection_lost", 1006, 0,
		     "connection lost (1006 abnormal closure)");
	}
}

int wsb_lws_callback(struct lws *wsi, enum lws_callback_reasons reason,
		     void *user, void *in, size_t len)
{
	struct wsb_client *c = user;

	if (reason == LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION)
		return wsb_tls_verify(wsi, user, (int)len);
	if (!c)
		return 0;
	if (c->magic == WSB_TOMB_MAGIC) {
		if (reason == LWS_CALLBACK_WSI_DESTROY) {
			struct wsb_tomb *t = user;

			lws_set_wsi_user(wsi, NULL);
			free(t->hold);
			free(t);
		}
		return 0;
	}

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		unsigned char **p = (unsigned char **)in, *end = *p + len;
		const char *h = c->headers;

		/* the TLS handshake is over here and the SSL may be gone by the
		 * time a rejected link is noticed: take note now */
		if (c->url.tls)
			c->cert_unanswered =
				wsb_tls_cert_unanswered(lws_get_ssl(wsi));

		while (h && h < c->headers + c->headers_len) {
			const char *v = h + strlen(h) + 1;

			if (lws_add_http_header_by_name(wsi,
					(const unsigned char *)h,
					(const unsigned char *)v,
					(int)strlen(v), p, end))
				return -1;
			h = v + strlen(v) + 1;
		}
		return 0;
	}
	case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
		/* the response headers are gone by ESTABLISHED */
		if (lws_hdr_copy(wsi, c->protocol, sizeof(c->protocol),
				 WSI_TOKEN_PROTOCOL) < 0)
			c->protocol[0] = '\0';
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (c->st != WSB_CONNECTING)
			return -1;
		c->wsi = wsi;
		on_established(c, wsi);
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		on_conn_error(c, wsi, in ? (const char *)in : NULL);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		on_receive(c, wsi, in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
		heard(c);
		on_pong(c, in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(c, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
		const unsigned char *b = in;

		heard(c);
		if (c->close_sent)
			return -1; /* the answer to ours (start_close): done */
		c->peer_closed = 1; /* lws echoes it: ours is not sent */
		c->peer_close_code = len >= 2 ? (b[0] << 8 | b[1]) : 1005;
		if (len > 2) {
			size_t n = len - 2;

			if (n > sizeof(c->peer_close_reason) - 1)
				n = sizeof(c->peer_close_reason) - 1;
			memcpy(c->peer_close_reason, b + 2, n);
			c->peer_close_reason[n] = '\0';
		}
		return 0;
	}
	case LWS_CALLBACK_CLIENT_CLOSED:
		on_closed(c, wsi);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		if (c->wsi == wsi) {
			/* destroyed without CLOSED or CONNECTION_ERROR: lws
			 * does that when the link breaks while it waits for
			 * the upgrade response */
			c->wsi = NULL;
			if (c->st == WSB_CONNECTING && c->cert_unanswered)
				lost_no_cert(c);
			else
				lost(c, "network", 0, 0,
				     c->st == WSB_CONNECTING ?
				     "connection failed: closed during the opening handshake" :
				     "connection lost");
		}
		return 0;
	default:
		return 0;
	}
}

/* ----------------------------------------------------------- teardown */

static void on_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

void wsb_client_free(struct wsb_client *c)
{
	struct wsb_engine *e = c->e;
	struct wsb_client **pp;

	e->gone_msgs_sent += c->msgs_sent;
	e->gone_msgs_recv += c->msgs_recv;
	e->gone_bytes_sent += c->bytes_sent;
	e->gone_bytes_recv += c->bytes_recv;
	e->gone_reconnects += c->reconnects;
	if (c->st != WSB_CLOSED)
		e->live--;

	for (pp = &e->deferred; *pp; pp = &(*pp)->def_next)
		if (*pp == c) {
			*pp = c->def_next;
			break;
		}
	for (pp = &e->corked; c->cork_listed && *pp; pp = &(*pp)->cork_next)
		if (*pp == c) {
			*pp = c->cork_next;
			break;
		}
	if (c->prev)
		c->prev->next = c->next;
	else
		e->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;

	attempt_over(c);
	detach_wsi(c);
	cancel_dns(c);
	wsb_tunnel_abandon(c);
	reset_rx(c);
	wsb_msg_free_list(c->tx_head);
	wsb_msg_free_list(c->rq_head);
	free(c->tx_hold);
	free(c->cork);
	free(c->headers);
	free(c->pend_reason);
	free(c->o.ca_file);
	free(c->o.ca_path);
	free(c->o.cert_file);
	free(c->o.key_file);
	free(c->o.server_name);
	free(c->o.protocols);
	free(c->o.origin);
	free(c->o.hb_message);
	wsb_client_set_proxy(c, NULL);
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
