/*
 * TLS, both roles, on OpenSSL memory BIOs over a raw lws socket.  lws
 * 4.1.6 starts the TLS handshake of a raw client socket but has no state
 * that finishes it (its ws and MQTT roles drive their own), and on a
 * server socket it hands over one record per loop turn; so every socket
 * stays plain to lws and the TLS is ours: what lws reads goes into the
 * read BIO, every record it holds is decrypted in the same turn and goes
 * to the opening handshake (a client's), the request (a server's) or the
 * frame reader, and every write goes through SSL_write, its records
 * handed to lws_write (which keeps the order and buffers a partial
 * write).  docs/DESIGN.md, "TLS".
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "wsbeat.h"
#include "conn.h"

struct wsb_tlsio {
	SSL *ssl;
	BIO *rb, *wb;             /* in: what lws read; out: records to write */
	int up;                   /* the handshake is over */
};

/*
 * Before an SSL call whose failure SSL_get_error() must judge: its queue
 * must be empty.  Failures clear it after themselves, so it nearly always
 * is; ERR_clear_error() alone cost 4-5 % of a wss server's CPU at 32 B
 * messages (it walks and frees every slot), a peek does not.
 */
static void err_reset(void)
{
	if (ERR_peek_error())
		ERR_clear_error();
}

/* An SSL on two memory BIOs, in the client's or the server's role. */
static struct wsb_tlsio *tlsio_new(void *ssl_ctx, int server)
{
	struct wsb_tlsio *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ssl = SSL_new(ssl_ctx);
	t->rb = BIO_new(BIO_s_mem());
	t->wb = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rb || !t->wb) {
		SSL_free(t->ssl);
		BIO_free(t->rb);
		BIO_free(t->wb);
		free(t);
		return NULL;
	}
	BIO_set_mem_eof_return(t->rb, -1); /* (empty: "try again", not EOF) */
	SSL_set_bio(t->ssl, t->rb, t->wb);
	if (server)
		SSL_set_accept_state(t->ssl);
	else
		SSL_set_connect_state(t->ssl);
	return t;
}

void wsb_tlsio_destroy(struct wsb_tlsio *t)
{
	if (!t)
		return;
	SSL_free(t->ssl); /* (frees the BIOs) */
	free(t);
}

void wsb_tlsio_free(struct wsb_client *c)
{
	wsb_tlsio_destroy(c->tlsio);
	c->tlsio = NULL;
}

void *wsb_tlsio_ssl(const struct wsb_client *c)
{
	return c->tlsio ? c->tlsio->ssl : NULL;
}

/*
 * The records SSL has made: to lws, which writes or buffers them.  0, or
 * -1 when the link failed.  Read out of the BIO (one copy, into the
 * engine's buffer) rather than handed over in place and reset: a reset
 * clears the BIO's whole capacity, 64 KiB after one big fragment, on
 * every later flush (1.5 us for a 100-byte PONG).
 */
static int flush(struct wsb_engine *e, struct wsb_tlsio *t, struct lws *wsi)
{
	size_t n = BIO_ctrl_pending(t->wb);

	if (!n)
		return 0;
	if (n > e->tls_out_cap) {
		unsigned char *b = realloc(e->tls_out, n);

		if (!b)
			return -1;
		e->tls_out = b;
		e->tls_out_cap = n;
	}
	if (BIO_read(t->wb, e->tls_out, (int)n) != (int)n)
		return -1;
	if (n > 16384) {
		/* a memory BIO keeps its largest size: an idle connection
		 * should not hold 64 KiB for a message long gone */
		BIO *nb = BIO_new(BIO_s_mem());

		if (nb) {
			SSL_set0_wbio(t->ssl, nb); /* (frees the old) */
			t->wb = nb;
		}
	}
	return lws_write(wsi, e->tls_out, n, LWS_WRITE_RAW) < 0 ? -1 : 0;
}

/* Plaintext out through t.  0, or -1 when the link failed. */
int wsb_tlsio_write(struct wsb_engine *e, struct wsb_tlsio *t,
		    struct lws *wsi, const unsigned char *p, size_t n)
{
	err_reset();
	/* (memory BIOs take everything: one call, no partial writes) */
	if (n && SSL_write(t->ssl, p, (int)n) <= 0) {
		ERR_clear_error();
		return -1;
	}
	return flush(e, t, wsi);
}

/* Plaintext out: through TLS when the link has it.  0, or -1 when the
 * link failed. */
int wsb_raw_write(struct wsb_client *c, struct lws *wsi,
		  const unsigned char *p, size_t n)
{
	if (c->tlsio)
		return wsb_tlsio_write(c->e, c->tlsio, wsi, p, n);
	if (c->url.tls)
		return -1; /* (never plaintext on a wss:// socket) */
	return lws_write(wsi, (unsigned char *)p, n, LWS_WRITE_RAW) < 0 ?
	       -1 : 0;
}

/* OpenSSL's verdict on each certificate of the chain, then ours (tls.c). */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs,
				SSL_get_ex_data_X509_STORE_CTX_idx());
	struct wsb_client *c = ssl ? SSL_get_app_data(ssl) : NULL;

	return c && wsb_tls_check(c, xs, ok) == 0;
}

