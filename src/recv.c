/*
 * Receiving: messages reassembled from what wsrx.c reads, the receive
 * queue and its flow control (max_queue).
 */
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"
#include "conn.h"

void wsb_rx_reset(struct wsb_client *c)
{
	free(c->rx.buf);
	c->rx.buf = NULL;
	c->rx.len = c->rx.cap = 0;
	c->rx.in_msg = 0;
}

/* Append a fragment to the message being reassembled (the caller has
 * held it against max_message_size); 0, or -1 when out of memory. */
int wsb_rx_append(struct wsb_client *c, const unsigned char *in, size_t len)
{
	if (c->rx.len + len > c->rx.cap) {
		size_t cap = c->rx.cap ? c->rx.cap : 4096;
		unsigned char *nb;

		while (cap < c->rx.len + len)
			cap *= 2;
		if (cap > c->o.max_message_size)
			cap = c->o.max_message_size;
		nb = realloc(c->rx.buf, cap);
		if (!nb)
			return -1;
		c->rx.buf = nb;
		c->rx.cap = cap;
	}
	if (len) /* an empty frame has no buffer yet */
		memcpy(c->rx.buf + c->rx.len, in, len);
	c->rx.len += len;
	return 0;
}

/* The message is whole: to on_message (an event), or to the receive
 * queue, where a full max_queue switches reading off. */
void wsb_rx_deliver(struct wsb_client *c)
{
	struct wsb_msg *m = malloc(sizeof(*m) + c->rx.len);

	if (!m)
		return;
	m->len = c->rx.len;
	m->off = 0;
	m->binary = c->rx.binary;
	m->shared = NULL;
	m->z = NULL;
	m->data = m->buf;
	if (c->rx.len)
		memcpy(m->buf, c->rx.buf, c->rx.len);
	c->rx.len = 0;
	if (c->rx.cap > 65536) { /* don't keep a huge buffer per client */
		free(c->rx.buf);
		c->rx.buf = NULL;
		c->rx.cap = 0;
	}
	c->msgs_recv++;
	if (c->has_on_message) {
		wsb_push_simple(c, WSB_EV_MESSAGE, m);
		return;
	}
	STAILQ_INSERT_TAIL(&c->rx.q, m, link);
	c->rx.q_count++;
	c->e->news++;
	if (c->rx.q_count >= c->o.max_queue && !c->rx.paused)
		/* (after the service turn, with the rest of the read
		 * stashed: wsrx.c) */
		wsb_defer(c, WSB_DEF_RXPAUSE);
}

/* receive() took a message: resume reading when there is room again. */
void wsb_client_rx_taken(struct wsb_client *c)
{
	/* a server connection first reads what it kept (also when the
	 * pause it asked for has not been applied yet) */
	if (c->rx.own && c->wsi && c->rx.q_count < c->o.max_queue &&
	    wsb_wsrx_resume(c) <= 0)
		return;
	if (c->rx.paused && c->rx.q_count < c->o.max_queue && c->wsi) {
		c->rx.paused = 0;
		lws_rx_flow_control(c->wsi, 1);
		wsb_engine_kick(c->e);
		/* what was held back was "received": restart the cycle */
		wsb_hb_restart(c, wsb_now(c->e));
		wsb_client_timer_arm(c);
	}
}
