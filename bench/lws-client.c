/*
 * lws-client: the "C ceiling" for the echo benchmark.  A plain C client on
 * libwebsockets (4.1) with its default poll loop, doing what wsbeat does
 * with nothing on top, so the other clients can be read against it.
 *
 *   lws-client URL SIZE N K W [CAFILE]
 *
 *   URL    ws://HOST:PORT/PATH or wss://HOST:PORT/PATH (wss: the server
 *          certificate is verified against CAFILE)
 *   SIZE   message size in bytes; every message is a TEXT frame of ASCII
 *   N      latency test: N round trips, one message in flight (0 = skip),
 *          after min(200, N) uncounted warm-up round trips
 *   K      pipelined test: K messages, at most W unanswered at any time;
 *          msg_s = K / (first send .. K-th echo) (0 = skip); with N = 0
 *          and K > 0, 2 warm-up round trips come first
 *   W      max messages in flight while pipelining
 *
 * On success prints one line and exits 0 after a clean close (1000):
 *   RESULT client=lws-c size=SIZE p50_us=X p99_us=Y msg_s=Z
 * ("-" for a skipped test).  Any failure (connect error, wrong echo, early
 * close, 120 s overall) goes to stderr and exits 1.  LWSC_DEBUG=<lws log
 * mask> (or any non-number for err|warn|notice) turns lws's logging on and
 * prints write/receive counters on stderr.
 *
 * cc -O2 -Wall -Wextra -o lws-client lws-client.c \
 *	$(pkg-config --cflags --libs libwebsockets)
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c99 */
#endif
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum phase { WARM, LAT, THR, CLOSING, OVER };

