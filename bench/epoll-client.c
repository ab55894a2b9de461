/*
 * epoll-client: a load client for the server echo benchmark
 * (bench/server-bench.sh, LOAD=epoll) that is not itself the bound.
 * bench/lws-client.c does one small read, write and poll per message; this
 * one, on Linux epoll and OpenSSL alone, reads up to 64 KiB per readiness,
 * parses every frame the read holds and then writes all the frames the
 * window allows with one write(), so a fast server gets many messages per
 * loop turn of the client.
 *
 *   epoll-client URL SIZE N K W [CAFILE]
 *
 * The command line, the two tests and the output are lws-client.c's:
 *   URL    ws://HOST:PORT/PATH or wss://HOST:PORT/PATH (wss: the server
 *          certificate is verified against CAFILE, and its name against HOST)
 *   SIZE   message size in bytes; every message is a TEXT frame of ASCII
 *   N      latency test: N round trips, one message in flight (0 = skip),
 *          after min(200, N) uncounted warm-up round trips
 *   K      pipelined test: K messages, at most W unanswered at any time;
 *          msg_s = K / (first send .. K-th echo) (0 = skip); with N = 0
 *          and K > 0, 2 warm-up round trips come first
 *   W      max messages in flight while pipelining
 *
 * On success prints one line and exits 0 after a clean close (the server
 * answers our close with 1000):
 *   RESULT client=epoll-c size=SIZE p50_us=X p99_us=Y msg_s=Z
 * ("-" for a skipped test).  Any failure (connect error, wrong echo, early
 * close, 120 s overall) goes to stderr and exits 1.
 *
 * Every message carries its sequence number (over the whole connection) in
 * its first 10 bytes, the rest is 'a'..'z' repeated; every echo, in both
 * tests, is compared with the message of the same number, so a lost,
 * repeated, reordered or altered message fails the run.  Echoes are checked
 * as they stream in, never reassembled, so a 1 MiB echo costs no copy.
 *
 * TLS runs over two memory BIOs: the socket I/O stays ours (one read() of
 * 64 KiB, one write() of everything encrypted in a turn) and OpenSSL never
 * sees the socket, so there is no WANT_WRITE on a read or retry rule to
 * honour.  Connect and both handshakes block; they are not timed.
 *
 * cc -std=c99 -D_GNU_SOURCE -O2 -Wall -Wextra -o epoll-client \
 *	epoll-client.c -lssl -lcrypto
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, strcasestr */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define READ_MAX 65536			/* one read() per readiness */
/* after parse() at most a partial header or control frame (< 140 bytes)
 * is left, so a whole READ_MAX always fits behind it */
#define RBUF_CAP (READ_MAX + 256)
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum phase { WARM, LAT, THR, CLOSING, OVER };

static struct {
	/* the test */
	size_t size, ndig;		/* message size, digits of its number */
	unsigned long n, k, w, warm;
	enum phase phase;
	unsigned long sent, done;	/* messages sent / echoed in this phase */
	unsigned long tx_seq, rx_seq;	/* the same, over the connection */
	double t0, thr_start, thr_secs, *rtt;
	unsigned char *tmpl;		/* 'a'..'z' repeated, SIZE bytes */
	uint64_t rng;			/* xorshift64* state, for mask keys */
	int close_sent;

	/* the connection */
	int fd, ep, out_armed;		/* out_armed: EPOLLOUT is asked for */
	SSL_CTX *ctx;
	SSL *ssl;			/* NULL for ws */
	BIO *rbio, *wbio;		/* wss: socket bytes in, to the socket out */

	/* receive: the (decrypted) stream and where we are in it */
	unsigned char rbuf[RBUF_CAP], raw[READ_MAX];
	size_t rlen;
	int in_msg, fin;		/* inside an echo; its current frame is final */
	uint64_t remain;		/* payload of the current data frame to come */
	size_t off;			/* bytes of the current echo so far */
	unsigned char digits[10];	/* the number the current echo must carry */

