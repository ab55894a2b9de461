/*
 * The accepting side.  wsbeat listens on a socket of its own, watched on
 * the engine's libuv loop, and hands every accepted socket to a
 * libwebsockets vhost that does not listen itself (lws_adopt_socket_vhost):
 * bind errors are ours to report, port 0 is read back at once, a server's
 * port is released the moment it stops listening, and no lws listener has
 * to be torn down on a foreign loop.  Until its upgrade a socket is a
 * "pending" handshake with a deadline (handshake_timeout); the upgrade is
 * decided here (limits, on_upgrade, the subprotocol), and from then on the
 * connection is a struct wsb_client in the server role: the same
 * heartbeat, send path, receive path and close handshake as a client's,
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

/*
 * One lws vhost per server configuration (TLS files, client certificates,
 * compression), kept for the engine's life like the clients' vhosts.  Its
 * one protocol's name is a buffer of ours (lws copies the protocol table,
 * not the name): see bind_name().
 */
struct wsb_srvhost {
	struct wsb_srvhost *next;
	int tls, compression, verify_client;
	char *cert_file, *key_file, *ca_file;
	struct lws_vhost *vh;
	struct lws_protocols protos[2];
	char proto_name[128];
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
		if (h->tls == s->tls && h->compression == s->o.compression &&
		    h->verify_client == s->verify_client &&
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
	h->compression = s->o.compression;
	h->verify_client = s->verify_client;
	h->cert_file = dup_or_null(s->cert_file);
	h->key_file = dup_or_null(s->key_file);
	h->ca_file = dup_or_null(s->ca_file);
	strcpy(h->proto_name, "wsbeat");
	h->protos[0].name = h->proto_name;
	h->protos[0].callback = wsb_lws_callback;
	h->protos[0].tx_packet_size = WSB_TX_CHUNK + 16;
	snprintf(h->name, sizeof(h->name), "wsbeat-server-%d", ++serial);

	memset(&info, 0, sizeof(info));
	/*
	 * Adopted sockets only, but not with CONTEXT_PORT_NO_LISTEN_SERVER:
	 * lws re-picks a request's vhost (by Host header, and by SNI for TLS)
	 * among the vhosts of the same listen port, so with that port shared
	 * by every server vhost a connection could end up with another
	 * server's protocols, extensions or certificate.  A port of its own,
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
	if (s->o.compression)
		info.extensions = wsb_extensions();
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
		wsb_log(s->e, WSB_LOG_INFO, "server :%d: %s:%d did not finish "
			"its opening handshake within %g s: dropped", s->port,
			p->remote, p->remote_port, s->handshake_timeout);
		pending_unlist(p);
		s->hs_timeouts++;
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
	struct lws *wsi;
	int one = 1;

	if (!p) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	wsi = lws_adopt_socket_vhost(s->vh, fd); /* (closes fd on failure) */
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

/*
 * lws binds an upgrade to the vhost protocol named by the first offered
 * subprotocol it knows, drops the connection when it knows none, and
 * answers with the bound protocol's name.  The server vhost has one
 * protocol whose name is our buffer: before lws looks, it is set to the
 * client's first offer (so the bind always succeeds), and before lws
 * answers (FILTER_PROTOCOL_CONNECTION) to the subprotocol actually chosen,
 * or "" for none, which lws then leaves out.  Both happen inside one
 * synchronous lws call, so one buffer per vhost is enough.
 */
static void bind_name(struct wsb_server *s, const char *offered)
{
	struct lws_tokenize ts;
	char *name = s->sh->proto_name;
	size_t cap = sizeof(s->sh->proto_name);

	strcpy(name, "wsbeat");
	if (!offered)
		return;
	lws_tokenize_init(&ts, offered, LWS_TOKENIZE_F_COMMA_SEP_LIST |
			  LWS_TOKENIZE_F_MINUS_NONTERM |
			  LWS_TOKENIZE_F_DOT_NONTERM |
			  LWS_TOKENIZE_F_RFC7230_DELIMS);
	ts.len = strlen(offered);
	if (lws_tokenize(&ts) == LWS_TOKZE_TOKEN && ts.token_len < cap) {
		memcpy(name, ts.token, ts.token_len);
		name[ts.token_len] = '\0';
	}
}

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
 * An HTTP answer that is not an upgrade (a refusal, 426, 503...), written
 * whole (lws knows no reason phrase for some statuses, 426 among them),
 * then the connection is closed: -1 for the callback.
 */
static int answer(struct lws *wsi, int status, const char *body)
{
	char buf[LWS_PRE + 1024], *p = buf + LWS_PRE;
	int n;

	n = snprintf(p, sizeof(buf) - LWS_PRE, "HTTP/1.1 %d %s\r\n"
		     "Content-Type: text/plain\r\n%s"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n%.512s\n",
		     status, status_text(status),
		     status == 426 ? "Upgrade: websocket\r\n" : "",
		     strlen(body) > 512 ? 513 : strlen(body) + 1, body);
	if (n > 0 && (size_t)n < sizeof(buf) - LWS_PRE)
		lws_write(wsi, (unsigned char *)p, (size_t)n,
			  LWS_WRITE_HTTP_HEADERS);
	return -1;
}

static void conn_opts(struct wsb_client *c, const struct wsb_server *s)
{
	c->o = s->o;
	c->o.ca_file = c->o.ca_path = c->o.cert_file = c->o.key_file = NULL;
	c->o.server_name = c->o.protocols = c->o.origin = NULL;
	c->o.reconnect = 0;
	c->o.rc_has_retry = 0;
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

/*
 * HTTP_CONFIRM_UPGRADE: the request is whole and asks for a WebSocket.
 * Refuse it with an HTTP status (closing, full, on_upgrade said no), or
 * make the connection and let lws go on with the upgrade.
 */
static int on_confirm_upgrade(struct lws *wsi, struct wsb_pending *p,
			      const char *up)
{
	struct wsb_server *s = p->s;
	struct wsb_verdict v;
	struct wsb_request *r;
	struct wsb_client *c;

	if (!s || s->closing)
		return answer(wsi, 503, "the server is shutting down");
	if (!up || strcasecmp(up, "websocket"))
		return answer(wsi, 400, "only WebSocket upgrades are served here");
	/* lws 4.1 fails the upgrade, without a word, when it has to read
	 * 255 bytes or more of Sec-WebSocket-Extensions (Autobahn 13.7.x's
	 * three offers): say why instead */
	if (lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS) >= 255)
		return answer(wsi, 431, "Sec-WebSocket-Extensions is longer than "
			      "254 bytes (a limit of libwebsockets 4.1)");
	if (s->live >= s->max_connections) {
		s->full++;
		wsb_log(s->e, WSB_LOG_WARN, "server :%d: %s:%d refused: "
			"max_connections (%zu) reached", s->port, p->remote,
			p->remote_port, s->max_connections);
		return answer(wsi, 503, "too many connections");
	}
	r = wsb_request_capture(wsi, p);
	if (!r)
		return answer(wsi, 500, "out of memory");
	memset(&v, 0, sizeof(v));
	v.accept = 1;
	default_protocol(s, r->protocols, v.protocol, sizeof(v.protocol));
	if (s->upgrade)
		s->upgrade(s, r, wsi, &v);
	if (!v.accept) {
		s->refused++;
		wsb_log(s->e, WSB_LOG_INFO, "server :%d: %s:%d %s refused by "
			"on_upgrade: %d %s", s->port, p->remote, p->remote_port,
			r->path, v.status, v.reason);
		wsb_request_free(r);
		return answer(wsi, v.status, v.reason[0] ? v.reason :
			      "refused");
	}
	c = conn_new(s, r);
	if (!c) {
		wsb_request_free(r);
		return answer(wsi, 500, "out of memory");
	}
	snprintf(c->protocol, sizeof(c->protocol), "%s", v.protocol);
	bind_name(s, r->protocols);
	pending_unlist(p);
	free(p);
	lws_set_wsi_user(wsi, c);
	return 0;
}

/* A connection that never opened (lws failed the upgrade after we said
 * yes): no event was ever queued for it, so it goes at once. */
static void conn_discard(struct wsb_client *c, struct lws *wsi)
{
	lws_set_wsi_user(wsi, NULL);
	c->wsi = NULL;
	wsb_client_free(c);
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

/* A server connection reached "closed" (or went before it): its slot is
 * free for the next one. */
void wsb_server_conn_closed(struct wsb_client *c)
{
	if (c->srv)
		c->srv->live--;
}

/*
 * The server-only reasons of the lws callback: those of a socket not yet
 * upgraded (user: a wsb_pending) and the upgrade's own steps (user: the
 * connection, in the server role).
 */
int wsb_server_callback(struct lws *wsi, enum lws_callback_reasons reason,
			void *user, void *in, size_t len)
{
	struct wsb_pending *p = user;
	struct wsb_client *c = user;

	(void)len;
	if (p->magic == WSB_PENDING_MAGIC) {
		switch (reason) {
		case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
			return on_confirm_upgrade(wsi, p, in);
		case LWS_CALLBACK_HTTP:
			/* a plain request: say what is served here */
			return answer(wsi, 426, "this is a WebSocket server: "
				      "upgrade required");
		case LWS_CALLBACK_WSI_DESTROY:
			if (p->listed) {
				struct wsb_server *s = p->s;

				pending_unlist(p);
				hs_arm(s);
			}
			lws_set_wsi_user(wsi, NULL);
			free(p);
			return 0;
		default:
			return 0;
		}
	}
	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		if (c->srv)
			snprintf(c->srv->sh->proto_name,
				 sizeof(c->srv->sh->proto_name), "%s",
				 c->protocol);
		return 0;
	case LWS_CALLBACK_ESTABLISHED:
		if (c->srv && c->srv->sh)
			strcpy(c->srv->sh->proto_name, "wsbeat");
		on_established(c, wsi);
		return 0;
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_WSI_DESTROY:
		if (c->st == WSB_CONNECTING && !c->wsi) {
			conn_discard(c, wsi);
			return 0;
		}
		return 0;
	default:
		return 0;
	}
}
