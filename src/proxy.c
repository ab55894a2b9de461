/*
 * The way through a proxy: one tunnel per connection attempt that goes
 * through an HTTP CONNECT or SOCKS5 proxy.
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
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>

#include "wsbeat.h"

#define ANSWER_MAX 16384  /* a proxy's answer to CONNECT, headers included */
#define RELAY_CHUNK 65536 /* one read of the relay */

enum tn_state {
	TN_RESOLVE_PROXY, /* the proxy's name */
	TN_RESOLVE_TARGET,/* the server's name (socks5://) */
	TN_CONNECT,       /* TCP to the proxy */
	TN_HANDSHAKE,     /* CONNECT or SOCKS5 exchange */
	TN_RELAY          /* the tunnel stands: lws connects, bytes flow */
};

enum socks_step { S_METHOD, S_AUTH, S_CONNECT };

struct wsb_tunnel {
	struct wsb_client *c;   /* NULL once abandoned */
	struct wsb_engine *e;
	enum tn_state state;
	int handles;            /* initialised handles not yet closed */
	int resolving;          /* a uv_getaddrinfo is in flight */
	uv_getaddrinfo_t gai;
	uv_connect_t creq;
	uv_tcp_t up;            /* to the proxy */
	uv_pipe_t lsn;          /* where lws connects */
	uv_pipe_t down;         /* lws's end, once accepted */
	int up_open, lsn_open, down_open;
	char name[64];          /* abstract socket name, after the '@' */
	struct sockaddr_storage proxy_addr;
	/* socks5:// resolves the server itself */
	int target_family;
	unsigned char target_ip[16];
	/* the proxy's answer */
	unsigned char *ans;
	size_t ans_len;
	enum socks_step socks;
	/* bytes that followed the answer, for lws */
	unsigned char *early;
	size_t early_len;
	/* relay: one write in flight per direction at most */
	unsigned char *buf_up, *buf_down; /* read buffers: from up, from down */
	int to_down_busy, to_up_busy;
	int up_done, down_done; /* EOF or error seen on that side */
	double last_rx;         /* when bytes last came from the proxy */
};

struct tn_write {
	uv_write_t req;
	struct wsb_tunnel *t;
	int to_up;
	size_t len;
	unsigned char data[];
};

static unsigned serial;

static void tn_free_if_done(struct wsb_tunnel *t)
{
	if (t->c || t->handles || t->resolving || t->to_up_busy ||
	    t->to_down_busy)
		return;
	free(t->ans);
	free(t->early);
	free(t->buf_up);
	free(t->buf_down);
	free(t);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct wsb_tunnel *t = h->data;

	t->handles--;
	tn_free_if_done(t);
}

static void close_handle(struct wsb_tunnel *t, uv_handle_t *h, int *open)
{
	if (*open) {
		*open = 0;
		uv_close(h, on_handle_closed);
	}
}

static void tn_close_all(struct wsb_tunnel *t)
{
	close_handle(t, (uv_handle_t *)&t->up, &t->up_open);
	close_handle(t, (uv_handle_t *)&t->lsn, &t->lsn_open);
	close_handle(t, (uv_handle_t *)&t->down, &t->down_open);
}

