/*
 * A connection's frames, read by wsbeat (docs/DESIGN.md, "wsbeat reads its
 * own frames").  lws 4.1's WebSocket server answers only one PING of many
 * in a read, takes unmasked client frames and corrupts permessage-deflate
 * input it has not inflated yet; its client parses a byte at a time (more
 * than half the client's CPU at 4 KiB messages) and takes masked server
 * frames.  So every connection is a raw socket to lws, which still does
 * TCP (the TLS is tlsio.c's, both roles), and the frames are
 * read here: wsread.c parses, pmd.c inflates, recv.c
 * reassembles and queues, and PINGs and the close are answered here.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "wsbeat.h"
#include "conn.h"
#include "pmd.h"
#include "wsread.h"

struct wsb_wsrx {
	struct wsb_rd rd;
	struct wsb_pmd *pmd;      /* permessage-deflate, or NULL */
	unsigned char *stash;     /* read while receiving was paused */
	size_t stash_len, stash_off;
	int draining;             /* closing once lws has written our close */
	int pings;                /* PINGs in this read */
	int flood;                /* a ping flood: since a read had more than
				     PINGS_AT_ONCE, every read had PINGs */
	int failing;              /* a violation is failed after the echoes */
	double fail_by;           /* ...but no later than this */
	struct wsb_client *c;
	LIST_ENTRY(wsb_wsrx) fail_link; /* engine->failing, while failing */
};

/* why the reader stopped (values a callback returns to wsb_rd_feed) */
enum { RX_PAUSE = 1, RX_CLOSE = 2, RX_BAD_UTF8 = 3, RX_TOO_BIG = 4,
       RX_DRAIN = 5 };

/*
 * The connection ends after our close frame.  lws closes a raw socket at
 * once, dropping what it still holds unsent (lws_close_free_wsi), so
 * when the close frame is not all written yet, reading stops and lws
 * closes when its buffer is empty (lws_raw_transaction_completed), or at
 * close_timeout for a client that does not read.  RX_CLOSE: close now.
 */
static int close_when_written(struct wsb_client *c)
{
	struct wsb_wsrx *x = c->rx.own;
	double t = ceil(c->o.close_timeout);

	if (!c->wsi || !lws_partial_buffered(c->wsi) ||
	    lws_raw_transaction_completed(c->wsi))
		return RX_CLOSE;
	x->draining = 1;
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, t < 1 ? 1 : (int)t);
	return RX_DRAIN;
}

int wsb_wsrx_draining(const struct wsb_client *c)
{
	return c->rx.own && c->rx.own->draining;
}

int wsb_wsrx_new(struct wsb_client *c, const struct wsb_pmd_params *pp)
{
	struct wsb_wsrx *x = calloc(1, sizeof(*x));

	if (!x)
		return -1;
	wsb_rd_init(&x->rd, pp != NULL);
	x->rd.client = !c->server_role;
	if (pp && !(x->pmd = c->server_role ? wsb_pmd_new(pp) :
				wsb_pmd_new_client(pp))) {
		free(x);
		return -1;
	}
	x->c = c;
	c->rx.own = x;
	return 0;
}

void wsb_wsrx_free(struct wsb_client *c)
{
	struct wsb_wsrx *x = c->rx.own;

	if (!x)
		return;
	if (x->failing)
		LIST_REMOVE(x, fail_link);
	wsb_pmd_free(x->pmd);
	free(x->stash);
	free(x);
	c->rx.own = NULL;
}

/* The connection is closed: nothing is read or deflated any more, so its
 * zlib streams (up to about 80 KiB) go now rather than when Lua collects
 * the connection, which the collector paces by sizeof(struct wsb_client)
 * alone (init.lua). */
void wsb_wsrx_release(struct wsb_client *c)
{
	struct wsb_wsrx *x = c->rx.own;

	if (!x)
		return;
	wsb_pmd_free(x->pmd);
	x->pmd = NULL;
	c->tx.zsend = 0;
	free(x->stash);
	x->stash = NULL;
	x->stash_len = x->stash_off = 0;
}

/* Our close frame (the cause's code and words), then our side of TCP is
 * shut: RX_CLOSE, or RX_DRAIN while lws still writes it. */
