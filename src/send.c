/*
 * Sending: the send queue, small messages written at once, PINGs, and the
 * WRITEABLE callback that drains the queue in fragments; frames are built
 * and masked here (src/frame.c) with keys from OpenSSL.
 */
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"
#include "conn.h"

#define TX_CHUNK WSB_TX_CHUNK /* fragment size: a probe never waits longer */

#define DIRECT_MAX 16384 /* largest message written straight from send() */

/*
 * Frame, mask (a client's) and hand one frame to lws as raw bytes.  The
 * payload goes to p (LWS_PRE bytes of room before it), masked while copied
 * from src (which may be p).  lws's own framing reads every mask key from /dev/urandom, a
 * syscall per frame; the keys come from OpenSSL's DRBG instead (userspace,
 * seeded by the kernel), 64 at a time.
 * LWS_WRITE_RAW keeps lws's order and its buffering of a partial write.
 * Not with permessage-deflate, whose framing is lws's.  -1: link failed.
 */
const unsigned char *wsb_mask_key(struct wsb_engine *e)
{
	if (e->masks_left < 4) {
		if (!wsb_random(e->masks, (int)sizeof(e->masks)))
			return NULL;
		e->masks_left = sizeof(e->masks);
	}
	e->masks_left -= 4;
	return e->masks + e->masks_left;
}

/* The key of c's next frame: a client's frames are masked, a server's are
 * not (key NULL).  0, or -1 when OpenSSL's generator failed. */
int wsb_frame_key(struct wsb_client *c, const unsigned char **key)
{
	*key = NULL;
	if (c->server_role)
		return 0;
	*key = wsb_mask_key(c->e);
	return *key ? 0 : -1;
}

int wsb_write_frame(struct wsb_client *c, struct lws *wsi, unsigned first,
		       unsigned char *p, const unsigned char *src, size_t len)
{
	const unsigned char *key;
	unsigned char *f;

	if (wsb_frame_key(c, &key) < 0)
		return -1;
	f = wsb_frame_build(p, first, src, len, key);
	return wsb_raw_write(c, wsi, f, (size_t)(p + len - f));
}

/*
 * Write a PING at once rather than through WRITEABLE, whose request and end
 * re-register the socket with epoll (four epoll_ctl calls per probe;
 * docs/DESIGN.md, "Sending").
 * A control frame may go between the fragments of a message, so only
 * bytes lws still holds (they must go first) send it the slow way.  1
 * when written.
 */
int wsb_ping_now(struct wsb_client *c, const unsigned char *payload,
		    size_t len)
{
	unsigned char buf[LWS_PRE + 125];

	if (c->st != WSB_OPEN || !c->wsi || c->close.sent ||
	    lws_partial_buffered(c->wsi))
		return 0;
	if (wsb_uncork(c) < 0)
		return 0; /* (frames written from callbacks go first) */
	if (wsb_write_frame(c, c->wsi, 0x80 | WSB_OP_PING, buf + LWS_PRE, payload,
			len) < 0)
		return 0; /* the link is going: the pending ping dies with it */
	if (lws_partial_buffered(c->wsi))
		wsb_engine_kick(c->e);
	return 1;
}

void wsb_msg_free(struct wsb_msg *m)
{
	if (m->shared && --m->shared->refs == 0)
		free(m->shared);
	free(m->z);
	free(m);
}

struct wsb_msg *wsb_msg_out(const char *data, size_t len, int binary)
{
	struct wsb_msg *m = malloc(sizeof(*m) + LWS_PRE + len);

	if (!m)
		return NULL;
	m->len = len;
	m->off = 0;
	m->binary = binary;
	m->shared = NULL;
	m->z = NULL;
	m->zlen = 0;
	m->data = m->buf + LWS_PRE;
	if (data && len)
		memcpy(m->data, data, len);
	return m;
}

