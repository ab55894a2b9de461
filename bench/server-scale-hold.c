/*
 * server-scale-hold: the load side of the server scale benchmark
 * (bench/server-scale.sh).  A plain libwebsockets client, on a libuv loop
 * of its own, that opens N idle ws:// connections to one server and holds
 * them; lws answers the server's PINGs by itself, and the client never
 * sends a PING of its own (no validity policy), so what the server's
 * heartbeat costs is what is measured.
 *
 *   server-scale-hold PORT N [--ctl] [--bcast K] [--stop-after S]
 *
 *   PORT          the server, on 127.0.0.1 (path "/")
 *   N             connections, at most BATCH connecting at once
 *   --ctl         one more connection, to path "/ctl", the control channel
 *                 of bench/server-scale.lua and bench/server-scale-node.js
 *   --bcast K     on SIGUSR1: K broadcasts, one after the other (needs --ctl)
 *   --stop-after S  S seconds after "ready": print "stop", then SIGSTOP
 *                 itself (every connection goes silent at once, while the
 *                 kernel still ACKs: dead peers for the server's heartbeat)
 *
 * Lines on stdout (times: CLOCK_MONOTONIC in microseconds, the clock of
 * wsbeat.core.now() and of node's process.hrtime):
 *
 *   open N SECONDS          all N connections open, after SECONDS
 *   ready                   with --ctl: the server answered "gc" (it ran
 *                           its collector; an echo server's echo will do);
 *                           without: right after "open"
 *   recv SEQ FIRST LAST GOT broadcast SEQ: first and last arrival among the
 *                           N connections, and how many got it (N, unless
 *                           10 s passed first)
 *   bdone                   the K broadcasts are over
 *   stop T                  just before SIGSTOP
 *   check pongs=P lost=L    on SIGUSR2 and at exit: PONGs received (0: the
 *                           client sent no PING) and connections closed
 *                           after "open"
 *
 * Broadcast SEQ: "b SEQ" goes to the server on the control channel; the
 * server sends every connection a 64-byte text that starts "B<SEQ> ".
 * SIGTERM/SIGINT: print the check line and exit.  Exit status 1 when a
 * connection fails before all are open, or not all open within 120 s.
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <libwebsockets.h>
#include <uv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 256
#define BCAST_TIMEOUT_US (10 * LWS_US_PER_SEC)
#define BCAST_GAP_US (300 * LWS_US_PER_MS)

static struct lws_context *ctx;
static struct lws *ctl;
static unsigned long n, n_open, n_failed, n_lost, n_pongs;
static int all_open, want_ctl, ctl_open, ready;
static double stop_after = -1;
static volatile sig_atomic_t sig_bcast, sig_check, sig_stop;

/* the control message waiting for WRITEABLE */
static char ctl_msg[LWS_PRE + 64];
static size_t ctl_len;

/* broadcasts */
static long bc_total, bc_left, bc_seq;
static unsigned long bc_got;
static long long bc_first, bc_last;
static lws_sorted_usec_list_t sul_bc, sul_stop;

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		sig_bcast = 1;
	else if (sig == SIGUSR2)
		sig_check = 1;
	else
		sig_stop = 1;
	if (ctx)
		lws_cancel_service(ctx);
}

static void ctl_send(const char *text)
{
	ctl_len = (size_t)snprintf(ctl_msg + LWS_PRE, sizeof(ctl_msg) - LWS_PRE,
				   "%s", text);
	if (ctl)
		lws_callback_on_writable(ctl);
}

static int bc_running;

static void bc_start(lws_sorted_usec_list_t *sul);

/* the end of broadcast bc_seq: every connection got it, or 10 s passed */
static void bc_finish(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	bc_running = 0;
	printf("recv %ld %lld %lld %lu\n", bc_seq, bc_first, bc_last, bc_got);
	fflush(stdout);
	lws_sul_schedule(ctx, 0, &sul_bc, bc_start, BCAST_GAP_US);
}

/* the next broadcast, or "bdone" */
static void bc_start(lws_sorted_usec_list_t *sul)
{
	char text[32];

	(void)sul;
	if (bc_left <= 0) {
		printf("bdone\n");
		fflush(stdout);
		return;
	}
	bc_left--;
	bc_seq++;
	bc_got = 0;
	bc_first = bc_last = 0;
	bc_running = 1;
	snprintf(text, sizeof(text), "b %ld", bc_seq);
	ctl_send(text);
	lws_sul_schedule(ctx, 0, &sul_bc, bc_finish, BCAST_TIMEOUT_US);
}

static void on_broadcast(const char *in, size_t len)
{
	long long t = now_us();
	char buf[24];
	size_t k = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;

	if (!bc_running)
		return;
	memcpy(buf, in, k);
	buf[k] = 0;
	if (buf[0] != 'B' || strtol(buf + 1, NULL, 10) != bc_seq)
		return;
	if (!bc_got)
		bc_first = t;
	bc_last = t;
	if (++bc_got == n) {
		lws_sul_cancel(&sul_bc);
		bc_finish(NULL);
	}
}

static void check(void)
{
	printf("check pongs=%lu lost=%lu open=%lu\n", n_pongs, n_lost, n_open);
	fflush(stdout);
}

static void do_stop(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	printf("stop %lld\n", now_us());
	fflush(stdout);
	raise(SIGSTOP);
}