/* The attempt failed in the tunnel: tell the client (which abandons us). */
static void tn_fail(struct wsb_tunnel *t, const char *cause, int status,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void tn_fail(struct wsb_tunnel *t, const char *cause, int status,
		    const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (t->c)
		wsb_client_lost(t->c, cause, status, "%s", msg);
	else
		tn_close_all(t);
}

/* ------------------------------------------------------------ writing */

static void on_written(uv_write_t *req, int status);

/* Queue bytes to the proxy (up) or to lws (down); 0 ok, else a uv error. */
static int tn_write(struct wsb_tunnel *t, int to_up, const void *data,
		    size_t len)
{
	uv_stream_t *s = to_up ? (uv_stream_t *)&t->up : (uv_stream_t *)&t->down;
	struct tn_write *w;
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
	int n = 0, r;

	/* (nothing in flight in this direction: no reordering) */
	if (!(to_up ? t->to_up_busy : t->to_down_busy)) {
		n = uv_try_write(s, &b, 1);
		if (n == (int)len)
			return 0;
		if (n < 0 && n != UV_EAGAIN)
			return n;
		if (n < 0)
			n = 0;
	}
	w = malloc(sizeof(*w) + len - (size_t)n);
	if (!w)
		return UV_ENOMEM;
	w->t = t;
	w->to_up = to_up;
	w->len = len - (size_t)n;
	memcpy(w->data, (const unsigned char *)data + n, w->len);
	b = uv_buf_init((char *)w->data, (unsigned)w->len);
	r = uv_write(&w->req, s, &b, 1, on_written);
	if (r) {
		free(w);
		return r;
	}
	if (to_up)
		t->to_up_busy = 1;
	else
		t->to_down_busy = 1;
	return 0;
}

static void relay_resume(struct wsb_tunnel *t, int from_up);
static void relay_finish(struct wsb_tunnel *t);

static void on_written(uv_write_t *req, int status)
{
	struct tn_write *w = (struct tn_write *)req;
	struct wsb_tunnel *t = w->t;
	int to_up = w->to_up;

	free(w);
	if (to_up)
		t->to_up_busy = 0;
	else
		t->to_down_busy = 0;
	if (!t->c) {
		tn_free_if_done(t);
		return;
	}
	if (status < 0) {
		if (t->state == TN_RELAY) {
			if (to_up)
				t->up_done = 1;
			else
				t->down_done = 1;
			relay_finish(t);
		} else {
			tn_fail(t, "proxy", 0, "cannot write to the proxy %s: %s",
				t->c->at.proxy.display, uv_strerror(status));
		}
		return;
	}
	if (t->state == TN_RELAY) {
		/* the reading side paused while its bytes were in flight */
		relay_resume(t, !to_up);
		relay_finish(t);
	}
}

/* ---------------------------------------------------------------- relay */

static void alloc_up(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct wsb_tunnel *t = h->data;

	(void)hint;
	*b = uv_buf_init((char *)t->buf_up, RELAY_CHUNK);
}

static void alloc_down(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct wsb_tunnel *t = h->data;

	(void)hint;
	*b = uv_buf_init((char *)t->buf_down, RELAY_CHUNK);
}

/*
 * One side is done (EOF or error): once what it sent is delivered, close
 * the other.  lws reads what is in its socket before it sees the end, so
 * the server's last frames (its close) are not lost.
 */
static void relay_finish(struct wsb_tunnel *t)
{
	if (t->up_done && !t->to_down_busy)
		close_handle(t, (uv_handle_t *)&t->down, &t->down_open);
	if (t->down_done && !t->to_up_busy)
		close_handle(t, (uv_handle_t *)&t->up, &t->up_open);
}

static void on_read_up(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void on_read_down(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void relay_resume(struct wsb_tunnel *t, int from_up)
{
	if (from_up && t->up_open && !t->up_done)
		uv_read_start((uv_stream_t *)&t->up, alloc_up, on_read_up);
	if (!from_up && t->down_open && !t->down_done)
		uv_read_start((uv_stream_t *)&t->down, alloc_down, on_read_down);
}

static void relay(struct wsb_tunnel *t, int from_up, ssize_t n,
		  const uv_buf_t *b)
{
	uv_stream_t *src = from_up ? (uv_stream_t *)&t->up :
				     (uv_stream_t *)&t->down;

	if (n == 0)
		return;
	if (n < 0) {
		uv_read_stop(src);
		if (from_up)
			t->up_done = 1;
		else
			t->down_done = 1;
		relay_finish(t);
		return;
	}
	if (from_up && !t->down_open)
		return; /* lws is gone: nobody to give it to */
	if (tn_write(t, !from_up, b->base, (size_t)n)) {
		uv_read_stop(src);
		if (from_up)
			t->down_done = 1;
		else
			t->up_done = 1;
		relay_finish(t);
		return;
	}
	/* backpressure: read no more until the other side took it */
	if (from_up ? t->to_down_busy : t->to_up_busy)
		uv_read_stop(src);
}

static void on_read_up(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct wsb_tunnel *t = s->data;

	if (n > 0)
		t->last_rx = wsb_now(t->e);
	relay(t, 1, n, b);
}

static void on_read_down(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	relay(s->data, 0, n, b);
}

/* lws connected to our socket: check it is ours, then relay. */
static void on_lws_connection(uv_stream_t *lsn, int status)
{
	struct wsb_tunnel *t = lsn->data;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	uv_os_fd_t fd;

	if (status < 0 || !t->c)
		return;
	if (uv_pipe_init(&t->e->loop, &t->down, 0))
		return;
	t->down.data = t;
	t->down_open = 1;
	t->handles++;
	if (uv_accept(lsn, (uv_stream_t *)&t->down)) {
		close_handle(t, (uv_handle_t *)&t->down, &t->down_open);
		return;
	}
	/* an abstract name is visible to every process: only our own
	 * connection (lws's, in this process) gets the tunnel */
	if (uv_fileno((uv_handle_t *)&t->down, &fd) ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) ||
	    cred.pid != getpid()) {
		close_handle(t, (uv_handle_t *)&t->down, &t->down_open);
		return; /* keep listening for lws */
	}
	close_handle(t, (uv_handle_t *)&t->lsn, &t->lsn_open);
	t->buf_up = malloc(RELAY_CHUNK);
	t->buf_down = malloc(RELAY_CHUNK);
	if (!t->buf_up || !t->buf_down) {
		tn_fail(t, "proxy", 0, "out of memory");
		return;
	}
	if (t->early_len && tn_write(t, 0, t->early, t->early_len)) {
		tn_fail(t, "proxy", 0, "cannot relay through %s",
			t->c->at.proxy.display);
		return;
	}
	relay_resume(t, 1);
	relay_resume(t, 0);
	if (t->to_down_busy)
		uv_read_stop((uv_stream_t *)&t->up);
}

/* The tunnel stands: open the socket lws will connect to, and hand over. */
static void tn_ready(struct wsb_tunnel *t)
{
	struct sockaddr_un sa;
	char address[80];
	socklen_t len;
	int fd;

	t->state = TN_RELAY;
	uv_read_stop((uv_stream_t *)&t->up);
	snprintf(t->name, sizeof(t->name), "wsbeat-%ld-%u", (long)getpid(),
		 ++serial);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, t->name, strlen(t->name)); /* abstract */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			  strlen(t->name));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) ||
	    uv_pipe_init(&t->e->loop, &t->lsn, 0)) {
		if (fd >= 0)
			close(fd);
		tn_fail(t, "proxy", 0, "cannot open the local end of the tunnel: %s",
			strerror(errno));
		return;
	}
	t->lsn.data = t;
	t->lsn_open = 1;
	t->handles++;
	if (uv_pipe_open(&t->lsn, fd) ||
	    uv_listen((uv_stream_t *)&t->lsn, 4, on_lws_connection)) {
		tn_fail(t, "proxy", 0, "cannot listen on the local end of the tunnel");
		return;
	}
	snprintf(address, sizeof(address), "+@%s", t->name);
	wsb_client_tunnel_ready(t->c, address);
}

