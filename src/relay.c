/*
 * A proxy tunnel's life and its relay: the handles it owns and when its
 * memory goes, how an attempt that fails in it is reported, and, once the
 * proxy has opened the way, the local socket lws connects to and the bytes
 * carried both ways between it and the proxy's socket.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/un.h>

#include "wsbeat.h"
#include "conn.h"
#include "tunnel.h"

static unsigned serial;

static void on_written(uv_write_t *req, int status);
static void relay_resume(struct wsb_tunnel *t, int from_up);
static void relay_finish(struct wsb_tunnel *t);
static void on_read_up(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void on_read_down(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

struct tn_write {
	uv_write_t req;
	struct wsb_tunnel *t;
	int to_up;
	size_t len;
	unsigned char data[];
};

void wsb_tn_free_if_done(struct wsb_tunnel *t)
{
	if (t->c || t->handles || t->resolving || t->to_up_busy ||
	    t->to_down_busy)
		return;
	free(t->ans);
	free(t->early);
	free(t->buf_up);
	free(t->buf_down);
	free(t);
}
static void on_handle_closed(uv_handle_t *h)
{
	struct wsb_tunnel *t = h->data;

	t->handles--;
	wsb_tn_free_if_done(t);
}

static void close_handle(struct wsb_tunnel *t, uv_handle_t *h, int *open)
{
	if (*open) {
		*open = 0;
		uv_close(h, on_handle_closed);
	}
}

void wsb_tn_close_all(struct wsb_tunnel *t)
{
	close_handle(t, (uv_handle_t *)&t->up, &t->up_open);
	close_handle(t, (uv_handle_t *)&t->lsn, &t->lsn_open);
	close_handle(t, (uv_handle_t *)&t->down, &t->down_open);
}

void wsb_tn_fail(struct wsb_tunnel *t, const char *cause, int status,
		    const char *fmt, ...)
{
	va_list ap;

	if (!t->c) {
		wsb_tn_close_all(t);
		return;
	}
	va_start(ap, fmt);
	wsb_vlost(t->c, cause, 0, status, fmt, ap);
	va_end(ap);
}

/* Queue bytes to the proxy (up) or to lws (down); 0 ok, else a uv error. */
int wsb_tn_write(struct wsb_tunnel *t, int to_up, const void *data,
		    size_t len)
{
	uv_stream_t *s = to_up ? (uv_stream_t *)&t->up : (uv_stream_t *)&t->down;
	struct tn_write *w;
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
	int n = 0, r;

	/* (nothing in flight in this direction: no reordering) */
	if (!(to_up ? t->to_up_busy : t->to_down_busy)) {
		n = uv_try_write(s, &b, 1);
		if (n == (int)len)
			return 0;
		if (n < 0 && n != UV_EAGAIN)
			return n;
		if (n < 0)
			n = 0;
	}
	w = malloc(sizeof(*w) + len - (size_t)n);
	if (!w)
		return UV_ENOMEM;
	w->t = t;
	w->to_up = to_up;
	w->len = len - (size_t)n;
	memcpy(w->data, (const unsigned char *)data + n, w->len);
	b = uv_buf_init((char *)w->data, (unsigned)w->len);
	r = uv_write(&w->req, s, &b, 1, on_written);
	if (r) {
		free(w);
		return r;
	}
	if (to_up)
		t->to_up_busy = 1;
	else
		t->to_down_busy = 1;
	return 0;
}

static void on_written(uv_write_t *req, int status)
{
	struct tn_write *w = (struct tn_write *)req;
	struct wsb_tunnel *t = w->t;
	int to_up = w->to_up;

	free(w);
	if (to_up)
		t->to_up_busy = 0;
	else
		t->to_down_busy = 0;
	if (!t->c) {
		wsb_tn_free_if_done(t);
		return;
	}
	if (status < 0) {
		if (t->state == TN_RELAY) {
			if (to_up)
				t->up_done = 1;
			else
				t->down_done = 1;
			relay_finish(t);
		} else {
			wsb_tn_fail(t, "proxy", 0, "cannot write to the proxy %s: %s",
				t->c->at.proxy.display, uv_strerror(status));
		}
		return;
	}
	if (t->state == TN_RELAY) {
		/* the reading side paused while its bytes were in flight */
		relay_resume(t, !to_up);
		relay_finish(t);
	}
}

static void alloc_up(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct wsb_tunnel *t = h->data;

	(void)hint;
	*b = uv_buf_init((char *)t->buf_up, RELAY_CHUNK);
}

static void alloc_down(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct wsb_tunnel *t = h->data;

	(void)hint;
	*b = uv_buf_init((char *)t->buf_down, RELAY_CHUNK);
}

/*
 * One side is done (EOF or error): once what it sent is delivered, close
 * the other.  lws reads what is in its socket before it sees the end, so
 * the server's last frames (its close) are not lost.
 */
static void relay_finish(struct wsb_tunnel *t)
{
	if (t->up_done && !t->to_down_busy)
		close_handle(t, (uv_handle_t *)&t->down, &t->down_open);
	if (t->down_done && !t->to_up_busy)
		close_handle(t, (uv_handle_t *)&t->up, &t->up_open);
}

static void relay_resume(struct wsb_tunnel *t, int from_up)
{
	if (from_up && t->up_open && !t->up_done)
		uv_read_start((uv_stream_t *)&t->up, alloc_up, on_read_up);
	if (!from_up && t->down_open && !t->down_done)
		uv_read_start((uv_stream_t *)&t->down, alloc_down, on_read_down);
}

