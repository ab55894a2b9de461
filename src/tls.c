/*
 * TLS: the client SSL_CTX for each distinct TLS setup, a wss server's
 * SSL_CTX, and certificate verification (the TLS itself is tlsio.c's).
 *
 * ca_file/ca_path replace the system store, loading errors carry
 * OpenSSL's reason, and wsb_tls_check() checks the leaf against the name or
 * address the user meant (server_name, or the URL's host: an IPv6 literal
 * too).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "wsbeat.h"

/* Append OpenSSL's queued reasons to buf and clear the queue. */
static void ssl_errors(char *buf, size_t len)
{
	unsigned long e;
	size_t used = strlen(buf);
	int first = 1;

	while ((e = ERR_get_error()) != 0) {
		const char *r = ERR_reason_error_string(e);
		char tmp[128];

		if (!r) {
			snprintf(tmp, sizeof(tmp), "error %lx", e);
			r = tmp;
		}
		if (used < len)
			used += (size_t)snprintf(buf + used, len - used, "%s%s",
						 first ? ": " : ", ", r);
		first = 0;
	}
}

/*
 * Remember the last fatal alert the server sent on each SSL.  With TLS 1.3
 * a server that rejects our (missing) client certificate says so only after
 * the handshake, and lws then reports a plain read failure: the alert is
 * the only place that says why.
 */
static int alert_index = -1;

/*
 * Set when the server asked for a client certificate and we had none to
 * give.  OpenSSL calls the client-cert callback only in that case, so it is
 * the one sure sign, even when the server's alert is lost in the reset.
 */
static int certreq_index = -1;

static int no_client_cert_cb(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
	(void)x509;
	(void)pkey;
	SSL_set_ex_data(ssl, certreq_index, (void *)(intptr_t)1);
	return 0; /* send no certificate and let the server decide */
}

int wsb_tls_cert_unanswered(void *ssl)
{
	return ssl && certreq_index >= 0 &&
	       SSL_get_ex_data(ssl, certreq_index) != NULL;
}

