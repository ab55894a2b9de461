/*
 * The accepting side.  wsbeat listens on a socket of its own, watched on
 * the engine's libuv loop, and hands every accepted socket to a
 * libwebsockets vhost that does not listen itself, as a raw socket
 * (lws_adopt_descriptor_vhost): lws does TCP and TLS, wsbeat the HTTP
 * upgrade (handshake.c) and the frames (srvrx.c), because lws 4.1's
 * WebSocket server gets several of them wrong (docs/DESIGN.md, "The
 * server reads its own frames").  Bind errors are ours to report, port 0
 * is read back at once, and a server's port is released the moment it
 * stops listening.  Until its upgrade a socket is a "pending" handshake
 * with a deadline (handshake_timeout); the upgrade is decided here
 * (limits, on_upgrade, the subprotocol, permessage-deflate), and from then
 * on the connection is a struct wsb_client in the server role: the same
 * heartbeat, send path, receive queue and close handshake as a client's,
 * frames unmasked, never reconnected.
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

/*
 * One lws vhost per TLS configuration (certificate, client
 * certificates), kept for the engine's life like the clients' vhosts.
 */
struct wsb_srvhost {
	struct wsb_srvhost *next;
	int tls, verify_client;
	char *cert_file, *key_file, *ca_file;
	struct lws_vhost *vh;
	struct lws_protocols protos[2];
	char name[32];
};

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void srvhost_free(struct wsb_srvhost *h)
{
	free(h->cert_file);
	free(h->key_file);
	free(h->ca_file);
	free(h);
}

void wsb_srvhosts_free(struct wsb_engine *e)
{
	struct wsb_srvhost *h;

	while ((h = e->srvhosts)) {
		e->srvhosts = h->next;
		srvhost_free(h);
	}
}

/* No lws "validity" pings (default: after 300 s idle): the heartbeat is
 * wsbeat's, and lws re-inserted a sorted timer on every pong, which cost
 * 63 % of a core at 10,000 connections (DESIGN.md, Many connections; the
 * clients' attempts have the same policy, attempt.c). */
static const lws_retry_bo_t no_validity = { 0 };

static struct wsb_srvhost *srvhost_for(struct wsb_server *s, char *err,
				       size_t errlen)
{
	struct wsb_engine *e = s->e;
	struct lws_context_creation_info info;
	struct wsb_srvhost *h;
	static int serial;

	for (h = e->srvhosts; h; h = h->next)
		if (h->tls == s->tls && h->verify_client == s->verify_client &&
		    same(h->cert_file, s->cert_file) &&
		    same(h->key_file, s->key_file) &&
		    same(h->ca_file, s->ca_file))
			return h;
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->tls = s->tls;
	h->verify_client = s->verify_client;
	h->cert_file = dup_or_null(s->cert_file);
	h->key_file = dup_or_null(s->key_file);
	h->ca_file = dup_or_null(s->ca_file);
	h->protos[0].name = "wsbeat";
	h->protos[0].callback = wsb_lws_callback;
	h->protos[0].tx_packet_size = WSB_TX_CHUNK + 16;
	snprintf(h->name, sizeof(h->name), "wsbeat-server-%d", ++serial);

	memset(&info, 0, sizeof(info));
	/*
	 * Adopted sockets only, but not with CONTEXT_PORT_NO_LISTEN_SERVER:
	 * lws re-picks a request's vhost (by Host header, and by SNI for TLS)
	 * among the vhosts of the same listen port, so with that port shared
	 * by every server vhost a connection could end up with another
	 * server's certificate.  A port of its own,
	 * outside TCP's range, on an interface that cannot exist (longer than
	 * IFNAMSIZ): lws then defers listening for good ("no such interface",
	 * rechecked every 30 s) and never binds anything.
	 */
	info.port = 100000 + serial;
	info.iface = "wsbeat-adopted-sockets-only";
	info.protocols = h->protos;
	info.vhost_name = h->name;
	info.retry_and_idle_policy = &no_validity;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.http_proxy_address = ":0"; /* (engine.c: never the environment's) */
	if (s->tls) {
		info.ssl_cert_filepath = s->cert_file;
		info.ssl_private_key_filepath = s->key_file;
		info.ssl_ca_filepath = s->ca_file;
		if (s->verify_client)
			info.options |=
				LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
	}
	h->vh = lws_create_vhost(e->ctx, &info);
	if (!h->vh) {
		snprintf(err, errlen, "cannot set up %s (libwebsockets refused "
			 "the configuration%s)", s->tls ? "TLS" : "the server",
			 s->tls ? ": check tls.cert_file, tls.key_file and "
			 "tls.ca_file" : "");
		srvhost_free(h);
		return NULL;
	}
	h->next = e->srvhosts;
	e->srvhosts = h;
	return h;
}