/* ------------------------------------------------------- HTTP CONNECT */

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
			tn_fail(t, "proxy_auth", 0, "proxy credentials too long for %s",
				c->at.proxy.display);
			return;
		}
		n += snprintf(req + n, sizeof(req) - (size_t)n,
			      "Proxy-Authorization: Basic %s\r\n", auth);
		memset(cred, 0, sizeof(cred));
	}
	n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	if (tn_write(t, 1, req, (size_t)n))
		tn_fail(t, "proxy", 0, "cannot write to the proxy %s",
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
			tn_fail(t, "proxy", 0, "the proxy %s sent an answer over %d "
				"bytes", c->at.proxy.display, ANSWER_MAX);
		return t->ans_len >= ANSWER_MAX;
	}
	hlen = (size_t)(end - t->ans);
	if (hlen < 12 || memcmp(p, "HTTP/1.", 7) || p[8] != ' ' ||
	    p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
	    p[11] < '0' || p[11] > '9') {
		tn_fail(t, "proxy", 0, "the proxy %s did not answer with HTTP",
			c->at.proxy.display);
		return 1;
	}
	status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	for (eol = 12; eol < hlen && p[eol] != '\r'; eol++)
		;
	status_text(p + 12, eol - 12, phrase, sizeof(phrase));
	/* (tinyproxy answers wrong credentials with 401, missing ones 407) */
	if (status == 407 || status == 401) {
		tn_fail(t, "proxy_auth", status, "the proxy %s wants %s "
			"(HTTP %d%s)", c->at.proxy.display, c->at.proxy.user ?
			"other credentials" : "credentials", status, phrase);
		return 1;
	}
	if (status < 200 || status > 299) {
		tn_fail(t, "proxy", status, "the proxy %s refused the tunnel "
			"(HTTP %d%s)", c->at.proxy.display, status, phrase);
		return 1;
	}
	if (t->ans_len > hlen) {
		/* the server spoke first: keep it for lws */
		t->early_len = t->ans_len - hlen;
		t->early = malloc(t->early_len);
		if (!t->early) {
			tn_fail(t, "proxy", 0, "out of memory");
			return 1;
		}
		memcpy(t->early, end, t->early_len);
	}
	tn_ready(t);
	return 1;
}

