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
static void lost_no_cert(struct wsb_client *c)
{
	wsb_lost(c, "tls", 0, 0, "the server requires a client certificate and "
	     "none is configured (tls.cert_file); it closed the connection");
}

static void on_conn_error(struct wsb_client *c, struct lws *wsi,
			  const char *msg)
{
	int status = lws_http_client_http_response(wsi);
	int fd = lws_get_socket_fd(wsi), soerr = 0;
	const char *alert;
	socklen_t sl = sizeof(soerr);
	char ra[32];

	/* lws does not say why a TCP connect failed; the socket does */
	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
		soerr = 0;

	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	if (!msg)
		msg = "unknown error";
	if (status && status != 101) {
		if (lws_hdr_copy(wsi, ra, sizeof(ra),
				 WSI_TOKEN_HTTP_RETRY_AFTER) > 0)
			c->at.retry_after = atoi(ra);
		wsb_lost(c, "http_status", 0, status,
		     "handshake failed: HTTP %d", status);
	} else if (c->at.tls_err[0]) {
		wsb_lost(c, "tls", 0, 0, "TLS handshake failed: %s", c->at.tls_err);
	} else if (c->url.tls && (alert = wsb_tls_alert(lws_get_ssl(wsi)))) {
		wsb_lost(c, "tls", 0, 0, "TLS alert from the server: %s", alert);
	} else if (c->url.tls && (c->at.cert_unanswered ||
				  wsb_tls_cert_unanswered(lws_get_ssl(wsi)))) {
		lost_no_cert(c);
	} else if (!strncmp(msg, "connect SSL", 11) ||
		   !strncmp(msg, "tls", 3) || strstr(msg, "cert")) {
		wsb_lost(c, "tls", 0, 0, "TLS handshake failed: %s", msg);
	} else if (soerr == ECONNREFUSED || !strcmp(msg, "Unable to connect")) {
		wsb_lost(c, "refused", 0, 0, "connection refused");
	} else if (soerr) {
		wsb_lost(c, "network", 0, 0, "connection failed: %s", strerror(soerr));
	} else if (!strcmp(msg, "HS: URI missing")) {
		/* (lws's words for a head that ended without a status line) */
		wsb_lost(c, "handshake", 0, 0,
		     "handshake failed: no HTTP status line in the response");
	} else if (!strncmp(msg, "HS: ", 4)) {
		wsb_lost(c, "handshake", 0, 0, "handshake failed: %s", msg + 4);
	} else if (!strcmp(msg, "problems parsing header")) {
		wsb_lost(c, "handshake", 0, 0,
		     "handshake failed: invalid or oversized HTTP response");
	} else {
		wsb_lost(c, "network", 0, 0, "connection failed: %s", msg);
	}
}

/*
 * lws 4.1.6 drops the link without a close frame for some violations (RSV
 * bits, reserved opcodes, fragmented or oversized control frames), so the
 * server would see 1006.  The socket is still open during CLOSED: send
 * the close frame lws did not (masked, as a client's must be).
 */