static void relay(struct wsb_tunnel *t, int from_up, ssize_t n,
		  const uv_buf_t *b)
{
	uv_stream_t *src = from_up ? (uv_stream_t *)&t->up :
				     (uv_stream_t *)&t->down;

	if (n == 0)
		return;
	if (n < 0) {
		uv_read_stop(src);
		if (from_up)
			t->up_done = 1;
		else
			t->down_done = 1;
		relay_finish(t);
		return;
	}
	if (from_up && !t->down_open)
		return; /* lws is gone: nobody to give it to */
	if (wsb_tn_write(t, !from_up, b->base, (size_t)n)) {
		uv_read_stop(src);
		if (from_up)
			t->down_done = 1;
		else
			t->up_done = 1;
		relay_finish(t);
		return;
	}
	/* backpressure: read no more until the other side took it */
	if (from_up ? t->to_down_busy : t->to_up_busy)
		uv_read_stop(src);
}

static void on_read_up(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct wsb_tunnel *t = s->data;

	if (n > 0)
		t->last_rx = wsb_now(t->e);
	relay(t, 1, n, b);
}

static void on_read_down(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	relay(s->data, 0, n, b);
}

/* lws connected to our socket: check it is ours, then relay. */
static void on_lws_connection(uv_stream_t *lsn, int status)
{
	struct wsb_tunnel *t = lsn->data;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	uv_os_fd_t fd;

	if (status < 0 || !t->c)
		return;
	if (uv_pipe_init(&t->e->loop, &t->down, 0))
		return;
	t->down.data = t;
	t->down_open = 1;
	t->handles++;
	if (uv_accept(lsn, (uv_stream_t *)&t->down)) {
		close_handle(t, (uv_handle_t *)&t->down, &t->down_open);
		return;
	}
	/* an abstract name is visible to every process: only our own
	 * connection (lws's, in this process) gets the tunnel */
	if (uv_fileno((uv_handle_t *)&t->down, &fd) ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) ||
	    cred.pid != getpid()) {
		close_handle(t, (uv_handle_t *)&t->down, &t->down_open);
		return; /* keep listening for lws */
	}
	close_handle(t, (uv_handle_t *)&t->lsn, &t->lsn_open);
	t->buf_up = malloc(RELAY_CHUNK);
	t->buf_down = malloc(RELAY_CHUNK);
	if (!t->buf_up || !t->buf_down) {
		wsb_tn_fail(t, "proxy", 0, "out of memory");
		return;
	}
	if (t->early_len && wsb_tn_write(t, 0, t->early, t->early_len)) {
		wsb_tn_fail(t, "proxy", 0, "cannot relay through %s",
			t->c->at.proxy.display);
		return;
	}
	relay_resume(t, 1);
	relay_resume(t, 0);
	if (t->to_down_busy)
		uv_read_stop((uv_stream_t *)&t->up);
}

/* The tunnel stands: open the socket lws will connect to, and hand over. */
void wsb_tn_ready(struct wsb_tunnel *t)
{
	struct sockaddr_un sa;
	char address[80];
	socklen_t len;
	int fd;

	t->state = TN_RELAY;
	uv_read_stop((uv_stream_t *)&t->up);
	snprintf(t->name, sizeof(t->name), "wsbeat-%ld-%u", (long)getpid(),
		 ++serial);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, t->name, strlen(t->name)); /* abstract */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			  strlen(t->name));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) ||
	    uv_pipe_init(&t->e->loop, &t->lsn, 0)) {
		if (fd >= 0)
			close(fd);
		wsb_tn_fail(t, "proxy", 0, "cannot open the local end of the tunnel: %s",
			strerror(errno));
		return;
	}
	t->lsn.data = t;
	t->lsn_open = 1;
	t->handles++;
	if (uv_pipe_open(&t->lsn, fd) ||
	    uv_listen((uv_stream_t *)&t->lsn, 4, on_lws_connection)) {
		wsb_tn_fail(t, "proxy", 0, "cannot listen on the local end of the tunnel");
		return;
	}
	snprintf(address, sizeof(address), "+@%s", t->name);
	wsb_client_tunnel_ready(t->c, address);
}

/* The attempt is over: close everything; memory goes when libuv is done. */
void wsb_tunnel_abandon(struct wsb_client *c)
{
	struct wsb_tunnel *t = c->at.tunnel;

	if (!t)
		return;
	c->at.tunnel = NULL;
	t->c = NULL;
	if (t->resolving)
		uv_cancel((uv_req_t *)&t->gai);
	wsb_tn_close_all(t);
	wsb_tn_free_if_done(t);
}

/* When bytes last came from the proxy (0: never), for the heartbeat. */
double wsb_tunnel_last_rx(struct wsb_client *c)
{
	return c->at.tunnel ? c->at.tunnel->last_rx : 0;
}

/*
 * Input the relay has not carried to lws yet counts as waiting (stall
 * immunity: after a long stall the heartbeat's timer may run before the
 * relay has read the pong from the proxy's socket).
 */
int wsb_tunnel_input_waiting(struct wsb_client *c)
{
	struct wsb_tunnel *t = c->at.tunnel;
	struct pollfd pfd;
	uv_os_fd_t fd;

	if (!t || !t->up_open || t->state != TN_RELAY)
		return 0;
	if (t->to_down_busy)
		return 1;
	if (uv_fileno((uv_handle_t *)&t->up, &fd))
		return 0;
	pfd.fd = fd;
	pfd.events = POLLIN;
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLIN | POLLHUP | POLLERR));
}
