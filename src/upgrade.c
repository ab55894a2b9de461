/*
 * A server's opening handshake, from the request's bytes to an HTTP answer
 * or a connection: the request head is collected (at most HEAD_MAX) and
 * parsed (handshake.c), the upgrade is decided (malformed, not an upgrade,
 * closing, full, on_upgrade, the subprotocol, permessage-deflate), then
 * refused with a status or answered 101, and the socket's wsb_pending
 * becomes a struct wsb_client in the server role.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include "wsbeat.h"
#include "conn.h"
#include "handshake.h"
#include "pmd.h"

/*
 * The longest request head read: node's default; python websockets allows
 * 8 KiB lines and 128 headers.
 */
#define HEAD_MAX 16384

/* Is name one of the offered subprotocols (a comma list)? */
static int offered_has(const char *offered, const char *name)
{
	size_t n = strlen(name);
	const char *p = offered;

	while (p && *p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!strncmp(p, name, n) &&
		    (p[n] == '\0' || p[n] == ',' || p[n] == ' ' ||
		     p[n] == '\t'))
			return 1;
		p = strchr(p, ',');
	}
	return 0;
}

/* The server's first preference among the offers, or "" (none). */
static void default_protocol(struct wsb_server *s, const char *offered,
			     char *out, size_t len)
{
	const char *p = s->o.protocols;

	out[0] = '\0';
	while (offered && p && *p) {
		const char *end;

		while (*p == ' ' || *p == '\t')
			p++;
		end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char name[64];

		if (n < sizeof(name)) {
			memcpy(name, p, n);
			name[n] = '\0';
			if (offered_has(offered, name) && n < len) {
				memcpy(out, name, n + 1);
				return;
			}
		}
		p = end ? end + 1 : NULL;
	}
}

static const char *status_text(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return status < 500 ? "Client Error" : "Server Error";
	}
}

/*
 * An HTTP answer that is not an upgrade (a refusal, 426, 503...).  Then
 * our side of TCP is shut, and what the client still sends is read and
 * dropped until it closes (or handshake_timeout): closing a socket with
 * unread input would reset it, and the reset can destroy the answer
 * before the client reads it (a refused 1 MiB header).
 */
/* The answer's bytes, through the TLS when the server has it. */
static int pending_write(struct lws *wsi, struct wsb_pending *p,
			 const char *t, size_t n)
{
	if (p->tlsio)
		return wsb_tlsio_write(p->e, p->tlsio, wsi,
				       (const unsigned char *)t, n);
	return lws_write(wsi, (unsigned char *)t, n, LWS_WRITE_RAW) < 0 ?
	       -1 : 0;
}

static int answer(struct lws *wsi, struct wsb_pending *p, int status,
		  const char *body)
{
	char buf[LWS_PRE + 1024], *t = buf + LWS_PRE;
	int n;

	n = snprintf(t, sizeof(buf) - LWS_PRE, "HTTP/1.1 %d %s\r\n"
		     "Content-Type: text/plain\r\n%s"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n%.512s\n",
		     status, status_text(status), status == 426 ?
		     "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" : "",
		     strlen(body) > 512 ? 513 : strlen(body) + 1, body);
	p->answered = 1;
	free(p->head);
	p->head = NULL;
	p->head_len = p->head_cap = 0;
	if (n <= 0 || (size_t)n >= sizeof(buf) - LWS_PRE ||
	    pending_write(wsi, p, t, (size_t)n) < 0)
		return -1;
	if (p->tlsio)
		wsb_tlsio_close_notify(p->e, p->tlsio, wsi);
	if (lws_partial_buffered(wsi))
		lws_callback_on_writable(wsi); /* (shut when written) */
	else
		shutdown(lws_get_socket_fd(wsi), SHUT_WR);
	return 0;
}

static void conn_opts(struct wsb_client *c, const struct wsb_server *s)
{
	c->o = s->o;
	c->o.ca_file = c->o.ca_path = c->o.cert_file = c->o.key_file = NULL;
	c->o.server_name = c->o.protocols = c->o.origin = NULL;
	c->o.reconnect = 0;
	c->o.rc_has_retry = 0;
	c->o.compression = 0; /* (lws's, for clients; ours is wsrx.c's) */
	c->o.hb_message = NULL;
	if (s->o.hb_message) {
		c->o.hb_message = malloc(s->o.hb_message_len + 1);
		if (c->o.hb_message)
			memcpy(c->o.hb_message, s->o.hb_message,
			       s->o.hb_message_len + 1);
		else
			c->o.hb_message_mode = 0;
	}
}

