/*
 * The way through a proxy: one tunnel per connection attempt that goes
 * through an HTTP CONNECT or SOCKS5 proxy (its life and relay: relay.c).
 *
 * wsbeat talks to the proxy itself, on the engine's libuv loop: it resolves
 * the proxy's name (and, for socks5://, the server's) without blocking,
 * connects, and runs the CONNECT or SOCKS5 exchange.  libwebsockets cannot
 * take over a connected socket as a client, so once the tunnel stands the
 * attempt gives lws an abstract unix socket to connect to, and the tunnel
 * relays bytes between that socket and the proxy's: TLS, the upgrade and
 * every frame are lws's as on a direct link, end to end with the server.
 * Why not lws's own proxy support: docs/DESIGN.md, "Proxies".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "wsbeat.h"
#include "conn.h"
#include "tunnel.h"

static void resolve(struct wsb_tunnel *t, const char *host);

/*
 * The proxy's answer was the first n bytes read: the tunnel stands.  What
 * came after it is the server's (it spoke first): kept for lws.
 */
static void tn_answered(struct wsb_tunnel *t, size_t n)
{
	if (t->ans_len > n) {
		t->early_len = t->ans_len - n;
		t->early = malloc(t->early_len);
		if (!t->early) {
			wsb_tn_fail(t, "proxy", 0, "out of memory");
			return;
		}
		memcpy(t->early, t->ans + n, t->early_len);
	}
	wsb_tn_ready(t);
}

static void send_connect(struct wsb_tunnel *t)
{
	struct wsb_client *c = t->c;
	char req[1024], auth[512];
	int n;

	/* the server's name, never an address: the proxy resolves it */
	if (c->url.ipv6)
		n = snprintf(req, sizeof(req), "CONNECT [%s]:%d HTTP/1.1\r\n"
			     "Host: [%s]:%d\r\n", c->url.host, c->url.port,
			     c->url.host, c->url.port);
	else
		n = snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\n"
			     "Host: %s:%d\r\n", c->url.host, c->url.port,
			     c->url.host, c->url.port);
	n += snprintf(req + n, sizeof(req) - (size_t)n,
		      "User-Agent: wsbeat/%s\r\n", WSB_VERSION);
	if (c->at.proxy.user) {
		char cred[400];
		int cl = snprintf(cred, sizeof(cred), "%s:%s", c->at.proxy.user,
				  c->at.proxy.pass ? c->at.proxy.pass : "");

		if (cl < 0 || cl >= (int)sizeof(cred) ||
		    lws_b64_encode_string(cred, cl, auth, sizeof(auth)) < 0) {
			wsb_tn_fail(t, "proxy_auth", 0, "proxy credentials too long for %s",
				c->at.proxy.display);
			return;
		}
		n += snprintf(req + n, sizeof(req) - (size_t)n,
			      "Proxy-Authorization: Basic %s\r\n", auth);
		memset(cred, 0, sizeof(cred));
	}
	n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	if (wsb_tn_write(t, 1, req, (size_t)n))
		wsb_tn_fail(t, "proxy", 0, "cannot write to the proxy %s",
			c->at.proxy.display);
	memset(req, 0, sizeof(req));
	memset(auth, 0, sizeof(auth));
}

/* The reason phrase of a status line, printable only. */
static void status_text(const unsigned char *line, size_t len, char *out,
			size_t outlen)
{
	size_t k = 0;

	for (size_t i = 0; i < len && k + 1 < outlen; i++)
		out[k++] = line[i] >= 0x20 && line[i] < 0x7f ? (char)line[i] : '?';
	out[k] = '\0';
}

/* 1: answer complete (and handled), 0: need more */
static int http_answer(struct wsb_tunnel *t)
{
	struct wsb_client *c = t->c;
	unsigned char *end = NULL;
	const unsigned char *p = t->ans;
	char phrase[80];
	size_t hlen, eol;
	int status;

	for (size_t i = 3; i < t->ans_len; i++)
		if (!memcmp(t->ans + i - 3, "\r\n\r\n", 4)) {
			end = t->ans + i + 1;
			break;
		}
	if (!end) {
		if (t->ans_len >= ANSWER_MAX)
			wsb_tn_fail(t, "proxy", 0, "the proxy %s sent an answer over %d "
				"bytes", c->at.proxy.display, ANSWER_MAX);
		return t->ans_len >= ANSWER_MAX;
	}
	hlen = (size_t)(end - t->ans);
	if (hlen < 12 || memcmp(p, "HTTP/1.", 7) || p[8] != ' ' ||
	    p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
	    p[11] < '0' || p[11] > '9') {
		wsb_tn_fail(t, "proxy", 0, "the proxy %s did not answer with HTTP",
			c->at.proxy.display);
		return 1;
	}
	status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	for (eol = 12; eol < hlen && p[eol] != '\r'; eol++)
		;
	status_text(p + 12, eol - 12, phrase, sizeof(phrase));
	/* (tinyproxy answers wrong credentials with 401, missing ones 407) */
	if (status == 407 || status == 401) {
		wsb_tn_fail(t, "proxy_auth", status, "the proxy %s wants %s "
			"(HTTP %d%s)", c->at.proxy.display, c->at.proxy.user ?
			"other credentials" : "credentials", status, phrase);
		return 1;
	}
	if (status < 200 || status > 299) {
		wsb_tn_fail(t, "proxy", status, "the proxy %s refused the tunnel "
			"(HTTP %d%s)", c->at.proxy.display, status, phrase);
		return 1;
	}
	tn_answered(t, hlen);
	return 1;
}