	/* send: wss frames wait in plain for one SSL_write; out holds the
	 * bytes for the socket (ws frames go there directly) */
	unsigned char *plain, *out;
	size_t plen, pcap, opos, olen, ocap;
} C = { .fd = -1, .ep = -1 };

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("epoll-client: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* an OpenSSL failure: its reason, and the certificate check's if it failed */
static void die_ssl(const char *what)
{
	unsigned long e = ERR_get_error();
	long v = C.ssl ? SSL_get_verify_result(C.ssl) : X509_V_OK;

	die("%s: %s%s%s", what, e ? ERR_reason_error_string(e) : "no reason",
	    v != X509_V_OK ? ", certificate: " : "",
	    v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
}

static void on_alarm(int sig)
{
	static const char msg[] = "epoll-client: timeout (120 s)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint32_t rand32(void)
{
	C.rng ^= C.rng >> 12;
	C.rng ^= C.rng << 25;
	C.rng ^= C.rng >> 27;
	return (uint32_t)((C.rng * 0x2545F4914F6CDD1DULL) >> 32);
}

/* the first ndig bytes of message number seq: the number, zero-padded */
static void seq_digits(unsigned char *d, unsigned long seq)
{
	for (size_t i = C.ndig; i-- > 0; seq /= 10)
		d[i] = (unsigned char)('0' + seq % 10);
}

/* n more bytes at the end of a growable buffer; *len covers them */
static unsigned char *grow(unsigned char **buf, size_t *len, size_t *cap,
			   size_t n)
{
	unsigned char *p;

	if (*len + n > *cap) {
		size_t c = *cap ? *cap : 65536;

		while (c < *len + n)
			c *= 2;
		if (!(p = realloc(*buf, c)))
			die("out of memory");
		*buf = p;
		*cap = c;
	}
	p = *buf + *len;
	*len += n;
	return p;
}

/* n more bytes for the socket, behind what is still unwritten */
static unsigned char *out_space(size_t n)
{
	if (C.opos == C.olen) {
		C.opos = C.olen = 0;
	} else if (C.opos && C.olen + n > C.ocap) {
		memmove(C.out, C.out + C.opos, C.olen - C.opos);
		C.olen -= C.opos;
		C.opos = 0;
	}
	return grow(&C.out, &C.olen, &C.ocap, n);
}

/* n more bytes of WebSocket stream: through TLS or straight out */
static unsigned char *tx_space(size_t n)
{
	return C.ssl ? grow(&C.plain, &C.plen, &C.pcap, n) : out_space(n);
}

/* dst = src ^ mask, eight bytes at a time (the 4-byte key twice): a 1 MiB
 * frame costs about what a memcpy does */
static void mask_copy(unsigned char *dst, const unsigned char *src,
		      size_t len, const unsigned char key[4])
{
	uint64_t m, x;
	size_t i = 0;

	memcpy(&m, key, 4);
	memcpy((unsigned char *)&m + 4, key, 4);
	for (; i + 8 <= len; i += 8) {
		memcpy(&x, src + i, 8);
		x ^= m;
		memcpy(dst + i, &x, 8);
	}
	for (; i < len; i++)
		dst[i] = src[i] ^ key[i & 3];
}

/* one whole masked frame (FIN set) into the send buffer; digits, if not
 * NULL, replace the first ndig payload bytes */
static void queue_frame(unsigned opcode, const unsigned char *data,
			size_t len, const unsigned char *digits)
{
	size_t h = len > 65535 ? 10 : len > 125 ? 4 : 2;
	unsigned char *f = tx_space(h + 4 + len), key[4];
	uint32_t r = rand32();

	f[0] = (unsigned char)(0x80 | opcode);
	if (h == 10) {
		f[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			f[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	} else if (h == 4) {
		f[1] = 0x80 | 126;
		f[2] = (unsigned char)(len >> 8);
		f[3] = (unsigned char)len;
	} else {
		f[1] = (unsigned char)(0x80 | len);
	}
	memcpy(key, &r, 4);
	memcpy(f + h, key, 4);
	mask_copy(f + h + 4, data, len, key);
	if (digits)
		for (size_t i = 0; i < C.ndig; i++)
			f[h + 4 + i] = digits[i] ^ key[i & 3];
}

static void send_message(void)
{
	unsigned char d[10];

	seq_digits(d, C.tx_seq++);
	queue_frame(0x1, C.tmpl, C.size, d);
	C.sent++;
}

static void arm_out(int on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0) };

	if (on == C.out_armed)
		return;
	ev.data.fd = C.fd;
	if (epoll_ctl(C.ep, EPOLL_CTL_MOD, C.fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	C.out_armed = on;
}

/* encrypt what waits (wss), then write all there is in one write() until
 * done or EAGAIN (then EPOLLOUT says when to go on) */
static void flush(void)
{
	if (C.ssl) {
		size_t pend;

		for (size_t i = 0; i < C.plen;) { /* into a memory BIO: all goes */
			int n = C.plen - i > (1u << 30) ? 1 << 30 : (int)(C.plen - i);

			if (SSL_write(C.ssl, C.plain + i, n) != n)
				die_ssl("SSL_write");
			i += (size_t)n;
		}
		C.plen = 0;
		if ((pend = BIO_ctrl_pending(C.wbio)) > 0 &&
		    BIO_read(C.wbio, out_space(pend), (int)pend) != (int)pend)
			die("BIO_read failed");
	}
	while (C.opos < C.olen) {
		ssize_t n = write(C.fd, C.out + C.opos, C.olen - C.opos);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				arm_out(1);
				return;
			}
			die("write: %s", strerror(errno));
		}
		C.opos += (size_t)n;
	}
	C.opos = C.olen = 0;
	arm_out(0);
}

/* the next phase after a finished one, skipping empty ones */
static void next_phase(void)
{
	C.sent = C.done = 0;
	if (C.phase == WARM && C.n)
		C.phase = LAT;
	else if (C.phase != THR && C.k)
		C.phase = THR;
	else
		C.phase = CLOSING;
}

/* queue what the phase wants sent now: the next round trip's message,
 * every message the window allows, or our close */
static void pump(void)
{
	static const unsigned char bye[2] = { 1000 >> 8, 1000 & 0xff };

	switch (C.phase) {
	case WARM:
	case LAT:
		if (C.sent == C.done) { /* nothing in flight */
			C.t0 = now();
			send_message();
		}
		break;
	case THR:
		if (!C.sent)
			C.thr_start = now();
		while (C.sent < C.k && C.sent - C.done < C.w)
			send_message();
		break;
	case CLOSING:
		if (!C.close_sent) {
			queue_frame(0x8, bye, 2, NULL);
			C.close_sent = 1;
		}
		break;
	default:
		break;
	}
}

/* does this piece of the current echo, at C.off, match what was sent? */
static int echo_matches(const unsigned char *p, size_t n)
{
	size_t off = C.off;

	for (; n && off < C.ndig; n--, off++, p++)
		if (*p != C.digits[off])
			return 0;
	return !n || !memcmp(p, C.tmpl + off, n);
}

static void echo_done(void)
{
	if (C.off != C.size)
		die("echo %lu shorter than the message (%zu of %zu bytes)",
		    C.rx_seq, C.off, C.size);
	C.in_msg = 0;
	C.rx_seq++;
	C.done++;
	if (C.phase == LAT)
		C.rtt[C.done - 1] = (now() - C.t0) * 1e6;
	if (C.phase == THR && C.done == C.k) {
		C.thr_secs = now() - C.thr_start;
		next_phase();
	} else if (C.phase != THR && C.done == (C.phase == LAT ? C.n : C.warm)) {
		next_phase();
	}
}

static void control(unsigned op, const unsigned char *p, size_t len)
{
	unsigned code;

	switch (op) {
	case 0x9: /* PING: PONG with its payload (nothing after our close) */
		if (!C.close_sent)
			queue_frame(0xA, p, len, NULL);
		break;
	case 0xA: /* PONG: we send no PINGs; RFC 6455 allows unasked ones */
		break;
	case 0x8:
		code = len >= 2 ? (unsigned)p[0] << 8 | p[1] : 1005;
		if (C.phase != CLOSING || !C.close_sent)
			die("connection closed early (server's close %u) after "
			    "%lu echoes", code, C.rx_seq);
		if (code != 1000)
			die("server answered our close with %u", code);
		C.phase = OVER;
		break;
	default:
		die("unknown control opcode %u", op);
	}
}

/* consume every whole frame header, payload piece and control frame in
 * rbuf; keep only a partial header or control frame, at the front */
static void parse(void)
{
	unsigned char *p = C.rbuf, *end = C.rbuf + C.rlen;

	while (p < end) {
		size_t avail = (size_t)(end - p), h = 2;
		uint64_t len;
		unsigned op, fin;

		if (C.remain) { /* a data frame's payload */
			size_t n = avail < C.remain ? avail : (size_t)C.remain;

			if (!echo_matches(p, n))
				die("echo %lu differs from the message", C.rx_seq);
			p += n;
			C.off += n;
			C.remain -= n;
			if (!C.remain && C.fin)
				echo_done();
			continue;
		}
		if (avail < 2)
			break;
		if (p[1] & 0x80)
			die("masked frame from the server");
		if (p[0] & 0x70)
			die("RSV bits set, no extension was agreed");
		len = p[1] & 0x7f;
		h = len == 126 ? 4 : len == 127 ? 10 : 2;
		if (avail < h)
			break;
		if (len == 126) {
			len = (uint64_t)p[2] << 8 | p[3];
		} else if (len == 127) {
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | p[2 + i];
		}
		op = p[0] & 0x0f;
		fin = p[0] & 0x80;
		if (op >= 0x8) {
			if (!fin || len > 125)
				die("bad control frame");
			if (avail < h + len)
				break;
			control(op, p + h, (size_t)len);
			p += h + len;
			if (C.phase == OVER)
				p = end; /* nothing may follow a close */
			continue;
		}
		if (op == 0x1) {
			if (C.in_msg)
				die("new message inside a fragmented one");
			if (C.rx_seq == C.tx_seq)
				die("echo with no message in flight");
			C.in_msg = 1;
			C.off = 0;
			seq_digits(C.digits, C.rx_seq);
		} else if (op != 0x0 || !C.in_msg) {
			die(op == 0x2 ? "echo is a binary frame" :
			    op == 0x0 ? "continuation with no message" :
			    "unknown data opcode");
		}
		if (len > C.size - C.off)
			die("echo %lu longer than the message", C.rx_seq);
		p += h;
		C.remain = len;
		C.fin = fin != 0;
		if (!len && C.fin)
			echo_done();
	}
	C.rlen = (size_t)(end - p);
	memmove(C.rbuf, p, C.rlen);
}

/* wss: decrypt everything the rbio holds, parsing as rbuf fills */
static void tls_drain(void)
{
	while (C.phase != OVER) {
		int r = SSL_read(C.ssl, C.rbuf + C.rlen, (int)(RBUF_CAP - C.rlen));

		if (r > 0) {
			C.rlen += (size_t)r;
			if (C.rlen == RBUF_CAP)
				parse(); /* leaves room for more */
			continue;
		}
		parse(); /* first what came before an error or close_notify */
		switch (SSL_get_error(C.ssl, r)) {
		case SSL_ERROR_WANT_READ: /* the rbio is empty */
			return;
		case SSL_ERROR_ZERO_RETURN:
			if (C.phase == OVER) /* the server's close came with it */
				return;
			die("connection closed early (TLS close_notify) "
			    "after %lu echoes", C.rx_seq);
			break;
		default:
			die_ssl("SSL_read");
		}
	}
}

/* one read() of up to 64 KiB, then every frame in it */
static void net_input(void)
{
	unsigned char *dst = C.ssl ? C.raw : C.rbuf + C.rlen;
	ssize_t n = read(C.fd, dst, READ_MAX);

	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		die("read: %s", strerror(errno));
	}
	if (n == 0)
		die("connection closed early (no close frame) after "
		    "%lu echoes", C.rx_seq);
	if (!C.ssl) {
		C.rlen += (size_t)n;
		parse();
	} else {
		if (BIO_write(C.rbio, C.raw, (int)n) != (int)n)
			die("BIO_write failed");
		tls_drain();
	}
}

/* blocking, before the timed part: some bytes from the socket */
static size_t read_blocking(unsigned char *buf, size_t cap)
{
	ssize_t n;

	do
		n = read(C.fd, buf, cap);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		die("connection closed during the handshake");
	return (size_t)n;
}

/* the same through TLS: some decrypted bytes */
static size_t recv_blocking(unsigned char *buf, size_t cap)
{
	while (C.ssl) {
		int r = SSL_read(C.ssl, buf, (int)cap);
		size_t n;

		if (r > 0)
			return (size_t)r;
		if (SSL_get_error(C.ssl, r) != SSL_ERROR_WANT_READ)
			die_ssl("SSL_read");
		n = read_blocking(C.raw, READ_MAX);
		if (BIO_write(C.rbio, C.raw, (int)n) != (int)n)
			die("BIO_write failed");
	}
	return read_blocking(buf, cap);
}

static void tcp_connect(const char *host, const char *port)
{
	struct addrinfo hints, *res, *ai;
	int e, err = 0, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(host, port, &hints, &res)))
		die("cannot resolve %s: %s", host, gai_strerror(e));
	for (ai = res; ai && C.fd < 0; ai = ai->ai_next) {
		C.fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			      ai->ai_protocol);
		if (C.fd >= 0 && connect(C.fd, ai->ai_addr, ai->ai_addrlen)) {
			err = errno;
			close(C.fd);
			C.fd = -1;
		}
	}
	freeaddrinfo(res);
	if (C.fd < 0)
		die("connect to %s port %s: %s", host, port, strerror(err));
	if (setsockopt(C.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		die("TCP_NODELAY: %s", strerror(errno));
}

static void tls_connect(const char *host, const char *cafile)
{
	unsigned char addr[16];

	if (!(C.ctx = SSL_CTX_new(TLS_client_method())) ||
	    !SSL_CTX_set_min_proto_version(C.ctx, TLS1_2_VERSION))
		die_ssl("SSL_CTX_new");
	if (SSL_CTX_load_verify_locations(C.ctx, cafile, NULL) != 1)
		die_ssl(cafile);
	SSL_CTX_set_verify(C.ctx, SSL_VERIFY_PEER, NULL);
	if (!(C.ssl = SSL_new(C.ctx)) || !(C.rbio = BIO_new(BIO_s_mem())) ||
	    !(C.wbio = BIO_new(BIO_s_mem())))
		die_ssl("SSL_new");
	SSL_set_bio(C.ssl, C.rbio, C.wbio); /* the SSL owns them now */
	SSL_set_connect_state(C.ssl);
	/* an address is checked against the IP names; SNI carries host
	 * names only (RFC 6066) */
	if (inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1) {
		if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(C.ssl), host))
			die_ssl("X509_VERIFY_PARAM_set1_ip_asc");
	} else if (!SSL_set_tlsext_host_name(C.ssl, host) ||
		   !SSL_set1_host(C.ssl, host)) {
		die_ssl("SSL_set1_host");
	}
	for (;;) { /* the socket still blocks: flush() writes it all */
		int r = SSL_do_handshake(C.ssl);
		size_t n;

		flush();
		if (r == 1)
			break;
		if (SSL_get_error(C.ssl, r) != SSL_ERROR_WANT_READ)
			die_ssl("TLS handshake");
		n = read_blocking(C.raw, READ_MAX);
		if (BIO_write(C.rbio, C.raw, (int)n) != (int)n)
			die("BIO_write failed");
	}
}

