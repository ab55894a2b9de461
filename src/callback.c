/*
 * The libwebsockets callback: what lws tells us about a connection,
 * turned into the state machine's terms (established, failed, closed,
 * received, writeable).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "wsbeat.h"
#include "conn.h"

void wsb_client_established(struct wsb_client *c, struct lws *wsi)
{
	double now = wsb_now(c->e);

	wsb_attempt_over(c);
	c->at.t_connect = 0;
	c->connected_at = (double)time(NULL);
	c->opened_mono = now;
	if (c->opened_once)
		c->reconnects++;
	c->opened_once = 1;
	c->tx.open_gate = 1;
	wsb_set_state(c, WSB_OPEN, "connected", strdup("connected"), 0, 0, -1, -1);
	wsb_hb_restart(c, now);
	wsb_client_timer_arm(c);
}

/*
 * With TLS 1.3 a server that requires a client certificate finishes the
 * handshake, then sends "certificate required" and resets the link; the
 * reset usually destroys the alert.  That the server asked and we had no
 * certificate is known from the handshake, so say that.
 */
void wsb_client_lost_no_cert(struct wsb_client *c)
{
	wsb_lost(c, "tls", 0, 0, "the server requires a client certificate and "
	     "none is configured (tls.cert_file); it closed the connection");
}

/* A raw client socket that did not connect (TCP; TLS and the upgrade
 * are ours and report themselves). */
static void on_conn_error(struct wsb_client *c, struct lws *wsi,
			  const char *msg)
{
	int fd = lws_get_socket_fd(wsi), soerr = 0;
	socklen_t sl = sizeof(soerr);

	/* lws does not say why a TCP connect failed; the socket does */
	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
		soerr = 0;
	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	if (!msg)
		msg = "unknown error";
	if (soerr == ECONNREFUSED || !strcmp(msg, "Unable to connect"))
		wsb_lost(c, "refused", 0, 0, "connection refused");
	else if (soerr)
		wsb_lost(c, "network", 0, 0, "connection failed: %s",
			 strerror(soerr));
	else
		wsb_lost(c, "network", 0, 0, "connection failed: %s", msg);
}

/*
 * Read and drop what the server sent after the close (its PING, the rest
 * of a message) before lws closes the socket, which it does at once as a
 * client: closing a TCP socket with unread input makes the kernel send RST
 * and discard what it has not sent yet, which can be the end of our last
 * message and our close frame (Autobahn 7.1.6 over wss: the server saw
 * 112 KiB of a 256 KiB echo, then a reset).  Bounded: a peer that keeps
 * sending gets the reset.
 */
static void drain_input(struct lws *wsi)
{
	char buf[16384];
	int fd = lws_get_socket_fd(wsi);

	for (int i = 0; fd >= 0 && i < 64; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break;
}

/* The link is closed (both roles): how the connection ended. */
static void on_closed(struct wsb_client *c, struct lws *wsi)
{
	const char *peer = c->server_role ? "client" : "server";
	int code = c->close.peer_code;

	drain_input(wsi);
	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	if (c->st == WSB_CLOSING) {
		c->at.done = 1;
		wsb_finish_user_close(c);
	} else if (c->close.cause) {
		wsb_wsrx_lost(c);
	} else if (code) {
		wsb_lost(c, "closed_by_peer", code, 0, "%s closed (%d %s%s%s)",
		     peer, code, wsb_close_code_name(code),
		     c->close.peer_reason[0] ? ": " : "",
		     c->close.peer_reason);
	} else {
		wsb_lost(c, "connection_lost", 1006, 0,
		     "connection lost (1006 abnormal closure)");
	}
}

/* The wsi goes without CLOSED or CONNECTION_ERROR: lws does that when the
 * link breaks while it waits for the upgrade response, and when connect()
 * fails inside lws_client_connect_via_info() (attempt.c). */
static void on_destroy(struct wsb_client *c, struct lws *wsi)
{
	if (c->wsi != wsi)
		return;
	c->wsi = NULL;
	if (c->st == WSB_CONNECTING && c->at.cert_unanswered)
		wsb_client_lost_no_cert(c);
	else if (c->st == WSB_CONNECTING && c->at.in_connect)
		wsb_connect_failed(c);
	else
		wsb_lost(c, c->server_role ? "connection_lost" : "network", 0, 0,
			 c->st == WSB_CONNECTING ?
			 "connection failed: closed during the opening handshake" :
			 "connection lost");
}

/*
 * lws 4.1's libuv glue makes a uv_poll_t for a client socket before its
 * connect(); when connect() fails at once (ENETUNREACH, EADDRNOTAVAIL...)
 * lws closes the fd itself, and its close then skips the handle of a wsi
 * without an fd: the handle stays in our loop, which uv_loop_close() then
 * refuses, leaking it and the loop's own memory (fixed in lws 4.4,
 * 95a8d29).  Only such a handle is still in the loop at WSI_DESTROY: one
 * lws closed itself has left it, lws destroys the wsi from its close
 * callback.  It is lws's allocation, and lws never touches it again.
 */
static void free_orphan(uv_handle_t *h)
{
	lws_realloc(h, 0, "wsbeat: orphaned uv_poll_t");
}

static void close_orphan(uv_handle_t *h, void *wsi)
{
	if (h->type == UV_POLL && h->data == wsi && !uv_is_closing(h))
		uv_close(h, free_orphan);
}

int wsb_lws_callback(struct lws *wsi, enum lws_callback_reasons reason,
		     void *user, void *in, size_t len)
{
	struct wsb_client *c = user;

	if (!c)
		return 0;
	if (c->magic == WSB_PENDING_MAGIC)
		return wsb_server_callback(wsi, reason, user, in, len);

	switch (reason) {
	/* a server connection, or a client's: a raw socket to lws, the
	 * handshake, the frames (and a client's TLS) ours */
	case LWS_CALLBACK_RAW_CONNECTED:
		return c->url.tls ? wsb_tlsio_start(c, wsi) :
		       wsb_opening_start(c, wsi);
	case LWS_CALLBACK_RAW_RX:
		if (c->tlsio)
			return wsb_tlsio_rx(c, wsi, in, len);
		return wsb_raw_rx(c, wsi, in, len);
	case LWS_CALLBACK_RAW_WRITEABLE:
		/* (our close is out: nothing more may be written) */
		if (c->st == WSB_CONNECTING || wsb_wsrx_draining(c))
			return 0;
		return wsb_on_writeable(c, wsi);
	case LWS_CALLBACK_RAW_CLOSE:
		if (c->st == WSB_CONNECTING) {
			if (c->wsi != wsi || !wsb_tlsio_lost(c, wsi))
				on_destroy(c, wsi);
			lws_set_wsi_user(wsi, NULL); /* (lws still calls DESTROY) */
		} else
			on_closed(c, wsi);
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		on_conn_error(c, wsi, in ? (const char *)in : NULL);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		/* (rare: RAW_CLOSE and CONNECTION_ERROR clear the user) */
		uv_walk(&c->e->loop, close_orphan, wsi);
		on_destroy(c, wsi);
		return 0;
	default:
		return 0;
	}
}
