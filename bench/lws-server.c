/*
 * lws-server: the "C ceiling" for the server echo benchmark
 * (bench/server-bench.sh).  A plain echo server on libwebsockets (4.1)
 * with its default poll loop (no libuv), one protocol, nothing on top, so
 * the other servers can be read against it.
 *
 *   lws-server PORT [CERT KEY]
 *
 *   PORT   TCP port on 127.0.0.1 (0: the kernel picks one)
 *   CERT   PEM certificate (chain) and KEY its private key: serve wss
 *          instead of ws
 *
 * Prints "listening PORT" on stdout once the socket listens; runs until
 * SIGTERM or SIGINT, then exits 0.  Any path is accepted.
 *
 * Echo: every message (text or binary, in any number of fragments) is
 * reassembled and sent back whole, as one frame of the same type, in the
 * order received.  Messages up to MAX_MESSAGE bytes (2 MiB); a larger one
 * closes the connection with 1009.  Text is checked for UTF-8 by lws
 * (invalid: close 1007), as in bench/lws-client.c.  Reassembling, rather
 * than echoing fragment by fragment, is what the other servers of the
 * benchmark do (node ws, python websockets), so the load client receives
 * the same frames from all of them.
 *
 * As lws asks, one lws_write per WRITEABLE callback: complete messages wait
 * in a per-connection queue, and the next WRITEABLE is asked for while the
 * queue is not empty.  When more than QUEUE_HIGH bytes wait, reading from
 * that connection stops (lws_rx_flow_control) until the queue is drained.
 * Protocol settings as bench/lws-client.c's: default rx buffer
 * (pt_serv_buf_size, 4 KiB), tx_packet_size 64 KiB + 16 (lws sends a large
 * message in 64 KiB pieces and keeps the rest as its own buffered partial).
 *
 * LWSS_DEBUG=<lws log mask> (or any non-number for err|warn|notice) turns
 * lws's logging on; without it only errors are logged.
 *
 * cc -O2 -Wall -Wextra -o lws-server lws-server.c \
 *	$(pkg-config --cflags --libs libwebsockets)
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L /* sigaction under -std=c99 */
#endif
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE ((size_t)2 << 20)
#define QUEUE_HIGH ((size_t)8 << 20)

/* a message waiting to be echoed: LWS_PRE bytes of headroom, then data */
struct msg {
	struct msg *next;
	size_t len;
	int binary;
	unsigned char buf[]; /* LWS_PRE + len */
};

/* per connection (lws allocates and zeroes it) */
struct pss {
	struct msg *rx;		/* the message being reassembled */
	size_t rx_cap;		/* payload room in rx */
	struct msg *head, *tail; /* complete messages, oldest first */
	size_t queued;		/* payload bytes in the queue */
	int throttled;		/* rx flow control is off */
};

static struct lws_context *ctx;
static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
	if (ctx)
		lws_cancel_service(ctx); /* wake the poll */
}

static void free_all(struct pss *p)
{
	struct msg *m;

	free(p->rx);
	p->rx = NULL;
	p->rx_cap = 0;
	while ((m = p->head)) {
		p->head = m->next;
		free(m);
	}
	p->tail = NULL;
	p->queued = 0;
}

/* room for at least need payload bytes in p->rx (keeping what is there) */
static int rx_reserve(struct pss *p, size_t need)
{
	struct msg *m;
	size_t cap = p->rx_cap;

	if (p->rx && need <= cap)
		return 0;
	if (cap < need)
		cap = cap * 2 > need ? cap * 2 : need;
	if (cap > MAX_MESSAGE)
		cap = MAX_MESSAGE;
	m = realloc(p->rx, sizeof(*m) + LWS_PRE + cap);
	if (!m)
		return -1;
	if (!p->rx)
		m->len = 0;
	p->rx = m;
	p->rx_cap = cap;
	return 0;
}