static struct {
	size_t size;
	unsigned long n, k, w, warm;
	enum phase phase;
	unsigned long done;		/* round trips finished in this phase */
	unsigned long sent, recvd;	/* pipelined counters */
	int want_send;			/* ping-pong: next message is due */
	int wr_asked;			/* a WRITEABLE is already requested */
	unsigned char *tx;		/* LWS_PRE + size: lws masks in place */
	unsigned char *tmpl;		/* the unmasked message, to restore */
	size_t rx_len;			/* bytes of the current echo so far */
	double t0, thr_start, thr_secs;
	double *rtt;
	const char *err;
	char errbuf[256];
	int finished;
	int debug;
	unsigned long partials, rx_calls; /* LWSC_DEBUG counters */
} B;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_alarm(int sig)
{
	static const char msg[] = "lws-client: timeout (120 s)\n";

	(void)sig;
	/* stdio is not async-signal-safe; the loop may never return */
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

static int fail(const char *msg)
{
	if (!B.err)
		B.err = msg;
	B.phase = OVER;
	return -1; /* lws drops the connection; CLIENT_CLOSED ends the loop */
}

/* Latency messages carry their index in the leading digits, so an echo of
 * the previous (or any other recent) message cannot pass the check. */
static void make_message(unsigned long idx)
{
	size_t d = B.size < 10 ? B.size : 10;

	for (size_t i = d; i-- > 0; idx /= 10)
		B.tmpl[i] = (unsigned char)('0' + idx % 10);
}

static void ask_writable(struct lws *wsi)
{
	if (!B.wr_asked) {
		B.wr_asked = 1;
		lws_callback_on_writable(wsi);
	}
}

/* the next phase after a finished one, skipping empty ones */
static void next_phase(struct lws *wsi)
{
	B.done = 0;
	if (B.phase == WARM && B.n) {
		B.phase = LAT;
		B.want_send = 1;
	} else if (B.phase != THR && B.k) {
		B.phase = THR;
	} else {
		B.phase = CLOSING;
	}
	ask_writable(wsi);
}

static int send_one(struct lws *wsi)
{
	/* lws masks the payload in place; a partial send is copied into
	 * lws's own buffer (and lws returns the full length), so tx is
	 * ours again as soon as lws_write returns */
	memcpy(B.tx + LWS_PRE, B.tmpl, B.size);
	if (lws_write(wsi, B.tx + LWS_PRE, B.size, LWS_WRITE_TEXT) < (int)B.size)
		return fail("lws_write failed");
	if (B.debug && lws_partial_buffered(wsi))
		B.partials++;
	return 0;
}

static int on_writeable(struct lws *wsi)
{
	B.wr_asked = 0;
	switch (B.phase) {
	case WARM:
	case LAT:
		if (!B.want_send)
			return 0; /* lws calls us after draining a partial */
		B.want_send = 0;
		make_message(B.phase == LAT ? B.done : B.n + B.done);
		B.t0 = now();
		return send_one(wsi);
	case THR:
		if (B.sent >= B.k || B.sent - B.recvd >= B.w)
			return 0;
		if (!B.sent)
			B.thr_start = now();
		B.sent++;
		if (send_one(wsi))
			return -1;
		/* one lws_write per WRITEABLE, as lws asks of its users */
		if (B.sent < B.k && B.sent - B.recvd < B.w)
			ask_writable(wsi);
		return 0;
	case CLOSING:
		B.phase = OVER;
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	default:
		return 0;
	}
}

static int on_receive(struct lws *wsi, const unsigned char *in, size_t len)
{
	int pingpong = B.phase == WARM || B.phase == LAT;

	B.rx_calls++;
	if (pingpong ? B.want_send : B.phase != THR || B.recvd >= B.sent)
		return fail("echo with no message in flight");
	if (lws_frame_is_binary(wsi))
		return fail("echo is a binary frame");
	if (B.rx_len + len > B.size)
		return fail("echo longer than the message");
	/* the latency message is still in tmpl: compare piecewise, no copy */
	if (pingpong && len && memcmp(in, B.tmpl + B.rx_len, len))
		return fail("echo content differs from the message");
	B.rx_len += len;
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	if (B.rx_len != B.size)
		return fail("echo shorter than the message");
	B.rx_len = 0;

	if (B.phase == THR) {
		B.recvd++;
		if (B.recvd == B.k) {
			B.thr_secs = now() - B.thr_start;
			next_phase(wsi);
		} else if (B.sent < B.k) {
			ask_writable(wsi);
		}
		return 0;
	}
	if (B.phase == LAT)
		B.rtt[B.done] = (now() - B.t0) * 1e6;
	if (++B.done == (B.phase == LAT ? B.n : B.warm)) {
		next_phase(wsi);
	} else {
		B.want_send = 1;
		ask_writable(wsi);
	}
	return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	(void)user;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		snprintf(B.errbuf, sizeof(B.errbuf), "connect failed: %s",
			 in ? (const char *)in : "(no reason)");
		fail(B.errbuf);
		B.finished = 1;
		break;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (B.warm) {
			B.phase = WARM;
			B.want_send = 1;
			ask_writable(wsi);
		} else {
			B.phase = WARM; /* nothing to warm up: straight on */
			next_phase(wsi);
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(wsi);
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return on_receive(wsi, in, len);
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (B.phase != OVER)
			fail("connection closed early");
		B.finished = 1;
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	/* as wsbeat's: default rx buffer, whole 64 KiB fragments per send() */
	{ "lws-bench", callback, 0, 0, 0, NULL, 65536 + 16 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static unsigned long arg_num(const char *s, const char *what)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || *s == '-') {
		fprintf(stderr, "lws-client: bad %s: %s\n", what, s);
		exit(1);
	}
	return v;
}

int main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct lws_client_connect_info ci;
	struct lws_context *ctx;
	const char *prot, *host, *path, *dbg = getenv("LWSC_DEBUG");
	char url[512], fullpath[512], p50[32] = "-", p99[32] = "-",
	     rate[32] = "-";
	int port = 0, tls, rc = 1;

	if (argc < 6 || argc > 7) {
		fprintf(stderr, "usage: lws-client URL SIZE N K W [CAFILE]\n");
		return 1;
	}
	B.size = arg_num(argv[2], "SIZE");
	B.n = arg_num(argv[3], "N");
	B.k = arg_num(argv[4], "K");
	B.w = arg_num(argv[5], "W");
	if (!B.size || B.size > (size_t)1 << 30 || (B.k && !B.w)) {
		fprintf(stderr, "lws-client: SIZE must be 1..2^30, W >= 1\n");
		return 1;
	}
	B.warm = B.n ? (B.n < 200 ? B.n : 200) : (B.k ? 2 : 0);

	snprintf(url, sizeof(url), "%s", argv[1]);
	if (lws_parse_uri(url, &prot, &host, &port, &path) ||
	    (strcmp(prot, "ws") && strcmp(prot, "wss")) || !*host) {
		fprintf(stderr, "lws-client: bad URL: %s\n", argv[1]);
		return 1;
	}
	tls = !strcmp(prot, "wss");
	if (tls && argc < 7) {
		fprintf(stderr, "lws-client: wss needs CAFILE\n");
		return 1;
	}
	/* lws_parse_uri cuts the '/' off the path */
	snprintf(fullpath, sizeof(fullpath), "%s%s",
		 *path == '/' ? "" : "/", path);

	B.tx = malloc(LWS_PRE + B.size);
	B.tmpl = malloc(B.size);
	B.rtt = malloc((B.n ? B.n : 1) * sizeof(double));
	if (!B.tx || !B.tmpl || !B.rtt) {
		fprintf(stderr, "lws-client: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < B.size; i++)
		B.tmpl[i] = (unsigned char)('a' + i % 26);

	B.debug = dbg != NULL;
	if (dbg)
		lws_set_log_level(atoi(dbg) ? atoi(dbg) :
				  LLL_ERR | LLL_WARN | LLL_NOTICE, NULL);
	else
		lws_set_log_level(0, NULL);

	signal(SIGALRM, on_alarm);
	alarm(120);

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
		       LWS_SERVER_OPTION_VALIDATE_UTF8;
	if (tls)
		info.client_ssl_ca_filepath = argv[6];
	ctx = lws_create_context(&info);
	if (!ctx) {
		fprintf(stderr, "lws-client: cannot create the lws context\n");
		return 1;
	}

	memset(&ci, 0, sizeof(ci));
	ci.context = ctx;
	ci.address = host;
	ci.port = port;
	ci.path = fullpath;
	ci.host = host;
	ci.origin = host;
	ci.local_protocol_name = protocols[0].name;
	ci.ssl_connection = tls ? LCCSCF_USE_SSL : 0;
	if (!lws_client_connect_via_info(&ci)) {
		if (!B.err)
			B.err = "cannot start the connection";
		B.finished = 1;
	}
	while (!B.finished)
		if (lws_service(ctx, 0) < 0) {
			fail("lws_service failed");
			break;
		}
	lws_context_destroy(ctx);

	if (B.err) {
		fprintf(stderr, "lws-client: %s\n", B.err);
	} else {
		if (B.n) {
			qsort(B.rtt, B.n, sizeof(double), cmp_double);
			/* nearest rank: sorted[ceil(p*n)-1], in integers */
			snprintf(p50, sizeof(p50), "%.1f",
				 B.rtt[(B.n + 1) / 2 - 1]);
			snprintf(p99, sizeof(p99), "%.1f",
				 B.rtt[(99 * B.n + 99) / 100 - 1]);
		}
		if (B.k)
			snprintf(rate, sizeof(rate), "%.0f",
				 (double)B.k / B.thr_secs);
		printf("RESULT client=lws-c size=%zu p50_us=%s p99_us=%s "
		       "msg_s=%s\n", B.size, p50, p99, rate);
		rc = 0;
	}
	if (B.debug)
		fprintf(stderr, "lws-client: %lu partial writes, %lu receive "
			"callbacks\n", B.partials, B.rx_calls);
	free(B.tx);
	free(B.tmpl);
	free(B.rtt);
	return rc;
}