static int fail_now(struct wsb_client *c)
{
	unsigned char buf[LWS_PRE + 125], payload[125];

	if (!c->wsi || c->close.sent)
		return RX_CLOSE;
	payload[0] = (unsigned char)(c->close.code >> 8);
	payload[1] = (unsigned char)c->close.code;
	memcpy(payload + 2, c->close.reason, c->close.reason_len);
	c->close.sent = 1;
	if (wsb_uncork(c) < 0 ||
	    wsb_write_frame(c, c->wsi, 0x80 | WSB_OP_CLOSE, buf + LWS_PRE,
			    payload, 2 + c->close.reason_len) < 0)
		return RX_CLOSE;
	if (lws_partial_buffered(c->wsi))
		return close_when_written(c);
	shutdown(lws_get_socket_fd(c->wsi), SHUT_WR);
	return RX_CLOSE;
}

/*
 * The client broke the protocol: the connection is failed (RFC 6455
 * 7.1.7), with the code and why.  Nothing more is read.  With on_message,
 * the messages that came before the violation (maybe in the same read)
 * are still answered: the callbacks run after this read, so the close
 * waits for their batch (wsb_wsrx_fail_pending, at most close_timeout);
 * otherwise it goes at once.
 */
static int fail(struct wsb_client *c, int code, const char *why)
{
	struct wsb_wsrx *x = c->rx.own;
	size_t n = strlen(why);

	if (n > sizeof(c->close.reason) - 1)
		n = sizeof(c->close.reason) - 1;
	c->close.cause = code == 1009 ? "too_big" : "protocol_error";
	c->close.code = code;
	memcpy(c->close.reason, why, n);
	c->close.reason[n] = '\0';
	c->close.reason_len = n;
	if (!c->has_on_message || !c->wsi || c->close.sent || x->failing)
		return fail_now(c);
	x->failing = 1;
	x->fail_by = wsb_now(c->e) + c->o.close_timeout;
	LIST_INSERT_HEAD(&c->e->failing, x, fail_link);
	lws_rx_flow_control(c->wsi, 0);
	return RX_DRAIN;
}

/* The batch of callbacks is over (cork.c): fail the connections that
 * waited for it, once what they sent has left the queue. */
void wsb_wsrx_fail_pending(struct wsb_engine *e)
{
	struct wsb_wsrx *x, *next;
	double now = wsb_now(e);

	for (x = LIST_FIRST(&e->failing); x; x = next) {
		struct wsb_client *c = x->c;

		next = LIST_NEXT(x, fail_link);
		if (c->wsi && !c->close.sent && !STAILQ_EMPTY(&c->tx.q) &&
		    now < x->fail_by)
			continue; /* (its replies are still queued) */
		LIST_REMOVE(x, fail_link);
		x->failing = 0;
		x->draining = 1; /* (nothing more is read) */
		/* closed now for Lua; the socket when lws has written the
		 * close (or at once: wsb_lost lets the wsi go) */
		if (c->wsi && fail_now(c) == RX_CLOSE)
			wsb_wsrx_lost(c);
		else if (c->wsi)
			lws_rx_flow_control(c->wsi, 1); /* (to see its end) */
	}
}

/* A connection we failed (close.cause) has ended: say how. */
void wsb_wsrx_lost(struct wsb_client *c)
{
	int too_big = !strcmp(c->close.cause, "too_big");

	if (!c->server_role && too_big) /* (the peer sent nothing wrong) */
		wsb_lost(c, c->close.cause, c->close.code, 0,
			 "incoming message too big (%d %s)", c->close.code,
			 wsb_close_code_name(c->close.code));
	else
		wsb_lost(c, c->close.cause, c->close.code, 0,
			 "%s by the %s: %s (%d %s)",
			 too_big ? "message too big" : "protocol error",
			 c->server_role ? "client" : "server",
			 c->close.reason, c->close.code,
			 wsb_close_code_name(c->close.code));
}

/* Decoded payload bytes of the message: checked and reassembled. */
static int sink(void *arg, const unsigned char *p, size_t n)
{
	struct wsb_client *c = arg;

	if (!c->rx.binary && wsb_utf8_step(&c->rx.utf8, p, n) < 0)
		return RX_BAD_UTF8; /* at once: RFC 6455 8.1, fail fast */
	if (c->rx.len + n > c->o.max_message_size)
		return RX_TOO_BIG;
	c->bytes_recv += n;
	if (wsb_rx_append(c, p, n) < 0)
		return RX_TOO_BIG; /* (out of memory: as good as too big) */
	return 0;
}