static int on_receive(struct lws *wsi, struct pss *p, const void *in,
		      size_t len)
{
	size_t remaining = lws_remaining_packet_payload(wsi);
	struct msg *m;

	if (lws_is_first_fragment(wsi) && p->rx)
		p->rx->len = 0; /* cannot happen: lws checks the opcodes */
	if ((p->rx ? p->rx->len : 0) + len + remaining > MAX_MESSAGE) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 NULL, 0);
		return -1;
	}
	/* the first piece of a frame reserves the whole frame: a one-frame
	 * message is received into one allocation, with no copying */
	if (rx_reserve(p, (p->rx ? p->rx->len : 0) + len + remaining)) {
		lwsl_err("lws-server: out of memory\n");
		return -1;
	}
	m = p->rx;
	if (lws_is_first_fragment(wsi))
		m->binary = lws_frame_is_binary(wsi);
	memcpy(m->buf + LWS_PRE + m->len, in, len);
	m->len += len;
	if (!lws_is_final_fragment(wsi) || remaining)
		return 0;

	/* a whole message: queue it for the WRITEABLE callbacks */
	p->rx = NULL;
	p->rx_cap = 0;
	m->next = NULL;
	if (p->tail)
		p->tail->next = m;
	else
		p->head = m;
	p->tail = m;
	p->queued += m->len;
	if (p->queued > QUEUE_HIGH && !p->throttled) {
		p->throttled = 1;
		lws_rx_flow_control(wsi, 0);
	}
	lws_callback_on_writable(wsi);
	return 0;
}

static int on_writeable(struct lws *wsi, struct pss *p)
{
	struct msg *m = p->head;
	int n;

	if (!m)
		return 0;
	p->head = m->next;
	if (!p->head)
		p->tail = NULL;
	p->queued -= m->len;
	/* lws frames (and for TLS encrypts) in place; what the socket does
	 * not take is copied into lws's buffer, so m is free to go */
	n = lws_write(wsi, m->buf + LWS_PRE, m->len,
		      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
	free(m);
	if (n < 0)
		return -1;
	if (p->throttled && p->queued <= QUEUE_HIGH / 2) {
		p->throttled = 0;
		lws_rx_flow_control(wsi, 1);
	}
	if (p->head)
		lws_callback_on_writable(wsi);
	return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct pss *p = user;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		memset(p, 0, sizeof(*p));
		return 0;
	case LWS_CALLBACK_RECEIVE:
		return on_receive(wsi, p, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return on_writeable(wsi, p);
	case LWS_CALLBACK_CLOSED:
		free_all(p);
		return 0;
	default:
		/* plain HTTP and the rest: lws's defaults (404 for a GET) */
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
	/* as bench/lws-client.c: default rx buffer, 64 KiB pieces per send() */
	{ "lws-echo", callback, sizeof(struct pss), 0, 0, NULL, 65536 + 16 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

int main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct sigaction sa;
	struct lws_vhost *vh;
	const char *dbg = getenv("LWSS_DEBUG");
	char *end;
	long port;

	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: lws-server PORT [CERT KEY]\n");
		return 2;
	}
	port = strtol(argv[1], &end, 10);
	if (!*argv[1] || *end || port < 0 || port > 65535) {
		fprintf(stderr, "lws-server: bad PORT: %s\n", argv[1]);
		return 2;
	}

	if (dbg)
		lws_set_log_level(atoi(dbg) ? atoi(dbg) :
				  LLL_ERR | LLL_WARN | LLL_NOTICE, NULL);
	else
		lws_set_log_level(LLL_ERR, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&info, 0, sizeof(info));
	info.port = (int)port;
	info.iface = "127.0.0.1";
	info.protocols = protocols;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_DISABLE_IPV6;
	if (argc == 4) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = argv[2];
		info.ssl_private_key_filepath = argv[3];
	}
	ctx = lws_create_context(&info);
	if (!ctx) {
		fprintf(stderr, "lws-server: cannot create the lws context "
			"(port %ld in use? certificate?)\n", port);
		return 1;
	}
	vh = lws_get_vhost_by_name(ctx, "default");
	if (vh && lws_get_vhost_listen_port(vh) > 0)
		port = lws_get_vhost_listen_port(vh);
	printf("listening %ld\n", port);
	fflush(stdout);

	while (!stopping)
		if (lws_service(ctx, 0) < 0)
			break;
	lws_context_destroy(ctx);
	return 0;
}