/* RFC 6455 section 4.1; what follows the response stays in rbuf */
static void ws_handshake(const char *hostport, const char *path)
{
	unsigned char nonce[16], digest[SHA_DIGEST_LENGTH];
	char key[32], accept[32], cat[80], hdr[8192], *line, *save;
	unsigned char *end = NULL;
	int up = 0, conn = 0, acc = 0;
	size_t hlen;
	int n;

	if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
		die("getrandom: %s", strerror(errno));
	EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce));
	n = snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
	SHA1((unsigned char *)cat, (size_t)n, digest);
	EVP_EncodeBlock((unsigned char *)accept, digest, sizeof(digest));

	n = snprintf(hdr, sizeof(hdr), "GET %s HTTP/1.1\r\nHost: %s\r\n"
		     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		     path, hostport, key);
	if (n < 0 || (size_t)n >= sizeof(hdr))
		die("request too long");
	memcpy(tx_space((size_t)n), hdr, (size_t)n);
	flush();

	while (!(end = memmem(C.rbuf, C.rlen, "\r\n\r\n", 4))) {
		if (C.rlen >= sizeof(hdr) - 1)
			die("handshake response too long");
		C.rlen += recv_blocking(C.rbuf + C.rlen, sizeof(hdr) - 1 - C.rlen);
	}
	hlen = (size_t)(end - C.rbuf) + 4;
	memcpy(hdr, C.rbuf, hlen - 2);
	hdr[hlen - 2] = '\0';
	C.rlen -= hlen;
	memmove(C.rbuf, C.rbuf + hlen, C.rlen);

	line = strtok_r(hdr, "\r\n", &save);
	if (!line || strncmp(line, "HTTP/1.1 101", 12) ||
	    (line[12] && line[12] != ' '))
		die("handshake refused: %s", line ? line : "(empty)");
	while ((line = strtok_r(NULL, "\r\n", &save))) {
		char *v = strchr(line, ':'), *e;

		if (!v)
			die("bad response header: %s", line);
		*v++ = '\0';
		v += strspn(v, " \t");
		for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		if (!strcasecmp(line, "Upgrade"))
			up = !strcasecmp(v, "websocket");
		else if (!strcasecmp(line, "Connection"))
			conn = strcasestr(v, "upgrade") != NULL;
		else if (!strcasecmp(line, "Sec-WebSocket-Accept"))
			acc = !strcmp(v, accept);
		else if (!strcasecmp(line, "Sec-WebSocket-Extensions"))
			die("server chose an extension we did not offer: %s", v);
	}
	if (!up || !conn || !acc)
		die("bad handshake response (%s)", !acc ?
		    "Sec-WebSocket-Accept" : !up ? "Upgrade" : "Connection");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static unsigned long arg_num(const char *s, const char *what)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || *s == '-')
		die("bad %s: %s", what, s);
	return v;
}