static int send_close_frame(struct wsb_client *c, struct lws *wsi, int v)
{
	unsigned char code[2], f[8], *start;
	const unsigned char *key;
	int fd = lws_get_socket_fd(wsi);
	size_t n;

	if (fd < 0 || wsb_frame_key(c, &key) < 0)
		return 0;
	code[0] = (unsigned char)(v >> 8);
	code[1] = (unsigned char)v;
	start = wsb_frame_build(f + 6, 0x80 | WSB_OP_CLOSE, code, sizeof(code),
				key);
	n = (size_t)(f + sizeof(f) - start);
	if (lws_is_ssl(wsi))
		wsb_tls_write_last(lws_get_ssl(wsi), start, (int)n);
	else if (send(fd, start, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n)
		return 0;
	return 1;
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
	int sent = 0;

	/*
	 * A client's link, and neither we nor the server started the close:
	 * lws did, because the server broke the protocol, or the link died.
	 * lws keeps the close payload it sent in the buffer
	 * lws_get_close_payload() reads, but masked in place by the send;
	 * the 4-byte mask key sits right before it.  A socket with no FIN or
	 * RST pending means lws dropped a live peer: a protocol error as
	 * well.  (A server connection reads its own frames: it knows.)
	 */
	if (!code && c->st != WSB_CLOSING && !c->close.cause && !c->rx.own) {
		if (lws_get_close_length(wsi) >= 2) {
			const unsigned char *p = lws_get_close_payload(wsi);
			int v = (p[0] ^ p[-4]) << 8 | (p[1] ^ p[-3]);

			sent = v >= 1000 && v < 5000 ? v : 1002;
		} else {
			char b;
			int fd = lws_get_socket_fd(wsi);

			if (fd >= 0 && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
			    (errno == EAGAIN || errno == EWOULDBLOCK))
				/* dropped without a close frame: send it */
				sent = send_close_frame(c, wsi, 1002) ? 1002 : -1;
		}
	}
	drain_input(wsi);
	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	free(c->tx.hold); /* the wsi is closing: lws drains nothing more */
	c->tx.hold = NULL;
	if (c->st == WSB_CLOSING) {
		c->at.done = 1;
		wsb_finish_user_close(c);
	} else if (c->close.cause && c->rx.own) {
		wsb_wsrx_lost(c);
	} else if (c->close.cause) {
		wsb_lost(c, c->close.cause, c->close.code, 0, "%s (%d %s)",
		     !strcmp(c->close.cause, "too_big") ?
			     "incoming message too big" : "protocol error",
		     c->close.code, wsb_close_code_name(c->close.code));
	} else if (sent > 0) {
		wsb_lost(c, "protocol_error", sent, 0,
		     "protocol error by the %s (closed with %d %s)", peer, sent,
		     wsb_close_code_name(sent));
	} else if (sent < 0) {
		wsb_lost(c, "protocol_error", 0, 0,
		     "protocol error by the %s (connection dropped)", peer);
	} else if (code) {
		wsb_lost(c, "closed_by_peer", code, 0, "%s closed (%d %s%s%s)",
		     peer, code, wsb_close_code_name(code),
		     c->close.peer_reason[0] ? ": " : "",
		     c->close.peer_reason);
	} else {
		wsb_lost(c, "connection_lost", 1006, 0,
		     "connection wsb_lost (1006 abnormal closure)");
	}
}

/* What a detached wsi kept (a message lws may still deflate from) goes
 * with it. */
static void free_tomb(struct lws *wsi, void *user)
{
	struct wsb_tomb *t = user;

	lws_set_wsi_user(wsi, NULL);
	free(t->hold);
	free(t);
}

/* The upgrade request's extra headers, "name\0value\0" pairs. */
static int append_headers(struct wsb_client *c, struct lws *wsi,
			  unsigned char **p, size_t len)
{
	unsigned char *end = *p + len;
	const char *h = c->headers;

	/* the TLS handshake is over here and the SSL may be gone by the time
	 * a rejected link is noticed: take note now */
	if (c->url.tls)
		c->at.cert_unanswered =
			wsb_tls_cert_unanswered(lws_get_ssl(wsi));
	while (h && h < c->headers + c->headers_len) {
		const char *v = h + strlen(h) + 1;
		char name[256]; /* lws writes the name as given: with ':' */

		if (snprintf(name, sizeof(name), "%s:", h) >= (int)sizeof(name) ||
		    lws_add_http_header_by_name(wsi, (const unsigned char *)name,
						(const unsigned char *)v,
						(int)strlen(v), p, end))
			return -1;
		h = v + strlen(v) + 1;
	}
	return 0;
}

/* The peer's close frame: the answer to ours, or its own close. */
static int on_peer_close(struct wsb_client *c, const unsigned char *b,
			 size_t len)
{
	wsb_heard(c);
	if (c->close.sent)
		return -1; /* the answer to ours (start_close): done */
	c->close.peer_closed = 1; /* lws echoes it: ours is not sent */
	c->close.peer_code = len >= 2 ? (b[0] << 8 | b[1]) : 1005;
	if (len > 2) {
		size_t n = len - 2;

		if (n > sizeof(c->close.peer_reason) - 1)
			n = sizeof(c->close.peer_reason) - 1;
		memcpy(c->close.peer_reason, b + 2, n);
		c->close.peer_reason[n] = '\0';
	}
	return 0;
}

/* The wsi goes without CLOSED or CONNECTION_ERROR: lws does that when the
 * link breaks while it waits for the upgrade response. */
static void on_destroy(struct wsb_client *c, struct lws *wsi)
{
	if (c->wsi != wsi)
		return;
	c->wsi = NULL;
	if (c->st == WSB_CONNECTING && c->at.cert_unanswered)
		lost_no_cert(c);
	else
		wsb_lost(c, c->server_role ? "connection_lost" : "network", 0, 0,
			 c->st == WSB_CONNECTING ?
			 "connection failed: closed during the opening handshake" :
			 "connection lost");
}

int wsb_lws_callback(struct lws *wsi, enum lws_callback_reasons reason,
		     void *user, void *in, size_t len)
{
	struct wsb_client *c = user;

	if (reason == LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION)
		return wsb_tls_verify(wsi, user, (int)len);
	if (reason == LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION)
		return !len; /* OpenSSL's verdict on a client certificate */
	if (!c)
		return 0;
	if (c->magic == WSB_TOMB_MAGIC) {
		if (reason == LWS_CALLBACK_WSI_DESTROY)
			free_tomb(wsi, user);
		return 0;
	}
	if (c->magic == WSB_PENDING_MAGIC)
		return wsb_server_callback(wsi, reason, user, in, len);

	switch (reason) {
	/* a server connection, or a client's over ws://: a raw socket to
	 * lws, the handshake and the frames ours */
	case LWS_CALLBACK_RAW_CONNECTED:
		return wsb_opening_start(c, wsi);
	case LWS_CALLBACK_RAW_RX:
		if (c->st == WSB_CONNECTING)
			return wsb_opening_rx(c, wsi, in, len);
		return wsb_wsrx_feed(c, in, len);
	case LWS_CALLBACK_RAW_WRITEABLE:
		/* (our close is out: nothing more may be written) */
		if (c->st == WSB_CONNECTING || wsb_wsrx_draining(c))
			return 0;
		return wsb_on_writeable(c, wsi);
	case LWS_CALLBACK_RAW_CLOSE:
		if (c->st == WSB_CONNECTING) {
			on_destroy(c, wsi);
			lws_set_wsi_user(wsi, NULL); /* (lws still calls DESTROY) */
		} else
			on_closed(c, wsi);
		return 0;
	/* both roles */
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		return append_headers(c, wsi, (unsigned char **)in, len);
	case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
		/* the response headers are gone by ESTABLISHED */
		if (lws_hdr_copy(wsi, c->protocol, sizeof(c->protocol),
				 WSI_TOKEN_PROTOCOL) < 0)
			c->protocol[0] = '\0';
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (c->st != WSB_CONNECTING)
			return -1;
		c->wsi = wsi;
		wsb_client_established(c, wsi);
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		on_conn_error(c, wsi, in ? (const char *)in : NULL);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
	case LWS_CALLBACK_RECEIVE:
		wsb_on_receive(c, wsi, in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
	case LWS_CALLBACK_RECEIVE_PONG:
		wsb_heard(c);
		wsb_on_pong(c, in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return wsb_on_writeable(c, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		return on_peer_close(c, in, len);
	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_CLOSED:
		on_closed(c, wsi);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		on_destroy(c, wsi);
		return 0;
	default:
		return 0;
	}
}