static void socks_greet(struct wsb_tunnel *t)
{
	unsigned char g[4] = { 5, 1, 0, 0 };
	size_t n = 3;

	if (t->c->at.proxy.user) {
		g[1] = 2;
		g[3] = 2; /* no authentication, or username/password */
		n = 4;
	}
	t->socks = S_METHOD;
	if (wsb_tn_write(t, 1, g, n))
		wsb_tn_fail(t, "proxy", 0, "cannot write to the proxy %s",
			t->c->at.proxy.display);
}

static void socks_request(struct wsb_tunnel *t)
{
	struct wsb_client *c = t->c;
	unsigned char r[4 + 1 + 255 + 2];
	size_t n = 4;

	r[0] = 5;
	r[1] = 1; /* CONNECT */
	r[2] = 0;
	if (t->target_family == AF_INET) {
		r[3] = 1;
		memcpy(r + 4, t->target_ip, 4);
		n += 4;
	} else if (t->target_family == AF_INET6) {
		r[3] = 4;
		memcpy(r + 4, t->target_ip, 16);
		n += 16;
	} else {
		size_t hl = strlen(c->url.host);

		if (hl > 255) {
			wsb_tn_fail(t, "proxy", 0, "host name too long for SOCKS5");
			return;
		}
		r[3] = 3;
		r[4] = (unsigned char)hl;
		memcpy(r + 5, c->url.host, hl);
		n += 1 + hl;
	}
	r[n++] = (unsigned char)(c->url.port >> 8);
	r[n++] = (unsigned char)(c->url.port & 0xff);
	t->socks = S_CONNECT;
	if (wsb_tn_write(t, 1, r, n))
		wsb_tn_fail(t, "proxy", 0, "cannot write to the proxy %s",
			c->at.proxy.display);
}

static const char *socks_error(int rep)
{
	switch (rep) {
	case 1: return "general failure";
	case 2: return "connection not allowed by its rules";
	case 3: return "network unreachable";
	case 4: return "host unreachable";
	case 5: return "connection refused";
	case 6: return "TTL expired";
	case 7: return "command not supported";
	case 8: return "address type not supported";
	default: return "unknown error";
	}
}

/* Drop the first n bytes of the answer buffer (one step's answer). */
static void consume(struct wsb_tunnel *t, size_t n)
{
	memmove(t->ans, t->ans + n, t->ans_len - n);
	t->ans_len -= n;
}

/* The method the proxy chose: send credentials, or the request. */
static int socks_method(struct wsb_tunnel *t)
{
	struct wsb_client *c = t->c;
	const unsigned char *a = t->ans;

	if (t->ans_len < 2)
		return 0;
	if (a[0] != 5) {
		wsb_tn_fail(t, "proxy", 0, "%s is not a SOCKS5 proxy",
			c->at.proxy.display);
		return 1;
	}
	if (a[1] == 2 && c->at.proxy.user) {
		/* RFC 1929: version 1, user, password */
		unsigned char m[3 + 255 + 255];
		size_t ul = strlen(c->at.proxy.user);
		size_t pl = c->at.proxy.pass ? strlen(c->at.proxy.pass) : 0;

		if (ul > 255 || pl > 255) {
			wsb_tn_fail(t, "proxy_auth", 0, "SOCKS5 credentials longer "
				"than 255 bytes for %s", c->at.proxy.display);
			return 1;
		}
		m[0] = 1;
		m[1] = (unsigned char)ul;
		memcpy(m + 2, c->at.proxy.user, ul);
		m[2 + ul] = (unsigned char)pl;
		memcpy(m + 3 + ul, c->at.proxy.pass ? c->at.proxy.pass : "", pl);
		t->socks = S_AUTH;
		consume(t, 2);
		if (wsb_tn_write(t, 1, m, 3 + ul + pl))
			wsb_tn_fail(t, "proxy", 0, "cannot write to the proxy %s",
				c->at.proxy.display);
		memset(m, 0, sizeof(m));
		return 1;
	}
	if (a[1] != 0) {
		wsb_tn_fail(t, "proxy_auth", 0, "the SOCKS5 proxy %s accepts none of "
			"our authentication methods (%s)", c->at.proxy.display,
			c->at.proxy.user ? "none, username" :
			"none: it may want a username and password");
		return 1;
	}
	consume(t, 2);
	socks_request(t);
	return 1;
}

