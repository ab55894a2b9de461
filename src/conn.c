/*
 * The life of one client connection: its state and the events that tell
 * Lua about it, the end of an attempt (lost: reconnect or close), the
 * close handshake, deferred work and teardown.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"
#include "conn.h"

static char *vfmt(const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	return strdup(buf);
}

/* The one place the real state changes: keeps the engine's live count. */
static void wsb_set_st(struct wsb_client *c, enum wsb_state st)
{
	if (c->st != WSB_CLOSED && st == WSB_CLOSED) {
		c->e->live--;
		if (c->server_role)
			wsb_server_conn_closed(c);
	}
	c->st = st;
}

void wsb_set_state(struct wsb_client *c, enum wsb_state st,
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

void wsb_push_simple(struct wsb_client *c, enum wsb_ev_kind kind,
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

const char *const wsb_state_names[] = {
	"connecting", "open", "reconnecting", "closing", "closed"
};

/* Free every message of q; q is empty after. */
void wsb_msgq_free(struct wsb_msgq *q)
{
	struct wsb_msg *m;

	while ((m = STAILQ_FIRST(q))) {
		STAILQ_REMOVE_HEAD(q, link);
		wsb_msg_free(m);
	}
}

void wsb_end_attempt(struct wsb_client *c)
{
	wsb_attempt_over(c);
	wsb_tx_drop_partial(c); /* first: wsb_detach_wsi() may need to keep it */
	wsb_cork_requeue(c); /* (the link went before the batch ended) */
	wsb_cork_free(c);
	wsb_detach_wsi(c);
	wsb_cancel_dns(c);
	wsb_tunnel_abandon(c);
	wsb_rx_reset(c);
	wsb_opening_free(c);
	wsb_tlsio_free(c);
	if (!c->server_role) { /* (the next attempt reads afresh) */
		wsb_wsrx_free(c);
		c->tx.zsend = 0;
	}
	c->at.t_connect = c->close.t_close = c->hb.t_probe = c->hb.t_dead = 0;
	c->tx.open_gate = 0;
	c->tx.close_after_flush = 0;
	c->tx.write_requested = 0;
	c->tx.ping_pending = 0;
	c->tx.pong_pending = 0;
	c->rx.paused = 0;
	c->connected_at = 0;
	c->protocol[0] = '\0';
}

static void finish_closed_info(struct wsb_client *c, const char *cause,
			       int code, int status, char *reason)
{
	int unsent;

	wsb_end_attempt(c); /* (first: it may put batched messages back) */
	unsent = (int)(c->tx.count + c->tx.dropped);
	c->t_retry = 0;
	wsb_client_timer_arm(c);
	wsb_msgq_free(&c->tx.q);
	c->tx.prio = NULL;
	c->tx.bytes = c->tx.count = 0;
	c->tx.dropped = 0;
	wsb_set_state(c, WSB_CLOSED, cause, reason, code, status, -1, unsent);
}

void wsb_finish_closed(struct wsb_client *c, const char *cause, int code,
			  char *reason)
{
	finish_closed_info(c, cause, code, 0, reason);
}

/*
 * The attempt or connection is over for a reason other than a completed
 * user close: decide between "reconnecting" and "closed".
 */
void wsb_vlost(struct wsb_client *c, const char *cause, int code,
	       int status, const char *fmt, va_list ap)
{
	char *reason;
	double now = wsb_now(c->e);

	if (c->at.done || c->st == WSB_CLOSED)
		return;
	c->at.done = 1;
	reason = vfmt(fmt, ap);

	if (c->st == WSB_CLOSING) {
		/* the user asked to close: that is what happened */
		free(reason);
		wsb_finish_user_close(c);
		return;
	}
	if (c->opened_mono > 0 && now - c->opened_mono >= c->o.rc_min_uptime)
		c->attempt = 0;
	c->opened_mono = 0;
	c->attempt++;
	wsb_end_attempt(c);

	c->decide.cause = cause;
	c->decide.code = code;
	c->decide.status = status;
	c->decide.reason = reason;
	if (!c->o.reconnect || !c->o.rc_has_retry) {
		wsb_client_decide(c, wsb_default_retry(cause, code, status));
		return;
	}
	/* reconnect.retry(ws, info) decides, in Lua: ask through the FIFO */
	{
		struct wsb_event *ev = calloc(1, sizeof(*ev));

		if (!ev) {
			wsb_client_decide(c, wsb_default_retry(cause, code, status));
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
		ev->info.retry = wsb_default_retry(cause, code, status);
		wsb_push_event(c->e, ev);
	}
}

void wsb_lost(struct wsb_client *c, const char *cause, int code,
	      int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	wsb_vlost(c, cause, code, status, fmt, ap);
	va_end(ap);
}

/*
 * A uniform draw in [0, 1] for the jitter, from OpenSSL's generator: the
 * unseeded rand() gave every process the same delays, which jitter exists
 * to prevent.
 */
static double jitter_draw(void)
{
	uint32_t r = 0;

	if (!wsb_random((unsigned char *)&r, sizeof(r)))
		r = (uint32_t)rand();
	return (double)r / UINT32_MAX;
}

/*
 * Conclude a loss: reconnect (when `retry` and attempts remain) or close.
 * Called at once with the default policy, or from Lua with the answer of
 * reconnect.retry.
 */
void wsb_client_decide(struct wsb_client *c, int retry)
{
	const char *cause = c->decide.cause;
	char *reason = c->decide.reason;
	int code = c->decide.code, status = c->decide.status;

	if (!cause)
		return; /* nothing pending (closed meanwhile) */
	c->decide.cause = NULL;
	c->decide.reason = NULL;
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
		double delay = wsb_backoff(&c->o, c->attempt, jitter_draw(),
					   c->at.retry_after);

		c->t_retry = wsb_now(c->e) + delay;
		wsb_client_timer_arm(c);
		wsb_set_state(c, WSB_RECONNECTING, cause, reason, code, status,
			  delay, -1);
	}
}

/*
 * Our close frame, behind whatever is queued.  Messages the server sent
 * before it saw our close (the reply to our last request) are still
 * delivered, and the server's close frame ends the link (wsrx.c).  When the
 * server closed first, its close was echoed and ours is not sent.
 */
static void start_close(struct wsb_client *c)
{
	unsigned char buf[LWS_PRE + 125], payload[125];
	struct lws *wsi = c->wsi;

	if (!wsi || c->close.sent || c->close.peer_closed)
		return;
	if (wsb_uncork(c) < 0)
		return; /* the link is going: close_timeout ends the wait */
	payload[0] = (unsigned char)(c->close.code >> 8);
	payload[1] = (unsigned char)(c->close.code & 0xff);
	memcpy(payload + 2, c->close.reason, c->close.reason_len);
	c->close.sent = 1;
	if (wsb_write_frame(c, wsi, 0x80 | WSB_OP_CLOSE, buf + LWS_PRE, payload,
			2 + c->close.reason_len) < 0)
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	wsb_engine_kick(c->e);
}

/* Why we close: the user's close(), or the server's (server:close(), a
 * slow consumer); the cause and its words. */
static const char *close_by(const struct wsb_client *c, char **words)
{
	const char *by = c->close.by ? c->close.by : "closed_by_user";

	*words = strdup(!strcmp(by, "server_closed") ? "server closed" :
			!strcmp(by, "slow_consumer") ?
			"slow consumer: send buffer full" : "closed by user");
	return by;
}

/* The close we started is over: closed for the reason we closed. */
void wsb_finish_user_close(struct wsb_client *c)
{
	char *words;
	const char *by = close_by(c, &words);

	wsb_finish_closed(c, by, c->close.code, words);
}

void wsb_client_close(struct wsb_client *c, int code, const char *reason,
		      size_t len)
{
	if (c->st == WSB_CLOSED || c->st == WSB_CLOSING)
		return;
	wsb_uncork(c); /* what the callbacks sent goes before the close */
	if (len > sizeof(c->close.reason) - 1)
		len = sizeof(c->close.reason) - 1;
	c->close.code = code;
	memcpy(c->close.reason, reason, len);
	c->close.reason[len] = '\0';
	c->close.reason_len = len;
	if (c->decide.cause) {
		free(c->decide.reason);
		c->decide.reason = NULL;
		c->decide.cause = NULL;
		}
	if (c->st != WSB_OPEN || !c->wsi) {
		/* nothing to hand-shake with */
		c->at.done = 1;
		wsb_finish_user_close(c);
		return;
	}
	{
		char *words;
		const char *by = close_by(c, &words);

		wsb_set_state(c, WSB_CLOSING, by, words, code, 0, -1, -1);
	}
	c->hb.t_probe = c->hb.t_dead = 0;
	c->close.t_close = wsb_now(c->e) + c->o.close_timeout;
	wsb_client_timer_arm(c);
	c->tx.open_gate = 0;
	if (!STAILQ_EMPTY(&c->tx.q)) {
		c->tx.close_after_flush = 1;
		wsb_request_writable(c);
	} else if (c->e->in_service) {
		wsb_defer(c, WSB_DEF_CLOSE);
	} else {
		start_close(c);
	}
}

void wsb_client_do_deferred(struct wsb_client *c, unsigned what)
{
	if ((what & WSB_DEF_RXPAUSE) && c->wsi && !c->rx.paused &&
	    c->rx.q_count >= c->o.max_queue) {
		c->rx.paused = 1;
		lws_rx_flow_control(c->wsi, 0);
	}
	if (what & WSB_DEF_CLOSE)
		start_close(c);
}

static void on_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

void wsb_client_free(struct wsb_client *c)
{
	struct wsb_engine *e = c->e;

	e->gone_msgs_sent += c->msgs_sent;
	e->gone_msgs_recv += c->msgs_recv;
	e->gone_bytes_sent += c->bytes_sent;
	e->gone_bytes_recv += c->bytes_recv;
	e->gone_reconnects += c->reconnects;
	if (c->st != WSB_CLOSED) {
		e->live--;
		if (c->server_role)
			wsb_server_conn_closed(c);
	}
	if (c->srv) {
		c->srv->gone_msgs_sent += c->msgs_sent;
		c->srv->gone_msgs_recv += c->msgs_recv;
		c->srv->gone_bytes_sent += c->bytes_sent;
		c->srv->gone_bytes_recv += c->bytes_recv;
		LIST_REMOVE(c, srv_link);
		c->srv = NULL;
	}
	wsb_request_free(c->req);
	c->req = NULL;

	if (c->deferred)
		LIST_REMOVE(c, def_link);
	if (c->cork.listed)
		LIST_REMOVE(c, cork.link);
	LIST_REMOVE(c, link);

	wsb_attempt_over(c);
	wsb_detach_wsi(c);
	wsb_cancel_dns(c);
	wsb_tunnel_abandon(c);
	wsb_rx_reset(c);
	wsb_wsrx_free(c);
	wsb_opening_free(c);
	wsb_tlsio_free(c);
	wsb_msgq_free(&c->tx.q);
	wsb_msgq_free(&c->rx.q);
	free(c->cork.buf);
	free(c->headers);
	free(c->decide.reason);
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