static struct wsb_client *conn_new(struct wsb_server *s,
				   struct wsb_request *r)
{
	struct wsb_engine *e = s->e;
	struct wsb_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (uv_timer_init(&e->loop, &c->timer)) {
		free(c);
		return NULL;
	}
	STAILQ_INIT(&c->tx.q);
	STAILQ_INIT(&c->rx.q);
	c->timer.data = c;
	c->magic = WSB_CLIENT_MAGIC;
	c->e = e;
	c->srv = s;
	c->server_role = 1;
	c->req = r;
	LIST_INSERT_HEAD(&e->clients, c, link);
	LIST_INSERT_HEAD(&s->conns, c, srv_link);
	c->hb.rtt = -1;
	c->at.retry_after = -1;
	c->st = c->pub_state = WSB_CONNECTING;
	e->live++;
	s->live++;
	conn_opts(c, s);
	c->has_on_message = s->has_on_message;
	/* (what the log lines and tostring name it by) */
	c->url.tls = s->tls;
	c->url.port = r->remote_port;
	c->url.ipv6 = strchr(r->remote, ':') != NULL;
	snprintf(c->url.host, sizeof(c->url.host), "%s", r->remote);
	snprintf(c->url.path, sizeof(c->url.path), "%s", r->path);
	return c;
}

static void on_established(struct wsb_client *c, struct lws *wsi)
{
	double now = wsb_now(c->e);

	c->wsi = wsi;
	c->connected_at = (double)time(NULL);
	c->opened_mono = now;
	c->opened_once = 1;
	c->tx.open_gate = 1;
	if (c->srv)
		c->srv->upgraded++;
	wsb_set_state(c, WSB_OPEN, "accepted", strdup("accepted"), 0, 0, -1, -1);
	wsb_hb_restart(c, now);
	wsb_client_timer_arm(c);
}

/* The 101 answer: 0, or -1 when the link failed. */
static int switch_protocols(struct wsb_client *c, struct lws *wsi,
			    const struct wsb_hs_req *q, const char *protocol,
			    const char *ext)
{
	char buf[LWS_PRE + 512], accept[29], *t = buf + LWS_PRE;
	int n;

	wsb_hs_accept(wsb_hs_get(q, "sec-websocket-key"), accept);
	n = snprintf(t, sizeof(buf) - LWS_PRE, "HTTP/1.1 101 Switching "
		     "Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Accept: %s\r\n%s%s%s%s%s%s\r\n", accept,
		     *protocol ? "Sec-WebSocket-Protocol: " : "", protocol,
		     *protocol ? "\r\n" : "", *ext ? "Sec-WebSocket-Extensions: " :
		     "", ext, *ext ? "\r\n" : "");
	if (n <= 0 || (size_t)n >= sizeof(buf) - LWS_PRE)
		return -1;
	return wsb_raw_write(c, wsi, (unsigned char *)t, (size_t)n);
}

/* permessage-deflate, when the server has compression on and the client
 * offered something acceptable: the response element in ext. */
static int deflate_offer(struct wsb_server *s, const struct wsb_hs_req *q,
			 struct wsb_pmd_params *pp, char *ext, size_t len)
{
	char *offers;
	int ok;

	ext[0] = '\0';
	if (!s->o.compression ||
	    !(offers = wsb_hs_get_all(q, "sec-websocket-extensions")))
		return 0;
	ok = wsb_pmd_negotiate(offers, pp, ext, len);
	free(offers);
	if (!ok)
		ext[0] = '\0';
	return ok;
}

/*
 * The request is whole: refuse it with an HTTP status (malformed, not an
 * upgrade, closing, full, on_upgrade said no), or make the connection,
 * answer 101 and read on (a client may send frames right behind its
 * request).  0, or -1 to close the socket.
 */
static int on_head(struct lws *wsi, struct wsb_pending *p, size_t end,
		   struct wsb_hs_req *q)
{
	struct wsb_server *s = p->s;
	struct wsb_pmd_params pp;
	struct wsb_verdict v;
	struct wsb_request *r;
	struct wsb_client *c;
	char ext[256];
	const char *why;
	int status, deflate;