/* ------------------------------------------------- pending handshakes */

static void on_hs_timer(uv_timer_t *t);

static void hs_arm(struct wsb_server *s)
{
	struct wsb_pending *p = TAILQ_FIRST(&s->pending);
	double now;

	if (!p) {
		uv_timer_stop(&s->hs_timer);
		return;
	}
	now = wsb_now(s->e);
	uv_update_time(&s->e->loop);
	uv_timer_start(&s->hs_timer, on_hs_timer, p->deadline <= now ? 0 :
		       (uint64_t)ceil((p->deadline - now) * 1000.0), 0);
}

/* Off the deadline list; the wsi keeps p as its user until destroyed. */
static void pending_unlist(struct wsb_pending *p)
{
	struct wsb_server *s = p->s;

	if (!p->listed)
		return;
	p->listed = 0;
	TAILQ_REMOVE(&s->pending, p, link);
	s->npending--;
	p->s = NULL;
}

static void on_hs_timer(uv_timer_t *t)
{
	struct wsb_server *s = t->data;
	double now = wsb_now(s->e);
	struct wsb_pending *p;

	/* one deadline for all: the list is in deadline order */
	while ((p = TAILQ_FIRST(&s->pending)) && p->deadline <= now + 0.0005) {
		if (!p->answered) {
			wsb_log(s->e, WSB_LOG_INFO, "server :%d: %s:%d did not "
				"finish its opening handshake within %g s: "
				"dropped", s->port, p->remote, p->remote_port,
				s->handshake_timeout);
			s->hs_timeouts++;
		}
		pending_unlist(p);
		lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK,
				LWS_TO_KILL_ASYNC);
	}
	wsb_engine_kick(s->e);
	hs_arm(s);
}

static void addr_string(const struct sockaddr_storage *ss, char *buf,
			size_t len, int *port)
{
	*port = 0;
	buf[0] = '\0';
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, buf, (socklen_t)len);
		*port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, buf, (socklen_t)len);
		*port = ntohs(a->sin6_port);
		/* a v4 client of a dual-stack socket: say it as v4 */
		if (!strncmp(buf, "::ffff:", 7) && strchr(buf + 7, '.'))
			memmove(buf, buf + 7, strlen(buf + 7) + 1);
	}
}

static void accept_one(struct wsb_server *s, int fd,
		       const struct sockaddr_storage *ss)
{
	struct wsb_pending *p = calloc(1, sizeof(*p));
	lws_sock_file_fd_type d;
	struct lws *wsi;
	int one = 1;

	if (!p) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	d.sockfd = fd;
	/* raw: lws does TCP and TLS, the rest is ours (closes fd on failure) */
	wsi = lws_adopt_descriptor_vhost(s->vh, LWS_ADOPT_SOCKET |
					 LWS_ADOPT_ALLOW_SSL, d, "wsbeat", NULL);
	if (!wsi) {
		free(p);
		return;
	}
	p->magic = WSB_PENDING_MAGIC;
	p->s = s;
	p->wsi = wsi;
	addr_string(ss, p->remote, sizeof(p->remote), &p->remote_port);
	p->deadline = wsb_now(s->e) + s->handshake_timeout;
	p->listed = 1;
	TAILQ_INSERT_TAIL(&s->pending, p, link);
	s->npending++;
	s->accepted++;
	lws_set_wsi_user(wsi, p);
	if (TAILQ_FIRST(&s->pending) == p)
		hs_arm(s);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
	struct wsb_server *s = h->data;

	(void)events;
	if (status < 0)
		return;
	/* a bounded batch per wake-up: a connect flood can't starve the
	 * connections already open */
	for (int i = 0; i < 64 && s->fd >= 0; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(s->fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE)
				wsb_log(s->e, WSB_LOG_WARN, "server :%d: cannot "
					"accept: %s", s->port, strerror(errno));
			break;
		}
		if (s->closing) {
			close(fd);
			continue;
		}
		accept_one(s, fd, &ss);
	}
}

