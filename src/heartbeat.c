/*
 * Deadlines of a client (connect, close, retry, probe, dead peer) on one
 * libuv timer, the heartbeat's probes and their pongs (RTT), and the
 * stall checks that keep a paused host from judging a live peer dead.
 */
#include <math.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <string.h>

#include "wsbeat.h"
#include "conn.h"

static void on_timer(uv_timer_t *t);

void wsb_client_timer_arm(struct wsb_client *c)
{
	double next = 0;
	double d[] = { c->at.t_connect, c->close.t_close, c->t_retry, c->hb.t_probe,
		       c->hb.t_dead };

	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
		if (d[i] > 0 && (next == 0 || d[i] < next))
			next = d[i];
	c->armed_at = next;
	wsb_engine_kick(c->e);
	if (next == 0) {
		uv_timer_stop(&c->timer);
		return;
	}
	wsb_timer_start_at(c->e, &c->timer, on_timer, next);
}

/*
 * Heartbeat deadlines snap to a grid shared by all clients (1/200 of the
 * interval, at most 25 ms late), so many connections probe in the same
 * loop turn and their pongs come back together: fewer wake-ups per probe
 * when thousands of connections heartbeat.  The probe's answer deadline
 * snaps too: with timeout = interval, an answered probe's deadline and the
 * next probe then fall on the same slot, one timer expiry per cycle.
 */
static double hb_snap(const struct wsb_client *c, double t)
{
	double slack = c->o.hb_interval / 200;

	if (slack > 0.025)
		slack = 0.025;
	return slack >= 0.001 ? ceil(t / slack) * slack : t;
}

void wsb_hb_restart(struct wsb_client *c, double now)
{
	if (!c->o.heartbeat || c->st != WSB_OPEN)
		return;
	c->hb.t_probe = hb_snap(c, now + c->o.hb_interval);
	c->hb.t_dead = 0;
}

/*
 * Anything received proves the peer alive.  The deadlines move; the timer is
 * re-armed only when the new probe time comes before the armed deadline
 * (timeout > interval).  Otherwise the armed timer fires at the old one and
 * re-arms itself: one extra wake-up per interval instead of a timer update
 * per message.
 */
void wsb_heard(struct wsb_client *c)
{
	if (c->o.heartbeat && (c->hb.t_dead || c->hb.t_probe)) {
		wsb_hb_restart(c, wsb_now(c->e));
		if (!c->armed_at || c->hb.t_probe < c->armed_at)
			wsb_client_timer_arm(c);
	}
}

/*
 * A probe's payload: 'W' and the send time, so its pong gives the RTT; in
 * hex digits, because a libwebsockets 4.1 server checks a PONG's payload as
 * UTF-8 when the last data message was text (its server parser does not
 * exempt control frames, its client parser does), and fails the link with
 * 1007 on the raw bytes of a timestamp.
 */
size_t wsb_stamp_payload(unsigned char *p)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t t = uv_hrtime();

	p[0] = 'W';
	for (int i = 0; i < 16; i++)
		p[1 + i] = (unsigned char)hex[(t >> (60 - 4 * i)) & 0xf];
	return 17;
}

/* The send time in a probe's payload, or 0 when it is not one. */
static uint64_t stamp_time(const unsigned char *in, size_t len)
{
	uint64_t t = 0;

	if (len != 17 || in[0] != 'W')
		return 0;
	for (int i = 1; i < 17; i++) {
		int d = in[i] >= '0' && in[i] <= '9' ? in[i] - '0' :
			in[i] >= 'a' && in[i] <= 'f' ? in[i] - 'a' + 10 : -1;

		if (d < 0)
			return 0;
		t = t << 4 | (uint64_t)d;
	}
	return t;
}

static void send_probe(struct wsb_client *c, double now)
{
	c->hb.t_probe = 0;
	c->hb.t_dead = hb_snap(c, now + c->o.hb_timeout);
	if (!c->wsi)
		return;
	if (c->o.hb_message_mode) {
		/* an application message, sent ahead of anything queued */
		wsb_client_send_front(c, c->o.hb_message, c->o.hb_message_len, 0);
	} else {
		c->tx.ping_len = wsb_stamp_payload(c->tx.ping_payload);
		c->tx.ping_is_probe = 1;
		c->tx.ping_pending = !wsb_ping_now(c, c->tx.ping_payload, c->tx.ping_len);
	}
	wsb_log(c->e, WSB_LOG_DEBUG, "%s: heartbeat probe sent (%s)",
		c->url.host, c->o.hb_message_mode ? "message" : "ping");
	if (c->o.hb_message_mode || c->tx.ping_pending)
		wsb_request_writable(c);
}