/* -------------------------------------------------------------- SOCKS5 */

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
	if (tn_write(t, 1, g, n))
		tn_fail(t, "proxy", 0, "cannot write to the proxy %s",
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
			tn_fail(t, "proxy", 0, "host name too long for SOCKS5");
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
	if (tn_write(t, 1, r, n))
		tn_fail(t, "proxy", 0, "cannot write to the proxy %s",
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
		tn_fail(t, "proxy", 0, "%s is not a SOCKS5 proxy",
			c->at.proxy.display);
		return 1;
	}
	if (a[1] == 2 && c->at.proxy.user) {
		/* RFC 1929: version 1, user, password */
		unsigned char m[3 + 255 + 255];
		size_t ul = strlen(c->at.proxy.user);
		size_t pl = c->at.proxy.pass ? strlen(c->at.proxy.pass) : 0;

		if (ul > 255 || pl > 255) {
			tn_fail(t, "proxy_auth", 0, "SOCKS5 credentials longer "
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
		if (tn_write(t, 1, m, 3 + ul + pl))
			tn_fail(t, "proxy", 0, "cannot write to the proxy %s",
				c->at.proxy.display);
		memset(m, 0, sizeof(m));
		return 1;
	}
	if (a[1] != 0) {
		tn_fail(t, "proxy_auth", 0, "the SOCKS5 proxy %s accepts none of "
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
		tn_fail(t, "proxy_auth", 0, "the SOCKS5 proxy %s refused the "
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
		tn_fail(t, "proxy", 0, "the proxy %s broke the SOCKS5 protocol",
			c->at.proxy.display);
		return 1;
	}
	if (a[1] != 0) {
		/* the proxy works; the server is what failed */
		const char *cause = a[1] == 5 ? "refused" :
				    a[1] == 3 || a[1] == 4 ? "network" : "proxy";

		tn_fail(t, cause, 0, "the SOCKS5 proxy %s could not connect to "
			"%s:%d: %s", c->at.proxy.display, c->url.host,
			c->url.port, socks_error(a[1]));
		return 1;
	}
	need = a[3] == 1 ? 4 + 4 + 2 : a[3] == 4 ? 4 + 16 + 2 :
	       a[3] == 3 ? 4 + 1 + (size_t)a[4] + 2 : 0;
	if (!need) {
		tn_fail(t, "proxy", 0, "the proxy %s broke the SOCKS5 protocol",
			c->at.proxy.display);
		return 1;
	}
	if (t->ans_len < need)
		return 0;
	if (t->ans_len > need) {
		t->early_len = t->ans_len - need;
		t->early = malloc(t->early_len);
		if (!t->early) {
			tn_fail(t, "proxy", 0, "out of memory");
			return 1;
		}
		memcpy(t->early, a + need, t->early_len);
	}
	tn_ready(t);
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

/* --------------------------------------------------------- the exchange */

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
		tn_fail(t, "proxy", 0, "out of memory");
		return;
	}
	if (n < 0) {
		tn_fail(t, "proxy", 0, "the proxy %s closed the connection "
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
		tn_fail(t, "proxy", 0, "cannot reach the proxy %s: %s",
			c->at.proxy.display, uv_strerror(status));
		return;
	}
	t->state = TN_HANDSHAKE;
	uv_tcp_nodelay(&t->up, 1);
	if (uv_read_start((uv_stream_t *)&t->up, alloc_answer, on_answer)) {
		tn_fail(t, "proxy", 0, "cannot read from the proxy %s",
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
		tn_fail(t, "proxy", 0, "cannot create a socket");
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
		tn_fail(t, "proxy", 0, "cannot reach the proxy %s: %s",
			t->c->at.proxy.display, uv_strerror(r));
}

static void resolve(struct wsb_tunnel *t, const char *host);

static void on_resolved(uv_getaddrinfo_t *req, int status,
			struct addrinfo *ai)
{
	struct wsb_tunnel *t = req->data;
	struct wsb_client *c = t->c;

	t->resolving = 0;
	if (!c) {
		uv_freeaddrinfo(ai);
		tn_free_if_done(t);
		return;
	}
	if (status || !ai) {
		uv_freeaddrinfo(ai);
		if (t->state == TN_RESOLVE_PROXY)
			tn_fail(t, "proxy", 0, "cannot resolve the proxy %s: %s",
				c->at.proxy.display, status ? uv_strerror(status) :
				"no address");
		else
			tn_fail(t, "dns", 0, "cannot resolve '%s': %s",
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
		tn_fail(t, t->state == TN_RESOLVE_PROXY ? "proxy" : "dns", 0,
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

/* ------------------------------------------------------------ interface */

void wsb_tunnel_start(struct wsb_client *c)
{
	struct wsb_tunnel *t = calloc(1, sizeof(*t));

	if (!t) {
		wsb_client_lost(c, "proxy", 0, "out of memory");
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

/* The attempt is over: close everything; memory goes when libuv is done. */
void wsb_tunnel_abandon(struct wsb_client *c)
{
	struct wsb_tunnel *t = c->at.tunnel;

	if (!t)
		return;
	c->at.tunnel = NULL;
	t->c = NULL;
	if (t->resolving)
		uv_cancel((uv_req_t *)&t->gai);
	tn_close_all(t);
	tn_free_if_done(t);
}

/* When bytes last came from the proxy (0: never), for the heartbeat. */
double wsb_tunnel_last_rx(struct wsb_client *c)
{
	return c->at.tunnel ? c->at.tunnel->last_rx : 0;
}

/*
 * Input the relay has not carried to lws yet counts as waiting (stall
 * immunity: after a long stall the heartbeat's timer may run before the
 * relay has read the pong from the proxy's socket).
 */
int wsb_tunnel_input_waiting(struct wsb_client *c)
{
	struct wsb_tunnel *t = c->at.tunnel;
	struct pollfd pfd;
	uv_os_fd_t fd;

	if (!t || !t->up_open || t->state != TN_RELAY)
		return 0;
	if (t->to_down_busy)
		return 1;
	if (uv_fileno((uv_handle_t *)&t->up, &fd))
		return 0;
	pfd.fd = fd;
	pfd.events = POLLIN;
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLIN | POLLHUP | POLLERR));
}