/* Ask lws for WRITEABLE once: every request costs an epoll_ctl under libuv. */
void wsb_request_writable(struct wsb_client *c)
{
	if (c->wsi && !c->tx.write_requested) {
		c->tx.write_requested = 1;
		lws_callback_on_writable(c->wsi);
		wsb_engine_kick(c->e);
	}
}

static void want_write(struct wsb_client *c)
{
	if (c->st >= WSB_OPEN && !c->tx.open_gate)
		wsb_request_writable(c);
}

/* Queue ahead of everything not yet started (heartbeat messages). */
void wsb_client_send_front(struct wsb_client *c, const char *data, size_t len,
			   int binary)
{
	struct wsb_msg *m = wsb_msg_out(data, len, binary);
	struct wsb_msg *first = STAILQ_FIRST(&c->tx.q);

	if (!m)
		return;
	if (c->tx.started && first)
		STAILQ_INSERT_AFTER(&c->tx.q, first, m, link);
	else
		STAILQ_INSERT_HEAD(&c->tx.q, m, link);
	c->tx.bytes += len;
	c->tx.count++;
}

/* A message partly handed to lws can't be resent (it might arrive twice or
 * as a torn message), so an attempt that ends mid-message drops it. */
void wsb_tx_drop_partial(struct wsb_client *c)
{
	struct wsb_msg *m = STAILQ_FIRST(&c->tx.q);

	if (!c->tx.started || !m)
		return;
	STAILQ_REMOVE_HEAD(&c->tx.q, link);
	if (c->tx.prio == m)
		c->tx.prio = NULL;
	c->tx.bytes -= m->len;
	c->tx.count--;
	c->tx.dropped++;
	c->tx.started = 0;
	wsb_msg_free(m);
}

/*
 * The fast path for a small message on an idle open link: write it at once
 * instead of queueing it and asking for WRITEABLE.  Under libuv every
 * WRITEABLE request and its end re-register the socket (four epoll_ctl
 * calls) and an API call outside step() must wake the loop (an eventfd
 * write and read).
 * Not with permessage-deflate (lws's drain needs the WRITEABLE discipline;
 * a server connection's deflate goes in wire order, which only the queue
 * keeps), not while lws still holds unsent bytes (they must go first and would
 * grow without the send_buffer bound), not from inside lws's service.
 * Returns 1 when the message is gone to lws.
 */