/* The answer to our credentials. */
static int socks_auth(struct wsb_tunnel *t)
{
	if (t->ans_len < 2)
		return 0;
	if (t->ans[1] != 0) {
		wsb_tn_fail(t, "proxy_auth", 0, "the SOCKS5 proxy %s refused the "
			"username and password", t->c->at.proxy.display);
		return 1;
	}
	consume(t, 2);
	socks_request(t);
	return 1;
}

/* The answer to CONNECT: the tunnel stands, or why not. */
static int socks_connected(struct wsb_tunnel *t)
{
	struct wsb_client *c = t->c;
	const unsigned char *a = t->ans;
	size_t need;

	if (t->ans_len < 5)
		return 0;
	if (a[0] != 5) {
		wsb_tn_fail(t, "proxy", 0, "the proxy %s broke the SOCKS5 protocol",
			c->at.proxy.display);
		return 1;
	}
	if (a[1] != 0) {
		/* the proxy works; the server is what failed */
		const char *cause = a[1] == 5 ? "refused" :
				    a[1] == 3 || a[1] == 4 ? "network" : "proxy";

		wsb_tn_fail(t, cause, 0, "the SOCKS5 proxy %s could not connect to "
			"%s:%d: %s", c->at.proxy.display, c->url.host,
			c->url.port, socks_error(a[1]));
		return 1;
	}
	need = a[3] == 1 ? 4 + 4 + 2 : a[3] == 4 ? 4 + 16 + 2 :
	       a[3] == 3 ? 4 + 1 + (size_t)a[4] + 2 : 0;
	if (!need) {
		wsb_tn_fail(t, "proxy", 0, "the proxy %s broke the SOCKS5 protocol",
			c->at.proxy.display);
		return 1;
	}
	if (t->ans_len < need)
		return 0;
	tn_answered(t, need);
	return 1;
}

/* 1: a step's answer was complete and handled, 0: need more bytes */
static int socks_answer(struct wsb_tunnel *t)
{
	switch (t->socks) {
	case S_METHOD:
		return socks_method(t);
	case S_AUTH:
		return socks_auth(t);
	case S_CONNECT:
		return socks_connected(t);
	}
	return 1;
}

static void alloc_answer(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct wsb_tunnel *t = h->data;

	(void)hint;
	if (!t->ans)
		t->ans = malloc(ANSWER_MAX);
	if (!t->ans || t->ans_len >= ANSWER_MAX) {
		*b = uv_buf_init(NULL, 0);
		return;
	}
	*b = uv_buf_init((char *)t->ans + t->ans_len,
			 (unsigned)(ANSWER_MAX - t->ans_len));
}

static void on_answer(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct wsb_tunnel *t = s->data;
	struct wsb_client *c = t->c;

	(void)b;
	if (!c || t->state != TN_HANDSHAKE)
		return;
	if (n == UV_ENOBUFS) {
		wsb_tn_fail(t, "proxy", 0, "out of memory");
		return;
	}
	if (n < 0) {
		wsb_tn_fail(t, "proxy", 0, "the proxy %s closed the connection "
			"during the %s exchange%s%s", c->at.proxy.display,
			c->at.proxy.kind == WSB_PROXY_HTTP ? "CONNECT" : "SOCKS5",
			n == UV_EOF ? "" : ": ", n == UV_EOF ? "" :
			uv_strerror((int)n));
		return;
	}
	t->ans_len += (size_t)n;
	if (c->at.proxy.kind == WSB_PROXY_HTTP) {
		http_answer(t);
		return;
	}
	/* (one read may hold the answers of several steps) */
	while (t->c && t->state == TN_HANDSHAKE && t->ans_len &&
	       socks_answer(t))
		;
}

static void on_proxy_connected(uv_connect_t *req, int status)
{
	struct wsb_tunnel *t = req->data;
	struct wsb_client *c = t->c;

	if (!c)
		return;
	if (status < 0) {
		wsb_tn_fail(t, "proxy", 0, "cannot reach the proxy %s: %s",
			c->at.proxy.display, uv_strerror(status));
		return;
	}
	t->state = TN_HANDSHAKE;
	uv_tcp_nodelay(&t->up, 1);
	if (uv_read_start((uv_stream_t *)&t->up, alloc_answer, on_answer)) {
		wsb_tn_fail(t, "proxy", 0, "cannot read from the proxy %s",
			c->at.proxy.display);
		return;
	}
	if (c->at.proxy.kind == WSB_PROXY_HTTP)
		send_connect(t);
	else
		socks_greet(t);
}