/* RAW_CONNECTED of a wss:// attempt: the ClientHello.  0, or -1. */
int wsb_tlsio_start(struct wsb_client *c, struct lws *wsi)
{
	const char *name = c->o.server_name ? c->o.server_name : c->url.host;
	static const unsigned char alpn[] = "\x08http/1.1";
	struct wsb_tlsio *t;

	if (c->st != WSB_CONNECTING || c->at.done || !c->at.ssl_ctx)
		return -1;
	c->wsi = wsi;
	wsb_tlsio_free(c);
	t = tlsio_new(c->at.ssl_ctx, 0);
	if (!t)
		goto fail;
	c->tlsio = t;
	SSL_set_app_data(t->ssl, c);
	SSL_set_verify(t->ssl, SSL_VERIFY_PEER, verify_cb);
	if (!wsb_is_ip_literal(name))
		SSL_set_tlsext_host_name(t->ssl, name);
	SSL_set_alpn_protos(t->ssl, alpn, sizeof(alpn) - 1);
	err_reset();
	(void)SSL_do_handshake(t->ssl);
	ERR_clear_error();
	if (flush(c->e, c->tlsio, wsi) < 0) {
		c->wsi = NULL;
		lws_set_wsi_user(wsi, NULL);
		wsb_lost(c, "network", 0, 0, "connection failed: the TLS "
			 "handshake could not be sent");
		return -1;
	}
	return 0;
fail:
	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	wsb_lost(c, "tls", 0, 0, "TLS setup failed: out of memory");
	return -1;
}

/*
 * Why the TLS handshake failed, in the words the user needs.  e: OpenSSL's
 * error, 0 when the link was closed under it: that is a network failure
 * (a restarting server, a full backlog), which is retried, not a TLS one.
 */
static void handshake_failed(struct wsb_client *c, struct lws *wsi,
			     unsigned long e)
{
	const char *alert = wsb_tls_alert(c->tlsio->ssl);
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	/* (our own alert, if any: the server sees why) */
	(void)flush(c->e, c->tlsio, wsi);
	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	if (c->at.tls_err[0])
		wsb_lost(c, "tls", 0, 0, "TLS handshake failed: %s",
			 c->at.tls_err);
	else if (wsb_tls_cert_unanswered(c->tlsio->ssl) &&
		 (!alert || !strcmp(alert, "certificate required")))
		wsb_client_lost_no_cert(c);
	else if (alert)
		wsb_lost(c, "tls", 0, 0, "TLS alert from the server: %s", alert);
	else if (e)
		wsb_lost(c, "tls", 0, 0, "TLS handshake failed: %s",
			 r ? r : "error");
	else
		wsb_lost(c, "network", 0, 0, "connection failed: closed "
			 "during the TLS handshake");
}

/* RAW_CLOSE while connecting: 1 when the TLS handshake was still under
 * way (then the loss is reported here), else 0. */
int wsb_tlsio_lost(struct wsb_client *c, struct lws *wsi)
{
	if (!c->tlsio || c->tlsio->up)
		return 0;
	handshake_failed(c, wsi, 0);
	return 1;
}

/* The TLS link failed after its handshake (an alert, a bad record). */
static void link_failed(struct wsb_client *c, struct lws *wsi)
{
	const char *alert = wsb_tls_alert(c->tlsio->ssl);

	if (c->st != WSB_CONNECTING)
		return; /* (lws closes the socket: on_closed says how) */
	c->wsi = NULL;
	lws_set_wsi_user(wsi, NULL);
	if (c->at.cert_unanswered &&
	    (!alert || !strcmp(alert, "certificate required")))
		wsb_client_lost_no_cert(c);
	else if (alert)
		wsb_lost(c, "tls", 0, 0, "TLS alert from the server: %s", alert);
	else
		wsb_lost(c, "network", 0, 0, "connection failed: TLS error "
			 "during the opening handshake");
}

/* What tls_in() and tls_read() say. */
enum { TLS_BROKEN = -1, TLS_HS_FAILED = -2, TLS_MORE = 0, TLS_UP = 1,
       TLS_NOW_UP = 2, TLS_CLOSED = -3 };

/*
 * Ciphertext in, and the handshake a step on while it is not over (its
 * records flushed): TLS_NOW_UP when this step finished it, TLS_UP when it
 * was over already, TLS_MORE when it wants more, TLS_HS_FAILED (OpenSSL's
 * error in *why, the queue cleared) or TLS_BROKEN (the BIO or the write
 * failed).
 */
static int tls_in(struct wsb_engine *e, struct wsb_tlsio *t,
		  struct lws *wsi, const unsigned char *in, size_t len,
		  unsigned long *why)
{
	int r;

	if (len && BIO_write(t->rb, in, (int)len) != (int)len)
		return TLS_BROKEN;
	if (t->up)
		return TLS_UP;
	err_reset();
	r = SSL_do_handshake(t->ssl);
	if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
		*why = ERR_peek_error();
		ERR_clear_error();
		return TLS_HS_FAILED;
	}
	if (flush(e, t, wsi) < 0)
		return TLS_BROKEN;
	if (r != 1)
		return TLS_MORE;
	t->up = 1;
	return TLS_NOW_UP;
}