static int send_now(struct wsb_client *c, const char *data, size_t len,
		    int binary)
{
	unsigned char buf[LWS_PRE + DIRECT_MAX];

	if (c->st != WSB_OPEN || !c->wsi || c->tx.open_gate || !STAILQ_EMPTY(&c->tx.q) ||
	    c->tx.zsend || len > DIRECT_MAX ||
	    c->e->in_service ||
	    lws_partial_buffered(c->wsi))
		return 0;
	if (c->e->corking)
		return wsb_cork_add(c, 0x80 | (binary ? WSB_OP_BINARY : WSB_OP_TEXT),
				(const unsigned char *)data, len);
	if (wsb_write_frame(c, c->wsi, 0x80 | (binary ? WSB_OP_BINARY : WSB_OP_TEXT),
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

enum wsb_send wsb_client_send(struct wsb_client *c, const char *data, size_t len,
		    int binary)
{
	struct wsb_msg *m;

	/* (a close frame is out: nothing may follow it) */
	if (c->st >= WSB_CLOSING || c->close.sent)
		return WSB_SEND_CLOSED;
	/* One message larger than send_buffer may go when nothing waits on
	 * an open link, so big sends work with the default limit. */
	if (c->tx.bytes + len > c->o.send_buffer &&
	    !(c->tx.count == 0 && c->st == WSB_OPEN))
		return WSB_SEND_FULL;
	if (send_now(c, data, len, binary))
		return WSB_SENT;
	m = wsb_msg_out(data, len, binary);
	if (!m)
		return WSB_SEND_NOMEM;
	if (c->tx.open_gate) {
		/* inside on_state(ws, "open"): ahead of the buffered ones */
		if (c->tx.prio)
			STAILQ_INSERT_AFTER(&c->tx.q, c->tx.prio, m, link);
		else
			STAILQ_INSERT_HEAD(&c->tx.q, m, link);
		c->tx.prio = m;
	} else {
		STAILQ_INSERT_TAIL(&c->tx.q, m, link);
	}
	c->tx.bytes += len;
	c->tx.count++;
	want_write(c);
	return WSB_SENT;
}

/* Queue frames built once for many connections (server:broadcast). */
enum wsb_send wsb_client_send_shared(struct wsb_client *c,
				     struct wsb_shared *sh, int binary)
{
	struct wsb_msg *m;

	if (c->st >= WSB_CLOSING || c->close.sent)
		return WSB_SEND_CLOSED;
	if (c->tx.bytes + sh->len > c->o.send_buffer &&
	    !(c->tx.count == 0 && c->st == WSB_OPEN))
		return WSB_SEND_FULL;
	m = malloc(sizeof(*m));
	if (!m)
		return WSB_SEND_NOMEM;
	m->len = sh->len;
	m->off = 0;
	m->binary = binary;
	m->shared = sh;
	m->z = NULL;
	m->zlen = 0;
	m->data = sh->buf + LWS_PRE;
	sh->refs++;
	STAILQ_INSERT_TAIL(&c->tx.q, m, link);
	c->tx.bytes += m->len;
	c->tx.count++;
	want_write(c);
	return WSB_SENT;
}

int wsb_client_ping(struct wsb_client *c, const char *data, size_t len)
{
	unsigned char stamp[17];

	if (c->st != WSB_OPEN || !c->wsi || c->close.sent)
		return -1;
	if (len == 0) {
		/* no payload of the caller's: time it like a probe */
		len = wsb_stamp_payload(stamp);
		data = (const char *)stamp;
	} else {
		/* the caller's payload: its pong is recognised by content */
		memcpy(c->hb.uping, data, len);
		c->hb.uping_len = len;
		c->hb.uping_t = uv_hrtime();
	}
	if (!c->e->in_service && !c->tx.ping_pending &&
	    wsb_ping_now(c, (const unsigned char *)data, len))
		return 0;
	memcpy(c->tx.ping_payload, data, len);
	c->tx.ping_len = len;
	c->tx.ping_pending = 1;
	c->tx.ping_is_probe = 0;
	wsb_request_writable(c);
	return 0;
}

/* The Lua side has delivered on_state(ws, "open"): release the queue. */
void wsb_client_opened(struct wsb_client *c)
{
	if (!c->tx.open_gate)
		return;
	c->tx.open_gate = 0;
	c->tx.prio = NULL;
	if (!STAILQ_EMPTY(&c->tx.q) || c->tx.ping_pending)
		want_write(c);
}

/* The PING owed (a probe or ws:ping()): 0, or -1 when the link failed. */
static int write_ping(struct wsb_client *c, struct lws *wsi)
{
	unsigned char buf[LWS_PRE + 125];

	c->tx.ping_pending = 0;
	return wsb_write_frame(c, wsi, 0x80 | WSB_OP_PING, buf + LWS_PRE,
			       c->tx.ping_payload, c->tx.ping_len);
}

/* The PONG a server connection owes (wsrx.c): 0, or -1 when the link
 * failed. */
static int write_pong(struct wsb_client *c, struct lws *wsi)
{
	unsigned char buf[LWS_PRE + 125];

	c->tx.pong_pending = 0;
	return wsb_write_frame(c, wsi, 0x80 | WSB_OP_PONG, buf + LWS_PRE,
			       c->tx.pong_payload, c->tx.pong_len);
}

/* The next fragment (at most TX_CHUNK) of message m: 0 with its size in
 * *np and whether it was the last in *final, or -1 when the link failed.
 * (A message may be empty: one fragment of 0 bytes.) */
static int write_fragment(struct wsb_client *c, struct lws *wsi,
			  struct wsb_msg *m, size_t *np, int *final)
{
	size_t n, total;
	int first = m->off == 0;
	unsigned char *data;
	unsigned op;

	/* permessage-deflate (ours): the whole message, as it starts (RSV1
	 * on its first frame) */
	if (c->tx.zsend && first && !m->shared && !m->z)
		m->z = wsb_wsrx_deflate(c, m->data, m->len, &m->zlen);
	data = m->z ? m->z + LWS_PRE : m->data;
	total = m->z ? m->zlen : m->len;
	n = total - m->off;
	if (m->shared) {
		/* frames built for many connections, written one whole frame
		 * at a time, so that a PING may go between two of them */
		n = wsb_frame_size(m->data + m->off);
		if (wsb_raw_write(c, wsi, m->data + m->off, n) < 0)
			return -1;
		m->off += n;
		*np = n;
		*final = m->off >= m->len;
		return 0;
	}
	*final = n <= TX_CHUNK;
	if (!*final)
		n = TX_CHUNK;
	op = !first ? WSB_OP_CONTINUATION :
	     m->binary ? WSB_OP_BINARY : WSB_OP_TEXT;
	if (first && m->z)
		op |= 0x40; /* RSV1: deflated */
	/* masked in place: a message cut short is dropped, never resent
	 * (wsb_tx_drop_partial) */
	if (wsb_write_frame(c, wsi, (*final ? 0x80 : 0) | op, data + m->off,
			    data + m->off, n) < 0)
		return -1;
	m->off += n;
	*np = n;
	return 0;
}

/* The head message is written out: off the queue, counted. */
static void message_done(struct wsb_client *c, struct wsb_msg *m)
{
	STAILQ_REMOVE_HEAD(&c->tx.q, link);
	c->tx.bytes -= m->len;
	c->tx.count--;
	c->msgs_sent++;
	c->bytes_sent += m->len;
	wsb_msg_free(m);
}

/*
 * WRITEABLE: the batch, the PING owed, then queued messages in fragments,
 * up to a budget per callback (fairness between connections).
 */
int wsb_on_writeable(struct wsb_client *c, struct lws *wsi)
{
	size_t budget = 4 * TX_CHUNK;

	c->tx.write_requested = 0;
	if (wsb_uncork(c) < 0)
		return 0; /* (lws is closing the link) */
	if (c->close.sent) /* (nothing may follow our close frame) */
		c->tx.pong_pending = c->tx.ping_pending = 0;
	if (c->tx.pong_pending && write_pong(c, wsi) < 0)
		return -1;
	if (c->tx.ping_pending && write_ping(c, wsi) < 0)
		return -1;
	/* lws_send_pipe_choked() polls the socket: ask once, then rely on
	 * lws_partial_buffered(), which turns on when the kernel took less */
	if (!STAILQ_EMPTY(&c->tx.q) && lws_send_pipe_choked(wsi))
		budget = 0;
	while (!STAILQ_EMPTY(&c->tx.q) && !c->tx.open_gate && budget &&
	       !lws_partial_buffered(wsi)) {
		struct wsb_msg *m = STAILQ_FIRST(&c->tx.q);
		size_t n;
		int final;

		/* a message whose write fails is dropped, never resent: its
		 * bytes may be masked (or deflated) in place already */
		if (!m->shared)
			c->tx.started = 1;
		if (write_fragment(c, wsi, m, &n, &final) < 0)
			return -1;
		budget = budget > n + 64 ? budget - n - 64 : 0;
		c->tx.started = !final;
		if (final)
			message_done(c, m);
	}
	if (!STAILQ_EMPTY(&c->tx.q) || c->tx.ping_pending ||
	    c->tx.pong_pending) {
		wsb_request_writable(c);
	} else if (c->tx.close_after_flush) {
		c->tx.close_after_flush = 0;
		wsb_defer(c, WSB_DEF_CLOSE);
	}
	return 0;
}