static void on_ready(void)
{
	ready = 1;
	printf("ready\n");
	fflush(stdout);
	if (stop_after >= 0)
		lws_sul_schedule(ctx, 0, &sul_stop, do_stop,
				 (lws_usec_t)(stop_after * LWS_US_PER_SEC));
}

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	      void *in, size_t len)
{
	int is_ctl = (intptr_t)lws_get_opaque_user_data(wsi) == 1;

	(void)user;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (is_ctl) {
			ctl = wsi;
			ctl_open = 1;
			if (ctl_len)
				lws_callback_on_writable(wsi);
		} else {
			n_open++;
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		n_failed++;
		if (is_ctl)
			fprintf(stderr, "server-scale-hold: the control connection failed\n");
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (is_ctl) {
			ctl = NULL;
			break;
		}
		n_open--;
		if (all_open)
			n_lost++;
		else
			n_failed++;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
		n_pongs++;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (!lws_is_first_fragment(wsi))
			break;
		if (is_ctl) {
			/* "gc done", or the echo of an echo server */
			if (!ready && len >= 2 && !memcmp(in, "gc", 2))
				on_ready();
		} else {
			on_broadcast(in, len);
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (is_ctl && ctl_len) {
			size_t l = ctl_len;

			ctl_len = 0;
			if (lws_write(wsi, (unsigned char *)ctl_msg + LWS_PRE, l,
				      LWS_WRITE_TEXT) < (int)l)
				return -1;
		}
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "hold", cb, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/*
 * No validity policy: this side never sends a PING, and lws keeps no
 * validity timer, which it would re-insert into its sorted timer list (a
 * walk from the head) on every frame received: with 10,000 connections
 * that walk cost ~20 us per broadcast message received (as wsbeat's
 * engine, docs/DESIGN.md "Many connections").
 */
static const lws_retry_bo_t quiet = {
	.secs_since_valid_ping = 0,
	.secs_since_valid_hangup = 0,
};

static struct lws *open_one(int port, const char *path, intptr_t tag)
{
	struct lws_client_connect_info ci;

	memset(&ci, 0, sizeof(ci));
	ci.context = ctx;
	ci.address = "127.0.0.1";
	ci.port = port;
	ci.path = path;
	ci.host = "127.0.0.1";
	ci.origin = "127.0.0.1";
	ci.local_protocol_name = "hold";
	ci.retry_and_idle_policy = &quiet;
	ci.opaque_user_data = (void *)tag;
	return lws_client_connect_via_info(&ci);
}

static void usage(void)
{
	fprintf(stderr, "usage: server-scale-hold PORT N [--ctl] [--bcast K] "
		"[--stop-after S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct sigaction sa;
	static uv_loop_t loop;
	void *foreign[1] = { &loop };
	unsigned long started = 0;
	long long t_start, deadline;
	int port;

	if (argc < 3)
		usage();
	port = atoi(argv[1]);
	n = strtoul(argv[2], NULL, 10);
	if (port <= 0 || port > 65535 || n == 0)
		usage();
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--ctl"))
			want_ctl = 1;
		else if (!strcmp(argv[i], "--bcast") && i + 1 < argc)
			bc_total = atol(argv[++i]);
		else if (!strcmp(argv[i], "--stop-after") && i + 1 < argc)
			stop_after = atof(argv[++i]);
		else
			usage();
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	lws_set_log_level(LLL_ERR, NULL);
	if (uv_loop_init(&loop)) {
		fprintf(stderr, "server-scale-hold: cannot create the libuv loop\n");
		return 1;
	}
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	/*
	 * lws on a libuv loop of ours (epoll): lws's default loop polls every
	 * fd on each turn, and with 10,000 connections poll() itself took two
	 * thirds of this process while a broadcast arrived, enough to make the
	 * load side the bottleneck of the broadcast figure
	 */
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_LIBUV;
	info.foreign_loops = foreign;
	/* no fd_limit_per_thread: with it, lws 4.1 finds the wsi of an fd by
	 * a linear search of its table (wsi_from_fd: 60 % of this process
	 * during a broadcast to 10,000); without, the table is indexed by fd
	 * and sized by the open-file limit, which the script raises */
	info.retry_and_idle_policy = &quiet;
	ctx = lws_create_context(&info);
	if (!ctx) {
		fprintf(stderr, "server-scale-hold: cannot create the context\n");
		return 1;
	}

	t_start = now_us();
	deadline = t_start + 120 * 1000000LL;
	if (want_ctl && !open_one(port, "/ctl", 1)) {
		fprintf(stderr, "server-scale-hold: cannot open the control connection\n");
		return 1;
	}
	while (!sig_stop) {
		if (!all_open) {
			while (started < n && started - n_open - n_failed < BATCH) {
				if (!open_one(port, "/", 0))
					n_failed++;
				started++;
			}
			if (n_failed) {
				fprintf(stderr, "server-scale-hold: %lu connection(s) failed\n",
					n_failed);
				return 1;
			}
			if (n_open == n && (!want_ctl || ctl_open)) {
				all_open = 1;
				printf("open %lu %.2f\n", n,
				       (double)(now_us() - t_start) / 1e6);
				fflush(stdout);
				if (want_ctl)
					ctl_send("gc");
				else
					on_ready();
			} else if (now_us() > deadline) {
				fprintf(stderr, "server-scale-hold: only %lu of %lu open "
					"after 120 s (%lu started)\n", n_open, n,
					started);
				return 1;
			}
		}
		if (sig_bcast) {
			sig_bcast = 0;
			if (ctl && ready && !bc_running && bc_left <= 0 &&
			    bc_total > 0) {
				bc_left = bc_total;
				bc_start(NULL);
			}
		}
		if (sig_check) {
			sig_check = 0;
			check();
			if (ctl)
				ctl_send("stats");
		}
		/* one turn; signals wake it through lws_cancel_service */
		uv_run(&loop, UV_RUN_ONCE);
	}
	check();
	/* exit without closing 10,000 connections one by one */
	_exit(0);
}
