/*
 * One connection attempt: name resolution on the loop, the proxy tunnel
 * or a direct connect, and the admission queue that keeps at most
 * WSB_MAX_ATTEMPTS handshakes in lws at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "wsbeat.h"
#include "conn.h"

struct wsb_dns {
	uv_getaddrinfo_t req;
	struct wsb_client *c; /* NULL once abandoned */
};

/* Drop the current wsi without a close handshake. */
void wsb_detach_wsi(struct wsb_client *c)
{
	struct lws *wsi = c->wsi;

	if (!wsi)
		return;
	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	/* ASYNC: safe even from inside this wsi's own callback; every reason
	 * but keep-alive marks the socket unusable, so no close frame. */
	lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	wsb_engine_kick(c->e);
}

void wsb_cancel_dns(struct wsb_client *c)
{
	if (c->at.dns) {
		c->at.dns->c = NULL;
		uv_cancel((uv_req_t *)&c->at.dns->req);
		c->at.dns = NULL;
	}
}

/*
 * No lws "validity" timer: wsbeat runs its own heartbeat.  lws's default
 * policy (ping after 300 s) re-inserts a timer into one sorted list of all
 * connections on every frame received, a walk over every connection
 * (docs/DESIGN.md, "Many connections").
 */
static const lws_retry_bo_t no_validity = { 0 };

/* Give the slot of c's attempt back, or take c out of the queue. */
static void release_attempt(struct wsb_client *c)
{
	struct wsb_engine *e = c->e;

	if (c->at.admit == WSB_ADMIT_HOLDS_SLOT) {
		e->attempts--;
	} else if (c->at.admit == WSB_ADMIT_QUEUED) {
		/* doubly linked: closing thousands of queued clients is linear */
		TAILQ_REMOVE(&e->admit_q, c, at.admit_link);
	}
	c->at.admit = WSB_ADMIT_NONE;
}

/* Start queued attempts while slots are free (not re-entered: a connect
 * that fails at once releases its slot inside this loop). */
static void admit_waiting(struct wsb_engine *e)
{
	if (e->admitting || e->destroyed)
		return;
	e->admitting = 1;
	while (!TAILQ_EMPTY(&e->admit_q) && e->attempts < WSB_MAX_ATTEMPTS) {
		struct wsb_client *c = TAILQ_FIRST(&e->admit_q);

		TAILQ_REMOVE(&e->admit_q, c, at.admit_link);
		c->at.admit = WSB_ADMIT_NONE;
		/* the wait did not count: connect_timeout starts now */
		c->at.t_connect = wsb_now(e) + c->o.connect_timeout;
		wsb_client_timer_arm(c);
		wsb_connect_lws(c, c->at.admit_addr);
	}
	e->admitting = 0;
}

void wsb_attempt_over(struct wsb_client *c)
{
	int held = c->at.admit == WSB_ADMIT_HOLDS_SLOT;

	release_attempt(c);
	if (held)
		admit_waiting(c->e);
}

void wsb_connect_lws(struct wsb_client *c, const char *address)
{
	struct lws_client_connect_info ci;
	struct lws_vhost *vh;
	struct lws *wsi;
	char err[256];

	/* (admit_waiting() itself has made sure a slot is free) */
	if (!c->e->admitting &&
	    (c->e->attempts >= WSB_MAX_ATTEMPTS ||
	     !TAILQ_EMPTY(&c->e->admit_q))) {
		snprintf(c->at.admit_addr, sizeof(c->at.admit_addr), "%s", address);
		c->at.admit = WSB_ADMIT_QUEUED;
		c->at.t_connect = 0;
		TAILQ_INSERT_TAIL(&c->e->admit_q, c, at.admit_link);
		wsb_client_timer_arm(c);
		return;
	}
	c->at.admit = WSB_ADMIT_HOLDS_SLOT;
	c->e->attempts++;
	if (address != c->at.admit_addr) /* (connect_failed() names it) */
		snprintf(c->at.admit_addr, sizeof(c->at.admit_addr), "%s",
			 address);

	vh = wsb_vhost_for(c->e, c, err, sizeof(err));
	if (!vh) {
		wsb_lost(c, "tls", 0, 0, "TLS setup failed: %s", err);
		return;
	}
	/*
	 * A raw socket to lws: the handshake (opening.c), the frames (wsrx.c)
	 * and a wss:// TLS (tlsio.c) are ours, as a server connection's
	 * frames are.
	 */
	memset(&ci, 0, sizeof(ci));
	ci.context = c->e->ctx;
	ci.vhost = vh;
	ci.address = address;
	ci.port = c->url.port;
	ci.host = c->host_hdr; /* (the address's name in lws's logs) */
	ci.method = "RAW";
	ci.ietf_version_or_minus_one = -1;
	ci.userdata = c;
	ci.pwsi = &c->wsi;
	ci.local_protocol_name = "wsbeat";
	ci.retry_and_idle_policy = &no_validity;
	wsb_engine_kick(c->e);
	/* a connect() that fails inside the call destroys the wsi there
	 * (callback.c, on_destroy) */
	c->at.in_connect = 1;
	wsi = lws_client_connect_via_info(&ci);
	c->at.in_connect = 0;
	if (!wsi && c->st == WSB_CONNECTING && !c->at.done) {
		/* lws fails some attempts synchronously without a
		 * CONNECTION_ERROR callback (the connect() itself failed) */
		c->wsi = NULL;
		wsb_lost(c, "refused", 0, 0, "connection refused (%s port %d)",
		     address, c->url.port);
	}
}

