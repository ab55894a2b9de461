/*
 * Sending to many: server:broadcast() frames a big message once for every
 * connection (server frames are not masked), and the slow-consumer policy
 * (on_full) for a connection whose send buffer is full.
 */
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"
#include "conn.h"

/*
 * on_full = "close": a connection whose send buffer is full is a slow
 * consumer; what it has not started receiving is dropped (it is being let
 * go) and it is closed with 1008, cause "slow_consumer".  1 when closed.
 */
int wsb_slow_consumer(struct wsb_client *c)
{
	struct wsb_msg *m, *keep;

	if (!c->srv || !c->srv->on_full_close || c->st != WSB_OPEN)
		return 0;
	keep = c->tx.started ? STAILQ_FIRST(&c->tx.q) : NULL;
	if (keep)
		STAILQ_REMOVE_HEAD(&c->tx.q, link);
	while ((m = STAILQ_FIRST(&c->tx.q))) {
		STAILQ_REMOVE_HEAD(&c->tx.q, link);
		c->tx.bytes -= m->len;
		c->tx.count--;
		c->tx.dropped++;
		wsb_msg_free(m);
	}
	if (keep)
		STAILQ_INSERT_HEAD(&c->tx.q, keep, link);
	c->tx.prio = NULL;
	c->srv->slow++;
	wsb_log(c->e, WSB_LOG_WARN, "server :%d: %s:%d is a slow consumer "
		"(send buffer full): closing it", c->srv->port, c->url.host,
		c->url.port);
	c->close.by = "slow_consumer";
	wsb_client_close(c, 1008, "slow consumer", 13);
	return 1;
}

/* The message as the frames every (uncompressed) connection gets: built
 * once, in fragments of at most WSB_TX_CHUNK (so PINGs fit between). */
static struct wsb_shared *shared_frames(const char *data, size_t len,
					int binary)
{
	size_t nfrag = len ? (len + WSB_TX_CHUNK - 1) / WSB_TX_CHUNK : 1;
	size_t total = len, off = 0;
	struct wsb_shared *sh;
	unsigned char *p;

	for (size_t i = 0; i < nfrag; i++) {
		size_t n = len - i * WSB_TX_CHUNK;

		total += wsb_frame_head_len(n > WSB_TX_CHUNK ? WSB_TX_CHUNK : n,
					    0);
	}
	sh = malloc(sizeof(*sh) + LWS_PRE + total);
	if (!sh)
		return NULL;
	sh->refs = 0;
	sh->len = total;
	p = sh->buf + LWS_PRE;
	for (size_t i = 0; i < nfrag; i++) {
		size_t n = len - off > WSB_TX_CHUNK ? WSB_TX_CHUNK : len - off;
		unsigned op = i ? WSB_OP_CONTINUATION :
			      binary ? WSB_OP_BINARY : WSB_OP_TEXT;
		size_t hl = wsb_frame_head_len(n, 0);

		wsb_frame_build(p + hl, (i == nfrag - 1 ? 0x80 : 0) | op,
				(const unsigned char *)data + off, n, NULL);
		p += hl + n;
		off += n;
	}
	return sh;
}

static int send_one(struct wsb_client *c, struct wsb_shared **sh,
		    const char *data, size_t len, int binary)
{
	enum wsb_send r;

	if (c->st != WSB_OPEN || c->pub_state != WSB_OPEN)
		return 0;
	/* small messages and deflated ones are framed per connection (a
	 * direct write or the batch; deflate's state is per connection) */
	if (len <= DIRECT_MAX || c->tx.zsend) {
		r = wsb_client_send(c, data, len, binary);
	} else {
		if (!*sh && !(*sh = shared_frames(data, len, binary)))
			return 0;
		r = wsb_client_send_shared(c, *sh, binary);
	}
	if (r == WSB_SEND_FULL)
		wsb_slow_consumer(c);
	return r == WSB_SENT;
}

/*
 * server:broadcast(): queue the message for every open connection (or the
 * listed ones).  A connection whose send buffer is full is skipped (or
 * closed, with on_full = "close"): one slow reader never holds the others
 * up or makes the server grow.  Returns how many it was queued for.
 */
size_t wsb_server_broadcast(struct wsb_server *s, const char *data,
			    size_t len, int binary, struct wsb_client **only,
			    size_t n_only)
{
	struct wsb_shared *sh = NULL;
	struct wsb_client *c, *next;
	size_t n = 0;

	if (only) {
		for (size_t i = 0; i < n_only; i++)
			n += (size_t)send_one(only[i], &sh, data, len, binary);
	} else {
		for (c = LIST_FIRST(&s->conns); c; c = next) {
			next = LIST_NEXT(c, srv_link);
			n += (size_t)send_one(c, &sh, data, len, binary);
		}
	}
	if (sh && !sh->refs)
		free(sh);
	return n;
}
