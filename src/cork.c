/*
 * Batching ("corking"): what callbacks send during one delivery leaves in
 * one write per connection when the batch is over.
 */
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"
#include "conn.h"

#define CORK_MAX 16384 /* one TLS record's worth of plaintext */

#define CORK_KEEP 4096 /* a buffer kept between batches at most this big */

/*
 * The link failed under corked frames that send() had already accepted
 * (their write failed, or the link went while the batch was still
 * collecting: wsb_engine_poll_more() reads on before it is written):
 * unmask them back into messages at the front of the send queue, where a
 * message that could not be written at once would have gone, so that they
 * leave on the next connection.  Our own frames only: data frames with
 * 2- or 4-byte headers (DIRECT_MAX < 65536; PINGs are never corked),
 * masked (a client's) or not (a server's).
 */
void wsb_cork_requeue(struct wsb_client *c)
{
	unsigned char *p = c->cork.buf, *end = c->cork.buf + c->cork.len;
	struct wsb_msgq front = STAILQ_HEAD_INITIALIZER(front);

	if (!c->cork.len)
		return;
	wsb_log(c->e, WSB_LOG_INFO, "%s: the link failed under %zu message(s) "
		"sent from callbacks: %s", c->url.host, c->cork.msgs,
		c->server_role ? "not sent" : "kept for the next connection");
	while (p < end) {
		unsigned op = p[0] & 0x0f;
		size_t len = p[1] & 0x7f, hl = 2, kl = p[1] & 0x80 ? 4 : 0;
		struct wsb_msg *m;

		if (len == 126) {
			len = (size_t)p[2] << 8 | p[3];
			hl = 4;
		}
		m = wsb_msg_out(NULL, len, op == WSB_OP_BINARY);
		if (m) {
			if (kl)
				wsb_mask(m->data, p + hl + kl, len, p + hl);
			else if (len)
				memcpy(m->data, p + hl, len);
			STAILQ_INSERT_TAIL(&front, m, link);
			c->tx.bytes += len;
			c->tx.count++;
		} else {
			c->tx.dropped++; /* out of memory: counted as unsent */
		}
		p += hl + kl + len;
	}
	/* front + the queue, back into the queue */
	STAILQ_CONCAT(&front, &c->tx.q);
	STAILQ_CONCAT(&c->tx.q, &front);
	c->cork.len = c->cork.msgs = c->cork.bytes = 0;
}

void wsb_cork_free(struct wsb_client *c)
{
	free(c->cork.buf);
	c->cork.buf = NULL;
	c->cork.cap = 0;
}

/* Write the corked frames: 0, or -1 when the link is broken (the frames
 * are back in the send queue and lws is told to close the link). */
int wsb_uncork(struct wsb_client *c)
{
	if (!c->cork.len)
		return 0;
	if (!c->wsi ||
	    wsb_raw_write(c, c->wsi, c->cork.buf, c->cork.len) < 0) {
		wsb_cork_requeue(c);
		if (c->wsi) {
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
					LWS_TO_KILL_ASYNC);
			wsb_engine_kick(c->e);
		}
		return -1;
	}
	c->msgs_sent += c->cork.msgs;
	c->bytes_sent += c->cork.bytes;
	c->cork.len = c->cork.msgs = c->cork.bytes = 0;
	if (c->cork.cap > CORK_KEEP)
		wsb_cork_free(c); /* a big batch: give the memory back */
	if (lws_partial_buffered(c->wsi))
		wsb_engine_kick(c->e);
	return 0;
}

/* The batch is delivered: write every client's corked frames. */
void wsb_engine_uncork(struct wsb_engine *e)
{
	e->corking = 0;
	e->polled = e->batched = 0;
	while (!LIST_EMPTY(&e->corked)) {
		struct wsb_client *c = LIST_FIRST(&e->corked);

		LIST_REMOVE(c, cork.link);
		c->cork.listed = 0;
		wsb_uncork(c);
	}
	/* (once Lua has had every event: the callbacks' replies go first) */
	if (!LIST_EMPTY(&e->failing) && STAILQ_EMPTY(&e->events))
		wsb_wsrx_fail_pending(e);
}

/* Frame a message into the cork; 1 when taken, 0 when it must be queued. */
int wsb_cork_add(struct wsb_client *c, unsigned first,
		    const unsigned char *src, size_t len)
{
	size_t need = 14 + len;
	const unsigned char *key;

	if (c->cork.len && c->cork.len + need > CORK_MAX &&
	    (wsb_uncork(c) < 0 || lws_partial_buffered(c->wsi)))
		return 0;
	if (c->cork.cap < c->cork.len + need) {
		size_t cap = c->cork.cap ? c->cork.cap : 512;
		unsigned char *b;

		while (cap < c->cork.len + need)
			cap *= 2;
		if (cap > CORK_MAX + 14)
			cap = CORK_MAX + 14; /* (the most a batch can hold) */
		b = realloc(c->cork.buf, cap);
		if (!b)
			return 0;
		c->cork.buf = b;
		c->cork.cap = cap;
	}
	if (wsb_frame_key(c, &key) < 0)
		return 0;
	c->cork.len += wsb_frame_head_len(len, key != NULL);
	wsb_frame_build(c->cork.buf + c->cork.len, first, src, len, key);
	c->cork.len += len;
	c->cork.msgs++;
	c->cork.bytes += len;
	if (!c->cork.listed) {
		c->cork.listed = 1;
		LIST_INSERT_HEAD(&c->e->corked, c, cork.link);
	}
	return 1;
}