/*
 * connect() failed inside lws's call, which neither reports it nor keeps
 * its errno (lws closes the socket on its way out).  What the kernel
 * refused is found again without a packet: TCP takes no multicast or
 * broadcast address, and connect() on a UDP socket makes the same route
 * lookup (ENETUNREACH: no route; EADDRNOTAVAIL...) and sends nothing.
 */
void wsb_connect_failed(struct wsb_client *c)
{
	const char *a = c->at.admit_addr, *why = NULL;
	union {
		struct sockaddr sa;
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
	} u;
	socklen_t len = 0;
	int fd;

	memset(&u, 0, sizeof(u));
	if (uv_ip4_addr(a, c->url.port, &u.v4) == 0) {
		uint32_t h = ntohl(u.v4.sin_addr.s_addr);

		len = sizeof(u.v4);
		if (IN_MULTICAST(h))
			why = "a multicast address takes no TCP connection";
		else if (h == INADDR_BROADCAST)
			why = "a broadcast address takes no TCP connection";
	} else if (uv_ip6_addr(a, c->url.port, &u.v6) == 0) {
		len = sizeof(u.v6);
		if (IN6_IS_ADDR_MULTICAST(&u.v6.sin6_addr))
			why = "a multicast address takes no TCP connection";
	}
	if (!why && len) {
		fd = socket(u.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			if (connect(fd, &u.sa, len) < 0)
				why = strerror(errno);
			close(fd);
		}
	}
	wsb_lost(c, "network", 0, 0, "connection failed: %s (%s port %d)",
		 why ? why : "connect() failed at once", a, c->url.port);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
	struct wsb_dns *d = (struct wsb_dns *)req;
	struct wsb_client *c = d->c;
	char addr[INET6_ADDRSTRLEN];

	free(d);
	if (!c) {
		uv_freeaddrinfo(ai);
		return;
	}
	c->at.dns = NULL;
	if (status || !ai) {
		uv_freeaddrinfo(ai);
		wsb_lost(c, "dns", 0, 0, "cannot resolve '%s': %s", c->url.host,
		     status ? uv_strerror(status) : "no address");
		return;
	}
	if (ai->ai_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, addr,
			    sizeof(addr));
	else
		uv_ip4_name((struct sockaddr_in *)ai->ai_addr, addr,
			    sizeof(addr));
	uv_freeaddrinfo(ai);
	wsb_connect_lws(c, addr);
}

void wsb_client_start(struct wsb_client *c)
{
	struct addrinfo hints;
	struct wsb_dns *d;
	int r;

	if (c->st == WSB_RECONNECTING)
		wsb_set_state(c, WSB_CONNECTING, "reconnect", strdup("reconnecting"),
			  0, 0, -1, -1);
	c->t_retry = 0;
	c->at.done = 0;
	c->close.peer_code = 0;
	c->close.peer_reason[0] = '\0';
	c->close.sent = c->close.peer_closed = 0;
	c->at.tls_err[0] = '\0';
	c->at.cert_unanswered = 0;
	c->at.retry_after = -1;
	c->close.cause = NULL;
	c->at.t_connect = wsb_now(c->e) + c->o.connect_timeout;
	wsb_client_timer_arm(c);

	if (c->at.proxy_error) {
		wsb_lost(c, "proxy", 0, 0, "%s", c->at.proxy_error);
		return;
	}
	if (c->at.proxy.kind != WSB_PROXY_NONE) {
		/* connect_timeout covers the proxy's part as well */
		wsb_tunnel_start(c);
		return;
	}
	if (wsb_is_ip_literal(c->url.host)) {
		wsb_connect_lws(c, c->url.host);
		return;
	}
	/* never block step(): resolve on libuv's thread pool */
	d = calloc(1, sizeof(*d));
	if (!d) {
		wsb_lost(c, "dns", 0, 0, "out of memory");
		return;
	}
	d->c = c;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	c->at.dns = d;
	r = uv_getaddrinfo(&c->e->loop, &d->req, on_resolved, c->url.host, NULL,
			   &hints);
	if (r) {
		c->at.dns = NULL;
		free(d);
		wsb_lost(c, "dns", 0, 0, "cannot resolve '%s': %s", c->url.host,
		     uv_strerror(r));
	}
}

/*
 * The proxy of the next attempt: p (copied; NULL = direct) or, with err,
 * the reason no proxy could be chosen (the attempt then fails with cause
 * "proxy").  Credentials are wiped when replaced.
 */
void wsb_client_set_proxy(struct wsb_client *c, const struct wsb_proxy *p)
{
	if (c->at.proxy.pass)
		memset(c->at.proxy.pass, 0, strlen(c->at.proxy.pass));
	free(c->at.proxy.user);
	free(c->at.proxy.pass);
	free(c->at.proxy_error);
	memset(&c->at.proxy, 0, sizeof(c->at.proxy));
	c->at.proxy_error = NULL;
	if (p)
		c->at.proxy = *p;
}

void wsb_client_set_proxy_error(struct wsb_client *c, const char *err)
{
	wsb_client_set_proxy(c, NULL);
	c->at.proxy_error = strdup(err);
}

/* The tunnel stands: lws connects to its local end. */
void wsb_client_tunnel_ready(struct wsb_client *c, const char *address)
{
	wsb_connect_lws(c, address);
}