static void tn_connect(struct wsb_tunnel *t)
{
	int r;

	t->state = TN_CONNECT;
	if (uv_tcp_init(&t->e->loop, &t->up)) {
		wsb_tn_fail(t, "proxy", 0, "cannot create a socket");
		return;
	}
	t->up.data = t;
	t->up_open = 1;
	t->handles++;
	t->creq.data = t;
	r = uv_tcp_connect(&t->creq, &t->up,
			   (const struct sockaddr *)&t->proxy_addr,
			   on_proxy_connected);
	if (r)
		wsb_tn_fail(t, "proxy", 0, "cannot reach the proxy %s: %s",
			t->c->at.proxy.display, uv_strerror(r));
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
			struct addrinfo *ai)
{
	struct wsb_tunnel *t = req->data;
	struct wsb_client *c = t->c;

	t->resolving = 0;
	if (!c) {
		uv_freeaddrinfo(ai);
		wsb_tn_free_if_done(t);
		return;
	}
	if (status || !ai) {
		uv_freeaddrinfo(ai);
		if (t->state == TN_RESOLVE_PROXY)
			wsb_tn_fail(t, "proxy", 0, "cannot resolve the proxy %s: %s",
				c->at.proxy.display, status ? uv_strerror(status) :
				"no address");
		else
			wsb_tn_fail(t, "dns", 0, "cannot resolve '%s': %s",
				c->url.host, status ? uv_strerror(status) :
				"no address");
		return;
	}
	if (t->state == TN_RESOLVE_PROXY) {
		memcpy(&t->proxy_addr, ai->ai_addr, ai->ai_addrlen);
	} else {
		t->target_family = ai->ai_family;
		if (ai->ai_family == AF_INET6)
			memcpy(t->target_ip, &((struct sockaddr_in6 *)
					       ai->ai_addr)->sin6_addr, 16);
		else
			memcpy(t->target_ip, &((struct sockaddr_in *)
					       ai->ai_addr)->sin_addr, 4);
	}
	uv_freeaddrinfo(ai);
	if (t->state == TN_RESOLVE_PROXY && c->at.proxy.kind == WSB_PROXY_SOCKS5 &&
	    !t->target_family) {
		t->state = TN_RESOLVE_TARGET;
		resolve(t, c->url.host);
		return;
	}
	tn_connect(t);
}

static void resolve(struct wsb_tunnel *t, const char *host)
{
	struct addrinfo hints;
	char port[8];
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", t->c->at.proxy.port);
	t->gai.data = t;
	t->resolving = 1;
	r = uv_getaddrinfo(&t->e->loop, &t->gai, on_resolved, host,
			   t->state == TN_RESOLVE_PROXY ? port : NULL, &hints);
	if (r) {
		t->resolving = 0;
		wsb_tn_fail(t, t->state == TN_RESOLVE_PROXY ? "proxy" : "dns", 0,
			"cannot resolve '%s': %s", host, uv_strerror(r));
	}
}

/* A literal address into t->proxy_addr or t->target_ip: 1 when it is one. */
static int literal(struct wsb_tunnel *t, const char *host, int port,
		   int target)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, host, &a4) == 1) {
		if (target) {
			t->target_family = AF_INET;
			memcpy(t->target_ip, &a4, 4);
		} else {
			uv_ip4_addr(host, port, (struct sockaddr_in *)&t->proxy_addr);
		}
		return 1;
	}
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (target) {
			t->target_family = AF_INET6;
			memcpy(t->target_ip, &a6, 16);
		} else {
			uv_ip6_addr(host, port, (struct sockaddr_in6 *)&t->proxy_addr);
		}
		return 1;
	}
	return 0;
}

void wsb_tunnel_start(struct wsb_client *c)
{
	struct wsb_tunnel *t = calloc(1, sizeof(*t));

	if (!t) {
		wsb_lost(c, "proxy", 0, 0, "out of memory");
		return;
	}
	t->c = c;
	t->e = c->e;
	c->at.tunnel = t;
	if (c->at.proxy.kind == WSB_PROXY_SOCKS5)
		literal(t, c->url.host, 0, 1);
	if (!literal(t, c->at.proxy.host, c->at.proxy.port, 0)) {
		t->state = TN_RESOLVE_PROXY;
		resolve(t, c->at.proxy.host);
		return;
	}
	if (c->at.proxy.kind == WSB_PROXY_SOCKS5 && !t->target_family) {
		t->state = TN_RESOLVE_TARGET;
		resolve(t, c->url.host);
		return;
	}
	tn_connect(t);
}