/* One SSL_read: the bytes (> 0), TLS_MORE when it wants more, TLS_CLOSED
 * on close_notify, TLS_BROKEN on any other failure. */
static int tls_read(struct wsb_tlsio *t, unsigned char *buf, int cap)
{
	int n, e;

	err_reset();
	n = SSL_read(t->ssl, buf, cap);
	if (n > 0)
		return n;
	e = SSL_get_error(t->ssl, n);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ)
		return TLS_MORE;
	return e == SSL_ERROR_ZERO_RETURN ? TLS_CLOSED : TLS_BROKEN;
}

/*
 * RAW_RX of a wss:// attempt or a wss server's connection: ciphertext
 * in; the handshake moved on, or every record decrypted and handed on.
 * 0, or -1 to close the socket.
 */
int wsb_tlsio_rx(struct wsb_client *c, struct lws *wsi, unsigned char *in,
		 size_t len)
{
	struct wsb_tlsio *t = c->tlsio;
	unsigned char buf[16384];
	unsigned long why = 0;
	int r;

	if (!t)
		return -1;
	r = tls_in(c->e, t, wsi, in, len, &why);
	if (r == TLS_HS_FAILED)
		handshake_failed(c, wsi, why);
	if (r < 0)
		return -1;
	if (r == TLS_MORE)
		return 0;
	if (r == TLS_NOW_UP && wsb_opening_start(c, wsi) < 0)
		return -1;
	for (;;) {
		int n = tls_read(t, buf, sizeof(buf));

		if (n == TLS_MORE)
			break;
		if (n < 0) {
			if (n == TLS_BROKEN)
				link_failed(c, wsi);
			return -1;
		}
		r = wsb_raw_rx(c, wsi, buf, (size_t)n);
		if (c->tlsio != t) /* the attempt ended inside: t is gone */
			return -1;
		if (r < 0)
			return -1;
	}
	/* (SSL_read may answer, e.g. a key update) */
	return flush(c->e, c->tlsio, wsi);
}

/* ------------------------------------------------------ the server's side */

/*
 * An accepted socket of a wss server: TLS in the server's role, on the
 * same memory BIOs as a client's, so a server connection reads every
 * record a read brought in one turn (lws's own TLS gave one record per
 * loop turn).  NULL when out of memory.
 */
struct wsb_tlsio *wsb_tlsio_accept(void *ssl_ctx)
{
	return tlsio_new(ssl_ctx, 1);
}

/* A refusal is written: close_notify after it, so the client knows the
 * answer is whole. */
void wsb_tlsio_close_notify(struct wsb_engine *e, struct wsb_tlsio *t,
			    struct lws *wsi)
{
	err_reset();
	(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
	(void)flush(e, t, wsi);
}

/* Why a client's TLS handshake failed, for the log. */
static void accept_failed(struct wsb_pending *p, unsigned long err)
{
	struct wsb_server *s = p->s;
	const char *alert = wsb_tls_alert(p->tlsio->ssl);
	const char *r = err ? ERR_reason_error_string(err) : NULL;

	if (!s)
		return;
	s->tls_failures++;
	wsb_log(s->e, WSB_LOG_INFO, "server :%d: %s:%d: TLS handshake "
		"failed: %s%s", s->port, p->remote, p->remote_port,
		alert ? "alert from the client: " : "",
		alert ? alert : r ? r : "closed by the client");
}

/*
 * RAW_RX of a wss server's socket before its upgrade: the TLS handshake,
 * then the request's plaintext to upgrade.c.  Once upgraded (p is gone,
 * its TLS is the connection's), the records that came behind the request
 * are the connection's first frames.  0, or -1 to close the socket.
 */
int wsb_tlsio_pending_rx(struct lws *wsi, struct wsb_pending *p,
			 unsigned char *in, size_t len)
{
	struct wsb_tlsio *t = p->tlsio;
	struct wsb_engine *e = p->e;
	unsigned char buf[16384];
	unsigned long why = 0;
	int r;

	if (!t)
		return -1;
	r = tls_in(e, t, wsi, in, len, &why);
	if (r == TLS_HS_FAILED) {
		accept_failed(p, why);
		(void)flush(e, t, wsi); /* (our alert: the client sees why) */
	}
	if (r < 0)
		return -1;
	if (r == TLS_MORE)
		return 0;
	for (;;) {
		struct wsb_client *c;
		int n = tls_read(t, buf, sizeof(buf));

		if (n == TLS_MORE)
			break;
		if (n < 0)
			return -1; /* (the client went, or broke TLS) */
		if (wsb_upgrade_rx(wsi, p, buf, (size_t)n) < 0)
			return -1;
		c = lws_wsi_user(wsi);
		if (c && c->magic == WSB_CLIENT_MAGIC)
			return wsb_tlsio_rx(c, wsi, NULL, 0);
	}
	return flush(e, t, wsi);
}