/* Is input waiting that the loop has not read yet? (stall immunity) */
static int input_waiting(struct wsb_client *c)
{
	struct pollfd pfd;

	if (!c->wsi)
		return 0;
	if (wsb_tunnel_input_waiting(c))
		return 1;
	pfd.fd = lws_get_socket_fd(c->wsi);
	pfd.events = POLLIN;
	return pfd.fd >= 0 && poll(&pfd, 1, 0) == 1 &&
	       (pfd.revents & (POLLIN | POLLHUP | POLLERR));
}

/*
 * Did bytes arrive in the last `window` seconds?  lws answers a server's
 * PING itself and tells us nothing, so a peer that floods pings (and, busy
 * with them, is slow to answer our probe) would otherwise look dead while
 * it talks.  The kernel knows when data last came (TCP_INFO); through a
 * proxy the relay does.  Bytes of anything count, as the heartbeat says.
 */
static int received_within(struct wsb_client *c, double window)
{
	struct tcp_info ti;
	socklen_t sl = sizeof(ti);
	double last;
	int fd;

	if (!c->wsi)
		return 0;
	if (c->at.tunnel) {
		last = wsb_tunnel_last_rx(c);
		return last > 0 && wsb_now(c->e) - last < window;
	}
	fd = lws_get_socket_fd(c->wsi);
	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl))
		return 0;
	return ti.tcpi_last_data_recv < window * 1000;
}

/* A pong of a probe or of ws:ping() gives the round-trip time. */
void wsb_on_pong(struct wsb_client *c, const unsigned char *in, size_t len)
{
	uint64_t t = 0, now = uv_hrtime();

	if ((t = stamp_time(in, len))) {
		/* a probe's, or ws:ping()'s without a payload */
	} else if (c->hb.uping_len && len == c->hb.uping_len &&
		   !memcmp(in, c->hb.uping, len)) {
		t = c->hb.uping_t;
		c->hb.uping_len = 0;
	}
	if (!t || t > now)
		return;
	c->hb.rtt = (double)(now - t) / 1e9;
	wsb_log(c->e, WSB_LOG_DEBUG, "%s: pong, rtt %.3f ms", c->url.host,
		c->hb.rtt * 1000);
}

static void on_timer(uv_timer_t *t)
{
	struct wsb_client *c = t->data;
	double now = wsb_now(c->e) + 0.0005;

	if (c->at.t_connect && now >= c->at.t_connect &&
	    (c->st == WSB_CONNECTING)) {
		c->at.t_connect = 0;
		wsb_lost(c, "connect_timeout", 0, 0,
		     "connect timed out after %gs", c->o.connect_timeout);
	}
	if (c->close.t_close && now >= c->close.t_close && c->st == WSB_CLOSING) {
		c->close.t_close = 0;
		c->at.done = 1;
		wsb_finish_closed(c, c->close.by ? c->close.by : "closed_by_user",
				  c->close.code, strdup(
				  "no close answer within close_timeout"));
	}
	if (c->t_retry && now >= c->t_retry && c->st == WSB_RECONNECTING) {
		c->t_retry = 0;
		/* the Lua side refreshes headers, then calls attempt() */
		wsb_push_simple(c, WSB_EV_ATTEMPT, NULL);
	}
	if (c->rx.paused && (c->hb.t_dead || c->hb.t_probe) &&
	    ((c->hb.t_dead && now >= c->hb.t_dead) ||
	     (c->hb.t_probe && now >= c->hb.t_probe))) {
		/* input held back by flow control counts as received: a full
		 * max_queue never makes a peer look dead */
		wsb_hb_restart(c, now);
	}
	if (c->hb.t_dead && now >= c->hb.t_dead && c->st == WSB_OPEN) {
		if (input_waiting(c)) {
			/* read what arrived first; judge again right after */
			c->hb.t_dead = now + 0.002;
		} else if (received_within(c, c->o.hb_timeout)) {
			/* something came after the probe: alive */
			wsb_hb_restart(c, now);
		} else {
			c->hb.t_dead = 0;
			wsb_lost(c, "heartbeat_timeout", 1006, 0,
			     "heartbeat timeout (nothing received for %gs)",
			     c->o.hb_interval + c->o.hb_timeout);
		}
	}
	/* (no input_waiting() check here: a probe sent while a frame waits
	 * is harmless, and a syscall per probe adds up over many clients) */
	if (c->hb.t_probe && now >= c->hb.t_probe && c->st == WSB_OPEN)
		send_probe(c, now);
	wsb_client_timer_arm(c);
}