/* --------------------------------------------------------------- listen */

/* the server's memory goes with its last handle, once Lua let it go */
static void on_handle_closed(uv_handle_t *h)
{
	struct wsb_server *s = h->data;

	if (--s->handles == 0 && s->freed)
		free(s);
}

int wsb_server_listen(struct wsb_server *s, char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[16];
	int fd = -1, r, one = 1, saved = 0;
	struct wsb_srvhost *h;

	TAILQ_INIT(&s->pending);
	LIST_INIT(&s->conns);
	s->fd = -1;
	h = srvhost_for(s, err, errlen);
	if (!h)
		return -1;
	s->vh = h->vh;
	s->sh = h;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", s->port);
	r = getaddrinfo(s->host, port, &hints, &res);
	if (r) {
		snprintf(err, errlen, "cannot resolve '%s': %s", s->host,
			 gai_strerror(r));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
			    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, ai->ai_addr, ai->ai_addrlen) &&
		    !listen(fd, SOMAXCONN))
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s port %d: %s",
			 s->host, s->port, strerror(saved));
		return -1;
	}
	if (!getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		char a[64];

		addr_string(&ss, a, sizeof(a), &s->port);
	}
	r = uv_poll_init(&s->e->loop, &s->poll, fd);
	if (r) {
		close(fd);
		snprintf(err, errlen, "%s", uv_strerror(r));
		return -1;
	}
	s->poll.data = s;
	uv_timer_init(&s->e->loop, &s->hs_timer);
	s->hs_timer.data = s;
	s->handles = 2;
	s->fd = fd;
	uv_poll_start(&s->poll, UV_READABLE, on_accept);
	s->magic = WSB_SERVER_MAGIC;
	LIST_INSERT_HEAD(&s->e->servers, s, link);
	s->e->live++; /* run() serves while a server listens */
	wsb_log(s->e, WSB_LOG_INFO, "server listening on %s port %d (%s)",
		s->host, s->port, s->tls ? "wss" : "ws");
	wsb_engine_kick(s->e);
	return 0;
}

/*
 * Stop listening: the port is free from here on.  The poll handle is
 * closed here, before the socket, never later: libuv's poll stop (and
 * close) removes its fd *number* from epoll, and once the socket is
 * closed that number may belong to the next server's listening socket,
 * which would then never accept again (seen when an old server was
 * collected while a new one served).
 */
static void stop_listening(struct wsb_server *s)
{
	if (s->fd < 0)
		return;
	uv_close((uv_handle_t *)&s->poll, on_handle_closed);
	close(s->fd);
	s->fd = -1;
	s->e->live--;
}

static void pending_drop_all(struct wsb_server *s)
{
	struct wsb_pending *p;

	while ((p = TAILQ_FIRST(&s->pending))) {
		pending_unlist(p);
		lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK,
				LWS_TO_KILL_ASYNC);
	}
	uv_timer_stop(&s->hs_timer);
}

/*
 * server:close(): stop listening (new connections are refused at once),
 * drop the handshakes under way and close every connection (code, by
 * default 1001, cause "server_closed"); the Lua side waits for them.
 */
