/*
 * Receiving: fragments reassembled into messages, max_message_size, the
 * receive queue and its flow control (max_queue).
 */
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"
#include "conn.h"

void wsb_rx_reset(struct wsb_client *c)
{
	free(c->rx_buf);
	c->rx_buf = NULL;
	c->rx_len = c->rx_cap = 0;
	c->rx_too_big = 0;
	c->rx_in_msg = 0;
}

void wsb_on_receive(struct wsb_client *c, struct lws *wsi,
		       const unsigned char *in, size_t len)
{
	struct wsb_msg *m;

	wsb_heard(c);
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
		wsb_push_simple(c, WSB_EV_MESSAGE, m);
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
		wsb_hb_restart(c, wsb_now(c->e));
		wsb_client_timer_arm(c);
	}
}