static void info_cb(const SSL *ssl, int where, int ret)
{
	/* SSL_CB_READ_ALERT is two bits: test both, or sent alerts match too */
	if ((where & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT &&
	    (ret >> 8) == SSL3_AL_FATAL)
		SSL_set_ex_data((SSL *)ssl, alert_index,
				(void *)(intptr_t)((ret & 0xff) + 1));
}

/*
 * The fatal alert the peer sent on this connection, or NULL.  The records
 * still buffered are processed first: a server that closes right after its
 * alert is often seen as a hang-up before lws reads the alert.
 */
const char *wsb_tls_alert(void *p)
{
	SSL *ssl = p;
	char byte;
	intptr_t a;

	if (!ssl || alert_index < 0)
		return NULL;
	ERR_clear_error();
	(void)SSL_peek(ssl, &byte, 1);
	ERR_clear_error();
	a = (intptr_t)SSL_get_ex_data(ssl, alert_index);
	if (!a)
		return NULL;
	if (a - 1 == 116) /* OpenSSL 3.0 has no name for it */
		return "certificate required";
	return SSL_alert_desc_string_long((int)a - 1);
}

/* Unpredictable bytes (a frame's mask key); 0 on failure. */
int wsb_random(unsigned char *buf, int n)
{
	return RAND_bytes(buf, n) == 1;
}

/* What both roles' SSL_CTX have: TLS 1.2 at least, no renegotiation,
 * alerts recorded.  NULL and why in err. */
static SSL_CTX *ctx_new(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (alert_index < 0)
		alert_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ERR_clear_error();
	ctx = SSL_CTX_new(method);
	if (!ctx) {
		snprintf(err, errlen, "cannot create TLS context");
		ssl_errors(err, errlen);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* a TLS 1.2 renegotiation would make SSL_write wait for a read,
	 * which a memory BIO cannot (tlsio.c) */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_info_callback(ctx, info_cb);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			      SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

void *wsb_tls_new_ctx(const struct wsb_opts *o, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (certreq_index < 0)
		certreq_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ctx = ctx_new(TLS_client_method(), err, errlen);
	if (!ctx)
		return NULL;

	if (o->ca_file || o->ca_path) {
		if (!SSL_CTX_load_verify_locations(ctx, o->ca_file, o->ca_path)) {
			snprintf(err, errlen, "cannot load %s '%s'",
				 o->ca_file ? "ca_file" : "ca_path",
				 o->ca_file ? o->ca_file : o->ca_path);
			goto fail;
		}
	} else if (!SSL_CTX_set_default_verify_paths(ctx)) {
		snprintf(err, errlen, "cannot load the system CA store");
		goto fail;
	}

	if (o->cert_file) {
		if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
			snprintf(err, errlen, "cannot load cert_file '%s'",
				 o->cert_file);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx,
						o->key_file ? o->key_file : o->cert_file,
						SSL_FILETYPE_PEM) != 1) {
			snprintf(err, errlen, "cannot load key_file '%s'",
				 o->key_file ? o->key_file : o->cert_file);
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			snprintf(err, errlen,
				 "key_file does not match cert_file");
			goto fail;
		}
	} else {
		SSL_CTX_set_client_cert_cb(ctx, no_client_cert_cb);
	}
	return ctx;

fail:
	ssl_errors(err, errlen);
	SSL_CTX_free(ctx);
	return NULL;
}

void wsb_tls_free_ctx(void *ctx)
{
	SSL_CTX_free(ctx);
}

/* ALPN: a browser offers h2 and http/1.1; a WebSocket upgrade is 1.1 */
static int alpn_select(SSL *ssl, const unsigned char **out,
		       unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	static const unsigned char ours[] = "\x08http/1.1";
	unsigned char *o;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&o, outlen, ours, sizeof(ours) - 1, in,
				  inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = o;
	return SSL_TLSEXT_ERR_OK;
}

/*
 * A wss server's SSL_CTX: its certificate chain and key, and with
 * verify_client, client certificates required and checked against
 * ca_file.  NULL and why in err when a file does not load.
 */
void *wsb_tls_new_server_ctx(const char *cert_file, const char *key_file,
			     const char *ca_file, int verify_client,
			     char *err, size_t errlen)
{
	static const unsigned char sid[] = "wsbeat";
	SSL_CTX *ctx = ctx_new(TLS_server_method(), err, errlen);

	if (!ctx)
		return NULL;
	/* (resumed sessions: required once client certificates are) */
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		snprintf(err, errlen, "cannot load tls.cert_file '%s'",
			 cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "cannot load tls.key_file '%s'", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls.key_file '%s' does not match "
			 "tls.cert_file '%s'", key_file, cert_file);
		goto fail;
	}
	if (ca_file) {
		STACK_OF(X509_NAME) *names;

		if (!SSL_CTX_load_verify_locations(ctx, ca_file, NULL)) {
			snprintf(err, errlen, "cannot load tls.ca_file '%s'",
				 ca_file);
			goto fail;
		}
		/* (the CAs named in the certificate request) */
		names = SSL_load_client_CA_file(ca_file);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
	}
	if (verify_client)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
				   SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return ctx;

fail:
	ssl_errors(err, errlen);
	SSL_CTX_free(ctx);
	return NULL;
}

/* Our verdict on one element of the server's chain (OpenSSL's is
 * preverify_ok), with the host name checked on the leaf: 0 to accept, 1
 * to reject, and why in c->at.tls_err. */
int wsb_tls_check(struct wsb_client *c, void *x509_ctx, int preverify_ok)
{
	X509_STORE_CTX *xs = x509_ctx;
	const char *name;
	X509 *cert;
	int err;

	if (!c->o.verify) {
		X509_STORE_CTX_set_error(xs, X509_V_OK);
		return 0;
	}
	if (!preverify_ok) {
		err = X509_STORE_CTX_get_error(xs);
		if (!c->at.tls_err[0])
			snprintf(c->at.tls_err, sizeof(c->at.tls_err),
				 "certificate verify failed: %s",
				 X509_verify_cert_error_string(err));
		return 1;
	}
	if (X509_STORE_CTX_get_error_depth(xs) != 0)
		return 0;

	cert = X509_STORE_CTX_get_current_cert(xs);
	name = c->o.server_name ? c->o.server_name : c->url.host;
	if (wsb_is_ip_literal(name) ?
		    X509_check_ip_asc(cert, name, 0) == 1 :
		    X509_check_host(cert, name, strlen(name), 0, NULL) == 1)
		return 0;

	X509_STORE_CTX_set_error(xs, X509_V_ERR_HOSTNAME_MISMATCH);
	snprintf(c->at.tls_err, sizeof(c->at.tls_err),
		 "certificate verify failed: certificate does not match host "
		 "name '%.150s'", name);
	return 1;
}