void wsb_server_close(struct wsb_server *s, int code, const char *reason,
		      size_t len)
{
	struct wsb_client *c, *next;

	s->closing = 1;
	stop_listening(s);
	pending_drop_all(s);
	for (c = LIST_FIRST(&s->conns); c; c = next) {
		next = LIST_NEXT(c, srv_link);
		if (c->st == WSB_OPEN) {
			c->close.by = "server_closed";
			wsb_client_close(c, code, reason, len);
		}
	}
	wsb_engine_kick(s->e);
}

/*
 * The server's userdata is collected (or the engine goes): its
 * connections stay until theirs are, without it.
 */
void wsb_server_free(struct wsb_server *s)
{
	struct wsb_client *c;

	free(s->cert_file);
	free(s->key_file);
	free(s->ca_file);
	free(s->o.hb_message);
	free(s->o.protocols);
	if (!s->handles) { /* never listened */
		free(s);
		return;
	}
	stop_listening(s);
	pending_drop_all(s);
	while ((c = LIST_FIRST(&s->conns))) {
		LIST_REMOVE(c, srv_link);
		c->srv = NULL;
	}
	LIST_REMOVE(s, link);
	s->magic = 0;
	s->freed = 1;
	uv_close((uv_handle_t *)&s->hs_timer, on_handle_closed);
}

/* ---------------------------------------------------------- the upgrade */

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
	    lws_write(wsi, (unsigned char *)t, (size_t)n, LWS_WRITE_RAW) < 0)
		return -1;
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
	c->o.compression = 0; /* (lws's, for clients; ours is srvrx.c's) */
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
static int switch_protocols(struct lws *wsi, const struct wsb_hs_req *q,
			    const char *protocol, const char *ext)
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
	return lws_write(wsi, (unsigned char *)t, (size_t)n, LWS_WRITE_RAW) < 0 ?
	       -1 : 0;
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
	if (wsb_srvrx_new(c, deflate ? &pp : NULL) < 0) {
		wsb_client_free(c);
		return answer(wsi, p, 500, "out of memory");
	}
	c->tx.zsend = deflate;
	snprintf(c->protocol, sizeof(c->protocol), "%s", v.protocol);
	if (switch_protocols(wsi, q, c->protocol, ext) < 0) {
		wsb_client_free(c);
		return -1;
	}
	pending_unlist(p);
	lws_set_wsi_user(wsi, c);
	/* (lws's own deadline for the TLS handshake's next step) */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	on_established(c, wsi);
	return 0;
}

/* A server connection reached "closed" (or went before it): its slot is
 * free for the next one, and its compression state goes. */
void wsb_server_conn_closed(struct wsb_client *c)
{
	if (c->srv)
		c->srv->live--;
	wsb_srvrx_release(c);
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
static int pending_rx(struct lws *wsi, struct wsb_pending *p, void *in,
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
		r = wsb_srvrx_feed(c, (unsigned char *)p->head + end,
				   p->head_len - end);
	free(p->head);
	free(p);
	return r;
}

/* The lws callback's reasons for a socket not yet upgraded (its user is a
 * wsb_pending); after the upgrade they are callback.c's. */
int wsb_server_callback(struct lws *wsi, enum lws_callback_reasons reason,
			void *user, void *in, size_t len)
{
	struct wsb_pending *p = user;

	switch (reason) {
	case LWS_CALLBACK_RAW_RX:
		return pending_rx(wsi, p, in, len);
	case LWS_CALLBACK_RAW_WRITEABLE:
		/* a refusal written after all: shut our side */
		if (p->answered && !lws_partial_buffered(wsi))
			shutdown(lws_get_socket_fd(wsi), SHUT_WR);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		if (p->listed) {
			struct wsb_server *s = p->s;

			pending_unlist(p);
			hs_arm(s);
		}
		lws_set_wsi_user(wsi, NULL);
		free(p->head);
		free(p);
		return 0;
	default:
		return 0;
	}
}