/* ws[s]://HOST[:PORT][/PATH], HOST a name, an IPv4 or an [IPv6] address;
 * buffers as main's */
static int parse_url(const char *url, int *tls, char host[256], char port[8],
		     char hostport[300], char path[1024])
{
	const char *u = url, *h = url, *he, *end;

	*tls = !strncmp(u, "wss://", 6);
	if (!*tls && strncmp(u, "ws://", 5))
		return -1;
	u += *tls ? 6 : 5;
	end = u + strcspn(u, "/?"); /* the end of HOST[:PORT] */
	if (*u == '[') {
		h = u + 1;
		if (!(he = memchr(h, ']', (size_t)(end - h))))
			return -1;
		u = he + 1; /* past the brackets */
	} else {
		h = u;
		he = u = u + strcspn(u, ":/?");
	}
	if (he == h || he - h > 255 || strlen(end) > 1000)
		return -1;
	if (u == end) {
		strcpy(port, *tls ? "443" : "80");
	} else if (*u != ':' || end - u < 2 || end - u > 6 ||
		   strspn(u + 1, "0123456789") != (size_t)(end - u - 1)) {
		return -1;
	} else {
		snprintf(port, 8, "%.*s", (int)(end - u - 1), u + 1);
	}
	snprintf(host, 256, "%.*s", (int)(he - h), h);
	snprintf(hostport, 300, "%.*s:%s", (int)(u - (url + (*tls ? 6 : 5))),
		 url + (*tls ? 6 : 5), port);
	snprintf(path, 1024, "%s%s", *end == '/' ? "" : "/", end);
	return 0;
}

