/*
 * A client's opening handshake over a raw socket: wsbeat writes the
 * upgrade request, reads and checks the response (RFC 6455 4.1) and from
 * then on reads its own frames (wsrx.c), as a server connection does.
 * lws connects the socket and writes what we give it; over wss:// the
 * bytes go through tlsio.c's TLS.
 */
#include <stdlib.h>
#include <string.h>

#include "wsbeat.h"
#include "conn.h"
#include "handshake.h"
#include "pmd.h"

/* A response head longer than this is not an answer to an upgrade. */
#define HEAD_MAX 16384

struct wsb_opening {
	char key[25];             /* our Sec-WebSocket-Key */
	char *head;               /* the response so far */
	size_t len;
};

void wsb_opening_free(struct wsb_client *c)
{
	if (!c->opening)
		return;
	free(c->opening->head);
	free(c->opening);
	c->opening = NULL;
}

/* RAW_CONNECTED: TCP is up; write the upgrade request.  0, or -1 (the
 * attempt is over) to close the socket. */
int wsb_opening_start(struct wsb_client *c, struct lws *wsi)
{
	struct wsb_hs_offer o;
	unsigned char rnd[16];
	const char *why = "out of memory";
	char *req;
	size_t len;

	if (c->st != WSB_CONNECTING || c->at.done)
		return -1;
	c->wsi = wsi;
	if (c->tlsio) /* the TLS handshake is over here */
		c->at.cert_unanswered =
			wsb_tls_cert_unanswered(wsb_tlsio_ssl(c));
	wsb_opening_free(c);
	c->opening = calloc(1, sizeof(*c->opening));
	if (!c->opening || !wsb_random(rnd, sizeof(rnd)))
		goto fail;
	wsb_hs_key(c->opening->key, rnd);
	memset(&o, 0, sizeof(o));
	o.target = c->url.path;
	o.host = c->host_hdr;
	o.origin = c->o.origin;
	o.protocols = c->o.protocols;
	o.extensions = c->o.compression ? wsb_pmd_client_offer() : NULL;
	o.headers = c->headers;
	o.headers_len = c->headers_len;
	o.key = c->opening->key;
	req = wsb_hs_request(&o, &len, &why);
	if (!req)
		goto fail;
	if (wsb_raw_write(c, wsi, (unsigned char *)req, len) < 0) {
		free(req);
		why = "the request could not be written";
		goto fail;
	}
	free(req);
	return 0;
fail:
	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	wsb_lost(c, "handshake", 0, 0, "handshake failed: %s", why);
	return -1;
}

/* A status other than 101: the HTTP status, and Retry-After. */
static void refused(struct wsb_client *c, const struct wsb_hs_req *r)
{
	const char *ra = wsb_hs_get(r, "retry-after");

	if (ra && *ra >= '0' && *ra <= '9') {
		long v = strtol(ra, NULL, 10); /* (saturates, unlike atoi) */

		c->at.retry_after = v > 86400 ? 86400 : (int)v;
	}
	wsb_lost(c, "http_status", 0, r->status, "handshake failed: HTTP %d",
		 r->status);
}

/*
 * The 101 is right: what was agreed (subprotocol, permessage-deflate)
 * is taken, and the frame reader set up.  NULL, or why not.
 */
static const char *agree(struct wsb_client *c, const struct wsb_hs_req *r)
{
	struct wsb_pmd_params pp, *ppp = NULL;
	const char *proto, *why;
	char *ext;

	if (wsb_hs_check_response(r, c->opening->key, c->o.protocols, &proto,
				  &why))
		return why;
	ext = wsb_hs_get_all(r, "sec-websocket-extensions");
	if (ext) {
		int bad = !c->o.compression ?
			  (why = "the server agreed to an extension that was "
				 "not offered", 1) :
			  wsb_pmd_client_accept(ext, &pp, &why) < 0;

		free(ext);
		if (bad)
			return why;
		ppp = &pp;
	}
	if (proto && strlen(proto) >= sizeof(c->protocol))
		return "the server chose a subprotocol that was not offered";
	strcpy(c->protocol, proto ? proto : "");
	wsb_wsrx_free(c);
	wsb_rx_reset(c);
	if (wsb_wsrx_new(c, ppp) < 0)
		return "out of memory";
	c->tx.zsend = ppp != NULL;
	return NULL;
}

/*
 * RAW_RX while connecting: the response head, then (in the same read,
 * maybe) the first frames.  0, or -1 to close the socket (the attempt is
 * then over: lost).
 */
static int opening_rx(struct wsb_client *c, struct lws *wsi,
		      unsigned char *in, size_t len)
{
	struct wsb_opening *o = c->opening;
	struct wsb_hs_req r;
	const char *why = NULL;
	size_t end, old, from, n = len;
	char *nb;

	if (!o || c->at.done)
		return -1;
	old = o->len;
	if (n > HEAD_MAX - o->len + 1)
		n = HEAD_MAX - o->len + 1; /* (enough to tell it is too long) */
	nb = realloc(o->head, o->len + n + 1);
	if (!nb)
		goto fail;
	o->head = nb;
	memcpy(o->head + o->len, in, n);
	o->len += n;
	o->head[o->len] = '\0';
	/* (only the new bytes, and the 2 before them a blank line may
	 * start in, are scanned: a trickled head is not rescanned) */
	from = old > 2 ? old - 2 : 0;
	end = wsb_hs_head_end(o->head + from, o->len - from);
	if (end)
		end += from;
	if (!end) {
		if (o->len <= HEAD_MAX)
			return 0;
		why = "invalid or oversized HTTP response";
		goto fail;
	}
	if (wsb_hs_parse_response(&r, o->head, end, &why))
		goto fail;
	if (r.status != 101) {
		c->wsi = NULL;
		lws_set_wsi_user(wsi, NULL);
		refused(c, &r);
		wsb_hs_free(&r);
		return -1;
	}
	why = agree(c, &r);
	wsb_hs_free(&r);
	if (why)
		goto fail;
	wsb_opening_free(c);
	wsb_client_established(c, wsi);
	/* frames that came with the response: after "open" */
	end -= old;
	return end < len ? wsb_wsrx_feed(c, in + end, len - end) : 0;
fail:
	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	wsb_lost(c, "handshake", 0, 0, "handshake failed: %s",
		 why ? why : "out of memory");
	return -1;
}

/* A client's plaintext (a ws:// socket's bytes, or what TLS decrypted):
 * the response head while connecting, then frames.  0, or -1 to close. */
int wsb_raw_rx(struct wsb_client *c, struct lws *wsi, unsigned char *in,
	       size_t len)
{
	if (c->st == WSB_CONNECTING)
		return opening_rx(c, wsi, in, len);
	return wsb_wsrx_feed(c, in, len);
}