static int on_data(void *arg, int op, int compressed, const unsigned char *p,
		   size_t n, int first, int fin)
{
	struct wsb_client *c = arg;
	struct wsb_wsrx *x = c->rx.own;
	int r = 0;

	wsb_heard(c);
	if (first) {
		c->rx.in_msg = 1;
		c->rx.binary = op == WSB_OP_BINARY;
		c->rx.len = 0;
		c->rx.utf8 = 0;
	}
	if (compressed && !x->pmd)
		return RX_CLOSE; /* (closed: its streams are gone) */
	if (compressed) {
		r = wsb_pmd_inflate(x->pmd, p, n, fin, c->o.max_message_size,
				    sink, c);
		if (r == -2)
			r = RX_TOO_BIG;
		else if (r == -1)
			return fail(c, 1007, "invalid permessage-deflate data");
	} else {
		r = sink(c, p, n);
	}
	if (r == RX_BAD_UTF8)
		return fail(c, 1007, "invalid UTF-8 in a text message");
	/* failed at once, like a violation: the rest is not read, and a
	 * client that never answers our close cannot keep its slot */
	if (r == RX_TOO_BIG)
		return fail(c, 1009, "message too big (over max_message_size)");
	if (!fin)
		return 0;
	if (!c->rx.binary && c->rx.utf8)
		return fail(c, 1007, "a text message ends inside a UTF-8 "
			    "sequence");
	c->rx.in_msg = 0;
	wsb_rx_deliver(c);
	/* a full receive queue: keep the rest of this read for later */
	return !c->has_on_message && c->rx.q_count >= c->o.max_queue ?
	       RX_PAUSE : 0;
}

/*
 * A PONG for each PING (lws 4.1 answered only the last of a read): at
 * once, or, while lws still holds unsent bytes, the latest one when the
 * socket takes more (RFC 6455 5.5.3), so a ping flood into a peer that
 * does not read costs no memory.  A read with more than PINGS_AT_ONCE
 * PINGs starts a flood: from then on, until a read brings none, the
 * latest PING is answered with our next write (a heartbeat probe, a
 * message) or when the flood is over (5.5.3 allows it).  Ten PINGs in a row still get ten PONGs (Autobahn 2.10), but a
 * flood of tiny PINGs does not cost a write each or bury the peer in
 * PONGs to parse: a python server flooding 200,000 PINGs, given about one
 * PONG in four, then one in seven, took longer than a heartbeat timeout
 * (0.15 s) to reach the probe behind them (lws answered about one in 40).
 */
#define PINGS_AT_ONCE 10

static void answer_ping(struct wsb_client *c, const unsigned char *p,
			size_t n)
{
	unsigned char buf[LWS_PRE + 125];

	if (c->close.sent || !c->wsi)
		return;
	if (++c->rx.own->pings <= PINGS_AT_ONCE && !c->rx.own->flood &&
	    !c->tx.pong_pending && !lws_partial_buffered(c->wsi) &&
	    wsb_uncork(c) == 0) {
		wsb_write_frame(c, c->wsi, 0x80 | WSB_OP_PONG, buf + LWS_PRE, p,
				n);
		return;
	}
	memcpy(c->tx.pong_payload, p, n);
	c->tx.pong_len = n;
	c->tx.pong_pending = 1;
	/* in a flood the PONG waits for our next write (a probe's, a
	 * message's) or for the flood's end (feed) */
	if (!c->rx.own->flood)
		wsb_request_writable(c);
}

/* The client's close: the answer to ours, or its own, which is echoed
 * (code and reason, as browsers expect); either way the server then closes the TCP connection
 * first (RFC 6455 7.1.1). */
static int on_close(struct wsb_client *c, const unsigned char *p, size_t n)
{
	unsigned char buf[LWS_PRE + 125];

	if (c->close.sent)
		return RX_CLOSE;
	c->close.peer_closed = 1;
	c->close.peer_code = n >= 2 ? (p[0] << 8 | p[1]) : 1005;
	if (n > 2) {
		size_t k = n - 2;

		if (k > sizeof(c->close.peer_reason) - 1)
			k = sizeof(c->close.peer_reason) - 1;
		memcpy(c->close.peer_reason, p + 2, k);
		c->close.peer_reason[k] = '\0';
	}
	c->close.sent = 1; /* (ours: nothing may follow it) */
	if (!c->wsi || wsb_uncork(c) < 0 ||
	    wsb_write_frame(c, c->wsi, 0x80 | WSB_OP_CLOSE, buf + LWS_PRE, p,
			    n) < 0)
		return RX_CLOSE;
	return close_when_written(c);
}