int main(int argc, char **argv)
{
	char host[256], port[8], hostport[300], path[1024], p50[32] = "-",
	     p99[32] = "-", rate[32] = "-";
	struct epoll_event ev = { .events = EPOLLIN };
	int tls;

	if (argc < 6 || argc > 7)
		die("usage: epoll-client URL SIZE N K W [CAFILE]");
	C.size = arg_num(argv[2], "SIZE");
	C.n = arg_num(argv[3], "N");
	C.k = arg_num(argv[4], "K");
	C.w = arg_num(argv[5], "W");
	if (!C.size || C.size > (size_t)1 << 30 || (C.k && !C.w))
		die("SIZE must be 1..2^30, W >= 1");
	C.warm = C.n ? (C.n < 200 ? C.n : 200) : (C.k ? 2 : 0);
	C.ndig = C.size < 10 ? C.size : 10;

	if (parse_url(argv[1], &tls, host, port, hostport, path))
		die("bad URL: %s", argv[1]);
	if (tls && argc < 7)
		die("wss needs CAFILE");

	C.tmpl = malloc(C.size);
	C.rtt = malloc((C.n ? C.n : 1) * sizeof(double));
	if (!C.tmpl || !C.rtt)
		die("out of memory");
	for (size_t i = 0; i < C.size; i++)
		C.tmpl[i] = (unsigned char)('a' + i % 26);
	if (getrandom(&C.rng, sizeof(C.rng), 0) != (ssize_t)sizeof(C.rng))
		die("getrandom: %s", strerror(errno));
	C.rng |= 1; /* xorshift must not start at 0 */

	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN); /* a peer gone shows as EPIPE instead */
	alarm(120);

	tcp_connect(host, port);
	if (tls)
		tls_connect(host, argv[6]);
	ws_handshake(hostport, path);

	/* the timed part: non-blocking, one epoll loop */
	if (fcntl(C.fd, F_SETFL, fcntl(C.fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    (C.ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    epoll_ctl(C.ep, EPOLL_CTL_ADD, C.fd, &ev) < 0)
		die("epoll setup: %s", strerror(errno));
	C.phase = WARM;
	if (!C.warm)
		next_phase();
	/* bytes that came with the handshake (or wait in the rbio): epoll
	 * will not report them */
	if (C.ssl)
		tls_drain();
	else
		parse();
	while (C.phase != OVER) {
		pump();
		flush();
		if (epoll_wait(C.ep, &ev, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		if (ev.events & EPOLLOUT)
			flush();
		if (ev.events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			net_input();
	}

	if (C.ssl) { /* close_notify, best effort: the server may be gone */
		size_t pend;

		SSL_shutdown(C.ssl);
		pend = BIO_ctrl_pending(C.wbio);
		if (pend > sizeof(C.raw))
			pend = sizeof(C.raw);
		if (pend && BIO_read(C.wbio, C.raw, (int)pend) > 0 &&
		    write(C.fd, C.raw, pend) < 0) {
			/* nothing to do */
		}
		SSL_free(C.ssl);
		SSL_CTX_free(C.ctx);
	}
	close(C.ep);
	close(C.fd);

	if (C.n) {
		qsort(C.rtt, C.n, sizeof(double), cmp_double);
		/* nearest rank: sorted[ceil(p*n)-1], in integers */
		snprintf(p50, sizeof(p50), "%.1f", C.rtt[(C.n + 1) / 2 - 1]);
		snprintf(p99, sizeof(p99), "%.1f", C.rtt[(99 * C.n + 99) / 100 - 1]);
	}
	if (C.k)
		snprintf(rate, sizeof(rate), "%.0f", (double)C.k / C.thr_secs);
	printf("RESULT client=epoll-c size=%zu p50_us=%s p99_us=%s msg_s=%s\n",
	       C.size, p50, p99, rate);
	free(C.tmpl);
	free(C.rtt);
	free(C.plain);
	free(C.out);
	return 0;
}
