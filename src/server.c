/*
 * The accepting side.  wsbeat listens on a socket of its own, watched on
 * the engine's libuv loop, and hands every accepted socket to a
 * libwebsockets vhost that does not listen itself, as a raw socket
 * (lws_adopt_descriptor_vhost): lws does TCP, wsbeat the TLS (tlsio.c),
 * the upgrade (upgrade.c) and the frames (wsrx.c), because lws 4.1's
 * WebSocket server gets several of them wrong (docs/DESIGN.md, "The
 * server reads its own frames") and its TLS hands over one record per
 * loop turn.  Bind errors are ours to report, port 0 is read back
 * at once, and a server's port is released the moment it stops
 * listening.  Until its upgrade a socket is a "pending" handshake with a
 * deadline (handshake_timeout), kept here; from then on the connection is
 * a struct wsb_client in the server role: the same heartbeat, send path,
 * receive queue and close handshake as a client's, frames unmasked, never
 * reconnected.
 */
#include <errno.h>
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
 * One lws vhost and SSL_CTX per TLS configuration (certificate, client
 * certificates), kept for the engine's life like the clients' vhosts.
 */
struct wsb_srvhost {
	struct wsb_srvhost *next;
	int tls, verify_client;
	char *cert_file, *key_file, *ca_file;
	void *ssl_ctx;            /* wss: ours (tlsio.c), not lws's */
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
	if (h->ssl_ctx)
		wsb_tls_free_ctx(h->ssl_ctx);
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
	if (s->tls) {
		h->ssl_ctx = wsb_tls_new_server_ctx(s->cert_file, s->key_file,
						    s->ca_file,
						    s->verify_client, err,
						    errlen);
		if (!h->ssl_ctx) {
			srvhost_free(h);
			return NULL;
		}
	}
	h->protos[0].name = "wsbeat";
	h->protos[0].callback = wsb_lws_callback;
	h->protos[0].tx_packet_size = WSB_TX_CHUNK + 16;
	snprintf(h->name, sizeof(h->name), "wsbeat-server-%d", ++serial);

	memset(&info, 0, sizeof(info));
	/*
	 * Adopted sockets only, but not with CONTEXT_PORT_NO_LISTEN_SERVER:
	 * lws re-picks a request's vhost (by Host header) among the vhosts
	 * of the same listen port, so with that port shared by every server
	 * vhost a connection could end up with another server's settings.
	 * A port of its own,
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
	h->vh = lws_create_vhost(e->ctx, &info);
	if (!h->vh) {
		snprintf(err, errlen, "cannot set up the server (libwebsockets "
			 "refused its vhost)");
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

	if (!p) {
		uv_timer_stop(&s->hs_timer);
		return;
	}
	wsb_timer_start_at(s->e, &s->hs_timer, on_hs_timer, p->deadline);
}

/* Off the deadline list; the wsi keeps p as its user until destroyed. */
void wsb_pending_unlist(struct wsb_pending *p)
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
		wsb_pending_unlist(p);
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
	if (s->ssl_ctx && !(p->tlsio = wsb_tlsio_accept(s->ssl_ctx))) {
		free(p);
		close(fd);
		return;
	}
	/* raw: lws does TCP, the rest is ours (closes fd on failure) */
	wsi = lws_adopt_descriptor_vhost(s->vh, LWS_ADOPT_SOCKET, d, "wsbeat",
					 NULL);
	if (!wsi) {
		wsb_tlsio_destroy(p->tlsio);
		free(p);
		return;
	}
	p->magic = WSB_PENDING_MAGIC;
	p->e = s->e;
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
	s->ssl_ctx = h->ssl_ctx;

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
		wsb_pending_unlist(p);
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

/* A server connection reached "closed" (or went before it): its slot is
 * free for the next one, and its compression state goes. */
void wsb_server_conn_closed(struct wsb_client *c)
{
	if (c->srv)
		c->srv->live--;
	wsb_wsrx_release(c);
}

/* The lws callback's reasons for a socket not yet upgraded (its user is a
 * wsb_pending); after the upgrade they are callback.c's. */
int wsb_server_callback(struct lws *wsi, enum lws_callback_reasons reason,
			void *user, void *in, size_t len)
{
	struct wsb_pending *p = user;

	switch (reason) {
	case LWS_CALLBACK_RAW_RX:
		if (p->tlsio)
			return wsb_tlsio_pending_rx(wsi, p, in, len);
		return wsb_upgrade_rx(wsi, p, in, len);
	case LWS_CALLBACK_RAW_WRITEABLE:
		/* a refusal written after all: shut our side */
		if (p->answered && !lws_partial_buffered(wsi))
			shutdown(lws_get_socket_fd(wsi), SHUT_WR);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		if (p->listed) {
			struct wsb_server *s = p->s;

			wsb_pending_unlist(p);
			hs_arm(s);
		}
		lws_set_wsi_user(wsi, NULL);
		wsb_tlsio_destroy(p->tlsio);
		free(p->head);
		free(p);
		return 0;
	default:
		return 0;
	}
}