	if ((status = wsb_hs_parse(q, p->head, end, &why)))
		return answer(wsi, p, status, why);
	if ((status = wsb_hs_check(q, &why)))
		return answer(wsi, p, status, status == 426 &&
			      !wsb_hs_get(q, "sec-websocket-key") ?
			      "this is a WebSocket server: upgrade required" :
			      why);
	if (!s || s->closing)
		return answer(wsi, p, 503, "the server is shutting down");
	if (s->live >= s->max_connections) {
		s->full++;
		wsb_log(s->e, WSB_LOG_WARN, "server :%d: %s:%d refused: "
			"max_connections (%zu) reached", s->port, p->remote,
			p->remote_port, s->max_connections);
		return answer(wsi, p, 503, "too many connections");
	}
	r = wsb_request_capture(q, p);
	if (!r)
		return answer(wsi, p, 500, "out of memory");
	memset(&v, 0, sizeof(v));
	v.accept = 1;
	default_protocol(s, r->protocols, v.protocol, sizeof(v.protocol));
	if (s->upgrade)
		s->upgrade(s, r, &v);
	if (!p->s || s->closing) {
		/* on_upgrade closed the server (and dropped this socket) */
		wsb_request_free(r);
		return answer(wsi, p, 503, "the server is shutting down");
	}
	if (!v.accept) {
		s->refused++;
		wsb_log(s->e, WSB_LOG_INFO, "server :%d: %s:%d %s refused by "
			"on_upgrade: %d %s", s->port, p->remote, p->remote_port,
			r->path, v.status, v.reason);
		wsb_request_free(r);
		return answer(wsi, p, v.status, v.reason[0] ? v.reason :
			      "refused");
	}
	deflate = deflate_offer(s, q, &pp, ext, sizeof(ext));
	c = conn_new(s, r);
	if (!c) {
		wsb_request_free(r);
		return answer(wsi, p, 500, "out of memory");
	}
	if (wsb_wsrx_new(c, deflate ? &pp : NULL) < 0) {
		wsb_client_free(c);
		return answer(wsi, p, 500, "out of memory");
	}
	c->tx.zsend = deflate;
	snprintf(c->protocol, sizeof(c->protocol), "%s", v.protocol);
	c->tlsio = p->tlsio; /* (the socket's TLS is the connection's now) */
	p->tlsio = NULL;
	if (switch_protocols(c, wsi, q, c->protocol, ext) < 0) {
		wsb_client_free(c);
		return -1;
	}
	wsb_pending_unlist(p);
	lws_set_wsi_user(wsi, c);
	/* (whatever deadline lws set at adoption: the heartbeat rules now) */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	on_established(c, wsi);
	return 0;
}

/* The request's bytes so far; 0, or -1 when out of memory. */
static int head_add(struct wsb_pending *p, const void *in, size_t len)
{
	if (p->head_len + len > p->head_cap) {
		size_t cap = p->head_cap ? p->head_cap : 1024;
		char *b;

		while (cap < p->head_len + len)
			cap *= 2;
		b = realloc(p->head, cap);
		if (!b)
			return -1;
		p->head = b;
		p->head_cap = cap;
	}
	memcpy(p->head + p->head_len, in, len);
	p->head_len += len;
	return 0;
}

/* RAW_RX before the upgrade: the request head, up to HEAD_MAX bytes. */
int wsb_upgrade_rx(struct lws *wsi, struct wsb_pending *p, void *in,
		   size_t len)
{
	struct wsb_hs_req q;
	struct wsb_client *c;
	size_t end, from;
	int r;

	if (p->answered)
		return 0; /* (the rest of a refused request: dropped) */
	if (!p->s)
		return -1;
	from = p->head_len > 3 ? p->head_len - 3 : 0; /* (the new bytes) */
	if (head_add(p, in, len) < 0)
		return answer(wsi, p, 500, "out of memory");
	end = wsb_hs_head_end(p->head + from, p->head_len - from);
	if (end)
		end += from;
	if ((!end && p->head_len > HEAD_MAX) || end > HEAD_MAX)
		return answer(wsi, p, 431, "the request head is longer than "
			      "16 KiB");
	if (!end)
		return 0;
	memset(&q, 0, sizeof(q));
	r = on_head(wsi, p, end, &q);
	wsb_hs_free(&q);
	if (r < 0 || p->answered)
		return r;
	/* upgraded: wsi's user is the connection now; frames that came
	 * with the request are its first input */
	c = lws_wsi_user(wsi);
	if (end < p->head_len)
		r = wsb_wsrx_feed(c, (unsigned char *)p->head + end,
				   p->head_len - end);
	free(p->head);
	free(p);
	return r;
}