static int on_control(void *arg, int op, const unsigned char *p, size_t n)
{
	struct wsb_client *c = arg;

	wsb_heard(c);
	switch (op) {
	case WSB_OP_PING:
		answer_ping(c, p, n);
		return 0;
	case WSB_OP_PONG:
		wsb_on_pong(c, p, n);
		return 0;
	default:
		return on_close(c, p, n);
	}
}

static const struct wsb_rd_ops ops = { on_data, on_control };

static int stash_add(struct wsb_wsrx *x, const unsigned char *p, size_t n)
{
	size_t keep = x->stash_len - x->stash_off;
	unsigned char *b;

	if (!n)
		return 0;
	b = malloc(keep + n);
	if (!b)
		return -1;
	if (keep)
		memcpy(b, x->stash + x->stash_off, keep);
	memcpy(b + keep, p, n);
	free(x->stash);
	x->stash = b;
	x->stash_len = keep + n;
	x->stash_off = 0;
	return 0;
}

/* Read frames from in; 0, or -1 when the connection is to be closed. */
static int feed(struct wsb_client *c, unsigned char *in, size_t len,
		size_t *used)
{
	struct wsb_wsrx *x = c->rx.own;
	int r;

	x->pings = 0;
	r = wsb_rd_feed(&x->rd, in, len, used, &ops, c);
	if (c->rx.own == x) { /* (still ours after the callbacks) */
		x->flood = x->pings > PINGS_AT_ONCE || (x->flood && x->pings);
		if (!x->flood && c->tx.pong_pending)
			wsb_request_writable(c);
	}

	if (r < 0)
		r = fail(c, -r, x->rd.err ? x->rd.err : "protocol error");
	return r == RX_CLOSE ? -1 : 0;
}

/* RAW_RX of an open server connection: 0, or -1 to close it. */
int wsb_wsrx_feed(struct wsb_client *c, unsigned char *in, size_t len)
{
	struct wsb_wsrx *x = c->rx.own;
	size_t used = 0;

	if (!x || c->st == WSB_CLOSED)
		return -1;
	if (x->draining || x->failing)
		return 0; /* (closing: what comes now is not read) */
	if (x->stash_len > x->stash_off) /* paused: after what waits */
		return stash_add(x, in, len);
	if (feed(c, in, len, &used) < 0)
		return -1;
	return used < len && !x->draining && !x->failing ?
	       stash_add(x, in + used, len - used) : 0;
}

/*
 * receive() made room: read on from what was kept.  1 when all of it is
 * read (reading may be switched on again), 0 when the queue filled up
 * again, -1 when the connection is to be closed (then it is, later:
 * this runs outside lws's service).
 */
int wsb_wsrx_resume(struct wsb_client *c)
{
	struct wsb_wsrx *x = c->rx.own;
	size_t used = 0, left;

	if (!x || x->stash_len <= x->stash_off || x->draining || x->failing)
		return 1;
	left = x->stash_len - x->stash_off;
	if (feed(c, x->stash + x->stash_off, left, &used) < 0) {
		if (c->wsi) {
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
					LWS_TO_KILL_ASYNC);
			wsb_engine_kick(c->e);
		}
		return -1;
	}
	x->stash_off += used;
	if (x->stash_off < x->stash_len)
		return 0;
	free(x->stash);
	x->stash = NULL;
	x->stash_len = x->stash_off = 0;
	return 1;
}

/*
 * The payload of an outgoing message, deflated when permessage-deflate was
 * agreed and this connection can (a malloc'd buffer, LWS_PRE bytes before
 * the payload; the frame gets RSV1), else NULL: the message goes as it is,
 * which RFC 7692 allows.  Callers deflate in the order the messages go on
 * the wire, which context takeover needs.
 */
unsigned char *wsb_wsrx_deflate(struct wsb_client *c, const unsigned char *in,
				 size_t n, size_t *zlen)
{
	struct wsb_wsrx *x = c->rx.own;

	if (!x || !x->pmd || !wsb_pmd_can_deflate(x->pmd))
		return NULL;
	return wsb_pmd_deflate(x->pmd, in, n, LWS_PRE, zlen);
}
